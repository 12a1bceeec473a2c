//! What tracing users ask of libbpf and do not get, on real kernels (in the VMs): the
//! per-function kprobe fallback, selections with excludes and module filters, duplicated
//! names, refused targets skipped or named, syscall wrapper names.

#[macro_use]
mod common;

use std::collections::{BTreeMap, HashMap};

use common::probes::*;
use multiprobe::kprobe_multi::{AttachMode, Fallback, KprobeMulti};
use multiprobe::raw::{self, ObjKind};
use multiprobe::symbols::{Function, Listing, Selection, TraceableFunctions, syscall_function};
use multiprobe::{AttachError, features};
use testkit::{require_config, require_kernel, require_root};

/// Skips unless single kprobes with cookies work (5.15+ built with CONFIG_KPROBES).
macro_rules! require_kprobes {
    () => {
        require_root!("loading BPF programs");
        require_kernel!(5, 15, "perf-event kprobe links with cookies");
        require_config!("CONFIG_KPROBES", "kprobes");
    };
}

/// Runs per cookie: the per-function fallback reports a kprobe's own address as the function
/// address, so tests of both paths compare cookies.
fn by_cookie(t: &Setup) -> BTreeMap<u64, u64> {
    let mut out = BTreeMap::new();
    for ((_, cookie), n) in pairs(&t.loaded) {
        *out.entry(cookie).or_insert(0) += n;
    }
    out
}

#[test]
fn per_function_kprobes_stand_in_for_kprobe_multi() {
    require_kprobes!();
    for (program, mode_return) in [("entry", false), ("ret", true)] {
        let t = setup();
        let mut spec = KprobeMulti::symbols_with_cookies([(READ, 1), (WRITE, 2)]).fallback(Fallback::Always);
        if mode_return {
            spec = spec.retprobe();
        }
        let link = attach(&t.loaded, program, &spec);
        assert_eq!(link.attach_mode(), AttachMode::PerFunctionKprobes);
        assert_eq!(link.links().len(), 2);
        t.run();
        drop(link);
        assert_eq!(by_cookie(&t), BTreeMap::from([(1, 3), (2, 5)]), "{program}");
    }
}

#[test]
fn the_fallback_is_automatic_where_kprobe_multi_is_missing() {
    require_kprobes!();
    let t = setup();
    // Probed before attaching: the probe reads the kernel's BTF, thousands of vfs_read calls
    // the link would count (a test run alone has no earlier test that cached it).
    let expected =
        if features::kprobe_multi().is_yes() { AttachMode::KprobeMulti } else { AttachMode::PerFunctionKprobes };
    let link = attach(&t.loaded, "entry", &KprobeMulti::symbols_with_cookies([(READ, 7)]).fallback(Fallback::Auto));
    assert_eq!(link.attach_mode(), expected);
    t.w.reads(2);
    drop(link);
    assert_eq!(by_cookie(&t), BTreeMap::from([(7, 2)]));
}

/// Registered kprobes, as the kernel lists them.
fn kprobes_listed() -> String {
    std::fs::read_to_string("/sys/kernel/debug/kprobes/list").unwrap_or_default()
}

/// Perf-event links of the kernel.
fn perf_event_links() -> usize {
    let mut n = 0;
    let mut id = 0;
    while let Ok(Some(next)) = raw::get_next_id(ObjKind::Link, id) {
        id = next;
        let Ok(fd) = raw::get_fd_by_id(ObjKind::Link, id) else { continue };
        use std::os::fd::AsFd;
        if raw::link_info(fd.as_fd(), None, None).is_ok_and(|i| i.link_type == raw::link_type::PERF_EVENT) {
            n += 1;
        }
    }
    n
}

#[test]
fn a_fallback_failing_part_way_leaves_no_kprobe_behind() {
    require_kprobes!();
    let t = setup();
    let listing = TraceableFunctions::read().unwrap();
    let mut functions = Selection::new().include(READ).include(WRITE).select(&listing);
    // The third of four targets is no kernel text at all.
    functions.insert(2, Function { name: "nowhere".into(), module: None, address: 0x1000 });
    functions.push(Selection::new().include("vfs_fsync").select(&listing).remove(0));
    let before_links = perf_event_links();
    let err = t
        .loaded
        .program("entry")
        .unwrap()
        .attach_kprobe_multi(&KprobeMulti::functions(functions).fallback(Fallback::Always));
    let err = err.unwrap_err();
    // Named as the caller named it, with the errno kprobe_multi gives an untraceable target.
    assert!(matches!(&err, AttachError::UntraceableSymbol { symbol, .. } if symbol == "nowhere"), "{err}");
    assert_eq!(err.errno(), libc::ENOENT, "{err}");
    let listed = kprobes_listed();
    assert!(!listed.contains(READ) && !listed.contains(WRITE), "kprobes left behind:\n{listed}");
    let events = std::fs::read_to_string("/sys/kernel/tracing/kprobe_events").unwrap_or_default();
    assert!(events.trim().is_empty(), "kprobe_events: {events}");
    assert_eq!(perf_event_links(), before_links, "perf-event links left behind");
}

