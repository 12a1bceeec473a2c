//! The running kernel's BTF, read once per process and only when something needs it.

use std::sync::{Arc, OnceLock};

use super::{Btf, BtfError};

/// Where the kernel publishes its own BTF.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// The kernel's BTF, parsed on first call and shared afterwards. Reading and parsing it costs
/// tens of milliseconds (hundreds under emulation), so only CO-RE relocations, kfunc calls and
/// feature probes that need it call this.
pub fn vmlinux() -> Result<Arc<Btf>, BtfError> {
    static CACHE: OnceLock<Result<Arc<Btf>, (String, i32)>> = OnceLock::new();
    let cached = CACHE.get_or_init(|| {
        let data = std::fs::read(VMLINUX_BTF).map_err(|e| (e.to_string(), e.raw_os_error().unwrap_or(0)))?;
        Btf::parse(&data).map(Arc::new).map_err(|e| (e.to_string(), 0))
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
