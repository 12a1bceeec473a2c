//! `union bpf_attr` and the info structs, one `#[repr(C)]` struct per command.
//!
//! The kernel reads only the first `size` bytes we pass and requires every byte it knows
//! beyond the fields we set to be zero, so each struct stops after the last field we use and
//! is built from [`Zeroable::zeroed`]. Offsets are checked against `include/uapi/linux/bpf.h`
//! by the tests at the bottom of this file.

use bytemuck::{Pod, Zeroable};

/// Length of the name fields of programs and maps, including the NUL.
pub const OBJ_NAME_LEN: usize = 16;

/// `struct bpf_insn`: one BPF instruction, as the kernel reads it.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Pod, Zeroable)]
pub struct Insn {
    /// Opcode.
    pub code: u8,
    /// Destination register in the low nibble, source register in the high nibble.
    pub regs: u8,
    /// Signed offset.
    pub off: i16,
    /// Signed immediate.
    pub imm: i32,
}

/// `bpf_attr` for `BPF_PROG_LOAD`, up to `log_true_size`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct ProgLoadAttr {
    pub prog_type: u32,
    pub insn_cnt: u32,
    pub insns: u64,
    pub license: u64,
    pub log_level: u32,
    pub log_size: u32,
    pub log_buf: u64,
    pub kern_version: u32,
    pub prog_flags: u32,
    pub prog_name: [u8; OBJ_NAME_LEN],
    pub prog_ifindex: u32,
    pub expected_attach_type: u32,
    pub prog_btf_fd: u32,
    pub func_info_rec_size: u32,
    pub func_info: u64,
    pub func_info_cnt: u32,
    pub line_info_rec_size: u32,
    pub line_info: u64,
    pub line_info_cnt: u32,
    pub attach_btf_id: u32,
    pub attach_btf_obj_fd: u32,
    pub core_relo_cnt: u32,
    pub fd_array: u64,
    pub core_relos: u64,
    pub core_relo_rec_size: u32,
    pub log_true_size: u32,
}

/// `bpf_attr` for `BPF_MAP_CREATE`, up to `map_extra`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct MapCreateAttr {
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub map_flags: u32,
    pub inner_map_fd: u32,
    pub numa_node: u32,
    pub map_name: [u8; OBJ_NAME_LEN],
    pub map_ifindex: u32,
    pub btf_fd: u32,
    pub btf_key_type_id: u32,
    pub btf_value_type_id: u32,
    pub btf_vmlinux_value_type_id: u32,
    pub map_extra: u64,
}

/// `bpf_attr` for the `BPF_MAP_*_ELEM` and `BPF_MAP_GET_NEXT_KEY` commands.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct MapElemAttr {
    pub map_fd: u32,
    pub _pad: u32,
    pub key: u64,
    /// `value`, or `next_key` for `BPF_MAP_GET_NEXT_KEY`.
    pub value: u64,
    pub flags: u64,
}

/// `bpf_attr` for the `BPF_MAP_*_BATCH` commands.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct MapBatchAttr {
    pub in_batch: u64,
    pub out_batch: u64,
    pub keys: u64,
    pub values: u64,
    pub count: u32,
    pub map_fd: u32,
    pub elem_flags: u64,
    pub flags: u64,
}

/// `bpf_attr` for `BPF_BTF_LOAD`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct BtfLoadAttr {
    pub btf: u64,
    pub btf_log_buf: u64,
    pub btf_size: u32,
    pub btf_log_size: u32,
    pub btf_log_level: u32,
    pub btf_log_true_size: u32,
}

/// `bpf_attr` for `BPF_OBJ_PIN` and `BPF_OBJ_GET`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct ObjPinAttr {
    pub pathname: u64,
    pub bpf_fd: u32,
    pub file_flags: u32,
}

