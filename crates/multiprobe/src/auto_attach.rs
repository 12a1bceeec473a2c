//! Attaching programs where their section names say (`SEC("kprobe.multi/vfs_*")`,
//! `SEC("raw_tp/sys_enter")`, `SEC("fentry/vfs_read")`), like libbpf's `bpf_program__attach`.

use crate::error::AttachError;
use crate::iterator::IterLink;
use crate::kprobe_multi::{KprobeMulti, KprobeMultiLink};
use crate::link::Link;
use crate::loader::LoadedObject;
use crate::object::ProgramKind;
use crate::perf_event::KprobeTarget;
use crate::program::Program;

/// What attaching one program produced.
#[derive(Debug)]
pub enum Attachment {
    /// A single link (tracepoint, kprobe, ksyscall, raw tracepoint, fentry, fexit, fmod_ret,
    /// tp_btf, lsm).
    Link(Link),
    /// A kprobe_multi link (or its per-function fallback).
    KprobeMulti(KprobeMultiLink),
    /// An iterator link, to be read.
    Iter(IterLink),
}

/// [`Program::attach`]: the target from the section name, attached by its kind.
pub(crate) fn attach(prog: &Program) -> Result<Option<Attachment>, AttachError> {
    use ProgramKind::*;
    let kind = prog.kind();
    // Kinds whose target is the BTF id they were loaded against: nothing to read here.
    match kind {
        Fentry | Fexit | FmodRet | Fsession | TpBtf => return Ok(Some(Attachment::Link(prog.attach_trace()?))),
        Lsm => return Ok(Some(Attachment::Link(prog.attach_lsm()?))),
        Iter => return Ok(Some(Attachment::Iter(prog.attach_iter()?))),
        KprobeMulti
        | KretprobeMulti
        | KprobeSession
        | Kprobe
        | Kretprobe
        | Ksyscall
        | Kretsyscall
        | Tracepoint
        | RawTracepoint
        | RawTracepointWritable => {}
        _ => return Ok(None),
    }
    let Some(target) = prog.attach_target().filter(|t| !t.is_empty()) else {
        return Err(AttachError::NoSectionTarget {
            program: prog.name().to_string(),
            section: kind.section_prefix().to_string(),
        });
    };
    let attachment = match kind {
        KprobeMulti | KretprobeMulti | KprobeSession => {
            check_pattern(prog, target)?;
            let spec = crate::kprobe_multi::KprobeMulti::pattern(target);
            let spec = match kind {
                KretprobeMulti => spec.retprobe(),
                KprobeSession => spec.session(),
                _ => spec,
            };
            Attachment::KprobeMulti(prog.attach_kprobe_multi(&spec)?)
        }
        Kprobe | Kretprobe => {
            let (name, offset) = match target.split_once('+') {
                Some((n, off)) => (
                    n,
                    parse_offset(off).ok_or_else(|| AttachError::InvalidSectionPattern {
                        program: prog.name().to_string(),
                        section: target.to_string(),
                        bad: '+',
                    })?,
                ),
                None => (target, 0),
            };
            Attachment::Link(prog.attach_kprobe(&KprobeTarget::Symbol { name: name.to_string(), offset }, 0)?)
        }
        Ksyscall | Kretsyscall => Attachment::Link(prog.attach_ksyscall(target, 0)?),
        Tracepoint => {
            let (category, name) = target.split_once('/').ok_or_else(|| AttachError::InvalidSectionPattern {
                program: prog.name().to_string(),
                section: target.to_string(),
                bad: '/',
            })?;
            Attachment::Link(prog.attach_tracepoint(category, name)?)
        }
        _ => Attachment::Link(prog.attach_raw_tracepoint(target)?),
    };
    Ok(Some(attachment))
}

fn parse_offset(s: &str) -> Option<u64> {
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// libbpf accepts `[a-zA-Z0-9_.*?]` in multi sections (and silently cuts the pattern at the
/// first other character); here any other character is an error.
fn check_pattern(prog: &Program, pattern: &str) -> Result<(), AttachError> {
    match pattern.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '*' | '?'))) {
        Some(bad) => Err(AttachError::InvalidSectionPattern {
            program: prog.name().to_string(),
            section: format!("{}/{pattern}", prog.kind().section_prefix()),
            bad,
        }),
        None => Ok(()),
    }
}

impl LoadedObject {
    /// Attaches every loaded program that [`Program::attach`] can attach, as libbpf's
    /// skeleton attach: programs whose section gives no target (`SEC("kprobe.multi")`) and
    /// kinds never attached by section (`socket`, ...) are left out. On the first failure,
    /// everything attached so far is detached and the error returned.
    pub fn attach_all(&self) -> Result<Vec<(String, Attachment)>, AttachError> {
        let mut out = Vec::new();
        for p in self.programs() {
            match p.attach() {
                Ok(Some(a)) => out.push((p.name().to_string(), a)),
                Ok(None) | Err(AttachError::NoSectionTarget { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Attaches the program `name` with kprobe_multi; names a program the object has but did
    /// not load, like libbpf's EINVAL for an unloaded program.
    pub fn attach_kprobe_multi(&self, name: &str, spec: &KprobeMulti) -> Result<KprobeMultiLink, AttachError> {
        self.loaded_program(name)?.attach_kprobe_multi(spec)
    }

    /// The loaded program `name`, or why there is none.
    pub fn loaded_program(&self, name: &str) -> Result<&Program, AttachError> {
        match self.program(name) {
            Some(p) => Ok(p),
            None if self.is_not_loaded(name) => Err(AttachError::ProgramNotLoaded { program: name.to_string() }),
            None => Err(AttachError::UnknownProgram { program: name.to_string() }),
        }
    }
}
