//! The attach path: resolve targets, create the link, and turn a refusal into an error that
//! names the target at fault.

use std::collections::HashSet;
use std::ffi::{CStr, CString};
use std::io;

use super::cache;
use super::kallsyms::Kallsyms;
use super::link::KprobeMultiLink;
use super::resolve::{Function, TraceableFunctions};
use super::split::{self, Failure, Rejected};
use super::{Fallback, Glob, KprobeMulti, Mode, SYSCALL_PREFIX, Targets, fallback};
use crate::attach::{AttachError, wrong_kind};
use crate::features;
use crate::link::Link;
use crate::object::ProgramKind;
use crate::program::Program;
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

impl Program {
    /// Attaches this program to many kernel functions with one kprobe_multi link.
    ///
    /// The program must have been loaded from a `kprobe.multi` or `kretprobe.multi` section
    /// (any of the two, for entry or return mode) or a `kprobe.session` one (session mode);
    /// with a [`Fallback`] other than `Never`, a program loaded as a plain `kprobe` is
    /// accepted too and attached per function.
    pub fn attach_kprobe_multi(&self, spec: &KprobeMulti) -> Result<KprobeMultiLink, AttachError> {
        // A program loaded as a plain kprobe (where the kernel cannot even load kprobe_multi
        // programs) can only stand behind per-function kprobes.
        let plain = matches!(self.kind(), ProgramKind::Kprobe | ProgramKind::Kretprobe);
        if plain && spec.fallback != Fallback::Never {
            let plan = resolve(&spec.targets, spec.cookies.clone(), Strictness::RefuseAmbiguousNames)?;
            return fallback::attach(self, plan, spec.mode, spec.cancel.as_ref());
        }
        check_program(self, spec.mode)?;
        let plan = resolve(&spec.targets, spec.cookies.clone(), Strictness::RefuseAmbiguousNames)?;
        match spec.fallback {
            Fallback::Always => fallback::attach(self, plan, spec.mode, spec.cancel.as_ref()),
            Fallback::Auto => match create(self, plan.clone(), spec.mode, spec.rejected) {
                Err(AttachError::NotSupported { .. }) => fallback::attach(self, plan, spec.mode, spec.cancel.as_ref()),
                other => other,
            },
            Fallback::Never => create(self, plan, spec.mode, spec.rejected),
        }
    }
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
) -> Result<Plan, AttachError> {
    match targets {
        // libbpf's fast path: a name without wildcards goes to the kernel as is, no listing
        // is read; the kernel picks the first traceable function of that name.
        Targets::Pattern(glob) if glob.is_literal() => Ok(Plan {
            targets: LinkTargets::Names(vec![c_name(glob.as_str())?]),
            cookies: None,
            functions: vec![named(glob.as_str())],
        }),
        Targets::Pattern(glob) => resolve_pattern(glob, false),
        Targets::UniquePattern(glob) => resolve_pattern(glob, true),
        Targets::Symbols(names) => {
            if names.is_empty() {
                return Err(AttachError::EmptyList { what: "symbols" });
            }
            check_cookies(names.len(), cookies.as_deref())?;
            refuse_repeated(names.iter().map(String::as_str), |n| n.to_string())?;
            if strictness == Strictness::RefuseAmbiguousNames {
                refuse_ambiguous(names)?;
            }
            let c = names.iter().map(|n| c_name(n)).collect::<Result<_, _>>()?;
            Ok(Plan { targets: LinkTargets::Names(c), cookies, functions: names.iter().map(|n| named(n)).collect() })
        }
        Targets::Addresses(addrs) => {
            if addrs.is_empty() {
                return Err(AttachError::EmptyList { what: "addresses" });
            }
            check_cookies(addrs.len(), cookies.as_deref())?;
            refuse_repeated(addrs.iter().copied(), |a| format!("{a:#x}"))?;
            let functions = addrs.iter().map(|&a| Function { name: String::new(), module: None, address: a }).collect();
            Ok(Plan { targets: LinkTargets::Addresses(addrs.clone()), cookies, functions })
        }
        Targets::Selection(selection) => {
            let functions = selection.resolve()?;
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
                let by_name = || unique_names(functions).map(LinkTargets::Names);
                let targets = if !cache::entries_are_cheap()
                    && let Some(names) = by_name()
                {
                    names
                } else {
                    match super::entry_addresses(functions) {
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

/// Fails when a target is given twice: the kernel refuses a repeated name with ESRCH, and
/// split attaches would attach a repeated target twice.
fn refuse_repeated<T: Eq + std::hash::Hash + Copy>(
    targets: impl Iterator<Item = T>,
    show: impl Fn(T) -> String,
) -> Result<(), AttachError> {
    let mut seen = HashSet::new();
    for t in targets {
        if !seen.insert(t) {
            return Err(AttachError::Repeated { target: show(t) });
        }
    }
    Ok(())
}

/// Fails when a name is shared by several traceable functions (static functions of several
/// files, vmlinux and a module): by name the kernel would attach only the first.
fn refuse_ambiguous(names: &[String]) -> Result<(), AttachError> {
    // The check is a courtesy: without a listing (tracefs unreadable) the kernel decides.
    let Ok(listing) = TraceableFunctions::read() else { return Ok(()) };
    let wanted: HashSet<&[u8]> = names.iter().map(|n| n.as_bytes()).collect();
    let mut copies: std::collections::HashMap<&[u8], Vec<String>> = std::collections::HashMap::new();
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
fn resolve_pattern(glob: &Glob, unique: bool) -> Result<Plan, AttachError> {
    let listing = TraceableFunctions::read()?;
    let functions = listing.matching(glob);
    if functions.is_empty() {
        return Err(AttachError::NoMatch { pattern: glob.as_str().to_string(), hint: no_match_hint(&[glob]) });
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
fn unique_names(functions: &[Function]) -> Option<Vec<CString>> {
    if functions.iter().any(|f| f.module.is_some()) && features::kernel_version().is_none_or(|v| v < (6, 1)) {
        return None;
    }
    let listing = TraceableFunctions::read().ok()?;
    let wanted: HashSet<&[u8]> = functions.iter().map(|f| f.name.as_bytes()).collect();
    let mut copies: std::collections::HashMap<&[u8], usize> = std::collections::HashMap::new();
    for f in listing.filter(|name, _| wanted.contains(name)) {
        let name = *wanted.get(f.name.as_bytes())?;
        *copies.entry(name).or_default() += 1;
    }
    if functions.len() != wanted.len() || copies.values().any(|&n| n != 1) {
        return None;
    }
    functions.iter().map(|f| CString::new(f.name.as_str()).ok()).collect()
}

/// Why patterns may match nothing: names that exist but are not traceable, or syscalls,
/// whose entry points carry an architecture prefix. Empty, or ` (hint)`.
pub(crate) fn no_match_hint(globs: &[&Glob]) -> String {
    let mut hints = Vec::new();
    if let Ok(kallsyms) = Kallsyms::read() {
        let n = kallsyms.text_symbols().filter(|s| globs.iter().any(|g| g.matches(s.name))).count();
        if n > 0 {
            hints.push(format!("{n} kernel functions match, but none is traceable: notrace or inlined"));
        }
    }
    if let Some(g) = globs.iter().find(|g| g.as_str().starts_with("sys_")) {
        hints.push(format!("syscall entry points carry an architecture prefix: try `{SYSCALL_PREFIX}{}`", g.as_str()));
    }
    if hints.is_empty() { String::new() } else { format!(" ({})", hints.join("; ")) }
}

/// Creates the link: in one piece when the kernel takes the whole set, else split (ENOMEM)
/// or bisected down to the refused targets, which fail the attach or are skipped.
pub(crate) fn create(
    prog: &Program,
    plan: Plan,
    mode: Mode,
    rejected: Rejected,
) -> Result<KprobeMultiLink, AttachError> {
    let cookies_of = |idx: &[usize]| plan.cookies.as_ref().map(|c| idx.iter().map(|&i| c[i]).collect::<Vec<u64>>());
    let mut create = |idx: &[usize]| {
        let targets = plan.targets.subset(idx);
        link_create(prog, &targets, cookies_of(idx).as_deref(), mode).map(Link::new)
    };
    // A function the kernel refuses by address may still be taken by name, which is right
    // when no other traceable function has that name.
    let mut names: Option<TraceableFunctions> = None;
    let mut by_name = |i: usize| -> Option<Link> {
        let f = &plan.functions[i];
        if !matches!(plan.targets, LinkTargets::Addresses(_)) || f.name.is_empty() {
            return None;
        }
        let listing = match &names {
            Some(l) => l,
            None => names.insert(TraceableFunctions::read().ok()?),
        };
        if listing.count_named(&f.name) != 1 {
            return None;
        }
        let targets = LinkTargets::Names(vec![CString::new(f.name.as_str()).ok()?]);
        link_create(prog, &targets, cookies_of(&[i]).as_deref(), mode).ok().map(Link::new)
    };
    match split::attach_split(plan.targets.len(), rejected, &mut create, &mut by_name) {
        Ok(split) => Ok(KprobeMultiLink::new(split.links, plan, mode, split.skipped)),
        Err(Failure { error, target: Some(i) }) => Err(refused(error, &plan, i)),
        Err(Failure { error, target: None }) => Err(diagnose(error, &plan, mode)),
    }
}

/// The error for target `i`, which the kernel refused on its own.
fn refused(error: io::Error, plan: &Plan, i: usize) -> AttachError {
    match &plan.targets {
        LinkTargets::Names(names) => AttachError::UntraceableSymbol {
            symbol: names[i].to_string_lossy().into_owned(),
            reason: "the kernel has no traceable function of that name: notrace, inlined, not a function, or its \
                     module is not loaded"
                .into(),
            source: error,
        },
        LinkTargets::Addresses(addrs) => AttachError::UntraceableAddress { addr: addrs[i], source: error },
    }
}

pub(crate) fn link_create(
    prog: &Program,
    targets: &LinkTargets,
    cookies: Option<&[u64]>,
    mode: Mode,
) -> io::Result<std::os::fd::OwnedFd> {
    let attach_type = match mode {
        Mode::Session => sys::attach_type::TRACE_KPROBE_SESSION,
        _ => sys::attach_type::TRACE_KPROBE_MULTI,
    };
    let flags = if mode == Mode::Return { sys::KPROBE_MULTI_RETURN } else { 0 };
    match targets {
        LinkTargets::Names(names) => {
            let refs: Vec<&CStr> = names.iter().map(CString::as_c_str).collect();
            sys::link_create_kprobe_multi(
                prog.fd(),
                attach_type,
                flags,
                sys::KprobeMultiTargets::Symbols(&refs),
                cookies,
            )
        }
        LinkTargets::Addresses(addrs) => sys::link_create_kprobe_multi(
            prog.fd(),
            attach_type,
            flags,
            sys::KprobeMultiTargets::Addresses(addrs),
            cookies,
        ),
    }
}

/// Explains a `BPF_LINK_CREATE` refusal of the whole set.
pub(crate) fn diagnose(e: io::Error, plan: &Plan, mode: Mode) -> AttachError {
    let count = plan.targets.len();
    match e.raw_os_error() {
        Some(libc::EOPNOTSUPP) => {
            let probe = if mode == Mode::Session { features::kprobe_session() } else { features::kprobe_multi() };
            let reason =
                probe.reason().map_or_else(|| "kernel built without CONFIG_FPROBE".to_string(), str::to_string);
            AttachError::NotSupported { what: "create kprobe_multi links", reason, source: e }
        }
        Some(libc::EPERM) => AttachError::PermissionDenied { op: "creating a kprobe_multi link", source: e },
        Some(libc::E2BIG) if count > sys::KPROBE_MULTI_MAX_CNT => AttachError::TooManyTargets { count, source: e },
        Some(libc::E2BIG) => match &plan.targets {
            LinkTargets::Names(names) => match names.iter().find(|n| n.as_bytes().len() >= sys::KSYM_NAME_LEN) {
                Some(n) => AttachError::UntraceableSymbol {
                    symbol: n.to_string_lossy().chars().take(64).collect::<String>() + "...",
                    reason: format!("the name is {} bytes, the kernel takes at most 511", n.as_bytes().len()),
                    source: e,
                },
                None => kernel(e, "creating a kprobe_multi link", None),
            },
            LinkTargets::Addresses(_) => kernel(e, "creating a kprobe_multi link", None),
        },
        Some(libc::ENOMEM) => kernel(
            e,
            "creating a kprobe_multi link",
            Some("kernels 6.7 to 6.11 can fail large attaches this way; attach fewer functions per link".into()),
        ),
        Some(libc::EINVAL) if mode == Mode::Session && !features::kprobe_session().is_yes() => {
            kernel(e, "creating a kprobe session link", Some("kprobe sessions need kernel 6.10+".into()))
        }
        _ => kernel(e, "creating a kprobe_multi link", None),
    }
}

fn kernel(source: io::Error, op: &str, hint: Option<String>) -> AttachError {
    AttachError::Kernel { op: op.to_string(), source, hint }
}
