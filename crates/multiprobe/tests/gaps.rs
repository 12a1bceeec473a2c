//! Issue 17's API gaps and the bisection rule, on real kernels (in the VMs): the fallback
//! asked through `KprobeMultiOpts`, link info's raw flags and address order under the
//! fallback, `Map::clear`, and an EINVAL for one target told from the kernel refusing the
//! whole request. Test names start with `conformance_` (`--test-filter conformance` runs them with the libbpf conformance step).

#[macro_use]
mod common;

use common::probes::*;
use multiprobe::kprobe_multi::{AttachMode, Fallback, KprobeMulti, KprobeMultiOpts};
use multiprobe::link::LinkType;
use multiprobe::{AttachError, features};
use testkit::{require_config, require_kernel, require_root};

/// An untraceable address (a byte into vfs_write: no function entry) listed first, so bisection reaches it before any target was
/// accepted: it is named (tried against another target alone first), not taken for the
/// kernel refusing the request; with `skip_rejected` the rest attach.
#[test]
fn conformance_a_refused_first_target_is_named_once_another_is_taken() {
    require_root!("loading BPF programs");
    require_config!("CONFIG_FPROBE", "kprobe_multi links");
    require_kernel!(5, 18, "kprobe_multi links");
    let t = setup();
    let prog = t.loaded.program("entry").unwrap();
    let (bad, good) = (t.ksyms.addr(WRITE) + 1, t.ksyms.addr(READ));
    match prog.attach_kprobe_multi(&KprobeMulti::addresses([bad, good])) {
        Err(AttachError::UntraceableAddress { addr, .. }) => assert_eq!(addr, bad),
        other => panic!("want {bad:#x} named, got {other:?}"),
    }
    let link = attach(&t.loaded, "entry", &KprobeMulti::addresses([bad, good]).skip_rejected());
    assert_eq!(link.skipped().iter().map(|f| f.address).collect::<Vec<_>>(), vec![bad]);
    t.run();
    drop(link);
    t.check("hits", &[(READ, 3)]);
}

/// `KprobeMultiOpts::fallback`: where the kernel has kprobe_multi the link is one, and
/// where it has not (6.1) the same opts attach per-function kprobes and count the same.
/// Without the field, 6.1 refuses with libbpf's EOPNOTSUPP.
#[test]
fn conformance_opts_can_ask_for_the_fallback() {
    require_root!("loading BPF programs");
    require_kernel!(5, 15, "perf-event kprobe links with cookies");
    require_config!("CONFIG_KPROBES", "kprobes");
    let t = setup();
    let prog = t.loaded.program("entry").unwrap();
    let opts = KprobeMultiOpts {
        syms: Some(vec![READ.into(), WRITE.into()]),
        cookies: Some(vec![7, 8]),
        fallback: Fallback::Auto,
        ..Default::default()
    };
    let link = prog.attach_kprobe_multi_opts(&opts).unwrap_or_else(|e| panic!("{e}"));
    let want = if features::kprobe_multi().is_yes() { AttachMode::KprobeMulti } else { AttachMode::PerFunctionKprobes };
    assert_eq!(link.attach_mode(), want);
    t.run();
    drop(link);
    t.check("hits", &[(READ, 3), (WRITE, 5)]);
    if !features::kprobe_multi().is_yes() {
        let strict = KprobeMultiOpts { fallback: Fallback::Never, ..opts };
        let e = prog.attach_kprobe_multi_opts(&strict).unwrap_err();
        assert_eq!(e.errno(), libc::EOPNOTSUPP, "{e}");
    }
}

/// Link info's raw flags: 1 (`BPF_F_KPROBE_MULTI_RETURN`) for a return probe, 0 at entry,
/// as the kernel reports them (6.6+), and the link's type as the kernel's number.
#[test]
fn conformance_link_info_gives_the_raw_flags() {
    require_root!("loading BPF programs");
    require_config!("CONFIG_FPROBE", "kprobe_multi links");
    require_kernel!(6, 6, "kprobe_multi link info");
    let t = setup();
    let entry = attach(&t.loaded, "entry", &KprobeMulti::symbols([READ]));
    let ret = attach(&t.loaded, "ret", &KprobeMulti::symbols([READ]).retprobe());
    assert_eq!(entry.info().unwrap().flags, Some(0));
    assert_eq!(ret.info().unwrap().flags, Some(1));
    assert_eq!(ret.info().unwrap().retprobe, Some(true));
    let info = entry.links()[0].info().unwrap();
    assert_eq!(info.link_type, LinkType::KprobeMulti);
    assert_eq!(u32::from(info.link_type), 8);
    assert_eq!(entry.link_type().raw(), 8);
}

/// Under the fallback, link info lists the targets in address order, as the kernel does
/// for a kprobe_multi link, whatever order they were given in, each with its cookie.
#[test]
fn conformance_fallback_link_info_is_in_address_order() {
    require_root!("loading BPF programs");
    require_kernel!(5, 15, "perf-event kprobe links with cookies");
    require_config!("CONFIG_KPROBES", "kprobes");
    let t = setup();
    let (r, w) = (t.ksyms.addr(READ), t.ksyms.addr(WRITE));
    let (hi, lo) = if r > w { ((r, 1), (w, 2)) } else { ((w, 2), (r, 1)) };
    let spec = KprobeMulti::addresses_with_cookies([hi, lo]).fallback(Fallback::Always);
    let link = attach(&t.loaded, "entry", &spec);
    assert_eq!(link.attach_mode(), AttachMode::PerFunctionKprobes);
    let info = link.info().unwrap();
    let got: Vec<(u64, Option<u64>)> = info.targets.iter().map(|t| (t.address, t.cookie)).collect();
    assert_eq!(got, vec![(lo.0, Some(lo.1)), (hi.0, Some(hi.1))]);
    assert_eq!(info.flags, Some(0));
}

/// `Map::clear` empties a hash (every key deleted) after a run filled it.
#[test]
fn conformance_map_clear_empties_a_hash() {
    require_root!("loading BPF programs");
    require_kernel!(5, 15, "perf-event kprobe links with cookies");
    require_config!("CONFIG_KPROBES", "kprobes");
    let t = setup();
    let link = attach(&t.loaded, "entry", &KprobeMulti::symbols([READ, WRITE]).fallback(Fallback::Auto));
    t.run();
    drop(link);
    let hits = t.loaded.map("hits").unwrap();
    assert_eq!(snapshot(hits).len(), 2);
    assert_eq!(hits.clear().unwrap(), 2);
    assert!(snapshot(hits).is_empty());
    assert_eq!(hits.clear().unwrap(), 0);
}
