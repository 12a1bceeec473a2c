//! Reusing the listing of traceable functions.
//!
//! Reading `available_filter_functions_addrs` makes the kernel format 40,000+ lines: a third
//! of a second under emulation, ten times the cost of attaching a hundred functions. The
//! listing only changes with the boot (KASLR moves vmlinux) and with the loaded modules
//! (their functions come and go, at new addresses), so it is kept, in memory for the
//! process and, when asked, in a file for the boot, with that identity as the key: a
//! listing is reused only while the boot id, the kernel release and every loaded module's
//! name, size and address are the same, so a stale listing is never used.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::resolve::{ListingSource, TraceableFunctions};
use crate::attach::AttachError;

/// What a listing is valid for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Key(String);

/// The current boot, release and module table, as one comparable text.
fn current_key() -> io::Result<Key> {
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")?;
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")?;
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
        Err(e) => return Err(e),
    };
    Ok(Key(format!("boot {}release {}{modules}", boot_id, release)))
}

static MEMORY: Mutex<Option<(Key, TraceableFunctions)>> = Mutex::new(None);
static DISK: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Keeps the listing in `dir` for the rest of the boot too (a tmpfs such as
/// `/run/multiprobe`), so later processes skip the kernel's formatting; `None` turns it off.
/// Off by default: a library should not write files unasked. The `multiprobe` command turns
/// it on.
pub fn set_listing_cache_dir(dir: Option<PathBuf>) {
    *DISK.lock().unwrap_or_else(|e| e.into_inner()) = dir;
}

const FILE: &str = "functions-v1";
const MAGIC: &str = "multiprobe traceable functions v1\n";

/// The listing with addresses, from memory or the cache file when still valid, else read.
pub(crate) fn read() -> Result<TraceableFunctions, AttachError> {
    let key = current_key().map_err(|source| AttachError::Read { path: "/proc (boot id, modules)".into(), source })?;
    if let Some((k, listing)) = MEMORY.lock().unwrap_or_else(|e| e.into_inner()).as_ref()
        && *k == key
    {
        return Ok(listing.clone());
    }
    let dir = DISK.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let listing = match dir.as_deref().and_then(|d| load(d, &key)) {
        Some(listing) => listing,
        None => {
            let listing = TraceableFunctions::read_uncached()?;
            if let Some(d) = &dir {
                // A cache that cannot be written is only a missed speed-up.
                let _ = store(d, &key, &listing);
            }
            listing
        }
    };
    *MEMORY.lock().unwrap_or_else(|e| e.into_inner()) = Some((key, listing.clone()));
    Ok(listing)
}

/// The cached listing in `dir`, if it was made for `key`.
fn load(dir: &Path, key: &Key) -> Option<TraceableFunctions> {
    use std::os::unix::fs::MetadataExt;
    let path = dir.join(FILE);
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
    (header == key.0.as_bytes())
        .then(|| TraceableFunctions::from_text(rest[4 + header_len..].to_vec(), ListingSource::FilterFunctionsAddrs))
}

/// Writes the listing for `key` (only `available_filter_functions_addrs` listings: the
/// kallsyms-joined ones of older kernels would need kallsyms cached too).
fn store(dir: &Path, key: &Key, listing: &TraceableFunctions) -> io::Result<()> {
    if listing.source() != ListingSource::FilterFunctionsAddrs {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    let mut out = Vec::with_capacity(listing.text().len() + key.0.len() + 64);
    out.extend_from_slice(MAGIC.as_bytes());
    out.extend_from_slice(&(key.0.len() as u32).to_le_bytes());
    out.extend_from_slice(key.0.as_bytes());
    out.extend_from_slice(listing.text());
    // Write then rename: a reader sees the old file or the new one, never half of one.
    let tmp = dir.join(format!("{FILE}.{}", std::process::id()));
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        f.write_all(&out)?;
    }
    std::fs::rename(&tmp, dir.join(FILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cache_file_is_used_only_for_its_key() {
        let dir = std::env::temp_dir().join(format!("multiprobe-cache-test-{}", std::process::id()));
        let text = b"ffffffff81000010 vfs_read\nffffffff81000020 vfs_write\n".to_vec();
        let listing = TraceableFunctions::from_text(text.clone(), ListingSource::FilterFunctionsAddrs);
        let key = Key("boot a\nrelease 6.12\n".into());
        store(&dir, &key, &listing).unwrap();
        let loaded = load(&dir, &key).expect("same key");
        assert_eq!(loaded.text(), &text[..]);
        assert!(load(&dir, &Key("boot b\nrelease 6.12\n".into())).is_none(), "another boot");
        assert!(load(&dir, &Key("boot a\nrelease 6.12\nmod 1 2\n".into())).is_none(), "another module table");
        std::fs::write(dir.join(FILE), b"garbage").unwrap();
        assert!(load(&dir, &key).is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
