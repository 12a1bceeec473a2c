//! Finding what a tracing, LSM or iterator program attaches to by name in the kernel's BTF,
//! then in its modules' BTF, as libbpf's `find_kernel_btf_id` does: the BTF id goes into
//! `attach_btf_id` at load, and a module's BTF object into `attach_btf_obj_fd`.
//!
//! Names are looked up as libbpf looks them up: `tp_btf/NAME` as the typedef
//! `btf_trace_NAME`, `lsm/HOOK` as the function `bpf_lsm_HOOK`, `iter/NAME` as the function
//! `bpf_iter_NAME`, everything else as the function itself. `MODULE:NAME` looks in that
//! module only (`vmlinux:NAME` in the kernel only).

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use crate::btf::kind;
use crate::btf::raw::RawBtf;
use crate::sys::{self, attach_type};

/// Longest type name libbpf builds (`BTF_MAX_NAME_SIZE`, NUL included).
const MAX_NAME: usize = 128;

/// A module's BTF: its name, the BTF object in the kernel, and its types.
#[derive(Debug)]
struct ModuleBtf {
    name: String,
    fd: Arc<OwnedFd>,
    raw: RawBtf,
}

/// Where a target was found.
#[derive(Debug, Clone)]
pub(crate) struct BtfTarget {
    /// Its type id, in vmlinux numbering or its module's split numbering.
    pub btf_id: u32,
    /// The module's BTF object; `None` for vmlinux.
    pub module: Option<Arc<OwnedFd>>,
}

/// A kfunc or kernel variable found in a module's BTF.
#[derive(Debug)]
pub(crate) struct ModuleSymbol {
    /// The module's name.
    pub module: String,
    /// Its BTF object in the kernel (`fd_array` entry of a kfunc call, second half of a
    /// variable's `ld_imm64`).
    pub fd: Arc<OwnedFd>,
    /// The symbol's id in the module's split numbering.
    pub btf_id: u32,
    /// The kernel's and the module's types together, to compare declarations.
    pub btf: crate::btf::Btf,
}

/// The kernel's BTF and, once a name is not in it, its modules' BTF; kept for one load.
#[derive(Debug, Default)]
pub(crate) struct KernelBtfs {
    vmlinux: Option<Arc<RawBtf>>,
    modules: Option<Vec<ModuleBtf>>,
    /// The kernel's BTF parsed, when the load needs it anyway: its name index answers in
    /// microseconds what a scan of the raw types answers in a millisecond or more per name.
    parsed: Option<Arc<crate::btf::Btf>>,
}

/// The name and `BTF_KIND_*` under which the kernel declares an attach target.
pub(crate) fn btf_name_kind(expected_attach_type: u32, name: &str) -> (String, u32) {
    match expected_attach_type {
        attach_type::TRACE_RAW_TP => (format!("btf_trace_{name}"), kind::TYPEDEF),
        attach_type::LSM_MAC | attach_type::LSM_CGROUP => (format!("bpf_lsm_{name}"), kind::FUNC),
        attach_type::TRACE_ITER => (format!("bpf_iter_{name}"), kind::FUNC),
        _ => (name.to_string(), kind::FUNC),
    }
}

impl KernelBtfs {
    /// Finds `target` (`NAME` or `MODULE:NAME`) for a program loaded with
    /// `expected_attach_type`. The error says where it looked.
    pub fn find_attach_target(&mut self, expected_attach_type: u32, target: &str) -> Result<BtfTarget, String> {
        let (module, name) = match target.split_once(':') {
            Some((m, n)) => (Some(m), n),
            None => (None, target),
        };
        let (btf_name, btf_kind) = btf_name_kind(expected_attach_type, name);
        if btf_name.len() >= MAX_NAME {
            return Err(format!("`{btf_name}` is longer than the {} bytes a BTF name may have", MAX_NAME - 1));
        }
        if let Err(e) = crate::btf::kernel::vmlinux_raw() {
            return Err(format!(
                "the kernel's BTF is needed to find it: {e} (kernel built without CONFIG_DEBUG_INFO_BTF?)"
            ));
        }
        self.find(module, &btf_name, btf_kind).ok_or_else(|| {
            let what = if btf_kind == kind::TYPEDEF { "typedef" } else { "function" };
            match module {
                Some("vmlinux") => format!("no {what} `{btf_name}` in the kernel's BTF"),
                Some(m) => format!("no {what} `{btf_name}` in the BTF of module `{m}` (is it loaded?)"),
                None => format!(
                    "no {what} `{btf_name}` in the kernel's BTF nor in any loaded module's (kernel too old, \
                     function inlined or renamed, or its module not loaded)"
                ),
            }
        })
    }

