// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
/*
 * Benchmark object (bench/, `cargo xtask bench`): loaded by multiprobe and by libbpf alike,
 * so both loaders and both attach paths work on the same bytes.
 *
 * `empty` does nothing: its cost is the kernel's kprobe_multi machinery alone.
 * `cookie_only` and `increment_only` are the two halves of `count_calls`, to tell where its
 * per-call cost goes.
 * `count_by_ip` counts without cookies: function address -> per-CPU hash slot (a
 * prototype, to compare with the cookie lookup's cost).
 * `count_by_slot` counts without cookies and without hashing: (function address - base) / 16
 * indexes an array holding the counter index (functions are 16-byte aligned on x86-64), a
 * second prototype; both lookups are array lookups, which the verifier inlines.
 * `count_calls` has the shape of the CLI's `count` program (bpf/count.bpf.c on the cli
 * branch; written again here so the benchmark does not depend on that branch): the attach
 * cookie indexes a per-CPU array of counters, one increment per call.
 */
#include "mp_bpf.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

/* Only calls made by this process (tgid) count; 0 counts every process. Set before load. */
const volatile u32 target_tgid = 0;

/* Calls per function and CPU, indexed by the attach cookie; resized before load. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u64);
} counts SEC(".maps");

/* Lowest entry address count_by_slot covers (set before load). */
const volatile u64 slot_base = 0;

/* (entry address - slot_base) / 16 -> counter index + 1, 0 for none; sized before load. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u32);
} slot_index SEC(".maps");

/* Calls per function entry address and CPU, filled by count_by_ip. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 4096);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, u64);
	__type(value, u64);
} counts_by_ip SEC(".maps");

SEC("kprobe.multi")
int empty(struct pt_regs *ctx)
{
	return 0;
}

SEC("kprobe.multi")
int cookie_only(struct pt_regs *ctx)
{
	bpf_get_attach_cookie(ctx);
	return 0;
}

SEC("kprobe.multi")
int increment_only(struct pt_regs *ctx)
{
	u32 index = 0;
	u64 *calls = bpf_map_lookup_elem(&counts, &index);

	if (calls)
		*calls += 1;
	return 0;
}

SEC("kprobe.multi")
int count_calls(struct pt_regs *ctx)
{
	u32 index;
	u64 *calls;

	if (target_tgid && (u32)(bpf_get_current_pid_tgid() >> 32) != target_tgid)
		return 0;
	index = bpf_get_attach_cookie(ctx);
	calls = bpf_map_lookup_elem(&counts, &index);
	if (calls)
		*calls += 1;
	return 0;
}

SEC("kprobe.multi")
int count_by_ip(struct pt_regs *ctx)
{
	u64 ip = bpf_get_func_ip(ctx), one = 1, *calls;

	calls = bpf_map_lookup_elem(&counts_by_ip, &ip);
	if (calls)
		*calls += 1;
	else
		bpf_map_update_elem(&counts_by_ip, &ip, &one, BPF_NOEXIST);
	return 0;
}

SEC("kprobe.multi")
int count_by_slot(struct pt_regs *ctx)
{
	u32 slot = (bpf_get_func_ip(ctx) - slot_base) >> 4, index;
	u32 *entry = bpf_map_lookup_elem(&slot_index, &slot);
	u64 *calls;

	if (!entry || !*entry)
		return 0;
	index = *entry - 1;
	calls = bpf_map_lookup_elem(&counts, &index);
	if (calls)
		*calls += 1;
	return 0;
}
