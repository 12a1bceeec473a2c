// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
/*
 * Programs the verifier must reject, each for a reason the loader explains: used by
 * crates/multiprobe/tests/loader.rs. None loads unless a test asks (sections start with ?).
 */
#include "mp_bpf.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u64);
} values SEC(".maps");

struct __sk_buff {
	__u32 len;
};

/* Reads 8 bytes past the end of a map value. */
SEC("?socket")
int out_of_bounds(struct __sk_buff *skb)
{
	u32 key = 0;
	u64 *v = bpf_map_lookup_elem(&values, &key);

	if (!v)
		return 0;
	return *(v + 1);
}

/* Calls a weak kfunc no kernel has, without a bpf_ksym_exists() guard. */
extern void multiprobe_missing_kfunc(void) __ksym __weak;

SEC("?socket")
int unguarded_kfunc(struct __sk_buff *skb)
{
	multiprobe_missing_kfunc();
	return 0;
}

/* Reads a task_struct field no kernel has, without a bpf_core_field_exists() guard. */
struct task_struct {
	int multiprobe_no_such_field;
} __attribute__((preserve_access_index));

SEC("?tracepoint/syscalls/sys_enter_getppid")
int unguarded_core(void *ctx)
{
	struct task_struct *task = (void *)bpf_get_current_task();
	int v = 0;

	BPF_CORE_READ_INTO(&v, task, multiprobe_no_such_field);
	return v;
}

/* The same read behind a guard loads fine. */
SEC("?tracepoint/syscalls/sys_enter_getppid")
int guarded_core(void *ctx)
{
	struct task_struct *task = (void *)bpf_get_current_task();
	int v = 0;

	if (bpf_core_field_exists(task->multiprobe_no_such_field))
		BPF_CORE_READ_INTO(&v, task, multiprobe_no_such_field);
	return v;
}
