//! Helpers shared by the integration tests of the library.
#![allow(dead_code)]

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
            let magic = Command::new("stat")
                .args(["-f", "-c", "%T", "/sys/fs/bpf"])
                .output();
            let is_bpffs =
                magic.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "bpf_fs");
            if !is_bpffs {
                let status = Command::new("mount")
                    .args(["-t", "bpf", "bpf", "/sys/fs/bpf"])
                    .status()
                    .expect("running mount");
                assert!(
                    status.success(),
                    "mounting a bpf file system at /sys/fs/bpf failed"
                );
            }
        });
        let root = Path::new("/sys/fs/bpf");
        let dir = root.join(format!("multiprobe-test-{}-{name}", std::process::id()));
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
