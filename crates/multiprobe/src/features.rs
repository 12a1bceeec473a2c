//! What the running kernel supports, probed once per process and cached.
//!
//! Probes do the real thing where it is cheap and leaves nothing behind (load a two-instruction
//! program, ask for a link with no targets and read the errno), and read the kernel's own BTF
//! where a capability shows in a type (link info fields, kfunc signatures). Every "no" comes
//! with the reason, in words a user can act on.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::OnceLock;

use crate::btf::raw::RawBtf;
use crate::btf::{self, TypeKind};
use crate::insn::Insn;
use crate::sys;

/// Whether a feature is available, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Support {
    /// Available.
    Yes,
    /// Not available, for the reason given (in words a user can act on).
    No(String),
}

impl Support {
    /// True for [`Support::Yes`].
    pub fn is_yes(&self) -> bool {
        *self == Support::Yes
    }

    /// The reason for a "no".
    pub fn reason(&self) -> Option<&str> {
        match self {
            Support::Yes => None,
            Support::No(r) => Some(r),
        }
    }
}

/// The running kernel's (major, minor) version, from `/proc/sys/kernel/osrelease`.
pub fn kernel_version() -> Option<(u32, u32)> {
    static V: OnceLock<Option<(u32, u32)>> = OnceLock::new();
    *V.get_or_init(|| parse_release(std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?.trim()))
}

/// The running kernel's release string (`uname -r`).
pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()).unwrap_or_default()
}

fn parse_release(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

fn version_string() -> String {
    kernel_version().map_or_else(|| "unknown".into(), |(a, b)| format!("{a}.{b}"))
}

/// Kprobe_multi links (kernel 5.18+ built with CONFIG_FPROBE): attach one program to many
/// functions, with cookies, `bpf_get_func_ip` and return probes.
pub fn kprobe_multi() -> Support {
    static S: OnceLock<Support> = OnceLock::new();
    S.get_or_init(|| {
        probe_multi_link(sys::attach_type::TRACE_KPROBE_MULTI, "BPF_TRACE_KPROBE_MULTI", "kprobe_multi links", (5, 18))
    })
    .clone()
}

/// Kprobe session links (kernel 6.10+): one program at entry and return of each call.
pub fn kprobe_session() -> Support {
    static S: OnceLock<Support> = OnceLock::new();
    S.get_or_init(|| {
        probe_multi_link(sys::attach_type::TRACE_KPROBE_SESSION, "BPF_TRACE_KPROBE_SESSION", "kprobe sessions", (6, 10))
    })
    .clone()
}

/// Loads `r0 = 0; exit` as a kprobe program of `attach_type`, then asks for a link with no
/// targets: a kernel that knows the link type rejects the empty request with EINVAL; one
/// built without CONFIG_FPROBE answers EOPNOTSUPP before looking at it. A kernel that does
/// not know the attach type says EINVAL too, so EINVAL counts only where the kernel's BTF
/// lists the attach type (`enum bpf_attach_type`), or, without BTF, from version `since`.
/// Whether the kernel knows the attach type `enum_name` (`BPF_TRACE_KPROBE_SESSION`): from
/// its BTF, else from its version (`since`). A kernel that does not answers EINVAL for it.
pub(crate) fn knows_attach_type(enum_name: &str, since: (u32, u32)) -> bool {
    match btf::kernel::vmlinux_raw() {
        Ok(k) => enum_has(&k, "bpf_attach_type", enum_name),
        Err(_) => kernel_version().is_some_and(|v| v >= since),
    }
}

fn probe_multi_link(attach_type: u32, enum_name: &str, what: &str, since: (u32, u32)) -> Support {
    if !knows_attach_type(enum_name, since) {
        return Support::No(format!("kernel {} is too old for {what} ({}.{}+)", version_string(), since.0, since.1));
    }
    let prog = match load_trivial(sys::prog_type::KPROBE, attach_type) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => return Support::No(permission_reason()),
        Err(e) => {
            return Support::No(format!(
                "kernel {} cannot load {what} programs ({e}); they need kernel {}.{}+",
                version_string(),
                since.0,
                since.1
            ));
        }
    };
    match sys::link_create_kprobe_multi(prog.as_fd(), attach_type, 0, sys::KprobeMultiTargets::Addresses(&[]), None) {
        Ok(_) => Support::Yes,
        Err(e) => match e.raw_os_error() {
            Some(libc::EINVAL) | Some(libc::E2BIG) => Support::Yes,
            Some(libc::EOPNOTSUPP) => Support::No(format!(
                "kernel {} was built without CONFIG_FPROBE, which {what} need (BPF_LINK_CREATE returns EOPNOTSUPP)",
                version_string()
            )),
            Some(libc::EPERM) => Support::No(permission_reason()),
            _ => Support::No(format!("BPF_LINK_CREATE for {what} failed: {e}")),
        },
    }
}

