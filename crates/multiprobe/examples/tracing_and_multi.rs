//! One object with a tracing program (fexit, attached by BTF id) next to a kprobe.multi
//! one, as real tools ship them: the loader finds the fexit target's BTF id in the kernel
//! (or a module) and loads it as a `BPF_PROG_TYPE_TRACING` program, attached through a
//! tracing link, while the kprobe.multi program attaches to many functions through one link.
//!
//! ```sh
//! cargo build --example tracing_and_multi && sudo target/debug/examples/tracing_and_multi
//! ```
//!
//! The object is bpf/examples.bpf.c: `read_done` is `SEC("?fexit/vfs_read")` (autoload off
//! until turned on, as libbpf's `?`), `count_calls` is `SEC("kprobe.multi")`. The fexit
//! program's target can be changed before load (`set_attach_target`); `attach_trace`
//! attaches it to that target. Both count the same reads: `read_done` at each return of
//! vfs_read, `count_calls` at each entry.

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
    /// Returns of the fexit program's target counted by it (`reads_done`).
    pub returns: u64,
}

/// Loads both programs (the fexit one retargeted to `fexit_target`), attaches the fexit one
/// to its target and the kprobe.multi one to vfs_read, and reads a file `n` times.
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
    // A tracing link (BPF_TRACE_FEXIT) to the target the program was loaded against.
    let fexit_link = fexit.attach_trace()?;
    let path = std::env::temp_dir().join(format!("multiprobe-example-tracing-{}", std::process::id()));
    std::fs::write(&path, b"multiprobe")?;
    let file = std::fs::File::open(&path)?;
    std::fs::remove_file(&path)?;
    let mut buf = [0u8; 8];
    for _ in 0..n {
        file.read_at(&mut buf, 0)?;
    }
    drop((link, fexit_link));
    let reads = loaded.map("calls").expect("calls").get_per_cpu::<u32, u64>(&0)?.map_or(0, |v| v.iter().sum());
    // `reads_done` is the object's only zero-initialized global: all of .bss.
    let returns = loaded.map(".bss").expect(".bss").get::<u32, u64>(&0)?.unwrap_or(0);
    Ok(Outcome { fexit_kind, fexit_target, fexit_prog_type, reads, returns })
}

fn main() -> Result<(), Box<dyn Error>> {
    let o = run("vfs_read", 10)?;
    println!(
        "read_done: {:?} on {:?}, loaded as prog type {}, counted {} returns; count_calls counted {} reads",
        o.fexit_kind, o.fexit_target, o.fexit_prog_type, o.returns, o.reads
    );
    Ok(())
}
