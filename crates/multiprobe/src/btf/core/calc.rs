//! The values a relocation patches in (libbpf's `bpf_core_calc_relo`): computed once from
//! the local spec (what clang wrote, to check the instruction against) and once from the
//! target spec (what the kernel needs).

use super::relo::{CoreReloKind, Problem};
use super::spec::Spec;
use crate::btf::{Btf, TypeKind, int_encoding};

/// The result of resolving one relocation (`struct bpf_core_relo_res`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RelocValue {
    /// The value clang computed from the local types, expected in the instruction.
    pub orig_val: u64,
    /// The value for the target.
    pub new_val: u64,
    /// The target lacks what the relocation needs: poison the instruction.
    pub poison: bool,
    /// Whether the instruction must hold `orig_val` (not for values linking may change,
    /// nor for bitfield offsets, where clang and libbpf may pick different loads).
    pub validate: bool,
    /// The field's size changed in a way a load or store cannot follow: poison such
    /// instructions (ALU instructions taking the offset are fine).
    pub fail_memsz_adjust: bool,
    /// Size of a load or store of the field, locally and in the target (0: not a field
    /// offset relocation); a memory instruction is resized when they differ.
    pub orig_sz: u32,
    pub new_sz: u32,
}

impl RelocValue {
    /// A value that does not depend on the target and is not checked.
    pub fn fixed(val: u64) -> RelocValue {
        RelocValue {
            orig_val: val,
            new_val: val,
            poison: false,
            validate: false,
            fail_memsz_adjust: false,
            orig_sz: 0,
            new_sz: 0,
        }
    }

    /// For ambiguity messages.
    pub fn describe(&self) -> String {
        if self.poison { "not found".into() } else { self.new_val.to_string() }
    }
}

/// A field-based value computed from one spec.
struct FieldValue {
    val: u64,
    /// Size of the memory access of the field (of an element, for arrays); 0 if unknown.
    mem_size: u32,
    /// The type whose size `mem_size` is, to decide whether a resize is safe.
    type_id: u32,
    validate: bool,
}

/// Computes local and target values for a relocation; `target` is `None` when no candidate
/// matched.
pub(super) fn calc_relo(
    kind: CoreReloKind,
    local: &Btf,
    local_spec: &Spec,
    target: Option<&Spec>,
) -> Result<RelocValue, Problem> {
    let mut res = RelocValue {
        orig_val: 0,
        new_val: 0,
        poison: false,
        validate: true,
        fail_memsz_adjust: false,
        orig_sz: 0,
        new_sz: 0,
    };
    if kind == CoreReloKind::FieldExists || kind == CoreReloKind::EnumvalExists {
        res.orig_val = 1;
        res.new_val = u64::from(target.is_some());
    } else if kind.is_field_based() {
        let l = field_value(kind, local_spec)?;
        res.orig_val = l.val;
        res.orig_sz = l.mem_size;
        res.validate = l.validate;
        let Some(target) = target else {
            res.poison = true;
            return Ok(res);
        };
        let t = field_value(kind, target)?;
        res.new_val = t.val;
        res.new_sz = t.mem_size;
        if res.orig_sz != res.new_sz {
            let lt = &local.type_by_id(l.type_id)?.kind;
            let tt = &target.btf.type_by_id(t.type_id)?.kind;
            // Zero extension keeps pointers (a 32-bit kernel's) and unsigned integers
            // intact; anything else read at another size would be wrong.
            let unsigned =
                |k: &TypeKind| matches!(k, TypeKind::Int { encoding, .. } if encoding & int_encoding::SIGNED == 0);
            let safe =
                matches!((lt, tt), (TypeKind::Ptr { .. }, TypeKind::Ptr { .. })) || (unsigned(lt) && unsigned(tt));
            res.fail_memsz_adjust = !safe;
        }
    } else if kind.is_type_based() {
        res.orig_val = type_value(kind, Some(local_spec))?;
        // Type ids change when objects are linked: clang's is not worth checking.
        res.validate = kind != CoreReloKind::TypeIdTarget;
        res.new_val = type_value(kind, target)?;
    } else if kind == CoreReloKind::EnumvalValue {
        res.orig_val = enum_value(local_spec)?;
        match target {
            Some(t) => res.new_val = enum_value(t)?,
            None => res.poison = true,
        }
    } else {
        return Err(Problem::BadAccess(format!("relocation kind {} is not supported", kind.as_str())));
    }
    Ok(res)
}

/// `bpf_core_calc_type_relo`: 0 when the target type is absent.
fn type_value(kind: CoreReloKind, spec: Option<&Spec>) -> Result<u64, Problem> {
    let Some(spec) = spec else { return Ok(0) };
    Ok(match kind {
        CoreReloKind::TypeIdTarget => u64::from(spec.root_type_id),
        CoreReloKind::TypeExists | CoreReloKind::TypeMatches => 1,
        CoreReloKind::TypeSize => u64::from(spec.btf.resolve_size(spec.root_type_id)?),
        other => {
            return Err(Problem::BadAccess(format!("{} is not a type relocation", other.as_str())));
        }
    })
}

