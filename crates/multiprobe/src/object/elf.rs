//! From ELF bytes to an [`Object`]: sections, symbols and relocations, read with the
//! `object` crate.

use std::collections::{BTreeMap, HashMap};
use std::ffi::CString;

use object::{
    Architecture, Object as _, ObjectSection, ObjectSymbol, RelocationFlags, RelocationTarget, SectionIndex,
    SectionKind, SymbolKind, SymbolSection,
};

use super::maps::{global_data_map, parse_btf_map};
use super::{
    CodeSection, Func, Global, KconfigExtern, Object, ObjectError, OpenOptions, ProgramSpec, Reloc,
    parse_section_name_with,
};
use crate::btf::{self, Btf, BtfExt, SectionLayout, TypeKind};
use crate::insn;

/// ELF relocation types of the BPF target.
const R_BPF_64_64: u32 = 1;
const R_BPF_64_32: u32 = 10;

/// Largest global data section accepted: the largest value an array map takes on x86-64
/// (`KMALLOC_MAX_SIZE`, 4 MiB; bigger ones fail `BPF_MAP_CREATE` with E2BIG). It also bounds
/// what setting a `.bss` variable allocates, as the file cannot.
pub(super) const MAX_DATA_SECTION: usize = 4 << 20;

/// What a section is to the loader.
enum Role {
    Code(usize),
    Maps,
    Data(usize),
}

