//! Where each traceable function starts.
//!
//! The kernel finds a kprobe_multi cookie by the entry (symbol) address of the function
//! being run, but `available_filter_functions_addrs` lists ftrace patch sites: 4 bytes past
//! the entry on x86 kernels with IBT (an `endbr64` comes first), 0 without. The entry of a
//! patch site is the closest function symbol at or below it, a few bytes away: no other
//! symbol can sit between a function's start and its patch site (the `__pfx_` padding
//! symbols sit before the start).

/// How far past its symbol a function's patch site may sit (x86 IBT: 4 bytes; arm64: 8).
const MAX_PATCH_OFFSET: u64 = 16;

/// Patch site -> entry address, for every listed function.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Entries {
    /// Sorted patch sites and, at the same index, how far past the entry each sits.
    sites: Vec<u64>,
    offsets: Vec<u8>,
}

impl Entries {
    /// Entries of `sites` (any order), given every function symbol address.
    pub fn compute(sites: impl IntoIterator<Item = u64>, mut symbols: Vec<u64>) -> Entries {
        symbols.sort_unstable();
        let mut sites: Vec<u64> = sites.into_iter().collect();
        sites.sort_unstable();
        sites.dedup();
        let offsets = sites
            .iter()
            .map(|&site| {
                let i = symbols.partition_point(|&s| s <= site);
                match i.checked_sub(1).map(|j| symbols[j]) {
                    Some(sym) if site - sym <= MAX_PATCH_OFFSET => (site - sym) as u8,
                    _ => 0,
                }
            })
            .collect();
        Entries { sites, offsets }
    }

    /// The entry address of the function whose patch site is `site` (`site` itself when it
    /// is not a known patch site: it may already be an entry address).
    pub fn entry(&self, site: u64) -> u64 {
        match self.sites.binary_search(&site) {
            Ok(i) => site - u64::from(self.offsets[i]),
            Err(_) => site,
        }
    }

    /// Serialised: per site, 8 bytes little-endian and the offset byte.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.sites.len() * 9);
        for (site, off) in self.sites.iter().zip(&self.offsets) {
            out.extend_from_slice(&site.to_le_bytes());
            out.push(*off);
        }
        out
    }

    /// Reads what [`Entries::to_bytes`] wrote; `None` for anything else.
    pub fn from_bytes(bytes: &[u8]) -> Option<Entries> {
        if bytes.len() % 9 != 0 {
            return None;
        }
        let (mut sites, mut offsets) = (Vec::new(), Vec::new());
        for chunk in bytes.chunks_exact(9) {
            let (site, offset) = (u64::from_le_bytes(chunk[..8].try_into().ok()?), chunk[8]);
            if u64::from(offset) > MAX_PATCH_OFFSET || site < u64::from(offset) {
                return None;
            }
            sites.push(site);
            offsets.push(offset);
        }
        sites.windows(2).all(|w| w[0] < w[1]).then_some(Entries { sites, offsets })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_sites_map_to_the_symbol_just_below() {
        // foo at 0x1000 with its patch site at +4 (IBT); bar at 0x1010 patched at +0;
        // __pfx_baz padding at 0x1020, baz at 0x1030 patched at +4; a site far from any symbol.
        let symbols = vec![0x1000, 0x1010, 0x1020, 0x1030];
        let e = Entries::compute([0x1034, 0x1004, 0x1010, 0x9000], symbols);
        assert_eq!(e.entry(0x1004), 0x1000);
        assert_eq!(e.entry(0x1010), 0x1010);
        assert_eq!(e.entry(0x1034), 0x1030);
        assert_eq!(e.entry(0x9000), 0x9000, "no symbol close enough: unchanged");
        assert_eq!(e.entry(0x1000), 0x1000, "already an entry");
        assert_eq!(Entries::from_bytes(&e.to_bytes()), Some(e.clone()));
        assert_eq!(Entries::from_bytes(&[1, 2, 3]), None);
        let mut far = e.to_bytes();
        far[8] = 200;
        assert_eq!(Entries::from_bytes(&far), None, "an offset no patch site has");
    }
}
