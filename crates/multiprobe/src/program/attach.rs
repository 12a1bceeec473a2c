//! Every way to attach a [`Program`], declared in one place: each method says what it
//! attaches and delegates to the module that does it.

use super::Program;
use crate::auto_attach::{self, Attachment};
use crate::error::AttachError;
use crate::kprobe_multi::{self, KprobeMulti, KprobeMultiLink, KprobeMultiOpts};
use crate::link::Link;
use crate::perf_event::{self, KprobeTarget};

impl Program {
    /// Attaches this program to many kernel functions with one kprobe_multi link.
    ///
    /// The program must have been loaded from a `kprobe.multi` or `kretprobe.multi` section
    /// (any of the two, for entry or return mode) or a `kprobe.session` one (session mode);
    /// with a [`kprobe_multi::Fallback`] other than `Never`, a program loaded as a plain
    /// `kprobe` is accepted too and attached per function.
    pub fn attach_kprobe_multi(&self, spec: &KprobeMulti) -> Result<KprobeMultiLink, AttachError> {
        kprobe_multi::attach::attach(self, spec)
    }

    /// Attaches like libbpf's `bpf_program__attach_kprobe_multi_opts`, checks and errors
    /// included (see the reference table in `docs/kprobe-multi.md`).
    pub fn attach_kprobe_multi_opts(&self, opts: &KprobeMultiOpts) -> Result<KprobeMultiLink, AttachError> {
        kprobe_multi::opts::attach(self, opts)
    }

    /// Attaches a tracepoint program to `category/name` (e.g. `syscalls`, `sys_enter_getpid`).
    pub fn attach_tracepoint(&self, category: &str, name: &str) -> Result<Link, AttachError> {
        perf_event::attach_tracepoint(self, category, name)
    }

    /// Attaches a `kprobe` or `kretprobe` program to one kernel function through a perf event,
    /// with `cookie` returned by `bpf_get_attach_cookie` (kernel 5.15+; 0 works everywhere).
    pub fn attach_kprobe(&self, target: &KprobeTarget, cookie: u64) -> Result<Link, AttachError> {
        perf_event::attach_kprobe(self, target, cookie)
    }

    /// Attaches the program to the target its section names: `kprobe.multi/PATTERN`,
    /// `kretprobe.multi/PATTERN`, `kprobe.session/PATTERN`, `kprobe/FUNC[+OFF]`,
    /// `kretprobe/FUNC`, `tracepoint/CAT/NAME`. `Ok(None)` for sections without a target
    /// (`kprobe.multi`, `socket`, ...), which libbpf does not auto-attach either.
    pub fn attach(&self) -> Result<Option<Attachment>, AttachError> {
        auto_attach::attach(self)
    }
}
