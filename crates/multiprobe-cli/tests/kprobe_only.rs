//! Functions kprobes can probe but kprobe_multi cannot (in the VMs): a name given literally
//! that ftrace's listing (`available_filter_functions`) lacks but kallsyms has as a function
//! is attached by a kprobe of its own next to the kprobe_multi link, counted exactly, and
//! shown with the reason by `list` and in `count`'s `attached` event.
//!
//! The function is `__x64_sys_getppid`: on Debian's 6.12 and 7.2 kallsyms has it while the
//! listing does not (bpftrace counts it with a plain kprobe). The workload is getppid(2) and
//! getpriority(2) calls of this test process (`--pid`), so the counts are exact.

mod common;

use std::process::Command;

use common::{Cli, Stream, bin, kprobe_multi_expected, require_kprobes};
use serde_json::Value;

const KPROBE_ONLY: &str = "__x64_sys_getppid";
/// A listed syscall function, attached by the kprobe_multi link next to it.
const LISTED: &str = "__x64_sys_getpriority";

/// Whether ftrace's listing has `name` (tracefs where it is mounted, else debugfs).
fn listed(name: &str) -> bool {
    let text = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .iter()
        .find_map(|d| std::fs::read_to_string(format!("{d}/available_filter_functions")).ok())
        .expect("available_filter_functions is readable");
    text.lines().any(|l| l.split_whitespace().next() == Some(name))
}

/// The kallsyms lines (`ADDR TYPE NAME`) of the text symbols named `name` in vmlinux.
fn kallsyms_text(name: &str) -> Vec<String> {
    let text = std::fs::read_to_string("/proc/kallsyms").unwrap();
    text.lines()
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() == 3 && f[2] == name && matches!(f[1], "t" | "T")
        })
        .map(str::to_string)
        .collect()
}

/// Diagnosis: vmlinux text symbols whose address no listed function has (not aliases).
fn unlisted_elsewhere() -> (usize, Vec<String>) {
    let Ok(addrs) = std::fs::read_to_string("/sys/kernel/tracing/available_filter_functions_addrs") else {
        return (0, Vec::new());
    };
    let mut sites = std::collections::HashSet::new();
    let mut names = std::collections::HashSet::new();
    for l in addrs.lines() {
        let mut f = l.split_whitespace();
        if let (Some(a), Some(n)) = (f.next(), f.next()) {
            let a = u64::from_str_radix(a, 16).unwrap_or(0);
            sites.extend([a, a.wrapping_sub(4), a.wrapping_sub(16)]);
            names.insert(n.to_string());
        }
    }
    let text = std::fs::read_to_string("/proc/kallsyms").unwrap();
    let found: Vec<String> = text
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 3 && matches!(f[1], "t" | "T")).then_some((f[0], f[2]))
        })
        .filter(|(a, n)| {
            !names.contains(*n) && !sites.contains(&u64::from_str_radix(a, 16).unwrap_or(0)) && !n.starts_with("__pfx")
        })
        .map(|(_, n)| n.to_string())
        .collect();
    let sys: Vec<String> = found.iter().filter(|n| n.contains("sys_")).take(30).cloned().collect();
    let mut some: Vec<String> = found.iter().take(30).cloned().collect();
    some.extend(sys);
    (found.len(), some)
}

/// The facts the tests stand on, checked rather than assumed: the function is a text symbol
/// in kallsyms and absent from ftrace's listing.
fn check_premise() {
    let syms = kallsyms_text(KPROBE_ONLY);
    eprintln!("kallsyms: {syms:?}; {KPROBE_ONLY} listed: {}", listed(KPROBE_ONLY));
    eprintln!("kallsyms __do_sys_getppid: {:?}", kallsyms_text("__do_sys_getppid"));
    eprintln!("unlisted functions at no listed address: {:?}", unlisted_elsewhere());
    assert!(!syms.is_empty(), "{KPROBE_ONLY} is no text symbol in kallsyms");
    assert!(!listed(KPROBE_ONLY), "{KPROBE_ONLY} is in available_filter_functions on this kernel");
}

