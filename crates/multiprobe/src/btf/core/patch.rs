//! Writing a relocation's value into its instruction (libbpf's `bpf_core_patch_insn`).
//!
//! clang puts relocated values in three places: the immediate of an ALU instruction
//! (`r1 = 8`, `r1 += 8`), the offset of a load or store (`r0 = *(u32 *)(r1 + 8)`) and the
//! 64-bit immediate of `ld_imm64` (enum values, type ids). Before patching, the instruction
//! must still hold the value computed from the local types: anything else means the record
//! and the code disagree, and patching would silently corrupt the program.

use super::calc::RelocValue;
use super::relo::POISON_HELPER_ID;
use crate::sys::Insn;

const CLASS_LD: u8 = 0x00;
const CLASS_LDX: u8 = 0x01;
const CLASS_ST: u8 = 0x02;
const CLASS_STX: u8 = 0x03;
const CLASS_ALU: u8 = 0x04;
const CLASS_ALU64: u8 = 0x07;
/// `BPF_X`: the ALU source is a register, not the immediate.
const SRC_X: u8 = 0x08;
const LD_IMM64: u8 = 0x18;
/// `BPF_JMP | BPF_CALL`.
const CALL: u8 = 0x85;
const SIZE_MASK: u8 = 0x18;

/// What [`patch_insn`] did.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Patched {
    Applied,
    /// Replaced by a call to helper [`POISON_HELPER_ID`]: either the target lacks what the
    /// relocation needs (`RelocValue::poison`) or a load cannot be resized safely.
    Poisoned,
}

/// Patches `insns[idx]` (and the second slot of an `ld_imm64`) with `res`. Errors describe
/// why the instruction cannot take the value.
pub(super) fn patch_insn(insns: &mut [Insn], idx: usize, res: &RelocValue) -> Result<Patched, String> {
    if res.poison {
        poison(insns, idx);
        return Ok(Patched::Poisoned);
    }
    let insn = insns[idx];
    let (orig, new) = (res.orig_val, res.new_val);
    match insn.code & 0x07 {
        class @ (CLASS_ALU | CLASS_ALU64) => {
            if insn.code & SRC_X != 0 {
                return Err("an ALU instruction with a register source has no immediate".into());
            }
            // The immediate is sign-extended to compare, as libbpf does.
            if res.validate && insn.imm as i64 as u64 != orig {
                return Err(format!("its immediate is {}, expected {orig} (would become {new})", insn.imm));
            }
            // ALU64 sign-extends the immediate; 32-bit ALU only uses its low 32 bits.
            let fits = i32::try_from(new as i64).is_ok() || (class == CLASS_ALU && u32::try_from(new).is_ok());
            if !fits {
                return Err(format!("{new} does not fit its 32-bit immediate"));
            }
            insns[idx].imm = new as i32;
        }
        CLASS_LDX | CLASS_ST | CLASS_STX => {
            if res.validate && insn.off as i64 as u64 != orig {
                return Err(format!("its offset is {}, expected {orig} (would become {new})", insn.off));
            }
            if new > i16::MAX as u64 {
                return Err(format!("the target's offset {new} does not fit the instruction's 16-bit offset"));
            }
            if res.fail_memsz_adjust {
                poison(insns, idx);
                return Ok(Patched::Poisoned);
            }
            let mut code = insn.code;
            if res.new_sz != res.orig_sz {
                let size = access_bytes(code);
                if size != res.orig_sz {
                    return Err(format!("it accesses {size} bytes where the field is {} bytes", res.orig_sz));
                }
                let size_bits = size_code(res.new_sz).ok_or_else(|| {
                    format!("the target's field is {} bytes, which no load or store can access", res.new_sz)
                })?;
                code = (code & !SIZE_MASK) | size_bits;
            }
            insns[idx].off = new as i16;
            insns[idx].code = code;
        }
        CLASS_LD => {
            let next = insns.get(idx + 1).copied();
            let well_formed = insn.code == LD_IMM64
                && insn.regs >> 4 == 0
                && insn.off == 0
                && next.is_some_and(|n| n.code == 0 && n.regs == 0 && n.off == 0);
            let Some(next) = next.filter(|_| well_formed) else {
                return Err("it is not a plain two-slot ld_imm64".into());
            };
            let imm = u64::from(insn.imm as u32) | (u64::from(next.imm as u32) << 32);
            if res.validate && imm != orig {
                return Err(format!("its 64-bit immediate is {imm}, expected {orig} (would become {new})"));
            }
            insns[idx].imm = new as u32 as i32;
            insns[idx + 1].imm = (new >> 32) as u32 as i32;
        }
        _ => {
            return Err(format!("opcode {:#04x} is not an ALU, load, store or ld_imm64 instruction", insn.code));
        }
    }
    Ok(Patched::Applied)
}

/// Replaces the instruction by a call to an invalid helper, and the second slot of an
/// `ld_imm64` too (else the verifier complains about opcode 0 instead).
fn poison(insns: &mut [Insn], idx: usize) {
    let bad = Insn { code: CALL, regs: 0, off: 0, imm: POISON_HELPER_ID };
    if insns[idx].code == LD_IMM64
        && let Some(next) = insns.get_mut(idx + 1)
    {
        *next = bad;
    }
    insns[idx] = bad;
}

/// Bytes a load or store of this opcode accesses.
fn access_bytes(code: u8) -> u32 {
    match code & SIZE_MASK {
        0x00 => 4,
        0x08 => 2,
        0x10 => 1,
        _ => 8,
    }
}

/// The size bits of an access of `bytes` bytes.
fn size_code(bytes: u32) -> Option<u8> {
    match bytes {
        4 => Some(0x00),
        2 => Some(0x08),
        1 => Some(0x10),
        8 => Some(0x18),
        _ => None,
    }
}
