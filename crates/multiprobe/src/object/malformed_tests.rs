//! Malformed objects: each defect fuzzing found, reproduced by patching one field of a
//! committed object, must be a parse error that names the symbol, section or map at fault.

use ::object::{Object as _, ObjectSection, ObjectSymbol};

use super::*;
use crate::btf::TypeKind;

const LOADER_OBJ: &[u8] = include_bytes!("../../../../bpf/test_loader.bpf.o");

/// Offset in the file of the `Elf64_Sym` of symbol `name`.
fn symbol_entry(data: &[u8], name: &str) -> usize {
    let file = ::object::File::parse(data).unwrap();
    let (symtab, _) = file.section_by_name(".symtab").unwrap().file_range().unwrap();
    let sym = file.symbols().find(|s| s.name() == Ok(name)).unwrap_or_else(|| panic!("symbol {name}"));
    symtab as usize + sym.index().0 * 24
}

/// The loader object with symbol `name`'s `st_value` and `st_size` replaced.
fn with_symbol(name: &str, value: Option<u64>, size: Option<u64>) -> Vec<u8> {
    let mut bytes = LOADER_OBJ.to_vec();
    let at = symbol_entry(&bytes, name);
    if let Some(v) = value {
        bytes[at + 8..at + 16].copy_from_slice(&v.to_le_bytes());
    }
    if let Some(s) = size {
        bytes[at + 16..at + 24].copy_from_slice(&s.to_le_bytes());
    }
    bytes
}

/// The loader object with the 8-byte field at `field` of section `name`'s `Elf64_Shdr`
/// replaced.
fn with_section_field(name: &str, field: usize, value: u64) -> Vec<u8> {
    let mut bytes = LOADER_OBJ.to_vec();
    let file = ::object::File::parse(LOADER_OBJ).unwrap();
    let index = file.section_by_name(name).unwrap().index().0;
    let shoff = u64::from_le_bytes(bytes[0x28..0x30].try_into().unwrap()) as usize;
    let at = shoff + index * 64 + field;
    bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
    bytes
}

/// The loader object with section `name`'s `sh_size` replaced.
fn with_section_size(name: &str, size: u64) -> Vec<u8> {
    with_section_field(name, 32, size)
}

/// The loader object with section `name`'s `sh_flags` replaced.
fn with_section_flags(name: &str, flags: u64) -> Vec<u8> {
    with_section_field(name, 8, flags)
}

fn parse_err(bytes: &[u8]) -> ObjectError {
    Object::parse("t", bytes).expect_err("a malformed object must not parse")
}

#[test]
fn globals_outside_their_section_are_refused_at_parse_time() {
    // `.rodata` is 20 bytes; each of these once parsed, then set_global/global_bytes panicked
    // (index out of range, or an add overflow for a size near 2^64).
    for (value, size) in [(None, Some(64)), (Some(20), None), (Some(u64::MAX - 2), None), (None, Some(u64::MAX - 2))] {
        let err = parse_err(&with_symbol("cfg_multiplier", value, size));
        let text = err.to_string();
        assert!(
            matches!(&err, ObjectError::BadSymbol { symbol, section, .. } if symbol == "cfg_multiplier" && section == ".rodata"),
            "{err}"
        );
        assert!(text.contains("20 bytes"), "the section's size is given: {text}");
    }
    // At the very end of the section is still inside.
    let obj = Object::parse("t", &with_symbol("cfg_multiplier", Some(16), None)).unwrap();
    assert_eq!(obj.global_bytes("cfg_multiplier").unwrap().len(), 4);
}

#[test]
fn programs_outside_their_section_are_refused_at_parse_time() {
    // `socket` is 0x340 bytes; Object::load created the maps, then the linker panicked.
    for (value, size) in
        [(None, Some(0x1000)), (Some(0x340), None), (Some(u64::MAX - 7), None), (None, Some(u64::MAX - 7))]
    {
        let err = parse_err(&with_symbol("count_packets", value, size));
        assert!(
            matches!(&err, ObjectError::BadSymbol { symbol, section, .. } if symbol == "count_packets" && section == "socket"),
            "{err}"
        );
    }
    let err = parse_err(&with_symbol("count_packets", None, Some(12)));
    assert!(err.to_string().contains("8-byte instructions"), "{err}");
    let err = parse_err(&with_symbol("count_packets", Some(4), None));
    assert!(err.to_string().contains("8-byte instructions"), "{err}");
}