/// `list` keeps the literal name with the reason; a glob matches the listing only.
#[test]
fn kprobe_only_list_shows_the_reason() {
    require_kprobes!();
    check_premise();
    let out = Command::new(bin()).args(["list", KPROBE_ONLY, "--json"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert_eq!(lines[0]["function"], KPROBE_ONLY);
    assert_eq!(lines[0]["module"], "vmlinux");
    assert_eq!(lines[0]["kprobe_only"], "not in available_filter_functions");
    assert_eq!(lines[1]["event"], "summary");
    assert_eq!((lines[1]["functions"].as_u64(), lines[1]["kprobe_only"].as_u64()), (Some(1), Some(1)), "{stdout}");

    let out = Command::new(bin()).args(["list", KPROBE_ONLY]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("(kprobe only: not in available_filter_functions)"), "{text}");

    // A pattern is matched against the listing only: no kallsyms fallback.
    let glob = format!("{}*", &KPROBE_ONLY[..KPROBE_ONLY.len() - 1]);
    let out = Command::new(bin()).args(["list", &glob]).output().unwrap();
    assert!(!out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}

/// `count` attaches the kprobe-only function by its own kprobe next to the kprobe_multi link
/// (on 6.1 every function has one anyway) and counts exactly this process's calls.
#[test]
fn kprobe_only_count_sees_exact_calls() {
    require_kprobes!();
    check_premise();
    let pid = std::process::id().to_string();
    let mut cli = Cli::spawn(&["count", KPROBE_ONLY, LISTED, "--pid", &pid, "--duration", "3s", "--json"]);
    let line = cli.wait_for_line(Stream::Stdout, |_| true);
    // The workload: 7 getppid(2), 4 getpriority(2) (neither is a read or write of this process).
    for _ in 0..7 {
        std::hint::black_box(std::os::unix::process::parent_id());
    }
    for _ in 0..4 {
        // One getpriority(2) each, through rustix's safe wrapper (its getsid asserts a
        // session id above 0, and the VM's tests run in session 0; argument-less syscalls
        // such as getuid are kprobe-only themselves).
        std::hint::black_box(rustix::process::getpriority_process(None).unwrap());
    }
    let r = cli.finish();
    let (describe, stderr) = (r.describe(), &r.stderr);
    assert!(r.status.success(), "{describe}");
    let attached: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {describe}"));
    assert_eq!(attached["event"], "attached", "{describe}");
    assert_eq!(attached["functions"], 2, "{describe}");
    if kprobe_multi_expected() {
        assert_eq!(attached["mode"], "kprobe_multi", "{describe}");
        let only = attached["kprobe_only"].as_array().unwrap_or_else(|| panic!("no kprobe_only: {describe}"));
        assert_eq!(only.len(), 1, "{describe}");
        assert_eq!(only[0]["function"], KPROBE_ONLY);
        assert_eq!(only[0]["module"], "vmlinux");
        assert_eq!(only[0]["reason"], "not in available_filter_functions");
        assert!(
            stderr.contains("1 function through per-function kprobes: not in available_filter_functions"),
            "{describe}"
        );
    } else {
        // The whole set is per-function: nothing is set apart.
        assert_eq!(attached["mode"], "kprobes", "{describe}");
        assert!(attached.get("kprobe_only").is_none(), "{describe}");
    }
    let summary: Value = serde_json::from_str(r.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["event"], "summary", "{describe}");
    let calls = |name: &str| {
        summary["functions"].as_array().unwrap().iter().find(|f| f["function"] == name).map(|f| f["calls"].clone())
    };
    assert_eq!(calls(KPROBE_ONLY), Some(Value::from(7)), "{describe}");
    assert_eq!(calls(LISTED), Some(Value::from(4)), "{describe}");
    assert_eq!(summary["total_calls"], 11, "{describe}");
}
