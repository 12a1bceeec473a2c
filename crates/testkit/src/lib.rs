//! Test support shared by multiprobe's crates: which kernel the tests run on, what it was
//! built with, and explained skips.
//!
//! Tests run natively (`cargo test`) and inside QEMU VMs booting Debian kernels
//! (`cargo xtask test`, see `docs/testing.md`). A test that cannot run on the current
//! kernel skips with one of the `require_*!` macros; the harness fails the run when a skip
//! is not explained by the kernel the test ran on.
//!
//! ```no_run
//! #[test]
//! fn session_cookies() {
//!     testkit::require_root!("bpf() and perf_event_open");
//!     testkit::require_config!("CONFIG_FPROBE", "kprobe_multi links");
//!     testkit::require_kernel!(6, 10, "kprobe session");
//!     // ... the test proper ...
//! }
//! ```

mod config;
mod skip;

use std::path::PathBuf;
use std::sync::OnceLock;

pub use config::KernelConfig;
pub use skip::{Found, Requirement, SKIP_MARKER, SkipMarker, SkipReturn, report_skip};

/// Names the kernel config file to read instead of `/boot` or `/proc/config.gz`.
pub const ENV_KERNEL_CONFIG: &str = "MULTIPROBE_KERNEL_CONFIG";
/// `1` inside the test VMs.
pub const ENV_VM: &str = "MULTIPROBE_VM";
/// The `multiprobe` CLI binary to test, overriding the one cargo built.
pub const ENV_BIN: &str = "MULTIPROBE_BIN";
/// Directory of decompressed test kernel modules (`.ko`), inside the VMs.
pub const ENV_TEST_MODULES: &str = "MULTIPROBE_TEST_MODULES";

/// The running kernel's release, as `uname -r` prints it (`6.12.118+deb13-amd64`).
pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .expect("reading /proc/sys/kernel/osrelease")
        .trim()
        .to_string()
}

/// The running kernel's `(major, minor)` version.
pub fn kernel_version() -> (u32, u32) {
    static VERSION: OnceLock<(u32, u32)> = OnceLock::new();
    *VERSION.get_or_init(|| {
        let release = kernel_release();
        parse_version(&release).unwrap_or_else(|| panic!("unparsable kernel release {release:?}"))
    })
}

/// `(major, minor)` from a kernel release string such as `6.1.0-56-amd64` or `7.2.13+deb14`.
pub fn parse_version(release: &str) -> Option<(u32, u32)> {
    let (major, rest) = release.split_once('.')?;
    let minor_len = rest.bytes().take_while(u8::is_ascii_digit).count();
    Some((major.parse().ok()?, rest[..minor_len].parse().ok()?))
}

/// Whether the running kernel has `CONFIG_<name>` built in or as a module; `None` when its
/// config cannot be found (see [`KernelConfig::find`]). Read once per process.
pub fn kernel_config(name: &str) -> Option<bool> {
    static CONFIG: OnceLock<Option<KernelConfig>> = OnceLock::new();
    CONFIG.get_or_init(|| KernelConfig::find(&kernel_release())).as_ref().map(|config| config.enabled(name))
}

/// Whether this process runs with effective user id 0 (read from `/proc/self/status`).
pub fn is_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    effective_uid(&status) == Some(0)
}

/// The effective uid from the text of `/proc/<pid>/status` (`Uid: real effective saved fs`).
pub fn effective_uid(status: &str) -> Option<u32> {
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Whether the tests run inside a VM booted by `cargo xtask` (`MULTIPROBE_VM=1`).
pub fn in_vm() -> bool {
    std::env::var_os(ENV_VM).is_some_and(|v| v == "1")
}

/// The `multiprobe` CLI to run: `MULTIPROBE_BIN` when set (in the VMs, where the path cargo
/// compiled in does not exist), else `fallback`, normally `env!("CARGO_BIN_EXE_multiprobe")`.
pub fn multiprobe_bin(fallback: &str) -> PathBuf {
    std::env::var_os(ENV_BIN).map_or_else(|| PathBuf::from(fallback), PathBuf::from)
}

/// The directory of decompressed test kernel modules (`binfmt_misc.ko`, ...), which only the
/// VMs have (`MULTIPROBE_TEST_MODULES`).
pub fn test_modules_dir() -> Option<PathBuf> {
    std::env::var_os(ENV_TEST_MODULES).map(PathBuf::from)
}

/// The Rust path of the function this macro is used in (`crate::module::test_name`).
///
/// Taken from the type name of a nested function, because libtest may run a test on the main
/// thread, whose name is then not the test's.
#[macro_export]
macro_rules! test_path {
    () => {{
        fn f() {}
        $crate::__enclosing_fn_path(f)
    }};
}

#[doc(hidden)]
pub fn __enclosing_fn_path<T>(_: T) -> &'static str {
    let mut path = std::any::type_name::<T>();
    path = path.strip_suffix("::f").unwrap_or(path);
    while let Some(outer) = path.strip_suffix("::{{closure}}") {
        path = outer;
    }
    path
}

