//! Resolution and checks: from what to attach ([`super::Targets`]) to what the kernel takes
//! (a [`Plan`]: names or addresses, cookies, and what is known of each function), refusing
//! before any system call what the kernel would refuse without saying which target.

use std::collections::{HashMap, HashSet};
use std::ffi::CString;
use std::io;

use super::{Mode, Targets};
use crate::error::{AttachError, wrong_kind};
use crate::features;
use crate::object::ProgramKind;
use crate::program::Program;
use crate::symbols::{Function, Glob, Listing, no_match_hint};
use crate::sys;

/// How the kernel is told the targets.
#[derive(Debug, Clone)]
pub(crate) enum LinkTargets {
    Names(Vec<CString>),
    Addresses(Vec<u64>),
}

impl LinkTargets {
    /// The targets at `idx`, in that order.
    pub fn subset(&self, idx: &[usize]) -> LinkTargets {
        match self {
            LinkTargets::Names(v) => LinkTargets::Names(idx.iter().map(|&i| v[i].clone()).collect()),
            LinkTargets::Addresses(v) => LinkTargets::Addresses(idx.iter().map(|&i| v[i]).collect()),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            LinkTargets::Names(v) => v.len(),
            LinkTargets::Addresses(v) => v.len(),
        }
    }
}

/// Targets resolved and ready for `BPF_LINK_CREATE`.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub targets: LinkTargets,
    pub cookies: Option<Vec<u64>>,
    /// What is known about each target, in target order: name, module and listed address
    /// for pattern matches; the name for symbols; the address for addresses.
    pub functions: Vec<Function>,
}

/// Refuses a program loaded for another kind of attachment before any work is done; the
/// kernel would only say EINVAL.
pub(crate) fn check_program(prog: &Program, mode: Mode) -> Result<(), AttachError> {
    let kind = prog.kind();
    let ok = match mode {
        Mode::Entry | Mode::Return => {
            matches!(kind, ProgramKind::KprobeMulti | ProgramKind::KretprobeMulti)
        }
        Mode::Session => kind == ProgramKind::KprobeSession,
    };
    if ok {
        return Ok(());
    }
    let (wanted, needed) = match mode {
        Mode::Entry => ("a kprobe_multi link", ProgramKind::KprobeMulti),
        Mode::Return => ("a kretprobe_multi link", ProgramKind::KretprobeMulti),
        Mode::Session => ("a kprobe session link", ProgramKind::KprobeSession),
    };
    Err(wrong_kind(prog.name(), kind, wanted, needed))
}

/// How closely to follow libbpf where it is silent about a trap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Strictness {
    /// As libbpf: a name shared by several functions attaches the first.
    Libbpf,
    /// A name shared by several functions is an error that lists them.
    RefuseAmbiguousNames,
}

/// Turns targets into what the kernel takes.
pub(crate) fn resolve(
    targets: &Targets,
    cookies: Option<Vec<u64>>,
    strictness: Strictness,
    listing: &Listing,
) -> Result<Plan, AttachError> {
    match targets {
        // libbpf's fast path: a name without wildcards goes to the kernel as is, no listing
        // is read; the kernel picks the first traceable function of that name.
        Targets::Pattern(glob) if glob.is_literal() => Ok(Plan {
            targets: LinkTargets::Names(vec![c_name(glob.as_str())?]),
            cookies: None,
            functions: vec![named(glob.as_str())],
        }),
        Targets::Pattern(glob) => resolve_pattern(glob, false, listing),
        Targets::UniquePattern(glob) => resolve_pattern(glob, true, listing),
        Targets::Symbols(names) => {
            if names.is_empty() {
                return Err(AttachError::EmptyList { what: "symbols" });
            }
            check_count(names.len())?;
            check_cookies(names.len(), cookies.as_deref())?;
            // The kernel refuses a repeated name with ESRCH (libbpf: ENOENT).
            refuse_repeated(names.iter().map(String::as_str), |n| n.to_string(), libc::ESRCH)?;
            if strictness == Strictness::RefuseAmbiguousNames {
                refuse_ambiguous(names, listing)?;
            }
            let c = names.iter().map(|n| c_name(n)).collect::<Result<_, _>>()?;
            Ok(Plan { targets: LinkTargets::Names(c), cookies, functions: names.iter().map(|n| named(n)).collect() })
        }
        Targets::Addresses(addrs) => {
            if addrs.is_empty() {
                return Err(AttachError::EmptyList { what: "addresses" });
            }
            check_count(addrs.len())?;
            check_cookies(addrs.len(), cookies.as_deref())?;
            refuse_repeated(addrs.iter().copied(), |a| format!("{a:#x}"), libc::EINVAL)?;
            let functions = addrs.iter().map(|&a| Function { name: String::new(), module: None, address: a }).collect();
            Ok(Plan { targets: LinkTargets::Addresses(addrs.clone()), cookies, functions })
        }
        Targets::Selection(selection) => {
            let functions = selection.resolve_with(listing)?;
            let addrs = functions.iter().map(|f| f.address).collect();
            Ok(Plan { targets: LinkTargets::Addresses(addrs), cookies: None, functions })
        }
        Targets::Functions(functions) => {
            if functions.is_empty() {
                return Err(AttachError::EmptyList { what: "functions" });
            }
            check_cookies(functions.len(), cookies.as_deref())?;
            if let Some(f) = functions.iter().find(|f| f.address == 0) {
                return Err(AttachError::UntraceableSymbol {
                    symbol: f.name.clone(),
                    reason: "its address is unknown (list functions with TraceableFunctions::read())".into(),
                    source: io::Error::from_raw_os_error(libc::EINVAL),
                });
            }
            // The kernel finds a function's cookie by its entry address, which is not the
            // listed patch site on kernels with IBT. Entry addresses come from kallsyms
            // (kept once read); until then, or where kallsyms hides addresses, names the
            // kernel resolves itself do, when each names one function.
            if cookies.is_some() {
                let by_name = || unique_names(functions, listing).map(LinkTargets::Names);
                let targets = if !listing.entries_are_cheap()
                    && let Some(names) = by_name()
                {
                    names
                } else {
                    match listing.entry_addresses(functions) {
                        Ok(addrs) => LinkTargets::Addresses(addrs),
                        Err(e) => by_name().ok_or(e)?,
                    }
                };
                return Ok(Plan { targets, cookies, functions: functions.clone() });
            }
            let addrs = functions.iter().map(|f| f.address).collect();
            Ok(Plan { targets: LinkTargets::Addresses(addrs), cookies, functions: functions.clone() })
        }
    }
}

