//! Smoke tests of the test environment itself, natively and in every VM kernel: the skip
//! protocol, the kernel config the harness ships, tracefs, and the test modules.

use std::path::Path;
use std::process::Command;

const TRACEFS: &str = "/sys/kernel/tracing";

/// Mounts tracefs unless it is mounted already (the VM's init mounts it; a host may not).
fn ensure_tracefs() {
    if Path::new(TRACEFS).join("available_filter_functions").exists() {
        return;
    }
    let status = Command::new("mount").args(["-t", "tracefs", "nodev", TRACEFS]).status().expect("running mount");
    assert!(status.success(), "mount -t tracefs failed: {status}");
}

#[test]
fn running_kernel_config_is_known() {
    // The VMs ship each kernel's config; Debian hosts have /boot/config-*.
    assert_eq!(
        testkit::kernel_config("CONFIG_BPF_SYSCALL"),
        Some(true),
        "kernel {} config: CONFIG_BPF_SYSCALL not found enabled",
        testkit::kernel_release()
    );
}

#[test]
fn tracefs_lists_function_addresses() {
    testkit::require_root!("mounting and reading tracefs");
    testkit::require_config!("CONFIG_DYNAMIC_FTRACE", "available_filter_functions");
    testkit::require_kernel!(6, 5, "available_filter_functions_addrs");
    ensure_tracefs();
    let addrs = Path::new(TRACEFS).join("available_filter_functions_addrs");
    assert!(addrs.exists(), "{} is missing", addrs.display());
}

#[test]
fn vm_environment_is_complete() {
    if !testkit::in_vm() {
        return; // Only the VM's init sets these up.
    }
    let bin = testkit::multiprobe_bin("/nonexistent");
    assert!(bin.is_file(), "MULTIPROBE_BIN {} is missing", bin.display());
    let modules = testkit::test_modules_dir().expect("MULTIPROBE_TEST_MODULES is set");
    assert!(modules.join("binfmt_misc.ko").is_file());
    assert!(Path::new("/sys/fs/bpf").is_dir());
}

#[test]
fn test_module_functions_become_traceable() {
    testkit::require_root!("insmod");
    testkit::require_config!("CONFIG_DYNAMIC_FTRACE", "available_filter_functions");
    // Only the VMs carry test modules, and only kernels that build binfmt_misc as a module.
    let Some(module) = testkit::test_modules_dir().map(|dir| dir.join("binfmt_misc.ko")).filter(|ko| ko.is_file())
    else {
        return;
    };
    let loaded = std::fs::read_to_string("/proc/modules").unwrap_or_default();
    if !loaded.lines().any(|l| l.starts_with("binfmt_misc ")) {
        let status = Command::new("insmod").arg(&module).status().expect("running insmod");
        assert!(status.success(), "insmod {}: {status}", module.display());
    }
    ensure_tracefs();
    let functions = std::fs::read_to_string(Path::new(TRACEFS).join("available_filter_functions"))
        .expect("reading available_filter_functions");
    assert!(functions.lines().any(|l| l.ends_with("[binfmt_misc]")), "no binfmt_misc function is traceable");
}