pub(super) fn parse(name: &str, data: &[u8], options: &OpenOptions) -> Result<Object, ObjectError> {
    let file = object::File::parse(data)?;
    if file.architecture() != Architecture::Bpf {
        return Err(ObjectError::NotBpf { machine: format!("{:?}", file.architecture()) });
    }
    if !file.is_little_endian() {
        return Err(ObjectError::BigEndian);
    }

    let mut license = CString::default();
    let mut kern_version = 0;
    let mut btf = None;
    let mut btf_ext_data = None;
    let mut roles: HashMap<SectionIndex, Role> = HashMap::new();
    let mut sections = Vec::new();
    let mut maps = Vec::new();
    let mut layouts: HashMap<String, SectionLayout> = HashMap::new();
    let mut maps_section = None;

    let mut section_names: HashMap<SectionIndex, String> = HashMap::new();
    for s in file.sections() {
        let sname = s.name()?;
        // clang leaves the size of every data section in BTF to the loader (license too).
        layouts.insert(sname.to_string(), SectionLayout { size: s.size() as u32, ..Default::default() });
        section_names.insert(s.index(), sname.to_string());
        match sname {
            "license" => {
                license = CString::new(s.data()?.split(|&b| b == 0).next().unwrap_or(&[]).to_vec()).unwrap_or_default()
            }
            "version" => kern_version = s.data()?.get(..4).map_or(0, |b| u32::from_le_bytes(b.try_into().unwrap())),
            ".BTF" => btf = Some(Btf::parse(s.data()?)?),
            ".BTF.ext" => btf_ext_data = Some(s.data()?),
            "maps" => return Err(ObjectError::LegacyMaps),
            ".maps" => {
                maps_section = Some(s.index());
                roles.insert(s.index(), Role::Maps);
            }
            _ if s.kind() == SectionKind::Text && s.size() > 0 => {
                let bytes = s.data()?;
                let insns = insn::from_bytes(bytes)
                    .ok_or(ObjectError::BadCode { section: sname.to_string(), len: bytes.len() })?;
                roles.insert(s.index(), Role::Code(sections.len()));
                sections.push(CodeSection {
                    name: sname.to_string(),
                    insns,
                    funcs: Vec::new(),
                    relocs: BTreeMap::new(),
                });
            }
            _ if is_data_section(sname) && s.size() > 0 => {
                if s.size() > MAX_DATA_SECTION as u64 {
                    return Err(ObjectError::BadMapDefinition {
                        map: sname.to_string(),
                        reason: format!(
                            "section of {} bytes, more than the {MAX_DATA_SECTION} bytes the kernel takes as one map value",
                            s.size()
                        ),
                    });
                }
                // .bss has no bytes in the file (SHT_NOBITS), only a size in its header: its
                // map starts zeroed in the kernel, and holds bytes here only once a variable
                // is set, so no header field makes the parser allocate.
                let bytes = match s.file_range() {
                    None => None,
                    Some(_) => {
                        let bytes = s.data()?;
                        if bytes.len() as u64 != s.size() {
                            return Err(ObjectError::BadMapDefinition {
                                map: sname.to_string(),
                                reason: format!("section of {} bytes holds {} in the file", s.size(), bytes.len()),
                            });
                        }
                        Some(bytes.to_vec())
                    }
                };
                roles.insert(s.index(), Role::Data(maps.len()));
                maps.push(global_data_map(sname, s.size() as u32, bytes, 0));
            }
            _ => {}
        }
    }

    // Symbols: functions of code sections, variables of data sections, map definitions.
    let mut globals = HashMap::new();
    let mut hidden_subprograms = Vec::new();
    let mut map_symbols = Vec::new();
    for sym in file.symbols() {
        let SymbolSection::Section(idx) = sym.section() else {
            continue;
        };
        let sname = sym.name()?;
        if sym.kind() == SymbolKind::Data && !sname.is_empty() {
            let layout = section_names.get(&idx).and_then(|n| layouts.get_mut(n));
            if let Some(layout) = layout {
                layout.symbols.insert(sname.to_string(), sym.address() as u32);
            }
        }
        match (roles.get(&idx), sym.kind()) {
            (Some(Role::Code(i)), SymbolKind::Text) if is_hidden_global(&sym) && sections[*i].name == ".text" => {
                hidden_subprograms.push(sname.to_string());
                sections[*i].funcs.push(Func {
                    name: sname.to_string(),
                    start: sym.address() as usize / 8,
                    len: sym.size() as usize / 8,
                });
            }
            (Some(Role::Code(i)), SymbolKind::Text) => sections[*i].funcs.push(Func {
                name: sname.to_string(),
                start: sym.address() as usize / 8,
                len: sym.size() as usize / 8,
            }),
            (Some(Role::Data(m)), SymbolKind::Data) if !sname.is_empty() => {
                // set_global and global_bytes slice the section's bytes with these.
                let (offset, size) = (sym.address(), sym.size());
                let section = &maps[*m];
                check_in_section(sname, &section.name, offset, size, u64::from(section.value_size))?;
                globals.insert(sname.to_string(), Global { map: *m, offset: offset as usize, size: size as usize });
            }
            (Some(Role::Maps), SymbolKind::Data) => {
                // Relocations in .maps are matched to definitions by these.
                let section = file.section_by_index(idx)?;
                check_in_section(sname, section.name()?, sym.address(), sym.size(), section.size())?;
                map_symbols.push((sname.to_string(), sym.address(), sym.size()));
            }
            _ => {}
        }
    }
    // Only code within a function's bounds exists for the linker.
    for s in &mut sections {
        s.funcs.sort_by_key(|f| f.start);
        s.funcs.retain(|f| f.len > 0 && f.start + f.len <= s.insns.len());
    }

    // Programs: every non-local function of every code section but .text.
    let mut programs = Vec::new();
    for sym in file.symbols() {
        let SymbolSection::Section(idx) = sym.section() else {
            continue;
        };
        let Some(Role::Code(i)) = roles.get(&idx) else {
            continue;
        };
        if sym.kind() != SymbolKind::Text || sym.is_local() || sections[*i].name == ".text" {
            continue;
        }
        let section = &sections[*i];
        let name = sym.name()?.to_string();
        // A section name no kind uses leaves the program without one, as in libbpf: the
        // caller may set one, or not load it; only loading it is an error.
        let info = parse_section_name_with(&section.name, options);
        // The linker copies the program's instructions with these, after the maps exist:
        // checked now, so a corrupt object creates nothing.
        let (offset, size) = (sym.address(), sym.size());
        if offset % 8 != 0 || size % 8 != 0 {
            return Err(ObjectError::BadSymbol {
                symbol: name,
                section: section.name.clone(),
                reason: format!("{size} bytes at offset {offset} are not whole 8-byte instructions"),
            });
        }
        check_in_section(&name, &section.name, offset, size, section.insns.len() as u64 * 8)?;
        programs.push(ProgramSpec {
            name,
            section_name: section.name.clone(),
            section: *i,
            start: (offset / 8) as usize,
            len: (size / 8) as usize,
            kind: info.as_ref().map(|i| i.kind),
            expected_attach_type: info.as_ref().map_or(0, |i| i.expected_attach_type),
            prog_flags: info.as_ref().map_or(0, |i| i.prog_flags),
            target: info.as_ref().and_then(|i| i.target.clone()),
            autoload: info.as_ref().map_or(!section.name.starts_with('?'), |i| i.autoload),
        });
    }

    // BTF: fill in what clang leaves to the loader, then read map definitions from it.
    let mut externs = Vec::new();
    // `.kconfig` externs: their map (index among the data maps, then among all maps) and
    // places in it.
    let mut kconfig_map = None;
    let mut kconfig_vars = Vec::new();
    if let Some(btf) = btf.as_mut() {
        externs = btf::prepare_for_kernel(btf, &layouts)?;
        mark_static(btf, &hidden_subprograms)?;
        let layout = btf::kconfig::layout(btf).map_err(|e| match e {
            btf::kconfig::KconfigLayoutError::Btf(e) => ObjectError::Btf(e),
            ref unsupported @ btf::kconfig::KconfigLayoutError::Unsupported { ref name, .. } => {
                ObjectError::UnsupportedExtern {
                    name: name.clone(),
                    section: btf::kconfig::KCONFIG_SEC.into(),
                    reason: unsupported.to_string(),
                }
            }
        })?;
        if let Some(layout) = layout.filter(|l| !l.vars.is_empty()) {
            // Its bytes are the externs' values, filled in at load time.
            if layout.size as usize > MAX_DATA_SECTION {
                return Err(ObjectError::BadMapDefinition {
                    map: btf::kconfig::KCONFIG_SEC.into(),
                    reason: format!(
                        "{} bytes of externs, more than the {MAX_DATA_SECTION} bytes the kernel takes as one map value",
                        layout.size
                    ),
                });
            }
            kconfig_map = Some(maps.len());
            maps.push(global_data_map(btf::kconfig::KCONFIG_SEC, layout.size, None, layout.datasec));
            kconfig_vars = layout.vars;
        }
        for m in maps.iter_mut() {
            m.btf_value_type_id = btf.find_by_name_kind(&m.name, btf::kind::DATASEC).unwrap_or(0);
        }
        maps.splice(0..0, defined_maps(btf, &map_symbols)?);
    } else if !map_symbols.is_empty() {
        return Err(ObjectError::MissingBtf { what: "maps in SEC(\".maps\")".into() });
    }
    let defined = map_symbols.len();
    // Data map indices shifted by the defined maps inserted in front.
    for role in roles.values_mut() {
        if let Role::Data(m) = role {
            *m += defined;
        }
    }
    for g in globals.values_mut() {
        g.map += defined;
    }
    let kconfig_map = kconfig_map.map(|m| m + defined);
    let kconfig: Vec<KconfigExtern> = kconfig_vars
        .into_iter()
        .map(|var| {
            let weak = file.symbols().any(|s| s.is_undefined() && s.is_weak() && s.name() == Ok(var.name.as_str()));
            KconfigExtern { var, weak }
        })
        .collect();

    let btf_ext = match (&btf, btf_ext_data) {
        (Some(b), Some(data)) => Some(BtfExt::parse(data, b)?),
        _ => None,
    };

    // Relocations of code sections.
    for s in file.sections() {
        let Some(Role::Code(ci)) = roles.get(&s.index()) else {
            continue;
        };
        let ci = *ci;
        for (off, rel) in s.relocations() {
            let at = off as usize / 8;
            let err =
                |reason: String| ObjectError::BadRelocation { section: sections[ci].name.clone(), insn: at, reason };
            let RelocationTarget::Symbol(si) = rel.target() else {
                return Err(err("relocation without a symbol".into()));
            };
            let sym = file.symbol_by_index(si)?;
            let r_type = match rel.flags() {
                RelocationFlags::Elf { r_type } => r_type.0,
                _ => 0,
            };
            let insn = *sections[ci]
                .insns
                .get(at)
                .filter(|_| off % 8 == 0)
                .ok_or_else(|| err("offset outside the section".into()))?;
            if !(r_type == R_BPF_64_64 && insn.is_ld_imm64() || r_type == R_BPF_64_32 && insn.is_call()) {
                return Err(err(format!("relocation type {r_type} on an instruction with opcode {:#04x}", insn.code)));
            }
            let reloc = match sym.section() {
                SymbolSection::Undefined => {
                    let name = sym.name()?.to_string();
                    if let (Some(map), Some(k)) = (kconfig_map, kconfig.iter().find(|k| k.var.name == name)) {
                        // A kconfig value is read from the `.kconfig` map like global data.
                        let offset = u32::try_from(i64::from(k.var.offset) + i64::from(insn.imm))
                            .map_err(|_| err(format!("negative offset into kconfig extern `{name}`")))?;
                        Reloc::Data { map, offset }
                    } else if externs.iter().any(|e| e.name == name) {
                        Reloc::Extern { name, weak: sym.is_weak() }
                    } else {
                        let section = extern_section(btf.as_ref(), &name).unwrap_or_else(|| "(none)".into());
                        let reason = "only __ksym and __kconfig externs are supported".into();
                        return Err(ObjectError::UnsupportedExtern { name, section, reason });
                    }
                }
                SymbolSection::Section(idx) => {
                    let sym_off = if sym.kind() == SymbolKind::Section { 0 } else { sym.address() };
                    match roles.get(&idx) {
                        Some(Role::Code(target)) => {
                            // i128: no symbol value and addend can overflow it.
                            let (sym_off, imm) = (i128::from(sym_off), i128::from(insn.imm));
                            let target_insn = if insn.is_call() { sym_off / 8 + imm + 1 } else { (sym_off + imm) / 8 };
                            let target_insn = usize::try_from(target_insn)
                                .ok()
                                .filter(|&t| t < sections[*target].insns.len())
                                .ok_or_else(|| err(format!("call target {target_insn} is outside its section")))?;
                            Reloc::Code { section: *target, insn: target_insn }
                        }
                        Some(Role::Maps) => {
                            let offset = if sym.kind() == SymbolKind::Section { insn.imm as u64 } else { sym_off };
                            let map = maps[..defined]
                                .iter()
                                .position(|m| m.section_offset == offset)
                                .ok_or_else(|| err(format!("no map defined at offset {offset} of .maps")))?;
                            Reloc::Map { map }
                        }
                        Some(Role::Data(map)) => {
                            let offset = u32::try_from(i128::from(sym_off) + i128::from(insn.imm))
                                .map_err(|_| err("offset into global data outside 0..4 GiB".into()))?;
                            Reloc::Data { map: *map, offset }
                        }
                        _ => {
                            let target = file.section_by_index(idx)?.name()?.to_string();
                            return Err(err(format!(
                                "refers to `{}` in section `{target}`, which is not code, a map or global data",
                                sym.name()?
                            )));
                        }
                    }
                }
                other => {
                    return Err(err(format!("symbol `{}` has unsupported location {other:?}", sym.name()?)));
                }
            };
            sections[ci].relocs.insert(at, reloc);
        }
    }

    // Map-in-map initial values: relocations in .maps pointing at other maps.
    if let Some(idx) = maps_section {
        let s = file.section_by_index(idx)?;
        for (off, rel) in s.relocations() {
            let RelocationTarget::Symbol(si) = rel.target() else {
                continue;
            };
            let target = file.symbol_by_index(si)?.name()?.to_string();
            let Some((outer, start, _)) =
                map_symbols.iter().find(|(_, start, size)| off >= *start && off < start + size)
            else {
                continue;
            };
            let outer_idx = maps[..defined].iter().position(|m| &m.name == outer).unwrap();
            let values_off = values_member_offset(btf.as_ref(), outer)?;
            let slot =
                (off - start).checked_sub(values_off).map(|o| o / 8).ok_or_else(|| ObjectError::BadMapDefinition {
                    map: outer.clone(),
                    reason: "relocation before its `values` field".into(),
                })?;
            maps[outer_idx].slots.push((slot as u32, target));
        }
    }

    Ok(Object {
        name: sanitize_name(name),
        license,
        kern_version,
        btf,
        btf_ext,
        externs,
        sections,
        programs,
        maps,
        globals,
        kconfig,
        kconfig_map,
        kconfig_extra: options.kconfig.clone(),
    })
}

