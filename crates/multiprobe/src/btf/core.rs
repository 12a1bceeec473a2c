//! CO-RE: relocating a program's field offsets, type ids and enum values from the types it
//! was compiled against (local BTF) to the types of the running kernel (target BTF).
//!
//! A BPF program reading `task->pid` is compiled once, but the offset of `pid` differs
//! between kernel versions and configurations. clang therefore records, next to each such
//! instruction, a relocation: the local type (`struct task_struct` as the program declared
//! it), an access string (`0:1`: element 0 of the root, then member 1) and what the
//! instruction needs (an offset, a size, whether the field exists, ...). At load time the
//! access is replayed by *name* in the kernel's BTF: `task_struct` is looked up (ignoring a
//! `___flavor` suffix), `pid` is found (even inside anonymous structs and unions), and the
//! instruction is patched with the kernel's value. When the kernel lacks the type or field,
//! existence checks become 0 and anything else is poisoned: replaced by a call to an invalid
//! helper, which the verifier only rejects if the program can actually reach it.
//!
//! The semantics are libbpf's (`relo_core.c`); the submodules follow its stages:
//! [`spec`] parses access strings and matches them against target candidates, [`compat`]
//! holds the type compatibility relations, [`calc`] computes the values to patch in, and
//! [`patch`] rewrites the instructions.

mod calc;
mod compat;
mod patch;
mod spec;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use super::{Btf, BtfError, TypeKind};
use crate::sys::Insn;
use calc::RelocValue;
use spec::{Match, Spec};

pub use compat::{types_are_compat, types_match};

/// `enum bpf_core_relo_kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CoreReloKind {
    /// Byte offset of a field (or array element) from the start of the root type.
    FieldByteOffset,
    /// Size in bytes of a field (for a bitfield: of the load that contains it).
    FieldByteSize,
    /// Whether a field exists (1 or 0).
    FieldExists,
    /// Whether a field is a signed integer or signed enum (1 or 0).
    FieldSigned,
    /// Left shift that puts a bitfield's top bit at bit 63 of a 64-bit load.
    FieldLshiftU64,
    /// Right shift that then brings the bitfield down to bit 0.
    FieldRshiftU64,
    /// The type's id in the program's own BTF.
    TypeIdLocal,
    /// The id of the matching type in the kernel's BTF.
    TypeIdTarget,
    /// Whether the kernel has a compatible type (1 or 0).
    TypeExists,
    /// Size in bytes of the kernel's type.
    TypeSize,
    /// Whether the kernel's enum has this enumerator (1 or 0).
    EnumvalExists,
    /// The value of the enumerator in the kernel.
    EnumvalValue,
    /// Whether the kernel's type matches the local one strictly (`bpf_core_types_match`).
    TypeMatches,
    /// A kind number this crate does not know.
    Unknown(u32),
}

impl CoreReloKind {
    /// Decodes the kind number of a `.BTF.ext` record.
    pub fn from_u32(v: u32) -> CoreReloKind {
        use CoreReloKind::*;
        match v {
            0 => FieldByteOffset,
            1 => FieldByteSize,
            2 => FieldExists,
            3 => FieldSigned,
            4 => FieldLshiftU64,
            5 => FieldRshiftU64,
            6 => TypeIdLocal,
            7 => TypeIdTarget,
            8 => TypeExists,
            9 => TypeSize,
            10 => EnumvalExists,
            11 => EnumvalValue,
            12 => TypeMatches,
            other => Unknown(other),
        }
    }

    /// Whether resolving this kind needs the kernel's BTF (all but `TypeIdLocal`).
    pub fn needs_target(self) -> bool {
        self != CoreReloKind::TypeIdLocal
    }

    /// libbpf's short name of the kind, as its logs print it (`byte_off`, `type_size`, ...).
    pub fn as_str(self) -> &'static str {
        use CoreReloKind::*;
        match self {
            FieldByteOffset => "byte_off",
            FieldByteSize => "byte_sz",
            FieldExists => "field_exists",
            FieldSigned => "signed",
            FieldLshiftU64 => "lshift_u64",
            FieldRshiftU64 => "rshift_u64",
            TypeIdLocal => "local_type_id",
            TypeIdTarget => "target_type_id",
            TypeExists => "type_exists",
            TypeSize => "type_size",
            EnumvalExists => "enumval_exists",
            EnumvalValue => "enumval_value",
            TypeMatches => "type_matches",
            Unknown(_) => "unknown",
        }
    }

    fn is_field_based(self) -> bool {
        use CoreReloKind::*;
        matches!(self, FieldByteOffset | FieldByteSize | FieldExists | FieldSigned | FieldLshiftU64 | FieldRshiftU64)
    }

    fn is_type_based(self) -> bool {
        use CoreReloKind::*;
        matches!(self, TypeIdLocal | TypeIdTarget | TypeExists | TypeSize | TypeMatches)
    }

    fn is_enumval_based(self) -> bool {
        matches!(self, CoreReloKind::EnumvalExists | CoreReloKind::EnumvalValue)
    }
}

