//! Field relocations: offsets, sizes, bitfields, anonymous members, arrays, flavors.

use super::*;

#[test]
fn moved_field_patches_load_offset_and_alu_immediate() {
    let (mut l, ls, t, _) = moved();
    let relo = l.relo(ls, "0:1", FieldByteOffset);
    let mut insns = [ldx(W, 4)];
    assert_eq!(run(&l, &t, &relo, &mut insns), CoreOutcome::Applied);
    assert_eq!(insns[0], ldx(W, 12));

    let mut insns = [mov64(4)];
    run(&l, &t, &relo, &mut insns);
    assert_eq!(insns[0].imm, 12);

    let size = l.relo(ls, "0:1", FieldByteSize);
    let mut insns = [mov64(4)];
    run(&l, &t, &size, &mut insns);
    assert_eq!(insns[0].imm, 4);

    let signed = l.relo(ls, "0:1", FieldSigned);
    let mut insns = [mov64(1)];
    run(&l, &t, &signed, &mut insns);
    assert_eq!(insns[0].imm, 1);
}

#[test]
fn insn_off_indexes_the_section() {
    let (mut l, ls, t, _) = moved();
    let mut relo = l.relo(ls, "0:1", FieldByteOffset);
    relo.insn_off = 16;
    let mut insns = [mov64(0), mov64(0), ldx(W, 4), mov64(4)];
    run(&l, &t, &relo, &mut insns);
    assert_eq!(insns, [mov64(0), mov64(0), ldx(W, 12), mov64(4)]);

    relo.insn_off = 12;
    let err = run_err(&l, &t, &relo, &mut insns);
    assert!(err.contains("not a multiple"), "{err}");
    relo.insn_off = 32;
    let err = run_err(&l, &t, &relo, &mut insns);
    assert!(err.contains("only 4 instructions"), "{err}");
}

#[test]
fn field_inside_nested_anonymous_members() {
    let (mut l, ls, _, _) = moved();
    // struct s { int x; union { long y; struct { int pad; int b; }; }; int a; }
    let mut t = B::default();
    let int = t.int("int", 4, true);
    let long = t.int("long", 8, true);
    let inner = t.strukt("", 8, &[("pad", int, 0), ("b", int, 32)]);
    let un = t.union("", 8, &[("y", long, 0), ("", inner, 0)]);
    t.strukt("s", 24, &[("x", int, 0), ("", un, 64), ("a", int, 128)]);

    let relo = l.relo(ls, "0:1", FieldByteOffset);
    let mut insns = [ldx(W, 4)];
    run(&l, &t, &relo, &mut insns);
    assert_eq!(insns[0].off, 12, "8 (union) + 4 (b in the inner struct)");

    let relo = l.relo(ls, "0:0", FieldByteOffset);
    let mut insns = [ldx(W, 0)];
    run(&l, &t, &relo, &mut insns);
    assert_eq!(insns[0].off, 16);
}

#[test]
fn local_anonymous_members_are_skipped_in_the_access() {
    // local: struct s { int x; struct { int pad; int b; }; } -> access 0:1:1 for s->b
    let mut l = B::default();
    let int = l.int("int", 4, true);
    let inner = l.strukt("", 8, &[("pad", int, 0), ("b", int, 32)]);
    let ls = l.strukt("s", 12, &[("x", int, 0), ("", inner, 32)]);
    let (_, _, t, _) = moved();
    let relo = l.relo(ls, "0:1:1", FieldByteOffset);
    let mut insns = [ldx(W, 8)];
    run(&l, &t, &relo, &mut insns);
    assert_eq!(insns[0].off, 12);
}

