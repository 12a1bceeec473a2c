// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
/*
 * Loader gaps the public-tools corpus showed (docs/loader.md, "The corpus"), each
 * reproduced by a program of our own. Loaded by crates/multiprobe/tests/corpus_gaps.rs
 * natively and in the VMs.
 */
#include "mp_bpf.h"

char LICENSE[] SEC("license") = "GPL";

#define KERNEL_VERSION(a, b, c) (((a) << 16) + ((b) << 8) + ((c) > 255 ? 255 : (c)))

struct __sk_buff {
	__u32 len;
};

extern u32 LINUX_KERNEL_VERSION __kconfig;

/*
 * bcc's biosnoop and bitesize read a tracepoint argument at another place on kernels
 * before 5.10.137, behind a LINUX_KERNEL_VERSION test: code the verifier refuses on newer
 * kernels and skips only when it reads the .kconfig value as a constant, which it does for a
 * map read-only to programs and frozen, as libbpf creates .kconfig. Here the code for "old
 * kernels" reads far outside the socket filter's context.
 */
SEC("socket")
int kconfig_guarded(struct __sk_buff *skb)
{
	if (LINUX_KERNEL_VERSION < KERNEL_VERSION(3, 0, 0))
		return *(volatile u32 *)((char *)skb + 4000);
	return 7;
}

extern bool LINUX_HAS_SYSCALL_WRAPPER __kconfig;

/* What LINUX_HAS_SYSCALL_WRAPPER read (asked of the kernel's BTF, else /proc/kallsyms). */
u32 seen_wrapper = 2;

SEC("socket")
int syscall_wrapper(struct __sk_buff *skb)
{
	seen_wrapper = LINUX_HAS_SYSCALL_WRAPPER;
	return 0;
}

struct pt_regs;

/*
 * A USDT program as libbpf's usdt.bpf.h users write them (bcc's javagc, libbpf-bootstrap's
 * usdt): a kprobe-type program, loaded, not attached (no USDT attach yet).
 */
u64 usdt_hits;

SEC("usdt")
int usdt_probe(struct pt_regs *ctx)
{
	__sync_fetch_and_add(&usdt_hits, 1);
	return 0;
}
