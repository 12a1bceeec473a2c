//! Finding a kernel function by its entry address: a table from the 16-byte slot of each
//! function's entry address to its index, so that a BPF program attached to many functions
//! finds per-function state without attach cookies.
//!
//! Why: with a kprobe_multi link the kernel finds a program's attach cookie by binary search
//! over the link's addresses, an indirect call per step, on every call of every function: for
//! a program that only counts, most of its cost, and growing with the link. Kernel functions
//! are 16-byte aligned, so the 16-byte slot of a function's entry address
//! (`bpf_get_func_ip()`) tells it apart from every other; an array from slot to index is two
//! array lookups the verifier inlines.
//!
//! The table spans the functions' addresses (16 MiB of kernel text take 1 Mi slots, 8 MiB of
//! map: array values take 8 bytes each), so an index is built only when the span is
//! at most [`AddressIndex::MAX_SLOTS`] slots, no two functions share a slot, and (given the
//! functions' listed addresses) each function's patch site falls in its entry's slot, since
//! kernels and architectures differ in which of the two `bpf_get_func_ip()` returns. Where
//! one of these fails, the error says which function and why, and attach cookies remain the
//! way to tell functions apart.

use crate::symbols::Function;

/// Why no [`AddressIndex`] could be built for a set of addresses; each names the input at
/// fault. In every case attach cookies still tell the functions apart.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressIndexError {
    /// No address at all.
    #[error("no entry addresses: an address index needs at least one function")]
    Empty,
    /// Functions and entry addresses of different lengths.
    #[error(
        "{functions} functions but {entries} entry addresses: give one entry address per function, in the same order (as `entry_addresses` returns them)"
    )]
    LengthMismatch {
        /// Number of functions given.
        functions: usize,
        /// Number of entry addresses given.
        entries: usize,
    },
    /// An address in the first 16 bytes of the address space, where no function lives: 0
    /// when the function's address was never read.
    #[error(
        "{what} has no usable address ({address:#x}; 0 when it was never read): resolve functions from a listing with addresses, or find them by attach cookie"
    )]
    NoAddress {
        /// The function or address at fault (name, or position in the list).
        what: String,
        /// The address given.
        address: u64,
    },
    /// The addresses are too far apart for one table.
    #[error(
        "the entry addresses span {low:#x} to {high:#x}, {slots} slots of 16 bytes, more than the {max} an address index takes: index fewer or closer functions (the core kernel and modules lie far apart), or find them by attach cookie"
    )]
    SpanTooLarge {
        /// Lowest entry address.
        low: u64,
        /// Highest entry address.
        high: u64,
        /// Slots the span would take.
        slots: u64,
        /// The limit, [`AddressIndex::MAX_SLOTS`].
        max: u32,
    },
    /// Two functions in one 16-byte slot (or one function listed twice).
    #[error(
        "{first} and {second} share the 16-byte slot at {slot_address:#x}: an address index tells functions apart only when their entries are 16 bytes apart (list each function once), or find them by attach cookie"
    )]
    SharedSlot {
        /// The earlier of the two in the list.
        first: String,
        /// The later of the two.
        second: String,
        /// Address of the slot's first byte.
        slot_address: u64,
    },
    /// A function whose listed address (patch site) is in another slot than its entry.
    #[error(
        "{what}: its listed address {site:#x} is not in the 16-byte slot of its entry address {entry:#x}, so the program would find it in either slot depending on the kernel: find it by attach cookie"
    )]
    SiteOutsideSlot {
        /// The function at fault.
        what: String,
        /// Its entry address.
        entry: u64,
        /// Its listed address (the ftrace patch site).
        site: u64,
    },
}

