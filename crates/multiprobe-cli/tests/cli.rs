//! The `multiprobe` command end to end: natively (usage errors, unsupported kernels, the
//! features report) and in the VMs on real kernels (list against tracefs, count and latency
//! against a workload of known calls, clean detach on signals).
//!
//! The workload is pread(2) and pwrite(2) on a file of the test's own: one vfs_read or
//! vfs_write each. `--pid` limits counting to this test process, so the counts are exact.
//! While a probe on vfs_* is attached the test must not read or write any file (reading the
//! CLI's output is a read too): it reads the `attached` line, which the CLI writes after
//! attaching while the test is already blocked in read(2), runs the workload, waits for the
//! CLI to exit, and only then reads the rest.

mod common;

use std::collections::BTreeSet;

use common::{Cli, Workload, kprobe_multi_expected, links, links_settle_to, require_kprobes, run};
use serde_json::Value;
use testkit::{require_config, require_root};

/// Calls per function of a `count` or `latency` summary, by name (vmlinux functions only).
fn calls_by_name(summary: &Value) -> Vec<(String, u64)> {
    summary["functions"]
        .as_array()
        .expect("summary.functions")
        .iter()
        .filter(|f| f["module"] == "vmlinux")
        .map(|f| (f["function"].as_str().unwrap().to_string(), f["calls"].as_u64().unwrap()))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Natively and everywhere
// ---------------------------------------------------------------------------------------

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["count"][..],
        &["count", "vfs_*", "--duration", "5x"],
        &["count", "vfs_*", "--interval", "0s"],
        &["latency", "vfs_*", "--sort", "median"],
        &["no-such-command"],
    ] {
        let r = run(args);
        assert_eq!(r.code(), Some(2), "{args:?}: {}", r.describe());
        assert!(r.diagnosis().starts_with("error: "), "{args:?}: {}", r.describe());
    }
}

#[test]
fn completions_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let r = run(&["completions", shell]);
        assert_eq!(r.code(), Some(0), "{}", r.describe());
        assert!(r.stdout.contains("multiprobe") && r.stdout.contains("latency"), "{shell}: {}", r.stdout);
    }
}

#[test]
fn features_give_a_reason_for_every_no() {
    let r = run(&["features", "--json"]);
    assert_eq!(r.code(), Some(0), "{}", r.describe());
    let report = &r.events()[0];
    assert_eq!(report["kernel"], testkit::kernel_release());
    let features = report["features"].as_array().unwrap();
    for name in [
        "bpf_syscall",
        "kernel_btf",
        "kprobe_multi",
        "kprobe_session",
        "session_kfuncs",
        "kprobe_multi_link_info",
        "available_filter_functions_addrs",
        "perf_kprobe",
        "perf_kprobe_cookies",
        "tracefs",
    ] {
        assert!(features.iter().any(|f| f["name"] == name), "no feature {name}: {report}");
    }
    for f in features {
        if f["supported"] == false {
            let reason = f["reason"].as_str().unwrap_or("");
            assert!(!reason.is_empty(), "no reason for {f}");
        }
    }
    let get = |name: &str| features.iter().find(|f| f["name"] == name).unwrap();
    if testkit::is_root() {
        assert_eq!(get("kprobe_multi")["supported"], kprobe_multi_expected(), "{report}");
        if testkit::kernel_config("CONFIG_FPROBE") == Some(false) {
            assert!(get("kprobe_multi")["reason"].as_str().unwrap().contains("CONFIG_FPROBE"), "{report}");
        }
        if testkit::kernel_version() < (6, 10) {
            assert_eq!(get("kprobe_session")["supported"], false, "sessions need 6.10: {report}");
        }
    }
    // The text says the same, one feature a line.
    let text = run(&["features"]);
    assert_eq!(text.code(), Some(0));
    for f in features {
        let name = f["name"].as_str().unwrap();
        let line = text.stdout.lines().find(|l| l.split_whitespace().nth(1) == Some(name)).unwrap();
        let yes = if f["supported"] == true { "yes" } else { "no" };
        assert!(line.starts_with(yes), "{line}");
        if let Some(reason) = f["reason"].as_str() {
            assert!(line.ends_with(reason), "{line} lacks the reason {reason}");
        }
    }
}

