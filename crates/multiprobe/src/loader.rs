//! [`Object::load`]: from a parsed object to maps and programs in the kernel.
//!
//! In order: load the program BTF (optional: without it programs lose line info and maps
//! their type info, which libbpf also tolerates), create the maps (reusing pinned ones),
//! resolve externs and CO-RE relocations against the kernel's BTF (read only if needed), then
//! link and load every program marked for loading. Anything created is released on failure.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::btf::{self, Btf, CoreOutcome, ExternKind};
use crate::btf_target::KernelBtfs;
use crate::error::LoadError;
use crate::ksym::{ModuleFds, resolve_kfunc, resolve_ksym};
use crate::map::{Map, UpdateFlags};
use crate::map_create::{create_map, initialize, reuse_pinned};
use crate::object::{
    CodeSection, ExternValue, MapSpec, Object, ObjectError, Pinning, ProgramKind, ProgramSpec, Resolver, link_program,
};
use crate::program::{LoadAttrs, Program, Recipe};
use crate::sys;

/// Where maps marked `LIBBPF_PIN_BY_NAME` are pinned unless the object says otherwise.
pub const DEFAULT_PIN_ROOT: &str = "/sys/fs/bpf";

/// An object whose maps and programs are in the kernel.
#[derive(Debug)]
pub struct LoadedObject {
    name: String,
    programs: Vec<Program>,
    maps: Vec<Map>,
    /// Programs the object has but that were not loaded (autoload off).
    not_loaded: Vec<String>,
    warnings: Vec<String>,
}

impl LoadedObject {
    /// Object name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The loaded programs.
    pub fn programs(&self) -> impl Iterator<Item = &Program> {
        self.programs.iter()
    }
    /// The loaded program named `name`.
    pub fn program(&self, name: &str) -> Option<&Program> {
        self.programs.iter().find(|p| p.name() == name)
    }
    /// Whether the object has a program `name` that was not loaded (autoload off).
    pub fn is_not_loaded(&self, name: &str) -> bool {
        self.not_loaded.iter().any(|n| n == name)
    }
    /// The maps.
    pub fn maps(&self) -> impl Iterator<Item = &Map> {
        self.maps.iter()
    }
    /// The map named `name` (`.rodata`, `.data`, `.bss` for global data).
    pub fn map(&self, name: &str) -> Option<&Map> {
        self.maps.iter().find(|m| m.name() == name)
    }
    /// Things that did not stop the load but lost something (e.g. BTF the kernel refused).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

impl Object {
    /// Creates the maps and loads the programs marked for loading.
    pub fn load(&self) -> Result<LoadedObject, LoadError> {
        let to_load: Vec<_> = self.programs.iter().filter(|p| p.autoload).collect();
        // What each program loads as, attach targets found, before anything is created.
        let mut kernel_btfs = KernelBtfs::default();
        // A load that parses the kernel's BTF anyway finds BTF attach targets through its name
        // index: a scan of 100,000+ raw types per target otherwise (bcc's klockstat has 28).
        if self.needs_kernel_btf()
            && to_load.iter().any(|p| p.kind.is_some_and(ProgramKind::needs_btf_target))
            && let Ok(parsed) = btf::kernel::vmlinux()
        {
            kernel_btfs.use_parsed(parsed);
        }
        let attrs = to_load.iter().map(|p| load_attrs(p, &mut kernel_btfs)).collect::<Result<Vec<_>, _>>()?;
        let mut warnings = Vec::new();
        let kconfig = match self.kconfig_map {
            Some(m) => {
                let size = self.maps[m].value_size as usize;
                let (data, warning) = crate::kconfig::values(&self.kconfig, self.kconfig_extra.as_deref(), size)?;
                warnings.extend(warning);
                Some((m, data))
            }
            None => None,
        };
        let btf_fd = self.load_btf(&mut warnings);
        let maps = self.create_maps(btf_fd.as_deref(), kconfig, &mut warnings)?;

        let mut kernel: Option<Arc<Btf>> = None;
        let mut kernel_btf = |why: &str| -> Result<Arc<Btf>, LoadError> {
            if let Some(k) = &kernel {
                return Ok(Arc::clone(k));
            }
            let k = btf::kernel::vmlinux().map_err(|source| LoadError::KernelBtf { why: why.to_string(), source })?;
            kernel = Some(Arc::clone(&k));
            Ok(k)
        };

        let used_sections = used_sections(self, &to_load);
        let mut module_fds = ModuleFds::default();
        let externs = self.resolve_externs(&used_sections, &mut kernel_btf, &mut kernel_btfs, &mut module_fds)?;
        let fd_array = module_fds.into_fds();
        let (sections, poisons) = self.apply_core(&used_sections, &mut kernel_btf)?;

        let resolver = LoadResolver { maps: &maps, externs: &externs };
        let mut programs = Vec::new();
        for (spec, attrs) in to_load.iter().zip(&attrs) {
            let linked = link_program(self, &sections, spec, &resolver)?;
            let recipe = Recipe {
                insns: linked.insns,
                func_info: if btf_fd.is_some() { linked.func_info } else { Vec::new() },
                line_info: if btf_fd.is_some() { linked.line_info } else { Vec::new() },
                license: self.license.clone(),
                kern_version: self.kern_version,
                btf_fd: btf_fd.clone(),
                _maps: maps.clone(),
                missing_kfuncs: linked.missing_kfuncs,
                core_poisons: poisons.clone(),
                fd_array: fd_array.clone(),
            };
            programs.push(Program::load(&spec.name, attrs, spec.target.clone(), Arc::new(recipe))?);
        }
        let not_loaded = self.programs.iter().filter(|p| !p.autoload).map(|p| p.name.clone()).collect();
        Ok(LoadedObject { name: self.name.clone(), programs, maps, not_loaded, warnings })
    }

