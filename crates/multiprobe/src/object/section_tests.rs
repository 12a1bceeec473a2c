//! Section names: libbpf 1.7's whole table, walked row by row, and the matching rules.

use super::section::*;
use super::section_defs::SECTION_DEFS;

/// libbpf 1.7's `section_defs` as data (name, `enum bpf_prog_type`, `enum bpf_attach_type`,
/// `enum sec_def_flags`), copied from libbpf's `src/libbpf.c` and `include/uapi/linux/bpf.h`
/// with the enums written as numbers, so that this list is checked against the facts rather
/// than against the table it tests.
const LIBBPF_1_7: &[(&str, u32, u32, u32)] = &[
    ("socket", 1, 0, 0),
    ("sk_reuseport/migrate", 21, 40, 2),
    ("sk_reuseport", 21, 39, 2),
    ("kprobe+", 2, 0, 0),
    ("uprobe+", 2, 0, 0),
    ("uprobe.s+", 2, 0, 8),
    ("kretprobe+", 2, 0, 0),
    ("uretprobe+", 2, 0, 0),
    ("uretprobe.s+", 2, 0, 8),
    ("kprobe.multi+", 2, 42, 0),
    ("kretprobe.multi+", 2, 42, 0),
    ("kprobe.session+", 2, 56, 0),
    ("uprobe.multi+", 2, 48, 0),
    ("uretprobe.multi+", 2, 48, 0),
    ("uprobe.session+", 2, 57, 0),
    ("uprobe.multi.s+", 2, 48, 8),
    ("uretprobe.multi.s+", 2, 48, 8),
    ("uprobe.session.s+", 2, 57, 8),
    ("ksyscall+", 2, 0, 0),
    ("kretsyscall+", 2, 0, 0),
    ("usdt+", 2, 0, 32),
    ("usdt.s+", 2, 0, 40),
    ("tc/ingress", 3, 46, 0),
    ("tc/egress", 3, 47, 0),
    ("tcx/ingress", 3, 46, 0),
    ("tcx/egress", 3, 47, 0),
    ("tc", 3, 0, 0),
    ("classifier", 3, 0, 0),
    ("action", 4, 0, 0),
    ("netkit/primary", 3, 54, 0),
    ("netkit/peer", 3, 55, 0),
    ("tracepoint+", 5, 0, 0),
    ("tp+", 5, 0, 0),
    ("raw_tracepoint+", 17, 0, 0),
    ("raw_tp+", 17, 0, 0),
    ("raw_tracepoint.w+", 24, 0, 0),
    ("raw_tp.w+", 24, 0, 0),
    ("tp_btf+", 26, 23, 4),
    ("fentry+", 26, 24, 4),
    ("fmod_ret+", 26, 26, 4),
    ("fexit+", 26, 25, 4),
    ("fentry.s+", 26, 24, 12),
    ("fmod_ret.s+", 26, 26, 12),
    ("fexit.s+", 26, 25, 12),
    ("fsession+", 26, 58, 4),
    ("fsession.s+", 26, 58, 12),
    ("freplace+", 28, 0, 4),
    ("lsm+", 29, 27, 4),
    ("lsm.s+", 29, 27, 12),
    ("lsm_cgroup+", 29, 43, 4),
    ("iter+", 26, 28, 4),
    ("iter.s+", 26, 28, 12),
    ("syscall", 31, 0, 8),
    ("xdp.frags/devmap", 6, 33, 16),
    ("xdp/devmap", 6, 33, 2),
    ("xdp.frags/cpumap", 6, 35, 16),
    ("xdp/cpumap", 6, 35, 2),
    ("xdp.frags", 6, 37, 16),
    ("xdp", 6, 37, 3),
    ("perf_event", 7, 0, 0),
    ("lwt_in", 10, 0, 0),
    ("lwt_out", 11, 0, 0),
    ("lwt_xmit", 12, 0, 0),
    ("lwt_seg6local", 19, 0, 0),
    ("sockops", 13, 3, 3),
    ("sk_skb/stream_parser", 14, 4, 3),
    ("sk_skb/stream_verdict", 14, 5, 3),
    ("sk_skb/verdict", 14, 38, 3),
    ("sk_skb", 14, 0, 0),
    ("sk_msg", 16, 7, 3),
    ("lirc_mode2", 20, 16, 3),
    ("flow_dissector", 22, 17, 3),
    ("cgroup_skb/ingress", 8, 0, 3),
    ("cgroup_skb/egress", 8, 1, 3),
    ("cgroup/skb", 8, 0, 0),
    ("cgroup/sock_create", 9, 2, 2),
    ("cgroup/sock_release", 9, 34, 2),
    ("cgroup/sock", 9, 2, 3),
    ("cgroup/post_bind4", 9, 12, 2),
    ("cgroup/post_bind6", 9, 13, 2),
    ("cgroup/bind4", 18, 8, 2),
    ("cgroup/bind6", 18, 9, 2),
    ("cgroup/connect4", 18, 10, 2),
    ("cgroup/connect6", 18, 11, 2),
    ("cgroup/connect_unix", 18, 49, 2),
    ("cgroup/sendmsg4", 18, 14, 2),
    ("cgroup/sendmsg6", 18, 15, 2),
    ("cgroup/sendmsg_unix", 18, 50, 2),
    ("cgroup/recvmsg4", 18, 19, 2),
    ("cgroup/recvmsg6", 18, 20, 2),
    ("cgroup/recvmsg_unix", 18, 51, 2),
    ("cgroup/getpeername4", 18, 29, 2),
    ("cgroup/getpeername6", 18, 30, 2),
    ("cgroup/getpeername_unix", 18, 52, 2),
    ("cgroup/getsockname4", 18, 31, 2),
    ("cgroup/getsockname6", 18, 32, 2),
    ("cgroup/getsockname_unix", 18, 53, 2),
    ("cgroup/sysctl", 23, 18, 2),
    ("cgroup/getsockopt", 25, 21, 2),
    ("cgroup/setsockopt", 25, 22, 2),
    ("cgroup/dev", 15, 6, 3),
    ("struct_ops+", 27, 0, 0),
    ("struct_ops.s+", 27, 0, 8),
    ("sk_lookup", 30, 36, 2),
    ("netfilter", 32, 45, 0),
];

