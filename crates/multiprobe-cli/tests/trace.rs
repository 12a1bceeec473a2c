//! `multiprobe trace` end to end, in the VMs on real kernels, against a workload of known
//! calls: a thread named `mp-trace-test` of this test process opens a file that does not
//! exist N times (one `do_sys_openat2` returning -ENOENT and one `do_filp_open`, called
//! `do_file_open` from 7.x, returning ERR_PTR(-ENOENT) each) and, where the test says so, a
//! file that does.
//!
//! `--pid` (this process) and `--comm` (the thread's name) make the events exact. The test
//! reads the `attached` line, runs the workload, then signals the CLI (unless `--limit` ends
//! it) and only then reads the rest: until then the CLI may block writing to a full pipe,
//! which is how the lost-event test fills the ring.

mod common;

use std::process::Command;

use common::{Cli, Stream, in_named_thread, require_kprobes};
use serde_json::Value;
use testkit::require_config;

const COMM: &str = "mp-trace-test";
const MISSING: &str = "/nonexistent-multiprobe-trace-test";

/// The CLI running with `--json`, its `attached` event read.
struct Trace {
    cli: Cli,
    attached: Value,
}

/// A finished run: its events by kind, and stderr.
struct Finished {
    calls: Vec<Value>,
    summary: Value,
    stderr: String,
    all: String,
}

impl Trace {
    /// Starts `multiprobe trace ARGS --pid <this process> --comm mp-trace-test --json` and
    /// waits until it has attached.
    fn start(args: &[&str]) -> Trace {
        let pid = std::process::id().to_string();
        let mut cli = Cli::spawn(&[&["trace"], args, &["--pid", &pid, "--comm", COMM, "--json"]].concat());
        let line = cli.wait_for_line(Stream::Stdout, |_| true);
        let attached: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert_eq!(attached["event"], "attached", "{line}");
        Trace { cli, attached }
    }

    /// SIGINT, then everything it wrote.
    fn interrupt(self) -> Finished {
        self.cli.signal("INT");
        self.finish()
    }

    /// Reads to the end of its output (it must end by itself or have been signalled), within
    /// a minute.
    fn finish(mut self) -> Finished {
        let r = self.cli.finish_reading_meanwhile();
        let (status, stderr) = (r.status, r.stderr);
        // What followed the `attached` line.
        let rest = r.stdout.split_once('\n').map_or("", |(_, rest)| rest).to_string();
        assert!(status.success(), "trace failed ({status}):\n{stderr}\n{rest}");
        let events: Vec<Value> =
            rest.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect();
        let summary = events.last().cloned().unwrap_or_else(|| panic!("no summary:\n{stderr}"));
        assert_eq!(summary["event"], "summary", "{rest}");
        let calls: Vec<Value> = events.iter().filter(|e| e["event"] == "call").cloned().collect();
        assert_eq!(calls.len() + 1, events.len(), "only calls and the summary follow `attached`:\n{rest}");
        Finished { calls, summary, stderr, all: rest }
    }
}

/// `n` opens of a missing file.
fn fail_to_open(n: usize) {
    for _ in 0..n {
        let e = std::fs::File::open(MISSING).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(2), "{MISSING} must not exist");
    }
}

fn by_function<'a>(calls: &'a [Value], name: &str) -> Vec<&'a Value> {
    calls.iter().filter(|c| c["function"] == name).collect()
}

#[test]
fn trace_errors_are_the_failed_opens_of_the_named_thread() {
    require_kprobes!();
    const N: usize = 5;
    // The pointer-returning step has one name or the other; the CLI warns about the other.
    let t = Trace::start(&["do_sys_openat2", "do_filp_open", "do_file_open", "--errors"]);
    let tid = in_named_thread(COMM, || {
        fail_to_open(N);
        std::fs::File::open("/proc/self/stat").expect("an open that succeeds");
    });
    let f = t.interrupt();
    let ctx = format!("{}\n{}", f.all, f.stderr);
    assert_eq!(f.summary["end"], "SIGINT", "{ctx}");
    assert_eq!(f.summary["lost"], 0, "{ctx}");
    assert_eq!(f.summary["events"], 2 * N as u64, "{ctx}");
    for c in &f.calls {
        assert_eq!((c["comm"].as_str(), c["tid"].as_u64()), (Some(COMM), Some(u64::from(tid))), "{c}");
        assert_eq!(c["pid"].as_u64(), Some(u64::from(std::process::id())), "{c}");
        assert_eq!(c["errno"], "ENOENT", "{c}");
        assert_eq!(c["module"], "vmlinux", "{c}");
        assert!(c["duration_ns"].as_u64().unwrap() > 0, "{c}");
        assert!(c["ts_ns"].as_u64().unwrap() > 0, "{c}");
    }
    // An int-returning function: the number; a pointer-returning one: ERR_PTR, in hex.
    let ints = by_function(&f.calls, "do_sys_openat2");
    assert_eq!(ints.len(), N, "{ctx}");
    assert!(ints.iter().all(|c| c["ret"] == -2), "{ctx}");
    let ptrs: Vec<&Value> = f.calls.iter().filter(|c| c["function"] != "do_sys_openat2").collect();
    assert_eq!(ptrs.len(), N, "{ctx}");
    assert!(ptrs.iter().all(|c| c["function"] == "do_filp_open" || c["function"] == "do_file_open"), "{ctx}");
    assert!(ptrs.iter().all(|c| c["ret"] == "0xfffffffffffffffe"), "{ctx}");
}

