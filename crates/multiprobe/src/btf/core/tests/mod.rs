//! Relocation against hand-built local and target BTF (one behaviour per test), and against
//! what clang really emits (`from_clang`). This file holds the BTF builder and the helpers.

mod errors;
mod fields;
mod from_clang;
mod types;

pub(super) use super::*;
pub(super) use crate::btf::{EnumValue, FuncLinkage, Member, Param, Type, TypeKind, int_encoding};

/// Builds BTF by hand, C-declaration style.
#[derive(Default)]
pub(super) struct B {
    pub(super) btf: Btf,
}

impl B {
    pub(super) fn add(&mut self, name: &str, kind_flag: bool, kind: TypeKind) -> u32 {
        let name_off = if name.is_empty() { 0 } else { self.btf.add_string(name) };
        self.btf.add_type(Type { name_off, kind_flag, kind })
    }

    pub(super) fn int(&mut self, name: &str, size: u32, signed: bool) -> u32 {
        let encoding = if signed { int_encoding::SIGNED } else { 0 };
        self.add(name, false, TypeKind::Int { size, encoding, bit_offset: 0, bits: (size * 8) as u8 })
    }

    pub(super) fn ptr(&mut self, target: u32) -> u32 {
        self.add("", false, TypeKind::Ptr { target })
    }

    pub(super) fn array(&mut self, elem: u32, nelems: u32) -> u32 {
        let index = self.int("__ARRAY_SIZE_TYPE__", 4, false);
        self.add("", false, TypeKind::Array { elem, index, nelems })
    }

    pub(super) fn members(&mut self, fields: &[(&str, u32, u32, u32)]) -> Vec<Member> {
        fields
            .iter()
            .map(|&(name, type_id, bit_off, bits)| Member {
                name_off: if name.is_empty() { 0 } else { self.btf.add_string(name) },
                type_id,
                offset: bits << 24 | bit_off,
            })
            .collect()
    }

    /// A struct with plain members: (name, type, bit offset).
    pub(super) fn strukt(&mut self, name: &str, size: u32, fields: &[(&str, u32, u32)]) -> u32 {
        let f: Vec<_> = fields.iter().map(|&(n, t, o)| (n, t, o, 0)).collect();
        let members = self.members(&f);
        self.add(name, false, TypeKind::Struct { size, members })
    }

    /// A struct with bitfields: (name, type, bit offset, bitfield size or 0).
    pub(super) fn strukt_bits(&mut self, name: &str, size: u32, fields: &[(&str, u32, u32, u32)]) -> u32 {
        let members = self.members(fields);
        self.add(name, true, TypeKind::Struct { size, members })
    }

    pub(super) fn union(&mut self, name: &str, size: u32, fields: &[(&str, u32, u32)]) -> u32 {
        let f: Vec<_> = fields.iter().map(|&(n, t, o)| (n, t, o, 0)).collect();
        let members = self.members(&f);
        self.add(name, false, TypeKind::Union { size, members })
    }

    pub(super) fn enumeration(&mut self, name: &str, size: u32, signed: bool, values: &[(&str, i64)]) -> u32 {
        let values =
            values.iter().map(|&(n, v)| EnumValue { name_off: self.btf.add_string(n), value: v as u64 }).collect();
        self.add(name, signed, TypeKind::Enum { size, signed, is64: size == 8, values })
    }

    pub(super) fn typedef(&mut self, name: &str, target: u32) -> u32 {
        self.add(name, false, TypeKind::Typedef { target })
    }

    pub(super) fn proto(&mut self, ret: u32, params: &[u32]) -> u32 {
        let params = params.iter().map(|&type_id| Param { name_off: 0, type_id }).collect();
        self.add("", false, TypeKind::FuncProto { ret, params })
    }

    pub(super) fn relo(&mut self, type_id: u32, access: &str, kind: CoreReloKind) -> CoreRelo {
        CoreRelo { insn_off: 0, type_id, access_str_off: self.btf.add_string(access), kind }
    }
}

pub(super) use CoreReloKind::*;

pub(super) fn ldx(size_bits: u8, off: i16) -> Insn {
    // r0 = *(size *)(r1 + off)
    Insn { code: 0x61 | size_bits, regs: 0x10, off, imm: 0 }
}

pub(super) const W: u8 = 0x00;

pub(super) const DW: u8 = 0x18;

pub(super) fn mov64(imm: i32) -> Insn {
    Insn { code: 0xb7, regs: 0x01, off: 0, imm }
}

pub(super) fn ld_imm64(v: u64) -> [Insn; 2] {
    [
        Insn { code: 0x18, regs: 0x01, off: 0, imm: v as u32 as i32 },
        Insn { code: 0, regs: 0, off: 0, imm: (v >> 32) as u32 as i32 },
    ]
}

pub(super) fn imm64(insns: &[Insn]) -> u64 {
    u64::from(insns[0].imm as u32) | u64::from(insns[1].imm as u32) << 32
}

pub(super) fn is_poison(insn: &Insn) -> bool {
    insn.code == 0x85 && insn.imm == POISON_HELPER_ID && insn.regs == 0 && insn.off == 0
}

/// Relocates a single instruction (or an `ld_imm64` pair).
pub(super) fn run(local: &B, target: &B, relo: &CoreRelo, insns: &mut [Insn]) -> CoreOutcome {
    relocate(&local.btf, &target.btf, relo, insns).unwrap_or_else(|e| panic!("{e}"))
}

pub(super) fn run_err(local: &B, target: &B, relo: &CoreRelo, insns: &mut [Insn]) -> String {
    match relocate(&local.btf, &target.btf, relo, insns) {
        Ok(o) => panic!("expected an error, got {o:?}"),
        Err(e) => e.to_string(),
    }
}

pub(super) fn poison_reason(outcome: CoreOutcome) -> String {
    match outcome {
        CoreOutcome::Poisoned { reason } => reason,
        other => panic!("expected poisoning, got {other:?}"),
    }
}

/// local `struct s { int a; int b; }`; target `struct s { long x; int a; int b; }`.
pub(super) fn moved() -> (B, u32, B, u32) {
    let mut l = B::default();
    let int = l.int("int", 4, true);
    let ls = l.strukt("s", 8, &[("a", int, 0), ("b", int, 32)]);
    let mut t = B::default();
    let int = t.int("int", 4, true);
    let long = t.int("long", 8, true);
    let ts = t.strukt("s", 16, &[("x", long, 0), ("a", int, 64), ("b", int, 96)]);
    (l, ls, t, ts)
}

/// local `struct s { int a; int arr[4]; int tail[]; }`; target with other offsets and sizes.
pub(super) fn arrays(target_len: u32) -> (B, u32, B) {
    let mut l = B::default();
    let int = l.int("int", 4, true);
    let arr = l.array(int, 4);
    let flex = l.array(int, 0);
    let ls = l.strukt("s", 20, &[("a", int, 0), ("arr", arr, 32), ("tail", flex, 160)]);
    let mut t = B::default();
    let int = t.int("int", 4, true);
    let long = t.int("long", 8, true);
    let arr = t.array(int, target_len);
    let flex = t.array(int, 0);
    let tail_off = 128 + 32 * target_len;
    t.strukt("s", 16 + 4 * target_len, &[("q", long, 0), ("a", int, 64), ("arr", arr, 128), ("tail", flex, tail_off)]);
    (l, ls, t)
}
