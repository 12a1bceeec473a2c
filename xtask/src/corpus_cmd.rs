//! `cargo xtask corpus`: the differential load test against libbpf 1.7 (docs/corpus.md).
//!
//! Every `*.o` of a directory (default: the committed `bpf/`) is loaded by multiprobe and by
//! libbpf in one VM boot per kernel, by the benchmark crate's `corpus` subcommand
//! (bench/src/corpus.rs), which shares libbpf-sys with `cargo xtask bench`. The objects,
//! with the directory's `corpus.settings` and `corpus.allow`, ride in a second cpio archive
//! appended to the VM's initramfs (the kernel unpacks concatenated archives in turn). The
//! records come back over the console; we write `target/corpus/<kernel>.json` and `.md`.
//! The run fails when a program libbpf loads fails in multiprobe without an allow-list
//! reason. `cargo xtask test` runs it over `bpf/` on 6.12 and 7.2 (`test_step`).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::guest::{self, Guest};
use crate::initramfs::Initramfs;
use crate::kernels::{self, Kernel};
use crate::qemu::Vm;
use crate::records;
use crate::static_build::{self, TestBinary};
use crate::tools::{self, Tool};

const BEGIN: &str = "MPCORPUS-BEGIN";
const LINE: &str = "MPCORPUS ";
const END: &str = "MPCORPUS-END";
const EXIT: &str = "MPCORPUS-EXIT ";

/// What libbpf-sys's build of libbpf needs, as for `cargo xtask bench`: make, a C compiler,
/// pkg-config, and libelf and zlib to link statically.
const LIBBPF_BUILD: [Tool; 5] = [
    Tool { command: "/usr/lib/x86_64-linux-gnu/libelf.a", package: "libelf-dev" },
    Tool { command: "/usr/lib/x86_64-linux-gnu/libz.a", package: "zlib1g-dev" },
    Tool { command: "make", package: "make" },
    Tool { command: "cc", package: "gcc" },
    Tool { command: "pkg-config", package: "pkgconf" },
];

/// The kernels `cargo xtask test` runs the corpus on: those with kprobe_multi and BPF
/// tracing programs in every form the objects use (6.1's verifier refuses some on its own).
pub const TEST_KERNELS: &[&str] = &["6.12", "7.2"];

/// Arguments of `cargo xtask corpus`.
#[derive(Debug, clap::Args)]
pub struct CorpusArgs {
    /// Directory of BPF objects (`*.o`), with its optional `corpus.settings` and
    /// `corpus.allow` (default: the committed bpf/).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Kernel to boot (5.10, 6.1, 6.12, 7.2 or a vmlinuz path); repeatable; default 6.12.
    #[arg(long = "kernel", value_name = "K")]
    kernels: Vec<String>,
    /// Settings file (default: DIR/corpus.settings when present).
    #[arg(long, value_name = "FILE")]
    settings: Option<PathBuf>,
    /// Allow-list file (default: DIR/corpus.allow when present).
    #[arg(long, value_name = "FILE")]
    allow: Option<PathBuf>,
    /// Timed loads per loader and object.
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Only objects whose file name contains SUBSTR.
    #[arg(long, value_name = "SUBSTR")]
    filter: Option<String>,
    /// Time limit per kernel (s, m or h suffix).
    #[arg(long, default_value = "30m", value_parser = crate::parse_duration)]
    timeout: Duration,
    /// Keep the initramfs and the console log.
    #[arg(long)]
    keep: bool,
}

/// What one kernel's run found.
pub struct Outcome {
    /// The markdown table.
    pub table: String,
    /// Programs libbpf loads that multiprobe refused without an allow-list reason.
    pub unexcused: Vec<(String, String, String)>,
    /// Objects and programs (for the summary line).
    pub objects: usize,
    /// Programs loaded by libbpf and by multiprobe, of all.
    pub loaded: (usize, usize, usize),
}

