//! What every fuzz target shares: an allocator that refuses to let one input make the
//! library allocate more than a bound derived from the input's size.
//!
//! The library promises that no input makes it allocate more than a small multiple of the
//! input's size (plus a constant for fixed-size tables): a parser that trusts a size field
//! would otherwise let a 9 KB file ask for gigabytes. Past the bound the allocation fails,
//! which aborts the process ("memory allocation of N bytes failed"), and libFuzzer keeps
//! the input as a crash.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes the library may hold at once per byte of input: parsed types and records take a
/// few times the bytes they were read from, and vectors grow by doubling.
pub const PER_INPUT_BYTE: usize = 64;
/// Bytes the library may hold at once whatever the input: fixed tables, error messages,
/// one BTF record list at its largest (65,535 entries).
pub const BASE: usize = 4 << 20;

struct Bounded;

/// Bytes currently allocated through the global allocator.
static LIVE: AtomicUsize = AtomicUsize::new(0);
/// Most bytes allowed at once; `usize::MAX` outside [`bounded`].
static LIMIT: AtomicUsize = AtomicUsize::new(usize::MAX);
/// Most bytes held at once since [`bounded`] started.
static PEAK: AtomicUsize = AtomicUsize::new(0);

impl Bounded {
    /// Accounts for `size` more bytes, or refuses them.
    fn take(&self, size: usize) -> bool {
        let live = LIVE.fetch_add(size, Ordering::Relaxed) + size;
        if live > LIMIT.load(Ordering::Relaxed) {
            LIVE.fetch_sub(size, Ordering::Relaxed);
            return false;
        }
        PEAK.fetch_max(live, Ordering::Relaxed);
        true
    }
}

// SAFETY: every call is passed to the system allocator unchanged; only the accounting is
// added, and a refused allocation returns null, as the trait allows.
unsafe impl GlobalAlloc for Bounded {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !self.take(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's layout, as the trait requires.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !self.take(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: as in alloc.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: ptr came from this allocator with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() && !self.take(new_size - layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: ptr came from this allocator with this layout.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if new.is_null() {
            if new_size > layout.size() {
                LIVE.fetch_sub(new_size - layout.size(), Ordering::Relaxed);
            }
        } else if new_size < layout.size() {
            LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Bounded = Bounded;

/// Runs `f`, which parses an input of `input_len` bytes, allowing it at most
/// `PER_INPUT_BYTE * input_len + BASE` bytes at once; returns the most it held.
pub fn bounded(input_len: usize, f: impl FnOnce()) -> usize {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        // Around libFuzzer's hook (set by now), which reports and aborts: the report (a
        // backtrace) allocates, and must not be refused and hang instead.
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            LIMIT.store(usize::MAX, Ordering::Relaxed);
            report(info);
        }));
    });
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    LIMIT.store(base + PER_INPUT_BYTE.saturating_mul(input_len) + BASE, Ordering::Relaxed);
    f();
    LIMIT.store(usize::MAX, Ordering::Relaxed);
    PEAK.load(Ordering::Relaxed) - base
}
