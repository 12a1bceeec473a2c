//! Reusing the listing of traceable functions, and where they start.
//!
//! Reading `available_filter_functions_addrs` makes the kernel format 40,000+ lines: a third
//! of a second under emulation, ten times the cost of attaching a hundred functions; finding
//! the functions' entry addresses (for cookies) takes a read of `/proc/kallsyms` on top. Both
//! only change with the boot (KASLR moves vmlinux) and with the loaded modules (their
//! functions come and go, at new addresses), so they are kept, in memory for the process
//! and, when asked, in files for the boot, with that identity as the [`key::Key`]. Data is
//! kept only when the key was the same before and after reading it, and reused only while
//! the key stays the same, so stale data is never used.

mod file;
mod key;

use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

use self::key::Key;
use super::entries::Entries;
use super::kallsyms::Kallsyms;
use super::traceable::{ListingSource, TraceableFunctions};
use crate::error::ListingError;

/// What this process knows, for one key.
struct Memory {
    key: Key,
    listing: TraceableFunctions,
    entries: EntriesState,
}

/// Entry addresses, as far as this process has looked.
enum EntriesState {
    NotYet,
    Known(Arc<Entries>),
    /// `/proc/kallsyms` shows no addresses to this process.
    Hidden,
}

static MEMORY: Mutex<Option<Memory>> = Mutex::new(None);

/// Drops what this process keeps in memory (the listing, a few MiB, and the entry
/// addresses), for a long-running process that is done attaching; cache files stay. The
/// next read asks the kernel or the cache directory again.
pub fn forget_listing_cache() {
    *memory() = None;
}

fn memory() -> std::sync::MutexGuard<'static, Option<Memory>> {
    MEMORY.lock().unwrap_or_else(|e| e.into_inner())
}

const LISTING_FILE: &str = "functions-v1";
const ENTRIES_FILE: &str = "entries-v1";

/// The listing with addresses, from memory or the cache file in `dir` when still valid,
/// else read (and kept in `dir`, when given).
pub(crate) fn read(dir: Option<&Path>) -> Result<TraceableFunctions, ListingError> {
    Ok(read_keyed(dir)?.1)
}

/// The listing and the key it is valid for (`None`: valid for this moment only).
fn read_keyed(dir: Option<&Path>) -> Result<(Option<Key>, TraceableFunctions), ListingError> {
    let Some(key) = Key::current()? else { return Ok((None, TraceableFunctions::read_uncached()?)) };
    // Held while reading: a second thread waits for the first one's listing.
    let mut memory = memory();
    if let Some(m) = memory.as_ref().filter(|m| m.key == key) {
        return Ok((Some(key), m.listing.clone()));
    }
    if let Some(text) = load(dir, LISTING_FILE, &key)? {
        let listing = TraceableFunctions::from_text(text, ListingSource::FilterFunctionsAddrs);
        *memory = Some(Memory { key: key.clone(), listing: listing.clone(), entries: EntriesState::NotYet });
        return Ok((Some(key), listing));
    }
    let listing = TraceableFunctions::read_uncached()?;
    if Key::current()?.as_ref() != Some(&key) {
        // A module came or went while the kernel wrote the listing: use it, keep nothing.
        return Ok((None, listing));
    }
    // Only the 6.5+ listing is self-contained (older ones are joined with kallsyms); a cache
    // that cannot be written is only a missed speed-up.
    if let Some(d) = dir
        && listing.source() == ListingSource::FilterFunctionsAddrs
    {
        let _ = file::store(d, LISTING_FILE, &key, listing.text());
    }
    *memory = Some(Memory { key: key.clone(), listing: listing.clone(), entries: EntriesState::NotYet });
    Ok((Some(key), listing))
}

/// The cache file `name` in `dir` (if any) for `key`; a planted file that cannot be a cache
/// file (not regular, oversized) is an error naming it.
fn load(dir: Option<&Path>, name: &str, key: &Key) -> Result<Option<Vec<u8>>, ListingError> {
    let Some(d) = dir else { return Ok(None) };
    file::load(d, name, key).map_err(|e| ListingError::read(d.join(name).display().to_string(), e))
}

