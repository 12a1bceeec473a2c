//! CO-RE: relocating a program's field offsets, type ids and enum values from the types it
//! was compiled against (local BTF) to the types of the running kernel (target BTF).

use super::{Btf, BtfError};
use crate::sys::Insn;

/// `enum bpf_core_relo_kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoreReloKind {
    FieldByteOffset,
    FieldByteSize,
    FieldExists,
    FieldSigned,
    FieldLshiftU64,
    FieldRshiftU64,
    TypeIdLocal,
    TypeIdTarget,
    TypeExists,
    TypeSize,
    EnumvalExists,
    EnumvalValue,
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
    pub kind: CoreReloKind,
}

/// Why a CO-RE relocation could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("placeholder")]
    Btf(#[from] BtfError),
}

/// What applying one relocation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoreOutcome {
    /// The instruction now holds the target's value.
    Applied,
    /// The target kernel lacks what the relocation refers to: the instruction was replaced by
    /// a call to an invalid helper, so the verifier rejects the program only if that code is
    /// reachable (guarded code, e.g. behind `bpf_core_field_exists`, still loads).
    Poisoned { reason: String },
}

/// Applies one relocation to the instructions of the section it belongs to.
pub fn relocate(
    _local: &Btf,
    _target: &Btf,
    _relo: &CoreRelo,
    _insns: &mut [Insn],
) -> Result<CoreOutcome, CoreError> {
    todo!("CO-RE relocation")
}

/// Whether two types are compatible in libbpf's relaxed CO-RE sense (`bpf_core_types_are_compat`):
/// used for `TypeIdTarget`/`TypeExists`/`TypeSize` and for checking a kfunc extern's prototype
/// against the kernel's.
pub fn types_are_compat(
    _local: &Btf,
    _local_id: u32,
    _target: &Btf,
    _target_id: u32,
) -> Result<bool, BtfError> {
    todo!("types_are_compat")
}
