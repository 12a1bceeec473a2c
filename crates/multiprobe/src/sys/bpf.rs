//! One function per `bpf(2)` command.

use std::ffi::{CStr, c_char, c_long};
use std::io;
use std::mem::size_of;
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};

use bytemuck::{Pod, Zeroable};

use super::attr::*;
use super::fd_u32;

/// `enum bpf_cmd` values.
#[derive(Debug, Clone, Copy)]
#[repr(u32)]
enum Cmd {
    MapCreate = 0,
    MapLookupElem = 1,
    MapUpdateElem = 2,
    MapDeleteElem = 3,
    MapGetNextKey = 4,
    ProgLoad = 5,
    ObjPin = 6,
    ObjGet = 7,
    ProgTestRun = 10,
    ProgGetNextId = 11,
    MapGetNextId = 12,
    ProgGetFdById = 13,
    MapGetFdById = 14,
    ObjGetInfoByFd = 15,
    RawTracepointOpen = 17,
    BtfLoad = 18,
    BtfGetFdById = 19,
    MapFreeze = 22,
    BtfGetNextId = 23,
    MapLookupBatch = 24,
    MapUpdateBatch = 26,
    LinkCreate = 28,
    LinkGetFdById = 30,
    LinkGetNextId = 31,
    IterCreate = 33,
}

fn ptr<T>(p: *const T) -> u64 {
    p as usize as u64
}

/// Issues one `bpf(2)` call; the kernel may write results back into `attr`.
fn bpf<T: Pod>(cmd: Cmd, attr: &mut T) -> io::Result<i64> {
    // SAFETY: `attr` is a fully initialised `#[repr(C)]` attr of `size_of::<T>()` bytes; every
    // pointer inside it was taken from a live borrow of the calling wrapper, which outlives
    // this call, and each points to a buffer of the length stored next to it.
    let ret = unsafe { libc::syscall(libc::SYS_bpf, cmd as c_long, attr as *mut T, size_of::<T>() as c_long) };
    if ret < 0 { Err(io::Error::last_os_error()) } else { Ok(ret) }
}

/// Issues a command that returns a new file descriptor.
fn bpf_fd<T: Pod>(cmd: Cmd, attr: &mut T) -> io::Result<OwnedFd> {
    let fd = bpf(cmd, attr)?;
    // SAFETY: on success these commands return a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Copies a name into a NUL-terminated fixed-size ABI field, truncating it.
fn obj_name(name: &str) -> [u8; OBJ_NAME_LEN] {
    let mut out = [0u8; OBJ_NAME_LEN];
    let n = name.len().min(OBJ_NAME_LEN - 1);
    out[..n].copy_from_slice(&name.as_bytes()[..n]);
    out
}

/// A `.BTF.ext` record array handed to `BPF_PROG_LOAD` (func_info or line_info).
#[derive(Debug, Clone, Copy)]
pub struct ExtInfo<'a> {
    /// Size of one record, as the object declares it.
    pub rec_size: u32,
    /// The records, back to back.
    pub data: &'a [u8],
}

/// Everything `BPF_PROG_LOAD` takes.
#[derive(Debug, Clone, Copy)]
pub struct ProgLoad<'a> {
    pub prog_type: u32,
    pub expected_attach_type: u32,
    pub name: &'a str,
    pub insns: &'a [Insn],
    pub license: &'a CStr,
    pub kern_version: u32,
    pub prog_flags: u32,
    pub btf_fd: Option<BorrowedFd<'a>>,
    pub func_info: Option<ExtInfo<'a>>,
    pub line_info: Option<ExtInfo<'a>>,
    pub attach_btf_id: u32,
    /// The module BTF holding `attach_btf_id` (`None`: vmlinux).
    pub attach_btf_obj_fd: Option<BorrowedFd<'a>>,
    /// File descriptors that kfunc calls into module BTF index (`insn.off`).
    pub fd_array: &'a [RawFd],
}

