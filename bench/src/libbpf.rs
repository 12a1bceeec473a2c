//! The few libbpf 1.7 calls the benchmark compares against, behind owning types.
//!
//! This module holds the project's only `unsafe` outside `crates/multiprobe/src/sys`: calls
//! into libbpf's C API (through `libbpf-sys`, vendored and statically linked). Every pointer
//! handed to libbpf is either owned by a type here or borrowed for the duration of the call.

use std::ffi::{CStr, CString, c_char, c_ulong};
use std::io;
use std::ptr::NonNull;

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

/// A libbpf link; destroyed (detached) on drop or with [`Link::destroy`].
pub struct Link<'a> {
    ptr: NonNull<sys::bpf_link>,
    _object: &'a Object,
}

impl Link<'_> {
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
