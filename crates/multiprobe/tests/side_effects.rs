//! The listing cache leaves no side effect and cannot be made to hang (natively and in
//! every VM, where tracefs is real): a missing parent of the cache directory (`/run` on a
//! minimal system) is not created, and a FIFO or an oversized file planted as the cache
//! file is refused with an error naming it, neither waited on nor read whole. One test, run
//! alone in its binary: the process keeps the listing in memory, which another test reading
//! it meanwhile would refill, and the cache directory would then not be looked at.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use multiprobe::symbols::{Listing, forget_listing_cache};
use testkit::require_root;

/// The cache file's name (`symbols/cache/mod.rs`).
const LISTING_FILE: &str = "functions-v1";

fn fresh_read(dir: &Path) -> Result<usize, multiprobe::ListingError> {
    forget_listing_cache();
    Listing::new().cache_dir(dir).read().map(|l| l.len())
}

#[test]
fn conformance_the_cache_creates_no_parent_and_refuses_planted_files() {
    require_root!("reading the traceable functions (tracefs)");
    if Listing::new().read().is_err() {
        // No tracefs here (a native host without it): the cache is never reached.
        return;
    }
    let base = PathBuf::from(format!("/tmp/multiprobe-side-effects-{}", std::process::id()));
    let _ = fs::remove_dir_all(&base);

    // A missing parent: the listing is read, nothing is created.
    let missing = base.join("run").join("multiprobe");
    assert!(fresh_read(&missing).unwrap() > 0);
    assert!(!base.exists(), "the cache created {}", base.display());

    // A FIFO as the cache file: an error naming it, at once (the open does not wait for a
    // writer). Before the fix this read blocked for ever.
    let dir = base.join("cache");
    fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir).unwrap();
    let file = dir.join(LISTING_FILE);
    assert!(Command::new("mkfifo").arg(&file).status().unwrap().success());
    let e = fresh_read(&dir).unwrap_err().to_string();
    assert!(e.contains(&file.display().to_string()) && e.contains("is not a regular file; remove it"), "{e}");

    // A 4 GiB (sparse) file: refused by its size, not read.
    fs::remove_file(&file).unwrap();
    fs::File::create(&file).unwrap().set_len(4 << 30).unwrap();
    let e = fresh_read(&dir).unwrap_err().to_string();
    assert!(e.contains("4294967296 bytes, more than any cache file can be"), "{e}");

    // Removed, the cache works again: written (only 6.5+ listings, which carry addresses,
    // are kept), then read back.
    fs::remove_file(&file).unwrap();
    let n = fresh_read(&dir).unwrap();
    if multiprobe::features::available_filter_functions_addrs().is_yes() {
        assert!(fs::metadata(&file).is_ok_and(|m| m.is_file()), "the listing was not kept");
    }
    assert_eq!(fresh_read(&dir).unwrap(), n);
    fs::remove_dir_all(&base).unwrap();
}
