//! BPF ELF objects as clang writes them, parsed and adjustable, with no system calls.
//!
//! [`Object::open`] reads programs (one per function in an executable section, typed by the
//! section name when libbpf knows it), BTF-defined maps, global data and relocations. Before [`Object::load`]
//! a caller may set `.rodata` constants, resize maps, pick which
//! programs load and change how a program is loaded.

mod elf;
mod linker;
mod maps;
mod program_kind;
mod section;
mod section_defs;
#[cfg(test)]
mod section_tests;

pub use maps::{MapOrigin, MapSpec, MapType, Pinning};
pub use section::{
    OpenOptions, PROG_F_SLEEPABLE, PROG_F_XDP_HAS_FRAGS, ProgramKind, SectionHandler, SectionInfo, parse_section_name,
    parse_section_name_with,
};

pub(crate) use linker::{ExternValue, Resolver, link_program};

use std::collections::{BTreeMap, HashMap};
use std::ffi::CString;
use std::path::Path;

use crate::btf::{Btf, BtfError, BtfExt, Extern};
use crate::insn::Insn;

/// Why an object could not be parsed, or an adjustment not made.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs)] // variant fields are named in the messages
pub enum ObjectError {
    /// The object file could not be read.
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: std::io::Error },
    /// Not ELF, or ELF the `object` crate cannot parse.
    #[error("not a valid ELF object: {0}")]
    Elf(#[from] ::object::Error),
    /// ELF for another machine.
    #[error("not a BPF object: machine is {machine} (compile with clang -target bpf)")]
    NotBpf { machine: String },
    /// Big-endian BPF.
    #[error("big-endian BPF objects are not supported (compile with -target bpfel or bpf on a little-endian host)")]
    BigEndian,
    /// A legacy `maps` section.
    #[error(
        "section `maps` holds legacy map definitions, which are not supported: declare maps in \
         SEC(\".maps\") with __uint/__type (BTF-defined maps)"
    )]
    LegacyMaps,
    /// A code section whose size is not a whole number of instructions.
    #[error("section `{section}` is {len} bytes, not a whole number of 8-byte instructions")]
    BadCode { section: String, len: usize },
    /// A relocation that does not fit its instruction or points nowhere sensible.
    #[error("relocation at instruction {insn} of section `{section}`: {reason}")]
    BadRelocation { section: String, insn: usize, reason: String },
    /// A map definition that cannot be read.
    #[error("map `{map}`: {reason}")]
    BadMapDefinition { map: String, reason: String },
    /// BTF is needed but missing.
    #[error("{what} needs BTF, but the object has no .BTF section (compile with -g)")]
    MissingBtf { what: String },
    /// An extern that is not supported: in no `.ksyms` or `.kconfig` section, or a kconfig
    /// extern of a type libbpf refuses too.
    #[error("extern `{name}` in section {section} is not supported: {reason}")]
    UnsupportedExtern { name: String, section: String, reason: String },
    /// The object's BTF is malformed.
    #[error("invalid BTF in the object: {0}")]
    Btf(#[from] BtfError),
    /// A symbol that does not fit in its section, or not on instruction boundaries.
    #[error(
        "symbol `{symbol}` in section `{section}`: {reason} (the object is corrupt: rebuild it with clang -target bpf)"
    )]
    BadSymbol { symbol: String, section: String, reason: String },
    /// No global variable of that name.
    #[error("no global variable named `{name}` in .data, .rodata or .bss (available: {available})")]
    UnknownGlobal { name: String, available: String },
    /// A value of the wrong size for a global variable.
    #[error("global variable `{name}` is {expected} bytes, the value given is {got} bytes")]
    GlobalSize { name: String, expected: usize, got: usize },
}

/// A function in a code section: a program or a subprogram.
#[derive(Debug, Clone)]
pub(crate) struct Func {
    pub name: String,
    /// First instruction, as an index into the section.
    pub start: usize,
    /// Length in instructions.
    pub len: usize,
}

/// What an instruction refers to, according to its ELF relocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reloc {
    /// `call` or `ld_imm64` (callback address) of a function: section and instruction index.
    Code { section: usize, insn: usize },
    /// `ld_imm64` of a map (index into `Object::maps`).
    Map { map: usize },
    /// `ld_imm64` of global data: map index and byte offset in its value.
    Data { map: usize, offset: u32 },
    /// `call` or `ld_imm64` of an extern (`__ksym`) symbol.
    Extern { name: String, weak: bool },
}

/// One executable section: its instructions, functions and relocations.
#[derive(Debug, Clone)]
pub(crate) struct CodeSection {
    pub name: String,
    pub insns: Vec<Insn>,
    pub funcs: Vec<Func>,
    pub relocs: BTreeMap<usize, Reloc>,
}

impl CodeSection {
    /// The function containing instruction `idx`.
    pub fn func_at(&self, idx: usize) -> Option<&Func> {
        self.funcs.iter().find(|f| idx >= f.start && idx < f.start + f.len)
    }
}

