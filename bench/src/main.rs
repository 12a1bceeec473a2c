//! `multiprobe-bench`: multiprobe against libbpf 1.7 and the kernel floor, in one process on
//! one boot. Run by `cargo xtask bench` inside a VM (see docs/benchmarks.md); prints JSON
//! lines between `MPBENCH-BEGIN` and `MPBENCH-END`.
//!
//! ```text
//! multiprobe-bench [--reps N] [--all-reps N] [--calls N] [--no-all] [--quick] [--only PART,...]
//! multiprobe-bench child attach PATTERN [--disk-cache DIR]     (one cold attach, internal)
//! multiprobe-bench child load OBJECT                            (one cold load, internal)
//! multiprobe-bench corpus DIR [--settings F] [--allow F] [--reps N] (libbpf differential, corpus.rs)
//! multiprobe-bench conformance [--filter SUBSTR]                (kprobe_multi against libbpf, conformance.rs)
//! ```
//!
//! The VM also carries the static CLI (`/bin/multiprobe`): its `count '*'` and `latency '*'`
//! are run as they are shipped, for their own attach times and peak memory (cli.rs), and its
//! `trace` against its `count` on one function (trace.rs).

mod alt;
mod attach;
mod child;
mod cli;
mod conformance;
mod corpus;
mod libbpf;
mod load;
mod overhead;
mod report;
mod trace;

use std::time::Instant;

use serde_json::json;

/// The benchmark's object: `empty` and the reference programs (bpf/bench.bpf.c).
pub const BENCH_OBJ: &[u8] = include_bytes!("../../bpf/bench.bpf.o");
/// The CLI's `count` program, the very object `multiprobe count` loads.
pub const COUNT_OBJ: &[u8] = include_bytes!("../../crates/multiprobe-cli/bpf/count.bpf.o");
/// The CLI's `count --by` program.
pub const BREAKDOWN_OBJ: &[u8] = include_bytes!("../../crates/multiprobe-cli/bpf/breakdown.bpf.o");
/// Richer objects for load times.
pub const LOADER_OBJ: &[u8] = include_bytes!("../../bpf/test_loader.bpf.o");
pub const KPROBE_MULTI_OBJ: &[u8] = include_bytes!("../../bpf/test_kprobe_multi.bpf.o");

/// Patterns measured, smallest first; `*` (every traceable function less the deny list) is
/// measured separately.
pub const PATTERNS: &[&str] = &["vfs_read", "vfs_*", "tcp_*", "*sys_*"];
/// The "all functions" case.
pub const ALL: &str = "*";

/// Run parameters.
#[derive(Debug, Clone)]
pub struct Config {
    /// Repetitions for everything but "all".
    pub reps: usize,
    /// Repetitions of the "all functions" attaches.
    pub all_reps: usize,
    /// Syscalls per per-call-overhead sample.
    pub calls: u64,
    /// Skip the "all functions" cases.
    pub no_all: bool,
    /// Run only these parts: `load`, `attach` (listing breakdown, patterns, prototypes),
    /// `per-call`, `all` (every function), `cli`, `trace` (the CLI's trace against count).
    pub only: Option<Vec<String>>,
}

impl Config {
    fn runs(&self, part: &str) -> bool {
        self.only.as_ref().is_none_or(|parts| parts.iter().any(|p| p == part))
    }
}

/// Runs `f` and returns its result and the wall time in nanoseconds.
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed().as_nanos() as u64)
}

/// The order of implementations in repetition `rep`: rotated, so that none always runs
/// first (after a detach) or last.
pub fn rotated<T: Copy>(items: &[T], rep: usize) -> Vec<T> {
    let mut v = items.to_vec();
    if !v.is_empty() {
        v.rotate_left(rep % items.len());
    }
    v
}

fn parse_args(args: &[String]) -> Result<Config, String> {
    let mut c = Config { reps: 9, all_reps: 3, calls: 300_000, no_all: false, only: None };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut num = |name: &str| -> Result<u64, String> {
            it.next().and_then(|v| v.parse().ok()).ok_or_else(|| format!("{name} needs a number"))
        };
        match a.as_str() {
            "--reps" => c.reps = num("--reps")? as usize,
            "--all-reps" => c.all_reps = num("--all-reps")? as usize,
            "--calls" => c.calls = num("--calls")?,
            "--no-all" => c.no_all = true,
            "--only" => {
                let parts: Vec<String> = it.next().map_or("", String::as_str).split(',').map(String::from).collect();
                if !parts.iter().all(|p| ["load", "attach", "per-call", "all", "cli", "trace"].contains(&p.as_str())) {
                    return Err("--only takes a list of load, attach, per-call, all, cli, trace".into());
                }
                c.only = Some(parts);
            }
            "--quick" => {
                c.reps = 2;
                c.all_reps = 1;
                c.calls = 30_000;
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(c)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    libbpf::silence();
    if args.first().map(String::as_str) == Some("corpus") {
        std::process::exit(corpus::run(&args[1..]));
    }
    if args.first().map(String::as_str) == Some("conformance") {
        std::process::exit(conformance::run(&args[1..]));
    }
    if args.first().map(String::as_str) == Some("child") {
        std::process::exit(child::run(&args[1..]));
    }
    let config = match parse_args(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("multiprobe-bench: {e}");
            std::process::exit(2);
        }
    };
    let _ = multiprobe::raw::raise_memlock_limit();
    println!("{}", report::BEGIN);
    let start = Instant::now();
    if let Err(e) = run(&config) {
        report::emit_error("run", "", "", &e);
    }
    report::emit_value(
        &json!({"group": "info", "case": "total", "impl": "", "seconds": start.elapsed().as_secs_f64()}),
    );
    println!("{}", report::END);
}

fn run(config: &Config) -> Result<(), Box<dyn std::error::Error>> {
    info()?;
    if config.runs("load") {
        load::run(config);
    }
    if config.runs("attach") || config.runs("all") {
        let listing = alt::listing_breakdown(config)?;
        if config.runs("attach") {
            attach::patterns(config, &listing)?;
            alt::run(config, &listing);
        }
        if config.runs("per-call") {
            overhead::run(config);
        }
        if !config.no_all && config.runs("all") {
            attach::all(config, &listing)?;
        }
    } else if config.runs("per-call") {
        overhead::run(config);
    }
    if !config.no_all && config.runs("cli") {
        cli::run(config);
    }
    if config.runs("trace") {
        trace::run(config);
    }
    Ok(())
}

/// Facts about the machine the numbers come from.
fn info() -> Result<(), Box<dyn std::error::Error>> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")?.trim().to_string();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")?
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .unwrap_or("")
        .split_whitespace()
        .nth(1)
        .unwrap_or("0")
        .parse::<u64>()
        .unwrap_or(0);
    let clocksource = std::fs::read_to_string("/sys/devices/system/clocksource/clocksource0/current_clocksource")
        .unwrap_or_default()
        .trim()
        .to_string();
    report::emit_value(&json!({
        "group": "info", "case": "machine", "impl": "",
        "kernel": release, "cpus": cpus, "mem_kb": mem, "clocksource": clocksource,
    }));
    Ok(())
}
