//! Links: a program attached somewhere, detached when the last reference goes away.
//!
//! A link is an fd. Dropping the [`Link`] closes it, which detaches the program unless the
//! link is pinned in a bpf file system (then removing the pin detaches it).

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use crate::error::PinError;
use crate::pin;
use crate::sys;

/// Link types (`enum bpf_link_type`) as link info reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkType {
    /// `BPF_LINK_TYPE_RAW_TRACEPOINT`.
    RawTracepoint,
    /// `BPF_LINK_TYPE_TRACING` (fentry, fexit, fmod_ret, lsm).
    Tracing,
    /// `BPF_LINK_TYPE_ITER` (BPF iterators).
    Iter,
    /// `BPF_LINK_TYPE_PERF_EVENT` (kprobes, tracepoints through perf events).
    PerfEvent,
    /// `BPF_LINK_TYPE_KPROBE_MULTI`.
    KprobeMulti,
    /// A type this crate has no name for.
    Other(u32),
}

impl LinkType {
    /// The type for the kernel's number (`enum bpf_link_type`); numbers without a name here
    /// become [`LinkType::Other`].
    pub fn from_raw(v: u32) -> LinkType {
        match v {
            sys::link_type::RAW_TRACEPOINT => LinkType::RawTracepoint,
            sys::link_type::TRACING => LinkType::Tracing,
            sys::link_type::ITER => LinkType::Iter,
            sys::link_type::PERF_EVENT => LinkType::PerfEvent,
            sys::link_type::KPROBE_MULTI => LinkType::KprobeMulti,
            other => LinkType::Other(other),
        }
    }

    /// The kernel's number for this type (`BPF_LINK_TYPE_KPROBE_MULTI` is 8), as link info
    /// and `bpftool link` report it.
    pub fn raw(self) -> u32 {
        match self {
            LinkType::RawTracepoint => sys::link_type::RAW_TRACEPOINT,
            LinkType::Tracing => sys::link_type::TRACING,
            LinkType::Iter => sys::link_type::ITER,
            LinkType::PerfEvent => sys::link_type::PERF_EVENT,
            LinkType::KprobeMulti => sys::link_type::KPROBE_MULTI,
            LinkType::Other(v) => v,
        }
    }
}

impl From<u32> for LinkType {
    fn from(v: u32) -> LinkType {
        LinkType::from_raw(v)
    }
}

impl From<LinkType> for u32 {
    fn from(t: LinkType) -> u32 {
        t.raw()
    }
}

#[cfg(test)]
mod tests {
    use super::LinkType;

    #[test]
    fn link_types_round_trip_through_the_kernels_numbers() {
        for v in 0..64 {
            assert_eq!(LinkType::from_raw(v).raw(), v);
        }
        assert_eq!(u32::from(LinkType::KprobeMulti), 8);
        assert_eq!(LinkType::from(7), LinkType::PerfEvent);
    }
}

/// What the kernel reports about any link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkInfo {
    /// Kernel id (as in `bpftool link show id N`).
    pub id: u32,
    /// Id of the attached program.
    pub prog_id: u32,
    /// What kind of link it is.
    pub link_type: LinkType,
}

/// What a link is attached to, as far as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkTarget {
    /// A tracing link (fentry, fexit, fmod_ret, lsm): the attach type and the target's BTF
    /// id, in the BTF object `target_obj_id` (vmlinux's or a module's). Kernels before 5.13
    /// report 0 for both ids.
    Tracing {
        /// `enum bpf_attach_type` (`BPF_TRACE_FENTRY`, `BPF_LSM_MAC`, ...).
        attach_type: u32,
        /// Id of the BTF object holding the target (`bpftool btf show id N`).
        target_obj_id: u32,
        /// The target's type id in that BTF.
        target_btf_id: u32,
    },
    /// A raw tracepoint link (raw_tp, raw_tp.w, tp_btf): the tracepoint's name.
    RawTracepoint {
        /// Name without category (`sys_enter`, `sched_switch`).
        name: String,
    },
    /// An iterator link: the iterator's target (`task`, `bpf_map_elem`, ...).
    Iter {
        /// The iterator's name.
        name: String,
    },
    /// Another link type: only the common fields in [`LinkInfo`] are read.
    Other,
}

/// An attachment of a program, detached on drop (unless pinned).
#[derive(Debug)]
pub struct Link {
    fd: OwnedFd,
    /// The perf event a perf-event link (or a pre-link attachment) runs on: kept open for the
    /// link's lifetime.
    event: Option<OwnedFd>,
}

impl Link {
    /// Wraps a link fd.
    pub(crate) fn new(fd: OwnedFd) -> Link {
        Link { fd, event: None }
    }

    /// Wraps a perf-event link together with its event fd.
    pub(crate) fn with_event(fd: OwnedFd, event: OwnedFd) -> Link {
        Link { fd, event: Some(event) }
    }

    /// The link's file descriptor.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The perf event fd, for links created on a perf event.
    pub fn event_fd(&self) -> Option<BorrowedFd<'_>> {
        self.event.as_ref().map(AsFd::as_fd)
    }

    /// Identity of the link in the kernel.
    pub fn info(&self) -> io::Result<LinkInfo> {
        let i = sys::link_info(self.fd(), None, None)?;
        Ok(LinkInfo { id: i.id, prog_id: i.prog_id, link_type: LinkType::from_raw(i.link_type) })
    }

    /// What the link is attached to, for the link types whose target the kernel reports
    /// (tracing, raw tracepoint, iterator); [`LinkTarget::Other`] for the rest.
    pub fn target(&self) -> io::Result<LinkTarget> {
        let info = self.info()?;
        // Tracepoint and iterator names are short; the kernel cuts a longer one to the buffer
        // (and reports ENOSPC, which only means that).
        let named = |buf: &mut [u8]| -> io::Result<String> {
            match sys::link_info_named(self.fd(), buf) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {}
                Err(e) => return Err(e),
            }
            let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
            Ok(String::from_utf8_lossy(&buf[..end]).into_owned())
        };
        Ok(match info.link_type {
            LinkType::Tracing => {
                let t = sys::link_info_tracing(self.fd())?;
                LinkTarget::Tracing {
                    attach_type: t.attach_type,
                    target_obj_id: t.target_obj_id,
                    target_btf_id: t.target_btf_id,
                }
            }
            LinkType::RawTracepoint => LinkTarget::RawTracepoint { name: named(&mut [0u8; 256])? },
            LinkType::Iter => LinkTarget::Iter { name: named(&mut [0u8; 256])? },
            _ => LinkTarget::Other,
        })
    }

    /// Pins the link at `path` in a bpf file system: the program stays attached after this
    /// process exits, until the pin is removed (`std::fs::remove_file`).
    pub fn pin(&self, path: impl AsRef<Path>) -> Result<(), PinError> {
        pin::pin(self.fd(), path.as_ref())
    }

    /// Opens a link pinned at `path`. Dropping it does not detach: the pin still holds it.
    pub fn from_pin(path: impl AsRef<Path>) -> Result<Link, PinError> {
        pin::open(path.as_ref()).map(Link::new)
    }
}

impl AsFd for Link {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd()
    }
}
