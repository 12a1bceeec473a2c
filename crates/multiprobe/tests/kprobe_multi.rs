//! kprobe_multi attach on real kernels (run in the VMs by `cargo xtask test`): the calls a
//! test makes are counted on exactly the functions it attached, with the right cookies, in
//! every mode; every invalid request gets its own error; links detach, pin and report.
//!
//! The workload is pread(2) and pwrite(2) on a file of the test's own: one vfs_read or
//! vfs_write each, from the test's thread, which is the only thread the program watches.

#[macro_use]
mod common;

use common::probes::*;
use common::{BpfDir, KPROBE_MULTI_OBJ, Kallsyms, Workload, gettid};
use multiprobe::kprobe_multi::{AttachMode, KprobeMulti, KprobeMultiLink, KprobeMultiOpts, Mode};
use multiprobe::{AttachError, Map, Object, ProgramKind, features};
use testkit::{require_config, require_kernel, require_root};

#[test]
fn pattern_attach_counts_exactly_the_attached_functions() {
    require_kprobe_multi!();
    let t = setup();
    let link = attach(&t.loaded, "entry", &KprobeMulti::pattern("vfs_*"));
    t.run();
    drop(link);
    // Dozens of vfs_ functions attached; the workload reaches exactly two of them.
    t.check("hits", &[(READ, 3), (WRITE, 5)]);
}

#[test]
fn pattern_matches_are_reported() {
    require_kprobe_multi!();
    let t = setup();
    let link = attach(&t.loaded, "entry", &KprobeMulti::pattern("vfs_*"));
    let names: Vec<&str> = link.functions().iter().map(|f| f.name.as_str()).collect();
    assert!(names.len() > 20 && names.contains(&READ) && names.contains(&WRITE), "{names:?}");
    assert!(names.iter().all(|n| n.starts_with("vfs_")), "{names:?}");
    assert_eq!(link.attach_mode(), AttachMode::KprobeMulti);
}

#[test]
fn return_probes_count_returns() {
    require_kprobe_multi!();
    let t = setup();
    let link = attach(&t.loaded, "ret", &KprobeMulti::pattern("vfs_*").retprobe());
    t.run();
    drop(link);
    t.check("hits", &[(READ, 3), (WRITE, 5)]);
}

#[test]
fn symbols_and_addresses_at_entry_and_return() {
    require_kprobe_multi!();
    let ksyms = Kallsyms::read();
    let specs = [
        KprobeMulti::symbols([READ, WRITE]),
        KprobeMulti::symbols([READ, WRITE]).retprobe(),
        KprobeMulti::addresses([ksyms.addr(READ), ksyms.addr(WRITE)]),
        KprobeMulti::addresses([ksyms.addr(READ), ksyms.addr(WRITE)]).retprobe(),
    ];
    for spec in specs {
        let t = setup();
        let program = if spec.mode() == Mode::Return { "ret" } else { "entry" };
        let link = attach(&t.loaded, program, &spec);
        t.run();
        drop(link);
        t.check("hits", &[(READ, 3), (WRITE, 5)]);
    }
}

#[test]
fn cookies_in_shuffled_order_reach_their_own_function() {
    require_kprobe_multi!();
    let ksyms = Kallsyms::read();
    // The kernel sorts targets (by name, or by address); cookies must move with them.
    let by_name = KprobeMulti::symbols_with_cookies([(WRITE, 70), ("vfs_fsync", 50), (READ, 30)]);
    let by_addr = KprobeMulti::addresses_with_cookies([
        (ksyms.addr(WRITE), 71),
        (ksyms.addr("vfs_fsync"), 51),
        (ksyms.addr(READ), 31),
    ]);
    for (spec, (read_cookie, write_cookie)) in [(by_name, (30, 70)), (by_addr, (31, 71))] {
        let t = setup();
        let link = attach(&t.loaded, "entry", &spec);
        t.run();
        drop(link);
        check_pairs(t.ksyms, pairs(&t.loaded), &[(READ, read_cookie, 3), (WRITE, write_cookie, 5)]);
    }
}

#[test]
fn a_link_without_cookies_reads_zero() {
    require_kprobe_multi!();
    let t = setup();
    let link = attach(&t.loaded, "entry", &KprobeMulti::symbols([READ]));
    t.w.reads(2);
    drop(link);
    check_pairs(t.ksyms, pairs(&t.loaded), &[(READ, 0, 2)]);
}

