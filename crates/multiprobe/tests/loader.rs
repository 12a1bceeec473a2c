//! The loader on a real kernel: every construct of bpf/test_loader.bpf.c loads, runs and
//! reads back; every failure of bpf/test_errors.bpf.c is explained.

mod common;

use common::{BpfDir, ERRORS_OBJ, LOADER_OBJ, gettid};
use multiprobe::{LoadError, MapError, MapType, Object, ProgramKind, RingBuf, UpdateFlags};
use testkit::{require_kernel, require_root};

/// The loader test object, configured, its pinned map placed under `pins`.
/// BPF_PROG_TEST_RUN hands socket filters the packet past its 14-byte Ethernet header.
const ETH_HLEN: u64 = 14;

fn loader_object(pins: &BpfDir) -> Object {
    let mut obj = Object::parse("test_loader", LOADER_OBJ).unwrap();
    obj.map_mut("pinned_counter").unwrap().set_pin_path(pins.path("pinned_counter"));
    obj.set_global("cfg_multiplier", &3u32).unwrap();
    obj.set_global("cfg_magic", &0xfeed_u64).unwrap();
    obj.set_global("cfg_target_tgid", &std::process::id()).unwrap();
    obj
}

#[test]
fn every_construct_loads_and_runs() {
    require_root!("loading BPF programs");
    let pins = BpfDir::new("constructs");
    let loaded = loader_object(&pins).load().unwrap_or_else(|e| panic!("{e}"));
    assert!(loaded.warnings().is_empty(), "{:?}", loaded.warnings());

    let prog = loaded.program("count_packets").unwrap();
    let packet = [0u8; 64];
    let len = packet.len() as u64 - ETH_HLEN;
    let run = prog.test_run(&packet).unwrap();
    // The program returns global_add(len, 0): the global subprogram ran.
    assert_eq!(u64::from(run.retval), len);

    let counts = loaded.map("counts").unwrap();
    assert_eq!(counts.get::<u32, u64>(&0).unwrap(), Some(1));
    let hits: Vec<u64> = loaded.map("percpu_hits").unwrap().get_per_cpu(&0u32).unwrap().unwrap();
    assert_eq!(hits.iter().sum::<u64>(), 1);
    // Map-in-map: slot 0 of `outer` is `inner_a`.
    assert_eq!(loaded.map("inner_a").unwrap().get::<u32, u64>(&0).unwrap(), Some(len));
    assert_eq!(loaded.map("inner_b").unwrap().get::<u32, u64>(&0).unwrap(), Some(0));
    // Global data: .data incremented, .bss accumulated len * cfg_multiplier (from .rodata).
    let data = loaded.map(".data").unwrap().get_bytes(&0u32.to_le_bytes()).unwrap().unwrap();
    assert_eq!(i32::from_le_bytes(data[..4].try_into().unwrap()), 6);
    let bss = loaded.map(".bss").unwrap().get_bytes(&0u32.to_le_bytes()).unwrap().unwrap();
    assert_eq!(u64::from_le_bytes(bss[..8].try_into().unwrap()), len * 3);
    assert_eq!(loaded.map("recent").unwrap().get::<u64, u32>(&len).unwrap(), Some(0));

    // The ring buffer carries one event with values from .rodata, .data.custom and bpf_loop.
    let mut ring = RingBuf::new(loaded.map("events").unwrap()).unwrap();
    let event = ring.next_record().expect("one event");
    assert_eq!(event.len(), 32);
    assert_eq!(u64::from_le_bytes(event[0..8].try_into().unwrap()), len);
    assert_eq!(u64::from_le_bytes(event[8..16].try_into().unwrap()), 0xfeed);
    assert_eq!(u32::from_le_bytes(event[16..20].try_into().unwrap()), 7);
    assert_eq!(u32::from_le_bytes(event[20..24].try_into().unwrap()), 3, "bpf_loop callback ran 3 times");
    assert_eq!(&event[24..29], b"hello");
    assert!(ring.next_record().is_none());

    // .rodata is frozen: user space can no longer write it.
    let rodata = loaded.map(".rodata").unwrap();
    let value = vec![0u8; rodata.value_size() as usize];
    let err = rodata.update_bytes(&0u32.to_le_bytes(), &value, UpdateFlags::Any).unwrap_err();
    assert!(matches!(&err, MapError::Syscall { source, .. } if source.raw_os_error() == Some(libc::EPERM)), "{err}");

    let info = prog.info().unwrap();
    assert_eq!(info.name, "count_packets");
    assert!(info.id > 0 && info.verified_insns > 0);
    assert!(info.btf_id > 0, "loaded with the object's BTF: function and line info");
    // Programs marked `?` are known but not loaded.
    assert!(loaded.program("kern_ctx_len").is_none());
    assert!(loaded.is_not_loaded("kern_ctx_len"));
}

