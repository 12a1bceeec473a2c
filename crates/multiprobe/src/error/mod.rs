//! Every error the library returns, in one place below the modules that return them: each
//! names the input at fault and the fix, and keeps the kernel's errno as its source.
//!
//! | type | returned by |
//! |---|---|
//! | [`AttachError`] | every attach path; the checks of libbpf's options carry libbpf's errno |
//! | [`ListingError`], [`TracefsError`] | [`crate::symbols`]: reading and selecting traceable functions |
//! | [`LoadError`] | [`crate::Object::load`], reloading a program as another kind |
//! | [`MapError`] | map operations |
//! | [`PinError`] | pinning programs, links and maps, and opening pins |
//! | [`crate::ObjectError`] | parsing an object (kept with the parser, in [`crate::object`]) |
//!
//! [`Error`] is all of them in one type, for callers that want one.

mod attach;
mod listing;
mod load;
mod map;
mod pin;

pub use attach::AttachError;
pub(crate) use attach::wrong_kind;
pub use listing::{ListingError, TracefsError};
pub use load::{KconfigError, LoadError};
pub use map::MapError;
pub use pin::PinError;

use crate::btf::BtfError;
use crate::object::ObjectError;

/// Any error of this crate, for callers that want one type (`?` converts each).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Parsing an object failed.
    #[error(transparent)]
    Object(#[from] ObjectError),
    /// Parsing BTF failed.
    #[error(transparent)]
    Btf(#[from] BtfError),
    /// Loading an object failed.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A map operation failed.
    #[error(transparent)]
    Map(#[from] MapError),
    /// Pinning failed.
    #[error(transparent)]
    Pin(#[from] PinError),
    /// Reading or selecting traceable functions failed.
    #[error(transparent)]
    Listing(#[from] ListingError),
    /// Attaching failed.
    #[error(transparent)]
    Attach(#[from] AttachError),
    /// tracefs is unavailable.
    #[error(transparent)]
    Tracefs(#[from] TracefsError),
}

impl Error {
    /// The errno behind the failure, when there is one (for attach and listing errors, the
    /// errno libbpf would report).
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Object(_) | Error::Btf(_) => None,
            Error::Load(e) => e.errno(),
            Error::Map(e) => e.errno(),
            Error::Pin(e) => e.errno(),
            Error::Listing(e) => Some(e.errno()),
            Error::Attach(e) => Some(e.errno()),
            Error::Tracefs(e) if e.permission_denied() => Some(libc::EACCES),
            Error::Tracefs(_) => Some(libc::ENOENT),
        }
    }
}
