//! Maps in the kernel: typed reads and writes, per-CPU values, iteration, pinning.

use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::{Arc, OnceLock};

use bytemuck::{AnyBitPattern, NoUninit};

use crate::error::{MapError, PinError};
use crate::object::MapType;
use crate::pin;
use crate::sys;

/// Flags of [`Map::update`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UpdateFlags {
    /// Create or replace.
    #[default]
    Any,
    /// Create only; fails with EEXIST if the key is there.
    NoExist,
    /// Replace only; fails with ENOENT if the key is absent.
    Exist,
}

impl UpdateFlags {
    fn bits(self) -> u64 {
        match self {
            UpdateFlags::Any => sys::update_flags::ANY,
            UpdateFlags::NoExist => sys::update_flags::NOEXIST,
            UpdateFlags::Exist => sys::update_flags::EXIST,
        }
    }
}

#[derive(Debug)]
struct MapInner {
    fd: OwnedFd,
    name: String,
    map_type: MapType,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
}

/// A map in the kernel. Cloning is cheap and shares the map; it is freed when the last clone
/// (and every program using it) is gone, unless pinned.
#[derive(Debug, Clone)]
pub struct Map {
    inner: Arc<MapInner>,
}

impl Map {
    /// Wraps a map fd; the map's shape is read from the kernel.
    pub fn from_fd(fd: OwnedFd, name: &str) -> Result<Map, MapError> {
        let info = sys::map_info(fd.as_fd()).map_err(|source| MapError::Syscall {
            map: name.to_string(),
            op: "reading map info",
            source,
        })?;
        Ok(Map {
            inner: Arc::new(MapInner {
                fd,
                name: name.to_string(),
                map_type: MapType::from_u32(info.map_type),
                key_size: info.key_size,
                value_size: info.value_size,
                max_entries: info.max_entries,
            }),
        })
    }

    /// Opens a map pinned at `path` (in a bpf file system).
    pub fn from_pin(path: impl AsRef<Path>) -> Result<Map, MapError> {
        let path = path.as_ref();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        Map::open_pinned(path, &name)
    }

    /// Opens a pinned map under the name the object gives it.
    pub(crate) fn open_pinned(path: &Path, name: &str) -> Result<Map, MapError> {
        let fd = pin::open(path)?;
        Map::from_fd(fd, name)
    }

    /// Pins the map at `path`, so it outlives this process.
    pub fn pin(&self, path: impl AsRef<Path>) -> Result<(), PinError> {
        pin::pin(self.fd(), path.as_ref())
    }

