//! Program kinds and libbpf's section-name conventions (`SEC("kprobe.multi/vfs_*")`): what a
//! section name says about how a program is loaded (program type, expected attach type,
//! flags) and what it attaches to.
//!
//! The names are libbpf 1.7's `section_defs` table, matched by libbpf's rules (see
//! [`section_defs`](super::section_defs)). A name no row matches does not stop an object from
//! opening: its programs have no kind until the caller gives them one
//! ([`ProgramSpec::set_kind`](super::ProgramSpec::set_kind)), or until a
//! [`SectionHandler`] given in [`OpenOptions`] names it.

use super::section_defs::{SECTION_DEFS, SectionDef, flags as sec};
use crate::sys::{attach_type, prog_type};

/// `BPF_F_SLEEPABLE`: the program may sleep (the `.s` section variants).
pub const PROG_F_SLEEPABLE: u32 = 1 << 4;
/// `BPF_F_XDP_HAS_FRAGS`: the XDP program handles multi-buffer packets (`xdp.frags`).
pub const PROG_F_XDP_HAS_FRAGS: u32 = 1 << 5;

/// What kind of program a function is: its program type, and for kinds attached in
/// different ways within one type (kprobe, kprobe_multi, fentry, ...) which way.
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
    /// `uprobe[/PATH:FUNC]` (and `uprobe.s`).
    Uprobe,
    /// `uretprobe[/PATH:FUNC]` (and `uretprobe.s`).
    Uretprobe,
    /// `uprobe.multi[/PATH:PATTERN]` (and `.s`).
    UprobeMulti,
    /// `uretprobe.multi[/PATH:PATTERN]` (and `.s`).
    UretprobeMulti,
    /// `uprobe.session[/PATH:PATTERN]` (and `.s`).
    UprobeSession,
    /// `usdt[/...]` (and `usdt.s`): a kprobe-type program attached to USDT notes.
    Usdt,
    /// `tracepoint/CATEGORY/NAME` (or `tp/...`).
    Tracepoint,
    /// `raw_tracepoint/NAME` (or `raw_tp/...`).
    RawTracepoint,
    /// `raw_tracepoint.w/NAME` (or `raw_tp.w/...`): may write the tracepoint's buffer.
    RawTracepointWritable,
    /// `tp_btf/NAME`: a BTF-typed raw tracepoint (`BPF_TRACE_RAW_TP`).
    TpBtf,
    /// `fentry/FUNC` (and `.s`).
    Fentry,
    /// `fexit/FUNC` (and `.s`).
    Fexit,
    /// `fmod_ret/FUNC` (and `.s`): may change the function's return value.
    FmodRet,
    /// `fsession/FUNC` (and `.s`): entry and exit in one program.
    Fsession,
    /// `freplace/FUNC`: replaces a function of another BPF program.
    Freplace,
    /// `lsm/HOOK` (and `.s`): a BPF LSM program.
    Lsm,
    /// `lsm_cgroup/HOOK`: a per-cgroup BPF LSM program.
    LsmCgroup,
    /// `iter/NAME` (and `.s`): a BPF iterator.
    Iter,
    /// `syscall`: a program run with `BPF_PROG_RUN` that may call syscalls.
    Syscall,
    /// `struct_ops/NAME` (and `.s`): a member of a `struct_ops` map.
    StructOps,
    /// `perf_event`.
    PerfEvent,
    /// `xdp`, `xdp.frags`, `xdp/devmap`, `xdp/cpumap`, ...
    Xdp,
    /// `tc`, `classifier`, `tc/ingress`, `tcx/*`, `netkit/*`.
    SchedCls,
    /// `action`.
    SchedAct,
    /// `cgroup_skb/*`, `cgroup/skb`.
    CgroupSkb,
    /// `cgroup/sock*`, `cgroup/post_bind*`.
    CgroupSock,
    /// `cgroup/bind*`, `cgroup/connect*`, `cgroup/sendmsg*`, ...
    CgroupSockAddr,
    /// `cgroup/getsockopt`, `cgroup/setsockopt`.
    CgroupSockopt,
    /// `cgroup/sysctl`.
    CgroupSysctl,
    /// `cgroup/dev`.
    CgroupDevice,
    /// `sockops`.
    SockOps,
    /// `sk_skb[/...]`.
    SkSkb,
    /// `sk_msg`.
    SkMsg,
    /// `sk_reuseport[/migrate]`.
    SkReuseport,
    /// `sk_lookup`.
    SkLookup,
    /// `flow_dissector`.
    FlowDissector,
    /// `lirc_mode2`.
    LircMode2,
    /// `lwt_in`.
    LwtIn,
    /// `lwt_out`.
    LwtOut,
    /// `lwt_xmit`.
    LwtXmit,
    /// `lwt_seg6local`.
    LwtSeg6local,
    /// `netfilter`.
    Netfilter,
    /// Any other `enum bpf_prog_type` number, passed to the kernel as is.
    Other(u32),
}

