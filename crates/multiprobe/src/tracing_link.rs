//! Tracing links: fentry, fexit, fmod_ret, fsession, tp_btf and lsm programs attached to the
//! target they were loaded against (their `attach_btf_id`), as libbpf's
//! `bpf_program__attach_trace` and `bpf_program__attach_lsm` do.
//!
//! `BPF_LINK_CREATE` with the program's expected attach type is the way since 5.19 (tp_btf
//! since 6.10); older kernels answer EINVAL, and `BPF_RAW_TRACEPOINT_OPEN` without a name,
//! which those kernels created the same links with, is tried then, as libbpf does.

use std::io;

use crate::error::{AttachError, wrong_kind};
use crate::link::Link;
use crate::object::ProgramKind;
use crate::program::Program;
use crate::sys;

/// [`Program::attach_trace`]: fentry, fexit, fmod_ret, fsession and tp_btf programs.
pub(crate) fn attach_trace(prog: &Program) -> Result<Link, AttachError> {
    match prog.kind() {
        ProgramKind::Fentry
        | ProgramKind::Fexit
        | ProgramKind::FmodRet
        | ProgramKind::Fsession
        | ProgramKind::TpBtf => attach_btf_target(prog),
        other => Err(wrong_kind(prog.name(), other, "a tracing link", ProgramKind::Fentry)),
    }
}

/// [`Program::attach_lsm`]: BPF LSM programs (`lsm/HOOK`, `lsm.s/HOOK`).
pub(crate) fn attach_lsm(prog: &Program) -> Result<Link, AttachError> {
    match prog.kind() {
        ProgramKind::Lsm => attach_btf_target(prog),
        other => Err(wrong_kind(prog.name(), other, "an LSM link", ProgramKind::Lsm)),
    }
}

/// The link to the program's load-time target, by `BPF_LINK_CREATE` or, where the kernel
/// does not create tracing links that way, `BPF_RAW_TRACEPOINT_OPEN`.
fn attach_btf_target(prog: &Program) -> Result<Link, AttachError> {
    let attach_type = prog.kind().expected_attach_type();
    match sys::link_create_tracing(prog.fd(), attach_type, 0) {
        Ok(fd) => Ok(Link::new(fd)),
        // EINVAL is also how kernels without tracing links in BPF_LINK_CREATE answer: the
        // older command, which every kernel since 5.5 keeps, has the telling answer then.
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            sys::raw_tracepoint_open(prog.fd(), None).map(Link::new).map_err(|e| tracing_error(prog, e))
        }
        Err(e) => Err(tracing_error(prog, e)),
    }
}

/// The kernel's internal ENOTSUPP, which it returns where trampolines are missing.
const ENOTSUPP: i32 = 524;

/// The kernel's refusal, with what usually causes it for these kinds.
fn tracing_error(prog: &Program, source: io::Error) -> AttachError {
    let hint = match (prog.kind(), source.raw_os_error()) {
        (ProgramKind::Lsm, Some(libc::EINVAL | libc::EOPNOTSUPP)) => Some(
            "BPF LSM programs need `bpf` among the active LSMs: see /sys/kernel/security/lsm and the lsm= boot parameter",
        ),
        (ProgramKind::FmodRet, Some(libc::EINVAL)) => {
            Some("fmod_ret needs a function marked ALLOW_ERROR_INJECTION or a security_ hook")
        }
        (_, Some(libc::E2BIG)) => Some("the trampoline of that function holds as many programs as it can"),
        (_, Some(ENOTSUPP)) => Some("this kernel or architecture has no BPF trampolines"),
        _ => None,
    };
    if source.raw_os_error() == Some(libc::EPERM) {
        return AttachError::PermissionDenied { op: "attaching", source };
    }
    AttachError::Kernel {
        op: format!("attaching {} program `{}`", prog.kind().section_prefix(), prog.name()),
        source,
        hint: hint.map(str::to_string),
    }
}
