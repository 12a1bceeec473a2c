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
            ListingError::Tracefs(_) | ListingError::NoMatch { .. } => libc::ENOENT,
        }
    }

    /// A failed read of `path`.
    pub(crate) fn read(path: impl Into<String>, source: io::Error) -> ListingError {
        ListingError::Read { path: path.into(), source }
    }
}

/// Why tracefs is not available.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "tracefs is not mounted and could not be mounted at /sys/kernel/tracing ({reason}); mount it with: mount -t tracefs nodev /sys/kernel/tracing"
)]
pub struct TracefsError {
    pub(crate) reason: String,
}
