//! Writing results: text or JSON lines on stdout, flushed as they are produced so a reader
//! (a pipe, a test) sees each event when it happens.
//!
//! Every failure to write is an error naming stdout, never lost output behind exit code 0.
//! A stdout closed when the command starts is refused before any work: Rust's runtime
//! reopens a closed descriptor 1 on /dev/null (read-write) before `main`, and its
//! `io::stdout()` would discard writes to a closed one anyway. A reader that went away
//! (EPIPE: Rust programs ignore SIGPIPE) and a full disk (ENOSPC) are reported as such.

use std::fs::File;
use std::io::{self, IsTerminal, Write};
use std::os::fd::AsFd;

use serde::Serialize;

use crate::error::CliError;

/// Where results go.
pub struct Output {
    out: File,
    /// Whether stdout is a terminal (tables redraw in place there).
    pub tty: bool,
}

impl Output {
    /// Stdout, or an error saying it is closed.
    pub fn stdout() -> Result<Output, CliError> {
        let closed = |why: String| {
            CliError::new(format!("stdout is closed ({why}): there is nowhere to write the output"))
                .hint("give the command a stdout: redirect it to a file, or to /dev/null (`>/dev/null`) to discard it")
        };
        if reopened_on_dev_null() {
            return Err(closed("the runtime found descriptor 1 closed and put /dev/null there".into()));
        }
        let fd = io::stdout().as_fd().try_clone_to_owned().map_err(|e| closed(e.to_string()))?;
        let out = File::from(fd);
        let tty = out.is_terminal();
        Ok(Output { out, tty })
    }

    /// Writes text as is (unbuffered: each call is one write of a whole report).
    pub fn text(&mut self, text: &str) -> Result<(), CliError> {
        self.out.write_all(text.as_bytes()).map_err(write_error)
    }

    /// Writes one JSON object on a line of its own.
    pub fn json<T: Serialize>(&mut self, value: &T) -> Result<(), CliError> {
        let mut line = serde_json::to_string(value).map_err(|e| CliError::new(format!("encoding JSON: {e}")))?;
        line.push('\n');
        self.text(&line)
    }
}

/// Whether descriptor 1 is what Rust's runtime puts in place of a closed one: /dev/null
/// opened read-write. Shells open `>/dev/null` write-only, so a user's own /dev/null passes
/// (only the rare `1<>/dev/null` looks the same). False where /proc cannot tell.
fn reopened_on_dev_null() -> bool {
    let Ok(target) = std::fs::read_link("/proc/self/fd/1") else { return false };
    let Ok(info) = std::fs::read_to_string("/proc/self/fdinfo/1") else { return false };
    let flags = info.lines().find_map(|l| l.strip_prefix("flags:")).and_then(|f| u32::from_str_radix(f.trim(), 8).ok());
    // O_ACCMODE is 0o3, O_RDWR 0o2 (uapi asm-generic/fcntl.h).
    target == std::path::Path::new("/dev/null") && flags.is_some_and(|f| f & 0o3 == 0o2)
}

/// A failed write to stdout, with what to do about it.
fn write_error(e: io::Error) -> CliError {
    let error = CliError::new(format!("writing to stdout failed: {e}"));
    match e.kind() {
        io::ErrorKind::BrokenPipe => error.hint("stdout is a pipe whose reader exited before the output was complete"),
        io::ErrorKind::StorageFull => error.hint("the file system stdout is written to is full"),
        _ => error,
    }
}

/// A kernel address as JSON carries it: hex text, since JSON numbers lose precision above 2^53.
pub fn hex_address(addr: u64) -> String {
    format!("{addr:#x}")
}

/// `1 function`, `2 functions`.
pub fn functions(n: usize) -> String {
    format!("{n} function{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    #[test]
    fn plurals() {
        assert_eq!(super::functions(1), "1 function");
        assert_eq!(super::functions(0), "0 functions");
    }

    #[test]
    fn addresses_are_hex_strings() {
        assert_eq!(super::hex_address(0xffffffff81234560), "0xffffffff81234560");
    }
}
