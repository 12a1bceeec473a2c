use super::*;

const LOADER_OBJ: &[u8] = include_bytes!("../../../../bpf/test_loader.bpf.o");

fn loader_obj() -> Object {
    Object::parse("test_loader", LOADER_OBJ).expect("committed test object parses")
}

#[test]
fn programs_are_found_with_their_kinds() {
    let obj = loader_obj();
    let kinds: Vec<(&str, ProgramKind, Option<&str>, bool)> =
        obj.programs().map(|p| (p.name(), p.kind().unwrap(), p.attach_target(), p.autoload())).collect();
    assert!(kinds.contains(&("count_packets", ProgramKind::SocketFilter, None, true)));
    assert!(kinds.contains(&("on_getppid", ProgramKind::Tracepoint, Some("syscalls/sys_enter_getppid"), true)));
    assert!(kinds.contains(&("kern_ctx_len", ProgramKind::SocketFilter, None, false)));
    assert!(kinds.contains(&("kprobe_prog", ProgramKind::Kprobe, Some("do_nanosleep"), true)));
    assert!(kinds.contains(&("multi_prog", ProgramKind::KprobeMulti, Some("vfs_rea?"), true)));
    assert!(kinds.contains(&("raw_tp_prog", ProgramKind::RawTracepoint, Some("sys_enter"), true)));
    // Subprograms in .text are not programs.
    assert!(obj.program("scale").is_none());
    assert!(obj.program("global_add").is_none());
    assert_eq!(obj.license(), "Dual MIT/GPL");
}

#[test]
fn maps_are_read_from_btf_and_data_sections() {
    let obj = loader_obj();
    let counts = obj.map("counts").unwrap();
    assert_eq!(
        (counts.map_type(), counts.key_size(), counts.value_size(), counts.max_entries()),
        (MapType::Hash, 4, 8, 64)
    );
    assert_eq!(obj.map("events").unwrap().map_type(), MapType::Ringbuf);
    assert_eq!(obj.map("pinned_counter").unwrap().pinning(), Pinning::ByName);
    let outer = obj.map("outer").unwrap();
    assert_eq!(outer.map_type(), MapType::ArrayOfMaps);
    assert_eq!(outer.inner().unwrap().map_type(), MapType::Array);
    assert_eq!(outer.slots, vec![(0, "inner_a".to_string()), (1, "inner_b".to_string())]);
    for (name, read_only) in [(".rodata", true), (".data", false), (".bss", false), (".data.custom", false)] {
        let m = obj.map(name).unwrap_or_else(|| panic!("{name} map"));
        assert_eq!(m.origin(), &MapOrigin::GlobalData { read_only }, "{name}");
        assert_eq!(m.max_entries(), 1);
    }
}

#[test]
fn globals_can_be_set_before_load() {
    let mut obj = loader_obj();
    assert_eq!(obj.global_bytes("cfg_multiplier").unwrap(), &1u32.to_le_bytes());
    obj.set_global("cfg_multiplier", &3u32).unwrap();
    assert_eq!(obj.global_bytes("cfg_multiplier").unwrap(), &3u32.to_le_bytes());
    obj.set_global("bss_total", &9u64).unwrap();
    assert_eq!(obj.global_bytes("data_counter").unwrap(), &5i32.to_le_bytes());
    assert!(matches!(
        obj.set_global("cfg_multiplier", &1u64),
        Err(ObjectError::GlobalSize { expected: 4, got: 8, .. })
    ));
    let err = obj.set_global("no_such_var", &1u32).unwrap_err();
    assert!(err.to_string().contains("cfg_multiplier"), "{err}");
}

#[test]
fn relocations_are_classified() {
    let obj = loader_obj();
    let socket = obj.sections.iter().find(|s| s.name == "socket").unwrap();
    let relocs: Vec<&Reloc> = socket.relocs.values().collect();
    assert!(relocs.iter().any(|r| matches!(r, Reloc::Map { .. })));
    assert!(relocs.iter().any(|r| matches!(r, Reloc::Data { .. })));
    assert!(relocs.iter().any(|r| matches!(r, Reloc::Code { .. })));
    assert!(relocs.iter().any(|r| matches!(r, Reloc::Extern { weak: true, .. })));
}

