//! `count --by` end to end, in the VMs: a thread of this process named `mp-by-test` makes 3
//! pread(2) and 5 pwrite(2) calls on a file of its own (one vfs_read or vfs_write each), and
//! its name, pid, tid and a kernel stack through the syscall's entry must show up with
//! exactly those counts; `--folded` must be read by a flame-graph tool (inferno); a table
//! too small must report the calls it could not keep.
//!
//! `--pid` limits counting to this process. While attached, the test's main thread reads
//! nothing (see cli.rs): it waits for the CLI's `attached` line (or its stderr line), runs the
//! workload thread, waits for the CLI to exit, and only then reads the rest.

mod common;

use std::process::Command;

use common::{Cli, Stream, Workload, bin, in_named_thread, require_kprobes};
use serde_json::Value;
use testkit::{require_config, require_root};

/// The workload thread's name, which the kernel keeps as its comm.
const COMM: &str = "mp-by-test";

/// Runs 3 preads and 5 pwrites in a thread named `mp-by-test`; returns its tid.
fn workload() -> u32 {
    let w = Workload::new("breakdown");
    in_named_thread(COMM, || w.run())
}

fn rows(summary: &Value) -> Vec<Value> {
    summary["breakdown"].as_array().unwrap_or_else(|| panic!("no breakdown: {summary}")).clone()
}

/// `--by comm --by pid --by tid --by cpu`: one key per function for the workload thread,
/// with its name, this pid, its tid and a CPU, and exactly its calls, in the summary and,
/// spread over them, in the `interval` events.
#[test]
fn breakdown_by_comm_pid_tid_cpu_counts_the_workload() {
    require_kprobes!();
    let pid = std::process::id();
    let p = pid.to_string();
    let mut cli = Cli::spawn(&[
        "count",
        "vfs_read",
        "vfs_write",
        "--pid",
        &p,
        "--duration",
        "2s",
        "--json",
        "--by",
        "comm",
        "--by",
        "pid",
        "--by",
        "tid",
        "--by",
        "cpu",
        "--interval",
        "500ms",
    ]);
    cli.wait_for("attached");
    let tid = workload();
    let r = cli.finish();
    assert!(r.status.success(), "{}", r.describe());
    let summary = r.summary();
    let rows = rows(&summary);
    for (function, calls) in [("vfs_read", 3), ("vfs_write", 5)] {
        let mine: Vec<&Value> = rows.iter().filter(|r| r["function"] == function && r["comm"] == COMM).collect();
        assert!(!mine.is_empty(), "no {COMM} row for {function}: {summary}");
        let total: u64 = mine.iter().map(|r| r["calls"].as_u64().unwrap()).sum();
        assert_eq!(total, calls, "{function}: {summary}");
        for r in mine {
            assert_eq!(r["pid"], pid, "{r}");
            assert_eq!(r["tid"], tid, "{r}");
            assert!(r["cpu"].as_u64().unwrap() < 64, "{r}");
            assert_eq!(r["module"], "vmlinux");
        }
    }
    // Nothing else of this process called them while attached; no key was lost.
    assert_eq!(rows.len() as u64, rows.iter().filter(|r| r["comm"] == COMM).count() as u64, "{summary}");
    assert_eq!(summary["total_calls"], 8, "{summary}");
    assert_eq!(summary["keys_not_fit_calls"], 0);
    // Each interval event carries the breakdown of its own calls: together, the workload's.
    let in_intervals: u64 = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["event"] == "interval")
        .flat_map(|e| e["breakdown"].as_array().cloned().unwrap_or_else(|| panic!("no breakdown: {e}")))
        .filter(|row| row["comm"] == COMM)
        .map(|row| row["calls"].as_u64().unwrap())
        .sum();
    assert_eq!(in_intervals, 8, "{}", r.describe());
}

