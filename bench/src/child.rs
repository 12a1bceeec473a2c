//! Measurements that need a fresh process: a cold attach (the library's in-memory listing
//! is empty) and a cold load (no kernel BTF read yet). The parent re-executes itself
//! (`child ...`) and reads one JSON line from the child's stdout; spawning is not timed.

use std::process::Command;

use multiprobe::Object;
use multiprobe::kprobe_multi::KprobeMulti;
use multiprobe::symbols::{Listing, Selection};
use serde_json::{Value, json};

use crate::{ALL, BENCH_OBJ, load, timed};

/// Runs `multiprobe-bench child ARGS` and returns its JSON answer.
fn spawn(args: &[&str]) -> Result<Value, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let out = Command::new(exe).arg("child").args(args).output().map_err(|e| format!("spawning child: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or("");
    let v: Value = serde_json::from_str(line).map_err(|_| {
        format!("child {args:?} answered {line:?} ({}); stderr: {}", out.status, String::from_utf8_lossy(&out.stderr))
    })?;
    match v.get("error") {
        Some(e) => Err(e.as_str().unwrap_or("?").to_string()),
        None => Ok(v),
    }
}

fn field(v: &Value, name: &str) -> Result<u64, String> {
    v[name].as_u64().ok_or_else(|| format!("child answer without {name}: {v}"))
}

/// One attach and detach of `pattern` in a fresh process (optionally with the on-disk
/// listing cache in `disk_cache`).
pub fn cold_attach(pattern: &str, disk_cache: Option<&str>) -> Result<(u64, u64), String> {
    let mut args = vec!["attach", pattern];
    if let Some(d) = disk_cache {
        args.extend(["--disk-cache", d]);
    }
    let v = spawn(&args)?;
    Ok((field(&v, "attach_ns")?, field(&v, "detach_ns")?))
}

/// One libbpf attach and detach of `pattern` in a fresh process.
pub fn cold_libbpf_attach(pattern: &str) -> Result<(u64, u64), String> {
    let v = spawn(&["libbpf-attach", pattern])?;
    Ok((field(&v, "attach_ns")?, field(&v, "detach_ns")?))
}

/// One load of a named object in a fresh process.
pub fn cold_load(name: &str) -> Result<u64, String> {
    field(&spawn(&["load", name])?, "load_ns")
}

/// One libbpf load of a named object in a fresh process.
pub fn cold_libbpf_load(name: &str) -> Result<u64, String> {
    field(&spawn(&["libbpf-load", name])?, "load_ns")
}

/// `child ...`: prints one JSON line and returns the exit code.
pub fn run(args: &[String]) -> i32 {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["attach", pattern] => attach(pattern, None),
        ["attach", pattern, "--disk-cache", dir] => attach(pattern, Some(dir)),
        ["load", name] => load_one(name, false),
        ["libbpf-load", name] => load_one(name, true),
        ["libbpf-attach", pattern] => libbpf_attach(pattern),
        ["link-info-memory"] => link_info_memory(),
        ["exec-measured", command, rest @ ..] => exec_measured(command, rest),
        _ => Err(format!("bad child arguments {args:?}")),
    };
    match result {
        Ok(v) => {
            println!("{v}");
            0
        }
        Err(e) => {
            println!("{}", json!({ "error": e }));
            1
        }
    }
}

fn spec_for(pattern: &str) -> KprobeMulti {
    if pattern == ALL { KprobeMulti::selection(Selection::new().include(ALL)) } else { KprobeMulti::pattern(pattern) }
}

fn attach(pattern: &str, disk_cache: Option<&str>) -> Result<Value, String> {
    let listing = disk_cache.map_or_else(Listing::new, |d| Listing::new().cache_dir(d));
    let obj = Object::parse("bench.bpf.o", BENCH_OBJ).map_err(|e| e.to_string())?.load().map_err(|e| e.to_string())?;
    let prog = obj.program("empty").ok_or("no program `empty`")?;
    let spec = spec_for(pattern).listing(listing);
    let (link, attach_ns) = timed(|| prog.attach_kprobe_multi(&spec));
    let link = link.map_err(|e| e.to_string())?;
    let matches = link.functions().len();
    let ((), detach_ns) = timed(|| drop(link));
    Ok(json!({"attach_ns": attach_ns, "detach_ns": detach_ns, "matches": matches}))
}

