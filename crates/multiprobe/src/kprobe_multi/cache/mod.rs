//! Reusing the listing of traceable functions, and where they start.
//!
//! Reading `available_filter_functions_addrs` makes the kernel format 40,000+ lines: a third
//! of a second under emulation, ten times the cost of attaching a hundred functions; finding
//! the functions' entry addresses (for cookies) takes a read of `/proc/kallsyms` on top. Both
//! only change with the boot (KASLR moves vmlinux) and with the loaded modules (their
//! functions come and go, at new addresses), so they are kept, in memory for the process
//! and, when asked, in files for the boot, with that identity as the key: they are reused
//! only while the boot id, the kernel release and every loaded module's name, size and
//! address are the same, so stale data is never used.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::entries::Entries;
use super::kallsyms::Kallsyms;
use super::resolve::{ListingSource, TraceableFunctions};
use crate::attach::AttachError;

/// What cached data is valid for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Key(String);

/// The current boot, release and module table, as one comparable text.
fn current_key() -> Result<Key, AttachError> {
    let read =
        |path: &str| std::fs::read_to_string(path).map_err(|source| AttachError::Read { path: path.into(), source });
    let boot_id = read("/proc/sys/kernel/random/boot_id")?;
    let release = read("/proc/sys/kernel/osrelease")?;
    // Name, size and load address identify a module load; the reference count and state
    // columns change under tracing itself (a link holds its modules) and are left out.
    let modules = match std::fs::read_to_string("/proc/modules") {
        Ok(text) => text
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                format!("{} {} {}\n", f.first().unwrap_or(&""), f.get(1).unwrap_or(&""), f.last().unwrap_or(&""))
            })
            .collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(source) => return Err(AttachError::Read { path: "/proc/modules".into(), source }),
    };
    Ok(Key(format!("boot {boot_id}release {release}{modules}")))
}

/// What this process knows, for one key.
struct Memory {
    key: Key,
    listing: TraceableFunctions,
    entries: Option<Arc<Entries>>,
}