/// A table from the 16-byte slot of each function's entry address to the function's index
/// (its position in the list it was built from), for a BPF program to find per-function
/// state by `bpf_get_func_ip()` instead of by attach cookie.
///
/// The table is an array of [`slot_count`](Self::slot_count) `u32` values starting at
/// [`base`](Self::base): slot `(address - base) >> 4` holds index + 1, and 0 where no
/// function starts. Only the slots of functions are listed ([`keys`](Self::keys),
/// [`values`](Self::values)), ready for `Map::update_batch` into an array map whose other
/// values stay 0.
///
/// The BPF side, as `multiprobe count` has it (bpf/count.bpf.c):
///
/// ```c
/// const volatile u64 slot_base = 0;           /* AddressIndex::base(), set before load */
///
/// struct {
///     __uint(type, BPF_MAP_TYPE_ARRAY);
///     __uint(max_entries, 1);                 /* AddressIndex::slot_count(), set before load */
///     __type(key, u32);                       /* AddressIndex::keys() */
///     __type(value, u32);                     /* AddressIndex::values(): index + 1, 0 = none */
/// } slots SEC(".maps");
///
/// u32 slot = (bpf_get_func_ip(ctx) - slot_base) >> 4;
/// u32 *v = bpf_map_lookup_elem(&slots, &slot);
/// if (!v || !*v)
///     return 0;                               /* not a function of the index */
/// u32 index = *v - 1;
/// ```
///
/// From user space:
///
/// ```no_run
/// use multiprobe::kprobe_multi::KprobeMulti;
/// use multiprobe::symbols::{Selection, entry_addresses};
/// use multiprobe::{AddressIndex, Object, UpdateFlags};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let functions = Selection::new().include("vfs_*").resolve()?;
/// let index = AddressIndex::for_functions(&functions, &entry_addresses(&functions)?)?;
///
/// let mut object = Object::open("count.bpf.o")?;
/// object.map_mut("counts").unwrap().set_max_entries(functions.len() as u32);
/// object.map_mut("slots").unwrap().set_max_entries(index.slot_count());
/// object.set_global("slot_base", &index.base())?;
/// let loaded = object.load()?;
/// loaded.map("slots").unwrap().update_batch(index.keys(), index.values(), UpdateFlags::Any)?;
///
/// // No cookies: the program finds each function's counter by its address.
/// let spec = KprobeMulti::functions(functions.iter().cloned());
/// let link = loaded.program("count_calls").unwrap().attach_kprobe_multi(&spec)?;
/// # drop(link);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressIndex {
    /// Address of slot 0: the lowest entry address, rounded down to 16 bytes.
    base: u64,
    /// Number of slots: from `base` to the highest entry.
    slot_count: u32,
    /// Slot of each function, in the order given.
    keys: Vec<u32>,
    /// Index + 1 of each function, at the same position as its slot.
    values: Vec<u32>,
    /// (slot, index) sorted by slot: duplicates found while building, lookups after.
    by_slot: Vec<(u32, u32)>,
}

impl AddressIndex {
    /// Bytes of kernel text per slot: functions are 16-byte aligned.
    pub const SLOT_BYTES: u64 = 16;

    /// The most slots an index takes: 4 Mi (64 MiB of text; an array map of 32 MiB). The core
    /// kernel fits; a set mixing the core kernel and modules (gigabytes apart) does not.
    pub const MAX_SLOTS: u32 = 4 << 20;

    /// The index of `entries`, the entry addresses of some functions (index = position).
    ///
    /// Use [`for_functions`](Self::for_functions) where the functions come from a listing:
    /// it also checks that the kernel may report either the entry or the listed address.
    ///
    /// ```
    /// use multiprobe::AddressIndex;
    ///
    /// let index = AddressIndex::from_entries(&[0xffffffff81000040, 0xffffffff81000010]).unwrap();
    /// assert_eq!(index.base(), 0xffffffff81000010);
    /// assert_eq!(index.slot_count(), 4);
    /// assert_eq!(index.keys(), [3, 0]);
    /// assert_eq!(index.values(), [1, 2]); // index + 1
    /// assert_eq!(index.lookup(0xffffffff81000044), Some(0)); // anywhere in the slot
    /// assert_eq!(index.lookup(0xffffffff81000020), None);
    /// ```
    pub fn from_entries(entries: &[u64]) -> Result<AddressIndex, AddressIndexError> {
        Self::build(entries, |i| format!("entry address #{i}"), |_| None)
    }

    /// The index of `functions` whose entry addresses are `entries`, in the same order (as
    /// [`entry_addresses`](crate::symbols::entry_addresses) returns them); index =
    /// position. Each function's listed address (its patch site, a few bytes past the entry
    /// on kernels with IBT) must fall in the same slot as its entry, since which of the two
    /// `bpf_get_func_ip()` returns differs between kernels and architectures.
    pub fn for_functions(functions: &[Function], entries: &[u64]) -> Result<AddressIndex, AddressIndexError> {
        if functions.len() != entries.len() {
            return Err(AddressIndexError::LengthMismatch { functions: functions.len(), entries: entries.len() });
        }
        let describe = |i: usize| match &functions[i].module {
            Some(m) => format!("function `{}` [{m}]", functions[i].name),
            None => format!("function `{}`", functions[i].name),
        };
        Self::build(entries, describe, |i| Some(functions[i].address))
    }

