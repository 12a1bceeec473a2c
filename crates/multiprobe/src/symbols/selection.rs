//! Choosing functions with several patterns: includes, excludes (which always win), module
//! filters and a built-in deny list of functions that must not be probed.
//!
//! A pattern is `NAME_GLOB`, `MODULE_GLOB:NAME_GLOB` (functions of matching modules only) or
//! `vmlinux:NAME_GLOB` (the core kernel only): `vfs_*`, `ext4:ext4_*`, `*kvm*:*`.

use super::Listing;
use super::glob::Glob;
use super::kallsyms::Kallsyms;
use super::syscall::SYSCALL_PREFIX;
use super::traceable::{Function, TraceableFunctions};
use crate::error::ListingError;

/// Functions never probed unless the deny list is turned off: probing them recurses into the
/// BPF machinery itself (trampolines, program entry and exit, the helpers programs use for
/// recursion protection) or trips RCU checks on idle CPUs. Gathered from retsnoop's enforced
/// deny list and libbpf's attach-everything benchmark.
pub const DENY_LIST: &[&str] = &[
    "rcu_*",
    "__rcu_*",
    "migrate_enable",
    "migrate_disable",
    "preempt_count_*",
    "__preempt_count_*",
    "arch_cpu_idle*",
    "default_idle*",
    "bpf_dispatcher_*",
    "__bpf_prog_enter*",
    "__bpf_prog_exit*",
    "__bpf_tramp_enter*",
    "__bpf_tramp_exit*",
    "bpf_get_smp_processor_id",
    "bpf_spin_lock",
    "bpf_spin_unlock",
    "update_prog_stats",
    "inc_misses_counter",
    "bpf_prog_start_time",
];

/// Which modules a pattern covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModuleFilter {
    /// vmlinux and every module.
    Any,
    /// The core kernel only (`vmlinux:`).
    Vmlinux,
    /// Modules whose name matches the glob.
    Module(Glob),
}

/// One pattern: a function-name glob and the modules it applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    /// The modules the pattern applies to.
    pub module: ModuleFilter,
    /// The function-name glob.
    pub name: Glob,
}

impl Pattern {
    /// Parses `NAME`, `MODULE:NAME` or `vmlinux:NAME`.
    pub fn parse(text: &str) -> Pattern {
        match text.split_once(':') {
            Some(("vmlinux", name)) => Pattern { module: ModuleFilter::Vmlinux, name: Glob::new(name) },
            Some((module, name)) => Pattern { module: ModuleFilter::Module(Glob::new(module)), name: Glob::new(name) },
            None => Pattern { module: ModuleFilter::Any, name: Glob::new(text) },
        }
    }

    /// Whether the function `name` of `module` (`None`: vmlinux) matches.
    pub fn matches(&self, name: &[u8], module: Option<&[u8]>) -> bool {
        let module_ok = match (&self.module, module) {
            (ModuleFilter::Any, _) => true,
            (ModuleFilter::Vmlinux, m) => m.is_none(),
            (ModuleFilter::Module(g), Some(m)) => g.matches(m),
            (ModuleFilter::Module(_), None) => false,
        };
        module_ok && self.name.matches(name)
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.module {
            ModuleFilter::Any => write!(f, "{}", self.name.as_str()),
            ModuleFilter::Vmlinux => write!(f, "vmlinux:{}", self.name.as_str()),
            ModuleFilter::Module(m) => write!(f, "{}:{}", m.as_str(), self.name.as_str()),
        }
    }
}

/// A set of functions described by patterns.
///
/// ```
/// use multiprobe::symbols::Selection;
/// let s = Selection::new().include("tcp_*").include("udp_*").exclude("*_timer*");
/// assert!(s.accepts(b"tcp_sendmsg", None));
/// assert!(!s.accepts(b"tcp_write_timer", None));
/// assert!(!s.accepts(b"rcu_note_context_switch", None)); // not included, and denied anyway
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    include: Vec<Pattern>,
    exclude: Vec<Pattern>,
    deny: Vec<Glob>,
}

impl Default for Selection {
    fn default() -> Self {
        Selection::new()
    }
}

impl Selection {
    /// An empty selection with the built-in deny list ([`DENY_LIST`]).
    pub fn new() -> Selection {
        Selection { include: Vec::new(), exclude: Vec::new(), deny: DENY_LIST.iter().map(|p| Glob::new(p)).collect() }
    }

    /// Adds functions matching `pattern`.
    pub fn include(mut self, pattern: &str) -> Selection {
        self.include.push(Pattern::parse(pattern));
        self
    }

    /// Removes functions matching `pattern`, whatever the includes say.
    pub fn exclude(mut self, pattern: &str) -> Selection {
        self.exclude.push(Pattern::parse(pattern));
        self
    }

    /// Turns the built-in deny list off: every traceable function can be selected.
    pub fn without_deny_list(mut self) -> Selection {
        self.deny.clear();
        self
    }

