//! When a target type can stand for a local one. libbpf has three relations, from loosest
//! to strictest: fields (a field's type may change in ways loads survive), types (layout
//! kinds agree, used by type-based relocations and kfunc prototypes) and match (names and
//! shapes agree all the way down, `bpf_core_type_matches`).
//!
//! Callers have already matched the root names (flavor suffixes ignored): below the root
//! only the first two relations ignore names.

use crate::btf::{Btf, BtfError, TypeKind, int_encoding};

/// libbpf gives up after this many levels (`depth` and `level` in `relo_core.c`).
const MAX_DEPTH: u32 = 32;

/// A type name without its flavor suffix: `task_struct___old` -> `task_struct`. The suffix
/// starts at the last `___` that has a non-underscore on both sides.
pub(super) fn essential_name(name: &str) -> &str {
    let b = name.as_bytes();
    if b.len() < 5 {
        return name;
    }
    for i in (0..=b.len() - 5).rev() {
        if b[i] != b'_' && &b[i + 1..i + 4] == b"___" && b[i + 4] != b'_' {
            // b[i + 1] is ASCII, so i + 1 is a character boundary.
            return &name[..i + 1];
        }
    }
    name
}

/// The error for BTF whose references loop, or nest deeper than libbpf follows.
fn too_deep(id: u32) -> BtfError {
    BtfError::Unsized { id, kind: "reference loop" }
}

/// Same kind, counting `ENUM` and `ENUM64` as one (`btf_kind_core_compat`).
pub(super) fn kinds_compatible(a: &TypeKind, b: &TypeKind) -> bool {
    a.number() == b.number() || (matches!(a, TypeKind::Enum { .. }) && matches!(b, TypeKind::Enum { .. }))
}

fn name_of(btf: &Btf, name_off: u32) -> &str {
    btf.string_at(name_off).unwrap_or("")
}

/// Whether a field of local type `local_id` can be read where the target has a field of
/// type `targ_id` (`bpf_core_fields_are_compat`): any two structs or unions, pointers or
/// floats; integers of any size or sign; enums and forward declarations of the same name
/// (or anonymous); arrays of compatible elements, whatever their length.
pub(super) fn fields_are_compat(local: &Btf, local_id: u32, target: &Btf, targ_id: u32) -> Result<bool, BtfError> {
    let (mut local_id, mut targ_id) = (local_id, targ_id);
    for _ in 0..MAX_DEPTH {
        local_id = local.skip_modifiers(local_id)?;
        targ_id = target.skip_modifiers(targ_id)?;
        let (lt, tt) = (local.type_by_id(local_id)?, target.type_by_id(targ_id)?);
        if lt.kind.is_composite() && tt.kind.is_composite() {
            return Ok(true);
        }
        if !kinds_compatible(&lt.kind, &tt.kind) {
            return Ok(false);
        }
        match (&lt.kind, &tt.kind) {
            (TypeKind::Ptr { .. } | TypeKind::Float { .. }, _) => return Ok(true),
            (TypeKind::Fwd { .. } | TypeKind::Enum { .. }, _) => {
                let ln = essential_name(local.name(local_id));
                let tn = essential_name(target.name(targ_id));
                return Ok(ln.is_empty() || tn.is_empty() || ln == tn);
            }
            (TypeKind::Int { bit_offset: lo, .. }, TypeKind::Int { bit_offset: to, .. }) => {
                return Ok(*lo == 0 && *to == 0);
            }
            (TypeKind::Array { elem: le, .. }, TypeKind::Array { elem: te, .. }) => {
                local_id = *le;
                targ_id = *te;
            }
            _ => return Ok(false),
        }
    }
    Err(too_deep(local_id))
}

/// Whether two types are compatible in libbpf's relaxed CO-RE sense (`bpf_core_types_are_compat`):
/// used for `TypeIdTarget`/`TypeExists`/`TypeSize` and for checking a kfunc extern's prototype
/// against the kernel's.
///
/// Modifiers and typedefs are skipped (but the two roots must be of the same kind). Structs,
/// unions, enums (of any size), forward declarations and `void` are compatible with their own
/// kind whatever their contents; integers whatever their size and sign (legacy bitfield
/// integers excepted); pointers and arrays when what they refer to is; function prototypes
/// when they have as many parameters and all parameters and the return type are.
pub fn types_are_compat(local: &Btf, local_id: u32, target: &Btf, target_id: u32) -> Result<bool, BtfError> {
    are_compat(local, local_id, target, target_id, MAX_DEPTH)
}

