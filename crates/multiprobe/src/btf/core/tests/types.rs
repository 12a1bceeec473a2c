//! Type and enum relocations, the compatibility relations, and candidate ambiguity.

use super::*;

#[test]
fn enum_values_changed_missing_and_signed() {
    let mut l = B::default();
    let le = l.enumeration("e", 4, false, &[("A", 1), ("B", 2), ("GONE", 3)]);
    let mut t = B::default();
    t.enumeration("e", 4, false, &[("B", 7), ("A", 9), ("HIGH", 0x8000_0000)]);

    let relo = l.relo(le, "1", EnumvalValue);
    let mut insns = ld_imm64(2);
    run(&l, &t, &relo, &mut insns);
    assert_eq!(imm64(&insns), 7);

    let relo = l.relo(le, "2", EnumvalExists);
    let mut insns = ld_imm64(1);
    run(&l, &t, &relo, &mut insns);
    assert_eq!(imm64(&insns), 0);
    let relo = l.relo(le, "0", EnumvalExists);
    let mut insns = ld_imm64(1);
    run(&l, &t, &relo, &mut insns);
    assert_eq!(imm64(&insns), 1);

    let relo = l.relo(le, "2", EnumvalValue);
    let mut insns = ld_imm64(3);
    let reason = poison_reason(run(&l, &t, &relo, &mut insns));
    assert!(is_poison(&insns[0]) && is_poison(&insns[1]), "both slots");
    assert_eq!(reason, "enum e::GONE (enumval_value, access 2): the target's enum e has no enumerator GONE");

    // Unsigned 32-bit values zero-extend, signed ones sign-extend, 64-bit ones are whole.
    let mut l = B::default();
    let lh = l.enumeration("e", 4, false, &[("HIGH", 0x8000_0000)]);
    let ls = l.enumeration("s", 4, true, &[("NEG", -1)]);
    let l64 = l.enumeration("w", 8, false, &[("BIG", 1 << 40)]);
    let mut t = B::default();
    t.enumeration("e", 4, false, &[("HIGH", 0x9000_0000)]);
    t.enumeration("s", 4, true, &[("NEG", -5)]);
    t.enumeration("w", 8, false, &[("BIG", 1 << 41)]);
    for (id, local, want) in [(lh, 0x8000_0000, 0x9000_0000), (ls, u64::MAX, -5i64 as u64), (l64, 1 << 40, 1 << 41)] {
        let relo = l.relo(id, "0", EnumvalValue);
        let mut insns = ld_imm64(local);
        run(&l, &t, &relo, &mut insns);
        assert_eq!(imm64(&insns), want);
    }

    // ENUM and ENUM64 are candidates for each other.
    let mut t = B::default();
    t.enumeration("e", 8, false, &[("HIGH", 1 << 33)]);
    let relo = l.relo(lh, "0", EnumvalValue);
    let mut insns = ld_imm64(0x8000_0000);
    run(&l, &t, &relo, &mut insns);
    assert_eq!(imm64(&insns), 1 << 33);
}

#[test]
fn type_size_exists_and_ids() {
    let (mut l, ls, t, ts) = moved();
    let relo = l.relo(ls, "0", TypeSize);
    let mut insns = [mov64(8)];
    run(&l, &t, &relo, &mut insns);
    assert_eq!(insns[0].imm, 16);

    let relo = l.relo(ls, "0", TypeExists);
    let mut insns = [mov64(1)];
    run(&l, &t, &relo, &mut insns);
    assert_eq!(insns[0].imm, 1);

    let relo = l.relo(ls, "0", TypeIdTarget);
    let mut insns = ld_imm64(u64::from(ls));
    run(&l, &t, &relo, &mut insns);
    assert_eq!(imm64(&insns), u64::from(ts));

    // Local ids need no target and are not checked against the instruction.
    let relo = l.relo(ls, "0", TypeIdLocal);
    let mut insns = ld_imm64(999);
    run(&l, &B::default(), &relo, &mut insns);
    assert_eq!(imm64(&insns), u64::from(ls));

    // A missing type: exists and sizes are 0, not poisoned.
    let empty = B::default();
    for kind in [TypeExists, TypeSize, TypeIdTarget, TypeMatches] {
        let relo = l.relo(ls, "0", kind);
        let mut insns = ld_imm64(if kind == TypeSize { 8 } else { 1 });
        assert_eq!(run(&l, &empty, &relo, &mut insns), CoreOutcome::Applied);
        assert_eq!(imm64(&insns), 0, "{kind:?}");
    }

    // A struct and a union of the same name are not the same type.
    let mut t = B::default();
    let int = t.int("int", 4, true);
    t.union("s", 4, &[("a", int, 0)]);
    let relo = l.relo(ls, "0", TypeExists);
    let mut insns = [mov64(1)];
    run(&l, &t, &relo, &mut insns);
    assert_eq!(insns[0].imm, 0);
}

