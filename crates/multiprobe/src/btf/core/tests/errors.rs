//! Instructions that cannot be patched, malformed records and hostile BTF.

use super::*;

#[test]
fn ld_imm64_is_patched_in_both_slots_and_checked() {
    let mut l = B::default();
    let le = l.enumeration("e", 8, false, &[("A", 1)]);
    let mut t = B::default();
    t.enumeration("e", 8, false, &[("A", 0x1234_5678_9abc_def0)]);
    let relo = l.relo(le, "0", EnumvalValue);
    let mut insns = ld_imm64(1);
    run(&l, &t, &relo, &mut insns);
    assert_eq!(insns[0].imm as u32, 0x9abc_def0);
    assert_eq!(insns[1].imm as u32, 0x1234_5678);

    // A map-referencing ld_imm64 (src_reg set) or a lone first slot is refused.
    let mut insns = ld_imm64(1);
    insns[0].regs |= 0x10;
    let err = run_err(&l, &t, &relo, &mut insns);
    assert!(err.contains("ld_imm64"), "{err}");
    let err = run_err(&l, &t, &relo, &mut ld_imm64(1)[..1]);
    assert!(err.contains("ld_imm64"), "{err}");
    // The instruction must hold the local value.
    let err = run_err(&l, &t, &relo, &mut ld_imm64(2));
    assert!(err.contains("expected 1"), "{err}");
}

#[test]
fn offsets_must_fit_sixteen_bits() {
    let (mut l, ls, _, _) = moved();
    let mut t = B::default();
    let int = t.int("int", 4, true);
    t.strukt("s", 40_008, &[("a", int, 0), ("b", int, 40_000 * 8)]);
    let relo = l.relo(ls, "0:1", FieldByteOffset);
    let err = run_err(&l, &t, &relo, &mut [ldx(W, 4)]);
    assert_eq!(
        err,
        "CO-RE: struct s.b (byte_off, access 0:1): instruction #0 cannot be patched: the \
         target's offset 40000 does not fit the instruction's 16-bit offset"
    );
    // An ALU immediate takes it.
    let mut insns = [mov64(4)];
    run(&l, &t, &relo, &mut insns);
    assert_eq!(insns[0].imm, 40_000);
}

#[test]
fn instruction_checks() {
    let (mut l, ls, t, _) = moved();
    let relo = l.relo(ls, "0:1", FieldByteOffset);
    let err = run_err(&l, &t, &relo, &mut [ldx(W, 8)]);
    assert!(err.contains("its offset is 8, expected 4"), "{err}");
    let err = run_err(&l, &t, &relo, &mut [mov64(5)]);
    assert!(err.contains("its immediate is 5, expected 4"), "{err}");
    // r1 += r2: no immediate.
    let add_reg = Insn { code: 0x0f, regs: 0x21, off: 0, imm: 4 };
    let err = run_err(&l, &t, &relo, &mut [add_reg]);
    assert!(err.contains("register source"), "{err}");
    // A jump.
    let ja = Insn { code: 0x05, regs: 0, off: 4, imm: 0 };
    let err = run_err(&l, &t, &relo, &mut [ja]);
    assert!(err.contains("opcode 0x05"), "{err}");
    // Stores are patched like loads.
    let mut st = [Insn { code: 0x62, regs: 0x01, off: 4, imm: 7 }];
    run(&l, &t, &relo, &mut st);
    assert_eq!(st[0].off, 12);
    assert_eq!(st[0].imm, 7);
}

#[test]
fn malformed_access_strings_are_errors() {
    let (mut l, ls, t, _) = moved();
    let le = l.enumeration("e", 4, false, &[("A", 1)]);
    let deep = vec!["0"; 65].join(":");
    let cases: &[(u32, &str, CoreReloKind, &str)] = &[
        (ls, "", FieldByteOffset, "empty"),
        (ls, ":0", FieldByteOffset, "not a list"),
        (ls, "0:", FieldByteOffset, "not a list"),
        (ls, "0::1", FieldByteOffset, "not a list"),
        (ls, "a", FieldByteOffset, "not a list"),
        (ls, "-1", FieldByteOffset, "not a list"),
        (ls, "+1", FieldByteOffset, "not a list"),
        (ls, " 1", FieldByteOffset, "not a list"),
        (ls, "99999999999", FieldByteOffset, "too large"),
        (ls, "0:7", FieldByteOffset, "member 7 does not exist"),
        (ls, "0:1:0", FieldByteOffset, "neither members nor elements"),
        (ls, &deep, FieldByteOffset, "more than 64"),
        (ls, "1", TypeSize, "type-based"),
        (ls, "0:0", TypeExists, "type-based"),
        (le, "0:1", EnumvalValue, "exactly one index"),
        (le, "5", EnumvalValue, "enumerator 5 does not exist"),
        (ls, "0", EnumvalValue, "not an enum"),
    ];
    for &(id, access, kind, want) in cases {
        let relo = l.relo(id, access, kind);
        let err = run_err(&l, &t, &relo, &mut [mov64(0)]);
        assert!(err.contains("invalid access string"), "{access:?}: {err}");
        assert!(err.contains(want), "{access:?}: {err}");
    }
    let mut relo = l.relo(ls, "0:1", FieldByteOffset);
    relo.access_str_off = 1 << 30;
    let err = run_err(&l, &t, &relo, &mut [mov64(0)]);
    assert!(err.contains("outside the BTF strings"), "{err}");
    relo.access_str_off = l.btf.add_string("0:1");
    relo.type_id = 1 << 20;
    assert!(run_err(&l, &t, &relo, &mut [mov64(0)]).contains("does not exist"));
    let relo = CoreRelo { kind: CoreReloKind::Unknown(77), ..l.relo(ls, "0:1", FieldByteOffset) };
    let err = run_err(&l, &t, &relo, &mut [mov64(0)]);
    assert_eq!(err, "CO-RE: struct s (unknown, access 0:1): unknown relocation kind 77");
}

