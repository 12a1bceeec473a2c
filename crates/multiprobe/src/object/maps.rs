//! Map definitions: BTF-defined maps from `.maps`, and one array map per global data section.

use std::path::PathBuf;

use super::ObjectError;
use crate::btf::{Btf, TypeKind};

/// Map types (`enum bpf_map_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MapType {
    /// `BPF_MAP_TYPE_HASH`.
    Hash,
    /// `BPF_MAP_TYPE_ARRAY`.
    Array,
    /// `BPF_MAP_TYPE_PROG_ARRAY`.
    ProgArray,
    /// `BPF_MAP_TYPE_PERF_EVENT_ARRAY`.
    PerfEventArray,
    /// `BPF_MAP_TYPE_PERCPU_HASH`.
    PercpuHash,
    /// `BPF_MAP_TYPE_PERCPU_ARRAY`.
    PercpuArray,
    /// `BPF_MAP_TYPE_STACK_TRACE`.
    StackTrace,
    /// `BPF_MAP_TYPE_LRU_HASH`.
    LruHash,
    /// `BPF_MAP_TYPE_LRU_PERCPU_HASH`.
    LruPercpuHash,
    /// `BPF_MAP_TYPE_LPM_TRIE`.
    LpmTrie,
    /// `BPF_MAP_TYPE_ARRAY_OF_MAPS`.
    ArrayOfMaps,
    /// `BPF_MAP_TYPE_HASH_OF_MAPS`.
    HashOfMaps,
    /// `BPF_MAP_TYPE_QUEUE`.
    Queue,
    /// `BPF_MAP_TYPE_STACK`.
    Stack,
    /// `BPF_MAP_TYPE_RINGBUF`.
    Ringbuf,
    /// `BPF_MAP_TYPE_CGROUP_ARRAY`.
    CgroupArray,
    /// `BPF_MAP_TYPE_DEVMAP`.
    Devmap,
    /// `BPF_MAP_TYPE_SOCKMAP`.
    Sockmap,
    /// `BPF_MAP_TYPE_CPUMAP`.
    Cpumap,
    /// `BPF_MAP_TYPE_XSKMAP`.
    Xskmap,
    /// `BPF_MAP_TYPE_SOCKHASH`.
    Sockhash,
    /// `BPF_MAP_TYPE_DEVMAP_HASH`.
    DevmapHash,
    /// `BPF_MAP_TYPE_SK_STORAGE`.
    SkStorage,
    /// `BPF_MAP_TYPE_STRUCT_OPS`.
    StructOps,
    /// `BPF_MAP_TYPE_INODE_STORAGE`.
    InodeStorage,
    /// `BPF_MAP_TYPE_TASK_STORAGE`.
    TaskStorage,
    /// `BPF_MAP_TYPE_BLOOM_FILTER`.
    BloomFilter,
    /// `BPF_MAP_TYPE_USER_RINGBUF`.
    UserRingbuf,
    /// `BPF_MAP_TYPE_CGRP_STORAGE`.
    CgrpStorage,
    /// `BPF_MAP_TYPE_ARENA`.
    Arena,
    /// A type number this crate has no name for; it is passed to the kernel as is.
    Other(u32),
}

impl MapType {
    /// From the kernel's number.
    pub fn from_u32(v: u32) -> MapType {
        use MapType::*;
        match v {
            1 => Hash,
            2 => Array,
            3 => ProgArray,
            4 => PerfEventArray,
            5 => PercpuHash,
            6 => PercpuArray,
            7 => StackTrace,
            9 => LruHash,
            10 => LruPercpuHash,
            11 => LpmTrie,
            12 => ArrayOfMaps,
            13 => HashOfMaps,
            14 => Devmap,
            15 => Sockmap,
            16 => Cpumap,
            17 => Xskmap,
            18 => Sockhash,
            22 => Queue,
            23 => Stack,
            24 => SkStorage,
            25 => DevmapHash,
            26 => StructOps,
            27 => Ringbuf,
            28 => InodeStorage,
            29 => TaskStorage,
            30 => BloomFilter,
            31 => UserRingbuf,
            32 => CgrpStorage,
            33 => Arena,
            8 => CgroupArray,
            other => Other(other),
        }
    }

    /// The kernel's number.
    pub fn to_u32(self) -> u32 {
        use MapType::*;
        match self {
            Hash => 1,
            Array => 2,
            ProgArray => 3,
            PerfEventArray => 4,
            PercpuHash => 5,
            PercpuArray => 6,
            StackTrace => 7,
            LruHash => 9,
            LruPercpuHash => 10,
            LpmTrie => 11,
            ArrayOfMaps => 12,
            HashOfMaps => 13,
            CgroupArray => 8,
            Devmap => 14,
            Sockmap => 15,
            Cpumap => 16,
            Xskmap => 17,
            Sockhash => 18,
            Queue => 22,
            Stack => 23,
            SkStorage => 24,
            DevmapHash => 25,
            StructOps => 26,
            Ringbuf => 27,
            InodeStorage => 28,
            TaskStorage => 29,
            BloomFilter => 30,
            UserRingbuf => 31,
            CgrpStorage => 32,
            Arena => 33,
            Other(v) => v,
        }
    }

