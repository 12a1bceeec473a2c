//! Why pinning a program, link or map in a bpf file system (or opening a pin) failed.

use std::io;

/// Why pinning, or opening a pin, failed: one type for programs, links and maps.
#[derive(Debug, thiserror::Error)]
#[error("pinning at {path} failed: {source} (is a bpf file system mounted there? mount -t bpf bpf /sys/fs/bpf)")]
pub struct PinError {
    /// The pin path.
    pub path: String,
    /// The kernel's refusal, or InvalidInput for a path with a NUL byte.
    pub source: io::Error,
}

impl PinError {
    /// The errno behind the failure.
    pub fn errno(&self) -> Option<i32> {
        self.source.raw_os_error()
    }
}

impl From<PinError> for io::Error {
    fn from(e: PinError) -> io::Error {
        io::Error::new(e.source.kind(), e)
    }
}
