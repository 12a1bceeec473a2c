//! The running kernel's BTF, read once per process and only when something needs it.

use std::sync::{Arc, OnceLock};

use super::raw::RawBtf;
use super::{Btf, BtfError};

/// Where the kernel publishes its own BTF.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// The kernel's BTF, parsed on first call and shared afterwards. Reading and parsing it costs
/// tens of milliseconds (hundreds under emulation), so only CO-RE relocations, kfunc and
/// `__ksym` externs and the session kfunc signature probe call this; the other feature probes
/// read the raw bytes in place.
pub fn vmlinux() -> Result<Arc<Btf>, BtfError> {
    static CACHE: OnceLock<Cached<Btf>> = OnceLock::new();
    read_once(&CACHE, |data| Btf::parse(&data))
}

/// The BTF of loaded module `module` (`/sys/kernel/btf/MODULE`), split BTF on top of
/// `vmlinux` (from [`vmlinux()`]), read each time: a module may be reloaded between calls.
pub fn module(module: &str, vmlinux: &Btf) -> Result<Btf, BtfError> {
    let path = format!("/sys/kernel/btf/{module}");
    let io = |source: std::io::Error| BtfError::KernelBtf { path: path.clone(), source };
    // A name from kallsyms is a file name; anything else would read another file.
    if module.is_empty() || module.contains('/') || module.starts_with('.') || module == "vmlinux" {
        let msg = format!("`{module}` is not a module name");
        return Err(io(std::io::Error::new(std::io::ErrorKind::InvalidInput, msg)));
    }
    let data = std::fs::read(&path).map_err(io)?;
    Btf::parse_split(vmlinux, &data)
        .map_err(|e| io(std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())))
}

/// The kernel's BTF as read, not decoded, for questions about a type or two (feature probes):
/// a walk of the type headers instead of a parse of 100,000+ types.
pub(crate) fn vmlinux_raw() -> Result<Arc<RawBtf>, BtfError> {
    static CACHE: OnceLock<Cached<RawBtf>> = OnceLock::new();
    read_once(&CACHE, RawBtf::new)
}

/// A kernel BTF read once, or why it could not be (message, errno) to rebuild the error from.
type Cached<T> = Result<Arc<T>, (String, i32)>;

fn read_once<T>(
    cache: &OnceLock<Cached<T>>,
    decode: impl FnOnce(Vec<u8>) -> Result<T, BtfError>,
) -> Result<Arc<T>, BtfError> {
    let cached = cache.get_or_init(|| {
        let data = std::fs::read(VMLINUX_BTF).map_err(|e| (e.to_string(), e.raw_os_error().unwrap_or(0)))?;
        decode(data).map(Arc::new).map_err(|e| (e.to_string(), 0))
    });
    match cached {
        Ok(btf) => Ok(Arc::clone(btf)),
        Err((msg, errno)) => Err(BtfError::KernelBtf {
            path: VMLINUX_BTF.to_string(),
            source: if *errno != 0 {
                std::io::Error::from_raw_os_error(*errno)
            } else {
                std::io::Error::new(std::io::ErrorKind::InvalidData, msg.clone())
            },
        }),
    }
}
