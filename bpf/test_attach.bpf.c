// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
/*
 * One program of every kind multiprobe attaches, in one object as tools mix them: a
 * kprobe.multi program next to a single kprobe, a kretprobe, a ksyscall, a tracepoint, a
 * raw tracepoint, tp_btf, fentry, fexit, fmod_ret, lsm and an iterator. Each counts what
 * the test's own thread does (openat(2) of /dev/null) once the test has written its thread
 * id and the syscall number into `state`, so every count is exact. The iterator writes each task's
 * pid. Attached by crates/multiprobe/tests/tracing.rs (module tracing_links) in the VMs.
 */
#include "mp_bpf.h"

char LICENSE[] SEC("license") = "GPL";

static long (*bpf_seq_write)(void *seq, const void *data, __u32 len) = (void *)127;

/* Indexes of state.hits, one per program (the test reads them by these numbers). */
enum {
	HIT_MULTI,
	HIT_KPROBE,
	HIT_KRETPROBE,
	HIT_KSYSCALL,
	HIT_TRACEPOINT,
	HIT_RAW_TP,
	HIT_TP_BTF,
	HIT_FENTRY,
	HIT_FEXIT,
	HIT_LSM,
	HIT_FMOD_RET,
	HIT_COUNT,
};

/* One global, so its layout in .bss is fixed: tid and nr are written by the test. */
struct {
	u32 tid;
	u32 nr;
	u64 hits[HIT_COUNT];
} state;

static __always_inline void hit(int i)
{
	u32 tid = (u32)bpf_get_current_pid_tgid();
	if (state.tid != 0 && tid == state.tid)
		__sync_fetch_and_add(&state.hits[i], 1);
}

SEC("kprobe.multi/do_sys_openat2")
int multi_open(struct pt_regs *ctx)
{
	hit(HIT_MULTI);
	return 0;
}

SEC("kprobe/do_sys_openat2")
int kprobe_open(struct pt_regs *ctx)
{
	hit(HIT_KPROBE);
	return 0;
}

SEC("kretprobe/do_sys_openat2")
int kretprobe_open(struct pt_regs *ctx)
{
	hit(HIT_KRETPROBE);
	return 0;
}

SEC("ksyscall/openat")
int ksyscall_openat(struct pt_regs *ctx)
{
	hit(HIT_KSYSCALL);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_openat")
int tp_openat(void *ctx)
{
	hit(HIT_TRACEPOINT);
	return 0;
}

/* raw_tp and tp_btf sys_enter: (struct pt_regs *regs, long id). */
SEC("raw_tp/sys_enter")
int raw_sys_enter(u64 *ctx)
{
	if (ctx[1] == state.nr)
		hit(HIT_RAW_TP);
	return 0;
}

SEC("tp_btf/sys_enter")
int btf_sys_enter(u64 *ctx)
{
	if (ctx[1] == state.nr)
		hit(HIT_TP_BTF);
	return 0;
}

SEC("fentry/do_sys_openat2")
int fentry_open(u64 *ctx)
{
	hit(HIT_FENTRY);
	return 0;
}

SEC("fexit/do_sys_openat2")
int fexit_open(u64 *ctx)
{
	hit(HIT_FEXIT);
	return 0;
}

SEC("lsm/file_open")
int lsm_file_open(u64 *ctx)
{
	hit(HIT_LSM);
	return 0; /* allow */
}

/* On a security_ hook, which fmod_ret may attach to; returning 0 lets the hook run. */
SEC("fmod_ret/security_file_open")
int fmod_ret_file_open(u64 *ctx)
{
	hit(HIT_FMOD_RET);
	return 0;
}

/* The iterator's context, relocated to the kernel's layout. */
struct bpf_iter_meta {
	void *seq;
} __attribute__((preserve_access_index));
struct task_struct {
	int pid;
} __attribute__((preserve_access_index));
struct bpf_iter__task {
	struct bpf_iter_meta *meta;
	struct task_struct *task;
} __attribute__((preserve_access_index));

SEC("iter/task")
int each_task_pid(struct bpf_iter__task *ctx)
{
	struct task_struct *task = ctx->task;
	if (!task)
		return 0;
	int pid = task->pid;
	bpf_seq_write(ctx->meta->seq, &pid, sizeof(pid));
	return 0;
}
