// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
/* A program in a section no program kind uses: the parser must name both. */
#include "mp_bpf.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

SEC("kprobe_typo/vfs_read")
int misplaced(void *ctx)
{
	return 0;
}
