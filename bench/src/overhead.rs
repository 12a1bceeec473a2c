//! Per-call overhead: a tight loop of a cheap syscall, with no probe, with the empty
//! program and with the count program attached (one kprobe_multi link, by name) to the
//! kernel function every call goes through.
//!
//! - `getppid`: the cheapest syscall; its kernel entry `__x64_sys_getppid`.
//! - `pread`: a 1-byte `pread64` of a tmpfs file; every call goes through `vfs_read`.
//!
//! The count program is this benchmark's copy of the CLI's (cookie -> per-CPU slot ->
//! increment, bpf/bench.bpf.c); the cookie is 0, slot 0. Its two halves are measured too:
//! `cookie` (only `bpf_get_attach_cookie`) and `increment` (only the slot increment).

use std::fs::File;
use std::os::unix::fs::FileExt;

use multiprobe::Object;
use multiprobe::kprobe_multi::{KprobeMulti, syscall_function};
use serde_json::json;

use crate::report::{self, Series};
use crate::{BENCH_OBJ, Config, rotated, timed};

/// The syscall loop of a case, `n` calls.
fn run_loop(case: &str, file: &File, n: u64) {
    let mut buf = [0u8; 1];
    for _ in 0..n {
        if case == "getppid" {
            std::hint::black_box(std::os::unix::process::parent_id());
        } else {
            let _ = std::hint::black_box(file.read_at(&mut buf, 0));
        }
    }
}

pub fn run(config: &Config) {
    if let Err(e) = run_inner(config) {
        report::emit_error("per_call", "", "", &e);
    }
}

fn run_inner(config: &Config) -> Result<(), Box<dyn std::error::Error>> {
    let loaded = Object::parse("bench.bpf.o", BENCH_OBJ)?.load()?;
    let empty = loaded.program("empty").ok_or("no program `empty`")?;
    let count = loaded.program("count_calls").ok_or("no program `count_calls`")?;
    let cookie = loaded.program("cookie_only").ok_or("no program `cookie_only`")?;
    let increment = loaded.program("increment_only").ok_or("no program `increment_only`")?;
    let counts = loaded.map("counts").ok_or("no map `counts`")?;
    let path = "/tmp/mpbench-pread";
    std::fs::write(path, vec![7u8; 4096])?;
    let file = File::open(path)?;
    let getppid = syscall_function("getppid").unwrap_or_else(|_| "__x64_sys_getppid".into());
    for (case, function) in [("getppid", getppid.as_str()), ("pread", "vfs_read")] {
        report::progress(&format!("per-call overhead: {case} ({function})"));
        run_loop(case, &file, config.calls / 10);
        let imps = ["none", "empty", "cookie", "increment", "count"];
        let mut samples: Vec<Vec<u64>> = vec![Vec::new(); imps.len()];
        let counted_before: u64 = counts.get_per_cpu::<u32, u64>(&0)?.unwrap_or_default().iter().sum();
        let mut count_calls = 0u64;
        for rep in 0..config.reps {
            for imp in rotated(&imps, rep) {
                let i = imps.iter().position(|x| *x == imp).unwrap();
                let link = match imp {
                    "empty" => Some(empty.attach_kprobe_multi(&KprobeMulti::symbols([function]))?),
                    "cookie" => Some(cookie.attach_kprobe_multi(&KprobeMulti::symbols_with_cookies([(function, 0)]))?),
                    "increment" => Some(increment.attach_kprobe_multi(&KprobeMulti::symbols([function]))?),
                    "count" => {
                        count_calls += config.calls;
                        Some(count.attach_kprobe_multi(&KprobeMulti::symbols_with_cookies([(function, 0)]))?)
                    }
                    _ => None,
                };
                let ((), ns) = timed(|| run_loop(case, &file, config.calls));
                drop(link);
                // Picoseconds per call: keeps sub-nanosecond resolution in integers.
                samples[i].push(ns * 1000 / config.calls);
            }
        }
        // increment_only counts into the same slot.
        let increment_calls = config.calls * config.reps as u64;
        let counted: u64 = counts.get_per_cpu::<u32, u64>(&0)?.unwrap_or_default().iter().sum::<u64>() - counted_before;
        for (imp, s) in imps.iter().zip(samples) {
            report::emit(&Series { group: "per_call", case, imp, matches: Some(1), unit: "ps", samples: s });
        }
        // The count program must have seen at least every call of its own loops.
        report::emit_value(&json!({
            "group": "info", "case": format!("per_call {case}"), "impl": "count",
            "function": function, "calls_made": count_calls + increment_calls, "calls_counted": counted,
        }));
    }
    let _ = std::fs::remove_file(path);
    Ok(())
}
