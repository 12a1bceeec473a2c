//! BPF iterators: an `iter/NAME` program attached with an iterator link
//! (`BPF_LINK_CREATE`, `BPF_TRACE_ITER`), then run by reading: each `BPF_ITER_CREATE` on the
//! link gives a file whose reads run the program over the kernel objects (tasks, maps,
//! ...) and return what it wrote with `bpf_seq_write`/`bpf_seq_printf`. As libbpf's
//! `bpf_program__attach_iter` and `bpf_iter_create`.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use crate::error::{AttachError, PinError, wrong_kind};
use crate::link::Link;
use crate::object::ProgramKind;
use crate::perf_event::kernel_error;
use crate::program::Program;
use crate::sys;

/// An attached iterator: a [`Link`] that can be read any number of times.
#[derive(Debug)]
pub struct IterLink {
    link: Link,
}

impl IterLink {
    /// Starts one pass of the iterator: reading the file runs the program, up to the end
    /// of the objects it iterates over (then reads return 0).
    pub fn open(&self) -> io::Result<File> {
        sys::iter_create(self.link.fd()).map(File::from)
    }

    /// Runs one whole pass and returns everything the program wrote.
    pub fn read_all(&self) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.open()?.read_to_end(&mut out)?;
        Ok(out)
    }

    /// The link (info, target, pinning).
    pub fn link(&self) -> &Link {
        &self.link
    }

    /// The link, giving up the reading methods.
    pub fn into_link(self) -> Link {
        self.link
    }

    /// Pins the link: a pinned iterator can be read with `cat` on its pin path.
    pub fn pin(&self, path: impl AsRef<Path>) -> Result<(), PinError> {
        self.link.pin(path)
    }
}

impl AsFd for IterLink {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.link.fd()
    }
}

/// [`Program::attach_iter`]: an iterator without parameters (`task`, `bpf_map`,
/// `bpf_prog`, `bpf_link`, `tcp`, `ksym`, ...).
pub(crate) fn attach_iter(prog: &Program) -> Result<IterLink, AttachError> {
    if prog.kind() != ProgramKind::Iter {
        return Err(wrong_kind(prog.name(), prog.kind(), "an iterator", ProgramKind::Iter));
    }
    let fd = sys::link_create_iter(prog.fd(), &[])
        .map_err(|e| kernel_error(&format!("attaching iterator program `{}`", prog.name()), e))?;
    Ok(IterLink { link: Link::new(fd) })
}
