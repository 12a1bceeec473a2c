//! Programs in the kernel: load (with the verifier's log on failure), inspect, test-run, pin,
//! and reload under another kind. Every way to attach one is declared in `attach.rs`.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;

mod attach;

use crate::btf::{FuncInfo, LineInfo, POISON_HELPER_ID};
use crate::error::{LoadError, PinError};
use crate::insn::{Insn, POISON_KFUNC_CALL};
use crate::map::Map;
use crate::object::ProgramKind;
use crate::{pin, sys};

/// Everything needed to load a program's code again, e.g. as another kind.
#[derive(Debug)]
pub(crate) struct Recipe {
    pub insns: Vec<Insn>,
    pub func_info: Vec<FuncInfo>,
    pub line_info: Vec<LineInfo>,
    pub license: CString,
    pub kern_version: u32,
    pub btf_fd: Option<Arc<OwnedFd>>,
    /// The maps the instructions refer to by fd: held (never read) so those fds stay valid
    /// as long as the code may be loaded again.
    pub _maps: Vec<Map>,
    /// Weak kfuncs the kernel lacks (see `LinkedProgram::missing_kfuncs`).
    pub missing_kfuncs: Vec<String>,
    /// Why CO-RE relocations were poisoned in this program's sections.
    pub core_poisons: Vec<String>,
    /// Module BTF objects named by kfunc calls (`off` = index, from 1) and module
    /// variables: `BPF_PROG_LOAD`'s `fd_array` from entry 1, held while the code may load.
    pub fd_array: Vec<Arc<OwnedFd>>,
}

/// How a program is loaded: what `BPF_PROG_LOAD` takes besides the code.
#[derive(Debug, Clone)]
pub(crate) struct LoadAttrs {
    pub kind: ProgramKind,
    pub expected_attach_type: u32,
    pub prog_flags: u32,
    /// BTF id of the attach target (tracing, LSM, iterators), 0 for none.
    pub attach_btf_id: u32,
    /// The module BTF holding `attach_btf_id`; `None` for vmlinux.
    pub attach_btf_obj: Option<Arc<OwnedFd>>,
}

impl LoadAttrs {
    /// A kind's defaults: its expected attach type, no flags, no BTF target.
    pub fn of(kind: ProgramKind) -> LoadAttrs {
        LoadAttrs {
            kind,
            expected_attach_type: kind.expected_attach_type(),
            prog_flags: 0,
            attach_btf_id: 0,
            attach_btf_obj: None,
        }
    }
}

#[derive(Debug)]
struct ProgramInner {
    fd: OwnedFd,
    name: String,
    kind: ProgramKind,
    target: Option<String>,
    recipe: Option<Arc<Recipe>>,
}

/// A loaded program. Cloning is cheap and shares it.
#[derive(Debug, Clone)]
pub struct Program {
    inner: Arc<ProgramInner>,
}

/// Statistics and identity the kernel reports for a program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramInfo {
    /// Kernel id (as in `bpftool prog show id N`).
    pub id: u32,
    /// Kernel name (truncated to 15 bytes).
    pub name: String,
    /// `enum bpf_prog_type`.
    pub prog_type: u32,
    /// SHA of the instructions, as the kernel computes it.
    pub tag: [u8; 8],
    /// Instructions the verifier processed.
    pub verified_insns: u32,
    /// Id of the program's BTF in the kernel (0 when loaded without BTF: no line info).
    pub btf_id: u32,
    /// Runs, when run-time statistics are enabled (`sysctl kernel.bpf_stats_enabled=1`).
    pub run_count: u64,
    /// Total run time in ns, likewise.
    pub run_time_ns: u64,
    /// Runs skipped because a BPF program was already running on that CPU.
    pub recursion_misses: u64,
}

/// What [`Program::test_run`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestRun {
    /// The program's return value.
    pub retval: u32,
    /// Average duration of one run in nanoseconds.
    pub duration_ns: u32,
}

impl Program {
    /// Loads `recipe`'s instructions as `attrs` say.
    pub(crate) fn load(
        name: &str,
        attrs: &LoadAttrs,
        target: Option<String>,
        recipe: Arc<Recipe>,
    ) -> Result<Program, LoadError> {
        let kind = attrs.kind;
        let func_info = ext_bytes(&recipe.func_info, |f| [f.insn_off, f.type_id].to_vec());
        let line_info =
            ext_bytes(&recipe.line_info, |l| [l.insn_off, l.file_name_off, l.line_off, l.line_col].to_vec());
        // Entry 0 is never read (a kfunc call's `off` 0 means vmlinux); -1 if it ever were.
        let fd_array: Vec<i32> = if recipe.fd_array.is_empty() {
            Vec::new()
        } else {
            std::iter::once(-1).chain(recipe.fd_array.iter().map(|fd| fd.as_raw_fd())).collect()
        };
        let req = sys::ProgLoad {
            prog_type: kind.prog_type(),
            expected_attach_type: attrs.expected_attach_type,
            name,
            insns: &recipe.insns,
            license: &recipe.license,
            kern_version: recipe.kern_version,
            prog_flags: attrs.prog_flags,
            btf_fd: recipe.btf_fd.as_deref().map(AsFd::as_fd),
            func_info: (!recipe.func_info.is_empty()).then_some(sys::ExtInfo { rec_size: 8, data: &func_info }),
            line_info: (!recipe.line_info.is_empty()).then_some(sys::ExtInfo { rec_size: 16, data: &line_info }),
            attach_btf_id: attrs.attach_btf_id,
            attach_btf_obj_fd: attrs.attach_btf_obj.as_deref().map(AsFd::as_fd),
            fd_array: &fd_array,
        };
        let fd = load_with_log(&req).map_err(|(source, log)| LoadError::Program {
            program: name.to_string(),
            kind,
            hints: hints(&source, &log, &recipe),
            source,
            log,
        })?;
        Ok(Program { inner: Arc::new(ProgramInner { fd, name: name.to_string(), kind, target, recipe: Some(recipe) }) })
    }

