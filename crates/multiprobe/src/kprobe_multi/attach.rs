//! Creating the link: in one piece, split or bisected down to the targets the kernel
//! refuses, and turning a refusal into an error that names the target at fault.

use std::ffi::{CStr, CString};
use std::io;

use super::link::KprobeMultiLink;
use super::plan::{LinkTargets, Plan, Strictness, check_program, resolve};
use super::split::{self, Failure, Rejected};
use super::{Fallback, KprobeMulti, Mode, fallback};
use crate::error::AttachError;
use crate::features;
use crate::link::Link;
use crate::object::ProgramKind;
use crate::program::Program;
use crate::symbols::{Listing, TraceableFunctions};
use crate::sys;

/// [`Program::attach_kprobe_multi`]: resolves the targets, then creates the link or, as the
/// spec's [`Fallback`] says, per-function kprobes.
pub(crate) fn attach(prog: &Program, spec: &KprobeMulti) -> Result<KprobeMultiLink, AttachError> {
    if !is_plain(prog) || spec.fallback == Fallback::Never {
        check_program(prog, spec.mode)?;
    }
    let plan = resolve(&spec.targets, spec.cookies.clone(), Strictness::RefuseAmbiguousNames, &spec.listing)?;
    let how = How { rejected: spec.rejected, kprobe_refused: spec.kprobe_refused };
    attach_plan(prog, plan, spec.mode, spec.fallback, how, &spec.listing, spec.cancel.as_ref())
}

/// A program loaded as a plain kprobe (where the kernel cannot even load kprobe_multi
/// programs) can only stand behind per-function kprobes.
fn is_plain(prog: &Program) -> bool {
    matches!(prog.kind(), ProgramKind::Kprobe | ProgramKind::Kretprobe)
}

/// What to do with targets the kernel refuses: fail or skip, and whether to try a
/// per-function kprobe first ([`KprobeMulti::kprobe_refused`]).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct How {
    pub rejected: Rejected,
    pub kprobe_refused: bool,
}

/// Attaches resolved targets as `fallback` says: one kprobe_multi link, or per-function
/// kprobes where the kernel has none (or always). Shared by [`KprobeMulti`] and
/// [`super::KprobeMultiOpts`], so both take the same paths with the same errors.
pub(crate) fn attach_plan(
    prog: &Program,
    plan: Plan,
    mode: Mode,
    fallback: Fallback,
    how: How,
    listing: &Listing,
    cancel: Option<&super::cancel::CancelFlag>,
) -> Result<KprobeMultiLink, AttachError> {
    let rejected = how.rejected;
    if is_plain(prog) && fallback != Fallback::Never {
        return fallback::attach(prog, plan, mode, rejected, cancel);
    }
    check_program(prog, mode)?;
    match fallback {
        Fallback::Always => fallback::attach(prog, plan, mode, rejected, cancel),
        Fallback::Auto => match create(prog, plan.clone(), mode, how, listing) {
            Err(AttachError::NotSupported { .. }) => fallback::attach(prog, plan, mode, rejected, cancel),
            other => other,
        },
        Fallback::Never => create(prog, plan, mode, how, listing),
    }
}

