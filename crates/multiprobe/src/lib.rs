//! multiprobe: attach one BPF program to thousands of kernel functions at once.

pub mod btf;
pub mod insn;
pub mod object;
pub mod sys;

pub use object::{Object, ObjectError};
