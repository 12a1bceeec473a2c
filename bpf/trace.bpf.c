// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
/*
 * `multiprobe trace`: one event per call of the selected functions (entry time, duration,
 * return value, task), sent through a ring buffer when the call returns.
 *
 * The attach cookie of each function carries its index (low 32 bits) and how its return
 * value reads, from the kernel's BTF (`RET_*` in bits 32-39, the value's size in bytes in
 * bits 40-47), so the `--errors` filter runs here without a lookup.
 *
 * Two ways, chosen by user space for the running kernel, as in latency.bpf.c:
 * - one kprobe session program (6.10+): the entry run filters by task and stores the time in
 *   the call's session cookie (returning 1 skips the return run of calls filtered out);
 * - a kprobe.multi + kretprobe.multi pair: the entry stores the time in a hash keyed by
 *   (thread, function), the return takes it out. Also loaded as plain kprobe/kretprobe
 *   programs for per-function kprobes where the kernel has no kprobe_multi.
 *
 * Every call that passes the filters and is not sent is counted in `lost`: a full ring, a
 * full table of calls in progress. Nothing is dropped silently.
 */
#include "mp_bpf.h"
#include "mp_session.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

/* How a function's return value reads (cookie bits 32-39); the Rust side has the same. */
#define RET_UNKNOWN 0 /* no BTF prototype: the raw register */
#define RET_VOID 1
#define RET_SIGNED 2
#define RET_UNSIGNED 3
#define RET_BOOL 4
#define RET_POINTER 5
#define RET_ENUM 6

/* --errors: 1 keeps negative errno values and error pointers, 2 also NULL pointers. */
#define ERRORS_ERRNO 1
#define ERRORS_NULL 2

/* Filters, set before load: the verifier drops the tests of those left at 0. */
const volatile u32 target_tgid = 0;
/* The task's comm, NUL-padded to 16 bytes; all zero: any task. */
const volatile u64 target_comm[2] = {};
const volatile u32 errors = 0;
const volatile u64 min_duration_ns = 0;
/* Stop sending after this many events; 0: no limit. */
const volatile u64 limit = 0;
/* --args: keep the six argument registers at entry and send them (a longer event). */
const volatile bool capture_args = 0;

/* Events sent so far (only counted with a limit). */
u64 sent = 0;

/* One call, as `Event` in crates/multiprobe-cli/src/trace/event.rs reads it. */
struct event {
	u64 ts_ns;       /* entry, bpf_ktime_get_ns() */
	u64 duration_ns;
	u64 ret;         /* the return register, raw */
	u64 pid_tgid;
	u32 function;    /* index into the functions user space selected */
	u32 cpu;         /* of the return */
	char comm[16];
	u64 args[6];     /* the argument registers at entry; sent only with capture_args */
};

/* What the entry keeps for the return: the time (the pair only: a session keeps it in its
 * cookie) and, with capture_args, the arguments. */
struct start {
	u64 ts_ns;
	u64 args[6];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096); /* sized by user space before load */
} events SEC(".maps");

/* Calls that passed the filters but could not be sent, per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u64);
} lost SEC(".maps");

/* Calls in progress, key (tid << 32 | index): entry times for the kprobe + kretprobe pair,
 * arguments for both ways. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, u64);
	__type(value, struct start);
} starts SEC(".maps");

static __always_inline void count_lost(void)
{
	u32 zero = 0;
	u64 *n = bpf_map_lookup_elem(&lost, &zero);

	if (n)
		*n += 1;
}

/* The task filters, at entry. */
static __always_inline bool wanted(void)
{
	u64 comm[2] = {};

	if (target_tgid && (u32)(bpf_get_current_pid_tgid() >> 32) != target_tgid)
		return false;
	if (target_comm[0]) {
		bpf_get_current_comm(comm, sizeof(comm));
		if (comm[0] != target_comm[0] || comm[1] != target_comm[1])
			return false;
	}
	return true;
}

/* Whether a return value of this kind is an error, as --errors asks. */
static __always_inline bool is_error(u64 cookie, u64 ret)
{
	u32 kind = (cookie >> 32) & 0xff;
	u32 size = (cookie >> 40) & 0xff;
	s64 value;

	if (kind == RET_SIGNED) {
		if (size == 4)
			value = (s32)ret;
		else if (size == 8)
			value = ret;
		else
			return false;
		return value < 0 && value >= -4095;
	}
	if (kind == RET_POINTER)
		return ret >= (u64)-4095 || (errors == ERRORS_NULL && ret == 0);
	return false;
}

