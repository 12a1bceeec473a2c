//! `multiprobe trace` as shipped (`/bin/multiprobe`), against `multiprobe count` on the same
//! function and against bpftrace: what each adds to a call, and the events per second each
//! reader takes with none lost.
//!
//! The loop is the per-call part's `getppid` (its kernel entry `__do_sys_getppid` or
//! `__x64_sys_getppid`), `calls` times, in this process; the CLI runs with `--pid` of this
//! process and `--json`, its output read from a pipe by a thread of the benchmark that only
//! counts lines (the cheapest consumer a program reading `trace --json` can be). Per
//! repetition, rotated: no probe, `count`, `trace`, and where the VM has bpftrace (the xtask
//! copies Debian's bpftrace and its libraries in when the host has the package) `bpftrace`
//! doing what trace does (entry time in a map, one line at the return with duration and
//! return value) and `bpftrace-entry` (`kprobe:F { printf(pid, tid, comm) }`, the usual
//! one-liner, less work). For the per-call cost to be the whole event path's, every tool
//! gets room for every event of a run (trace `--buffer-size 16M`, bpftrace 4096 pages per
//! CPU) and is stopped only once its output has caught up (bpftrace drops what its buffer
//! still holds when stopped): the summaries say whether any event was lost anyway.
//!
//! Then, each tool as it ships (trace's ring, bpftrace's 64 pages per CPU), the same loop
//! paced at known rates (a call every 1/rate s, spinning between calls), `calls` calls at
//! each, each tool again stopped once caught up: where each reader starts to lose events.
//! bpftrace's `Lost N events` lines are summed; calls neither shown nor reported lost are
//! silent drops.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use multiprobe::symbols::{Glob, TraceableFunctions, syscall_function};
use serde_json::{Value, json};

use crate::report::{self, Series};
use crate::{Config, rotated, timed};

const CLI: &str = "/bin/multiprobe";
const BPFTRACE: &str = "/usr/bin/bpftrace";

/// The CLI attached, its output being read.
struct Running {
    child: Child,
    reader: JoinHandle<(u64, Option<Value>)>,
    /// Event lines read so far, for waiting until the tool has caught up.
    seen: Arc<AtomicU64>,
}

/// Starts `multiprobe COMMAND FUNCTION --pid <self> --json [EXTRA...]` and waits for its
/// `attached` line; the rest is counted by a thread, which keeps the last line (the summary).
fn start(command: &str, function: &str, extra: &[&str]) -> Result<Running, String> {
    let pid = std::process::id().to_string();
    let mut child = Command::new(CLI)
        .args([command, function, "--pid", &pid, "--json"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("spawning {CLI}: {e}"))?;
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    if out.read_line(&mut line).map_err(|e| e.to_string())? == 0 || !line.contains("\"attached\"") {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!("multiprobe {command} {function} did not attach: {line}"));
    }
    let seen = Arc::new(AtomicU64::new(0));
    let counter = seen.clone();
    let reader = std::thread::spawn(move || {
        let (mut lines, mut last) = (0u64, String::new());
        for l in out.lines() {
            let Ok(l) = l else { break };
            lines += 1;
            counter.store(lines, Ordering::Relaxed);
            last = l;
        }
        (lines, serde_json::from_str(&last).ok())
    });
    Ok(Running { child, reader, seen })
}

/// What bpftrace is asked to do per call of the function by this process.
#[derive(Clone, Copy, PartialEq)]
enum Script {
    /// `kprobe:F { printf(pid, tid, comm) }`: the entry only, as bpftrace users write it.
    Entry,
    /// What `trace` shows, the bpftrace way: the entry time kept in a map by thread id, and
    /// at the return one line with the times, ids, comm, duration and return value.
    EntryReturn,
}

impl Script {
    fn probes(self, function: &str, pid: u32) -> String {
        match self {
            Script::Entry => format!("kprobe:{function} /pid == {pid}/ {{ printf(\"%d %d %s\\n\", pid, tid, comm); }}"),
            Script::EntryReturn => format!(
                "kprobe:{function} /pid == {pid}/ {{ @start[tid] = nsecs; }} \
                 kretprobe:{function} /@start[tid]/ {{ printf(\"%llu %d %d %s %llu %d\\n\", @start[tid], pid, tid, \
                 comm, nsecs - @start[tid], retval); delete(@start[tid]); }}"
            ),
        }
    }
}

/// bpftrace's perf buffer per CPU as it ships (pages), and as the per-call comparison sets
/// it (`BPFTRACE_PERF_RB_PAGES`): 16 MiB, room for every event of a run, so that bpftrace,
/// like `trace --buffer-size 16M`, delivers every event and its cost is the whole path's.
const BPFTRACE_DEFAULT_PAGES: u32 = 64;
const ROOM_FOR_A_RUN_PAGES: u32 = 4096;
const ROOM_FOR_A_RUN: &str = "16M";

