//! The relocation record and what applying it gives: [`CoreRelo`] and its kind, the
//! outcome, and the errors (with the stage-level [`Problem`] the stages return before the
//! relocation's description is attached).

use crate::btf::{Btf, BtfError, TypeKind};

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

    pub(super) fn is_field_based(self) -> bool {
        use CoreReloKind::*;
        matches!(self, FieldByteOffset | FieldByteSize | FieldExists | FieldSigned | FieldLshiftU64 | FieldRshiftU64)
    }

    pub(super) fn is_type_based(self) -> bool {
        use CoreReloKind::*;
        matches!(self, TypeIdLocal | TypeIdTarget | TypeExists | TypeSize | TypeMatches)
    }

    pub(super) fn is_enumval_based(self) -> bool {
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
pub(super) enum Problem {
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
    pub(super) fn into_error(self, what: String) -> CoreError {
        match self {
            Problem::Btf(source) => CoreError::Btf { what, source },
            Problem::BadAccess(reason) => CoreError::BadAccess { what, reason },
            Problem::Unsatisfiable(reason) => CoreError::Unsatisfiable { what, reason },
            Problem::Ambiguous(detail) => CoreError::Ambiguous { what, detail },
        }
    }
}

/// `struct task_struct`, `union <anon>`, `int`: a type as messages name it.
pub(super) fn describe_type(btf: &Btf, id: u32) -> String {
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
