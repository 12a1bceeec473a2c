//! Why the kernel's symbol listings could not be read or matched nothing: what
//! [`crate::symbols`] returns.

use std::io;

/// Why reading or selecting traceable functions failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
#[allow(missing_docs)] // variant fields are named in the messages
pub enum ListingError {
    /// Reading a kernel listing (tracefs, `/proc/kallsyms`, `/proc/modules`) failed.
    #[error("reading {path}: {source}")]
    Read { path: String, source: io::Error },
    /// tracefs is needed and unavailable.
    #[error(transparent)]
    Tracefs(#[from] TracefsError),
    /// Patterns (or a syscall name) matching no traceable function.
    #[error("pattern `{pattern}` matches no traceable function{hint}")]
    NoMatch { pattern: String, hint: String },
}

impl ListingError {
    /// The errno libbpf would report: the read's own errno, ENOENT for no match or no
    /// tracefs (the same as [`crate::AttachError::errno`] for these failures).
    pub fn errno(&self) -> i32 {
        match self {
            ListingError::Read { source, .. } => source.raw_os_error().unwrap_or(libc::EIO),
            ListingError::Tracefs(e) if e.permission_denied() => libc::EACCES,
            ListingError::Tracefs(_) | ListingError::NoMatch { .. } => libc::ENOENT,
        }
    }

    /// A failed read of `path`.
    pub(crate) fn read(path: impl Into<String>, source: io::Error) -> ListingError {
        ListingError::Read { path: path.into(), source }
    }
}

/// Why tracefs is not available: not mounted (and mounting it failed), or mounted where this
/// user may not read it.
#[derive(Debug, Clone)]
pub struct TracefsError {
    pub(crate) reason: String,
    /// The mount point found closed to this user, if that is the trouble.
    pub(crate) denied: Option<String>,
}

impl TracefsError {
    /// Whether tracefs is mounted but this user may not read it (it is usually mode 700):
    /// a matter of privileges, not of mounting.
    pub fn permission_denied(&self) -> bool {
        self.denied.is_some()
    }
}

impl std::fmt::Display for TracefsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.denied {
            Some(at) => write!(
                f,
                "tracefs is mounted at {at} but this user may not read it ({}): the list of traceable \
                 functions is there, so this needs root, or CAP_BPF + CAP_PERFMON and read access to {at}",
                self.reason
            ),
            None => write!(
                f,
                "tracefs is not mounted and could not be mounted at /sys/kernel/tracing ({}); mount it with: \
                 mount -t tracefs nodev /sys/kernel/tracing",
                self.reason
            ),
        }
    }
}

impl std::error::Error for TracefsError {}
