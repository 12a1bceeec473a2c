//! `multiprobe-bench conformance`: multiprobe's `KprobeMultiOpts` path against libbpf 1.7's
//! `bpf_program__attach_kprobe_multi_opts`, scenario by scenario, in one process on one boot.
//!
//! The scenarios are those of libbpf's kprobe_multi selftests: patterns, symbols with
//! shuffled cookies, addresses with cookies, return probes, sessions, `unique_match`, every
//! invalid option combination, errors of the kernel (unknown, repeated, untraceable and too
//! many targets), link info. Each runs through both, on the same test object
//! (bpf/test_kprobe_multi.bpf.o) loaded once by each: attach, 3 reads and 5 writes by this
//! thread (the only one the programs count), the maps read, link info read, detach, the
//! maps cleared. The outcomes compared: the errno of a refusal, or the runs per function,
//! the (function, cookie) pairs seen, session entries and returns, link info's count,
//! flags, addresses and cookies.
//!
//! Output: `MPCONF {...}` per scenario between `MPCONF-BEGIN` and `MPCONF-END`; exit code 1
//! when an outcome differs and [`DOCUMENTED`] does not give the reason for that kernel.
//!
//! ```text
//! multiprobe-bench conformance [--filter SUBSTR]
//! ```

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::BorrowedFd;

use multiprobe::kprobe_multi::{KprobeMultiLink, KprobeMultiOpts};
use multiprobe::{LoadedObject, Map, Object, features};
use serde_json::{Value, json};

use crate::libbpf::{self, MultiOpts};

/// Printed before the first record.
pub const BEGIN: &str = "MPCONF-BEGIN";
/// Prefix of every record line.
pub const LINE: &str = "MPCONF ";
/// Printed after the last record.
pub const END: &str = "MPCONF-END";

/// Differences that remain, by scenario and kernel (`major.minor` prefix of the release,
/// or `*`), with the reason; docs/kprobe-multi.md lists them too.
pub const DOCUMENTED: &[(&str, &str, &str)] = &[
    (
        "repeated_address",
        "*",
        "multiprobe refuses a repeated address (EINVAL) where the kernel takes it: 6.12 runs the program once per \
         call, 7.2 twice, and a split attach would attach it twice anywhere",
    ),
    // 6.1 has no kprobe_multi (no CONFIG_FPROBE): the kernel answers EOPNOTSUPP to libbpf,
    // after multiprobe's own checks of the request have answered first.
    ("repeated_symbol", "6.1", "multiprobe refuses the repeated name (ENOENT) before asking the kernel"),
    ("too_many_targets", "6.1", "multiprobe checks the kernel's limit (E2BIG) before asking the kernel"),
    ("plain_kprobe_program", "6.1", "multiprobe refuses the program's kind (EINVAL) before asking the kernel"),
];

/// One scenario: libbpf's arguments, written once for both.
#[derive(Debug, Clone, Default)]
struct Case {
    name: &'static str,
    program: &'static str,
    pattern: Option<&'static str>,
    syms: Option<Vec<&'static str>>,
    addrs: Option<Vec<u64>>,
    cookies: Option<Vec<u64>>,
    /// libbpf's `cnt` when it differs from the list's length (multiprobe's `cnt: Some`).
    cnt: Option<usize>,
    retprobe: bool,
    session: bool,
    unique_match: bool,
}

impl Case {
    fn multiprobe(&self) -> KprobeMultiOpts {
        KprobeMultiOpts {
            pattern: self.pattern.map(String::from),
            syms: self.syms.as_ref().map(|v| v.iter().map(|s| s.to_string()).collect()),
            addrs: self.addrs.clone(),
            cookies: self.cookies.clone(),
            cnt: self.cnt,
            retprobe: self.retprobe,
            session: self.session,
            unique_match: self.unique_match,
            ..Default::default()
        }
    }

    fn libbpf(&self) -> MultiOpts {
        let len = self.syms.as_ref().map(Vec::len).or(self.addrs.as_ref().map(Vec::len)).unwrap_or(0);
        MultiOpts {
            pattern: self.pattern.map(|p| CString::new(p).unwrap()),
            syms: self.syms.as_ref().map(|v| v.iter().map(|s| CString::new(*s).unwrap()).collect()),
            addrs: self.addrs.clone(),
            cookies: self.cookies.clone(),
            cnt: self.cnt.unwrap_or(len),
            retprobe: self.retprobe,
            session: self.session,
            unique_match: self.unique_match,
        }
    }
}