/// `bpf_attr` for `BPF_OBJ_GET_INFO_BY_FD`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct InfoByFdAttr {
    pub bpf_fd: u32,
    pub info_len: u32,
    pub info: u64,
}

/// `bpf_attr` for the `*_GET_FD_BY_ID` and `*_GET_NEXT_ID` commands.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct IdAttr {
    /// `start_id`, `prog_id`, `map_id`, `btf_id` or `link_id`.
    pub id: u32,
    pub next_id: u32,
    pub open_flags: u32,
}

/// `bpf_attr` for `BPF_MAP_FREEZE`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct MapFdAttr {
    pub map_fd: u32,
}

/// `bpf_attr` for `BPF_PROG_TEST_RUN`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct TestRunAttr {
    pub prog_fd: u32,
    pub retval: u32,
    pub data_size_in: u32,
    pub data_size_out: u32,
    pub data_in: u64,
    pub data_out: u64,
    pub repeat: u32,
    pub duration: u32,
    pub ctx_size_in: u32,
    pub ctx_size_out: u32,
    pub ctx_in: u64,
    pub ctx_out: u64,
    pub flags: u32,
    pub cpu: u32,
    pub batch_size: u32,
    pub _pad: u32,
}

/// `bpf_attr` for `BPF_LINK_CREATE` with the `kprobe_multi` member of its union.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct LinkCreateKprobeMultiAttr {
    pub prog_fd: u32,
    pub target_fd: u32,
    pub attach_type: u32,
    pub flags: u32,
    pub kprobe_multi_flags: u32,
    pub cnt: u32,
    pub syms: u64,
    pub addrs: u64,
    pub cookies: u64,
    /// The union is 48 bytes (the `uprobe_multi` member is the largest).
    pub _rest: [u64; 2],
}

/// `bpf_attr` for `BPF_LINK_CREATE` with the `perf_event` member of its union.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct LinkCreatePerfEventAttr {
    pub prog_fd: u32,
    pub target_fd: u32,
    pub attach_type: u32,
    pub flags: u32,
    pub bpf_cookie: u64,
    pub _rest: [u64; 5],
}

/// `bpf_attr` for `BPF_LINK_CREATE` with the `tracing` member of its union (fentry, fexit,
/// fmod_ret, lsm, tp_btf: the program's own BTF target, so `target_btf_id` stays 0).
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct LinkCreateTracingAttr {
    pub prog_fd: u32,
    pub target_fd: u32,
    pub attach_type: u32,
    pub flags: u32,
    pub target_btf_id: u32,
    pub _pad: u32,
    /// `tracing.cookie` (6.0+; 0 is accepted everywhere).
    pub cookie: u64,
    pub _rest: [u64; 4],
}

/// `bpf_attr` for `BPF_LINK_CREATE` with the iterator member of its union.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct LinkCreateIterAttr {
    pub prog_fd: u32,
    pub target_fd: u32,
    pub attach_type: u32,
    pub flags: u32,
    /// User pointer to a `union bpf_iter_link_info` (0: none, e.g. for `task`).
    pub iter_info: u64,
    pub iter_info_len: u32,
    pub _pad: u32,
    pub _rest: [u64; 4],
}

/// `bpf_attr` for `BPF_RAW_TRACEPOINT_OPEN`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct RawTracepointOpenAttr {
    /// User pointer to the tracepoint's NUL-terminated name; 0 for programs whose target is
    /// their BTF id (tp_btf, fentry, fexit, fmod_ret, lsm).
    pub name: u64,
    pub prog_fd: u32,
    pub _pad: u32,
    /// `raw_tracepoint.cookie` (6.10+; 0 is accepted everywhere).
    pub cookie: u64,
}

/// `bpf_attr` for `BPF_ITER_CREATE`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct IterCreateAttr {
    pub link_fd: u32,
    pub flags: u32,
}

