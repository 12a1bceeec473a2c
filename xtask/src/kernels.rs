//! The kernels the tests boot: the newest Debian kernel of each series, downloaded once and
//! cached under `target/vm/kernels/<series>/<version>/` as just `vmlinuz`, `config` and the
//! test modules, decompressed.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::apt::AptList;
use crate::{kernel_unpack, tools};

/// Test modules shipped to the VMs, by path under the kernel's `kernel/` module directory
/// without the `.ko` extension. Add one here and it appears as `/modules/<name>.ko`.
/// fou defines kfuncs (a module kfunc test, tests/corpus_gaps.rs) and needs the two
/// UDP tunnel modules and ip_tunnel, loaded first.
pub const TEST_MODULES: &[&str] =
    &["fs/binfmt_misc", "net/ipv4/ip_tunnel", "net/ipv4/udp_tunnel", "net/ipv6/ip6_udp_tunnel", "net/ipv4/fou"];

/// What gives a VM a network card (`cargo xtask vm --forward`, the Prometheus end-to-end
/// test), in load order: the virtio PCI transport (built in on 6.12 and 7.2, modules on 6.1),
/// then virtio_net and the failover modules it needs. Kept apart from `TEST_MODULES`, whose
/// stamp decides whether a cached kernel is complete: adding these there would make every
/// cached kernel be downloaded again, and the tests do not need them.
pub const NET_MODULES: &[&str] = &[
    "drivers/virtio/virtio",
    "drivers/virtio/virtio_ring",
    "drivers/virtio/virtio_pci_modern_dev",
    "drivers/virtio/virtio_pci_legacy_dev",
    "drivers/virtio/virtio_pci",
    "net/core/failover",
    "drivers/net/net_failover",
    "drivers/net/virtio_net",
];

/// The matrix `cargo xtask test` runs when no `--kernel` is given.
pub const DEFAULT_MATRIX: &[&str] = &["6.1", "6.12", "7.2"];

/// How a series' packages are cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// One `linux-image-VER-amd64-unsigned` with `boot/vmlinuz-*`, `boot/config-*` and the
    /// modules.
    Image,
    /// `linux-binary-VER-amd64` (`usr/lib/modules/*/vmlinuz`), `linux-base-VER-amd64`
    /// (`usr/lib/modules/*/config`) and `linux-modules-VER-amd64`.
    Split,
}

/// A Debian kernel series of the test matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Series {
    /// `major.minor`, as given to `--kernel`.
    pub name: &'static str,
    /// The Debian suite carrying it.
    suite: &'static str,
    /// Whether `<suite>-security` carries newer builds.
    security: bool,
    layout: Layout,
}

/// Every series we know how to fetch.
pub const SERIES: &[Series] = &[
    Series { name: "5.10", suite: "bullseye", security: true, layout: Layout::Image },
    Series { name: "6.1", suite: "bookworm", security: true, layout: Layout::Image },
    Series { name: "6.12", suite: "trixie", security: true, layout: Layout::Image },
    Series { name: "7.2", suite: "sid", security: false, layout: Layout::Split },
];

/// A kernel ready to boot.
#[derive(Debug, Clone)]
pub struct Kernel {
    /// Short name for output: the series (`6.12`) or the file name of a `--kernel PATH`.
    pub label: String,
    /// The Debian ABI version (`6.12.118+deb13`), or the file name of a `--kernel PATH`.
    pub version: String,
    /// The bootable image.
    pub vmlinuz: PathBuf,
    /// Its `.config`, when known.
    pub config: Option<PathBuf>,
    /// Decompressed test modules (`binfmt_misc.ko`, ...).
    pub modules: Vec<PathBuf>,
}

/// Resolves a `--kernel` argument: a series name, or the path of a vmlinuz file.
pub fn resolve(spec: &str, cache: &Path) -> Result<Kernel> {
    if let Some(series) = SERIES.iter().find(|s| s.name == spec) {
        return fetch(series, cache);
    }
    let path = Path::new(spec);
    if path.is_file() {
        return Ok(from_path(path));
    }
    let names: Vec<_> = SERIES.iter().map(|s| s.name).collect();
    bail!("unknown kernel {spec:?}: give one of {} or the path of a vmlinuz file", names.join(", "))
}