impl ProgramKind {
    /// `enum bpf_prog_type` of this kind.
    pub fn prog_type(self) -> u32 {
        use ProgramKind::*;
        match self {
            SocketFilter => prog_type::SOCKET_FILTER,
            Kprobe | Kretprobe | Ksyscall | Kretsyscall | KprobeMulti | KretprobeMulti | KprobeSession | Uprobe
            | Uretprobe | UprobeMulti | UretprobeMulti | UprobeSession | Usdt => prog_type::KPROBE,
            Tracepoint => prog_type::TRACEPOINT,
            RawTracepoint => prog_type::RAW_TRACEPOINT,
            RawTracepointWritable => prog_type::RAW_TRACEPOINT_WRITABLE,
            TpBtf | Fentry | Fexit | FmodRet | Fsession | Iter => prog_type::TRACING,
            Freplace => prog_type::EXT,
            Lsm | LsmCgroup => prog_type::LSM,
            Syscall => prog_type::SYSCALL,
            StructOps => prog_type::STRUCT_OPS,
            PerfEvent => prog_type::PERF_EVENT,
            Xdp => prog_type::XDP,
            SchedCls => prog_type::SCHED_CLS,
            SchedAct => prog_type::SCHED_ACT,
            CgroupSkb => prog_type::CGROUP_SKB,
            CgroupSock => prog_type::CGROUP_SOCK,
            CgroupSockAddr => prog_type::CGROUP_SOCK_ADDR,
            CgroupSockopt => prog_type::CGROUP_SOCKOPT,
            CgroupSysctl => prog_type::CGROUP_SYSCTL,
            CgroupDevice => prog_type::CGROUP_DEVICE,
            SockOps => prog_type::SOCK_OPS,
            SkSkb => prog_type::SK_SKB,
            SkMsg => prog_type::SK_MSG,
            SkReuseport => prog_type::SK_REUSEPORT,
            SkLookup => prog_type::SK_LOOKUP,
            FlowDissector => prog_type::FLOW_DISSECTOR,
            LircMode2 => prog_type::LIRC_MODE2,
            LwtIn => prog_type::LWT_IN,
            LwtOut => prog_type::LWT_OUT,
            LwtXmit => prog_type::LWT_XMIT,
            LwtSeg6local => prog_type::LWT_SEG6LOCAL,
            Netfilter => prog_type::NETFILTER,
            Other(t) => t,
        }
    }

