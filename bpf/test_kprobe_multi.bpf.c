// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
/*
 * kprobe_multi test object: records, for one thread of the test process, which function
 * each run was for (bpf_get_func_ip) and with which cookie. Used by
 * crates/multiprobe/tests/kprobe_multi.rs in the VMs.
 */
#include "mp_bpf.h"
#include "mp_session.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

/* The thread whose calls count (set before load); others are ignored. */
const volatile u32 target_tid = 0;

struct ip_cookie {
	u64 ip;
	u64 cookie;
};

/* Runs per function entry address. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, u64);
	__type(value, u64);
} hits SEC(".maps");

/* Runs per (function, cookie): each cookie must arrive with its own function. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct ip_cookie);
	__type(value, u64);
} pairs SEC(".maps");

/* Session runs per function: entries, returns, and returns that found the entry's cookie. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, u64);
	__type(value, u64);
} session_entries SEC(".maps"), session_returns SEC(".maps"), session_cookie_ok SEC(".maps");

static __always_inline void increment(void *map, const void *key)
{
	u64 one = 1, *v = bpf_map_lookup_elem(map, key);

	if (v)
		__sync_fetch_and_add(v, 1);
	else
		bpf_map_update_elem(map, key, &one, BPF_NOEXIST);
}

static __always_inline bool from_target(void)
{
	return (u32)bpf_get_current_pid_tgid() == target_tid;
}

static __always_inline void record(void *ctx)
{
	struct ip_cookie k;

	if (!from_target())
		return;
	k.ip = bpf_get_func_ip(ctx);
	k.cookie = bpf_get_attach_cookie(ctx);
	increment(&hits, &k.ip);
	increment(&pairs, &k);
}

SEC("kprobe.multi")
int entry(struct pt_regs *ctx)
{
	record(ctx);
	return 0;
}

SEC("kretprobe.multi")
int ret(struct pt_regs *ctx)
{
	record(ctx);
	return 0;
}

/* Attached where the section says by attach_all(); loaded only when a test asks. */
SEC("?kprobe.multi/vfs_*")
int auto_entry(struct pt_regs *ctx)
{
	record(ctx);
	return 0;
}

/* A program loaded as a plain kprobe: kprobe_multi links must refuse it. */
SEC("kprobe")
int plain(struct pt_regs *ctx)
{
	record(ctx);
	return 0;
}

#define SESSION_MAGIC 0x5e55100000000000ULL

SEC("?kprobe.session")
int session(struct pt_regs *ctx)
{
	bool is_return;
	__u64 *slot;
	u64 ip;

	is_return = mp_session(ctx, &slot);
	/* 1 at entry: no return run. Other threads are not watched. */
	if (!from_target())
		return 1;
	ip = bpf_get_func_ip(ctx);
	if (!is_return) {
		increment(&session_entries, &ip);
		*slot = SESSION_MAGIC ^ ip;
		/* Odd cookies ask for no return run. */
		return bpf_get_attach_cookie(ctx) & 1;
	}
	increment(&session_returns, &ip);
	if (*slot == (SESSION_MAGIC ^ ip))
		increment(&session_cookie_ok, &ip);
	return 0;
}