/// `struct bpf_prog_info`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct ProgInfo {
    pub prog_type: u32,
    pub id: u32,
    pub tag: [u8; 8],
    pub jited_prog_len: u32,
    pub xlated_prog_len: u32,
    pub jited_prog_insns: u64,
    pub xlated_prog_insns: u64,
    pub load_time: u64,
    pub created_by_uid: u32,
    pub nr_map_ids: u32,
    pub map_ids: u64,
    pub name: [u8; OBJ_NAME_LEN],
    pub ifindex: u32,
    /// Bit 0: `gpl_compatible`.
    pub flags: u32,
    pub netns_dev: u64,
    pub netns_ino: u64,
    pub nr_jited_ksyms: u32,
    pub nr_jited_func_lens: u32,
    pub jited_ksyms: u64,
    pub jited_func_lens: u64,
    pub btf_id: u32,
    pub func_info_rec_size: u32,
    pub func_info: u64,
    pub nr_func_info: u32,
    pub nr_line_info: u32,
    pub line_info: u64,
    pub jited_line_info: u64,
    pub nr_jited_line_info: u32,
    pub line_info_rec_size: u32,
    pub jited_line_info_rec_size: u32,
    pub nr_prog_tags: u32,
    pub prog_tags: u64,
    pub run_time_ns: u64,
    pub run_cnt: u64,
    pub recursion_misses: u64,
    pub verified_insns: u32,
    pub attach_btf_obj_id: u32,
    pub attach_btf_id: u32,
    pub _pad: u32,
}

/// `struct bpf_btf_info`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct BtfInfo {
    pub btf: u64,
    pub btf_size: u32,
    pub id: u32,
    pub name: u64,
    pub name_len: u32,
    /// Non-zero for vmlinux and module BTF.
    pub kernel_btf: u32,
}

/// `struct bpf_map_info`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct MapInfo {
    pub map_type: u32,
    pub id: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub map_flags: u32,
    pub name: [u8; OBJ_NAME_LEN],
    pub ifindex: u32,
    pub btf_vmlinux_value_type_id: u32,
    pub netns_dev: u64,
    pub netns_ino: u64,
    pub btf_id: u32,
    pub btf_key_type_id: u32,
    pub btf_value_type_id: u32,
    pub btf_vmlinux_id: u32,
    pub map_extra: u64,
    pub hash: u64,
    pub hash_size: u32,
    pub _pad: u32,
}

/// `struct bpf_link_info` with its union seen as the `kprobe_multi` member; the union is 48
/// bytes and the other link types we read need only the common header.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct LinkInfo {
    pub link_type: u32,
    pub id: u32,
    pub prog_id: u32,
    pub _pad: u32,
    /// `kprobe_multi.addrs`: user pointer to a `u64` array.
    pub kmulti_addrs: u64,
    /// `kprobe_multi.count`: in, the array length; out, the link's target count.
    pub kmulti_count: u32,
    /// `kprobe_multi.flags`.
    pub kmulti_flags: u32,
    /// `kprobe_multi.missed` (6.7+).
    pub kmulti_missed: u64,
    /// `kprobe_multi.cookies`: user pointer to a `u64` array (6.9+).
    pub kmulti_cookies: u64,
    pub _rest: [u64; 2],
}

/// `struct bpf_link_info` with its union seen as the `tracing` member (fentry, fexit,
/// fmod_ret, lsm links).
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct LinkInfoTracing {
    pub link_type: u32,
    pub id: u32,
    pub prog_id: u32,
    pub _pad: u32,
    pub attach_type: u32,
    /// Id of the BTF object holding the target (vmlinux's or a module's), 0 when unknown.
    pub target_obj_id: u32,
    pub target_btf_id: u32,
    pub _pad2: u32,
    pub _rest: [u64; 4],
}

