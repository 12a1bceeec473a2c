// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
/*
 * `multiprobe count`: calls per function. One program attached to every selected function
 * with one kprobe_multi link (or per-function kprobes where the kernel lacks it).
 *
 * Per call: which function -> its per-CPU counter -> increment, nothing else. Per-CPU
 * counters need no atomic operation (kprobe programs do not nest on a CPU) and never bounce a
 * cache line between CPUs; user space sums the CPUs.
 *
 * Which function: with a kprobe_multi link, from the function's entry address. Functions
 * are 16-byte aligned, so (address - slot_base) / 16 indexes `slots`, which holds each
 * function's counter index + 1: two array lookups the verifier inlines. The attach cookie
 * would do too, but the kernel finds it by binary search over the link's addresses with an
 * indirect call per step: the cost grows with the link and was most of the program's. Per-
 * function kprobes carry their cookie directly: there, slot_base is 0 and the cookie is the
 * counter index.
 */
#include "mp_bpf.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

/* Only calls made by this process (tgid) count; 0 counts every process. Set before load:
 * the verifier sees the constant and drops the test when it is 0. */
const volatile u32 target_tgid = 0;

/* Entry address of the lowest function, or 0 to find counters by attach cookie. */
const volatile u64 slot_base = 0;

/* 16-byte slot of the text from slot_base -> counter index + 1 (0: no function). Sized to
 * the span of the functions before load. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u32);
} slots SEC(".maps");

/* Calls per function and CPU. Sized to the number of functions before load. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u64);
} counts SEC(".maps");

SEC("kprobe.multi")
int count_calls(struct pt_regs *ctx)
{
	u32 index, slot, *slot_index;
	u64 *calls;

	if (target_tgid && (u32)(bpf_get_current_pid_tgid() >> 32) != target_tgid)
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
	calls = bpf_map_lookup_elem(&counts, &index);
	if (calls)
		*calls += 1;
	return 0;
}