#[test]
fn array_elements_and_flexible_arrays() {
    let (mut l, ls, t) = arrays(8);
    let relo = l.relo(ls, "0:1:2", FieldByteOffset);
    let mut insns = [ldx(W, 12)];
    run(&l, &t, &relo, &mut insns);
    assert_eq!(insns[0].off, 24, "arr at 16, element 2");

    // Whole-array size, and element size.
    let relo = l.relo(ls, "0:1", FieldByteSize);
    let mut insns = [mov64(16)];
    run(&l, &t, &relo, &mut insns);
    assert_eq!(insns[0].imm, 32);
    let relo = l.relo(ls, "0:1:2", FieldByteSize);
    let mut insns = [mov64(4)];
    run(&l, &t, &relo, &mut insns);
    assert_eq!(insns[0].imm, 4);

    // A flexible array takes any index, locally and in the target.
    let relo = l.relo(ls, "0:2:100", FieldByteOffset);
    let mut insns = [mov64(20 + 400)];
    run(&l, &t, &relo, &mut insns);
    assert_eq!(insns[0].imm, 48 + 400);

    // The root pointer indexed as an array: &s[1].a
    let relo = l.relo(ls, "1:0", FieldByteOffset);
    let mut insns = [mov64(20)];
    run(&l, &t, &relo, &mut insns);
    assert_eq!(insns[0].imm, 48 + 8);
}

#[test]
fn array_index_past_the_target_end_poisons() {
    let (mut l, ls, t) = arrays(2);
    let relo = l.relo(ls, "0:1:3", FieldByteOffset);
    let mut insns = [ldx(W, 16)];
    let reason = poison_reason(run(&l, &t, &relo, &mut insns));
    assert!(is_poison(&insns[0]));
    assert!(reason.contains("struct s.arr[3]"), "{reason}");
    assert!(reason.contains("past the end of the target's array of 2"), "{reason}");

    let relo = l.relo(ls, "0:1:3", FieldExists);
    let mut insns = [mov64(1)];
    run(&l, &t, &relo, &mut insns);
    assert_eq!(insns[0].imm, 0);
}

#[test]
fn bitfield_offsets_sizes_and_shifts() {
    // local: struct bf { unsigned a:3; unsigned b:5; int s:4; }
    let mut l = B::default();
    let uint = l.int("unsigned int", 4, false);
    let int = l.int("int", 4, true);
    let lb = l.strukt_bits("bf", 4, &[("a", uint, 0, 3), ("b", uint, 3, 5), ("s", int, 8, 4)]);
    // target: struct bf { int x; unsigned pad:10; unsigned b:5; int s:4; unsigned a:3; }
    let mut t = B::default();
    let uint = t.int("unsigned int", 4, false);
    let int = t.int("int", 4, true);
    t.strukt_bits(
        "bf",
        8,
        &[("x", int, 0, 0), ("pad", uint, 32, 10), ("b", uint, 42, 5), ("s", int, 47, 4), ("a", uint, 51, 3)],
    );
    let cases = [
        // kind, local value (what clang would write), target value
        (FieldByteOffset, 0, 4),
        (FieldByteSize, 4, 4),
        (FieldLshiftU64, 56, 64 - (42 + 5 - 32)),
        (FieldRshiftU64, 59, 59),
        (FieldSigned, 0, 0),
    ];
    for (kind, local, want) in cases {
        let relo = l.relo(lb, "0:1", kind);
        let mut insns = [mov64(local)];
        run(&l, &t, &relo, &mut insns);
        assert_eq!(insns[0].imm, want, "{kind:?}");
    }
    let relo = l.relo(lb, "0:2", FieldSigned);
    let mut insns = [mov64(1)];
    run(&l, &t, &relo, &mut insns);
    assert_eq!(insns[0].imm, 1);

    // Bitfield offsets are not validated: clang may pick a wider load than libbpf would.
    let relo = l.relo(lb, "0:1", FieldByteOffset);
    let mut insns = [mov64(0x1234)];
    run(&l, &t, &relo, &mut insns);
    assert_eq!(insns[0].imm, 4);
}

