//! Nothing is left behind (in the VMs): attach/detach cycles, attaches that
//! fail part way, and attaches cancelled part way leave no file descriptor, BPF link,
//! registered kprobe, `kprobe_events` entry or ftrace-enabled function behind. On kernels
//! without kprobe_multi (6.1) every attach goes through the per-function fallback.

#[macro_use]
mod common;

use std::collections::BTreeSet;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::probes::*;
use multiprobe::kprobe_multi::{AttachMode, Fallback, KprobeMulti};
use multiprobe::raw::{self as sys, ObjKind};
use multiprobe::symbols::{Function, Selection, TraceableFunctions};
use multiprobe::{AttachError, ProgramKind, features};
use testkit::{require_config, require_kernel, require_root};

/// Skips unless single kprobes with cookies work (5.15+ built with CONFIG_KPROBES): the
/// fallback where kprobe_multi is missing.
macro_rules! require_kprobes {
    () => {
        require_root!("loading BPF programs");
        require_kernel!(5, 15, "perf-event kprobe links with cookies");
        require_config!("CONFIG_KPROBES", "kprobes");
    };
}

/// What an attach could leave behind, in this process and in the kernel.
#[derive(Debug, PartialEq, Eq)]
struct Leftovers {
    /// This process's open file descriptors: number and what each is.
    fds: BTreeSet<(u32, String)>,
    /// Every BPF link of the kernel: id and type.
    links: BTreeSet<(u32, u32)>,
    /// Registered kprobes (debugfs), `kprobe_events` and ftrace's enabled functions.
    kprobes: String,
    kprobe_events: String,
    enabled_functions: String,
}

impl Leftovers {
    fn now() -> Leftovers {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        Leftovers {
            fds: fds(),
            links: links(),
            kprobes: read("/sys/kernel/debug/kprobes/list"),
            kprobe_events: read("/sys/kernel/tracing/kprobe_events"),
            enabled_functions: read("/sys/kernel/tracing/enabled_functions"),
        }
    }
}

fn fds() -> BTreeSet<(u32, String)> {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let fd = e.file_name().to_str()?.parse().ok()?;
            let target = std::fs::read_link(e.path()).ok()?;
            Some((fd, target.to_string_lossy().into_owned()))
        })
        .collect()
}

fn links() -> BTreeSet<(u32, u32)> {
    let mut out = BTreeSet::new();
    let mut id = 0;
    while let Ok(Some(next)) = sys::get_next_id(ObjKind::Link, id) {
        id = next;
        if let Ok(fd) = sys::get_fd_by_id(ObjKind::Link, id)
            && let Ok(info) = sys::link_info(fd.as_fd(), None, None)
        {
            out.insert((id, info.link_type));
        }
    }
    out
}

/// The kernel frees links and kprobes of closed fds a moment later (RCU): waits up to 10 s
/// for the state to come back to `want`.
#[track_caller]
fn assert_back_to(want: &Leftovers, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut now = Leftovers::now();
    while now != *want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        now = Leftovers::now();
    }
    assert_eq!(now, *want, "{what} left something behind");
}

