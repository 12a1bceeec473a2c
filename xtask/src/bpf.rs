//! `cargo xtask bpf`: rebuild the committed BPF objects from `bpf/*.bpf.c`, or check that
//! every committed object still matches its source.
//!
//! Objects are committed so that users and CI need no clang to build the library or the CLI.
//! The price is drift: a source edited without a rebuild. `--check` rebuilds into a temporary
//! directory and compares everything the loader reads (every section's bytes, relocations and
//! symbols); DWARF is stripped at build time, so paths of the build machine never get in.
//!
//! Every source stays in `bpf/`; the objects the CLI embeds go to the CLI crate
//! ([`CLI_OBJECTS`], [`CLI_OBJECT_DIR`]) so that its published `.crate` holds them: a path
//! outside the crate does not exist once it is packaged.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use object::{Object, ObjectSection, ObjectSymbol};

use crate::tools;

/// Arguments of `cargo xtask bpf`.
#[derive(Debug, clap::Args)]
pub struct BpfArgs {
    /// Do not write anything: fail if a committed object differs from a fresh build.
    #[arg(long)]
    pub check: bool,
}

/// Runs `cargo xtask bpf`.
pub fn run(args: &BpfArgs) -> Result<()> {
    let root = crate::workspace_root();
    if args.check { check_objects_up_to_date(&root) } else { build_all(&root) }
}

/// The objects `multiprobe-cli` embeds with `include_bytes!`, by source stem: they are written
/// to [`CLI_OBJECT_DIR`], every other object to `bpf/`. A new CLI program adds its stem here.
pub const CLI_OBJECTS: &[&str] = &["breakdown", "count", "latency", "trace"];

/// Where the CLI's objects live, relative to the workspace root.
pub const CLI_OBJECT_DIR: &str = "crates/multiprobe-cli/bpf";

/// The directories holding committed objects: `bpf/` and the CLI's.
pub fn object_dirs(root: &Path) -> [PathBuf; 2] {
    [root.join("bpf"), root.join(CLI_OBJECT_DIR)]
}

/// Where the object built from `source` is committed, relative to the workspace root.
fn object_path(source: &Path) -> PathBuf {
    let name = object_name(source);
    let stem = name.strip_suffix(".bpf.o").unwrap_or(&name);
    let dir = if CLI_OBJECTS.contains(&stem) { CLI_OBJECT_DIR } else { "bpf" };
    Path::new(dir).join(name)
}

/// The BPF C sources: every `bpf/*.bpf.c`, sorted.
fn sources(root: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root.join("bpf")).context("reading bpf/")? {
        let path = entry?.path();
        if path.to_string_lossy().ends_with(".bpf.c") {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// `bpf/x.bpf.c` -> `x.bpf.o`
fn object_name(source: &Path) -> String {
    let name = source.file_name().unwrap().to_string_lossy();
    format!("{}.o", name.strip_suffix(".c").unwrap())
}

fn build_all(root: &Path) -> Result<()> {
    tools::ensure(&[tools::CLANG, tools::LLVM_STRIP])?;
    for source in sources(root)? {
        let out = root.join(object_path(&source));
        compile(root, &source, &out)?;
        println!("built {}", out.strip_prefix(root).unwrap_or(&out).display());
    }
    Ok(())
}

/// Fails, naming each stale object and the section that differs, when a committed object no
/// longer matches what its source compiles to.
pub fn check_objects_up_to_date(root: &Path) -> Result<()> {
    tools::ensure(&[tools::CLANG, tools::LLVM_STRIP])?;
    let tmp = root.join("target/xtask/bpf-check");
    std::fs::create_dir_all(&tmp)?;
    let mut stale = Vec::new();
    for source in sources(root)? {
        let rel = object_path(&source);
        let fresh = tmp.join(object_name(&source));
        compile(root, &source, &fresh)?;
        let Ok(committed_bytes) = std::fs::read(root.join(&rel)) else {
            stale.push(format!("{}: missing (run `cargo xtask bpf` and commit it)", rel.display()));
            continue;
        };
        let fresh_bytes = std::fs::read(&fresh)?;
        if let Some(difference) = compare(&committed_bytes, &fresh_bytes)? {
            stale.push(format!("{}: {difference}", rel.display()));
        }
    }
    if stale.is_empty() {
        println!("bpf: every committed object matches its source");
        return Ok(());
    }
    bail!(
        "committed BPF objects are out of date with their sources:\n  {}\n\
         run `cargo xtask bpf` and commit the objects (built with {})",
        stale.join("\n  "),
        tools::clang_version().unwrap_or_else(|| "clang".into()),
    )
}

/// Compiles one source the way every object in `bpf/` is built. Relative paths and the prefix
/// map keep the build machine's directory out of the BTF line info, so builds are reproducible.
fn compile(root: &Path, source: &Path, out: &Path) -> Result<()> {
    let rel = source.strip_prefix(root).unwrap_or(source);
    let status = Command::new("clang")
        .current_dir(root)
        .args(["-O2", "-g", "-target", "bpf", "-mcpu=v3", "-D__TARGET_ARCH_x86"])
        .args(["-Wall", "-Werror", "-Ibpf/include"])
        .arg(format!("-fdebug-prefix-map={}=.", root.display()))
        .arg("-c")
        .arg(rel)
        .arg("-o")
        .arg(out)
        .status()
        .context("running clang")?;
    if !status.success() {
        bail!("clang failed on {}", rel.display());
    }
    // DWARF is for debuggers; the loader needs .BTF and .BTF.ext, which -g keeps.
    let status = Command::new("llvm-strip").arg("-g").arg(out).status().context("running llvm-strip")?;
    if !status.success() {
        bail!("llvm-strip failed on {}", out.display());
    }
    Ok(())
}

/// A section as compared: name, contents, relocations.
type SectionView = (String, Vec<u8>, Vec<String>);

/// Compares what the loader reads from two objects; `None` when they agree.
fn compare(committed: &[u8], fresh: &[u8]) -> Result<Option<String>> {
    let a = object::File::parse(committed).context("parsing the committed object")?;
    let b = object::File::parse(fresh).context("parsing the fresh build")?;
    let sections = |f: &object::File| -> Result<Vec<SectionView>> {
        let mut out = Vec::new();
        for s in f.sections() {
            let relocs = s
                .relocations()
                .map(|(off, r)| format!("{off}:{:?}:{:?}:{}", r.kind(), r.target(), r.addend()))
                .collect();
            out.push((s.name()?.to_string(), s.data()?.to_vec(), relocs));
        }
        Ok(out)
    };
    let (sa, sb) = (sections(&a)?, sections(&b)?);
    let names = |v: &[SectionView]| v.iter().map(|s| s.0.clone()).collect::<Vec<_>>();
    if names(&sa) != names(&sb) {
        return Ok(Some(format!("sections differ: {:?} vs {:?}", names(&sa), names(&sb))));
    }
    for (x, y) in sa.iter().zip(&sb) {
        if x.1 != y.1 {
            return Ok(Some(format!("section {} has different contents", x.0)));
        }
        if x.2 != y.2 {
            return Ok(Some(format!("section {} has different relocations", x.0)));
        }
    }
    let symbols = |f: &object::File| -> Vec<String> {
        f.symbols()
            .map(|s| format!("{}:{}:{}:{:?}", s.name().unwrap_or(""), s.address(), s.size(), s.section()))
            .collect()
    };
    if symbols(&a) != symbols(&b) {
        return Ok(Some("symbol tables differ".into()));
    }
    Ok(None)
}