fn are_compat(local: &Btf, local_id: u32, target: &Btf, targ_id: u32, level: u32) -> Result<bool, BtfError> {
    if !kinds_compatible(&local.type_by_id(local_id)?.kind, &target.type_by_id(targ_id)?.kind) {
        return Ok(false);
    }
    let (mut local_id, mut targ_id) = (local_id, targ_id);
    for _ in 0..MAX_DEPTH {
        local_id = local.skip_modifiers(local_id)?;
        targ_id = target.skip_modifiers(targ_id)?;
        let (lt, tt) = (local.type_by_id(local_id)?, target.type_by_id(targ_id)?);
        if !kinds_compatible(&lt.kind, &tt.kind) {
            return Ok(false);
        }
        match (&lt.kind, &tt.kind) {
            (
                TypeKind::Void
                | TypeKind::Struct { .. }
                | TypeKind::Union { .. }
                | TypeKind::Enum { .. }
                | TypeKind::Fwd { .. },
                _,
            ) => return Ok(true),
            (TypeKind::Int { bit_offset: lo, .. }, TypeKind::Int { bit_offset: to, .. }) => {
                return Ok(*lo == 0 && *to == 0);
            }
            (TypeKind::Ptr { target: l }, TypeKind::Ptr { target: t }) => {
                local_id = *l;
                targ_id = *t;
            }
            (TypeKind::Array { elem: l, .. }, TypeKind::Array { elem: t, .. }) => {
                local_id = *l;
                targ_id = *t;
            }
            (TypeKind::FuncProto { ret: lret, params: lp }, TypeKind::FuncProto { ret: tret, params: tp }) => {
                if lp.len() != tp.len() {
                    return Ok(false);
                }
                for (l, t) in lp.iter().zip(tp) {
                    if level == 0 {
                        return Err(too_deep(local_id));
                    }
                    let l = local.skip_modifiers(l.type_id)?;
                    let t = target.skip_modifiers(t.type_id)?;
                    if !are_compat(local, l, target, t, level - 1)? {
                        return Ok(false);
                    }
                }
                local_id = *lret;
                targ_id = *tret;
            }
            _ => return Ok(false),
        }
    }
    Err(too_deep(local_id))
}

/// Whether two names agree once flavor suffixes are dropped; an anonymous target only
/// agrees with an anonymous local.
fn names_match(local: &Btf, local_name_off: u32, target: &Btf, targ_name_off: u32) -> bool {
    let (l, t) = (name_of(local, local_name_off), name_of(target, targ_name_off));
    if t.is_empty() {
        return l.is_empty();
    }
    essential_name(l) == essential_name(t)
}

/// Whether the target type matches the local one strictly (`bpf_core_types_match`, behind
/// the `TypeMatches` relocation and `bpf_core_type_matches()`).
///
/// Modifiers and typedefs are skipped, names must agree (flavors ignored) and kinds must
/// be equal, except that a struct or union behind a pointer also matches a forward
/// declaration of it, and `ENUM` matches `ENUM64`. Integers must agree in size and sign;
/// every local enumerator must exist in the target by name, at the same enum size; every
/// local struct member must exist by name with a matching type (only names and kinds are
/// compared behind pointers); arrays need the same length and prototypes the same
/// parameters.
pub fn types_match(local: &Btf, local_id: u32, target: &Btf, target_id: u32) -> Result<bool, BtfError> {
    do_types_match(local, local_id, target, target_id, false, MAX_DEPTH)
}

