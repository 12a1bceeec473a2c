//! Project automation for multiprobe: `cargo xtask <command>`.

mod bpf;
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
}

/// The workspace root (the directory holding the top Cargo.toml).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Bpf(args) => bpf::run(&args),
    }
}