    /// Builds the index of `entries`; `describe` names the `i`th for errors, `site` gives its
    /// listed address where there is one.
    fn build(
        entries: &[u64],
        describe: impl Fn(usize) -> String,
        site: impl Fn(usize) -> Option<u64>,
    ) -> Result<AddressIndex, AddressIndexError> {
        let (Some(&low), Some(&high)) = (entries.iter().min(), entries.iter().max()) else {
            return Err(AddressIndexError::Empty);
        };
        for (i, &entry) in entries.iter().enumerate() {
            let site = site(i);
            // Slot 0 must not start at 0: a BPF program may keep slot_base 0 to mean cookies.
            if let Some(address) = [Some(entry), site].into_iter().flatten().find(|&a| a < Self::SLOT_BYTES) {
                return Err(AddressIndexError::NoAddress { what: describe(i), address });
            }
            if let Some(site) = site
                && site / Self::SLOT_BYTES != entry / Self::SLOT_BYTES
            {
                return Err(AddressIndexError::SiteOutsideSlot { what: describe(i), entry, site });
            }
        }
        let base = low - low % Self::SLOT_BYTES;
        // At most 2^60: no overflow.
        let slots = (high - base) / Self::SLOT_BYTES + 1;
        if slots > u64::from(Self::MAX_SLOTS) {
            return Err(AddressIndexError::SpanTooLarge { low, high, slots, max: Self::MAX_SLOTS });
        }
        // Within MAX_SLOTS: every slot number fits a u32.
        let keys: Vec<u32> = entries.iter().map(|&e| ((e - base) / Self::SLOT_BYTES) as u32).collect();
        let mut order: Vec<usize> = (0..keys.len()).collect();
        order.sort_unstable_by_key(|&i| (keys[i], i));
        if let Some(w) = order.windows(2).find(|w| keys[w[0]] == keys[w[1]]) {
            return Err(AddressIndexError::SharedSlot {
                first: describe(w[0]),
                second: describe(w[1]),
                slot_address: base + u64::from(keys[w[0]]) * Self::SLOT_BYTES,
            });
        }
        // One function per slot: no more functions than slots, so every index + 1 fits a u32.
        let by_slot = order.iter().map(|&i| (keys[i], i as u32)).collect();
        let values = (1..=keys.len() as u32).collect();
        Ok(AddressIndex { base, slot_count: slots as u32, keys, values, by_slot })
    }

    /// Address of slot 0 (the lowest entry address rounded down to 16 bytes): the BPF side's
    /// `slot_base`. Never 0, so a program may keep 0 to mean "find by cookie".
    pub fn base(&self) -> u64 {
        self.base
    }

    /// Number of slots, from [`base`](Self::base) to the highest entry: the array map's
    /// `max_entries`. At most [`MAX_SLOTS`](Self::MAX_SLOTS).
    pub fn slot_count(&self) -> u32 {
        self.slot_count
    }

    /// Number of functions in the index.
    pub fn function_count(&self) -> usize {
        self.keys.len()
    }

    /// The slot of each function, in the order the functions were given: the keys to write.
    pub fn keys(&self) -> &[u32] {
        &self.keys
    }

    /// Each function's index + 1, at the position of its key: the values to write (0 is left
    /// for slots where no function starts).
    pub fn values(&self) -> &[u32] {
        &self.values
    }