/// Skips the test (prints a skip marker and returns) when the running kernel is older than
/// `major.minor`: `require_kernel!(6, 10, "kprobe session")`.
#[macro_export]
macro_rules! require_kernel {
    ($major:expr, $minor:expr, $why:expr $(,)?) => {
        if $crate::kernel_version() < ($major, $minor) {
            $crate::report_skip($crate::test_path!(), $crate::Requirement::Kernel($major, $minor), $why);
            return $crate::SkipReturn::skipped();
        }
    };
}

/// Skips the test when the running kernel's config has the option neither `=y` nor `=m`:
/// `require_config!("CONFIG_FPROBE", "kprobe_multi links")`. When the config cannot be found
/// the test runs.
#[macro_export]
macro_rules! require_config {
    ($name:expr, $why:expr $(,)?) => {
        if $crate::kernel_config($name) == Some(false) {
            $crate::report_skip(
                $crate::test_path!(),
                $crate::Requirement::Config(::std::string::String::from($name)),
                $why,
            );
            return $crate::SkipReturn::skipped();
        }
    };
}

/// Skips the test when not running as root: `require_root!("bpf() needs CAP_BPF")`.
#[macro_export]
macro_rules! require_root {
    ($why:expr $(,)?) => {
        if !$crate::is_root() {
            $crate::report_skip($crate::test_path!(), $crate::Requirement::Root, $why);
            return $crate::SkipReturn::skipped();
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kernel_releases() {
        assert_eq!(parse_version("6.1.0-56-amd64"), Some((6, 1)));
        assert_eq!(parse_version("6.12.118+deb13-amd64"), Some((6, 12)));
        assert_eq!(parse_version("7.2.13+deb14-amd64"), Some((7, 2)));
        assert_eq!(parse_version("6.18.44-fc-v657"), Some((6, 18)));
        assert_eq!(parse_version("5.10"), Some((5, 10)));
        assert_eq!(parse_version("6"), None);
        assert_eq!(parse_version("linux"), None);
    }

    #[test]
    fn reads_the_effective_uid() {
        let status = "Name:\tcat\nUid:\t1000\t0\t0\t0\nGid:\t0\t0\t0\t0\n";
        assert_eq!(effective_uid(status), Some(0));
        assert_eq!(effective_uid("Uid:\t0\t1000\t0\t0\n"), Some(1000));
        assert_eq!(effective_uid("Name: x\n"), None);
    }

    #[test]
    fn names_the_enclosing_test() {
        assert_eq!(test_path!(), "testkit::tests::names_the_enclosing_test");
        let in_closure = || test_path!();
        assert_eq!(in_closure(), "testkit::tests::names_the_enclosing_test");
    }

    #[test]
    fn the_running_kernel_has_a_version() {
        let (major, _) = kernel_version();
        assert!(major >= 3, "{}", kernel_release());
    }

    // The macros must compile in tests returning `()` and `Result`. None skips here: a skip
    // prints a real marker that every harness run would count. The skipping path runs for
    // real in tests/vm_smoke.rs on the 6.1 VM.
    #[test]
    fn macros_fit_both_test_signatures() -> Result<(), String> {
        require_kernel!(1, 0, "any kernel");
        Ok(())
    }

    #[test]
    fn macros_fit_unit_tests() {
        require_kernel!(1, 0, "any kernel");
    }
}
