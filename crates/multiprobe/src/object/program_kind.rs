//! What kind of program a function is: the program type and, within one type, the way it
//! attaches (kprobe, kprobe_multi, fentry, ...), as libbpf's section names tell them apart.

use crate::sys::{attach_type, prog_type};

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
}
