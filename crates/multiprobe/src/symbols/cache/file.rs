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

/// The data cached in `dir/name` for `key`, if the file is there, private, whole and for
/// that key.
pub(super) fn load(dir: &Path, name: &str, key: &Key) -> Option<Vec<u8>> {
    check_private_dir(dir).ok()?;
    let mut file = OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(dir.join(name)).ok()?;
    // The checks look at the file opened, not at whatever the path names by now.
    let meta = file.metadata().ok()?;
    if !meta.is_file() || !private(&meta) {
        return None;
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).ok()?);
    file.read_to_end(&mut bytes).ok()?;
    decode(&bytes, key).map(<[u8]>::to_vec)
}

/// Writes `data` for `key` to `dir/name`, creating `dir` private to this user if missing.
pub(super) fn store(dir: &Path, name: &str, key: &Key, data: &[u8]) -> io::Result<()> {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    if !dir.exists() {
        DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
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
        assert_eq!(load(&dir, "listing", &key).as_deref(), Some(&text[..]), "same key");
        assert!(load(&dir, "listing", &Key("boot b\nrelease 6.12\n".into())).is_none(), "another boot");
        assert!(load(&dir, "listing", &Key("boot a\nrelease 6.12\nmod 1 2\n".into())).is_none(), "other modules");
        assert!(load(&dir, "entries", &key).is_none(), "another file");
        fs::write(dir.join("listing"), b"garbage").unwrap();
        assert!(load(&dir, "listing", &key).is_none());
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
        assert!(load(&dir, "listing", &key).is_none(), "a directory others can write to");
        assert!(store(&dir, "listing", &key, b"data").is_err());
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();

        let link = temp_dir("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        assert!(load(&link, "listing", &key).is_none(), "a symlinked directory");
        fs::remove_file(dir.join("listing")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", dir.join("listing")).unwrap();
        assert!(load(&dir, "listing", &key).is_none(), "a symlinked file");
        store(&dir, "listing", &key, b"data").unwrap();
        assert!(fs::symlink_metadata(dir.join("listing")).unwrap().is_file(), "the symlink replaced, not followed");
        fs::remove_file(&link).unwrap();
        fs::remove_dir_all(&dir).unwrap();
    }
}
