//! Kernel addresses as people read them: each as `function+0xoff`, with `[module]` for
//! module code, from `/proc/kallsyms` read once. The one symbolizer of the CLI: `trace
//! --kstack` names the frames of every event with it, `count --by kstack` those of each
//! report.
//!
//! The whole text-symbol table is kept sorted by address (about 200,000 entries, a few MB)
//! so that every frame is one binary search: a trace may symbolize thousands of frames a
//! second, and addresses need not be known before the file is read.

use std::borrow::Cow;
use std::fmt;
use std::io;
use std::ops::Range;

/// The kernel's text symbols, sorted by address. The default names nothing: every address
/// shows in hex.
#[derive(Default)]
pub struct KernelSymbols {
    /// The file as read; names and modules are ranges into it.
    data: Vec<u8>,
    /// Sorted by address.
    symbols: Vec<Symbol>,
}

impl fmt::Debug for KernelSymbols {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KernelSymbols({} symbols)", self.symbols.len())
    }
}

#[derive(Debug, Clone)]
struct Symbol {
    addr: u64,
    name: Range<usize>,
    module: Option<Range<usize>>,
}

/// Where an address lies: its function, the offset into it, and its module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame<'a> {
    pub name: Cow<'a, str>,
    pub offset: u64,
    /// `None` for the core kernel.
    pub module: Option<Cow<'a, str>>,
}

impl fmt::Display for Frame<'_> {
    /// `name+0xoff`, with ` [module]` for module code.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}+{:#x}", self.name, self.offset)?;
        match &self.module {
            Some(m) => write!(f, " [{m}]"),
            None => Ok(()),
        }
    }
}

/// No function is longer than this: an address further past the closest symbol belongs to
/// none (a gap in kallsyms, a module's data, an unwinder's garbage) and shows in hex.
const MAX_OFFSET: u64 = 1 << 20;

impl KernelSymbols {
    /// Reads `/proc/kallsyms`. Fails where every address reads as zero (no root, or
    /// `kptr_restrict`): the addresses could not be named.
    pub fn read() -> io::Result<KernelSymbols> {
        let symbols = KernelSymbols::parse(std::fs::read("/proc/kallsyms")?);
        if symbols.symbols.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "/proc/kallsyms shows no addresses (run as root, or lower kernel.kptr_restrict)",
            ));
        }
        Ok(symbols)
    }

    /// A kallsyms text: `ADDR TYPE NAME[\t[MODULE]]` lines; only text symbols with an
    /// address are kept (a hidden address reads as zero and could hold nothing).
    pub fn parse(data: Vec<u8>) -> KernelSymbols {
        let mut symbols = Vec::new();
        let mut start = 0;
        for line in data.split(|&b| b == b'\n') {
            if let Some(s) = parse_line(line, start).filter(|s| s.addr != 0) {
                symbols.push(s);
            }
            start += line.len() + 1;
        }
        symbols.sort_by_key(|s| s.addr);
        KernelSymbols { data, symbols }
    }

    /// The function holding `addr`: the closest text symbol at or below it, unless
    /// [`MAX_OFFSET`] or more below.
    pub fn frame(&self, addr: u64) -> Option<Frame<'_>> {
        let i = self.symbols.partition_point(|s| s.addr <= addr);
        let s = &self.symbols[i.checked_sub(1)?];
        let offset = addr - s.addr;
        if offset >= MAX_OFFSET {
            return None;
        }
        let text = |r: &Range<usize>| String::from_utf8_lossy(&self.data[r.clone()]);
        Some(Frame { name: text(&s.name), offset, module: s.module.as_ref().map(text) })
    }

    /// `function+0xoff` or `function+0xoff [module]`; the address in hex where no function
    /// holds it.
    pub fn name(&self, addr: u64) -> String {
        self.frame(addr).map_or_else(|| format!("{addr:#x}"), |f| f.to_string())
    }

    /// Each address named, innermost frame first as given.
    pub fn names(&self, addrs: &[u64]) -> Vec<String> {
        addrs.iter().map(|&a| self.name(a)).collect()
    }
}

/// A text symbol (`t`, `T`, `w`, `W`) of one line starting at byte `start` of the file.
fn parse_line(line: &[u8], start: usize) -> Option<Symbol> {
    let mut fields = line.splitn(3, |&b| b == b' ');
    let addr = fields.next().and_then(|a| std::str::from_utf8(a).ok()).and_then(|a| u64::from_str_radix(a, 16).ok())?;
    if !matches!(fields.next()?, b"t" | b"T" | b"w" | b"W") {
        return None;
    }
    let rest = fields.next()?;
    let rest_start = line.len() - rest.len();
    let (name_len, module) = match rest.iter().position(|&b| b == b'\t' || b == b' ') {
        Some(sep) => {
            let m = &rest[sep + 1..];
            let module = m.strip_prefix(b"[").and_then(|m| m.strip_suffix(b"]")).map(|inner| {
                let from = start + rest_start + sep + 2;
                from..from + inner.len()
            });
            (sep, module)
        }
        None => (rest.len(), None),
    };
    let from = start + rest_start;
    Some(Symbol { addr, name: from..from + name_len, module })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "ffffffff81000000 T _stext\n\
        ffffffff81234560 T vfs_read\n\
        ffffffff81234600 d some_data\n\
        ffffffff81200000 t earlier\n\
        ffffffffc0000000 t bm_status_write\t[binfmt_misc]\n\
        garbage\n";

    #[test]
    fn frames_are_named_with_offset_and_module() {
        let k = KernelSymbols::parse(TEXT.as_bytes().to_vec());
        assert_eq!(k.name(0xffffffff81234564), "vfs_read+0x4");
        assert_eq!(k.name(0xffffffff81234600), "vfs_read+0xa0", "data symbols are not functions");
        assert_eq!(k.name(0xffffffff81200010), "earlier+0x10", "sorted, whatever the file order");
        assert_eq!(k.name(0xffffffffc0000123), "bm_status_write+0x123 [binfmt_misc]");
        assert_eq!(k.name(0x1000), "0x1000", "below every symbol");
        assert_eq!(k.name(0xffffffffc0000000 + MAX_OFFSET), "0xffffffffc0100000", "too far past any");
        assert_eq!(k.names(&[0xffffffff81000000]), ["_stext+0x0"]);
        let f = k.frame(0xffffffffc0000123).unwrap();
        assert_eq!((f.name.as_ref(), f.offset, f.module.as_deref()), ("bm_status_write", 0x123, Some("binfmt_misc")));
        assert_eq!(k.frame(0x1000), None);
    }

    #[test]
    fn empty_or_odd_text_names_nothing() {
        let k = KernelSymbols::parse(b"\n\nxyz T\nffff T name_only\n".to_vec());
        assert_eq!(k.name(0xffff), "name_only+0x0");
        assert_eq!(KernelSymbols::parse(Vec::new()).name(1), "0x1");
        assert_eq!(KernelSymbols::default().name(0xffffffff81234560), "0xffffffff81234560");
    }

    #[test]
    fn hidden_addresses_name_nothing() {
        let k = KernelSymbols::parse(b"0000000000000000 T vfs_read\n0000000000000000 T vfs_write\n".to_vec());
        assert_eq!(k.name(0x10), "0x10", "a zero address holds nothing");
        assert!(k.symbols.is_empty(), "so read() reports the hidden addresses");
    }
}