    /// Finds a type by its BTF name and kind, in vmlinux and then in the modules (or only in
    /// `module`).
    pub fn find(&mut self, module: Option<&str>, btf_name: &str, btf_kind: u32) -> Option<BtfTarget> {
        let vmlinux = self.vmlinux()?;
        if module.is_none() || module == Some("vmlinux") {
            // Both give the first id of that name and kind.
            let found = match &self.parsed {
                Some(parsed) => parsed.find_by_name_kind(btf_name, btf_kind),
                None => vmlinux.find(btf_name, btf_kind),
            };
            if let Some(id) = found {
                return Some(BtfTarget { btf_id: id, module: None });
            }
            if module.is_some() {
                return None;
            }
        }
        let modules = self.modules.get_or_insert_with(load_modules);
        modules.iter().filter(|m| module.is_none_or(|want| want == m.name)).find_map(|m| {
            let id = m.raw.find_split(&vmlinux, btf_name, btf_kind)?;
            Some(BtfTarget { btf_id: id, module: Some(Arc::clone(&m.fd)) })
        })
    }

    /// Looks names up in `parsed` (the kernel's BTF, parsed) rather than scanning the raw
    /// types: for loads that parse it anyway (CO-RE, kfunc and `__ksym` externs).
    pub fn use_parsed(&mut self, parsed: Arc<crate::btf::Btf>) {
        self.parsed = Some(parsed);
    }

    /// Finds a kfunc (`FUNC`) or kernel variable (`VAR`) named `name` in the loaded modules'
    /// BTF, as libbpf's `find_ksym_btf_id` does once vmlinux lacks it, with the module's
    /// types read on top of `base` (the kernel's, parsed) to check the object's declaration.
    pub fn find_module_symbol(&mut self, base: &crate::btf::Btf, name: &str, btf_kind: u32) -> Option<ModuleSymbol> {
        let vmlinux = self.vmlinux()?;
        let modules = self.modules.get_or_insert_with(load_modules);
        let (m, btf_id) = modules.iter().find_map(|m| Some((m, m.raw.find_split(&vmlinux, name, btf_kind)?)))?;
        let btf = crate::btf::Btf::parse_split(base, m.raw.bytes()).ok()?;
        Some(ModuleSymbol { module: m.name.clone(), fd: Arc::clone(&m.fd), btf_id, btf })
    }

    fn vmlinux(&mut self) -> Option<Arc<RawBtf>> {
        if self.vmlinux.is_none() {
            self.vmlinux = crate::btf::kernel::vmlinux_raw().ok();
        }
        self.vmlinux.clone()
    }
}

/// Every module BTF the kernel holds: walked by id as libbpf's `load_module_btfs` does, the
/// types read from `/sys/kernel/btf/<module>`. Modules that vanish or cannot be read are
/// left out: a name not found says which places were searched.
fn load_modules() -> Vec<ModuleBtf> {
    let mut out = Vec::new();
    let mut id = 0;
    while let Ok(Some(next)) = sys::get_next_id(sys::ObjKind::Btf, id) {
        id = next;
        let Ok(fd) = sys::get_fd_by_id(sys::ObjKind::Btf, id) else { continue };
        let Ok((info, name)) = sys::btf_info(fd.as_fd()) else { continue };
        if info.kernel_btf == 0 || name == "vmlinux" || name.is_empty() || name.contains('/') {
            continue;
        }
        let Ok(data) = std::fs::read(format!("/sys/kernel/btf/{name}")) else { continue };
        let Ok(raw) = RawBtf::new(data) else { continue };
        out.push(ModuleBtf { name, fd: Arc::new(fd), raw });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_get_libbpfs_prefixes() {
        assert_eq!(
            btf_name_kind(attach_type::TRACE_RAW_TP, "sched_switch"),
            ("btf_trace_sched_switch".into(), kind::TYPEDEF)
        );
        assert_eq!(btf_name_kind(attach_type::LSM_MAC, "file_open"), ("bpf_lsm_file_open".into(), kind::FUNC));
        assert_eq!(btf_name_kind(attach_type::LSM_CGROUP, "file_open"), ("bpf_lsm_file_open".into(), kind::FUNC));
        assert_eq!(btf_name_kind(attach_type::TRACE_ITER, "task"), ("bpf_iter_task".into(), kind::FUNC));
        assert_eq!(btf_name_kind(attach_type::TRACE_FENTRY, "vfs_read"), ("vfs_read".into(), kind::FUNC));
        assert_eq!(btf_name_kind(attach_type::TRACE_FEXIT, "vfs_read"), ("vfs_read".into(), kind::FUNC));
    }

    #[test]
    fn targets_found_through_the_parsed_index_are_the_raw_scans() {
        let Ok(parsed) = crate::btf::kernel::vmlinux() else { return }; // no kernel BTF here
        let mut indexed = KernelBtfs::default();
        indexed.use_parsed(parsed);
        for (name, k) in [("vfs_read", kind::FUNC), ("btf_trace_sched_switch", kind::TYPEDEF), ("nope_x", kind::FUNC)] {
            let raw = KernelBtfs::default().find(Some("vmlinux"), name, k).map(|t| t.btf_id);
            assert_eq!(indexed.find(Some("vmlinux"), name, k).map(|t| t.btf_id), raw, "{name}");
        }
    }

    #[test]
    fn over_long_names_are_refused_before_any_lookup() {
        let mut btfs = KernelBtfs::default();
        let err = btfs.find_attach_target(attach_type::TRACE_FENTRY, &"x".repeat(200)).unwrap_err();
        assert!(err.contains("longer than"), "{err}");
    }
}