/// `struct bpf_core_relo`: one relocation record of `.BTF.ext`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoreRelo {
    /// Byte offset of the instruction in its ELF section.
    pub insn_off: u32,
    /// Local type id the access string starts from.
    pub type_id: u32,
    /// Offset of the access string ("0:1:2") in the local BTF strings.
    pub access_str_off: u32,
    /// What the instruction needs from the target.
    pub kind: CoreReloKind,
}

/// Why a CO-RE relocation could not be applied.
///
/// Every message starts with the relocation it is about, as `struct task_struct.pid
/// (byte_off, access 0:1)`: the local root type, the field path the access string spells,
/// the relocation kind and the raw access string.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs)] // variant fields are named in the messages
pub enum CoreError {
    /// The access string is malformed or does not fit the local type (clang never writes
    /// such records: the object is corrupt or was produced by something else).
    #[error("CO-RE: {what}: invalid access string: {reason}")]
    BadAccess { what: String, reason: String },
    /// A kind number this crate does not know (a newer clang).
    #[error("CO-RE: {what}: unknown relocation kind {kind}")]
    UnknownKind { what: String, kind: u32 },
    /// Relocations against anonymous types cannot be resolved: candidates are found by name.
    #[error("CO-RE: {what}: relocations against anonymous types are not supported")]
    AnonymousType { what: String },
    /// Several target types match the local one but give different results.
    #[error("CO-RE: {what}: ambiguous: {detail}")]
    Ambiguous { what: String, detail: String },
    /// The relocation's value cannot be computed for this field (e.g. a bitfield that no
    /// 64-bit load covers, or a bitfield-only kind used on an array element).
    #[error("CO-RE: {what}: {reason}")]
    Unsatisfiable { what: String, reason: String },
    /// The instruction at `insn` (index in the section) is not one this relocation can patch.
    #[error("CO-RE: {what}: instruction #{insn} cannot be patched: {reason}")]
    BadInsn { what: String, insn: usize, reason: String },
    /// The local or target BTF is malformed (bad type id, reference loop, ...).
    #[error("CO-RE: {what}: {source}")]
    Btf {
        what: String,
        #[source]
        source: BtfError,
    },
}

/// What applying one relocation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoreOutcome {
    /// The instruction now holds the target's value.
    Applied,
    /// The target kernel lacks what the relocation refers to: the instruction was replaced by
    /// a call to an invalid helper, so the verifier rejects the program only if that code is
    /// reachable (guarded code, e.g. behind `bpf_core_field_exists`, still loads).
    ///
    /// `reason` names the relocation and what is missing, e.g. `struct task_struct.foo
    /// (byte_off, access 0:9): the target's struct task_struct has no field foo`.
    Poisoned {
        /// What was missing.
        reason: String,
    },
}

/// The helper id written into poisoned instructions (libbpf's "bad relo"): a reachable one
/// makes the verifier fail with `invalid func unknown#195896080`.
pub const POISON_HELPER_ID: i32 = 0xbad2310;

/// Why a stage failed, before the relocation's description is attached.
#[derive(Debug)]
enum Problem {
    Btf(BtfError),
    BadAccess(String),
    Unsatisfiable(String),
    Ambiguous(String),
}

impl From<BtfError> for Problem {
    fn from(e: BtfError) -> Problem {
        Problem::Btf(e)
    }
}

impl Problem {
    fn into_error(self, what: String) -> CoreError {
        match self {
            Problem::Btf(source) => CoreError::Btf { what, source },
            Problem::BadAccess(reason) => CoreError::BadAccess { what, reason },
            Problem::Unsatisfiable(reason) => CoreError::Unsatisfiable { what, reason },
            Problem::Ambiguous(detail) => CoreError::Ambiguous { what, detail },
        }
    }
}

/// Applies the relocations of one object against one target BTF, remembering between calls
/// which target types are candidates for each local type.
///
/// Candidates are looked up once per local type and kept. Like libbpf, a candidate that
/// fails to match one relocation is dropped for the later relocations of the same local
/// type, as long as another candidate matched; loaders should therefore relocate all the
/// records of an object with one relocator, in record order, as libbpf does.
pub struct CoreRelocator<'a> {
    local: &'a Btf,
    target: &'a Btf,
    /// Local root type id -> remaining target candidates, in id order.
    cands: HashMap<u32, Vec<u32>>,
}

