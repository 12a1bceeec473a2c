//! Per-call overhead: a tight loop of a cheap syscall, with no probe, with the empty program
//! and with the CLI's count program (bpf/count.bpf.o, the very object `multiprobe count`
//! loads) attached by one kprobe_multi link to the kernel functions every call goes through.
//!
//! - `getppid`: the cheapest syscall; its kernel entry `__x64_sys_getppid` (listed as
//!   `__do_sys_getppid`, its alias, on 6.12 and 7.2).
//! - `pread`: a 1-byte `pread64` of a tmpfs file; every call goes through `vfs_read`.
//! - `getppid` with the programs on every `*sys_*` function (one link, ~1,300 functions): the
//!   kernel finds an attach cookie by binary search over the link's addresses, so a wide
//!   link costs cookie users more per call than a one-function one. `x64_sys_call` matches
//!   too: two probe hits per call.
//!
//! count runs in both of its modes, set up as the CLI sets them up (crates/multiprobe-cli/
//! src/count/mod.rs):
//! - `count-address` (what the CLI uses with a kprobe_multi link): `slot_base` set, the
//!   `slots` table (16-byte slot of each function's entry address -> counter index + 1, the
//!   library's `AddressIndex`, as the CLI builds it) filled with `Map::update_batch`,
//!   attached without cookies;
//! - `count-cookie` (what it falls back to): `slot_base` 0, attached with cookie = counter
//!   index.
//!
//! `count --by` (bpf/breakdown.bpf.o, address mode as the CLI sets it up): `by-comm` (the
//! task's name read, compared with the CPU's last key; a hash lookup when it changes) and
//! `by-kstack` (a kernel stack walk, a stack map insert and a hash lookup per call), each
//! counting into its own table.
//!
//! References from bpf/bench.bpf.c: `empty` (the kprobe_multi machinery alone), `cookie`
//! (`bpf_get_attach_cookie` alone: what cookie mode pays to find a counter) and `increment`
//! (one per-CPU counter incremented, no lookup: the least a counter costs).
//!
//! Every count program counts into its own counters; after the repetitions the probed
//! function's counter must equal the calls the loop made while that program was attached.

use std::fs::File;
use std::os::unix::fs::FileExt;

use multiprobe::kprobe_multi::KprobeMulti;
use multiprobe::symbols::{Function, Glob, TraceableFunctions, entry_addresses, syscall_function};
use multiprobe::{AddressIndex, LoadedObject, Map, Object, UpdateFlags};
use serde_json::json;

use crate::report::{self, Series};
use crate::{BENCH_OBJ, BREAKDOWN_OBJ, COUNT_OBJ, Config, rotated, timed};

