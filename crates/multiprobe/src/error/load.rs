//! Why loading an object, or a program again, failed: [`LoadError`], the verifier's log
//! tail and hints included.

use std::io;

use super::{MapError, PinError};
use crate::btf::{BtfError, CoreError};
use crate::object::{ObjectError, ProgramKind};

/// Why loading an object failed.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs)] // variant fields are named in the messages
pub enum LoadError {
    /// The object could not be parsed.
    #[error(transparent)]
    Object(#[from] ObjectError),
    /// Kernel BTF is needed (CO-RE, kfuncs) but unavailable.
    #[error("the object needs the kernel's BTF ({why}): {source}")]
    KernelBtf { why: String, source: BtfError },
    /// A CO-RE relocation could not be applied.
    #[error("CO-RE relocation in section `{section}`: {source}")]
    Core { section: String, source: CoreError },
    /// The kernel refused a map.
    #[error("creating map `{map}` failed: {source}{}", hint_suffix(.hint))]
    MapCreate { map: String, source: io::Error, hint: Option<String> },
    /// A pinned map does not match the object's definition.
    #[error(
        "map `{map}`: the map pinned at {path} does not match the object's definition ({reason}); remove the pin or change the definition"
    )]
    PinnedMapMismatch { map: String, path: String, reason: String },
    /// Pinning (or opening a pin) failed.
    #[error(transparent)]
    Pin(#[from] PinError),
    /// A map operation during load failed.
    #[error(transparent)]
    Map(#[from] MapError),
    /// A kfunc extern cannot be resolved.
    #[error("kernel function `{name}` (__ksym): {reason}")]
    Kfunc { name: String, reason: String },
    /// A kernel variable extern cannot be resolved.
    #[error("kernel symbol `{name}` (__ksym): {reason}")]
    Ksym { name: String, reason: String },
    /// The verifier (or the kernel) refused a program; see [`LoadError::verifier_log`].
    #[error("{}", program_error(.program, *.kind, .source, .log, .hints))]
    Program { program: String, kind: ProgramKind, source: io::Error, log: String, hints: Vec<String> },
    /// A program to load whose section names no kind, and which was given none.
    #[error(
        "program `{program}` is in section `{section}`, which names no program kind libbpf or multiprobe knows: \
         give it one with ProgramSpec::set_kind (or a SectionHandler in OpenOptions), or leave it out with \
         set_autoload(false)"
    )]
    NoKind { program: String, section: String },
    /// A program of a kind multiprobe cannot load yet.
    #[error(
        "program `{program}` (section `{section}`): {what} is not supported yet; leave it out with set_autoload(false)"
    )]
    Unsupported { program: String, section: String, what: String },
    /// A tracing, LSM or iterator program without an attach target.
    #[error(
        "program `{program}` (section `{section}`) needs an attach target: write it in the section \
         (`{prefix}/NAME`) or call ProgramSpec::set_attach_target before load"
    )]
    NoAttachTarget { program: String, section: String, prefix: String },
    /// A tracing, LSM or iterator program's attach target is not in the kernel's BTF.
    #[error("program `{program}`: attach target `{target}`: {reason}")]
    AttachTarget { program: String, target: String, reason: String },
    /// A `.kconfig` extern has no value.
    #[error(transparent)]
    Kconfig(#[from] KconfigError),
    /// A program opened from a pin cannot be loaded again.
    #[error("program `{program}` was opened from a pin: its code is not available to load it again")]
    NoCode { program: String },
}

impl LoadError {
    /// The verifier's full log, when a program failed to load.
    pub fn verifier_log(&self) -> Option<&str> {
        match self {
            LoadError::Program { log, .. } if !log.is_empty() => Some(log),
            _ => None,
        }
    }

    /// The errno behind the failure, if the kernel gave one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            LoadError::MapCreate { source, .. } | LoadError::Program { source, .. } => source.raw_os_error(),
            LoadError::Pin(e) => e.errno(),
            _ => None,
        }
    }
}

/// Why a kconfig extern has no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("kconfig extern `{name}`: {reason}")]
pub struct KconfigError {
    /// The extern.
    pub name: String,
    /// Why.
    pub reason: String,
}

fn hint_suffix(hint: &Option<String>) -> String {
    hint.as_ref().map(|h| format!(" ({h})")).unwrap_or_default()
}

/// Lines of the verifier log worth printing in an error message: the end, where it says why.
const LOG_TAIL_LINES: usize = 20;

fn program_error(program: &str, kind: ProgramKind, source: &io::Error, log: &str, hints: &[String]) -> String {
    let mut s = format!("loading program `{program}` ({}) failed: {source}", kind.section_prefix());
    for h in hints {
        s.push_str(&format!("\n  hint: {h}"));
    }
    if !log.is_empty() {
        let lines: Vec<&str> = log.trim_end().lines().collect();
        let skip = lines.len().saturating_sub(LOG_TAIL_LINES);
        s.push_str(&format!("\n  verifier log ({} of {} lines):", lines.len() - skip, lines.len()));
        for l in &lines[skip..] {
            s.push_str("\n    ");
            s.push_str(l);
        }
    }
    s
}
