//! Pins: kernel objects (programs, links, maps) kept alive by a path in a bpf file system.
//! The path checks and the two system calls, shared by every kind of object.

use std::ffi::CString;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;

use crate::error::PinError;
use crate::sys;

/// Pins the object `fd` at `path`.
pub(crate) fn pin(fd: BorrowedFd<'_>, path: &Path) -> Result<(), PinError> {
    sys::obj_pin(fd, &path_cstring(path)?).map_err(|source| error(path, source))
}

/// Opens the object pinned at `path`.
pub(crate) fn open(path: &Path) -> Result<OwnedFd, PinError> {
    sys::obj_get(&path_cstring(path)?).map_err(|source| error(path, source))
}

/// The path as the kernel takes it; a NUL byte inside is refused here, naming the path.
fn path_cstring(path: &Path) -> Result<CString, PinError> {
    CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| error(path, io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte")))
}

fn error(path: &Path, source: io::Error) -> PinError {
    PinError { path: path.display().to_string(), source }
}