/// The scenarios; `read`/`write` are the symbol addresses of vfs_read and vfs_write.
fn cases(read: u64, write: u64) -> Vec<Case> {
    let e = |name| Case { name, program: "entry", ..Default::default() };
    let syms = |s: &[&'static str]| Some(s.to_vec());
    let too_many: Vec<u64> = (1..=(1u64 << 20) + 1).collect();
    vec![
        Case { pattern: Some("vfs_read"), ..e("pattern_exact_name") },
        Case { pattern: Some("vfs_rea*"), ..e("pattern_glob") },
        Case { syms: syms(&["vfs_write", "vfs_read"]), cookies: Some(vec![2, 1]), ..e("syms_shuffled_cookies") },
        Case { addrs: Some(vec![write, read]), cookies: Some(vec![20, 10]), ..e("addrs_cookies") },
        Case { program: "ret", syms: syms(&["vfs_read"]), retprobe: true, ..e("retprobe_syms") },
        Case { syms: syms(&["vfs_read"]), retprobe: true, ..e("retprobe_entry_program") },
        Case {
            program: "session",
            syms: syms(&["vfs_read", "vfs_write"]),
            cookies: Some(vec![2, 1]),
            session: true,
            ..e("session_cookies")
        },
        Case { syms: syms(&["vfs_read"]), session: true, ..e("session_with_kprobe_multi_program") },
        Case { pattern: Some("vfs_rea?"), unique_match: true, ..e("unique_match_one") },
        Case { pattern: Some("vfs_*"), unique_match: true, ..e("unique_match_many") },
        Case { pattern: Some("mp_no_such_function_*"), ..e("pattern_no_match") },
        Case { syms: syms(&["mp_no_such_function"]), ..e("unknown_symbol") },
        Case { syms: syms(&["vfs_read", "vfs_read"]), ..e("repeated_symbol") },
        Case { addrs: Some(vec![read, read]), ..e("repeated_address") },
        Case { addrs: Some(vec![write + 1]), ..e("untraceable_address") },
        Case { addrs: Some(too_many), ..e("too_many_targets") },
        Case { program: "plain", syms: syms(&["vfs_read"]), ..e("plain_kprobe_program") },
        // Every invalid combination of options.
        e("invalid_nothing"),
        Case { pattern: Some("vfs_read"), syms: syms(&["vfs_read"]), ..e("invalid_pattern_and_syms") },
        Case { pattern: Some("vfs_read"), addrs: Some(vec![read]), ..e("invalid_pattern_and_addrs") },
        Case { pattern: Some("vfs_read"), cookies: Some(vec![1]), ..e("invalid_pattern_and_cookies") },
        Case { pattern: Some("vfs_read"), cnt: Some(1), ..e("invalid_pattern_and_cnt") },
        Case { syms: syms(&[]), ..e("invalid_empty_syms") },
        Case { addrs: Some(vec![]), ..e("invalid_empty_addrs") },
        Case { syms: syms(&["vfs_read"]), unique_match: true, ..e("invalid_unique_match_without_pattern") },
        Case { syms: syms(&["vfs_read"]), addrs: Some(vec![read]), ..e("invalid_syms_and_addrs") },
        Case { syms: syms(&["vfs_read"]), retprobe: true, session: true, ..e("invalid_retprobe_and_session") },
    ]
}

/// What one loader made of a scenario.
#[derive(Debug, PartialEq)]
enum Outcome {
    Refused(i32),
    Attached(Value),
}

impl Outcome {
    fn json(&self) -> Value {
        match self {
            Outcome::Refused(errno) => json!({"errno": errno}),
            Outcome::Attached(v) => v.clone(),
        }
    }
}

struct Args {
    filter: Option<String>,
}

/// Runs the scenarios; the exit code.
pub fn run(args: &[String]) -> i32 {
    let mut a = Args { filter: None };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--filter" => a.filter = it.next().cloned(),
            other => {
                eprintln!("conformance: unknown argument {other:?}");
                return 2;
            }
        }
    }
    let _ = multiprobe::raw::raise_memlock_limit();
    match run_all(&a) {
        Ok(differ) => i32::from(differ > 0),
        Err(e) => {
            eprintln!("conformance: {e}");
            2
        }
    }
}

