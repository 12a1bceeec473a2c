//! Shared memory maps of BPF objects (ring buffers), with bounds-checked, atomic accessors so
//! the code above needs no raw pointers.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// A `MAP_SHARED` mapping of a BPF map, unmapped on drop.
#[derive(Debug)]
pub struct Mmap {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain shared memory owned by this value; every access goes through
// atomics or copies with bounds checks, so moving or sharing it between threads is sound.
unsafe impl Send for Mmap {}
// SAFETY: as above; no method hands out references into the mapping.
unsafe impl Sync for Mmap {}

impl Mmap {
    /// Maps `len` bytes of `fd` at `offset`, read-only or read-write.
    pub fn map(fd: BorrowedFd<'_>, len: usize, offset: usize, writable: bool) -> io::Result<Self> {
        let prot = if writable { libc::PROT_READ | libc::PROT_WRITE } else { libc::PROT_READ };
        // SAFETY: a fresh mapping chosen by the kernel (null hint) aliases no Rust memory.
        let p = unsafe {
            libc::mmap(std::ptr::null_mut(), len, prot, libc::MAP_SHARED, fd.as_raw_fd(), offset as libc::off_t)
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(p.cast()).ok_or_else(|| io::Error::from_raw_os_error(libc::ENOMEM))?;
        Ok(Mmap { ptr, len })
    }

    fn at<T>(&self, off: usize) -> *mut T {
        let size = std::mem::size_of::<T>();
        assert!(off.checked_add(size).is_some_and(|end| end <= self.len), "mmap access out of bounds");
        assert!(off % std::mem::align_of::<T>() == 0, "misaligned mmap access");
        // SAFETY: `off + size <= len`, so the pointer stays inside the mapping.
        unsafe { self.ptr.as_ptr().add(off).cast() }
    }

    /// Atomically loads a `u64` with acquire ordering (producer/consumer positions).
    pub fn load_acquire_u64(&self, off: usize) -> u64 {
        // SAFETY: `at` checked bounds and alignment; the kernel updates this word atomically.
        unsafe { AtomicU64::from_ptr(self.at(off)) }.load(Ordering::Acquire)
    }

    /// Atomically stores a `u64` with release ordering (the consumer position).
    pub fn store_release_u64(&self, off: usize, value: u64) {
        // SAFETY: as in `load_acquire_u64`; the page is mapped writable by the caller's choice.
        unsafe { AtomicU64::from_ptr(self.at(off)) }.store(value, Ordering::Release)
    }

    /// Atomically loads a `u32` with acquire ordering (ring buffer record headers).
    pub fn load_acquire_u32(&self, off: usize) -> u32 {
        // SAFETY: `at` checked bounds and alignment; the kernel writes headers atomically.
        unsafe { AtomicU32::from_ptr(self.at(off)) }.load(Ordering::Acquire)
    }

    /// Copies `dst.len()` bytes starting at `off` out of the mapping.
    pub fn copy_out(&self, off: usize, dst: &mut [u8]) {
        assert!(off.checked_add(dst.len()).is_some_and(|end| end <= self.len), "mmap copy out of bounds");
        // SAFETY: the source range lies inside the mapping and cannot overlap `dst`, which is
        // Rust-owned memory. The kernel does not write a record after publishing it.
        unsafe { std::ptr::copy_nonoverlapping(self.ptr.as_ptr().add(off), dst.as_mut_ptr(), dst.len()) }
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the region `map` created; nothing borrows into it.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}