impl<'a> CoreRelocator<'a> {
    /// A relocator for programs described by `local`, to run on the kernel described by
    /// `target`.
    pub fn new(local: &'a Btf, target: &'a Btf) -> CoreRelocator<'a> {
        CoreRelocator { local, target, cands: HashMap::new() }
    }

    /// Applies one relocation to `insns`, the instructions of the ELF section the record
    /// belongs to (`relo.insn_off / 8` indexes it).
    pub fn relocate(&mut self, relo: &CoreRelo, insns: &mut [Insn]) -> Result<CoreOutcome, CoreError> {
        let local = self.local;
        if let CoreReloKind::Unknown(kind) = relo.kind {
            return Err(CoreError::UnknownKind { what: describe(local, relo, None), kind });
        }
        let insn = insn_index(relo, insns.len()).map_err(|reason| CoreError::BadInsn {
            what: describe(local, relo, None),
            insn: (relo.insn_off / 8) as usize,
            reason,
        })?;
        let local_spec = spec::parse_local(local, relo).map_err(|p| p.into_error(describe(local, relo, None)))?;
        let what = describe(local, relo, Some(&local_spec));

        let (value, missing) = if relo.kind == CoreReloKind::TypeIdLocal {
            // The id of a type in the program's own BTF: nothing to look up. (clang's value
            // is not checked: linking objects renumbers types.)
            let id = u64::from(relo.type_id);
            (RelocValue::fixed(id), None)
        } else {
            if local.name(relo.type_id).is_empty() {
                return Err(CoreError::AnonymousType { what });
            }
            self.resolve(relo, &local_spec).map_err(|p| p.into_error(what.clone()))?
        };

        let applied = patch::patch_insn(insns, insn, &value).map_err(|reason| CoreError::BadInsn {
            what: what.clone(),
            insn,
            reason,
        })?;
        Ok(match applied {
            patch::Patched::Applied => CoreOutcome::Applied,
            patch::Patched::Poisoned if value.poison => CoreOutcome::Poisoned {
                reason: format!("{what}: {}", missing.unwrap_or_else(|| "not found in the target".into())),
            },
            patch::Patched::Poisoned => CoreOutcome::Poisoned {
                reason: format!(
                    "{what}: the target's field is {} bytes where the program's is {}, and \
                     only loads of pointers and unsigned integers can be resized",
                    value.new_sz, value.orig_sz
                ),
            },
        })
    }

    /// Matches the local spec against every candidate and computes the value to patch in,
    /// with, when no candidate matched, why not.
    fn resolve(&mut self, relo: &CoreRelo, local_spec: &Spec<'a>) -> Result<(RelocValue, Option<String>), Problem> {
        let (local, target) = (self.local, self.target);
        let cands = self.candidates(relo.type_id)?;
        let mut matched: Vec<u32> = Vec::new();
        let mut first: Option<(RelocValue, Spec<'a>)> = None;
        let mut first_miss: Option<String> = None;
        for &cand in &cands {
            let cand_spec = match spec::match_candidate(local_spec, relo.kind, target, cand)? {
                Match::Found(s) => s,
                Match::Missing(why) => {
                    first_miss.get_or_insert(why);
                    continue;
                }
            };
            let value = calc::calc_relo(relo.kind, local, local_spec, Some(&cand_spec))?;
            if let Some((first_value, first_spec)) = &first {
                if cand_spec.bit_offset != first_spec.bit_offset {
                    return Err(Problem::Ambiguous(format!(
                        "target types [{}] and [{}] put the field at different bit offsets \
                         ({} and {})",
                        first_spec.root_type_id, cand, first_spec.bit_offset, cand_spec.bit_offset
                    )));
                }
                if value.poison != first_value.poison || value.new_val != first_value.new_val {
                    return Err(Problem::Ambiguous(format!(
                        "target types [{}] and [{}] give different values ({} and {})",
                        first_spec.root_type_id,
                        cand,
                        first_value.describe(),
                        value.describe()
                    )));
                }
            } else {
                first = Some((value, cand_spec));
            }
            matched.push(cand);
        }
        if let Some((value, _)) = first {
            // Keep only what matched, for the next relocations of this type (libbpf does too).
            self.cands.insert(relo.type_id, matched);
            return Ok((value, None));
        }
        let why = match first_miss {
            Some(why) if cands.len() > 1 => format!(
                "{why} (and {} other candidate{} did not match either)",
                cands.len() - 1,
                if cands.len() == 2 { "" } else { "s" }
            ),
            Some(why) => why,
            None => no_candidate_reason(local, relo.type_id),
        };
        let value = calc::calc_relo(relo.kind, local, local_spec, None)?;
        Ok((value, Some(why)))
    }

    /// Target types whose essential name (flavor suffix dropped) equals the local type's
    /// and whose kind is compatible, in id order (`bpf_core_add_cands`).
    fn candidates(&mut self, local_id: u32) -> Result<Vec<u32>, Problem> {
        if let Some(c) = self.cands.get(&local_id) {
            return Ok(c.clone());
        }
        let local_t = self.local.type_by_id(local_id)?;
        let essential = spec::essential_name(self.local.name(local_id));
        let target = self.target;
        let mut out: Vec<u32> = target
            .ids_by_name(essential)
            .iter()
            .copied()
            .chain(flavored_ids(target, essential))
            .filter(|&id| target.type_by_id(id).is_ok_and(|t| compat::kinds_compatible(&t.kind, &local_t.kind)))
            .collect();
        out.sort_unstable();
        out.dedup();
        self.cands.insert(local_id, out.clone());
        Ok(out)
    }
}