/// Runs `cargo xtask corpus`.
pub fn run(args: &CorpusArgs) -> Result<()> {
    let root = crate::workspace_root();
    let dir = args.dir.clone().unwrap_or_else(|| root.join("bpf"));
    let specs = if args.kernels.is_empty() { vec!["6.12".to_string()] } else { args.kernels.clone() };
    let bin = build(&root)?;
    let mut failed = Vec::new();
    for spec in &specs {
        let kernel = kernels::resolve(spec, &crate::target_dir().join("vm"))?;
        eprintln!("xtask: corpus of {} on {} ({})", dir.display(), kernel.label, kernel.version);
        let outcome = run_kernel(&kernel, &bin, &dir, args)?;
        println!("{}", outcome.table);
        if !outcome.unexcused.is_empty() {
            failed.push(kernel.label.clone());
        }
    }
    if !failed.is_empty() {
        bail!("multiprobe refused programs libbpf loads, on {} (see the tables above)", failed.join(", "));
    }
    Ok(())
}

/// Builds the runner (the benchmark crate, static, with libbpf) in the `corpus` profile
/// (bench/Cargo.toml: release without LTO, quicker to rebuild), after checking the host has
/// what libbpf's build needs.
pub fn build(root: &Path) -> Result<PathBuf> {
    tools::ensure(&[tools::QEMU, tools::BUSYBOX, tools::XZ, tools::DPKG_DEB])?;
    tools::ensure(&LIBBPF_BUILD)?;
    let target_dir = crate::target_dir().join("bench-build");
    let status = static_build::cargo()
        .current_dir(root.join("bench"))
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        // libbpf-sys links libelf and zlib statically from here (Debian's multiarch path).
        .env("LIBBPF_SYS_LIBRARY_PATH", Path::new(LIBBPF_BUILD[0].command).parent().unwrap())
        .args(["build", "--profile", "corpus", "--locked", "--target", static_build::TARGET, "--target-dir"])
        .arg(&target_dir)
        .status()
        .context("running cargo build for bench/")?;
    if !status.success() {
        bail!("building bench/ failed (see cargo's messages above)");
    }
    Ok(target_dir.join(static_build::TARGET).join("corpus").join("multiprobe-bench"))
}

/// `cargo xtask test`'s step on one kernel: the committed objects; a summary line, or an
/// error naming every program multiprobe refused.
pub fn test_step(bin: &Path, kernel: &Kernel) -> Result<String> {
    let root = crate::workspace_root();
    let args = CorpusArgs {
        dir: None,
        kernels: Vec::new(),
        settings: None,
        allow: None,
        // One timed load per loader: CI checks the verdicts; `cargo xtask corpus` measures.
        reps: 1,
        filter: None,
        timeout: Duration::from_secs(600),
        keep: false,
    };
    let outcome = run_kernel(kernel, bin, &root.join("bpf"), &args)?;
    let (all, lb, mp) = outcome.loaded;
    let line = format!("{} objects: libbpf loads {lb} of {all} programs, multiprobe {mp}", outcome.objects);
    if !outcome.unexcused.is_empty() {
        println!("{}", outcome.table);
        let list: Vec<String> = outcome.unexcused.iter().map(|(o, p, e)| format!("{o} {p}: {e}")).collect();
        bail!("{line}; multiprobe refused what libbpf loads:\n  {}", list.join("\n  "));
    }
    Ok(line)
}

/// The settings and allow-list files: given, or found beside the objects.
fn input_files(dir: &Path, args: &CorpusArgs) -> Result<Vec<(&'static str, PathBuf)>> {
    let mut out = Vec::new();
    for (name, given) in [("corpus.settings", &args.settings), ("corpus.allow", &args.allow)] {
        let path = match given {
            Some(p) => p.clone(),
            None if dir.join(name).exists() => dir.join(name),
            None => continue,
        };
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        // Checked here, not minutes later in the VM.
        let parsed = if name == "corpus.settings" {
            corpus_format::settings::parse_settings(&text).map(|_| ())
        } else {
            corpus_format::settings::parse_allow(&text).map(|_| ())
        };
        parsed.map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        out.push((name, path));
    }
    Ok(out)
}

