//! Assembling one program for the kernel: its function, followed by a copy of every
//! subprogram it calls (directly or not), with calls, map references, global data
//! references and extern references resolved.
//!
//! Each program gets its own copy of the subprograms it uses, as with libbpf: the kernel
//! verifies a program as one instruction array.

use std::collections::{HashMap, VecDeque};
use std::os::fd::RawFd;

use super::{CodeSection, Object, ObjectError, ProgramSpec, Reloc};
use crate::btf::{FuncInfo, LineInfo};
use crate::insn::{Insn, POISON_KFUNC_CALL, pseudo};

/// What an extern (`__ksym`) symbol resolved to in the running kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExternValue {
    /// A kfunc: its BTF id, and its module BTF's index in `fd_array` (0: vmlinux).
    Kfunc { btf_id: u32, fd_index: i16 },
    /// A typed kernel variable: BTF id, and the fd of the module BTF holding it (0: vmlinux).
    Var { btf_id: u32, btf_obj_fd: i32 },
    /// A typeless symbol: its kernel address.
    Address(u64),
    /// A weak extern the kernel does not have.
    Missing,
}

/// What the linker needs from the loader: map fds and extern values.
pub(crate) trait Resolver {
    /// The fd of map `index` (into `Object::maps`).
    fn map_fd(&self, index: usize) -> RawFd;
    /// The value of an extern symbol; only called for externs the program references.
    fn extern_value(&self, name: &str) -> Result<ExternValue, ObjectError>;
}

/// A program ready for `BPF_PROG_LOAD`.
#[derive(Debug, Clone, Default)]
pub(crate) struct LinkedProgram {
    pub insns: Vec<Insn>,
    /// Function info, offsets in instructions.
    pub func_info: Vec<FuncInfo>,
    /// Line info, offsets in instructions.
    pub line_info: Vec<LineInfo>,
    /// Names of weak kfuncs the kernel lacks, whose calls were disabled; the i-th call was
    /// rewritten to helper `POISON_KFUNC_CALL + i`.
    pub missing_kfuncs: Vec<String>,
}