#[test]
fn core_reads_the_running_kernels_task_struct() {
    require_root!("loading BPF programs");
    testkit::require_config!("CONFIG_FTRACE_SYSCALLS", "syscall tracepoints");
    let pins = BpfDir::new("t");
    let loaded = loader_object(&pins).load().unwrap_or_else(|e| panic!("{e}"));
    let prog = loaded.program("on_getppid").unwrap();
    let link = prog.attach_tracepoint("syscalls", "sys_enter_getppid").unwrap_or_else(|e| panic!("{e}"));
    let _ = std::os::unix::process::parent_id();
    drop(link);
    let counts = loaded.map("counts").unwrap();
    assert_eq!(counts.get::<u32, u64>(&1).unwrap(), Some(u64::from(std::process::id()) * 3), "tgid * cfg_multiplier");
    assert_eq!(counts.get::<u32, u64>(&2).unwrap(), Some(u64::from(gettid())), "pid of the calling thread");
}

#[test]
fn ksym_variables_resolve_by_btf_id_and_by_address() {
    require_root!("loading BPF programs and reading kallsyms addresses");
    testkit::require_config!("CONFIG_FTRACE_SYSCALLS", "syscall tracepoints");
    testkit::require_config!("CONFIG_KALLSYMS_ALL", "typed __ksym variables (the kernel looks them up in kallsyms)");
    let pins = BpfDir::new("ksyms");
    let mut obj = loader_object(&pins);
    obj.program_mut("ksyms").unwrap().set_autoload(true);
    let loaded = obj.load().unwrap_or_else(|e| panic!("{e}"));
    let link = loaded.program("ksyms").unwrap().attach_tracepoint("syscalls", "sys_enter_getppid").unwrap();
    let _ = std::os::unix::process::parent_id();
    drop(link);
    let counts = loaded.map("counts").unwrap();
    // Typed: this CPU's run queue (the per-CPU `runqueues`) names this CPU.
    assert_eq!(counts.get::<u32, u64>(&3).unwrap(), Some(1));
    // Typeless: vfs_read's address, as /proc/kallsyms shows it.
    let kallsyms = std::fs::read_to_string("/proc/kallsyms").unwrap();
    let vfs_read = kallsyms
        .lines()
        .find_map(|l| l.strip_suffix(" vfs_read")?.split(' ').next().and_then(|a| u64::from_str_radix(a, 16).ok()))
        .unwrap();
    assert_eq!(counts.get::<u32, u64>(&4).unwrap(), Some(vfs_read));
}

#[test]
fn kfunc_calls_resolve_against_kernel_btf() {
    require_root!("loading BPF programs");
    require_kernel!(6, 2, "bpf_cast_to_kern_ctx kfunc callable from socket filters");
    let pins = BpfDir::new("t");
    let mut obj = loader_object(&pins);
    obj.program_mut("kern_ctx_len").unwrap().set_autoload(true);
    let loaded = obj.load().unwrap_or_else(|e| panic!("{e}"));
    let run = loaded.program("kern_ctx_len").unwrap().test_run(&[0u8; 80]).unwrap();
    assert_eq!(u64::from(run.retval), 80 - ETH_HLEN, "skb->len read through the kfunc's result");
}

#[test]
fn pinned_maps_are_reused_by_the_next_load() {
    require_root!("loading BPF programs");
    let pins = BpfDir::new("reuse");
    let mut obj = loader_object(&pins);
    let first = obj.load().unwrap_or_else(|e| panic!("{e}"));
    first.map("pinned_counter").unwrap().update(&1u32, &42u32, UpdateFlags::Any).unwrap();
    drop(first);
    let second = obj.load().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(second.map("pinned_counter").unwrap().get::<u32, u32>(&1).unwrap(), Some(42));

    // A definition that no longer matches the pin is refused, naming both.
    obj.map_mut("pinned_counter").unwrap().set_max_entries(9);
    let err = obj.load().unwrap_err();
    assert!(matches!(err, LoadError::PinnedMapMismatch { .. }), "{err}");
    assert!(err.to_string().contains("pinned_counter"), "{err}");
}

#[test]
fn programs_reload_as_another_kind() {
    require_root!("loading BPF programs");
    let pins = BpfDir::new("t");
    let loaded = loader_object(&pins).load().unwrap_or_else(|e| panic!("{e}"));
    let multi = loaded.program("multi_prog").unwrap();
    assert_eq!(multi.kind(), ProgramKind::KprobeMulti);
    let single = multi.reload_as(ProgramKind::Kprobe).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(single.kind(), ProgramKind::Kprobe);
    assert_eq!(single.attach_target(), Some("vfs_rea?"));
    assert_ne!(single.info().unwrap().id, multi.info().unwrap().id);
}

