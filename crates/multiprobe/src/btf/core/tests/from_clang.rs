//! Relocating what clang really emits: `bpf/test_core.bpf.o`, against its own BTF (no kernel
//! needed) and against the running kernel's, checked against that BTF walked by hand.

use std::collections::HashMap;
use std::time::Instant;

use ::object::{Object, ObjectSection};

use super::*;
use crate::btf::{BtfExt, kernel, kind};

const OBJ: &[u8] = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../bpf/test_core.bpf.o"));
const PROG_SECTION: &str = "tracepoint/syscalls/sys_enter_getpid";

struct Fixture {
    btf: Btf,
    insns: Vec<Insn>,
    relos: Vec<CoreRelo>,
}

fn fixture() -> Fixture {
    let file = ::object::File::parse(OBJ).expect("parsing test_core.bpf.o");
    let section = |name: &str| {
        file.section_by_name(name)
            .and_then(|s| s.data().ok())
            .unwrap_or_else(|| panic!("test_core.bpf.o has no {name} section"))
    };
    let btf = Btf::parse(section(".BTF")).expect(".BTF");
    let ext = BtfExt::parse(section(".BTF.ext"), &btf).expect(".BTF.ext");
    let insns: Vec<Insn> = section(PROG_SECTION).chunks_exact(8).map(bytemuck::pod_read_unaligned).collect();
    let relos = ext.core_relos.section(PROG_SECTION).to_vec();
    assert!(relos.len() > 30, "only {} CO-RE records", relos.len());
    Fixture { btf, insns, relos }
}

/// A record as the tests name it: local root type name, access string, kind.
fn key(btf: &Btf, r: &CoreRelo) -> (String, String, CoreReloKind) {
    (btf.name(r.type_id).to_string(), btf.string_at(r.access_str_off).unwrap().to_string(), r.kind)
}

/// Against its own BTF every value clang wrote must check out; only bitfield loads (where
/// libbpf and clang pick different but equivalent loads) and flavored types change.
#[test]
fn object_relocates_against_its_own_btf() {
    let f = fixture();
    let mut insns = f.insns.clone();
    let mut r = CoreRelocator::new(&f.btf, &f.btf);
    for relo in &f.relos {
        let (name, access, kind) = key(&f.btf, relo);
        let outcome = r.relocate(relo, &mut insns).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(outcome, CoreOutcome::Applied, "{name} {access} {kind:?}");
    }
    let changed: Vec<usize> = (0..insns.len()).filter(|&i| insns[i] != f.insns[i]).collect();
    for &i in &changed {
        let relo = f.relos.iter().find(|r| r.insn_off as usize == i * 8);
        let (name, access, kind) = key(&f.btf, relo.expect("only relocated insns change"));
        let bitfield = name == "task_struct" && access == "0:4";
        let type_id = kind == CoreReloKind::TypeIdTarget;
        assert!(bitfield || type_id, "insn {i} ({name} {access} {kind:?}) changed: {:?} -> {:?}", f.insns[i], insns[i]);
    }
}

/// What the kernel's BTF says about a field, found by hand: (bit offset, bitfield size,
/// type id), searching anonymous members like C does.
fn find_field(btf: &Btf, id: u32, name: &str) -> Option<(u32, u32, u32)> {
    let t = btf.type_by_id(btf.skip_modifiers(id).ok()?).ok()?;
    for m in t.kind.members() {
        let off = m.bit_offset(t.kind_flag);
        let bits = m.bitfield_size(t.kind_flag);
        let mname = btf.string_at(m.name_off).unwrap_or("");
        if mname == name {
            return Some((off, bits, m.type_id));
        }
        if mname.is_empty()
            && let Some((o, b, ty)) = find_field(btf, m.type_id, name)
        {
            return Some((off + o, b, ty));
        }
    }
    None
}

fn struct_id(btf: &Btf, name: &str) -> u32 {
    btf.find_by_name_kind(name, kind::STRUCT).unwrap_or_else(|| panic!("kernel BTF has no struct {name}"))
}

fn enum_value(btf: &Btf, enum_name: &str, value: &str) -> Option<u64> {
    let id = btf
        .ids_by_name(enum_name)
        .iter()
        .copied()
        .find(|&id| matches!(btf.type_by_id(id).unwrap().kind, TypeKind::Enum { .. }))?;
    let TypeKind::Enum { values, .. } = &btf.type_by_id(id).unwrap().kind else { unreachable!() };
    values.iter().find(|v| btf.string_at(v.name_off).ok() == Some(value)).map(|v| v.value)
}

