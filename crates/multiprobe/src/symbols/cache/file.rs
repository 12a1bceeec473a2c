//! Cache files: written whole or not at all, and trusted only when private to this user.
//!
//! The entry addresses decide where the kernel attaches, and the command runs as root: a
//! file or directory someone else could have written or swapped for a symlink is ignored,
//! and writing never follows a symlink or reuses a file.

use std::fs::{self, DirBuilder, File, Metadata, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use super::key::Key;

/// Format marker; v2 added the payload length.
const MAGIC: &[u8] = b"multiprobe cache v2\n";

/// The largest cache file read. A listing line is at most an address, a name of up to
/// `KSYM_NAME_LEN` (512) bytes and a module; real listings are far below: 3 MB for 7.2's
/// 60,000 functions with every Debian module loaded, and the entries file 8 bytes a
/// function. 64 MiB is twenty times that: a file past it was not written by this code.
pub(super) const MAX_FILE: u64 = 64 << 20;

/// The data cached in `dir/name` for `key`, if the file is there, private, whole and for
/// that key. A file of this user that is not a regular file (a FIFO would block the read
/// for ever) or is larger than any cache file can be ([`MAX_FILE`]) is an error naming it:
/// only root could have put it in a private directory of root's.
pub(super) fn load(dir: &Path, name: &str, key: &Key) -> io::Result<Option<Vec<u8>>> {
    if check_private_dir(dir).is_err() {
        return Ok(None);
    }
    let path = dir.join(name);
    // O_NONBLOCK: opening a FIFO for reading would wait for a writer; O_NOFOLLOW: a symlink
    // is not followed (ELOOP, ignored below).
    let mut file = match OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(&path) {
        Ok(f) => f,
        Err(_) => return Ok(None),
    };
    // The checks look at the file opened, not at whatever the path names by now.
    let meta = file.metadata()?;
    if !private(&meta) {
        return Ok(None);
    }
    let bad = |what: String| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("cache file {} {what}; remove it (it is recreated as needed)", path.display()),
        )
    };
    if !meta.is_file() {
        return Err(bad("is not a regular file".into()));
    }
    if meta.len() > MAX_FILE {
        return Err(bad(format!("is {} bytes, more than any cache file can be ({MAX_FILE})", meta.len())));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // Bounded again in case the file grows while read.
    (&mut file).take(MAX_FILE + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(bad(format!("grew past {MAX_FILE} bytes while read")));
    }
    Ok(decode(&bytes, key).map(<[u8]>::to_vec))
}

/// Writes `data` for `key` to `dir/name`, creating `dir` private to this user if missing,
/// but not its parent: where `/run` is missing, nothing is created and nothing is kept.
pub(super) fn store(dir: &Path, name: &str, key: &Key, data: &[u8]) -> io::Result<()> {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    if fs::symlink_metadata(dir).is_err() {
        DirBuilder::new().mode(0o700).create(dir)?;
    }
    check_private_dir(dir)?;
    // A name no other writer uses (threads, and processes of the same pid in other pid
    // namespaces, fail on create_new instead of sharing it); the rename then replaces the
    // old file at once, so readers see it whole.
    let tmp = dir.join(format!(".{name}.{}.{}", std::process::id(), SEQUENCE.fetch_add(1, Ordering::Relaxed)));
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .and_then(|mut f: File| f.write_all(&encode(key, data)))
        .and_then(|()| fs::rename(&tmp, dir.join(name)));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// `MAGIC`, key length (u32 LE), data length (u64 LE), key, data.
fn encode(key: &Key, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAGIC.len() + 12 + key.0.len() + data.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(key.0.len() as u32).to_le_bytes());
    out.extend_from_slice(&(data.len() as u64).to_le_bytes());
    out.extend_from_slice(key.0.as_bytes());
    out.extend_from_slice(data);
    out
}

/// The data of an encoded file, if it is whole and for `key`.
pub(super) fn decode<'a>(bytes: &'a [u8], key: &Key) -> Option<&'a [u8]> {
    let rest = bytes.strip_prefix(MAGIC)?;
    let key_len = usize::try_from(u32::from_le_bytes(rest.get(..4)?.try_into().ok()?)).ok()?;
    let data_len = usize::try_from(u64::from_le_bytes(rest.get(4..12)?.try_into().ok()?)).ok()?;
    let rest = &rest[12..];
    let (stored_key, data) = (rest.get(..key_len)?, rest.get(key_len..)?);
    (stored_key == key.0.as_bytes() && data.len() == data_len).then_some(data)
}

