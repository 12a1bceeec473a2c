//! `perf_event_open(2)` for kprobe, kretprobe and tracepoint events, and the ioctls that
//! attach a program to such an event on kernels without perf-event links.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use bytemuck::{Pod, Zeroable};

/// `struct perf_event_attr` up to `PERF_ATTR_SIZE_VER5` (112 bytes): every kernel we support
/// knows all of it.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct PerfEventAttr {
    pub type_: u32,
    pub size: u32,
    pub config: u64,
    pub sample_period: u64,
    pub sample_type: u64,
    pub read_format: u64,
    pub flags: u64,
    pub wakeup_events: u32,
    pub bp_type: u32,
    /// `kprobe_func`: pointer to the function name (or 0 with an address in `config2`).
    pub config1: u64,
    /// `probe_offset`: offset from the function, or the address when `config1` is 0.
    pub config2: u64,
    pub branch_sample_type: u64,
    pub sample_regs_user: u64,
    pub sample_stack_user: u32,
    pub clockid: i32,
    pub sample_regs_intr: u64,
    pub aux_watermark: u32,
    pub sample_max_stack: u16,
    pub _reserved: u16,
}

/// `PERF_TYPE_TRACEPOINT`.
pub const PERF_TYPE_TRACEPOINT: u32 = 2;
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 1 << 3;
const PERF_EVENT_IOC_ENABLE: libc::c_ulong = 0x2400;
const PERF_EVENT_IOC_SET_BPF: libc::c_ulong = 0x4004_2408;

/// Where a kprobe event goes: a symbol plus offset, or an absolute address.
#[derive(Debug, Clone, Copy)]
pub enum KprobeTarget<'a> {
    /// A function name (resolved by the kernel, modules included) and an offset into it.
    Symbol(&'a CStr, u64),
    /// An absolute kernel address.
    Address(u64),
}

/// Opens a kprobe (or, with `retprobe_bit`, kretprobe) event through the kprobe PMU whose type
/// is `pmu_type` (read from `/sys/bus/event_source/devices/kprobe/type`).
pub fn perf_event_open_kprobe(
    pmu_type: u32,
    retprobe_bit: Option<u32>,
    target: KprobeTarget<'_>,
) -> io::Result<OwnedFd> {
    let mut a = PerfEventAttr::zeroed();
    a.type_ = pmu_type;
    a.size = std::mem::size_of::<PerfEventAttr>() as u32;
    if let Some(bit) = retprobe_bit {
        a.config |= 1u64 << bit;
    }
    match target {
        KprobeTarget::Symbol(name, offset) => {
            a.config1 = name.as_ptr() as usize as u64;
            a.config2 = offset;
        }
        KprobeTarget::Address(addr) => a.config2 = addr,
    }
    open(&a)
}

/// Opens a tracepoint event by its id (`/sys/kernel/tracing/events/CAT/NAME/id`).
pub fn perf_event_open_tracepoint(id: u64) -> io::Result<OwnedFd> {
    let mut a = PerfEventAttr::zeroed();
    a.type_ = PERF_TYPE_TRACEPOINT;
    a.size = std::mem::size_of::<PerfEventAttr>() as u32;
    a.config = id;
    open(&a)
}

/// Opens the event on CPU 0 for every process: a BPF program attached to a kprobe or
/// tracepoint event runs on every CPU regardless of the event's CPU.
fn open(a: &PerfEventAttr) -> io::Result<OwnedFd> {
    // SAFETY: `a` is a valid perf_event_attr of the size it declares; `config1`, when set,
    // points to a NUL-terminated name borrowed by the caller for the duration of the call.
    let fd =
        unsafe { libc::syscall(libc::SYS_perf_event_open, a as *const PerfEventAttr, -1, 0, -1, PERF_FLAG_FD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: perf_event_open returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

fn ioctl(fd: BorrowedFd<'_>, request: libc::c_ulong, arg: libc::c_ulong) -> io::Result<()> {
    // SAFETY: the requests used here take an integer argument (no pointer) on a perf fd.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), request, arg) };
    if ret < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// Starts counting (and running attached programs for) a perf event.
pub fn perf_event_enable(fd: BorrowedFd<'_>) -> io::Result<()> {
    ioctl(fd, PERF_EVENT_IOC_ENABLE, 0)
}

/// Attaches a program to a perf event the pre-link way (kernels before 5.15, no cookie).
pub fn perf_event_set_bpf(fd: BorrowedFd<'_>, prog: BorrowedFd<'_>) -> io::Result<()> {
    ioctl(fd, PERF_EVENT_IOC_SET_BPF, prog.as_raw_fd() as libc::c_ulong)
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    #[test]
    fn perf_event_attr_layout() {
        assert_eq!(offset_of!(PerfEventAttr, config), 8);
        assert_eq!(offset_of!(PerfEventAttr, flags), 40);
        assert_eq!(offset_of!(PerfEventAttr, config1), 56);
        assert_eq!(offset_of!(PerfEventAttr, config2), 64);
        assert_eq!(offset_of!(PerfEventAttr, sample_max_stack), 108);
        assert_eq!(size_of::<PerfEventAttr>(), 112);
    }
}