    /// Name in the object.
    pub fn name(&self) -> &str {
        &self.inner.name
    }
    /// Map type.
    pub fn map_type(&self) -> MapType {
        self.inner.map_type
    }
    /// Key size in bytes.
    pub fn key_size(&self) -> u32 {
        self.inner.key_size
    }
    /// Value size in bytes (of one CPU's slot for per-CPU maps).
    pub fn value_size(&self) -> u32 {
        self.inner.value_size
    }
    /// Maximum number of entries.
    pub fn max_entries(&self) -> u32 {
        self.inner.max_entries
    }
    /// The map's file descriptor.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.inner.fd.as_fd()
    }
    /// The kernel's id of the map.
    pub fn id(&self) -> Result<u32, MapError> {
        sys::map_info(self.fd()).map(|i| i.id).map_err(|e| self.syscall("reading map info", e))
    }

    fn syscall(&self, op: &'static str, source: io::Error) -> MapError {
        MapError::Syscall { map: self.inner.name.clone(), op, source }
    }

    fn check_key(&self, key: &[u8]) -> Result<(), MapError> {
        if key.len() != self.inner.key_size as usize {
            return Err(MapError::KeySize {
                map: self.inner.name.clone(),
                expected: self.inner.key_size,
                got: key.len(),
            });
        }
        Ok(())
    }

    fn check_value(&self, value: usize) -> Result<(), MapError> {
        if value != self.inner.value_size as usize {
            return Err(MapError::ValueSize {
                map: self.inner.name.clone(),
                expected: self.inner.value_size,
                got: value,
            });
        }
        Ok(())
    }

    fn require_per_cpu(&self, want: bool) -> Result<(), MapError> {
        if self.inner.map_type.is_per_cpu() == want {
            return Ok(());
        }
        let hint = if want { "use get/update, not the per-CPU calls" } else { "use get_per_cpu/update_per_cpu" };
        Err(MapError::WrongType { map: self.inner.name.clone(), map_type: self.inner.map_type, hint })
    }

    /// Looks a key up as raw bytes.
    pub fn get_bytes(&self, key: &[u8]) -> Result<Option<Vec<u8>>, MapError> {
        self.check_key(key)?;
        self.require_per_cpu(false)?;
        let mut value = vec![0u8; self.inner.value_size as usize];
        let found = sys::map_lookup_elem(self.fd(), key, &mut value, 0).map_err(|e| self.syscall("lookup", e))?;
        Ok(found.then_some(value))
    }

    /// Looks a key up.
    pub fn get<K: NoUninit, V: AnyBitPattern>(&self, key: &K) -> Result<Option<V>, MapError> {
        self.check_value(size_of::<V>())?;
        Ok(self.get_bytes(bytemuck::bytes_of(key))?.map(|v| bytemuck::pod_read_unaligned(&v)))
    }

    /// Creates or replaces an element, with raw bytes.
    pub fn update_bytes(&self, key: &[u8], value: &[u8], flags: UpdateFlags) -> Result<(), MapError> {
        self.check_key(key)?;
        self.require_per_cpu(false)?;
        self.check_value(value.len())?;
        sys::map_update_elem(self.fd(), key, value, flags.bits()).map_err(|e| self.syscall("update", e))
    }

    /// Creates or replaces an element.
    pub fn update<K: NoUninit, V: NoUninit>(&self, key: &K, value: &V, flags: UpdateFlags) -> Result<(), MapError> {
        self.update_bytes(bytemuck::bytes_of(key), bytemuck::bytes_of(value), flags)
    }

    /// Deletes an element; `Ok(false)` when it was not there.
    pub fn delete<K: NoUninit>(&self, key: &K) -> Result<bool, MapError> {
        self.delete_bytes(bytemuck::bytes_of(key))
    }

    /// Deletes an element given as raw bytes.
    pub fn delete_bytes(&self, key: &[u8]) -> Result<bool, MapError> {
        self.check_key(key)?;
        sys::map_delete_elem(self.fd(), key).map_err(|e| self.syscall("delete", e))
    }

    /// The values of every CPU for a key of a per-CPU map, indexed by CPU number.
    pub fn get_per_cpu<K: NoUninit, V: AnyBitPattern>(&self, key: &K) -> Result<Option<Vec<V>>, MapError> {
        let key = bytemuck::bytes_of(key);
        self.check_key(key)?;
        self.check_value(size_of::<V>())?;
        self.require_per_cpu(true)?;
        let slot = slot_size(self.inner.value_size);
        let mut buf = vec![0u8; slot * possible_cpus()];
        let found = sys::map_lookup_elem(self.fd(), key, &mut buf, 0).map_err(|e| self.syscall("lookup", e))?;
        Ok(found.then(|| buf.chunks(slot).map(|c| bytemuck::pod_read_unaligned(&c[..size_of::<V>()])).collect()))
    }

    /// Sets every CPU's value of a per-CPU map (`values[cpu]`, one per possible CPU).
    pub fn update_per_cpu<K: NoUninit, V: NoUninit>(
        &self,
        key: &K,
        values: &[V],
        flags: UpdateFlags,
    ) -> Result<(), MapError> {
        let key = bytemuck::bytes_of(key);
        self.check_key(key)?;
        self.check_value(size_of::<V>())?;
        self.require_per_cpu(true)?;
        let slot = slot_size(self.inner.value_size);
        let cpus = possible_cpus();
        if values.len() != cpus {
            return Err(MapError::ValueSize { map: self.inner.name.clone(), expected: cpus as u32, got: values.len() });
        }
        let mut buf = vec![0u8; slot * cpus];
        for (chunk, v) in buf.chunks_mut(slot).zip(values) {
            chunk[..size_of::<V>()].copy_from_slice(bytemuck::bytes_of(v));
        }
        sys::map_update_elem(self.fd(), key, &buf, flags.bits()).map_err(|e| self.syscall("update", e))
    }

    /// Every element of a map that is not per-CPU: in batches of 4096 elements per system
    /// call (kernel 5.6+), or one call per element on older kernels. For reading a whole
    /// hash table often (a 10,000-key table is three calls).
    pub fn dump<K: AnyBitPattern + NoUninit, V: AnyBitPattern>(&self) -> Result<Vec<(K, V)>, MapError> {
        self.require_per_cpu(false)?;
        self.check_value(size_of::<V>())?;
        let value_size = self.inner.value_size as usize;
        let decode = |values: &[u8]| -> V { bytemuck::pod_read_unaligned(&values[..size_of::<V>()]) };
        self.dump_with(value_size, decode, |k: &K| self.get::<K, V>(k))
    }

    /// Every element of a per-CPU map with each CPU's value: in batches of 4096 elements per
    /// system call (kernel 5.6+), or one call per element on older kernels. For reading a
    /// table of counters often (a 40,000-entry per-CPU array is ten calls).
    pub fn dump_per_cpu<K: AnyBitPattern + NoUninit, V: AnyBitPattern>(&self) -> Result<Vec<(K, Vec<V>)>, MapError> {
        self.require_per_cpu(true)?;
        self.check_value(size_of::<V>())?;
        let slot = slot_size(self.inner.value_size);
        let decode = |values: &[u8]| -> Vec<V> {
            values.chunks(slot).map(|c| bytemuck::pod_read_unaligned(&c[..size_of::<V>()])).collect()
        };
        self.dump_with(slot * possible_cpus(), decode, |k: &K| {
            Ok(Some(self.get_per_cpu::<K, V>(k)?.unwrap_or_default()))
        })
    }

    /// The batch loop of `dump` and `dump_per_cpu`: `value_len` bytes per element as the
    /// kernel lays them out, `decode` turning them into a value, `one` looking up one key
    /// where the kernel has no batch lookup.
    fn dump_with<K: AnyBitPattern + NoUninit, V>(
        &self,
        value_len: usize,
        decode: impl Fn(&[u8]) -> V,
        one: impl Fn(&K) -> Result<Option<V>, MapError>,
    ) -> Result<Vec<(K, V)>, MapError> {
        if size_of::<K>() != self.inner.key_size as usize {
            let m = &self.inner;
            return Err(MapError::KeySize { map: m.name.clone(), expected: m.key_size, got: size_of::<K>() });
        }
        let mut out = Vec::new();
        const BATCH: usize = 4096;
        let mut keys = vec![0u8; BATCH * size_of::<K>()];
        let mut values = vec![0u8; BATCH * value_len];
        let mut pos: Option<Vec<u8>> = None;
        let mut next = vec![0u8; size_of::<K>().max(8)];
        loop {
            let r = sys::map_lookup_batch(self.fd(), pos.as_deref(), &mut next, &mut keys, &mut values, BATCH as u32);
            let (n, done) = match r {
                Ok(v) => v,
                // Kernels before 5.6, or maps without batch support (the kernel's internal
                // ENOTSUPP, 524, leaks out there): one element at a time. A key deleted
                // between listing and lookup is left out.
                Err(e) if out.is_empty() && matches!(e.raw_os_error(), Some(libc::EINVAL | 524 | libc::EOPNOTSUPP)) => {
                    let mut all = Vec::new();
                    for k in self.keys::<K>() {
                        let k = k?;
                        if let Some(v) = one(&k)? {
                            all.push((k, v));
                        }
                    }
                    return Ok(all);
                }
                Err(e) => return Err(self.syscall("batch lookup", e)),
            };
            for i in 0..n as usize {
                let key = bytemuck::pod_read_unaligned(&keys[i * size_of::<K>()..(i + 1) * size_of::<K>()]);
                out.push((key, decode(&values[i * value_len..(i + 1) * value_len])));
            }
            if done {
                return Ok(out);
            }
            pos = Some(next.clone());
        }
    }

    /// Writes many elements at once: in one system call where the kernel has batch updates
    /// for this map type (5.6+ for hash maps; later for some types), else one call per
    /// element. `keys` and `values` pair up by position.
    pub fn update_batch<K: NoUninit, V: NoUninit>(
        &self,
        keys: &[K],
        values: &[V],
        flags: UpdateFlags,
    ) -> Result<(), MapError> {
        self.require_per_cpu(false)?;
        self.check_value(size_of::<V>())?;
        if size_of::<K>() != self.inner.key_size as usize {
            let m = &self.inner;
            return Err(MapError::KeySize { map: m.name.clone(), expected: m.key_size, got: size_of::<K>() });
        }
        if keys.len() != values.len() {
            return Err(MapError::BatchLength { map: self.inner.name.clone(), keys: keys.len(), values: values.len() });
        }
        let count = u32::try_from(keys.len()).unwrap_or(u32::MAX);
        let (kb, vb) = (bytemuck::cast_slice::<K, u8>(keys), bytemuck::cast_slice::<V, u8>(values));
        match sys::map_update_batch(self.fd(), kb, vb, count, flags.bits()) {
            (_, Ok(())) if count as usize == keys.len() => Ok(()),
            (_, Ok(())) => self.update_each(&keys[count as usize..], &values[count as usize..], flags),
            // EINVAL: no batch command (or a bad element, which the single update names);
            // ENOTSUPP (524): none for this map type. Carry on after what was written, so
            // NoExist does not trip over elements the batch already wrote.
            (written, Err(e)) if matches!(e.raw_os_error(), Some(libc::EINVAL | 524 | libc::EOPNOTSUPP)) => {
                let done = if written < count { written as usize } else { 0 };
                self.update_each(&keys[done..], &values[done..], flags)
            }
            (_, Err(e)) => Err(self.syscall("batch update", e)),
        }
    }

    fn update_each<K: NoUninit, V: NoUninit>(
        &self,
        keys: &[K],
        values: &[V],
        flags: UpdateFlags,
    ) -> Result<(), MapError> {
        keys.iter().zip(values).try_for_each(|(k, v)| self.update(k, v, flags))
    }

    /// Iterates over the keys. Keys deleted or added during iteration may be missed or seen
    /// twice, as with any walk of a live kernel map.
    pub fn keys<K: AnyBitPattern>(&self) -> Keys<'_, K> {
        Keys { map: self, prev: None, done: false, _key: PhantomData }
    }

    /// Empties the map: deletes every element of a hash-like map; zeroes every value of an
    /// array (whose elements the kernel cannot delete: `BPF_MAP_DELETE_ELEM` answers EINVAL
    /// there), every CPU's slot of a per-CPU array. Returns how many elements were deleted
    /// or zeroed. Programs writing the map meanwhile may add elements behind the walk.
    pub fn clear(&self) -> Result<usize, MapError> {
        let m = &self.inner;
        if matches!(m.map_type, MapType::Array | MapType::PercpuArray) {
            let width =
                if m.map_type.is_per_cpu() { slot_size(m.value_size) * possible_cpus() } else { m.value_size as usize };
            let zero = vec![0u8; width];
            for i in 0..m.max_entries {
                sys::map_update_elem(self.fd(), &i.to_ne_bytes(), &zero, sys::update_flags::EXIST)
                    .map_err(|e| self.syscall("clear", e))?;
            }
            return Ok(m.max_entries as usize);
        }
        // Deleting the first key each time, rather than walking from key to key, never
        // asks for the successor of a key just deleted (which restarts the walk on hashes).
        let mut key = vec![0u8; m.key_size as usize];
        let mut deleted = 0;
        while sys::map_get_next_key(self.fd(), None, &mut key).map_err(|e| self.syscall("clear", e))? {
            if sys::map_delete_elem(self.fd(), &key).map_err(|e| self.syscall("clear", e))? {
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    /// Makes the map read-only for user space (programs may still write it).
    pub fn freeze(&self) -> Result<(), MapError> {
        sys::map_freeze(self.fd()).map_err(|e| self.syscall("freeze", e))
    }
}

/// Iterator over a map's keys, from [`Map::keys`].
pub struct Keys<'a, K> {
    map: &'a Map,
    prev: Option<Vec<u8>>,
    done: bool,
    _key: PhantomData<K>,
}

impl<K: AnyBitPattern> Iterator for Keys<'_, K> {
    type Item = Result<K, MapError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if size_of::<K>() != self.map.inner.key_size as usize {
            self.done = true;
            let m = &self.map.inner;
            return Some(Err(MapError::KeySize { map: m.name.clone(), expected: m.key_size, got: size_of::<K>() }));
        }
        let mut next = vec![0u8; size_of::<K>()];
        match sys::map_get_next_key(self.map.fd(), self.prev.as_deref(), &mut next) {
            Ok(true) => {
                let key = bytemuck::pod_read_unaligned(&next);
                self.prev = Some(next);
                Some(Ok(key))
            }
            Ok(false) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(self.map.syscall("get next key", e)))
            }
        }
    }
}

