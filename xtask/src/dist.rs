//! `cargo xtask dist`: the release tarball (static binary, shell completions, man pages) with
//! its checksum; and the packaging check of `cargo xtask test`, which installs the CLI from
//! its packaged `.crate` offline, as a user of crates.io would build it.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};

use crate::static_build;

/// The crates published, library first (the CLI depends on it).
const PUBLISHED: &[&str] = &["multiprobe", "multiprobe-cli"];

/// Arguments of `cargo xtask dist`.
#[derive(Debug, clap::Args)]
pub struct DistArgs {}

/// Runs `cargo xtask dist`.
pub fn run(_args: &DistArgs) -> Result<()> {
    crate::tools::ensure(&[crate::tools::GROFF])?;
    let root = crate::workspace_root();
    let version = env!("CARGO_PKG_VERSION");
    let name = format!("multiprobe-{version}-{}", static_build::TARGET);
    let dist = crate::target_dir().join("dist");
    let stage = dist.join(&name);
    let _ = std::fs::remove_dir_all(&stage);
    for dir in ["bin", "man/man1", "completions"] {
        std::fs::create_dir_all(stage.join(dir))?;
    }
    let built = static_build::build_cli(&root, true)?;
    let bin = stage.join("bin/multiprobe");
    std::fs::copy(&built, &bin).with_context(|| format!("copying {}", built.display()))?;
    run_ok(Command::new(&bin).arg("--version"))?;
    for (shell, file) in [("bash", "multiprobe.bash"), ("zsh", "_multiprobe"), ("fish", "multiprobe.fish")] {
        let script = output(Command::new(&bin).args(["completions", shell]))?;
        std::fs::write(stage.join("completions").join(file), script)?;
    }
    let pages = man_pages(&bin, &stage.join("man/man1"))?;
    for file in ["README.md", "LICENSE-MIT", "LICENSE-APACHE", "docs/cli.md", "docs/install.md"] {
        let to = stage.join(Path::new(file).file_name().unwrap());
        std::fs::copy(root.join(file), to).with_context(|| format!("copying {file}"))?;
    }
    let tarball = format!("{name}.tar.gz");
    let _ = std::fs::remove_file(dist.join(&tarball));
    // Owner and times fixed so the tarball depends on its contents only.
    run_ok(Command::new("tar").current_dir(&dist).args([
        "--sort=name",
        "--owner=0",
        "--group=0",
        "--numeric-owner",
        "--mtime=@0",
        "-czf",
        &tarball,
        &name,
    ]))?;
    let sum = output(Command::new("sha256sum").current_dir(&dist).arg(&tarball))?;
    std::fs::write(dist.join(format!("{tarball}.sha256")), &sum)?;
    println!("dist: {} ({} man pages, 3 completion scripts)", dist.join(&tarball).display(), pages.len());
    println!("dist: {}", dist.join(format!("{tarball}.sha256")).display());
    Ok(())
}

/// Writes the man pages with the binary's hidden `man` subcommand and checks each renders.
fn man_pages(bin: &Path, dir: &Path) -> Result<Vec<PathBuf>> {
    run_ok(Command::new(bin).arg("man").arg(dir))?;
    let mut pages: Vec<PathBuf> = std::fs::read_dir(dir)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
    pages.sort();
    ensure!(pages.iter().any(|p| p.ends_with("multiprobe.1")), "no multiprobe.1 in {}", dir.display());
    ensure!(pages.len() >= 2, "no page per subcommand in {}", dir.display());
    for page in &pages {
        check_renders(page)?;
    }
    Ok(pages)
}

