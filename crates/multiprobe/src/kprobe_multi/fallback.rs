//! Per-function kprobes standing in for a kprobe_multi link, on kernels that lack one
//! (built without CONFIG_FPROBE, like Debian 12's 6.1, or older than 5.18).
//!
//! The program is loaded again as a plain kprobe (the kernel ties kprobe_multi programs to
//! their link type at load time) and attached to one perf-event kprobe per function, each
//! with its cookie. One [`KprobeMultiLink`] owns them all: a failure part way, or a cancel
//! flag set meanwhile, drops the ones made so far, which detaches them.

use std::io;

use super::Mode;
use super::cancel::CancelFlag;
use super::link::KprobeMultiLink;
use super::plan::Plan;
use super::split::Rejected;
use crate::error::AttachError;
use crate::link::Link;
use crate::object::ProgramKind;
use crate::perf_event::{KprobeTarget, attach_to_event, open_kprobe};
use crate::program::Program;
use crate::symbols::Function;

pub(crate) fn attach(
    prog: &Program,
    plan: Plan,
    mode: Mode,
    rejected: Rejected,
    cancel: Option<&CancelFlag>,
) -> Result<KprobeMultiLink, AttachError> {
    let (single, retprobe) = plain(prog, mode)?;
    let mut links = Vec::with_capacity(plan.functions.len());
    let mut skipped = Vec::new();
    for (i, f) in plan.functions.iter().enumerate() {
        if cancel.is_some_and(CancelFlag::is_set) {
            // `links` drops here: every kprobe made so far is detached.
            return Err(AttachError::Cancelled { attached: i, total: plan.functions.len() });
        }
        let cookie = plan.cookies.as_ref().and_then(|c| c.get(i).copied()).unwrap_or(0);
        match one(&single, f, retprobe, cookie) {
            Ok(link) => links.push(link),
            Err(e @ (AttachError::UntraceableSymbol { .. } | AttachError::UntraceableAddress { .. })) => {
                // As a kprobe_multi link would: the function is left out on request, or
                // fails the attach named, with the errno kprobe_multi gives it.
                if rejected == Rejected::Skip {
                    skipped.push(i);
                    continue;
                }
                return Err(untraceable(f, e));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(KprobeMultiLink::from_kprobes(links, plan, mode, skipped))
}

/// The program as a plain kprobe or kretprobe for `mode` (loaded again unless it already is
/// one: the kernel ties kprobe_multi programs to their link type at load time), and whether
/// the kprobes are return probes. Sessions have no per-function form.
pub(crate) fn plain(prog: &Program, mode: Mode) -> Result<(Program, bool), AttachError> {
    let (kind, retprobe) = match mode {
        Mode::Entry => (ProgramKind::Kprobe, false),
        Mode::Return => (ProgramKind::Kretprobe, true),
        Mode::Session => {
            return Err(AttachError::NotSupported {
                what: "run kprobe sessions",
                reason: "per-function kprobes cannot stand in for a session (one run at entry and return of each \
                         call, sharing a cookie); sessions need kernel 6.10+ built with CONFIG_FPROBE"
                    .into(),
                source: std::io::Error::from_raw_os_error(libc::EOPNOTSUPP),
            });
        }
    };
    // kprobe and kretprobe programs load the same way: the perf event says entry or return.
    if matches!(prog.kind(), ProgramKind::Kprobe | ProgramKind::Kretprobe) {
        return Ok((prog.clone(), retprobe));
    }
    let single = prog
        .reload_as(kind)
        .map_err(|source| AttachError::Reload { program: prog.name().to_string(), source: Box::new(source) })?;
    Ok((single, retprobe))
}

/// One perf-event kprobe on `f` running `single` (a plain kprobe program) with `cookie`.
pub(crate) fn one(single: &Program, f: &Function, retprobe: bool, cookie: u64) -> Result<Link, AttachError> {
    // An address is exact even for a name several functions share.
    let target = if f.address != 0 {
        KprobeTarget::Address(f.address)
    } else {
        KprobeTarget::Symbol { name: f.name.clone(), offset: 0 }
    };
    attach_to_event(single, open_kprobe(&target, retprobe)?, cookie)
}

/// The error for a function no kprobe can be placed on: named as the caller named it (not
/// by the address the listing gave), with the reason the kernel has, and ENOENT, the errno
/// an untraceable target gets through kprobe_multi (ESRCH from the kernel, reported by
/// libbpf as ENOENT), so one cause has one errno on every path.
pub(crate) fn untraceable(f: &Function, e: AttachError) -> AttachError {
    let kernel = match &e {
        AttachError::UntraceableSymbol { source, .. } | AttachError::UntraceableAddress { source, .. } => {
            source.to_string()
        }
        _ => String::new(),
    };
    let symbol = if f.name.is_empty() { format!("{:#x}", f.address) } else { f.name.clone() };
    let reason = if !f.name.is_empty() && on_kprobe_blacklist(&f.name) {
        "it is on the kprobe blacklist (/sys/kernel/debug/kprobes/blacklist): probing it could recurse into the \
         probe handler"
            .to_string()
    } else {
        format!("the kernel cannot place a kprobe there ({kernel})")
    };
    AttachError::UntraceableSymbol { symbol, reason, source: io::Error::from_raw_os_error(libc::ENOENT) }
}

/// Whether `name` is on the kernel's kprobe blacklist (lines `START-END\tNAME`, in debugfs);
/// false where that file cannot be read.
fn on_kprobe_blacklist(name: &str) -> bool {
    let Ok(text) = std::fs::read_to_string("/sys/kernel/debug/kprobes/blacklist") else { return false };
    text.lines().any(|l| l.split_whitespace().nth(1) == Some(name))
}
