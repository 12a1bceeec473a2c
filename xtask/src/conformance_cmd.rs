//! The kprobe_multi conformance test against libbpf 1.7 (`cargo xtask test`'s step on every
//! kernel of the matrix): the benchmark crate's `conformance` subcommand
//! (bench/src/conformance.rs) runs the same scenarios through multiprobe's
//! `KprobeMultiOpts` and libbpf's `bpf_program__attach_kprobe_multi_opts` in one VM boot,
//! and prints one record per scenario; a difference without a documented reason fails.

use std::path::Path;
use std::time::Duration;

use anyhow::{Result, bail};
use serde_json::Value;

use crate::guest::{self, Guest};
use crate::kernels::Kernel;
use crate::qemu::Vm;
use crate::records;
use crate::static_build::TestBinary;

const BEGIN: &str = "MPCONF-BEGIN";
const LINE: &str = "MPCONF ";
const END: &str = "MPCONF-END";
const EXIT: &str = "MPCONF-EXIT ";

/// Runs the scenarios on `kernel` with the runner `bin` (corpus_cmd::build): a summary
/// line, or an error listing the scenarios whose outcomes differ.
pub fn test_step(bin: &Path, kernel: &Kernel) -> Result<String> {
    let work = crate::target_dir().join("vm");
    let run_dir = work.join("run").join(format!("conformance-{}", kernel.label));
    let initramfs = run_dir.join("initramfs.cpio.gz");
    let tests = [TestBinary { name: "multiprobe-bench".into(), path: bin.to_path_buf() }];
    let mut init = guest::init_preamble(kernel);
    init.push_str(&format!("/tests/multiprobe-bench conformance </dev/null\necho \"{EXIT}$?\"\npoweroff -f\n"));
    let guest = Guest {
        kernel,
        multiprobe: None,
        tests: &tests,
        init,
        scripts: Vec::new(),
        net_modules: Vec::new(),
        host_files: Vec::new(),
    };
    guest.write_initramfs(&initramfs)?;
    let vm = Vm {
        vmlinuz: kernel.vmlinuz.clone(),
        initramfs,
        append: Vec::new(),
        timeout: Duration::from_secs(600),
        inactivity: Duration::from_secs(300),
        log: work.join("logs").join(format!("conformance-{}.log", kernel.label)),
        done_marker: EXIT.to_string(),
        forwards: Vec::new(),
    };
    let prefix = format!("[{}] ", kernel.label);
    let markers = records::Markers { begin: BEGIN, line: LINE, end: END, exit: EXIT };
    let (records, exit) = records::collect(&vm, &markers, "conformance", &prefix)?;
    let _ = std::fs::remove_dir_all(&run_dir);
    let out = crate::target_dir().join("conformance");
    std::fs::create_dir_all(&out)?;
    let lines: Vec<String> = records.iter().map(Value::to_string).collect();
    std::fs::write(out.join(format!("{}.json", kernel.label)), lines.join("\n") + "\n")?;
    let same = |r: &&Value| r["same"] == Value::Bool(true);
    let documented = |r: &&Value| r["same"] == Value::Bool(false) && !r["documented"].is_null();
    let skipped = records.iter().filter(|r| r.get("skipped").is_some()).count();
    let differ: Vec<&Value> =
        records.iter().filter(|r| r.get("skipped").is_none() && !same(r) && !documented(r)).collect();
    let line = format!(
        "{} scenarios: {} alike, {} documented differences, {skipped} skipped",
        records.len(),
        records.iter().filter(same).count(),
        records.iter().filter(documented).count()
    );
    if !differ.is_empty() || exit != Some(0) {
        let list: Vec<String> = differ
            .iter()
            .map(|r| format!("{}: multiprobe {} / libbpf {}", r["case"], r["multiprobe"], r["libbpf"]))
            .collect();
        bail!("{line}; exit {exit:?}; outcomes differ:\n  {}", list.join("\n  "));
    }
    Ok(line)
}
