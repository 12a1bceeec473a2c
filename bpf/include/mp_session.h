/* SPDX-License-Identifier: (MIT OR GPL-2.0-only) */
/*
 * Kprobe session kfuncs (6.10+), on every kernel that has them.
 *
 * The kfuncs take no argument on 6.10 to 6.x and the context on 7.x. Both prototypes are
 * declared weak: the loader resolves the one whose prototype matches the kernel's (flavor
 * suffixes after ___ are ignored), and the verifier removes the branch of the other.
 */
#ifndef MP_SESSION_H
#define MP_SESSION_H

#include "mp_bpf.h"

extern bool bpf_session_is_return(void) __ksym __weak;
extern __u64 *bpf_session_cookie(void) __ksym __weak;
extern bool bpf_session_is_return___ctx(void *ctx) __ksym __weak;
extern __u64 *bpf_session_cookie___ctx(void *ctx) __ksym __weak;

/* Whether this run is the return run, and the call's 8-byte session slot in *slot. */
static __always_inline bool mp_session(struct pt_regs *ctx, __u64 **slot)
{
	if (bpf_ksym_exists(bpf_session_is_return___ctx)) {
		*slot = bpf_session_cookie___ctx(ctx);
		return bpf_session_is_return___ctx(ctx);
	}
	*slot = bpf_session_cookie();
	return bpf_session_is_return();
}

#endif