/// Loads a program. With `log` given, the verifier writes its log there (`log.1` is the level).
pub fn prog_load(p: &ProgLoad<'_>, log: Option<(&mut [u8], u32)>) -> io::Result<OwnedFd> {
    let mut a = ProgLoadAttr::zeroed();
    a.prog_type = p.prog_type;
    a.expected_attach_type = p.expected_attach_type;
    a.prog_name = obj_name(p.name);
    a.insns = ptr(p.insns.as_ptr());
    a.insn_cnt = p.insns.len() as u32;
    a.license = ptr(p.license.as_ptr());
    a.kern_version = p.kern_version;
    a.prog_flags = p.prog_flags;
    if let Some(fd) = p.btf_fd {
        a.prog_btf_fd = fd_u32(fd);
        if let Some(fi) = p.func_info.filter(|fi| fi.rec_size > 0) {
            a.func_info_rec_size = fi.rec_size;
            a.func_info = ptr(fi.data.as_ptr());
            a.func_info_cnt = fi.data.len() as u32 / fi.rec_size;
        }
        if let Some(li) = p.line_info.filter(|li| li.rec_size > 0) {
            a.line_info_rec_size = li.rec_size;
            a.line_info = ptr(li.data.as_ptr());
            a.line_info_cnt = li.data.len() as u32 / li.rec_size;
        }
    }
    a.attach_btf_id = p.attach_btf_id;
    if let Some(fd) = p.attach_btf_obj_fd {
        a.attach_btf_obj_fd = fd_u32(fd);
    }
    if !p.fd_array.is_empty() {
        a.fd_array = ptr(p.fd_array.as_ptr());
    }
    if let Some((buf, level)) = log {
        a.log_level = level;
        a.log_size = buf.len() as u32;
        a.log_buf = ptr(buf.as_mut_ptr());
    }
    // The verifier can return EAGAIN when it is interrupted by a signal; libbpf retries too.
    let mut attempts = 5;
    loop {
        match bpf_fd(Cmd::ProgLoad, &mut a) {
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) && attempts > 1 => attempts -= 1,
            other => return other,
        }
    }
}

/// Everything `BPF_MAP_CREATE` takes.
#[derive(Debug, Clone, Copy, Default)]
pub struct MapCreate<'a> {
    pub map_type: u32,
    pub name: &'a str,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub map_flags: u32,
    pub inner_map_fd: Option<BorrowedFd<'a>>,
    pub btf_fd: Option<BorrowedFd<'a>>,
    pub btf_key_type_id: u32,
    pub btf_value_type_id: u32,
    pub map_extra: u64,
}

/// Creates a map.
pub fn map_create(m: &MapCreate<'_>) -> io::Result<OwnedFd> {
    let mut a = MapCreateAttr::zeroed();
    a.map_type = m.map_type;
    a.map_name = obj_name(m.name);
    a.key_size = m.key_size;
    a.value_size = m.value_size;
    a.max_entries = m.max_entries;
    a.map_flags = m.map_flags;
    a.inner_map_fd = m.inner_map_fd.map_or(0, fd_u32);
    if let Some(fd) = m.btf_fd {
        a.btf_fd = fd_u32(fd);
        a.btf_key_type_id = m.btf_key_type_id;
        a.btf_value_type_id = m.btf_value_type_id;
    }
    a.map_extra = m.map_extra;
    bpf_fd(Cmd::MapCreate, &mut a)
}

fn elem_attr(fd: BorrowedFd<'_>, key: *const u8, value: *const u8, flags: u64) -> MapElemAttr {
    MapElemAttr { map_fd: fd_u32(fd), _pad: 0, key: ptr(key), value: ptr(value), flags }
}

