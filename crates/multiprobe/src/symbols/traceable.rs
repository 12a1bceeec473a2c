//! Which kernel functions can be traced, and which of them a pattern matches.
//!
//! The candidates are ftrace's traceable functions, not kallsyms: a kprobe_multi link fails
//! as a whole when one target is not traceable (notrace, inlined, a `.cold` part, data). On
//! 6.5+ `available_filter_functions_addrs` gives names with addresses in one file; before,
//! `available_filter_functions` gives names and `/proc/kallsyms` the addresses.
//!
//! Listings are 40,000+ lines. They are read with one buffer and scanned in place: a line
//! costs a prefix comparison, only matches allocate.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use memchr::memchr;

use super::glob::Glob;
use super::kallsyms::Kallsyms;
use super::tracefs;
use crate::error::ListingError;

/// A traceable kernel function.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Function {
    /// Name, suffixes such as `.isra.0` included.
    pub name: String,
    /// The module it belongs to; `None` for the core kernel (vmlinux).
    pub module: Option<String>,
    /// Its address as the kernel lists it: the ftrace patch site on 6.5+ (from
    /// `available_filter_functions_addrs`; a few bytes past the symbol on kernels with IBT),
    /// the symbol address from `/proc/kallsyms` before; 0 when addresses were not read.
    pub address: u64,
}

/// Where a listing came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListingSource {
    /// `available_filter_functions_addrs` (6.5+): names and patch-site addresses.
    FilterFunctionsAddrs,
    /// `available_filter_functions` joined with `/proc/kallsyms` for addresses.
    FilterFunctionsKallsyms,
    /// `available_filter_functions` alone: names, no addresses.
    FilterFunctions,
}

/// The ftrace entries that are not functions: weak functions the linker dropped.
const INVALID_PREFIX: &[u8] = b"__ftrace_invalid_address__";

/// A snapshot of the kernel's traceable functions.
#[derive(Debug, Clone)]
pub struct TraceableFunctions {
    /// Shared: a listing is kept and handed out again (see the cache).
    data: Arc<[u8]>,
    source: ListingSource,
    /// For names-only listings joined with kallsyms: where the addresses come from.
    kallsyms: Option<Arc<Kallsyms>>,
}

/// One line of a listing, borrowed from the buffer.
#[derive(Debug, Clone, Copy)]
struct Line<'a> {
    addr: &'a [u8],
    name: &'a [u8],
    module: Option<&'a [u8]>,
}

/// Shortest needle worth a substring search.
const MIN_NEEDLE: usize = 3;

impl TraceableFunctions {
    /// [`TraceableFunctions::read`] without the cache: always asks the kernel.
    pub fn read_uncached() -> Result<TraceableFunctions, ListingError> {
        match read_tracefs("available_filter_functions_addrs") {
            Ok(data) => Ok(TraceableFunctions {
                data: data.into(),
                source: ListingSource::FilterFunctionsAddrs,
                kallsyms: None,
            }),
            Err(ListingError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                let mut t = TraceableFunctions::read_names()?;
                let kallsyms = Kallsyms::read().map_err(|source| ListingError::read("/proc/kallsyms", source))?;
                t.kallsyms = Some(Arc::new(kallsyms));
                t.source = ListingSource::FilterFunctionsKallsyms;
                Ok(t)
            }
            Err(e) => Err(e),
        }
    }

    /// Reads names only (`available_filter_functions`): the cheapest listing, enough to
    /// check names or attach by name.
    pub fn read_names() -> Result<TraceableFunctions, ListingError> {
        let data = read_tracefs("available_filter_functions")?;
        Ok(TraceableFunctions { data: data.into(), source: ListingSource::FilterFunctions, kallsyms: None })
    }

    /// Builds a listing from text in either format (for tests and captured files).
    pub fn from_text(data: Vec<u8>, source: ListingSource) -> TraceableFunctions {
        TraceableFunctions { data: data.into(), source, kallsyms: None }
    }

    /// Builds a names-only listing joined with a kallsyms text, as [`TraceableFunctions::read`]
    /// does on kernels before 6.5 (for tests and captured files).
    pub fn from_names_and_kallsyms(names: Vec<u8>, kallsyms: Vec<u8>) -> TraceableFunctions {
        TraceableFunctions {
            data: names.into(),
            source: ListingSource::FilterFunctionsKallsyms,
            kallsyms: Some(Arc::new(Kallsyms::from_bytes(kallsyms))),
        }
    }

    /// The listing as the kernel wrote it.
    pub fn text(&self) -> &[u8] {
        &self.data
    }

    /// Where the listing came from.
    pub fn source(&self) -> ListingSource {
        self.source
    }

