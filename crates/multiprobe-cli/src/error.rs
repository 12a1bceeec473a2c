//! Errors as the user sees them: one line saying what failed, `hint:` lines saying what to
//! do, and (with `-v`) the chain of causes and the verifier's full log.
//!
//! The `error:`, `warning:` and `hint:` labels are coloured on a terminal only: anstream drops
//! the colours when stderr is a pipe or a file, or when `NO_COLOR` is set (no-color.org).

use std::error::Error;
use std::fmt::Display;
use std::io;

use anstyle::{AnsiColor, Style};
use multiprobe::{AttachError, ListingError, LoadError, MapError, ObjectError};

/// The labels' styles, as cargo and rustc colour theirs.
const ERROR: Style = AnsiColor::Red.on_default().bold();
const WARNING: Style = AnsiColor::Yellow.on_default().bold();
const HINT: Style = AnsiColor::Cyan.on_default().bold();

/// Prints `warning: MESSAGE` on stderr: something was left out or degraded, the run goes on.
pub fn warning(message: impl Display) {
    anstream::eprintln!("{WARNING}warning:{WARNING:#} {message}");
}

/// A failure of a command, ready to print.
#[derive(Debug, Default)]
pub struct CliError {
    /// What failed, in one line.
    pub message: String,
    /// What to do about it.
    pub hints: Vec<String>,
    /// Printed with `-v` only: causes, the verifier log.
    pub details: Vec<String>,
    /// The kernel's errno behind the failure, where there is one (for `--json` consumers).
    pub errno: Option<i32>,
}

impl CliError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> CliError {
        CliError { message: message.into(), ..CliError::default() }
    }

    /// Adds a hint.
    pub fn hint(mut self, hint: impl Into<String>) -> CliError {
        self.hints.push(hint.into());
        self
    }

    /// Sets the errno reported with `--json`.
    pub fn errno(mut self, errno: i32) -> CliError {
        self.errno = Some(errno);
        self
    }

    /// From any error: its first line is the message, `hint:` lines of a multi-line message
    /// become hints, the rest and the chain of sources become details.
    fn from_error(e: &dyn Error) -> CliError {
        let text = e.to_string();
        let mut lines = text.lines();
        let mut out = CliError::new(lines.next().unwrap_or("").trim_end());
        for line in lines {
            match line.trim_start().strip_prefix("hint: ") {
                Some(h) => out.hints.push(h.to_string()),
                None => out.details.push(line.to_string()),
            }
        }
        // Causes the message already quotes add nothing.
        let mut source = e.source();
        while let Some(s) = source {
            let cause = s.to_string();
            if !text.contains(&cause) {
                out.details.push(format!("caused by: {cause}"));
            }
            source = s.source();
        }
        out
    }

    /// The failure as one JSON line for `--json` consumers, who read stdout only:
    /// `{"event":"error","message":..,"hints":[..],"errno":N|null}`.
    pub fn json_line(&self) -> String {
        #[derive(serde::Serialize)]
        struct Event<'a> {
            event: &'static str,
            message: &'a str,
            hints: &'a [String],
            errno: Option<i32>,
        }
        let event = Event { event: "error", message: &self.message, hints: &self.hints, errno: self.errno };
        let line = serde_json::to_string(&event).unwrap_or_else(|_| r#"{"event":"error"}"#.into());
        format!("{line}\n")
    }

    /// Writes the error to stderr as `error: ...`, `hint: ...` and, if `verbose`, the details.
    pub fn print(&self, verbose: bool) {
        anstream::eprintln!("{ERROR}error:{ERROR:#} {}", self.message);
        for h in &self.hints {
            anstream::eprintln!("{HINT}hint:{HINT:#} {h}");
        }
        if verbose {
            for d in &self.details {
                eprintln!("{d}");
            }
        } else if !self.details.is_empty() {
            anstream::eprintln!("{HINT}hint:{HINT:#} run with -v for details");
        }
    }
}

