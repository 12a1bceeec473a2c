//! Project automation for multiprobe: `cargo xtask <command>`.

mod apt;
mod bpf;
mod kernel_unpack;
mod kernels;
mod tools;

use std::path::PathBuf;

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
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Cargo's target directory: `CARGO_TARGET_DIR` when set, else the workspace's `target/`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace_root().join(dir),
        None => workspace_root().join("target"),
    }
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
        Command::Kernels(args) => {
            let specs: Vec<String> = if args.kernels.is_empty() {
                kernels::DEFAULT_MATRIX
                    .iter()
                    .map(|s| s.to_string())
                    .collect()
            } else {
                args.kernels
            };
            kernels::print_cache(&specs, &target_dir().join("vm"))
        }
    }
}