/// Where kprobe_multi is missing (this build machine, Debian's 6.1), `count` fails with the
/// kernel's reason and exit code 1; where it is there, `--duration 0s` attaches, reports and
/// detaches at once.
#[test]
fn count_explains_an_unsupported_kernel() {
    require_root!("loading BPF programs");
    let r = run(&["count", "vfs_read", "--no-fallback", "--duration", "0s", "--json"]);
    if kprobe_multi_expected() {
        assert_eq!(r.code(), Some(0), "{}", r.describe());
        let events = r.events();
        assert_eq!(events[0]["event"], "attached");
        assert_eq!(events[0]["mode"], "kprobe_multi");
        assert_eq!(events.last().unwrap()["event"], "summary");
        return;
    }
    assert_eq!(r.code(), Some(1), "{}", r.describe());
    // With --json the failure is also one `error` event on stdout, for consumers of stdout.
    let events = r.events();
    assert_eq!(events.len(), 1, "{}", r.describe());
    assert_eq!(events[0]["event"], "error");
    assert!(
        events[0]["message"].as_str().unwrap().starts_with("kprobe_multi links are not supported"),
        "{}",
        r.describe()
    );
    assert_eq!(events[0]["errno"], 95, "EOPNOTSUPP, as libbpf: {}", r.describe());
    assert!(!events[0]["hints"].as_array().unwrap().is_empty(), "{}", r.describe());
    assert!(
        r.diagnosis().starts_with("error: kprobe_multi links are not supported by this kernel"),
        "{}",
        r.describe()
    );
    if testkit::kernel_config("CONFIG_FPROBE") == Some(false) {
        assert!(r.stderr.contains("CONFIG_FPROBE"), "{}", r.describe());
    }
    assert!(r.stderr.contains("\nhint: "), "{}", r.describe());
    // Without kprobes at all (this build machine), the fallback cannot help either: both
    // reasons are given.
    if testkit::kernel_config("CONFIG_KPROBES") == Some(false) {
        let r = run(&["count", "vfs_read", "--duration", "0s"]);
        assert_eq!(r.code(), Some(1), "{}", r.describe());
        assert!(r.diagnosis().starts_with("error: this kernel can attach no kprobes\n"), "{}", r.describe());
        assert!(r.stderr.contains("CONFIG_FPROBE") && r.stderr.contains("CONFIG_KPROBES"), "{}", r.describe());
    }
}

