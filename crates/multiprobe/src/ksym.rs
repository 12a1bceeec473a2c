//! kfunc and `__ksym` externs resolved against the running kernel, as libbpf's
//! `bpf_object__resolve_ksyms_btf_id` does: by name in the kernel's BTF, then in every
//! loaded module's BTF.
//!
//! Where the symbol lives decides how the instruction names it. A kfunc of the kernel is a
//! call with `imm` = its BTF id and `off` = 0; a module's kfunc has `off` = an index into the
//! `fd_array` given to `BPF_PROG_LOAD`, whose entry is the module's BTF object (index 0 is
//! never used: `off` 0 means vmlinux). A typed kernel variable is an `ld_imm64` with its BTF
//! id, and for a module's variable the module's BTF fd in the second half. Typeless ones
//! (`extern const void x __ksym`) are addresses from `/proc/kallsyms`, modules included.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use crate::btf::{self, Btf, BtfError};
use crate::btf_target::{KernelBtfs, ModuleSymbol};
use crate::error::LoadError;
use crate::object::ExternValue;

/// The module BTF objects one load refers to, in `fd_array` order (entry `i` is index
/// `i + 1`), held until every program that names them is loaded.
#[derive(Debug, Default)]
pub(crate) struct ModuleFds {
    modules: Vec<(String, Arc<OwnedFd>)>,
}

impl ModuleFds {
    /// The `fd_array` index of `sym`'s module, added on first use.
    fn index(&mut self, sym: &ModuleSymbol) -> Result<i16, String> {
        if let Some(i) = self.modules.iter().position(|(m, _)| *m == sym.module) {
            return Ok(i as i16 + 1);
        }
        // `off` is an s16 and index 0 is vmlinux's: libbpf's limit too.
        if self.modules.len() >= i16::MAX as usize - 1 {
            return Err(format!("more than {} module BTFs referred to by one object", i16::MAX - 1));
        }
        self.modules.push((sym.module.clone(), Arc::clone(&sym.fd)));
        Ok(self.modules.len() as i16)
    }

    /// The module BTF objects, `fd_array` entries 1.. (see the module doc).
    pub fn into_fds(self) -> Vec<Arc<OwnedFd>> {
        self.modules.into_iter().map(|(_, fd)| fd).collect()
    }
}

/// A kfunc by name (ignoring a `___flavor` suffix) in the kernel's BTF, else in a module's,
/// checked against the program's declaration. A weak extern the kernel lacks, or declares
/// differently, is missing.
pub(crate) fn resolve_kfunc(
    local: Option<&Btf>,
    func_id: u32,
    kernel: &Btf,
    kernel_btfs: &mut KernelBtfs,
    modules: &mut ModuleFds,
    name: &str,
    weak: bool,
) -> Result<ExternValue, LoadError> {
    let essential = name.split("___").next().unwrap_or(name);
    let fail = |reason: String| -> Result<ExternValue, LoadError> {
        if weak { Ok(ExternValue::Missing) } else { Err(LoadError::Kfunc { name: name.to_string(), reason }) }
    };
    if let Some(kid) = kernel.find_by_name_kind(essential, btf::kind::FUNC) {
        if let Err(reason) = check_prototype(local, func_id, kernel, kid) {
            return fail(reason);
        }
        return Ok(ExternValue::Kfunc { btf_id: kid, fd_index: 0 });
    }
    let Some(sym) = kernel_btfs.find_module_symbol(kernel, essential, btf::kind::FUNC) else {
        return fail(
            "not found in the kernel's BTF nor in any loaded module's (kernel too old, or its module not loaded)"
                .into(),
        );
    };
    if let Err(reason) = check_prototype(local, func_id, &sym.btf, sym.btf_id) {
        return fail(format!("{reason} (module `{}`)", sym.module));
    }
    match modules.index(&sym) {
        Ok(fd_index) => Ok(ExternValue::Kfunc { btf_id: sym.btf_id, fd_index }),
        Err(reason) => fail(reason),
    }
}

