/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* common: constants the BPF side needs without libc headers, and ctx accessors. */
#ifndef WARDEN_BPF_COMMON_H
#define WARDEN_BPF_COMMON_H

#include <stdbool.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "warden_types.h"

#define EPERM		1
#define ENOENT		2
#define EACCES		13

#define AF_UNIX		1
#define AF_INET		2
#define AF_INET6	10
#define SOCK_DGRAM	2
#define SOCK_RAW	3
#define IPPROTO_ICMP	1
#define IPPROTO_ICMPV6	58

/* cgroup sock_addr and sock programs: 1 lets the call proceed, 0 refuses it. */
#define SYS_PROCEED	1
#define SYS_REJECT	0

#ifndef __maybe_unused
#define __maybe_unused	__attribute__((__unused__))
#endif

/* The port is the low 16 bits of a u32 ctx field, in network order. Read it as a full word:
 * older verifiers reject narrow loads of user_port. */
static __always_inline __u16 ctx_dst_port(const struct bpf_sock_addr *ctx)
{
	volatile __u32 port = ctx->user_port;

	return (__u16)port;
}

/* A normalised destination: v4-mapped IPv6 becomes AF_INET so one policy applies to both. */
struct dst {
	__u8 family;
	__u8 flags;		/* WARDEN_EV_F_* */
	__u16 port;		/* network order */
	__u32 addr[4];		/* network order; AF_INET uses addr[0] */
};

static __always_inline void dst_from_ctx4(const struct bpf_sock_addr *ctx, struct dst *d)
{
	d->family = AF_INET;
	d->flags = 0;
	d->port = ctx_dst_port(ctx);
	d->addr[0] = ctx->user_ip4;
	d->addr[1] = 0;
	d->addr[2] = 0;
	d->addr[3] = 0;
}

static __always_inline void dst_from_ctx6(const struct bpf_sock_addr *ctx, struct dst *d)
{
	__u32 a0 = ctx->user_ip6[0], a1 = ctx->user_ip6[1];
	__u32 a2 = ctx->user_ip6[2], a3 = ctx->user_ip6[3];

	d->port = ctx_dst_port(ctx);
	if (a0 == 0 && a1 == 0 && a2 == bpf_htonl(0x0000ffff)) {
		/* ::ffff:a.b.c.d reaches the IPv4 a.b.c.d: judge it as that. */
		d->family = AF_INET;
		d->flags = WARDEN_EV_F_V4MAPPED;
		d->addr[0] = a3;
		d->addr[1] = 0;
		d->addr[2] = 0;
		d->addr[3] = 0;
		return;
	}
	d->family = AF_INET6;
	d->flags = 0;
	d->addr[0] = a0;
	d->addr[1] = a1;
	d->addr[2] = a2;
	d->addr[3] = a3;
}

#endif