    /// Whether functions come with addresses.
    pub fn has_addresses(&self) -> bool {
        self.source != ListingSource::FilterFunctions
    }

    fn lines(&self) -> impl Iterator<Item = Line<'_>> {
        let with_addr = self.source == ListingSource::FilterFunctionsAddrs;
        LineIter { rest: &self.data }.filter_map(move |raw| parse_line(raw, with_addr))
    }

    /// The address of every function, in listing order (0 where unknown).
    pub(crate) fn addresses(&self) -> impl Iterator<Item = u64> + '_ {
        self.lines().map(|l| parse_hex(l.addr))
    }

    /// Number of traceable functions.
    pub fn len(&self) -> usize {
        self.lines().count()
    }

    /// Whether the kernel lists no traceable function (a kernel without ftrace).
    pub fn is_empty(&self) -> bool {
        self.lines().next().is_none()
    }

    /// Whether a function of this name is traceable (in any module).
    pub fn contains(&self, name: &str) -> bool {
        self.lines().any(|l| l.name == name.as_bytes())
    }

    /// How many traceable functions have this name.
    pub fn count_named(&self, name: &str) -> usize {
        self.lines().filter(|l| l.name == name.as_bytes()).count()
    }

    /// Every function whose name matches `pattern`, in listing order (by address).
    pub fn matching(&self, pattern: &Glob) -> Vec<Function> {
        self.filter_with_hint(&[pattern.longest_literal()], |name, _| pattern.matches(name))
    }

    /// Like [`TraceableFunctions::filter`], told that every accepted name contains one of
    /// `needles`: only the lines holding a needle are looked at, found with a vectorised
    /// substring search instead of walking 40,000 lines. An empty needle means no hint.
    pub(crate) fn filter_with_hint(
        &self,
        needles: &[&[u8]],
        keep: impl FnMut(&[u8], Option<&[u8]>) -> bool,
    ) -> Vec<Function> {
        // A needle of one or two bytes (`_` from `*_*`) is in most lines: finding and
        // sorting every hit would cost more than the plain walk.
        if needles.is_empty() || needles.iter().any(|n| n.len() < MIN_NEEDLE) {
            return self.filter(keep);
        }
        // Start offsets of the lines holding a needle, in listing order.
        let mut starts: Vec<usize> = Vec::new();
        for needle in needles {
            for at in memchr::memmem::find_iter(&self.data, needle) {
                starts.push(memchr::memrchr(b'\n', &self.data[..at]).map_or(0, |nl| nl + 1));
            }
        }
        starts.sort_unstable();
        starts.dedup();
        let with_addr = self.source == ListingSource::FilterFunctionsAddrs;
        let lines = starts.into_iter().filter_map(|start| {
            let rest = &self.data[start..];
            parse_line(&rest[..memchr(b'\n', rest).unwrap_or(rest.len())], with_addr)
        });
        self.functions(lines, keep)
    }

    /// Every function `keep(name, module)` accepts, in listing order.
    pub fn filter(&self, keep: impl FnMut(&[u8], Option<&[u8]>) -> bool) -> Vec<Function> {
        self.functions(self.lines(), keep)
    }

    /// The accepted ones of `lines` as functions, with their addresses.
    fn functions<'a>(
        &'a self,
        lines: impl Iterator<Item = Line<'a>>,
        mut keep: impl FnMut(&[u8], Option<&[u8]>) -> bool,
    ) -> Vec<Function> {
        let lines: Vec<Line<'_>> = lines.filter(|l| keep(l.name, l.module)).collect();
        // Names-only listing: one kallsyms pass for the matched names; the n-th copy of a
        // duplicated name takes the n-th kallsyms address of that name.
        let joined = self.kallsyms.as_ref().map(|k| {
            let wanted: HashSet<(&[u8], Option<&[u8]>)> = lines.iter().map(|l| (l.name, l.module)).collect();
            k.addresses_of(&wanted)
        });
        let mut seen: HashMap<(String, Option<String>), usize> = HashMap::new();
        lines
            .iter()
            .map(|l| {
                let name = String::from_utf8_lossy(l.name).into_owned();
                let module = l.module.map(|m| String::from_utf8_lossy(m).into_owned());
                let address = match &joined {
                    Some(j) => {
                        let key = (name.clone(), module.clone());
                        let n = seen.entry(key.clone()).or_insert(0);
                        *n += 1;
                        j.get(&key).and_then(|addrs| addrs.get(*n - 1)).copied().unwrap_or(0)
                    }
                    None => parse_hex(l.addr),
                };
                Function { name, module, address }
            })
            .collect()
    }
}