/* At return: the filters on the result, then the event or a lost count. `args` are the
 * arguments kept at entry, with capture_args. */
static __always_inline void emit(struct pt_regs *ctx, u64 start, const u64 *args)
{
	u64 cookie = bpf_get_attach_cookie(ctx);
	u64 now = bpf_ktime_get_ns();
	u64 ret = PT_REGS_RC(ctx);
	struct event *e;

	if (now - start < min_duration_ns)
		return;
	if (errors && !is_error(cookie, ret))
		return;
	if (limit && __sync_fetch_and_add(&sent, 1) >= limit)
		return;
	/* Without arguments the event stops before them: 64 bytes of ring instead of 112. */
	e = bpf_ringbuf_reserve(&events, capture_args ? sizeof(*e) : __builtin_offsetof(struct event, args), 0);
	if (!e) {
		count_lost();
		return;
	}
	e->ts_ns = start;
	e->duration_ns = now - start;
	e->ret = ret;
	e->pid_tgid = bpf_get_current_pid_tgid();
	e->function = (u32)cookie;
	e->cpu = bpf_get_smp_processor_id();
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	if (capture_args && args) {
		e->args[0] = args[0];
		e->args[1] = args[1];
		e->args[2] = args[2];
		e->args[3] = args[3];
		e->args[4] = args[4];
		e->args[5] = args[5];
	}
	/* No wakeup: the reader polls, and a wakeup per event costs an irq_work each. */
	bpf_ringbuf_submit(e, 1 /* BPF_RB_NO_WAKEUP */);
}

static __always_inline u64 start_key(void *ctx)
{
	return (bpf_get_current_pid_tgid() << 32) | (u32)bpf_get_attach_cookie(ctx);
}

/* Keeps the entry time and, with capture_args, the argument registers; false if the table
 * of calls in progress is full (the call is then counted as lost). */
static __always_inline bool keep_start(struct pt_regs *ctx, u64 ts)
{
	struct start s = { .ts_ns = ts };
	u64 key = start_key(ctx);

	if (capture_args) {
		s.args[0] = ctx->di;
		s.args[1] = ctx->si;
		s.args[2] = ctx->dx;
		s.args[3] = ctx->cx;
		s.args[4] = ctx->r8;
		s.args[5] = ctx->r9;
	}
	if (bpf_map_update_elem(&starts, &key, &s, BPF_ANY)) {
		count_lost();
		return false;
	}
	return true;
}

SEC("kprobe.multi")
int trace_entry(struct pt_regs *ctx)
{
	if (wanted())
		keep_start(ctx, bpf_ktime_get_ns());
	return 0;
}

SEC("kretprobe.multi")
int trace_return(struct pt_regs *ctx)
{
	struct start s, *start;
	u64 key;

	key = start_key(ctx);
	start = bpf_map_lookup_elem(&starts, &key);
	/* No entry: filtered out, or already running when the probes went in. */
	if (!start)
		return 0;
	s = *start;
	bpf_map_delete_elem(&starts, &key);
	emit(ctx, s.ts_ns, s.args);
	return 0;
}

/* Loaded only on kernels with sessions (the `?` turns autoload off). */
SEC("?kprobe.session")
int trace_session(struct pt_regs *ctx)
{
	bool is_return;
	__u64 *slot;
	u64 ts;

	is_return = mp_session(ctx, &slot);
	if (!is_return) {
		/* 1: no return run for calls filtered out. */
		if (!wanted())
			return 1;
		ts = bpf_ktime_get_ns();
		/* The cookie holds 8 bytes: the arguments wait in the table. */
		if (capture_args && !keep_start(ctx, ts))
			return 1;
		*slot = ts;
		return 0;
	}
	/* The slot is not zeroed before entry: 0 marks it used (see latency.bpf.c). */
	ts = *slot;
	if (!ts)
		return 0;
	*slot = 0;
	if (capture_args) {
		struct start s, *start;
		u64 key = start_key(ctx);

		start = bpf_map_lookup_elem(&starts, &key);
		/* Taken by a nested call of the same function on this thread. */
		if (!start) {
			count_lost();
			return 0;
		}
		s = *start;
		bpf_map_delete_elem(&starts, &key);
		emit(ctx, ts, s.args);
		return 0;
	}
	emit(ctx, ts, NULL);
	return 0;
}