/// Per-function kprobes refuse what kprobe_multi refuses, the same way: a function no kprobe
/// may be placed on (`__die` is on the kprobe blacklist, `jiffies` is data) fails the attach,
/// named, with ENOENT, or is left out when the caller asks to skip refused targets.
#[test]
fn the_fallback_names_refused_functions_and_skips_them_on_request() {
    require_kprobes!();
    let t = setup();
    let prog = t.loaded.program("entry").unwrap();
    for name in ["__die", "jiffies"] {
        let spec = KprobeMulti::symbols([name, READ]).fallback(Fallback::Always);
        let err = prog.attach_kprobe_multi(&spec).unwrap_err();
        assert!(matches!(&err, AttachError::UntraceableSymbol { symbol, .. } if symbol == name), "{err}");
        assert_eq!(err.errno(), libc::ENOENT, "{err}");
    }
    let blacklisted = std::fs::read_to_string("/sys/kernel/debug/kprobes/blacklist").unwrap_or_default();
    if blacklisted.lines().any(|l| l.split_whitespace().nth(1) == Some("__die")) {
        let spec = KprobeMulti::symbols(["__die"]).fallback(Fallback::Always);
        let err = prog.attach_kprobe_multi(&spec).unwrap_err();
        assert!(err.to_string().contains("kprobe blacklist"), "the reason is the blacklist: {err}");
    }
    let spec = KprobeMulti::symbols(["__die", READ, "jiffies"]).fallback(Fallback::Always).skip_rejected();
    let link = prog.attach_kprobe_multi(&spec).expect("the traceable function attaches");
    let skipped: Vec<&str> = link.skipped().iter().map(|f| f.name.as_str()).collect();
    assert_eq!(skipped, ["__die", "jiffies"]);
    let attached: Vec<&str> = link.functions().iter().map(|f| f.name.as_str()).collect();
    assert_eq!(attached, [READ]);
    t.run();
    drop(link);
    t.check("hits", &[(READ, 3)]);
}

#[test]
fn sessions_have_no_per_function_stand_in() {
    require_kprobes!();
    let t = setup_with(|o| {
        o.program_mut("session").unwrap().set_autoload(features::kprobe_session().is_yes());
    });
    let prog = t.loaded.program(if features::kprobe_session().is_yes() { "session" } else { "entry" }).unwrap();
    let spec = KprobeMulti::symbols([READ]).session().fallback(Fallback::Always);
    let err = prog.attach_kprobe_multi(&spec).unwrap_err();
    assert!(err.to_string().contains("session"), "{err}");
}

#[test]
fn excludes_win_and_the_attached_set_is_what_list_shows() {
    require_kprobe_multi!();
    let t = setup();
    let selection = Selection::new().include("vfs_*").exclude("vfs_read").exclude("vfs_write*");
    let listing = TraceableFunctions::read().unwrap();
    let expected: Vec<Function> = listing
        .matching(&multiprobe::symbols::Glob::new("vfs_*"))
        .into_iter()
        .filter(|f| f.name != READ && !f.name.starts_with(WRITE))
        .collect();
    let link = attach(&t.loaded, "entry", &KprobeMulti::selection(selection));
    assert_eq!(link.functions(), &expected[..]);
    if testkit::kernel_version() >= (6, 6) {
        let mut attached: Vec<u64> = link.info().unwrap().targets.iter().map(|t| t.address).collect();
        let mut listed: Vec<u64> = expected.iter().map(|f| f.address).collect();
        attached.sort();
        listed.sort();
        assert_eq!(attached, listed, "link info reports the listed addresses");
    }
    t.run();
    drop(link);
    t.check("hits", &[]);
}

#[test]
fn module_filters_pick_the_module_or_the_core_kernel() {
    require_kprobe_multi!();
    require_config!("CONFIG_MODULES", "loadable modules");
    let dir = testkit::test_modules_dir().expect("test modules (run in the VM)");
    let sh = |cmd: &str| std::process::Command::new("sh").args(["-c", cmd]).status().unwrap().success();
    let _ = sh("rmmod binfmt_misc 2>/dev/null");
    assert!(sh(&format!("insmod {}", dir.join("binfmt_misc.ko").display())));

    let listing = TraceableFunctions::read().unwrap();
    let module: Vec<Function> = listing.filter(|_, m| m == Some(&b"binfmt_misc"[..]));
    assert!(!module.is_empty());
    let in_module = Selection::new().include("binfmt_misc:*").select(&listing);
    assert_eq!(in_module, module);
    assert!(Selection::new().include("vmlinux:bm_*").select(&listing).is_empty());
    assert_eq!(Selection::new().include("*misc:bm_status*").select(&listing).len(), 2);

    let t = setup();
    let link = attach(&t.loaded, "entry", &KprobeMulti::selection(Selection::new().include("binfmt_misc:*")));
    assert_eq!(link.functions().len(), module.len());
    drop(link);
    drop(t);
    assert!(sh("rmmod binfmt_misc"));
}

