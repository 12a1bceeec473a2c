//! Decoding raw BTF into [`Type`]s and encoding them back.

use std::ops::Range;

use super::{BtfError, EnumValue, FuncLinkage, Member, Param, Type, TypeKind, VarLinkage, VarSecinfo, kind};

const MAGIC: u16 = 0xeb9f;
const HEADER_LEN: usize = 24;

/// A little-endian reader over a byte slice that reports truncation by name.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn u32(&mut self, what: &'static str) -> Result<u32, BtfError> {
        let bytes = self.data.get(self.pos..self.pos + 4).ok_or(BtfError::Truncated { what })?;
        self.pos += 4;
        Ok(u32::from_le_bytes(bytes.try_into().unwrap()))
    }
}

fn read_u32(data: &[u8], off: usize, what: &'static str) -> Result<u32, BtfError> {
    Reader { data, pos: off }.u32(what)
}

/// Splits raw BTF into its types (index = id, `void` first) and its string section.
pub(super) fn parse(data: &[u8]) -> Result<(Vec<Type>, Vec<u8>), BtfError> {
    let (types, strings) = sections(data)?;
    let (type_data, strings) = (&data[types], data[strings].to_vec());

    let mut types = vec![Type { name_off: 0, kind_flag: false, kind: TypeKind::Void }];
    let mut r = Reader { data: type_data, pos: 0 };
    while r.pos < type_data.len() {
        let id = types.len() as u32;
        types.push(parse_type(&mut r, id)?);
    }
    Ok((types, strings))
}

fn parse_type(r: &mut Reader<'_>, id: u32) -> Result<Type, BtfError> {
    let name_off = r.u32("type header")?;
    let info = r.u32("type header")?;
    let size_or_type = r.u32("type header")?;
    let vlen = (info & 0xffff) as usize;
    let kind_num = (info >> 24) & 0x1f;
    let kind_flag = info >> 31 == 1;
    let what = "type data";
    let kind = match kind_num {
        kind::INT => {
            let v = r.u32(what)?;
            TypeKind::Int {
                size: size_or_type,
                encoding: ((v >> 24) & 0x0f) as u8,
                bit_offset: ((v >> 16) & 0xff) as u8,
                bits: (v & 0xff) as u8,
            }
        }
        kind::PTR => TypeKind::Ptr { target: size_or_type },
        kind::ARRAY => TypeKind::Array { elem: r.u32(what)?, index: r.u32(what)?, nelems: r.u32(what)? },
        kind::STRUCT | kind::UNION => {
            let mut members = Vec::with_capacity(vlen);
            for _ in 0..vlen {
                members.push(Member { name_off: r.u32(what)?, type_id: r.u32(what)?, offset: r.u32(what)? });
            }
            if kind_num == kind::STRUCT {
                TypeKind::Struct { size: size_or_type, members }
            } else {
                TypeKind::Union { size: size_or_type, members }
            }
        }
        kind::ENUM => {
            let mut values = Vec::with_capacity(vlen);
            for _ in 0..vlen {
                let name_off = r.u32(what)?;
                let raw = r.u32(what)?;
                // Signed enumerators sign-extend, so both kinds compare as 64-bit values.
                let value = if kind_flag { raw as i32 as i64 as u64 } else { u64::from(raw) };
                values.push(EnumValue { name_off, value });
            }
            TypeKind::Enum { size: size_or_type, signed: kind_flag, is64: false, values }
        }
        kind::ENUM64 => {
            let mut values = Vec::with_capacity(vlen);
            for _ in 0..vlen {
                let name_off = r.u32(what)?;
                let lo = r.u32(what)?;
                let hi = r.u32(what)?;
                values.push(EnumValue { name_off, value: u64::from(hi) << 32 | u64::from(lo) });
            }
            TypeKind::Enum { size: size_or_type, signed: kind_flag, is64: true, values }
        }
        kind::FWD => TypeKind::Fwd { is_union: kind_flag },
        kind::TYPEDEF => TypeKind::Typedef { target: size_or_type },
        kind::VOLATILE => TypeKind::Volatile { target: size_or_type },
        kind::CONST => TypeKind::Const { target: size_or_type },
        kind::RESTRICT => TypeKind::Restrict { target: size_or_type },
        kind::FUNC => {
            let linkage = match vlen {
                0 => FuncLinkage::Static,
                1 => FuncLinkage::Global,
                _ => FuncLinkage::Extern,
            };
            TypeKind::Func { proto: size_or_type, linkage }
        }
        kind::FUNC_PROTO => {
            let mut params = Vec::with_capacity(vlen);
            for _ in 0..vlen {
                params.push(Param { name_off: r.u32(what)?, type_id: r.u32(what)? });
            }
            TypeKind::FuncProto { ret: size_or_type, params }
        }
        kind::VAR => {
            let linkage = match r.u32(what)? {
                0 => VarLinkage::Static,
                1 => VarLinkage::GlobalAllocated,
                _ => VarLinkage::GlobalExtern,
            };
            TypeKind::Var { target: size_or_type, linkage }
        }
        kind::DATASEC => {
            let mut vars = Vec::with_capacity(vlen);
            for _ in 0..vlen {
                vars.push(VarSecinfo { type_id: r.u32(what)?, offset: r.u32(what)?, size: r.u32(what)? });
            }
            TypeKind::Datasec { size: size_or_type, vars }
        }
        kind::FLOAT => TypeKind::Float { size: size_or_type },
        kind::DECL_TAG => TypeKind::DeclTag { target: size_or_type, component_idx: r.u32(what)? as i32 },
        kind::TYPE_TAG => TypeKind::TypeTag { target: size_or_type },
        other => return Err(BtfError::UnknownKind { id, kind: other }),
    };
    Ok(Type { name_off, kind_flag, kind })
}