fn load_one(name: &str, libbpf: bool) -> Result<Value, String> {
    let (_, data) = load::OBJECTS.iter().find(|(n, _)| *n == name).ok_or_else(|| format!("no object {name}"))?;
    let ns = if libbpf { load::libbpf_load(name, data)? } else { load::multiprobe_load(name, data)? };
    Ok(json!({ "load_ns": ns }))
}

fn libbpf_attach(pattern: &str) -> Result<Value, String> {
    let mut obj = crate::libbpf::Object::open("bench.bpf.o", BENCH_OBJ, None).map_err(|e| e.to_string())?;
    obj.load().map_err(|e| e.to_string())?;
    let prog = obj.program("empty").map_err(|e| e.to_string())?;
    let cpattern = std::ffi::CString::new(pattern).map_err(|e| e.to_string())?;
    let (link, attach_ns) = timed(|| prog.attach_kprobe_multi(crate::libbpf::Targets::Pattern(&cpattern)));
    let link = link.map_err(|e| e.to_string())?;
    let ((), detach_ns) = timed(|| link.destroy());
    Ok(json!({"attach_ns": attach_ns, "detach_ns": detach_ns}))
}

/// What the feature check `count` makes before attaching (`kprobe_multi_link_info`: the
/// kernel's BTF parsed and searched) adds to a fresh process's peak memory, and its time.
pub fn link_info_memory_from_parent() {
    match spawn(&["link-info-memory"]) {
        Ok(v) => {
            for (metric, unit) in [("hwm_before_kib", "KiB"), ("hwm_after_kib", "KiB"), ("ns", "ns")] {
                if let Some(x) = v[metric].as_u64() {
                    crate::report::emit(&crate::report::Series {
                        group: "memory",
                        case: "kprobe_multi_link_info",
                        imp: metric,
                        matches: None,
                        unit,
                        samples: vec![x],
                    });
                }
            }
        }
        Err(e) => crate::report::emit_error("memory", "kprobe_multi_link_info", "", &e),
    }
}

/// `VmHWM` of this process, in KiB.
fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmHWM:")?.trim().strip_suffix("kB")?.trim().parse().ok()).unwrap_or(0)
}

fn link_info_memory() -> Result<Value, String> {
    let before = vm_hwm_kib();
    let (level, ns) = timed(multiprobe::features::kprobe_multi_link_info);
    let after = vm_hwm_kib();
    Ok(json!({"hwm_before_kib": before, "hwm_after_kib": after, "ns": ns, "level": format!("{level:?}")}))
}

/// Runs `command` with this process's stdin, stdout and stderr and answers with its exit
/// status, wall time and peak memory (`ru_maxrss` from `wait4`).
///
/// Why a child of a child: `ru_maxrss` includes the peak of the memory map a process had
/// before its last exec, and `Command` starts programs sharing the parent's map until they
/// exec (vfork): run from the benchmark, whose peak is tens of MiB, the CLI would report at
/// least the benchmark's peak. This small fresh process is the one whose map it shares.
fn exec_measured(command: &str, args: &[&str]) -> Result<Value, String> {
    use std::os::unix::process::ExitStatusExt;
    let start = std::time::Instant::now();
    let child = Command::new(command).args(args).spawn().map_err(|e| format!("spawning {command}: {e}"))?;
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    if unsafe { libc::wait4(pid, &mut status, 0, &mut usage) } != pid {
        return Err(format!("wait4: {}", std::io::Error::last_os_error()));
    }
    let wall_ns = start.elapsed().as_nanos() as u64;
    let status = std::process::ExitStatus::from_raw(status);
    // ru_maxrss is in KiB on Linux.
    Ok(json!({
        "exec_status": status.to_string(), "success": status.success(),
        "wall_ns": wall_ns, "maxrss_kib": usage.ru_maxrss,
        "own_hwm_kib": vm_hwm_kib(),
    }))
}