/// `struct bpf_link_info` with its union seen as the `raw_tracepoint` or `iter` member:
/// both start with a user pointer to a name buffer and its length.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct LinkInfoNamed {
    pub link_type: u32,
    pub id: u32,
    pub prog_id: u32,
    pub _pad: u32,
    /// `raw_tracepoint.tp_name` or `iter.target_name`.
    pub name: u64,
    /// `raw_tracepoint.tp_name_len` or `iter.target_name_len`.
    pub name_len: u32,
    pub _pad2: u32,
    pub _rest: [u64; 4],
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    // Expected values: offsetof()/sizeof() compiled against libbpf's copy of
    // include/uapi/linux/bpf.h (v1.7).

    #[test]
    fn prog_load_layout() {
        assert_eq!(offset_of!(ProgLoadAttr, insns), 8);
        assert_eq!(offset_of!(ProgLoadAttr, license), 16);
        assert_eq!(offset_of!(ProgLoadAttr, log_buf), 32);
        assert_eq!(offset_of!(ProgLoadAttr, kern_version), 40);
        assert_eq!(offset_of!(ProgLoadAttr, prog_name), 48);
        assert_eq!(offset_of!(ProgLoadAttr, expected_attach_type), 68);
        assert_eq!(offset_of!(ProgLoadAttr, prog_btf_fd), 72);
        assert_eq!(offset_of!(ProgLoadAttr, func_info), 80);
        assert_eq!(offset_of!(ProgLoadAttr, line_info), 96);
        assert_eq!(offset_of!(ProgLoadAttr, attach_btf_id), 108);
        assert_eq!(offset_of!(ProgLoadAttr, fd_array), 120);
        assert_eq!(offset_of!(ProgLoadAttr, log_true_size), 140);
        assert_eq!(size_of::<ProgLoadAttr>(), 144);
    }

    #[test]
    fn map_layouts() {
        assert_eq!(offset_of!(MapCreateAttr, map_name), 28);
        assert_eq!(offset_of!(MapCreateAttr, btf_fd), 48);
        assert_eq!(offset_of!(MapCreateAttr, btf_vmlinux_value_type_id), 60);
        assert_eq!(offset_of!(MapCreateAttr, map_extra), 64);
        assert_eq!(size_of::<MapCreateAttr>(), 72);
        assert_eq!(offset_of!(MapElemAttr, key), 8);
        assert_eq!(offset_of!(MapElemAttr, value), 16);
        assert_eq!(offset_of!(MapElemAttr, flags), 24);
        assert_eq!(offset_of!(MapBatchAttr, values), 24);
        assert_eq!(offset_of!(MapBatchAttr, count), 32);
        assert_eq!(offset_of!(MapBatchAttr, map_fd), 36);
        assert_eq!(offset_of!(MapBatchAttr, flags), 48);
        assert_eq!(size_of::<MapBatchAttr>(), 56);
    }

    #[test]
    fn small_command_layouts() {
        assert_eq!(offset_of!(BtfLoadAttr, btf_size), 16);
        assert_eq!(offset_of!(BtfLoadAttr, btf_log_true_size), 28);
        assert_eq!(offset_of!(ObjPinAttr, bpf_fd), 8);
        assert_eq!(offset_of!(ObjPinAttr, file_flags), 12);
        assert_eq!(offset_of!(InfoByFdAttr, info), 8);
        assert_eq!(offset_of!(IdAttr, open_flags), 8);
        assert_eq!(offset_of!(TestRunAttr, data_in), 16);
        assert_eq!(offset_of!(TestRunAttr, repeat), 32);
        assert_eq!(offset_of!(TestRunAttr, ctx_in), 48);
        assert_eq!(offset_of!(TestRunAttr, batch_size), 72);
    }

    #[test]
    fn link_create_layout() {
        assert_eq!(offset_of!(LinkCreateKprobeMultiAttr, attach_type), 8);
        assert_eq!(offset_of!(LinkCreateKprobeMultiAttr, flags), 12);
        assert_eq!(offset_of!(LinkCreateKprobeMultiAttr, kprobe_multi_flags), 16);
        assert_eq!(offset_of!(LinkCreateKprobeMultiAttr, cnt), 20);
        assert_eq!(offset_of!(LinkCreateKprobeMultiAttr, syms), 24);
        assert_eq!(offset_of!(LinkCreateKprobeMultiAttr, addrs), 32);
        assert_eq!(offset_of!(LinkCreateKprobeMultiAttr, cookies), 40);
        assert_eq!(size_of::<LinkCreateKprobeMultiAttr>(), 64);
        assert_eq!(offset_of!(LinkCreatePerfEventAttr, bpf_cookie), 16);
        assert_eq!(size_of::<LinkCreatePerfEventAttr>(), 64);
        assert_eq!(offset_of!(LinkCreateTracingAttr, target_btf_id), 16);
        assert_eq!(offset_of!(LinkCreateTracingAttr, cookie), 24);
        assert_eq!(size_of::<LinkCreateTracingAttr>(), 64);
        assert_eq!(offset_of!(LinkCreateIterAttr, iter_info), 16);
        assert_eq!(offset_of!(LinkCreateIterAttr, iter_info_len), 24);
        assert_eq!(size_of::<LinkCreateIterAttr>(), 64);
    }

    #[test]
    fn raw_tracepoint_and_iter_layouts() {
        assert_eq!(offset_of!(RawTracepointOpenAttr, prog_fd), 8);
        assert_eq!(offset_of!(RawTracepointOpenAttr, cookie), 16);
        assert_eq!(size_of::<RawTracepointOpenAttr>(), 24);
        assert_eq!(offset_of!(IterCreateAttr, flags), 4);
        assert_eq!(size_of::<IterCreateAttr>(), 8);
    }

    #[test]
    fn info_layouts() {
        assert_eq!(offset_of!(ProgInfo, name), 64);
        assert_eq!(offset_of!(ProgInfo, btf_id), 128);
        assert_eq!(offset_of!(ProgInfo, run_time_ns), 192);
        assert_eq!(offset_of!(ProgInfo, recursion_misses), 208);
        assert_eq!(offset_of!(ProgInfo, attach_btf_id), 224);
        assert_eq!(size_of::<ProgInfo>(), 232);
        assert_eq!(offset_of!(MapInfo, name), 24);
        assert_eq!(offset_of!(MapInfo, btf_id), 64);
        assert_eq!(offset_of!(MapInfo, map_extra), 80);
        assert_eq!(size_of::<MapInfo>(), 104);
    }

    #[test]
    fn btf_info_layout() {
        assert_eq!(offset_of!(BtfInfo, id), 12);
        assert_eq!(offset_of!(BtfInfo, name), 16);
        assert_eq!(offset_of!(BtfInfo, kernel_btf), 28);
        assert_eq!(size_of::<BtfInfo>(), 32);
        assert_eq!(offset_of!(LinkInfo, kmulti_addrs), 16);
        assert_eq!(offset_of!(LinkInfo, kmulti_count), 24);
        assert_eq!(offset_of!(LinkInfo, kmulti_flags), 28);
        assert_eq!(offset_of!(LinkInfo, kmulti_missed), 32);
        assert_eq!(offset_of!(LinkInfo, kmulti_cookies), 40);
        assert_eq!(size_of::<LinkInfo>(), 64);
        assert_eq!(offset_of!(LinkInfoTracing, attach_type), 16);
        assert_eq!(offset_of!(LinkInfoTracing, target_obj_id), 20);
        assert_eq!(offset_of!(LinkInfoTracing, target_btf_id), 24);
        assert_eq!(size_of::<LinkInfoTracing>(), 64);
        assert_eq!(offset_of!(LinkInfoNamed, name), 16);
        assert_eq!(offset_of!(LinkInfoNamed, name_len), 24);
        assert_eq!(size_of::<LinkInfoNamed>(), 64);
    }
}