/// Where the type section and the string section of raw BTF are, after checking the header.
pub(super) fn sections(data: &[u8]) -> Result<(Range<usize>, Range<usize>), BtfError> {
    if data.len() < 8 {
        return Err(BtfError::Truncated { what: "header" });
    }
    let magic = u16::from_le_bytes([data[0], data[1]]);
    if magic != MAGIC {
        return Err(BtfError::BadMagic { magic });
    }
    if data[2] != 1 {
        return Err(BtfError::UnsupportedVersion(data[2]));
    }
    let hdr_len = read_u32(data, 4, "header")? as usize;
    if hdr_len < HEADER_LEN {
        return Err(BtfError::Truncated { what: "header" });
    }
    let type_off = read_u32(data, 8, "header")? as usize;
    let type_len = read_u32(data, 12, "header")? as usize;
    let str_off = read_u32(data, 16, "header")? as usize;
    let str_len = read_u32(data, 20, "header")? as usize;
    let section = |off: usize, len: usize, what| {
        hdr_len
            .checked_add(off)
            .and_then(|start| Some(start..start.checked_add(len)?))
            .filter(|r| r.end <= data.len())
            .ok_or(BtfError::Truncated { what })
    };
    let types = section(type_off, type_len, "type section")?;
    let strings = section(str_off, str_len, "string section")?;
    if data[strings.clone()].last().is_some_and(|&b| b != 0) {
        return Err(BtfError::Truncated { what: "string section" });
    }
    Ok((types, strings))
}

/// Encodes types (index = id, `void` first, not encoded) and strings as raw BTF.
pub(super) fn encode(types: &[Type], strings: &[u8]) -> Vec<u8> {
    let mut t = Vec::with_capacity(types.len() * 16);
    let put = |v: u32, t: &mut Vec<u8>| t.extend_from_slice(&v.to_le_bytes());
    for ty in types.iter().skip(1) {
        let kind_num = ty.kind.number();
        let (vlen, size_or_type) = match &ty.kind {
            TypeKind::Void => (0, 0),
            TypeKind::Int { size, .. } | TypeKind::Float { size } => (0, *size),
            TypeKind::Ptr { target }
            | TypeKind::Typedef { target }
            | TypeKind::Volatile { target }
            | TypeKind::Const { target }
            | TypeKind::Restrict { target }
            | TypeKind::TypeTag { target }
            | TypeKind::Var { target, .. }
            | TypeKind::DeclTag { target, .. } => (0, *target),
            TypeKind::Array { .. } | TypeKind::Fwd { .. } => (0, 0),
            TypeKind::Struct { size, members } | TypeKind::Union { size, members } => (members.len(), *size),
            TypeKind::Enum { size, values, .. } => (values.len(), *size),
            TypeKind::Func { proto, linkage } => (*linkage as usize, *proto),
            TypeKind::FuncProto { ret, params } => (params.len(), *ret),
            TypeKind::Datasec { size, vars } => (vars.len(), *size),
        };
        let info = (vlen as u32 & 0xffff) | (kind_num << 24) | (u32::from(ty.kind_flag) << 31);
        put(ty.name_off, &mut t);
        put(info, &mut t);
        put(size_or_type, &mut t);
        match &ty.kind {
            TypeKind::Int { encoding, bit_offset, bits, .. } => {
                put(u32::from(*encoding) << 24 | u32::from(*bit_offset) << 16 | u32::from(*bits), &mut t)
            }
            TypeKind::Array { elem, index, nelems } => {
                put(*elem, &mut t);
                put(*index, &mut t);
                put(*nelems, &mut t);
            }
            TypeKind::Struct { members, .. } | TypeKind::Union { members, .. } => {
                for m in members {
                    put(m.name_off, &mut t);
                    put(m.type_id, &mut t);
                    put(m.offset, &mut t);
                }
            }
            TypeKind::Enum { is64, values, .. } => {
                for v in values {
                    put(v.name_off, &mut t);
                    put(v.value as u32, &mut t);
                    if *is64 {
                        put((v.value >> 32) as u32, &mut t);
                    }
                }
            }
            TypeKind::FuncProto { params, .. } => {
                for p in params {
                    put(p.name_off, &mut t);
                    put(p.type_id, &mut t);
                }
            }
            TypeKind::Var { linkage, .. } => put(*linkage as u32, &mut t),
            TypeKind::Datasec { vars, .. } => {
                for v in vars {
                    put(v.type_id, &mut t);
                    put(v.offset, &mut t);
                    put(v.size, &mut t);
                }
            }
            TypeKind::DeclTag { component_idx, .. } => put(*component_idx as u32, &mut t),
            _ => {}
        }
    }
    let mut out = Vec::with_capacity(HEADER_LEN + t.len() + strings.len());
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.push(1); // version
    out.push(0); // flags
    for v in [HEADER_LEN as u32, 0, t.len() as u32, t.len() as u32, strings.len() as u32] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&t);
    out.extend_from_slice(strings);
    out
}