/// The listing kept in `dir` for the current boot and modules, if any: never asks the
/// kernel for it (for shell completion, which must stay cheap).
pub(crate) fn read_kept(dir: &Path) -> Option<TraceableFunctions> {
    let key = Key::current().ok()??;
    let text = file::load(dir, LISTING_FILE, &key).ok()??;
    Some(TraceableFunctions::from_text(text, ListingSource::FilterFunctionsAddrs))
}

/// Whether entry addresses are at hand without reading `/proc/kallsyms` now: kept in memory
/// for the current key, or about to be kept on disk (a cache directory `dir` is given, so
/// the read is paid once per boot). False once kallsyms turned out to hide addresses.
pub(crate) fn entries_are_cheap(dir: Option<&Path>) -> bool {
    let Ok(Some(key)) = Key::current() else { return false };
    match memory().as_ref().filter(|m| m.key == key).map(|m| &m.entries) {
        Some(EntriesState::Known(_)) => true,
        Some(EntriesState::Hidden) => false,
        Some(EntriesState::NotYet) | None => dir.is_some(),
    }
}

/// Entry addresses of every listed function: kept, or computed from `/proc/kallsyms` and
/// kept (in `dir` too, when given). Fails when kallsyms hides addresses from this process.
pub(crate) fn entries(dir: Option<&Path>) -> Result<Arc<Entries>, ListingError> {
    let (key, listing) = read_keyed(dir)?;
    if listing.source() != ListingSource::FilterFunctionsAddrs {
        // Older listings take their addresses from kallsyms: they are entries already.
        return Ok(Arc::new(Entries::default()));
    }
    if let Some(key) = &key {
        match memory().as_ref().filter(|m| m.key == *key).map(|m| &m.entries) {
            Some(EntriesState::Known(e)) => return Ok(Arc::clone(e)),
            Some(EntriesState::Hidden) => return Err(hidden_addresses()),
            Some(EntriesState::NotYet) | None => {}
        }
    }
    let cached = match (dir, &key) {
        (Some(_), Some(k)) => load(dir, ENTRIES_FILE, k)?.and_then(|b| Entries::from_bytes(&b)),
        _ => None,
    };
    let (entries, fresh) = match cached {
        Some(e) => (e, false),
        None => {
            let kallsyms = Kallsyms::read().map_err(|source| ListingError::read("/proc/kallsyms", source))?;
            let symbols: Vec<u64> = kallsyms.text_symbols().map(|s| s.addr).filter(|&a| a != 0).collect();
            if symbols.is_empty() {
                remember(key.as_ref(), EntriesState::Hidden);
                return Err(hidden_addresses());
            }
            (Entries::compute(listing.addresses(), symbols), true)
        }
    };
    // Kept only if no module came or went since the listing was read.
    let key = match key {
        Some(k) if fresh && Key::current()?.as_ref() != Some(&k) => None,
        k => k,
    };
    let entries = Arc::new(entries);
    if let (Some(d), Some(k)) = (dir, &key)
        && fresh
    {
        let _ = file::store(d, ENTRIES_FILE, k, &entries.to_bytes());
    }
    remember(key.as_ref(), EntriesState::Known(Arc::clone(&entries)));
    Ok(entries)
}

/// What a process makes of a cache file holding `bytes`, written for key `key`: the listing
/// [`read_keyed`] and the entry addresses [`entries`] would take from it. For the fuzz
/// targets (`crate::fuzzing`), which feed the per-boot files' reader untrusted bytes.
pub(crate) fn from_file_bytes(bytes: &[u8], key: &str) -> (Option<TraceableFunctions>, Option<Entries>) {
    let Some(data) = file::decode(bytes, &Key(key.to_string())) else { return (None, None) };
    (Some(TraceableFunctions::from_text(data.to_vec(), ListingSource::FilterFunctionsAddrs)), Entries::from_bytes(data))
}

/// Records what was found about entries, if the memory is still about `key`.
fn remember(key: Option<&Key>, state: EntriesState) {
    if let Some(m) = memory().as_mut().filter(|m| Some(&m.key) == key) {
        m.entries = state;
    }
}

fn hidden_addresses() -> ListingError {
    ListingError::Read {
        path: "/proc/kallsyms".into(),
        source: io::Error::new(
            io::ErrorKind::PermissionDenied,
            "function addresses are hidden from this process: run as root, or lower the \
             kernel.kptr_restrict sysctl (2 hides them from root too)",
        ),
    }
}
