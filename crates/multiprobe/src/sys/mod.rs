//! The raw kernel interface: `bpf(2)`, `perf_event_open(2)`, `mmap(2)` and `mount(2)`.
//!
//! Thin and typed, in the spirit of rustix: one function per command, borrowed slices in,
//! [`OwnedFd`](std::os::fd::OwnedFd) out, errors as [`io::Error`] carrying the errno. Nothing here decides policy
//! (retries on a full verifier log, fallbacks, error wording); the layers above do. Every
//! `unsafe` block of the crate lives in this module, each with its SAFETY argument.

mod attr;
mod bpf;
mod mmap;
mod perf;

pub use attr::*;
pub use bpf::*;
pub use mmap::Mmap;
pub use perf::*;

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Program types (`enum bpf_prog_type`) the crate knows by name.
#[allow(dead_code)] // the uapi values, listed whole whether or not a section maps to them yet
pub mod prog_type {
    pub const SOCKET_FILTER: u32 = 1;
    pub const KPROBE: u32 = 2;
    pub const SCHED_CLS: u32 = 3;
    pub const SCHED_ACT: u32 = 4;
    pub const TRACEPOINT: u32 = 5;
    pub const XDP: u32 = 6;
    pub const PERF_EVENT: u32 = 7;
    pub const RAW_TRACEPOINT: u32 = 17;
    pub const TRACING: u32 = 26;
    pub const LSM: u32 = 29;
    pub const SYSCALL: u32 = 31;
}

/// Attach types (`enum bpf_attach_type`) the crate uses.
pub mod attach_type {
    pub const TRACE_FENTRY: u32 = 24;
    pub const TRACE_FEXIT: u32 = 25;
    pub const PERF_EVENT: u32 = 41;
    pub const TRACE_KPROBE_MULTI: u32 = 42;
    pub const TRACE_UPROBE_MULTI: u32 = 48;
    pub const TRACE_KPROBE_SESSION: u32 = 56;
}

/// Link types (`enum bpf_link_type`) reported by link info.
pub mod link_type {
    pub const RAW_TRACEPOINT: u32 = 1;
    pub const TRACING: u32 = 2;
    pub const PERF_EVENT: u32 = 7;
    pub const KPROBE_MULTI: u32 = 8;
}

/// `link_create.kprobe_multi.flags`: attach at function return.
pub const KPROBE_MULTI_RETURN: u32 = 1;
/// The kernel's limit on targets in one kprobe_multi link (`MAX_KPROBE_MULTI_CNT`).
pub const KPROBE_MULTI_MAX_CNT: usize = 1 << 20;
/// Longest symbol name the kernel accepts in a kprobe_multi link (`KSYM_NAME_LEN`), with NUL.
pub const KSYM_NAME_LEN: usize = 512;

/// `BPF_F_RDONLY_PROG`: programs may only read the map (used for `.rodata`).
pub const MAP_F_RDONLY_PROG: u32 = 1 << 7;
/// `BPF_F_MMAPABLE`.
#[allow(dead_code)] // the uapi flag, kept beside its siblings
pub const MAP_F_MMAPABLE: u32 = 1 << 10;
/// `BPF_F_NO_PREALLOC`.
#[allow(dead_code)] // the uapi flag, kept beside its siblings
pub const MAP_F_NO_PREALLOC: u32 = 1;
/// `BPF_ANY`, `BPF_NOEXIST`, `BPF_EXIST` for map updates.
pub mod update_flags {
    pub const ANY: u64 = 0;
    pub const NOEXIST: u64 = 1;
    pub const EXIST: u64 = 2;
}

/// Mounts a pseudo file system (`mount -t fstype nodev target`).
pub fn mount_pseudo(fstype: &CStr, target: &CStr) -> io::Result<()> {
    // SAFETY: every pointer is a valid NUL-terminated string or null (data), alive for the call.
    let ret = unsafe { libc::mount(c"nodev".as_ptr(), target.as_ptr(), fstype.as_ptr(), 0, std::ptr::null()) };
    if ret < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// Effective user id, for error hints ("needs root or CAP_BPF").
pub fn geteuid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Raises `RLIMIT_MEMLOCK` to infinity: kernels before 5.11 charge BPF maps and programs to it.
pub fn raise_memlock_limit() -> io::Result<()> {
    let lim = libc::rlimit { rlim_cur: libc::RLIM_INFINITY, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: `lim` is a valid rlimit for the duration of the call.
    let ret = unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) };
    if ret < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// The number of a borrowed fd, as the `u32` the bpf ABI wants.
fn fd_u32(fd: BorrowedFd<'_>) -> u32 {
    fd.as_raw_fd() as u32
}

/// The system's memory page size.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 { size as usize } else { 4096 }
}
