//! The few libbpf 1.7 calls the benchmark and the corpus runner compare against, behind owning types.
//!
//! This module holds the project's only `unsafe` outside `crates/multiprobe/src/sys`: calls
//! into libbpf's C API (through `libbpf-sys`, vendored and statically linked). Every pointer
//! handed to libbpf is either owned by a type here or borrowed for the duration of the call.

use std::ffi::{CStr, CString, c_char, c_int, c_ulong};
use std::io;
use std::ptr::NonNull;
use std::sync::Mutex;

use libbpf_sys as sys;

/// libbpf 1.x returns NULL and sets errno on failure.
fn last_error(what: &str) -> io::Error {
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("libbpf {what}: {e}"))
}

/// Turns libbpf's own messages off (it prints warnings and info to stderr by default):
/// errors are returned as errno and reported by the caller.
pub fn silence() {
    // SAFETY: passing no callback is documented as "print nothing"; the previous callback
    // returned is a plain function pointer we do not need.
    unsafe {
        sys::libbpf_set_print(None);
    }
}

/// An object opened and loaded by libbpf (`bpf_object__open_mem` + `bpf_object__load`);
/// closed (maps and programs released) on drop.
pub struct Object {
    ptr: NonNull<sys::bpf_object>,
}

impl Object {
    /// Opens `data` as an ELF BPF object named `name`; maps pinned by name go under
    /// `pin_root` when given.
    pub fn open(name: &str, data: &[u8], pin_root: Option<&CStr>) -> io::Result<Object> {
        let cname = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let opts = sys::bpf_object_open_opts {
            sz: size_of::<sys::bpf_object_open_opts>() as sys::size_t,
            object_name: cname.as_ptr(),
            pin_root_path: pin_root.map_or(std::ptr::null(), CStr::as_ptr),
            ..Default::default()
        };
        // SAFETY: `data` is a valid buffer of `data.len()` bytes for the call (libbpf copies
        // it); `opts` is a properly sized, zero-initialised struct whose string pointers
        // (`cname`, `pin_root`) outlive the call (libbpf copies them too).
        let ptr = unsafe { sys::bpf_object__open_mem(data.as_ptr().cast(), data.len() as sys::size_t, &opts) };
        NonNull::new(ptr).map(|ptr| Object { ptr }).ok_or_else(|| last_error("bpf_object__open_mem"))
    }

    /// Loads maps and programs into the kernel.
    pub fn load(&mut self) -> io::Result<()> {
        // SAFETY: `self.ptr` is a live, opened object we own.
        let ret = unsafe { sys::bpf_object__load(self.ptr.as_ptr()) };
        if ret < 0 { Err(io::Error::from_raw_os_error(-ret)) } else { Ok(()) }
    }

    /// The program named `name`.
    pub fn program(&self, name: &str) -> io::Result<Program<'_>> {
        let cname = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: `self.ptr` is live; `cname` is NUL-terminated and alive for the call.
        let p = unsafe { sys::bpf_object__find_program_by_name(self.ptr.as_ptr(), cname.as_ptr()) };
        NonNull::new(p)
            .map(|ptr| Program { ptr, _object: self })
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no program {name}")))
    }
}

impl Drop for Object {
    fn drop(&mut self) {
        // SAFETY: we own the object; no Program or Link borrows it any more (they borrow
        // `self`), so closing it frees nothing still in use.
        unsafe { sys::bpf_object__close(self.ptr.as_ptr()) }
    }
}

/// A program of a loaded [`Object`].
pub struct Program<'a> {
    ptr: NonNull<sys::bpf_program>,
    _object: &'a Object,
}