    /// The include patterns.
    pub fn includes(&self) -> &[Pattern] {
        &self.include
    }

    /// The exclude patterns.
    pub fn excludes(&self) -> &[Pattern] {
        &self.exclude
    }

    /// Whether the function `name` (of `module`, `None` for vmlinux) is selected.
    pub fn accepts(&self, name: &[u8], module: Option<&[u8]>) -> bool {
        self.include.iter().any(|p| p.matches(name, module))
            && !self.exclude.iter().any(|p| p.matches(name, module))
            && !self.deny.iter().any(|g| g.matches(name))
    }

    /// The selected functions of a listing, in listing order.
    pub fn select(&self, listing: &TraceableFunctions) -> Vec<Function> {
        // Every selected name contains the longest literal of one of the includes.
        let needles: Vec<&[u8]> = self.include.iter().map(|p| p.name.longest_literal()).collect();
        listing.filter_with_hint(&needles, |name, module| self.accepts(name, module))
    }

    /// Functions kprobes can probe but kprobe_multi cannot: those an include names literally
    /// (no `*` or `?`) that ftrace's listing lacks but `/proc/kallsyms` has as text symbols,
    /// accepted by the excludes and the deny list, with their kallsyms address, in kallsyms
    /// order. Glob patterns match ftrace's listing only. Reads `/proc/kallsyms` only when
    /// some literal include matched no listed function; empty where kallsyms hides
    /// addresses (not root), since the kprobe of such a function is placed by address.
    ///
    /// Attach them with [`crate::kprobe_multi::KprobeMulti::kprobe_refused`].
    pub fn kprobe_only(&self, listing: &TraceableFunctions) -> std::io::Result<Vec<Function>> {
        let literal: Vec<&Pattern> = self
            .include
            .iter()
            .filter(|p| p.name.is_literal() && !matches!(&p.module, ModuleFilter::Module(m) if !m.is_literal()))
            .filter(|p| listing.count_named(p.name.as_str()) == 0)
            .collect();
        if literal.is_empty() {
            return Ok(Vec::new());
        }
        let kallsyms = Kallsyms::read()?;
        let mut seen = std::collections::HashSet::new();
        Ok(kallsyms
            .text_symbols()
            .filter(|s| s.addr != 0 && literal.iter().any(|p| p.matches(s.name, s.module)))
            .filter(|s| self.accepts(s.name, s.module) && seen.insert(s.addr))
            .map(|s| Function {
                name: String::from_utf8_lossy(s.name).into_owned(),
                module: s.module.map(|m| String::from_utf8_lossy(m).into_owned()),
                address: s.addr,
            })
            .collect())
    }

    /// Whether the function is selected but for the deny list.
    fn accepts_but_denied(&self, name: &[u8], module: Option<&[u8]>) -> bool {
        self.include.iter().any(|p| p.matches(name, module))
            && !self.exclude.iter().any(|p| p.matches(name, module))
            && self.deny.iter().any(|g| g.matches(name))
    }

    /// Reads the traceable functions (kept in memory only, see [`Listing`]) and selects from
    /// them; an empty result is an error naming the patterns.
    pub fn resolve(&self) -> Result<Vec<Function>, ListingError> {
        self.resolve_with(&Listing::new())
    }

    /// [`Selection::resolve`], reading the traceable functions as `listing` says (e.g. kept
    /// in a cache directory for the boot).
    pub fn resolve_with(&self, listing: &Listing) -> Result<Vec<Function>, ListingError> {
        let functions = listing.read()?;
        let found = self.select(&functions);
        if found.is_empty() {
            return Err(self.no_match_error_in(Some(&functions)));
        }
        Ok(found)
    }

    /// The error for a selection that matched nothing, with hints: functions the deny list
    /// or the excludes removed, names that exist but cannot be traced, modules not loaded,
    /// syscall wrappers. Reads the traceable functions again for the hints; see
    /// [`Selection::no_match_error_in`] to pass them.
    pub fn no_match_error(&self) -> ListingError {
        self.no_match_error_in(Listing::new().read().ok().as_ref())
    }

    /// [`Selection::no_match_error`] with the traceable functions at hand (`None`: unknown).
    pub fn no_match_error_in(&self, functions: Option<&TraceableFunctions>) -> ListingError {
        ListingError::NoMatch { pattern: self.to_string(), hint: self.no_match_hint(functions) }
    }

