// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
/* A legacy map definition in SEC("maps"), which multiprobe refuses with a hint. */
#include "mp_bpf.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

struct bpf_map_def {
	unsigned int type;
	unsigned int key_size;
	unsigned int value_size;
	unsigned int max_entries;
};

struct bpf_map_def SEC("maps") old_style = {
	.type = BPF_MAP_TYPE_ARRAY,
	.key_size = 4,
	.value_size = 8,
	.max_entries = 1,
};

SEC("socket")
int uses_old_map(void *ctx)
{
	u32 key = 0;

	return bpf_map_lookup_elem(&old_style, &key) != NULL;
}
