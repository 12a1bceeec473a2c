//! One object with a tracing program (fexit, attached by BTF id) next to a kprobe.multi
//! one, as real tools ship them: the loader finds the fexit target's BTF id in the kernel
//! (or a module) and loads it as a `BPF_PROG_TYPE_TRACING` program, while the kprobe.multi
//! program attaches to many functions through one link.
//!
//! ```sh
//! cargo build --example tracing_and_multi && sudo target/debug/examples/tracing_and_multi
//! ```
//!
//! The object is bpf/examples.bpf.c: `read_done` is `SEC("?fexit/vfs_read")` (autoload off
//! until turned on, as libbpf's `?`), `count_calls` is `SEC("kprobe.multi")`. Attaching
//! fentry/fexit programs is not in the library yet; loading them is, with their target
//! retargetable before load (`set_attach_target`), which is what this shows.

use std::error::Error;
use std::os::unix::fs::FileExt;

use multiprobe::kprobe_multi::KprobeMulti;
use multiprobe::{Object, ProgramKind};

const OBJECT: &[u8] = include_bytes!("../../../bpf/examples.bpf.o");

/// What was loaded and counted.
pub struct Outcome {
    /// The fexit program's kind as the object declares it.
    pub fexit_kind: Option<ProgramKind>,
    /// Its attach target.
    pub fexit_target: Option<String>,
    /// The kernel's `bpf_prog_type` for it (26: tracing).
    pub fexit_prog_type: u32,
    /// Calls of vfs_read counted by the kprobe.multi program.
    pub reads: u64,
}

/// Loads both programs (the fexit one retargeted to `fexit_target`), attaches the
/// kprobe.multi one to vfs_read, and reads a file `n` times.
pub fn run(fexit_target: &str, n: usize) -> Result<Outcome, Box<dyn Error>> {
    let mut object = Object::parse("examples", OBJECT)?;
    // The tracing program: turned on, and its target chosen before load.
    let fexit = object.program_mut("read_done").expect("read_done");
    fexit.set_autoload(true).set_attach_target(fexit_target);
    let fexit_kind = fexit.kind();
    object.map_mut("calls").expect("calls").set_max_entries(1);
    object.set_global("target_tgid", &std::process::id())?;
    let loaded = object.load()?;

    let fexit = loaded.program("read_done").expect("loaded");
    let fexit_prog_type = fexit.info()?.prog_type;
    let fexit_target = fexit.attach_target().map(str::to_string);

    let spec = KprobeMulti::symbols_with_cookies([("vfs_read", 0)]);
    let link = loaded.program("count_calls").expect("count_calls").attach_kprobe_multi(&spec)?;
    let path = std::env::temp_dir().join(format!("multiprobe-example-tracing-{}", std::process::id()));
    std::fs::write(&path, b"multiprobe")?;
    let file = std::fs::File::open(&path)?;
    std::fs::remove_file(&path)?;
    let mut buf = [0u8; 8];
    for _ in 0..n {
        file.read_at(&mut buf, 0)?;
    }
    drop(link);
    let reads = loaded.map("calls").expect("calls").get_per_cpu::<u32, u64>(&0)?.map_or(0, |v| v.iter().sum());
    Ok(Outcome { fexit_kind, fexit_target, fexit_prog_type, reads })
}

fn main() -> Result<(), Box<dyn Error>> {
    let o = run("vfs_read", 10)?;
    println!(
        "read_done: {:?} on {:?}, loaded as prog type {}; count_calls counted {} reads",
        o.fexit_kind, o.fexit_target, o.fexit_prog_type, o.reads
    );
    Ok(())
}
