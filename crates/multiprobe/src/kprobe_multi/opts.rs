//! libbpf's `struct bpf_kprobe_multi_opts`, field for field, for code ported from C.

use super::attach::{How, attach_plan};
use super::link::KprobeMultiLink;
use super::plan::{Strictness, check_program, resolve};
use super::split::Rejected;
use super::{Fallback, Mode, Targets};
use crate::error::AttachError;
use crate::program::Program;
use crate::symbols::{Glob, Listing};

/// The pattern argument and options of `bpf_program__attach_kprobe_multi_opts`. Every
/// combination can be written here; [`Program::attach_kprobe_multi_opts`] rejects the ones
/// libbpf rejects, in libbpf's order and with libbpf's errno ([`AttachError::errno`]). New
/// code should prefer [`super::KprobeMulti`], where they cannot be written at all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KprobeMultiOpts {
    /// Glob pattern (libbpf's separate `pattern` argument).
    pub pattern: Option<String>,
    /// Function names.
    pub syms: Option<Vec<String>>,
    /// Function addresses.
    pub addrs: Option<Vec<u64>>,
    /// One cookie per symbol or address.
    pub cookies: Option<Vec<u64>>,
    /// Number of symbols or addresses; `None` means the length of the list. When given, it
    /// must equal that length (C passes arrays and a count; Rust passes vectors).
    pub cnt: Option<usize>,
    /// Attach at function return.
    pub retprobe: bool,
    /// Session mode (kernel 6.10+).
    pub session: bool,
    /// With a pattern: fail unless exactly one function matches.
    pub unique_match: bool,
    /// Not in libbpf: what to do where the kernel has no kprobe_multi links. The default,
    /// [`Fallback::Never`], fails as libbpf does; [`Fallback::Auto`] attaches per-function
    /// kprobes instead (the program may then be loaded as a plain kprobe too).
    pub fallback: Fallback,
}

/// [`Program::attach_kprobe_multi_opts`]: libbpf's checks, in libbpf's order.
pub(crate) fn attach(prog: &Program, o: &KprobeMultiOpts) -> Result<KprobeMultiLink, AttachError> {
    let list_len = o.syms.as_ref().map(Vec::len).or(o.addrs.as_ref().map(Vec::len));
    let cnt = o.cnt.or(list_len).unwrap_or(0);
    if o.pattern.is_none() && o.syms.is_none() && o.addrs.is_none() {
        return Err(AttachError::NoTargets);
    }
    if let Some(p) = &o.pattern
        && (o.syms.is_some() || o.addrs.is_some() || o.cookies.is_some() || o.cnt.is_some_and(|c| c > 0))
    {
        return Err(AttachError::PatternWithList { pattern: p.clone() });
    }
    if o.pattern.is_none() && cnt == 0 {
        let what = if o.syms.is_some() { "symbols" } else { "addresses" };
        return Err(AttachError::EmptyList { what });
    }
    if o.pattern.is_none() && o.unique_match {
        return Err(AttachError::UniqueMatchWithoutPattern);
    }
    if o.syms.is_some() && o.addrs.is_some() {
        return Err(AttachError::SymbolsAndAddresses);
    }
    if let Some(len) = list_len
        && len != cnt
    {
        return Err(AttachError::CountMismatch { cnt, len });
    }
    let targets = match (&o.pattern, &o.syms, &o.addrs) {
        (Some(p), _, _) if o.unique_match => Targets::UniquePattern(Glob::new(p)),
        (Some(p), _, _) => Targets::Pattern(Glob::new(p)),
        (None, Some(s), _) => Targets::Symbols(s.clone()),
        (None, None, Some(a)) => Targets::Addresses(a.clone()),
        (None, None, None) => unreachable!("checked above"),
    };
    let plan = resolve(&targets, o.cookies.clone(), Strictness::Libbpf, &Listing::new())?;
    // libbpf checks this only after resolving the targets.
    let mode = match (o.retprobe, o.session) {
        (true, true) => return Err(AttachError::RetprobeAndSession),
        (true, false) => Mode::Return,
        (false, true) => Mode::Session,
        (false, false) => Mode::Entry,
    };
    if o.fallback == Fallback::Never {
        check_program(prog, mode)?;
    }
    attach_plan(
        prog,
        plan,
        mode,
        o.fallback,
        How { rejected: Rejected::Fail, kprobe_refused: false },
        &Listing::new(),
        None,
    )
}
