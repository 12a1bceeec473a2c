//! The kernel's symbols as a tracer needs them: which functions can be traced (ftrace's
//! listing through tracefs), where they start (kallsyms), which of them patterns select,
//! and the names of syscall entry points.
//!
//! Everything here reads files (tracefs, `/proc`) and creates no BPF object: the attach
//! paths ([`crate::kprobe_multi`], the per-function fallback) and the command build on it.
//! How a listing is read, and where it is kept for the boot, is a [`Listing`] passed by
//! whoever reads.
//!
//! ```no_run
//! # fn main() -> Result<(), multiprobe::symbols::ListingError> {
//! use multiprobe::symbols::{Listing, Selection};
//! let listing = Listing::cached(); // kept in /run/multiprobe for the boot
//! let functions = Selection::new().include("vfs_*").exclude("*xattr*").resolve_with(&listing)?;
//! let entries = listing.entry_addresses(&functions)?;
//! # Ok(()) }
//! ```

mod cache;
mod entries;
mod glob;
mod kallsyms;
mod listing;
mod selection;
mod syscall;
mod traceable;
mod tracefs;

pub use crate::error::{ListingError, TracefsError};
pub use cache::forget_listing_cache;
pub(crate) use cache::from_file_bytes as listing_cache_from_file_bytes;
pub use glob::Glob;
pub(crate) use kallsyms::Kallsyms;
pub use listing::{Listing, entry_addresses};
pub(crate) use selection::no_match_hint;
pub use selection::{DENY_LIST, ModuleFilter, Pattern, Selection};
pub use syscall::{SYSCALL_PREFIX, syscall_function};
pub use traceable::{Function, ListingSource, TraceableFunctions};
pub use tracefs::root as tracefs_root;