/// Whether the kernel's enum `enum_type` has an enumerator `value`.
fn enum_has(k: &RawBtf, enum_type: &str, value: &str) -> bool {
    [btf::kind::ENUM, btf::kind::ENUM64]
        .into_iter()
        .filter_map(|kind| k.find(enum_type, kind))
        .any(|id| k.enumerators(id).any(|v| v == value))
}

fn permission_reason() -> String {
    if sys::geteuid() == 0 {
        "the kernel refuses BPF even to root (lockdown, LSM or sysctl kernel.unprivileged_bpf_disabled)".into()
    } else {
        "needs root, or the CAP_BPF and CAP_PERFMON capabilities".into()
    }
}

/// Single kprobes through the kprobe PMU (the fallback when kprobe_multi is missing).
pub fn perf_kprobe() -> Support {
    if std::path::Path::new("/sys/bus/event_source/devices/kprobe/type").exists() {
        Support::Yes
    } else {
        Support::No("no kprobe PMU in /sys/bus/event_source/devices: kernel built without CONFIG_KPROBES or CONFIG_KPROBE_EVENTS".into())
    }
}

/// Cookies on single kprobes (perf-event links, kernel 5.15+).
pub fn perf_kprobe_cookies() -> Support {
    at_least((5, 15), "cookies on single kprobes (perf-event links)")
}

fn at_least(v: (u32, u32), what: &str) -> Support {
    match kernel_version() {
        Some(k) if k >= v => Support::Yes,
        _ => Support::No(format!("{what} need kernel {}.{}+, this is {}", v.0, v.1, version_string())),
    }
}

/// `available_filter_functions_addrs` in tracefs (kernel 6.5+): names with patch addresses.
pub fn available_filter_functions_addrs() -> Support {
    match crate::symbols::tracefs_root() {
        Ok(root) if root.join("available_filter_functions_addrs").exists() => Support::Yes,
        Ok(_) => Support::No(format!(
            "kernel {} has no available_filter_functions_addrs (6.5+): addresses come from /proc/kallsyms",
            version_string()
        )),
        Err(e) => Support::No(e.to_string()),
    }
}

/// How much a kprobe_multi link's info reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LinkInfoLevel {
    /// Type and ids only (before 6.6).
    Basic,
    /// Plus target addresses, count and flags (6.6).
    Targets,
    /// Plus the missed-event counter (6.7).
    Missed,
    /// Plus cookies (6.9).
    Cookies,
}

/// What link info reports for kprobe_multi links, read from the fields of `struct
/// bpf_link_info` in the kernel's BTF (by version when BTF is missing).
pub fn kprobe_multi_link_info() -> LinkInfoLevel {
    static L: OnceLock<LinkInfoLevel> = OnceLock::new();
    *L.get_or_init(|| {
        // The raw BTF, not the parsed one: `count` asks this before every attach, and one
        // struct is all it needs (a walk of the type headers, not 100,000 decoded types).
        let from_btf = btf::kernel::vmlinux_raw().ok().and_then(|k| link_info_level_from_btf(&k));
        from_btf.unwrap_or_else(|| match kernel_version() {
            Some(v) if v >= (6, 9) => LinkInfoLevel::Cookies,
            Some(v) if v >= (6, 7) => LinkInfoLevel::Missed,
            Some(v) if v >= (6, 6) => LinkInfoLevel::Targets,
            _ => LinkInfoLevel::Basic,
        })
    })
}

fn link_info_level_from_btf(k: &RawBtf) -> Option<LinkInfoLevel> {
    let info = k.find("bpf_link_info", btf::kind::STRUCT)?;
    let names = member_names(k, info, "kprobe_multi");
    Some(if names.is_empty() {
        LinkInfoLevel::Basic
    } else if names.contains(&"cookies") {
        LinkInfoLevel::Cookies
    } else if names.contains(&"missed") {
        LinkInfoLevel::Missed
    } else {
        LinkInfoLevel::Targets
    })
}

/// Member names of the struct reached through member `field` of `id`, looking inside
/// anonymous unions and structs.
fn member_names<'a>(k: &'a RawBtf, id: u32, field: &str) -> Vec<&'a str> {
    for m in k.members(id) {
        let Some(mid) = k.skip_modifiers(m.type_id) else {
            continue;
        };
        if m.name == field {
            return k.members(mid).map(|m| m.name).collect();
        }
        if m.name.is_empty() {
            let found = member_names(k, mid, field);
            if !found.is_empty() {
                return found;
            }
        }
    }
    Vec::new()
}

