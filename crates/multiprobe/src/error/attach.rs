//! Why attaching a program failed: one error type for every attach path, each variant naming
//! the input at fault and what to do, with the errno libbpf would report. The checks of
//! libbpf's options (`NoTargets` to `RetprobeAndSession`) carry libbpf's errno.

use std::io;

use super::{ListingError, LoadError, TracefsError};
use crate::object::ProgramKind;

/// Why an attach failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
#[allow(missing_docs)] // variant fields are named in the messages
pub enum AttachError {
    /// The object has this program but it was not loaded.
    #[error(
        "program `{program}` is not loaded (its section starts with `?` or autoload was turned off): call set_autoload(true) before load"
    )]
    ProgramNotLoaded { program: String },
    /// No program of that name.
    #[error("the object has no program named `{program}`")]
    UnknownProgram { program: String },
    /// Options with no target at all.
    #[error("no targets: give a pattern, a list of symbols or a list of addresses")]
    NoTargets,
    /// A pattern together with a list.
    #[error(
        "pattern `{pattern}` cannot be combined with symbols, addresses, cookies or a count: a pattern chooses the targets itself"
    )]
    PatternWithList { pattern: String },
    /// A list with no element.
    #[error("the list of {what} is empty: give at least one target")]
    EmptyList { what: &'static str },
    /// `unique_match` without a pattern.
    #[error("unique_match applies to patterns only: drop it, or give a pattern instead of a list")]
    UniqueMatchWithoutPattern,
    /// Symbols and addresses together.
    #[error("symbols and addresses are mutually exclusive: give one list")]
    SymbolsAndAddresses,
    /// A count that is not the length of the list.
    #[error("cnt is {cnt} but {len} targets were given: cnt must be the length of the list")]
    CountMismatch { cnt: usize, len: usize },
    /// Cookies not one per target.
    #[error("{cookies} cookies for {targets} targets: give exactly one cookie per target, or none")]
    CookieCount { targets: usize, cookies: usize },
    /// A pattern matching no traceable function.
    #[error("pattern `{pattern}` matches no traceable function{hint}")]
    NoMatch { pattern: String, hint: String },
    /// `unique_match` and a pattern matching several functions.
    #[error("pattern `{pattern}` must match exactly one function (unique_match) but matches {count}: {examples}")]
    NotUnique { pattern: String, count: usize, examples: String },
    /// Return probe and session mode together.
    #[error("return probes and session mode are mutually exclusive: a session program already runs at return")]
    RetprobeAndSession,
    /// The program was loaded for another kind of attachment.
    #[error(
        "program `{program}` was loaded as `{loaded}`, but {wanted} needs a program loaded as `{needed}`: fix its SEC() or call set_kind() before load"
    )]
    WrongProgramKind { program: String, loaded: &'static str, wanted: &'static str, needed: &'static str },
    /// A section pattern with characters libbpf does not accept.
    #[error(
        "program `{program}`: the pattern in section `{section}` has `{bad}`, which is not allowed (letters, digits and _ . * ? only)"
    )]
    InvalidSectionPattern { program: String, section: String, bad: char },
    /// The section name gives no target and none was given.
    #[error(
        "program `{program}` has no attach target in its section name (`{section}`): attach it with explicit targets"
    )]
    NoSectionTarget { program: String, section: String },
    /// More targets than one link holds.
    #[error("{count} targets: the kernel takes at most 1,048,576 in one kprobe_multi link; split the set")]
    TooManyTargets { count: usize, source: io::Error },
    /// The kernel cannot do this kind of attachment.
    #[error("this kernel cannot do {what}: {reason}")]
    NotSupported { what: &'static str, reason: String, source: io::Error },
    /// A symbol the kernel cannot trace.
    #[error("`{symbol}` is not a traceable kernel function ({reason})")]
    UntraceableSymbol { symbol: String, reason: String, source: io::Error },
    /// A target given twice.
    #[error("`{target}` is listed twice: give each target once")]
    Repeated { target: String, source: io::Error },
    /// A name shared by several traceable functions.
    #[error(
        "`{symbol}` names several traceable functions ({places}): by name the kernel attaches only the first; attach by pattern to get every copy, or pick one with `module:{symbol}` in a Selection"
    )]
    AmbiguousSymbol { symbol: String, places: String },
    /// An address the kernel cannot trace.
    #[error("address {addr:#x} is not the entry of a traceable kernel function")]
    UntraceableAddress { addr: u64, source: io::Error },
    /// Missing privileges.
    #[error("{op}: permission denied: tracing needs root, or the CAP_BPF and CAP_PERFMON capabilities")]
    PermissionDenied { op: &'static str, source: io::Error },
    /// tracefs is needed and unavailable.
    #[error(transparent)]
    Tracefs(#[from] TracefsError),
    /// Reading a kernel listing failed.
    #[error("reading {path}: {source}")]
    Read { path: String, source: io::Error },
    /// A tracepoint that does not exist.
    #[error("tracepoint `{tracepoint}` does not exist (see {tracefs}/events/)")]
    UnknownTracepoint { tracepoint: String, tracefs: String, source: io::Error },
    /// A raw tracepoint the kernel does not have.
    #[error(
        "raw tracepoint `{tracepoint}` does not exist: give a tracepoint's name without its category (`sched_switch`, `sys_enter`), as listed under /sys/kernel/tracing/events/*/"
    )]
    UnknownRawTracepoint { tracepoint: String, source: io::Error },
    /// Loading the program again for per-function kprobes failed.
    #[error("program `{program}` could not be loaded again as a plain kprobe for the per-function fallback: {source}")]
    Reload { program: String, source: Box<LoadError> },
    /// Any other refusal by the kernel.
    #[error("{op} failed: {source}{}", hint.as_ref().map(|h| format!(" ({h})")).unwrap_or_default())]
    Kernel { op: String, source: io::Error, hint: Option<String> },
    /// The cancel flag ([`crate::kprobe_multi::KprobeMulti::cancel_on`]) was set during a
    /// per-function attach; what it had attached is detached again.
    #[error("attaching was cancelled after {attached} of {total} functions; those were detached again")]
    Cancelled { attached: usize, total: usize },
}

