// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
/*
 * What real tools put in one object next to a kprobe.multi program: fentry, fexit,
 * tp_btf, lsm and iterator programs (attach targets by BTF id, one a placeholder
 * retargeted before load), a section name of the tool's own, a stack trace map declared
 * with a key type only (value size set before load), a perf event array and a cgroup
 * array declared with __type (the kernel refuses their BTF), .kconfig externs, and a
 * __hidden global subprogram that only verifies with its caller's context.
 * Loaded by crates/multiprobe/tests/tracing.rs natively and in the VMs.
 */
#include "mp_bpf.h"

char LICENSE[] SEC("license") = "GPL";

#define BPF_MAP_TYPE_STACK_TRACE 7
#define BPF_MAP_TYPE_CGROUP_ARRAY 8

enum libbpf_tristate {
	TRI_NO = 0,
	TRI_YES = 1,
	TRI_MODULE = 2,
};

static long (*bpf_get_stackid)(void *ctx, void *map, __u64 flags) = (void *)27;

struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, 64);
	__type(key, u32);
} stacks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__type(key, int);
	__type(value, u32);
} perf_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_CGROUP_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u32);
} cgroups SEC(".maps");

extern u32 LINUX_KERNEL_VERSION __kconfig;
extern bool LINUX_HAS_BPF_COOKIE __kconfig;
extern bool LINUX_HAS_SYSCALL_WRAPPER __kconfig;
extern bool CONFIG_BPF_SYSCALL __kconfig __weak;
extern enum libbpf_tristate CONFIG_MULTIPROBE_NEVER_SET __kconfig __weak;
extern int CONFIG_HZ __kconfig __weak;
extern char CONFIG_LOCALVERSION[16] __kconfig __weak;

/* What the kconfig externs read, for the test to check. */
u32 seen_version;
u32 seen_cookie;
u32 seen_wrapper;
u32 seen_bpf_syscall;
u32 seen_never_set;
int seen_hz;
char seen_localversion[16];
u64 hits;

/*
 * Global but hidden: libbpf gives it static linkage in the BTF it loads, so the verifier
 * checks it with each caller's context. With global linkage the verifier would check it
 * alone, refuse its `void *` argument, and with it the caller ("Caller passes invalid args").
 */
__attribute__((visibility("hidden"))) __noinline int packet_len(void *ctx)
{
	return *(u32 *)ctx; /* struct __sk_buff's first field, len */
}

SEC("socket")
int read_kconfig(void *skb)
{
	seen_version = LINUX_KERNEL_VERSION;
	seen_cookie = LINUX_HAS_BPF_COOKIE;
	seen_wrapper = LINUX_HAS_SYSCALL_WRAPPER;
	seen_bpf_syscall = CONFIG_BPF_SYSCALL;
	seen_never_set = CONFIG_MULTIPROBE_NEVER_SET;
	seen_hz = CONFIG_HZ;
	__builtin_memcpy(seen_localversion, CONFIG_LOCALVERSION, sizeof(seen_localversion));
	return packet_len(skb);
}

SEC("kprobe.multi/vfs_read")
int multi_read(struct pt_regs *ctx)
{
	bpf_get_stackid(ctx, &stacks, 0);
	__sync_fetch_and_add(&hits, 1);
	return 0;
}

/* A placeholder target, as tools write it: the test retargets it with set_attach_target. */
SEC("fentry/dummy_fentry")
int on_entry(u64 *ctx)
{
	__sync_fetch_and_add(&hits, 1);
	return 0;
}

SEC("fexit/vfs_read")
int on_exit(u64 *ctx)
{
	__sync_fetch_and_add(&hits, 1);
	return 0;
}

SEC("tp_btf/sys_enter")
int on_sys_enter(u64 *ctx)
{
	__sync_fetch_and_add(&hits, 1);
	return 0;
}

SEC("lsm/file_open")
int on_file_open(u64 *ctx)
{
	__sync_fetch_and_add(&hits, 1);
	return 0;
}

SEC("iter/task")
int each_task(void *ctx)
{
	return 0;
}

/* A section name of the tool's own: loads once given a kind. */
SEC("mytool/vfs_read")
int custom_section(struct pt_regs *ctx)
{
	return 0;
}
