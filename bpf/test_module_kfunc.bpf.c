// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
/*
 * A kfunc defined by a module, not by the core kernel: fou's bpf_skb_get_fou_encap (Linux
 * 6.4+, net/ipv4/fou_bpf.c, callable from tc programs). libbpf finds it in the module's
 * BTF and names that BTF in the call (insn off = its index in fd_array); so does
 * multiprobe. Loaded by crates/multiprobe/tests/corpus_gaps.rs in the VMs, after insmod of
 * fou and the modules it needs.
 */
#include "mp_bpf.h"

char LICENSE[] SEC("license") = "GPL";

struct __sk_buff {
	__u32 len;
};

struct bpf_fou_encap {
	__u16 sport;
	__u16 dport;
};

extern int bpf_skb_get_fou_encap(struct __sk_buff *skb_ctx, struct bpf_fou_encap *encap) __ksym;

/* What the kfunc returned: -EINVAL for a packet without tunnel metadata, as test runs are. */
int fou_ret = 1;

SEC("tc")
int get_fou_encap(struct __sk_buff *skb)
{
	struct bpf_fou_encap encap = {};

	fou_ret = bpf_skb_get_fou_encap(skb, &encap);
	return 0;
}
