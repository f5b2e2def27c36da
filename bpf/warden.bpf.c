// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* warden: cgroup socket hooks that keep enrolled agent cgroups away from MCP servers except
 * through the local sidecar. Attached once at the cgroup v2 root; every program first finds
 * the calling task's nearest enrolled (or exempt) cgroup and lets everyone else through.
 *
 *   connect4/connect6   TCP and UDP connect, TCP fast open, io_uring connect, ping connect
 *   sendmsg4/sendmsg6   unconnected UDP sends (v4-mapped sends from v6 sockets run sendmsg4)
 *   sock_create         no raw sockets and no ICMP "ping" sockets: their sends are not hooked
 *   connect_unix        connects to protected unix socket paths (kernel 6.7+; loaded as
 *                       "cgroup/connect4" with expected attach type BPF_CGROUP_UNIX_CONNECT
 *                       because libbpf 1.1 lacks the section name)
 *   lsm_socket          BPF LSM socket_create (not a cgroup hook; kernels with "bpf" in
 *                       the LSM list): families with no cgroup hook (AF_PACKET, AF_XDP,
 *                       AF_VSOCK). Loaded only where the kernel can attach it.
 *   getpeername4/6      a socket connect4/6 redirected to the redirect listener sees its
 *                       original peer (Cilium's socket LB does the same)
 *   sockops             records who opened every established TCP connection (warden_conns)
 *                       for the daemon's accept path: identity without a system call
 */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/policy.h"
#include "lib/audit.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Is the calling task enforced (v filled)? Tasks that are not are counted and let through.
 * cfg is NULL only if the array map were missing, which cannot happen. */
static __always_inline bool enforced(const struct warden_config *cfg, __u32 hook,
				     struct verdict *v)
{
	if (!cfg)
		return false;
	v->mode = cgroup_mode_cached(cfg, &v->enrolled_id, &v->cgroup_id);
	v->redirect = v->mode & WARDEN_MODE_F_REDIRECT;
	v->mode &= ~WARDEN_MODE_F_REDIRECT;
	if (v->mode == WARDEN_MODE_NONE || v->mode == WARDEN_MODE_EXEMPT) {
		count(hook, COUNT_UNENROLLED);
		return false;
	}
	return true;
}

#define IPPROTO_TCP	6

/* Transparent redirect (connect4/6, TCP, an enrolment with the redirect flag): a connect that
 * policy refuses goes to the redirect listener instead when the destination is a protected
 * rule marked redirectable (a plain-HTTP MCP upstream; HTTPS ones are not marked, so they
 * stay refused). The original destination is remembered under the socket's cookie for
 * getpeername4/6 and the daemon. Returns true when the connect was rewritten. */
static __always_inline bool redirect_inet(struct bpf_sock_addr *ctx, __u32 hook,
					  const struct warden_config *cfg, const struct dst *d,
					  struct verdict *v)
{
	struct warden_redirect rv = {};
	struct warden_rule *r;
	struct dst dd = *d;
	__u64 cookie;

	if (!v->redirect || !cfg->redirect_port || ctx->protocol != IPPROTO_TCP)
		return false;
	if (v->mode == WARDEN_MODE_PROTECT) {
		if (v->reason != WARDEN_REASON_PROTECTED || !(v->rule_flags & WARDEN_RULE_F_REDIRECT))
			return false;
	} else {
		/* lockdown refuses what is not allowed: redirect only protected upstreams */
		dst_unspecified_to_loopback(&dd);
		r = match_protect(cfg, &dd);
		if (!r || !(r->flags & WARDEN_RULE_F_REDIRECT))
			return false;
		v->rule_id = r->id;
	}
	rv.cgroup_id = v->cgroup_id ? v->cgroup_id : bpf_get_current_cgroup_id();
	rv.rule_id = v->rule_id;
	rv.port = d->port;
	rv.family = d->family;
	rv.flags = d->flags;
	__builtin_memcpy(rv.addr, d->addr, 16);
	cookie = bpf_get_socket_cookie(ctx);
	if (bpf_map_update_elem(&warden_redirect, &cookie, &rv, BPF_ANY) < 0)
		return false;	/* nothing remembered: refuse as without redirect */
	if (hook == WARDEN_HOOK_CONNECT4) {
		ctx->user_ip4 = bpf_htonl(0x7f000001);
	} else if (d->flags & WARDEN_EV_F_V4MAPPED) {
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = bpf_htonl(0x0000ffff);
		ctx->user_ip6[3] = bpf_htonl(0x7f000001);
	} else {
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = 0;
		ctx->user_ip6[3] = bpf_htonl(1);
	}
	ctx->user_port = cfg->redirect_port;
	return true;
}

/* Common body of the four inet sock_addr hooks (hook is a constant: the branches on it fold
 * away). Who is calling is decided first: the destination is only read for enforced tasks. */
static __always_inline int hook_inet(struct bpf_sock_addr *ctx, __u32 hook)
{
	struct warden_config *cfg = config_get();
	struct verdict v = {};
	struct dst d;

	if (!enforced(cfg, hook, &v))
		return SYS_PROCEED;
	if (hook == WARDEN_HOOK_CONNECT6 || hook == WARDEN_HOOK_SENDMSG6) {
		dst_from_ctx6(ctx, &d);
	} else {
		dst_from_ctx4(ctx, &d);
		/* sendmsg4 also runs for a v6 socket sending to ::ffff:a.b.c.d (ctx->family is
		 * then AF_INET6): user_ip4 holds the v4 address either way. */
		if (hook == WARDEN_HOOK_SENDMSG4 && ctx->family == AF_INET6)
			d.flags = WARDEN_EV_F_V4MAPPED;
	}
	if (policy_inet(cfg, &d, &v) == 0) {
		count(hook, COUNT_ALLOWED);
		return SYS_PROCEED;
	}
	if ((hook == WARDEN_HOOK_CONNECT4 || hook == WARDEN_HOOK_CONNECT6) &&
	    redirect_inet(ctx, hook, cfg, &d, &v)) {
		count(hook, COUNT_REDIRECTED);
		return SYS_PROCEED;
	}
	count(hook, COUNT_DENIED);
	event_inet(hook, &v, &d, (__u16)ctx->protocol);
	deny_errno(cfg);
	return SYS_REJECT;
}

/* The four inet hooks differ only in which hook they count as. */
#define WARDEN_INET_HOOK(section, name, hook)                                                   \
	SEC(section) int name(struct bpf_sock_addr *ctx)                                        \
	{                                                                                       \
		return hook_inet(ctx, hook);                                                    \
	}

WARDEN_INET_HOOK("cgroup/connect4", warden_connect4, WARDEN_HOOK_CONNECT4)
WARDEN_INET_HOOK("cgroup/connect6", warden_connect6, WARDEN_HOOK_CONNECT6)
WARDEN_INET_HOOK("cgroup/sendmsg4", warden_sendmsg4, WARDEN_HOOK_SENDMSG4)
WARDEN_INET_HOOK("cgroup/sendmsg6", warden_sendmsg6, WARDEN_HOOK_SENDMSG6)

/* Raw sockets and ICMP ping sockets send without passing connect or sendmsg hooks: refuse to
 * create them at all in enforced cgroups. */
SEC("cgroup/sock_create")
int warden_sock_create(struct bpf_sock *sk)
{
	const __u32 hook = WARDEN_HOOK_SOCK_CREATE;
	struct warden_config *cfg = config_get();
	struct warden_event *ev;
	struct verdict v = {};
	__u32 type, proto;

	if (!enforced(cfg, hook, &v))
		return SYS_PROCEED;
	type = sk->type;
	proto = sk->protocol;
	if (type == SOCK_RAW)
		v.reason = WARDEN_REASON_RAW_SOCKET;
	else if (type == SOCK_DGRAM && (proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6))
		v.reason = WARDEN_REASON_PING_SOCKET;
	if (v.reason == WARDEN_REASON_NONE) {
		count(hook, COUNT_ALLOWED);
		return SYS_PROCEED;
	}
	count(hook, COUNT_DENIED);
	ev = event_begin(hook, &v);
	if (ev) {
		ev->family = sk->family;
		ev->protocol = proto;
		ev->sock_type = type;
		bpf_ringbuf_submit(ev, 0);
	}
	return SYS_REJECT;	/* socket() fails with EPERM */
}

/* Unix socket connect (kernel 6.7+). The kernel-side context carries the sockaddr_un; these
 * declarations are relocated against the running kernel's BTF (CO-RE). */
struct sockaddr___warden;
struct bpf_sock_addr_kern___warden {
	struct sockaddr___warden *uaddr;
	__u32 uaddrlen;
} __attribute__((preserve_access_index));

extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;

/* Make the key what the kernel will look up: bytes past the address length cleared, and a
 * path name cut at its first NUL (the kernel does the same: trailing bytes after the NUL must
 * not let "/run/x.sock\0junk" miss the "/run/x.sock" entry); an abstract name (leading NUL)
 * is exactly len bytes. Branch-free, so the verifier walks the 108 bytes once. */
static __always_inline void unix_key_normalise(struct warden_unix_key *key, __u32 len)
{
	__u64 c0 = (__u8)key->path[0];
	__u64 abstract = 1 - ((c0 + 0xff) >> 8);	/* 1 iff path[0] == 0 */
	__u64 alive = 1;

	for (__u32 i = 0; i < WARDEN_UNIX_PATH_LEN; i++) {
		__u64 c = (__u8)key->path[i];
		__u64 nonzero = (c + 0xff) >> 8;
		__u64 inside = ((__u64)((__s64)i - (__s64)len)) >> 63;	/* 1 iff i < len */

		alive &= inside & (nonzero | abstract);
		key->path[i] = (char)(c & (0 - alive));
	}
}

SEC("cgroup/connect4")	/* expected attach type set to BPF_CGROUP_UNIX_CONNECT by userspace */
int warden_connect_unix(struct bpf_sock_addr *ctx)
{
	const __u32 hook = WARDEN_HOOK_CONNECT_UNIX;
	struct bpf_sock_addr_kern___warden *sa;
	struct warden_config *cfg = config_get();
	struct warden_unix_key key = {};
	struct warden_rule *r;
	struct warden_event *ev;
	struct verdict v = {};
	__u32 len;

	if (!enforced(cfg, hook, &v))
		return SYS_PROCEED;
	sa = bpf_cast_to_kern_ctx(ctx);
	len = sa->uaddrlen;
	/* sun_path follows the 2-byte family; the kernel copy lives in a sockaddr_storage, so
	 * reading the full 108 bytes stays inside it. Bytes past uaddrlen are cleared below. */
	if (bpf_probe_read_kernel(key.path, sizeof(key.path), (char *)sa->uaddr + 2) < 0)
		goto allowed;	/* cannot happen for a kernel sockaddr; keep the call usable */
	len = len > 2 ? len - 2 : 0;
	unix_key_normalise(&key, len);
	r = bpf_map_lookup_elem(&warden_unixpath, &key);
	if (!r)
		goto allowed;
	v.reason = WARDEN_REASON_UNIX_PATH;
	v.rule_id = r->id;
	count(hook, COUNT_DENIED);
	ev = event_begin(hook, &v);
	if (ev) {
		ev->family = AF_UNIX;
		__builtin_memcpy(ev->path, key.path, sizeof(ev->path));
		bpf_ringbuf_submit(ev, 0);
	}
	deny_errno(cfg);
	return SYS_REJECT;
allowed:
	count(hook, COUNT_ALLOWED);
	return SYS_PROCEED;
}

/* Families without any cgroup hook: socket() itself is the only place to stop them. An LSM
 * hook runs in the calling task's context, so the same enrolment lookup applies. Only
 * sockets the task asks for (kern == 0): the kernel's own sockets are not the agent's. The
 * arguments are those of security_socket_create(family, type, protocol, kern). */
SEC("lsm/socket_create")
int warden_lsm_socket(unsigned long long *ctx)
{
	const __u32 hook = WARDEN_HOOK_LSM_SOCKET;
	int family = (int)ctx[0], type = (int)ctx[1], protocol = (int)ctx[2], kern = (int)ctx[3];
	struct warden_config *cfg;
	struct warden_event *ev;
	struct verdict v = {};

	if (kern)
		return 0;
	/* Decided before the cgroup lookup: every socket() on the host passes here. */
	if (family != WARDEN_AF_PACKET && family != WARDEN_AF_XDP && family != WARDEN_AF_VSOCK)
		return 0;
	cfg = config_get();
	if (!enforced(cfg, hook, &v))
		return 0;
	v.reason = WARDEN_REASON_SOCKET_FAMILY;
	count(hook, COUNT_DENIED);
	ev = event_begin(hook, &v);
	if (ev) {
		ev->family = (__u8)family;
		ev->protocol = (__u16)protocol;
		ev->sock_type = (__u16)(type & 0xf);	/* without SOCK_CLOEXEC/SOCK_NONBLOCK */
		bpf_ringbuf_submit(ev, 0);
	}
	return -EPERM;
}

/* A redirected socket asks who its peer is: the address it connected to, not the redirect
 * listener. Only sockets whose peer is the listener's port are looked up. Never refuses. */
static __always_inline int hook_getpeername(struct bpf_sock_addr *ctx, __u32 hook)
{
	struct warden_config *cfg = config_get();
	struct warden_redirect *rv;
	__u64 cookie;

	if (!cfg || !cfg->redirect_port || ctx_dst_port(ctx) != cfg->redirect_port)
		return SYS_PROCEED;
	cookie = bpf_get_socket_cookie(ctx);
	rv = bpf_map_lookup_elem(&warden_redirect, &cookie);
	if (!rv)
		return SYS_PROCEED;
	if (hook == WARDEN_HOOK_GETPEERNAME4) {
		if (rv->family != AF_INET)
			return SYS_PROCEED;
		ctx->user_ip4 = *(__u32 *)rv->addr;
	} else if (rv->flags & WARDEN_EV_F_V4MAPPED) {
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = bpf_htonl(0x0000ffff);
		ctx->user_ip6[3] = *(__u32 *)rv->addr;
	} else {
		if (rv->family != AF_INET6)
			return SYS_PROCEED;
		ctx->user_ip6[0] = *(__u32 *)&rv->addr[0];
		ctx->user_ip6[1] = *(__u32 *)&rv->addr[4];
		ctx->user_ip6[2] = *(__u32 *)&rv->addr[8];
		ctx->user_ip6[3] = *(__u32 *)&rv->addr[12];
	}
	ctx->user_port = rv->port;
	count(hook, COUNT_REDIRECTED);
	return SYS_PROCEED;
}

SEC("cgroup/getpeername4")
int warden_getpeername4(struct bpf_sock_addr *ctx)
{
	return hook_getpeername(ctx, WARDEN_HOOK_GETPEERNAME4);
}

SEC("cgroup/getpeername6")
int warden_getpeername6(struct bpf_sock_addr *ctx)
{
	return hook_getpeername(ctx, WARDEN_HOOK_GETPEERNAME6);
}

/* ---- caller identity: warden_conns (layout and protocol in warden_types.h) ---------------- */

/* The socket's cgroup as sock_diag reports it (INET_DIAG_CGROUP_ID: sk->sk_cgrp_data), so
 * the daemon's fast path and its sock_diag fallback never disagree. Read through BTF: the
 * program runs when the SYN-ACK arrives, in softirq, where "current" is not the caller. */
struct sock_cgroup_data___warden {
	struct cgroup___warden *cgroup;
} __attribute__((preserve_access_index));

struct sock___warden {
	struct sock_cgroup_data___warden sk_cgrp_data;
} __attribute__((preserve_access_index));

struct bpf_sock_ops_kern___warden {
	struct sock___warden *sk;
} __attribute__((preserve_access_index));

#define SLOT_CLAIM_TRIES 4

/* The fields after seq, in the order of struct warden_conn, built before the slot is taken
 * so that a writer holds it for a few stores only. */
static __always_inline void conn_fill(struct bpf_sock_ops *ctx, struct warden_conn *c,
				      __u32 family)
{
	__u32 rport = ctx->remote_port;

	/* remote_port is network order, in the upper half on little-endian kernels */
	c->dport = (__u16)(rport > 0xffff ? rport >> 16 : rport);
	c->sport = bpf_htons((__u16)ctx->local_port);
	if (family == AF_INET) {
		c->family = AF_INET;
		*(__u32 *)&c->saddr[0] = ctx->local_ip4;
		*(__u32 *)&c->daddr[0] = ctx->remote_ip4;
		return;
	}
	/* A v6 socket connected to ::ffff:a.b.c.d is a v4 connection: the server accepts it
	 * from a.b.c.d (or ::ffff:a.b.c.d on a dual-stack listener, which it normalises). */
	if (ctx->local_ip6[0] == 0 && ctx->local_ip6[1] == 0 &&
	    ctx->local_ip6[2] == bpf_htonl(0x0000ffff)) {
		c->family = AF_INET;
		*(__u32 *)&c->saddr[0] = ctx->local_ip6[3];
		*(__u32 *)&c->daddr[0] = ctx->remote_ip6[3];
		return;
	}
	c->family = AF_INET6;
	*(__u32 *)&c->saddr[0] = ctx->local_ip6[0];
	*(__u32 *)&c->saddr[4] = ctx->local_ip6[1];
	*(__u32 *)&c->saddr[8] = ctx->local_ip6[2];
	*(__u32 *)&c->saddr[12] = ctx->local_ip6[3];
	*(__u32 *)&c->daddr[0] = ctx->remote_ip6[0];
	*(__u32 *)&c->daddr[4] = ctx->remote_ip6[1];
	*(__u32 *)&c->daddr[8] = ctx->remote_ip6[2];
	*(__u32 *)&c->daddr[12] = ctx->remote_ip6[3];
}

/* Every TCP connect on the host that completes (active side) records who made it. Decides
 * nothing and never fails the connection; cheap: no hash lookup unless the peer is the
 * redirect listener. */
SEC("sockops")
int warden_sockops(struct bpf_sock_ops *ctx)
{
	const __u32 hook = WARDEN_HOOK_SOCKOPS;
	struct bpf_sock_ops_kern___warden *k;
	struct warden_config *cfg;
	struct warden_redirect *rv;
	struct warden_conn c = {}, *e;
	struct sock___warden *sk;
	struct cgroup___warden *cg;
	__u32 family, idx;
	__u64 seq;

	if (ctx->op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB)
		return 1;
	family = ctx->family;
	if (family != AF_INET && family != AF_INET6)
		return 1;
	conn_fill(ctx, &c, family);
	k = bpf_cast_to_kern_ctx(ctx);
	sk = k->sk;
	if (!sk)
		return 1;
	cg = sk->sk_cgrp_data.cgroup;
	if (!cg)
		return 1;
	c.cgroup_id = cg->kn->id;
	c.netns_cookie = bpf_get_netns_cookie(ctx);
	c.cookie = bpf_get_socket_cookie(ctx);
	cfg = config_get();
	if (cfg && cfg->redirect_port && c.dport == cfg->redirect_port) {
		rv = bpf_map_lookup_elem(&warden_redirect, &c.cookie);
		if (rv) {
			__builtin_memcpy(&c.orig, rv, sizeof(c.orig));
			c.flags |= WARDEN_CONN_F_REDIRECTED;
		}
	}
	idx = ctx->local_port & 0xffff;
	e = bpf_map_lookup_elem(&warden_conns, &idx);
	if (!e)
		return 1;
	for (int i = 0; i < SLOT_CLAIM_TRIES; i++) {
		seq = *(volatile __u64 *)&e->seq;
		if (seq & 1)
			break;	/* another writer holds it: its connection is newer anyway */
		if (__sync_val_compare_and_swap(&e->seq, seq, seq + 1) == seq)
			goto claimed;
	}
	count(hook, COUNT_DROPPED);
	return 1;
claimed:
	/* Everything after seq; the compare-and-swap before and the add after are full
	 * barriers, so a reader that sees seq even and unchanged saw none of these stores
	 * or all of them. */
	e->cgroup_id = c.cgroup_id;
	e->netns_cookie = c.netns_cookie;
	e->cookie = c.cookie;
	e->family = c.family;
	e->flags = c.flags;
	e->sport = c.sport;
	e->dport = c.dport;
	__builtin_memcpy(e->saddr, c.saddr, sizeof(e->saddr));
	__builtin_memcpy(e->daddr, c.daddr, sizeof(e->daddr));
	__builtin_memcpy(&e->orig, &c.orig, sizeof(e->orig));
	__sync_fetch_and_add(&e->seq, 1);
	count(hook, COUNT_ALLOWED);
	return 1;
}