const SEC_ATTACH_BTF: u32 = 4;
const SEC_SLEEPABLE: u32 = 8;
const SEC_XDP_FRAGS: u32 = 16;

/// Names that match each row: `+` rows alone and with a target, `/` rows with something
/// after the slash, other rows exactly.
fn examples(sec: &str) -> Vec<(String, Option<&'static str>)> {
    if let Some(prefix) = sec.strip_suffix('+') {
        vec![(prefix.to_string(), None), (format!("{prefix}/some_target"), Some("some_target"))]
    } else {
        vec![(sec.to_string(), None)]
    }
}

#[test]
fn every_libbpf_section_name_loads_as_libbpf_loads_it() {
    assert_eq!(LIBBPF_1_7.len(), 105);
    for &(sec, prog_type, attach, flags) in LIBBPF_1_7 {
        for (name, target) in examples(sec) {
            for (name, autoload) in [(name.clone(), true), (format!("?{name}"), false)] {
                let info = parse_section_name(&name).unwrap_or_else(|| panic!("`{name}` is not recognised"));
                assert_eq!(info.kind.prog_type(), prog_type, "program type of `{name}`");
                assert_eq!(info.expected_attach_type, attach, "expected attach type of `{name}`");
                let sleepable = flags & SEC_SLEEPABLE != 0;
                assert_eq!(info.prog_flags & PROG_F_SLEEPABLE != 0, sleepable, "sleepable `{name}`");
                let frags = flags & SEC_XDP_FRAGS != 0;
                assert_eq!(info.prog_flags & PROG_F_XDP_HAS_FRAGS != 0, frags, "xdp frags `{name}`");
                assert_eq!(info.kind.needs_btf_target(), flags & SEC_ATTACH_BTF != 0, "BTF target of `{name}`");
                assert_eq!(info.target.as_deref(), target, "target of `{name}`");
                assert_eq!(info.autoload, autoload, "autoload of `{name}`");
            }
        }
    }
}