/// Applies one relocation to the instructions of the section it belongs to.
///
/// Resolves the record on its own; a loader relocating an object should use one
/// [`CoreRelocator`] for all its records, which keeps candidates between records (and
/// prunes them as libbpf does).
pub fn relocate(local: &Btf, target: &Btf, relo: &CoreRelo, insns: &mut [Insn]) -> Result<CoreOutcome, CoreError> {
    CoreRelocator::new(local, target).relocate(relo, insns)
}

/// The instruction index of a record, checked against the section.
fn insn_index(relo: &CoreRelo, len: usize) -> Result<usize, String> {
    if relo.insn_off % 8 != 0 {
        return Err(format!("offset {} is not a multiple of the instruction size", relo.insn_off));
    }
    let idx = (relo.insn_off / 8) as usize;
    if idx >= len {
        return Err(format!("the section has only {len} instructions"));
    }
    Ok(idx)
}

/// Target types named `essential___flavor`. Kernel BTF has a handful (`nf_conn___init`),
/// but libbpf matches them; every such name is a string starting with `essential___`, which
/// one substring scan of the string section finds faster than a walk over all the types.
fn flavored_ids(target: &Btf, essential: &str) -> Vec<u32> {
    let pattern = format!("{essential}___");
    let mut out = Vec::new();
    for pos in memchr::memmem::find_iter(&target.strings, pattern.as_bytes()) {
        if pos > 0 && target.strings[pos - 1] != 0 {
            continue;
        }
        if let Ok(name) = target.string_at(pos as u32)
            && spec::essential_name(name) == essential
        {
            out.extend_from_slice(target.ids_by_name(name));
        }
    }
    out
}

/// Why there is no candidate at all.
fn no_candidate_reason(local: &Btf, local_id: u32) -> String {
    let kind = local.type_by_id(local_id).map_or("type", |t| t.kind.name());
    let essential = spec::essential_name(local.name(local_id));
    format!("the target has no {kind} named {essential} (flavor suffixes ignored)")
}

/// `struct task_struct.comm[3] (byte_off, access 0:2:3)`: the relocation as a user wrote
/// it, from the parsed local spec when there is one.
fn describe(local: &Btf, relo: &CoreRelo, spec: Option<&Spec>) -> String {
    let mut s = describe_type(local, relo.type_id);
    if let Some(spec) = spec {
        if relo.kind.is_field_based() {
            for (i, acc) in spec.access.iter().enumerate() {
                match acc.name {
                    Some(name) => {
                        s.push('.');
                        s.push_str(name);
                    }
                    None if i > 0 || acc.idx > 0 => s.push_str(&format!("[{}]", acc.idx)),
                    None => {}
                }
            }
        } else if relo.kind.is_enumval_based()
            && let Some(name) = spec.access.first().and_then(|a| a.name)
        {
            s.push_str("::");
            s.push_str(name);
        }
    }
    let access = local.string_at(relo.access_str_off).unwrap_or("<invalid>");
    if relo.kind.is_type_based() && access == "0" {
        format!("{s} ({})", relo.kind.as_str())
    } else {
        format!("{s} ({}, access {access})", relo.kind.as_str())
    }
}

/// `struct task_struct`, `union <anon>`, `int`: a type as messages name it.
fn describe_type(btf: &Btf, id: u32) -> String {
    match btf.type_by_id(id) {
        Ok(t) => {
            let name = btf.name(id);
            match (&t.kind, name.is_empty()) {
                (TypeKind::Void, _) => "void".into(),
                (k, true) => format!("{} <anon>", k.name()),
                (TypeKind::Int { .. } | TypeKind::Float { .. }, false) => name.into(),
                (k, false) => format!("{} {name}", k.name()),
            }
        }
        Err(_) => format!("type [{id}] (no such id)"),
    }
}
