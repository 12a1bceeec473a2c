//! How this kernel can attach a program to many functions, decided before any work is done,
//! and the attach itself with a progress line.

use std::time::Duration;

use multiprobe::features::{self, Support};
use multiprobe::kprobe_multi::{AttachMode, Fallback, KprobeMultiLink};
use multiprobe::symbols::Function;
use multiprobe::{AttachError, ProgramKind};

use crate::duration;
use crate::error::CliError;
use crate::output;
use crate::progress;

/// How entry (or return) probes go in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// One kprobe_multi link (kernel 5.18+ with CONFIG_FPROBE).
    KprobeMulti,
    /// One perf-event kprobe per function: the program is loaded as a plain kprobe.
    PerFunction,
}

impl Strategy {
    /// The library fallback setting that goes with it.
    pub fn fallback(self) -> Fallback {
        match self {
            Strategy::KprobeMulti => Fallback::Never,
            // The program is loaded as a plain kprobe: the library attaches per function.
            Strategy::PerFunction => Fallback::Auto,
        }
    }

    /// The kind to load an entry program as.
    pub fn entry_kind(self) -> ProgramKind {
        match self {
            Strategy::KprobeMulti => ProgramKind::KprobeMulti,
            Strategy::PerFunction => ProgramKind::Kprobe,
        }
    }

    /// The kind to load a return program as.
    pub fn return_kind(self) -> ProgramKind {
        match self {
            Strategy::KprobeMulti => ProgramKind::KretprobeMulti,
            Strategy::PerFunction => ProgramKind::Kretprobe,
        }
    }
}

/// BPF must be usable at all.
pub fn require_bpf() -> Result<(), CliError> {
    match features::bpf_syscall() {
        Support::Yes => Ok(()),
        Support::No(reason) => Err(CliError::new(format!("cannot use BPF: {reason}"))
            .hint("`multiprobe features` shows what this kernel and these privileges allow")),
    }
}

/// What libbpf returns where the kernel lacks a link type (uapi asm-generic/errno.h).
const EOPNOTSUPP: i32 = 95;

/// Chooses kprobe_multi where the kernel has it, else per-function kprobes unless
/// `no_fallback`; fails with every reason when neither works.
pub fn choose(no_fallback: bool) -> Result<Strategy, CliError> {
    require_bpf()?;
    let multi = features::kprobe_multi();
    let Support::No(multi_reason) = multi else { return Ok(Strategy::KprobeMulti) };
    let single = features::perf_kprobe();
    if no_fallback {
        let mut e = CliError::new(format!("kprobe_multi links are not supported by this kernel: {multi_reason}"))
            .errno(EOPNOTSUPP);
        if single.is_yes() {
            e = e.hint("drop --no-fallback to attach one kprobe per function instead (slower to attach, same results)");
        }
        return Err(e.hint("`multiprobe features` shows what this kernel supports, and why"));
    }
    if let Support::No(single_reason) = single {
        return Err(CliError::new("this kernel can attach no kprobes")
            .errno(EOPNOTSUPP)
            .hint(format!("kprobe_multi links: {multi_reason}"))
            .hint(format!("single kprobes (the fallback): {single_reason}"))
            .hint("`multiprobe features` shows what this kernel supports, and why"));
    }
    // Each function's counters are found by its attach cookie.
    if let Support::No(reason) = features::perf_kprobe_cookies() {
        return Err(CliError::new("per-function kprobes cannot tell functions apart on this kernel")
            .hint(format!("kprobe_multi links: {multi_reason}"))
            .hint(format!("attach cookies: {reason}")));
    }
    Ok(Strategy::PerFunction)
}

/// Whether kprobe session links work here for the latency program: the link type, and the
/// session kfuncs the program calls, in the kernel's BTF. (Before the library checked the
/// attach type against the kernel's BTF, its probe answered yes on 6.1: kernels also say
/// EINVAL for an attach type they do not know.)
pub fn session_support() -> Support {
    match (features::kprobe_session(), features::session_kfuncs()) {
        (Support::Yes, Ok(_)) => Support::Yes,
        (Support::Yes, Err(reason)) => Support::No(reason),
        (no, _) => no,
    }
}