#[test]
fn malformed_objects_are_errors_not_panics() {
    for len in (0..LOADER_OBJ.len()).step_by(97) {
        let _ = Object::parse("t", &LOADER_OBJ[..len]);
    }
    // Flip bytes all over the object: every outcome is fine but a panic.
    for i in (0..LOADER_OBJ.len()).step_by(13) {
        let mut bytes = LOADER_OBJ.to_vec();
        bytes[i] ^= 0xff;
        let _ = Object::parse("t", &bytes);
    }
    assert!(matches!(Object::parse("t", b"not an elf"), Err(ObjectError::Elf(_))));
}

#[test]
fn wrong_machine_is_named() {
    let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    let err = Object::parse("t", &exe).unwrap_err();
    assert!(matches!(err, ObjectError::NotBpf { .. }), "{err}");
    assert!(err.to_string().contains("X86_64"), "{err}");
}

const INVALID_SECTION: &[u8] = include_bytes!("../../../../bpf/test_invalid_section.bpf.o");

#[test]
fn unknown_sections_open_with_programs_of_no_kind() {
    let obj = Object::parse("t", INVALID_SECTION).expect("an unknown section name does not stop open");
    let p = obj.program("misplaced").unwrap();
    assert_eq!(
        (p.kind(), p.section_name(), p.attach_target(), p.autoload()),
        (None, "kprobe_typo/vfs_read", None, true)
    );
    let mut obj = obj;
    let p = obj.program_mut("misplaced").unwrap();
    p.set_kind(ProgramKind::Kprobe).set_attach_target("vfs_read");
    assert_eq!(
        (p.kind(), p.attach_target(), p.expected_attach_type()),
        (Some(ProgramKind::Kprobe), Some("vfs_read"), 0)
    );
}

#[test]
fn own_section_names_give_kinds_at_open() {
    let opts = OpenOptions::new().section_handler(SectionHandler::new("kprobe_typo+", ProgramKind::Kprobe));
    let obj = Object::parse_with("t", INVALID_SECTION, &opts).unwrap();
    let p = obj.program("misplaced").unwrap();
    assert_eq!((p.kind(), p.attach_target()), (Some(ProgramKind::Kprobe), Some("vfs_read")));
}

#[test]
fn legacy_maps_are_refused_with_the_way_out() {
    let err = Object::parse("t", include_bytes!("../../../../bpf/test_legacy_maps.bpf.o")).unwrap_err();
    assert!(matches!(err, ObjectError::LegacyMaps), "{err}");
    assert!(err.to_string().contains("SEC(\".maps\")"), "{err}");
}

#[test]
fn a_relocation_outside_its_section_is_an_error() {
    use ::object::{Object as _, ObjectSection};
    // Point the first relocation of the `socket` section past the section's end.
    let file = ::object::File::parse(LOADER_OBJ).unwrap();
    let rel = file.sections().find(|s| s.name() == Ok(".relsocket")).unwrap();
    let (offset, _) = rel.file_range().unwrap();
    let mut bytes = LOADER_OBJ.to_vec();
    let at = offset as usize; // Elf64_Rel.r_offset, little-endian
    bytes[at..at + 8].copy_from_slice(&0x10_0000u64.to_le_bytes());
    let err = Object::parse("t", &bytes).unwrap_err();
    assert!(matches!(&err, ObjectError::BadRelocation { section, .. } if section == "socket"), "{err}");
}

#[test]
fn kconfig_map_is_read_only_and_frozen_like_rodata() {
    // libbpf's .kconfig map is read-only to programs and frozen, so the verifier reads
    // `LINUX_KERNEL_VERSION` as a constant and skips code guarded for other kernels (bcc's
    // biosnoop and bitesize fail to verify otherwise).
    let obj = Object::parse("test_tracing", include_bytes!("../../../../bpf/test_tracing.bpf.o")).unwrap();
    let kconfig = obj.map(".kconfig").expect("the .kconfig map");
    assert_eq!(kconfig.origin(), &MapOrigin::GlobalData { read_only: true });
    assert_eq!(kconfig.flags() & crate::sys::MAP_F_RDONLY_PROG, crate::sys::MAP_F_RDONLY_PROG);
}
