//! JSON records printed on a VM's console by a runner in the guest (the corpus and the
//! conformance runners of `bench/`): one record per line after a prefix, between a begin
//! and an end marker, then the runner's exit code.

use anyhow::{Result, bail};
use serde_json::Value;

use crate::qemu::Vm;

/// The console markers of one runner.
pub struct Markers {
    pub begin: &'static str,
    /// The prefix of each record line (a JSON value follows it).
    pub line: &'static str,
    pub end: &'static str,
    /// The prefix of the line with the runner's exit code.
    pub exit: &'static str,
}

/// Boots `vm` and collects the records of `what` (the runner's name, for errors) and its
/// exit code; other console lines are echoed with `prefix`. An emulated kernel now and then
/// dies of an int3 Oops while patching its text (QEMU's TCG, not the code under test, see
/// docs/testing.md): one more boot is allowed. A run that did not reach its end marker, or a
/// record a kernel message garbled (its programs would be missing), is an error.
pub fn collect(vm: &Vm, markers: &Markers, what: &str, prefix: &str) -> Result<(Vec<Value>, Option<i32>)> {
    let mut attempt = 0;
    loop {
        let mut records = Vec::new();
        let (mut began, mut ended, mut exit, mut bad) = (false, false, None, 0);
        let console = vm.run(&mut |line| {
            if line.contains(markers.begin) {
                began = true;
            } else if line.contains(markers.end) {
                ended = true;
            } else if let Some(at) = line.find(markers.exit) {
                exit = line[at + markers.exit.len()..].trim().parse::<i32>().ok();
            } else if let Some(at) = line.find(markers.line) {
                match serde_json::from_str::<Value>(&line[at + markers.line.len()..]) {
                    Ok(v) => records.push(v),
                    Err(_) => bad += 1,
                }
                return;
            }
            eprintln!("{prefix}{line}");
        })?;
        match &console.failure {
            Some(f) if f.starts_with("kernel crash") && attempt == 0 => {
                attempt += 1;
                eprintln!("xtask: the VM crashed ({f}); booting again");
                continue;
            }
            Some(f) => bail!("{f}; console log: {}\n  {}", vm.log.display(), console.tail(30).join("\n  ")),
            None => {}
        }
        if !began || !ended {
            bail!("the {what} runner did not run to its end; console log: {}", vm.log.display());
        }
        if bad > 0 {
            bail!("{bad} garbled {what} record line(s) on the console; console log: {}", vm.log.display());
        }
        return Ok((records, exit));
    }
}