    /// Whether each value holds one slot per possible CPU.
    pub fn is_per_cpu(self) -> bool {
        matches!(self, MapType::PercpuHash | MapType::PercpuArray | MapType::LruPercpuHash)
    }

    /// Whether libbpf creates maps of this type without BTF type info whatever the object
    /// says (`bpf_object__create_map`): the kernel refuses key/value types for them, or
    /// some kernels do.
    pub fn strips_btf(self) -> bool {
        use MapType::*;
        matches!(
            self,
            PerfEventArray
                | CgroupArray
                | StackTrace
                | ArrayOfMaps
                | HashOfMaps
                | Devmap
                | DevmapHash
                | Cpumap
                | Xskmap
                | Sockmap
                | Sockhash
                | Queue
                | Stack
                | Arena
        )
    }

    /// Whether values are file descriptors of other maps.
    pub fn is_map_in_map(self) -> bool {
        matches!(self, MapType::ArrayOfMaps | MapType::HashOfMaps)
    }
}

/// `__uint(pinning, ...)` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pinning {
    /// Not pinned (`LIBBPF_PIN_NONE`).
    None,
    /// Pinned as `<pin root>/<map name>` and reused by the next load (`LIBBPF_PIN_BY_NAME`).
    ByName,
}

/// Where a map definition comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapOrigin {
    /// A BTF-defined map in `.maps`.
    Defined,
    /// The backing map of a global data section (`.data`, `.rodata`, `.bss`, `.data.*`, ...).
    GlobalData {
        /// Whether programs may only read it (`.rodata*`): created read-only and frozen.
        read_only: bool,
    },
}

/// A map as the object defines it, adjustable before load.
#[derive(Debug, Clone)]
pub struct MapSpec {
    pub(crate) name: String,
    pub(crate) map_type: MapType,
    pub(crate) key_size: u32,
    pub(crate) value_size: u32,
    pub(crate) max_entries: u32,
    pub(crate) flags: u32,
    pub(crate) map_extra: u64,
    pub(crate) pinning: Pinning,
    pub(crate) pin_path: Option<PathBuf>,
    pub(crate) btf_key_type_id: u32,
    pub(crate) btf_value_type_id: u32,
    pub(crate) inner: Option<Box<MapSpec>>,
    /// Initial contents of a global data map (its single value, `value_size` bytes); `None`
    /// for zeros (a `.bss` none of whose variables was set), which the kernel starts with.
    pub(crate) data: Option<Vec<u8>>,
    /// Map-in-map initial slots: (index, name of the map to store there).
    pub(crate) slots: Vec<(u32, String)>,
    pub(crate) origin: MapOrigin,
    /// Offset of the definition in its ELF section (for relocations).
    pub(crate) section_offset: u64,
}

