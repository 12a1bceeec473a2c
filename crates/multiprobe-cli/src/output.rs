//! Writing results: text or JSON lines on stdout, flushed as they are produced so a reader
//! (a pipe, a test) sees each event when it happens.

use std::io::{self, IsTerminal, Write};

use serde::Serialize;

/// Where results go.
pub struct Output {
    out: io::Stdout,
    /// Whether stdout is a terminal (tables redraw in place there).
    pub tty: bool,
}

impl Output {
    pub fn stdout() -> Output {
        let out = io::stdout();
        let tty = out.is_terminal();
        Output { out, tty }
    }

    /// Writes text as is and flushes.
    pub fn text(&mut self, text: &str) -> io::Result<()> {
        let mut lock = self.out.lock();
        lock.write_all(text.as_bytes())?;
        lock.flush()
    }

    /// Writes one JSON object on a line of its own and flushes.
    pub fn json<T: Serialize>(&mut self, value: &T) -> io::Result<()> {
        let mut line = serde_json::to_string(value).map_err(io::Error::other)?;
        line.push('\n');
        self.text(&line)
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
