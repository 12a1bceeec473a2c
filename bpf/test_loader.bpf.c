// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
/*
 * Loader test object: every construct the loader supports, exercised by
 * crates/multiprobe/tests/loader.rs on this machine's kernel and in the VMs.
 */
#include "mp_bpf.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

struct event {
	u64 len;
	u64 magic;
	u32 custom;
	u32 loops;
	char greeting[8];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, u32);
	__type(value, u64);
} counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u64);
} percpu_hits SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16);
	__type(key, u64);
	__type(value, u32);
} recent SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

struct inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u64);
} inner_a SEC(".maps"), inner_b SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, u32);
	__array(values, struct inner);
} outer SEC(".maps") = {
	.values = { &inner_a, &inner_b },
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8);
	__type(key, u32);
	__type(value, u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pinned_counter SEC(".maps");

/* Configuration set by user space before load (.rodata, frozen after). */
const volatile u32 cfg_multiplier = 1;
const volatile u64 cfg_magic = 0;
const volatile u32 cfg_target_tgid = 0;

/* Global data of every kind. */
int data_counter = 5;			/* .data */
u64 bss_total;				/* .bss */
int custom_var SEC(".data.custom") = 7;	/* a custom data section */
static const char greeting[8] = "hello";	/* .rodata */

/* socket filter context (uapi struct __sk_buff); only the first field is read. */
struct __sk_buff {
	__u32 len;
};

static long (*bpf_loop)(__u32 nr_loops, void *callback_fn, void *callback_ctx, __u64 flags) = (void *)181;

/* A subprogram in .text, shared by two programs. */
static __noinline u64 scale(u64 v)
{
	return v * cfg_multiplier;
}

/* A global function: the verifier checks it once, on its own. */
__noinline int global_add(int a, int b)
{
	return a + b;
}

/* A bpf_loop callback: referenced by address (ld_imm64 of a function). */
static int count_loop(__u32 index, void *ctx)
{
	u32 *loops = ctx;
	*loops += 1;
	return 0;
}

extern void multiprobe_kfunc_that_does_not_exist(void) __ksym __weak;

SEC("socket")
int count_packets(struct __sk_buff *skb)
{
	u32 key = 0;
	u64 len = skb->len, one = 1, *v;
	u32 loops = 0;
	struct event *e;
	void *inner;

	v = bpf_map_lookup_elem(&counts, &key);
	if (v)
		__sync_fetch_and_add(v, 1);
	else
		bpf_map_update_elem(&counts, &key, &one, BPF_NOEXIST);

	v = bpf_map_lookup_elem(&percpu_hits, &key);
	if (v)
		*v += 1;

	inner = bpf_map_lookup_elem(&outer, &key);
	if (inner) {
		v = bpf_map_lookup_elem(inner, &key);
		if (v)
			*v += len;
	}

	__sync_fetch_and_add(&data_counter, 1);
	__sync_fetch_and_add(&bss_total, scale(len));
	bpf_map_update_elem(&recent, &len, &key, BPF_ANY);

	/* A weak kfunc the kernel lacks: the call is dead code and must load anyway. */
	if (bpf_ksym_exists(multiprobe_kfunc_that_does_not_exist))
		multiprobe_kfunc_that_does_not_exist();

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (e) {
		e->len = len;
		e->magic = cfg_magic;
		e->custom = custom_var;
		bpf_loop(3, count_loop, &loops, 0);
		e->loops = loops;
		__builtin_memcpy(e->greeting, greeting, sizeof(greeting));
		bpf_ringbuf_submit(e, 0);
	}
	return global_add(len, 0);
}

/* CO-RE: the kernel's task_struct, reduced to the fields read; offsets come from the kernel. */
struct task_struct {
	int pid;
	int tgid;
} __attribute__((preserve_access_index));

SEC("tracepoint/syscalls/sys_enter_getppid")
int on_getppid(void *ctx)
{
	struct task_struct *task;
	u32 key;
	u64 value;
	int pid = 0, tgid = 0;

	if ((bpf_get_current_pid_tgid() >> 32) != cfg_target_tgid)
		return 0;
	task = (void *)bpf_get_current_task();
	BPF_CORE_READ_INTO(&tgid, task, tgid);
	BPF_CORE_READ_INTO(&pid, task, pid);
	key = 1;
	value = scale(tgid);
	bpf_map_update_elem(&counts, &key, &value, BPF_ANY);
	key = 2;
	value = pid;
	bpf_map_update_elem(&counts, &key, &value, BPF_ANY);
	return 0;
}

/*
 * __ksym variables: a typed per-CPU one (by BTF id; the kernel needs its address from
 * kallsyms, so CONFIG_KALLSYMS_ALL) and a typeless one (by address). Loaded on request.
 */
struct rq {
	int cpu;
} __attribute__((preserve_access_index));

extern const struct rq runqueues __ksym;
extern const void vfs_read __ksym;
static void *(*bpf_this_cpu_ptr)(const void *percpu_ptr) = (void *)154;

SEC("?tracepoint/syscalls/sys_enter_getppid")
int ksyms(void *ctx)
{
	u32 key;
	u64 value;
	const struct rq *rq;

	if ((bpf_get_current_pid_tgid() >> 32) != cfg_target_tgid)
		return 0;
	/* This CPU's run queue knows which CPU it belongs to. */
	rq = bpf_this_cpu_ptr(&runqueues);
	key = 3;
	value = rq->cpu == (int)bpf_get_smp_processor_id();
	bpf_map_update_elem(&counts, &key, &value, BPF_ANY);
	key = 4;
	value = (u64)&vfs_read;
	bpf_map_update_elem(&counts, &key, &value, BPF_ANY);
	return 0;
}

/* A kfunc call (kernel 6.2+): not loaded unless a test asks for it. */
struct sk_buff {
	unsigned int len;
} __attribute__((preserve_access_index));

extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;

SEC("?socket")
int kern_ctx_len(struct __sk_buff *ctx)
{
	struct sk_buff *skb = bpf_cast_to_kern_ctx(ctx);

	return skb->len;
}

/* Kinds that only need to load here (attaching them is tested in the VMs). */
SEC("kprobe/do_nanosleep")
int kprobe_prog(struct pt_regs *ctx)
{
	__sync_fetch_and_add(&data_counter, 1);
	return 0;
}

SEC("kretprobe/do_nanosleep")
int kretprobe_prog(struct pt_regs *ctx)
{
	return 0;
}

SEC("kprobe.multi/vfs_rea?")
int multi_prog(struct pt_regs *ctx)
{
	u64 ip = bpf_get_func_ip(ctx), cookie = bpf_get_attach_cookie(ctx);

	bpf_map_update_elem(&recent, &ip, &cookie, BPF_ANY);
	return 0;
}

SEC("raw_tp/sys_enter")
int raw_tp_prog(void *ctx)
{
	return 0;
}

SEC("uprobe")
int uprobe_prog(struct pt_regs *ctx)
{
	return 0;
}
