// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
/*
 * CO-RE fixture: every relocation kind clang can emit, against kernel types.
 *
 * The types below are deliberately partial, reordered or wrong copies of kernel types, so
 * that relocating this object against a real kernel's BTF has to move offsets, resize
 * loads, find fields inside anonymous members, pick flavors and poison accesses to fields
 * no kernel has. The Rust tests in crates/multiprobe/src/btf/core/ relocate every record
 * against /sys/kernel/btf/vmlinux and compare with what that BTF says.
 *
 * Self-contained on purpose: no vmlinux.h, no libbpf headers.
 */

#define SEC(name) __attribute__((section(name), used))
#define __core __attribute__((preserve_access_index))

typedef unsigned char __u8;
typedef unsigned int __u32;
typedef unsigned long long __u64;

/* __builtin_preserve_field_info kinds */
#define FIELD_BYTE_OFFSET 0
#define FIELD_BYTE_SIZE 1
#define FIELD_EXISTS 2
#define FIELD_SIGNED 3
#define FIELD_LSHIFT_U64 4
#define FIELD_RSHIFT_U64 5
/* __builtin_btf_type_id kinds */
#define TYPE_ID_LOCAL 0
#define TYPE_ID_TARGET 1
/* __builtin_preserve_type_info kinds */
#define TYPE_EXISTS 0
#define TYPE_SIZE 1
/* __builtin_preserve_enum_value kinds */
#define ENUMVAL_EXISTS 0
#define ENUMVAL_VALUE 1

static long (*bpf_probe_read_kernel)(void *dst, __u32 size, const void *src) = (void *)113;
static struct task_struct *(*bpf_get_current_task_btf)(void) = (void *)158;

/*
 * Fields in an order and with sizes no kernel uses: pid and tgid must move, in_execve is a
 * bitfield, comm is an array, and the last field exists in no kernel at all.
 */
struct task_struct {
	int tgid;
	int pid;
	char comm[16];
	unsigned int flags;
	unsigned in_execve : 1;
	unsigned in_iowait : 1;
	struct task_struct *real_parent;
	struct mm_struct *mm;
	int multiprobe_no_such_field;
} __core;

/*
 * Kernels wrap almost all of mm_struct in an anonymous struct and end it with a flexible
 * array: the fields below must be found inside that anonymous member. task_size is declared
 * 4 bytes wide to make the loader resize the load of an unsigned field.
 */
struct mm_struct {
	unsigned int task_size;
	int map_count;
	unsigned long cpu_bitmap[];
} __core;

/* Before 5.14 the task state was `long state`, now it is `unsigned int __state`. */
struct task_struct___old {
	long state;
} __core;

struct task_struct___new {
	unsigned int __state;
} __core;

struct multiprobe_no_such_type {
	int x;
};

/* Values deliberately different from the kernel's, and one enumerator no kernel has. */
enum pid_type {
	PIDTYPE_MAX = 100,
	PIDTYPE_SID = 101,
	PIDTYPE_TGID = 102,
	MULTIPROBE_PIDTYPE_NONE = 103,
};

/* An unsigned enumerator with the top bit set: its 64-bit value must not sign-extend. */
enum x86_pf_error_code {
	X86_PF_PROT = 1,
	X86_PF_RMP = 1u << 31,
};

__u64 out[40];

