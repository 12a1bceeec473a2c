//! Program kinds and libbpf's section-name conventions (`SEC("kprobe.multi/vfs_*")`).

use crate::sys::{attach_type, prog_type};

/// What kind of program a function is, as its ELF section name says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProgramKind {
    /// `socket`: a socket filter.
    SocketFilter,
    /// `kprobe[/FUNC[+OFFSET]]`: one kernel function entry.
    Kprobe,
    /// `kretprobe[/FUNC]`: one kernel function return.
    Kretprobe,
    /// `ksyscall[/NAME]`: a syscall entry, through the architecture's wrapper.
    Ksyscall,
    /// `kretsyscall[/NAME]`.
    Kretsyscall,
    /// `kprobe.multi[/PATTERN]`: many kernel function entries, one link.
    KprobeMulti,
    /// `kretprobe.multi[/PATTERN]`: many kernel function returns, one link.
    KretprobeMulti,
    /// `kprobe.session[/PATTERN]`: entry and return of many functions (kernel 6.10+).
    KprobeSession,
    /// `uprobe[/PATH:FUNC]`.
    Uprobe,
    /// `uretprobe[/PATH:FUNC]`.
    Uretprobe,
    /// `uprobe.multi[/PATH:PATTERN]`.
    UprobeMulti,
    /// `uretprobe.multi[/PATH:PATTERN]`.
    UretprobeMulti,
    /// `tracepoint/CATEGORY/NAME` (or `tp/...`).
    Tracepoint,
    /// `raw_tracepoint/NAME` (or `raw_tp/...`).
    RawTracepoint,
    /// `perf_event`.
    PerfEvent,
    /// `xdp`.
    Xdp,
    /// `tc` or `classifier`.
    SchedCls,
}

impl ProgramKind {
    /// `enum bpf_prog_type` of this kind.
    pub fn prog_type(self) -> u32 {
        use ProgramKind::*;
        match self {
            SocketFilter => prog_type::SOCKET_FILTER,
            Kprobe | Kretprobe | Ksyscall | Kretsyscall | KprobeMulti | KretprobeMulti | KprobeSession | Uprobe
            | Uretprobe | UprobeMulti | UretprobeMulti => prog_type::KPROBE,
            Tracepoint => prog_type::TRACEPOINT,
            RawTracepoint => prog_type::RAW_TRACEPOINT,
            PerfEvent => prog_type::PERF_EVENT,
            Xdp => prog_type::XDP,
            SchedCls => prog_type::SCHED_CLS,
        }
    }

    /// `expected_attach_type` the kernel needs at load time. A kprobe_multi program must be
    /// loaded as such: a plain kprobe program cannot create a multi link, and vice versa.
    pub fn expected_attach_type(self) -> u32 {
        use ProgramKind::*;
        match self {
            KprobeMulti | KretprobeMulti => attach_type::TRACE_KPROBE_MULTI,
            KprobeSession => attach_type::TRACE_KPROBE_SESSION,
            UprobeMulti | UretprobeMulti => attach_type::TRACE_UPROBE_MULTI,
            _ => 0,
        }
    }

    /// Whether programs of this kind attach through kprobe_multi links.
    pub fn is_kprobe_multi(self) -> bool {
        matches!(self, ProgramKind::KprobeMulti | ProgramKind::KretprobeMulti | ProgramKind::KprobeSession)
    }

    /// The section prefix of this kind, for messages.
    pub fn section_prefix(self) -> &'static str {
        SECTIONS.iter().find(|s| s.kind == self).map_or("?", |s| s.prefix)
    }
}

/// One row of the section-name table.
struct SectionDef {
    prefix: &'static str,
    kind: ProgramKind,
    /// Whether `prefix/...` carries an attach target.
    takes_target: bool,
}