#[test]
fn the_table_is_libbpfs_in_its_order() {
    let ours: Vec<&str> = SECTION_DEFS.iter().map(|d| d.sec).collect();
    let theirs: Vec<&str> = LIBBPF_1_7.iter().map(|r| r.0).collect();
    assert_eq!(ours, theirs);
}

#[test]
fn names_libbpf_does_not_know_match_nothing() {
    for name in [
        "fentryx",
        "fentry.",
        "socket/x",
        "tc/other",
        "kprobefoo",
        "kprobe.multifoo",
        "cgroup/sockx",
        ".text",
        "license",
        "xdp.frags/foo",
        "mytool/x",
    ] {
        assert_eq!(parse_section_name(name), None, "`{name}`");
    }
}

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
fn targets_keep_everything_after_the_first_slash() {
    use ProgramKind::*;
    assert_eq!(kind_of("kprobe/do_sys_open"), Some((Kprobe, Some("do_sys_open".into()), true)));
    assert_eq!(kind_of("kprobe"), Some((Kprobe, None, true)));
    assert_eq!(
        kind_of("tracepoint/syscalls/sys_enter_getpid").unwrap().1.as_deref(),
        Some("syscalls/sys_enter_getpid")
    );
    assert_eq!(kind_of("tp/a/b").unwrap().0, Tracepoint);
    assert_eq!(kind_of("raw_tp/sys_enter").unwrap().0, RawTracepoint);
    assert_eq!(kind_of("raw_tp.w/sys_enter").unwrap().0, RawTracepointWritable);
    assert_eq!(kind_of("uprobe//bin/sh:main").unwrap().1.as_deref(), Some("/bin/sh:main"));
    assert_eq!(kind_of("fentry/vmlinux:do_nanosleep").unwrap().1.as_deref(), Some("vmlinux:do_nanosleep"));
    assert_eq!(kind_of("lsm.s/file_open").unwrap().0, Lsm);
    assert_eq!(kind_of("tc/ingress").unwrap().1, None);
}

#[test]
fn load_attributes() {
    assert_eq!(ProgramKind::KprobeMulti.expected_attach_type(), 42);
    assert_eq!(ProgramKind::KretprobeMulti.expected_attach_type(), 42);
    assert_eq!(ProgramKind::KprobeSession.expected_attach_type(), 56);
    assert_eq!(ProgramKind::Kprobe.expected_attach_type(), 0);
    assert_eq!(ProgramKind::KprobeSession.prog_type(), 2);
    assert_eq!(ProgramKind::SocketFilter.prog_type(), 1);
    assert_eq!(ProgramKind::Fentry.expected_attach_type(), 24);
    assert_eq!(ProgramKind::Other(99).prog_type(), 99);
    assert_eq!(ProgramKind::Fentry.section_prefix(), "fentry");
}

#[test]
fn own_section_names_come_first_and_follow_libbpfs_rules() {
    let opts = OpenOptions::new()
        .section_handler(SectionHandler::new("mytool+", ProgramKind::Kprobe))
        .section_handler(SectionHandler::new("probes/", ProgramKind::Fentry).prog_flags(PROG_F_SLEEPABLE))
        .section_handler(SectionHandler::new("kprobe/special", ProgramKind::Other(7)).expected_attach_type(41));
    let info = parse_section_name_with("mytool/do_nanosleep", &opts).unwrap();
    assert_eq!((info.kind, info.target.as_deref()), (ProgramKind::Kprobe, Some("do_nanosleep")));
    assert!(!parse_section_name_with("?mytool", &opts).unwrap().autoload);
    assert_eq!(parse_section_name_with("mytoolx", &opts), None);
    let info = parse_section_name_with("probes/a/b", &opts).unwrap();
    assert_eq!((info.kind, info.prog_flags, info.expected_attach_type), (ProgramKind::Fentry, PROG_F_SLEEPABLE, 24));
    assert_eq!(info.target, None);
    let info = parse_section_name_with("kprobe/special", &opts).unwrap();
    assert_eq!((info.kind, info.expected_attach_type), (ProgramKind::Other(7), 41));
    assert_eq!(parse_section_name_with("kprobe/other", &opts).unwrap().kind, ProgramKind::Kprobe);
}
