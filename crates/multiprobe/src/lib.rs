//! multiprobe: attach one BPF program to thousands of kernel functions at once.

pub mod btf;
pub mod sys;