/// The signature of the session kfuncs `bpf_session_is_return` and `bpf_session_cookie`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKfuncs {
    /// No argument (kernels 6.10 to 6.x).
    NoArgs,
    /// They take the program's context (7.x).
    TakeCtx,
}

/// Which session kfunc signature the kernel has, from its BTF; an error says why it cannot
/// be told (no session support, no kernel BTF).
pub fn session_kfuncs() -> Result<SessionKfuncs, String> {
    let k = btf::kernel::vmlinux().map_err(|e| e.to_string())?;
    let f = k.find_by_name_kind("bpf_session_is_return", btf::kind::FUNC).ok_or_else(|| {
        format!("kernel {} has no bpf_session_is_return kfunc (sessions need 6.10+)", version_string())
    })?;
    let TypeKind::Func { proto, .. } = k.type_by_id(f).map_err(|e| e.to_string())?.kind else {
        return Err("bpf_session_is_return is not a function in the kernel's BTF".into());
    };
    match &k.type_by_id(proto).map_err(|e| e.to_string())?.kind {
        TypeKind::FuncProto { params, .. } if params.is_empty() => Ok(SessionKfuncs::NoArgs),
        TypeKind::FuncProto { .. } => Ok(SessionKfuncs::TakeCtx),
        _ => Err("bpf_session_is_return has no prototype in the kernel's BTF".into()),
    }
}

/// Loads `r0 = 0; exit`: the smallest program any kernel accepts, so a refusal says
/// something about the program type or attach type rather than about the code.
fn load_trivial(prog_type: u32, expected_attach_type: u32) -> std::io::Result<OwnedFd> {
    load_insns(prog_type, expected_attach_type, &[Insn::mov64_imm(0, 0), Insn::exit()])
}

/// `bpf_get_attach_cookie` (kernel 5.15+), probed as libbpf probes it for the
/// `LINUX_HAS_BPF_COOKIE` kconfig extern: a tracepoint program calling it loads.
pub fn bpf_cookie() -> Support {
    static S: OnceLock<Support> = OnceLock::new();
    const BPF_FUNC_GET_ATTACH_COOKIE: i32 = 174;
    S.get_or_init(|| {
        match load_insns(sys::prog_type::TRACEPOINT, 0, &[Insn::call_helper(BPF_FUNC_GET_ATTACH_COOKIE), Insn::exit()])
        {
            Ok(_) => Support::Yes,
            Err(e) => Support::No(format!("the kernel refused a program calling bpf_get_attach_cookie (5.15+): {e}")),
        }
    })
    .clone()
}

fn load_insns(prog_type: u32, expected_attach_type: u32, insns: &[Insn]) -> std::io::Result<OwnedFd> {
    let req = sys::ProgLoad {
        prog_type,
        expected_attach_type,
        name: "mp_probe",
        insns,
        license: c"GPL",
        kern_version: 0,
        prog_flags: 0,
        btf_fd: None,
        func_info: None,
        line_info: None,
        attach_btf_id: 0,
        attach_btf_obj_fd: None,
        fd_array: &[],
    };
    sys::prog_load(&req, None)
}

/// Whether this process may use BPF at all (loads a trivial socket filter).
pub fn bpf_syscall() -> Support {
    static S: OnceLock<Support> = OnceLock::new();
    S.get_or_init(|| match load_trivial(sys::prog_type::SOCKET_FILTER, 0) {
        Ok(_) => Support::Yes,
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
            Support::No("kernel built without CONFIG_BPF_SYSCALL".into())
        }
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => Support::No(permission_reason()),
        Err(e) => Support::No(format!("bpf() failed: {e}")),
    })
    .clone()
}

/// Kernel BTF (`/sys/kernel/btf/vmlinux`): needed for CO-RE, kfuncs and some probes.
pub fn kernel_btf() -> Support {
    match btf::kernel::vmlinux_raw() {
        Ok(_) => Support::Yes,
        Err(e) => Support::No(format!("{e} (kernel built without CONFIG_DEBUG_INFO_BTF?)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases() {
        assert_eq!(parse_release("6.12.118+deb13-amd64"), Some((6, 12)));
        assert_eq!(parse_release("7.2.13+deb14-amd64"), Some((7, 2)));
        assert_eq!(parse_release("6.1.0-56-amd64"), Some((6, 1)));
        assert_eq!(parse_release("x"), None);
    }
}