/// A kernel image given by path; its config is a `config-*` file in the same directory
/// (preferably the one matching `vmlinuz-<release>`).
fn from_path(vmlinuz: &Path) -> Kernel {
    let name = vmlinuz.file_name().unwrap_or_default().to_string_lossy();
    let dir = vmlinuz.parent().unwrap_or(Path::new("."));
    let matching =
        name.strip_prefix("vmlinuz-").map(|release| dir.join(format!("config-{release}"))).filter(|p| p.is_file());
    let any = || {
        let mut configs: Vec<PathBuf> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let n = p.file_name().unwrap_or_default().to_string_lossy();
                n == "config" || n.starts_with("config-")
            })
            .collect();
        configs.sort();
        configs.pop()
    };
    Kernel {
        label: name.to_string(),
        version: name.to_string(),
        vmlinuz: vmlinuz.to_path_buf(),
        config: matching.or_else(any),
        modules: Vec::new(),
    }
}

/// The newest kernel of a series: from the cache when it is the newest the archive has,
/// else downloaded. Without network, the newest cached one, with a warning.
pub fn fetch(series: &Series, cache: &Path) -> Result<Kernel> {
    let apt = apt_list(series, cache)?;
    let store = cache.join("kernels").join(series.name);
    let mut updated = false;
    if apt.is_stale() {
        match apt.update() {
            Ok(()) => updated = true,
            Err(e) => eprintln!("xtask: warning: {e:#}"),
        }
    }
    let attempt = |apt: &AptList| -> Result<Kernel> {
        let newest = newest_version(series, apt)?;
        if let Some(kernel) = cached(series, &store, &newest, true) {
            return Ok(kernel);
        }
        download(series, apt, &store, &newest)
    };
    let result = attempt(&apt).or_else(|first| {
        // Lists younger than a day can still name a package the archive has dropped.
        if updated {
            return Err(first);
        }
        eprintln!("xtask: {first:#}; refreshing the package lists");
        apt.update()?;
        attempt(&apt)
    });
    match result {
        Ok(kernel) => {
            prune(&store, &kernel.version);
            Ok(kernel)
        }
        Err(e) => match newest_cached(series, &store) {
            Some(kernel) => {
                eprintln!(
                    "xtask: warning: could not fetch the newest {} kernel ({e:#}); \
                     using the cached {}",
                    series.name, kernel.version
                );
                Ok(kernel)
            }
            None => Err(e.context(format!("fetching the {} kernel", series.name))),
        },
    }
}

/// The private package list of a series.
fn apt_list(series: &Series, cache: &Path) -> Result<AptList> {
    let mut suites = vec![series.suite.to_string()];
    if series.security {
        suites.push(format!("{}-security", series.suite));
    }
    AptList::new(cache.join("apt").join(series.name), &suites)
}

