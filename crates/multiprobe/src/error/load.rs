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