struct LineIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for LineIter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.rest.is_empty() {
            return None;
        }
        let end = memchr(b'\n', self.rest).unwrap_or(self.rest.len());
        let line = &self.rest[..end];
        self.rest = self.rest.get(end + 1..).unwrap_or(&[]);
        Some(line)
    }
}

/// `[ADDR ]NAME[ [MODULE]]`; `None` for blank lines and ftrace's invalid entries.
fn parse_line(raw: &[u8], with_addr: bool) -> Option<Line<'_>> {
    let mut rest = raw;
    let mut addr: &[u8] = &[];
    if with_addr {
        let sp = memchr(b' ', rest)?;
        addr = &rest[..sp];
        rest = &rest[sp + 1..];
    }
    let (name, module) = match memchr(b' ', rest) {
        Some(sp) => {
            let m = rest[sp + 1..].strip_prefix(b"[").and_then(|m| m.strip_suffix(b"]"));
            (&rest[..sp], m)
        }
        None => (rest, None),
    };
    if name.is_empty() || name.starts_with(INVALID_PREFIX) {
        return None;
    }
    Some(Line { addr, name, module })
}

fn parse_hex(s: &[u8]) -> u64 {
    super::kallsyms::parse_hex(s).unwrap_or(0)
}

fn read_tracefs(file: &str) -> Result<Vec<u8>, ListingError> {
    let root = tracefs::root()?;
    let path = root.join(file);
    std::fs::read(&path).map_err(|source| ListingError::read(path.display().to_string(), source))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADDRS: &str = "ffffffff81000010 do_one_initcall\n\
        ffffffff81234564 vfs_read\n\
        ffffffff81234a04 vfs_readv\n\
        __ftrace_invalid_address___84\n\
        ffffffff81234f04 vfs_write\n\
        ffffffffc0a01004 dummy_setup [dummy]\n\
        ffffffffc0a01104 vfs_read [fakemod]\n";

    fn listing() -> TraceableFunctions {
        TraceableFunctions::from_text(ADDRS.as_bytes().to_vec(), ListingSource::FilterFunctionsAddrs)
    }

    #[test]
    fn matches_with_modules_and_addresses() {
        let t = listing();
        let m = t.matching(&Glob::new("vfs_rea?"));
        assert_eq!(
            m,
            vec![
                Function { name: "vfs_read".into(), module: None, address: 0xffffffff81234564 },
                Function { name: "vfs_read".into(), module: Some("fakemod".into()), address: 0xffffffffc0a01104 },
            ]
        );
        assert_eq!(t.matching(&Glob::new("vfs_*")).len(), 4);
        assert_eq!(t.matching(&Glob::new("dummy_*"))[0].module.as_deref(), Some("dummy"));
        assert_eq!(t.len(), 6, "the invalid ftrace entry is not a function");
        assert!(t.contains("vfs_write") && !t.contains("__ftrace_invalid_address___84"));
        assert_eq!(t.count_named("vfs_read"), 2);
    }

    #[test]
    fn names_only_listing_joined_with_kallsyms() {
        let names = "vfs_read\nvfs_write\nstatic_fn\nstatic_fn\nfoo [mod]\n";
        let kallsyms = "ffffffff81000000 T _stext\n\
            ffffffff81100000 t static_fn\n\
            ffffffff81234560 T vfs_read\n\
            ffffffff81300000 d some_data\n\
            ffffffff81400000 t static_fn\n\
            ffffffffc0000000 t foo\t[mod]\n";
        let mut t = TraceableFunctions::from_text(names.as_bytes().to_vec(), ListingSource::FilterFunctionsKallsyms);
        t.kallsyms = Some(Arc::new(Kallsyms::from_text(kallsyms)));
        let all = t.matching(&Glob::new("*"));
        let addrs: Vec<(&str, u64)> = all.iter().map(|f| (f.name.as_str(), f.address)).collect();
        assert_eq!(
            addrs,
            vec![
                ("vfs_read", 0xffffffff81234560),
                ("vfs_write", 0),
                ("static_fn", 0xffffffff81100000),
                ("static_fn", 0xffffffff81400000),
                ("foo", 0xffffffffc0000000)
            ]
        );
        assert_eq!(all[4].module.as_deref(), Some("mod"));
    }

    #[test]
    fn odd_lines_do_not_panic() {
        let junk = b"\n\n ffff\nzz zz zz zz\n[x]\nffffffff81000000\n";
        let t = TraceableFunctions::from_text(junk.to_vec(), ListingSource::FilterFunctionsAddrs);
        let _ = t.matching(&Glob::new("*"));
        let t = TraceableFunctions::from_text(junk.to_vec(), ListingSource::FilterFunctions);
        let _ = t.matching(&Glob::new("*"));
    }
}
