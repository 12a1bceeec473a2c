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
//! [`relo`] holds the record, its outcome and errors, [`spec`] parses access strings and
//! matches them against target candidates, [`compat`] holds the type compatibility
//! relations and flavor-free names, [`calc`] computes the values to patch in, and
//! [`patch`] rewrites the instructions.

mod calc;
mod compat;
mod patch;
mod relo;
mod spec;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use super::Btf;
use crate::sys::Insn;
use calc::RelocValue;
use compat::essential_name;
use relo::{Problem, describe_type};
use spec::{Match, Spec};

pub use compat::{types_are_compat, types_match};
pub use relo::{CoreError, CoreOutcome, CoreRelo, CoreReloKind, POISON_HELPER_ID};

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
        let essential = essential_name(self.local.name(local_id));
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
            && essential_name(name) == essential
        {
            out.extend_from_slice(target.ids_by_name(name));
        }
    }
    out
}

/// Why there is no candidate at all.
fn no_candidate_reason(local: &Btf, local_id: u32) -> String {
    let kind = local.type_by_id(local_id).map_or("type", |t| t.kind.name());
    let essential = essential_name(local.name(local_id));
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
