//! Every way to attach a [`Program`], declared in one place: each method says what it
//! attaches and delegates to the module that does it.

use super::Program;
use crate::auto_attach::{self, Attachment};
use crate::error::AttachError;
use crate::iterator::{self, IterLink};
use crate::kprobe_multi::{self, KprobeMulti, KprobeMultiLink, KprobeMultiOpts};
use crate::link::Link;
use crate::perf_event::{self, KprobeTarget};
use crate::{raw_tracepoint, tracing_link};

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

    /// Attaches a `ksyscall` or `kretsyscall` program to syscall `name` (`openat`): a kprobe
    /// on the architecture's wrapper (`__x64_sys_openat`) where the kernel has one, else on
    /// `sys_openat`; `cookie` as for [`Program::attach_kprobe`].
    pub fn attach_ksyscall(&self, name: &str, cookie: u64) -> Result<Link, AttachError> {
        perf_event::attach_ksyscall(self, name, cookie)
    }

    /// Attaches an fentry, fexit, fmod_ret, fsession or tp_btf program to the function or
    /// tracepoint it was loaded against (its section's target, or `set_attach_target`'s):
    /// a tracing link (5.10+), or a raw tracepoint link on older kernels.
    pub fn attach_trace(&self) -> Result<Link, AttachError> {
        tracing_link::attach_trace(self)
    }

    /// Attaches a BPF LSM program (`lsm/HOOK`) to its hook. It runs only where `bpf` is among
    /// the active LSMs (`/sys/kernel/security/lsm`, the `lsm=` boot parameter).
    pub fn attach_lsm(&self) -> Result<Link, AttachError> {
        tracing_link::attach_lsm(self)
    }

    /// Attaches a `raw_tp` or `raw_tp.w` program to the raw tracepoint `name` (`sys_enter`,
    /// `sched_switch`: no category).
    pub fn attach_raw_tracepoint(&self, name: &str) -> Result<Link, AttachError> {
        raw_tracepoint::attach_raw_tracepoint(self, name)
    }

    /// Attaches an `iter/NAME` program as an iterator; read it with [`IterLink::read_all`]
    /// or [`IterLink::open`].
    pub fn attach_iter(&self) -> Result<IterLink, AttachError> {
        iterator::attach_iter(self)
    }

    /// Attaches the program to the target its section names, like libbpf's
    /// `bpf_program__attach`: `kprobe.multi/PATTERN`, `kretprobe.multi/PATTERN`,
    /// `kprobe.session/PATTERN`, `kprobe/FUNC[+OFF]`, `kretprobe/FUNC`, `ksyscall/NAME`,
    /// `kretsyscall/NAME`, `tracepoint/CAT/NAME`, `raw_tp/NAME`, `raw_tp.w/NAME`, and the
    /// kinds whose target is their load-time BTF id: `fentry`, `fexit`, `fmod_ret`,
    /// `fsession`, `tp_btf`, `lsm`, `iter`. A kind that attaches by section name but whose
    /// section gives no target (`SEC("kprobe")`) is an error naming the program
    /// ([`AttachError::NoSectionTarget`]); `Ok(None)` for kinds that are never attached this
    /// way (`socket`, `xdp`, cgroup programs, ...), which libbpf does not auto-attach either.
    pub fn attach(&self) -> Result<Option<Attachment>, AttachError> {
        auto_attach::attach(self)
    }
}
