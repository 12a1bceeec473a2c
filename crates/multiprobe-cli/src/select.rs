//! Which functions a command works on: patterns, excludes and the deny list, resolved against
//! the kernel's traceable functions.

use clap::Args;
use multiprobe::AttachError;
use multiprobe::kprobe_multi::{Function, Glob, SYSCALL_PREFIX, Selection, TraceableFunctions};

use crate::error::CliError;
use crate::progress;

/// The pattern arguments every command shares.
#[derive(Debug, Clone, Args)]
pub struct SelectArgs {
    /// Leave out functions matching this pattern (repeatable); excludes win over patterns.
    #[arg(short = 'x', long = "exclude", value_name = "PAT")]
    pub exclude: Vec<String>,
    /// Also allow the functions of the built-in deny list (RCU, BPF trampolines, idle),
    /// whose probing can recurse into BPF itself or hang the machine.
    #[arg(long)]
    pub no_deny_list: bool,
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
    pub traceable: usize,
    pub took: std::time::Duration,
}

/// Reads the traceable functions (with a progress line: under emulation this takes a
/// second) and selects from them; no match is an error naming the patterns.
pub fn resolve(selection: &Selection) -> Result<Resolved, CliError> {
    let (listing, took) = progress::run("reading traceable functions", TraceableFunctions::read);
    let listing = listing?;
    let functions = selection.select(&listing);
    if functions.is_empty() {
        let mut e = CliError::from(AttachError::NoMatch { pattern: selection.to_string(), hint: String::new() });
        e.hints.splice(0..0, no_match_hints(selection));
        return Err(e);
    }
    // One pattern of several matching nothing is likely a typo: say so, and go on.
    if selection.includes().len() > 1 {
        for p in selection.includes() {
            if listing.filter(|name, module| p.matches(name, module)).is_empty() {
                eprintln!("warning: pattern `{p}` matches no traceable function");
            }
        }
    }
    Ok(Resolved { functions, traceable: listing.len(), took })
}

/// Why patterns may match no traceable function: the names exist but cannot be traced, or
/// they are syscalls, whose entry points carry an architecture prefix.
fn no_match_hints(selection: &Selection) -> Vec<String> {
    let globs: Vec<&Glob> = selection.includes().iter().map(|p| &p.name).collect();
    let mut hints = Vec::new();
    if let Ok(kallsyms) = std::fs::read("/proc/kallsyms") {
        let symbols = kallsyms
            .split(|&b| b == b'\n')
            .filter_map(|l| l.split(|&b| b == b' ').nth(2))
            .filter(|name| globs.iter().any(|g| g.matches(name)))
            .count();
        if symbols > 0 {
            hints.push(format!(
                "{symbols} kernel symbols match, but none is traceable: they are notrace, inlined, or not functions"
            ));
        }
    }
    if let Some(g) = globs.iter().find(|g| g.as_str().starts_with("sys_")) {
        hints.push(format!("syscall entry points carry an architecture prefix: try `{SYSCALL_PREFIX}{}`", g.as_str()));
    }
    hints
}

/// `vmlinux` for the core kernel, else the module's name.
pub fn module_name(f: &Function) -> &str {
    f.module.as_deref().unwrap_or("vmlinux")
}