#[test]
fn session_entry_decides_the_return_run_and_shares_the_cookie() {
    require_kprobe_multi!();
    require_kernel!(6, 10, "kprobe sessions");
    let t = setup_with(|o| {
        o.program_mut("session").unwrap().set_autoload(true);
    });
    // Even cookie: the entry returns 0 and the return runs; odd: the entry returns 1.
    let spec = KprobeMulti::symbols_with_cookies([(READ, 2), (WRITE, 1)]).session();
    let link = attach(&t.loaded, "session", &spec);
    t.run();
    drop(link);
    t.check("session_entries", &[(READ, 3), (WRITE, 5)]);
    // An entry returning 1 suppresses its return run; a return run reads what its entry wrote.
    t.check("session_returns", &[(READ, 3)]);
    t.check("session_cookie_ok", &[(READ, 3)]);
}

#[test]
fn session_kfunc_signature_matches_the_kernel() {
    require_root!("reading kernel BTF");
    require_kernel!(6, 10, "kprobe session kfuncs");
    let sig = features::session_kfuncs().unwrap();
    let expected = if testkit::kernel_version() >= (7, 0) {
        features::SessionKfuncs::TakeCtx
    } else {
        features::SessionKfuncs::NoArgs
    };
    assert_eq!(sig, expected);
}

#[test]
fn unique_match() {
    require_kprobe_multi!();
    let t = setup();
    let prog = t.loaded.program("entry").unwrap();
    let err = prog.attach_kprobe_multi(&KprobeMulti::unique_pattern("vfs_*")).unwrap_err();
    let AttachError::NotUnique { count, .. } = &err else { panic!("{err}") };
    assert!(*count > 20, "{err}");
    assert_eq!(err.errno(), libc::EINVAL);
    assert!(err.to_string().contains("vfs_"), "the message lists matches: {err}");

    let link = attach(&t.loaded, "entry", &KprobeMulti::unique_pattern("vfs_rea?"));
    assert_eq!(link.functions().len(), 1);
    t.run();
    drop(link);
    t.check("hits", &[(READ, 3)]);
}

#[test]
fn exact_names_attach_through_the_fast_path() {
    require_kprobe_multi!();
    let t = setup();
    let link = attach(&t.loaded, "entry", &KprobeMulti::pattern(WRITE));
    assert_eq!(link.functions()[0].name, WRITE);
    t.run();
    drop(link);
    t.check("hits", &[(WRITE, 5)]);
}

type Case = (KprobeMultiOpts, fn(&AttachError) -> bool, i32);

fn check_cases(cases: Vec<Case>) {
    let loaded = load();
    let prog = loaded.program("entry").unwrap();
    for (opts, is_expected, errno) in cases {
        let err = prog.attach_kprobe_multi_opts(&opts).expect_err("invalid options must fail");
        assert!(is_expected(&err), "{opts:?} gave {err:?}");
        assert_eq!(err.errno(), errno, "{opts:?}: {err}");
    }
}

fn syms() -> Option<Vec<String>> {
    Some(vec![READ.to_string()])
}

fn pat() -> Option<String> {
    Some("vfs_*".to_string())
}

