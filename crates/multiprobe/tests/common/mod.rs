//! Helpers shared by the integration tests of the library.
#![allow(dead_code, unused_macros)]

pub mod probes;

/// Skips unless the kernel can create kprobe_multi links (5.18+ built with CONFIG_FPROBE).
macro_rules! require_kprobe_multi {
    () => {
        testkit::require_root!("loading BPF programs");
        testkit::require_kernel!(5, 18, "kprobe_multi links");
        testkit::require_config!("CONFIG_FPROBE", "kprobe_multi links");
    };
}

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;

pub const LOADER_OBJ: &[u8] = include_bytes!("../../../../bpf/test_loader.bpf.o");
pub const ERRORS_OBJ: &[u8] = include_bytes!("../../../../bpf/test_errors.bpf.o");

/// A fresh directory in a bpf file system (mounted at /sys/fs/bpf if nothing is), removed
/// with everything pinned in it when dropped.
pub struct BpfDir(pub PathBuf);

impl BpfDir {
    pub fn new(name: &str) -> BpfDir {
        static MOUNT: Once = Once::new();
        MOUNT.call_once(|| {
            let magic = Command::new("stat").args(["-f", "-c", "%T", "/sys/fs/bpf"]).output();
            let is_bpffs = magic.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "bpf_fs");
            if !is_bpffs {
                let status =
                    Command::new("mount").args(["-t", "bpf", "bpf", "/sys/fs/bpf"]).status().expect("running mount");
                assert!(status.success(), "mounting a bpf file system at /sys/fs/bpf failed");
            }
        });
        let root = Path::new("/sys/fs/bpf");
        // Tests run in parallel natively: each directory is unique to its BpfDir.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = root.join(format!("multiprobe-test-{}-{n}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).expect("mkdir in bpffs");
        BpfDir(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for BpfDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The id of the calling thread (what BPF calls pid).
pub fn gettid() -> u32 {
    std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| p.file_name()?.to_str()?.parse().ok())
        .expect("reading /proc/thread-self")
}

pub const KPROBE_MULTI_OBJ: &[u8] = include_bytes!("../../../../bpf/test_kprobe_multi.bpf.o");

/// Text symbols of /proc/kallsyms: name -> address, address -> names (aliases share one).
pub struct Kallsyms {
    by_name: std::collections::HashMap<String, u64>,
    by_addr: std::collections::HashMap<u64, Vec<String>>,
}

impl Kallsyms {
    /// The kernel's symbols, read once per test process (module symbols loaded later need
    /// [`Kallsyms::fresh`]).
    pub fn read() -> &'static Kallsyms {
        static CACHE: std::sync::OnceLock<Kallsyms> = std::sync::OnceLock::new();
        CACHE.get_or_init(Kallsyms::fresh)
    }

    pub fn fresh() -> Kallsyms {
        let text = std::fs::read_to_string("/proc/kallsyms").expect("reading /proc/kallsyms");
        let mut by_name = std::collections::HashMap::new();
        let mut by_addr: std::collections::HashMap<u64, Vec<String>> = std::collections::HashMap::new();
        for line in text.lines() {
            let mut f = line.split_whitespace();
            let (Some(addr), Some(kind), Some(name)) = (f.next(), f.next(), f.next()) else { continue };
            if !matches!(kind, "t" | "T") {
                continue;
            }
            let addr = u64::from_str_radix(addr, 16).unwrap();
            by_name.entry(name.to_string()).or_insert(addr);
            by_addr.entry(addr).or_default().push(name.to_string());
        }
        Kallsyms { by_name, by_addr }
    }

    /// The symbol address of a function (what bpf_get_func_ip reports).
    pub fn addr(&self, name: &str) -> u64 {
        *self.by_name.get(name).unwrap_or_else(|| panic!("{name} not in /proc/kallsyms"))
    }

    /// Every name of the function starting at `addr`, for messages.
    pub fn names(&self, addr: u64) -> String {
        self.by_addr.get(&addr).map(|n| n.join("/")).unwrap_or_else(|| format!("{addr:#x}"))
    }
}

/// Makes a known number of vfs_read and vfs_write calls: pread(2) and pwrite(2) on a file
/// of its own, one kernel call each.
pub struct Workload {
    file: std::fs::File,
    path: PathBuf,
}

impl Workload {
    pub fn new() -> Workload {
        let path = std::env::temp_dir().join(format!("multiprobe-workload-{}", gettid()));
        let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
        Workload { file, path }
    }

    pub fn reads(&self, n: usize) {
        use std::os::unix::fs::FileExt;
        let mut buf = [0u8; 8];
        for _ in 0..n {
            self.file.read_at(&mut buf, 0).unwrap();
        }
    }

    pub fn writes(&self, n: usize) {
        use std::os::unix::fs::FileExt;
        for _ in 0..n {
            self.file.write_at(b"multiprobe", 0).unwrap();
        }
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
