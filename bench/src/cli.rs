//! The shipped CLI, run as a user runs it: `/bin/multiprobe count '*' --duration 0s --json`
//! (and `latency '*'`), the static binary `cargo xtask bench` puts in the VM. Reported:
//! what the command says about itself (resolve, load, attach and detach times, the counter
//! lookup it chose, `peak_rss_kib` from its summary) and what the kernel says about it
//! (`ru_maxrss` from `wait4`, and the wall time from spawn to exit), both taken by a small
//! child of the benchmark that runs the CLI (`child exec-measured`).
//!
//! The CLI keeps the listing and the entry addresses in `/run/multiprobe` for the rest of
//! the boot: the first command of a boot reads the kernel's listing and `/proc/kallsyms`
//! and writes the files, later ones read the files. Both are measured: the directory is
//! removed before each "first of the boot" run.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::Config;
use crate::report::{self, Series};

const CLI: &str = "/bin/multiprobe";
const CACHE_DIR: &str = "/run/multiprobe";

/// What one run of the CLI reported.
struct Run {
    wall_ns: u64,
    maxrss_kib: u64,
    /// The measuring child's own peak: the least `maxrss_kib` can be.
    measuring_kib: u64,
    attached: Value,
    summary: Value,
}

/// Runs the CLI with `args` through `multiprobe-bench child exec-measured` (which reports
/// its peak memory; see there why), its output read from a pipe: the summary lists every
/// function, megabytes the serial console would take minutes to print.
fn run_cli(args: &[&str]) -> Result<Run, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut child = Command::new(exe)
        .args(["child", "exec-measured", CLI])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawning {CLI}: {e}"))?;
    let mut stderr = child.stderr.take().unwrap();
    let errors = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut stdout = String::new();
    child.stdout.take().unwrap().read_to_string(&mut stdout).map_err(|e| format!("reading the output: {e}"))?;
    let _ = child.wait();
    let errors = errors.join().unwrap_or_default();
    // The CLI's JSON lines, then the measuring child's answer.
    let lines: Vec<Value> = stdout.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).collect();
    let measured = lines.last().filter(|v| v.get("maxrss_kib").is_some() || v.get("error").is_some());
    let measured = measured.ok_or_else(|| format!("no answer from the measuring child; stderr: {}", errors.trim()))?;
    if let Some(e) = measured.get("error") {
        return Err(format!("{e}; stderr: {}", errors.trim()));
    }
    if measured["success"] != true {
        return Err(format!("multiprobe {} failed ({}): {}", args.join(" "), measured["exec_status"], errors.trim()));
    }
    let event =
        |name: &str| {
            lines.iter().find(|v| v["event"] == name).cloned().ok_or_else(|| {
                format!("multiprobe {} printed no {name} event; stderr: {}", args.join(" "), errors.trim())
            })
        };
    Ok(Run {
        wall_ns: measured["wall_ns"].as_u64().unwrap_or(0),
        maxrss_kib: measured["maxrss_kib"].as_u64().unwrap_or(0),
        measuring_kib: measured["own_hwm_kib"].as_u64().unwrap_or(0),
        attached: event("attached")?,
        summary: event("summary")?,
    })
}

pub fn run(config: &Config) {
    if !Path::new(CLI).exists() {
        report::emit_error("cli", "", "", &format!("{CLI} is not in this VM"));
        return;
    }
    // (case, arguments, first of the boot, repeated). latency '*' runs once: under
    // emulation it takes minutes.
    // `count vfs_*` is the baseline: what the command holds whatever it counts.
    let cases: [(&str, &[&str], bool, bool); 4] = [
        ("count * (first of the boot)", &["count", "*", "--duration", "0s", "--json"], true, true),
        ("count * (per-boot file)", &["count", "*", "--duration", "0s", "--json"], false, true),
        ("count vfs_* (per-boot file)", &["count", "vfs_*", "--duration", "0s", "--json"], false, true),
        ("latency * (per-boot file)", &["latency", "*", "--duration", "0s", "--json"], false, false),
    ];
    let metrics = ["wall", "resolve", "load", "attach", "run", "detach", "peak_rss_kib", "maxrss_kib"];
    let mut samples: Vec<Vec<Vec<u64>>> = vec![vec![Vec::new(); metrics.len()]; cases.len()];
    let mut functions = vec![0usize; cases.len()];
    let mut failed = vec![false; cases.len()];
    for rep in 0..config.all_reps {
        for (c, (case, args, first, repeated)) in cases.iter().enumerate() {
            if failed[c] || (rep > 0 && !repeated) {
                continue;
            }
            report::progress(&format!("the CLI: {case}, run {}", rep + 1));
            if *first {
                let _ = std::fs::remove_dir_all(CACHE_DIR);
            }
            let r = match run_cli(args) {
                Ok(r) => r,
                Err(e) => {
                    failed[c] = true;
                    report::emit_error("cli", case, "multiprobe", &e);
                    continue;
                }
            };
            let ms = |v: &Value| v.as_f64().map(|ms| (ms * 1e6) as u64);
            let values = [
                Some(r.wall_ns),
                ms(&r.attached["resolve_ms"]),
                ms(&r.attached["load_ms"]),
                ms(&r.attached["attach_ms"]),
                ms(&r.summary["run_ms"]),
                ms(&r.summary["detach_ms"]),
                r.summary["peak_rss_kib"].as_u64(),
                Some(r.maxrss_kib),
            ];
            for (m, v) in values.into_iter().enumerate() {
                if let Some(v) = v {
                    samples[c][m].push(v);
                }
            }
            functions[c] = r.attached["functions"].as_u64().unwrap_or(0) as usize;
            report::emit_value(&json!({
                "group": "info", "case": format!("cli {case}"), "impl": "multiprobe", "rep": rep,
                "mode": r.attached["mode"], "lookup": r.attached["lookup"],
                "called": r.summary["called"], "total_calls": r.summary["total_calls"],
                "missed": r.summary["missed"], "measuring_child_hwm_kib": r.measuring_kib,
            }));
        }
    }
    crate::child::link_info_memory_from_parent();
    for (c, (case, ..)) in cases.iter().enumerate() {
        for (m, metric) in metrics.iter().enumerate() {
            let s = std::mem::take(&mut samples[c][m]);
            if s.is_empty() {
                continue;
            }
            let unit = if metric.ends_with("kib") { "KiB" } else { "ns" };
            report::emit(&Series { group: "cli", case, imp: metric, matches: Some(functions[c]), unit, samples: s });
        }
    }
}
