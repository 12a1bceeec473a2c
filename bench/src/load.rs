//! Object load: `Object::parse` + `load` (multiprobe) against `bpf_object__open_mem` +
//! `bpf_object__load` (libbpf), for the same bytes.
//!
//! multiprobe keeps the kernel's BTF per process once something needed it (CO-RE, kfuncs),
//! libbpf reads it for every object: so multiprobe is measured warm (in this process, after
//! a first load) and cold (first load in a fresh process), libbpf likewise (its code and
//! heap are warm in this process; a fresh process faults its pages in again).

use std::ffi::CString;

use multiprobe::Object;

use crate::report::{self, Series};
use crate::{Config, child, libbpf, rotated, timed};

/// The objects measured: name, bytes.
pub const OBJECTS: &[(&str, &[u8])] = &[
    ("count.bpf.o", crate::COUNT_OBJ),
    ("test_kprobe_multi.bpf.o", crate::KPROBE_MULTI_OBJ),
    ("test_loader.bpf.o", crate::LOADER_OBJ),
];

/// Where each loader pins `LIBBPF_PIN_BY_NAME` maps, so neither reuses the other's pin.
const MP_PIN_DIR: &str = "/sys/fs/bpf/mpbench-multiprobe";
const LIBBPF_PIN_DIR: &str = "/sys/fs/bpf/mpbench-libbpf";

/// One multiprobe load of `data`; the loaded object is dropped (released) untimed.
pub fn multiprobe_load(name: &str, data: &[u8]) -> Result<u64, String> {
    let (loaded, ns) = timed(|| -> Result<_, String> {
        let mut obj = Object::parse(name, data).map_err(|e| e.to_string())?;
        if let Some(m) = obj.map_mut("pinned_counter") {
            m.set_pin_path(format!("{MP_PIN_DIR}/pinned_counter"));
        }
        obj.load().map_err(|e| e.to_string())
    });
    drop(loaded?);
    Ok(ns)
}

pub fn libbpf_load(name: &str, data: &[u8]) -> Result<u64, String> {
    let pin_root = CString::new(LIBBPF_PIN_DIR).unwrap();
    let (obj, ns) = timed(|| -> Result<_, String> {
        let mut obj = libbpf::Object::open(name, data, Some(&pin_root)).map_err(|e| e.to_string())?;
        obj.load().map_err(|e| e.to_string())?;
        Ok(obj)
    });
    drop(obj?);
    Ok(ns)
}

/// Measures every object.
pub fn run(config: &Config) {
    let _ = std::fs::create_dir_all(MP_PIN_DIR);
    let _ = std::fs::create_dir_all(LIBBPF_PIN_DIR);
    for &(name, data) in OBJECTS {
        report::progress(&format!("load {name}"));
        // One untimed load each: pins exist from then on for both (reused, not created, in
        // every timed load), and multiprobe's per-process kernel BTF is warm.
        let warmup = [multiprobe_load(name, data), libbpf_load(name, data)];
        if let Some(e) = warmup.iter().find_map(|r| r.as_ref().err()) {
            report::emit_error("load", name, "warm-up", e);
        }
        let imps = ["multiprobe", "multiprobe-cold", "libbpf", "libbpf-cold"];
        let mut samples: Vec<Vec<u64>> = vec![Vec::new(); imps.len()];
        let mut failed = [false; 4];
        for rep in 0..config.reps {
            for imp in rotated(&imps, rep) {
                let i = imps.iter().position(|x| *x == imp).unwrap();
                if failed[i] {
                    continue;
                }
                let r = match imp {
                    "multiprobe" => multiprobe_load(name, data),
                    "multiprobe-cold" => child::cold_load(name),
                    "libbpf-cold" => child::cold_libbpf_load(name),
                    _ => libbpf_load(name, data),
                };
                match r {
                    Ok(ns) => samples[i].push(ns),
                    Err(e) => {
                        failed[i] = true;
                        report::emit_error("load", name, imp, &e);
                    }
                }
            }
        }
        for (imp, s) in imps.iter().zip(samples) {
            if !s.is_empty() {
                report::emit(&Series { group: "load", case: name, imp, matches: None, unit: "ns", samples: s });
            }
        }
    }
    kernel_btf(config);
    let _ = std::fs::remove_file(format!("{MP_PIN_DIR}/pinned_counter"));
    let _ = std::fs::remove_file(format!("{LIBBPF_PIN_DIR}/pinned_counter"));
}

/// The type looked up by name in the kernel's BTF.
const LOOKUP: &str = "task_struct";

/// The kernel's BTF, which objects with CO-RE relocations or kfuncs need: reading
/// `/sys/kernel/btf/vmlinux`, and parsing the same bytes in each library.
fn kernel_btf(config: &Config) {
    report::progress("kernel BTF read and parse");
    let path = multiprobe::btf::kernel::VMLINUX_BTF;
    let Ok(data) = std::fs::read(path) else {
        report::emit_error("load", "vmlinux BTF", "", &"cannot read /sys/kernel/btf/vmlinux");
        return;
    };
    let imps = ["read", "multiprobe", "libbpf", "multiprobe-lookup", "libbpf-lookup"];
    let mut samples: Vec<Vec<u64>> = vec![Vec::new(); imps.len()];
    for rep in 0..config.reps {
        for imp in rotated(&imps, rep) {
            let i = imps.iter().position(|x| *x == imp).unwrap();
            let ns = match imp {
                "read" => timed(|| std::fs::read(path).map(|d| d.len())).1,
                "multiprobe" => {
                    let (btf, ns) = timed(|| multiprobe::btf::Btf::parse(&data));
                    drop(btf);
                    ns
                }
                // The first name lookup in a fresh parse: multiprobe builds its name index
                // then (and keeps it), libbpf scans.
                "multiprobe-lookup" => {
                    let Ok(btf) = multiprobe::btf::Btf::parse(&data) else { continue };
                    timed(|| btf.ids_by_name(LOOKUP).len()).1
                }
                "libbpf-lookup" => {
                    let Ok(btf) = libbpf::Btf::parse(&data) else { continue };
                    timed(|| btf.find_by_name(LOOKUP)).1
                }
                _ => {
                    let (btf, ns) = timed(|| libbpf::Btf::parse(&data));
                    drop(btf);
                    ns
                }
            };
            samples[i].push(ns);
        }
    }
    for (imp, s) in imps.iter().zip(samples) {
        report::emit(&Series { group: "btf", case: "vmlinux", imp, matches: None, unit: "ns", samples: s });
    }
    report::emit_value(&serde_json::json!({"group": "info", "case": "vmlinux btf", "impl": "", "bytes": data.len()}));
}
