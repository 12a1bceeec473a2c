//! Access specs (libbpf's `bpf_core_spec`): an access string parsed against the local type,
//! and the same access replayed by name in a target candidate.
//!
//! The raw access string has one index per level of the C expression, anonymous members
//! included (`0:1:2:3` for `&s->a[3]` when `a` sits in an anonymous struct). Only named
//! fields and array indices carry meaning across kernels, so a spec keeps those as
//! *accessors*; matching a target looks each named field up by name, descending into
//! anonymous members, and checks array bounds, accumulating the target's bit offset.

use super::compat::{self, essential_name};
use super::relo::{CoreRelo, CoreReloKind, Problem, describe_type};
use crate::btf::{Btf, TypeKind};

/// Most levels an access may have (libbpf's `BPF_CORE_SPEC_MAX_LEN`). Also bounds the
/// search through nested anonymous members, so self-referencing BTF cannot recurse forever.
pub(super) const MAX_SPEC_LEN: usize = 64;

/// One meaningful step of an access: a named field, an enumerator or an array index.
#[derive(Debug, Clone)]
pub(super) struct Accessor<'b> {
    /// For a field: the struct or union holding it; for an array index: the element type;
    /// for the first accessor: the root type. Modifiers are skipped in all cases.
    pub type_id: u32,
    /// Member, enumerator or element index.
    pub idx: u32,
    /// Field or enumerator name; `None` for array indices.
    pub name: Option<&'b str>,
}

/// A resolved access in one BTF.
#[derive(Debug, Clone)]
pub(super) struct Spec<'b> {
    pub btf: &'b Btf,
    /// The relocation's root type, modifiers not skipped.
    pub root_type_id: u32,
    /// Named fields and array indices (empty for type-based kinds).
    pub access: Vec<Accessor<'b>>,
    /// Every index of the access, anonymous members included.
    pub raw: Vec<u32>,
    /// Bit offset of the accessed field from the start of the root.
    pub bit_offset: u32,
}

impl<'b> Spec<'b> {
    fn new(btf: &'b Btf, root_type_id: u32) -> Spec<'b> {
        Spec { btf, root_type_id, access: Vec::new(), raw: Vec::new(), bit_offset: 0 }
    }

    fn add_bits(&mut self, bits: u64) -> Result<(), Problem> {
        self.bit_offset = u64::from(self.bit_offset)
            .checked_add(bits)
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| Problem::BadAccess("the offset overflows 32 bits".into()))?;
        Ok(())
    }
}

/// The outcome of matching a local spec against one target candidate.
#[derive(Debug)]
pub(super) enum Match<'b> {
    Found(Spec<'b>),
    /// The candidate does not have what the access needs, and why.
    Missing(String),
}

/// Parses `0:1:2` into its indices, as strictly as libbpf (non-negative 32-bit ints,
/// single colons, at most [`MAX_SPEC_LEN`] of them).
pub(super) fn parse_access(s: &str) -> Result<Vec<u32>, String> {
    if s.is_empty() {
        return Err("the access string is empty".into());
    }
    let mut out = Vec::new();
    for part in s.split(':') {
        if part.is_empty() || !part.bytes().all(|c| c.is_ascii_digit()) {
            return Err(format!("{s:?} is not a list of indices separated by ':'"));
        }
        let idx: i32 = part.parse().map_err(|_| format!("index {part} in {s:?} is too large"))?;
        if out.len() == MAX_SPEC_LEN {
            return Err(format!("{s:?} has more than {MAX_SPEC_LEN} levels"));
        }
        out.push(idx as u32);
    }
    Ok(out)
}

