//! `cargo xtask vm`: run the CLI in a throwaway VM, or get a shell there.
//!
//! The guest runs `multiprobe ARGS` with a file-system workload in the background and
//! prints its output between sentinels; we show only that (stdout to stdout, stderr to
//! stderr, kernel messages left in the log) and exit with its exit code.

use std::time::Duration;

use anyhow::{Result, bail};

use crate::guest::{self, Guest};
use crate::kernels::{self, Kernel};
use crate::qemu::{Forward, Vm};
use crate::{static_build, tools};

const START: &str = "MULTIPROBE-START";
const EXIT: &str = "MULTIPROBE-EXIT ";
const STDERR: &str = "MULTIPROBE-STDERR ";

/// The default background workload (`/bin/workload` in the guest): a loop of opens, reads,
/// writes, stats, directory walks and unlinks, so that probes on file-system and VFS
/// functions see calls.
const DEFAULT_WORKLOAD: &str = "\
while :; do
  echo $$ > /tmp/workload.tmp
  cat /tmp/workload.tmp /proc/self/status /etc/passwd
  ls -lR /proc/sys/fs /sys/kernel/mm
  rm -f /tmp/workload.tmp
done >/dev/null 2>&1
";

/// Arguments of `cargo xtask vm`.
#[derive(Debug, clap::Args)]
pub struct VmArgs {
    /// Kernel to boot: 5.10, 6.1, 6.12, 7.2 or the path of a vmlinuz file.
    #[arg(long, default_value = "6.12")]
    kernel: String,
    /// Shell command run in the background while multiprobe runs; `none` for no workload.
    /// Default: /bin/workload, a loop of file-system calls.
    #[arg(long, value_name = "CMD")]
    workload: Option<String>,
    /// An interactive busybox shell on the serial console instead (`poweroff -f` leaves).
    #[arg(long)]
    shell: bool,
    /// Forward HOST_PORT on the host's 127.0.0.1 to GUEST_PORT in the guest (repeatable),
    /// over QEMU user networking: the guest gets a virtio NIC with address 10.0.2.15, so a
    /// service there listens on 10.0.2.15:GUEST_PORT (or 0.0.0.0).
    #[arg(long = "forward", value_name = "HOST_PORT:GUEST_PORT")]
    forwards: Vec<Forward>,
    /// Time limit for the whole VM run (s, m or h suffix); not applied to --shell.
    #[arg(long, default_value = "15m", value_parser = crate::parse_duration)]
    timeout: Duration,
    /// Build multiprobe with the release profile (the default: it runs under emulation).
    #[arg(long, conflicts_with = "debug")]
    release: bool,
    /// Build multiprobe with the dev profile.
    #[arg(long)]
    debug: bool,
    /// Arguments for multiprobe.
    #[arg(last = true, value_name = "ARGS")]
    args: Vec<String>,
}

/// Runs `cargo xtask vm`.
pub fn run(args: &VmArgs) -> Result<()> {
    if args.shell && !args.args.is_empty() {
        bail!("--shell takes no multiprobe arguments");
    }
    tools::ensure(&[tools::QEMU, tools::BUSYBOX, tools::XZ, tools::DPKG_DEB])?;
    let root = crate::workspace_root();
    let work = crate::target_dir().join("vm");
    let cli = static_build::build_cli(&root, !args.debug)?;
    let kernel = kernels::resolve(&args.kernel, &work)?;
    eprintln!("xtask: booting {} ({})", kernel.label, kernel.version);
    let net_modules = if args.forwards.is_empty() { Vec::new() } else { kernels::net_modules(&kernel, &work)? };
    let dir = work.join("run").join(format!("vm-{}", std::process::id()));
    let initramfs = dir.join("initramfs.cpio.gz");
    let guest = Guest {
        kernel: &kernel,
        multiprobe: Some(&cli),
        tests: &[],
        init: init_script(&kernel, args, &net_modules),
        scripts: vec![("/bin/workload", format!("#!/bin/sh\n{DEFAULT_WORKLOAD}"))],
        net_modules,
        host_files: Vec::new(),
    };
    guest.write_initramfs(&initramfs)?;
    let vm = Vm {
        vmlinuz: kernel.vmlinuz.clone(),
        initramfs,
        append: Vec::new(),
        timeout: args.timeout,
        inactivity: args.timeout,
        log: work.join("logs").join(format!("vm-{}.log", kernel.label)),
        done_marker: EXIT.to_string(),
        forwards: args.forwards.clone(),
    };
    let outcome = if args.shell { vm.run_interactive().map(|_| 0) } else { run_command(&vm) };
    let _ = std::fs::remove_dir_all(&dir);
    let code = outcome?;
    std::process::exit(code);
}