/// Creates the link: in one piece when the kernel takes the whole set, else split (ENOMEM)
/// or bisected down to the refused targets, which fail the attach or are skipped.
pub(crate) fn create(
    prog: &Program,
    plan: Plan,
    mode: Mode,
    how: How,
    listing: &Listing,
) -> Result<KprobeMultiLink, AttachError> {
    let rejected = how.rejected;
    // A kernel older than sessions refuses the attach type with EINVAL, which bisection
    // would take for a refused target and pin on the first function: ask first. (A kernel
    // that knows sessions but lacks fprobe says EOPNOTSUPP, which diagnose() explains.)
    if mode == Mode::Session {
        let probe = features::kprobe_session();
        if !probe.is_yes() && !features::knows_attach_type("BPF_TRACE_KPROBE_SESSION", (6, 10)) {
            return Err(AttachError::NotSupported {
                what: "run kprobe sessions",
                reason: probe.reason().unwrap_or("kprobe sessions need kernel 6.10+ built with CONFIG_FPROBE").into(),
                source: io::Error::from_raw_os_error(libc::EINVAL),
            });
        }
    }
    let cookies_of = |idx: &[usize]| plan.cookies.as_ref().map(|c| idx.iter().map(|&i| c[i]).collect::<Vec<u64>>());
    // With `kprobe_refused`, a function ftrace does not list by that name goes to a kprobe
    // at once: the kernel would refuse it, or take it only as an alias of a listed function.
    let mut names: Option<Option<TraceableFunctions>> = None;
    let mut plain: Option<Option<(Program, bool)>> = None;
    let mut pieces = Vec::new();
    let mut skipped = Vec::new();
    let kprobes = how.kprobe_refused && mode != Mode::Session;
    let unlisted = |i: usize, names: &mut Option<Option<TraceableFunctions>>| {
        let f = &plan.functions[i];
        kprobes
            && !f.name.is_empty()
            && names.get_or_insert_with(|| listing.read().ok()).as_ref().is_some_and(|l| l.count_named(&f.name) == 0)
    };
    let (direct, multi): (Vec<usize>, Vec<usize>) = (0..plan.functions.len()).partition(|&i| unlisted(i, &mut names));
    if !direct.is_empty() {
        let (single, retprobe) = fallback::plain(prog, mode)?;
        for &i in &direct {
            let cookie = plan.cookies.as_ref().map_or(0, |c| c[i]);
            match fallback::one(&single, &plan.functions[i], retprobe, cookie) {
                Ok(l) => pieces.push(Piece::Kprobe(i, l)),
                Err(e @ (AttachError::UntraceableSymbol { .. } | AttachError::UntraceableAddress { .. })) => {
                    if rejected == Rejected::Fail {
                        return Err(fallback::untraceable(&plan.functions[i], e));
                    }
                    skipped.push(i);
                }
                Err(e) => return Err(e),
            }
        }
        plain = Some(Some((single, retprobe)));
    }
    let mut create = |sub: &[usize]| {
        let idx: Vec<usize> = sub.iter().map(|&j| multi[j]).collect();
        let idx = &idx[..];
        let targets = plan.targets.subset(idx);
        link_create(prog, &targets, cookies_of(idx).as_deref(), mode).map(|fd| Piece::Multi(Link::new(fd)))
    };
    // A function the kernel refuses by address may still be taken by name, which is right
    // when no other traceable function has that name.
    let mut by_name = |i: usize| -> Option<Link> {
        let f = &plan.functions[i];
        if !matches!(plan.targets, LinkTargets::Addresses(_)) || f.name.is_empty() {
            return None;
        }
        let listing = names.get_or_insert_with(|| listing.read().ok()).as_ref()?;
        if listing.count_named(&f.name) != 1 {
            return None;
        }
        let targets = LinkTargets::Names(vec![CString::new(f.name.as_str()).ok()?]);
        link_create(prog, &targets, cookies_of(&[i]).as_deref(), mode).ok().map(Link::new)
    };
    // Then, if asked, one kprobe of its own (the fallback's code, with the program loaded
    // again as a plain kprobe once).
    let mut rescue = |j: usize| -> Option<Piece> {
        let i = multi[j];
        if let Some(link) = by_name(i) {
            return Some(Piece::Multi(link));
        }
        if !how.kprobe_refused || mode == Mode::Session {
            return None;
        }
        let (single, retprobe) = plain.get_or_insert_with(|| fallback::plain(prog, mode).ok()).as_ref()?;
        let cookie = plan.cookies.as_ref().map_or(0, |c| c[i]);
        fallback::one(single, &plan.functions[i], *retprobe, cookie).ok().map(|l| Piece::Kprobe(i, l))
    };
    if multi.is_empty() {
        return Ok(assemble(pieces, plan, mode, skipped, listing));
    }
    match split::attach_split(multi.len(), rejected, &mut create, &mut rescue) {
        Ok(split) => {
            pieces.extend(split.links);
            skipped.extend(split.skipped.iter().map(|&j| multi[j]));
            skipped.sort_unstable();
            Ok(assemble(pieces, plan, mode, skipped, listing))
        }
        Err(Failure { error, target: Some(j), .. }) => Err(refused(error, &plan, multi[j])),
        Err(Failure { error, target: None, every_target: true }) => {
            refused_request(error, plan, mode, rejected, Refused { pieces, skipped, multi, listing })
        }
        Err(Failure { error, target: None, .. }) => Err(diagnose(error, &plan, mode)),
    }
}

