//! Project automation for multiprobe: `cargo xtask <command>`.

mod apt;
mod bench;
mod bpf;
mod conformance_cmd;
mod corpus_cmd;
mod dist;
mod export_e2e;
mod fuzz_cmd;
mod guest;
mod initramfs;
mod kernel_unpack;
mod kernels;
mod qemu;
mod records;
mod skips;
mod static_build;
mod test_cmd;
mod tools;
mod vm_cmd;
mod vmtest;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "multiprobe's project automation")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Rebuild the BPF objects in bpf/ from their C sources (needs clang).
    Bpf(bpf::BpfArgs),
    /// Run every check and test: fmt, clippy, BPF objects, native tests, then the tests in a
    /// VM on each kernel of the matrix (docs/testing.md).
    Test(test_cmd::TestArgs),
    /// Run `multiprobe ARGS` (or a shell) in a throwaway VM.
    Vm(vm_cmd::VmArgs),
    /// Fuzz the parsers (objects, BTF, .BTF.ext, listing cache files) with libFuzzer
    /// (docs/testing.md).
    Fuzz(fuzz_cmd::FuzzArgs),
    /// Benchmark multiprobe against libbpf and the kernel floor in a VM (docs/benchmarks.md).
    Bench(bench::BenchArgs),
    /// Load every object of a directory with multiprobe and with libbpf 1.7 in a VM and
    /// compare, program by program (docs/corpus.md).
    Corpus(corpus_cmd::CorpusArgs),
    /// Build the release tarball under target/dist/: the static binary, shell completions and
    /// man pages, with a sha256 file (docs/install.md).
    Dist(dist::DistArgs),
    /// Fetch the test kernels (newest Debian build of each series) and show the cache.
    Kernels(KernelsArgs),
}

/// Arguments of `cargo xtask kernels`.
#[derive(Debug, clap::Args)]
struct KernelsArgs {
    /// Series to fetch (5.10, 6.1, 6.12, 7.2); repeatable; default: the test matrix.
    #[arg(long = "kernel", value_name = "K")]
    kernels: Vec<String>,
}

/// The workspace root (the directory holding the top Cargo.toml).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Cargo's target directory: `CARGO_TARGET_DIR` when set, else the workspace's `target/`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace_root().join(dir),
        None => workspace_root().join("target"),
    }
}

/// Parses `90`, `90s`, `15m` or `1h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => text.split_at(at),
        None => (text, "s"),
    };
    let n: u64 = number.parse().map_err(|_| format!("bad duration {text:?}"))?;
    let seconds = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("bad duration {text:?}: use s, m or h")),
    };
    Ok(Duration::from_secs(seconds))
}

fn main() {
    // Printed here rather than by returning the error from main: that would add anyhow's
    // backtrace whenever RUST_BACKTRACE is set, burying the message in CI logs.
    if let Err(e) = run(Cli::parse().command) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(command: Command) -> Result<()> {
    match command {
        Command::Bpf(args) => bpf::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Fuzz(args) => fuzz_cmd::run(&args),
        Command::Corpus(args) => corpus_cmd::run(&args),
        Command::Test(args) => test_cmd::run(&args),
        Command::Vm(args) => vm_cmd::run(&args),
        Command::Dist(args) => dist::run(&args),
        Command::Kernels(args) => {
            let specs: Vec<String> = if args.kernels.is_empty() {
                kernels::DEFAULT_MATRIX.iter().map(|s| s.to_string()).collect()
            } else {
                args.kernels
            };
            kernels::print_cache(&specs, &target_dir().join("vm"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("5d").is_err());
    }
}