#[test]
fn a_map_in_map_whose_inner_definition_is_itself_is_an_error() {
    // Point the `values` array of `outer` at `outer`'s own definition: parse_btf_map
    // recursed until the stack overflowed, an abort no caller can catch.
    let file = ::object::File::parse(LOADER_OBJ).unwrap();
    let section = file.section_by_name(".BTF").unwrap();
    let (btf_at, btf_len) = section.file_range().unwrap();
    let mut btf = Btf::parse(section.data().unwrap()).unwrap();
    let var = btf.find_by_name_kind("outer", crate::btf::kind::VAR).unwrap();
    let TypeKind::Var { target, .. } = btf.type_by_id(var).unwrap().kind else { unreachable!() };
    let def = btf.skip_modifiers(target).unwrap();
    let values =
        btf.type_by_id(def).unwrap().kind.members().iter().find(|m| btf.string_at(m.name_off).ok() == Some("values"));
    let TypeKind::Array { elem, .. } = btf.type_by_id(values.unwrap().type_id).unwrap().kind else { unreachable!() };
    btf.type_mut(elem).unwrap().kind = TypeKind::Ptr { target: def };
    let raw = btf.to_bytes();
    assert_eq!(raw.len() as u64, btf_len, "same size, so it fits where the old BTF was");
    let mut bytes = LOADER_OBJ.to_vec();
    bytes[btf_at as usize..(btf_at + btf_len) as usize].copy_from_slice(&raw);

    let err = parse_err(&bytes);
    assert!(matches!(&err, ObjectError::BadMapDefinition { map, .. } if map == "outer.inner"), "{err}");
    assert!(err.to_string().contains("one level deep"), "{err}");
}

#[test]
fn data_sections_larger_than_a_map_value_are_refused() {
    let err = parse_err(&with_section_size(".bss", elf::MAX_DATA_SECTION as u64 + 1));
    assert!(matches!(&err, ObjectError::BadMapDefinition { map, .. } if map == ".bss"), "{err}");
    assert!(err.to_string().contains(&elf::MAX_DATA_SECTION.to_string()), "the limit is named: {err}");
}

#[test]
fn zero_filled_sections_are_not_allocated_at_parse_time() {
    // A .bss of the largest size accepted costs nothing until a variable in it is set.
    let obj = Object::parse("t", &with_section_size(".bss", elf::MAX_DATA_SECTION as u64)).unwrap();
    let bss = obj.map(".bss").unwrap();
    assert_eq!(bss.value_size() as usize, elf::MAX_DATA_SECTION);
    assert!(bss.data.is_none(), "no bytes held for a section with none in the file");
    assert_eq!(obj.global_bytes("bss_total").unwrap(), &[0; 8], "reads as zeros");

    let mut obj = obj;
    obj.set_global("bss_total", &7u64).unwrap();
    assert_eq!(obj.global_bytes("bss_total").unwrap(), &7u64.to_le_bytes());
    assert_eq!(obj.map(".bss").unwrap().data.as_ref().map(Vec::len), Some(elf::MAX_DATA_SECTION), "whole once set");
}

#[test]
fn extreme_symbol_values_and_sizes_are_errors_not_panics() {
    // Arithmetic on a symbol's value (relocation targets: value + addend) overflowed.
    let file = ::object::File::parse(LOADER_OBJ).unwrap();
    let names: Vec<String> =
        file.symbols().filter_map(|s| s.name().ok().filter(|n| !n.is_empty()).map(str::to_string)).collect();
    for name in &names {
        for extreme in [u64::MAX - 7, 1 << 63, (1 << 63) - 8, u64::from(u32::MAX) - 7, 1 << 32] {
            let _ = Object::parse("t", &with_symbol(name, Some(extreme), None));
            let _ = Object::parse("t", &with_symbol(name, None, Some(extreme)));
        }
    }
}

#[test]
fn a_zero_filled_section_of_another_kind_reads_as_zeros() {
    // Found by fuzzing: a .bss marked thread-local (SHF_TLS) is still NOBITS, no bytes in the
    // file, but was taken for a section with bytes: an empty value its variables did not
    // fit in, and global_bytes panicked.
    const SHF_WRITE_ALLOC_TLS: u64 = 0x1 | 0x2 | 0x400;
    let mut obj = Object::parse("t", &with_section_flags(".bss", SHF_WRITE_ALLOC_TLS)).unwrap();
    assert_eq!(obj.global_bytes("bss_total").unwrap(), &[0; 8]);
    obj.set_global("bss_total", &1u64).unwrap();
    assert_eq!(obj.global_bytes("bss_total").unwrap(), &1u64.to_le_bytes());
}
