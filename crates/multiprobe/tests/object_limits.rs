//! The parser's limits on a real kernel: the largest global data section `Object::parse`
//! accepts (4 MiB, beyond which it refuses the object) is one the kernel creates and loads,
//! zero-filled without the parser holding its bytes.

mod common;

use common::{BpfDir, LOADER_OBJ};
use multiprobe::Object;
use object::{Object as _, ObjectSection};
use testkit::require_root;

/// The parser's limit on a data section: the largest array map value the kernel takes
/// (`KMALLOC_MAX_SIZE` on x86-64).
const MAX_DATA_SECTION: u64 = 4 << 20;

/// BPF_PROG_TEST_RUN hands socket filters the packet past its 14-byte Ethernet header.
const ETH_HLEN: u64 = 14;

/// The loader test object with its `.bss` grown to `size` bytes (`sh_size`: a NOBITS section
/// has no bytes in the file to move).
fn with_bss_size(size: u64) -> Vec<u8> {
    let mut bytes = LOADER_OBJ.to_vec();
    let index = object::File::parse(LOADER_OBJ).unwrap().section_by_name(".bss").unwrap().index().0;
    let shoff = u64::from_le_bytes(bytes[0x28..0x30].try_into().unwrap()) as usize;
    let at = shoff + index * 64 + 32;
    bytes[at..at + 8].copy_from_slice(&size.to_le_bytes());
    bytes
}

#[test]
fn loader_takes_the_largest_data_section_the_parser_accepts() {
    require_root!("loading BPF programs");
    assert!(Object::parse("test_loader", &with_bss_size(MAX_DATA_SECTION + 1)).is_err(), "the parser's limit");

    let pins = BpfDir::new("largest-bss");
    let mut obj = Object::parse("test_loader", &with_bss_size(MAX_DATA_SECTION)).unwrap();
    obj.map_mut("pinned_counter").unwrap().set_pin_path(pins.path("pinned_counter"));
    obj.set_global("cfg_target_tgid", &std::process::id()).unwrap();
    let loaded = obj.load().unwrap_or_else(|e| panic!("a 4 MiB .bss: {e}"));

    let bss = loaded.map(".bss").unwrap();
    assert_eq!(u64::from(bss.value_size()), MAX_DATA_SECTION);
    let packet = [0u8; 64];
    loaded.program("count_packets").unwrap().test_run(&packet).unwrap();
    // The program added len * cfg_multiplier (1) to bss_total, which the kernel started at 0.
    let value = bss.get_bytes(&0u32.to_le_bytes()).unwrap().unwrap();
    assert_eq!(value.len() as u64, MAX_DATA_SECTION);
    assert_eq!(u64::from_le_bytes(value[..8].try_into().unwrap()), packet.len() as u64 - ETH_HLEN);
    assert!(value[8..].iter().all(|&b| b == 0), "the rest of the section is zeros");
}
