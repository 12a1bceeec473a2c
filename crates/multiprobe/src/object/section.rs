//! Program kinds and libbpf's section-name conventions (`SEC("kprobe.multi/vfs_*")`): what a
//! section name says about how a program is loaded (program type, expected attach type,
//! flags) and what it attaches to.
//!
//! The names are libbpf 1.7's `section_defs` table, matched by libbpf's rules (see
//! [`section_defs`](super::section_defs)). A name no row matches does not stop an object from
//! opening: its programs have no kind until the caller gives them one
//! ([`ProgramSpec::set_kind`](super::ProgramSpec::set_kind)), or until a
//! [`SectionHandler`] given in [`OpenOptions`] names it.

pub use super::program_kind::ProgramKind;
use super::section_defs::{SECTION_DEFS, SectionDef, flags as sec};

/// `BPF_F_SLEEPABLE`: the program may sleep (the `.s` section variants).
pub const PROG_F_SLEEPABLE: u32 = 1 << 4;
/// `BPF_F_XDP_HAS_FRAGS`: the XDP program handles multi-buffer packets (`xdp.frags`).
pub const PROG_F_XDP_HAS_FRAGS: u32 = 1 << 5;

impl ProgramKind {
    /// The section prefix of this kind, for messages (`?` for [`ProgramKind::Other`]).
    pub fn section_prefix(self) -> &'static str {
        SECTION_DEFS.iter().find(|s| s.kind == self).map_or("?", |s| s.sec.trim_end_matches('+'))
    }
}

/// What a section name says about the programs in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionInfo {
    /// The program kind the name says.
    pub kind: ProgramKind,
    /// `expected_attach_type` to load with.
    pub expected_attach_type: u32,
    /// `prog_flags` to load with ([`PROG_F_SLEEPABLE`], [`PROG_F_XDP_HAS_FRAGS`]).
    pub prog_flags: u32,
    /// The part after `prefix/`, if any: a function, pattern, tracepoint or path.
    pub target: Option<String>,
    /// False when the name starts with `?` (libbpf: do not load unless asked).
    pub autoload: bool,
}

/// A section name of one's own with the kind of its programs, like libbpf's
/// `libbpf_register_prog_handler`, but given per object in [`OpenOptions`] rather than
/// registered for the whole process.
///
/// The name follows libbpf's rules: `"mytool+"` matches `mytool` and `mytool/ANYTHING` (the
/// part after `/` becomes the attach target), `"mytool/"` matches every name starting with
/// `mytool/`, and any other string matches only itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionHandler {
    sec: String,
    kind: ProgramKind,
    expected_attach_type: u32,
    prog_flags: u32,
}

impl SectionHandler {
    /// Programs in sections matching `sec` are of `kind`, loaded with the kind's default
    /// expected attach type and no flags.
    pub fn new(sec: impl Into<String>, kind: ProgramKind) -> SectionHandler {
        SectionHandler { sec: sec.into(), kind, expected_attach_type: kind.expected_attach_type(), prog_flags: 0 }
    }
    /// Sets the `expected_attach_type` they are loaded with.
    pub fn expected_attach_type(mut self, attach_type: u32) -> SectionHandler {
        self.expected_attach_type = attach_type;
        self
    }
    /// Sets the `prog_flags` they are loaded with (e.g. [`PROG_F_SLEEPABLE`]).
    pub fn prog_flags(mut self, flags: u32) -> SectionHandler {
        self.prog_flags = flags;
        self
    }
}

/// How [`Object::open_with`](super::Object::open_with) reads an object.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    pub(crate) handlers: Vec<SectionHandler>,
    pub(crate) kconfig: Option<String>,
}

impl OpenOptions {
    /// Default options: libbpf's section names only.
    pub fn new() -> OpenOptions {
        OpenOptions::default()
    }
    /// Kernel config lines (`CONFIG_FOO=y`, as in a `.config`) for the object's `.kconfig`
    /// externs, read before the system's config as libbpf's `kconfig` open option is: only
    /// externs they leave unset are looked up in `/boot/config-$(uname -r)` or
    /// `/proc/config.gz`.
    pub fn kconfig(mut self, config: impl Into<String>) -> OpenOptions {
        self.kconfig = Some(config.into());
        self
    }
    /// Adds a section name of one's own; these are tried before libbpf's names, in the
    /// order added (as libbpf tries custom handlers first).
    pub fn section_handler(mut self, handler: SectionHandler) -> OpenOptions {
        self.handlers.push(handler);
        self
    }
}

/// How a table name matches a section name: libbpf's `sec_def_matches`. Returns the target
/// (the part after `/` of a `+` name) on a match.
fn matches<'a>(def: &str, name: &'a str) -> Option<Option<&'a str>> {
    if def.ends_with('/') {
        return name.starts_with(def).then_some(None);
    }
    if let Some(prefix) = def.strip_suffix('+') {
        let rest = name.strip_prefix(prefix)?;
        return match rest.strip_prefix('/') {
            Some(target) => Some(Some(target).filter(|t| !t.is_empty())),
            None if rest.is_empty() => Some(None),
            None => None,
        };
    }
    (def == name).then_some(None)
}

fn info_from(def: &SectionDef, target: Option<&str>, autoload: bool) -> SectionInfo {
    let mut prog_flags = 0;
    if def.flags & sec::SLEEPABLE != 0 {
        prog_flags |= PROG_F_SLEEPABLE;
    }
    if def.flags & sec::XDP_FRAGS != 0 {
        prog_flags |= PROG_F_XDP_HAS_FRAGS;
    }
    SectionInfo {
        kind: def.kind,
        expected_attach_type: def.attach,
        prog_flags,
        target: target.map(str::to_string),
        autoload,
    }
}

/// Interprets a section name the way libbpf does (its table and matching rules; a leading
/// `?` turns autoload off). `None` for names no program kind uses.
pub fn parse_section_name(name: &str) -> Option<SectionInfo> {
    parse_section_name_with(name, &OpenOptions::default())
}

/// [`parse_section_name`], trying the caller's own section names first.
pub fn parse_section_name_with(name: &str, options: &OpenOptions) -> Option<SectionInfo> {
    let (autoload, name) = match name.strip_prefix('?') {
        Some(rest) => (false, rest),
        None => (true, name),
    };
    for h in &options.handlers {
        if let Some(target) = matches(&h.sec, name) {
            return Some(SectionInfo {
                kind: h.kind,
                expected_attach_type: h.expected_attach_type,
                prog_flags: h.prog_flags,
                target: target.map(str::to_string),
                autoload,
            });
        }
    }
    SECTION_DEFS.iter().find_map(|def| matches(def.sec, name).map(|target| info_from(def, target, autoload)))
}
