//! Per-call overhead: a tight loop of a cheap syscall, with no probe, with the empty
//! program and with the count program attached (one kprobe_multi link, by name) to the
//! kernel function every call goes through.
//!
//! - `getppid`: the cheapest syscall; its kernel entry `__x64_sys_getppid`.
//! - `pread`: a 1-byte `pread64` of a tmpfs file; every call goes through `vfs_read`.
//! - `getppid` with the programs on every `*sys_*` function (one link, ~1,300 functions, a
//!   cookie each): the kernel's cookie lookup is a binary search over the link's addresses,
//!   so a wide link costs more per call than a one-function one. `x64_sys_call` matches
//!   too: two probe hits per call.
//!
//! The count program is this benchmark's copy of the CLI's (cookie -> per-CPU slot ->
//! increment, bpf/bench.bpf.c); the cookie is 0, slot 0. Its two halves are measured too:
//! `cookie` (only `bpf_get_attach_cookie`) and `increment` (only the slot increment). And a
//! cookie-free alternatives: `ip-hash` (`bpf_get_func_ip` -> per-CPU hash slot) and `slot`
//! (`bpf_get_func_ip` -> 16-byte slot -> array of counter indices -> per-CPU counter).

use std::fs::File;
use std::os::unix::fs::FileExt;

use multiprobe::kprobe_multi::{Function, Glob, KprobeMulti, TraceableFunctions, syscall_function};
use multiprobe::{LoadedObject, Object, Program, UpdateFlags};
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

/// What the programs are attached to in a case.
enum Probe {
    /// One function, by name.
    One(String),
    /// Many functions (resolved), one cookie each for the programs that read cookies.
    Many(Vec<Function>),
}

impl Probe {
    fn spec(&self, with_cookies: bool) -> KprobeMulti {
        match (self, with_cookies) {
            (Probe::One(f), false) => KprobeMulti::symbols([f.as_str()]),
            (Probe::One(f), true) => KprobeMulti::symbols_with_cookies([(f.as_str(), 0)]),
            (Probe::Many(fs), false) => KprobeMulti::functions(fs.iter().cloned()),
            (Probe::Many(fs), true) => KprobeMulti::functions_with_cookies(fs.iter().cloned().zip(0..)),
        }
    }
}

