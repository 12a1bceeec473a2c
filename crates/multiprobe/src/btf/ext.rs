//! `.BTF.ext`: per-section function info, line info and CO-RE relocation records.

use std::collections::HashMap;

use super::{Btf, BtfError, CoreRelo, CoreReloKind};

const MAGIC: u16 = 0xeb9f;

/// `struct bpf_func_info`: the BTF `FUNC` describing the function starting at `insn_off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FuncInfo {
    /// Offset of the function's first instruction, in bytes in the ELF section (in the
    /// object) or in instructions (once handed to the kernel).
    pub insn_off: u32,
    /// The `FUNC` type describing the function.
    pub type_id: u32,
}

/// `struct bpf_line_info`: the source line of the instruction at `insn_off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineInfo {
    /// As in [`FuncInfo::insn_off`].
    pub insn_off: u32,
    /// Offset of the source file name in the BTF strings.
    pub file_name_off: u32,
    /// Offset of the source line's text in the BTF strings.
    pub line_off: u32,
    /// Line number (high 22 bits) and column (low 10 bits).
    pub line_col: u32,
}

/// Records of one kind, grouped by the ELF section of the instructions they describe.
#[derive(Debug, Clone)]
pub struct ExtRecords<T> {
    /// Record size the object declares (the kernel wants it back with the records).
    pub rec_size: u32,
    /// Section name -> records, in object order.
    pub by_section: HashMap<String, Vec<T>>,
}

impl<T> Default for ExtRecords<T> {
    fn default() -> Self {
        ExtRecords { rec_size: 0, by_section: HashMap::new() }
    }
}

impl<T> ExtRecords<T> {
    /// The records of one section (empty when it has none).
    pub fn section(&self, name: &str) -> &[T] {
        self.by_section.get(name).map_or(&[], Vec::as_slice)
    }
}

/// A parsed `.BTF.ext` section.
#[derive(Debug, Clone, Default)]
pub struct BtfExt {
    /// Function records: which BTF `FUNC` each function is.
    pub func_info: ExtRecords<FuncInfo>,
    /// Line records: the source line of instructions.
    pub line_info: ExtRecords<LineInfo>,
    /// CO-RE relocation records.
    pub core_relos: ExtRecords<CoreRelo>,
}

impl BtfExt {
    /// Parses `.BTF.ext`; section names are resolved in the object's `.BTF` strings.
    pub fn parse(data: &[u8], btf: &Btf) -> Result<BtfExt, BtfError> {
        let u32_at = |off: usize, what| {
            data.get(off..off + 4)
                .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
                .ok_or(BtfError::Truncated { what })
        };
        if data.len() < 8 {
            return Err(BtfError::Truncated { what: ".BTF.ext header" });
        }
        let magic = u16::from_le_bytes([data[0], data[1]]);
        if magic != MAGIC {
            return Err(BtfError::BadMagic { magic });
        }
        let hdr_len = u32_at(4, ".BTF.ext header")? as usize;
        let sub = |off_at: usize, what: &'static str| -> Result<&[u8], BtfError> {
            if hdr_len < off_at + 8 {
                return Ok(&[]);
            }
            let off = u32_at(off_at, what)? as usize;
            let len = u32_at(off_at + 4, what)? as usize;
            let start = hdr_len.checked_add(off).ok_or(BtfError::Truncated { what })?;
            data.get(start..start.checked_add(len).ok_or(BtfError::Truncated { what })?)
                .ok_or(BtfError::Truncated { what })
        };
        let func_info =
            parse_records(sub(8, "func_info")?, btf, 8, "func_info", |r| FuncInfo { insn_off: r[0], type_id: r[1] })?;
        let line_info = parse_records(sub(16, "line_info")?, btf, 16, "line_info", |r| LineInfo {
            insn_off: r[0],
            file_name_off: r[1],
            line_off: r[2],
            line_col: r[3],
        })?;
        let core_relos = parse_records(sub(24, "core_relo")?, btf, 16, "core_relo", |r| CoreRelo {
            insn_off: r[0],
            type_id: r[1],
            access_str_off: r[2],
            kind: CoreReloKind::from_u32(r[3]),
        })?;
        Ok(BtfExt { func_info, line_info, core_relos })
    }
}

/// Parses one info sub-section: `rec_size`, then per ELF section its name, a count and the
/// records. Records longer than `min_size` (a newer format) keep only the fields we know.
fn parse_records<T>(
    data: &[u8],
    btf: &Btf,
    min_size: usize,
    what: &'static str,
    decode: impl Fn(&[u32]) -> T,
) -> Result<ExtRecords<T>, BtfError> {
    let mut out = ExtRecords::default();
    if data.is_empty() {
        return Ok(out);
    }
    let words: Vec<u32> = data.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())).collect();
    let rec_size = *words.first().ok_or(BtfError::Truncated { what })? as usize;
    if rec_size < min_size || rec_size % 4 != 0 {
        return Err(BtfError::Truncated { what });
    }
    out.rec_size = rec_size as u32;
    let rec_words = rec_size / 4;
    let mut pos = 1;
    while pos < words.len() {
        let (sec_name_off, count) = match words.get(pos..pos + 2) {
            Some(&[a, b]) => (a, b as usize),
            _ => return Err(BtfError::Truncated { what }),
        };
        pos += 2;
        let name = btf.string_at(sec_name_off)?.to_string();
        let end = count
            .checked_mul(rec_words)
            .and_then(|n| n.checked_add(pos))
            .filter(|&end| end <= words.len())
            .ok_or(BtfError::Truncated { what })?;
        let records = words[pos..end].chunks_exact(rec_words).map(&decode).collect();
        out.by_section.insert(name, records);
        pos = end;
    }
    Ok(out)
}
