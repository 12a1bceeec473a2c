// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
/*
 * `multiprobe count --by KEY`: calls per function and key (comm, pid, tid, cpu, kernel
 * stack). A separate object from count.bpf.c so plain `count` keeps its two array lookups
 * per call.
 *
 * Each distinct key gets a slot once, in `keys` (key -> slot, never removed); its calls are
 * a per-CPU counter in `calls[slot]`. Hashing a 40-byte key on every call cost more than
 * everything else the program does, and a function's calls on a CPU mostly repeat its last
 * key (a task calling it in a loop, or the functions of one syscall path each called once
 * per syscall), so each CPU remembers, per function, the last key and its slot in `recent`
 * (a direct-mapped cache: entry = function index & recent_mask, the whole key compared): a
 * call with the same key compares five words and increments, the hash is only looked up
 * when the key changes. Stacks differ from call to call: with --by kstack every call looks
 * its key up.
 *
 * Bounded and honest: there are --max-keys slots. A call whose key finds no free slot is
 * counted per function in `overflow`; a call whose stack the stack map could not keep (full,
 * or a hash bucket taken by another stack) is counted under the stack id -1 and per function
 * in `lost_stacks`. User space reports both, so nothing is undercounted silently.
 *
 * Which function: as in count.bpf.c (mp_function.h), from the entry address through
 * `slots`, or from the attach cookie (per-function kprobes, or sets the slot table cannot
 * cover).
 */
#include "mp_function.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

#define BY_COMM 1
#define BY_PID 2
#define BY_TID 4
#define BY_CPU 8
#define BY_KSTACK 16

/* Set before load: the verifier sees the constants and drops what is not asked for. */
const volatile u32 target_tgid = 0;
const volatile u32 by = 0;
/* Slots in `keys` and `calls` (--max-keys). */
const volatile u32 max_keys = 1;
/* Entries of `recent` - 1 (a power of two - 1, set with its size). */
const volatile u32 recent_mask = 0;

/* Slots given so far; may pass max_keys by at most one per CPU (a race of two CPUs each
 * seeing the last free slot), never wraps. */
u32 next_slot = 0;

static long (*bpf_get_stackid)(void *ctx, void *map, __u64 flags) = (void *)27;

/* 40 bytes; fields not asked for stay 0. */
struct key {
	u32 func;
	u32 pid;
	u32 tid;
	u32 cpu;
	s32 stack;
	u32 pad;
	u64 comm[2]; /* the task's name, NUL-padded, as two words */
};

/* The one field read from the kernel's task: its offset is relocated to the running
 * kernel's layout (CO-RE). */
struct task_struct {
	char comm[16];
} __attribute__((preserve_access_index));

static struct task_struct *(*bpf_get_current_task_btf)(void) = (void *)158;

/* Calls per key and CPU: per-CPU values need no atomic add. Sized to --max-keys. */
/* Key -> its slot in `calls`. Sized to --max-keys. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, struct key);
	__type(value, u32);
} keys SEC(".maps");

/* Calls per slot and CPU: per-CPU values need no atomic add. Sized to --max-keys. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u64);
} calls SEC(".maps");

/* A function's last key on this CPU and its slot (kprobe programs do not nest on a CPU, so
 * nothing else writes the CPU's entries meanwhile). `valid` is 0 until a call has filled it. */
struct recent {
	struct key key;
	u32 slot;
	u32 valid;
};

/* Sized by user space to a power of two, at most the number of functions. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct recent);
} recent SEC(".maps");

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

static __always_inline bool same_key(const struct key *a, const struct key *b)
{
	const u64 *x = (const u64 *)a, *y = (const u64 *)b;

	return x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3] && x[4] == y[4];
}

/* The slot of key `k`, given now if it has none; -1 when every slot is taken. */
static __always_inline long slot_of(const struct key *k)
{
	u32 *found = bpf_map_lookup_elem(&keys, k);
	u32 slot;

	if (found)
		return *found;
	/* Read before adding, so a full table does not count next_slot up on every call. */
	if (next_slot >= max_keys)
		return -1;
	slot = __sync_fetch_and_add(&next_slot, 1);
	if (slot >= max_keys)
		return -1;
	if (bpf_map_update_elem(&keys, k, &slot, BPF_NOEXIST) == 0)
		return slot;
	/* Another CPU gave the key a slot meanwhile (this one stays unused). */
	found = bpf_map_lookup_elem(&keys, k);
	return found ? *found : -1;
}

SEC("kprobe.multi")
int count_by(struct pt_regs *ctx)
{
	u64 pid_tgid = 0;
	struct recent *r = NULL;
	u32 index;
	struct key k = {};
	long key_slot;

	/* Read only where needed: a helper call costs about what a counter does. */
	if (target_tgid || (by & (BY_PID | BY_TID)))
		pid_tgid = bpf_get_current_pid_tgid();
	if (target_tgid && (u32)(pid_tgid >> 32) != target_tgid)
		return 0;
	if (!function_index(ctx, &index))
		return 0;
	k.func = index;
	if (by & BY_PID)
		k.pid = pid_tgid >> 32;
	if (by & BY_TID)
		k.tid = (u32)pid_tgid;
	if (by & BY_CPU)
		k.cpu = bpf_get_smp_processor_id();
	if (by & BY_COMM) {
		/* Two loads from the task, where bpf_get_current_comm would copy byte by byte:
		 * the kernel keeps comm NUL-padded, so the words are the name and zeros. */
		const u64 *comm = (const u64 *)bpf_get_current_task_btf()->comm;

		k.comm[0] = comm[0];
		k.comm[1] = comm[1];
	}
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
	if (!(by & BY_KSTACK)) {
		u32 entry = index & recent_mask;

		r = bpf_map_lookup_elem(&recent, &entry);
		if (r && r->valid && same_key(&r->key, &k)) {
			bump(&calls, r->slot);
			return 0;
		}
	}
	key_slot = slot_of(&k);
	if (key_slot < 0) {
		bump(&overflow, index);
		return 0;
	}
	bump(&calls, key_slot);
	if (r) {
		r->key = k;
		r->slot = key_slot;
		r->valid = 1;
	}
	return 0;
}
