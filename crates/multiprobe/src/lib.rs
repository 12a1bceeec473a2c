//! multiprobe: attach one BPF program to thousands of kernel functions at once.
//!
//! A pure-Rust BPF loader built around the kernel's kprobe_multi links: load the object clang
//! wrote (BTF-defined maps, global data, subprograms, CO-RE relocations, kfunc calls), then
//! attach a program to every function a pattern matches with one system call, read its maps,
//! and detach by dropping the link.
//!
//! ```no_run
//! use multiprobe::kprobe_multi::{Fallback, KprobeMulti};
//! use multiprobe::symbols::Selection;
//! use multiprobe::Object;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The object: a `SEC("kprobe.multi") int count_calls(struct pt_regs *ctx)` program that
//! // increments `counts[bpf_get_attach_cookie(ctx)]`, built with `clang -O2 -g -target bpf`.
//! let mut object = Object::open("count.bpf.o")?;
//!
//! // Which functions: every vfs_ and ext4 function but the ones about xattrs.
//! let functions = Selection::new().include("vfs_*").include("ext4:*").exclude("*xattr*").resolve()?;
//!
//! // Size the counter table before load, one slot per function; set a `const volatile`.
//! object.map_mut("counts").unwrap().set_max_entries(functions.len() as u32);
//! object.set_global("target_tgid", &0u32)?;
//! let loaded = object.load()?;
//!
//! // One link for all of them; cookie = slot. Where the kernel lacks kprobe_multi (built
//! // without CONFIG_FPROBE), per-function kprobes stand in.
//! let spec = KprobeMulti::functions_with_cookies(functions.iter().cloned().zip(0..)).fallback(Fallback::Auto);
//! let link = loaded.program("count_calls").unwrap().attach_kprobe_multi(&spec)?;
//!
//! std::thread::sleep(std::time::Duration::from_secs(1));
//! let counts = loaded.map("counts").unwrap().dump_per_cpu::<u32, u64>()?;
//! for (slot, per_cpu) in counts {
//!     let calls: u64 = per_cpu.iter().sum();
//!     if calls > 0 {
//!         println!("{:>10} {}", calls, functions[slot as usize].name);
//!     }
//! }
//! drop(link); // detaches
//! # Ok(()) }
//! ```
//!
//! # Examples
//!
//! Runnable walkthroughs in
//! [`examples/`](https://github.com/multiprobe/multiprobe/tree/main/crates/multiprobe/examples)
//! (`cargo build --example NAME`, run as root; each is also run by the VM tests):
//!
//! - [`count_by_pattern`](https://github.com/multiprobe/multiprobe/blob/main/crates/multiprobe/examples/count_by_pattern.rs):
//!   calls per function for every function a pattern selects, one kprobe_multi link, cookies
//!   as counter indices;
//! - [`latency_session`](https://github.com/multiprobe/multiprobe/blob/main/crates/multiprobe/examples/latency_session.rs):
//!   time per call with one kprobe session link (6.10+);
//! - [`fallback`](https://github.com/multiprobe/multiprobe/blob/main/crates/multiprobe/examples/fallback.rs):
//!   the same attach on kernels without kprobe_multi, one kprobe per function;
//! - [`link_info_pin`](https://github.com/multiprobe/multiprobe/blob/main/crates/multiprobe/examples/link_info_pin.rs):
//!   what the kernel reports about a link, pinning it and opening it from its pin;
//! - [`tracing_and_multi`](https://github.com/multiprobe/multiprobe/blob/main/crates/multiprobe/examples/tracing_and_multi.rs):
//!   an object with an fexit program (a tracing link) next to a kprobe.multi one.
//!
//! Layers, from the bottom: `sys` (the raw kernel interface, private; the crate's only
//! `unsafe`; [`raw`] re-exports the few calls users need), [`error`] (every error type),
//! [`btf`] and [`object`] (parsing, no system calls), [`symbols`] (the kernel's traceable
//! functions, read from files), [`program`], [`map`], [`link`] and [`kprobe_multi`] (kernel
//! objects), [`features`] (what the running kernel supports).
#![warn(missing_docs)]

mod address_index;
mod auto_attach;
pub mod btf;
mod btf_target;
pub mod error;
pub mod features;
#[doc(hidden)] // for the fuzz targets in fuzz/, not an API
pub mod fuzzing;
#[allow(missing_docs)] // opcode constants as in include/uapi/linux/bpf.h
pub mod insn;
mod iterator;
mod kconfig;
pub mod kprobe_multi;
pub(crate) mod ksym;
pub mod link;
mod loader;
pub mod map;
mod map_create;
pub mod object;
mod perf_event;
mod pin;
pub mod program;
pub mod raw;
mod raw_tracepoint;
pub mod ringbuf;
pub mod symbols;
#[allow(missing_docs)] // constants and attr fields as in include/uapi/linux/bpf.h
pub(crate) mod sys;
mod tracing_link;

pub use address_index::{AddressIndex, AddressIndexError};
pub use auto_attach::Attachment;
pub use error::{AttachError, Error, KconfigError, ListingError, LoadError, MapError, PinError};
pub use iterator::IterLink;
pub use link::{Link, LinkInfo, LinkTarget, LinkType};
pub use loader::{DEFAULT_PIN_ROOT, LoadedObject};
pub use map::{Map, UpdateFlags};
pub use object::{
    MapSpec, MapType, Object, ObjectError, OpenOptions, PROG_F_SLEEPABLE, PROG_F_XDP_HAS_FRAGS, ProgramKind,
    ProgramSpec, SectionHandler,
};
pub use perf_event::KprobeTarget;
pub use program::{Program, ProgramInfo, TestRun};
pub use ringbuf::RingBuf;
