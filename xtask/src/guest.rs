//! What the test VMs boot into: the initramfs layout and the start of every `/init`.
//!
//! ```text
//! /init               busybox sh script (see init_preamble and the callers' bodies)
//! /bin/busybox        busybox-static; `--install -s /bin` adds the applets
//! /bin/multiprobe     the CLI, static
//! /tests/<name>       static test executables
//! /kernel.config      the booted kernel's config (MULTIPROBE_KERNEL_CONFIG)
//! /modules/<m>.ko     decompressed test modules (MULTIPROBE_TEST_MODULES)
//! ```

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use object::{Object, ObjectSection};

use crate::initramfs::Initramfs;
use crate::kernels::Kernel;
use crate::static_build::TestBinary;
use crate::tools;

/// Busybox as Debian's busybox-static installs it.
const BUSYBOX: &str = "/bin/busybox";

/// The contents of one VM's initramfs.
pub struct Guest<'a> {
    /// The kernel booted (for its config and modules).
    pub kernel: &'a Kernel,
    /// The static `multiprobe` binary, if any.
    pub multiprobe: Option<&'a Path>,
    /// Static test executables for `/tests`.
    pub tests: &'a [TestBinary],
    /// The whole `/init` script.
    pub init: String,
    /// More executable scripts: `(path, text)`.
    pub scripts: Vec<(&'static str, String)>,
    /// The network card's modules in load order (`kernels::net_modules`), shipped as
    /// `/lib/net/<name>.ko` for [`network_setup`]; empty for VMs without a network.
    pub net_modules: Vec<PathBuf>,
    /// Host files copied to the same absolute path in the guest, their directories created
    /// (a dynamic program and its libraries: the benchmark's bpftrace).
    pub host_files: Vec<PathBuf>,
}

impl Guest<'_> {
    /// Writes the initramfs to `out`.
    pub fn write_initramfs(&self, out: &Path) -> Result<()> {
        tools::ensure(&[tools::BUSYBOX])?;
        check_static(Path::new(BUSYBOX))?;
        let mut cpio = Initramfs::new();
        cpio.dirs(&["/", "/bin", "/dev", "/proc", "/sys", "/tmp", "/run", "/root"])?;
        cpio.dirs(&["/etc", "/tests", "/modules"])?;
        cpio.char_device("/dev/console", 0o600, 5, 1)?;
        cpio.copy("/bin/busybox", Path::new(BUSYBOX))?;
        cpio.file("/init", 0o755, self.init.as_bytes())?;
        for (path, text) in &self.scripts {
            cpio.file(path, 0o755, text.as_bytes())?;
        }
        // The default workload of `cargo xtask vm` reads these.
        cpio.file("/etc/hostname", 0o644, b"multiprobe-vm\n")?;
        cpio.file("/etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/sh\n")?;
        cpio.file("/etc/group", 0o644, b"root:x:0:\n")?;
        if let Some(bin) = self.multiprobe {
            cpio.copy("/bin/multiprobe", bin)?;
        }
        if let Some(config) = &self.kernel.config {
            cpio.copy("/kernel.config", config)?;
        }
        for module in &self.kernel.modules {
            let name = module.file_name().unwrap().to_string_lossy();
            cpio.copy(&format!("/modules/{name}"), module)?;
        }
        if !self.net_modules.is_empty() {
            cpio.dirs(&["/lib", "/lib/net"])?;
        }
        for module in &self.net_modules {
            let name = module.file_name().unwrap().to_string_lossy();
            cpio.copy(&format!("/lib/net/{name}"), module)?;
        }
        for test in self.tests {
            cpio.copy(&format!("/tests/{}", test.name), &test.path)?;
        }
        let mut made: std::collections::BTreeSet<PathBuf> =
            ["/", "/bin", "/dev", "/proc", "/sys", "/tmp", "/run", "/root", "/etc", "/tests", "/modules"]
                .iter()
                .map(PathBuf::from)
                .collect();
        for file in &self.host_files {
            let mut parents: Vec<&Path> = file.ancestors().skip(1).collect();
            parents.reverse();
            for dir in parents {
                if made.insert(dir.to_path_buf()) {
                    cpio.dirs(&[&dir.to_string_lossy()])?;
                }
            }
            cpio.copy(&file.to_string_lossy(), file)?;
        }
        if let Some(dir) = out.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(out, cpio.finish()?).with_context(|| format!("writing {}", out.display()))
    }
}

/// The first lines of every `/init`: mounts, loopback, the environment tests rely on, and
/// the `MULTIPROBE-KERNEL <release>` line the harness reads.
pub fn init_preamble(kernel: &Kernel) -> String {
    let config = if kernel.config.is_some() { "export MULTIPROBE_KERNEL_CONFIG=/kernel.config\n" } else { "" };
    format!(
        r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin HOME=/root
mnt() {{ mount -t "$1" "$1" "$2" || echo "init: cannot mount $1 on $2"; }}
mnt proc /proc
mnt sysfs /sys
mnt devtmpfs /dev
mkdir -p /dev/pts && mnt devpts /dev/pts
mnt tracefs /sys/kernel/tracing
mnt debugfs /sys/kernel/debug
mnt bpf /sys/fs/bpf
ip link set lo up
hostname multiprobe-vm
export MULTIPROBE_VM=1 MULTIPROBE_BIN=/bin/multiprobe MULTIPROBE_TEST_MODULES=/modules
export RUST_BACKTRACE=1
{config}echo "MULTIPROBE-KERNEL $(uname -r)"
cd /tmp
"#
    )
}

/// The guest address QEMU's user network hands out (by DHCP, to the first card), and its
/// gateway (the host).
pub const GUEST_ADDR: &str = "10.0.2.15";

/// `/init` lines that give the guest its network: the card's modules loaded in order (a
/// module whose dependencies come later is retried once), then the address QEMU's user
/// network would hand out by DHCP, set statically (busybox's udhcpc needs a script to apply
/// a lease; the address never changes). Ends with `MULTIPROBE-NET up` or `MULTIPROBE-NET
/// failed: ...` on the console.
pub fn network_setup(modules: &[std::path::PathBuf]) -> String {
    let names: Vec<String> =
        modules.iter().map(|m| format!("/lib/net/{}", m.file_name().unwrap_or_default().to_string_lossy())).collect();
    format!(
        r#"for pass in 1 2; do for m in {modules}; do insmod "$m" 2>/dev/null; done; done
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 50 ]; do sleep 0.2; i=$((i+1)); done
if ip link set eth0 up && ip addr add {GUEST_ADDR}/24 dev eth0 && ip route add default via 10.0.2.2; then
  echo "MULTIPROBE-NET up"
else
  echo "MULTIPROBE-NET failed: no eth0 ($(ls /sys/class/net | tr '
' ' '))"
fi
"#,
        modules = names.join(" ")
    )
}

/// Quotes a word for the shell.
pub fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// A dynamically linked busybox (Debian's `busybox` package, which also installs
/// /bin/busybox) cannot run in the initramfs, which has no libc.
fn check_static(path: &Path) -> Result<()> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let file = object::File::parse(&*data).with_context(|| format!("parsing {}", path.display()))?;
    let dynamic = file.sections().any(|s| s.name() == Ok(".interp"));
    if dynamic {
        bail!("{} is dynamically linked; the VMs need busybox-static: apt-get install busybox-static", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_for_the_shell() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