/// Renders a man page as `man -l` would, with groff's warnings on: any warning, or a page
/// without its NAME section, fails.
pub fn check_renders(page: &Path) -> Result<()> {
    let out = Command::new("groff")
        // -P-cbou: plain text, no overstrike, so the headings can be looked for.
        .args(["-man", "-Tutf8", "-ww", "-P-cbou"])
        .arg(page)
        .output()
        .context("running groff (apt-get install groff-base)")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() || !stderr.trim().is_empty() {
        bail!("{} does not render cleanly:\n{stderr}", page.display());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(text.contains("NAME") && text.contains("SYNOPSIS"), "{} renders without NAME/SYNOPSIS", page.display());
    Ok(())
}

/// The packaging check: `cargo package` of the published crates (offline, no verify build:
/// the install below is the build), each `.crate` unpacked, the CLI installed from its
/// unpacked crate with `cargo install --offline` against the unpacked library (not the
/// workspace: only what the `.crate` files hold is used), then `multiprobe --version` and its
/// man pages rendered. Returns a summary line.
pub fn package_check(root: &Path) -> Result<String> {
    let mut cmd = static_build::cargo();
    cmd.current_dir(root).args(["package", "--offline", "--allow-dirty", "--no-verify"]);
    for krate in PUBLISHED {
        cmd.args(["-p", krate]);
    }
    run_ok(&mut cmd)?;
    let version = env!("CARGO_PKG_VERSION");
    // Outside the workspace: cargo refuses a package under a workspace that does not list it.
    let work = std::env::temp_dir().join(format!("multiprobe-package-check-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(work.join("src"));
    std::fs::create_dir_all(work.join("src"))?;
    for krate in PUBLISHED {
        let file = crate::target_dir().join("package").join(format!("{krate}-{version}.crate"));
        run_ok(Command::new("tar").arg("-xzf").arg(&file).arg("-C").arg(work.join("src")))?;
    }
    let lib = work.join("src").join(format!("multiprobe-{version}"));
    let cli = work.join("src").join(format!("multiprobe-cli-{version}"));
    ensure!(cli.join("bpf/count.bpf.o").exists(), "the packaged CLI has no bpf/count.bpf.o");
    let install_root = work.join("root");
    let mut install = static_build::cargo();
    install
        .args(["install", "--offline", "--debug", "--force", "--path"])
        .arg(&cli)
        .arg("--root")
        .arg(&install_root)
        // crates.io has no multiprobe 0.1.0 of ours yet: the unpacked library stands in.
        .arg("--config")
        .arg(format!("patch.crates-io.multiprobe.path={:?}", lib.display().to_string()))
        // Its own target dir, kept between runs: no clash with the workspace's locks.
        .env("CARGO_TARGET_DIR", crate::target_dir().join("xtask/package-check"))
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    run_ok(&mut install)?;
    let bin = install_root.join("bin/multiprobe");
    let shown = output(Command::new(&bin).arg("--version"))?;
    ensure!(shown.trim() == format!("multiprobe {version}"), "`multiprobe --version` printed {shown:?}");
    let pages = man_pages(&bin, &work.join("man"))?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(format!("installed from the .crate offline: {}; {} man pages render", shown.trim(), pages.len()))
}

fn run_ok(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    ensure!(status.success(), "{cmd:?} failed ({status})");
    Ok(())
}

fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    ensure!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    /// The packaging check itself, natively (`cargo test -p xtask package`); it also runs as
    /// a step of `cargo xtask test`.
    #[test]
    #[ignore = "builds the CLI from its .crate (a minute); run by cargo xtask test"]
    fn package_installs_offline() {
        println!("{}", super::package_check(&crate::workspace_root()).unwrap());
    }

    #[test]
    fn a_broken_page_fails_the_render_check() {
        let dir = crate::target_dir().join("xtask/man-check-test");
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.1");
        std::fs::write(&good, ".TH GOOD 1\n.SH NAME\ngood \\- a page\n.SH SYNOPSIS\n\\fBgood\\fR\n").unwrap();
        super::check_renders(&good).unwrap();
        let bad = dir.join("bad.1");
        std::fs::write(&bad, ".TH BAD 1\n.SH NAME\nbad \\- a page\n.SH SYNOPSIS\n\\f(ZZbad\n.nosuchrequest\n").unwrap();
        assert!(super::check_renders(&bad).is_err());
    }
}
