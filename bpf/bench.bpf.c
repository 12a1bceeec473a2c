// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
/*
 * Benchmark object (bench/, `cargo xtask bench`): loaded by multiprobe and by libbpf alike,
 * so both loaders and both attach paths work on the same bytes.
 *
 * The per-call benchmark measures the CLI's own program (bpf/count.bpf.o) in both of its
 * modes; what is left here are references to read its cost against:
 *
 * `empty` does nothing: its cost is the kernel's kprobe_multi machinery alone, the
 * denominator of every overhead ratio.
 * `cookie_only` calls `bpf_get_attach_cookie` and nothing else: what count's cookie mode
 * pays to find a counter. For a kprobe_multi link the kernel binary-searches the link's
 * addresses, so this grows with the link's width; it tells how much of cookie mode's cost
 * is the lookup and how much the counting.
 * `increment_only` increments counter 0 of a per-CPU array: the least any counter costs
 * (one inlined array lookup). count's address mode adds `bpf_get_func_ip` and one more
 * array lookup to it; the distance between the two is what finding the counter costs.
 *
 * Earlier prototypes (a copy of count's cookie program, a per-CPU hash keyed by function
 * address, the 16-byte slot table) are gone: the slot table is count's address mode now,
 * and docs/benchmarks.md keeps what the others measured.
 */
#include "mp_bpf.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

/* The counter `increment_only` increments (slot 0 only). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u64);
} counts SEC(".maps");

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
