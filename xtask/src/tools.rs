//! Host tools the xtasks need, and installing them on Debian when they are missing.
//!
//! A fresh Debian machine lacks QEMU, busybox and clang. Running as root we install them with
//! apt-get (that is what CI does); otherwise we stop and print the exact command to run.

use std::process::Command;
use std::sync::Once;

use anyhow::{Result, bail};

/// An executable and the Debian package that provides it.
#[derive(Debug, Clone, Copy)]
pub struct Tool {
    /// Name or absolute path of the executable.
    pub command: &'static str,
    /// The Debian package that installs it.
    pub package: &'static str,
}

/// BPF C compiler.
pub const CLANG: Tool = Tool { command: "clang", package: "clang" };
/// Strips DWARF from BPF objects (keeps BTF).
pub const LLVM_STRIP: Tool = Tool { command: "llvm-strip", package: "llvm" };

/// Compiles libFuzzer for the fuzz targets (libfuzzer-sys builds it from C++ sources).
pub const CXX: Tool = Tool { command: "c++", package: "g++" };

/// Renders the man pages to check them (`cargo xtask dist`, the packaging step).
pub const GROFF: Tool = Tool { command: "groff", package: "groff-base" };

/// Emulates the test VMs.
pub const QEMU: Tool = Tool { command: "qemu-system-x86_64", package: "qemu-system-x86" };
/// The static shell and tools inside the test VMs (busybox-static installs it in /bin).
pub const BUSYBOX: Tool = Tool { command: "/bin/busybox", package: "busybox-static" };
/// Decompresses the `.ko.xz` kernel modules of newer Debian kernels.
pub const XZ: Tool = Tool { command: "xz", package: "xz-utils" };
/// Scrapes `multiprobe export` in the end-to-end test (Debian's build, 2.42 on bookworm).
pub const PROMETHEUS: Tool = Tool { command: "prometheus", package: "prometheus" };
/// Unpacks downloaded kernel packages.
pub const DPKG_DEB: Tool = Tool { command: "dpkg-deb", package: "dpkg" };

fn present(tool: &Tool) -> bool {
    if tool.command.starts_with('/') {
        return std::path::Path::new(tool.command).exists();
    }
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool.command).is_file()))
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Makes sure every tool is installed: installs the missing ones with apt-get when running as
/// root on Debian, otherwise fails with the command that installs them.
pub fn ensure(tools: &[Tool]) -> Result<()> {
    let mut missing: Vec<&str> = tools.iter().filter(|t| !present(t)).map(|t| t.package).collect();
    missing.dedup();
    if missing.is_empty() {
        return Ok(());
    }
    let command = format!("apt-get install -y {}", missing.join(" "));
    if !is_root() || !present(&Tool { command: "apt-get", package: "apt" }) {
        bail!("missing tools: {}. Install them with: sudo {command}", missing.join(", "));
    }
    static UPDATE: Once = Once::new();
    UPDATE.call_once(|| {
        eprintln!("xtask: apt-get update");
        let _ = Command::new("apt-get").args(["update", "-q"]).status();
    });
    eprintln!("xtask: {command}");
    let status = Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()?;
    if !status.success() || tools.iter().any(|t| !present(t)) {
        bail!("could not install {}; try: sudo {command}", missing.join(", "));
    }
    Ok(())
}

/// The first line of `clang --version`, to tell which compiler built the objects.
pub fn clang_version() -> Option<String> {
    let out = Command::new("clang").arg("--version").output().ok()?;
    String::from_utf8_lossy(&out.stdout).lines().next().map(str::to_string)
}
