//! Ask the kernel what a kprobe_multi link is attached to, pin the link so it outlives the
//! process, and open it again from its pin, as a tool that leaves probes running and a
//! second one that inspects or removes them would.
//!
//! ```sh
//! cargo build --example link_info_pin && sudo target/debug/examples/link_info_pin
//! ```
//!
//! What the kernel tells grows with its version: ids only before 6.6, then addresses and
//! flags, the missed-runs counter from 6.7, the cookies from 6.9. Pinning needs a bpf file
//! system (`mount -t bpf bpf /sys/fs/bpf`, which systemd does at boot).

use std::error::Error;
use std::path::Path;

use multiprobe::Object;
use multiprobe::kprobe_multi::{KprobeMulti, KprobeMultiInfo, KprobeMultiLink};
use multiprobe::symbols::Selection;

const OBJECT: &[u8] = include_bytes!("../../../bpf/examples.bpf.o");

/// The link's info as attached, and as read back through its pin.
pub struct Outcome {
    /// From the link this process made.
    pub attached: KprobeMultiInfo,
    /// From the link opened from its pin after the first was dropped.
    pub reopened: KprobeMultiInfo,
}

/// Attaches to `pattern`'s functions with cookies 100, 101, ..., pins the link in `pin_dir`
/// (a directory of a bpf file system), drops it, opens it from the pin, then unpins it
/// (which detaches it once the last fd is closed).
pub fn run(pattern: &str, pin_dir: &Path) -> Result<Outcome, Box<dyn Error>> {
    let functions = Selection::new().include(pattern).resolve()?;
    let mut object = Object::parse("examples", OBJECT)?;
    object.map_mut("calls").expect("calls").set_max_entries(functions.len() as u32 + 100);
    let loaded = object.load()?;
    let spec = KprobeMulti::functions_with_cookies(functions.iter().cloned().zip(100..));
    let link = loaded.program("count_calls").expect("count_calls").attach_kprobe_multi(&spec)?;

    // 1. What is attached, as the kernel reports it; `resolve_names` fills in the function
    //    names from /proc/kallsyms (the kernel reports addresses only).
    let mut attached = link.info()?;
    attached.resolve_names()?;

    // 2. Pin it: the link lives on in the bpf file system after its fd is closed ...
    let pin = pin_dir.join("example_link");
    link.pin(&pin)?;
    drop(link);

    // 3. ... and any process (with the privileges) can open it again.
    let reopened_link = KprobeMultiLink::from_pin(&pin)?;
    let mut reopened = reopened_link.info()?;
    reopened.resolve_names()?;

    // 4. Unpinning and closing the last fd detaches it.
    std::fs::remove_file(&pin)?;
    drop(reopened_link);
    Ok(Outcome { attached, reopened })
}

fn main() -> Result<(), Box<dyn Error>> {
    let o = run("vfs_read*", Path::new("/sys/fs/bpf"))?;
    let i = &o.attached;
    println!("link {} (program {}), {:?} functions, missed {:?}", i.id, i.prog_id, i.count, i.missed);
    for t in &i.targets {
        println!("  {:#x} {:<24} cookie {:?}", t.address, t.function.as_deref().unwrap_or("?"), t.cookie);
    }
    println!("reopened from its pin: link {}, {} targets", o.reopened.id, o.reopened.targets.len());
    Ok(())
}