/// Hints for the errors of reading tracefs, which `list`, `count` and `latency` all do, and of
/// naming functions the kernel cannot trace.
fn read_hints(e: &AttachError) -> Vec<String> {
    match e {
        AttachError::Read { source, .. } if source.kind() == io::ErrorKind::PermissionDenied => {
            vec![if multiprobe::raw::geteuid() == 0 {
                "the kernel refuses even root here: a sandbox or security policy (seccomp, LSM, lockdown) blocks tracefs; `multiprobe features` shows what works".into()
            } else {
                "reading the kernel's list of traceable functions needs root".into()
            }]
        }
        AttachError::Tracefs(t) if t.permission_denied() => vec![
            "run it as root (sudo multiprobe ...), or give it CAP_BPF and CAP_PERFMON and make tracefs readable to this user; `multiprobe features` shows what is missing".into(),
        ],
        AttachError::NoMatch { .. } => vec![
            "patterns are globs over traceable function names (`vfs_*`, `tcp_v4_*`); `MODULE:NAME` picks module functions".into(),
            "see what is traceable with `multiprobe list PATTERN`".into(),
        ],
        AttachError::NotSupported { .. } => vec!["`multiprobe features` shows what this kernel supports, and why".into()],
        AttachError::UntraceableSymbol { symbol, .. } => vec![format!("check `multiprobe list '{symbol}'`")],
        _ => Vec::new(),
    }
}

impl From<AttachError> for CliError {
    fn from(e: AttachError) -> CliError {
        let mut out = CliError::from_error(&e);
        out.errno = Some(e.errno());
        out.hints.extend(read_hints(&e));
        if let AttachError::Cancelled { .. } = e {
            out.message = format!("interrupted while attaching: {}", out.message);
        }
        if let AttachError::Reload { source, .. } = &e {
            add_verifier_log(&mut out, source);
        }
        out
    }
}

impl From<ListingError> for CliError {
    /// The listing's failures read as they do on the attach path, with the same hints.
    fn from(e: ListingError) -> CliError {
        CliError::from(AttachError::from(e))
    }
}

impl From<LoadError> for CliError {
    fn from(e: LoadError) -> CliError {
        let mut out = CliError::from_error(&e);
        out.errno = e.errno();
        add_verifier_log(&mut out, &e);
        out
    }
}

/// The verifier's full log goes to the details (the message carries only its tail).
fn add_verifier_log(out: &mut CliError, e: &LoadError) {
    if let Some(log) = e.verifier_log() {
        out.details.retain(|d| !d.starts_with("    ") && !d.trim_start().starts_with("verifier log"));
        out.details.push("verifier log:".into());
        out.details.extend(log.trim_end().lines().map(|l| format!("  {l}")));
    }
}

impl From<ObjectError> for CliError {
    fn from(e: ObjectError) -> CliError {
        CliError::from_error(&e)
    }
}

impl From<MapError> for CliError {
    fn from(e: MapError) -> CliError {
        CliError { errno: e.errno(), ..CliError::from_error(&e) }
    }
}

impl From<io::Error> for CliError {
    fn from(e: io::Error) -> CliError {
        CliError { errno: e.raw_os_error(), ..CliError::from_error(&e) }
    }
}

/// Input echoed in a message, in backquotes, with control characters escaped: a newline in
/// a pattern must not cut the message in two (nor a terminal escape take over the screen).
pub fn quoted(input: &str) -> String {
    let mut out = String::with_capacity(input.len() + 2);
    out.push('`');
    for c in input.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.push('`');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_line_messages_split_into_message_hints_and_details() {
        let e = io::Error::other("loading failed: EACCES\n  hint: use a bounded loop\n  verifier log:\n    R1 invalid");
        let c = CliError::from(e);
        assert_eq!(c.message, "loading failed: EACCES");
        assert_eq!(c.hints, ["use a bounded loop"]);
        assert_eq!(c.details, ["  verifier log:", "    R1 invalid"]);
    }

    #[test]
    fn quoted_input_escapes_control_characters() {
        assert_eq!(quoted("vfs_*"), "`vfs_*`");
        assert_eq!(quoted("a\nb\tc\x1b[2J"), "`a\\nb\\tc\\u{1b}[2J`");
        assert_eq!(quoted("µs"), "`µs`");
    }

    #[test]
    fn no_match_and_unsupported_get_hints() {
        let e = AttachError::NoMatch { pattern: "nope_*".into(), hint: String::new() };
        let c = CliError::from(e);
        assert_eq!(c.message, "pattern `nope_*` matches no traceable function");
        assert!(c.hints.iter().any(|h| h.contains("multiprobe list")));
        let v: serde_json::Value = serde_json::from_str(&c.json_line()).unwrap();
        assert_eq!(v["event"], "error");
        assert_eq!(v["message"], "pattern `nope_*` matches no traceable function");
        assert_eq!(v["errno"], libc_enoent());
        assert!(v["hints"].as_array().unwrap().len() >= 2);
    }

    /// ENOENT, as the library reports a pattern that matches nothing (libbpf's errno).
    fn libc_enoent() -> i32 {
        2
    }
}