    /// The `expected_attach_type` a program of this kind is loaded with unless its section
    /// says otherwise (`cgroup/connect4` and `cgroup/bind4` share a kind, not an attach type).
    /// A kprobe_multi program must be loaded as such: a plain kprobe program cannot create a
    /// multi link, and vice versa.
    pub fn expected_attach_type(self) -> u32 {
        use ProgramKind::*;
        match self {
            KprobeMulti | KretprobeMulti => attach_type::TRACE_KPROBE_MULTI,
            KprobeSession => attach_type::TRACE_KPROBE_SESSION,
            UprobeMulti | UretprobeMulti => attach_type::TRACE_UPROBE_MULTI,
            UprobeSession => attach_type::TRACE_UPROBE_SESSION,
            TpBtf => attach_type::TRACE_RAW_TP,
            Fentry => attach_type::TRACE_FENTRY,
            Fexit => attach_type::TRACE_FEXIT,
            FmodRet => attach_type::MODIFY_RETURN,
            Fsession => attach_type::TRACE_FSESSION,
            Lsm => attach_type::LSM_MAC,
            LsmCgroup => attach_type::LSM_CGROUP,
            Iter => attach_type::TRACE_ITER,
            Xdp => attach_type::XDP,
            SkReuseport => attach_type::SK_REUSEPORT_SELECT,
            SkLookup => attach_type::SK_LOOKUP,
            Netfilter => attach_type::NETFILTER,
            SockOps => attach_type::CGROUP_SOCK_OPS,
            SkMsg => attach_type::SK_MSG_VERDICT,
            LircMode2 => attach_type::LIRC_MODE2,
            FlowDissector => attach_type::FLOW_DISSECTOR,
            CgroupSysctl => attach_type::CGROUP_SYSCTL,
            CgroupDevice => attach_type::CGROUP_DEVICE,
            _ => 0,
        }
    }

    /// Whether the kernel needs a BTF id of the attach target at load time (`attach_btf_id`):
    /// libbpf's `SEC_ATTACH_BTF` kinds.
    pub fn needs_btf_target(self) -> bool {
        use ProgramKind::*;
        matches!(self, TpBtf | Fentry | Fexit | FmodRet | Fsession | Freplace | Lsm | LsmCgroup | Iter)
    }

    /// Whether programs of this kind attach through kprobe_multi links.
    pub fn is_kprobe_multi(self) -> bool {
        matches!(self, ProgramKind::KprobeMulti | ProgramKind::KretprobeMulti | ProgramKind::KprobeSession)
    }

    /// The section prefix of this kind, for messages (`?` for [`ProgramKind::Other`]).
    pub fn section_prefix(self) -> &'static str {
        SECTION_DEFS.iter().find(|s| s.kind == self).map_or("?", |s| s.sec.trim_end_matches('+'))
    }
}

/// What a section name says about the programs in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionInfo {
    /// The program kind the name says.
    pub kind: ProgramKind,
    /// `expected_attach_type` to load with.
    pub expected_attach_type: u32,
    /// `prog_flags` to load with ([`PROG_F_SLEEPABLE`], [`PROG_F_XDP_HAS_FRAGS`]).
    pub prog_flags: u32,
    /// The part after `prefix/`, if any: a function, pattern, tracepoint or path.
    pub target: Option<String>,
    /// False when the name starts with `?` (libbpf: do not load unless asked).
    pub autoload: bool,
}

/// A section name of one's own with the kind of its programs, like libbpf's
/// `libbpf_register_prog_handler`, but given per object in [`OpenOptions`] rather than
/// registered for the whole process.
///
/// The name follows libbpf's rules: `"mytool+"` matches `mytool` and `mytool/ANYTHING` (the
/// part after `/` becomes the attach target), `"mytool/"` matches every name starting with
/// `mytool/`, and any other string matches only itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionHandler {
    sec: String,
    kind: ProgramKind,
    expected_attach_type: u32,
    prog_flags: u32,
}

