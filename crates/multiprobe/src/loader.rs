//! [`Object::load`]: from a parsed object to maps and programs in the kernel.
//!
//! In order: load the program BTF (optional: without it programs lose line info and maps
//! their type info, which libbpf also tolerates), create the maps (reusing pinned ones),
//! resolve externs and CO-RE relocations against the kernel's BTF (read only if needed), then
//! link and load every program marked for loading. Anything created is released on failure.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::btf::{self, Btf, BtfError, CoreOutcome, ExternKind};
use crate::error::{LoadError, MapError};
use crate::map::{Map, UpdateFlags};
use crate::object::{
    CodeSection, ExternValue, MapOrigin, MapSpec, Object, ObjectError, Pinning, Resolver, link_program,
};
use crate::program::{Program, Recipe};
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
        let mut warnings = Vec::new();
        let btf_fd = self.load_btf(&mut warnings);
        let maps = self.create_maps(btf_fd.as_deref(), &mut warnings)?;
        let to_load: Vec<_> = self.programs.iter().filter(|p| p.autoload).collect();

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
        let externs = self.resolve_externs(&used_sections, &mut kernel_btf)?;
        let (sections, poisons) = self.apply_core(&used_sections, &mut kernel_btf)?;

        let resolver = LoadResolver { maps: &maps, externs: &externs };
        let mut programs = Vec::new();
        for spec in &to_load {
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
            };
            programs.push(Program::load(&spec.name, spec.kind, spec.target.clone(), Arc::new(recipe))?);
        }
        let not_loaded = self.programs.iter().filter(|p| !p.autoload).map(|p| p.name.clone()).collect();
        Ok(LoadedObject { name: self.name.clone(), programs, maps, not_loaded, warnings })
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

    fn create_maps(&self, btf_fd: Option<&OwnedFd>, warnings: &mut Vec<String>) -> Result<Vec<Map>, LoadError> {
        let mut maps: Vec<Map> = Vec::with_capacity(self.maps.len());
        for spec in &self.maps {
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

    /// Resolves every extern the loaded programs reference.
    fn resolve_externs(
        &self,
        used_sections: &[usize],
        kernel_btf: &mut dyn FnMut(&str) -> Result<Arc<Btf>, LoadError>,
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
                        resolve_kfunc(self.btf.as_ref(), func_id, &kernel, name, *weak)?
                    }
                    ExternKind::Var { type_id } => {
                        let kernel = kernel_btf(&format!("kernel symbol `{name}`"))?;
                        resolve_ksym(&kernel, name, type_id, *weak)?
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

/// Sections holding code of the programs to load, subprograms included, each once (a
/// section can hold several programs; relocating it twice would corrupt it).
fn used_sections(obj: &Object, programs: &[&crate::object::ProgramSpec]) -> Vec<usize> {
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

/// A kfunc by name in the kernel's BTF (ignoring a `___flavor` suffix), checked against the
/// program's declaration. A weak extern the kernel lacks, or declares differently, is missing.
fn resolve_kfunc(
    local: Option<&Btf>,
    func_id: u32,
    kernel: &Btf,
    name: &str,
    weak: bool,
) -> Result<ExternValue, LoadError> {
    let essential = name.split("___").next().unwrap_or(name);
    let fail = |reason: String| -> Result<ExternValue, LoadError> {
        if weak { Ok(ExternValue::Missing) } else { Err(LoadError::Kfunc { name: name.to_string(), reason }) }
    };
    let Some(kid) = kernel.find_by_name_kind(essential, btf::kind::FUNC) else {
        return fail(
            "not found in the kernel's BTF (kernel too old, or the kfunc lives in a module, which is not supported)"
                .into(),
        );
    };
    if let Some(local) = local {
        let (Ok(lp), Ok(kp)) = (func_proto(local, func_id), func_proto(kernel, kid)) else {
            return fail("its BTF has no prototype".into());
        };
        match btf::types_are_compat(local, lp, kernel, kp) {
            Ok(true) => {}
            _ => return fail("the kernel declares it with another prototype".into()),
        }
    }
    Ok(ExternValue::Kfunc { btf_id: kid, fd_index: 0 })
}

fn func_proto(btf: &Btf, func_id: u32) -> Result<u32, BtfError> {
    match btf.type_by_id(func_id)?.kind {
        btf::TypeKind::Func { proto, .. } => Ok(proto),
        ref other => Err(BtfError::WrongKind { id: func_id, found: other.name(), expected: "func" }),
    }
}

/// A kernel variable: typed ones by BTF id, `const void` ones by address from kallsyms.
fn resolve_ksym(kernel: &Btf, name: &str, type_id: u32, weak: bool) -> Result<ExternValue, LoadError> {
    let fail = |reason: &str| -> Result<ExternValue, LoadError> {
        if weak {
            Ok(ExternValue::Missing)
        } else {
            Err(LoadError::Ksym { name: name.to_string(), reason: reason.to_string() })
        }
    };
    if type_id == 0 {
        let kallsyms = std::fs::read_to_string("/proc/kallsyms").unwrap_or_default();
        let addr = kallsyms.lines().find_map(|l| {
            let mut f = l.split_whitespace();
            let addr = f.next()?;
            let _kind = f.next()?;
            (f.next()? == name).then(|| u64::from_str_radix(addr, 16).ok()).flatten()
        });
        return match addr {
            Some(0) => fail("/proc/kallsyms hides addresses from this user (needs root)"),
            Some(a) => Ok(ExternValue::Address(a)),
            None => fail("not in /proc/kallsyms (data symbols are listed only with CONFIG_KALLSYMS_ALL)"),
        };
    }
    match kernel.find_by_name_kind(name, btf::kind::VAR) {
        Some(id) => Ok(ExternValue::Var { btf_id: id, btf_obj_fd: 0 }),
        None => fail("no variable of that name in the kernel's BTF"),
    }
}

fn create_map(
    obj: &Object,
    spec: &MapSpec,
    btf_fd: Option<&OwnedFd>,
    warnings: &mut Vec<String>,
) -> Result<Map, LoadError> {
    let inner = match &spec.inner {
        Some(inner) => Some(create_map(obj, inner, btf_fd, warnings)?),
        None => None,
    };
    let kernel_name = kernel_map_name(&obj.name, spec);
    let mut max_entries = spec.max_entries;
    if spec.map_type == crate::object::MapType::PerfEventArray && max_entries == 0 {
        max_entries = crate::map::possible_cpus() as u32;
    }
    let mut req = sys::MapCreate {
        map_type: spec.map_type.to_u32(),
        name: &kernel_name,
        key_size: spec.key_size,
        value_size: spec.value_size,
        max_entries,
        map_flags: spec.flags,
        inner_map_fd: inner.as_ref().map(Map::fd),
        btf_fd: btf_fd.map(AsFd::as_fd).filter(|_| spec.btf_value_type_id != 0),
        btf_key_type_id: spec.btf_key_type_id,
        btf_value_type_id: spec.btf_value_type_id,
        map_extra: spec.map_extra,
    };
    let fd = match sys::map_create(&req) {
        Ok(fd) => fd,
        // Some map types reject BTF type info on some kernels: like libbpf, retry without.
        Err(e) if req.btf_fd.is_some() && e.raw_os_error() == Some(libc::EINVAL) => {
            req.btf_fd = None;
            let fd = sys::map_create(&req).map_err(|source| map_create_error(spec, source))?;
            warnings.push(format!("map `{}` created without BTF type info (the kernel refused it)", spec.name));
            fd
        }
        Err(e) => return Err(map_create_error(spec, e)),
    };
    Ok(Map::from_fd(fd, &spec.name)?)
}

fn map_create_error(spec: &MapSpec, source: io::Error) -> LoadError {
    let hint = match source.raw_os_error() {
        Some(libc::EPERM) => {
            Some("creating maps needs root or CAP_BPF; kernels before 5.11 also need a high RLIMIT_MEMLOCK".to_string())
        }
        Some(libc::EINVAL) if spec.map_type == crate::object::MapType::Ringbuf => {
            Some("a ring buffer's max_entries must be a power of two multiple of the page size".into())
        }
        Some(libc::EINVAL) => Some(format!(
            "the kernel rejected type {:?}, key size {}, value size {}, max_entries {}, flags {:#x}",
            spec.map_type, spec.key_size, spec.value_size, spec.max_entries, spec.flags
        )),
        Some(libc::E2BIG) | Some(libc::ENOMEM) => Some("the map is too large for this kernel or memory limit".into()),
        _ => None,
    };
    LoadError::MapCreate { map: spec.name.clone(), source, hint }
}

/// Kernel map names are 15 bytes: global data maps get libbpf's `<object prefix>.<section>`.
fn kernel_map_name(object: &str, spec: &MapSpec) -> String {
    match spec.origin {
        MapOrigin::GlobalData { .. } => {
            let prefix: String = object.chars().take(15usize.saturating_sub(spec.name.len()).min(8)).collect();
            format!("{prefix}{}", spec.name)
        }
        MapOrigin::Defined => spec.name.clone(),
    }
}

/// Writes a global data map's initial value; `.rodata` is then frozen so the verifier can
/// treat its contents as constants.
fn initialize(spec: &MapSpec, map: &Map) -> Result<(), LoadError> {
    if let Some(data) = &spec.data {
        map.update_bytes(&0u32.to_le_bytes(), data, UpdateFlags::Any)?;
    }
    if spec.origin == (MapOrigin::GlobalData { read_only: true }) {
        map.freeze()?;
    }
    Ok(())
}

/// Opens a pinned map and checks it is the map the object defines.
fn reuse_pinned(spec: &MapSpec, path: &Path) -> Result<Map, LoadError> {
    let map = Map::open_pinned(path, &spec.name).map_err(|e| match e {
        MapError::Pin(e) => LoadError::Pin(e),
        other => LoadError::Map(other),
    })?;
    let mismatch = |reason: String| LoadError::PinnedMapMismatch {
        map: spec.name.clone(),
        path: path.display().to_string(),
        reason,
    };
    if map.map_type() != spec.map_type {
        return Err(mismatch(format!("type {:?}, expected {:?}", map.map_type(), spec.map_type)));
    }
    let found = (map.key_size(), map.value_size(), map.max_entries());
    let wanted = (spec.key_size, spec.value_size, spec.max_entries);
    if found != wanted {
        return Err(mismatch(format!("key/value/max_entries {found:?}, expected {wanted:?}")));
    }
    Ok(map)
}
