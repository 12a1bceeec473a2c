//! Where multiprobe's time goes, and prototypes of other ways to resolve a pattern.
//!
//! Breakdown: reading each listing the kernel offers, the cached read (which only checks
//! that boot and modules are unchanged), and matching a pattern against the listing.
//!
//! Prototypes (none of them is in the library; each is measured end to end, attach and
//! detach, against the same patterns):
//! - `names+byname`: read the names-only `available_filter_functions` (cheaper for the
//!   kernel to format: no addresses), match, and let the kernel resolve the names
//!   (`BPF_LINK_CREATE` with `syms`). By name the kernel attaches only the first traceable
//!   function of each name: duplicated names lose their other copies.
//! - `tracefs-instance`: the kernel matches the glob itself: write it to
//!   `set_ftrace_filter` of a private tracefs instance, read back the matched names, attach
//!   by name (same duplicate caveat). The instance is made once per run, outside the clock.
//! - `floor-by-name`: the kernel's part of both: `BPF_LINK_CREATE` with the (deduplicated)
//!   names resolved before the clock starts.
//! - `multiprobe-cold-diskcache`: a fresh process with the library's per-boot listing file
//!   (`Listing::cache_dir`) already written by an earlier process.
//! - `index` (matching only): a name-sorted index of the listing, built once per boot; a
//!   pattern with a literal prefix is a binary search plus a scan of the range.

use std::collections::HashSet;
use std::ffi::{CStr, CString};
use std::io::Write;
use std::path::{Path, PathBuf};

use multiprobe::raw as sys;
use multiprobe::symbols::{Glob, Selection, TraceableFunctions, entry_addresses};

use crate::attach::{Loaded, Sample, measure};
use crate::report::{self, Series};
use crate::{ALL, Config, PATTERNS, child, rotated, timed};

/// Reads each listing `reps` times (alternating), then matches every pattern; returns the
/// listing, kept in the library's cache (later attaches in this process are warm).
pub fn listing_breakdown(config: &Config) -> Result<TraceableFunctions, Box<dyn std::error::Error>> {
    report::progress("listing reads");
    let listing = TraceableFunctions::read()?;
    let cases = ["addrs", "names", "kallsyms", "cached"];
    let mut samples: Vec<Vec<u64>> = vec![Vec::new(); cases.len()];
    let mut sizes = [0usize; 4];
    for rep in 0..config.reps {
        for case in rotated(&cases, rep) {
            let i = cases.iter().position(|c| *c == case).unwrap();
            let (len, ns) = match case {
                "addrs" => timed(|| TraceableFunctions::read_uncached().map(|l| l.text().len()).unwrap_or(0)),
                "names" => timed(|| TraceableFunctions::read_names().map(|l| l.text().len()).unwrap_or(0)),
                "kallsyms" => timed(|| std::fs::read("/proc/kallsyms").map(|d| d.len()).unwrap_or(0)),
                _ => timed(|| TraceableFunctions::read().map(|l| l.text().len()).unwrap_or(0)),
            };
            sizes[i] = len;
            samples[i].push(ns);
        }
    }
    for ((case, s), size) in cases.iter().zip(samples).zip(sizes) {
        report::emit(&Series { group: "listing", case, imp: "multiprobe", matches: None, unit: "ns", samples: s });
        report::emit_value(
            &serde_json::json!({"group": "info", "case": format!("listing {case}"), "impl": "", "bytes": size}),
        );
    }
    report::emit_value(&serde_json::json!({
        "group": "info", "case": "functions", "impl": "",
        "traceable": listing.len(),
        "all_selected": Selection::new().include(ALL).select(&listing).len(),
    }));

    // Entry addresses (for cookies and count's slot table): computed from /proc/kallsyms
    // on first use in a process (no per-boot file here), then kept with the listing.
    report::progress("entry addresses");
    let all_functions = Selection::new().include(ALL).select(&listing);
    let (first, compute_ns) = timed(|| entry_addresses(&all_functions).map(|e| e.len()));
    first?;
    let mut kept = Vec::new();
    for _ in 0..config.reps {
        let (r, ns) = timed(|| entry_addresses(&all_functions).map(|e| e.len()));
        r?;
        kept.push(ns);
    }
    let n = Some(all_functions.len());
    report::emit(&Series {
        group: "listing",
        case: "entries compute",
        imp: "multiprobe",
        matches: n,
        unit: "ns",
        samples: vec![compute_ns],
    });
    report::emit(&Series {
        group: "listing",
        case: "entries kept",
        imp: "multiprobe",
        matches: n,
        unit: "ns",
        samples: kept,
    });
    drop(all_functions);

    report::progress("matching");
    let (index, build) = timed(|| Index::new(&listing));
    report::emit(&Series {
        group: "listing",
        case: "index build",
        imp: "index",
        matches: None,
        unit: "ns",
        samples: vec![build],
    });
    let all = Selection::new().include(ALL);
    for pattern in PATTERNS.iter().copied().chain([ALL]) {
        let glob = Glob::new(pattern);
        let mut scan = Vec::new();
        let mut indexed = Vec::new();
        let mut n = 0;
        for _ in 0..config.reps {
            let (found, ns) =
                timed(|| if pattern == ALL { all.select(&listing).len() } else { listing.matching(&glob).len() });
            n = found;
            scan.push(ns);
            let (found_idx, ns) = timed(|| index.matching(&glob, pattern == ALL));
            if found_idx != found {
                report::emit_error("match", pattern, "index", &format!("index found {found_idx}, scan {found}"));
            }
            indexed.push(ns);
        }
        let m = Some(n);
        report::emit(&Series {
            group: "match",
            case: pattern,
            imp: "multiprobe",
            matches: m,
            unit: "ns",
            samples: scan,
        });
        report::emit(&Series { group: "match", case: pattern, imp: "index", matches: m, unit: "ns", samples: indexed });
    }
    Ok(listing)
}

