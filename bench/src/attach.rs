//! Attach and detach: multiprobe (warm: this process already read the listing; cold: a fresh
//! process), libbpf, and the kernel floor (`BPF_LINK_CREATE` with addresses resolved before
//! the clock starts), alternating per repetition.

use std::ffi::CString;

use multiprobe::kprobe_multi::KprobeMulti;
use multiprobe::raw as sys;
use multiprobe::symbols::{Glob, Selection, TraceableFunctions};
use multiprobe::{LoadedObject, Object};

use crate::report::{self, Series};
use crate::{ALL, BENCH_OBJ, Config, PATTERNS, child, libbpf, rotated, timed};

/// An attach and a detach time.
pub type Sample = (u64, u64);

/// Runs `one(imp)` for every implementation in every repetition, rotating the order, and
/// emits the attach and detach series of each. An implementation that fails once is
/// reported and left out of later repetitions.
pub fn measure(
    group: &str,
    case: &str,
    matches: usize,
    imps: &[&str],
    reps: usize,
    mut one: impl FnMut(&str) -> Result<Sample, String>,
) {
    let mut attach: Vec<Vec<u64>> = vec![Vec::new(); imps.len()];
    let mut detach: Vec<Vec<u64>> = vec![Vec::new(); imps.len()];
    let mut failed = vec![false; imps.len()];
    for rep in 0..reps {
        for imp in rotated(imps, rep) {
            let i = imps.iter().position(|x| *x == imp).unwrap();
            if failed[i] {
                continue;
            }
            match one(imp) {
                Ok((a, d)) => {
                    attach[i].push(a);
                    detach[i].push(d);
                }
                Err(e) => {
                    failed[i] = true;
                    report::emit_error(group, case, imp, &e);
                }
            }
        }
    }
    for (i, imp) in imps.iter().enumerate() {
        if attach[i].is_empty() {
            continue;
        }
        let matches = Some(matches);
        let a = std::mem::take(&mut attach[i]);
        let d = std::mem::take(&mut detach[i]);
        let group_detach = format!("{group}-detach");
        report::emit(&Series { group, case, imp, matches, unit: "ns", samples: a });
        report::emit(&Series { group: &group_detach, case, imp, matches, unit: "ns", samples: d });
    }
}

/// The benchmark object loaded by both loaders.
pub struct Loaded {
    pub multiprobe: LoadedObject,
    pub libbpf: libbpf::Object,
}

impl Loaded {
    pub fn new() -> Result<Loaded, Box<dyn std::error::Error>> {
        let multiprobe = Object::parse("bench.bpf.o", BENCH_OBJ)?.load()?;
        let mut lb = libbpf::Object::open("bench.bpf.o", BENCH_OBJ, None)?;
        lb.load()?;
        Ok(Loaded { multiprobe, libbpf: lb })
    }
}

/// The kernel floor: one `BPF_LINK_CREATE` with the given addresses, then its close.
pub fn floor(prog: &multiprobe::Program, addrs: &[u64]) -> Result<Sample, String> {
    let (fd, a) = timed(|| {
        sys::link_create_kprobe_multi(
            prog.fd(),
            sys::attach_type::TRACE_KPROBE_MULTI,
            0,
            sys::KprobeMultiTargets::Addresses(addrs),
            None,
        )
    });
    let fd = fd.map_err(|e| format!("BPF_LINK_CREATE with {} addresses: {e}", addrs.len()))?;
    let ((), d) = timed(|| drop(fd));
    Ok((a, d))
}

fn multiprobe_attach(prog: &multiprobe::Program, spec: &KprobeMulti) -> Result<Sample, String> {
    let (link, a) = timed(|| prog.attach_kprobe_multi(spec));
    let link = link.map_err(|e| e.to_string())?;
    let ((), d) = timed(|| drop(link));
    Ok((a, d))
}

fn libbpf_attach(prog: &libbpf::Program<'_>, targets: libbpf::Targets<'_>) -> Result<Sample, String> {
    let (link, a) = timed(|| prog.attach_kprobe_multi(targets));
    let link = link.map_err(|e| e.to_string())?;
    let ((), d) = timed(|| link.destroy());
    Ok((a, d))
}

