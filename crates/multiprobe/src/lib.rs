//! multiprobe: attach one BPF program to thousands of kernel functions at once.
#![warn(missing_docs)]

mod attach;
mod auto_attach;
pub mod btf;
pub mod features;
#[allow(missing_docs)] // opcode constants as in include/uapi/linux/bpf.h
pub mod insn;
pub mod kprobe_multi;
pub mod link;
mod loader;
pub mod map;
pub mod object;
mod perf_event;
pub mod program;
pub mod ringbuf;
#[allow(missing_docs)] // constants and attr fields as in include/uapi/linux/bpf.h
pub mod sys;
pub mod tracefs;

pub use attach::AttachError;
pub use auto_attach::Attachment;
pub use link::{Link, LinkInfo, LinkType};
pub use loader::{DEFAULT_PIN_ROOT, LoadError, LoadedObject};
pub use map::{Map, MapError, UpdateFlags};
pub use object::{MapSpec, MapType, Object, ObjectError, ProgramKind, ProgramSpec};
pub use perf_event::KprobeTarget;
pub use program::{Program, ProgramInfo, TestRun};
pub use ringbuf::RingBuf;
