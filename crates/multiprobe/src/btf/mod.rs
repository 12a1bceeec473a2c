//! BPF Type Format: parsing, lookup and re-encoding, with no system calls.
//!
//! Three users: the object loader (map definitions and global data are described by the
//! program's `.BTF`), CO-RE relocations and kfunc calls (resolved against the kernel's
//! `/sys/kernel/btf/vmlinux`, see [`kernel`]), and the kernel itself (the program BTF is
//! loaded so programs get function and line info and maps get key and value types).

mod core;
mod ext;
mod fixup;
pub(crate) mod kconfig;
pub mod kernel;
mod parse;
pub(crate) mod raw;
#[allow(missing_docs)] // kinds and fields as in include/uapi/linux/btf.h
mod types;

pub use self::core::{
    CoreError, CoreOutcome, CoreRelo, CoreReloKind, CoreRelocator, POISON_HELPER_ID, relocate, types_are_compat,
    types_match,
};
pub use ext::{BtfExt, ExtRecords, FuncInfo, LineInfo};
pub use fixup::{Extern, ExternKind, SectionLayout, prepare_for_kernel};
pub use types::*;

use std::sync::OnceLock;

/// Errors in BTF data or in a lookup into it.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs)] // variant fields are named in the messages
pub enum BtfError {
    /// The data ends before a structure it declares.
    #[error("BTF is truncated: {what} runs past the end of the data")]
    Truncated { what: &'static str },
    /// Not BTF at all, or BTF of the other byte order.
    #[error("not BTF: bad magic {magic:#06x} (big-endian BTF is not supported)")]
    BadMagic { magic: u16 },
    /// A BTF version this crate does not know.
    #[error("unsupported BTF version {0}")]
    UnsupportedVersion(u8),
    /// A type of a kind number this crate does not know.
    #[error("BTF type {id} has unknown kind {kind}")]
    UnknownKind { id: u32, kind: u32 },
    /// A string offset outside the string section, or not valid UTF-8.
    #[error("BTF string offset {0} is invalid")]
    BadString(u32),
    /// A reference to a type id that does not exist.
    #[error("BTF type id {0} does not exist")]
    BadTypeId(u32),
    /// A type that cannot be sized (a function, a forward declaration, a loop).
    #[error("BTF type {id} ({kind}) has no size")]
    Unsized { id: u32, kind: &'static str },
    /// A type was not of the kind the caller needed.
    #[error("BTF type {id} is a {found}, expected {expected}")]
    WrongKind { id: u32, found: &'static str, expected: &'static str },
    /// The kernel's BTF could not be read.
    #[error("cannot read kernel BTF at {path}: {source}")]
    KernelBtf { path: String, source: std::io::Error },
}

/// A parsed BTF blob: types indexed by id (id 0 is `void`) and the string section.
#[derive(Debug, Clone)]
pub struct Btf {
    types: Vec<Type>,
    strings: Vec<u8>,
    /// Ids of the named types sorted by name (then id), built on first lookup: kernel BTF
    /// holds over 100,000 types and CO-RE and kfunc resolution look many names up. Ids into
    /// the string section rather than a map of owned names: a quarter of the build time and
    /// a fraction of the memory, which matters for one-lookup users such as feature probes.
    by_name: OnceLock<Vec<u32>>,
}

impl Btf {
    /// An empty BTF: only `void` and the empty string.
    pub fn new() -> Btf {
        Btf {
            types: vec![Type { name_off: 0, kind_flag: false, kind: TypeKind::Void }],
            strings: vec![0],
            by_name: OnceLock::new(),
        }
    }

    /// Parses raw BTF (the contents of a `.BTF` section or of `/sys/kernel/btf/vmlinux`).
    pub fn parse(data: &[u8]) -> Result<Btf, BtfError> {
        let (types, strings) = parse::parse(data)?;
        Ok(Btf { types, strings, by_name: OnceLock::new() })
    }

    /// Parses split BTF (a module's `/sys/kernel/btf/MODULE`) on top of `base`, the BTF it
    /// was built against (vmlinux's): the result holds both, numbered as the kernel numbers
    /// them. Split BTF continues its base's type ids and string offsets, so the module's
    /// types and strings go after the base's and its references need no rewriting.
    pub fn parse_split(data: &[u8], base: &Btf) -> Result<Btf, BtfError> {
        let (types, strings) = parse::parse(data)?;
        let mut all = base.types.clone();
        // The module's own list starts with a `void` the parser puts at id 0: not a type.
        all.extend(types.into_iter().skip(1));
        let mut all_strings = base.strings.clone();
        all_strings.extend_from_slice(&strings);
        Ok(Btf { types: all, strings: all_strings, by_name: OnceLock::new() })
    }

    /// Encodes the types and strings back into raw BTF, as the kernel loads it.
    pub fn to_bytes(&self) -> Vec<u8> {
        parse::encode(&self.types, &self.strings)
    }

    /// Number of type ids, `void` included.
    pub fn len(&self) -> u32 {
        self.types.len() as u32
    }

    /// Whether there are no types besides `void`.
    pub fn is_empty(&self) -> bool {
        self.types.len() <= 1
    }

    /// The type with this id.
    pub fn type_by_id(&self, id: u32) -> Result<&Type, BtfError> {
        self.types.get(id as usize).ok_or(BtfError::BadTypeId(id))
    }

    /// The type with this id, to modify it.
    pub fn type_mut(&mut self, id: u32) -> Result<&mut Type, BtfError> {
        self.types.get_mut(id as usize).ok_or(BtfError::BadTypeId(id))
    }

    /// Every type with its id, `void` excluded.
    pub fn types(&self) -> impl Iterator<Item = (u32, &Type)> {
        self.types.iter().enumerate().skip(1).map(|(i, t)| (i as u32, t))
    }

    /// Appends a type and returns its id.
    pub fn add_type(&mut self, t: Type) -> u32 {
        self.types.push(t);
        self.by_name = OnceLock::new();
        self.types.len() as u32 - 1
    }

    /// Appends a string (or finds it already there) and returns its offset.
    pub fn add_string(&mut self, s: &str) -> u32 {
        if let Some(pos) = memchr::memmem::find_iter(&self.strings, s.as_bytes())
            .find(|&p| (p == 0 || self.strings[p - 1] == 0) && self.strings.get(p + s.len()) == Some(&0))
        {
            return pos as u32;
        }
        let off = self.strings.len() as u32;
        self.strings.extend_from_slice(s.as_bytes());
        self.strings.push(0);
        off
    }

    /// The string at `off` in the string section.
    pub fn string_at(&self, off: u32) -> Result<&str, BtfError> {
        let rest = self.strings.get(off as usize..).ok_or(BtfError::BadString(off))?;
        let end = memchr::memchr(0, rest).ok_or(BtfError::BadString(off))?;
        std::str::from_utf8(&rest[..end]).map_err(|_| BtfError::BadString(off))
    }

    /// The name of type `id` ("" for anonymous types and bad ids).
    pub fn name(&self, id: u32) -> &str {
        self.types.get(id as usize).and_then(|t| self.string_at(t.name_off).ok()).unwrap_or("")
    }

    /// Ids of every type named `name`, any kind, in id order.
    pub fn ids_by_name(&self, name: &str) -> &[u32] {
        let sorted = self.by_name.get_or_init(|| {
            // Names found once, not at every comparison of the sort.
            let mut named: Vec<(&[u8], u32)> = (1..self.types.len() as u32)
                .map(|id| (self.name_bytes(id), id))
                .filter(|(n, _)| !n.is_empty())
                .collect();
            named.sort_unstable();
            named.into_iter().map(|(_, id)| id).collect()
        });
        let name = name.as_bytes();
        let start = sorted.partition_point(|&id| self.name_bytes(id) < name);
        let len = sorted[start..].partition_point(|&id| self.name_bytes(id) == name);
        &sorted[start..start + len]
    }

    /// The name of type `id` as bytes, without checking UTF-8 (empty for anonymous types
    /// and bad offsets): what the index sorts by.
    fn name_bytes(&self, id: u32) -> &[u8] {
        let off = self.types[id as usize].name_off as usize;
        let rest = self.strings.get(off..).unwrap_or_default();
        &rest[..memchr::memchr(0, rest).unwrap_or(rest.len())]
    }

    /// The first type named `name` of the given `BTF_KIND_*`.
    pub fn find_by_name_kind(&self, name: &str, kind: u32) -> Option<u32> {
        self.ids_by_name(name).iter().copied().find(|&id| self.types[id as usize].kind.number() == kind)
    }

    /// Follows typedefs, qualifiers and type tags down to the type they name.
    pub fn skip_modifiers(&self, mut id: u32) -> Result<u32, BtfError> {
        for _ in 0..MAX_CHAIN {
            let t = self.type_by_id(id)?;
            if !t.kind.is_modifier() {
                return Ok(id);
            }
            id = t.kind.referenced().unwrap_or(0);
        }
        Err(BtfError::Unsized { id, kind: "modifier loop" })
    }

    /// The size in bytes of a value of type `id`.
    pub fn resolve_size(&self, id: u32) -> Result<u32, BtfError> {
        let mut id = id;
        let mut multiplier: u64 = 1;
        for _ in 0..MAX_CHAIN {
            let t = self.type_by_id(id)?;
            let size = match &t.kind {
                TypeKind::Int { size, .. }
                | TypeKind::Struct { size, .. }
                | TypeKind::Union { size, .. }
                | TypeKind::Enum { size, .. }
                | TypeKind::Datasec { size, .. }
                | TypeKind::Float { size } => *size,
                TypeKind::Ptr { .. } => 8,
                TypeKind::Array { elem, nelems, .. } => {
                    multiplier = multiplier.saturating_mul(u64::from(*nelems));
                    id = *elem;
                    continue;
                }
                TypeKind::Typedef { target }
                | TypeKind::Volatile { target }
                | TypeKind::Const { target }
                | TypeKind::Restrict { target }
                | TypeKind::TypeTag { target }
                | TypeKind::Var { target, .. } => {
                    id = *target;
                    continue;
                }
                other => {
                    return Err(BtfError::Unsized { id, kind: other.name() });
                }
            };
            return u32::try_from(multiplier.saturating_mul(u64::from(size)))
                .map_err(|_| BtfError::Unsized { id, kind: "oversized array" });
        }
        Err(BtfError::Unsized { id, kind: "type loop" })
    }
}

impl Default for Btf {
    fn default() -> Self {
        Btf::new()
    }
}

/// Longest chain of references followed before a type graph is declared cyclic.
const MAX_CHAIN: usize = 64;

#[cfg(test)]
mod tests;