/// How a set was attached, for people (`kprobe_multi`, `per-function kprobes`).
pub fn mode_text(mode: AttachMode) -> &'static str {
    match mode {
        AttachMode::KprobeMulti => "kprobe_multi",
        AttachMode::PerFunctionKprobes => "per-function kprobes",
    }
}

/// How a link is attached, for the `attached ...` line: the mode, and how many functions
/// have a kprobe of their own next to a kprobe_multi link, and why.
pub fn describe_link(link: &multiprobe::kprobe_multi::KprobeMultiLink) -> String {
    let mut s = mode_text(link.attach_mode()).to_string();
    let mut reasons: Vec<&str> = link.kprobe_only().iter().map(|k| k.reason.as_str()).collect();
    reasons.dedup();
    if !reasons.is_empty() {
        s.push_str(&format!(
            "; {} through per-function kprobes: {}",
            output::functions(link.kprobe_only().len()),
            reasons.join(", ")
        ));
    }
    s
}

/// The same for JSON.
pub fn mode_json(mode: AttachMode) -> &'static str {
    match mode {
        AttachMode::KprobeMulti => "kprobe_multi",
        AttachMode::PerFunctionKprobes => "kprobes",
    }
}

/// Runs `attach` with `attaching N functions... 1.2s` on stderr, then says how long it took.
pub fn attach<T>(
    functions: usize,
    attach: impl FnOnce() -> Result<T, AttachError>,
    describe: impl FnOnce(&T) -> String,
) -> Result<(T, Duration), CliError> {
    let (result, took) = progress::run(&format!("attaching {}", output::functions(functions)), attach);
    let links = result?;
    eprintln!("attached {} in {} ({})", output::functions(functions), duration::human(took), describe(&links));
    Ok((links, took))
}

/// Which of `functions` are attached, given those the kernel refused and the attach left out
/// (`skip_rejected`); says on stderr which were left out.
pub fn attached_mask(functions: &[Function], skipped: &[Function]) -> Vec<bool> {
    if skipped.is_empty() {
        return vec![true; functions.len()];
    }
    let mut names: Vec<String> = skipped.iter().take(5).map(|f| f.name.clone()).collect();
    if skipped.len() > 5 {
        names.push("...".into());
    }
    crate::error::warning(format_args!(
        "the kernel refused {}, left out: {}",
        output::functions(skipped.len()),
        names.join(", ")
    ));
    let refused: std::collections::HashSet<&Function> = skipped.iter().collect();
    functions.iter().map(|f| !refused.contains(f)).collect()
}

/// The elements of `items` whose `mask` entry is true.
pub fn masked<T: Clone>(items: &[T], mask: &[bool]) -> Vec<T> {
    items.iter().zip(mask).filter(|(_, keep)| **keep).map(|(t, _)| t.clone()).collect()
}

/// Whether detaching `links` takes seconds: per-function kprobes go one by one (7 s for 73
/// functions on 6.1). A command's text summary then comes first, ending in
/// [`detach_clause`]`(None)`, and [`detached_line`] once the detach is done, rather than a
/// summary held back for seconds after the run ended. JSON carries `detach_ms`, so it waits.
pub fn slow_detach(links: &[KprobeMultiLink]) -> bool {
    links.iter().any(|l| l.attach_mode() == AttachMode::PerFunctionKprobes)
}

/// How a summary's timing line ends: `, detached in 70ms.`, or `; detaching...` where the
/// summary comes before a [`slow_detach`].
pub fn detach_clause(detach: Option<Duration>) -> String {
    match detach {
        Some(d) => format!(", detached in {}.", duration::human(d)),
        None => "; detaching...".into(),
    }
}

/// What follows a summary printed before a [`slow_detach`] once the detach is done.
pub fn detached_line(took: Duration) -> String {
    format!("Detached in {}.\n", duration::human(took))
}

/// Detaches (drops) the links, timing it; a detach taking over a second (per-function
/// kprobes: 7 s for 73 functions on 6.1) shows `detaching...` on stderr rather than a silent
/// wait.
pub fn detach(links: Vec<KprobeMultiLink>) -> Duration {
    let ((), took) = crate::progress::run_after("detaching", Duration::from_secs(1), || {
        // In order: for an entry + return pair the entries go first, so calls in flight
        // still find their start time at return.
        for link in links {
            drop(link);
        }
    });
    took
}
