//! The command leaves the system as it found it (in the VMs): where no tracefs is mounted,
//! `list` reads the traceable functions through a mount of its own that never shows in the
//! mount table afterwards. Run in a mount namespace of its own (busybox `unshare`), so the
//! VM's other tests keep their tracefs.

mod common;

use std::process::Command;

use common::bin;
use testkit::require_root;

#[test]
fn conformance_list_without_tracefs_leaves_none_mounted() {
    require_root!("mounting tracefs");
    if !testkit::in_vm() {
        // Unmounting the host's tracefs, even in a namespace, is not this test's business.
        return;
    }
    // debugfs goes too: its tracing directory would mount tracefs on access.
    let script = format!(
        "umount -l /sys/kernel/debug; umount -l /sys/kernel/tracing; \
         echo before; grep -c -w -e tracefs -e debugfs /proc/self/mountinfo; \
         {} --no-cache list vfs_read || exit 9; \
         echo after; grep -w -e tracefs -e debugfs /proc/self/mountinfo; echo end",
        bin().display()
    );
    let out = Command::new("unshare").args(["-m", "--propagation", "private", "sh", "-c", &script]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}\n{stdout}\n{stderr}", out.status.code());
    assert!(stdout.contains("before\n0\n"), "tracefs still mounted before the command:\n{stdout}");
    assert!(
        stdout.lines().any(|l| l.split_whitespace().last() == Some("vfs_read")),
        "vfs_read not listed:\n{stdout}\n{stderr}"
    );
    let after = stdout.split("after\n").nth(1).unwrap_or_default();
    assert_eq!(after, "end\n", "the command left a mount behind:\n{stdout}");
}

/// Runs `multiprobe ARGS`; it must fail, and its stderr is returned.
fn fails(args: &[&str]) -> String {
    let out = Command::new(bin()).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{args:?} succeeded:\n{}", String::from_utf8_lossy(&out.stdout));
    stderr
}

/// The hints for a selection that matches nothing count with the whole selection (module
/// part, excludes, deny list): `rcu_*` is refused by the deny list and says how to allow
/// it, not that RCU is notrace; `nomod:*` names the missing module instead of counting
/// every kernel function; an excluded match is said to be excluded.
#[test]
fn conformance_no_match_hints_apply_the_whole_selection() {
    require_root!("reading the traceable functions (tracefs)");
    if !testkit::in_vm() {
        return;
    }
    let e = fails(&["--no-cache", "list", "rcu_*"]);
    assert!(e.contains("traceable functions match but are on the built-in deny list"), "{e}");
    assert!(e.contains("`--no-deny-list`") && !e.contains("none is traceable"), "{e}");

    let e = fails(&["--no-cache", "list", "nomod:*"]);
    assert!(e.contains("no loaded module matches `nomod`") && !e.contains("kernel functions match"), "{e}");

    let e = fails(&["--no-cache", "list", "vfs_read", "--exclude", "vfs_*"]);
    assert!(e.contains("1 traceable functions match but are excluded") && !e.contains("none is traceable"), "{e}");
}
