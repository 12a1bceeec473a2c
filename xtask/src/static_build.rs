//! Statically linked builds of the test binaries and the CLI, to run inside the VMs, whose
//! initramfs has no shared libraries.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// Giving the target explicitly makes cargo apply RUSTFLAGS to the target only, so build
/// scripts and proc macros stay dynamic (a static build script would not run everywhere).
pub const TARGET: &str = "x86_64-unknown-linux-gnu";

/// Static glibc; DWARF stripped, which shrinks debug test binaries several times over while
/// keeping symbol names for backtraces.
const RUSTFLAGS: &str = "-C target-feature=+crt-static -C strip=debuginfo";

/// A test executable cargo built.
#[derive(Debug, Clone)]
pub struct TestBinary {
    /// `<package dir>.<target kind>.<target name>`, e.g. `testkit.test.vm_smoke`.
    pub name: String,
    /// Where cargo put it.
    pub path: PathBuf,
}

/// The cargo that runs us (cargo sets `CARGO` for `cargo run`).
pub fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// `cargo <subcommand> --target .. [--release]` with the static RUSTFLAGS; they replace any
/// of the user's, which would otherwise win over ours.
fn static_cargo(root: &Path, args: &[&str], release: bool) -> Command {
    let mut cmd = cargo();
    cmd.current_dir(root).env("RUSTFLAGS", RUSTFLAGS).env_remove("CARGO_ENCODED_RUSTFLAGS").args(args).args([
        "--message-format=json-render-diagnostics",
        "--target",
        TARGET,
    ]);
    if release {
        cmd.arg("--release");
    }
    cmd
}

/// Test executables that read no kernel state (captured listings, pure parsing): they ran
/// natively already, and under TCG they take minutes per kernel for nothing new.
const NATIVE_ONLY: &[&str] = &["multiprobe.test.listings"];

/// Builds every workspace test executable except xtask's (which only runs natively) and
/// the [`NATIVE_ONLY`] ones.
pub fn build_tests(root: &Path, release: bool) -> Result<Vec<TestBinary>> {
    let args = ["test", "--workspace", "--exclude", "xtask", "--no-run"];
    let cmd = static_cargo(root, &args, release);
    let mut tests = Vec::new();
    for artifact in artifacts(cmd)? {
        let is_test = artifact["profile"]["test"].as_bool() == Some(true);
        let Some(executable) = artifact["executable"].as_str() else {
            continue;
        };
        if !is_test {
            continue;
        }
        let package = Path::new(artifact["manifest_path"].as_str().unwrap_or(""))
            .parent()
            .and_then(|p| p.file_name())
            .map_or_else(|| "unknown".into(), |n| n.to_string_lossy().into_owned());
        let kind = artifact["target"]["kind"][0].as_str().unwrap_or("test");
        let target = artifact["target"]["name"].as_str().unwrap_or("unknown");
        let name = format!("{package}.{kind}.{target}");
        if NATIVE_ONLY.contains(&name.as_str()) {
            continue;
        }
        tests.push(TestBinary { name, path: PathBuf::from(executable) });
    }
    tests.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(tests)
}

/// Builds the `multiprobe` CLI and returns its path.
pub fn build_cli(root: &Path, release: bool) -> Result<PathBuf> {
    let cmd = static_cargo(root, &["build", "-p", "multiprobe-cli", "--bins"], release);
    artifacts(cmd)?
        .iter()
        .filter(|a| a["target"]["name"] == "multiprobe")
        .find_map(|a| a["executable"].as_str().map(PathBuf::from))
        .context("cargo built no `multiprobe` binary")
}

/// Runs a cargo command with JSON messages and returns its `compiler-artifact` messages;
/// diagnostics and progress go to the terminal as usual.
fn artifacts(mut cmd: Command) -> Result<Vec<serde_json::Value>> {
    let mut child = cmd.stdout(Stdio::piped()).spawn().context("running cargo")?;
    let mut out = Vec::new();
    for line in std::io::BufReader::new(child.stdout.take().unwrap()).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(&line?) else {
            continue;
        };
        if message["reason"] == "compiler-artifact" {
            out.push(message);
        }
    }
    if !child.wait()?.success() {
        bail!("the static build failed (see cargo's messages above)");
    }
    Ok(out)
}