/// Relocated instructions, and outcomes by record.
struct Relocated {
    insns: Vec<Insn>,
    by_key: HashMap<(String, String, CoreReloKind), Vec<(usize, CoreOutcome)>>,
}

impl Relocated {
    /// The records of this key (root type, access, kind): instruction index and outcome.
    fn get(&self, name: &str, access: &str, kind: CoreReloKind) -> &[(usize, CoreOutcome)] {
        let v = self
            .by_key
            .get(&(name.to_string(), access.to_string(), kind))
            .unwrap_or_else(|| panic!("no record {name} {access} {kind:?}"));
        assert!(!v.is_empty());
        v
    }

    /// The value an applied relocation put in: the offset of loads and stores, else the
    /// immediate (64-bit for `ld_imm64`).
    fn value(&self, name: &str, access: &str, kind: CoreReloKind) -> Vec<u64> {
        self.get(name, access, kind)
            .iter()
            .map(|(i, outcome)| {
                assert_eq!(*outcome, CoreOutcome::Applied, "{name} {access} {kind:?}");
                let insn = self.insns[*i];
                match insn.code & 0x07 {
                    0x01..=0x03 => insn.off as u64,
                    0x00 => u64::from(insn.imm as u32) | u64::from(self.insns[i + 1].imm as u32) << 32,
                    _ => insn.imm as i64 as u64,
                }
            })
            .collect()
    }

    fn one(&self, name: &str, access: &str, kind: CoreReloKind) -> u64 {
        let v = self.value(name, access, kind);
        assert!(v.iter().all(|x| *x == v[0]), "{name} {access}: {v:?}");
        v[0]
    }

    fn poisoned(&self, name: &str, access: &str, kind: CoreReloKind) -> Vec<String> {
        self.get(name, access, kind)
            .iter()
            .map(|(i, outcome)| {
                let CoreOutcome::Poisoned { reason } = outcome else {
                    panic!("{name} {access} {kind:?} not poisoned: {outcome:?}");
                };
                assert_eq!(self.insns[*i].code, 0x85);
                assert_eq!(self.insns[*i].imm, POISON_HELPER_ID);
                reason.clone()
            })
            .collect()
    }
}

fn relocate_all(f: &Fixture, target: &Btf) -> Relocated {
    let mut insns = f.insns.clone();
    let mut by_key: HashMap<_, Vec<_>> = HashMap::new();
    let mut r = CoreRelocator::new(&f.btf, target);
    for relo in &f.relos {
        let outcome = r.relocate(relo, &mut insns).unwrap_or_else(|e| panic!("{e}"));
        by_key.entry(key(&f.btf, relo)).or_default().push(((relo.insn_off / 8) as usize, outcome));
    }
    Relocated { insns, by_key }
}

