//! Attaching through perf events: tracepoints, single kprobes and kretprobes, syscall
//! kprobes (ksyscall), and the per-function fallback for kernels without kprobe_multi.
//! One path for all of them: a perf-event link (`BPF_LINK_CREATE` with `BPF_PERF_EVENT`,
//! 5.15+), or on older kernels the `PERF_EVENT_IOC_SET_BPF` ioctl that predates links.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::OnceLock;

use crate::error::{AttachError, wrong_kind};
use crate::link::Link;
use crate::object::ProgramKind;
use crate::program::Program;
use crate::symbols::{syscall_function, tracefs_root};
use crate::sys;

/// Where a single kprobe goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KprobeTarget {
    /// A function by name (modules included), plus an offset into it (0: its entry).
    #[allow(missing_docs)]
    Symbol { name: String, offset: u64 },
    /// An absolute kernel address.
    Address(u64),
}

/// [`Program::attach_tracepoint`]: the event's id from tracefs, then a perf event.
pub(crate) fn attach_tracepoint(prog: &Program, category: &str, name: &str) -> Result<Link, AttachError> {
    if prog.kind() != ProgramKind::Tracepoint {
        return Err(wrong_kind(prog.name(), prog.kind(), "a tracepoint", ProgramKind::Tracepoint));
    }
    let root = tracefs_root()?;
    let path = root.join("events").join(category).join(name).join("id");
    let id = std::fs::read_to_string(&path)
        .map_err(|source| AttachError::UnknownTracepoint {
            tracepoint: format!("{category}/{name}"),
            tracefs: root.display().to_string(),
            source,
        })?
        .trim()
        .parse::<u64>()
        .map_err(|e| AttachError::Read { path: path.display().to_string(), source: io::Error::other(e) })?;
    let event = sys::perf_event_open_tracepoint(id).map_err(|e| kernel_error("opening the tracepoint event", e))?;
    attach_to_event(prog, event, 0)
}

/// [`Program::attach_kprobe`]: one perf-event kprobe.
pub(crate) fn attach_kprobe(prog: &Program, target: &KprobeTarget, cookie: u64) -> Result<Link, AttachError> {
    let retprobe = match prog.kind() {
        ProgramKind::Kprobe | ProgramKind::Ksyscall => false,
        ProgramKind::Kretprobe | ProgramKind::Kretsyscall => true,
        other => {
            return Err(wrong_kind(prog.name(), other, "a single kprobe", ProgramKind::Kprobe));
        }
    };
    let event = open_kprobe(target, retprobe)?;
    attach_to_event(prog, event, cookie)
}

/// [`Program::attach_ksyscall`]: a kprobe on the function that enters syscall `name`
/// (the architecture's wrapper, `__x64_sys_NAME`, where the kernel has one), as libbpf's
/// `bpf_program__attach_ksyscall`.
pub(crate) fn attach_ksyscall(prog: &Program, name: &str, cookie: u64) -> Result<Link, AttachError> {
    let retprobe = match prog.kind() {
        ProgramKind::Ksyscall => false,
        ProgramKind::Kretsyscall => true,
        other => return Err(wrong_kind(prog.name(), other, "a syscall kprobe", ProgramKind::Ksyscall)),
    };
    let function = syscall_function(name)?;
    let event = open_kprobe(&KprobeTarget::Symbol { name: function, offset: 0 }, retprobe)?;
    attach_to_event(prog, event, cookie)
}