fn run_inner(config: &Config) -> Result<(), Box<dyn std::error::Error>> {
    let mut obj = Object::parse("bench.bpf.o", BENCH_OBJ)?;
    // Room for one counter per function of the wide case.
    obj.map_mut("counts").ok_or("no map `counts`")?.set_max_entries(1 << 16);
    let loaded = obj.load()?;
    let empty = loaded.program("empty").ok_or("no program `empty`")?;
    let count = loaded.program("count_calls").ok_or("no program `count_calls`")?;
    let cookie = loaded.program("cookie_only").ok_or("no program `cookie_only`")?;
    let increment = loaded.program("increment_only").ok_or("no program `increment_only`")?;
    let by_ip = loaded.program("count_by_ip").ok_or("no program `count_by_ip`")?;
    let counts = loaded.map("counts").ok_or("no map `counts`")?;
    let path = "/tmp/mpbench-pread";
    std::fs::write(path, vec![7u8; 4096])?;
    let file = File::open(path)?;
    let getppid = syscall_function("getppid").unwrap_or_else(|_| "__x64_sys_getppid".into());
    let wide = TraceableFunctions::read()?.matching(&Glob::new("*sys_*"));
    let cases = [
        ("getppid", "getppid", Probe::One(getppid.clone())),
        ("pread", "pread", Probe::One("vfs_read".into())),
        ("getppid, *sys_* link", "getppid", Probe::Many(wide)),
    ];
    for (case, syscall, probe) in &cases {
        let function = match probe {
            Probe::One(f) => f.clone(),
            Probe::Many(fs) => format!("*sys_* ({} functions)", fs.len()),
        };
        report::progress(&format!("per-call overhead: {case} ({function})"));
        run_loop(syscall, &file, config.calls / 10);
        let slot_obj = match slot_counter(count, probe) {
            Ok(o) => Some(o),
            Err(e) => {
                report::emit_error("per_call", case, "slot", &e);
                None
            }
        };
        let slot_prog = slot_obj.as_ref().and_then(|o| o.program("count_by_slot"));
        let mut imps = vec!["none", "empty", "cookie", "increment", "count", "ip-hash"];
        if slot_prog.is_some() {
            imps.push("slot");
        }
        let mut samples: Vec<Vec<u64>> = vec![Vec::new(); imps.len()];
        let total = |c: &multiprobe::Map| -> Result<u64, multiprobe::MapError> {
            Ok(c.dump_per_cpu::<u32, u64>()?.iter().map(|(_, v)| v.iter().sum::<u64>()).sum())
        };
        let counted_before = total(counts)?;
        let mut count_loops = 0u64;
        for rep in 0..config.reps {
            for imp in rotated(&imps, rep) {
                let i = imps.iter().position(|x| *x == imp).unwrap();
                let link = match imp {
                    "empty" => Some(empty.attach_kprobe_multi(&probe.spec(false))?),
                    "cookie" => Some(cookie.attach_kprobe_multi(&probe.spec(true))?),
                    "increment" => Some(increment.attach_kprobe_multi(&probe.spec(false))?),
                    "count" => Some(count.attach_kprobe_multi(&probe.spec(true))?),
                    "ip-hash" => Some(by_ip.attach_kprobe_multi(&probe.spec(false))?),
                    "slot" => Some(slot_prog.unwrap().attach_kprobe_multi(&probe.spec(false))?),
                    _ => None,
                };
                if matches!(imp, "count" | "increment") {
                    count_loops += config.calls;
                }
                let ((), ns) = timed(|| run_loop(syscall, &file, config.calls));
                drop(link);
                // Picoseconds per call: keeps sub-nanosecond resolution in integers.
                samples[i].push(ns * 1000 / config.calls);
            }
        }
        let counted = total(counts)? - counted_before;
        // The slot prototype counts into its own object's counters.
        let slot_counted = match slot_obj.as_ref().and_then(|o| o.map("counts")) {
            Some(c) => total(c)?,
            None => 0,
        };
        for (imp, s) in imps.iter().zip(samples) {
            report::emit(&Series { group: "per_call", case, imp, matches: None, unit: "ps", samples: s });
        }
        // The counting programs must have seen at least every call of their own loops.
        report::emit_value(&json!({
            "group": "info", "case": format!("per_call {case}"), "impl": "count",
            "function": function, "calls_made": count_loops, "calls_counted": counted,
            "slot_calls_made": if slot_prog.is_some() { config.calls * config.reps as u64 } else { 0 },
            "slot_calls_counted": slot_counted,
        }));
    }
    let _ = std::fs::remove_file(path);
    Ok(())
}

/// The `count_by_slot` prototype for a probe: its own object, whose slot table maps each
/// probed function's entry address (as the kernel reports it for a cookie attach of the
/// same functions) to its counter.
fn slot_counter(count: &Program, probe: &Probe) -> Result<LoadedObject, Box<dyn std::error::Error>> {
    let targets: Vec<(u64, u64)> = {
        let link = count.attach_kprobe_multi(&probe.spec(true))?;
        link.info()?.targets.iter().map(|t| (t.address, t.cookie.unwrap_or(0))).collect()
    };
    let base = targets.iter().map(|t| t.0).min().ok_or("no targets")? & !15;
    let top = targets.iter().map(|t| t.0).max().ok_or("no targets")?;
    let slots = ((top - base) >> 4) + 1;
    if slots > 1 << 24 {
        return Err(format!("the functions span {slots} slots: too many for one array").into());
    }
    let mut obj = Object::parse("bench.bpf.o", BENCH_OBJ)?;
    obj.set_global("slot_base", &base)?;
    obj.map_mut("slot_index").ok_or("no map `slot_index`")?.set_max_entries(slots as u32);
    obj.map_mut("counts").ok_or("no map `counts`")?.set_max_entries(1 << 16);
    let loaded = obj.load()?;
    let table = loaded.map("slot_index").ok_or("no map `slot_index`")?;
    for (address, cookie) in targets {
        let slot = ((address - base) >> 4) as u32;
        if table.get::<u32, u32>(&slot)?.unwrap_or(0) != 0 {
            return Err(format!("two functions share the 16-byte slot of {address:#x}").into());
        }
        table.update(&slot, &(cookie as u32 + 1), UpdateFlags::Any)?;
    }
    Ok(loaded)
}
