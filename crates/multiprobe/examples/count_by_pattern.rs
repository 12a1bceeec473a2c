//! Count calls per kernel function, for every function a pattern selects, from one
//! kprobe_multi link, telling the functions apart by their attach cookies.
//!
//! ```sh
//! cargo build --example count_by_pattern && sudo target/debug/examples/count_by_pattern 'vfs_read*'
//! ```
//!
//! The walkthrough: select the functions, size the counters to them, load, attach with one
//! cookie per function (its counter's index), run something, read the per-CPU counters.
//! The BPF side is `count_calls` in bpf/examples.bpf.c:
//!
//! ```c
//! SEC("kprobe.multi")
//! int count_calls(struct pt_regs *ctx)
//! {
//!     if (wanted())                       /* target_tgid, set below */
//!         add(&calls, bpf_get_attach_cookie(ctx), 1);
//!     return 0;
//! }
//! ```

use std::error::Error;
use std::os::unix::fs::FileExt;

use multiprobe::Object;
use multiprobe::kprobe_multi::KprobeMulti;
use multiprobe::symbols::Selection;

/// The object, built from bpf/examples.bpf.c by `cargo xtask bpf`, embedded so the example
/// runs anywhere (`Object::open("examples.bpf.o")` reads one from a file instead).
const OBJECT: &[u8] = include_bytes!("../../../bpf/examples.bpf.o");

/// Counts the calls this process makes to the functions `pattern` selects while it reads a
/// file `reads` times; returns `(function, calls)` for every function called, most first.
pub fn run(pattern: &str, reads: usize) -> Result<Vec<(String, u64)>, Box<dyn Error>> {
    // 1. Which functions: a glob over the kernel's traceable functions. `exclude` always
    //    wins; a built-in deny list keeps out functions whose probing would recurse into BPF.
    let functions = Selection::new().include(pattern).exclude("*_iter").resolve()?;
    println!("{} functions match {pattern:?}", functions.len());

    // 2. Before load: one counter per function, and only this process's calls counted (a
    //    `const volatile` the verifier sees as a constant).
    let mut object = Object::parse("examples", OBJECT)?;
    object.map_mut("calls").expect("the object has `calls`").set_max_entries(functions.len() as u32);
    object.set_global("target_tgid", &std::process::id())?;
    let loaded = object.load()?;

    // 3. One link for all of them. Cookie i goes with function i, so the program's
    //    `bpf_get_attach_cookie` is the index of the function's counter.
    let spec = KprobeMulti::functions_with_cookies(functions.iter().cloned().zip(0..));
    let link = loaded.program("count_calls").expect("the object has `count_calls`").attach_kprobe_multi(&spec)?;

    // 4. Something to count: reads of a file of our own (pread: one vfs_read each).
    let file = tempfile()?;
    let mut buf = [0u8; 16];
    for _ in 0..reads {
        file.read_at(&mut buf, 0)?;
    }

    // 5. Detach (drop the link), then read the counters: one value per CPU, summed here.
    drop(link);
    let mut counted: Vec<(String, u64)> = loaded
        .map("calls")
        .expect("the object has `calls`")
        .dump_per_cpu::<u32, u64>()?
        .into_iter()
        .map(|(index, per_cpu)| (functions[index as usize].name.clone(), per_cpu.iter().sum::<u64>()))
        .filter(|(_, calls)| *calls > 0)
        .collect();
    counted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok(counted)
}

/// A small file of this process's own to read.
fn tempfile() -> std::io::Result<std::fs::File> {
    let path = std::env::temp_dir().join(format!("multiprobe-example-{}", std::process::id()));
    let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path)?;
    std::fs::remove_file(&path)?;
    file.write_all_at(b"multiprobe example", 0)?;
    Ok(file)
}

fn main() -> Result<(), Box<dyn Error>> {
    let pattern = std::env::args().nth(1).unwrap_or_else(|| "vfs_read*".into());
    for (function, calls) in run(&pattern, 100)? {
        println!("{calls:>8} {function}");
    }
    Ok(())
}
