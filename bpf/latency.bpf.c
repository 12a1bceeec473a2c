// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
/*
 * `multiprobe latency`: time from entry to return of every call of the selected functions,
 * as a log2 histogram per function. The attach cookie of each function is its index.
 *
 * Two ways, chosen by user space for the running kernel:
 * - one kprobe session program (6.10+): the entry run stores the time in the call's session
 *   cookie, the return run of the same call reads it;
 * - a kprobe.multi + kretprobe.multi pair: the entry stores the time in a hash keyed by
 *   (thread, function), the return takes it out. Also loaded as plain kprobe/kretprobe
 *   programs for per-function kprobes where the kernel has no kprobe_multi.
 *
 * With `--by comm|pid` each call is also recorded per (function, comm, pid) in a bounded
 * hash; calls whose key does not fit are counted per function, never dropped silently.
 */
#include "mp_bpf.h"
#include "mp_session.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

/* log2 buckets per function: bucket 0 counts 0, bucket k >= 1 counts [2^(k-1), 2^k) units. */
#define BUCKETS 64

/* Only calls made by this process (tgid) count; 0 counts every process. */
const volatile u32 target_tgid = 0;

/* Nanoseconds per histogram unit (`latency --unit`): 1, 1000 or 1000000. Buckets count
 * log2 of the latency in that unit, as bcc's funclatency -u/-m do; sums and maxima stay in
 * nanoseconds. */
const volatile u64 unit_ns = 1;

/* One function's latencies on one CPU: total and largest, and calls per bucket. */
struct latency {
	u64 sum_ns;
	u64 max_ns;
	u64 buckets[BUCKETS];
};

/* Per function and CPU, indexed by cookie; sized to the number of functions before load.
 * One value per function (not one per bucket) keeps the per-call work to one lookup and
 * the kernel's per-CPU allocations to one per function. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct latency);
} latencies SEC(".maps");

#define BY_COMM 1
#define BY_PID 2

/* What calls are also broken down by (BY_* bits); 0: per function only. */
const volatile u32 by = 0;

struct by_key {
	u32 func;
	u32 pid;
	char comm[16];
};

/* Per (function, comm, pid) and CPU; sized to --max-keys when `by` is set. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 1);
	__type(key, struct by_key);
	__type(value, struct latency);
} by_latencies SEC(".maps");

/* Per function: calls whose key did not fit in by_latencies. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u64);
} by_overflow SEC(".maps");

/* A zeroed value to insert new keys from: struct latency is larger than the BPF stack. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct latency);
} zero SEC(".maps");

/* Entry times of calls in progress, for the kprobe + kretprobe pair: key (tid << 32 | cookie). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, u64);
	__type(value, u64);
} starts SEC(".maps");

static __always_inline bool wanted(void)
{
	return !target_tgid || (u32)(bpf_get_current_pid_tgid() >> 32) == target_tgid;
}

/* floor(log2(v)) for v > 0, without loops (the verifier of older kernels rejects them). */
static __always_inline u32 log2_u32(u32 v)
{
	u32 r, shift;

	r = (v > 0xFFFF) << 4;
	v >>= r;
	shift = (v > 0xFF) << 3;
	v >>= shift;
	r |= shift;
	shift = (v > 0xF) << 2;
	v >>= shift;
	r |= shift;
	shift = (v > 0x3) << 1;
	v >>= shift;
	r |= shift;
	r |= (v >> 1);
	return r;
}

static __always_inline u32 bucket_of(u64 ns)
{
	u32 hi = ns >> 32;
	u32 b;

	if (!ns)
		return 0;
	b = (hi ? log2_u32(hi) + 32 : log2_u32((u32)ns)) + 1;
	return b < BUCKETS ? b : BUCKETS - 1;
}

static __always_inline void add(struct latency *l, u32 bucket, u64 ns)
{
	l->buckets[bucket] += 1;
	l->sum_ns += ns;
	if (ns > l->max_ns)
		l->max_ns = ns;
}

static __always_inline void record_by(u32 index, u32 bucket, u64 ns)
{
	struct by_key k = {};
	struct latency *l;
	u32 z = 0;
	void *empty;
	u64 *n;

	k.func = index;
	if (by & BY_PID)
		k.pid = bpf_get_current_pid_tgid() >> 32;
	if (by & BY_COMM)
		bpf_get_current_comm(k.comm, sizeof(k.comm));
	l = bpf_map_lookup_elem(&by_latencies, &k);
	if (!l) {
		empty = bpf_map_lookup_elem(&zero, &z);
		if (empty)
			bpf_map_update_elem(&by_latencies, &k, empty, BPF_NOEXIST);
		/* Added now, or by another CPU meanwhile; else the table is full. */
		l = bpf_map_lookup_elem(&by_latencies, &k);
	}
	if (l) {
		add(l, bucket, ns);
	} else {
		n = bpf_map_lookup_elem(&by_overflow, &index);
		if (n)
			*n += 1;
	}
}

static __always_inline void record(u64 cookie, u64 ns)
{
	u32 index = cookie;
	u32 bucket = bucket_of(unit_ns > 1 ? ns / unit_ns : ns);
	struct latency *l;

	l = bpf_map_lookup_elem(&latencies, &index);
	if (!l)
		return;
	add(l, bucket, ns);
	if (by)
		record_by(index, bucket, ns);
}

static __always_inline u64 start_key(void *ctx)
{
	return (bpf_get_current_pid_tgid() << 32) | (u32)bpf_get_attach_cookie(ctx);
}

SEC("kprobe.multi")
int latency_entry(struct pt_regs *ctx)
{
	u64 key, now;

	if (!wanted())
		return 0;
	key = start_key(ctx);
	now = bpf_ktime_get_ns();
	bpf_map_update_elem(&starts, &key, &now, BPF_ANY);
	return 0;
}

SEC("kretprobe.multi")
int latency_return(struct pt_regs *ctx)
{
	u64 key, *start, ns;

	if (!wanted())
		return 0;
	key = start_key(ctx);
	start = bpf_map_lookup_elem(&starts, &key);
	if (!start)
		return 0;
	ns = bpf_ktime_get_ns() - *start;
	bpf_map_delete_elem(&starts, &key);
	record(bpf_get_attach_cookie(ctx), ns);
	return 0;
}

/* Loaded only on kernels with sessions (the `?` turns autoload off). */
SEC("?kprobe.session")
int latency_session(struct pt_regs *ctx)
{
	bool is_return;
	__u64 *slot;

	is_return = mp_session(ctx, &slot);
	if (!is_return) {
		/* 1: no return run for calls of other processes. */
		if (!wanted())
			return 1;
		*slot = bpf_ktime_get_ns();
		return 0;
	}
	/* The slot is not zeroed before entry: 0 marks it used, so a return whose entry did
	 * not run (a missed entry on kernels before 6.14) is not recorded twice. */
	if (*slot) {
		record(bpf_get_attach_cookie(ctx), bpf_ktime_get_ns() - *slot);
		*slot = 0;
	}
	return 0;
}