/// A thread that renames itself between reads (through /proc/thread-self/comm, as prctl
/// would) splits its calls between its names exactly: the kernel side remembers each CPU's
/// last key, and a changed name must be a new key, never the last one's.
#[test]
fn breakdown_by_comm_follows_a_rename() {
    require_kprobes!();
    let p = std::process::id().to_string();
    let mut cli = Cli::spawn(&["count", "vfs_read", "--pid", &p, "--duration", "2s", "--json", "--by", "comm"]);
    cli.wait_for("attached");
    let path = std::env::temp_dir().join(format!("multiprobe-breakdown-rename-{}", std::process::id()));
    std::fs::write(&path, b"rename").unwrap();
    let file = std::fs::File::open(&path).unwrap();
    std::thread::Builder::new()
        .name("mp-by-first".into())
        .spawn(move || {
            use std::os::unix::fs::FileExt;
            let mut buf = [0u8; 4];
            // A write to the comm file, not a read: vfs_read sees only the preads.
            for (name, reads) in [("mp-by-first", 4), ("mp-by-second", 6), ("mp-by-first", 2)] {
                std::fs::write("/proc/thread-self/comm", name).unwrap();
                for _ in 0..reads {
                    file.read_at(&mut buf, 0).unwrap();
                }
            }
        })
        .unwrap()
        .join()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    let r = cli.finish();
    assert!(r.status.success(), "{}", r.describe());
    let summary = r.summary();
    let rows = rows(&summary);
    let calls =
        |comm: &str| -> u64 { rows.iter().filter(|r| r["comm"] == comm).map(|r| r["calls"].as_u64().unwrap()).sum() };
    assert_eq!((calls("mp-by-first"), calls("mp-by-second")), (6, 6), "{summary}");
}

