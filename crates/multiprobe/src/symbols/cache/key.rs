//! What cached listings and entry addresses are valid for.

use std::io;

use crate::error::ListingError;

/// The boot, the kernel release and the loaded modules, as one comparable text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Key(pub(super) String);

impl Key {
    /// The key of the running system, or `None` when it cannot tell one state of the module
    /// table from another, so nothing may be kept: module addresses hidden (a module unloaded
    /// and loaded again would look unchanged while its functions moved), or a module still
    /// loading or unloading (its init functions are listed now and freed soon).
    pub(super) fn current() -> Result<Option<Key>, ListingError> {
        let read = |path: &str| std::fs::read_to_string(path).map_err(|source| ListingError::read(path, source));
        let boot_id = read("/proc/sys/kernel/random/boot_id")?;
        let release = read("/proc/sys/kernel/osrelease")?;
        let modules = match std::fs::read_to_string("/proc/modules") {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(source) => return Err(ListingError::read("/proc/modules", source)),
        };
        Ok(modules_key(&modules).map(|m| Key(format!("boot {boot_id}release {release}{m}"))))
    }
}

/// Name, size and load address of every module (`/proc/modules` lines are `name size
/// refcount deps state address [taints]`). The reference count changes under tracing itself
/// (a link holds its modules) and is left out.
fn modules_key(proc_modules: &str) -> Option<String> {
    let mut key = String::with_capacity(proc_modules.len());
    for line in proc_modules.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (name, size, state, addr) = (f.first()?, f.get(1)?, f.get(4)?, f.get(5)?);
        let hidden = addr.trim_start_matches("0x").bytes().all(|b| b == b'0');
        if *state != "Live" || hidden {
            return None;
        }
        key.push_str(&format!("{name} {size} {addr}\n"));
    }
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modules_identify_by_name_size_and_address() {
        let a = "ext4 1081344 2 mbcache,jbd2, Live 0xffffffffc0a00000\n\
                 nvidia 1234 0 - Live 0xffffffffc1000000 (POE)\n";
        let in_use = a.replace(" 2 mbcache", " 3 mbcache");
        assert_eq!(modules_key(a), modules_key(&in_use), "reference counts do not matter");
        let moved = a.replace("0xffffffffc1000000", "0xffffffffc2000000");
        assert_ne!(modules_key(a), modules_key(&moved), "a reload at another address does");
        assert_eq!(modules_key(a).unwrap().lines().nth(1), Some("nvidia 1234 0xffffffffc1000000"), "taints skipped");
        assert_eq!(modules_key(""), Some(String::new()));
    }

    #[test]
    fn no_key_while_modules_change_or_hide_their_addresses() {
        assert_eq!(modules_key("ext4 1081344 2 - Loading 0xffffffffc0a00000\n"), None);
        assert_eq!(modules_key("ext4 1081344 2 - Unloading 0xffffffffc0a00000\n"), None);
        assert_eq!(modules_key("ext4 1081344 2 - Live 0x0000000000000000\n"), None);
        assert_eq!(modules_key("garbage\n"), None);
    }
}
