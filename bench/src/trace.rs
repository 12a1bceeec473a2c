//! `multiprobe trace` as shipped (`/bin/multiprobe`), against `multiprobe count` on the same
//! function: what each adds to a call, and the events per second the trace reader takes
//! with none lost.
//!
//! The loop is the per-call part's `getppid` (its kernel entry `__do_sys_getppid` or
//! `__x64_sys_getppid`), `calls` times, in this process; the CLI runs with `--pid` of this
//! process and `--json`, its output read from a pipe by a thread of the benchmark that only
//! counts lines (the cheapest consumer a program reading `trace --json` can be). Per
//! repetition, rotated: no probe, `count`, `trace`. For `trace`, its summary says how many
//! events it showed and how many it lost: the loop's call rate is the event rate offered,
//! and `events / loop time` with `lost` 0 is a rate the reader sustains. Then, `trace`
//! alone, the same loop paced at known rates (a call every 1/rate s, spinning between
//! calls), `calls` calls at each: where the reader starts to lose events.
//!
//! bpftrace does the same where the VM has it (the xtask copies Debian's bpftrace and its
//! libraries in when the host has the package): `kprobe:FUNCTION /pid == PID/ { printf("%d
//! %d %s\n", pid, tid, comm); }`, its output counted the same way and its `Lost N events`
//! lines summed.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
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
}

/// Starts `multiprobe COMMAND FUNCTION --pid <self> --json` and waits for its `attached`
/// line; the rest is counted by a thread, which keeps the last line (the summary).
fn start(command: &str, function: &str) -> Result<Running, String> {
    let pid = std::process::id().to_string();
    let mut child = Command::new(CLI)
        .args([command, function, "--pid", &pid, "--json"])
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
    let reader = std::thread::spawn(move || {
        let (mut lines, mut last) = (0u64, String::new());
        for l in out.lines() {
            let Ok(l) = l else { break };
            lines += 1;
            last = l;
        }
        (lines, serde_json::from_str(&last).ok())
    });
    Ok(Running { child, reader })
}

/// bpftrace printing one line per call of `function` by this process, once it has
/// attached; the reader counts lines and sums its `Lost N events` reports.
///
/// Attached is when its `BEGIN` probe has run (bpftrace triggers it after attaching the
/// others). Its output to a pipe is fully buffered, as a consumer of bpftrace sees it, so
/// `BEGIN` prints 100 long `ready` lines, more than the buffer holds, to be seen at once.
fn start_bpftrace(function: &str) -> Result<Running, String> {
    let pad = "-".repeat(100);
    let program = format!(
        "BEGIN {{ unroll(100) {{ printf(\"ready{pad}\\n\"); }} }} \
         kprobe:{function} /pid == {}/ {{ printf(\"%d %d %s\\n\", pid, tid, comm); }}",
        std::process::id()
    );
    let mut child = Command::new(BPFTRACE)
        .args(["-e", &program])
        .env("LD_LIBRARY_PATH", "/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu")
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
    let reader = std::thread::spawn(move || {
        let (mut lines, mut lost) = (0u64, 0u64);
        for l in out.lines() {
            let Ok(l) = l else { break };
            if l.starts_with("ready") {
                let _ = ready_tx.send(());
            } else if let Some(n) = lost_events(&l) {
                lost += n;
            } else if !l.starts_with("Attaching") {
                lines += 1;
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
    Ok(Running { child, reader })
}

/// `Lost 123 events` (bpftrace's report of a full perf buffer).
fn lost_events(line: &str) -> Option<u64> {
    line.trim().strip_prefix("Lost ")?.strip_suffix(" events")?.parse().ok()
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
    let imps: &[&str] =
        if with_bpftrace { &["none", "count", "trace", "bpftrace"] } else { &["none", "count", "trace"] };
    let mut samples: Vec<Vec<u64>> = vec![Vec::new(); imps.len()];
    getppid_loop(config.calls / 10);
    for rep in 0..config.reps {
        for imp in rotated(imps, rep) {
            if imp == "bpftrace" && !with_bpftrace {
                continue;
            }
            report::progress(&format!("trace vs count: {imp}, run {}", rep + 1));
            let i = imps.iter().position(|x| *x == imp).unwrap();
            let running = match imp {
                "none" => None,
                // bpftrace failing leaves multiprobe's numbers standing.
                "bpftrace" => match start_bpftrace(&function) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        report::emit_error("trace", case, "bpftrace", &e);
                        with_bpftrace = false;
                        continue;
                    }
                },
                _ => Some(start(imp, &function)?),
            };
            let ((), ns) = timed(|| getppid_loop(config.calls));
            samples[i].push(ns * 1000 / config.calls);
            let Some(running) = running else { continue };
            let (lines, summary) = stop(running)?;
            let secs = ns as f64 / 1e9;
            let mut info = json!({
                "group": "info", "case": format!("trace {case}"), "impl": imp, "rep": rep,
                "function": function, "calls_made": config.calls, "loop_s": secs,
                "offered_per_s": config.calls as f64 / secs, "lines": lines,
            });
            if imp == "trace" || imp == "bpftrace" {
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
    let paced: &[&str] = if with_bpftrace { &["trace", "bpftrace"] } else { &["trace"] };
    for (rate, imp) in RATES.iter().flat_map(|&r| paced.iter().map(move |&i| (r, i))) {
        report::progress(&format!("{imp} at {rate} calls/s"));
        let running = if imp == "bpftrace" { start_bpftrace(&function)? } else { start("trace", &function)? };
        let ((), ns) = timed(|| paced_loop(config.calls, rate));
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