#[test]
fn object_relocates_against_the_running_kernel() {
    testkit::require_config!("CONFIG_DEBUG_INFO_BTF", "kernel BTF for CO-RE");
    let vmlinux = kernel::vmlinux()
        .unwrap_or_else(|e| panic!("CONFIG_DEBUG_INFO_BTF is not known to be off, but kernel BTF is unreadable: {e}"));
    let k: &Btf = &vmlinux;
    let f = fixture();
    let out = relocate_all(&f, k);
    use CoreReloKind::*;

    let task = struct_id(k, "task_struct");
    let field = |name: &str| find_field(k, task, name).unwrap_or_else(|| panic!("no {name}"));
    let byte = |name: &str| u64::from(field(name).0 / 8);

    // Plain loads moved to the kernel's offsets.
    for (access, name) in [("0:0", "tgid"), ("0:1", "pid"), ("0:3", "flags"), ("0:6", "real_parent"), ("0:7", "mm")] {
        assert_eq!(out.one("task_struct", access, FieldByteOffset), byte(name), "{name}");
    }
    // &task->comm[3], as an ALU immediate; comm's size.
    assert_eq!(out.one("task_struct", "0:2:3", FieldByteOffset), byte("comm") + 3);
    let comm_type = field("comm").2;
    assert_eq!(out.one("task_struct", "0:2", FieldByteSize), u64::from(k.resolve_size(comm_type).unwrap()));
    assert_eq!(out.one("task_struct", "0:1", FieldSigned), 1, "pid_t");
    assert_eq!(out.one("task_struct", "0:3", FieldSigned), 0, "unsigned flags");
    assert_eq!(out.one("task_struct", "0:1", FieldExists), 1);

    // The bitfield: extract it from a fake task image the way the program does. (A kernel
    // without in_execve gets every bitfield relocation poisoned.)
    let bitfield_kinds = [FieldByteOffset, FieldByteSize, FieldLshiftU64, FieldRshiftU64, FieldSigned];
    let in_execve = find_field(k, task, "in_execve");
    match in_execve {
        Some((bit, bits, _)) => {
            assert_eq!(bits, 1, "in_execve is a 1-bit bitfield");
            let off = out.one("task_struct", "0:4", FieldByteOffset) as usize;
            let size = out.one("task_struct", "0:4", FieldByteSize) as usize;
            let lshift = out.one("task_struct", "0:4", FieldLshiftU64);
            let rshift = out.one("task_struct", "0:4", FieldRshiftU64);
            assert_eq!(out.one("task_struct", "0:4", FieldSigned), 0);
            for set in [true, false] {
                let fill = if set { 0u8 } else { 0xff };
                let mut image = vec![fill; k.resolve_size(task).unwrap() as usize];
                let (byte_i, mask) = ((bit / 8) as usize, 1u8 << (bit % 8));
                if set {
                    image[byte_i] |= mask;
                } else {
                    image[byte_i] &= !mask;
                }
                let mut v = [0u8; 8];
                v[..size].copy_from_slice(&image[off..off + size]);
                let read = (u64::from_le_bytes(v) << lshift) >> rshift;
                assert_eq!(read, u64::from(set), "in_execve read back");
            }
        }
        None => {
            for kind in bitfield_kinds {
                out.poisoned("task_struct", "0:4", kind);
            }
        }
    }

    // mm_struct: fields inside the kernel's anonymous struct; task_size (a 4-byte unsigned
    // int locally, unsigned long in the kernel) gets a widened load.
    let mm = struct_id(k, "mm_struct");
    let mm_byte = |name: &str| u64::from(find_field(k, mm, name).unwrap().0 / 8);
    assert_eq!(out.one("mm_struct", "0:0", FieldByteOffset), mm_byte("task_size"));
    let (i, _) = out.get("mm_struct", "0:0", FieldByteOffset)[0];
    assert_eq!(out.insns[i].code, 0x79, "task_size load resized to 8 bytes");
    assert_eq!(out.one("mm_struct", "0:1", FieldByteOffset), mm_byte("map_count"));
    // The flexible array is gone from 7.x's mm_struct: its relocation is poisoned there.
    match find_field(k, mm, "cpu_bitmap") {
        Some(_) => {
            assert_eq!(
                out.one("mm_struct", "0:2:1", FieldByteOffset),
                mm_byte("cpu_bitmap") + 8,
                "flexible array element"
            )
        }
        None => {
            out.poisoned("mm_struct", "0:2:1", FieldByteOffset);
        }
    }

    // A field no kernel has: exists is 0 and the guarded load is poisoned.
    assert!(out.value("task_struct", "0:8", FieldExists).iter().all(|v| *v == 0));
    for reason in out.poisoned("task_struct", "0:8", FieldByteOffset) {
        assert!(
            reason.contains("task_struct.multiprobe_no_such_field")
                && reason.contains("has no field multiprobe_no_such_field"),
            "{reason}"
        );
    }

    // Flavors: one of __state / state exists, depending on the kernel.
    let has_new = find_field(k, task, "__state").is_some();
    assert_eq!(out.one("task_struct___new", "0:0", FieldExists), u64::from(has_new));
    if has_new {
        assert_eq!(out.one("task_struct___new", "0:0", FieldByteOffset), byte("__state"));
    }
    let has_old = find_field(k, task, "state").is_some();
    if has_old {
        assert_eq!(out.one("task_struct___old", "0:0", FieldByteOffset), byte("state"));
    } else {
        out.poisoned("task_struct___old", "0:0", FieldByteOffset);
    }

    // Types.
    assert_eq!(out.one("task_struct", "0", TypeExists), 1);
    assert_eq!(out.one("task_struct", "0", TypeSize), u64::from(k.resolve_size(task).unwrap()));
    assert_eq!(out.one("task_struct", "0", TypeIdTarget), u64::from(task));
    let local_task = f.btf.find_by_name_kind("task_struct", kind::STRUCT).unwrap();
    assert_eq!(out.one("task_struct", "0", TypeIdLocal), u64::from(local_task));
    assert_eq!(out.one("mm_struct", "0", TypeSize), u64::from(k.resolve_size(mm).unwrap()));
    assert_eq!(out.one("multiprobe_no_such_type", "0", TypeExists), 0);

    // Enums.
    assert_eq!(out.one("pid_type", "1", EnumvalValue), enum_value(k, "pid_type", "PIDTYPE_SID").unwrap());
    assert_eq!(out.one("pid_type", "2", EnumvalExists), 1);
    assert!(out.value("pid_type", "3", EnumvalExists).iter().all(|v| *v == 0));
    for reason in out.poisoned("pid_type", "3", EnumvalValue) {
        assert!(reason.contains("has no enumerator MULTIPROBE_PIDTYPE_NONE"), "{reason}");
    }
    let has_rmp = enum_value(k, "x86_pf_error_code", "X86_PF_RMP");
    match has_rmp {
        // An unsigned enumerator with bit 31 set: zero-extended, as clang wrote it.
        Some(v) => assert_eq!(out.one("x86_pf_error_code", "1", EnumvalValue), v),
        None => {
            out.poisoned("x86_pf_error_code", "1", EnumvalValue);
        }
    }

    // Nothing else was poisoned.
    let mut poisoned: Vec<String> = out
        .by_key
        .iter()
        .filter(|(_, v)| v.iter().any(|(_, o)| matches!(o, CoreOutcome::Poisoned { .. })))
        .map(|(k, _)| format!("{} {} {}", k.0, k.1, k.2.as_str()))
        .collect();
    poisoned.sort();
    let mut expected = vec!["pid_type 3 enumval_value".to_string(), "task_struct 0:8 byte_off".to_string()];
    if !has_old {
        expected.push("task_struct___old 0:0 byte_off".into());
    }
    if !has_new {
        expected.push("task_struct___new 0:0 byte_off".into());
    }
    if has_rmp.is_none() {
        expected.push("x86_pf_error_code 1 enumval_value".into());
    }
    if in_execve.is_none() {
        expected.extend(bitfield_kinds.map(|k| format!("task_struct 0:4 {}", k.as_str())));
    }
    if find_field(k, mm, "cpu_bitmap").is_none() {
        expected.push("mm_struct 0:2:1 byte_off".into());
    }
    expected.sort();
    assert_eq!(poisoned, expected);
}