#[test]
fn map_misuse_is_an_error() {
    require_root!("creating maps");
    let pins = BpfDir::new("t");
    let loaded = loader_object(&pins).load().unwrap_or_else(|e| panic!("{e}"));
    let counts = loaded.map("counts").unwrap();
    assert_eq!(counts.map_type(), MapType::Hash);
    assert!(matches!(counts.get::<u64, u64>(&0), Err(MapError::KeySize { expected: 4, got: 8, .. })));
    assert!(matches!(counts.get::<u32, u32>(&0), Err(MapError::ValueSize { expected: 8, got: 4, .. })));
    assert!(matches!(counts.get_per_cpu::<u32, u64>(&0), Err(MapError::WrongType { .. })));
    assert!(matches!(loaded.map("percpu_hits").unwrap().get::<u32, u64>(&0), Err(MapError::WrongType { .. })));
    assert!(RingBuf::new(counts).is_err());
    counts.update(&7u32, &1u64, UpdateFlags::NoExist).unwrap();
    let again = counts.update(&7u32, &1u64, UpdateFlags::NoExist).unwrap_err();
    assert!(matches!(&again, MapError::Syscall { source, .. } if source.raw_os_error() == Some(libc::EEXIST)));
    let keys: Vec<u32> = counts.keys().collect::<Result<_, _>>().unwrap();
    assert_eq!(keys, vec![7]);
    assert!(counts.delete(&7u32).unwrap());
    assert!(!counts.delete(&7u32).unwrap());
}

#[test]
fn batch_updates_write_every_element_once_and_dump_reads_them() {
    require_root!("creating maps");
    let pins = BpfDir::new("t");
    let loaded = loader_object(&pins).load().unwrap_or_else(|e| panic!("{e}"));
    let counts = loaded.map("counts").unwrap();
    let keys: Vec<u32> = (0..40).collect();
    let values: Vec<u64> = keys.iter().map(|&k| u64::from(k) * 10).collect();
    // On 6.1 and later in one call; NoExist must not trip over elements it wrote itself.
    counts.update_batch(&keys, &values, UpdateFlags::NoExist).unwrap();
    for &k in &keys {
        assert_eq!(counts.get::<u32, u64>(&k).unwrap(), Some(u64::from(k) * 10), "key {k}");
    }
    // And read back whole in one batch lookup: every element once, with its value.
    let mut dumped = counts.dump::<u32, u64>().unwrap();
    dumped.sort();
    assert_eq!(dumped, keys.iter().map(|&k| (k, u64::from(k) * 10)).collect::<Vec<_>>());
    assert!(matches!(counts.dump_per_cpu::<u32, u64>(), Err(MapError::WrongType { .. })));
    let again = counts.update_batch(&keys[..1], &values[..1], UpdateFlags::NoExist).unwrap_err();
    assert!(
        matches!(&again, MapError::Syscall { source, .. } if source.raw_os_error() == Some(libc::EEXIST)),
        "{again}"
    );
    let mismatch = counts.update_batch(&keys, &values[..3], UpdateFlags::Any).unwrap_err();
    assert!(matches!(mismatch, MapError::BatchLength { keys: 40, values: 3, .. }), "{mismatch}");
    let full: Vec<u32> = (100..130).collect();
    let err = counts.update_batch(&full, &vec![0u64; full.len()], UpdateFlags::Any).unwrap_err();
    assert!(matches!(&err, MapError::Syscall { source, .. } if source.raw_os_error() == Some(libc::E2BIG)), "{err}");
}

fn load_error(program: &str) -> LoadError {
    let mut obj = Object::parse("test_errors", ERRORS_OBJ).unwrap();
    obj.program_mut(program).unwrap().set_autoload(true);
    obj.load().expect_err("the verifier must reject it")
}

#[test]
fn verifier_rejections_carry_the_log() {
    require_root!("loading BPF programs");
    let err = load_error("out_of_bounds");
    assert_eq!(err.errno(), Some(libc::EACCES));
    let msg = err.to_string();
    assert!(msg.contains("out_of_bounds") && msg.contains("verifier log"), "{msg}");
    assert!(err.verifier_log().unwrap().contains("invalid access to map value"), "{msg}");
}

#[test]
fn unguarded_missing_kfunc_is_explained() {
    require_root!("loading BPF programs");
    let msg = load_error("unguarded_kfunc").to_string();
    assert!(msg.contains("multiprobe_missing_kfunc") && msg.contains("bpf_ksym_exists"), "{msg}");
}

#[test]
fn unguarded_core_failure_is_explained() {
    require_root!("loading BPF programs");
    let msg = load_error("unguarded_core").to_string();
    assert!(msg.contains("multiprobe_no_such_field"), "{msg}");
    // Behind bpf_core_field_exists() the same read loads.
    let mut obj = Object::parse("test_errors", ERRORS_OBJ).unwrap();
    obj.program_mut("guarded_core").unwrap().set_autoload(true);
    obj.load().unwrap_or_else(|e| panic!("{e}"));
}
