//! BPF instructions: the opcode fields the loader inspects and rewrites.
//!
//! The loader never generates whole programs (except tiny feature probes); it patches what
//! clang emitted: calls between functions, map and global-data references, kfunc calls and
//! CO-RE offsets. These are the pieces of the encoding it needs.

pub use crate::sys::Insn;

/// Instruction classes (`code & 0x07`).
pub mod class {
    pub const LD: u8 = 0x00;
    pub const LDX: u8 = 0x01;
    pub const ST: u8 = 0x02;
    pub const STX: u8 = 0x03;
    pub const ALU: u8 = 0x04;
    pub const JMP: u8 = 0x05;
    pub const JMP32: u8 = 0x06;
    pub const ALU64: u8 = 0x07;
}

/// `BPF_LD | BPF_IMM | BPF_DW`: the two-slot 64-bit immediate load.
pub const LD_IMM64: u8 = 0x18;
/// `BPF_JMP | BPF_CALL`.
pub const CALL: u8 = 0x85;
/// `BPF_JMP | BPF_EXIT`.
pub const EXIT: u8 = 0x95;
/// `BPF_ALU64 | BPF_MOV | BPF_K`.
pub const MOV64_IMM: u8 = 0xb7;

/// `src_reg` values that give `ld_imm64` and `call` special meanings.
pub mod pseudo {
    /// `ld_imm64`: imm is a map fd.
    pub const MAP_FD: u8 = 1;
    /// `ld_imm64`: imm is a map fd, the second imm an offset into its value.
    pub const MAP_VALUE: u8 = 2;
    /// `ld_imm64`: imm is a kernel BTF id of a variable (or function).
    pub const BTF_ID: u8 = 3;
    /// `ld_imm64`: imm is the relative offset of a subprogram (callbacks).
    pub const FUNC: u8 = 4;
    /// `call`: imm is the relative offset of a subprogram.
    pub const CALL: u8 = 1;
    /// `call`: imm is a kernel BTF id of a kfunc.
    pub const KFUNC_CALL: u8 = 2;
}

/// Helper id the loader writes into a call it had to disable (an unresolved weak kfunc):
/// the verifier reports `invalid func unknown#2002000000` only if the call is reachable.
pub const POISON_KFUNC_CALL: i32 = 2_002_000_000;

impl Insn {
    /// Builds an instruction.
    pub const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn { code, regs: (src << 4) | (dst & 0x0f), off, imm }
    }

    /// Destination register.
    pub fn dst(&self) -> u8 {
        self.regs & 0x0f
    }

    /// Source register (the pseudo kind for `call` and `ld_imm64`).
    pub fn src(&self) -> u8 {
        self.regs >> 4
    }

    /// Sets the source register field.
    pub fn set_src(&mut self, src: u8) {
        self.regs = (src << 4) | (self.regs & 0x0f);
    }

    /// Instruction class.
    pub fn class(&self) -> u8 {
        self.code & 0x07
    }

    /// Whether this is the first slot of a 64-bit immediate load.
    pub fn is_ld_imm64(&self) -> bool {
        self.code == LD_IMM64
    }

    /// Whether this is a call of another BPF function in the same program.
    pub fn is_pseudo_call(&self) -> bool {
        self.code == CALL && self.src() == pseudo::CALL
    }

    /// Whether this is a call of a helper (by number) or of a kfunc.
    pub fn is_call(&self) -> bool {
        self.code == CALL
    }

    /// `r0 = imm; exit` style helpers for probes: `mov64 dst, imm`.
    pub const fn mov64_imm(dst: u8, imm: i32) -> Insn {
        Insn::new(MOV64_IMM, dst, 0, 0, imm)
    }

    /// `exit`.
    pub const fn exit() -> Insn {
        Insn::new(EXIT, 0, 0, 0, 0)
    }

    /// `call helper`.
    pub const fn call_helper(id: i32) -> Insn {
        Insn::new(CALL, 0, 0, 0, id)
    }
}

/// Reinterprets the bytes of a code section as instructions, if its length is a whole number
/// of instructions.
pub fn from_bytes(bytes: &[u8]) -> Option<Vec<Insn>> {
    if bytes.len() % 8 != 0 {
        return None;
    }
    Some(bytes.chunks_exact(8).map(bytemuck::pod_read_unaligned).collect())
}