/// What `bpf_program__attach_kprobe_multi_opts` attaches to.
pub enum Targets<'t> {
    /// A glob (libbpf reads the traceable-function listing, or takes its exact-name fast
    /// path when there is no wildcard).
    Pattern(&'t CStr),
    /// Addresses, resolved by the caller.
    Addresses(&'t [u64]),
}

impl<'a> Program<'a> {
    /// `bpf_program__attach_kprobe_multi_opts`, entry mode, no cookies.
    pub fn attach_kprobe_multi(&self, targets: Targets<'_>) -> io::Result<Link<'a>> {
        let mut opts = sys::bpf_kprobe_multi_opts {
            sz: size_of::<sys::bpf_kprobe_multi_opts>() as sys::size_t,
            ..Default::default()
        };
        let pattern: *const c_char = match targets {
            Targets::Pattern(p) => p.as_ptr(),
            Targets::Addresses(addrs) => {
                // c_ulong is u64 on the 64-bit targets this benchmark runs on.
                opts.addrs = addrs.as_ptr().cast::<c_ulong>();
                opts.cnt = addrs.len() as sys::size_t;
                std::ptr::null()
            }
        };
        // SAFETY: `self.ptr` is a loaded program of a live object; `pattern` is null or a
        // NUL-terminated string alive for the call; `opts` is properly sized and its `addrs`
        // points at `cnt` u64s alive for the call (the kernel copies them during link
        // creation).
        let link = unsafe { sys::bpf_program__attach_kprobe_multi_opts(self.ptr.as_ptr(), pattern, &opts) };
        NonNull::new(link)
            .map(|ptr| Link { ptr, _object: self._object })
            .ok_or_else(|| last_error("bpf_program__attach_kprobe_multi_opts"))
    }
}

/// Every field of `struct bpf_kprobe_multi_opts`, and the pattern argument, for the
/// conformance scenarios (conformance.rs).
#[derive(Debug, Default, Clone)]
pub struct MultiOpts {
    pub pattern: Option<CString>,
    pub syms: Option<Vec<CString>>,
    pub addrs: Option<Vec<u64>>,
    pub cookies: Option<Vec<u64>>,
    pub cnt: usize,
    pub retprobe: bool,
    pub session: bool,
    pub unique_match: bool,
}

impl<'a> Program<'a> {
    /// `bpf_program__attach_kprobe_multi_opts` with every option as given.
    pub fn attach_kprobe_multi_opts(&self, o: &MultiOpts) -> io::Result<Link<'a>> {
        let mut sym_ptrs: Vec<*const c_char> =
            o.syms.as_ref().map(|v| v.iter().map(|s| s.as_ptr()).collect()).unwrap_or_default();
        let opts = sys::bpf_kprobe_multi_opts {
            sz: size_of::<sys::bpf_kprobe_multi_opts>() as sys::size_t,
            syms: if o.syms.is_some() { sym_ptrs.as_mut_ptr() } else { std::ptr::null_mut() },
            // c_ulong is u64 on the 64-bit targets this runner is built for.
            addrs: o.addrs.as_ref().map_or(std::ptr::null(), |a| a.as_ptr().cast::<c_ulong>()),
            cookies: o.cookies.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
            cnt: o.cnt as sys::size_t,
            retprobe: o.retprobe,
            session: o.session,
            unique_match: o.unique_match,
            ..Default::default()
        };
        let pattern = o.pattern.as_ref().map_or(std::ptr::null(), |p| p.as_ptr());
        // SAFETY: `self.ptr` is a loaded program of a live object; `pattern` is null or a
        // NUL-terminated string alive for the call; `syms`, `addrs` and `cookies` are null or
        // point at arrays alive for the call (`sym_ptrs` at strings of `o.syms`). `cnt` may
        // disagree with their lengths only where libbpf refuses before reading them (the
        // scenarios give a larger cnt only with no arrays, or refuse-first combinations).
        let link = unsafe { sys::bpf_program__attach_kprobe_multi_opts(self.ptr.as_ptr(), pattern, &opts) };
        NonNull::new(link).map(|ptr| Link { ptr, _object: self._object }).ok_or_else(io::Error::last_os_error)
    }
}

impl Object {
    /// Overwrites the start of the `.rodata` map's initial value before load (what a
    /// skeleton's `rodata->x = ...` does).
    pub fn set_rodata(&mut self, bytes: &[u8]) -> io::Result<()> {
        let m = self.map_ptr(".rodata")?;
        let mut size: sys::size_t = 0;
        // SAFETY: `m` is a map of this opened, not yet loaded object, which we own; `size`
        // is a valid out-pointer for the call.
        let data = unsafe { sys::bpf_map__initial_value(m, &mut size) };
        if data.is_null() || (size as usize) < bytes.len() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, ".rodata too small"));
        }
        // SAFETY: libbpf's initial value buffer holds `size` bytes, at least `bytes.len()`,
        // and nothing else refers to it during the copy (we own the object).
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), data.cast::<u8>(), bytes.len()) };
        Ok(())
    }

    /// The fd of map `name` of the loaded object (owned by libbpf; borrowed here).
    pub fn map_fd(&self, name: &str) -> io::Result<std::os::fd::BorrowedFd<'_>> {
        let m = self.map_ptr(name)?;
        // SAFETY: `m` is a map of this live object.
        let fd = unsafe { sys::bpf_map__fd(m) };
        if fd < 0 {
            return Err(io::Error::from_raw_os_error(-fd));
        }
        // SAFETY: libbpf keeps the fd open until the object closes, which the borrow of
        // `self` outlives.
        Ok(unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) })
    }
}

/// A libbpf link; destroyed (detached) on drop or with [`Link::destroy`].
pub struct Link<'a> {
    ptr: NonNull<sys::bpf_link>,
    _object: &'a Object,
}