/// `--by kstack --by comm`: the workload's reads come through pread64's syscall entry, each
/// frame `name+0xoff`, innermost first; the text table shows the same stack.
#[test]
fn breakdown_by_kstack_shows_the_syscall_path() {
    require_kprobes!();
    let p = std::process::id().to_string();
    let mut cli =
        Cli::spawn(&["count", "vfs_read", "--pid", &p, "--duration", "2s", "--json", "--by", "kstack", "--by", "comm"]);
    cli.wait_for("attached");
    workload();
    let r = cli.finish();
    assert!(r.status.success(), "{}", r.describe());
    let summary = r.summary();
    let rows = rows(&summary);
    let mine: Vec<&Value> = rows.iter().filter(|r| r["comm"] == COMM).collect();
    assert_eq!(mine.iter().map(|r| r["calls"].as_u64().unwrap()).sum::<u64>(), 3, "{summary}");
    assert_eq!(summary["lost_stack_calls"], 0, "{summary}");
    for row in mine {
        let frames: Vec<&str> = row["stack"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
        assert!(frames.len() >= 3, "{row}");
        assert!(frames.iter().all(|f| f.contains("+0x")), "every frame symbolized: {frames:?}");
        let at = |name: &str| frames.iter().position(|f| f.starts_with(name));
        let pread = frames.iter().position(|f| f.contains("sys_pread64")).unwrap_or_else(|| panic!("{frames:?}"));
        let entry = at("do_syscall_64").unwrap_or_else(|| panic!("{frames:?}"));
        assert!(pread < entry, "innermost first: {frames:?}");
    }
}

/// `--folded`: `comm;outermost;...;vfs_read COUNT` lines that inferno turns into a flame
/// graph, with the workload's stack counted 3 times.
#[test]
fn breakdown_folded_stacks_make_a_flame_graph() {
    require_kprobes!();
    let p = std::process::id().to_string();
    let mut cli = Cli::spawn(&[
        "count",
        "vfs_read",
        "--pid",
        &p,
        "--duration",
        "2s",
        "--folded",
        "--by",
        "kstack",
        "--by",
        "comm",
    ]);
    cli.wait_for_line(Stream::Stderr, |l| l.starts_with("counting calls"));
    workload();
    let r = cli.finish();
    assert!(r.status.success(), "{}", r.describe());
    let mine: Vec<&str> = r.stdout.lines().filter(|l| l.starts_with(&format!("{COMM};"))).collect();
    let calls: u64 = mine.iter().map(|l| l.rsplit_once(' ').unwrap().1.parse::<u64>().unwrap()).sum();
    assert_eq!(calls, 3, "{}", r.describe());
    for line in &mine {
        let (stack, _) = line.rsplit_once(' ').unwrap();
        assert!(stack.ends_with(";vfs_read"), "the probed function is the leaf: {line}");
        assert!(stack.contains(";do_syscall_64;"), "outermost first, through the syscall entry: {line}");
    }
    let mut svg = Vec::new();
    let mut options = inferno::flamegraph::Options::default();
    inferno::flamegraph::from_lines(&mut options, r.stdout.lines(), &mut svg)
        .unwrap_or_else(|e| panic!("inferno refused the folded stacks ({e}):\n{}", r.stdout));
    let svg = String::from_utf8(svg).unwrap();
    assert!(svg.contains(COMM) && svg.contains("vfs_read"), "{svg}");
}

/// A table of one key and a stack map of one stack: the first function's key fits, the
/// second's does not and its stack is lost; both counted, the function totals exact.
#[test]
fn breakdown_counts_keys_that_did_not_fit_and_lost_stacks() {
    require_kprobes!();
    let p = std::process::id().to_string();
    let mut cli = Cli::spawn(&[
        "count",
        "vfs_read",
        "vfs_write",
        "--pid",
        &p,
        "--duration",
        "2s",
        "--json",
        "--by",
        "kstack",
        "--max-keys",
        "1",
    ]);
    cli.wait_for("attached");
    workload();
    let r = cli.finish();
    assert!(r.status.success(), "{}", r.describe());
    let summary = r.summary();
    let rows = rows(&summary);
    assert_eq!(rows.len(), 1, "{summary}");
    assert_eq!((&rows[0]["function"], &rows[0]["calls"]), (&"vfs_read".into(), &3.into()), "{summary}");
    assert_eq!(summary["keys_not_fit_calls"], 5, "{summary}");
    assert_eq!(summary["lost_stack_calls"], 5, "{summary}");
    let calls = |name: &str| {
        summary["functions"].as_array().unwrap().iter().find(|f| f["function"] == name).unwrap()["calls"].clone()
    };
    assert_eq!((calls("vfs_read"), calls("vfs_write")), (3.into(), 5.into()), "{summary}");
}

/// Usage errors name the fix: --folded without stacks, or with keys it has no place for.
#[test]
fn breakdown_folded_refuses_keys_it_cannot_print() {
    for (args, want) in [
        (&["count", "vfs_read", "--folded", "--by", "comm"][..], "needs --by kstack"),
        (&["count", "vfs_read", "--folded", "--by", "kstack", "--by", "pid"], "`--by pid`"),
    ] {
        let out = Command::new(bin()).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(want) && stderr.contains("hint: "), "{args:?}: {stderr}");
    }
    let out = Command::new(bin()).args(["count", "vfs_read", "--max-keys", "0", "--by", "pid"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `latency --interval --timestamp --unit us --total`: the intervals' histograms add up to
/// the workload's 5 writes, each with the wall clock, bounds in whole microseconds, and a
/// total equal to the sum of its functions; the summary covers the whole run. Only vfs_write
/// is timed: waiting for the CLI's output is a vfs_read of this process.
#[test]
fn breakdown_latency_intervals_units_and_total() {
    require_kprobes!();
    let p = std::process::id().to_string();
    let mut cli = Cli::spawn(&[
        "latency",
        "vfs_write",
        "--pid",
        &p,
        "--duration",
        "2s",
        "--interval",
        "500ms",
        "--json",
        "--timestamp",
        "--unit",
        "us",
        "--total",
    ]);
    cli.wait_for("attached");
    workload();
    let r = cli.finish();
    assert!(r.status.success(), "{}", r.describe());
    let events: Vec<Value> = r.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let intervals: Vec<&Value> = events.iter().filter(|e| e["event"] == "interval").collect();
    assert!(!intervals.is_empty(), "{}", r.describe());
    let mut calls = 0;
    for i in &intervals {
        let stamp = i["timestamp"].as_str().unwrap_or_else(|| panic!("{i}"));
        assert!(stamp.len() == 20 && stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T', "{stamp}");
        assert_eq!(i["unit"], "us", "{i}");
        let functions = i["functions"].as_array().unwrap();
        let sum: u64 = functions.iter().map(|f| f["calls"].as_u64().unwrap()).sum();
        assert_eq!(i["total"]["calls"], sum, "{i}");
        for f in functions {
            assert!(f.get("max_ns").is_none(), "an interval's max is not known: {f}");
            for b in f["buckets"].as_array().unwrap() {
                assert_eq!(b["high_ns"].as_u64().unwrap() % 1000, 0, "buckets in us: {b}");
            }
        }
        calls += sum;
    }
    assert_eq!(calls, 5, "{}", r.describe());
    let summary = r.summary();
    assert_eq!(summary["unit"], "us");
    assert_eq!(summary["total"]["calls"], 5, "{summary}");
    assert_eq!(summary["functions"][0]["calls"], 5, "{summary}");
    assert!(summary["functions"][0]["max_ns"].as_u64().unwrap() > 0, "{summary}");
}

/// `list -v`: prototypes from the kernel's BTF, in text and JSON (named `breakdown_` to run
/// with this file's filter).
#[test]
fn breakdown_list_verbose_shows_prototypes() {
    require_root!("reading tracefs");
    require_config!("CONFIG_DEBUG_INFO_BTF", "kernel BTF");
    if !std::path::Path::new("/sys/kernel/tracing/available_filter_functions").exists() || !testkit::in_vm() {
        return; // the build machine cannot read tracefs: cli.rs checks that error
    }
    let want = "ssize_t vfs_read(struct file *file, char *buf, size_t count, loff_t *pos)";
    let out = Command::new(bin()).args(["list", "vfs_read", "-v", "--json"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let first: Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    assert_eq!(first["prototype"], want, "{stdout}");
    let text = Command::new(bin()).args(["list", "vfs_read", "-v"]).output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.lines().next().unwrap().ends_with(&format!("  {want}")), "{text}");
    let plain = Command::new(bin()).args(["list", "vfs_read", "--json"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&plain.stdout).contains("prototype"), "only with -v");
}

/// Completion of function names: in the VMs, from the listing an earlier run kept (kernels
/// from 6.5, whose listing has addresses, keep it; nothing is printed elsewhere, never a
/// tracefs read); natively, the bash script's glue offers what the hidden command prints.
#[test]
fn breakdown_completion_of_function_names() {
    if testkit::in_vm() {
        let list = Command::new(bin()).args(["list", "vfs_read"]).output().unwrap();
        assert!(list.status.success(), "{}", String::from_utf8_lossy(&list.stderr));
        let out = Command::new(bin()).args(["__complete-functions", "vfs_rea"]).output().unwrap();
        assert!(out.status.success());
        let names: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(String::from).collect();
        if testkit::kernel_version() >= (6, 5) {
            assert!(names.contains(&"vfs_read".to_string()), "{names:?}");
            assert!(names.iter().all(|n| n.starts_with("vfs_rea")), "{names:?}");
        } else {
            assert!(names.is_empty(), "no kept listing before 6.5: {names:?}");
        }
        return;
    }
    let script = Command::new(bin()).args(["completions", "bash"]).output().unwrap();
    let script = String::from_utf8(script.stdout).unwrap();
    // `multiprobe` stands for the binary, printing what the hidden command would.
    let check = format!(
        "{script}\nmultiprobe() {{ printf 'vfs_read\\nvfs_readv\\n'; }}\n\
         COMP_WORDS=(multiprobe count vfs_rea); COMP_CWORD=2; _multiprobe_functions; echo \"${{COMPREPLY[*]}}\"\n\
         COMP_WORDS=(multiprobe count --duration); COMP_CWORD=2; COMPREPLY=(); _multiprobe_functions; echo \"[${{COMPREPLY[*]}}]\"\n"
    );
    let out = match Command::new("bash").args(["-c", &check]).output() {
        Ok(out) => out,
        Err(_) => return, // no bash on this machine: nothing to check the script with
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.first(), Some(&"vfs_read vfs_readv"), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(!lines.get(1).unwrap_or(&"").contains("vfs_read"), "options are not completed as functions: {stdout}");
}

/// `latency --by comm --by pid`: the workload thread's calls get histograms of their own
/// with its name and this pid; with a table of one key, the second function's calls are
/// counted as not fitting (and still in its own histogram).
#[test]
fn breakdown_latency_by_comm_and_pid() {
    require_kprobes!();
    let pid = std::process::id();
    let p = pid.to_string();
    for max_keys in ["1024", "1"] {
        let mut cli = Cli::spawn(&[
            "latency",
            "vfs_read",
            "vfs_write",
            "--pid",
            &p,
            "--duration",
            "2s",
            "--json",
            "--by",
            "comm",
            "--by",
            "pid",
            "--max-keys",
            max_keys,
        ]);
        cli.wait_for("attached");
        workload();
        let r = cli.finish();
        assert!(r.status.success(), "{}", r.describe());
        let summary = r.summary();
        let rows = rows(&summary);
        let calls =
            |f: &str| -> u64 { rows.iter().filter(|r| r["function"] == f).map(|r| r["calls"].as_u64().unwrap()).sum() };
        for row in &rows {
            assert_eq!((&row["comm"], &row["pid"]), (&COMM.into(), &pid.into()), "{summary}");
            assert!(!row["buckets"].as_array().unwrap().is_empty(), "{row}");
        }
        if max_keys == "1" {
            assert_eq!((calls("vfs_read"), calls("vfs_write")), (3, 0), "{summary}");
            assert_eq!(summary["keys_not_fit_calls"], 5, "{summary}");
        } else {
            assert_eq!((calls("vfs_read"), calls("vfs_write")), (3, 5), "{summary}");
            assert_eq!(summary["keys_not_fit_calls"], 0, "{summary}");
        }
        let per_function: u64 =
            summary["functions"].as_array().unwrap().iter().map(|f| f["calls"].as_u64().unwrap()).sum();
        assert_eq!(per_function, 8, "the functions' histograms hold every call: {summary}");
    }
}