/// The enumerator's value as the instruction holds it: sign-extended for signed enums,
/// zero-extended for unsigned ones.
///
/// libbpf sign-extends every 32-bit value, but clang zero-extends unsigned ones
/// (`X = 1u << 31` is emitted as `ld_imm64 0x80000000`), which libbpf then rejects as a
/// mismatch; honoring the enum's signedness is what the compiler does.
fn enum_value(spec: &Spec) -> Result<u64, Problem> {
    let acc = spec.access.first().ok_or_else(|| Problem::BadAccess("enum value access without an index".into()))?;
    let t = spec.btf.type_by_id(acc.type_id)?;
    let TypeKind::Enum { values, is64, .. } = &t.kind else {
        return Err(Problem::BadAccess("enum value access on a non-enum".into()));
    };
    let value =
        values.get(acc.idx as usize).ok_or_else(|| Problem::BadAccess("enumerator index out of range".into()))?.value;
    Ok(match (is64, t.kind_flag) {
        (true, _) => value,
        (false, true) => value as u32 as i32 as i64 as u64,
        (false, false) => u64::from(value as u32),
    })
}

/// `bpf_core_calc_field_relo` for one spec.
fn field_value(kind: CoreReloKind, spec: &Spec) -> Result<FieldValue, Problem> {
    let btf = spec.btf;
    let acc = spec.access.last().ok_or_else(|| Problem::BadAccess("field access without an index".into()))?;

    let Some(_) = acc.name else {
        // An array element (or the root itself): no bitfields possible.
        let val = match kind {
            CoreReloKind::FieldByteOffset => u64::from(spec.bit_offset / 8),
            CoreReloKind::FieldByteSize => u64::from(btf.resolve_size(acc.type_id)?),
            other => {
                return Err(Problem::Unsatisfiable(format!(
                    "{} relocations cannot be applied to an array element",
                    other.as_str()
                )));
            }
        };
        let (mem_size, type_id) =
            if kind == CoreReloKind::FieldByteOffset { (element_size(btf, acc.type_id)?, acc.type_id) } else { (0, 0) };
        return Ok(FieldValue { val, mem_size, type_id, validate: true });
    };

    let parent = btf.type_by_id(acc.type_id)?;
    let member = parent
        .kind
        .members()
        .get(acc.idx as usize)
        .ok_or_else(|| Problem::BadAccess("member index out of range".into()))?;
    let field_type_id = btf.skip_modifiers(member.type_id)?;
    let field_type = btf.type_by_id(field_type_id)?;
    let bit_off = u64::from(spec.bit_offset);
    let mut bit_sz = u64::from(member.bitfield_size(parent.kind_flag));
    let bitfield = bit_sz > 0;

    let (byte_off, byte_sz) = if bitfield {
        // The smallest naturally aligned load, starting from the field type's size, that
        // covers the whole bitfield.
        let mut byte_sz = u64::from(btf.resolve_size(field_type_id)?);
        if byte_sz == 0 {
            return Err(Problem::Unsatisfiable("the bitfield's type has size 0".into()));
        }
        let mut byte_off = bit_off / 8 / byte_sz * byte_sz;
        while bit_off + bit_sz - byte_off * 8 > byte_sz * 8 {
            if byte_sz >= 8 {
                return Err(Problem::Unsatisfiable("the bitfield cannot be read with one 64-bit load".into()));
            }
            byte_sz *= 2;
            byte_off = bit_off / 8 / byte_sz * byte_sz;
        }
        (byte_off, byte_sz)
    } else {
        let byte_sz = u64::from(btf.resolve_size(field_type_id)?);
        bit_sz = byte_sz * 8;
        (bit_off / 8, byte_sz)
    };

    let mut out = FieldValue {
        val: 0,
        mem_size: 0,
        type_id: 0,
        // Compilers and libbpf may choose different loads for a bitfield: only its
        // signedness and right shift are unambiguous.
        validate: !bitfield,
    };
    // libbpf computes shifts in 32-bit unsigned arithmetic; fields wider than 8 bytes give
    // meaningless shifts, kept identical.
    let shift = |v: i64| u64::from(v as u32);
    match kind {
        CoreReloKind::FieldByteOffset => {
            out.val = byte_off;
            if !bitfield {
                out.mem_size = element_size(btf, field_type_id)?;
                out.type_id = field_type_id;
            }
        }
        CoreReloKind::FieldByteSize => out.val = byte_sz,
        CoreReloKind::FieldSigned => {
            out.val = u64::from(match &field_type.kind {
                TypeKind::Enum { .. } => field_type.kind_flag,
                TypeKind::Int { encoding, .. } => encoding & int_encoding::SIGNED != 0,
                _ => false,
            });
            out.validate = true;
        }
        CoreReloKind::FieldLshiftU64 => {
            let (bit_off, bit_sz, byte_off, byte_sz) = (bit_off as i64, bit_sz as i64, byte_off as i64, byte_sz as i64);
            out.val = if cfg!(target_endian = "little") {
                shift(64 - (bit_off + bit_sz - byte_off * 8))
            } else {
                shift((8 - byte_sz) * 8 + (bit_off - byte_off * 8))
            };
        }
        CoreReloKind::FieldRshiftU64 => {
            out.val = shift(64 - bit_sz as i64);
            out.validate = true;
        }
        other => {
            return Err(Problem::BadAccess(format!("{} is not a field relocation", other.as_str())));
        }
    }
    Ok(out)
}

/// Size of what a load of type `id` reads: for arrays, one innermost element.
fn element_size(btf: &Btf, id: u32) -> Result<u32, Problem> {
    let mut id = btf.skip_modifiers(id)?;
    for _ in 0..64 {
        match btf.type_by_id(id)?.kind {
            TypeKind::Array { elem, .. } => id = btf.skip_modifiers(elem)?,
            _ => return Ok(btf.resolve_size(id)?),
        }
    }
    Err(Problem::Btf(crate::btf::BtfError::Unsized { id, kind: "array loop" }))
}