#[test]
fn bitfield_straddling_eight_bytes_is_an_error() {
    let mut l = B::default();
    let uint = l.int("unsigned int", 4, false);
    let lb = l.strukt_bits("bf", 4, &[("b", uint, 0, 5)]);
    let mut t = B::default();
    let uint = t.int("unsigned int", 4, false);
    t.strukt_bits("bf", 16, &[("b", uint, 62, 5)]);
    let relo = l.relo(lb, "0:0", FieldByteOffset);
    let err = run_err(&l, &t, &relo, &mut [mov64(0)]);
    assert!(err.contains("struct bf.b"), "{err}");
    assert!(err.contains("64-bit load"), "{err}");
}

#[test]
fn missing_field_exists_zero_and_offset_poisoned() {
    let (mut l, ls, _, _) = moved();
    let mut t = B::default();
    let int = t.int("int", 4, true);
    t.strukt("s", 4, &[("a", int, 0)]);

    let relo = l.relo(ls, "0:1", FieldExists);
    let mut insns = [mov64(1)];
    assert_eq!(run(&l, &t, &relo, &mut insns), CoreOutcome::Applied);
    assert_eq!(insns[0].imm, 0);

    let relo = l.relo(ls, "0:1", FieldByteOffset);
    let mut insns = [ldx(W, 4)];
    let reason = poison_reason(run(&l, &t, &relo, &mut insns));
    assert!(is_poison(&insns[0]));
    assert_eq!(reason, "struct s.b (byte_off, access 0:1): the target's struct s has no field b");

    // A field of an incompatible type counts as missing.
    let mut t = B::default();
    let int = t.int("int", 4, true);
    let inner = t.strukt("inner", 4, &[("z", int, 0)]);
    t.strukt("s", 8, &[("a", int, 0), ("b", inner, 32)]);
    let mut insns = [ldx(W, 4)];
    let reason = poison_reason(run(&l, &t, &relo, &mut insns));
    assert!(reason.contains("incompatible"), "{reason}");
}

#[test]
fn missing_type_poisons_with_no_candidate_reason() {
    let (mut l, ls, _, _) = moved();
    let mut t = B::default();
    t.int("int", 4, true);
    let relo = l.relo(ls, "0:1", FieldByteOffset);
    let mut insns = [ldx(W, 4)];
    let reason = poison_reason(run(&l, &t, &relo, &mut insns));
    assert!(reason.ends_with("the target has no struct named s (flavor suffixes ignored)"), "{reason}");
}

/// Target: `struct task_struct { int pid; unsigned int __state; }`.
fn task_target() -> (B, u32) {
    let mut t = B::default();
    let int = t.int("int", 4, true);
    let uint = t.int("unsigned int", 4, false);
    let ts = t.strukt("task_struct", 8, &[("pid", int, 0), ("__state", uint, 32)]);
    (t, ts)
}

#[test]
fn flavors_match_the_essential_name() {
    let mut l = B::default();
    let long = l.int("long", 8, true);
    let uint = l.int("unsigned int", 4, false);
    let old = l.strukt("task_struct___old", 8, &[("state", long, 0)]);
    let new = l.strukt("task_struct___new", 4, &[("__state", uint, 0)]);
    let (t, _) = task_target();

    let relo = l.relo(old, "0:0", FieldExists);
    let mut insns = [mov64(1)];
    run(&l, &t, &relo, &mut insns);
    assert_eq!(insns[0].imm, 0, "no `state` in this kernel");
    let relo = l.relo(old, "0:0", FieldByteOffset);
    let mut insns = [ldx(DW, 0)];
    let reason = poison_reason(run(&l, &t, &relo, &mut insns));
    assert!(reason.starts_with("struct task_struct___old.state (byte_off, access 0:0): "), "{reason}");

    let relo = l.relo(new, "0:0", FieldExists);
    let mut insns = [mov64(1)];
    run(&l, &t, &relo, &mut insns);
    assert_eq!(insns[0].imm, 1);
    let relo = l.relo(new, "0:0", FieldByteOffset);
    let mut insns = [ldx(W, 0)];
    run(&l, &t, &relo, &mut insns);
    assert_eq!(insns[0].off, 4);

    // Flavored target names are candidates too.
    let mut t2 = B::default();
    let uint = t2.int("unsigned int", 4, false);
    t2.strukt("task_struct___2", 8, &[("x", uint, 0), ("__state", uint, 32)]);
    let mut insns = [ldx(W, 0)];
    run(&l, &t2, &relo, &mut insns);
    assert_eq!(insns[0].off, 4);
}