/// A name several traceable functions of the core kernel share (static functions of
/// different files), and its copies.
fn duplicated(listing: &TraceableFunctions) -> (String, Vec<Function>) {
    let mut by_name: HashMap<String, Vec<Function>> = HashMap::new();
    for f in Selection::new().include("vmlinux:*").select(listing) {
        by_name.entry(f.name.clone()).or_default().push(f);
    }
    let mut dups: Vec<(String, Vec<Function>)> = by_name.into_iter().filter(|(_, v)| v.len() == 2).collect();
    dups.sort_by(|a, b| a.0.cmp(&b.0));
    dups.into_iter().next().expect("every kernel of the matrix has static functions sharing a name")
}

#[test]
fn every_copy_of_a_duplicated_name_attaches_with_its_own_cookie() {
    require_kprobe_multi!();
    let listing = TraceableFunctions::read().unwrap();
    let (name, copies) = duplicated(&listing);
    let loaded = load();
    let prog = loaded.program("entry").unwrap();

    // By pattern: every copy.
    let link = prog.attach_kprobe_multi(&KprobeMulti::pattern(&format!("{name}*"))).unwrap();
    assert_eq!(link.functions().iter().filter(|f| f.name == name).count(), 2);
    drop(link);

    // By name: the ambiguity is explained instead of silently taking the first.
    let err = prog.attach_kprobe_multi(&KprobeMulti::symbols([name.as_str()])).unwrap_err();
    assert!(matches!(&err, AttachError::AmbiguousSymbol { symbol, .. } if *symbol == name), "{err}");

    // Resolved functions: each copy with its own cookie, at its own address.
    let spec = KprobeMulti::functions_with_cookies([(copies[0].clone(), 100), (copies[1].clone(), 101)]);
    let link = prog.attach_kprobe_multi(&spec).unwrap_or_else(|e| panic!("{e}"));
    if testkit::kernel_version() >= (6, 9) {
        let mut info = link.info().unwrap();
        info.resolve_names().unwrap();
        let mut got: Vec<(String, Option<u64>)> =
            info.targets.iter().map(|t| (t.function.clone().unwrap_or_default(), t.cookie)).collect();
        got.sort();
        assert_eq!(got, vec![(name.clone(), Some(100)), (name.clone(), Some(101))]);
        assert_ne!(info.targets[0].address, info.targets[1].address);
    }
}

#[test]
fn refused_targets_are_skipped_on_request() {
    require_kprobe_multi!();
    let t = setup();
    let ksyms = t.ksyms;
    let bad = ksyms.addr("vfs_fsync") + 1;
    let spec = KprobeMulti::addresses([ksyms.addr(READ), bad, ksyms.addr(WRITE)]).skip_rejected();
    let link = attach(&t.loaded, "entry", &spec);
    assert_eq!(link.skipped().iter().map(|f| f.address).collect::<Vec<_>>(), [bad]);
    assert_eq!(link.functions().len(), 2);
    t.run();
    drop(link);
    t.check("hits", &[(READ, 3), (WRITE, 5)]);

    // Without skip_rejected the same set fails, naming the address.
    let err = t
        .loaded
        .program("entry")
        .unwrap()
        .attach_kprobe_multi(&KprobeMulti::addresses([ksyms.addr(READ), bad]))
        .unwrap_err();
    assert!(matches!(err, AttachError::UntraceableAddress { addr, .. } if addr == bad), "{err}");
}

#[test]
fn syscall_names_follow_the_architecture() {
    require_root!("reading /proc/kallsyms addresses");
    assert_eq!(syscall_function("getpid").unwrap(), "__x64_sys_getpid");
    assert_eq!(syscall_function("sys_getppid").unwrap(), "__x64_sys_getppid");
    let err = syscall_function("multiprobe_not_a_syscall").unwrap_err();
    assert!(err.to_string().contains("__x64_sys_multiprobe_not_a_syscall"), "{err}");
}

#[test]
fn resolved_functions_carry_their_cookies_by_name_or_by_entry_address() {
    require_kprobe_multi!();
    // Without a cache directory the unique names go to the kernel; with one, the entry
    // addresses are computed once from kallsyms and kept: both must deliver the cookies.
    for cache_dir in [None, Some(std::env::temp_dir().join(format!("multiprobe-entries-{}", std::process::id())))] {
        // What earlier tests left in memory would decide the path: start from nothing.
        multiprobe::symbols::forget_listing_cache();
        let listing = cache_dir.as_ref().map_or_else(Listing::new, |d| Listing::new().cache_dir(d));
        let t = setup();
        let functions = Selection::new().include(READ).include(WRITE).resolve_with(&listing).unwrap();
        let cookies: Vec<(Function, u64)> = functions
            .into_iter()
            .map(|f| {
                let c = if f.name == READ { 41 } else { 42 };
                (f, c)
            })
            .collect();
        let link = attach(&t.loaded, "entry", &KprobeMulti::functions_with_cookies(cookies).listing(listing));
        t.run();
        drop(link);
        check_pairs(t.ksyms, pairs(&t.loaded), &[(READ, 41, 3), (WRITE, 42, 5)]);
        if let Some(dir) = cache_dir {
            assert!(dir.join("entries-v1").exists(), "the entry addresses are kept for the boot");
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
