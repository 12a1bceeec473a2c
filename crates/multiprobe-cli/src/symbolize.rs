//! Kernel addresses to `name+0xoff` (and `[module]` for module code), from `/proc/kallsyms`:
//! what stack frames print as. One pass over the file for every address of a report, so a
//! report with thousands of frames reads the 200,000-line file once and keeps only the
//! symbols it needs.

use std::collections::HashMap;

/// How far past a symbol's start an address may lie and still belong to it. Kernel functions
/// are far smaller; an address further from every symbol (a hole, a trampoline) is shown raw.
const MAX_OFFSET: u64 = 1 << 20;

/// Where an address lies: its symbol, offset and module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub name: String,
    pub offset: u64,
    /// `None` for the core kernel.
    pub module: Option<String>,
}

impl Frame {
    /// `name+0xoff`, with ` [module]` for module code.
    pub fn text(&self) -> String {
        match &self.module {
            Some(m) => format!("{}+{:#x} [{m}]", self.name, self.offset),
            None => format!("{}+{:#x}", self.name, self.offset),
        }
    }
}

/// Addresses resolved against one kallsyms text.
#[derive(Debug, Default)]
pub struct Symbols {
    frames: HashMap<u64, Frame>,
}

impl Symbols {
    /// Resolves `addrs` against the running kernel's `/proc/kallsyms`. Without it (or with
    /// its addresses hidden: `kptr_restrict` shows zeros to non-root) every frame stays raw.
    pub fn resolve(addrs: impl IntoIterator<Item = u64>) -> Symbols {
        match std::fs::read("/proc/kallsyms") {
            Ok(text) => Symbols::from_kallsyms(&text, addrs),
            Err(_) => Symbols::default(),
        }
    }

    /// Resolves `addrs` against a kallsyms text: for each, the function symbol (`t`, `T`,
    /// `w`, `W`) closest at or below it.
    pub fn from_kallsyms(text: &[u8], addrs: impl IntoIterator<Item = u64>) -> Symbols {
        let mut sorted: Vec<u64> = addrs.into_iter().filter(|&a| a != 0).collect();
        sorted.sort_unstable();
        sorted.dedup();
        // Best symbol so far for each sorted address: (symbol address, line).
        let mut best: Vec<Option<(u64, &[u8])>> = vec![None; sorted.len()];
        for line in text.split(|&b| b == b'\n') {
            let Some((addr, _, _)) = parse_line(line) else { continue };
            if addr == 0 {
                continue;
            }
            let from = sorted.partition_point(|&a| a < addr);
            let to = sorted.partition_point(|&a| a <= addr.saturating_add(MAX_OFFSET));
            for slot in &mut best[from..to] {
                if slot.is_none_or(|(a, _)| addr > a) {
                    *slot = Some((addr, line));
                }
            }
        }
        let frames = sorted
            .iter()
            .zip(best)
            .filter_map(|(&at, b)| {
                let (addr, name, module) = parse_line(b?.1)?;
                let text = |s: &[u8]| String::from_utf8_lossy(s).into_owned();
                Some((at, Frame { name: text(name), offset: at - addr, module: module.map(text) }))
            })
            .collect();
        Symbols { frames }
    }

    /// The frame of `addr`, if a symbol holds it.
    pub fn frame(&self, addr: u64) -> Option<&Frame> {
        self.frames.get(&addr)
    }

    /// `name+0xoff [module]`, or the address in hex where no symbol holds it.
    pub fn text(&self, addr: u64) -> String {
        self.frame(addr).map_or_else(|| format!("{addr:#x}"), Frame::text)
    }
}

/// A function symbol: address, name, module.
type Line<'a> = (u64, &'a [u8], Option<&'a [u8]>);

/// `ADDR TYPE NAME[\t[MODULE]]` for function symbols.
fn parse_line(line: &[u8]) -> Option<Line<'_>> {
    let mut parts = line.splitn(3, |&b| b == b' ');
    let addr = std::str::from_utf8(parts.next()?).ok().and_then(|a| u64::from_str_radix(a, 16).ok())?;
    if !matches!(parts.next()?, b"t" | b"T" | b"w" | b"W") {
        return None;
    }
    let rest = parts.next()?;
    match rest.iter().position(|&b| b == b'\t' || b == b' ') {
        Some(i) => Some((addr, &rest[..i], rest[i + 1..].strip_prefix(b"[").and_then(|m| m.strip_suffix(b"]")))),
        None => Some((addr, rest, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KALLSYMS: &str = "ffffffff81000000 T _stext\n\
        ffffffff81234560 T vfs_read\n\
        ffffffff81234800 t ksys_read\n\
        ffffffff81300000 d some_data\n\
        ffffffffc0001000 t bm_status_read\t[binfmt_misc]\n";

    #[test]
    fn addresses_become_name_offset_and_module() {
        let addrs = [0xffffffff81234560, 0xffffffff81234873, 0xffffffff81300010, 0xffffffffc0001010, 0x10];
        let s = Symbols::from_kallsyms(KALLSYMS.as_bytes(), addrs);
        assert_eq!(s.text(0xffffffff81234560), "vfs_read+0x0");
        assert_eq!(s.text(0xffffffff81234873), "ksys_read+0x73");
        // Data symbols are not functions: the closest function below holds it.
        assert_eq!(s.text(0xffffffff81300010), "ksys_read+0xcb810");
        assert_eq!(s.text(0xffffffffc0001010), "bm_status_read+0x10 [binfmt_misc]");
        assert_eq!(s.text(0x10), "0x10", "below every symbol: raw");
        assert_eq!(s.frame(0xffffffff81234873).unwrap().name, "ksys_read");
    }

    #[test]
    fn hidden_addresses_resolve_nothing() {
        let s = Symbols::from_kallsyms(b"0000000000000000 T vfs_read\n", [0xffffffff81234560]);
        assert_eq!(s.text(0xffffffff81234560), "0xffffffff81234560");
    }
}