#[test]
fn trace_without_errors_every_open_shows_with_its_result() {
    require_kprobes!();
    const N: usize = 3;
    let t = Trace::start(&["do_sys_openat2"]);
    in_named_thread(COMM, || {
        fail_to_open(N);
        std::fs::File::open("/proc/self/stat").expect("an open that succeeds");
    });
    let f = t.interrupt();
    let ctx = format!("{}\n{}", f.all, f.stderr);
    assert_eq!(f.calls.len(), N + 1, "{ctx}");
    assert_eq!(f.calls.iter().filter(|c| c["errno"] == "ENOENT").count(), N, "{ctx}");
    let ok: Vec<&Value> = f.calls.iter().filter(|c| c["errno"].is_null()).collect();
    assert_eq!(ok.len(), 1, "{ctx}");
    assert!(ok[0]["ret"].as_i64().unwrap() >= 0, "a file descriptor: {}", ok[0]);
    assert!(f.calls.iter().all(|c| c["duration_ns"].as_u64().unwrap() > 0), "{ctx}");
    assert_eq!(
        f.summary["functions"],
        serde_json::json!([{"function": "do_sys_openat2", "module": "vmlinux", "events": N + 1}])
    );
}

#[test]
fn trace_filters_leave_out_what_they_should() {
    require_kprobes!();
    // No open takes an hour.
    let t = Trace::start(&["do_sys_openat2", "--min-duration", "1h"]);
    in_named_thread(COMM, || fail_to_open(3));
    let f = t.interrupt();
    assert_eq!((f.calls.len(), &f.summary["lost"]), (0, &Value::from(0)), "{}", f.all);
    // Opens by this process under another name are not the named thread's.
    let t = Trace::start(&["do_sys_openat2"]);
    fail_to_open(3);
    let f = t.interrupt();
    assert_eq!(f.calls.len(), 0, "the main thread is not {COMM}: {}", f.all);
}

#[test]
fn trace_limit_ends_the_run_after_n_events() {
    require_kprobes!();
    let t = Trace::start(&["do_sys_openat2", "--limit", "3"]);
    assert!(t.attached["functions"].as_u64() == Some(1), "{}", t.attached);
    in_named_thread(COMM, || fail_to_open(10));
    let f = t.finish();
    assert_eq!(f.summary["end"], "limit", "{}", f.all);
    assert_eq!((f.calls.len(), &f.summary["events"]), (3, &Value::from(3)), "{}", f.all);
}

/// A one-page ring and a reader blocked on a full pipe: most events are lost, and every one
/// of them is counted.
#[test]
fn trace_every_event_is_either_shown_or_counted_lost() {
    require_kprobes!();
    const N: u64 = 3000;
    let t = Trace::start(&["do_sys_openat2", "--buffer-size", "4K"]);
    in_named_thread(COMM, || fail_to_open(N as usize));
    let f = t.interrupt();
    let lost = f.summary["lost"].as_u64().unwrap();
    let shown = f.calls.len() as u64;
    assert_eq!(f.summary["events"], shown);
    assert_eq!(shown + lost, N, "shown {shown} + lost {lost}\n{}", f.stderr);
    assert!(lost > 0, "a 4K ring behind a full pipe must overflow: {}", f.stderr);
}

