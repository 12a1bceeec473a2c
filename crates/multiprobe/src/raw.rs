//! Raw access to the kernel's BPF objects: the few system calls that code outside this crate
//! (tests, benchmarks, tools that inspect what is attached) needs and that no typed API
//! covers. Thin wrappers of `bpf(2)`: borrowed slices in, `OwnedFd` out, `io::Error` with
//! the errno; no checks beyond what the kernel does. Prefer the typed API where it exists.

pub use crate::sys::{
    KprobeMultiTargets, LinkInfo, ObjKind, attach_type, get_fd_by_id, get_next_id, geteuid, link_create_kprobe_multi,
    link_info, link_type, raise_memlock_limit,
};