/// Invalid combinations of libbpf's options, rejected before anything is resolved, with
/// libbpf's errno: they hold on every kernel.
#[test]
fn invalid_option_combinations_are_rejected() {
    require_root!("loading BPF programs");
    check_cases(vec![
        (KprobeMultiOpts::default(), |e| matches!(e, AttachError::NoTargets), libc::EINVAL),
        (
            KprobeMultiOpts { pattern: pat(), syms: syms(), ..Default::default() },
            |e| matches!(e, AttachError::PatternWithList { .. }),
            libc::EINVAL,
        ),
        (
            KprobeMultiOpts { pattern: pat(), addrs: Some(vec![1]), ..Default::default() },
            |e| matches!(e, AttachError::PatternWithList { .. }),
            libc::EINVAL,
        ),
        (
            KprobeMultiOpts { pattern: pat(), cookies: Some(vec![1]), ..Default::default() },
            |e| matches!(e, AttachError::PatternWithList { .. }),
            libc::EINVAL,
        ),
        (
            KprobeMultiOpts { pattern: pat(), cnt: Some(1), ..Default::default() },
            |e| matches!(e, AttachError::PatternWithList { .. }),
            libc::EINVAL,
        ),
        (
            KprobeMultiOpts { syms: Some(vec![]), ..Default::default() },
            |e| matches!(e, AttachError::EmptyList { .. }),
            libc::EINVAL,
        ),
        (
            KprobeMultiOpts { syms: syms(), unique_match: true, ..Default::default() },
            |e| matches!(e, AttachError::UniqueMatchWithoutPattern),
            libc::EINVAL,
        ),
        (
            KprobeMultiOpts { syms: syms(), addrs: Some(vec![1]), ..Default::default() },
            |e| matches!(e, AttachError::SymbolsAndAddresses),
            libc::EINVAL,
        ),
        (
            KprobeMultiOpts { syms: syms(), cnt: Some(2), ..Default::default() },
            |e| matches!(e, AttachError::CountMismatch { .. }),
            libc::EINVAL,
        ),
        (
            KprobeMultiOpts { syms: syms(), cookies: Some(vec![1, 2]), ..Default::default() },
            |e| matches!(e, AttachError::CookieCount { targets: 1, cookies: 2 }),
            libc::EINVAL,
        ),
        (
            KprobeMultiOpts { syms: syms(), retprobe: true, session: true, ..Default::default() },
            |e| matches!(e, AttachError::RetprobeAndSession),
            libc::EINVAL,
        ),
        (
            KprobeMultiOpts { syms: syms(), session: true, ..Default::default() },
            |e| matches!(e, AttachError::WrongProgramKind { .. }),
            libc::EINVAL,
        ),
        // The kernel refuses a repeated name with ESRCH, which libbpf reports as ENOENT.
        (
            KprobeMultiOpts { syms: Some(vec![READ.into(), WRITE.into(), READ.into()]), ..Default::default() },
            |e| matches!(e, AttachError::Repeated { .. }),
            libc::ENOENT,
        ),
        // The kernel's count limit comes before anything it reads of the list: E2BIG, though
        // the addresses are repeated too.
        (
            KprobeMultiOpts { addrs: Some(vec![0x1000; (1 << 20) + 1]), ..Default::default() },
            |e| matches!(e, AttachError::TooManyTargets { count: 1_048_577, .. }),
            libc::E2BIG,
        ),
    ]);
}

/// A session asked of a kernel without sessions is the kernel refusing the request (EINVAL,
/// as libbpf reports it), told as such: not a target blamed by bisection. Where the kernel
/// has sessions, the same request attaches.
#[test]
fn a_session_where_the_kernel_has_none_is_not_blamed_on_a_target() {
    require_root!("loading BPF programs");
    // The plain entry program, loaded for a session link: it calls no session kfunc, so it
    // loads on kernels without them too.
    let t = setup_with(|o| {
        o.program_mut("entry").unwrap().set_kind(ProgramKind::KprobeSession);
    });
    let prog = t.loaded.program("entry").unwrap();
    let opts = KprobeMultiOpts { syms: Some(vec![READ.into(), WRITE.into()]), session: true, ..Default::default() };
    let result = prog.attach_kprobe_multi_opts(&opts);
    if features::kprobe_session().is_yes() {
        result.expect("a kernel with sessions attaches one");
        return;
    }
    let err = result.expect_err("no sessions on this kernel");
    assert!(matches!(err, AttachError::NotSupported { .. }), "{err:?}");
    // What the kernel answers: an attach type it does not know (before 6.10), or one it
    // knows without the fprobe it needs.
    let before_sessions = features::kernel_version().is_some_and(|v| v < (6, 10));
    assert_eq!(err.errno(), if before_sessions { libc::EINVAL } else { libc::EOPNOTSUPP }, "{err}");
    assert!(!err.to_string().contains(READ) && !err.to_string().contains(WRITE), "no target is blamed: {err}");
}

