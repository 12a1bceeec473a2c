//! Creating an object's maps as libbpf's `bpf_object__create_map` does: libbpf's defaults
//! (perf event arrays sized to the possible CPUs, ring buffers rounded to a power-of-two
//! number of pages), BTF type info left out for the map types whose types the kernel
//! refuses, and one retry without it on any error when some was sent; global data written
//! and `.rodata` frozen; pinned maps reused after checking they match.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use crate::error::{LoadError, MapError};
use crate::map::{Map, UpdateFlags};
use crate::object::{MapOrigin, MapSpec, MapType, Object};
use crate::sys;

pub(crate) fn create_map(
    obj: &Object,
    spec: &MapSpec,
    btf_fd: Option<&OwnedFd>,
    warnings: &mut Vec<String>,
) -> Result<Map, LoadError> {
    let inner = match &spec.inner {
        Some(inner) => Some(create_map(obj, inner, btf_fd, warnings)?),
        None => None,
    };
    let kernel_name = kernel_map_name(&obj.name, spec);
    let mut max_entries = spec.max_entries;
    match spec.map_type {
        // libbpf's defaults: one perf buffer per possible CPU, ring buffers rounded up to
        // the power-of-two multiple of the page size the kernel requires.
        MapType::PerfEventArray if max_entries == 0 => max_entries = crate::map::possible_cpus() as u32,
        MapType::Ringbuf | MapType::UserRingbuf => max_entries = ringbuf_size(max_entries, sys::page_size() as u32),
        _ => {}
    }
    // Like libbpf, never send BTF for the types whose key/value types the kernel refuses.
    let with_btf = !spec.map_type.strips_btf() && (spec.btf_key_type_id != 0 || spec.btf_value_type_id != 0);
    let mut req = sys::MapCreate {
        map_type: spec.map_type.to_u32(),
        name: &kernel_name,
        key_size: spec.key_size,
        value_size: spec.value_size,
        max_entries,
        map_flags: spec.flags,
        inner_map_fd: inner.as_ref().map(Map::fd),
        btf_fd: btf_fd.map(AsFd::as_fd).filter(|_| with_btf),
        btf_key_type_id: if with_btf { spec.btf_key_type_id } else { 0 },
        btf_value_type_id: if with_btf { spec.btf_value_type_id } else { 0 },
        map_extra: spec.map_extra,
    };
    let fd = match sys::map_create(&req) {
        Ok(fd) => fd,
        // Whatever the error, libbpf tries again without BTF when it sent some: kernels
        // refuse type info for some map types with EINVAL, ENOTSUPP (524) or others.
        Err(e) if req.btf_fd.is_some() => {
            req.btf_fd = None;
            req.btf_key_type_id = 0;
            req.btf_value_type_id = 0;
            let fd = sys::map_create(&req).map_err(|source| map_create_error(spec, source))?;
            warnings.push(format!(
                "map `{}` created without BTF type info: the kernel refused it with its type info ({e})",
                spec.name
            ));
            fd
        }
        Err(e) => return Err(map_create_error(spec, e)),
    };
    Ok(Map::from_fd(fd, &spec.name)?)
}

/// libbpf's `adjust_ringbuf_sz`: a size the kernel takes (a power-of-two multiple of the page
/// size) at least as large as asked; 0 stays 0 so that the error shows.
fn ringbuf_size(size: u32, page: u32) -> u32 {
    if size == 0 || (size % page == 0 && (size / page).is_power_of_two()) {
        return size;
    }
    let mut mul: u32 = 1;
    while let Some(bytes) = mul.checked_mul(page) {
        if bytes > size {
            return bytes;
        }
        mul = match mul.checked_mul(2) {
            Some(m) => m,
            None => break,
        };
    }
    size
}

fn map_create_error(spec: &MapSpec, source: io::Error) -> LoadError {
    let hint = match source.raw_os_error() {
        Some(libc::EPERM) => {
            Some("creating maps needs root or CAP_BPF; kernels before 5.11 also need a high RLIMIT_MEMLOCK".to_string())
        }
        Some(libc::EINVAL) if spec.map_type == MapType::Ringbuf => {
            Some("a ring buffer's max_entries must be a power of two multiple of the page size".into())
        }
        Some(libc::EINVAL) if spec.value_size == 0 => Some(format!(
            "its value size is 0: declare the value type, or set it with MapSpec::set_value_size before load{}",
            if spec.map_type == MapType::StackTrace { " (stack traces: depth * 8 bytes)" } else { "" }
        )),
        Some(libc::EINVAL) => Some(format!(
            "the kernel rejected type {:?}, key size {}, value size {}, max_entries {}, flags {:#x}",
            spec.map_type, spec.key_size, spec.value_size, spec.max_entries, spec.flags
        )),
        Some(libc::E2BIG) | Some(libc::ENOMEM) => Some("the map is too large for this kernel or memory limit".into()),
        _ => None,
    };
    LoadError::MapCreate { map: spec.name.clone(), source, hint }
}

/// Kernel map names are 15 bytes: global data maps get libbpf's `<object prefix>.<section>`.
fn kernel_map_name(object: &str, spec: &MapSpec) -> String {
    match spec.origin {
        MapOrigin::GlobalData { .. } => {
            let prefix: String = object.chars().take(15usize.saturating_sub(spec.name.len()).min(8)).collect();
            format!("{prefix}{}", spec.name)
        }
        MapOrigin::Defined => spec.name.clone(),
    }
}

/// Writes a global data map's initial value; `.rodata` is then frozen so the verifier can
/// treat its contents as constants.
pub(crate) fn initialize(spec: &MapSpec, map: &Map) -> Result<(), LoadError> {
    if let Some(data) = &spec.data {
        map.update_bytes(&0u32.to_le_bytes(), data, UpdateFlags::Any)?;
    }
    if spec.origin == (MapOrigin::GlobalData { read_only: true }) {
        map.freeze()?;
    }
    Ok(())
}

/// Opens a pinned map and checks it is the map the object defines.
pub(crate) fn reuse_pinned(spec: &MapSpec, path: &Path) -> Result<Map, LoadError> {
    let map = Map::open_pinned(path, &spec.name).map_err(|e| match e {
        MapError::Pin(e) => LoadError::Pin(e),
        other => LoadError::Map(other),
    })?;
    let mismatch = |reason: String| LoadError::PinnedMapMismatch {
        map: spec.name.clone(),
        path: path.display().to_string(),
        reason,
    };
    if map.map_type() != spec.map_type {
        return Err(mismatch(format!("type {:?}, expected {:?}", map.map_type(), spec.map_type)));
    }
    let found = (map.key_size(), map.value_size(), map.max_entries());
    let wanted = (spec.key_size, spec.value_size, spec.max_entries);
    if found != wanted {
        return Err(mismatch(format!("key/value/max_entries {found:?}, expected {wanted:?}")));
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::ringbuf_size;

    #[test]
    fn ring_buffers_are_sized_as_libbpf_sizes_them() {
        assert_eq!(ringbuf_size(0, 4096), 0);
        assert_eq!(ringbuf_size(4096, 4096), 4096);
        assert_eq!(ringbuf_size(1, 4096), 4096);
        assert_eq!(ringbuf_size(4097, 4096), 8192);
        assert_eq!(ringbuf_size(3 * 4096, 4096), 4 * 4096);
        assert_eq!(ringbuf_size(256 * 1024, 4096), 256 * 1024);
        assert_eq!(ringbuf_size(u32::MAX, 4096), u32::MAX);
    }
}