fn not_found_is_none(r: io::Result<i64>) -> io::Result<bool> {
    match r {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Looks `key` up; `Ok(false)` when absent. `value` must be the map's value size (times the
/// number of possible CPUs for per-CPU maps); the caller checks sizes.
pub fn map_lookup_elem(fd: BorrowedFd<'_>, key: &[u8], value: &mut [u8], flags: u64) -> io::Result<bool> {
    let mut a = elem_attr(fd, key.as_ptr(), value.as_mut_ptr(), flags);
    not_found_is_none(bpf(Cmd::MapLookupElem, &mut a))
}

/// Creates or updates an element (`flags`: [`super::update_flags`]).
pub fn map_update_elem(fd: BorrowedFd<'_>, key: &[u8], value: &[u8], flags: u64) -> io::Result<()> {
    let mut a = elem_attr(fd, key.as_ptr(), value.as_ptr(), flags);
    bpf(Cmd::MapUpdateElem, &mut a).map(drop)
}

/// Deletes an element; `Ok(false)` when it was absent.
pub fn map_delete_elem(fd: BorrowedFd<'_>, key: &[u8]) -> io::Result<bool> {
    let mut a = elem_attr(fd, key.as_ptr(), std::ptr::null(), 0);
    not_found_is_none(bpf(Cmd::MapDeleteElem, &mut a))
}

/// Writes the key after `key` (or the first key for `None`) into `next`; `Ok(false)` at the end.
pub fn map_get_next_key(fd: BorrowedFd<'_>, key: Option<&[u8]>, next: &mut [u8]) -> io::Result<bool> {
    let key = key.map_or(std::ptr::null(), <[u8]>::as_ptr);
    let mut a = elem_attr(fd, key, next.as_mut_ptr(), 0);
    not_found_is_none(bpf(Cmd::MapGetNextKey, &mut a))
}

/// Reads up to `count` elements starting after the batch position `in_batch` (`None`: from
/// the start) into `keys` and `values`; writes the next position into `out_batch`. Returns
/// how many elements were read and whether the end of the map was reached.
pub fn map_lookup_batch(
    fd: BorrowedFd<'_>,
    in_batch: Option<&[u8]>,
    out_batch: &mut [u8],
    keys: &mut [u8],
    values: &mut [u8],
    count: u32,
) -> io::Result<(u32, bool)> {
    let mut a = MapBatchAttr::zeroed();
    a.map_fd = fd_u32(fd);
    a.in_batch = in_batch.map_or(0, |b| ptr(b.as_ptr()));
    a.out_batch = ptr(out_batch.as_mut_ptr());
    a.keys = ptr(keys.as_mut_ptr());
    a.values = ptr(values.as_mut_ptr());
    a.count = count;
    match bpf(Cmd::MapLookupBatch, &mut a) {
        Ok(_) => Ok((a.count, false)),
        // The kernel says ENOENT with the last, possibly partial, batch copied.
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok((a.count, true)),
        Err(e) => Err(e),
    }
}

/// Writes `count` elements (`keys` and `values` back to back) in one call. Returns how many
/// the kernel reports written, and the result; a kernel or map type without batch updates
/// fails before writing and leaves the count as given.
pub fn map_update_batch(
    fd: BorrowedFd<'_>,
    keys: &[u8],
    values: &[u8],
    count: u32,
    flags: u64,
) -> (u32, io::Result<()>) {
    let mut a = MapBatchAttr::zeroed();
    a.map_fd = fd_u32(fd);
    a.keys = ptr(keys.as_ptr());
    a.values = ptr(values.as_ptr());
    a.count = count;
    a.elem_flags = flags;
    let result = bpf(Cmd::MapUpdateBatch, &mut a).map(drop);
    (a.count, result)
}

/// Makes the map read-only for user space from now on.
pub fn map_freeze(fd: BorrowedFd<'_>) -> io::Result<()> {
    let mut a = MapFdAttr { map_fd: fd_u32(fd) };
    bpf(Cmd::MapFreeze, &mut a).map(drop)
}

/// Loads BTF; with `log`, the kernel explains a rejection there.
pub fn btf_load(data: &[u8], log: Option<&mut [u8]>) -> io::Result<OwnedFd> {
    let mut a = BtfLoadAttr::zeroed();
    a.btf = ptr(data.as_ptr());
    a.btf_size = data.len() as u32;
    if let Some(buf) = log {
        a.btf_log_level = 1;
        a.btf_log_size = buf.len() as u32;
        a.btf_log_buf = ptr(buf.as_mut_ptr());
    }
    bpf_fd(Cmd::BtfLoad, &mut a)
}

/// Pins `fd` at `path` in a bpf file system.
pub fn obj_pin(fd: BorrowedFd<'_>, path: &CStr) -> io::Result<()> {
    let mut a = ObjPinAttr { pathname: ptr(path.as_ptr()), bpf_fd: fd_u32(fd), file_flags: 0 };
    bpf(Cmd::ObjPin, &mut a).map(drop)
}

/// Opens the object pinned at `path`.
pub fn obj_get(path: &CStr) -> io::Result<OwnedFd> {
    let mut a = ObjPinAttr { pathname: ptr(path.as_ptr()), bpf_fd: 0, file_flags: 0 };
    bpf_fd(Cmd::ObjGet, &mut a)
}

fn obj_info<T: Pod>(fd: BorrowedFd<'_>, info: &mut T) -> io::Result<()> {
    let mut a = InfoByFdAttr { bpf_fd: fd_u32(fd), info_len: size_of::<T>() as u32, info: ptr(info as *mut T) };
    bpf(Cmd::ObjGetInfoByFd, &mut a).map(drop)
}

/// `bpf_prog_info` of a program.
pub fn prog_info(fd: BorrowedFd<'_>) -> io::Result<ProgInfo> {
    let mut info = ProgInfo::zeroed();
    obj_info(fd, &mut info).map(|()| info)
}

/// `bpf_map_info` of a map.
pub fn map_info(fd: BorrowedFd<'_>) -> io::Result<MapInfo> {
    let mut info = MapInfo::zeroed();
    obj_info(fd, &mut info).map(|()| info)
}

/// `bpf_btf_info` of a BTF object, with its name (a module's name for module BTF, `vmlinux`
/// for the kernel's own, empty for program BTF).
pub fn btf_info(fd: BorrowedFd<'_>) -> io::Result<(BtfInfo, String)> {
    let mut name = [0u8; 64];
    let mut info = BtfInfo::zeroed();
    info.name = ptr(name.as_mut_ptr());
    info.name_len = name.len() as u32;
    obj_info(fd, &mut info)?;
    // The kernel wrote the name (NUL-terminated, cut to the buffer) into `name`, which we own.
    info.name = 0;
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    Ok((info, String::from_utf8_lossy(&name[..end]).into_owned()))
}

/// `bpf_link_info` of a link. For a kprobe_multi link, pass buffers to receive its target
/// addresses and cookies (the kernel fills as many as fit and reports the real count; it
/// fails with ENOSPC when a buffer is shorter than the count).
pub fn link_info(fd: BorrowedFd<'_>, addrs: Option<&mut [u64]>, cookies: Option<&mut [u64]>) -> io::Result<LinkInfo> {
    let mut info = LinkInfo::zeroed();
    let mut count = None;
    if let Some(buf) = addrs {
        info.kmulti_addrs = ptr(buf.as_mut_ptr());
        count = Some(buf.len());
    }
    if let Some(buf) = cookies {
        info.kmulti_cookies = ptr(buf.as_mut_ptr());
        count = Some(count.map_or(buf.len(), |c| c.min(buf.len())));
    }
    info.kmulti_count = count.unwrap_or(0) as u32;
    obj_info(fd, &mut info).map(|()| info)
}

/// Which kind of object an id names, for the `*_GET_FD_BY_ID` and `*_GET_NEXT_ID` commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjKind {
    Prog,
    Map,
    Link,
    Btf,
}

/// Opens the object with this id.
pub fn get_fd_by_id(kind: ObjKind, id: u32) -> io::Result<OwnedFd> {
    let cmd = match kind {
        ObjKind::Prog => Cmd::ProgGetFdById,
        ObjKind::Map => Cmd::MapGetFdById,
        ObjKind::Link => Cmd::LinkGetFdById,
        ObjKind::Btf => Cmd::BtfGetFdById,
    };
    let mut a = IdAttr { id, next_id: 0, open_flags: 0 };
    bpf_fd(cmd, &mut a)
}

/// The id after `id` among live objects of this kind; `None` at the end.
pub fn get_next_id(kind: ObjKind, id: u32) -> io::Result<Option<u32>> {
    let cmd = match kind {
        ObjKind::Prog => Cmd::ProgGetNextId,
        ObjKind::Map => Cmd::MapGetNextId,
        ObjKind::Link => Cmd::LinkGetNextId,
        ObjKind::Btf => Cmd::BtfGetNextId,
    };
    let mut a = IdAttr { id, next_id: 0, open_flags: 0 };
    match bpf(cmd, &mut a) {
        Ok(_) => Ok(Some(a.next_id)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// What `BPF_PROG_TEST_RUN` reports.
#[derive(Debug, Clone, Copy)]
pub struct TestRunOutput {
    /// The program's return value (of the last run).
    pub retval: u32,
    /// Average run time in nanoseconds.
    pub duration_ns: u32,
}

/// Runs a program in the kernel on `data` (a packet for socket filters, empty for others).
pub fn prog_test_run(
    fd: BorrowedFd<'_>,
    data: &[u8],
    data_out: Option<&mut [u8]>,
    repeat: u32,
) -> io::Result<TestRunOutput> {
    let mut a = TestRunAttr::zeroed();
    a.prog_fd = fd_u32(fd);
    a.data_in = ptr(data.as_ptr());
    a.data_size_in = data.len() as u32;
    if let Some(out) = data_out {
        a.data_out = ptr(out.as_mut_ptr());
        a.data_size_out = out.len() as u32;
    }
    a.repeat = repeat;
    bpf(Cmd::ProgTestRun, &mut a)?;
    Ok(TestRunOutput { retval: a.retval, duration_ns: a.duration })
}

/// What a kprobe_multi link attaches to.
#[derive(Debug, Clone, Copy)]
pub enum KprobeMultiTargets<'a> {
    /// Function names; the kernel resolves each to the first traceable symbol of that name.
    Symbols(&'a [&'a CStr]),
    /// Function addresses (symbol addresses or ftrace patch sites).
    Addresses(&'a [u64]),
}

/// Creates a kprobe_multi (or kprobe session) link.
pub fn link_create_kprobe_multi(
    prog: BorrowedFd<'_>,
    attach_type: u32,
    kprobe_multi_flags: u32,
    targets: KprobeMultiTargets<'_>,
    cookies: Option<&[u64]>,
) -> io::Result<OwnedFd> {
    let mut a = LinkCreateKprobeMultiAttr::zeroed();
    a.prog_fd = fd_u32(prog);
    a.attach_type = attach_type;
    a.kprobe_multi_flags = kprobe_multi_flags;
    // Kept alive until the call returns: the kernel copies the names during link creation.
    let names: Vec<*const c_char>;
    match targets {
        KprobeMultiTargets::Symbols(syms) => {
            names = syms.iter().map(|s| s.as_ptr()).collect();
            a.syms = ptr(names.as_ptr());
            a.cnt = syms.len() as u32;
        }
        KprobeMultiTargets::Addresses(addrs) => {
            a.addrs = ptr(addrs.as_ptr());
            a.cnt = addrs.len() as u32;
        }
    }
    if let Some(c) = cookies {
        // The kernel reads `cnt` cookies: refuse a shorter array rather than let it read past.
        if c.len() != a.cnt as usize {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        a.cookies = ptr(c.as_ptr());
    }
    bpf_fd(Cmd::LinkCreate, &mut a)
}

/// Creates a perf-event link: runs `prog` when the perf event `event` fires, with `cookie`
/// returned by `bpf_get_attach_cookie` (kernel 5.15+).
pub fn link_create_perf_event(prog: BorrowedFd<'_>, event: BorrowedFd<'_>, cookie: u64) -> io::Result<OwnedFd> {
    let mut a = LinkCreatePerfEventAttr::zeroed();
    a.prog_fd = fd_u32(prog);
    a.target_fd = fd_u32(event);
    a.attach_type = super::attach_type::PERF_EVENT;
    a.bpf_cookie = cookie;
    bpf_fd(Cmd::LinkCreate, &mut a)
}

/// Creates a tracing link (fentry, fexit, fmod_ret, lsm, tp_btf) to the target the program
/// was loaded with: `attach_type` must be the program's expected attach type. Kernels
/// before 5.19 (tp_btf: before 6.10) refuse it with EINVAL; [`raw_tracepoint_open`] is the
/// older way.
pub fn link_create_tracing(prog: BorrowedFd<'_>, attach_type: u32, cookie: u64) -> io::Result<OwnedFd> {
    let mut a = LinkCreateTracingAttr::zeroed();
    a.prog_fd = fd_u32(prog);
    a.attach_type = attach_type;
    a.cookie = cookie;
    bpf_fd(Cmd::LinkCreate, &mut a)
}

/// Creates an iterator link (`BPF_TRACE_ITER`) with `iter_info` as the kernel's
/// `union bpf_iter_link_info` bytes (empty: none).
pub fn link_create_iter(prog: BorrowedFd<'_>, iter_info: &[u8]) -> io::Result<OwnedFd> {
    let mut a = LinkCreateIterAttr::zeroed();
    a.prog_fd = fd_u32(prog);
    a.attach_type = super::attach_type::TRACE_ITER;
    if !iter_info.is_empty() {
        a.iter_info = ptr(iter_info.as_ptr());
        a.iter_info_len = iter_info.len() as u32;
    }
    bpf_fd(Cmd::LinkCreate, &mut a)
}

/// Opens a raw tracepoint link: `name` for raw_tp programs, `None` for programs whose
/// target is their BTF id (the pre-`BPF_LINK_CREATE` way to attach fentry, lsm, tp_btf).
pub fn raw_tracepoint_open(prog: BorrowedFd<'_>, name: Option<&CStr>) -> io::Result<OwnedFd> {
    let mut a = RawTracepointOpenAttr::zeroed();
    a.name = name.map_or(0, |n| ptr(n.as_ptr()));
    a.prog_fd = fd_u32(prog);
    bpf_fd(Cmd::RawTracepointOpen, &mut a)
}

/// Starts one pass of an iterator link: the returned fd reads the program's output.
pub fn iter_create(link: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let mut a = IterCreateAttr { link_fd: fd_u32(link), flags: 0 };
    bpf_fd(Cmd::IterCreate, &mut a)
}

/// Link info of a tracing link (fentry, fexit, fmod_ret, lsm).
pub fn link_info_tracing(fd: BorrowedFd<'_>) -> io::Result<LinkInfoTracing> {
    let mut info = LinkInfoTracing::zeroed();
    obj_info(fd, &mut info).map(|()| info)
}

/// Link info of a raw tracepoint or iterator link, with its tracepoint or iterator name
/// written into `name` (NUL-terminated, cut to the buffer).
pub fn link_info_named(fd: BorrowedFd<'_>, name: &mut [u8]) -> io::Result<LinkInfoNamed> {
    let mut info = LinkInfoNamed::zeroed();
    info.name = ptr(name.as_mut_ptr());
    info.name_len = name.len() as u32;
    obj_info(fd, &mut info)?;
    // The kernel wrote into `name`, which the caller owns; the pointer is not kept.
    info.name = 0;
    Ok(info)
}
