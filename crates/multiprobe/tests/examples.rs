//! The library's examples (crates/multiprobe/examples/), run on real kernels: each example's
//! body is its `run` function, compiled into this test too, so the static test build carries
//! them into the VMs and a change that breaks an example fails here, not in a user's hands.

#[macro_use]
mod common;

use common::BpfDir;
use multiprobe::features::{self, Support};
use multiprobe::kprobe_multi::{AttachMode, Fallback};

// Each example as a module; their `main`s go unused here.
#[allow(dead_code)]
#[path = "../examples/count_by_pattern.rs"]
mod count_by_pattern;
#[allow(dead_code)]
#[path = "../examples/fallback.rs"]
mod fallback;
#[allow(dead_code)]
#[path = "../examples/latency_session.rs"]
mod latency_session;
#[allow(dead_code)]
#[path = "../examples/link_info_pin.rs"]
mod link_info_pin;
#[allow(dead_code)]
#[path = "../examples/tracing_and_multi.rs"]
mod tracing_and_multi;

#[test]
fn example_count_by_pattern_counts_each_function() {
    require_kprobe_multi!();
    let counted = count_by_pattern::run("vfs_read*", 25).unwrap();
    // pread on a regular file: one vfs_read per call, and this process only.
    let read = counted.iter().find(|(f, _)| f == "vfs_read").map(|(_, n)| *n);
    assert_eq!(read, Some(25), "{counted:?}");
    assert!(counted.iter().all(|(f, _)| f.starts_with("vfs_read")), "{counted:?}");
}

#[test]
fn example_latency_session_times_each_call() {
    require_kprobe_multi!();
    testkit::require_kernel!(6, 10, "kprobe sessions");
    let timings = latency_session::run(&["vfs_read", "vfs_write"], 20).unwrap();
    assert_eq!(timings.len(), 2);
    for t in &timings {
        assert_eq!(t.calls, 20, "{}", t.function);
        assert!(t.nanos > 0, "{}: entry to return takes time", t.function);
    }
}

#[test]
fn example_fallback_attaches_either_way() {
    testkit::require_root!("loading BPF programs");
    testkit::require_config!("CONFIG_KPROBES", "kprobes (kprobe_multi and its per-function fallback)");
    testkit::require_kernel!(5, 15, "attach cookies on single kprobes");
    let auto = fallback::run(Fallback::Auto, 7).unwrap();
    let expected =
        if features::kprobe_multi() == Support::Yes { AttachMode::KprobeMulti } else { AttachMode::PerFunctionKprobes };
    assert_eq!(auto.mode, expected);
    assert_eq!(auto.writes, 7);
    let always = fallback::run(Fallback::Always, 3).unwrap();
    assert_eq!(always.mode, AttachMode::PerFunctionKprobes);
    assert_eq!(always.writes, 3);
}

#[test]
fn example_link_info_pin_reads_the_link_back() {
    require_kprobe_multi!();
    testkit::require_kernel!(6, 6, "kprobe_multi link info with addresses");
    let dir = BpfDir::new("example");
    let o = link_info_pin::run("vfs_read", dir.path("").as_path()).unwrap();
    assert_eq!(o.attached.id, o.reopened.id);
    assert_eq!(o.attached.count, Some(1));
    assert_eq!(o.attached.targets.len(), 1);
    assert_eq!(o.attached.targets[0].function.as_deref(), Some("vfs_read"));
    if multiprobe::features::kprobe_multi_link_info() >= multiprobe::features::LinkInfoLevel::Cookies {
        assert_eq!(o.attached.targets[0].cookie, Some(100));
    }
    assert_eq!(o.reopened.targets.len(), 1);
}

#[test]
fn example_tracing_and_multi_attaches_both_kinds() {
    require_kprobe_multi!();
    // fentry/fexit need BTF of the kernel: the VMs' kernels load them; this project's build
    // machines refuse them (lockdown), as tests/tracing.rs explains.
    testkit::require_config!("CONFIG_DEBUG_INFO_BTF", "fexit programs need kernel BTF");
    let o = tracing_and_multi::run("vfs_read", 9).unwrap();
    assert_eq!(o.fexit_kind, Some(multiprobe::ProgramKind::Fexit));
    assert_eq!(o.fexit_target.as_deref(), Some("vfs_read"));
    assert_eq!(o.fexit_prog_type, 26, "BPF_PROG_TYPE_TRACING");
    assert_eq!(o.reads, 9);
    assert_eq!(o.returns, 9, "the fexit program, attached by attach_trace, saw each return");
}