/// `--args`: the prototype's names and types, the registers at entry; `char *` arguments as
/// strings read at entry (here a user-space one), cut to `--string-size`, or pointers with 0;
/// from the session's table and from the pair's (`--no-session`), where the kernel has both.
#[test]
fn trace_args_are_read_by_prototype() {
    require_kprobes!();
    let cut = &MISSING[..7];
    for (extra, filename) in [
        (&[][..], Some(MISSING)),
        (&["--no-session", "--string-size", "8"][..], Some(cut)),
        (&["--string-size", "0"][..], None),
    ] {
        let mut args = vec!["do_sys_openat2", "--args", "--errors"];
        args.extend(extra);
        let t = Trace::start(&args);
        in_named_thread(COMM, || fail_to_open(2));
        let f = t.interrupt();
        assert_eq!(f.calls.len(), 2, "{extra:?}: {}\n{}", f.all, f.stderr);
        for c in &f.calls {
            // File::open is openat(AT_FDCWD, path, ...).
            assert_eq!(c["args"]["dfd"], -100, "{extra:?}: {c}");
            let got = c["args"]["filename"].as_str().unwrap_or_else(|| panic!("{extra:?}: {c}"));
            match filename {
                Some(want) => assert_eq!(got, want, "{extra:?}: {c}"),
                None => assert!(got.starts_with("0x") && got != "0x0", "{extra:?}: {c}"),
            }
            assert_eq!(c["errno"], "ENOENT", "{extra:?}: {c}");
        }
    }
}

/// `--kstack`: each event carries the kernel stack of its return, named by kallsyms; an
/// open's goes back through the system call entry.
#[test]
fn trace_kstack_goes_through_the_syscall_entry() {
    require_kprobes!();
    let t = Trace::start(&["do_sys_openat2", "--errors", "--kstack"]);
    in_named_thread(COMM, || fail_to_open(2));
    let f = t.interrupt();
    assert_eq!(f.calls.len(), 2, "{}\n{}", f.all, f.stderr);
    for c in &f.calls {
        let frames: Vec<&str> = c["stack"]
            .as_array()
            .unwrap_or_else(|| panic!("no stack: {c}"))
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(
            frames.iter().all(|fr| fr.contains("+0x") || fr.starts_with("0x")),
            "function+0xoffset or a bare address: {c}"
        );
        assert!(frames.iter().any(|fr| fr.starts_with("do_syscall_64+0x")), "through the syscall entry: {c}");
    }
}

/// A module function's prototype comes from the module's BTF: binfmt_misc's status write
/// returns `ssize_t`, so a refused command is `-22 (EINVAL)` under `--errors`, and its
/// `const char __user *buffer` argument reads as the string written.
#[test]
fn trace_module_functions_are_typed_by_module_btf() {
    require_kprobes!();
    require_config!("CONFIG_DEBUG_INFO_BTF_MODULES", "module BTF");
    let Some(dir) = testkit::test_modules_dir() else {
        panic!("no test modules: run in the VM (cargo xtask test), which ships binfmt_misc.ko");
    };
    let sh = |cmd: &str| Command::new("sh").args(["-c", cmd]).status().unwrap().success();
    let mnt = "/tmp/mp-trace-binfmt";
    let _ = sh(&format!("umount {mnt} 2>/dev/null"));
    // Loaded already (built in, or by another test) is as good.
    let _ = sh(&format!("insmod {} 2>/dev/null", dir.join("binfmt_misc.ko").display()));
    assert!(sh(&format!("mkdir -p {mnt} && mount -t binfmt_misc none {mnt}")), "mounting binfmt_misc");
    let t = Trace::start(&["binfmt_misc:bm_status_write", "--errors", "--args"]);
    let status = format!("{mnt}/status");
    in_named_thread(COMM, move || {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new().write(true).open(&status).unwrap();
        // Not 0, 1 or -1: refused. The NUL ends the string the probe reads.
        let e = file.write(b"bogus\0").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(22), "{e}");
    });
    let f = t.interrupt();
    let _ = sh(&format!("umount {mnt}"));
    let ctx = format!("{}\n{}", f.all, f.stderr);
    assert_eq!(f.calls.len(), 1, "{ctx}");
    let c = &f.calls[0];
    assert_eq!((&c["function"], &c["module"]), (&Value::from("bm_status_write"), &Value::from("binfmt_misc")), "{c}");
    assert_eq!((&c["ret"], &c["errno"]), (&Value::from(-22), &Value::from("EINVAL")), "{c}");
    assert_eq!(c["args"]["buffer"], "bogus", "{c}");
    assert_eq!(c["args"]["count"], 6, "{c}");
}