/// The checks that need the pattern resolved against the kernel's traceable functions.
#[test]
fn pattern_errors_in_libbpf_order() {
    require_kprobe_multi!();
    check_cases(vec![
        (
            KprobeMultiOpts { pattern: Some("multiprobe_no_such_fn_*".into()), ..Default::default() },
            |e| matches!(e, AttachError::NoMatch { .. }),
            libc::ENOENT,
        ),
        (
            KprobeMultiOpts { pattern: pat(), unique_match: true, ..Default::default() },
            |e| matches!(e, AttachError::NotUnique { .. }),
            libc::EINVAL,
        ),
        // libbpf resolves the pattern before it looks at retprobe + session.
        (
            KprobeMultiOpts {
                pattern: Some("multiprobe_no_such_fn_*".into()),
                retprobe: true,
                session: true,
                ..Default::default()
            },
            |e| matches!(e, AttachError::NoMatch { .. }),
            libc::ENOENT,
        ),
        (
            KprobeMultiOpts { pattern: pat(), retprobe: true, session: true, ..Default::default() },
            |e| matches!(e, AttachError::RetprobeAndSession),
            libc::EINVAL,
        ),
    ]);
}

#[test]
fn a_program_not_loaded_for_multi_is_refused() {
    require_root!("loading BPF programs");
    let loaded = load();
    let err = loaded.program("plain").unwrap().attach_kprobe_multi(&KprobeMulti::symbols([READ])).unwrap_err();
    assert!(matches!(err, AttachError::WrongProgramKind { .. }), "{err}");
    assert_eq!(err.errno(), libc::EINVAL);
    assert!(err.to_string().contains("kprobe.multi"), "{err}");
    // An object program that was not loaded at all.
    let err = loaded.attach_kprobe_multi("session", &KprobeMulti::symbols([READ])).unwrap_err();
    assert!(matches!(err, AttachError::ProgramNotLoaded { .. }), "{err}");
    assert_eq!(err.errno(), libc::EINVAL);
}

#[test]
fn untraceable_symbols_and_addresses_are_named() {
    require_kprobe_multi!();
    let loaded = load();
    let prog = loaded.program("entry").unwrap();
    let bad_name = "multiprobe_no_such_function";
    // An exact name (fast path) that is no function.
    let err = prog.attach_kprobe_multi(&KprobeMulti::pattern(bad_name)).unwrap_err();
    assert!(matches!(&err, AttachError::UntraceableSymbol { symbol, .. } if symbol == bad_name), "{err}");
    // A list with one bad name among good ones, and an alias that is not listed under its
    // own name but is traceable: the error names the bad one.
    let spec = KprobeMulti::symbols(["__x64_sys_getpid", READ, bad_name, WRITE]);
    let err = prog.attach_kprobe_multi(&spec).unwrap_err();
    assert!(matches!(&err, AttachError::UntraceableSymbol { symbol, .. } if symbol == bad_name), "{err}");
    // The kernel said ESRCH; libbpf 1.7 reports ENOENT.
    assert_eq!(err.errno(), libc::ENOENT);
    // The same name twice.
    let err = prog.attach_kprobe_multi(&KprobeMulti::symbols([READ, READ])).unwrap_err();
    assert!(err.to_string().contains("twice"), "{err}");
    // An address inside a function, not at its entry.
    let ksyms = Kallsyms::read();
    let bad = ksyms.addr(READ) + 1;
    let err = prog.attach_kprobe_multi(&KprobeMulti::addresses([ksyms.addr(WRITE), bad])).unwrap_err();
    assert!(matches!(&err, AttachError::UntraceableAddress { addr, .. } if *addr == bad), "{err}");
}

#[test]
fn more_than_the_kernel_limit_is_too_big() {
    require_kprobe_multi!();
    let loaded = load();
    let addrs: Vec<u64> = (0..(1u64 << 20) + 1).map(|i| 0x1000 + 16 * i).collect();
    let err = loaded.program("entry").unwrap().attach_kprobe_multi(&KprobeMulti::addresses(addrs)).unwrap_err();
    assert!(matches!(err, AttachError::TooManyTargets { count, .. } if count == (1 << 20) + 1), "{err}");
    assert_eq!(err.errno(), libc::E2BIG);
}

#[test]
fn dropping_the_link_detaches() {
    require_kprobe_multi!();
    let t = setup();
    let link = attach(&t.loaded, "entry", &KprobeMulti::symbols([READ]));
    t.w.reads(2);
    drop(link);
    t.w.reads(4);
    t.check("hits", &[(READ, 2)]);
}