    /// What the BPF side finds for `address`: the index of the function whose slot holds it,
    /// or `None` when it falls outside the table or in a slot where no function starts.
    pub fn lookup(&self, address: u64) -> Option<usize> {
        let slot = u32::try_from(address.checked_sub(self.base)? / Self::SLOT_BYTES).ok()?;
        let i = self.by_slot.binary_search_by_key(&slot, |&(s, _)| s).ok()?;
        Some(self.by_slot[i].1 as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A function patched 4 bytes past its entry (x86 with IBT).
    fn f(entry: u64) -> Function {
        Function { name: format!("f{entry:x}"), module: None, address: entry + 4 }
    }

    fn build(entries: &[u64]) -> Result<AddressIndex, AddressIndexError> {
        let fs: Vec<Function> = entries.iter().map(|&e| f(e)).collect();
        AddressIndex::for_functions(&fs, entries)
    }

    #[test]
    fn slots_follow_entry_addresses() {
        let s = build(&[0xffffffff81000040, 0xffffffff81000010, 0xffffffff81000100]).unwrap();
        assert_eq!(s.base(), 0xffffffff81000010);
        assert_eq!(s.slot_count(), 16);
        assert_eq!(s.keys(), [3, 0, 15]);
        assert_eq!(s.values(), [1, 2, 3]);
        assert_eq!(s.function_count(), 3);
    }

    #[test]
    fn lookups_find_what_the_bpf_side_finds() {
        let s = build(&[0xffffffff81000040, 0xffffffff81000010, 0xffffffff81000100]).unwrap();
        assert_eq!(s.lookup(0xffffffff81000040), Some(0));
        assert_eq!(s.lookup(0xffffffff81000044), Some(0), "the patch site");
        assert_eq!(s.lookup(0xffffffff81000010), Some(1));
        assert_eq!(s.lookup(0xffffffff8100010f), Some(2));
        assert_eq!(s.lookup(0xffffffff81000020), None, "a slot with no function");
        assert_eq!(s.lookup(0xffffffff81000000), None, "below the table");
        assert_eq!(s.lookup(0xffffffff81000110), None, "past the table");
        assert_eq!(s.lookup(u64::MAX), None);
        assert_eq!(s.lookup(0), None);
    }

    #[test]
    fn unaligned_base_rounds_down() {
        let s = AddressIndex::from_entries(&[0x100c, 0x1020]).unwrap();
        assert_eq!((s.base(), s.slot_count(), s.keys()), (0x1000, 3, &[0, 2][..]));
    }

    #[test]
    fn cookies_remain_for_shared_slots_and_wide_spans() {
        assert!(
            matches!(build(&[0x1000, 0x1008]), Err(AddressIndexError::SharedSlot { slot_address: 0x1000, .. })),
            "two functions in one slot"
        );
        let shared = AddressIndex::from_entries(&[0x2000, 0x1000, 0x1008]).unwrap_err();
        assert_eq!(
            shared,
            AddressIndexError::SharedSlot {
                first: "entry address #1".into(),
                second: "entry address #2".into(),
                slot_address: 0x1000
            }
        );
        assert!(matches!(
            build(&[0xffffffff81000000, 0xffffffffc0000000]),
            Err(AddressIndexError::SpanTooLarge { max: AddressIndex::MAX_SLOTS, .. })
        ));
        assert!(matches!(build(&[0x1000, 0x100c]), Err(AddressIndexError::SiteOutsideSlot { site: 0x1010, .. })));
        assert_eq!(AddressIndex::for_functions(&[], &[]), Err(AddressIndexError::Empty));
        assert_eq!(AddressIndex::from_entries(&[]), Err(AddressIndexError::Empty));
    }

    #[test]
    fn one_function_listed_twice_is_a_shared_slot() {
        let err = build(&[0x1000, 0x1000]).unwrap_err();
        assert!(matches!(err, AddressIndexError::SharedSlot { slot_address: 0x1000, .. }), "{err:?}");
        let err = AddressIndex::from_entries(&[0x1000; 100]).unwrap_err();
        assert!(matches!(err, AddressIndexError::SharedSlot { .. }), "{err:?}");
    }

    #[test]
    fn bad_input_is_named() {
        let fs = [f(0x1000), Function { name: "nf_hook".into(), module: Some("nf".into()), address: 0 }];
        let err = AddressIndex::for_functions(&fs, &[0x1000, 0x2000]).unwrap_err();
        assert_eq!(err, AddressIndexError::NoAddress { what: "function `nf_hook` [nf]".into(), address: 0 });
        assert!(err.to_string().contains("nf_hook"), "{err}");
        let err = AddressIndex::from_entries(&[0x1000, 0]).unwrap_err();
        assert_eq!(err, AddressIndexError::NoAddress { what: "entry address #1".into(), address: 0 });
        let err = AddressIndex::from_entries(&[0xf]).unwrap_err();
        assert_eq!(err, AddressIndexError::NoAddress { what: "entry address #0".into(), address: 0xf });
        let err = AddressIndex::for_functions(&fs, &[0x1000]).unwrap_err();
        assert_eq!(err, AddressIndexError::LengthMismatch { functions: 2, entries: 1 });
        assert!(err.to_string().contains("2 functions but 1 entry addresses"), "{err}");
    }

    #[test]
    fn extreme_addresses_do_not_panic() {
        let s = AddressIndex::from_entries(&[u64::MAX]).unwrap();
        assert_eq!((s.base(), s.slot_count()), (u64::MAX - 15, 1));
        assert_eq!(s.lookup(u64::MAX - 15), Some(0));
        assert!(matches!(AddressIndex::from_entries(&[16, u64::MAX]), Err(AddressIndexError::SpanTooLarge { .. })));
        let top = u64::from(AddressIndex::MAX_SLOTS) * 16 + 15;
        assert_eq!(AddressIndex::from_entries(&[16, top]).unwrap().slot_count(), AddressIndex::MAX_SLOTS);
        assert!(matches!(AddressIndex::from_entries(&[16, top + 1]), Err(AddressIndexError::SpanTooLarge { .. })));
        // A site below its entry, and one at the very top of the address space.
        let low = [Function { name: "a".into(), module: None, address: 0x0ff0 }];
        assert!(matches!(AddressIndex::for_functions(&low, &[0x1000]), Err(AddressIndexError::SiteOutsideSlot { .. })));
        let high = [Function { name: "b".into(), module: None, address: u64::MAX }];
        assert!(AddressIndex::for_functions(&high, &[u64::MAX - 3]).is_ok());
    }
}
