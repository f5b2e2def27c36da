/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* policy: who is enforced (the calling task's cgroup and its ancestors) and what an enforced
 * task may reach. Internals return 0 (allow) or a negative errno (refuse), Cilium style; only
 * the program entry points turn that into SYS_PROCEED/SYS_REJECT. */
#ifndef WARDEN_BPF_POLICY_H
#define WARDEN_BPF_POLICY_H

#include "lib/common.h"
#include "lib/maps.h"

struct verdict {
	__u64 enrolled_id;	/* the deciding enrolled cgroup */
	__u32 mode;		/* enum warden_mode */
	__u32 reason;		/* enum warden_reason when refused */
	__u32 rule_id;
};

static __always_inline struct warden_config *config_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&warden_config, &zero);
}

/* Find the enrolled entry nearest to the calling task: walk the task's cgroup ancestry from
 * the top, testing only the depths where userspace said entries exist (level_mask), and keep
 * the deepest hit. Deciding on the *task* rather than the socket's cgroup closes the "socket
 * created elsewhere" hole; walking ancestors closes the "mkdir a child and move into it" one.
 * Returns the mode (WARDEN_MODE_NONE when nothing matched). */
static __always_inline __u32 cgroup_mode(const struct warden_config *cfg, __u64 *enrolled_id)
{
	__u32 mask = cfg->level_mask;
	__u32 mode = WARDEN_MODE_NONE;

	if (!mask)
		return WARDEN_MODE_NONE;
	for (__u32 lvl = 1; lvl < WARDEN_MAX_LEVELS; lvl++) {
		struct warden_enroll *e;
		__u64 id;

		if (!(mask >> lvl))
			break;
		if (!(mask & (1U << lvl)))
			continue;
		id = bpf_get_current_ancestor_cgroup_id(lvl);
		if (!id)
			break;	/* the task's cgroup is shallower than lvl */
		e = bpf_map_lookup_elem(&warden_enrolled, &id);
		if (e) {
			mode = e->mode;
			*enrolled_id = id;
		}
	}
	return mode;
}

/* Longest-prefix match of dst in a v4 trie: first for the exact port, then for "any port",
 * each only when the trie holds such entries (kinds: WARDEN_CFG_F_*_PORT/_ANY bits). */
static __always_inline struct warden_rule *lpm4_match(void *map, const struct dst *d,
						      bool with_port, bool any_port)
{
	struct warden_lpm4_key k = {
		.prefixlen = 48,
		.port = d->port,
	};
	struct warden_rule *r = NULL;

	__builtin_memcpy(k.addr, &d->addr[0], 4);
	if (with_port || d->port == 0)
		r = bpf_map_lookup_elem(map, &k);
	if (r || !any_port || d->port == 0)
		return r;
	k.port = 0;
	return bpf_map_lookup_elem(map, &k);
}

static __always_inline struct warden_rule *lpm6_match(void *map, const struct dst *d,
						      bool with_port, bool any_port)
{
	struct warden_lpm6_key k = {
		.prefixlen = 144,
		.port = d->port,
	};
	struct warden_rule *r = NULL;

	__builtin_memcpy(k.addr, d->addr, 16);
	if (with_port || d->port == 0)
		r = bpf_map_lookup_elem(map, &k);
	if (r || !any_port || d->port == 0)
		return r;
	k.port = 0;
	return bpf_map_lookup_elem(map, &k);
}

static __always_inline struct warden_rule *dst_match(void *map4, void *map6, const struct dst *d,
						     __u16 flags, __u16 port_bit, __u16 any_bit)
{
	bool with_port = flags & port_bit, any_port = flags & any_bit;

	if (!with_port && !any_port)
		return NULL;
	return d->family == AF_INET ? lpm4_match(map4, d, with_port, any_port)
				    : lpm6_match(map6, d, with_port, any_port);
}

#define match_protect(cfg, d) dst_match(&warden_protect4, &warden_protect6, d, (cfg)->flags, \
					WARDEN_CFG_F_PROTECT_PORT, WARDEN_CFG_F_PROTECT_ANY)
#define match_allow(cfg, d) dst_match(&warden_allow4, &warden_allow6, d, (cfg)->flags, \
				      WARDEN_CFG_F_ALLOW_PORT, WARDEN_CFG_F_ALLOW_ANY)

/* Connecting to the unspecified address reaches the local host: judge 0.0.0.0 as 127.0.0.1
 * and :: as ::1, or "protect 127.0.0.1:P" would be bypassed by connect(0.0.0.0:P). */
static __always_inline void dst_unspecified_to_loopback(struct dst *d)
{
	if (d->family == AF_INET) {
		if (d->addr[0] == 0)
			d->addr[0] = bpf_htonl(0x7f000001);
	} else if ((d->addr[0] | d->addr[1] | d->addr[2] | d->addr[3]) == 0) {
		d->addr[3] = bpf_htonl(1);
	}
}

/* The sidecar endpoints are exactly 127.0.0.1:P and ::1:P (::ffff:127.0.0.1:P arrives here
 * already normalised to v4) — never all of 127/8, never another port. */
static __always_inline bool dst_is_sidecar(const struct warden_config *cfg, const struct dst *d)
{
	if (!cfg->sidecar_port || d->port != cfg->sidecar_port)
		return false;
	if (d->family == AF_INET)
		return d->addr[0] == bpf_htonl(0x7f000001);
	return d->addr[0] == 0 && d->addr[1] == 0 && d->addr[2] == 0 &&
	       d->addr[3] == bpf_htonl(1);
}

/* Decide an inet destination for a task whose nearest entry has mode v->mode. */
static __always_inline int policy_inet(const struct warden_config *cfg, const struct dst *orig,
				       struct verdict *v)
{
	struct dst dd = *orig, *d = &dd;	/* events report what the task asked for */
	struct warden_rule *r;

	dst_unspecified_to_loopback(d);
	if (dst_is_sidecar(cfg, d))
		return 0;
	if (v->mode == WARDEN_MODE_PROTECT) {
		r = match_protect(cfg, d);
		if (!r)
			return 0;
		/* An allow entry carves an exception out of a protected range. */
		if (match_allow(cfg, d))
			return 0;
		v->reason = WARDEN_REASON_PROTECTED;
		v->rule_id = r->id;
		return -EPERM;
	}
	/* Lockdown (and any unknown mode: fail closed). */
	r = match_allow(cfg, d);
	if (r)
		return 0;
	v->reason = WARDEN_REASON_LOCKDOWN;
	v->rule_id = 0;
	return -EPERM;
}

#endif
