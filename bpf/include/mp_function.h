/* SPDX-License-Identifier: (MIT OR GPL-2.0-only) */
/*
 * Which selected function a counting program (count.bpf.c, breakdown.bpf.c) runs for, as
 * the index user space gave it.
 *
 * With a kprobe_multi link, from the function's entry address: functions are 16-byte
 * aligned, so (address - slot_base) / 16 indexes `slots`, which holds each function's index
 * + 1: two array lookups the verifier inlines. The attach cookie would do too, but the kernel
 * finds it by binary search over the link's addresses with an indirect call per step: the
 * cost grows with the link. Per-function kprobes carry their cookie directly: there,
 * slot_base is 0 and the cookie is the index.
 */
#ifndef MP_FUNCTION_H
#define MP_FUNCTION_H

#include "mp_bpf.h"

/* Entry address of the lowest function, or 0 to find functions by attach cookie. Set
 * before load: the verifier sees the constant and keeps one way only. */
const volatile u64 slot_base = 0;

/* 16-byte slot of the text from slot_base -> function index + 1 (0: no function). Sized to
 * the span of the functions before load. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u32);
} slots SEC(".maps");

/* The index of the function this call entered; false for an address no function has. */
static __always_inline bool function_index(void *ctx, u32 *index)
{
	u32 slot, *slot_index;

	if (slot_base) {
		slot = (bpf_get_func_ip(ctx) - slot_base) >> 4;
		slot_index = bpf_map_lookup_elem(&slots, &slot);
		if (!slot_index || !*slot_index)
			return false;
		*index = *slot_index - 1;
	} else {
		*index = bpf_get_attach_cookie(ctx);
	}
	return true;
}

#endif
