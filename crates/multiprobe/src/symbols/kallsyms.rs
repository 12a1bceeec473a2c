//! `/proc/kallsyms`, scanned in place: 200,000 lines where only a handful matter, so nothing
//! is allocated per line.

use std::collections::{HashMap, HashSet};
use std::io;

use memchr::memchr;

/// One text symbol, borrowed from the buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sym<'a> {
    pub addr: u64,
    pub name: &'a [u8],
    pub module: Option<&'a [u8]>,
}

/// The contents of `/proc/kallsyms`.
pub(crate) struct Kallsyms {
    data: Vec<u8>,
}

impl std::fmt::Debug for Kallsyms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Kallsyms({} bytes)", self.data.len())
    }
}

impl Kallsyms {
    pub fn read() -> io::Result<Kallsyms> {
        std::fs::read("/proc/kallsyms").map(|data| Kallsyms { data })
    }

    /// A kallsyms text captured elsewhere.
    pub fn from_bytes(data: Vec<u8>) -> Kallsyms {
        Kallsyms { data }
    }

    #[cfg(test)]
    pub fn from_text(text: &str) -> Kallsyms {
        Kallsyms::from_bytes(text.as_bytes().to_vec())
    }

    /// Function symbols (`t`, `T`, `w`, `W`), in file order.
    pub fn text_symbols(&self) -> impl Iterator<Item = Sym<'_>> {
        self.data.split(|&b| b == b'\n').filter_map(parse_line)
    }

    /// Addresses of the functions named in `wanted` (with their module), in file order.
    pub fn addresses_of(
        &self,
        wanted: &HashSet<(&[u8], Option<&[u8]>)>,
    ) -> HashMap<(String, Option<String>), Vec<u64>> {
        let mut out: HashMap<(String, Option<String>), Vec<u64>> = HashMap::new();
        for s in self.text_symbols().filter(|s| wanted.contains(&(s.name, s.module))) {
            let key = (
                String::from_utf8_lossy(s.name).into_owned(),
                s.module.map(|m| String::from_utf8_lossy(m).into_owned()),
            );
            out.entry(key).or_default().push(s.addr);
        }
        out
    }

    /// For each address, the function it belongs to: the closest symbol at or below it
    /// within `max_offset` bytes. One pass over the file whatever the number of addresses.
    pub fn symbolize(&self, addrs: &[u64], max_offset: u64) -> Vec<Option<(String, Option<String>)>> {
        let mut order: Vec<usize> = (0..addrs.len()).collect();
        order.sort_unstable_by_key(|&i| addrs[i]);
        let sorted: Vec<u64> = order.iter().map(|&i| addrs[i]).collect();
        // Best symbol so far for each sorted address: (symbol address, symbol).
        let mut best: Vec<Option<(u64, Sym<'_>)>> = vec![None; sorted.len()];
        for s in self.text_symbols() {
            let from = sorted.partition_point(|&a| a < s.addr);
            let to = sorted.partition_point(|&a| a <= s.addr.saturating_add(max_offset));
            for slot in &mut best[from..to] {
                if slot.is_none_or(|(a, _)| s.addr > a) {
                    *slot = Some((s.addr, s));
                }
            }
        }
        let mut out = vec![None; addrs.len()];
        for (k, &i) in order.iter().enumerate() {
            out[i] = best[k].map(|(_, s)| {
                (
                    String::from_utf8_lossy(s.name).into_owned(),
                    s.module.map(|m| String::from_utf8_lossy(m).into_owned()),
                )
            });
        }
        out
    }
}

/// `ADDR TYPE NAME[\t[MODULE]]` for function types; `None` otherwise.
fn parse_line(line: &[u8]) -> Option<Sym<'_>> {
    let sp = memchr(b' ', line)?;
    let addr = parse_hex(&line[..sp])?;
    let rest = &line[sp + 1..];
    if !matches!(rest.first(), Some(b't' | b'T' | b'w' | b'W')) || rest.get(1) != Some(&b' ') {
        return None;
    }
    let rest = &rest[2..];
    let (name, module) = match rest.iter().position(|&b| b == b'\t' || b == b' ') {
        Some(i) => (&rest[..i], rest[i + 1..].strip_prefix(b"[").and_then(|m| m.strip_suffix(b"]"))),
        None => (rest, None),
    };
    Some(Sym { addr, name, module })
}

pub(crate) fn parse_hex(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &c| Some(acc << 4 | u64::from((c as char).to_digit(16)?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "ffffffff81000000 T _stext\n\
        ffffffff81100000 t static_fn\n\
        ffffffff81234560 T vfs_read\n\
        ffffffff81300000 d some_data\n\
        ffffffff81400000 t static_fn\n\
        ffffffffc0000000 t foo\t[mod]\n\
        garbage\n";

    #[test]
    fn scans_functions_only() {
        let k = Kallsyms::from_text(TEXT);
        let names: Vec<&[u8]> = k.text_symbols().map(|s| s.name).collect();
        assert_eq!(names, [&b"_stext"[..], b"static_fn", b"vfs_read", b"static_fn", b"foo"]);
        assert_eq!(k.text_symbols().last().unwrap().module, Some(&b"mod"[..]));
        let wanted: HashSet<(&[u8], Option<&[u8]>)> =
            [(&b"static_fn"[..], None), (&b"foo"[..], Some(&b"mod"[..]))].into();
        let found = k.addresses_of(&wanted);
        assert_eq!(found[&("static_fn".to_string(), None)], vec![0xffffffff81100000, 0xffffffff81400000]);
        assert_eq!(found[&("foo".to_string(), Some("mod".to_string()))], vec![0xffffffffc0000000]);
    }

    #[test]
    fn symbolizes_with_a_bounded_offset() {
        let k = Kallsyms::from_text(TEXT);
        let got = k.symbolize(&[0xffffffff81234564, 0xffffffff81000000, 0xffffffff81234600, 1], 64);
        assert_eq!(got[0], Some(("vfs_read".into(), None)));
        assert_eq!(got[1], Some(("_stext".into(), None)));
        assert_eq!(got[2], None, "too far past vfs_read");
        assert_eq!(got[3], None);
    }
}
