// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
/*
 * The programs of the library's examples (crates/multiprobe/examples/): small on purpose,
 * each one what a walkthrough needs and nothing more.
 *
 * - count_calls: calls per function, the function found by its attach cookie (an index
 *   into per-CPU counters), from one kprobe_multi link or per-function kprobes alike;
 * - time_calls: a kprobe session program (6.10+), run at entry and at return of each call,
 *   keeping the entry time in the call's session slot; sums time and calls per function;
 * - read_done: an fexit program on vfs_read, loaded next to the kprobe.multi ones: a
 *   tracing program attached by BTF id in the same object.
 *
 * The session and fexit programs start with autoload off (`?`): examples turn on the ones
 * they use, so an example needs only what its kernel feature needs.
 */
#include "mp_bpf.h"
#include "mp_session.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

/* Only calls made by this process (tgid) are seen; 0 sees every process. Set before load. */
const volatile u32 target_tgid = 0;

/* Calls per function (by cookie) and CPU. Sized to the number of functions before load. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u64);
} calls SEC(".maps");

/* Nanoseconds spent per function (by cookie) and CPU, by time_calls. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u64);
} nanos SEC(".maps");

/* Returns of vfs_read seen by read_done. */
u64 reads_done = 0;

static __always_inline bool wanted(void)
{
	return !target_tgid || (u32)(bpf_get_current_pid_tgid() >> 32) == target_tgid;
}

static __always_inline void add(void *map, u32 index, u64 n)
{
	u64 *value = bpf_map_lookup_elem(map, &index);

	if (value)
		*value += n;
}

SEC("kprobe.multi")
int count_calls(struct pt_regs *ctx)
{
	if (wanted())
		add(&calls, bpf_get_attach_cookie(ctx), 1);
	return 0;
}

SEC("?kprobe.session")
int time_calls(struct pt_regs *ctx)
{
	__u64 *slot;
	u32 index;

	if (!mp_session(ctx, &slot)) {
		/* Entry: returning 1 skips the return run, for calls of other processes. */
		if (!wanted())
			return 1;
		*slot = bpf_ktime_get_ns();
		return 0;
	}
	index = bpf_get_attach_cookie(ctx);
	add(&nanos, index, bpf_ktime_get_ns() - *slot);
	add(&calls, index, 1);
	return 0;
}

SEC("?fexit/vfs_read")
int read_done(u64 *ctx)
{
	if (wanted())
		__sync_fetch_and_add(&reads_done, 1);
	return 0;
}
