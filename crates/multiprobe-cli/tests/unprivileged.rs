//! The command run by a normal user (uid 65534, `nobody`), in the VMs and natively where the
//! tests run as root: what it says when privileges, not the kernel, stand in the way.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use common::bin;
use testkit::require_root;

const NOBODY: u32 = 65534;

/// `list` as nobody, with tracefs mounted mode 700 (the kernel's default): it must say that
/// it needs root or capabilities and why, never that tracefs is not mounted.
#[test]
fn unprivileged_list_with_a_closed_tracefs_says_it_needs_root() {
    require_root!("runs the command as another user (setuid)");
    let tracefs = Path::new("/sys/kernel/tracing");
    // As root first: mounts tracefs where nothing has yet (the VMs' init does not). Not
    // `list`: a sandbox may refuse even root the reads, never the mount's existence.
    let root_run = Command::new(bin()).args(["features"]).output().unwrap();
    assert!(root_run.status.success(), "{}", String::from_utf8_lossy(&root_run.stderr));
    assert!(tracefs.join("events").exists() || tracefs.join("available_filter_functions").exists());
    let mode = std::fs::metadata(tracefs).unwrap().permissions().mode() & 0o7777;
    if mode != 0o700 {
        std::fs::set_permissions(tracefs, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    // --no-cache: a listing cached in /run by the root run above would answer without tracefs.
    let out = Command::new(bin()).args(["list", "vfs_read", "--no-cache"]).uid(NOBODY).gid(NOBODY).output();
    let json = Command::new(bin()).args(["list", "vfs_read", "--no-cache", "--json"]).uid(NOBODY).gid(NOBODY).output();
    if mode != 0o700 {
        std::fs::set_permissions(tracefs, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let out = out.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(stderr.contains("tracefs is mounted at /sys/kernel/tracing but this user may not read it"), "{stderr}");
    assert!(stderr.contains("needs root, or CAP_BPF + CAP_PERFMON"), "{stderr}");
    assert!(!stderr.contains("not mounted"), "{stderr}");
    assert!(stderr.lines().any(|l| l.starts_with("hint: ") && l.contains("sudo")), "{stderr}");
    assert!(!stderr.contains('\x1b'), "colour on a pipe: {stderr:?}");

    // With --json, the same failure is also one `error` event on stdout, errno EACCES.
    let json = json.unwrap();
    assert_eq!(json.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&json.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    let event: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(event["event"], "error", "{event}");
    assert!(event["message"].as_str().unwrap().starts_with("tracefs is mounted at /sys/kernel/tracing"), "{event}");
    assert_eq!(event["errno"], 13, "EACCES: {event}");
    assert!(event["hints"][0].as_str().unwrap().contains("sudo"), "{event}");
}

/// `features` as nobody: no feature says yes while the one it needs says no.
#[test]
fn unprivileged_features_mark_what_depends_on_a_missing_feature() {
    require_root!("runs the command as another user (setuid)");
    let out = Command::new(bin()).args(["features", "--json"]).uid(NOBODY).gid(NOBODY).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let features = report["features"].as_array().unwrap();
    let get = |name: &str| features.iter().find(|f| f["name"] == name).unwrap_or_else(|| panic!("no {name}: {report}"));
    for (dependent, needed) in [("perf_kprobe_cookies", "perf_kprobe"), ("available_filter_functions_addrs", "tracefs")]
    {
        if get(needed)["supported"] == false {
            assert_eq!(get(dependent)["supported"], false, "{report}");
            assert_eq!(get(dependent)["reason"], format!("n/a: needs {needed}"), "{report}");
        }
    }
    // nobody may not read a tracefs of mode 700, nor create kprobes.
    assert_eq!(get("tracefs")["supported"], false, "{report}");
    assert_eq!(get("available_filter_functions_addrs")["reason"], "n/a: needs tracefs", "{report}");
}
