//! The kernel function behind a system call, whose name depends on the architecture.
//!
//! Since 4.17 most architectures enter a syscall through a wrapper named after the
//! architecture (`__x64_sys_getpid` on x86-64, `__arm64_sys_getpid` on arm64); others, and
//! older kernels, through `sys_getpid`. Tools that write `sys_getpid` find nothing, and
//! patterns like `__x64_sys_getp*` can miss syscalls without arguments, which
//! `available_filter_functions` lists under an alias (`__do_sys_getpid`).

use super::kallsyms::Kallsyms;
use crate::error::ListingError;

/// The syscall wrapper prefix of the architecture this crate is built for.
pub const SYSCALL_PREFIX: &str = if cfg!(target_arch = "x86_64") {
    "__x64_"
} else if cfg!(target_arch = "aarch64") {
    "__arm64_"
} else if cfg!(target_arch = "s390x") {
    "__s390x_"
} else if cfg!(target_arch = "riscv64") {
    "__riscv_"
} else if cfg!(target_arch = "powerpc64") {
    "__powerpc_"
} else {
    ""
};

/// The kernel function that enters syscall `name` (`getpid`, or `sys_getpid`): the
/// architecture's wrapper when the running kernel has it, else `sys_NAME`. Fails, naming
/// both candidates, when the kernel has neither.
pub fn syscall_function(name: &str) -> Result<String, ListingError> {
    let base = name.strip_prefix("sys_").unwrap_or(name);
    let wrapper = format!("{SYSCALL_PREFIX}sys_{base}");
    let plain = format!("sys_{base}");
    let kallsyms = Kallsyms::read().map_err(|source| ListingError::read("/proc/kallsyms", source))?;
    let mut has_plain = false;
    for s in kallsyms.text_symbols() {
        if s.name == wrapper.as_bytes() && !SYSCALL_PREFIX.is_empty() {
            return Ok(wrapper);
        }
        has_plain |= s.name == plain.as_bytes();
    }
    if has_plain {
        return Ok(plain);
    }
    Err(ListingError::NoMatch {
        pattern: name.to_string(),
        hint: format!(" (the kernel has neither {wrapper} nor {plain}: is `{base}` a syscall of this architecture?)"),
    })
}