#[test]
fn type_matches_is_strict() {
    let mut l = B::default();
    let int = l.int("int", 4, true);
    let ls = l.strukt("s", 4, &[("a", int, 0)]);
    let long = l.int("long", 8, true);
    let lw = l.strukt("w", 8, &[("a", long, 0)]);

    let mut t = B::default();
    let int = t.int("int", 4, true);
    let long = t.int("long", 8, true);
    t.strukt("s", 16, &[("b", long, 0), ("a", int, 64)]);
    t.strukt("w", 4, &[("a", int, 0)]);

    let relo = l.relo(ls, "0", TypeMatches);
    let mut insns = [mov64(1)];
    run(&l, &t, &relo, &mut insns);
    assert_eq!(insns[0].imm, 1, "extra target members are fine");

    let relo = l.relo(lw, "0", TypeMatches);
    let mut insns = [mov64(1)];
    run(&l, &t, &relo, &mut insns);
    assert_eq!(insns[0].imm, 0, "long is not int");

    let relo = l.relo(lw, "0", TypeExists);
    let mut insns = [mov64(1)];
    run(&l, &t, &relo, &mut insns);
    assert_eq!(insns[0].imm, 1, "but the relaxed check accepts it");
}

#[test]
fn types_match_pointers_forward_declarations_and_enums() {
    let mut l = B::default();
    let fwd = l.add("node", false, TypeKind::Fwd { is_union: false });
    let p = l.ptr(fwd);
    let ls = l.strukt("list", 8, &[("head", p, 0)]);
    let le = l.enumeration("e", 4, false, &[("A", 1)]);

    let mut t = B::default();
    let int = t.int("int", 4, true);
    let node = t.strukt("node", 4, &[("v", int, 0)]);
    let p = t.ptr(node);
    let ts = t.strukt("list", 8, &[("head", p, 0)]);
    let te = t.enumeration("e", 4, false, &[("B", 5), ("A", 7)]);
    let te8 = t.enumeration("e", 8, false, &[("A", 7)]);

    assert!(types_match(&l.btf, ls, &t.btf, ts).unwrap(), "fwd behind a ptr");
    assert!(types_match(&l.btf, le, &t.btf, te).unwrap(), "names, not values");
    assert!(!types_match(&l.btf, le, &t.btf, te8).unwrap(), "sizes differ");
    assert!(!types_match(&l.btf, fwd, &t.btf, node).unwrap(), "not behind a ptr");
}

