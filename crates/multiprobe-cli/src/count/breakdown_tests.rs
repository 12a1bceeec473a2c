//! The breakdown's text, JSON and folded forms against made-up tables.

use std::collections::HashMap;

use multiprobe::symbols::Function;

use super::*;
use crate::count::by::Row;

fn funcs() -> Vec<Function> {
    ["vfs_read", "vfs_write"]
        .iter()
        .enumerate()
        .map(|(i, n)| Function { name: n.to_string(), module: None, address: 0xffffffff81234560 + i as u64 * 0x1000 })
        .collect()
}

fn key(func: usize, comm: &str, pid: u32, stack: Option<Option<u32>>) -> Key {
    Key { func, comm: Some(comm.into()), pid: Some(pid), tid: None, cpu: None, stack }
}

const KALLSYMS: &str = "ffffffff81234560 T vfs_read\n\
    ffffffff81235560 T vfs_write\n\
    ffffffff81236000 T ksys_read\n\
    ffffffff81237000 T do_syscall_64\n";

fn stacks() -> Stacks {
    let raw: HashMap<u32, Vec<u64>> = [
        (7, vec![0xffffffff81234560, 0xffffffff81236073, 0xffffffff81237010]),
        (9, vec![0xffffffff81236080, 0xffffffff81237010]),
    ]
    .into();
    let symbols = KernelSymbols::parse(KALLSYMS.as_bytes().to_vec());
    Stacks::from_addresses(raw, &symbols)
}

#[test]
fn table_groups_keys_under_their_function_with_what_did_not_fit() {
    let snapshot = Snapshot {
        rows: vec![
            Row { key: key(0, "cat", 12, None), calls: 3 },
            Row { key: key(0, "sh", 1, None), calls: 5 },
            Row { key: key(0, "ls", 40, None), calls: 1 },
            Row { key: key(1, "cat", 12, None), calls: 2 },
        ],
        overflow: vec![4, 0],
        lost_stacks: vec![0, 0],
    };
    let st = Stacks::default();
    let b = Breakdown {
        functions: &funcs(),
        snapshot: &snapshot,
        stacks: &st,
        keys: &[By::Comm, By::Pid],
        max_keys: 3,
        top_keys: 2,
        secs: 2.0,
    };
    assert_eq!(
        b.text(None),
        "FUNCTION   MODULE   COMM           PID  CALLS  RATE/s\n\
         vfs_read   vmlinux                         13     6.5\n\
         \x20                   sh               1      5     2.5\n\
         \x20                   cat             12      3     1.5\n\
         \x20                   (1 more)                1     0.5\n\
         \x20                   (did not fit)           4     2.0\n\
         vfs_write  vmlinux                          2     1.0\n\
         \x20                   cat             12      2     1.0\n\
         4 calls in keys that did not fit (the kernel keeps 3 keys): counted in their function's total; raise --max-keys to see them\n"
    );
    let v = serde_json::to_value(b.json()).unwrap();
    assert_eq!(v["keys_not_fit_calls"], 4);
    assert_eq!(v["breakdown"].as_array().unwrap().len(), 4, "every key in JSON: {v}");
    assert_eq!(
        v["breakdown"][0],
        serde_json::json!({"function": "vfs_read", "module": "vmlinux", "calls": 5, "comm": "sh", "pid": 1})
    );
}

#[test]
fn stacks_print_symbolized_and_fold_outermost_first() {
    let snapshot = Snapshot {
        rows: vec![
            Row { key: key(0, "cat", 12, Some(Some(7))), calls: 3 },
            Row { key: key(0, "cat", 12, Some(None)), calls: 1 },
            Row { key: key(1, "my prog", 13, Some(Some(9))), calls: 2 },
        ],
        overflow: vec![0, 0],
        lost_stacks: vec![1, 0],
    };
    let st = stacks();
    let keys = [By::Comm, By::Kstack];
    let b = Breakdown {
        functions: &funcs(),
        snapshot: &snapshot,
        stacks: &st,
        keys: &keys,
        max_keys: 10,
        top_keys: 10,
        secs: 1.0,
    };
    // The innermost frame is the probed function itself for stack 7: not repeated; stack 9
    // (a probe past the entry) gets the function appended.
    assert_eq!(
        b.folded(),
        "cat;[stack_lost];vfs_read 1\n\
         cat;do_syscall_64;ksys_read;vfs_read 3\n\
         my_prog;do_syscall_64;ksys_read;vfs_write 2\n"
    );
    let text = b.text(None);
    assert!(
        text.starts_with(
            "vfs_read (vmlinux): 4 calls, 4.0/s\n  3  comm=cat\n       vfs_read+0x0\n       ksys_read+0x73\n       do_syscall_64+0x10\n  1  comm=cat\n       [stack lost]\n"
        ),
        "{text}"
    );
    assert!(text.contains("1 calls whose kernel stack the stack map lost"), "{text}");
    let v = serde_json::to_value(b.json()).unwrap();
    assert_eq!(v["lost_stack_calls"], 1);
    assert_eq!(v["breakdown"][0]["stack"], serde_json::json!(["vfs_read+0x0", "ksys_read+0x73", "do_syscall_64+0x10"]));
    assert_eq!(v["breakdown"][1]["stack"], serde_json::Value::Null);
}