/// Parses the relocation's access string against the local type (`bpf_core_parse_spec`).
pub(super) fn parse_local<'b>(btf: &'b Btf, relo: &CoreRelo) -> Result<Spec<'b>, Problem> {
    let access = btf
        .string_at(relo.access_str_off)
        .map_err(|_| Problem::BadAccess(format!("string offset {} is outside the BTF strings", relo.access_str_off)))?;
    let mut spec = Spec::new(btf, relo.type_id);
    if relo.kind.is_type_based() {
        if access != "0" {
            return Err(Problem::BadAccess(format!(
                "type-based relocations take the access string \"0\", not {access:?}"
            )));
        }
        btf.type_by_id(relo.type_id)?;
        return Ok(spec);
    }
    spec.raw = parse_access(access).map_err(Problem::BadAccess)?;

    let mut id = btf.skip_modifiers(relo.type_id)?;
    let first = spec.raw[0];
    spec.access.push(Accessor { type_id: id, idx: first, name: None });

    if relo.kind.is_enumval_based() {
        let TypeKind::Enum { values, .. } = &btf.type_by_id(id)?.kind else {
            return Err(Problem::BadAccess(format!(
                "enum value relocation on {}, which is not an enum",
                describe_type(btf, id)
            )));
        };
        if spec.raw.len() > 1 {
            return Err(Problem::BadAccess("an enum value access has exactly one index".into()));
        }
        let value = values.get(first as usize).ok_or_else(|| {
            Problem::BadAccess(format!(
                "enumerator {first} does not exist: {} has {}",
                describe_type(btf, id),
                values.len()
            ))
        })?;
        spec.access[0].name = Some(btf.string_at(value.name_off)?);
        return Ok(spec);
    }
    if !relo.kind.is_field_based() {
        return Err(Problem::BadAccess(format!("{} relocations have no access string", relo.kind.as_str())));
    }

    let size = btf.resolve_size(id)?;
    spec.add_bits(u64::from(first) * u64::from(size) * 8)?;
    for pos in 1..spec.raw.len() {
        id = btf.skip_modifiers(id)?;
        let idx = spec.raw[pos];
        let t = btf.type_by_id(id)?;
        match &t.kind {
            TypeKind::Struct { members, .. } | TypeKind::Union { members, .. } => {
                let m = members.get(idx as usize).ok_or_else(|| {
                    Problem::BadAccess(format!(
                        "member {idx} does not exist: {} has {}",
                        describe_type(btf, id),
                        members.len()
                    ))
                })?;
                spec.add_bits(u64::from(m.bit_offset(t.kind_flag)))?;
                if m.name_off != 0 {
                    let name = btf.string_at(m.name_off)?;
                    if name.is_empty() {
                        return Err(Problem::BadAccess(format!(
                            "member {idx} of {} has an empty name",
                            describe_type(btf, id)
                        )));
                    }
                    spec.access.push(Accessor { type_id: id, idx, name: Some(name) });
                }
                id = m.type_id;
            }
            TypeKind::Array { elem, nelems, .. } => {
                let nelems = *nelems;
                id = btf.skip_modifiers(*elem)?;
                let flex = is_flex_array(btf, spec.access.last(), nelems);
                if !flex && idx >= nelems {
                    return Err(Problem::BadAccess(format!("index {idx} is past the end of an array of {nelems}")));
                }
                spec.access.push(Accessor { type_id: id, idx, name: None });
                let size = btf.resolve_size(id)?;
                spec.add_bits(u64::from(idx) * u64::from(size) * 8)?;
            }
            other => {
                return Err(Problem::BadAccess(format!(
                    "level {pos} indexes into {}, a {}, which has neither members nor elements",
                    describe_type(btf, id),
                    other.name()
                )));
            }
        }
    }
    Ok(spec)
}

/// Whether an array of `nelems` reached through accessor `prev` is a flexible array member:
/// zero-sized and the last member of its struct, so any index is allowed.
fn is_flex_array(btf: &Btf, prev: Option<&Accessor>, nelems: u32) -> bool {
    let Some(prev) = prev else { return false };
    if prev.name.is_none() || nelems > 0 {
        return false;
    }
    btf.type_by_id(prev.type_id).is_ok_and(|t| t.kind.members().len().checked_sub(1) == Some(prev.idx as usize))
}