/// Fails unless `size` bytes at `offset` lie within a section of `section_size` bytes.
fn check_in_section(symbol: &str, section: &str, offset: u64, size: u64, section_size: u64) -> Result<(), ObjectError> {
    if offset.checked_add(size).is_some_and(|end| end <= section_size) {
        return Ok(());
    }
    Err(ObjectError::BadSymbol {
        symbol: symbol.to_string(),
        section: section.to_string(),
        reason: format!("its {size} bytes at offset {offset} run past the end of the section ({section_size} bytes)"),
    })
}

/// A global or weak symbol of hidden or internal visibility (`__hidden`, or
/// `__attribute__((visibility("hidden")))`).
fn is_hidden_global(sym: &object::Symbol<'_, '_>) -> bool {
    let object::SymbolFlags::Elf { st_other, .. } = sym.flags() else {
        return false;
    };
    let visibility = st_other.visibility();
    !sym.is_local() && (visibility == object::elf::STV_HIDDEN || visibility == object::elf::STV_INTERNAL)
}

/// libbpf's `mark_btf_static`: a hidden global subprogram's BTF `FUNC` becomes static, so
/// the verifier checks it with the context of each caller rather than on its own (where
/// e.g. a `ctx` argument is unknown and the caller "passes invalid args").
fn mark_static(btf: &mut Btf, names: &[String]) -> Result<(), ObjectError> {
    for name in names {
        let found = btf.ids_by_name(name).iter().copied().find(|&id| {
            matches!(btf.type_by_id(id).map(|t| &t.kind), Ok(TypeKind::Func { linkage: btf::FuncLinkage::Global, .. }))
        });
        if let Some(id) = found
            && let TypeKind::Func { linkage, .. } = &mut btf.type_mut(id)?.kind
        {
            *linkage = btf::FuncLinkage::Static;
        }
    }
    Ok(())
}

