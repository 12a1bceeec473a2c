//! `cargo xtask fuzz`: builds the fuzz targets in `fuzz/` with libFuzzer and runs them from a
//! seed corpus made of every committed BPF object; a short run of each is a step of
//! `cargo xtask test`.
//!
//! Built on the stable toolchain: cargo-fuzz's coverage instrumentation is plain `-C` flags,
//! and libFuzzer comes with the `libfuzzer-sys` crate (compiled with the host's C++ compiler).
//! No sanitizer: the library is safe Rust outside `sys`, which the targets do not reach, so
//! panics, aborts, timeouts and the targets' own allocation bound are what is caught.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use object::{Object as _, ObjectSection};

use crate::static_build::{TARGET, cargo};
use crate::tools;

/// The fuzz targets (`fuzz/fuzz_targets/<name>.rs`).
pub const TARGETS: &[&str] = &["object", "btf", "btf_ext", "listing_file"];

/// Time per target in `cargo xtask test`.
pub const TEST_TIME: Duration = Duration::from_secs(15);

/// cargo-fuzz's instrumentation: libFuzzer's coverage counters and comparison tracing, the
/// `fuzzing` cfg, and overflow checks and debug assertions in the optimized build.
const RUSTFLAGS: &str = "-Cpasses=sancov-module \
    -Cllvm-args=-sanitizer-coverage-level=4 \
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
    -Cllvm-args=-sanitizer-coverage-pc-table \
    -Cllvm-args=-sanitizer-coverage-trace-compares \
    --cfg fuzzing -Cdebug-assertions -Coverflow-checks";

/// The key the listing cache seeds are written for (`multiprobe::fuzzing::LISTING_FILE_KEY`).
const LISTING_FILE_KEY: &[u8] = b"fuzz";

/// Arguments of `cargo xtask fuzz`.
#[derive(Debug, clap::Args)]
pub struct FuzzArgs {
    /// Targets to run (object, btf, btf_ext, listing_file); default: all, one after another.
    targets: Vec<String>,
    /// How long to run each target (s, m or h suffix).
    #[arg(long, default_value = "10m", value_parser = crate::parse_duration)]
    time: Duration,
    /// Fuzzing processes per target (libFuzzer's -fork).
    #[arg(long, default_value_t = 1)]
    jobs: u32,
}

/// Where everything lives: `target/fuzz/{build,seeds,corpus,artifacts,logs}`.
struct Dirs {
    work: PathBuf,
}

impl Dirs {
    fn new() -> Dirs {
        Dirs { work: crate::target_dir().join("fuzz") }
    }
    fn bin(&self, target: &str) -> PathBuf {
        self.work.join("build").join(TARGET).join("release").join(target)
    }
    fn sub(&self, what: &str, target: &str) -> PathBuf {
        self.work.join(what).join(target)
    }
}

/// What one target's run did.
struct Outcome {
    runs: u64,
    corpus: usize,
}

/// Runs `cargo xtask fuzz`.
pub fn run(args: &FuzzArgs) -> Result<()> {
    let root = crate::workspace_root();
    let targets: Vec<&str> = if args.targets.is_empty() {
        TARGETS.to_vec()
    } else {
        let unknown: Vec<&String> = args.targets.iter().filter(|t| !TARGETS.contains(&t.as_str())).collect();
        if !unknown.is_empty() {
            bail!("unknown fuzz target(s) {unknown:?}: the targets are {}", TARGETS.join(", "));
        }
        args.targets.iter().map(String::as_str).collect()
    };
    let dirs = Dirs::new();
    build(&root, &dirs)?;
    seed(&root, &dirs)?;
    for target in targets {
        let outcome = run_target(&dirs, target, args.time, args.jobs)?;
        println!("fuzz {target}: {} runs, corpus of {} inputs, no crash", outcome.runs, outcome.corpus);
    }
    Ok(())
}

/// The step of `cargo xtask test`: every target for [`TEST_TIME`]. Returns the summary line.
pub fn bounded(root: &Path) -> Result<String> {
    let dirs = Dirs::new();
    build(root, &dirs)?;
    seed(root, &dirs)?;
    let mut runs = 0;
    for target in TARGETS {
        let outcome = run_target(&dirs, target, TEST_TIME, 1)?;
        println!("fuzz {target}: {} runs in {}s, no crash", outcome.runs, TEST_TIME.as_secs());
        runs += outcome.runs;
    }
    Ok(format!("{} targets x {}s, {runs} runs, no crash", TARGETS.len(), TEST_TIME.as_secs()))
}

/// Builds every target, instrumented, into `target/fuzz/build`.
fn build(root: &Path, dirs: &Dirs) -> Result<()> {
    // libfuzzer-sys compiles libFuzzer's C++ sources.
    tools::ensure(&[tools::CXX])?;
    println!("fuzz: building the targets (instrumented, release)");
    let status = cargo()
        .current_dir(root.join("fuzz"))
        // With an explicit --target, RUSTFLAGS reach the targets only, not build scripts.
        // Not --locked: fuzz/Cargo.lock pins what it has, and a dependency the library
        // gains later is added to it rather than failing the step.
        .args(["build", "--release", "--bins", "--target", TARGET])
        .env("RUSTFLAGS", RUSTFLAGS)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env("CARGO_TARGET_DIR", dirs.work.join("build"))
        .status()
        .context("running cargo build for fuzz/")?;
    if !status.success() {
        bail!("building the fuzz targets failed ({status})");
    }
    Ok(())
}

