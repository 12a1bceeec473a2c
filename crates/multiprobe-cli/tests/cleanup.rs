//! The command leaves nothing attached however it ends (in the VMs): SIGINT, SIGTERM and
//! SIGKILL of `count` and `latency` mid-run, and SIGINT during a slow per-function attach
//! (Debian's 6.1, without kprobe_multi), which must stop the attach rather than wait for it.
//! "Nothing" is checked kernel-wide: BPF links, registered kprobes, `kprobe_events` and
//! ftrace's enabled functions, as before the command started.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::os::fd::AsFd;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::{require_config, require_kernel, require_root};

/// Skips unless the kernel can attach kprobes one way or the other (kprobe_multi, or the
/// per-function fallback, which needs attach cookies on single kprobes).
macro_rules! require_kprobes {
    () => {
        require_root!("loading BPF programs");
        require_config!("CONFIG_KPROBES", "kprobes (kprobe_multi and its per-function fallback)");
        require_kernel!(5, 15, "attach cookies on single kprobes");
    };
}

fn kprobe_multi_expected() -> bool {
    testkit::kernel_config("CONFIG_FPROBE") != Some(false) && testkit::kernel_version() >= (5, 18)
}

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
        use multiprobe::raw::{self as sys, ObjKind};
        let mut links = BTreeSet::new();
        let mut id = 0;
        while let Ok(Some(next)) = sys::get_next_id(ObjKind::Link, id) {
            id = next;
            // A link can go away between the two calls.
            if let Ok(fd) = sys::get_fd_by_id(ObjKind::Link, id)
                && let Ok(info) = sys::link_info(fd.as_fd(), None, None)
            {
                links.insert((id, info.link_type));
            }
        }
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        Attached {
            links,
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

fn spawn(args: &[&str]) -> Child {
    let bin = testkit::multiprobe_bin(env!("CARGO_BIN_EXE_multiprobe"));
    Command::new(&bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {}: {e}", bin.display()))
}

fn kill(child: &Child, sig: &str) {
    let ok = Command::new("kill").args([&format!("-{sig}"), &child.id().to_string()]).status().unwrap();
    assert!(ok.success(), "kill -{sig} failed");
}

/// Waits for the child, then reads the rest of its stdout and all its stderr.
fn finish(mut child: Child, mut stdout: impl Read) -> (std::process::ExitStatus, String, String) {
    let status = child.wait().unwrap();
    let (mut out, mut err) = (String::new(), String::new());
    stdout.read_to_string(&mut out).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    (status, out, err)
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
            let mut child = spawn(args);
            let mut stdout = BufReader::new(child.stdout.take().unwrap());
            let mut line = String::new();
            stdout.read_line(&mut line).unwrap();
            if !line.contains(r#""event":"attached""#) {
                let (status, out, err) = finish(child, stdout);
                panic!("{args:?}: no `attached` event: {status}\n{line}{out}\n{err}");
            }
            assert_ne!(Attached::now().links, before.links, "{args:?}: no link while attached");
            kill(&child, sig);
            let (status, out, err) = finish(child, stdout);
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
    let mut child = spawn(&["count", "vfs_*", "tcp_*", "--json", "--duration", "60s"]);
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    // Printed once the attach has run for a second (stderr is no terminal).
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "the command ended before attaching: {seen}");
        seen.push_str(&line);
        if line.starts_with("attaching ") {
            break;
        }
    }
    let n: usize = seen.lines().last().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let signalled = Instant::now();
    kill(&child, "INT");
    let status = child.wait().unwrap();
    let took = signalled.elapsed();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    let mut out = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    assert_eq!(status.code(), Some(1), "{status}\n{seen}{rest}");
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
        .unwrap_or_else(|| panic!("{seen}{rest}"));
    assert!(attached < n, "{first}");
    assert!(first.ends_with(&format!(" of {n} functions; those were detached again")), "{first}");
    // Detaching a few hundred kprobes takes a while too, but not the whole attach.
    eprintln!("exited {took:?} after SIGINT, cancelled after {attached} of {n}");
    assert_back_to(&before, "an interrupted attach");
}