/// Fails unless `dir` is a real directory (not a symlink) of this user that others cannot
/// write to.
fn check_private_dir(dir: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(dir)?;
    if meta.is_dir() && private(&meta) {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!("{}: not a directory of this user closed to others, so not used for the cache", dir.display()),
    ))
}

fn private(meta: &Metadata) -> bool {
    meta.uid() == crate::sys::geteuid() && meta.mode() & 0o022 == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn temp_dir(what: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("multiprobe-cache-{what}-{}", std::process::id()))
    }

    #[test]
    fn a_cache_file_is_used_only_for_its_key() {
        let dir = temp_dir("key");
        let text = b"ffffffff81000010 vfs_read\nffffffff81000020 vfs_write\n".to_vec();
        let key = Key("boot a\nrelease 6.12\n".into());
        store(&dir, "listing", &key, &text).unwrap();
        assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o777, 0o700, "the directory is private");
        assert_eq!(load(&dir, "listing", &key).unwrap().as_deref(), Some(&text[..]), "same key");
        assert!(loaded(&dir, "listing", &Key("boot b\nrelease 6.12\n".into())).is_none(), "another boot");
        assert!(loaded(&dir, "listing", &Key("boot a\nrelease 6.12\nmod 1 2\n".into())).is_none(), "other modules");
        assert!(loaded(&dir, "entries", &key).is_none(), "another file");
        fs::write(dir.join("listing"), b"garbage").unwrap();
        assert!(loaded(&dir, "listing", &key).is_none());
        fs::remove_dir_all(&dir).unwrap();
    }

    fn loaded(dir: &Path, name: &str, key: &Key) -> Option<Vec<u8>> {
        load(dir, name, key).unwrap()
    }

    #[test]
    fn a_missing_parent_is_not_created() {
        let parent = temp_dir("parent");
        let dir = parent.join("multiprobe");
        assert!(store(&dir, "listing", &Key("k".into()), b"data").is_err());
        assert!(!parent.exists(), "the parent directory was created");
    }

    #[test]
    fn a_fifo_or_oversized_file_is_an_error_not_a_hang() {
        let key = Key("k".into());
        let dir = temp_dir("fifo");
        store(&dir, "listing", &key, b"data").unwrap();
        fs::remove_file(dir.join("listing")).unwrap();
        let fifo = std::ffi::CString::new(dir.join("listing").into_os_string().into_encoded_bytes()).unwrap();
        crate::sys::mkfifo(&fifo, 0o600).unwrap();
        let e = load(&dir, "listing", &key).unwrap_err();
        assert!(e.to_string().contains("is not a regular file; remove it"), "{e}");
        fs::remove_file(dir.join("listing")).unwrap();
        let big = File::create(dir.join("listing")).unwrap();
        big.set_len(MAX_FILE + 1).unwrap();
        let e = load(&dir, "listing", &key).unwrap_err();
        assert!(e.to_string().contains("more than any cache file can be"), "{e}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn truncated_files_are_ignored() {
        let key = Key("k".into());
        let whole = encode(&key, b"0123456789");
        assert_eq!(decode(&whole, &key), Some(&b"0123456789"[..]));
        for cut in 0..whole.len() {
            assert_eq!(decode(&whole[..cut], &key), None, "cut at {cut}");
        }
    }

    #[test]
    fn shared_directories_and_symlinks_are_not_trusted() {
        let key = Key("k".into());
        let dir = temp_dir("shared");
        store(&dir, "listing", &key, b"data").unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        assert!(loaded(&dir, "listing", &key).is_none(), "a directory others can write to");
        assert!(store(&dir, "listing", &key, b"data").is_err());
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();

        let link = temp_dir("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        assert!(loaded(&link, "listing", &key).is_none(), "a symlinked directory");
        fs::remove_file(dir.join("listing")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", dir.join("listing")).unwrap();
        assert!(loaded(&dir, "listing", &key).is_none(), "a symlinked file");
        store(&dir, "listing", &key, b"data").unwrap();
        assert!(fs::symlink_metadata(dir.join("listing")).unwrap().is_file(), "the symlink replaced, not followed");
        fs::remove_file(&link).unwrap();
        fs::remove_dir_all(&dir).unwrap();
    }
}