fn run_all(args: &Args) -> Result<usize, Box<dyn std::error::Error>> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")?.trim().to_string();
    let kallsyms = Kallsyms::read()?;
    let (read, write) =
        (kallsyms.addr("vfs_read").ok_or("no vfs_read")?, kallsyms.addr("vfs_write").ok_or("no vfs_write")?);
    let sessions = features::kprobe_session().is_yes();
    let tid = gettid();

    let mut obj = Object::parse("test_kprobe_multi", crate::KPROBE_MULTI_OBJ)?;
    obj.set_global("target_tid", &tid)?;
    obj.program_mut("session").ok_or("no session program")?.set_autoload(sessions);
    let mp = obj.load()?;
    let mut lb = libbpf::Object::open("test_kprobe_multi", crate::KPROBE_MULTI_OBJ, None)?;
    lb.set_rodata(&tid.to_ne_bytes())?;
    lb.set_autoload("session", sessions)?;
    lb.load()?;

    let mut w = Workload::new()?;
    println!("{BEGIN}");
    let mut differ = 0;
    for case in cases(read, write) {
        if args.filter.as_ref().is_some_and(|f| !case.name.contains(f.as_str())) {
            continue;
        }
        if case.program == "session" && !sessions {
            // The program cannot load here (6.10+): the same refusal by the kernel in both.
            emit(&json!({"case": case.name, "skipped": "kprobe.session programs need kernel 6.10+"}));
            continue;
        }
        let m = run_multiprobe(&mp, &case, &mut w, &kallsyms)?;
        let l = run_libbpf(&lb, &case, &mut w, &kallsyms)?;
        let same = m == l;
        let documented = DOCUMENTED
            .iter()
            .find(|(c, k, _)| *c == case.name && (*k == "*" || release.starts_with(&format!("{k}."))))
            .map(|(_, _, why)| *why);
        if !same && documented.is_none() {
            differ += 1;
        }
        emit(&json!({
            "case": case.name, "same": same, "documented": documented,
            "multiprobe": m.json(), "libbpf": l.json(),
        }));
    }
    println!("{END}");
    Ok(differ)
}

fn emit(v: &Value) {
    println!("{LINE}{v}");
    let _ = std::io::stdout().flush();
}

fn gettid() -> u32 {
    // The thread id: this process's main thread, which runs every scenario.
    std::fs::read_link("/proc/thread-self").ok().and_then(|p| p.file_name()?.to_str()?.parse().ok()).unwrap_or(0)
}

/// The calls the programs count: 3 reads (vfs_read) and 5 writes (vfs_write), files opened
/// beforehand.
struct Workload {
    zero: File,
    null: File,
}

impl Workload {
    fn new() -> std::io::Result<Workload> {
        Ok(Workload { zero: File::open("/dev/zero")?, null: File::options().write(true).open("/dev/null")? })
    }

    fn run(&mut self) {
        let mut buf = [0u8; 8];
        for _ in 0..3 {
            let _ = self.zero.read(&mut buf);
        }
        for _ in 0..5 {
            let _ = self.null.write(&buf);
        }
    }
}

fn run_multiprobe(
    loaded: &LoadedObject,
    case: &Case,
    w: &mut Workload,
    ks: &Kallsyms,
) -> Result<Outcome, Box<dyn std::error::Error>> {
    let prog = loaded.program(case.program).ok_or("no program")?;
    let link = match prog.attach_kprobe_multi_opts(&case.multiprobe()) {
        Ok(link) => link,
        Err(e) => return Ok(Outcome::Refused(e.errno())),
    };
    w.run();
    let maps = read_maps(|name| loaded.map(name).cloned(), ks)?;
    let info = multiprobe_info(&link);
    drop(link);
    clear(|name| loaded.map(name).cloned())?;
    Ok(Outcome::Attached(json!({"maps": maps, "info": info})))
}

fn run_libbpf(
    obj: &libbpf::Object,
    case: &Case,
    w: &mut Workload,
    ks: &Kallsyms,
) -> Result<Outcome, Box<dyn std::error::Error>> {
    let prog = obj.program(case.program)?;
    let link = match prog.attach_kprobe_multi_opts(&case.libbpf()) {
        Ok(link) => link,
        Err(e) => return Ok(Outcome::Refused(e.raw_os_error().unwrap_or(0))),
    };
    w.run();
    let map = |name: &str| obj.map_fd(name).ok().and_then(|fd| wrap(fd, name));
    let maps = read_maps(map, ks)?;
    let info = raw_info(link.fd());
    drop(link);
    clear(map)?;
    Ok(Outcome::Attached(json!({"maps": maps, "info": info})))
}

/// A libbpf map's fd, duplicated, as a multiprobe map (for the same typed reads).
fn wrap(fd: BorrowedFd<'_>, name: &str) -> Option<Map> {
    Map::from_fd(fd.try_clone_to_owned().ok()?, name).ok()
}

const MAPS: &[&str] = &["hits", "pairs", "session_entries", "session_returns", "session_cookie_ok"];

