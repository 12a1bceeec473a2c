//! Which functions a command works on: patterns, excludes and the deny list, resolved against
//! the kernel's traceable functions.

use clap::Args;
use multiprobe::symbols::{Function, Listing, Selection};

use crate::checked::Checked;
use crate::error::CliError;
use crate::progress;

/// The pattern arguments every command shares.
#[derive(Debug, Clone, Args)]
pub struct SelectArgs {
    /// Leave out functions matching this pattern (repeatable); excludes win over patterns.
    #[arg(short = 'x', long = "exclude", value_name = "PAT", value_parser = Checked(parse_pattern))]
    pub exclude: Vec<String>,
    /// Also allow the functions of the built-in deny list (RCU, BPF trampolines, idle),
    /// whose probing can recurse into BPF itself or hang the machine.
    #[arg(long)]
    pub no_deny_list: bool,
}

/// What `count` and `latency` work on: one pattern at least, and the shared options.
#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// Function patterns: NAME_GLOB, MODULE_GLOB:NAME_GLOB or vmlinux:NAME_GLOB.
    #[arg(required = true, value_name = "PATTERN", value_parser = Checked(parse_pattern))]
    pub patterns: Vec<String>,
    #[command(flatten)]
    pub select: SelectArgs,
}

impl TargetArgs {
    /// The functions these arguments select.
    pub fn resolve(&self, listing: &Listing) -> Result<Resolved, CliError> {
        resolve(&selection(&self.patterns, &self.select), listing)
    }

    /// [`TargetArgs::resolve`], keeping literal names kprobes can probe but kprobe_multi
    /// cannot ([`resolve_with_kprobe_only`]).
    pub fn resolve_with_kprobe_only(&self, listing: &Listing) -> Result<Resolved, CliError> {
        resolve_with_kprobe_only(&selection(&self.patterns, &self.select), listing)
    }
}

/// Parses a pattern: kernel function and module names have no control characters, so a
/// pattern with one (a newline pasted in) can match nothing; it is refused, escaped.
pub fn parse_pattern(text: &str) -> Result<String, String> {
    match text.chars().find(|c| c.is_control()) {
        Some(c) => Err(format!(
            "{} contains the control character {}: function names have none",
            crate::error::quoted(text),
            crate::error::quoted(&c.to_string())
        )),
        None => Ok(text.to_string()),
    }
}

/// The library selection for `patterns` and `args`.
pub fn selection(patterns: &[String], args: &SelectArgs) -> Selection {
    let mut s = Selection::new();
    for p in patterns {
        s = s.include(p);
    }
    for x in &args.exclude {
        s = s.exclude(x);
    }
    if args.no_deny_list { s.without_deny_list() } else { s }
}

/// The functions selected, how many are traceable in all, and how long finding them took.
pub struct Resolved {
    pub functions: Vec<Function>,
    /// Functions named literally that ftrace cannot patch but kprobes can probe (not in
    /// `functions`): only from [`resolve_with_kprobe_only`].
    pub kprobe_only: Vec<Function>,
    pub traceable: usize,
    pub took: std::time::Duration,
}

/// Reads the traceable functions (with a progress line: under emulation this takes a
/// second) and selects from them; no match is an error naming the patterns.
pub fn resolve(selection: &Selection, listing: &Listing) -> Result<Resolved, CliError> {
    resolve_as(selection, listing, false)
}

/// Why a kprobe-only function cannot go into a kprobe_multi link, as `list` and `count` say.
pub const KPROBE_ONLY_REASON: &str = "not in available_filter_functions";

/// [`resolve`], where a name given literally (no `*` or `?`) that ftrace's listing lacks but
/// kallsyms has as a function is kept as a kprobe-only target (in `kprobe_only`) instead of
/// matching nothing. Glob patterns match the listing only.
pub fn resolve_with_kprobe_only(selection: &Selection, listing: &Listing) -> Result<Resolved, CliError> {
    resolve_as(selection, listing, true)
}

fn resolve_as(selection: &Selection, listing: &Listing, kprobes: bool) -> Result<Resolved, CliError> {
    let (listing, took) = progress::run("reading traceable functions", || listing.read());
    let listing = listing?;
    let functions = selection.select(&listing);
    // Without kallsyms (unreadable) there are simply none.
    let kprobe_only = if kprobes { selection.kprobe_only(&listing).unwrap_or_default() } else { Vec::new() };
    if functions.is_empty() && kprobe_only.is_empty() {
        return Err(CliError::from(selection.no_match_error_in(Some(&listing))));
    }
    // One pattern of several matching nothing is likely a typo: say so, and go on.
    if selection.includes().len() > 1 {
        for p in selection.includes() {
            if listing.filter(|name, module| p.matches(name, module)).is_empty()
                && !kprobe_only.iter().any(|f| p.matches(f.name.as_bytes(), f.module.as_deref().map(str::as_bytes)))
            {
                crate::error::warning(format_args!("pattern `{p}` matches no traceable function"));
            }
        }
    }
    Ok(Resolved { functions, kprobe_only, traceable: listing.len(), took })
}

/// `vmlinux` for the core kernel, else the module's name.
pub fn module_name(f: &Function) -> &str {
    f.module.as_deref().unwrap_or("vmlinux")
}

#[cfg(test)]
mod tests {
    #[test]
    fn patterns_with_control_characters_are_refused_escaped() {
        assert_eq!(super::parse_pattern("vfs_*"), Ok("vfs_*".into()));
        let e = super::parse_pattern("vfs_read\nvfs_write").unwrap_err();
        assert_eq!(e, "`vfs_read\\nvfs_write` contains the control character `\\n`: function names have none");
    }
}
