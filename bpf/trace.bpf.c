// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
/*
 * `multiprobe trace`: one event per call of the selected functions (entry time, duration,
 * return value, task), sent through a ring buffer when the call returns.
 *
 * The attach cookie of each function carries its index (low 32 bits), how its return
 * value reads, from the kernel's BTF (`RET_*` in bits 32-39, the value's size in bytes in
 * bits 40-47), so the `--errors` filter runs here without a lookup, which of its first
 * six arguments are C strings (`char *`, bits 48-53), read at entry with `--args`, and which
 * of those BTF marks `__user` (bits 54-59; meaningful only with `user_tags`).
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
/* --string-size: bytes kept of each string argument (with its NUL); 0: none. User space
 * sizes `starts` and `scratch` values for it (START_STRINGS + 6 * string_size bytes). */
const volatile u32 string_size = 0;
/* The kernel's BTF carries `__user` type tags (clang-built kernels): a string is read from
 * user memory exactly when its cookie bit says `__user`. Without them (GCC-built kernels,
 * Debian's), by the pointer's half of the address space. */
const volatile bool user_tags = 0;
/* --kstack: frames of the kernel stack kept per event; 0: none. */
const volatile u32 kstack_depth = 0;

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
	u64 strings_read; /* bit i: the string of argument i was read (with string_size) */
	/* then 6 * string_size bytes: argument i's string at i * string_size; then, with
	 * kstack_depth, at the next multiple of 8 (stack_offset()): the stack's size in bytes
	 * (u64) and kstack_depth return addresses (u64 each) */
};

/* What the entry keeps for the return: the time (the pair only: a session keeps it in its
 * cookie) and, with capture_args, the arguments; with string_size, followed by the strings
 * (the map's value size is set by user space). */
struct start {
	u64 ts_ns;
	u64 args[6];
	u64 strings_read;
};
#define START_STRINGS sizeof(struct start)
#define EVENT_STRINGS sizeof(struct event)

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
	__uint(key_size, sizeof(u64));
	__uint(value_size, sizeof(struct start)); /* plus the strings, set by user space */
} starts SEC(".maps");

/* Where the entry builds a `starts` value with its strings: too big for the stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__uint(key_size, sizeof(u32));
	__uint(value_size, sizeof(struct start)); /* as `starts` */
} scratch SEC(".maps");

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

/* Where the stack goes: the event stops before the arguments without them, before the
 * strings without strings; rounded up to 8 bytes for the stack's words. */
static __always_inline u64 stack_offset(void)
{
	if (!capture_args)
		return __builtin_offsetof(struct event, args);
	if (!string_size)
		return __builtin_offsetof(struct event, strings_read);
	return (EVENT_STRINGS + 6 * (u64)string_size + 7) & ~7ULL;
}

static __always_inline u64 event_size(void)
{
	return stack_offset() + (kstack_depth ? 8 + 8 * (u64)kstack_depth : 0);
}

/* At return: the filters on the result, then the event or a lost count. `kept` is what the
 * entry kept, with capture_args. */
static __always_inline void emit(struct pt_regs *ctx, u64 start, const struct start *kept)
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
	e = bpf_ringbuf_reserve(&events, event_size(), 0);
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
	if (capture_args && kept) {
		e->args[0] = kept->args[0];
		e->args[1] = kept->args[1];
		e->args[2] = kept->args[2];
		e->args[3] = kept->args[3];
		e->args[4] = kept->args[4];
		e->args[5] = kept->args[5];
		if (string_size) {
			e->strings_read = kept->strings_read;
			bpf_probe_read_kernel((char *)e + EVENT_STRINGS, 6 * string_size,
					      (const char *)kept + START_STRINGS);
		}
	}
	if (kstack_depth) {
		/* At the return: the caller's frame first, the function's own frame is gone. */
		u64 *stack = (u64 *)((char *)e + stack_offset());
		long n = bpf_get_stack(ctx, stack + 1, 8 * kstack_depth, 0);

		stack[0] = n > 0 ? n : 0;
	}
	/* No wakeup: the reader polls, and a wakeup per event costs an irq_work each. */
	bpf_ringbuf_submit(e, 1 /* BPF_RB_NO_WAKEUP */);
}

static __always_inline u64 start_key(void *ctx)
{
	return (bpf_get_current_pid_tgid() << 32) | (u32)bpf_get_attach_cookie(ctx);
}

/* Reads argument i's string into the value being built: from user memory if BTF marks it
 * `__user` where the kernel has those tags, else if the pointer is in the lower half of the
 * address space (x86-64 user space); from kernel memory otherwise. The address rule reads a
 * `const char __user *` right on GCC-built kernels, whose BTF has no type tags. */
static __always_inline void read_string(struct start *s, u64 mask, int i)
{
	char *dst = (char *)s + START_STRINGS + i * string_size;
	const void *src = (const void *)s->args[i];
	bool user;
	long n;

	if (!(mask & (1 << i)) || !src)
		return;
	user = user_tags ? (mask >> 6) & (1 << i) : (s64)s->args[i] >= 0;
	if (user)
		n = bpf_probe_read_user_str(dst, string_size, src);
	else
		n = bpf_probe_read_kernel_str(dst, string_size, src);
	if (n > 0)
		s->strings_read |= 1 << i;
}

/* Keeps the entry time and, with capture_args, the argument registers (and strings); false
 * if the table of calls in progress is full (the call is then counted as lost). */
static __always_inline bool keep_start(struct pt_regs *ctx, u64 ts)
{
	struct start small = { .ts_ns = ts }, *s = &small;
	u64 key = start_key(ctx);
	u32 zero = 0;

	/* With strings the value is larger than the stack: it is built in the per-CPU scratch.
	 * Every field is written, so nothing of an earlier call remains but string bytes past
	 * a NUL, which user space never reads. */
	if (string_size) {
		s = bpf_map_lookup_elem(&scratch, &zero);
		if (!s)
			return false;
		s->ts_ns = ts;
		s->strings_read = 0;
	}
	if (capture_args) {
		s->args[0] = ctx->di;
		s->args[1] = ctx->si;
		s->args[2] = ctx->dx;
		s->args[3] = ctx->cx;
		s->args[4] = ctx->r8;
		s->args[5] = ctx->r9;
	}
	if (string_size) {
		u64 mask = bpf_get_attach_cookie(ctx) >> 48;

		read_string(s, mask, 0);
		read_string(s, mask, 1);
		read_string(s, mask, 2);
		read_string(s, mask, 3);
		read_string(s, mask, 4);
		read_string(s, mask, 5);
	}
	if (bpf_map_update_elem(&starts, &key, s, BPF_ANY)) {
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
	struct start *start;
	u64 key;

	key = start_key(ctx);
	start = bpf_map_lookup_elem(&starts, &key);
	/* No entry: filtered out, or already running when the probes went in. */
	if (!start)
		return 0;
	/* Sent before the delete: the value is read in place (it may be larger than the stack). */
	emit(ctx, start->ts_ns, start);
	bpf_map_delete_elem(&starts, &key);
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
		struct start *start;
		u64 key = start_key(ctx);

		start = bpf_map_lookup_elem(&starts, &key);
		/* Taken by a nested call of the same function on this thread. */
		if (!start) {
			count_lost();
			return 0;
		}
		emit(ctx, ts, start);
		bpf_map_delete_elem(&starts, &key);
		return 0;
	}
	emit(ctx, ts, NULL);
	return 0;
}