/// A name-sorted view of a listing: (name, module, address), built once.
struct Index {
    entries: Vec<(Vec<u8>, Option<Vec<u8>>, u64)>,
    deny: Vec<Glob>,
}

impl Index {
    fn new(listing: &TraceableFunctions) -> Index {
        let mut entries: Vec<(Vec<u8>, Option<Vec<u8>>, u64)> = Vec::new();
        for line in listing.text().split(|&b| b == b'\n') {
            let mut parts = line.splitn(3, |&b| b == b' ');
            let (Some(addr), Some(name)) = (parts.next(), parts.next()) else { continue };
            if name.starts_with(b"__ftrace_invalid_address__") {
                continue;
            }
            let module = parts.next().map(|m| m.trim_ascii_start().trim_ascii_end().to_vec());
            let addr = std::str::from_utf8(addr).ok().and_then(|a| u64::from_str_radix(a, 16).ok()).unwrap_or(0);
            entries.push((name.to_vec(), module, addr));
        }
        entries.sort_unstable();
        let deny = multiprobe::symbols::DENY_LIST.iter().map(|p| Glob::new(p)).collect();
        Index { entries, deny }
    }

    /// Matches; the result is materialised like the library's (name, module, address).
    fn matching(&self, glob: &Glob, with_deny: bool) -> usize {
        let pattern = glob.as_str().as_bytes();
        let prefix_len = pattern.iter().position(|&b| b == b'*' || b == b'?').unwrap_or(pattern.len());
        let prefix = &pattern[..prefix_len];
        let start = self.entries.partition_point(|e| e.0.as_slice() < prefix);
        let mut out: Vec<(String, Option<String>, u64)> = Vec::new();
        for e in &self.entries[start..] {
            if !e.0.starts_with(prefix) {
                break;
            }
            if glob.matches(&e.0) && !(with_deny && self.deny.iter().any(|d| d.matches(&e.0))) {
                out.push((
                    String::from_utf8_lossy(&e.0).into_owned(),
                    e.1.as_ref().map(|m| String::from_utf8_lossy(m).into_owned()),
                    e.2,
                ));
            }
        }
        out.len()
    }
}

/// A private tracefs instance whose `set_ftrace_filter` does the matching.
struct Instance {
    dir: PathBuf,
}

impl Instance {
    fn new() -> std::io::Result<Instance> {
        let root = multiprobe::symbols::tracefs_root().map_err(std::io::Error::other)?;
        let dir = root.join("instances").join(format!("mpbench-{}", std::process::id()));
        std::fs::create_dir(&dir)?;
        Ok(Instance { dir })
    }

    /// The names the kernel matches for `pattern` (deduplicated; module tags dropped).
    fn names(&self, pattern: &str) -> std::io::Result<Vec<CString>> {
        let filter = self.dir.join("set_ftrace_filter");
        {
            let mut f = std::fs::OpenOptions::new().write(true).truncate(true).open(&filter)?;
            f.write_all(pattern.as_bytes())?;
        }
        let text = std::fs::read(&filter)?;
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for line in text.split(|&b| b == b'\n') {
            if line.is_empty() || line.starts_with(b"#") {
                continue;
            }
            let name = line.split(|&b| b == b' ').next().unwrap_or(line);
            if seen.insert(name) {
                out.push(CString::new(name).unwrap_or_default());
            }
        }
        Ok(out)
    }