#[test]
fn link_info_reports_targets_flags_and_cookies() {
    require_kprobe_multi!();
    require_kernel!(6, 6, "kprobe_multi link info");
    let loaded = load();
    let spec = KprobeMulti::symbols_with_cookies([(WRITE, 7), (READ, 3)]).retprobe();
    let link = attach(&loaded, "ret", &spec);
    let mut info = link.info().unwrap();
    info.resolve_names().unwrap();
    assert_eq!(info.count, Some(2));
    assert_eq!(info.retprobe, Some(true));
    assert_eq!(info.prog_id, loaded.program("ret").unwrap().info().unwrap().id);
    let ksyms = Kallsyms::read();
    let cookies = testkit::kernel_version() >= (6, 9);
    let c = |v: u64| cookies.then_some(v);
    let mut got: Vec<(u64, Option<u64>)> = info.targets.iter().map(|t| (t.address, t.cookie)).collect();
    got.sort();
    let mut want = vec![(ksyms.addr(READ), c(3)), (ksyms.addr(WRITE), c(7))];
    want.sort();
    assert_eq!(got, want);
    for t in &info.targets {
        let f = t.function.as_deref().unwrap_or_default();
        assert!(ksyms.names(t.address).split('/').any(|n| n == f), "{t:?}");
    }
    if testkit::kernel_version() >= (6, 7) {
        assert_eq!(info.missed, Some(0));
    }
}

#[test]
fn auto_attach_from_the_section_name() {
    require_kprobe_multi!();
    let t = setup_with(|o| {
        o.program_mut("auto_entry").unwrap().set_autoload(true);
    });
    let attached = t.loaded.attach_all().unwrap_or_else(|e| panic!("{e}"));
    // Only auto_entry names a target; entry, ret and plain do not.
    assert_eq!(attached.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["auto_entry"]);
    t.run();
    drop(attached);
    t.check("hits", &[(READ, 3), (WRITE, 5)]);
}

