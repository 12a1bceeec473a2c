//! Entry points for the fuzz targets in `fuzz/`: not an API, hidden from the docs, changed at
//! will.
//!
//! Each takes untrusted bytes, runs one of the library's parsers on them the way the
//! library does, then walks what it returns as later steps would (linking, re-encoding,
//! lookups), so a panic, a hang or an outsized allocation anywhere on that path shows up.
//! None needs a kernel or makes a system call. The targets check the allocations.

use std::collections::HashMap;
use std::os::fd::RawFd;

use crate::btf::{self, Btf, BtfExt};
use crate::object::{ExternValue, Object, ObjectError, Resolver, link_program};
use crate::symbols::Glob;

/// A BPF ELF object: [`Object::parse`], every global read and written back, every program
/// linked (fake map fds, every kind of extern value), the BTF encoded for the kernel.
pub fn object(data: &[u8]) {
    let Ok(mut obj) = Object::parse("fuzz", data) else { return };
    let mut names: Vec<String> = obj.globals.keys().cloned().collect();
    names.sort_unstable();
    for name in &names {
        let bytes = obj.global_bytes(name).map(<[u8]>::to_vec);
        if let Ok(bytes) = bytes {
            obj.set_global_bytes(name, &bytes).expect("a global takes back its own bytes");
        }
    }
    for prog in &obj.programs {
        let _ = link_program(&obj, &obj.sections, prog, &FakeKernel);
    }
    if let Some(btf) = &obj.btf {
        let _ = btf.to_bytes();
    }
}

/// Raw BTF: [`Btf::parse`], every type's size and name looked up, the encoding checked to be
/// stable (what is sent to the kernel must parse back to the same types), and the rewrite of
/// extern declarations the loader does.
pub fn btf(data: &[u8]) {
    let Ok(mut btf) = Btf::parse(data) else { return };
    for (id, _) in btf.types() {
        let _ = btf.resolve_size(id);
        let _ = btf.skip_modifiers(id);
        let name = btf.name(id).to_string();
        assert!(btf.ids_by_name(&name).contains(&id) || name.is_empty(), "type {id} `{name}` found by its name");
    }
    let encoded = btf.to_bytes();
    let again = Btf::parse(&encoded).expect("encoded BTF parses");
    assert!(again.to_bytes() == encoded, "encoding BTF twice gives the same bytes");
    let _ = btf::prepare_for_kernel(&mut btf, &HashMap::new());
    let _ = btf.to_bytes();
}

/// `.BTF.ext` with the `.BTF` it refers to: [`BtfExt::parse`].
pub fn btf_ext(btf_data: &[u8], ext_data: &[u8]) {
    let Ok(btf) = Btf::parse(btf_data) else { return };
    let Ok(ext) = BtfExt::parse(ext_data, &btf) else { return };
    for name in ext.func_info.by_section.keys() {
        let _ = (ext.func_info.section(name), ext.line_info.section(name), ext.core_relos.section(name));
    }
}

/// The key the listing cache files handed to [`listing_file`] must be written for.
pub const LISTING_FILE_KEY: &str = "fuzz";

/// A per-boot cache file (written for [`LISTING_FILE_KEY`]): read as the listing and as the
/// entry addresses, as the cache does, and the listing searched as attaching does.
pub fn listing_file(data: &[u8]) {
    let (listing, entries) = crate::symbols::listing_cache_from_file_bytes(data, LISTING_FILE_KEY);
    if let Some(listing) = listing {
        let _ = (listing.len(), listing.contains("vfs_read"), listing.count_named("vfs_read"));
        let addresses: Vec<u64> = listing.addresses().collect();
        for pattern in ["*", "vfs_*", "*_rea?", "*x*y*", "?"] {
            let _ = listing.matching(&Glob::new(pattern));
        }
        let _ = listing.filter(|name, module| name.len() > 3 || module.is_some());
        if let Some(entries) = entries {
            for a in addresses {
                let _ = entries.entry(a);
            }
        }
    }
}

/// Stands in for the kernel when linking: map fds are made up, externs cycle through every
/// kind of value.
struct FakeKernel;

impl Resolver for FakeKernel {
    fn map_fd(&self, index: usize) -> RawFd {
        3 + index as RawFd
    }

    fn extern_value(&self, name: &str) -> Result<ExternValue, ObjectError> {
        Ok(match name.len() % 4 {
            0 => ExternValue::Kfunc { btf_id: 100, fd_index: 1 },
            1 => ExternValue::Var { btf_id: 200, btf_obj_fd: 7 },
            2 => ExternValue::Address(0xffff_ffff_8100_0000),
            _ => ExternValue::Missing,
        })
    }
}

#[cfg(test)]
mod tests {
    use ::object::{Object as _, ObjectSection};

    use super::*;

    /// The seed corpus of `cargo xtask fuzz`: the committed objects.
    const OBJECTS: &[&[u8]] = &[
        include_bytes!("../../../bpf/bench.bpf.o"),
        include_bytes!("../../multiprobe-cli/bpf/count.bpf.o"),
        include_bytes!("../../multiprobe-cli/bpf/latency.bpf.o"),
        include_bytes!("../../../bpf/test_core.bpf.o"),
        include_bytes!("../../../bpf/test_errors.bpf.o"),
        include_bytes!("../../../bpf/test_kprobe_multi.bpf.o"),
        include_bytes!("../../../bpf/test_loader.bpf.o"),
    ];

    #[test]
    fn the_entry_points_take_every_committed_object() {
        for data in OBJECTS {
            object(data);
            let file = ::object::File::parse(*data).unwrap();
            let section = |name| file.section_by_name(name).unwrap().data().unwrap();
            btf(section(".BTF"));
            btf_ext(section(".BTF"), section(".BTF.ext"));
        }
    }

    #[test]
    fn listing_files_are_read_in_the_layout_xtask_writes_seeds_in() {
        // xtask/src/fuzz_cmd.rs writes the listing_file seeds this way: when the cache's
        // format changes, change both.
        let data = b"ffffffff81000010 vfs_read\nffffffff81000020 vfs_write\n";
        let mut file = b"multiprobe cache v2\n".to_vec();
        file.extend_from_slice(&(LISTING_FILE_KEY.len() as u32).to_le_bytes());
        file.extend_from_slice(&(data.len() as u64).to_le_bytes());
        file.extend_from_slice(LISTING_FILE_KEY.as_bytes());
        file.extend_from_slice(data);
        let (listing, _) = crate::symbols::listing_cache_from_file_bytes(&file, LISTING_FILE_KEY);
        assert_eq!(listing.map(|l| l.len()), Some(2));
        listing_file(&file);
    }
}