/// One link of a split attach: part of the kprobe_multi set, or the kprobe of one refused
/// target (its index in the plan).
enum Piece {
    Multi(Link),
    Kprobe(usize, Link),
}

/// The link for the pieces of a split attach, with the reason for each kprobe-only target:
/// absent from ftrace's listing (kprobe_multi can only take what ftrace can patch), or
/// refused otherwise.
fn assemble(pieces: Vec<Piece>, plan: Plan, mode: Mode, skipped: Vec<usize>, listing: &Listing) -> KprobeMultiLink {
    let mut multi = Vec::new();
    let mut kprobes = Vec::new();
    for p in pieces {
        match p {
            Piece::Multi(l) => multi.push(l),
            Piece::Kprobe(i, l) => kprobes.push((i, l)),
        }
    }
    let names = if kprobes.is_empty() { None } else { listing.read().ok() };
    let kprobes = kprobes
        .into_iter()
        .map(|(i, l)| {
            let f = plan.functions[i].clone();
            let listed = names.as_ref().is_none_or(|n| f.name.is_empty() || n.contains(&f.name));
            let reason = if listed { "refused by kprobe_multi" } else { "not in available_filter_functions" };
            (l, f, plan.cookies.as_ref().map(|c| c[i]), reason.to_string())
        })
        .collect();
    KprobeMultiLink::new(multi, plan, mode, skipped).with_kprobes(kprobes)
}

/// Every target alone got the same EINVAL: either the kernel refuses the request (link
/// type, mode), which the feature probe finds and explains, or, where the probe finds the
/// feature working, every target is at fault: the first is named, or all are skipped.
fn refused_request(
    error: io::Error,
    plan: Plan,
    mode: Mode,
    rejected: Rejected,
    r: Refused<'_>,
) -> Result<KprobeMultiLink, AttachError> {
    let probe = if mode == Mode::Session { features::kprobe_session() } else { features::kprobe_multi() };
    if let Some(reason) = probe.reason() {
        let what = if mode == Mode::Session { "run kprobe sessions" } else { "create kprobe_multi links" };
        return Err(AttachError::NotSupported { what, reason: reason.to_string(), source: error });
    }
    match rejected {
        Rejected::Skip => {
            let mut skipped = r.skipped;
            skipped.extend(r.multi);
            skipped.sort_unstable();
            Ok(assemble(r.pieces, plan, mode, skipped, r.listing))
        }
        Rejected::Fail => Err(refused(error, &plan, r.multi[0])),
    }
}

/// What a split attach had done when every target of the kprobe_multi part was refused:
/// kprobes already made, targets already skipped, the indices of that part.
struct Refused<'a> {
    pieces: Vec<Piece>,
    skipped: Vec<usize>,
    multi: Vec<usize>,
    listing: &'a Listing,
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
        _ => kernel(e, "creating a kprobe_multi link", None),
    }
}

fn kernel(source: io::Error, op: &str, hint: Option<String>) -> AttachError {
    AttachError::Kernel { op: op.to_string(), source, hint }
}
