//! Raw tracepoints: `raw_tp/NAME` and `raw_tp.w/NAME` programs attached by name with
//! `BPF_RAW_TRACEPOINT_OPEN` (the link type `BPF_LINK_TYPE_RAW_TRACEPOINT`), as libbpf's
//! `bpf_program__attach_raw_tracepoint`. The kernel looks the name up among its own and
//! its modules' tracepoints; no tracefs is involved.

use std::ffi::CString;
use std::io;

use crate::error::{AttachError, wrong_kind};
use crate::link::Link;
use crate::object::ProgramKind;
use crate::perf_event::kernel_error;
use crate::program::Program;
use crate::sys;

/// [`Program::attach_raw_tracepoint`].
pub(crate) fn attach_raw_tracepoint(prog: &Program, name: &str) -> Result<Link, AttachError> {
    if !matches!(prog.kind(), ProgramKind::RawTracepoint | ProgramKind::RawTracepointWritable) {
        return Err(wrong_kind(prog.name(), prog.kind(), "a raw tracepoint", ProgramKind::RawTracepoint));
    }
    let unknown = |source| AttachError::UnknownRawTracepoint { tracepoint: name.to_string(), source };
    // The kernel copies at most 127 bytes of the name: a longer one, or one with a NUL,
    // cannot name a tracepoint.
    if name.is_empty() || name.len() > 127 {
        return Err(unknown(io::Error::from_raw_os_error(libc::EINVAL)));
    }
    let c = CString::new(name).map_err(|_| unknown(io::Error::from_raw_os_error(libc::EINVAL)))?;
    match sys::raw_tracepoint_open(prog.fd(), Some(&c)) {
        Ok(fd) => Ok(Link::new(fd)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Err(unknown(e)),
        Err(e) => Err(kernel_error(&format!("attaching raw tracepoint program `{}` to `{name}`", prog.name()), e)),
    }
}