/// A line on the console while a long test runs (past libtest's capture, which only takes
/// the print macros), so the harness sees it is alive.
fn progress(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// The test object with its `entry` program loaded as the CLI loads it: a plain kprobe where
/// the kernel has no kprobe_multi (nothing to reload per attach).
fn setup_for_this_kernel() -> Setup {
    setup_with(|o| {
        if !features::kprobe_multi().is_yes() {
            o.program_mut("entry").unwrap().set_kind(ProgramKind::Kprobe);
        }
    })
}

/// Calls the program saw, over every function.
fn runs(t: &Setup) -> u64 {
    snapshot(t.loaded.map("hits").unwrap()).values().sum()
}

/// Cycles of attaching vfs_read (one function: a kprobe_multi link, or one kprobe) and
/// detaching it. Each cycle makes one read, so the count proves every attach took.
///
/// Up to 1,000 cycles, stopping after a minute of them (at least `MIN_CYCLES`): under QEMU
/// without KVM a cycle is not cheap enough for 1,000 in a minute. A kprobe_multi cycle waits
/// for RCU grace periods when the fprobe is unregistered; measured with the 2-core host
/// running other emulated VMs: 68 cycles in the minute on 6.12, 74 on 7.2 (0.8-0.9 s each;
/// 1.5 to 6 s under heavier load), and 34 per-function kprobe cycles on 6.1 (no
/// kprobe_multi, 1.8 s each). A minute per kernel is what CI can give this test; a leak of
/// anything per cycle shows after one, and the count reached is printed.
#[test]
fn conformance_attach_detach_cycles_leave_nothing_behind() {
    require_kprobes!();
    const MAX_CYCLES: u64 = 1_000;
    const MIN_CYCLES: u64 = 10;
    let budget = Duration::from_secs(60);
    let t = setup_for_this_kernel();
    let spec = KprobeMulti::symbols([READ]).fallback(Fallback::Auto);
    let prog = t.loaded.program("entry").unwrap();
    // A first cycle reads what the library keeps for the process (the listing, the kprobe
    // PMU's type, feature probes).
    let mode = prog.attach_kprobe_multi(&spec).unwrap_or_else(|e| panic!("{e}")).attach_mode();
    let before_runs = runs(&t);
    let before = Leftovers::now();
    let start = Instant::now();
    let mut cycles = 0;
    while cycles < MAX_CYCLES && (cycles < MIN_CYCLES || start.elapsed() < budget) {
        let link = prog.attach_kprobe_multi(&spec).unwrap_or_else(|e| panic!("{e}"));
        t.w.reads(1);
        drop(link);
        cycles += 1;
        if cycles % 100 == 0 || (cycles < 100 && cycles % 10 == 0) {
            progress(&format!("{cycles} cycles in {:?}", start.elapsed()));
        }
    }
    let took = start.elapsed();
    progress(&format!("{cycles} attach/detach cycles ({mode:?}) in {took:?}"));
    assert_eq!(runs(&t) - before_runs, cycles, "one run per cycle");
    assert_back_to(&before, "attach/detach cycles");
}

/// An attach failing at its third of four targets detaches the two it made, on both paths.
#[test]
fn a_failed_partial_attach_leaves_nothing_behind() {
    require_kprobes!();
    let t = setup_for_this_kernel();
    let listing = TraceableFunctions::read().unwrap();
    let mut functions = Selection::new().include(READ).include(WRITE).select(&listing);
    functions.insert(2, Function { name: "nowhere".into(), module: None, address: 0x1000 });
    functions.push(Selection::new().include("vfs_fsync").select(&listing).remove(0));
    let prog = t.loaded.program("entry").unwrap();
    let before = Leftovers::now();
    let mut fallbacks = vec![Fallback::Always];
    if features::kprobe_multi().is_yes() {
        fallbacks.push(Fallback::Never);
    }
    for fallback in fallbacks {
        let err = prog.attach_kprobe_multi(&KprobeMulti::functions(functions.clone()).fallback(fallback)).unwrap_err();
        // The link names the address it was refused; per-function kprobes name the
        // function as it was given.
        let named = match &err {
            AttachError::UntraceableAddress { addr, .. } => *addr == 0x1000 && fallback == Fallback::Never,
            AttachError::UntraceableSymbol { symbol, .. } => symbol == "nowhere" && fallback == Fallback::Always,
            _ => false,
        };
        assert!(named, "{fallback:?}: {err}");
        assert_back_to(&before, &format!("a failed attach ({fallback:?})"));
    }
}

/// A cancel flag set while per-function kprobes go in (what the CLI does on SIGINT) stops
/// the attach before the next function and detaches those already made.
#[test]
fn a_cancelled_per_function_attach_leaves_nothing_behind() {
    require_kprobes!();
    let t = setup_for_this_kernel();
    let functions = Selection::new().include("vfs_*").resolve().unwrap();
    let total = functions.len();
    assert!(total > 20, "{total}");
    let prog = t.loaded.program("entry").unwrap();
    let before = Leftovers::now();

    // Set before the attach: nothing is attached at all.
    let flag = Arc::new(AtomicBool::new(true));
    let spec = KprobeMulti::functions(functions.clone()).fallback(Fallback::Always).cancel_on(flag);
    let err = prog.attach_kprobe_multi(&spec).unwrap_err();
    assert!(matches!(err, AttachError::Cancelled { attached: 0, .. }), "{err}");
    assert_eq!(err.errno(), libc::ECANCELED);

    // Set once the first perf-event link shows up: the attach stops part way.
    let flag = Arc::new(AtomicBool::new(false));
    let spec = KprobeMulti::functions(functions).fallback(Fallback::Always).cancel_on(flag.clone());
    let links_before = before.links.len();
    let done = AtomicBool::new(false);
    let result = std::thread::scope(|s| {
        s.spawn(|| {
            while links().len() == links_before && !done.load(Ordering::Relaxed) {
                std::thread::yield_now();
            }
            flag.store(true, Ordering::Relaxed);
        });
        let result = prog.attach_kprobe_multi(&spec);
        done.store(true, Ordering::Relaxed);
        result
    });
    match result {
        Err(AttachError::Cancelled { attached, total: t }) => {
            assert_eq!(t, total);
            assert!(attached > 0 && attached < total, "cancelled after {attached} of {total}");
        }
        Err(e) => panic!("{e}"),
        Ok(link) => panic!("attached all {} functions ({:?}) despite the flag", total, link.attach_mode()),
    }
    assert_back_to(&before, "a cancelled attach");
    // The flag does not touch a kprobe_multi link (one system call).
    if features::kprobe_multi().is_yes() {
        let spec = KprobeMulti::symbols([READ]).cancel_on(Arc::new(AtomicBool::new(true)));
        assert_eq!(prog.attach_kprobe_multi(&spec).unwrap().attach_mode(), AttachMode::KprobeMulti);
    }
}