/// Links `prog` using `sections` (the object's code, CO-RE relocations already applied).
pub(crate) fn link_program(
    obj: &Object,
    sections: &[CodeSection],
    prog: &ProgramSpec,
    resolver: &dyn Resolver,
) -> Result<LinkedProgram, ObjectError> {
    let mut out = LinkedProgram::default();
    // (section, function start) -> where its copy starts in `out.insns`.
    let mut placed: HashMap<(usize, usize), usize> = HashMap::new();
    let mut queue = VecDeque::new();
    place(sections, &mut out, &mut placed, &mut queue, prog.section, prog.start, prog.len);

    while let Some((sec, start, len, base)) = queue.pop_front() {
        let section = &sections[sec];
        add_ext_info(obj, section, start, len, base, &mut out);
        for i in 0..len {
            let idx = start + i;
            let at = base + i;
            let err = |reason: String| ObjectError::BadRelocation { section: section.name.clone(), insn: idx, reason };
            let insn = out.insns[at];
            let reloc = match section.relocs.get(&idx) {
                Some(r) => Some(r.clone()),
                // Calls within one section need no ELF relocation: the offset is already there.
                None if insn.is_pseudo_call() || (insn.is_ld_imm64() && insn.src() == pseudo::FUNC) => {
                    let target = idx as i64 + i64::from(insn.imm) + 1;
                    let target = usize::try_from(target)
                        .ok()
                        .filter(|&t| t < section.insns.len())
                        .ok_or_else(|| err(format!("call target {target} is outside the section")))?;
                    Some(Reloc::Code { section: sec, insn: target })
                }
                None => None,
            };
            let Some(reloc) = reloc else { continue };
            match reloc {
                Reloc::Code { section: ts, insn: ti } => {
                    let f = sections[ts].func_at(ti).ok_or_else(|| {
                        err(format!("call into `{}` at {ti}, which is in no function", sections[ts].name))
                    })?;
                    if insn.is_call() && ti != f.start {
                        return Err(err(format!("call into the middle of function `{}`", f.name)));
                    }
                    let (fstart, flen) = (f.start, f.len);
                    let tbase = match placed.get(&(ts, fstart)) {
                        Some(&b) => b,
                        None => place(sections, &mut out, &mut placed, &mut queue, ts, fstart, flen),
                    };
                    let rel = (tbase + (ti - fstart)) as i64 - (at as i64 + 1);
                    let w = &mut out.insns[at];
                    w.imm = i32::try_from(rel).map_err(|_| err("program too large for a relative call".into()))?;
                    w.set_src(if w.is_call() { pseudo::CALL } else { pseudo::FUNC });
                    if w.is_ld_imm64() {
                        second_slot(&mut out.insns, at, &err)?.imm = 0;
                    }
                }
                Reloc::Map { map } => {
                    let w = &mut out.insns[at];
                    w.set_src(pseudo::MAP_FD);
                    w.imm = resolver.map_fd(map);
                    second_slot(&mut out.insns, at, &err)?.imm = 0;
                }
                Reloc::Data { map, offset } => {
                    let w = &mut out.insns[at];
                    w.set_src(pseudo::MAP_VALUE);
                    w.imm = resolver.map_fd(map);
                    second_slot(&mut out.insns, at, &err)?.imm = offset as i32;
                }
                Reloc::Extern { name, .. } => {
                    let value = resolver.extern_value(&name)?;
                    if insn.is_call() {
                        out.insns[at] = match value {
                            ExternValue::Kfunc { btf_id, fd_index } => {
                                Insn::new(insn.code, 0, pseudo::KFUNC_CALL, fd_index, btf_id as i32)
                            }
                            ExternValue::Missing => {
                                out.missing_kfuncs.push(name.clone());
                                let tag = POISON_KFUNC_CALL + out.missing_kfuncs.len() as i32 - 1;
                                Insn::call_helper(tag)
                            }
                            _ => {
                                return Err(err(format!("`{name}` is called but is not a kernel function")));
                            }
                        };
                    } else {
                        let (src, lo, hi) = match value {
                            ExternValue::Kfunc { btf_id, .. } => (pseudo::BTF_ID, btf_id as i32, 0),
                            ExternValue::Var { btf_id, btf_obj_fd } => (pseudo::BTF_ID, btf_id as i32, btf_obj_fd),
                            ExternValue::Address(a) => (0, a as u32 as i32, (a >> 32) as u32 as i32),
                            // bpf_ksym_exists() on a missing weak symbol: a plain 0.
                            ExternValue::Missing => (0, 0, 0),
                        };
                        let w = &mut out.insns[at];
                        w.set_src(src);
                        w.imm = lo;
                        second_slot(&mut out.insns, at, &err)?.imm = hi;
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Appends a copy of a function and queues it for relocation; returns where it starts.
fn place(
    sections: &[CodeSection],
    out: &mut LinkedProgram,
    placed: &mut HashMap<(usize, usize), usize>,
    queue: &mut VecDeque<(usize, usize, usize, usize)>,
    sec: usize,
    start: usize,
    len: usize,
) -> usize {
    let base = out.insns.len();
    out.insns.extend_from_slice(&sections[sec].insns[start..start + len]);
    placed.insert((sec, start), base);
    queue.push_back((sec, start, len, base));
    base
}

fn second_slot<'a>(
    insns: &'a mut [Insn],
    at: usize,
    err: &dyn Fn(String) -> ObjectError,
) -> Result<&'a mut Insn, ObjectError> {
    insns.get_mut(at + 1).ok_or_else(|| err("ld_imm64 without its second half".into()))
}

/// Copies the function and line info of a placed function, rebased to its new position.
fn add_ext_info(obj: &Object, section: &CodeSection, start: usize, len: usize, base: usize, out: &mut LinkedProgram) {
    let Some(ext) = &obj.btf_ext else { return };
    let in_func = |byte_off: u32| {
        let idx = byte_off as usize / 8;
        (idx >= start && idx < start + len).then(|| (base + idx - start) as u32)
    };
    for fi in ext.func_info.section(&section.name) {
        if fi.insn_off as usize / 8 == start {
            out.func_info.push(FuncInfo { insn_off: base as u32, type_id: fi.type_id });
        }
    }
    for li in ext.line_info.section(&section.name) {
        if let Some(off) = in_func(li.insn_off) {
            out.line_info.push(LineInfo { insn_off: off, ..*li });
        }
    }
}