    /// Why this selection matches nothing, each count with the whole selection applied
    /// (module part, excludes, deny list). Empty, or ` (hint; hint)`.
    fn no_match_hint(&self, functions: Option<&TraceableFunctions>) -> String {
        let mut hints = Vec::new();
        if let Some(functions) = functions {
            let denied = functions.filter(|name, module| self.accepts_but_denied(name, module)).len();
            if denied > 0 {
                hints.push(format!(
                    "{denied} traceable functions match but are on the built-in deny list (probing them can recurse \
                     into BPF or trip RCU checks on idle CPUs); `--no-deny-list` (Selection::without_deny_list) \
                     allows them"
                ));
            }
            let excluded = functions
                .filter(|name, module| {
                    self.include.iter().any(|p| p.matches(name, module))
                        && self.exclude.iter().any(|p| p.matches(name, module))
                })
                .len();
            if excluded > 0 {
                hints.push(format!("{excluded} traceable functions match but are excluded"));
            }
        }
        if let Ok(kallsyms) = Kallsyms::read() {
            // Accepted by the whole selection, yet not traceable (none is, or no error).
            let n = kallsyms.text_symbols().filter(|s| self.accepts(s.name, s.module)).count();
            if n > 0 {
                hints.push(format!("{n} kernel functions match, but none is traceable: notrace or inlined"));
            }
            for p in &self.include {
                if let ModuleFilter::Module(g) = &p.module
                    && !kallsyms.text_symbols().any(|s| s.module.is_some_and(|m| g.matches(m)))
                {
                    hints.push(format!("no loaded module matches `{}`", g.as_str()));
                }
            }
        }
        if let Some(g) = self.include.iter().map(|p| &p.name).find(|g| g.as_str().starts_with("sys_")) {
            hints.push(format!(
                "syscall entry points carry an architecture prefix: try `{SYSCALL_PREFIX}{}`",
                g.as_str()
            ));
        }
        if hints.is_empty() { String::new() } else { format!(" ({})", hints.join("; ")) }
    }
}

/// Why a plain glob (kprobe_multi's pattern: no module part, no deny list) matches nothing.
pub(crate) fn no_match_hint(glob: &Glob) -> String {
    let s = Selection {
        include: vec![Pattern { module: ModuleFilter::Any, name: glob.clone() }],
        exclude: Vec::new(),
        deny: Vec::new(),
    };
    s.no_match_hint(None)
}

impl std::fmt::Display for Selection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inc: Vec<String> = self.include.iter().map(ToString::to_string).collect();
        write!(f, "{}", inc.join(" "))?;
        for e in &self.exclude {
            write!(f, " --exclude {e}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::symbols::ListingSource;

    const LISTING: &str = "ffffffff81000010 vfs_read\n\
        ffffffff81000020 vfs_write\n\
        ffffffff81000030 rcu_read_lock_held\n\
        ffffffff81000040 tcp_sendmsg\n\
        ffffffff81000050 tcp_write_timer\n\
        ffffffffc0001000 kvm_vcpu_ioctl [kvm]\n\
        ffffffffc0002000 vmx_vcpu_run [kvm_intel]\n\
        ffffffffc0003000 vfs_read [fakemod]\n";

    fn names(s: &Selection) -> Vec<String> {
        let t = TraceableFunctions::from_text(LISTING.as_bytes().to_vec(), ListingSource::FilterFunctionsAddrs);
        s.select(&t)
            .into_iter()
            .map(|f| match f.module {
                Some(m) => format!("{m}:{}", f.name),
                None => f.name,
            })
            .collect()
    }

    #[test]
    fn includes_excludes_and_modules() {
        assert_eq!(names(&Selection::new().include("vfs_*")), ["vfs_read", "vfs_write", "fakemod:vfs_read"]);
        assert_eq!(names(&Selection::new().include("vmlinux:vfs_*")), ["vfs_read", "vfs_write"]);
        assert_eq!(names(&Selection::new().include("fakemod:*")), ["fakemod:vfs_read"]);
        assert_eq!(names(&Selection::new().include("*kvm*:*")), ["kvm:kvm_vcpu_ioctl", "kvm_intel:vmx_vcpu_run"]);
        assert_eq!(
            names(&Selection::new().include("tcp_*").include("vfs_w*")),
            ["vfs_write", "tcp_sendmsg", "tcp_write_timer"]
        );
        // Exclude always wins, also over a more specific include.
        assert_eq!(
            names(&Selection::new().include("tcp_*").include("tcp_write_timer").exclude("*timer*")),
            ["tcp_sendmsg"]
        );
        assert_eq!(names(&Selection::new().include("vfs_*").exclude("fakemod:*")), ["vfs_read", "vfs_write"]);
    }

    #[test]
    fn deny_list_is_on_by_default_and_can_be_turned_off() {
        assert!(names(&Selection::new().include("rcu_*")).is_empty());
        assert_eq!(names(&Selection::new().include("rcu_*").without_deny_list()), ["rcu_read_lock_held"]);
        assert_eq!(names(&Selection::new().include("*").exclude("*:*").exclude("tcp_*")).len(), 2);
    }

    #[test]
    fn patterns_print_as_written() {
        assert_eq!(Pattern::parse("ext4:ext4_*").to_string(), "ext4:ext4_*");
        assert_eq!(Pattern::parse("vmlinux:x").to_string(), "vmlinux:x");
        assert_eq!(Selection::new().include("a*").include("b").exclude("c").to_string(), "a* b --exclude c");
    }
}