    /// Opens a program pinned at `path`. Its kind cannot be read back from the kernel, so the
    /// caller says what it was loaded as.
    pub fn from_pin(path: impl AsRef<Path>, kind: ProgramKind) -> Result<Program, LoadError> {
        let path = path.as_ref();
        let fd = pin::open(path)?;
        let name = sys::prog_info(fd.as_fd()).map(|i| c_name(&i.name)).unwrap_or_default();
        Ok(Program { inner: Arc::new(ProgramInner { fd, name, kind, target: None, recipe: None }) })
    }

    /// Loads the same code again as another kind, e.g. a `kprobe.multi` program as a plain
    /// kprobe for kernels without kprobe_multi links. Fails for programs opened from a pin.
    pub fn reload_as(&self, kind: ProgramKind) -> Result<Program, LoadError> {
        let recipe = self.inner.recipe.clone().ok_or_else(|| LoadError::NoCode { program: self.inner.name.clone() })?;
        Program::load(&self.inner.name, &LoadAttrs::of(kind), self.inner.target.clone(), recipe)
    }

    /// Function name in the object.
    pub fn name(&self) -> &str {
        &self.inner.name
    }
    /// What the program was loaded as.
    pub fn kind(&self) -> ProgramKind {
        self.inner.kind
    }
    /// The attach target from the section name (`vfs_*` in `kprobe.multi/vfs_*`).
    pub fn attach_target(&self) -> Option<&str> {
        self.inner.target.as_deref()
    }
    /// The program's file descriptor.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.inner.fd.as_fd()
    }

    /// Identity and statistics from the kernel.
    pub fn info(&self) -> io::Result<ProgramInfo> {
        let i = sys::prog_info(self.fd())?;
        Ok(ProgramInfo {
            id: i.id,
            name: c_name(&i.name),
            prog_type: i.prog_type,
            tag: i.tag,
            verified_insns: i.verified_insns,
            btf_id: i.btf_id,
            run_count: i.run_cnt,
            run_time_ns: i.run_time_ns,
            recursion_misses: i.recursion_misses,
        })
    }

    /// Runs the program once in the kernel on `data` (`BPF_PROG_TEST_RUN`): a packet for
    /// socket filters, XDP and tc programs.
    pub fn test_run(&self, data: &[u8]) -> io::Result<TestRun> {
        let out = sys::prog_test_run(self.fd(), data, None, 1)?;
        Ok(TestRun { retval: out.retval, duration_ns: out.duration_ns })
    }

    /// Pins the program at `path` in a bpf file system.
    pub fn pin(&self, path: impl AsRef<Path>) -> Result<(), PinError> {
        pin::pin(self.fd(), path.as_ref())
    }
}

impl AsFd for Program {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd()
    }
}

impl AsRawFd for Program {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.inner.fd.as_raw_fd()
    }
}

fn c_name(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

fn ext_bytes<T>(records: &[T], words: impl Fn(&T) -> Vec<u32>) -> Vec<u8> {
    records.iter().flat_map(words).flat_map(u32::to_le_bytes).collect()
}

/// Loads without a log first (the verifier is faster without one), and again with a log only
/// when that fails, growing the buffer while the kernel says it is too small.
fn load_with_log(req: &sys::ProgLoad<'_>) -> Result<OwnedFd, (io::Error, String)> {
    let first = match sys::prog_load(req, None) {
        Ok(fd) => return Ok(fd),
        Err(e) => e,
    };
    // Permission and resource errors come before verification: there is no log to get.
    if !matches!(first.raw_os_error(), Some(libc::EINVAL | libc::EACCES | libc::E2BIG | libc::ENOSPC | libc::ENOENT)) {
        return Err((first, String::new()));
    }
    let mut size = 1 << 20;
    loop {
        let mut buf = vec![0u8; size];
        match sys::prog_load(req, Some((&mut buf, 1))) {
            // Loading can succeed with a log when the first failure was transient.
            Ok(fd) => return Ok(fd),
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) && size < 64 << 20 => size *= 4,
            Err(_) => {
                let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
                return Err((first, String::from_utf8_lossy(&buf[..end]).into_owned()));
            }
        }
    }
}

/// Explanations of a failed load that the verifier log alone does not give.
fn hints(err: &io::Error, log: &str, recipe: &Recipe) -> Vec<String> {
    let mut out = Vec::new();
    if err.raw_os_error() == Some(libc::EPERM) {
        out.push(if sys::geteuid() == 0 {
            "the kernel refused even root: check kernel.unprivileged_bpf_disabled, lockdown and the LSM policy".into()
        } else {
            "loading BPF programs needs root, or the CAP_BPF and CAP_PERFMON capabilities".into()
        });
    }
    if log.contains("failed to find the address for kernel symbol") {
        out.push("the kernel lists no address for a __ksym variable: typed ones need CONFIG_KALLSYMS_ALL".into());
    }
    if log.contains(&format!("unknown#{POISON_HELPER_ID}")) {
        for reason in &recipe.core_poisons {
            out.push(format!("a CO-RE relocation failed and its code is reachable: {reason}"));
        }
    }
    for (i, name) in recipe.missing_kfuncs.iter().enumerate() {
        if log.contains(&format!("unknown#{}", POISON_KFUNC_CALL + i as i32)) {
            out.push(format!(
                "the kernel has no kfunc `{name}` (declared __weak) but the call is reachable: guard it with bpf_ksym_exists({name})"
            ));
        }
    }
    out
}