SEC("tracepoint/syscalls/sys_enter_getpid")
int test_core(void *ctx)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct mm_struct *mm;
	__u64 v = 0;

	/* direct loads: FIELD_BYTE_OFFSET on LDX instructions */
	out[0] = task->pid;
	out[1] = task->tgid;
	out[2] = task->flags;
	out[3] = (__u64)task->real_parent;

	/* byte offset of an array element, as an ALU immediate */
	bpf_probe_read_kernel(&v, 1, __builtin_preserve_access_index(&task->comm[3]));
	out[4] = v;

	/* bitfield, read the way libbpf's BPF_CORE_READ_BITFIELD_PROBED does */
	v = 0;
	bpf_probe_read_kernel(&v, __builtin_preserve_field_info(task->in_execve, FIELD_BYTE_SIZE),
			      (void *)task + __builtin_preserve_field_info(task->in_execve,
									  FIELD_BYTE_OFFSET));
	v <<= __builtin_preserve_field_info(task->in_execve, FIELD_LSHIFT_U64);
	if (__builtin_preserve_field_info(task->in_execve, FIELD_SIGNED))
		v = (__u64)((long long)v >> __builtin_preserve_field_info(task->in_execve,
									  FIELD_RSHIFT_U64));
	else
		v >>= __builtin_preserve_field_info(task->in_execve, FIELD_RSHIFT_U64);
	out[5] = v;

	/* a field inside the kernel's anonymous struct, resized, and a flexible array */
	mm = task->mm;
	out[6] = mm->task_size;
	out[7] = mm->map_count;
	out[8] = mm->cpu_bitmap[1];
	out[9] = __builtin_preserve_field_info(mm->cpu_bitmap[1], FIELD_BYTE_OFFSET);

	/* existence: a real field, and a field no kernel has, guarded as programs do */
	out[10] = __builtin_preserve_field_info(task->pid, FIELD_EXISTS);
	out[11] = __builtin_preserve_field_info(task->multiprobe_no_such_field, FIELD_EXISTS);
	if (__builtin_preserve_field_info(task->multiprobe_no_such_field, FIELD_EXISTS))
		out[12] = task->multiprobe_no_such_field;

	/* flavors: only one of them matches the running kernel */
	if (__builtin_preserve_field_info(((struct task_struct___new *)task)->__state,
					  FIELD_EXISTS))
		out[13] = ((struct task_struct___new *)task)->__state;
	else
		out[13] = ((struct task_struct___old *)task)->state;

	/* sizes and signedness */
	out[14] = __builtin_preserve_field_info(task->comm, FIELD_BYTE_SIZE);
	out[15] = __builtin_preserve_field_info(task->pid, FIELD_SIGNED);
	out[16] = __builtin_preserve_field_info(task->flags, FIELD_SIGNED);

	/* types */
	out[17] = __builtin_preserve_type_info(*(struct task_struct *)0, TYPE_EXISTS);
	out[18] = __builtin_preserve_type_info(*(struct task_struct *)0, TYPE_SIZE);
	out[19] = __builtin_preserve_type_info(*(struct multiprobe_no_such_type *)0, TYPE_EXISTS);
	out[20] = __builtin_btf_type_id(*(struct task_struct *)0, TYPE_ID_TARGET);
	out[21] = __builtin_btf_type_id(*(struct task_struct *)0, TYPE_ID_LOCAL);
	out[22] = __builtin_preserve_type_info(*(struct mm_struct *)0, TYPE_SIZE);

	/* enums */
	out[23] = __builtin_preserve_enum_value(*(enum pid_type *)PIDTYPE_SID, ENUMVAL_VALUE);
	out[24] = __builtin_preserve_enum_value(*(enum pid_type *)PIDTYPE_TGID, ENUMVAL_EXISTS);
	out[25] = __builtin_preserve_enum_value(*(enum pid_type *)MULTIPROBE_PIDTYPE_NONE,
						ENUMVAL_EXISTS);
	if (__builtin_preserve_enum_value(*(enum pid_type *)MULTIPROBE_PIDTYPE_NONE,
					  ENUMVAL_EXISTS))
		out[26] = __builtin_preserve_enum_value(*(enum pid_type *)MULTIPROBE_PIDTYPE_NONE,
							ENUMVAL_VALUE);
	out[27] = __builtin_preserve_enum_value(*(enum x86_pf_error_code *)X86_PF_RMP,
						ENUMVAL_VALUE);
	return 0;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