/// Times relocation against kernel BTF, to report rather than to check:
/// `cargo test --release -p multiprobe core_timing -- --ignored --nocapture`.
#[test]
#[ignore = "timing report, run by hand in release mode"]
fn core_timing_against_the_running_kernel() {
    testkit::require_config!("CONFIG_DEBUG_INFO_BTF", "kernel BTF for CO-RE");
    let t0 = Instant::now();
    let data = std::fs::read(kernel::VMLINUX_BTF).expect("reading kernel BTF");
    let k = Btf::parse(&data).expect("parsing kernel BTF");
    let parsed = t0.elapsed();
    let f = fixture();

    // 50 records: the object's, then its first ones again on fresh instructions.
    let n = f.relos.len();
    let t1 = Instant::now();
    let mut insns = f.insns.clone();
    let mut r = CoreRelocator::new(&f.btf, &k);
    r.relocate(&f.relos[0], &mut insns).unwrap();
    let first = t1.elapsed();
    let t2 = Instant::now();
    for i in 1..50 {
        if i % n == 0 {
            insns = f.insns.clone();
        }
        r.relocate(&f.relos[i % n], &mut insns).unwrap();
    }
    let rest = t2.elapsed();

    // The plain function repeats the candidate scan each time (the name index stays).
    let t3 = Instant::now();
    for i in 0..50 {
        if i % n == 0 {
            insns = f.insns.clone();
        }
        relocate(&f.btf, &k, &f.relos[i % n], &mut insns).unwrap();
    }
    let plain = t3.elapsed();
    eprintln!(
        "CO-RE timing ({} types in kernel BTF): read+parse {parsed:?}; CoreRelocator: first \
         record {first:?} (builds the name indexes), 49 more {rest:?}; 50 with relocate() \
         {plain:?}",
        k.len(),
    );
}
