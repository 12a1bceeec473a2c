//! Attach where kprobe_multi may be missing: `Fallback::Auto` attaches one kprobe per
//! function on kernels without it (Debian 12's 6.1 is built without CONFIG_FPROBE), with the
//! same program and the same cookies, so the BPF side and the reading stay the same.
//!
//! ```sh
//! cargo build --example fallback && sudo target/debug/examples/fallback
//! ```
//!
//! The price is time: the kernel takes milliseconds per kprobe to attach and detach, so
//! hundreds of functions take seconds, where one kprobe_multi link takes milliseconds.
//! `Fallback::Always` forces the per-function way (to compare), `Fallback::Never` (the
//! default, as libbpf) fails instead.

use std::error::Error;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use multiprobe::Object;
use multiprobe::kprobe_multi::{AttachMode, Fallback, KprobeMulti};
use multiprobe::symbols::Selection;

const OBJECT: &[u8] = include_bytes!("../../../bpf/examples.bpf.o");

/// What one attach did.
pub struct Outcome {
    /// One kprobe_multi link, or per-function kprobes.
    pub mode: AttachMode,
    /// Calls of vfs_write counted (this process's writes).
    pub writes: u64,
    /// How long attaching and detaching took.
    pub attach: Duration,
    /// As above.
    pub detach: Duration,
}

/// Counts this process's `n` writes through vfs_write, attached with `fallback`.
pub fn run(fallback: Fallback, n: usize) -> Result<Outcome, Box<dyn Error>> {
    let functions = Selection::new().include("vfs_write").resolve()?;
    let mut object = Object::parse("examples", OBJECT)?;
    object.map_mut("calls").expect("calls").set_max_entries(functions.len() as u32);
    object.set_global("target_tgid", &std::process::id())?;
    let loaded = object.load()?;

    // The only line that differs from count_by_pattern: `.fallback(...)`.
    let spec = KprobeMulti::functions_with_cookies(functions.iter().cloned().zip(0..)).fallback(fallback);
    let start = Instant::now();
    let link = loaded.program("count_calls").expect("count_calls").attach_kprobe_multi(&spec)?;
    let attach = start.elapsed();
    // How it attached: the link says.
    let mode = link.attach_mode();

    let path = std::env::temp_dir().join(format!("multiprobe-example-fallback-{}", std::process::id()));
    let file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).open(&path)?;
    std::fs::remove_file(&path)?;
    for _ in 0..n {
        file.write_all_at(b"x", 0)?;
    }

    let start = Instant::now();
    drop(link);
    let detach = start.elapsed();
    let writes = loaded.map("calls").expect("calls").get_per_cpu::<u32, u64>(&0)?.map_or(0, |v| v.iter().sum());
    Ok(Outcome { mode, writes, attach, detach })
}

fn main() -> Result<(), Box<dyn Error>> {
    for fallback in [Fallback::Auto, Fallback::Always] {
        let o = run(fallback, 10)?;
        println!(
            "{fallback:?}: attached as {:?} in {:?}, counted {} writes, detached in {:?}",
            o.mode, o.attach, o.writes, o.detach
        );
    }
    Ok(())
}