    fn clear(&self) {
        let _ = std::fs::OpenOptions::new().write(true).truncate(true).open(self.dir.join("set_ftrace_filter"));
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.clear();
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Attach by names: the kernel resolves them.
fn link_by_name(prog: &multiprobe::Program, names: &[CString]) -> Result<Sample, String> {
    let refs: Vec<&CStr> = names.iter().map(CString::as_c_str).collect();
    let (fd, a) = timed(|| {
        sys::link_create_kprobe_multi(
            prog.fd(),
            sys::attach_type::TRACE_KPROBE_MULTI,
            0,
            sys::KprobeMultiTargets::Symbols(&refs),
            None,
        )
    });
    let fd = fd.map_err(|e| format!("BPF_LINK_CREATE with {} names: {e}", names.len()))?;
    let ((), d) = timed(|| drop(fd));
    Ok((a, d))
}

fn dedup_names(functions: &[multiprobe::symbols::Function]) -> Vec<CString> {
    let mut seen = HashSet::new();
    functions
        .iter()
        .filter(|f| seen.insert(f.name.as_str()))
        .map(|f| CString::new(f.name.as_str()).unwrap_or_default())
        .collect()
}

/// The prototypes, pattern by pattern.
pub fn run(config: &Config, listing: &TraceableFunctions) {
    if let Err(e) = run_inner(config, listing) {
        report::emit_error("attach-alt", "", "", &e);
    }
}

fn run_inner(config: &Config, listing: &TraceableFunctions) -> Result<(), Box<dyn std::error::Error>> {
    let loaded = Loaded::new()?;
    let prog = loaded.multiprobe.program("empty").ok_or("no program `empty`")?;
    let (instance, mkdir_ns) = timed(Instance::new);
    let instance = match instance {
        Ok(i) => {
            report::emit(&Series {
                group: "listing",
                case: "tracefs instance mkdir",
                imp: "tracefs-instance",
                matches: None,
                unit: "ns",
                samples: vec![mkdir_ns],
            });
            Some(i)
        }
        Err(e) => {
            report::emit_error("attach-alt", "instance", "tracefs-instance", &e);
            None
        }
    };
    // The per-boot listing file, written once by an untimed child.
    let cache_dir = "/run/mpbench-listing-cache";
    let primed = child::cold_attach("vfs_read*", Some(cache_dir));
    if let Err(e) = &primed {
        report::emit_error("attach-alt", "disk cache prime", "multiprobe-cold-diskcache", e);
    }
    for &pattern in PATTERNS {
        let glob = Glob::new(pattern);
        let functions = listing.matching(&glob);
        let names =
            if glob.is_literal() { dedup_names(&functions[..functions.len().min(1)]) } else { dedup_names(&functions) };
        report::progress(&format!("resolution prototypes: {pattern}"));
        let mut imps = vec!["floor-by-name"];
        if !glob.is_literal() {
            imps.push("names+byname");
            if instance.is_some() {
                imps.push("tracefs-instance");
            }
            if primed.is_ok() {
                imps.push("multiprobe-cold-diskcache");
            }
        }
        measure("attach-alt", pattern, names.len(), &imps, config.reps, |imp| match imp {
            "floor-by-name" => link_by_name(prog, &names),
            "names+byname" => {
                let (names, resolve_ns) = timed(|| -> Result<Vec<CString>, String> {
                    let listing = TraceableFunctions::read_names().map_err(|e| e.to_string())?;
                    Ok(dedup_names(&listing.matching(&glob)))
                });
                let (a, d) = link_by_name(prog, &names?)?;
                Ok((resolve_ns + a, d))
            }
            "tracefs-instance" => {
                let inst = instance.as_ref().unwrap();
                let (names, resolve_ns) = timed(|| inst.names(pattern));
                let names = names.map_err(|e| e.to_string())?;
                let (a, d) = link_by_name(prog, &names)?;
                inst.clear();
                Ok((resolve_ns + a, d))
            }
            _ => child::cold_attach(pattern, Some(cache_dir)),
        });
    }
    let _ = std::fs::remove_dir_all(Path::new(cache_dir));
    Ok(())
}