/// Writes the seed corpus: every committed object whole (object), its `.BTF` (btf), its
/// `.BTF` and `.BTF.ext` (btf_ext), and cache files holding the head of the recorded
/// listings of 6.12 and 7.2 and made-up entry addresses (listing_file).
fn seed(root: &Path, dirs: &Dirs) -> Result<()> {
    for target in TARGETS {
        let dir = dirs.sub("seeds", target);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir)?;
    }
    let mut objects: Vec<PathBuf> = Vec::new();
    for dir in crate::bpf::object_dirs(root) {
        for entry in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            objects.push(entry?.path());
        }
    }
    objects.retain(|p| p.to_string_lossy().ends_with(".bpf.o"));
    objects.sort();
    for path in &objects {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        fs::write(dirs.sub("seeds", "object").join(&name), &bytes)?;
        let file = object::File::parse(&*bytes).with_context(|| format!("parsing {}", path.display()))?;
        let section = |s: &str| file.section_by_name(s).and_then(|s| s.data().ok());
        if let Some(btf) = section(".BTF") {
            fs::write(dirs.sub("seeds", "btf").join(&name), btf)?;
            if let Some(ext) = section(".BTF.ext") {
                let mut input = (btf.len() as u32).to_le_bytes().to_vec();
                input.extend_from_slice(btf);
                input.extend_from_slice(ext);
                fs::write(dirs.sub("seeds", "btf_ext").join(&name), input)?;
            }
        }
    }
    let listing_dir = dirs.sub("seeds", "listing_file");
    for kernel in ["6.12", "7.2"] {
        let path = root.join(format!("crates/multiprobe/tests/fixtures/affa-{kernel}.gz"));
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(fs::File::open(&path)?), &mut text)
            .with_context(|| format!("reading {}", path.display()))?;
        let head: String = text.lines().take(200).flat_map(|l| [l, "\n"]).collect();
        fs::write(listing_dir.join(format!("listing-{kernel}")), cache_file(head.as_bytes()))?;
    }
    // Entry addresses: sorted patch sites, each with its distance from the entry (0 or 4).
    let entries: Vec<u8> = (0..64u64)
        .flat_map(|i| {
            let site = 0xffff_ffff_8100_0000 + i * 0x40 + (i % 2) * 4;
            site.to_le_bytes().into_iter().chain([(i % 2 * 4) as u8])
        })
        .collect();
    fs::write(listing_dir.join("entries"), cache_file(&entries))?;
    Ok(())
}

/// A per-boot cache file as `crates/multiprobe/src/kprobe_multi/cache/file.rs` writes it:
/// magic, key length (u32 LE), data length (u64 LE), key, data. The library's
/// `fuzzing::tests` check that it reads this layout.
fn cache_file(data: &[u8]) -> Vec<u8> {
    let mut out = b"multiprobe cache v2\n".to_vec();
    out.extend_from_slice(&(LISTING_FILE_KEY.len() as u32).to_le_bytes());
    out.extend_from_slice(&(data.len() as u64).to_le_bytes());
    out.extend_from_slice(LISTING_FILE_KEY);
    out.extend_from_slice(data);
    out
}

/// Runs one target for `time`; fails on a crash, naming the input that caused it and how
/// to reproduce it.
fn run_target(dirs: &Dirs, target: &str, time: Duration, jobs: u32) -> Result<Outcome> {
    let (corpus, artifacts, logs) = (dirs.sub("corpus", target), dirs.sub("artifacts", target), dirs.work.join("logs"));
    for dir in [&corpus, &artifacts, &logs] {
        fs::create_dir_all(dir)?;
    }
    let log = logs.join(format!("{target}.log"));
    let bin = dirs.bin(target);
    println!("fuzz {target}: running for {}s (log: {})", time.as_secs(), log.display());
    let started = Instant::now();
    let mut cmd = Command::new(&bin);
    cmd.arg(format!("-max_total_time={}", time.as_secs()))
        // An input that takes a second is a hang to look at, not a slow parser.
        .arg("-timeout=10")
        .arg("-rss_limit_mb=2048")
        .arg("-print_final_stats=1")
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg(&corpus)
        .arg(dirs.sub("seeds", target))
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log)?);
    if jobs > 1 {
        cmd.arg(format!("-fork={jobs}"));
    }
    let status = cmd.status().with_context(|| format!("running {}", bin.display()))?;
    let text = fs::read_to_string(&log).unwrap_or_default();
    if !status.success() {
        let crash = text
            .lines()
            .find_map(|l| l.split_once("Test unit written to ").map(|(_, p)| p.trim().to_string()))
            .unwrap_or_else(|| format!("(see {})", log.display()));
        let reason = text
            .lines()
            .find(|l| l.contains("panicked at") || l.contains("memory allocation of") || l.contains("ERROR: libFuzzer"))
            .unwrap_or("")
            .trim();
        bail!(
            "fuzz target {target} failed after {:.0}s ({status}): {reason}\n  input: {crash}\n  \
             reproduce: {} {crash}\n  minimize: {} -minimize_crash=1 -runs=10000 {crash}\n  \
             then add the minimized input as a regression test (docs/testing.md, Fuzzing)",
            started.elapsed().as_secs_f64(),
            bin.display(),
            bin.display(),
        );
    }
    let stat = |name: &str| {
        text.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse::<u64>().ok())).unwrap_or(0)
    };
    let runs = stat("stat::number_of_executed_units:");
    let corpus = fs::read_dir(&corpus).map(|d| d.count()).unwrap_or(0);
    Ok(Outcome { runs, corpus })
}
