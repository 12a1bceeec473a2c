//! Finding (or mounting) the tracing file system, where the kernel lists traceable functions
//! and tracepoints. Private to the crate but for [`root`], which the crate re-exports as
//! [`super::tracefs_root`].
//!
//! Where none is mounted, one is mounted only for this process and leaves no trace: mounted
//! at `/sys/kernel/tracing`, opened, then detached from the tree at once (`MNT_DETACH`), so
//! it lives on only behind the open directory, reached as `/proc/self/fd/N`. A system whose
//! administrator hid tracefs stays that way after the command.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::error::TracefsError;
use crate::sys;

/// Where tracefs lives on current systems, and where it lived under debugfs before 4.1.
const CANDIDATES: &[&str] = &["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// The tracefs mount point or, where nothing is mounted, a private one of this process
/// (`/proc/self/fd/N`, which needs root to make; see the module doc). The answer is cached
/// for the process.
pub fn root() -> Result<&'static Path, TracefsError> {
    static ROOT: OnceLock<Result<PathBuf, TracefsError>> = OnceLock::new();
    ROOT.get_or_init(find_or_mount).as_ref().map(PathBuf::as_path).map_err(Clone::clone)
}

fn is_tracefs(dir: &str) -> bool {
    Path::new(dir).join("available_filter_functions").exists() || Path::new(dir).join("events").is_dir()
}

/// Where tracefs is mounted but closed to this user, told by the file system's magic number:
/// `exists()` is false both for a missing file and for one behind a directory this user may
/// not search (tracefs is mounted mode 700), and only the second is a matter of privileges.
fn closed_tracefs() -> Option<(String, std::io::Error)> {
    let denied =
        |p: &std::path::Path| std::fs::read_dir(p).err().filter(|e| e.kind() == std::io::ErrorKind::PermissionDenied);
    let tracing = c"/sys/kernel/tracing";
    if sys::fs_magic(tracing).ok() == Some(sys::TRACEFS_MAGIC) {
        return denied(Path::new(CANDIDATES[0])).map(|e| (CANDIDATES[0].to_string(), e));
    }
    // Before 4.1 (or with only debugfs mounted): tracefs under debugfs, itself mode 700.
    if sys::fs_magic(c"/sys/kernel/debug").ok() == Some(sys::DEBUGFS_MAGIC) {
        return denied(Path::new("/sys/kernel/debug")).map(|e| ("/sys/kernel/debug".to_string(), e));
    }
    None
}

fn find_or_mount() -> Result<PathBuf, TracefsError> {
    if let Some(dir) = CANDIDATES.iter().find(|d| is_tracefs(d)) {
        return Ok(PathBuf::from(dir));
    }
    if let Some((at, e)) = closed_tracefs() {
        return Err(TracefsError { reason: e.to_string(), denied: Some(at) });
    }
    let target = CANDIDATES[0];
    sys::mount_pseudo(c"tracefs", c"/sys/kernel/tracing")
        .map_err(|e| TracefsError { reason: e.to_string(), denied: None })?;
    // Opened before the detach, kept open for the process: the directory is the mount.
    let dir = std::fs::File::open(target);
    let detached = sys::umount_detach(c"/sys/kernel/tracing");
    let dir = dir.map_err(|e| TracefsError { reason: format!("mounted, but not readable: {e}"), denied: None })?;
    detached
        .map_err(|e| TracefsError { reason: format!("mounted, but could not be detached again: {e}"), denied: None })?;
    let path = PathBuf::from(format!("/proc/self/fd/{}", std::os::fd::IntoRawFd::into_raw_fd(dir)));
    if !is_tracefs(path.to_str().unwrap_or_default()) {
        return Err(TracefsError { reason: "mounted, but it lists nothing".into(), denied: None });
    }
    Ok(path)
}
