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
    attach_plan(prog, plan, spec.mode, spec.fallback, spec.rejected, &spec.listing, spec.cancel.as_ref())
}

/// A program loaded as a plain kprobe (where the kernel cannot even load kprobe_multi
/// programs) can only stand behind per-function kprobes.
fn is_plain(prog: &Program) -> bool {
    matches!(prog.kind(), ProgramKind::Kprobe | ProgramKind::Kretprobe)
}

/// Attaches resolved targets as `fallback` says: one kprobe_multi link, or per-function
/// kprobes where the kernel has none (or always). Shared by [`KprobeMulti`] and
/// [`super::KprobeMultiOpts`], so both take the same paths with the same errors.
pub(crate) fn attach_plan(
    prog: &Program,
    plan: Plan,
    mode: Mode,
    fallback: Fallback,
    rejected: Rejected,
    listing: &Listing,
    cancel: Option<&super::cancel::CancelFlag>,
) -> Result<KprobeMultiLink, AttachError> {
    if is_plain(prog) && fallback != Fallback::Never {
        return fallback::attach(prog, plan, mode, rejected, cancel);
    }
    check_program(prog, mode)?;
    match fallback {
        Fallback::Always => fallback::attach(prog, plan, mode, rejected, cancel),
        Fallback::Auto => match create(prog, plan.clone(), mode, rejected, listing) {
            Err(AttachError::NotSupported { .. }) => fallback::attach(prog, plan, mode, rejected, cancel),
            other => other,
        },
        Fallback::Never => create(prog, plan, mode, rejected, listing),
    }
}

/// Creates the link: in one piece when the kernel takes the whole set, else split (ENOMEM)
/// or bisected down to the refused targets, which fail the attach or are skipped.
pub(crate) fn create(
    prog: &Program,
    plan: Plan,
    mode: Mode,
    rejected: Rejected,
    listing: &Listing,
) -> Result<KprobeMultiLink, AttachError> {
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
            None => names.insert(listing.read().ok()?),
        };
        if listing.count_named(&f.name) != 1 {
            return None;
        }
        let targets = LinkTargets::Names(vec![CString::new(f.name.as_str()).ok()?]);
        link_create(prog, &targets, cookies_of(&[i]).as_deref(), mode).ok().map(Link::new)
    };
    match split::attach_split(plan.targets.len(), rejected, &mut create, &mut by_name) {
        Ok(split) => Ok(KprobeMultiLink::new(split.links, plan, mode, split.skipped)),
        Err(Failure { error, target: Some(i), .. }) => Err(refused(error, &plan, i)),
        Err(Failure { error, target: None, every_target: true }) => refused_request(error, plan, mode, rejected),
        Err(Failure { error, target: None, .. }) => Err(diagnose(error, &plan, mode)),
    }
}

/// Every target alone got the same EINVAL: either the kernel refuses the request (link
/// type, mode), which the feature probe finds and explains, or, where the probe finds the
/// feature working, every target is at fault: the first is named, or all are skipped.
fn refused_request(
    error: io::Error,
    plan: Plan,
    mode: Mode,
    rejected: Rejected,
) -> Result<KprobeMultiLink, AttachError> {
    let probe = if mode == Mode::Session { features::kprobe_session() } else { features::kprobe_multi() };
    if let Some(reason) = probe.reason() {
        let what = if mode == Mode::Session { "run kprobe sessions" } else { "create kprobe_multi links" };
        return Err(AttachError::NotSupported { what, reason: reason.to_string(), source: error });
    }
    match rejected {
        Rejected::Skip => {
            let all = (0..plan.targets.len()).collect();
            Ok(KprobeMultiLink::new(Vec::new(), plan, mode, all))
        }
        Rejected::Fail => Err(refused(error, &plan, 0)),
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
        _ => kernel(e, "creating a kprobe_multi link", None),
    }
}

fn kernel(source: io::Error, op: &str, hint: Option<String>) -> AttachError {
    AttachError::Kernel { op: op.to_string(), source, hint }
}