#[test]
fn essential_names() {
    use super::compat::essential_name;
    assert_eq!(essential_name("task_struct___old"), "task_struct");
    assert_eq!(essential_name("a___b___c"), "a___b");
    assert_eq!(essential_name("task_struct"), "task_struct");
    assert_eq!(essential_name("___x"), "___x");
    assert_eq!(essential_name("x____y"), "x____y");
    assert_eq!(essential_name("x___"), "x___");
    assert_eq!(essential_name("é___ü"), "é");
    assert_eq!(essential_name(""), "");
}

#[test]
fn load_size_follows_unsigned_and_pointer_fields_only() {
    // local: struct m { unsigned int size; int count; long *p; }
    let mut l = B::default();
    let uint = l.int("unsigned int", 4, false);
    let int = l.int("int", 4, true);
    let long = l.int("long", 8, true);
    let p = l.ptr(long);
    let lm = l.strukt("m", 16, &[("size", uint, 0), ("count", int, 32), ("p", p, 64)]);
    // target: struct m { unsigned long size; long count; int *p; }
    let mut t = B::default();
    let ulong = t.int("unsigned long", 8, false);
    let long = t.int("long", 8, true);
    let int = t.int("int", 4, true);
    let p = t.ptr(int);
    t.strukt("m", 24, &[("size", ulong, 0), ("count", long, 64), ("p", p, 128)]);

    let relo = l.relo(lm, "0:0", FieldByteOffset);
    let mut insns = [ldx(W, 0)];
    run(&l, &t, &relo, &mut insns);
    assert_eq!(insns[0], ldx(DW, 0), "u32 load widened to u64");

    let relo = l.relo(lm, "0:1", FieldByteOffset);
    let mut insns = [ldx(W, 4)];
    let reason = poison_reason(run(&l, &t, &relo, &mut insns));
    assert!(is_poison(&insns[0]));
    assert!(reason.contains("8 bytes where the program's is 4"), "{reason}");
    // The same offset in an ALU instruction is fine: no memory access size involved.
    let mut insns = [mov64(4)];
    run(&l, &t, &relo, &mut insns);
    assert_eq!(insns[0].imm, 8);

    let relo = l.relo(lm, "0:2", FieldByteOffset);
    let mut insns = [ldx(DW, 8)];
    run(&l, &t, &relo, &mut insns);
    assert_eq!(insns[0], ldx(DW, 16), "pointer: same size");
}

#[test]
fn typedef_roots_and_modifiers() {
    // typedef struct { int a; int b; } pair_t; relocations against the typedef.
    let mut l = B::default();
    let int = l.int("int", 4, true);
    let anon = l.strukt("", 8, &[("a", int, 0), ("b", int, 32)]);
    let ltd = l.typedef("pair_t", anon);
    let mut t = B::default();
    let int = t.int("int", 4, true);
    let c = t.add("", false, TypeKind::Const { target: int });
    let t_anon = t.strukt("", 12, &[("z", int, 0), ("b", c, 32), ("a", int, 64)]);
    t.typedef("pair_t", t_anon);
    let relo = l.relo(ltd, "0:1", FieldByteOffset);
    let mut insns = [ldx(W, 4)];
    run(&l, &t, &relo, &mut insns);
    assert_eq!(insns[0].off, 4);
    let relo = l.relo(ltd, "0", TypeSize);
    let mut insns = [mov64(8)];
    run(&l, &t, &relo, &mut insns);
    assert_eq!(insns[0].imm, 12);

    // Relocations against the anonymous struct itself cannot find candidates.
    let relo = l.relo(anon, "0:1", FieldByteOffset);
    let err = run_err(&l, &t, &relo, &mut [ldx(W, 4)]);
    assert!(err.contains("anonymous"), "{err}");
}
