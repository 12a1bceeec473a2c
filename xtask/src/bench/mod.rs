//! `cargo xtask bench`: multiprobe against libbpf 1.7 and the kernel floor, and the shipped
//! CLI, in two VM boots per kernel (the library's parts, then the CLI's; docs/benchmarks.md).
//!
//! The benchmark (`bench/`, a crate outside the workspace so that the workspace's builds
//! never compile libbpf's C code) is built static, runs as the VM's only program and prints
//! JSON lines between sentinels; we collect them and write `target/bench/<kernel>.json`
//! (raw samples, statistics, targets) and `target/bench/<kernel>.md` (the tables).
//!
//! Here: the command and its arguments; vm.rs builds the benchmark and runs it in a VM;
//! records.rs types what it prints; report.rs, targets.rs and the table files render it.

mod attach_tables;
mod call_tables;
mod markdown;
mod records;
mod report;
mod targets;
#[cfg(test)]
mod tests;
mod vm;

use std::time::Duration;

use anyhow::{Result, bail};

use self::records::Host;
use self::report::Report;
use crate::kernels;
use crate::static_build;
use crate::tools::{self, Tool};

/// libbpf-sys builds libbpf from its vendored sources (make, a C compiler) and links libelf
/// and zlib statically.
const LIBELF_A: Tool = Tool { command: "/usr/lib/x86_64-linux-gnu/libelf.a", package: "libelf-dev" };
const LIBZ_A: Tool = Tool { command: "/usr/lib/x86_64-linux-gnu/libz.a", package: "zlib1g-dev" };
const MAKE: Tool = Tool { command: "make", package: "make" };
const CC: Tool = Tool { command: "cc", package: "gcc" };
const PKG_CONFIG: Tool = Tool { command: "pkg-config", package: "pkgconf" };

/// Arguments of `cargo xtask bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Kernel to boot (6.12, 7.2 or a vmlinuz path); repeatable; default 6.12.
    #[arg(long = "kernel", value_name = "K")]
    kernels: Vec<String>,
    /// Repetitions of each small measurement (default 9).
    #[arg(long)]
    reps: Option<usize>,
    /// Repetitions of the "all functions" attaches (default 3; each takes ~20 s per
    /// implementation under emulation).
    #[arg(long)]
    all_reps: Option<usize>,
    /// Syscalls per per-call-overhead sample (default 300000).
    #[arg(long)]
    calls: Option<u64>,
    /// Leave out the "all functions" cases and the CLI runs (`count '*'`, `latency '*'`).
    #[arg(long)]
    no_all: bool,
    /// Run only these parts (comma-separated, one boot): load, attach (listing, patterns,
    /// prototypes), per-call, all (every function), cli, trace (the CLI's trace against
    /// count); for working on one of them.
    #[arg(long, value_name = "PARTS")]
    only: Option<String>,
    /// Two repetitions, one "all", fewer syscalls: a smoke run of the whole benchmark.
    #[arg(long)]
    quick: bool,
    /// Time limit per kernel (s, m or h suffix).
    #[arg(long, default_value = "30m", value_parser = crate::parse_duration)]
    timeout: Duration,
    /// Keep the initramfs and the console log.
    #[arg(long)]
    keep: bool,
}

impl BenchArgs {
    fn bench_argv(&self) -> Vec<String> {
        let mut v = Vec::new();
        if self.quick {
            v.push("--quick".to_string());
        }
        for (flag, value) in [
            ("--reps", self.reps.map(|n| n as u64)),
            ("--all-reps", self.all_reps.map(|n| n as u64)),
            ("--calls", self.calls),
        ] {
            if let Some(n) = value {
                v.extend([flag.to_string(), n.to_string()]);
            }
        }
        if self.no_all {
            v.push("--no-all".to_string());
        }
        v
    }

    /// The bench's arguments for each boot. A full run takes two: the library's parts, then
    /// the CLI's. Each attach or detach of every function patches 40,000+ call sites, which
    /// now and then kills an emulated kernel (see `run`); two shorter boots lose less to a
    /// crash, and neither part's numbers are compared with the other's.
    fn boots(&self) -> Vec<Vec<String>> {
        let base = self.bench_argv();
        let with = |parts: &str| [base.clone(), vec!["--only".to_string(), parts.to_string()]].concat();
        match &self.only {
            Some(parts) => vec![with(parts)],
            None if self.no_all => vec![base],
            None => vec![with("load,attach,per-call,all"), with("cli,trace")],
        }
    }
}

/// Runs `cargo xtask bench`.
pub fn run(args: &BenchArgs) -> Result<()> {
    tools::ensure(&[tools::QEMU, tools::BUSYBOX, tools::XZ, tools::DPKG_DEB])?;
    tools::ensure(&[LIBELF_A, LIBZ_A, MAKE, CC, PKG_CONFIG])?;
    let root = crate::workspace_root();
    let bin = vm::build(&root)?;
    // The shipped CLI too: the benchmark runs `multiprobe count '*'` for its own attach time
    // and peak memory.
    let cli = static_build::build_cli(&root, true)?;
    let work = crate::target_dir().join("vm");
    let out_dir = crate::target_dir().join("bench");
    std::fs::create_dir_all(&out_dir)?;
    let specs = if args.kernels.is_empty() { vec!["6.12".to_string()] } else { args.kernels.clone() };
    for spec in &specs {
        let kernel = kernels::resolve(spec, &work)?;
        eprintln!("xtask: benchmarking on {} ({})", kernel.label, kernel.version);
        let load_before = loadavg();
        let mut records = Vec::new();
        for argv in args.boots() {
            // Emulated kernels now and then die of an int3 Oops while patching kernel text
            // (at boot, or while attaching thousands of functions): QEMU's TCG and
            // cross-CPU code modification, not the code under test. A part's results must
            // come from one boot, so a crashed part starts again, twice at most.
            let mut attempt = 0;
            loop {
                match vm::run_vm(&kernel, &bin, &cli, &argv, args, &work)? {
                    Ok(r) => {
                        records.extend(r);
                        break;
                    }
                    Err(e) if attempt < 2 => {
                        attempt += 1;
                        eprintln!("xtask: the VM crashed ({e}); running this part again");
                    }
                    Err(e) => bail!(e),
                }
            }
        }
        // Other VMs on the host (other sessions' test runs) steal the emulator's CPU time:
        // the load average tells how quiet the host was.
        let host = Host {
            host_cpus: Some(std::thread::available_parallelism().map_or(0, |n| n.get() as u64)),
            loadavg_before: Some(load_before),
            loadavg_after: Some(loadavg()),
        };
        records.push(host.record());
        let report = Report::new(&kernel, records);
        let json_path = out_dir.join(format!("{}.json", kernel.label));
        let md_path = out_dir.join(format!("{}.md", kernel.label));
        std::fs::write(&json_path, serde_json::to_string_pretty(&report.to_json())?)?;
        let md = report.markdown(&format!("cargo xtask bench --kernel {}", kernel.label));
        std::fs::write(&md_path, &md)?;
        println!("{md}");
        eprintln!("xtask: wrote {} and {}", json_path.display(), md_path.display());
    }
    Ok(())
}

/// The host's 1-minute load average.
fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}
