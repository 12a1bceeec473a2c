//! Building the benchmark static and running it as a VM's only program: its JSON lines are
//! collected from the console between sentinels (bench/src/report.rs prints them).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::{BenchArgs, LIBELF_A};
use crate::guest::{self, Guest};
use crate::kernels::Kernel;
use crate::qemu::Vm;
use crate::static_build::{self, TestBinary};

const BEGIN: &str = "MPBENCH-BEGIN";
const LINE: &str = "MPBENCH ";
const END: &str = "MPBENCH-END";
const EXIT: &str = "MPBENCH-EXIT ";

/// Builds the benchmark static, in its own target directory (it is not a workspace member).
pub(super) fn build(root: &Path) -> Result<PathBuf> {
    let target_dir = crate::target_dir().join("bench-build");
    let status = static_build::cargo()
        .current_dir(root.join("bench"))
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        // libbpf-sys links libelf and zlib statically from here (Debian's multiarch path).
        .env("LIBBPF_SYS_LIBRARY_PATH", Path::new(LIBELF_A.command).parent().unwrap())
        .args(["build", "--release", "--locked", "--target", static_build::TARGET, "--target-dir"])
        .arg(&target_dir)
        .status()
        .context("running cargo build for bench/")?;
    if !status.success() {
        bail!("building bench/ failed (see cargo's messages above)");
    }
    Ok(target_dir.join(static_build::TARGET).join("release").join("multiprobe-bench"))
}

/// Where Debian's bpftrace package installs it.
const BPFTRACE: &str = "/usr/bin/bpftrace";

/// bpftrace and the shared libraries it loads (as `ldd` lists them, about 200 MB: LLVM,
/// clang, bcc), for the trace part to compare with; nothing where the host has no bpftrace
/// (`apt-get install bpftrace`), and the trace part then says so.
fn bpftrace() -> Vec<PathBuf> {
    let bin = Path::new(BPFTRACE);
    if !bin.exists() {
        eprintln!("xtask: no {BPFTRACE} on this machine: the bench compares trace with bpftrace only with it");
        return Vec::new();
    }
    let Ok(out) = std::process::Command::new("ldd").arg(bin).output() else { return Vec::new() };
    let mut files = vec![bin.to_path_buf()];
    // `libx.so.1 => /lib/x86_64-linux-gnu/libx.so.1 (0x...)` and `/lib64/ld-linux-x86-64.so.2 (0x...)`.
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let path = line.split_whitespace().find(|w| w.starts_with('/'));
        files.extend(path.map(PathBuf::from));
    }
    files
}

/// Boots the kernel with the benchmark as the only program; returns its JSON records, or
/// (inner error) how the kernel crashed.
pub(super) fn run_vm(
    kernel: &Kernel,
    bin: &Path,
    cli: &Path,
    bench_argv: &[String],
    args: &BenchArgs,
    work: &Path,
) -> Result<Result<Vec<Value>, String>> {
    let dir = work.join("run").join(format!("bench-{}", kernel.label));
    let initramfs = dir.join("initramfs.cpio.gz");
    let tests = [TestBinary { name: "multiprobe-bench".into(), path: bin.to_path_buf() }];
    let argv: Vec<String> = bench_argv.iter().map(|a| guest::shell_quote(a)).collect();
    let mut init = guest::init_preamble(kernel);
    init.push_str(&format!("/tests/multiprobe-bench {} </dev/null\necho \"{EXIT}$?\"\npoweroff -f\n", argv.join(" ")));
    let guest = Guest {
        kernel,
        multiprobe: Some(cli),
        tests: &tests,
        init,
        scripts: Vec::new(),
        net_modules: Vec::new(),
        host_files: bpftrace(),
    };
    guest.write_initramfs(&initramfs)?;
    let vm = Vm {
        vmlinuz: kernel.vmlinuz.clone(),
        initramfs,
        append: Vec::new(),
        timeout: args.timeout,
        // Attaching every function can keep the console quiet for a minute or two.
        inactivity: Duration::from_secs(600),
        log: work.join("logs").join(format!("bench-{}.log", kernel.label)),
        done_marker: EXIT.to_string(),
        forwards: Vec::new(),
    };
    let prefix = format!("[{}] ", kernel.label);
    let mut records = Vec::new();
    let mut bad = Vec::new();
    let (mut began, mut ended) = (false, false);
    let console = vm.run(&mut |line| {
        if line.contains(BEGIN) {
            began = true;
        } else if line.contains(END) {
            ended = true;
        } else if let Some(at) = line.find(LINE) {
            match serde_json::from_str::<Value>(&line[at + LINE.len()..]) {
                Ok(v) => records.push(v),
                Err(_) => bad.push(line.to_string()),
            }
            return;
        }
        eprintln!("{prefix}{line}");
    })?;
    if let Some(failure) = &console.failure {
        let message = format!("{failure}; console log: {}\n  {}", vm.log.display(), console.tail(30).join("\n  "));
        if failure.starts_with("kernel crash") {
            return Ok(Err(message));
        }
        bail!("{message}");
    }
    if !began || !ended {
        bail!("the benchmark did not run to its end; console log: {}", vm.log.display());
    }
    if !bad.is_empty() {
        // A kernel message printed into the middle of a result line garbles it.
        eprintln!("xtask: {} garbled result line(s) dropped:\n  {}", bad.len(), bad.join("\n  "));
    }
    if !args.keep {
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_file(&vm.log);
    }
    Ok(Ok(records))
}