/// Per-CPU values are laid out in 8-byte aligned slots.
fn slot_size(value_size: u32) -> usize {
    (value_size as usize).div_ceil(8) * 8
}

/// Number of possible CPUs (`/sys/devices/system/cpu/possible`), the number of slots of a
/// per-CPU value.
pub fn possible_cpus() -> usize {
    static CPUS: OnceLock<usize> = OnceLock::new();
    *CPUS.get_or_init(|| {
        std::fs::read_to_string("/sys/devices/system/cpu/possible")
            .ok()
            .and_then(|s| parse_cpu_list(s.trim()))
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    })
}

/// Parses "0-3,5,7-8" into the highest CPU number + 1.
fn parse_cpu_list(s: &str) -> Option<usize> {
    let mut max = None;
    for part in s.split(',') {
        let last = part.rsplit('-').next()?.trim().parse::<usize>().ok()?;
        max = max.max(Some(last));
    }
    max.map(|m| m + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0"), Some(1));
        assert_eq!(parse_cpu_list("0-3"), Some(4));
        assert_eq!(parse_cpu_list("0-3,8-9"), Some(10));
        assert_eq!(parse_cpu_list("0,2"), Some(3));
        assert_eq!(parse_cpu_list("x"), None);
        assert_eq!(slot_size(4), 8);
        assert_eq!(slot_size(16), 16);
    }
}
