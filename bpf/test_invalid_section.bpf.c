// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
/* A program in a section no program kind uses: it opens without a kind, and loading it
 * without one fails naming the program and its section. */
#include "mp_bpf.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

SEC("kprobe_typo/vfs_read")
int misplaced(void *ctx)
{
	return 0;
}
