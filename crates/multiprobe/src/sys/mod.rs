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

/// Program types (`enum bpf_prog_type`), numbered as in the uapi header.
#[allow(dead_code)] // the uapi values, listed whole whether or not a section maps to them yet
pub mod prog_type {
    pub const SOCKET_FILTER: u32 = 1;
    pub const KPROBE: u32 = 2;
    pub const SCHED_CLS: u32 = 3;
    pub const SCHED_ACT: u32 = 4;
    pub const TRACEPOINT: u32 = 5;
    pub const XDP: u32 = 6;
    pub const PERF_EVENT: u32 = 7;
    pub const CGROUP_SKB: u32 = 8;
    pub const CGROUP_SOCK: u32 = 9;
    pub const LWT_IN: u32 = 10;
    pub const LWT_OUT: u32 = 11;
    pub const LWT_XMIT: u32 = 12;
    pub const SOCK_OPS: u32 = 13;
    pub const SK_SKB: u32 = 14;
    pub const CGROUP_DEVICE: u32 = 15;
    pub const SK_MSG: u32 = 16;
    pub const RAW_TRACEPOINT: u32 = 17;
    pub const CGROUP_SOCK_ADDR: u32 = 18;
    pub const LWT_SEG6LOCAL: u32 = 19;
    pub const LIRC_MODE2: u32 = 20;
    pub const SK_REUSEPORT: u32 = 21;
    pub const FLOW_DISSECTOR: u32 = 22;
    pub const CGROUP_SYSCTL: u32 = 23;
    pub const RAW_TRACEPOINT_WRITABLE: u32 = 24;
    pub const CGROUP_SOCKOPT: u32 = 25;
    pub const TRACING: u32 = 26;
    pub const STRUCT_OPS: u32 = 27;
    pub const EXT: u32 = 28;
    pub const LSM: u32 = 29;
    pub const SK_LOOKUP: u32 = 30;
    pub const SYSCALL: u32 = 31;
    pub const NETFILTER: u32 = 32;
}

/// Attach types (`enum bpf_attach_type`), numbered as in the uapi header.
pub mod attach_type {
    pub const CGROUP_INET_INGRESS: u32 = 0;
    pub const CGROUP_INET_EGRESS: u32 = 1;
    pub const CGROUP_INET_SOCK_CREATE: u32 = 2;
    pub const CGROUP_SOCK_OPS: u32 = 3;
    pub const SK_SKB_STREAM_PARSER: u32 = 4;
    pub const SK_SKB_STREAM_VERDICT: u32 = 5;
    pub const CGROUP_DEVICE: u32 = 6;
    pub const SK_MSG_VERDICT: u32 = 7;
    pub const CGROUP_INET4_BIND: u32 = 8;
    pub const CGROUP_INET6_BIND: u32 = 9;
    pub const CGROUP_INET4_CONNECT: u32 = 10;
    pub const CGROUP_INET6_CONNECT: u32 = 11;
    pub const CGROUP_INET4_POST_BIND: u32 = 12;
    pub const CGROUP_INET6_POST_BIND: u32 = 13;
    pub const CGROUP_UDP4_SENDMSG: u32 = 14;
    pub const CGROUP_UDP6_SENDMSG: u32 = 15;
    pub const LIRC_MODE2: u32 = 16;
    pub const FLOW_DISSECTOR: u32 = 17;
    pub const CGROUP_SYSCTL: u32 = 18;
    pub const CGROUP_UDP4_RECVMSG: u32 = 19;
    pub const CGROUP_UDP6_RECVMSG: u32 = 20;
    pub const CGROUP_GETSOCKOPT: u32 = 21;
    pub const CGROUP_SETSOCKOPT: u32 = 22;
    pub const TRACE_RAW_TP: u32 = 23;
    pub const TRACE_FENTRY: u32 = 24;
    pub const TRACE_FEXIT: u32 = 25;
    pub const MODIFY_RETURN: u32 = 26;
    pub const LSM_MAC: u32 = 27;
    pub const TRACE_ITER: u32 = 28;
    pub const CGROUP_INET4_GETPEERNAME: u32 = 29;
    pub const CGROUP_INET6_GETPEERNAME: u32 = 30;
    pub const CGROUP_INET4_GETSOCKNAME: u32 = 31;
    pub const CGROUP_INET6_GETSOCKNAME: u32 = 32;
    pub const XDP_DEVMAP: u32 = 33;
    pub const CGROUP_INET_SOCK_RELEASE: u32 = 34;
    pub const XDP_CPUMAP: u32 = 35;
    pub const SK_LOOKUP: u32 = 36;
    pub const XDP: u32 = 37;
    pub const SK_SKB_VERDICT: u32 = 38;
    pub const SK_REUSEPORT_SELECT: u32 = 39;
    pub const SK_REUSEPORT_SELECT_OR_MIGRATE: u32 = 40;
    pub const PERF_EVENT: u32 = 41;
    pub const TRACE_KPROBE_MULTI: u32 = 42;
    pub const LSM_CGROUP: u32 = 43;
    pub const STRUCT_OPS: u32 = 44;
    pub const NETFILTER: u32 = 45;
    pub const TCX_INGRESS: u32 = 46;
    pub const TCX_EGRESS: u32 = 47;
    pub const TRACE_UPROBE_MULTI: u32 = 48;
    pub const CGROUP_UNIX_CONNECT: u32 = 49;
    pub const CGROUP_UNIX_SENDMSG: u32 = 50;
    pub const CGROUP_UNIX_RECVMSG: u32 = 51;
    pub const CGROUP_UNIX_GETPEERNAME: u32 = 52;
    pub const CGROUP_UNIX_GETSOCKNAME: u32 = 53;
    pub const NETKIT_PRIMARY: u32 = 54;
    pub const NETKIT_PEER: u32 = 55;
    pub const TRACE_KPROBE_SESSION: u32 = 56;
    pub const TRACE_UPROBE_SESSION: u32 = 57;
    pub const TRACE_FSESSION: u32 = 58;
}

