//! Time every call of a few kernel functions with one kprobe session link (6.10+): one
//! program runs at the entry and at the return of each call, and the kernel gives each call
//! an 8-byte slot shared by its two runs, where the entry keeps its start time.
//!
//! ```sh
//! cargo build --example latency_session && sudo target/debug/examples/latency_session
//! ```
//!
//! Before sessions this took a kprobe.multi + kretprobe.multi pair and a hash map of start
//! times keyed by thread. The BPF side is `time_calls` in bpf/examples.bpf.c; its
//! `mp_session()` (bpf/include/mp_session.h) hides that the session kfuncs take no argument
//! on 6.10 to 6.x and the context on 7.x.

use std::error::Error;
use std::os::unix::fs::FileExt;

use multiprobe::Object;
use multiprobe::features::{self, Support};
use multiprobe::kprobe_multi::KprobeMulti;
use multiprobe::symbols::Selection;

const OBJECT: &[u8] = include_bytes!("../../../bpf/examples.bpf.o");

/// Per function: calls and total nanoseconds.
pub struct Timing {
    /// The function's name.
    pub function: String,
    /// Calls that returned while attached.
    pub calls: u64,
    /// Time spent in them, entry to return.
    pub nanos: u64,
}

/// Times this process's calls of `names` while it reads and writes a file `n` times each.
pub fn run(names: &[&str], n: usize) -> Result<Vec<Timing>, Box<dyn Error>> {
    // 1. Sessions need 6.10+; say why not rather than failing to attach.
    if let Support::No(reason) = features::kprobe_session() {
        return Err(format!("kprobe sessions are not available: {reason}").into());
    }

    // 2. The functions, by exact name: a Selection takes patterns and plain names alike.
    let functions = names.iter().fold(Selection::new(), |s, name| s.include(name)).resolve()?;

    // 3. The session program starts with autoload off (`SEC("?kprobe.session")`): turn it
    //    on, and the kprobe.multi one, unused here, off.
    let mut object = Object::parse("examples", OBJECT)?;
    object.program_mut("time_calls").expect("time_calls").set_autoload(true);
    object.program_mut("count_calls").expect("count_calls").set_autoload(false);
    for map in ["calls", "nanos"] {
        object.map_mut(map).expect("map").set_max_entries(functions.len() as u32);
    }
    object.set_global("target_tgid", &std::process::id())?;
    let loaded = object.load()?;

    // 4. `.session()`: one link, the program at entry and return of every call.
    let spec = KprobeMulti::functions_with_cookies(functions.iter().cloned().zip(0..)).session();
    let link = loaded.program("time_calls").expect("time_calls").attach_kprobe_multi(&spec)?;

    // 5. The workload: pread and pwrite on a file of our own (one vfs_read / vfs_write each).
    let path = std::env::temp_dir().join(format!("multiprobe-example-latency-{}", std::process::id()));
    let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path)?;
    std::fs::remove_file(&path)?;
    let mut buf = [0u8; 64];
    for _ in 0..n {
        file.write_all_at(&buf, 0)?;
        file.read_at(&mut buf, 0)?;
    }
    drop(link);

    // 6. Sum the CPUs of both per-CPU arrays.
    let sum = |map: &str| -> Result<Vec<u64>, Box<dyn Error>> {
        let mut out = vec![0; functions.len()];
        for (index, per_cpu) in loaded.map(map).expect("map").dump_per_cpu::<u32, u64>()? {
            out[index as usize] = per_cpu.iter().sum();
        }
        Ok(out)
    };
    let (calls, nanos) = (sum("calls")?, sum("nanos")?);
    Ok(functions
        .iter()
        .enumerate()
        .map(|(i, f)| Timing { function: f.name.clone(), calls: calls[i], nanos: nanos[i] })
        .collect())
}

fn main() -> Result<(), Box<dyn Error>> {
    for t in run(&["vfs_read", "vfs_write"], 1000)? {
        let avg = t.nanos.checked_div(t.calls).unwrap_or(0);
        println!("{:<10} {:>6} calls, {avg:>6} ns on average", t.function, t.calls);
    }
    Ok(())
}