/// A program as the object defines it, adjustable before load.
#[derive(Debug, Clone)]
pub struct ProgramSpec {
    pub(crate) name: String,
    pub(crate) section_name: String,
    pub(crate) section: usize,
    pub(crate) start: usize,
    pub(crate) len: usize,
    /// `None` for a section name no program kind uses: the caller must set one to load it.
    pub(crate) kind: Option<ProgramKind>,
    pub(crate) expected_attach_type: u32,
    pub(crate) prog_flags: u32,
    pub(crate) target: Option<String>,
    pub(crate) autoload: bool,
}

impl ProgramSpec {
    /// Function name of the program.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// ELF section it was found in (`kprobe.multi/vfs_*`).
    pub fn section_name(&self) -> &str {
        &self.section_name
    }
    /// Kind, from the section name (or as set by [`ProgramSpec::set_kind`]); `None` when the
    /// section name is none libbpf knows and no kind was set: such a program cannot load.
    pub fn kind(&self) -> Option<ProgramKind> {
        self.kind
    }
    /// Changes how the program is loaded (libbpf's `bpf_program__set_type`), e.g. a
    /// `kprobe.multi` program as a plain kprobe for kernels without kprobe_multi, or gives a
    /// program in a section of its own a kind. The expected attach type becomes the kind's
    /// default ([`ProgramKind::expected_attach_type`]); the attach target and flags stay.
    pub fn set_kind(&mut self, kind: ProgramKind) -> &mut Self {
        self.kind = Some(kind);
        self.expected_attach_type = kind.expected_attach_type();
        self
    }
    /// `expected_attach_type` the program is loaded with.
    pub fn expected_attach_type(&self) -> u32 {
        self.expected_attach_type
    }
    /// Sets `expected_attach_type` (libbpf's `bpf_program__set_expected_attach_type`).
    pub fn set_expected_attach_type(&mut self, attach_type: u32) -> &mut Self {
        self.expected_attach_type = attach_type;
        self
    }
    /// `prog_flags` the program is loaded with (e.g. [`PROG_F_SLEEPABLE`] for `fentry.s`).
    pub fn flags(&self) -> u32 {
        self.prog_flags
    }
    /// Sets `prog_flags` (libbpf's `bpf_program__set_flags`).
    pub fn set_flags(&mut self, flags: u32) -> &mut Self {
        self.prog_flags = flags;
        self
    }
    /// The attach target written in the section name (`vfs_*` in `kprobe.multi/vfs_*`), or
    /// set by [`ProgramSpec::set_attach_target`].
    pub fn attach_target(&self) -> Option<&str> {
        self.target.as_deref()
    }
    /// Sets the attach target before load (libbpf's `bpf_program__set_attach_target`), e.g.
    /// the kernel function of an `fentry` program declared as `SEC("fentry/dummy_fn")`.
    /// Programs whose kind needs a BTF target ([`ProgramKind::needs_btf_target`]) find it
    /// at load time in the kernel's BTF or its modules' (`MODULE:FUNC` picks a module).
    pub fn set_attach_target(&mut self, target: impl Into<String>) -> &mut Self {
        self.target = Some(target.into());
        self
    }
    /// Whether [`Object::load`] loads this program (false for sections starting with `?`).
    pub fn autoload(&self) -> bool {
        self.autoload
    }
    /// Chooses whether [`Object::load`] loads this program.
    pub fn set_autoload(&mut self, autoload: bool) -> &mut Self {
        self.autoload = autoload;
        self
    }
    /// Number of instructions of the program's own function (subprograms not included).
    pub fn instruction_count(&self) -> usize {
        self.len
    }
}

/// A `.kconfig` extern: its place in the `.kconfig` map, and whether it may be missing.
#[derive(Debug, Clone)]
pub(crate) struct KconfigExtern {
    pub var: crate::btf::kconfig::KconfigVar,
    pub weak: bool,
}

/// A global variable's place: which data map, where in its value, how big. The parser
/// checks that it lies within its section, so these slice the map's bytes safely.
#[derive(Debug, Clone)]
pub(crate) struct Global {
    pub map: usize,
    pub offset: usize,
    pub size: usize,
}

/// A parsed BPF ELF object, not yet loaded.
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut obj = multiprobe::Object::open("bpf/count.bpf.o")?;
/// obj.set_global("target_tgid", &std::process::id())?;
/// obj.map_mut("counts").unwrap().set_max_entries(1024);
/// let loaded = obj.load()?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Object {
    pub(crate) name: String,
    pub(crate) license: CString,
    pub(crate) kern_version: u32,
    pub(crate) btf: Option<Btf>,
    pub(crate) btf_ext: Option<BtfExt>,
    pub(crate) externs: Vec<Extern>,
    pub(crate) sections: Vec<CodeSection>,
    pub(crate) programs: Vec<ProgramSpec>,
    pub(crate) maps: Vec<MapSpec>,
    pub(crate) globals: HashMap<String, Global>,
    /// `.kconfig` externs, filled in at load from the kernel's config and feature probes.
    pub(crate) kconfig: Vec<KconfigExtern>,
    /// Index of the `.kconfig` map in `maps`.
    pub(crate) kconfig_map: Option<usize>,
    /// Kernel config lines given with [`OpenOptions::kconfig`], read before the system's.
    pub(crate) kconfig_extra: Option<String>,
}

