//! Raw BTF read in place: where a question needs one or two types, finding them in the bytes
//! costs a walk over the type headers, where [`Btf::parse`](super::Btf::parse) decodes every
//! type of the kernel's 100,000+ (tens of milliseconds and megabytes, more under emulation).
//! The feature probes that run before every `multiprobe count` use this.

use super::{BtfError, kind, parse};

/// Raw BTF with the offset of every type, nothing decoded.
#[derive(Debug)]
pub struct RawBtf<'a> {
    types: &'a [u8],
    strings: &'a [u8],
    /// Offset in `types` of type id `i + 1`'s header (id 0, `void`, has none).
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

impl<'a> RawBtf<'a> {
    /// Checks the header and finds where each type starts.
    pub fn new(data: &'a [u8]) -> Result<RawBtf<'a>, BtfError> {
        let (types, strings) = parse::sections(data)?;
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
        Ok(RawBtf { types, strings, offsets })
    }

    /// The first type named `name` of the given `BTF_KIND_*`.
    pub fn find(&self, name: &str, kind: u32) -> Option<u32> {
        (1..=self.offsets.len() as u32).find(|&id| self.kind(id) == Some(kind) && self.name_is(id, name))
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
    pub fn members(&self, id: u32) -> impl Iterator<Item = RawMember<'a>> + '_ {
        let (start, count) = match self.kind(id) {
            Some(kind::STRUCT | kind::UNION) => {
                let start = self.offsets[id as usize - 1] as usize + HEADER;
                (start, self.word_of(id, 4).map_or(0, |info| (info & 0xffff) as usize))
            }
            _ => (0, 0),
        };
        (0..count).filter_map(move |i| {
            let at = start + 12 * i;
            Some(RawMember { name: self.string(word(self.types, at)?)?, type_id: word(self.types, at + 4)? })
        })
    }

    fn word_of(&self, id: u32, field: usize) -> Option<u32> {
        let off = *self.offsets.get((id as usize).checked_sub(1)?)? as usize;
        word(self.types, off + field)
    }

    fn name_is(&self, id: u32, name: &str) -> bool {
        let Some(off) = self.word_of(id, 0) else { return false };
        let n = name.len();
        self.strings.get(off as usize..off as usize + n) == Some(name.as_bytes())
            && self.strings.get(off as usize + n) == Some(&0)
    }

    fn string(&self, off: u32) -> Option<&'a str> {
        let rest = self.strings.get(off as usize..)?;
        std::str::from_utf8(&rest[..memchr::memchr(0, rest)?]).ok()
    }
}

fn word(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(data.get(at..at + 4)?.try_into().ok()?))
}