/// Replays the local access in target type `targ_id` (`bpf_core_spec_match`).
pub(super) fn match_candidate<'b>(
    local: &Spec,
    kind: CoreReloKind,
    target: &'b Btf,
    targ_id: u32,
) -> Result<Match<'b>, Problem> {
    let mut spec = Spec::new(target, targ_id);

    if kind.is_type_based() {
        let ok = if kind == CoreReloKind::TypeMatches {
            compat::types_match(local.btf, local.root_type_id, target, targ_id)?
        } else {
            compat::types_are_compat(local.btf, local.root_type_id, target, targ_id)?
        };
        return Ok(if ok {
            Match::Found(spec)
        } else {
            Match::Missing(format!(
                "the target's {} [{targ_id}] does not {} the local one",
                describe_type(target, targ_id),
                if kind == CoreReloKind::TypeMatches { "match" } else { "have a layout compatible with" }
            ))
        });
    }

    if kind.is_enumval_based() {
        let id = target.skip_modifiers(targ_id)?;
        let TypeKind::Enum { values, .. } = &target.type_by_id(id)?.kind else {
            return Ok(Match::Missing(format!("the target's {} is not an enum", describe_type(target, id))));
        };
        let local_name = local.access[0].name.unwrap_or("");
        let wanted = essential_name(local_name);
        for (i, v) in values.iter().enumerate() {
            let name = target.string_at(v.name_off).unwrap_or("");
            if essential_name(name) == wanted {
                spec.access.push(Accessor { type_id: id, idx: i as u32, name: Some(name) });
                spec.raw.push(i as u32);
                return Ok(Match::Found(spec));
            }
        }
        return Ok(Match::Missing(format!(
            "the target's {} has no enumerator {local_name}",
            describe_type(target, id)
        )));
    }

    let mut targ_id = targ_id;
    for (i, acc) in local.access.iter().enumerate() {
        targ_id = target.skip_modifiers(targ_id)?;
        if let Some(name) = acc.name {
            match match_member(local.btf, acc, target, targ_id, &mut spec)? {
                Member::Found(next) => targ_id = next,
                Member::Missing(None) => {
                    return Ok(Match::Missing(format!(
                        "the target's {} has no field {name}",
                        describe_type(target, targ_id)
                    )));
                }
                Member::Missing(Some(found_type)) => {
                    let local_member = local_member_type(local.btf, acc);
                    return Ok(Match::Missing(format!(
                        "field {name} of the target's {} is of type {}, incompatible with the \
                         program's {}",
                        describe_type(target, targ_id),
                        describe_type(target, target.skip_modifiers(found_type)?),
                        describe_type(local.btf, local.btf.skip_modifiers(local_member)?),
                    )));
                }
            }
            continue;
        }
        // The first accessor indexes the root itself; later ones index an array.
        if i > 0 {
            let TypeKind::Array { elem, nelems, .. } = target.type_by_id(targ_id)?.kind else {
                return Ok(Match::Missing(format!(
                    "the target's {} is not an array, cannot take element {}",
                    describe_type(target, targ_id),
                    acc.idx
                )));
            };
            let flex = is_flex_array(target, spec.access.last(), nelems);
            if !flex && acc.idx >= nelems {
                return Ok(Match::Missing(format!(
                    "element {} is past the end of the target's array of {nelems}",
                    acc.idx
                )));
            }
            targ_id = target.skip_modifiers(elem)?;
        }
        if spec.raw.len() == MAX_SPEC_LEN {
            return Err(too_deep());
        }
        spec.access.push(Accessor { type_id: targ_id, idx: acc.idx, name: None });
        spec.raw.push(acc.idx);
        let size = target.resolve_size(targ_id)?;
        spec.add_bits(u64::from(acc.idx) * u64::from(size) * 8)?;
    }
    Ok(Match::Found(spec))
}

/// The outcome of looking a field up in a target struct or union.
enum Member {
    /// Found and compatible: the id of the field's type, to continue the access from.
    Found(u32),
    /// Not found; or found with an incompatible type (its id), which stops the search at the
    /// level it was found, like libbpf.
    Missing(Option<u32>),
}

/// Finds the field named by local accessor `acc` in target composite `targ_id`, descending
/// into anonymous members, and extends `spec` with the path to it (`bpf_core_match_member`).
fn match_member<'b>(
    local: &Btf,
    acc: &Accessor,
    target: &'b Btf,
    targ_id: u32,
    spec: &mut Spec<'b>,
) -> Result<Member, Problem> {
    let targ_id = target.skip_modifiers(targ_id)?;
    let targ_t = target.type_by_id(targ_id)?;
    if !targ_t.kind.is_composite() {
        return Ok(Member::Missing(None));
    }
    let local_name = acc.name.unwrap_or("");
    let mut incompatible = None;
    for (i, m) in targ_t.kind.members().iter().enumerate() {
        if spec.raw.len() == MAX_SPEC_LEN {
            return Err(too_deep());
        }
        // Speculate this member is the one, undo below if not.
        let bits = m.bit_offset(targ_t.kind_flag);
        let (saved_bits, saved_raw) = (spec.bit_offset, spec.raw.len());
        spec.add_bits(u64::from(bits))?;
        spec.raw.push(i as u32);

        let name = target.string_at(m.name_off).unwrap_or("");
        if name.is_empty() {
            match match_member(local, acc, target, m.type_id, spec)? {
                Member::Found(next) => return Ok(Member::Found(next)),
                Member::Missing(inc) => incompatible = incompatible.or(inc),
            }
        } else if name == local_name {
            if compat::fields_are_compat(local, local_member_type(local, acc), target, m.type_id)? {
                spec.access.push(Accessor { type_id: targ_id, idx: i as u32, name: Some(name) });
                return Ok(Member::Found(m.type_id));
            }
            spec.bit_offset = saved_bits;
            spec.raw.truncate(saved_raw);
            return Ok(Member::Missing(Some(m.type_id)));
        }
        spec.bit_offset = saved_bits;
        spec.raw.truncate(saved_raw);
    }
    Ok(Member::Missing(incompatible))
}

/// The type of the local member a named accessor designates (checked by [`parse_local`]).
fn local_member_type(local: &Btf, acc: &Accessor) -> u32 {
    local.type_by_id(acc.type_id).ok().and_then(|t| t.kind.members().get(acc.idx as usize)).map_or(0, |m| m.type_id)
}

fn too_deep() -> Problem {
    Problem::Unsatisfiable(format!("the target's type nests more than {MAX_SPEC_LEN} levels deep along this access"))
}
