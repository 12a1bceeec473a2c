//! libbpf 1.7's section table (`section_defs` in libbpf's `src/libbpf.c`): every section
//! name libbpf knows, with the program kind, expected attach type and flags it loads with.
//!
//! Rows are tried in order and the first match wins, as in libbpf; a name ending in `+`
//! matches itself or itself followed by `/TARGET`, a name ending in `/` matches any name it
//! starts, any other name matches only itself.

use super::program_kind::ProgramKind::{self, *};
use crate::sys::attach_type;

/// libbpf's `enum sec_def_flags`, with its values.
pub(crate) mod flags {
    /// `SEC_EXP_ATTACH_OPT`: libbpf drops the expected attach type on kernels older than
    /// 4.17, which cannot take one; multiprobe needs a newer kernel anyway.
    pub const EXP_ATTACH_OPT: u32 = 1;
    /// `SEC_ATTACHABLE`: legacy, used only to list names; it changes nothing at load.
    pub const ATTACHABLE: u32 = 2;
    /// `SEC_ATTACHABLE_OPT`.
    pub const ATTACHABLE_OPT: u32 = ATTACHABLE | EXP_ATTACH_OPT;
    /// `SEC_ATTACH_BTF`: the kernel needs the target's BTF id at load.
    pub const ATTACH_BTF: u32 = 4;
    /// `SEC_SLEEPABLE`: loaded with `BPF_F_SLEEPABLE`.
    pub const SLEEPABLE: u32 = 8;
    /// `SEC_XDP_FRAGS`: loaded with `BPF_F_XDP_HAS_FRAGS`.
    pub const XDP_FRAGS: u32 = 16;
    /// `SEC_USDT`: libbpf loads USDT programs as uprobe_multi ones where the kernel has
    /// uprobe_multi links; multiprobe does not attach USDT and keeps the plain kprobe type.
    pub const USDT: u32 = 32;
}

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SectionDef {
    /// The name, with libbpf's `+` and `/` suffixes.
    pub sec: &'static str,
    pub kind: ProgramKind,
    /// `expected_attach_type` at load.
    pub attach: u32,
    /// libbpf's [`flags`].
    pub flags: u32,
}

