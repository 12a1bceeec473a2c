//! Raw BTF read in place: where a question needs one or two types, finding them in the bytes
//! costs a walk over the type headers, where [`Btf::parse`](super::Btf::parse) decodes every
//! type of the kernel's 100,000+ (tens of milliseconds and megabytes, more under emulation).
//! The feature probes that run before every `multiprobe count` use this.

use std::ops::Range;

use super::{BtfError, kind, parse};

/// Raw BTF with the offset of every type, nothing decoded.
#[derive(Debug)]
pub struct RawBtf {
    data: Vec<u8>,
    types: Range<usize>,
    strings: Range<usize>,
    /// Offset in the type section of type id `i + 1`'s header (id 0, `void`, has none).
    offsets: Vec<u32>,
}

/// A struct or union member as the raw data has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawMember<'a> {
    /// Its name ("" for anonymous members).
    pub name: &'a str,
    /// Its type id.
    pub type_id: u32,
}

const HEADER: usize = 12;

impl RawBtf {
    /// Checks the header and finds where each type starts.
    pub fn new(data: Vec<u8>) -> Result<RawBtf, BtfError> {
        let (type_range, strings) = parse::sections(&data)?;
        let types = &data[type_range.clone()];
        let mut offsets = Vec::new();
        let mut pos = 0usize;
        while pos < types.len() {
            let id = offsets.len() as u32 + 1;
            let info = word(types, pos + 4).ok_or(BtfError::Truncated { what: "type header" })?;
            let vlen = (info & 0xffff) as usize;
            let trailing = match (info >> 24) & 0x1f {
                kind::INT | kind::VAR | kind::DECL_TAG => 4,
                kind::ARRAY => 12,
                kind::STRUCT | kind::UNION | kind::DATASEC | kind::ENUM64 => 12 * vlen,
                kind::ENUM | kind::FUNC_PROTO => 8 * vlen,
                kind::PTR
                | kind::FWD
                | kind::TYPEDEF
                | kind::VOLATILE
                | kind::CONST
                | kind::RESTRICT
                | kind::FUNC
                | kind::FLOAT
                | kind::TYPE_TAG => 0,
                other => return Err(BtfError::UnknownKind { id, kind: other }),
            };
            offsets.push(pos as u32);
            pos += HEADER + trailing;
            if pos > types.len() {
                return Err(BtfError::Truncated { what: "type data" });
            }
        }
        Ok(RawBtf { types: type_range, strings, offsets, data })
    }

    /// The first type named `name` of the given `BTF_KIND_*`.
    pub fn find(&self, name: &str, kind: u32) -> Option<u32> {
        (1..=self.offsets.len() as u32).find(|&id| self.kind(id) == Some(kind) && self.name_is(id, name))
    }

    /// The raw bytes, as read.
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }

    /// Number of types (ids `1..=type_count`).
    pub fn type_count(&self) -> u32 {
        self.offsets.len() as u32
    }

    /// In split BTF (a module's, read on top of `base`, the kernel's): the id of the first
    /// type named `name` of the given `BTF_KIND_*`. Split BTF numbers its types after
    /// base's and its string offsets after base's strings, which its names may also use.
    pub fn find_split(&self, base: &RawBtf, name: &str, kind: u32) -> Option<u32> {
        let base_strings = base.strings.len() as u32;
        (1..=self.type_count())
            .find(|&id| {
                self.kind(id) == Some(kind)
                    && match self.word_of(id, 0) {
                        Some(off) if off < base_strings => base.string(off) == Some(name),
                        Some(off) => self.string(off - base_strings) == Some(name),
                        None => false,
                    }
            })
            .map(|id| id + base.type_count())
    }

    /// The `BTF_KIND_*` of type `id`.
    pub fn kind(&self, id: u32) -> Option<u32> {
        Some((self.word_of(id, 4)? >> 24) & 0x1f)
    }

    /// Follows typedefs, qualifiers and type tags down to the type they name.
    pub fn skip_modifiers(&self, mut id: u32) -> Option<u32> {
        for _ in 0..32 {
            match self.kind(id)? {
                kind::TYPEDEF | kind::VOLATILE | kind::CONST | kind::RESTRICT | kind::TYPE_TAG => {
                    id = self.word_of(id, 8)?;
                }
                _ => return Some(id),
            }
        }
        None
    }

    /// The members of struct or union `id` (none for other kinds).
    pub fn members(&self, id: u32) -> impl Iterator<Item = RawMember<'_>> {
        let count = self.vlen_of(id, &[kind::STRUCT, kind::UNION]);
        let start = self.trailing(id);
        (0..count).filter_map(move |i| {
            let at = start + 12 * i;
            Some(RawMember { name: self.string(word(self.types(), at)?)?, type_id: word(self.types(), at + 4)? })
        })
    }

    /// The names of the enumerators of enum `id` (none for other kinds).
    pub fn enumerators(&self, id: u32) -> impl Iterator<Item = &str> {
        let count = self.vlen_of(id, &[kind::ENUM, kind::ENUM64]);
        let (start, size) = (self.trailing(id), if self.kind(id) == Some(kind::ENUM64) { 12 } else { 8 });
        (0..count).filter_map(move |i| self.string(word(self.types(), start + size * i)?))
    }

    fn types(&self) -> &[u8] {
        &self.data[self.types.clone()]
    }

    /// Where type `id`'s data after the header starts.
    fn trailing(&self, id: u32) -> usize {
        id.checked_sub(1).and_then(|i| self.offsets.get(i as usize)).map_or(0, |&off| off as usize + HEADER)
    }

    /// The vlen of type `id` if it is one of `kinds`, else 0.
    fn vlen_of(&self, id: u32, kinds: &[u32]) -> usize {
        match self.kind(id) {
            Some(k) if kinds.contains(&k) => self.word_of(id, 4).map_or(0, |info| (info & 0xffff) as usize),
            _ => 0,
        }
    }

    fn word_of(&self, id: u32, field: usize) -> Option<u32> {
        let off = *self.offsets.get((id as usize).checked_sub(1)?)? as usize;
        word(self.types(), off + field)
    }

    fn name_is(&self, id: u32, name: &str) -> bool {
        let Some(off) = self.word_of(id, 0) else { return false };
        let (strings, n) = (&self.data[self.strings.clone()], name.len());
        strings.get(off as usize..off as usize + n) == Some(name.as_bytes())
            && strings.get(off as usize + n) == Some(&0)
    }

    fn string(&self, off: u32) -> Option<&str> {
        let rest = self.data[self.strings.clone()].get(off as usize..)?;
        std::str::from_utf8(&rest[..memchr::memchr(0, rest)?]).ok()
    }
}

fn word(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(data.get(at..at + 4)?.try_into().ok()?))
}