/// Waits (10 s at most) for a link whose last reference is gone to detach: after unlink(2)
/// of its pin the kernel frees it once an RCU grace period has passed, from a work queue.
/// Writes continue until one is no longer counted.
fn wait_detached(w: &Workload, hits: &Map) -> bool {
    for _ in 0..1000 {
        let before = snapshot(hits);
        w.writes(1);
        if snapshot(hits) == before {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    false
}

#[test]
fn a_pinned_link_outlives_its_fd_and_detaches_when_unpinned() {
    require_kprobe_multi!();
    let pins = BpfDir::new("link");
    let t = setup();
    let link = attach(&t.loaded, "entry", &KprobeMulti::symbols([WRITE]));
    let id = link.info().unwrap().id;
    link.pin(pins.path("link")).unwrap();
    drop(link);
    t.w.writes(2);
    let hits = snapshot(t.loaded.map("hits").unwrap());
    check(t.ksyms, hits, &[(WRITE, 2)]);
    let reopened = KprobeMultiLink::from_pin(pins.path("link")).unwrap();
    assert_eq!(reopened.info().unwrap().id, id);
    drop(reopened);
    std::fs::remove_file(pins.path("link")).unwrap();
    assert!(wait_detached(&t.w, t.loaded.map("hits").unwrap()), "removing the pin detaches the link");
    assert!(!link_ids().contains(&id), "the link is gone from the kernel");
}

/// Ids of every link in the kernel.
fn link_ids() -> Vec<u32> {
    let mut ids = Vec::new();
    let mut id = 0;
    while let Ok(Some(next)) = multiprobe::raw::get_next_id(multiprobe::raw::ObjKind::Link, id) {
        ids.push(next);
        id = next;
    }
    ids
}

/// In a child process: attach, pin the link and the map, exit. Run by the test below.
#[test]
#[ignore = "helper process of a_pinned_link_survives_the_process_that_pinned_it"]
fn pin_helper() {
    let Ok(dir) = std::env::var("MULTIPROBE_PIN_DIR") else { return };
    let tid: u32 = std::env::var("MULTIPROBE_PIN_TID").unwrap().parse().unwrap();
    let mut obj = Object::parse("test_kprobe_multi", KPROBE_MULTI_OBJ).unwrap();
    obj.set_global("target_tid", &tid).unwrap();
    obj.map_mut("hits").unwrap().set_pin_path(format!("{dir}/hits"));
    let loaded = obj.load().unwrap_or_else(|e| panic!("{e}"));
    let link = attach(&loaded, "entry", &KprobeMulti::symbols([WRITE]));
    link.pin(format!("{dir}/link")).unwrap();
    println!("LINK-ID {}", link.info().unwrap().id);
}

#[test]
fn a_pinned_link_survives_the_process_that_pinned_it() {
    require_kprobe_multi!();
    let pins = BpfDir::new("survive");
    let ksyms = Kallsyms::read();
    let w = Workload::new();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "pin_helper", "--ignored", "--test-threads=1", "--nocapture"])
        .env("MULTIPROBE_PIN_DIR", &pins.0)
        .env("MULTIPROBE_PIN_TID", gettid().to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "helper failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let id: u32 = stdout
        .split("LINK-ID ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("the helper prints the link id; it printed:\n{stdout}"))
        .parse()
        .unwrap();
    let hits = Map::from_pin(pins.path("hits")).unwrap();
    let before = snapshot(&hits);
    w.writes(4);
    let after = snapshot(&hits);
    std::fs::remove_file(pins.path("link")).unwrap();
    assert_eq!(before.values().sum::<u64>(), 0);
    check(ksyms, after, &[(WRITE, 4)]);
    assert!(wait_detached(&w, &hits), "removing the pin detaches the link");
    assert!(!link_ids().contains(&id), "the link is gone from the kernel");
}

#[test]
fn a_module_function_is_attached_and_holds_its_module() {
    require_kprobe_multi!();
    require_config!("CONFIG_MODULES", "loadable modules");
    let Some(dir) = testkit::test_modules_dir() else {
        panic!("no test modules: run in the VM (cargo xtask test), which ships binfmt_misc.ko");
    };
    let sh = |cmd: &str| std::process::Command::new("sh").args(["-c", cmd]).status().unwrap().success();
    let _ = sh("umount /tmp/binfmt 2>/dev/null; rmmod binfmt_misc 2>/dev/null");
    assert!(sh(&format!("insmod {}", dir.join("binfmt_misc.ko").display())), "insmod binfmt_misc");
    assert!(sh("mkdir -p /tmp/binfmt && mount -t binfmt_misc none /tmp/binfmt"));

    let t = setup();
    let link = attach(&t.loaded, "entry", &KprobeMulti::pattern("bm_status_rea*"));
    assert_eq!(link.functions().len(), 1);
    assert_eq!(link.functions()[0].module.as_deref(), Some("binfmt_misc"));
    for _ in 0..3 {
        use std::io::Read;
        let mut buf = [0u8; 64];
        // One read(2): one call of the module's read handler.
        let n = std::fs::File::open("/tmp/binfmt/status").unwrap().read(&mut buf).unwrap();
        assert!(n > 0);
    }
    let hits = snapshot(t.loaded.map("hits").unwrap());
    check(&Kallsyms::fresh(), hits, &[("bm_status_read", 3)]);

    assert!(sh("umount /tmp/binfmt"));
    assert!(!sh("rmmod binfmt_misc 2>/dev/null"), "the link holds a reference on the module");
    drop(link);
    assert!(sh("rmmod binfmt_misc"), "once detached, the module unloads");
}

/// Where kprobe_multi is missing (Debian's 6.1, this repository's build machines), attaching
/// fails with the unsupported explanation and the program and maps stay usable; where it is
/// present, the feature probe agrees with the kernel config.
#[test]
fn feature_probe_agrees_with_the_kernel() {
    require_root!("loading BPF programs");
    let supported = features::kprobe_multi();
    if let Some(config) = testkit::kernel_config("CONFIG_FPROBE") {
        let new_enough = testkit::kernel_version() >= (5, 18);
        assert_eq!(supported.is_yes(), config && new_enough, "probe: {supported:?}");
    }
    if supported.is_yes() {
        return;
    }
    let loaded = load();
    let err = loaded.program("entry").unwrap().attach_kprobe_multi(&KprobeMulti::symbols([READ])).unwrap_err();
    assert!(matches!(err, AttachError::NotSupported { .. }), "{err}");
    assert_eq!(err.errno(), libc::EOPNOTSUPP);
    assert!(err.to_string().contains("CONFIG_FPROBE"), "{err}");
    // Still usable: maps read and write, the program answers.
    let hits = loaded.map("hits").unwrap();
    hits.update(&1u64, &2u64, multiprobe::UpdateFlags::Any).unwrap();
    assert_eq!(hits.get::<u64, u64>(&1).unwrap(), Some(2));
    assert!(loaded.program("entry").unwrap().info().unwrap().id > 0);
}