/// Runs the VM, shows multiprobe's output and returns its exit code.
fn run_command(vm: &Vm) -> Result<i32> {
    let mut inside = false;
    let mut code = None;
    let console = vm.run(&mut |line| {
        // The sentinels are matched loosely: firmware output without a newline can precede
        // a line.
        if line.ends_with(START) {
            inside = true;
        } else if let Some(at) = line.find(EXIT) {
            inside = false;
            code = line[at + EXIT.len()..].trim().parse::<i32>().ok();
        } else if let Some(net) = line.strip_prefix("MULTIPROBE-NET ") {
            eprintln!("xtask: guest network {net}");
        } else if let Some(err) = line.strip_prefix(STDERR) {
            eprintln!("{err}");
        } else if inside && !is_kernel_message(line) {
            println!("{line}");
        }
    })?;
    if let Some(failure) = &console.failure {
        bail!("{failure}; console log: {}\n  {}", vm.log.display(), console.tail(30).join("\n  "));
    }
    code.ok_or_else(|| anyhow::anyhow!("the VM printed no exit code"))
}

/// A printk line: `[   12.345678] ...`.
fn is_kernel_message(line: &str) -> bool {
    line.strip_prefix('[').and_then(|rest| rest.split_once("] ")).is_some_and(|(stamp, _)| {
        let stamp = stamp.trim_start();
        let (secs, micros) = stamp.split_once('.').unwrap_or(("", ""));
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        digits(secs) && digits(micros)
    })
}

/// `/init`: the common preamble, then either the shell or multiprobe.
fn init_script(kernel: &Kernel, args: &VmArgs, net_modules: &[std::path::PathBuf]) -> String {
    let mut script = guest::init_preamble(kernel);
    if !args.forwards.is_empty() {
        script.push_str(&guest::network_setup(net_modules));
    }
    if args.shell {
        script.push_str(
            "echo 'multiprobe VM: /bin/multiprobe, test modules in /modules, \
             /bin/workload makes file-system calls; poweroff -f leaves'\n\
             setsid cttyhack sh -l\n\
             poweroff -f\n",
        );
        return script;
    }
    let workload = match args.workload.as_deref() {
        None => Some("/bin/workload".to_string()),
        Some("none") => None,
        Some(cmd) => Some(cmd.to_string()),
    };
    if let Some(cmd) = workload {
        script.push_str(&format!("sh -c {} </dev/null >/dev/null 2>&1 &\nWORKLOAD_PID=$!\n", guest::shell_quote(&cmd)));
    }
    let argv: Vec<String> = args.args.iter().map(|a| guest::shell_quote(a)).collect();
    // stderr goes through a fifo that prefixes each line, so the host can tell the streams
    // apart on the single serial console.
    script.push_str(&format!(
        "mkfifo /tmp/stderr\n\
         while IFS= read -r l || [ -n \"$l\" ]; do printf '%s%s\\n' '{STDERR}' \"$l\"; done \
         </tmp/stderr &\n\
         SED_PID=$!\n\
         echo {START}\n\
         /bin/multiprobe {} </dev/null 2>/tmp/stderr\n\
         CODE=$?\n\
         wait $SED_PID\n\
         [ -n \"$WORKLOAD_PID\" ] && kill $WORKLOAD_PID\n\
         echo \"{EXIT}$CODE\"\n\
         poweroff -f\n",
        argv.join(" ")
    ));
    script
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_kernel_messages() {
        assert!(is_kernel_message("[   12.345678] BUG: x"));
        assert!(is_kernel_message("[0.1] x"));
        assert!(!is_kernel_message("[vfs_read] 12 calls"));
        assert!(!is_kernel_message("[1] first"));
        assert!(!is_kernel_message("vfs_read 12"));
    }
}