impl AttachError {
    /// The errno libbpf's `bpf_program__attach_kprobe_multi_opts` returns for the same
    /// failure (the kernel's own errno stays available as the error's source).
    pub fn errno(&self) -> i32 {
        use AttachError::*;
        match self {
            ProgramNotLoaded { .. }
            | NoTargets
            | PatternWithList { .. }
            | EmptyList { .. }
            | UniqueMatchWithoutPattern
            | SymbolsAndAddresses
            | CookieCount { .. }
            | CountMismatch { .. }
            | InvalidSectionPattern { .. }
            | AmbiguousSymbol { .. }
            | NotUnique { .. }
            | RetprobeAndSession
            | WrongProgramKind { .. }
            | NoSectionTarget { .. } => libc::EINVAL,
            UnknownProgram { .. } | NoMatch { .. } => libc::ENOENT,
            Cancelled { .. } => libc::ECANCELED,
            TooManyTargets { source, .. }
            | Repeated { source, .. }
            | NotSupported { source, .. }
            | UntraceableSymbol { source, .. }
            | UntraceableAddress { source, .. }
            | PermissionDenied { source, .. }
            | Read { source, .. }
            | UnknownTracepoint { source, .. }
            | UnknownRawTracepoint { source, .. }
            | Kernel { source, .. } => match source.raw_os_error() {
                // libbpf 1.7 reports the kernel's "no such symbol" as ENOENT.
                Some(libc::ESRCH) => libc::ENOENT,
                Some(errno) => errno,
                None => libc::EIO,
            },
            Tracefs(e) if e.permission_denied() => libc::EACCES,
            Tracefs(_) => libc::ENOENT,
            Reload { source, .. } => source.errno().unwrap_or(libc::EINVAL),
        }
    }
}

impl From<ListingError> for AttachError {
    /// The listing's failures keep their meaning (and errno) on the attach path.
    fn from(e: ListingError) -> AttachError {
        match e {
            ListingError::Read { path, source } => AttachError::Read { path, source },
            ListingError::Tracefs(e) => AttachError::Tracefs(e),
            ListingError::NoMatch { pattern, hint } => AttachError::NoMatch { pattern, hint },
        }
    }
}

impl From<AttachError> for io::Error {
    fn from(e: AttachError) -> io::Error {
        let kind = io::Error::from_raw_os_error(e.errno()).kind();
        io::Error::new(kind, e)
    }
}

/// The error for a program loaded as the wrong kind.
pub(crate) fn wrong_kind(program: &str, loaded: ProgramKind, wanted: &'static str, needed: ProgramKind) -> AttachError {
    AttachError::WrongProgramKind {
        program: program.to_string(),
        loaded: loaded.section_prefix(),
        wanted,
        needed: needed.section_prefix(),
    }
}