/// `list` shows exactly what tracefs lists; where tracefs cannot be read (this build
/// machine refuses even root), it fails with the reason.
#[test]
fn list_agrees_with_available_filter_functions() {
    require_root!("reading tracefs");
    require_config!("CONFIG_DYNAMIC_FTRACE", "available_filter_functions");
    let r = run(&["list", "vfs_*", "--json"]);
    let tracefs = std::path::Path::new("/sys/kernel/tracing");
    let listing = match std::fs::read_to_string(tracefs.join("available_filter_functions")) {
        Ok(text) => text,
        Err(e) => {
            assert_eq!(r.code(), Some(1), "{}", r.describe());
            assert!(r.diagnosis().starts_with("error: reading"), "{}", r.describe());
            if e.kind() == std::io::ErrorKind::PermissionDenied {
                assert!(r.stderr.contains("hint: "), "{}", r.describe());
            }
            return;
        }
    };
    assert_eq!(r.code(), Some(0), "{}", r.describe());
    let events = r.events();
    let (summary, functions) = events.split_last().unwrap();
    let got: Vec<(String, String)> = functions
        .iter()
        .map(|f| (f["function"].as_str().unwrap().into(), f["module"].as_str().unwrap().into()))
        .collect();
    let mut want: Vec<(String, String)> = listing
        .lines()
        .filter(|l| l.starts_with("vfs_"))
        .map(|l| match l.split_once(' ') {
            Some((name, module)) => (name.into(), module.trim_matches(['[', ']']).into()),
            None => (l.into(), "vmlinux".into()),
        })
        .collect();
    want.sort();
    assert!(want.len() > 20, "{want:?}");
    assert_eq!(got, want, "list sorts by name then module and lists every copy");
    assert_eq!(summary["event"], "summary");
    assert_eq!(summary["functions"], want.len());
    assert!(summary["traceable"].as_u64().unwrap() > 10_000, "{summary}");
    // With addresses, where the kernel lists them.
    if let Ok(addrs) = std::fs::read_to_string(tracefs.join("available_filter_functions_addrs")) {
        let want: BTreeSet<(u64, String)> = addrs
            .lines()
            .filter_map(|l| l.split_once(' '))
            .filter(|(_, rest)| rest.starts_with("vfs_"))
            .map(|(a, rest)| (u64::from_str_radix(a, 16).unwrap(), rest.split(' ').next().unwrap().into()))
            .collect();
        let got: BTreeSet<(u64, String)> = functions
            .iter()
            .map(|f| {
                let a = f["address"].as_str().unwrap().trim_start_matches("0x");
                (u64::from_str_radix(a, 16).unwrap(), f["function"].as_str().unwrap().into())
            })
            .collect();
        assert_eq!(got, want);
    }
    // The text form: one line per function, then the total.
    let text = run(&["list", "vfs_*"]);
    let lines: Vec<&str> = text.stdout.lines().collect();
    assert_eq!(lines.len(), want.len() + 1, "{}", text.stdout);
    assert!(lines.last().unwrap().starts_with(&format!("{} functions (of ", want.len())));
    assert!(lines.iter().any(|l| l.ends_with(" vmlinux  vfs_read")), "{}", text.stdout);
}

// ---------------------------------------------------------------------------------------
// Attaching (in the VMs)
// ---------------------------------------------------------------------------------------

/// `count vfs_*` over a workload of 3 reads and 5 writes counts exactly those, and nothing
/// on the other vfs_ functions.
#[test]
fn count_sees_exactly_the_workload() {
    require_kprobes!();
    let w = Workload::new("cli-workload");
    let pid = std::process::id().to_string();
    let mut cli = Cli::spawn(&["count", "vfs_*", "--pid", &pid, "--duration", "3s", "--json"]);
    let attached = cli.wait_for("attached");
    w.run();
    let r = cli.finish();
    assert_eq!(r.code(), Some(0), "{}", r.describe());
    let mode = if kprobe_multi_expected() { "kprobe_multi" } else { "kprobes" };
    assert_eq!(attached["mode"], mode, "{attached}");
    // vmlinux functions under one link: counters found by entry address, not by cookie.
    let lookup = if kprobe_multi_expected() { "address" } else { "cookie" };
    assert_eq!(attached["lookup"], lookup, "{attached}");
    let n = attached["functions"].as_u64().unwrap();
    assert!(n > 20, "{attached}");
    assert!(attached["attach_ms"].as_f64().unwrap() > 0.0);

    let events = r.events();
    let summary = events.last().unwrap();
    assert_eq!(summary["event"], "summary", "{}", r.describe());
    assert_eq!(summary["end"], "duration");
    assert!(summary["detach_ms"].as_f64().is_some(), "{summary}");
    assert_eq!(summary["functions"].as_array().unwrap().len() as u64, n, "every function is in the summary");
    let calls = calls_by_name(summary);
    let called: Vec<&(String, u64)> = calls.iter().filter(|(_, c)| *c > 0).collect();
    assert_eq!(called, [&("vfs_write".to_string(), 5), &("vfs_read".to_string(), 3)], "{summary}");
    assert_eq!(summary["total_calls"], 8);
    for f in summary["functions"].as_array().unwrap() {
        assert!(f["function"].is_string() && f["module"].is_string() && f["calls"].is_u64(), "{f}");
    }
}