fn do_types_match(
    local: &Btf,
    local_id: u32,
    target: &Btf,
    targ_id: u32,
    mut behind_ptr: bool,
    level: u32,
) -> Result<bool, BtfError> {
    if level == 0 {
        return Err(too_deep(local_id));
    }
    let (mut local_id, mut targ_id) = (local_id, targ_id);
    for _ in 0..MAX_DEPTH {
        local_id = local.skip_modifiers(local_id)?;
        targ_id = target.skip_modifiers(targ_id)?;
        let (lt, tt) = (local.type_by_id(local_id)?, target.type_by_id(targ_id)?);
        if !names_match(local, lt.name_off, target, tt.name_off) {
            return Ok(false);
        }
        let same_kind = lt.kind.number() == tt.kind.number();
        match (&lt.kind, &tt.kind) {
            (TypeKind::Void, _) => return Ok(same_kind),
            (TypeKind::Fwd { .. }, _) => {
                return Ok(if same_kind {
                    lt.kind_flag == tt.kind_flag
                } else if behind_ptr {
                    // A forward declaration's kind_flag says union (1) or struct (0).
                    match tt.kind {
                        TypeKind::Struct { .. } => !lt.kind_flag,
                        TypeKind::Union { .. } => lt.kind_flag,
                        _ => false,
                    }
                } else {
                    false
                });
            }
            (TypeKind::Enum { .. }, TypeKind::Enum { .. }) => {
                return Ok(enums_match(local, lt, target, tt));
            }
            (TypeKind::Enum { .. }, _) => return Ok(false),
            (TypeKind::Struct { .. } | TypeKind::Union { .. }, _) => {
                if behind_ptr {
                    return Ok(same_kind
                        || (matches!(tt.kind, TypeKind::Fwd { .. })
                            && matches!(lt.kind, TypeKind::Union { .. }) == tt.kind_flag));
                }
                if !same_kind {
                    return Ok(false);
                }
                return composites_match(local, lt, target, tt, behind_ptr, level);
            }
            (TypeKind::Int { size: ls, encoding: le, .. }, TypeKind::Int { size: ts, encoding: te, .. }) => {
                return Ok(ls == ts && (le & int_encoding::SIGNED) == (te & int_encoding::SIGNED));
            }
            (TypeKind::Ptr { target: l }, TypeKind::Ptr { target: t }) => {
                behind_ptr = true;
                local_id = *l;
                targ_id = *t;
            }
            (TypeKind::Array { elem: le, nelems: ln, .. }, TypeKind::Array { elem: te, nelems: tn, .. }) => {
                if ln != tn {
                    return Ok(false);
                }
                local_id = *le;
                targ_id = *te;
            }
            (TypeKind::FuncProto { ret: lret, params: lp }, TypeKind::FuncProto { ret: tret, params: tp }) => {
                if lp.len() != tp.len() {
                    return Ok(false);
                }
                for (l, t) in lp.iter().zip(tp) {
                    if !do_types_match(local, l.type_id, target, t.type_id, behind_ptr, level - 1)? {
                        return Ok(false);
                    }
                }
                local_id = *lret;
                targ_id = *tret;
            }
            // Other kinds (floats included, as in libbpf) never match, nor do differing ones.
            _ => return Ok(false),
        }
    }
    Err(too_deep(local_id))
}

/// Same size, and every local enumerator named in the target (values may differ).
fn enums_match(local: &Btf, lt: &crate::btf::Type, target: &Btf, tt: &crate::btf::Type) -> bool {
    let (TypeKind::Enum { size: ls, values: lv, .. }, TypeKind::Enum { size: ts, values: tv, .. }) =
        (&lt.kind, &tt.kind)
    else {
        return false;
    };
    ls == ts
        && lv.len() <= tv.len()
        && lv.iter().all(|l| tv.iter().any(|t| names_match(local, l.name_off, target, t.name_off)))
}

/// Every local member has a target member of the same name whose type matches.
fn composites_match(
    local: &Btf,
    lt: &crate::btf::Type,
    target: &Btf,
    tt: &crate::btf::Type,
    behind_ptr: bool,
    level: u32,
) -> Result<bool, BtfError> {
    let (lm, tm) = (lt.kind.members(), tt.kind.members());
    if lm.len() > tm.len() {
        return Ok(false);
    }
    for l in lm {
        let mut matched = false;
        for t in tm {
            if !names_match(local, l.name_off, target, t.name_off) {
                continue;
            }
            if do_types_match(local, l.type_id, target, t.type_id, behind_ptr, level - 1)? {
                matched = true;
                break;
            }
        }
        if !matched {
            return Ok(false);
        }
    }
    Ok(true)
}