impl MapSpec {
    /// Name as written in the object (`.rodata` etc. for global data).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Map type.
    pub fn map_type(&self) -> MapType {
        self.map_type
    }
    /// Key size in bytes.
    pub fn key_size(&self) -> u32 {
        self.key_size
    }
    /// Value size in bytes (per CPU for per-CPU maps).
    pub fn value_size(&self) -> u32 {
        self.value_size
    }
    /// Sets the value size before load (libbpf's `bpf_map__set_value_size`), e.g. a stack
    /// trace map declared with a key type only, whose values are `depth * 8` bytes. The
    /// value's BTF type no longer describes it, so the map is created without one.
    pub fn set_value_size(&mut self, size: u32) -> &mut Self {
        if size != self.value_size {
            self.btf_value_type_id = 0;
            self.btf_key_type_id = 0;
        }
        self.value_size = size;
        self
    }
    /// Sets the key size before load (libbpf's `bpf_map__set_key_size`); like
    /// [`MapSpec::set_value_size`], a new size drops the BTF types.
    pub fn set_key_size(&mut self, size: u32) -> &mut Self {
        if size != self.key_size {
            self.btf_value_type_id = 0;
            self.btf_key_type_id = 0;
        }
        self.key_size = size;
        self
    }
    /// Changes the map type before load (libbpf's `bpf_map__set_type`).
    pub fn set_type(&mut self, map_type: MapType) -> &mut Self {
        self.map_type = map_type;
        self
    }
    /// Gives a map-in-map its inner map definition before load (libbpf's
    /// `bpf_map__set_inner_map_fd`, with a definition rather than an fd: the loader creates
    /// the template map from it).
    pub fn set_inner_map(&mut self, inner: MapSpec) -> &mut Self {
        self.inner = Some(Box::new(inner));
        self
    }
    /// A map definition of one's own, e.g. an inner map for [`MapSpec::set_inner_map`].
    pub fn new(name: &str, map_type: MapType, key_size: u32, value_size: u32, max_entries: u32) -> MapSpec {
        MapSpec {
            name: name.to_string(),
            map_type,
            key_size,
            value_size,
            max_entries,
            flags: 0,
            map_extra: 0,
            pinning: Pinning::None,
            pin_path: None,
            btf_key_type_id: 0,
            btf_value_type_id: 0,
            inner: None,
            data: None,
            slots: Vec::new(),
            origin: MapOrigin::Defined,
            section_offset: u64::MAX,
        }
    }
    /// Maximum number of entries (ring buffers: size in bytes).
    pub fn max_entries(&self) -> u32 {
        self.max_entries
    }
    /// Changes the number of entries before load, e.g. to size a table for the number of
    /// functions a pattern matched.
    pub fn set_max_entries(&mut self, n: u32) -> &mut Self {
        self.max_entries = n;
        self
    }
    /// `map_flags` passed at creation.
    pub fn flags(&self) -> u32 {
        self.flags
    }
    /// Sets `map_flags`.
    pub fn set_flags(&mut self, flags: u32) -> &mut Self {
        self.flags = flags;
        self
    }
    /// Sets `map_flags` (libbpf's name, `bpf_map__set_map_flags`).
    pub fn set_map_flags(&mut self, flags: u32) -> &mut Self {
        self.set_flags(flags)
    }
    /// `map_extra` (bloom filter hash count, arena address).
    pub fn map_extra(&self) -> u64 {
        self.map_extra
    }
    /// Sets `map_extra` (libbpf's `bpf_map__set_map_extra`).
    pub fn set_map_extra(&mut self, extra: u64) -> &mut Self {
        self.map_extra = extra;
        self
    }
    /// How the object asks for the map to be pinned.
    pub fn pinning(&self) -> Pinning {
        self.pinning
    }
    /// Pins the map at `path` at load time (or reuses the map already pinned there).
    pub fn set_pin_path(&mut self, path: impl Into<PathBuf>) -> &mut Self {
        self.pin_path = Some(path.into());
        self
    }
    /// Where the map comes from.
    pub fn origin(&self) -> &MapOrigin {
        &self.origin
    }
    /// The inner map definition of a map-in-map.
    pub fn inner(&self) -> Option<&MapSpec> {
        self.inner.as_deref()
    }
}

/// Reads a BTF-defined map: a `VAR` in `.maps` whose type is a struct of `__uint` and
/// `__type` members.
pub(super) fn parse_btf_map(btf: &Btf, name: &str, struct_id: u32, offset: u64) -> Result<MapSpec, ObjectError> {
    parse_definition(btf, name, struct_id, offset, false)
}