/// The network modules (`NET_MODULES`) of a kernel of the matrix, decompressed, in load
/// order; those the kernel builds in are left out. Unpacked once into `net/` next to the
/// kernel's test modules, from the same packages (downloaded again the first time).
pub fn net_modules(kernel: &Kernel, cache: &Path) -> Result<Vec<PathBuf>> {
    let Some(series) = SERIES.iter().find(|s| s.name == kernel.label) else {
        bail!(
            "networking needs a kernel of the matrix ({}): the network card's driver comes from its \
             Debian package, and {} is not one",
            SERIES.iter().map(|s| s.name).collect::<Vec<_>>().join(", "),
            kernel.label
        );
    };
    let version_dir = kernel.vmlinuz.parent().context("the kernel image has no directory")?;
    let dir = version_dir.join("net");
    let stamp: String = NET_MODULES.iter().map(|m| format!("{m}\n")).collect();
    let listed = |dir: &Path| -> Vec<PathBuf> {
        NET_MODULES
            .iter()
            .map(|m| dir.join(format!("{}.ko", m.rsplit('/').next().unwrap_or(m))))
            .filter(|p| p.is_file())
            .collect()
    };
    if std::fs::read_to_string(dir.join("complete")).ok().as_deref() == Some(stamp.as_str()) {
        return Ok(listed(&dir));
    }
    tools::ensure(&[tools::XZ, tools::DPKG_DEB])?;
    eprintln!("xtask: fetching the network modules of the {} kernel {}", series.name, kernel.version);
    let work = version_dir.join(format!("net.partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let fetched = (|| -> Result<()> {
        let debs = apt_list(series, cache)?.download(&packages(series, &kernel.version), &work.join("debs"))?;
        let out = work.join("kernel");
        kernel_unpack::unpack(&debs, &work.join("tree"), &out, NET_MODULES)?;
        std::fs::write(out.join("modules").join("complete"), &stamp)?;
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(out.join("modules"), &dir)?;
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&work);
    fetched.with_context(|| format!("fetching the network modules of the {} kernel", series.name))?;
    Ok(listed(&dir))
}

/// The package carrying `vmlinuz` for a series and ABI version.
fn image_package(series: &Series, version: &str) -> String {
    match series.layout {
        Layout::Image => format!("linux-image-{version}-amd64-unsigned"),
        Layout::Split => format!("linux-binary-{version}-amd64"),
    }
}

/// Every package to download for a series and ABI version.
fn packages(series: &Series, version: &str) -> Vec<String> {
    match series.layout {
        Layout::Image => vec![image_package(series, version)],
        Layout::Split => {
            ["binary", "base", "modules"].iter().map(|part| format!("linux-{part}-{version}-amd64")).collect()
        }
    }
}

/// The highest ABI version of the series that the package lists offer.
fn newest_version(series: &Series, apt: &AptList) -> Result<String> {
    let (prefix, suffix) = match series.layout {
        Layout::Image => ("linux-image-", "-amd64-unsigned"),
        Layout::Split => ("linux-binary-", "-amd64"),
    };
    let regex = format!("^{prefix}{}\\.", series.name.replace('.', "\\."));
    let names = apt.search(&regex)?;
    let versions = names.iter().filter_map(|name| {
        let version = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
        // `6.12.118+deb13-cloud` and `-rt` are other flavours.
        let plain = version.replace("+deb", "").chars().all(|c| c.is_ascii_digit() || ".-".contains(c));
        (plain && version.starts_with(&format!("{}.", series.name))).then_some(version)
    });
    versions
        .max_by(|a, b| compare_versions(a, b))
        .map(str::to_string)
        .with_context(|| format!("no {prefix}{}.*{suffix} package in Debian {}", series.name, series.suite))
}

/// Orders version strings the way people read them: runs of digits by value, other text
/// by bytes, so `6.12.118` > `6.12.99` and `6.12.115+deb13.1` > `6.12.115+deb13`.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    fn chunks(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut rest = s;
        while let Some(first) = rest.chars().next() {
            let digit = first.is_ascii_digit();
            let len = rest.find(|c: char| c.is_ascii_digit() != digit).unwrap_or(rest.len());
            out.push((digit, &rest[..len]));
            rest = &rest[len..];
        }
        out
    }
    for (x, y) in chunks(a).into_iter().zip(chunks(b)) {
        let order = match (x, y) {
            ((true, x), (true, y)) => {
                let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
                x.len().cmp(&y.len()).then(x.cmp(y))
            }
            ((_, x), (_, y)) => x.cmp(y),
        };
        if order != Ordering::Equal {
            return order;
        }
    }
    chunks(a).len().cmp(&chunks(b).len())
}

/// The cached kernel of that version, if complete and, with `same_modules`, unpacked with
/// the current `TEST_MODULES` (the `complete` stamp lists them).
fn cached(series: &Series, store: &Path, version: &str, same_modules: bool) -> Option<Kernel> {
    let dir = store.join(version);
    let stamp = std::fs::read_to_string(dir.join("complete")).ok()?;
    if same_modules && stamp != modules_stamp() {
        return None;
    }
    let mut modules: Vec<PathBuf> =
        std::fs::read_dir(dir.join("modules")).ok()?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    modules.sort();
    Some(Kernel {
        label: series.name.to_string(),
        version: version.to_string(),
        vmlinuz: dir.join("vmlinuz"),
        config: Some(dir.join("config")).filter(|p| p.is_file()),
        modules,
    })
}