static MEMORY: Mutex<Option<Memory>> = Mutex::new(None);
static DISK: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Keeps the listing and the entry addresses in `dir` for the rest of the boot too (a tmpfs
/// such as `/run/multiprobe`), so later processes skip the kernel's formatting; `None` turns
/// it off. Off by default: a library should not write files unasked. The `multiprobe`
/// command turns it on.
pub fn set_listing_cache_dir(dir: Option<PathBuf>) {
    *DISK.lock().unwrap_or_else(|e| e.into_inner()) = dir;
}

fn disk_dir() -> Option<PathBuf> {
    DISK.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

const LISTING_FILE: &str = "functions-v1";
const ENTRIES_FILE: &str = "entries-v1";

/// The listing with addresses, from memory or the cache file when still valid, else read.
pub(crate) fn read() -> Result<TraceableFunctions, AttachError> {
    let key = current_key()?;
    let mut memory = MEMORY.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(m) = memory.as_ref().filter(|m| m.key == key) {
        return Ok(m.listing.clone());
    }
    let dir = disk_dir();
    let cached = dir.as_deref().and_then(|d| load(d, LISTING_FILE, &key));
    let listing = match cached {
        Some(text) => TraceableFunctions::from_text(text, ListingSource::FilterFunctionsAddrs),
        None => {
            let listing = TraceableFunctions::read_uncached()?;
            // Only the 6.5+ listing is self-contained (older ones are joined with kallsyms);
            // a cache that cannot be written is only a missed speed-up.
            if let Some(d) = &dir
                && listing.source() == ListingSource::FilterFunctionsAddrs
            {
                let _ = store(d, LISTING_FILE, &key, listing.text());
            }
            listing
        }
    };
    *memory = Some(Memory { key, listing: listing.clone(), entries: None });
    Ok(listing)
}

/// Whether entry addresses are at hand without reading `/proc/kallsyms` now: kept in memory,
/// or in a cache file, or about to be kept there (a cache directory is set: the read is
/// paid once per boot).
pub(crate) fn entries_are_cheap() -> bool {
    let have = MEMORY.lock().unwrap_or_else(|e| e.into_inner()).as_ref().is_some_and(|m| m.entries.is_some());
    have || disk_dir().is_some()
}

/// Entry addresses of every listed function: kept, or computed from `/proc/kallsyms` and
/// kept.
pub(crate) fn entries() -> Result<Arc<Entries>, AttachError> {
    let listing = read()?;
    let key = current_key()?;
    if let Some(e) = MEMORY
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .filter(|m| m.key == key)
        .and_then(|m| m.entries.clone())
    {
        return Ok(e);
    }
    let dir = disk_dir();
    let entries = match dir.as_deref().and_then(|d| load(d, ENTRIES_FILE, &key)).and_then(|b| Entries::from_bytes(&b)) {
        Some(e) => e,
        None => {
            let kallsyms =
                Kallsyms::read().map_err(|source| AttachError::Read { path: "/proc/kallsyms".into(), source })?;
            let sites = listing.filter(|_, _| true).into_iter().map(|f| f.address);
            let e = Entries::compute(sites, kallsyms.text_symbols().map(|s| s.addr).collect());
            if let Some(d) = &dir {
                let _ = store(d, ENTRIES_FILE, &key, &e.to_bytes());
            }
            e
        }
    };
    let entries = Arc::new(entries);
    if let Some(m) = MEMORY.lock().unwrap_or_else(|e| e.into_inner()).as_mut().filter(|m| m.key == key) {
        m.entries = Some(Arc::clone(&entries));
    }
    Ok(entries)
}

const MAGIC: &str = "multiprobe cache v1\n";

/// The bytes cached in `dir/name` for `key`, if any.
fn load(dir: &Path, name: &str, key: &Key) -> Option<Vec<u8>> {
    use std::os::unix::fs::MetadataExt;
    let path = dir.join(name);
    // Only a file this user wrote and nobody else can change: addresses from anywhere else
    // would decide where the kernel attaches.
    let meta = std::fs::metadata(&path).ok()?;
    if meta.uid() != crate::sys::geteuid() || meta.mode() & 0o022 != 0 {
        return None;
    }
    let bytes = std::fs::read(&path).ok()?;
    let rest = bytes.strip_prefix(MAGIC.as_bytes())?;
    let header_len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    let header = rest.get(4..4 + header_len)?;
    (header == key.0.as_bytes()).then(|| rest[4 + header_len..].to_vec())
}

/// Writes `data` for `key` to `dir/name`, readable by this user only.
fn store(dir: &Path, name: &str, key: &Key, data: &[u8]) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(dir)?;
    let mut out = Vec::with_capacity(data.len() + key.0.len() + 64);
    out.extend_from_slice(MAGIC.as_bytes());
    out.extend_from_slice(&(key.0.len() as u32).to_le_bytes());
    out.extend_from_slice(key.0.as_bytes());
    out.extend_from_slice(data);
    // Write then rename: a reader sees the old file or the new one, never half of one.
    let tmp = dir.join(format!("{name}.{}", std::process::id()));
    std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?.write_all(&out)?;
    std::fs::rename(&tmp, dir.join(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cache_file_is_used_only_for_its_key() {
        let dir = std::env::temp_dir().join(format!("multiprobe-cache-test-{}", std::process::id()));
        let text = b"ffffffff81000010 vfs_read\nffffffff81000020 vfs_write\n".to_vec();
        let key = Key("boot a\nrelease 6.12\n".into());
        store(&dir, LISTING_FILE, &key, &text).unwrap();
        assert_eq!(load(&dir, LISTING_FILE, &key).as_deref(), Some(&text[..]), "same key");
        assert!(load(&dir, LISTING_FILE, &Key("boot b\nrelease 6.12\n".into())).is_none(), "another boot");
        assert!(load(&dir, LISTING_FILE, &Key("boot a\nrelease 6.12\nmod 1 2\n".into())).is_none(), "other modules");
        assert!(load(&dir, ENTRIES_FILE, &key).is_none(), "another file");
        std::fs::write(dir.join(LISTING_FILE), b"garbage").unwrap();
        assert!(load(&dir, LISTING_FILE, &key).is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
