//! Finding a function's counter by its entry address instead of its attach cookie.
//!
//! With a kprobe_multi link the kernel finds a cookie by binary search over the link's
//! addresses, an indirect call per step: for `count`, most of the per-call cost, growing with
//! the number of functions. Kernel functions are 16-byte aligned, so the 16-byte slot of a
//! function's entry address (`bpf_get_func_ip`) identifies it: a table from slot to counter
//! index is two array lookups the verifier inlines. The table spans the functions' addresses
//! (16 MiB of kernel text take 1 Mi slots, 8 MiB of map: array values take 8 bytes each), so
//! it is used only when the span is small enough, no two functions share a slot, and each
//! function's entry and patch site fall in the same slot; otherwise cookies remain.

use multiprobe::symbols::Function;

/// Largest table: 4 Mi slots (64 MiB of text, 32 MiB of map). The core kernel fits; a set
/// mixing vmlinux and modules (gigabytes apart) does not.
const MAX_SLOTS: u64 = 4 << 20;

/// The slot table of a set of functions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slots {
    /// Entry address of slot 0.
    pub base: u64,
    /// Number of slots: the table's size.
    pub len: u32,
    /// Slot of each function that has one, and its counter index + 1 (0 marks empty slots).
    pub keys: Vec<u32>,
    pub values: Vec<u32>,
}

impl Slots {
    /// The table for `functions` whose entry addresses are `entries` (counter index = position),
    /// or `None` when cookies must do (span too large, two functions in one slot).
    pub fn build(functions: &[Function], entries: &[u64]) -> Option<Slots> {
        let base = entries.iter().min()? & !15;
        let top = *entries.iter().max()?;
        let len = (top - base) / 16 + 1;
        if len > MAX_SLOTS || functions.len() != entries.len() {
            return None;
        }
        let mut used = std::collections::HashSet::new();
        let mut keys = Vec::with_capacity(entries.len());
        let mut values = Vec::with_capacity(entries.len());
        for (i, (f, &entry)) in functions.iter().zip(entries).enumerate() {
            let slot = ((entry - base) / 16) as u32;
            // Whether the kernel reports the entry or the patch site (kernels and
            // architectures differ), both must find the same counter.
            let site_slot = f.address.checked_sub(base).map(|d| d / 16);
            if !used.insert(slot) || site_slot != Some(u64::from(slot)) {
                return None;
            }
            keys.push(slot);
            values.push(i as u32 + 1);
        }
        Some(Slots { base, len: len as u32, keys, values })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A function patched 4 bytes past its entry (x86 with IBT).
    fn f(entry: u64) -> Function {
        Function { name: format!("f{entry:x}"), module: None, address: entry + 4 }
    }

    fn build(entries: &[u64]) -> Option<Slots> {
        let fs: Vec<Function> = entries.iter().map(|&e| f(e)).collect();
        Slots::build(&fs, entries)
    }

    #[test]
    fn slots_follow_entry_addresses() {
        let s = build(&[0xffffffff81000040, 0xffffffff81000010, 0xffffffff81000100]).unwrap();
        assert_eq!(s.base, 0xffffffff81000010);
        assert_eq!(s.len, 16);
        assert_eq!(s.keys, [3, 0, 15]);
        assert_eq!(s.values, [1, 2, 3]);
    }

    #[test]
    fn cookies_remain_for_shared_slots_and_wide_spans() {
        assert_eq!(build(&[0x1000, 0x1008]), None, "two functions in one slot");
        assert_eq!(build(&[0xffffffff81000000, 0xffffffffc0000000]), None, "vmlinux and a module");
        assert_eq!(build(&[0x1000, 0x100c]), None, "a patch site in the next slot");
        assert_eq!(Slots::build(&[], &[]), None);
    }
}