impl Link<'_> {
    /// The link's fd (owned by libbpf until the link is destroyed).
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        // SAFETY: the link is live for the borrow; libbpf keeps its fd open until destroy.
        unsafe { std::os::fd::BorrowedFd::borrow_raw(sys::bpf_link__fd(self.ptr.as_ptr())) }
    }

    /// Detaches (`bpf_link__destroy`).
    pub fn destroy(self) {
        drop(self)
    }
}

impl Drop for Link<'_> {
    fn drop(&mut self) {
        // SAFETY: we own the link, created by libbpf and not destroyed before.
        unsafe {
            sys::bpf_link__destroy(self.ptr.as_ptr());
        }
    }
}

/// BTF parsed by libbpf (`btf__new`); freed on drop.
pub struct Btf {
    ptr: NonNull<sys::btf>,
}

impl Btf {
    /// Parses raw BTF (such as `/sys/kernel/btf/vmlinux`) from memory.
    pub fn parse(data: &[u8]) -> io::Result<Btf> {
        // SAFETY: `data` is valid for `data.len()` bytes during the call; libbpf copies it.
        let ptr = unsafe { sys::btf__new(data.as_ptr().cast(), data.len() as u32) };
        NonNull::new(ptr).map(|ptr| Btf { ptr }).ok_or_else(|| last_error("btf__new"))
    }

    /// The id of the first type named `name` (`btf__find_by_name`), or a negative errno.
    pub fn find_by_name(&self, name: &str) -> i32 {
        // -EINVAL, as libbpf answers a bad argument.
        let Ok(cname) = CString::new(name) else { return -22 };
        // SAFETY: `self.ptr` is a live BTF object; `cname` is NUL-terminated and alive.
        unsafe { sys::btf__find_by_name(self.ptr.as_ptr(), cname.as_ptr()) }
    }
}

impl Drop for Btf {
    fn drop(&mut self) {
        // SAFETY: we own the BTF object created by btf__new and free it once.
        unsafe { sys::btf__free(self.ptr.as_ptr()) }
    }
}

// What the corpus runner (corpus.rs) needs: libbpf's view of an opened object, the setters
// tools call before `bpf_object__load`, and libbpf's own messages, kept to explain failures.

/// A program as libbpf opened it.
#[derive(Debug, Clone)]
pub struct ProgramInfo {
    /// Function name.
    pub name: String,
    /// ELF section name.
    pub section: String,
}

/// A map as libbpf opened it (before any setter).
#[derive(Debug, Clone)]
pub struct MapInfo {
    /// Map name (`.rodata` etc. come as `<object>.rodata`).
    pub name: String,
    /// `enum bpf_map_type`.
    pub map_type: u32,
    /// Value size in bytes.
    pub value_size: u32,
    /// Maximum number of entries.
    pub max_entries: u32,
}

/// A C string libbpf owns, copied out ("" for NULL).
fn owned(s: *const c_char) -> String {
    if s.is_null() {
        return String::new();
    }
    // SAFETY: libbpf returns NUL-terminated strings that live as long as the object, which
    // is borrowed by the caller for this call.
    unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned()
}

/// libbpf's answer to a setter: 0 or a negative errno.
fn check(ret: i32, what: &str) -> io::Result<()> {
    if ret < 0 {
        let e = io::Error::from_raw_os_error(-ret);
        return Err(io::Error::new(e.kind(), format!("libbpf {what}: {e}")));
    }
    Ok(())
}

impl Object {
    /// Every program, in object order.
    pub fn programs(&self) -> Vec<ProgramInfo> {
        let mut out = Vec::new();
        let mut p: *mut sys::bpf_program = std::ptr::null_mut();
        loop {
            // SAFETY: `self.ptr` is live; `p` is null (first) or a program of this object.
            p = unsafe { sys::bpf_object__next_program(self.ptr.as_ptr(), p) };
            if p.is_null() {
                return out;
            }
            // SAFETY: `p` is a live program of this object.
            let (name, section) = unsafe { (sys::bpf_program__name(p), sys::bpf_program__section_name(p)) };
            out.push(ProgramInfo { name: owned(name), section: owned(section) });
        }
    }

    /// Every map, in object order.
    pub fn maps(&self) -> Vec<MapInfo> {
        let mut out = Vec::new();
        let mut m: *mut sys::bpf_map = std::ptr::null_mut();
        loop {
            // SAFETY: `self.ptr` is live; `m` is null (first) or a map of this object.
            m = unsafe { sys::bpf_object__next_map(self.ptr.as_ptr(), m) };
            if m.is_null() {
                return out;
            }
            // SAFETY: `m` is a live map of this object.
            let info = unsafe {
                MapInfo {
                    name: owned(sys::bpf_map__name(m)),
                    map_type: sys::bpf_map__type(m),
                    value_size: sys::bpf_map__value_size(m),
                    max_entries: sys::bpf_map__max_entries(m),
                }
            };
            out.push(info);
        }
    }