#[test]
fn array_kinds_that_need_a_field_are_errors() {
    let (mut l, ls, t) = arrays(8);
    let relo = l.relo(ls, "0:1:2", FieldLshiftU64);
    let err = run_err(&l, &t, &relo, &mut [mov64(0)]);
    assert!(err.contains("cannot be applied to an array element"), "{err}");
}

/// Target BTF whose anonymous member contains itself: matching must stop, not recurse.
#[test]
fn self_referencing_target_does_not_hang() {
    let (mut l, ls, _, _) = moved();
    let mut t = B::default();
    // [1] struct s { <anon [2]> }, [2] anonymous struct containing itself.
    t.strukt("s", 4, &[("", 2, 0)]);
    t.strukt("", 4, &[("", 2, 0)]);
    let relo = l.relo(ls, "0:1", FieldByteOffset);
    let err = run_err(&l, &t, &relo, &mut [ldx(W, 4)]);
    assert!(err.contains("more than 64 levels"), "{err}");

    // Pointer and array loops in compatibility checks.
    let mut t = B::default();
    t.add("", false, TypeKind::Ptr { target: 1 });
    let mut l2 = B::default();
    l2.add("", false, TypeKind::Ptr { target: 1 });
    assert!(types_are_compat(&l2.btf, 1, &t.btf, 1).is_err());
    assert!(types_match(&l2.btf, 1, &t.btf, 1).is_err());
}

/// Every combination of kinds, ids and odd access strings against odd BTF: errors are fine,
/// panics are not.
#[test]
fn no_panics_on_arbitrary_records() {
    let (mut l, _, t, _) = moved();
    // Extra local types of every shape to start from.
    let int = 1;
    let arr = l.array(int, 0);
    let bad_arr = l.add("", false, TypeKind::Array { elem: 999, index: 1, nelems: 2 });
    let fwd = l.add("s", false, TypeKind::Fwd { is_union: false });
    let en = l.enumeration("s", 4, false, &[("A", 1)]);
    let zero_bits = l.strukt_bits("s", 4, &[("a", arr, 0, 3), ("b", 999, 0, 0)]);
    let proto = l.proto(int, &[int]);
    let loop_td = l.typedef("s", 0);
    if let TypeKind::Typedef { target } = &mut l.btf.type_mut(loop_td).unwrap().kind {
        *target = loop_td;
    }
    let mut t = t;
    let huge = t.array(1, u32::MAX);
    t.strukt("s", 0, &[("a", huge, u32::MAX >> 8), ("b", 999, 0)]);
    t.strukt_bits("s", 4, &[("a", 1, 60, 200), ("b", 1, 0, 0)]);
    t.enumeration("s", 4, false, &[]);

    let accesses = ["0", "1", "0:0", "0:1", "0:0:0", "0:1:1", "0:2", "4294967295", "2147483647:1", "0:0:5"];
    let insn_shapes = [vec![mov64(0)], vec![ldx(W, 0)], ld_imm64(0).to_vec(), vec![ld_imm64(0)[0]]];
    let max_id = l.btf.len() + 2;
    for id in 0..max_id {
        for access in accesses {
            for kind in 0..14 {
                for shape in &insn_shapes {
                    let relo = l.relo(id, access, CoreReloKind::from_u32(kind));
                    let mut insns = shape.clone();
                    let _ = relocate(&l.btf, &t.btf, &relo, &mut insns);
                }
            }
        }
    }
    let _ = (bad_arr, fwd, en, zero_bits, proto);
}
