//! Unpacking Debian kernel packages: only `vmlinuz`, the config and the test modules leave
//! the `.deb`s, modules decompressed to plain `.ko` for busybox `insmod`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// Extracts the kernel image, its config and the `modules` (paths under `kernel/` without
/// `.ko`) from the packages into `out` as `vmlinuz`, `config` and `modules/<name>.ko`,
/// using `tree` as scratch space.
pub fn unpack(debs: &[PathBuf], tree: &Path, out: &Path, modules: &[&str]) -> Result<()> {
    std::fs::create_dir_all(tree)?;
    // Both layouts: linux-image (boot/) and linux-binary/linux-base (usr/lib/modules/VER/).
    let mut patterns = vec![
        "./boot/vmlinuz-*".to_string(),
        "./boot/config-*".to_string(),
        "./usr/lib/modules/*/vmlinuz".to_string(),
        "./usr/lib/modules/*/config".to_string(),
    ];
    patterns.extend(modules.iter().map(|m| format!("*/kernel/{m}.ko*")));
    for deb in debs {
        extract(deb, tree, &patterns)?;
    }
    let files = walk(tree);
    let find = |name: &str, prefix: &str| {
        files.iter().find(|p| {
            let file = p.file_name().unwrap_or_default().to_string_lossy();
            file == name || file.starts_with(prefix)
        })
    };
    std::fs::create_dir_all(out.join("modules"))?;
    let vmlinuz = find("vmlinuz", "vmlinuz-").context("no vmlinuz in the packages")?;
    std::fs::rename(vmlinuz, out.join("vmlinuz"))?;
    let config = find("config", "config-").context("no kernel config in the packages")?;
    std::fs::rename(config, out.join("config"))?;
    for module in modules {
        let name = module.rsplit('/').next().unwrap_or(module);
        let plain = format!("{module}.ko");
        let xz = format!("{module}.ko.xz");
        let dest = out.join("modules").join(format!("{name}.ko"));
        if let Some(ko) = files.iter().find(|p| p.ends_with(&plain)) {
            std::fs::rename(ko, &dest)?;
        } else if let Some(ko) = files.iter().find(|p| p.ends_with(&xz)) {
            unxz(ko, &dest)?;
        } else {
            // Built in (=y) or not built: nothing to load.
            eprintln!("xtask: note: the kernel packages have no {plain}");
        }
    }
    Ok(())
}

/// Extracts the members matching the shell patterns from a `.deb` (dpkg-deb | tar), so the
/// hundreds of megabytes of modules we do not need never reach the disk.
fn extract(deb: &Path, into: &Path, patterns: &[String]) -> Result<()> {
    let mut dpkg = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(deb)
        .stdout(Stdio::piped())
        .spawn()
        .context("running dpkg-deb")?;
    let tar = Command::new("tar")
        .args(["-x", "--wildcards", "-C"])
        .arg(into)
        .args(patterns)
        .stdin(dpkg.stdout.take().unwrap())
        .stderr(Stdio::piped())
        .output()
        .context("running tar")?;
    if !dpkg.wait()?.success() {
        bail!("dpkg-deb --fsys-tarfile {} failed", deb.display());
    }
    // tar fails when a pattern matches nothing, which is expected: each package holds only
    // some of the files. Any other complaint is real.
    let stderr = String::from_utf8_lossy(&tar.stderr);
    let real: Vec<_> =
        stderr.lines().filter(|l| !l.contains("Not found in archive") && !l.contains("previous errors")).collect();
    if !real.is_empty() {
        bail!("extracting {}: {}", deb.display(), real.join("\n"));
    }
    Ok(())
}

fn unxz(source: &Path, dest: &Path) -> Result<()> {
    let out = std::fs::File::create(dest)?;
    let status = Command::new("xz").arg("-dc").arg(source).stdout(out).status().context("running xz")?;
    if !status.success() {
        bail!("xz -d {} failed", source.display());
    }
    Ok(())
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