    fn program_ptr(&self, name: &str) -> io::Result<*mut sys::bpf_program> {
        Ok(self.program(name)?.ptr.as_ptr())
    }

    fn map_ptr(&self, name: &str) -> io::Result<*mut sys::bpf_map> {
        let cname = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: `self.ptr` is live; `cname` is NUL-terminated and alive for the call.
        let m = unsafe { sys::bpf_object__find_map_by_name(self.ptr.as_ptr(), cname.as_ptr()) };
        if m.is_null() {
            return Err(io::Error::new(io::ErrorKind::NotFound, format!("no map {name}")));
        }
        Ok(m)
    }

    /// `bpf_program__set_autoload`.
    pub fn set_autoload(&mut self, program: &str, autoload: bool) -> io::Result<()> {
        let p = self.program_ptr(program)?;
        // SAFETY: `p` is a program of this opened, not yet loaded object, which we own.
        check(unsafe { sys::bpf_program__set_autoload(p, autoload) }, "bpf_program__set_autoload")
    }

    /// `bpf_program__set_attach_target(prog, 0, function)`: a function of the kernel's BTF.
    pub fn set_attach_target(&mut self, program: &str, function: &str) -> io::Result<()> {
        let p = self.program_ptr(program)?;
        let f = CString::new(function).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: `p` is a program of this opened object we own; `f` is NUL-terminated and
        // alive for the call (libbpf copies it).
        check(unsafe { sys::bpf_program__set_attach_target(p, 0, f.as_ptr()) }, "bpf_program__set_attach_target")
    }

    /// `bpf_map__set_value_size`.
    pub fn set_value_size(&mut self, map: &str, size: u32) -> io::Result<()> {
        let m = self.map_ptr(map)?;
        // SAFETY: `m` is a map of this opened, not yet loaded object, which we own.
        check(unsafe { sys::bpf_map__set_value_size(m, size) }, "bpf_map__set_value_size")
    }

    /// `bpf_map__set_max_entries`.
    pub fn set_max_entries(&mut self, map: &str, n: u32) -> io::Result<()> {
        let m = self.map_ptr(map)?;
        // SAFETY: `m` is a map of this opened, not yet loaded object, which we own.
        check(unsafe { sys::bpf_map__set_max_entries(m, n) }, "bpf_map__set_max_entries")
    }

    /// Whether `program` is in the kernel (`bpf_program__fd` >= 0).
    pub fn is_loaded(&self, program: &str) -> bool {
        // SAFETY: the pointer is a program of this live object.
        self.program_ptr(program).is_ok_and(|p| unsafe { sys::bpf_program__fd(p) } >= 0)
    }
}

/// libbpf's messages since capturing started, or None when not capturing.
static CAPTURED: Mutex<Option<Vec<String>>> = Mutex::new(None);

unsafe extern "C" {
    /// glibc's; on x86-64 a `va_list` argument is passed as a pointer to its one tag.
    fn vsnprintf(buf: *mut c_char, size: usize, fmt: *const c_char, ap: *mut sys::__va_list_tag) -> c_int;
}

/// libbpf's print callback while capturing: warnings and info kept, debug dropped.
unsafe extern "C" fn capture(level: sys::libbpf_print_level, fmt: *const c_char, ap: *mut sys::__va_list_tag) -> c_int {
    if level == sys::LIBBPF_DEBUG {
        return 0;
    }
    // A verifier log comes as one message: 64 KiB keeps all of it that matters (its end).
    let mut buf = vec![0 as c_char; 64 * 1024];
    // SAFETY: `buf` is writable for `buf.len()` bytes; `fmt` and `ap` come from libbpf for
    // exactly this use, and `ap` is consumed once.
    let n = unsafe { vsnprintf(buf.as_mut_ptr(), buf.len(), fmt, ap) };
    if n < 0 {
        return 0;
    }
    // SAFETY: vsnprintf NUL-terminated what it wrote within `buf`.
    let text = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned();
    if let Ok(mut kept) = CAPTURED.lock()
        && let Some(kept) = kept.as_mut()
    {
        kept.extend(text.lines().map(str::to_string));
    }
    0
}

/// From now on libbpf's warnings are kept for [`take_messages`] instead of dropped.
pub fn capture_messages() {
    *CAPTURED.lock().unwrap() = Some(Vec::new());
    // SAFETY: `capture` has the signature libbpf expects and only touches the mutex.
    unsafe {
        sys::libbpf_set_print(Some(capture));
    }
}

/// libbpf's messages since the last call.
pub fn take_messages() -> Vec<String> {
    CAPTURED.lock().unwrap().as_mut().map(std::mem::take).unwrap_or_default()
}