    /// Whether loading reads the kernel's parsed BTF whatever the programs: CO-RE
    /// relocations or kfunc and `__ksym` externs (an over-estimate: some relocations and
    /// externs may belong to programs not loaded).
    fn needs_kernel_btf(&self) -> bool {
        !self.externs.is_empty()
            || self.btf_ext.as_ref().is_some_and(|e| e.core_relos.by_section.values().any(|v| !v.is_empty()))
    }

    /// Loads the program BTF; on refusal, goes on without it and says so.
    fn load_btf(&self, warnings: &mut Vec<String>) -> Option<Arc<OwnedFd>> {
        let btf = self.btf.as_ref()?;
        let bytes = btf.to_bytes();
        match sys::btf_load(&bytes, None) {
            Ok(fd) => Some(Arc::new(fd)),
            Err(e) => {
                let mut log = vec![0u8; 1 << 16];
                let _ = sys::btf_load(&bytes, Some(&mut log));
                let end = log.iter().position(|&b| b == 0).unwrap_or(0);
                let last = String::from_utf8_lossy(&log[..end]).lines().last().unwrap_or("").to_string();
                warnings.push(format!(
                    "the kernel refused the object's BTF ({e}; {last}): loading without type information"
                ));
                None
            }
        }
    }

    /// Creates the maps; `kconfig` is the `.kconfig` map's index and contents.
    fn create_maps(
        &self,
        btf_fd: Option<&OwnedFd>,
        kconfig: Option<(usize, Vec<u8>)>,
        warnings: &mut Vec<String>,
    ) -> Result<Vec<Map>, LoadError> {
        let mut maps: Vec<Map> = Vec::with_capacity(self.maps.len());
        for (i, spec) in self.maps.iter().enumerate() {
            let with_values;
            let spec = match &kconfig {
                Some((k, data)) if *k == i => {
                    with_values = MapSpec { data: Some(data.clone()), ..spec.clone() };
                    &with_values
                }
                _ => spec,
            };
            let pin = self.pin_path(spec);
            if let Some(path) = &pin
                && path.exists()
            {
                maps.push(reuse_pinned(spec, path)?);
                continue;
            }
            let map = create_map(self, spec, btf_fd, warnings)?;
            initialize(spec, &map)?;
            if let Some(path) = &pin {
                map.pin(path)?;
            }
            maps.push(map);
        }
        // Map-in-map slots name other maps: fill them once every map exists.
        for (spec, map) in self.maps.iter().zip(&maps) {
            for (slot, target) in &spec.slots {
                let inner = maps.iter().find(|m| m.name() == target).ok_or_else(|| {
                    LoadError::Object(ObjectError::BadMapDefinition {
                        map: spec.name.clone(),
                        reason: format!("slot {slot} names unknown map `{target}`"),
                    })
                })?;
                let fd = inner.fd().as_raw_fd() as u32;
                map.update(slot, &fd, UpdateFlags::Any)?;
            }
        }
        Ok(maps)
    }

    fn pin_path(&self, spec: &MapSpec) -> Option<PathBuf> {
        spec.pin_path
            .clone()
            .or_else(|| (spec.pinning == Pinning::ByName).then(|| Path::new(DEFAULT_PIN_ROOT).join(&spec.name)))
    }

    /// Resolves every extern the loaded programs reference; module BTF objects that kfunc
    /// calls and variables name go into `module_fds`.
    fn resolve_externs(
        &self,
        used_sections: &[usize],
        kernel_btf: &mut dyn FnMut(&str) -> Result<Arc<Btf>, LoadError>,
        kernel_btfs: &mut KernelBtfs,
        module_fds: &mut ModuleFds,
    ) -> Result<HashMap<String, ExternValue>, LoadError> {
        let mut out = HashMap::new();
        for &si in used_sections {
            for reloc in self.sections[si].relocs.values() {
                let crate::object::Reloc::Extern { name, weak } = reloc else {
                    continue;
                };
                if out.contains_key(name) {
                    continue;
                }
                let ext = self.externs.iter().find(|e| &e.name == name).expect("checked at parse time");
                let value = match ext.kind {
                    ExternKind::Func { func_id } => {
                        let kernel = kernel_btf(&format!("kfunc `{name}`"))?;
                        resolve_kfunc(self.btf.as_ref(), func_id, &kernel, kernel_btfs, module_fds, name, *weak)?
                    }
                    ExternKind::Var { type_id } => {
                        let kernel = kernel_btf(&format!("kernel symbol `{name}`"))?;
                        resolve_ksym(&kernel, kernel_btfs, module_fds, name, type_id, *weak)?
                    }
                };
                out.insert(name.clone(), value);
            }
        }
        Ok(out)
    }