/// Link types (`enum bpf_link_type`) reported by link info.
pub mod link_type {
    pub const RAW_TRACEPOINT: u32 = 1;
    pub const TRACING: u32 = 2;
    pub const ITER: u32 = 4;
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

/// Detaches the mount at `target` lazily (`umount2(MNT_DETACH)`): it leaves the tree at once
/// and lives on only for the fds already open in it.
pub fn umount_detach(target: &CStr) -> io::Result<()> {
    // SAFETY: `target` is a valid NUL-terminated string alive for the call.
    let ret = unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    if ret < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// Makes a FIFO at `path` (for tests of readers that must not block on one).
#[cfg(test)]
pub fn mkfifo(path: &CStr, mode: u32) -> io::Result<()> {
    // SAFETY: `path` is a valid NUL-terminated string alive for the call.
    let ret = unsafe { libc::mkfifo(path.as_ptr(), mode) };
    if ret < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// `statfs.f_type` of tracefs (`TRACEFS_MAGIC` in include/uapi/linux/magic.h).
pub const TRACEFS_MAGIC: i64 = 0x7472_6163;
/// `statfs.f_type` of debugfs (`DEBUGFS_MAGIC`), where tracefs lived before 4.1.
pub const DEBUGFS_MAGIC: i64 = 0x6462_6720;

/// The file system type (`statfs.f_type`) of the one `path` is on. Needs search permission
/// on the path's parents only, not read permission on `path`: that is what tells a tracefs
/// mounted but closed to this user from one not mounted at all.
pub fn fs_magic(path: &CStr) -> io::Result<i64> {
    let mut buf = std::mem::MaybeUninit::<libc::statfs>::zeroed();
    // SAFETY: `path` is NUL-terminated and `buf` is a writable statfs, both alive for the call.
    let ret = unsafe { libc::statfs(path.as_ptr(), buf.as_mut_ptr()) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statfs succeeded, so it filled `buf` (and zeroed is a valid statfs anyway).
    let f_type = unsafe { buf.assume_init() }.f_type;
    // __fsword_t: i64 on x86-64, narrower on some other targets.
    #[allow(clippy::unnecessary_cast)]
    Ok(f_type as i64)
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