fn is_data_section(name: &str) -> bool {
    [".data", ".rodata", ".bss"]
        .iter()
        .any(|p| name == *p || name.strip_prefix(p).is_some_and(|rest| rest.starts_with('.')))
}

/// The BTF-defined maps of `.maps`, in symbol order.
fn defined_maps(btf: &Btf, symbols: &[(String, u64, u64)]) -> Result<Vec<super::MapSpec>, ObjectError> {
    let mut out = Vec::new();
    for (name, offset, _) in symbols {
        let var = btf
            .ids_by_name(name)
            .iter()
            .copied()
            .find(|&id| matches!(btf.type_by_id(id).map(|t| &t.kind), Ok(TypeKind::Var { .. })))
            .ok_or_else(|| ObjectError::BadMapDefinition {
                map: name.clone(),
                reason: "no BTF variable describes it".into(),
            })?;
        let TypeKind::Var { target, .. } = btf.type_by_id(var)?.kind else { unreachable!() };
        out.push(parse_btf_map(btf, name, target, *offset)?);
    }
    Ok(out)
}

/// Byte offset of the `values` member in a map-in-map definition.
fn values_member_offset(btf: Option<&Btf>, map: &str) -> Result<u64, ObjectError> {
    let missing = || ObjectError::BadMapDefinition {
        map: map.to_string(),
        reason: "initial values need a `values` field".into(),
    };
    let btf = btf.ok_or_else(missing)?;
    let var = btf.find_by_name_kind(map, btf::kind::VAR).ok_or_else(missing)?;
    let TypeKind::Var { target, .. } = btf.type_by_id(var)?.kind else {
        return Err(missing());
    };
    let def = btf.type_by_id(btf.skip_modifiers(target)?)?;
    def.kind
        .members()
        .iter()
        .find(|m| btf.string_at(m.name_off).ok() == Some("values"))
        .map(|m| u64::from(m.bit_offset(def.kind_flag) / 8))
        .ok_or_else(missing)
}

/// The BTF data section declaring an extern (`.kconfig`, `.ksyms`), for error messages.
fn extern_section(btf: Option<&Btf>, name: &str) -> Option<String> {
    let btf = btf?;
    btf.types().find_map(|(id, t)| match &t.kind {
        TypeKind::Datasec { vars, .. } if vars.iter().any(|v| btf.name(v.type_id) == name) => {
            Some(btf.name(id).to_string())
        }
        _ => None,
    })
}

/// Object names prefix kernel map names, which allow only `[A-Za-z0-9_.]`.
fn sanitize_name(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' { c } else { '_' }).collect()
}