    /// Applies CO-RE relocations to copies of the sections that have them.
    fn apply_core(
        &self,
        used_sections: &[usize],
        kernel_btf: &mut dyn FnMut(&str) -> Result<Arc<Btf>, LoadError>,
    ) -> Result<(Vec<CodeSection>, Vec<String>), LoadError> {
        let mut sections = self.sections.clone();
        let mut poisons = Vec::new();
        let (Some(local), Some(ext)) = (&self.btf, &self.btf_ext) else {
            return Ok((sections, poisons));
        };
        for &si in used_sections {
            let section = &mut sections[si];
            let relos = ext.core_relos.section(&section.name);
            if relos.is_empty() {
                continue;
            }
            let target = if relos.iter().any(|r| r.kind.needs_target()) {
                kernel_btf("CO-RE relocations")?
            } else {
                Arc::new(Btf::new())
            };
            // One relocator per section keeps the kernel's candidate types between records.
            let mut relocator = btf::CoreRelocator::new(local, &target);
            for relo in relos {
                let outcome = relocator
                    .relocate(relo, &mut section.insns)
                    .map_err(|source| LoadError::Core { section: section.name.clone(), source })?;
                if let CoreOutcome::Poisoned { reason } = outcome {
                    poisons.push(reason);
                }
            }
        }
        Ok((sections, poisons))
    }
}

/// How `spec` loads: its kind (which it must have), expected attach type and flags, and for
/// kinds attached by BTF id, its target found in the kernel's or a module's BTF.
fn load_attrs(spec: &ProgramSpec, kernel_btfs: &mut KernelBtfs) -> Result<LoadAttrs, LoadError> {
    let kind = spec
        .kind
        .ok_or_else(|| LoadError::NoKind { program: spec.name.clone(), section: spec.section_name.clone() })?;
    let unsupported = |what: &str| LoadError::Unsupported {
        program: spec.name.clone(),
        section: spec.section_name.clone(),
        what: what.to_string(),
    };
    match kind {
        ProgramKind::StructOps => return Err(unsupported("struct_ops (programs of a struct_ops map)")),
        ProgramKind::Freplace => {
            return Err(unsupported("freplace (it needs the BPF program whose function it replaces)"));
        }
        _ => {}
    }
    let mut attrs = LoadAttrs {
        kind,
        expected_attach_type: spec.expected_attach_type,
        prog_flags: spec.prog_flags,
        attach_btf_id: 0,
        attach_btf_obj: None,
    };
    if kind.needs_btf_target() {
        let target = spec.target.as_deref().ok_or_else(|| LoadError::NoAttachTarget {
            program: spec.name.clone(),
            section: spec.section_name.clone(),
            prefix: kind.section_prefix().to_string(),
        })?;
        let found = kernel_btfs.find_attach_target(spec.expected_attach_type, target).map_err(|reason| {
            LoadError::AttachTarget { program: spec.name.clone(), target: target.to_string(), reason }
        })?;
        attrs.attach_btf_id = found.btf_id;
        attrs.attach_btf_obj = found.module;
    }
    Ok(attrs)
}

/// Sections holding code of the programs to load, subprograms included, each once (a
/// section can hold several programs; relocating it twice would corrupt it).
fn used_sections(obj: &Object, programs: &[&ProgramSpec]) -> Vec<usize> {
    let mut used: Vec<usize> = Vec::new();
    for p in programs {
        if !used.contains(&p.section) {
            used.push(p.section);
        }
    }
    let mut i = 0;
    while i < used.len() {
        for r in obj.sections[used[i]].relocs.values() {
            if let crate::object::Reloc::Code { section, .. } = r
                && !used.contains(section)
            {
                used.push(*section);
            }
        }
        i += 1;
    }
    used
}

struct LoadResolver<'a> {
    maps: &'a [Map],
    externs: &'a HashMap<String, ExternValue>,
}

impl Resolver for LoadResolver<'_> {
    fn map_fd(&self, index: usize) -> RawFd {
        self.maps[index].fd().as_raw_fd()
    }

    fn extern_value(&self, name: &str) -> Result<ExternValue, ObjectError> {
        Ok(self.externs.get(name).copied().unwrap_or(ExternValue::Missing))
    }
}
