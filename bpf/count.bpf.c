// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
/*
 * `multiprobe count`: calls per function. One program attached to every selected function
 * with one kprobe_multi link (or per-function kprobes where the kernel lacks it).
 *
 * Per call: which function (mp_function.h: from its entry address, or the attach cookie) ->
 * its per-CPU counter -> increment, nothing else. Per-CPU counters need no atomic operation
 * (kprobe programs do not nest on a CPU) and never bounce a cache line between CPUs; user
 * space sums the CPUs.
 */
#include "mp_function.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

/* Only calls made by this process (tgid) count; 0 counts every process. Set before load:
 * the verifier sees the constant and drops the test when it is 0. */
const volatile u32 target_tgid = 0;

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
	u64 *calls;
	u32 index;

	if (target_tgid && (u32)(bpf_get_current_pid_tgid() >> 32) != target_tgid)
		return 0;
	if (!function_index(ctx, &index))
		return 0;
	calls = bpf_map_lookup_elem(&counts, &index);
	if (calls)
		*calls += 1;
	return 0;
}