/// bpftrace running `script` for `function`, calls of this process only, once it has
/// attached; the reader counts lines and sums its `Lost N events` reports.
///
/// Attached is when its `BEGIN` probe has run (bpftrace triggers it after attaching the
/// others). Its output to a pipe is fully buffered, as a consumer of bpftrace sees it, so
/// `BEGIN` prints 100 long `ready` lines, more than the buffer holds, to be seen at once.
fn start_bpftrace(function: &str, script: Script, pages: u32) -> Result<Running, String> {
    let pad = "-".repeat(100);
    let program = format!(
        "BEGIN {{ unroll(100) {{ printf(\"ready{pad}\\n\"); }} }} {}",
        script.probes(function, std::process::id())
    );
    let mut child = Command::new(BPFTRACE)
        .args(["-e", &program])
        .env("LD_LIBRARY_PATH", "/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu")
        .env("BPFTRACE_PERF_RB_PAGES", pages.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawning {BPFTRACE}: {e}"))?;
    let mut err = child.stderr.take().unwrap();
    let errors = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut s);
        s
    });
    let out = BufReader::new(child.stdout.take().unwrap());
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let seen = Arc::new(AtomicU64::new(0));
    let counter = seen.clone();
    let reader = std::thread::spawn(move || {
        let (mut lines, mut lost) = (0u64, 0u64);
        for l in out.lines() {
            let Ok(l) = l else { break };
            if l.starts_with("ready") {
                let _ = ready_tx.send(());
            } else if let Some(n) = lost_events(&l) {
                lost += n;
            } else if l.starts_with(|c: char| c.is_ascii_digit()) {
                // An event (both scripts print a number first); not the blank lines and
                // map dumps bpftrace prints at exit.
                lines += 1;
                counter.store(lines, Ordering::Relaxed);
            }
        }
        drop(ready_tx);
        let errors = errors.join().unwrap_or_default();
        lost += errors.lines().filter_map(lost_events).sum::<u64>();
        (lines, Some(json!({"event": "summary", "events": lines, "lost": lost, "stderr": errors.trim()})))
    });
    // Under emulation bpftrace takes minutes to start (LLVM, the kernel's BTF).
    if ready_rx.recv_timeout(Duration::from_secs(600)).is_err() {
        let _ = child.kill();
        let _ = child.wait();
        let summary = reader.join().ok().and_then(|(_, s)| s).unwrap_or_default();
        return Err(format!("bpftrace did not attach: {}", summary["stderr"]));
    }
    Ok(Running { child, reader, seen })
}

/// `Lost 123 events` (bpftrace's report of a full perf buffer).
fn lost_events(line: &str) -> Option<u64> {
    line.trim().strip_prefix("Lost ")?.strip_suffix(" events")?.parse().ok()
}

/// Waits until the tool has printed what its buffer held: no new line for 3 s (output to a
/// pipe comes in blocks, so the last lines may only come at exit), at most 5 minutes.
/// bpftrace drops what its perf buffer still holds when it is stopped, and the per-call runs
/// compare tools that deliver every event.
fn drain(r: &Running) {
    let started = Instant::now();
    let (mut last, mut since) = (r.seen.load(Ordering::Relaxed), Instant::now());
    while since.elapsed() < Duration::from_secs(3) && started.elapsed() < Duration::from_secs(300) {
        std::thread::sleep(Duration::from_millis(200));
        let now = r.seen.load(Ordering::Relaxed);
        if now != last {
            (last, since) = (now, Instant::now());
        }
    }
}

/// SIGINT, then the lines it printed after `attached` and its summary.
fn stop(mut r: Running) -> Result<(u64, Value), String> {
    let pid = r.child.id().to_string();
    let _ = Command::new("kill").args(["-INT", &pid]).status();
    let status = r.child.wait().map_err(|e| e.to_string())?;
    let (lines, last) = r.reader.join().map_err(|_| "the reader panicked".to_string())?;
    let summary = last.filter(|v| v["event"] == "summary").ok_or_else(|| format!("no summary ({status})"))?;
    Ok((lines, summary))
}

/// Offered rates of the paced runs, calls (so events) per second.
const RATES: [u64; 4] = [25_000, 50_000, 100_000, 200_000];

/// `n` getppid calls, one every `1 / rate` s from the start (spinning in between; late
/// calls are not made up for by bursts beyond the loop's own speed).
fn paced_loop(n: u64, rate: u64) {
    let start = Instant::now();
    for i in 0..n {
        let due = start + Duration::from_nanos(i * 1_000_000_000 / rate);
        while Instant::now() < due {
            std::hint::spin_loop();
        }
        std::hint::black_box(std::os::unix::process::parent_id());
    }
}