/// The syscall loop of a case, `n` calls.
fn run_loop(syscall: &str, file: &File, n: u64) {
    let mut buf = [0u8; 1];
    for _ in 0..n {
        if syscall == "getppid" {
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

/// count.bpf.o loaded as the CLI loads it for `n` functions (no pid filter): with a slot
/// table (address mode) or without (cookie mode).
fn load_count(n: usize, slots: Option<&AddressIndex>) -> Result<LoadedObject, Box<dyn std::error::Error>> {
    let mut obj = Object::parse("count", COUNT_OBJ)?;
    obj.map_mut("counts").ok_or("no map `counts`")?.set_max_entries(n as u32);
    obj.set_global("target_tgid", &0u32)?;
    if let Some(s) = slots {
        obj.map_mut("slots").ok_or("no map `slots`")?.set_max_entries(s.slot_count());
        obj.set_global("slot_base", &s.base())?;
    }
    let loaded = obj.load()?;
    if let Some(s) = slots {
        loaded.map("slots").ok_or("no map `slots`")?.update_batch(s.keys(), s.values(), UpdateFlags::Any)?;
    }
    Ok(loaded)
}

/// breakdown.bpf.o loaded as `count --by` loads it for `n` functions: `by` bits (1 comm,
/// 16 kstack), 10240 keys, the slot table.
fn load_breakdown(n: usize, slots: &AddressIndex, by: u32) -> Result<LoadedObject, Box<dyn std::error::Error>> {
    let mut obj = Object::parse("breakdown", BREAKDOWN_OBJ)?;
    for m in ["keys", "calls"] {
        obj.map_mut(m).ok_or("no map")?.set_max_entries(10240);
    }
    obj.set_global("max_keys", &10240u32)?;
    let recent = (n as u32).clamp(1, 1024).next_power_of_two();
    obj.map_mut("recent").ok_or("no map `recent`")?.set_max_entries(recent);
    obj.set_global("recent_mask", &(recent - 1))?;
    for m in ["overflow", "lost_stacks"] {
        obj.map_mut(m).ok_or("no map")?.set_max_entries(n as u32);
    }
    obj.map_mut("stacks").ok_or("no map `stacks`")?.set_max_entries(if by & 16 != 0 { 10240 } else { 1 });
    obj.set_global("by", &by)?;
    obj.map_mut("slots").ok_or("no map `slots`")?.set_max_entries(slots.slot_count());
    obj.set_global("slot_base", &slots.base())?;
    let loaded = obj.load()?;
    loaded.map("slots").ok_or("no map `slots`")?.update_batch(slots.keys(), slots.values(), UpdateFlags::Any)?;
    Ok(loaded)
}

/// Calls a breakdown object counted for function `index`: its keys plus those that did not fit.
fn counted_by(o: &LoadedObject, index: usize) -> Result<u64, String> {
    let keys = o.map("keys").ok_or("no map `keys`")?;
    let calls = o.map("calls").ok_or("no map `calls`")?;
    let mut n = 0;
    for (key, slot) in keys.dump::<[u32; 10], u32>().map_err(|e| e.to_string())? {
        if key[0] as usize == index {
            n += counted(calls, slot as usize).map_err(|e| e.to_string())?;
        }
    }
    Ok(n + counted(o.map("overflow").ok_or("no map `overflow`")?, index).map_err(|e| e.to_string())?)
}

/// Calls counted for counter `index`, summed over the CPUs.
fn counted(map: &Map, index: usize) -> Result<u64, multiprobe::MapError> {
    Ok(map.get_per_cpu::<u32, u64>(&(index as u32))?.map_or(0, |v| v.iter().sum()))
}

fn run_inner(config: &Config) -> Result<(), Box<dyn std::error::Error>> {
    let mut obj = Object::parse("bench.bpf.o", BENCH_OBJ)?;
    obj.map_mut("counts").ok_or("no map `counts`")?.set_max_entries(1);
    let refs = obj.load()?;
    let empty = refs.program("empty").ok_or("no program `empty`")?;
    let cookie = refs.program("cookie_only").ok_or("no program `cookie_only`")?;
    let increment = refs.program("increment_only").ok_or("no program `increment_only`")?;
    let path = "/tmp/mpbench-pread";
    std::fs::write(path, vec![7u8; 4096])?;
    let file = File::open(path)?;
    let listing = TraceableFunctions::read()?;
    // The first traceable function of the first of `names` that has one, as an exact
    // pattern attaches it.
    let one = |names: &[&str]| -> Result<Vec<Function>, String> {
        let f = names.iter().find_map(|n| listing.matching(&Glob::new(n)).into_iter().next());
        f.map(|f| vec![f]).ok_or_else(|| format!("none of {names:?} is traceable"))
    };
    // getppid's entry: on 6.12 and 7.2 `__x64_sys_getppid` is an alias of `__do_sys_getppid`
    // (one body, one patch site), and the listing names it `__do_sys_getppid`.
    let wrapper = syscall_function("getppid").unwrap_or_else(|_| "__x64_sys_getppid".into());
    let getppid = one(&[&wrapper, "__do_sys_getppid"])?;
    let getppid_name = getppid[0].name.clone();
    let cases = [
        ("getppid", "getppid", getppid, getppid_name.clone()),
        ("pread", "pread", one(&["vfs_read"])?, "vfs_read".to_string()),
        ("getppid, *sys_* link", "getppid", listing.matching(&Glob::new("*sys_*")), getppid_name),
    ];
    for (case, syscall, functions, counted_fn) in &cases {
        let n = functions.len();
        let label = if n == 1 { functions[0].name.clone() } else { format!("*sys_* ({n} functions)") };
        report::progress(&format!("per-call overhead: {case} ({label})"));
        let index = functions.iter().position(|f| f.name == *counted_fn).ok_or("the counted function is not probed")?;
        run_loop(syscall, &file, config.calls / 10);

        // Address mode, as the CLI: entry addresses (kept per boot by the library), the slot
        // table, no cookies.
        let address = entry_addresses(functions)
            .map_err(|e| e.to_string())
            .and_then(|e| AddressIndex::for_functions(functions, &e).map_err(|e| e.to_string()))
            .and_then(|s| load_count(n, Some(&s)).map(|o| (o, s.slot_count())).map_err(|e| e.to_string()));
        let address = match address {
            Ok(a) => Some(a),
            Err(e) => {
                report::emit_error("per_call", case, "count-address", &e);
                None
            }
        };
        // `count --by comm` and `--by kstack`, address mode as the CLI.
        let by = |bits: u32| -> Option<LoadedObject> {
            let slots = entry_addresses(functions)
                .map_err(|e| e.to_string())
                .and_then(|e| AddressIndex::for_functions(functions, &e).map_err(|e| e.to_string()));
            match slots.and_then(|s| load_breakdown(n, &s, bits).map_err(|e| e.to_string())) {
                Ok(o) => Some(o),
                Err(e) => {
                    report::emit_error("per_call", case, if bits == 1 { "by-comm" } else { "by-kstack" }, &e);
                    None
                }
            }
        };
        let (by_comm, by_kstack) = (by(1), by(16));
        let cookie_mode = load_count(n, None)?;

        let plain = KprobeMulti::functions(functions.iter().cloned());
        let with_cookies = KprobeMulti::functions_with_cookies(functions.iter().cloned().zip(0..));
        let mut imps = vec!["none", "empty", "cookie", "increment", "count-cookie"];
        if address.is_some() {
            imps.push("count-address");
        }
        if by_comm.is_some() {
            imps.push("by-comm");
        }
        if by_kstack.is_some() {
            imps.push("by-kstack");
        }
        let mut samples: Vec<Vec<u64>> = vec![Vec::new(); imps.len()];
        for rep in 0..config.reps {
            for imp in rotated(&imps, rep) {
                let i = imps.iter().position(|x| *x == imp).unwrap();
                let link = match imp {
                    "empty" => Some(empty.attach_kprobe_multi(&plain)?),
                    "cookie" => Some(cookie.attach_kprobe_multi(&with_cookies)?),
                    "increment" => Some(increment.attach_kprobe_multi(&plain)?),
                    "count-cookie" => {
                        let prog = cookie_mode.program("count_calls").ok_or("no program `count_calls`")?;
                        Some(prog.attach_kprobe_multi(&with_cookies)?)
                    }
                    "count-address" => {
                        let obj = &address.as_ref().unwrap().0;
                        let prog = obj.program("count_calls").ok_or("no program `count_calls`")?;
                        Some(prog.attach_kprobe_multi(&plain)?)
                    }
                    "by-comm" | "by-kstack" => {
                        let obj = if imp == "by-comm" { by_comm.as_ref() } else { by_kstack.as_ref() };
                        let prog = obj.unwrap().program("count_by").ok_or("no program `count_by`")?;
                        Some(prog.attach_kprobe_multi(&plain)?)
                    }
                    _ => None,
                };
                let ((), ns) = timed(|| run_loop(syscall, &file, config.calls));
                drop(link);
                // Picoseconds per call: keeps sub-nanosecond resolution in integers.
                samples[i].push(ns * 1000 / config.calls);
            }
        }
        for (imp, s) in imps.iter().zip(samples) {
            report::emit(&Series { group: "per_call", case, imp, matches: Some(n), unit: "ps", samples: s });
        }
        // Every count object counted the probed function's calls while it was attached:
        // reps x calls, nothing lost (the VM runs nothing else that calls it).
        let made = config.calls * config.reps as u64;
        let counts = |o: &LoadedObject| -> Result<u64, String> {
            counted(o.map("counts").ok_or("no map `counts`")?, index).map_err(|e| e.to_string())
        };
        let address_counted = address.as_ref().map(|(o, _)| counts(o)).transpose()?;
        report::emit_value(&json!({
            "group": "info", "case": format!("per_call {case}"), "impl": "count",
            "function": label, "counted_function": counted_fn, "calls_made": made,
            "counted_cookie": counts(&cookie_mode)?, "counted_address": address_counted,
            "slots": address.as_ref().map(|(_, len)| *len),
            "counted_by_comm": by_comm.as_ref().map(|o| counted_by(o, index)).transpose()?,
            "counted_by_kstack": by_kstack.as_ref().map(|o| counted_by(o, index)).transpose()?,
        }));
    }
    let _ = std::fs::remove_file(path);
    Ok(())
}