/// The highest complete version in the cache.
fn newest_cached(series: &Series, store: &Path) -> Option<Kernel> {
    let mut versions: Vec<String> = std::fs::read_dir(store)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    versions.sort_by(|a, b| compare_versions(a, b));
    versions.iter().rev().find_map(|v| cached(series, store, v, false))
}

/// Removes cached versions other than `keep`: one kernel per series is enough.
fn prune(store: &Path, keep: &str) {
    for entry in std::fs::read_dir(store).into_iter().flatten().flatten() {
        if entry.file_name() != keep {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Downloads the packages, extracts what we need into the cache and deletes the rest.
fn download(series: &Series, apt: &AptList, store: &Path, version: &str) -> Result<Kernel> {
    tools::ensure(&[tools::XZ, tools::DPKG_DEB])?;
    eprintln!("xtask: downloading the {} kernel {version}", series.name);
    let work = store.join(format!("{version}.partial"));
    let _ = std::fs::remove_dir_all(&work);
    let debs = apt.download(&packages(series, version), &work.join("debs"))?;
    let out = work.join("kernel");
    kernel_unpack::unpack(&debs, &work.join("tree"), &out, TEST_MODULES)?;
    std::fs::write(out.join("packages"), packages(series, version).join("\n") + "\n")?;
    // Written last: a cache entry without it is an interrupted download.
    std::fs::write(out.join("complete"), modules_stamp())?;
    let dest = store.join(version);
    let _ = std::fs::remove_dir_all(&dest);
    std::fs::rename(&out, &dest)?;
    std::fs::remove_dir_all(&work)?;
    cached(series, store, version, true).context("the kernel vanished from the cache")
}

/// What the `complete` stamp of a cache entry holds: the test modules it was unpacked with,
/// so that adding one to `TEST_MODULES` refreshes the cache by itself.
fn modules_stamp() -> String {
    TEST_MODULES.iter().map(|m| format!("{m}\n")).collect()
}

/// `cargo xtask kernels`: fetches kernels and prints what the cache holds.
pub fn print_cache(specs: &[String], cache: &Path) -> Result<()> {
    for spec in specs {
        let kernel = resolve(spec, cache)?;
        let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
        let total: u64 = size(&kernel.vmlinuz)
            + kernel.config.as_deref().map_or(0, size)
            + kernel.modules.iter().map(|m| size(m)).sum::<u64>();
        println!(
            "{:<6} {:<22} {:>5.1} MB  {}",
            kernel.label,
            kernel.version,
            total as f64 / 1e6,
            kernel.vmlinuz.parent().unwrap_or(Path::new("")).display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically() {
        let mut v = vec!["6.12.99+deb13", "6.12.118+deb13", "6.12.115+deb13.1", "6.12.115+deb13", "6.12.9+deb13"];
        v.sort_by(|a, b| compare_versions(a, b));
        assert_eq!(v, ["6.12.9+deb13", "6.12.99+deb13", "6.12.115+deb13", "6.12.115+deb13.1", "6.12.118+deb13"]);
        assert_eq!(compare_versions("6.1.0-56", "6.1.0-9"), Ordering::Greater);
        assert_eq!(compare_versions("5.10.0-32", "5.10.0-32"), Ordering::Equal);
    }

    #[test]
    fn package_names() {
        let s612 = SERIES.iter().find(|s| s.name == "6.12").unwrap();
        assert_eq!(packages(s612, "6.12.118+deb13"), ["linux-image-6.12.118+deb13-amd64-unsigned"]);
        let s72 = SERIES.iter().find(|s| s.name == "7.2").unwrap();
        assert_eq!(
            packages(s72, "7.2.13+deb14"),
            ["linux-binary-7.2.13+deb14-amd64", "linux-base-7.2.13+deb14-amd64", "linux-modules-7.2.13+deb14-amd64"]
        );
    }
}