impl SectionHandler {
    /// Programs in sections matching `sec` are of `kind`, loaded with the kind's default
    /// expected attach type and no flags.
    pub fn new(sec: impl Into<String>, kind: ProgramKind) -> SectionHandler {
        SectionHandler { sec: sec.into(), kind, expected_attach_type: kind.expected_attach_type(), prog_flags: 0 }
    }
    /// Sets the `expected_attach_type` they are loaded with.
    pub fn expected_attach_type(mut self, attach_type: u32) -> SectionHandler {
        self.expected_attach_type = attach_type;
        self
    }
    /// Sets the `prog_flags` they are loaded with (e.g. [`PROG_F_SLEEPABLE`]).
    pub fn prog_flags(mut self, flags: u32) -> SectionHandler {
        self.prog_flags = flags;
        self
    }
}

/// How [`Object::open_with`](super::Object::open_with) reads an object.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    pub(crate) handlers: Vec<SectionHandler>,
    pub(crate) kconfig: Option<String>,
}

impl OpenOptions {
    /// Default options: libbpf's section names only.
    pub fn new() -> OpenOptions {
        OpenOptions::default()
    }
    /// Kernel config lines (`CONFIG_FOO=y`, as in a `.config`) for the object's `.kconfig`
    /// externs, read before the system's config as libbpf's `kconfig` open option is: only
    /// externs they leave unset are looked up in `/boot/config-$(uname -r)` or
    /// `/proc/config.gz`.
    pub fn kconfig(mut self, config: impl Into<String>) -> OpenOptions {
        self.kconfig = Some(config.into());
        self
    }
    /// Adds a section name of one's own; these are tried before libbpf's names, in the
    /// order added (as libbpf tries custom handlers first).
    pub fn section_handler(mut self, handler: SectionHandler) -> OpenOptions {
        self.handlers.push(handler);
        self
    }
}

/// How a table name matches a section name: libbpf's `sec_def_matches`. Returns the target
/// (the part after `/` of a `+` name) on a match.
fn matches<'a>(def: &str, name: &'a str) -> Option<Option<&'a str>> {
    if def.ends_with('/') {
        return name.starts_with(def).then_some(None);
    }
    if let Some(prefix) = def.strip_suffix('+') {
        let rest = name.strip_prefix(prefix)?;
        return match rest.strip_prefix('/') {
            Some(target) => Some(Some(target).filter(|t| !t.is_empty())),
            None if rest.is_empty() => Some(None),
            None => None,
        };
    }
    (def == name).then_some(None)
}

fn info_from(def: &SectionDef, target: Option<&str>, autoload: bool) -> SectionInfo {
    let mut prog_flags = 0;
    if def.flags & sec::SLEEPABLE != 0 {
        prog_flags |= PROG_F_SLEEPABLE;
    }
    if def.flags & sec::XDP_FRAGS != 0 {
        prog_flags |= PROG_F_XDP_HAS_FRAGS;
    }
    SectionInfo {
        kind: def.kind,
        expected_attach_type: def.attach,
        prog_flags,
        target: target.map(str::to_string),
        autoload,
    }
}

/// Interprets a section name the way libbpf does (its table and matching rules; a leading
/// `?` turns autoload off). `None` for names no program kind uses.
pub fn parse_section_name(name: &str) -> Option<SectionInfo> {
    parse_section_name_with(name, &OpenOptions::default())
}

/// [`parse_section_name`], trying the caller's own section names first.
pub fn parse_section_name_with(name: &str, options: &OpenOptions) -> Option<SectionInfo> {
    let (autoload, name) = match name.strip_prefix('?') {
        Some(rest) => (false, rest),
        None => (true, name),
    };
    for h in &options.handlers {
        if let Some(target) = matches(&h.sec, name) {
            return Some(SectionInfo {
                kind: h.kind,
                expected_attach_type: h.expected_attach_type,
                prog_flags: h.prog_flags,
                target: target.map(str::to_string),
                autoload,
            });
        }
    }
    SECTION_DEFS.iter().find_map(|def| matches(def.sec, name).map(|target| info_from(def, target, autoload)))
}

#[cfg(test)]
#[path = "section_tests.rs"]
mod tests;