const SECTIONS: &[SectionDef] = &[
    SectionDef { prefix: "socket", kind: ProgramKind::SocketFilter, takes_target: false },
    SectionDef { prefix: "kprobe", kind: ProgramKind::Kprobe, takes_target: true },
    SectionDef { prefix: "kretprobe", kind: ProgramKind::Kretprobe, takes_target: true },
    SectionDef { prefix: "ksyscall", kind: ProgramKind::Ksyscall, takes_target: true },
    SectionDef { prefix: "kretsyscall", kind: ProgramKind::Kretsyscall, takes_target: true },
    SectionDef { prefix: "kprobe.multi", kind: ProgramKind::KprobeMulti, takes_target: true },
    SectionDef { prefix: "kretprobe.multi", kind: ProgramKind::KretprobeMulti, takes_target: true },
    SectionDef { prefix: "kprobe.session", kind: ProgramKind::KprobeSession, takes_target: true },
    SectionDef { prefix: "uprobe", kind: ProgramKind::Uprobe, takes_target: true },
    SectionDef { prefix: "uretprobe", kind: ProgramKind::Uretprobe, takes_target: true },
    SectionDef { prefix: "uprobe.multi", kind: ProgramKind::UprobeMulti, takes_target: true },
    SectionDef { prefix: "uretprobe.multi", kind: ProgramKind::UretprobeMulti, takes_target: true },
    SectionDef { prefix: "tracepoint", kind: ProgramKind::Tracepoint, takes_target: true },
    SectionDef { prefix: "tp", kind: ProgramKind::Tracepoint, takes_target: true },
    SectionDef { prefix: "raw_tracepoint", kind: ProgramKind::RawTracepoint, takes_target: true },
    SectionDef { prefix: "raw_tp", kind: ProgramKind::RawTracepoint, takes_target: true },
    SectionDef { prefix: "perf_event", kind: ProgramKind::PerfEvent, takes_target: false },
    SectionDef { prefix: "xdp", kind: ProgramKind::Xdp, takes_target: false },
    SectionDef { prefix: "tc", kind: ProgramKind::SchedCls, takes_target: false },
    SectionDef { prefix: "classifier", kind: ProgramKind::SchedCls, takes_target: false },
];

/// What a section name says about the programs in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionInfo {
    /// The program kind the prefix names.
    pub kind: ProgramKind,
    /// The part after `prefix/`, if any: a function, pattern, tracepoint or path.
    pub target: Option<String>,
    /// False when the name starts with `?` (libbpf: do not load unless asked).
    pub autoload: bool,
}

/// Interprets a section name the way libbpf does: exactly the prefix, or the prefix followed
/// by `/` and a target. `None` for names no program kind uses.
pub fn parse_section_name(name: &str) -> Option<SectionInfo> {
    let (autoload, name) = match name.strip_prefix('?') {
        Some(rest) => (false, rest),
        None => (true, name),
    };
    SECTIONS.iter().find_map(|def| {
        let rest = name.strip_prefix(def.prefix)?;
        let target = if rest.is_empty() {
            None
        } else {
            let t = rest.strip_prefix('/').filter(|_| def.takes_target)?;
            Some(t.to_string()).filter(|t| !t.is_empty())
        };
        Some(SectionInfo { kind: def.kind, target, autoload })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind_of(name: &str) -> Option<(ProgramKind, Option<String>, bool)> {
        parse_section_name(name).map(|s| (s.kind, s.target, s.autoload))
    }

    #[test]
    fn multi_sections_with_and_without_patterns() {
        use ProgramKind::*;
        assert_eq!(kind_of("kprobe.multi"), Some((KprobeMulti, None, true)));
        assert_eq!(kind_of("kprobe.multi/vfs_*"), Some((KprobeMulti, Some("vfs_*".into()), true)));
        assert_eq!(kind_of("kretprobe.multi/tcp_?"), Some((KretprobeMulti, Some("tcp_?".into()), true)));
        assert_eq!(kind_of("kprobe.session/x"), Some((KprobeSession, Some("x".into()), true)));
        assert_eq!(kind_of("?kprobe.multi/x"), Some((KprobeMulti, Some("x".into()), false)));
    }

    #[test]
    fn prefixes_must_end_at_a_slash() {
        use ProgramKind::*;
        assert_eq!(kind_of("kprobe/do_sys_open"), Some((Kprobe, Some("do_sys_open".into()), true)));
        assert_eq!(kind_of("kprobe"), Some((Kprobe, None, true)));
        assert_eq!(kind_of("kprobefoo"), None);
        assert_eq!(kind_of("kprobe.multifoo"), None);
        assert_eq!(kind_of("socket/x"), None);
        assert_eq!(
            kind_of("tracepoint/syscalls/sys_enter_getpid").unwrap().1.as_deref(),
            Some("syscalls/sys_enter_getpid")
        );
        assert_eq!(kind_of("tp/a/b").unwrap().0, Tracepoint);
        assert_eq!(kind_of("raw_tp/sys_enter").unwrap().0, RawTracepoint);
        assert_eq!(kind_of("uprobe//bin/sh:main").unwrap().1.as_deref(), Some("/bin/sh:main"));
        assert_eq!(kind_of(".text"), None);
        assert_eq!(kind_of("license"), None);
    }

    #[test]
    fn load_attributes() {
        assert_eq!(ProgramKind::KprobeMulti.expected_attach_type(), 42);
        assert_eq!(ProgramKind::KretprobeMulti.expected_attach_type(), 42);
        assert_eq!(ProgramKind::KprobeSession.expected_attach_type(), 56);
        assert_eq!(ProgramKind::Kprobe.expected_attach_type(), 0);
        assert_eq!(ProgramKind::KprobeSession.prog_type(), 2);
        assert_eq!(ProgramKind::SocketFilter.prog_type(), 1);
    }
}
