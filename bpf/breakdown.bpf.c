// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
/*
 * `multiprobe count --by KEY`: calls per function and key (comm, pid, tid, cpu, kernel
 * stack). A separate object from count.bpf.c so plain `count` keeps its two array lookups
 * per call; this one pays for a hash lookup (and a stack walk with --by kstack).
 *
 * Bounded and honest: the key table has a fixed size (--max-keys). A call whose key does not
 * fit is counted per function in `overflow`; a call whose stack the stack map could not keep
 * (full, or a hash bucket taken by another stack) is counted under the stack id -1 and per
 * function in `lost_stacks`. User space reports both, so nothing is undercounted silently.
 *
 * Which function: as in count.bpf.c, from the entry address through `slots`, or from the
 * attach cookie (per-function kprobes, or sets the slot table cannot cover).
 */
#include "mp_bpf.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

#define BY_COMM 1
#define BY_PID 2
#define BY_TID 4
#define BY_CPU 8
#define BY_KSTACK 16

/* Set before load: the verifier sees the constants and drops what is not asked for. */
const volatile u32 target_tgid = 0;
const volatile u64 slot_base = 0;
const volatile u32 by = 0;

static long (*bpf_get_stackid)(void *ctx, void *map, __u64 flags) = (void *)27;

/* 40 bytes; fields not asked for stay 0. */
struct key {
	u32 func;
	u32 pid;
	u32 tid;
	u32 cpu;
	s32 stack;
	u32 pad;
	char comm[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u32);
} slots SEC(".maps");

/* Calls per key and CPU: per-CPU values need no atomic add. Sized to --max-keys. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 1);
	__type(key, struct key);
	__type(value, u64);
} calls SEC(".maps");

/* Per function: calls whose key did not fit in `calls`. Sized to the functions. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u64);
} overflow SEC(".maps");

/* Per function: calls whose kernel stack the stack map lost. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u64);
} lost_stacks SEC(".maps");

/* Kernel stacks, 127 frames (the kernel's PERF_MAX_STACK_DEPTH) of 8 bytes. */
struct {
	__uint(type, 7 /* BPF_MAP_TYPE_STACK_TRACE */);
	__uint(max_entries, 1);
	__uint(key_size, 4);
	__uint(value_size, 127 * 8);
} stacks SEC(".maps");

static __always_inline void bump(void *map, u32 index)
{
	u64 *n = bpf_map_lookup_elem(map, &index);

	if (n)
		*n += 1;
}

SEC("kprobe.multi")
int count_by(struct pt_regs *ctx)
{
	u64 pid_tgid = bpf_get_current_pid_tgid();
	u32 index, slot, *slot_index;
	struct key k = {};
	u64 one = 1, *n;

	if (target_tgid && (u32)(pid_tgid >> 32) != target_tgid)
		return 0;
	if (slot_base) {
		slot = (bpf_get_func_ip(ctx) - slot_base) >> 4;
		slot_index = bpf_map_lookup_elem(&slots, &slot);
		if (!slot_index || !*slot_index)
			return 0;
		index = *slot_index - 1;
	} else {
		index = bpf_get_attach_cookie(ctx);
	}
	k.func = index;
	if (by & BY_PID)
		k.pid = pid_tgid >> 32;
	if (by & BY_TID)
		k.tid = (u32)pid_tgid;
	if (by & BY_CPU)
		k.cpu = bpf_get_smp_processor_id();
	if (by & BY_COMM)
		bpf_get_current_comm(k.comm, sizeof(k.comm));
	if (by & BY_KSTACK) {
		/* No BPF_F_REUSE_STACKID: a stack never replaces another one already counted. */
		long id = bpf_get_stackid(ctx, &stacks, 0);

		if (id < 0) {
			k.stack = -1;
			bump(&lost_stacks, index);
		} else {
			k.stack = id;
		}
	}
	n = bpf_map_lookup_elem(&calls, &k);
	if (n) {
		*n += 1;
		return 0;
	}
	if (bpf_map_update_elem(&calls, &k, &one, BPF_NOEXIST) == 0)
		return 0;
	/* Another CPU may have added the key meanwhile; else the table is full. */
	n = bpf_map_lookup_elem(&calls, &k);
	if (n)
		*n += 1;
	else
		bump(&overflow, index);
	return 0;
}