/// Fails when a target is given twice (with `errno`, what the kernel would answer): split
/// attaches would otherwise attach a repeated target twice.
fn refuse_repeated<T: Eq + std::hash::Hash + Copy>(
    targets: impl Iterator<Item = T>,
    show: impl Fn(T) -> String,
    errno: i32,
) -> Result<(), AttachError> {
    let mut seen = HashSet::new();
    for t in targets {
        if !seen.insert(t) {
            return Err(AttachError::Repeated { target: show(t), source: io::Error::from_raw_os_error(errno) });
        }
    }
    Ok(())
}

/// The kernel's limit on one link, checked first as the kernel does (before it reads a
/// single target): E2BIG, whatever else is wrong with the list.
fn check_count(count: usize) -> Result<(), AttachError> {
    if count > sys::KPROBE_MULTI_MAX_CNT {
        return Err(AttachError::TooManyTargets { count, source: io::Error::from_raw_os_error(libc::E2BIG) });
    }
    Ok(())
}

/// Fails when a name is shared by several traceable functions (static functions of several
/// files, vmlinux and a module): by name the kernel would attach only the first.
fn refuse_ambiguous(names: &[String], listing: &Listing) -> Result<(), AttachError> {
    // The check is a courtesy: without a listing (tracefs unreadable) the kernel decides.
    let Ok(listing) = listing.read() else { return Ok(()) };
    let wanted: HashSet<&[u8]> = names.iter().map(|n| n.as_bytes()).collect();
    let mut copies: HashMap<&[u8], Vec<String>> = HashMap::new();
    for f in listing.filter(|name, _| wanted.contains(name)) {
        let place = f.module.unwrap_or_else(|| "vmlinux".into());
        copies.entry(names.iter().find(|n| **n == f.name).unwrap().as_bytes()).or_default().push(place);
    }
    match names.iter().find(|n| copies.get(n.as_bytes()).is_some_and(|c| c.len() > 1)) {
        Some(name) => {
            Err(AttachError::AmbiguousSymbol { symbol: name.clone(), places: copies[name.as_bytes()].join(", ") })
        }
        None => Ok(()),
    }
}

fn named(name: &str) -> Function {
    Function { name: name.to_string(), module: None, address: 0 }
}

fn check_cookies(targets: usize, cookies: Option<&[u64]>) -> Result<(), AttachError> {
    match cookies {
        Some(c) if c.len() != targets => Err(AttachError::CookieCount { targets, cookies: c.len() }),
        _ => Ok(()),
    }
}

fn c_name(name: &str) -> Result<CString, AttachError> {
    CString::new(name).map_err(|_| AttachError::UntraceableSymbol {
        symbol: name.escape_debug().to_string(),
        reason: "the name contains a NUL byte".into(),
        source: io::Error::from_raw_os_error(libc::EINVAL),
    })
}

/// A pattern becomes the addresses of every match (duplicated names included), like libbpf.
fn resolve_pattern(glob: &Glob, unique: bool, listing: &Listing) -> Result<Plan, AttachError> {
    let listing = listing.read()?;
    let functions = listing.matching(glob);
    if functions.is_empty() {
        return Err(AttachError::NoMatch { pattern: glob.as_str().to_string(), hint: no_match_hint(glob) });
    }
    if unique && functions.len() != 1 {
        let mut examples: Vec<String> = functions.iter().take(5).map(describe).collect();
        if functions.len() > 5 {
            examples.push("...".into());
        }
        return Err(AttachError::NotUnique {
            pattern: glob.as_str().to_string(),
            count: functions.len(),
            examples: examples.join(", "),
        });
    }
    let addrs = functions.iter().map(|f| f.address).collect();
    Ok(Plan { targets: LinkTargets::Addresses(addrs), cookies: None, functions })
}

fn describe(f: &Function) -> String {
    match &f.module {
        Some(m) => format!("{} [{m}]", f.name),
        None => f.name.clone(),
    }
}

/// The functions' names, when the kernel can take them instead of addresses: each names one
/// traceable function (no static function or module shares it), and module functions are
/// resolved by name (6.1+).
fn unique_names(functions: &[Function], listing: &Listing) -> Option<Vec<CString>> {
    if functions.iter().any(|f| f.module.is_some()) && features::kernel_version().is_none_or(|v| v < (6, 1)) {
        return None;
    }
    let listing = listing.read().ok()?;
    let wanted: HashSet<&[u8]> = functions.iter().map(|f| f.name.as_bytes()).collect();
    let mut copies: HashMap<&[u8], usize> = HashMap::new();
    for f in listing.filter(|name, _| wanted.contains(name)) {
        let name = *wanted.get(f.name.as_bytes())?;
        *copies.entry(name).or_default() += 1;
    }
    if functions.len() != wanted.len() || copies.values().any(|&n| n != 1) {
        return None;
    }
    functions.iter().map(|f| CString::new(f.name.as_str()).ok()).collect()
}