/// The small and medium patterns.
pub fn patterns(config: &Config, listing: &TraceableFunctions) -> Result<(), Box<dyn std::error::Error>> {
    let loaded = Loaded::new()?;
    let prog = loaded.multiprobe.program("empty").ok_or("no program `empty`")?;
    let lprog = loaded.libbpf.program("empty")?;
    for &pattern in PATTERNS {
        let glob = Glob::new(pattern);
        let functions = listing.matching(&glob);
        // An exact name attaches the first traceable function of that name (libbpf's fast
        // path and the kernel's by-name lookup both do); the floor gets that one address.
        let count = if glob.is_literal() { functions.len().min(1) } else { functions.len() };
        let addrs: Vec<u64> = functions.iter().take(count).map(|f| f.address).collect();
        report::progress(&format!("attach {pattern} ({count} functions)"));
        let spec = KprobeMulti::pattern(pattern);
        let cpattern = CString::new(pattern).unwrap();
        let imps = ["multiprobe", "multiprobe-cold", "libbpf", "libbpf-cold", "floor"];
        measure("attach", pattern, count, &imps, config.reps, |imp| match imp {
            "multiprobe" => multiprobe_attach(prog, &spec),
            "multiprobe-cold" => child::cold_attach(pattern, None),
            "libbpf-cold" => child::cold_libbpf_attach(pattern),
            "libbpf" => libbpf_attach(&lprog, libbpf::Targets::Pattern(&cpattern)),
            _ => floor(prog, &addrs),
        });
    }
    Ok(())
}

/// Every traceable function but the deny list: multiprobe resolves `*` with its selection
/// (deny list on); libbpf and the floor get the addresses multiprobe resolved, since a
/// pattern cannot exclude anything in libbpf.
pub fn all(config: &Config, listing: &TraceableFunctions) -> Result<(), Box<dyn std::error::Error>> {
    let loaded = Loaded::new()?;
    let prog = loaded.multiprobe.program("empty").ok_or("no program `empty`")?;
    let lprog = loaded.libbpf.program("empty")?;
    let selection = Selection::new().include(ALL);
    let functions = selection.select(listing);
    let addrs: Vec<u64> = functions.iter().map(|f| f.address).collect();
    report::progress(&format!("attach all ({} functions)", addrs.len()));
    let spec = KprobeMulti::selection(selection);
    let imps = ["multiprobe", "libbpf", "floor"];
    measure("attach", ALL, addrs.len(), &imps, config.all_reps, |imp| match imp {
        "multiprobe" => multiprobe_attach(prog, &spec),
        "libbpf" => libbpf_attach(&lprog, libbpf::Targets::Addresses(&addrs)),
        _ => floor(prog, &addrs),
    });
    report::progress("attach all, cold");
    measure("attach", ALL, addrs.len(), &["multiprobe-cold"], 1, |_| child::cold_attach(ALL, None));
    // Cold with the per-boot listing file an earlier process wrote, as every `multiprobe`
    // command but a boot's first.
    report::progress("attach all, cold with the per-boot listing file");
    let cache_dir = "/run/mpbench-listing-cache-all";
    match child::cold_attach("vfs_read*", Some(cache_dir)) {
        Ok(_) => measure("attach-alt", ALL, addrs.len(), &["multiprobe-cold-diskcache"], 1, |_| {
            child::cold_attach(ALL, Some(cache_dir))
        }),
        Err(e) => report::emit_error("attach-alt", "disk cache prime", "multiprobe-cold-diskcache", &e),
    }
    let _ = std::fs::remove_dir_all(cache_dir);

    // With one cookie per function, as `count` attaches where it cannot find counters by
    // address: cookies go with entry (symbol) addresses, which the library computes from
    // /proc/kallsyms once and keeps (this process computed them already: warm). The floor
    // gets the addresses and cookies the kernel reported for multiprobe's link (link info),
    // resolved before the clock.
    report::progress("attach all with cookies");
    let with_cookies = KprobeMulti::functions_with_cookies(functions.iter().cloned().zip(0..));
    let (entries, cookies): (Vec<u64>, Vec<u64>) = {
        let link = prog.attach_kprobe_multi(&with_cookies)?;
        let info = link.info()?;
        info.targets.iter().map(|t| (t.address, t.cookie.unwrap_or(0))).unzip()
    };
    measure("attach", "* (cookies)", addrs.len(), &["multiprobe", "floor"], config.all_reps.min(2), |imp| match imp {
        "multiprobe" => multiprobe_attach(prog, &with_cookies),
        _ => floor_with_cookies(prog, &entries, &cookies),
    });
    Ok(())
}

/// The kernel floor with cookies.
fn floor_with_cookies(prog: &multiprobe::Program, addrs: &[u64], cookies: &[u64]) -> Result<Sample, String> {
    let (fd, a) = timed(|| {
        sys::link_create_kprobe_multi(
            prog.fd(),
            sys::attach_type::TRACE_KPROBE_MULTI,
            0,
            sys::KprobeMultiTargets::Addresses(addrs),
            Some(cookies),
        )
    });
    let fd = fd.map_err(|e| format!("BPF_LINK_CREATE with {} addresses and cookies: {e}", addrs.len()))?;
    let ((), d) = timed(|| drop(fd));
    Ok((a, d))
}