#[test]
fn types_are_compat_for_kfunc_prototypes() {
    let mut l = B::default();
    let int = l.int("int", 4, true);
    let u64_ = l.int("u64", 8, false);
    let s = l.strukt("task_struct", 0, &[]);
    let ps = l.ptr(s);
    let td = l.typedef("pid_t", int);
    let p2 = l.proto(int, &[ps, td]);
    let p1 = l.proto(int, &[ps]);
    let pint = l.ptr(int);
    let p_wrong = l.proto(int, &[pint, td]);

    let mut t = B::default();
    let int_t = t.int("int", 4, true);
    let long = t.int("long", 8, true);
    let ts = t.strukt("task_struct", 64, &[("pid", int_t, 0)]);
    let pts = t.ptr(ts);
    let kp = t.proto(long, &[pts, long]);
    let bitint = t.add("int", false, TypeKind::Int { size: 4, encoding: int_encoding::SIGNED, bit_offset: 3, bits: 4 });

    assert!(types_are_compat(&l.btf, p2, &t.btf, kp).unwrap(), "ints of any size");
    assert!(!types_are_compat(&l.btf, p1, &t.btf, kp).unwrap(), "param count");
    assert!(!types_are_compat(&l.btf, p_wrong, &t.btf, kp).unwrap(), "ptr to int vs struct");
    assert!(types_are_compat(&l.btf, u64_, &t.btf, long).unwrap());
    assert!(!types_are_compat(&l.btf, int, &t.btf, bitint).unwrap(), "legacy bitfield int");
    assert!(!types_are_compat(&l.btf, td, &t.btf, int_t).unwrap(), "roots: typedef vs int");
    assert!(types_are_compat(&l.btf, ps, &t.btf, pts).unwrap());
    // Functions resolve through their prototype.
    let f = l.add("f", false, TypeKind::Func { proto: p2, linkage: FuncLinkage::Extern });
    assert!(!types_are_compat(&l.btf, f, &t.btf, kp).unwrap(), "FUNC is not a FUNC_PROTO");
    assert!(types_are_compat(&l.btf, 99, &t.btf, kp).is_err());
}

#[test]
fn ambiguous_candidates_must_agree() {
    let (mut l, ls, _, _) = moved();
    // Two target structs named s, with b at different offsets.
    let mut t = B::default();
    let int = t.int("int", 4, true);
    t.strukt("s", 8, &[("a", int, 0), ("b", int, 32)]);
    t.strukt("s___2", 12, &[("a", int, 0), ("pad", int, 32), ("b", int, 64)]);
    let relo = l.relo(ls, "0:1", FieldByteOffset);
    let err = run_err(&l, &t, &relo, &mut [ldx(W, 4)]);
    assert!(err.starts_with("CO-RE: struct s.b (byte_off, access 0:1): ambiguous"), "{err}");

    // Structurally identical duplicates (imperfect dedup) are fine.
    let mut t = B::default();
    let int = t.int("int", 4, true);
    t.strukt("s", 8, &[("a", int, 0), ("b", int, 32)]);
    t.strukt("s", 8, &[("a", int, 0), ("b", int, 32)]);
    let mut insns = [ldx(W, 4)];
    run(&l, &t, &relo, &mut insns);
    assert_eq!(insns[0].off, 4);

    // ... but their ids differ.
    let relo = l.relo(ls, "0", TypeIdTarget);
    let err = run_err(&l, &t, &relo, &mut ld_imm64(1));
    assert!(err.contains("different values"), "{err}");
}

#[test]
fn relocator_keeps_only_matching_candidates() {
    // Two flavors in the target; only s___b has field b. After relocating b, the relocator
    // (like libbpf) only considers s___b for struct s, so a later TYPE_SIZE is unambiguous.
    let (mut l, ls, _, _) = moved();
    let mut t = B::default();
    let int = t.int("int", 4, true);
    t.strukt("s___a", 4, &[("a", int, 0)]);
    let sb = t.strukt("s___b", 12, &[("a", int, 0), ("x", int, 32), ("b", int, 64)]);
    let off = l.relo(ls, "0:1", FieldByteOffset);
    let id = l.relo(ls, "0", TypeIdTarget);

    let err = run_err(&l, &t, &id, &mut ld_imm64(1));
    assert!(err.contains("ambiguous"), "{err}");

    let mut r = CoreRelocator::new(&l.btf, &t.btf);
    let mut insns = [ldx(W, 4)];
    r.relocate(&off, &mut insns).unwrap();
    assert_eq!(insns[0].off, 8);
    let mut insns = ld_imm64(1);
    r.relocate(&id, &mut insns).unwrap();
    assert_eq!(imm64(&insns), u64::from(sb));
}