/// Whether the kernel's (or module's) `kernel_id` FUNC has the object's prototype.
fn check_prototype(local: Option<&Btf>, func_id: u32, kernel: &Btf, kernel_id: u32) -> Result<(), String> {
    let Some(local) = local else { return Ok(()) };
    let (Ok(lp), Ok(kp)) = (func_proto(local, func_id), func_proto(kernel, kernel_id)) else {
        return Err("its BTF has no prototype".into());
    };
    match btf::types_are_compat(local, lp, kernel, kp) {
        Ok(true) => Ok(()),
        _ => Err("the kernel declares it with another prototype".into()),
    }
}

fn func_proto(btf: &Btf, func_id: u32) -> Result<u32, BtfError> {
    match btf.type_by_id(func_id)?.kind {
        btf::TypeKind::Func { proto, .. } => Ok(proto),
        ref other => Err(BtfError::WrongKind { id: func_id, found: other.name(), expected: "func" }),
    }
}

/// A kernel variable: typed ones by BTF id (the kernel's, else a module's), `const void`
/// ones by address from kallsyms.
pub(crate) fn resolve_ksym(
    kernel: &Btf,
    kernel_btfs: &mut KernelBtfs,
    modules: &mut ModuleFds,
    name: &str,
    type_id: u32,
    weak: bool,
) -> Result<ExternValue, LoadError> {
    let fail = |reason: &str| -> Result<ExternValue, LoadError> {
        if weak {
            Ok(ExternValue::Missing)
        } else {
            Err(LoadError::Ksym { name: name.to_string(), reason: reason.to_string() })
        }
    };
    if type_id == 0 {
        let kallsyms = std::fs::read_to_string("/proc/kallsyms").unwrap_or_default();
        return match kallsyms_address(&kallsyms, name) {
            Some(0) => fail("/proc/kallsyms hides addresses from this user (needs root)"),
            Some(a) => Ok(ExternValue::Address(a)),
            None => fail("not in /proc/kallsyms (data symbols are listed only with CONFIG_KALLSYMS_ALL)"),
        };
    }
    if let Some(id) = kernel.find_by_name_kind(name, btf::kind::VAR) {
        return Ok(ExternValue::Var { btf_id: id, btf_obj_fd: 0 });
    }
    let Some(sym) = kernel_btfs.find_module_symbol(kernel, name, btf::kind::VAR) else {
        return fail("no variable of that name in the kernel's BTF nor in any loaded module's");
    };
    match modules.index(&sym) {
        Ok(_) => Ok(ExternValue::Var { btf_id: sym.btf_id, btf_obj_fd: sym.fd.as_raw_fd() }),
        Err(reason) => fail(&reason),
    }
}

/// The address of `name` in a `/proc/kallsyms` text (`ADDR TYPE NAME [MODULE]` lines).
fn kallsyms_address(kallsyms: &str, name: &str) -> Option<u64> {
    kallsyms.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        let addr = f.next()?;
        let _kind = f.next()?;
        (f.next()? == name).then(|| u64::from_str_radix(addr, 16).ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kallsyms_lines_of_modules_are_read_too() {
        let text = "ffffffff81000000 T _stext\nffffffffc0a01000 t bm_status_read\t[binfmt_misc]\n";
        assert_eq!(kallsyms_address(text, "bm_status_read"), Some(0xffff_ffff_c0a0_1000));
        assert_eq!(kallsyms_address(text, "_stext"), Some(0xffff_ffff_8100_0000));
        assert_eq!(kallsyms_address(text, "nope"), None);
    }

    #[test]
    fn module_fds_get_indexes_from_one_each_once() {
        let fd = |n: &str| ModuleSymbol {
            module: n.to_string(),
            fd: Arc::new(std::fs::File::open("/dev/null").unwrap().into()),
            btf_id: 1,
            btf: Btf::new(),
        };
        let mut fds = ModuleFds::default();
        assert_eq!(fds.index(&fd("fou")), Ok(1), "index 0 is vmlinux's, never a module's");
        assert_eq!(fds.index(&fd("nf_conntrack")), Ok(2));
        assert_eq!(fds.index(&fd("fou")), Ok(1), "one entry per module");
        assert_eq!(fds.into_fds().len(), 2);
    }
}
