//! The command leaves nothing attached however it ends (in the VMs): SIGINT, SIGTERM and
//! SIGKILL of `count` and `latency` mid-run, and SIGINT during a slow per-function attach
//! (Debian's 6.1, without kprobe_multi), which must stop the attach rather than wait for it.
//! "Nothing" is checked kernel-wide: BPF links, registered kprobes, `kprobe_events` and
//! ftrace's enabled functions, as before the command started.

mod common;

use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use common::{Cli, Stream, kprobe_multi_expected, links, require_kprobes};
use serde_json::Value;

/// What a run could leave attached, kernel-wide.
#[derive(Debug, PartialEq, Eq)]
struct Attached {
    /// Every BPF link: id and type.
    links: BTreeSet<(u32, u32)>,
    kprobes: String,
    kprobe_events: String,
    enabled_functions: String,
}

impl Attached {
    fn now() -> Attached {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        Attached {
            links: links(),
            kprobes: read("/sys/kernel/debug/kprobes/list"),
            kprobe_events: read("/sys/kernel/tracing/kprobe_events"),
            enabled_functions: read("/sys/kernel/tracing/enabled_functions"),
        }
    }
}

/// The kernel frees what a closed process had attached a moment later (RCU): waits up to
/// 10 s for the state to come back to `want`.
#[track_caller]
fn assert_back_to(want: &Attached, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut now = Attached::now();
    while now != *want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        now = Attached::now();
    }
    assert_eq!(now, *want, "{what} left something attached");
}

#[test]
fn signals_mid_run_leave_nothing_attached() {
    require_kprobes!();
    // latency: a session link where the kernel has them (6.10+), else an entry/return pair.
    let count: &[&str] = &["count", "vfs_read", "vfs_write", "--json", "--duration", "60s"];
    let latency: &[&str] = &["latency", "vfs_read", "vfs_write", "--json", "--duration", "60s"];
    for args in [count, latency] {
        for sig in ["INT", "TERM", "KILL"] {
            let before = Attached::now();
            let started = Instant::now();
            let mut cli = Cli::spawn(args);
            cli.wait_for("attached");
            assert_ne!(Attached::now().links, before.links, "{args:?}: no link while attached");
            cli.signal(sig);
            let r = cli.finish();
            let (status, out, err) = (r.status, r.stdout, r.stderr);
            let what = format!("{args:?} ended by SIG{sig}");
            if sig == "KILL" {
                assert_eq!(status.signal(), Some(9), "{what}: {status}\n{err}");
            } else {
                assert_eq!(status.code(), Some(0), "{what}: {status}\n{err}");
                let summary: Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
                assert_eq!(summary["end"], format!("SIG{sig}"), "{what}: {summary}");
            }
            assert_back_to(&before, &what);
            progress(&format!("{what}: {:?}", started.elapsed()));
        }
    }
}

/// A line on the console while a long test runs (past libtest's capture, which only takes
/// the print macros), so the harness sees it is alive.
fn progress(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// On 6.1 `count` attaches one kprobe per function: 441 functions took 47 s under
/// emulation. SIGINT meanwhile used to wait for the last one; now the attach stops at once,
/// detaches what it made and says so.
#[test]
fn sigint_during_a_per_function_attach_stops_it_and_leaves_nothing() {
    require_kprobes!();
    if kprobe_multi_expected() {
        // One kprobe_multi link is one system call: there is no slow attach to interrupt
        // (the library test a_cancelled_per_function_attach_leaves_nothing_behind covers the
        // mechanism on every kernel).
        return;
    }
    let before = Attached::now();
    let mut cli = Cli::spawn(&["count", "vfs_*", "tcp_*", "--json", "--duration", "60s"]);
    // Printed once the attach has run for a second (stderr is no terminal).
    let line = cli.wait_for_line(Stream::Stderr, |l| l.starts_with("attaching "));
    let n: usize = line.split(' ').nth(1).unwrap().parse().unwrap();
    let signalled = Instant::now();
    cli.signal("INT");
    let r = cli.finish();
    let took = signalled.elapsed();
    let (status, out, stderr) = (r.status, r.stdout, r.stderr);
    // What the command wrote to stderr after the `attaching` line.
    let rest = stderr.split_once(&format!("{line}\n")).map_or("", |(_, rest)| rest);
    assert_eq!(status.code(), Some(1), "{status}\n{stderr}");
    // Nothing was attached, so nothing is reported but the failure itself (--json: one
    // `error` event on stdout, as for every failure).
    let events: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(events.len(), 1, "only the error event on stdout: {out}");
    assert_eq!(events[0]["event"], "error", "{out}");
    assert!(events[0]["message"].as_str().unwrap().starts_with("interrupted while attaching"), "{out}");
    let first = rest.lines().next().unwrap_or("");
    let prefix = "error: interrupted while attaching: attaching was cancelled after ";
    let attached: usize = first
        .strip_prefix(prefix)
        .and_then(|r| r.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(attached < n, "{first}");
    assert!(first.ends_with(&format!(" of {n} functions; those were detached again")), "{first}");
    // Detaching a few hundred kprobes takes a while too, but not the whole attach.
    eprintln!("exited {took:?} after SIGINT, cancelled after {attached} of {n}");
    assert_back_to(&before, "an interrupted attach");
}