/// The live report in JSON: `interval` events with the calls made in each. Only vfs_write
/// is counted: waiting for an interval event is a vfs_read of this process.
#[test]
fn count_reports_intervals() {
    require_kprobes!();
    let w = Workload::new("cli-workload");
    let pid = std::process::id().to_string();
    let mut cli = Cli::spawn(&["count", "vfs_write", "--pid", &pid, "--interval", "500ms", "--json"]);
    cli.wait_for("attached");
    w.run();
    let first = cli.wait_for("interval");
    let second = cli.wait_for("interval");
    cli.signal("INT");
    let r = cli.finish();
    assert_eq!(r.code(), Some(0), "{}", r.describe());
    assert_eq!(first["calls"], 5, "{first}");
    let f = &first["functions"][0];
    assert_eq!((&f["function"], &f["calls"], &f["total"]), (&"vfs_write".into(), &5.into(), &5.into()), "{first}");
    assert!(f["rate"].as_f64().unwrap() > 0.0);
    assert!(first["interval_ms"].as_f64().unwrap() >= 400.0, "{first}");
    assert_eq!(second["calls"], 0, "only functions called in the interval are listed: {second}");
    assert_eq!(second["functions"], serde_json::json!([]));
    let summary = r.events().pop().unwrap();
    assert_eq!(summary["end"], "SIGINT");
    assert_eq!(calls_by_name(&summary), [("vfs_write".to_string(), 5)]);
}

/// SIGINT and SIGTERM end a run cleanly: exit 0, a summary, and no link left in the kernel.
#[test]
fn signals_detach_and_leave_no_link_behind() {
    require_kprobes!();
    for sig in ["INT", "TERM"] {
        let before = links();
        // --duration is a safety net: a signal not handled ends the run with "duration".
        let mut cli = Cli::spawn(&["count", "vfs_*", "--json", "--duration", "60s"]);
        cli.wait_for("attached");
        let during = links();
        let new: Vec<u32> = during.difference(&before).map(|&(_, t)| t).collect();
        let wanted_type = if kprobe_multi_expected() {
            multiprobe::raw::link_type::KPROBE_MULTI
        } else {
            multiprobe::raw::link_type::PERF_EVENT
        };
        assert!(new.contains(&wanted_type), "no new link of type {wanted_type} while attached: {new:?}");
        cli.signal(sig);
        let r = cli.finish();
        assert_eq!(r.code(), Some(0), "SIG{sig}: {}", r.describe());
        let summary = r.events().pop().unwrap();
        assert_eq!(summary["event"], "summary");
        assert_eq!(summary["end"], format!("SIG{sig}"));
        assert!(summary["total_calls"].as_u64().unwrap() > 0, "a whole system's vfs_ calls: {summary}");
        assert_eq!(links_settle_to(&before), before, "SIG{sig} left links behind");
    }
}

