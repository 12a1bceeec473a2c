//! How the traceable functions and their entry addresses are read: [`Listing`], the reader's
//! options (where to keep them for the boot), passed by whoever reads, never set for the
//! whole process.

use std::path::{Path, PathBuf};

use super::cache;
use super::traceable::{Function, TraceableFunctions};
use crate::error::ListingError;

/// How to read the kernel's listing of traceable functions.
///
/// Whatever the options, a listing read is kept in memory for the process while the boot and
/// the loaded modules stay the same (see [`super::forget_listing_cache`]). With a cache
/// directory it is kept in files for the boot too, so later processes skip the kernel's
/// formatting (a third of a second under emulation); without one (the default, since a
/// library should not write files unasked) nothing is written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    cache_dir: Option<PathBuf>,
}

impl Listing {
    /// Where the cache files go by default: a tmpfs, so they are gone at reboot.
    pub const DEFAULT_CACHE_DIR: &'static str = "/run/multiprobe";

    /// Kept in memory only.
    pub fn new() -> Listing {
        Listing::default()
    }

    /// Kept in [`Listing::DEFAULT_CACHE_DIR`] for the boot as well.
    pub fn cached() -> Listing {
        Listing::new().cache_dir(Listing::DEFAULT_CACHE_DIR)
    }

    /// Kept in `dir` for the boot as well (best on a tmpfs such as `/run/multiprobe`).
    ///
    /// The directory is created private to this user (mode 0700); an existing one that is not
    /// this user's, is open to writes by others, or is a symlink is not used. A cache that
    /// cannot be written is only a missed speed-up, never an error.
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Listing {
        self.cache_dir = Some(dir.into());
        self
    }

    /// The cache directory, if any.
    pub fn dir(&self) -> Option<&Path> {
        self.cache_dir.as_deref()
    }

    /// The listing with addresses (see [`TraceableFunctions::read`]), kept as these options
    /// say.
    pub fn read(&self) -> Result<TraceableFunctions, ListingError> {
        cache::read(self.dir())
    }

    /// The listing kept in the cache directory for the current boot and modules, or `None`
    /// (no cache directory, nothing kept yet, or kept for another boot or set of modules).
    /// Never reads tracefs: for callers that must stay cheap, such as shell completion.
    pub fn read_kept(&self) -> Option<TraceableFunctions> {
        cache::read_kept(self.dir()?)
    }

    /// The entry (symbol) address of each function: what a kprobe_multi link matches cookies
    /// against, and what `bpf_get_func_ip` reports in kprobe_multi programs on x86 kernels.
    /// Computed from the listed patch sites and `/proc/kallsyms`, read once and kept while the
    /// boot and the modules stay the same (and for the boot, with a cache directory). An
    /// address that is not a listed patch site comes back unchanged; so do all of them on
    /// kernels before 6.5, whose listing has entry addresses.
    ///
    /// Fails when `/proc/kallsyms` hides addresses from this process (not root, or
    /// `kernel.kptr_restrict` = 2).
    pub fn entry_addresses(&self, functions: &[Function]) -> Result<Vec<u64>, ListingError> {
        let entries = cache::entries(self.dir())?;
        Ok(functions.iter().map(|f| entries.entry(f.address)).collect())
    }

    /// Whether entry addresses are at hand without reading `/proc/kallsyms` now.
    pub(crate) fn entries_are_cheap(&self) -> bool {
        cache::entries_are_cheap(self.dir())
    }
}

/// Reading with the default options: [`Listing::new`].
impl TraceableFunctions {
    /// Reads the listing with addresses: `available_filter_functions_addrs` where the kernel
    /// has it, else `available_filter_functions` plus `/proc/kallsyms`.
    ///
    /// The listing is kept in memory for as long as the boot and the loaded modules stay the
    /// same: repeated reads in a process cost a look at `/proc/modules`. [`Listing::read`]
    /// keeps it in a directory for the boot too. (Declared here, beside the cache it reads
    /// through, so that the listing's parser does not depend on the cache.)
    pub fn read() -> Result<TraceableFunctions, ListingError> {
        Listing::new().read()
    }
}

/// [`Listing::entry_addresses`] with the default options ([`Listing::new`]).
pub fn entry_addresses(functions: &[Function]) -> Result<Vec<u64>, ListingError> {
    Listing::new().entry_addresses(functions)
}