/// Every map's contents, functions by name: `{"hits": {"vfs_read": 3}, "pairs":
/// {"vfs_read/1": 3}, ...}`.
fn read_maps(map: impl Fn(&str) -> Option<Map>, ks: &Kallsyms) -> Result<Value, Box<dyn std::error::Error>> {
    let mut out = serde_json::Map::new();
    for &name in MAPS {
        let m = map(name).ok_or_else(|| format!("no map {name}"))?;
        let mut entries = BTreeMap::new();
        if name == "pairs" {
            for k in m.keys::<[u64; 2]>() {
                let k = k?;
                let v: u64 = m.get(&k)?.unwrap_or(0);
                entries.insert(format!("{}/{}", symbol(ks, k[0]), k[1]), v);
            }
        } else {
            for k in m.keys::<u64>() {
                let k = k?;
                let v: u64 = m.get(&k)?.unwrap_or(0);
                entries.insert(symbol(ks, k), v);
            }
        }
        if !entries.is_empty() {
            out.insert(name.into(), json!(entries));
        }
    }
    Ok(Value::Object(out))
}

fn clear(map: impl Fn(&str) -> Option<Map>) -> Result<(), Box<dyn std::error::Error>> {
    for &name in MAPS {
        map(name).ok_or_else(|| format!("no map {name}"))?.clear()?;
    }
    Ok(())
}

/// The text symbols of `/proc/kallsyms` by address (the library keeps its reader private).
struct Kallsyms(BTreeMap<u64, String>);

impl Kallsyms {
    fn read() -> std::io::Result<Kallsyms> {
        let text = std::fs::read_to_string("/proc/kallsyms")?;
        let mut by_addr = BTreeMap::new();
        for line in text.lines() {
            let mut f = line.split_whitespace();
            let (Some(a), Some(t), Some(name)) = (f.next(), f.next(), f.next()) else { continue };
            if matches!(t, "t" | "T")
                && let Ok(a) = u64::from_str_radix(a, 16)
            {
                by_addr.entry(a).or_insert_with(|| name.to_string());
            }
        }
        Ok(Kallsyms(by_addr))
    }

    fn addr(&self, name: &str) -> Option<u64> {
        self.0.iter().find(|(_, n)| *n == name).map(|(a, _)| *a)
    }
}

/// The function at `addr` (a function's entry, or a few bytes past it with IBT).
fn symbol(ks: &Kallsyms, addr: u64) -> String {
    match ks.0.range(..=addr).next_back() {
        Some((a, name)) if addr - a < 64 => name.clone(),
        _ => format!("{addr:#x}"),
    }
}

/// Link info as multiprobe reports it: count, flags, (address, cookie) in its order.
fn multiprobe_info(link: &KprobeMultiLink) -> Value {
    match link.info() {
        Ok(i) => json!({
            "count": i.count, "flags": i.flags,
            "targets": i.targets.iter().map(|t| json!([format!("{:#x}", t.address), t.cookie])).collect::<Vec<_>>(),
        }),
        Err(e) => json!({"error": e.to_string()}),
    }
}

/// Link info of libbpf's link, read from the kernel as libbpf's users do
/// (`bpf_link_get_info_by_fd`), at the level multiprobe reads it on this kernel: addresses
/// from 6.6, cookies from 6.9 (before, the kernel has none to give).
fn raw_info(fd: BorrowedFd<'_>) -> Value {
    use multiprobe::features::LinkInfoLevel;
    let level = features::kprobe_multi_link_info();
    let first = match multiprobe::raw::link_info(fd, None, None) {
        Ok(i) => i,
        Err(e) => return json!({"error": e.to_string()}),
    };
    if level < LinkInfoLevel::Targets || first.kmulti_count == 0 {
        return json!({"count": null, "flags": null, "targets": []});
    }
    let n = first.kmulti_count as usize;
    let (mut addrs, mut cookies) = (vec![0u64; n], vec![0u64; n]);
    let want_cookies = level >= LinkInfoLevel::Cookies;
    let full = match multiprobe::raw::link_info(fd, Some(&mut addrs), want_cookies.then_some(&mut cookies[..])) {
        Ok(i) => i,
        Err(e) => return json!({"error": e.to_string()}),
    };
    let mut targets: Vec<(u64, Option<u64>)> =
        addrs.iter().zip(&cookies).map(|(&a, &c)| (a, want_cookies.then_some(c))).collect();
    targets.sort_by_key(|t| t.0);
    json!({
        "count": full.kmulti_count, "flags": full.kmulti_flags,
        "targets": targets.iter().map(|(a, c)| json!([format!("{a:#x}"), c])).collect::<Vec<_>>(),
    })
}
