//! Loader gaps found by the differential corpus of public tools (docs/loader.md, "The
//! corpus"), each reproduced by an object of our own, loaded on this machine's kernel and
//! in the VMs: the `.kconfig` map read as constants by the verifier,
//! `LINUX_HAS_SYSCALL_WRAPPER` from the kernel's BTF, and a kfunc defined by a module
//! (called through the module's BTF in `fd_array`, as libbpf does).

use multiprobe::{LoadError, Object, ProgramKind};
use testkit::{require_kernel, require_root};

const GAPS_OBJ: &[u8] = include_bytes!("../../../bpf/test_corpus_gaps.bpf.o");
const MODULE_KFUNC_OBJ: &[u8] = include_bytes!("../../../bpf/test_module_kfunc.bpf.o");

/// BPF_PROG_TEST_RUN wants at least an Ethernet header of packet.
const PACKET: [u8; 64] = [0; 64];
const EINVAL: i32 = 22;

#[test]
fn corpus_gap_kconfig_value_is_constant_to_the_verifier() {
    require_root!("loading BPF programs");
    // Only verifiable if the verifier skips the branch for kernels before 3.0, which it
    // does when `.kconfig` is read-only to programs and frozen.
    let obj = Object::parse("test_corpus_gaps", GAPS_OBJ).unwrap();
    let loaded = obj.load().unwrap_or_else(|e| panic!("{e}"));
    let run = loaded.program("kconfig_guarded").unwrap().test_run(&PACKET).unwrap();
    assert_eq!(run.retval, 7);
}

#[test]
fn corpus_gap_syscall_wrapper_extern_agrees_with_kallsyms() {
    require_root!("loading BPF programs");
    // LINUX_HAS_SYSCALL_WRAPPER is read from the kernel's BTF (kallsyms took 200-400 ms in
    // the VMs); it must say what /proc/kallsyms says.
    let kallsyms = std::fs::read_to_string("/proc/kallsyms").unwrap();
    let listed = cfg!(target_arch = "x86_64") && kallsyms.lines().any(|l| l.ends_with(" __x64_sys_bpf"));
    let obj = Object::parse("test_corpus_gaps", GAPS_OBJ).unwrap();
    let loaded = obj.load().unwrap_or_else(|e| panic!("{e}"));
    loaded.program("syscall_wrapper").unwrap().test_run(&PACKET).unwrap();
    let data = loaded.map(".data").unwrap().get_bytes(&0u32.to_le_bytes()).unwrap().unwrap();
    assert_eq!(u32::from_le_bytes(data[..4].try_into().unwrap()), u32::from(listed));
}

#[test]
fn corpus_gap_usdt_programs_load_as_kprobe_programs() {
    require_root!("loading BPF programs");
    let obj = Object::parse("test_corpus_gaps", GAPS_OBJ).unwrap();
    assert_eq!(obj.program("usdt_probe").unwrap().kind(), Some(ProgramKind::Usdt));
    let loaded = obj.load().unwrap_or_else(|e| panic!("{e}"));
    const BPF_PROG_TYPE_KPROBE: u32 = 2;
    assert_eq!(loaded.program("usdt_probe").unwrap().info().unwrap().prog_type, BPF_PROG_TYPE_KPROBE);
}

/// Loads `name.ko` from the VM's test modules unless it is loaded already.
fn insmod(dir: &std::path::Path, name: &str) {
    if std::fs::read_to_string("/proc/modules").unwrap_or_default().lines().any(|l| l.starts_with(&format!("{name} ")))
    {
        return;
    }
    let ko = dir.join(format!("{name}.ko"));
    let status = std::process::Command::new("insmod").arg(&ko).status().expect("running insmod");
    assert!(status.success(), "insmod {}", ko.display());
}

#[test]
fn corpus_gap_module_kfunc_called_through_fd_array() {
    require_root!("loading BPF programs");
    require_kernel!(6, 4, "fou's kfuncs (bpf_skb_get_fou_encap)");
    // The fou module and what it needs come with the VMs' test modules (not on a host).
    let Some(dir) = testkit::test_modules_dir() else {
        eprintln!("skipped: needs the VM's test modules (fou.ko)");
        return;
    };
    assert!(dir.join("fou.ko").is_file(), "the VM's test modules lack fou.ko (xtask/src/kernels.rs TEST_MODULES)");
    let obj = Object::parse("test_module_kfunc", MODULE_KFUNC_OBJ).unwrap();
    if std::fs::read_to_string("/proc/modules").unwrap_or_default().lines().all(|l| !l.starts_with("fou ")) {
        // Not loaded: a strong kfunc nobody defines fails the load, naming it.
        match obj.load() {
            Err(LoadError::Kfunc { name, reason }) => {
                assert_eq!(name, "bpf_skb_get_fou_encap");
                assert!(reason.contains("module"), "{reason}");
            }
            other => panic!("expected a kfunc error without fou loaded, got {other:?}"),
        }
    }
    for module in ["ip_tunnel", "udp_tunnel", "ip6_udp_tunnel", "fou"] {
        insmod(&dir, module);
    }
    let loaded = obj.load().unwrap_or_else(|e| panic!("{e}"));
    let prog = loaded.program("get_fou_encap").unwrap();
    prog.test_run(&PACKET).unwrap();
    // The call reached fou's function: a test-run packet has no tunnel metadata.
    let bss = loaded.map(".data").unwrap().get_bytes(&0u32.to_le_bytes()).unwrap().unwrap();
    assert_eq!(i32::from_le_bytes(bss[..4].try_into().unwrap()), -EINVAL);
}