fn getppid_loop(n: u64) {
    for _ in 0..n {
        std::hint::black_box(std::os::unix::process::parent_id());
    }
}

pub fn run(config: &Config) {
    if let Err(e) = run_inner(config) {
        report::emit_error("trace", "", "", &e);
    }
}

fn run_inner(config: &Config) -> Result<(), String> {
    let listing = TraceableFunctions::read().map_err(|e| e.to_string())?;
    let wrapper = syscall_function("getppid").unwrap_or_else(|_| "__x64_sys_getppid".into());
    let function = [wrapper.as_str(), "__do_sys_getppid"]
        .iter()
        .find_map(|n| listing.matching(&Glob::new(n)).into_iter().next())
        .ok_or("getppid's kernel function is not traceable")?
        .name;
    let case = "getppid";
    let mut with_bpftrace = std::path::Path::new(BPFTRACE).exists();
    if !with_bpftrace {
        report::emit_error("trace", case, "bpftrace", &format!("no {BPFTRACE} in this VM"));
    }
    // bpftrace-entry: the entry only, as bpftrace users write it; bpftrace: what trace
    // shows (entry time, duration, return value). Both with room for every event, as trace.
    let imps: &[&str] = if with_bpftrace {
        &["none", "count", "trace", "bpftrace", "bpftrace-entry"]
    } else {
        &["none", "count", "trace"]
    };
    let mut samples: Vec<Vec<u64>> = vec![Vec::new(); imps.len()];
    getppid_loop(config.calls / 10);
    for rep in 0..config.reps {
        for imp in rotated(imps, rep) {
            if imp.starts_with("bpftrace") && !with_bpftrace {
                continue;
            }
            report::progress(&format!("trace vs count: {imp}, run {}", rep + 1));
            let i = imps.iter().position(|x| *x == imp).unwrap();
            let script = if imp == "bpftrace" { Script::EntryReturn } else { Script::Entry };
            let running = match imp {
                "none" => None,
                // bpftrace failing leaves multiprobe's numbers standing.
                "bpftrace" | "bpftrace-entry" => match start_bpftrace(&function, script, ROOM_FOR_A_RUN_PAGES) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        report::emit_error("trace", case, imp, &e);
                        with_bpftrace = false;
                        continue;
                    }
                },
                "trace" => Some(start(imp, &function, &["--buffer-size", ROOM_FOR_A_RUN])?),
                _ => Some(start(imp, &function, &[])?),
            };
            let ((), ns) = timed(|| getppid_loop(config.calls));
            samples[i].push(ns * 1000 / config.calls);
            let Some(running) = running else { continue };
            drain(&running);
            let (lines, summary) = stop(running)?;
            let secs = ns as f64 / 1e9;
            let mut info = json!({
                "group": "info", "case": format!("trace {case}"), "impl": imp, "rep": rep,
                "function": function, "calls_made": config.calls, "loop_s": secs,
                "offered_per_s": config.calls as f64 / secs, "lines": lines,
            });
            if imp != "count" {
                let events = summary["events"].as_u64().unwrap_or(0);
                info["events"] = json!(events);
                info["lost"] = summary["lost"].clone();
                info["missed"] = summary["missed"].clone();
                info["events_per_s"] = json!(events as f64 / secs);
            } else {
                info["counted"] = summary["total_calls"].clone();
            }
            report::emit_value(&info);
        }
    }
    for (imp, s) in imps.iter().zip(samples) {
        report::emit(&Series { group: "trace", case, imp, matches: Some(1), unit: "ps", samples: s });
    }
    // Paced: each tool as it ships (trace's 4 MiB ring, bpftrace's 64 pages per CPU), so
    // the rate where events start to be lost is the reader's.
    let paced: &[&str] = if with_bpftrace { &["trace", "bpftrace"] } else { &["trace"] };
    for (rate, imp) in RATES.iter().flat_map(|&r| paced.iter().map(move |&i| (r, i))) {
        report::progress(&format!("{imp} at {rate} calls/s"));
        let running = if imp == "bpftrace" {
            start_bpftrace(&function, Script::EntryReturn, BPFTRACE_DEFAULT_PAGES)?
        } else {
            start("trace", &function, &[])?
        };
        let ((), ns) = timed(|| paced_loop(config.calls, rate));
        drain(&running);
        let (_, summary) = stop(running)?;
        let events = summary["events"].as_u64().unwrap_or(0);
        report::emit_value(&json!({
            "group": "info", "case": "trace paced", "impl": imp, "function": function,
            "rate": rate, "calls_made": config.calls, "loop_s": ns as f64 / 1e9,
            "made_per_s": config.calls as f64 / (ns as f64 / 1e9), "events": events,
            "lost": summary["lost"].clone(), "missed": summary["missed"].clone(),
        }));
    }
    Ok(())
}