/// [`parse_btf_map`] of an outer map (`inner` false) or of the inner definition of a
/// map-in-map, which may not have one of its own: the kernel nests maps one level deep, and a
/// definition that names itself as its inner one would otherwise recurse without end.
fn parse_definition(btf: &Btf, name: &str, struct_id: u32, offset: u64, inner: bool) -> Result<MapSpec, ObjectError> {
    let bad = |reason: String| ObjectError::BadMapDefinition { map: name.to_string(), reason };
    let sid = btf.skip_modifiers(struct_id)?;
    let t = btf.type_by_id(sid)?;
    let TypeKind::Struct { members, .. } = &t.kind else {
        return Err(bad(format!("its type is a {}, not a struct of __uint/__type fields", t.kind.name())));
    };
    let mut spec = MapSpec {
        name: name.to_string(),
        map_type: MapType::Other(0),
        key_size: 0,
        value_size: 0,
        max_entries: 0,
        flags: 0,
        map_extra: 0,
        pinning: Pinning::None,
        pin_path: None,
        btf_key_type_id: 0,
        btf_value_type_id: 0,
        inner: None,
        data: None,
        slots: Vec::new(),
        origin: MapOrigin::Defined,
        section_offset: offset,
    };
    let mut has_type = false;
    for m in members {
        let field = btf.string_at(m.name_off)?;
        match field {
            "type" => {
                spec.map_type = MapType::from_u32(uint_field(btf, m.type_id).map_err(|r| bad(format!("type: {r}")))?);
                has_type = true;
            }
            "max_entries" => {
                spec.max_entries = uint_field(btf, m.type_id).map_err(|r| bad(format!("max_entries: {r}")))?
            }
            "map_flags" => spec.flags = uint_field(btf, m.type_id).map_err(|r| bad(format!("map_flags: {r}")))?,
            "numa_node" => {}
            "map_extra" => {
                spec.map_extra = u64::from(uint_field(btf, m.type_id).map_err(|r| bad(format!("map_extra: {r}")))?)
            }
            "key_size" => spec.key_size = uint_field(btf, m.type_id).map_err(|r| bad(format!("key_size: {r}")))?,
            "value_size" => {
                spec.value_size = uint_field(btf, m.type_id).map_err(|r| bad(format!("value_size: {r}")))?
            }
            "pinning" => {
                spec.pinning = match uint_field(btf, m.type_id).map_err(|r| bad(format!("pinning: {r}")))? {
                    0 => Pinning::None,
                    1 => Pinning::ByName,
                    other => {
                        return Err(bad(format!("pinning {other} is unknown (0: none, 1: by name)")));
                    }
                }
            }
            "key" | "value" => {
                let target = pointee(btf, m.type_id).map_err(|r| bad(format!("{field}: {r}")))?;
                let size = btf.resolve_size(target).map_err(|e| bad(format!("{field}: {e}")))?;
                if field == "key" {
                    spec.key_size = size;
                    spec.btf_key_type_id = target;
                } else {
                    spec.value_size = size;
                    spec.btf_value_type_id = target;
                }
            }
            "values" if inner => {
                return Err(bad(
                    "values: a map-in-map cannot hold map-in-maps (the kernel nests maps one level deep)".into()
                ));
            }
            "values" => {
                // `__array(values, struct inner)`: an array of pointers to the inner definition.
                let arr = btf.skip_modifiers(m.type_id)?;
                let TypeKind::Array { elem, .. } = btf.type_by_id(arr)?.kind else {
                    return Err(bad("values: expected an array of pointers (__array)".into()));
                };
                let inner_def = pointee(btf, elem).map_err(|r| bad(format!("values: {r}")))?;
                let inner = parse_definition(btf, &format!("{name}.inner"), inner_def, 0, true)?;
                spec.inner = Some(Box::new(inner));
            }
            other => return Err(bad(format!("unknown field `{other}`"))),
        }
    }
    if !has_type {
        return Err(bad("no `type` field (__uint(type, BPF_MAP_TYPE_...))".into()));
    }
    if spec.inner.is_some() {
        if !spec.map_type.is_map_in_map() {
            return Err(bad("`values` given for a map that is not a map-in-map".into()));
        }
        // Values of a map-in-map are map fds, whatever the inner definition says.
        spec.value_size = 4;
        spec.btf_value_type_id = 0;
    }
    Ok(spec)
}

/// `__uint(name, N)` is `int (*name)[N]`: N is the element count of the pointed-to array.
fn uint_field(btf: &Btf, type_id: u32) -> Result<u32, String> {
    let arr = pointee(btf, type_id)?;
    match btf.type_by_id(arr).map_err(|e| e.to_string())?.kind {
        TypeKind::Array { nelems, .. } => Ok(nelems),
        ref other => Err(format!("expected __uint() (pointer to array), found pointer to {}", other.name())),
    }
}

/// The type a pointer member points to (`__type(key, T)` is `T *key`).
fn pointee(btf: &Btf, type_id: u32) -> Result<u32, String> {
    let id = btf.skip_modifiers(type_id).map_err(|e| e.to_string())?;
    match btf.type_by_id(id).map_err(|e| e.to_string())?.kind {
        TypeKind::Ptr { target } => Ok(target),
        ref other => Err(format!("expected a pointer (__uint/__type), found {}", other.name())),
    }
}

/// The backing map of a global data section: one array element holding the whole section,
/// `size` bytes, initially `data` (`None`: zeros, as for `.bss`).
///
/// `.rodata*` and `.kconfig` are read-only to programs and frozen once written, as libbpf
/// makes them: only then does the verifier read their values as constants and skip the
/// branches they rule out (tools guard code for other kernels with `LINUX_KERNEL_VERSION`,
/// code the verifier would refuse on this one).
pub(super) fn global_data_map(section: &str, size: u32, data: Option<Vec<u8>>, datasec_id: u32) -> MapSpec {
    let read_only = section.starts_with(".rodata") || section == crate::btf::kconfig::KCONFIG_SEC;
    MapSpec {
        name: section.to_string(),
        map_type: MapType::Array,
        key_size: 4,
        value_size: size,
        max_entries: 1,
        flags: if read_only { crate::sys::MAP_F_RDONLY_PROG } else { 0 },
        map_extra: 0,
        pinning: Pinning::None,
        pin_path: None,
        btf_key_type_id: 0,
        btf_value_type_id: datasec_id,
        inner: None,
        data,
        slots: Vec::new(),
        origin: MapOrigin::GlobalData { read_only },
        section_offset: 0,
    }
}