/// Opens a kprobe event through the kprobe PMU.
pub(crate) fn open_kprobe(target: &KprobeTarget, retprobe: bool) -> Result<OwnedFd, AttachError> {
    let pmu = kprobe_pmu().map_err(|source| AttachError::NotSupported {
        what: "open kprobe perf events",
        reason: "no kprobe PMU in /sys/bus/event_source/devices (kernel built without CONFIG_KPROBE_EVENTS?)".into(),
        source,
    })?;
    let retprobe_bit = if retprobe {
        Some(pmu.retprobe_bit.ok_or_else(|| AttachError::NotSupported {
            what: "open kretprobe perf events",
            reason: "the kprobe PMU has no retprobe format bit".into(),
            source: io::Error::from_raw_os_error(libc::EOPNOTSUPP),
        })?)
    } else {
        None
    };
    match target {
        KprobeTarget::Symbol { name, offset } => {
            let c = CString::new(name.as_str()).map_err(|_| AttachError::UntraceableSymbol {
                symbol: name.clone(),
                reason: "the name contains a NUL byte".into(),
                source: io::Error::from_raw_os_error(libc::EINVAL),
            })?;
            sys::perf_event_open_kprobe(pmu.pmu_type, retprobe_bit, sys::KprobeTarget::Symbol(&c, *offset)).map_err(
                |e| match e.raw_os_error() {
                    Some(libc::ENOENT | libc::EINVAL | libc::EADDRNOTAVAIL) => AttachError::UntraceableSymbol {
                        symbol: name.clone(),
                        reason: "the kernel cannot place a kprobe there".into(),
                        source: e,
                    },
                    _ => kernel_error("opening a kprobe event", e),
                },
            )
        }
        KprobeTarget::Address(addr) => {
            sys::perf_event_open_kprobe(pmu.pmu_type, retprobe_bit, sys::KprobeTarget::Address(*addr)).map_err(|e| {
                match e.raw_os_error() {
                    Some(libc::ENOENT | libc::EINVAL | libc::EADDRNOTAVAIL) => {
                        AttachError::UntraceableAddress { addr: *addr, source: e }
                    }
                    _ => kernel_error("opening a kprobe event", e),
                }
            })
        }
    }
}

/// Runs `prog` on `event`: a perf-event link (5.15+, carries the cookie), or on older kernels
/// the ioctl that predates links (no cookie).
pub(crate) fn attach_to_event(prog: &Program, event: OwnedFd, cookie: u64) -> Result<Link, AttachError> {
    match sys::link_create_perf_event(prog.fd(), event.as_fd(), cookie) {
        Ok(link) => {
            sys::perf_event_enable(event.as_fd()).map_err(|e| kernel_error("enabling the perf event", e))?;
            Ok(Link::with_event(link, event))
        }
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) && cookie == 0 && !perf_links_supported() => {
            sys::perf_event_set_bpf(event.as_fd(), prog.fd())
                .map_err(|e| kernel_error("attaching to the perf event", e))?;
            sys::perf_event_enable(event.as_fd()).map_err(|e| kernel_error("enabling the perf event", e))?;
            // Without links, closing the event is what detaches the program.
            Ok(Link::new(event))
        }
        Err(e) => Err(kernel_error("creating a perf-event link", e)),
    }
}

/// Perf-event links arrived in 5.15 together with cookies.
fn perf_links_supported() -> bool {
    crate::features::kernel_version().is_some_and(|v| v >= (5, 15))
}

pub(crate) fn kernel_error(op: &str, source: io::Error) -> AttachError {
    if source.raw_os_error() == Some(libc::EPERM) {
        return AttachError::PermissionDenied { op: "attaching", source };
    }
    AttachError::Kernel { op: op.to_string(), source, hint: None }
}

struct KprobePmu {
    pmu_type: u32,
    retprobe_bit: Option<u32>,
}

fn kprobe_pmu() -> io::Result<&'static KprobePmu> {
    static PMU: OnceLock<Result<KprobePmu, i32>> = OnceLock::new();
    let r = PMU.get_or_init(|| {
        let dir = "/sys/bus/event_source/devices/kprobe";
        let pmu_type = std::fs::read_to_string(format!("{dir}/type"))
            .map_err(|e| e.raw_os_error().unwrap_or(libc::ENOENT))?
            .trim()
            .parse()
            .map_err(|_| libc::EINVAL)?;
        // "config:0" names the bit that turns a kprobe into a kretprobe.
        let retprobe_bit = std::fs::read_to_string(format!("{dir}/format/retprobe"))
            .ok()
            .and_then(|s| s.trim().strip_prefix("config:")?.parse().ok());
        Ok(KprobePmu { pmu_type, retprobe_bit })
    });
    r.as_ref().map_err(|&errno| io::Error::from_raw_os_error(errno))
}