/// One boot: the runner over the objects of `dir`.
fn run_kernel(kernel: &Kernel, bin: &Path, dir: &Path, args: &CorpusArgs) -> Result<Outcome> {
    // The committed objects are split between bpf/ and the CLI crate (bpf.rs): the default
    // corpus takes both.
    let root = crate::workspace_root();
    let dirs = if dir == root.join("bpf") { crate::bpf::object_dirs(&root).to_vec() } else { vec![dir.to_path_buf()] };
    let mut objects: Vec<PathBuf> = Vec::new();
    for d in &dirs {
        let entries = std::fs::read_dir(d).with_context(|| format!("reading {}", d.display()))?;
        objects.extend(
            entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "o")),
        );
    }
    objects.sort();
    if objects.is_empty() {
        bail!("no *.o files in {}", dir.display());
    }
    let inputs = input_files(dir, args)?;
    let work = crate::target_dir().join("vm");
    let run_dir = work.join("run").join(format!("corpus-{}", kernel.label));
    let initramfs = run_dir.join("initramfs.cpio.gz");
    let tests = [TestBinary { name: "multiprobe-bench".into(), path: bin.to_path_buf() }];
    let mut argv = vec!["corpus".to_string(), "/corpus".into(), "--reps".into(), args.reps.to_string()];
    argv.push("--no-table".into());
    if let Some(f) = &args.filter {
        argv.extend(["--filter".to_string(), f.clone()]);
    }
    let argv: Vec<String> = argv.iter().map(|a| guest::shell_quote(a)).collect();
    let mut init = guest::init_preamble(kernel);
    init.push_str(&format!("/tests/multiprobe-bench {} </dev/null\necho \"{EXIT}$?\"\npoweroff -f\n", argv.join(" ")));
    let guest = Guest {
        kernel,
        multiprobe: None,
        tests: &tests,
        init,
        scripts: Vec::new(),
        net_modules: Vec::new(),
        host_files: Vec::new(),
    };
    guest.write_initramfs(&initramfs)?;
    // The objects: a second archive appended to the first.
    let mut extra = Initramfs::new();
    extra.dirs(&["/corpus"])?;
    for path in &objects {
        extra.copy(&format!("/corpus/{}", path.file_name().unwrap().to_string_lossy()), path)?;
    }
    for (name, path) in &inputs {
        extra.copy(&format!("/corpus/{name}"), path)?;
    }
    let mut file = std::fs::OpenOptions::new().append(true).open(&initramfs)?;
    file.write_all(&extra.finish()?)?;
    drop(file);

    let vm = Vm {
        vmlinuz: kernel.vmlinuz.clone(),
        initramfs,
        append: Vec::new(),
        timeout: args.timeout,
        inactivity: Duration::from_secs(300),
        log: work.join("logs").join(format!("corpus-{}.log", kernel.label)),
        done_marker: EXIT.to_string(),
        forwards: Vec::new(),
    };
    let prefix = format!("[{}] ", kernel.label);
    let markers = records::Markers { begin: BEGIN, line: LINE, end: END, exit: EXIT };
    let (records, exit) = records::collect(&vm, &markers, "corpus", &prefix)?;
    if !args.keep {
        let _ = std::fs::remove_dir_all(&run_dir);
        let _ = std::fs::remove_file(&vm.log);
    }
    let out_dir = crate::target_dir().join("corpus");
    std::fs::create_dir_all(&out_dir)?;
    std::fs::write(out_dir.join(format!("{}.json", kernel.label)), serde_json::to_string_pretty(&records)?)?;
    let table = corpus_format::table::markdown(&records);
    std::fs::write(out_dir.join(format!("{}.md", kernel.label)), &table)?;
    eprintln!("xtask: wrote {}/{}.json and .md", out_dir.display(), kernel.label);
    let unexcused = corpus_format::table::unexcused(&records);
    // The runner says the same with its exit code; a mismatch means lost records.
    let expected = if unexcused.is_empty() { 0 } else { 1 };
    if exit != Some(expected) {
        bail!(
            "the corpus runner exited with {} where its records say {expected} (an error of its own, or lost \
             records); run `cargo xtask corpus --keep` and read target/vm/logs/corpus-{}.log",
            exit.map_or("no status".to_string(), |c| c.to_string()),
            kernel.label
        );
    }
    let programs: Vec<&Value> = records.iter().filter_map(|r| r["programs"].as_array()).flatten().collect();
    let count = |imp: &str| programs.iter().filter(|p| p[format!("{imp}_error")].is_null()).count();
    Ok(Outcome {
        table,
        unexcused,
        objects: records.iter().filter(|r| r.get("object").is_some()).count(),
        loaded: (programs.len(), count("libbpf"), count("multiprobe")),
    })
}