/// The table, in libbpf's order.
pub(crate) const SECTION_DEFS: &[SectionDef] = &[
    SectionDef { sec: "socket", kind: SocketFilter, attach: 0, flags: 0 },
    SectionDef {
        sec: "sk_reuseport/migrate",
        kind: SkReuseport,
        attach: attach_type::SK_REUSEPORT_SELECT_OR_MIGRATE,
        flags: flags::ATTACHABLE,
    },
    SectionDef {
        sec: "sk_reuseport",
        kind: SkReuseport,
        attach: attach_type::SK_REUSEPORT_SELECT,
        flags: flags::ATTACHABLE,
    },
    SectionDef { sec: "kprobe+", kind: Kprobe, attach: 0, flags: 0 },
    SectionDef { sec: "uprobe+", kind: Uprobe, attach: 0, flags: 0 },
    SectionDef { sec: "uprobe.s+", kind: Uprobe, attach: 0, flags: flags::SLEEPABLE },
    SectionDef { sec: "kretprobe+", kind: Kretprobe, attach: 0, flags: 0 },
    SectionDef { sec: "uretprobe+", kind: Uretprobe, attach: 0, flags: 0 },
    SectionDef { sec: "uretprobe.s+", kind: Uretprobe, attach: 0, flags: flags::SLEEPABLE },
    SectionDef { sec: "kprobe.multi+", kind: KprobeMulti, attach: attach_type::TRACE_KPROBE_MULTI, flags: 0 },
    SectionDef { sec: "kretprobe.multi+", kind: KretprobeMulti, attach: attach_type::TRACE_KPROBE_MULTI, flags: 0 },
    SectionDef { sec: "kprobe.session+", kind: KprobeSession, attach: attach_type::TRACE_KPROBE_SESSION, flags: 0 },
    SectionDef { sec: "uprobe.multi+", kind: UprobeMulti, attach: attach_type::TRACE_UPROBE_MULTI, flags: 0 },
    SectionDef { sec: "uretprobe.multi+", kind: UretprobeMulti, attach: attach_type::TRACE_UPROBE_MULTI, flags: 0 },
    SectionDef { sec: "uprobe.session+", kind: UprobeSession, attach: attach_type::TRACE_UPROBE_SESSION, flags: 0 },
    SectionDef {
        sec: "uprobe.multi.s+",
        kind: UprobeMulti,
        attach: attach_type::TRACE_UPROBE_MULTI,
        flags: flags::SLEEPABLE,
    },
    SectionDef {
        sec: "uretprobe.multi.s+",
        kind: UretprobeMulti,
        attach: attach_type::TRACE_UPROBE_MULTI,
        flags: flags::SLEEPABLE,
    },
    SectionDef {
        sec: "uprobe.session.s+",
        kind: UprobeSession,
        attach: attach_type::TRACE_UPROBE_SESSION,
        flags: flags::SLEEPABLE,
    },
    SectionDef { sec: "ksyscall+", kind: Ksyscall, attach: 0, flags: 0 },
    SectionDef { sec: "kretsyscall+", kind: Kretsyscall, attach: 0, flags: 0 },
    SectionDef { sec: "usdt+", kind: Usdt, attach: 0, flags: flags::USDT },
    SectionDef { sec: "usdt.s+", kind: Usdt, attach: 0, flags: flags::USDT | flags::SLEEPABLE },
    SectionDef { sec: "tc/ingress", kind: SchedCls, attach: attach_type::TCX_INGRESS, flags: 0 },
    SectionDef { sec: "tc/egress", kind: SchedCls, attach: attach_type::TCX_EGRESS, flags: 0 },
    SectionDef { sec: "tcx/ingress", kind: SchedCls, attach: attach_type::TCX_INGRESS, flags: 0 },
    SectionDef { sec: "tcx/egress", kind: SchedCls, attach: attach_type::TCX_EGRESS, flags: 0 },
    SectionDef { sec: "tc", kind: SchedCls, attach: 0, flags: 0 },
    SectionDef { sec: "classifier", kind: SchedCls, attach: 0, flags: 0 },
    SectionDef { sec: "action", kind: SchedAct, attach: 0, flags: 0 },
    SectionDef { sec: "netkit/primary", kind: SchedCls, attach: attach_type::NETKIT_PRIMARY, flags: 0 },
    SectionDef { sec: "netkit/peer", kind: SchedCls, attach: attach_type::NETKIT_PEER, flags: 0 },
    SectionDef { sec: "tracepoint+", kind: Tracepoint, attach: 0, flags: 0 },
    SectionDef { sec: "tp+", kind: Tracepoint, attach: 0, flags: 0 },
    SectionDef { sec: "raw_tracepoint+", kind: RawTracepoint, attach: 0, flags: 0 },
    SectionDef { sec: "raw_tp+", kind: RawTracepoint, attach: 0, flags: 0 },
    SectionDef { sec: "raw_tracepoint.w+", kind: RawTracepointWritable, attach: 0, flags: 0 },
    SectionDef { sec: "raw_tp.w+", kind: RawTracepointWritable, attach: 0, flags: 0 },
    SectionDef { sec: "tp_btf+", kind: TpBtf, attach: attach_type::TRACE_RAW_TP, flags: flags::ATTACH_BTF },
    SectionDef { sec: "fentry+", kind: Fentry, attach: attach_type::TRACE_FENTRY, flags: flags::ATTACH_BTF },
    SectionDef { sec: "fmod_ret+", kind: FmodRet, attach: attach_type::MODIFY_RETURN, flags: flags::ATTACH_BTF },
    SectionDef { sec: "fexit+", kind: Fexit, attach: attach_type::TRACE_FEXIT, flags: flags::ATTACH_BTF },
    SectionDef {
        sec: "fentry.s+",
        kind: Fentry,
        attach: attach_type::TRACE_FENTRY,
        flags: flags::ATTACH_BTF | flags::SLEEPABLE,
    },
    SectionDef {
        sec: "fmod_ret.s+",
        kind: FmodRet,
        attach: attach_type::MODIFY_RETURN,
        flags: flags::ATTACH_BTF | flags::SLEEPABLE,
    },
    SectionDef {
        sec: "fexit.s+",
        kind: Fexit,
        attach: attach_type::TRACE_FEXIT,
        flags: flags::ATTACH_BTF | flags::SLEEPABLE,
    },
    SectionDef { sec: "fsession+", kind: Fsession, attach: attach_type::TRACE_FSESSION, flags: flags::ATTACH_BTF },
    SectionDef {
        sec: "fsession.s+",
        kind: Fsession,
        attach: attach_type::TRACE_FSESSION,
        flags: flags::ATTACH_BTF | flags::SLEEPABLE,
    },
    SectionDef { sec: "freplace+", kind: Freplace, attach: 0, flags: flags::ATTACH_BTF },
    SectionDef { sec: "lsm+", kind: Lsm, attach: attach_type::LSM_MAC, flags: flags::ATTACH_BTF },
    SectionDef { sec: "lsm.s+", kind: Lsm, attach: attach_type::LSM_MAC, flags: flags::ATTACH_BTF | flags::SLEEPABLE },
    SectionDef { sec: "lsm_cgroup+", kind: LsmCgroup, attach: attach_type::LSM_CGROUP, flags: flags::ATTACH_BTF },
    SectionDef { sec: "iter+", kind: Iter, attach: attach_type::TRACE_ITER, flags: flags::ATTACH_BTF },
    SectionDef {
        sec: "iter.s+",
        kind: Iter,
        attach: attach_type::TRACE_ITER,
        flags: flags::ATTACH_BTF | flags::SLEEPABLE,
    },
    SectionDef { sec: "syscall", kind: Syscall, attach: 0, flags: flags::SLEEPABLE },
    SectionDef { sec: "xdp.frags/devmap", kind: Xdp, attach: attach_type::XDP_DEVMAP, flags: flags::XDP_FRAGS },
    SectionDef { sec: "xdp/devmap", kind: Xdp, attach: attach_type::XDP_DEVMAP, flags: flags::ATTACHABLE },
    SectionDef { sec: "xdp.frags/cpumap", kind: Xdp, attach: attach_type::XDP_CPUMAP, flags: flags::XDP_FRAGS },
    SectionDef { sec: "xdp/cpumap", kind: Xdp, attach: attach_type::XDP_CPUMAP, flags: flags::ATTACHABLE },
    SectionDef { sec: "xdp.frags", kind: Xdp, attach: attach_type::XDP, flags: flags::XDP_FRAGS },
    SectionDef { sec: "xdp", kind: Xdp, attach: attach_type::XDP, flags: flags::ATTACHABLE_OPT },
    SectionDef { sec: "perf_event", kind: PerfEvent, attach: 0, flags: 0 },
    SectionDef { sec: "lwt_in", kind: LwtIn, attach: 0, flags: 0 },
    SectionDef { sec: "lwt_out", kind: LwtOut, attach: 0, flags: 0 },
    SectionDef { sec: "lwt_xmit", kind: LwtXmit, attach: 0, flags: 0 },
    SectionDef { sec: "lwt_seg6local", kind: LwtSeg6local, attach: 0, flags: 0 },
    SectionDef { sec: "sockops", kind: SockOps, attach: attach_type::CGROUP_SOCK_OPS, flags: flags::ATTACHABLE_OPT },
    SectionDef {
        sec: "sk_skb/stream_parser",
        kind: SkSkb,
        attach: attach_type::SK_SKB_STREAM_PARSER,
        flags: flags::ATTACHABLE_OPT,
    },
    SectionDef {
        sec: "sk_skb/stream_verdict",
        kind: SkSkb,
        attach: attach_type::SK_SKB_STREAM_VERDICT,
        flags: flags::ATTACHABLE_OPT,
    },
    SectionDef {
        sec: "sk_skb/verdict",
        kind: SkSkb,
        attach: attach_type::SK_SKB_VERDICT,
        flags: flags::ATTACHABLE_OPT,
    },
    SectionDef { sec: "sk_skb", kind: SkSkb, attach: 0, flags: 0 },
    SectionDef { sec: "sk_msg", kind: SkMsg, attach: attach_type::SK_MSG_VERDICT, flags: flags::ATTACHABLE_OPT },
    SectionDef { sec: "lirc_mode2", kind: LircMode2, attach: attach_type::LIRC_MODE2, flags: flags::ATTACHABLE_OPT },
    SectionDef {
        sec: "flow_dissector",
        kind: FlowDissector,
        attach: attach_type::FLOW_DISSECTOR,
        flags: flags::ATTACHABLE_OPT,
    },
    SectionDef {
        sec: "cgroup_skb/ingress",
        kind: CgroupSkb,
        attach: attach_type::CGROUP_INET_INGRESS,
        flags: flags::ATTACHABLE_OPT,
    },
    SectionDef {
        sec: "cgroup_skb/egress",
        kind: CgroupSkb,
        attach: attach_type::CGROUP_INET_EGRESS,
        flags: flags::ATTACHABLE_OPT,
    },
    SectionDef { sec: "cgroup/skb", kind: CgroupSkb, attach: 0, flags: 0 },
    SectionDef {
        sec: "cgroup/sock_create",
        kind: CgroupSock,
        attach: attach_type::CGROUP_INET_SOCK_CREATE,
        flags: flags::ATTACHABLE,
    },
    SectionDef {
        sec: "cgroup/sock_release",
        kind: CgroupSock,
        attach: attach_type::CGROUP_INET_SOCK_RELEASE,
        flags: flags::ATTACHABLE,
    },
    SectionDef {
        sec: "cgroup/sock",
        kind: CgroupSock,
        attach: attach_type::CGROUP_INET_SOCK_CREATE,
        flags: flags::ATTACHABLE_OPT,
    },
    SectionDef {
        sec: "cgroup/post_bind4",
        kind: CgroupSock,
        attach: attach_type::CGROUP_INET4_POST_BIND,
        flags: flags::ATTACHABLE,
    },
    SectionDef {
        sec: "cgroup/post_bind6",
        kind: CgroupSock,
        attach: attach_type::CGROUP_INET6_POST_BIND,
        flags: flags::ATTACHABLE,
    },
    SectionDef {
        sec: "cgroup/bind4",
        kind: CgroupSockAddr,
        attach: attach_type::CGROUP_INET4_BIND,
        flags: flags::ATTACHABLE,
    },
    SectionDef {
        sec: "cgroup/bind6",
        kind: CgroupSockAddr,
        attach: attach_type::CGROUP_INET6_BIND,
        flags: flags::ATTACHABLE,
    },
    SectionDef {
        sec: "cgroup/connect4",
        kind: CgroupSockAddr,
        attach: attach_type::CGROUP_INET4_CONNECT,
        flags: flags::ATTACHABLE,
    },
    SectionDef {
        sec: "cgroup/connect6",
        kind: CgroupSockAddr,
        attach: attach_type::CGROUP_INET6_CONNECT,
        flags: flags::ATTACHABLE,
    },
    SectionDef {
        sec: "cgroup/connect_unix",
        kind: CgroupSockAddr,
        attach: attach_type::CGROUP_UNIX_CONNECT,
        flags: flags::ATTACHABLE,
    },
    SectionDef {
        sec: "cgroup/sendmsg4",
        kind: CgroupSockAddr,
        attach: attach_type::CGROUP_UDP4_SENDMSG,
        flags: flags::ATTACHABLE,
    },
    SectionDef {
        sec: "cgroup/sendmsg6",
        kind: CgroupSockAddr,
        attach: attach_type::CGROUP_UDP6_SENDMSG,
        flags: flags::ATTACHABLE,
    },
    SectionDef {
        sec: "cgroup/sendmsg_unix",
        kind: CgroupSockAddr,
        attach: attach_type::CGROUP_UNIX_SENDMSG,
        flags: flags::ATTACHABLE,
    },
    SectionDef {
        sec: "cgroup/recvmsg4",
        kind: CgroupSockAddr,
        attach: attach_type::CGROUP_UDP4_RECVMSG,
        flags: flags::ATTACHABLE,
    },
    SectionDef {
        sec: "cgroup/recvmsg6",
        kind: CgroupSockAddr,
        attach: attach_type::CGROUP_UDP6_RECVMSG,
        flags: flags::ATTACHABLE,
    },
    SectionDef {
        sec: "cgroup/recvmsg_unix",
        kind: CgroupSockAddr,
        attach: attach_type::CGROUP_UNIX_RECVMSG,
        flags: flags::ATTACHABLE,
    },
    SectionDef {
        sec: "cgroup/getpeername4",
        kind: CgroupSockAddr,
        attach: attach_type::CGROUP_INET4_GETPEERNAME,
        flags: flags::ATTACHABLE,
    },
    SectionDef {
        sec: "cgroup/getpeername6",
        kind: CgroupSockAddr,
        attach: attach_type::CGROUP_INET6_GETPEERNAME,
        flags: flags::ATTACHABLE,
    },
    SectionDef {
        sec: "cgroup/getpeername_unix",
        kind: CgroupSockAddr,
        attach: attach_type::CGROUP_UNIX_GETPEERNAME,
        flags: flags::ATTACHABLE,
    },
    SectionDef {
        sec: "cgroup/getsockname4",
        kind: CgroupSockAddr,
        attach: attach_type::CGROUP_INET4_GETSOCKNAME,
        flags: flags::ATTACHABLE,
    },
    SectionDef {
        sec: "cgroup/getsockname6",
        kind: CgroupSockAddr,
        attach: attach_type::CGROUP_INET6_GETSOCKNAME,
        flags: flags::ATTACHABLE,
    },
    SectionDef {
        sec: "cgroup/getsockname_unix",
        kind: CgroupSockAddr,
        attach: attach_type::CGROUP_UNIX_GETSOCKNAME,
        flags: flags::ATTACHABLE,
    },
    SectionDef {
        sec: "cgroup/sysctl",
        kind: CgroupSysctl,
        attach: attach_type::CGROUP_SYSCTL,
        flags: flags::ATTACHABLE,
    },
    SectionDef {
        sec: "cgroup/getsockopt",
        kind: CgroupSockopt,
        attach: attach_type::CGROUP_GETSOCKOPT,
        flags: flags::ATTACHABLE,
    },
    SectionDef {
        sec: "cgroup/setsockopt",
        kind: CgroupSockopt,
        attach: attach_type::CGROUP_SETSOCKOPT,
        flags: flags::ATTACHABLE,
    },
    SectionDef {
        sec: "cgroup/dev",
        kind: CgroupDevice,
        attach: attach_type::CGROUP_DEVICE,
        flags: flags::ATTACHABLE_OPT,
    },
    SectionDef { sec: "struct_ops+", kind: StructOps, attach: 0, flags: 0 },
    SectionDef { sec: "struct_ops.s+", kind: StructOps, attach: 0, flags: flags::SLEEPABLE },
    SectionDef { sec: "sk_lookup", kind: SkLookup, attach: attach_type::SK_LOOKUP, flags: flags::ATTACHABLE },
    SectionDef { sec: "netfilter", kind: Netfilter, attach: attach_type::NETFILTER, flags: 0 },
];