impl Object {
    /// Reads and parses the object file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Object, ObjectError> {
        Object::open_with(path, &OpenOptions::default())
    }

    /// [`Object::open`] with options: section names of one's own ([`SectionHandler`]).
    pub fn open_with(path: impl AsRef<Path>, options: &OpenOptions) -> Result<Object, ObjectError> {
        let path = path.as_ref();
        let data =
            std::fs::read(path).map_err(|source| ObjectError::Io { path: path.display().to_string(), source })?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().trim_end_matches(".o").trim_end_matches(".bpf").to_string())
            .unwrap_or_default();
        Object::parse_with(&name, &data, options)
    }

    /// Parses an object held in memory (e.g. `include_bytes!`); `name` prefixes the kernel
    /// names of its global data maps.
    pub fn parse(name: &str, data: &[u8]) -> Result<Object, ObjectError> {
        elf::parse(name, data, &OpenOptions::default())
    }

    /// [`Object::parse`] with options.
    pub fn parse_with(name: &str, data: &[u8], options: &OpenOptions) -> Result<Object, ObjectError> {
        elf::parse(name, data, options)
    }

    /// Object name (file name without `.bpf.o`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The license the object declares (`SEC("license")`).
    pub fn license(&self) -> &str {
        self.license.to_str().unwrap_or("")
    }

    /// The programs, in object order.
    pub fn programs(&self) -> impl Iterator<Item = &ProgramSpec> {
        self.programs.iter()
    }

    /// The program named `name`.
    pub fn program(&self, name: &str) -> Option<&ProgramSpec> {
        self.programs.iter().find(|p| p.name == name)
    }

    /// The program named `name`, to adjust it.
    pub fn program_mut(&mut self, name: &str) -> Option<&mut ProgramSpec> {
        self.programs.iter_mut().find(|p| p.name == name)
    }

    /// The maps: BTF-defined ones, then global data sections.
    pub fn maps(&self) -> impl Iterator<Item = &MapSpec> {
        self.maps.iter()
    }

    /// The map named `name` (`.rodata` etc. for global data).
    pub fn map(&self, name: &str) -> Option<&MapSpec> {
        self.maps.iter().find(|m| m.name == name)
    }

    /// The map named `name`, to adjust it.
    pub fn map_mut(&mut self, name: &str) -> Option<&mut MapSpec> {
        self.maps.iter_mut().find(|m| m.name == name)
    }

    /// Whether the object has BTF (needed for CO-RE, kfuncs and BTF-defined maps).
    pub fn has_btf(&self) -> bool {
        self.btf.is_some()
    }

    /// Sets a global variable before load: typically a `const volatile` in `.rodata` that
    /// programs read as a constant (the verifier then prunes dead branches), or the initial
    /// value of a `.data`/`.bss` variable. `value` must be exactly the variable's size.
    pub fn set_global<T: bytemuck::NoUninit>(&mut self, name: &str, value: &T) -> Result<(), ObjectError> {
        self.set_global_bytes(name, bytemuck::bytes_of(value))
    }

    /// [`Object::set_global`] with raw bytes (arrays, structs from elsewhere).
    pub fn set_global_bytes(&mut self, name: &str, bytes: &[u8]) -> Result<(), ObjectError> {
        let g = self.global(name)?.clone();
        if g.size != bytes.len() {
            return Err(ObjectError::GlobalSize { name: name.to_string(), expected: g.size, got: bytes.len() });
        }
        let map = &mut self.maps[g.map];
        // A zero-filled section gets its bytes when a variable in it is first set.
        let data = map.data.get_or_insert_with(|| vec![0; map.value_size as usize]);
        data[g.offset..g.offset + g.size].copy_from_slice(bytes);
        Ok(())
    }

    /// The current bytes of a global variable.
    pub fn global_bytes(&self, name: &str) -> Result<&[u8], ObjectError> {
        /// What a zero-filled section none of whose variables was set reads as. Never
        /// written, so it costs address space, not memory: reads map the kernel's zero page.
        static ZEROS: [u8; elf::MAX_DATA_SECTION] = [0; elf::MAX_DATA_SECTION];
        let g = self.global(name)?;
        let data = self.maps[g.map].data.as_deref().unwrap_or(&ZEROS);
        Ok(&data[g.offset..g.offset + g.size])
    }

    fn global(&self, name: &str) -> Result<&Global, ObjectError> {
        self.globals.get(name).ok_or_else(|| {
            let mut names: Vec<&str> = self.globals.keys().map(String::as_str).collect();
            names.sort_unstable();
            ObjectError::UnknownGlobal {
                name: name.to_string(),
                available: if names.is_empty() { "none".into() } else { names.join(", ") },
            }
        })
    }
}

#[cfg(test)]
mod malformed_tests;
#[cfg(test)]
mod tests;