/// `latency` histograms: one bucket per power of two, in order, adding up to the calls,
/// with percentiles in order; with a session link where the kernel has one, and with the
/// entry/return pair (`--no-session`) everywhere.
#[test]
fn latency_histograms_are_ordered_and_add_up() {
    require_kprobes!();
    let w = Workload::new("cli-workload");
    let pid = std::process::id().to_string();
    let session = testkit::kernel_version() >= (6, 10) && kprobe_multi_expected();
    for no_session in [false, true] {
        let mut args = vec!["latency", "vfs_read", "vfs_write", "--pid", &pid, "--duration", "2s", "--json"];
        if no_session {
            args.push("--no-session");
        }
        let mut cli = Cli::spawn(&args);
        let attached = cli.wait_for("attached");
        w.run();
        let r = cli.finish();
        assert_eq!(r.code(), Some(0), "{args:?}: {}", r.describe());
        let mode = match (session && !no_session, kprobe_multi_expected()) {
            (true, _) => "session",
            (false, true) => "kprobe_multi+kretprobe_multi",
            (false, false) => "kprobes+kretprobes",
        };
        assert_eq!(attached["mode"], mode);
        let summary = r.events().pop().unwrap();
        assert_eq!(summary["event"], "summary", "{}", r.describe());
        assert_eq!(calls_by_name(&summary), [("vfs_write".to_string(), 5), ("vfs_read".to_string(), 3)]);
        for f in summary["functions"].as_array().unwrap() {
            let buckets = f["buckets"].as_array().unwrap();
            assert!(!buckets.is_empty(), "{f}");
            let mut last_high = 0;
            let mut sum = 0;
            for b in buckets {
                let (low, high, count) =
                    (b["low_ns"].as_u64().unwrap(), b["high_ns"].as_u64().unwrap(), b["count"].as_u64().unwrap());
                assert!(low >= last_high && count > 0, "{f}");
                assert!(high == 1 || high == 2 * low, "log2 buckets: {b}");
                last_high = high;
                sum += count;
            }
            assert_eq!(sum, f["calls"].as_u64().unwrap(), "{f}");
            let p = |k: &str| f[k].as_u64().unwrap();
            assert!(p("p50_ns") <= p("p90_ns") && p("p90_ns") <= p("p99_ns"), "{f}");
            assert!(p("max_ns") < p("p99_ns").max(last_high) + 1, "the slowest call is in the last bucket: {f}");
            assert!(p("max_ns") >= buckets.last().unwrap()["low_ns"].as_u64().unwrap(), "{f}");
            assert_eq!(p("avg_ns"), p("sum_ns") / p("calls"));
        }
    }
}

/// Per-function kprobes (no kprobe_multi: 6.1) take seconds to detach: the text summary of
/// count, latency and trace comes first, ending in `detaching...`, and `Detached in` last;
/// under kprobe_multi the summary's own line carries the detach time.
#[test]
fn detach_time_follows_the_text_summary() {
    require_kprobes!();
    let pid = std::process::id().to_string();
    for cmd in ["count", "latency", "trace"] {
        let r = run(&[cmd, "vfs_fsync", "--pid", &pid, "--duration", "1s"]);
        assert_eq!(r.code(), Some(0), "{cmd}: {}", r.describe());
        let out = &r.stdout;
        if kprobe_multi_expected() {
            assert!(out.contains(", detached in ") && !out.contains("Detached in"), "{cmd}: {}", r.describe());
            continue;
        }
        let summary = out.find("; detaching...\n").unwrap_or_else(|| panic!("{cmd}: {}", r.describe()));
        let last = out.lines().last().unwrap_or_default();
        assert!(last.starts_with("Detached in ") && last.ends_with('.'), "{cmd}: {}", r.describe());
        assert!(out.rfind("Detached in ").unwrap() > summary, "{cmd}: {}", r.describe());
        assert!(!out.contains(", detached in "), "{cmd}: {}", r.describe());
    }
}

/// A pattern matching nothing is one error line with hints, exit 1.
#[test]
fn a_pattern_matching_nothing_is_explained() {
    require_kprobes!();
    if std::fs::File::open("/sys/kernel/tracing/available_filter_functions").is_err() {
        return; // Not readable (the build machine): list_agrees_... checks that error.
    }
    let r = run(&["count", "no_such_function_*", "--duration", "0s"]);
    assert_eq!(r.code(), Some(1), "{}", r.describe());
    assert!(
        r.diagnosis().starts_with("error: pattern `no_such_function_*` matches no traceable function\nhint: "),
        "{}",
        r.describe()
    );
}
