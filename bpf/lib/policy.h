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
	__u64 cgroup_id;	/* the calling task's cgroup; 0: not read (yet) */
	__u32 mode;		/* enum warden_mode */
	__u32 reason;		/* enum warden_reason when refused */
	__u32 rule_id;
	__u32 rule_flags;	/* WARDEN_RULE_F_* of the protected rule that matched */
	bool redirect;		/* the deciding enrolment asks for transparent redirect */
};

/* An entry's mode with its redirect flag beside it (WARDEN_MODE_F_REDIRECT): both are cached
 * together. */
static __always_inline __u32 enroll_mode(const struct warden_enroll *e)
{
	return e->mode | ((e->flags & WARDEN_ENROLL_F_REDIRECT) ? WARDEN_MODE_F_REDIRECT : 0);
}

static __always_inline struct warden_config *config_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&warden_config, &zero);
}

/* Find the enrolled entry nearest to the calling task: walk the task's cgroup ancestry from
 * the top, testing only the depths where userspace said entries exist (level_mask), and keep
 * the deepest hit. Deciding on the *task* rather than the socket's cgroup closes the "socket
 * created elsewhere" hole; walking ancestors closes the "mkdir a child and move into it" one.
 * Returns the mode (WARDEN_MODE_NONE when nothing matched), with WARDEN_MODE_F_REDIRECT. */
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
			mode = enroll_mode(e);
			*enrolled_id = id;
		}
	}
	return mode;
}

/* Kernel types read through BTF (CO-RE: offsets are relocated against the running kernel).
 * Only the fields used; the ___warden suffix keeps them apart from real declarations. */
struct kernfs_node___warden {
	__u64 id;
} __attribute__((preserve_access_index));

struct cgroup___warden;
struct cgroup_subsys_state___warden {
	struct cgroup___warden *cgroup;
	struct cgroup_subsys_state___warden *parent;
} __attribute__((preserve_access_index));

struct cgroup___warden {
	struct cgroup_subsys_state___warden self;
	struct kernfs_node___warden *kn;
	int level;
} __attribute__((preserve_access_index));

struct css_set___warden {
	struct cgroup___warden *dfl_cgrp;
} __attribute__((preserve_access_index));

struct kuid___warden {
	__u32 val;
};

struct cred___warden {
	struct kuid___warden uid;	/* kuid_t, kgid_t: ids in the initial namespace */
	struct kuid___warden gid;
} __attribute__((preserve_access_index));

struct task_struct___warden {
	int pid;
	int tgid;
	const struct cred___warden *cred;
	char comm[WARDEN_COMM_LEN];
	struct css_set___warden *cgroups;
} __attribute__((preserve_access_index));

/* Set by userspace before loading when the kernel lets cgroup programs read the current task
 * through BTF. Then the calling task's cgroup is read once, as one consistent snapshot, and
 * its id and ancestors follow from plain loads instead of a helper call per level (calls
 * are what costs most here). The verifier drops the branch not taken. */
const volatile bool warden_task_btf = false;

static __always_inline struct cgroup___warden *task_cgroup(void)
{
	struct task_struct___warden *t = (void *)bpf_get_current_task_btf();

	return t->cgroups->dfl_cgrp;
}

/* cgroup_mode() for the cgroup c, walking up from it: the first (deepest) entry wins. Entries
 * sit at most WARDEN_MAX_LEVELS - 1 deep; a deeper task (an agent nesting cgroups to escape)
 * is decided by the helper walk, which looks at those levels directly. */
static __always_inline __u32 cgroup_mode_btf(const struct warden_config *cfg,
					     struct cgroup___warden *c, __u64 *enrolled_id)
{
	__u32 mask = cfg->level_mask;
	__u32 lvl = (__u32)c->level;

	if (!mask)
		return WARDEN_MODE_NONE;
	if (lvl >= WARDEN_MAX_LEVELS)
		return cgroup_mode(cfg, enrolled_id);
	for (int i = 1; i < WARDEN_MAX_LEVELS; i++) {
		if (lvl == 0 || !(mask & ((2U << lvl) - 1)))
			break;	/* no entries at this depth or above (the root is never one) */
		if (mask & (1U << lvl)) {
			__u64 id = c->kn->id;
			struct warden_enroll *e = bpf_map_lookup_elem(&warden_enrolled, &id);

			if (e) {
				*enrolled_id = id;
				return enroll_mode(e);
			}
		}
		c = c->self.parent->cgroup;
		lvl--;
	}
	return WARDEN_MODE_NONE;
}

static __always_inline __u32 cgroup_mode_any(const struct warden_config *cfg,
					     __u64 *enrolled_id)
{
	if (warden_task_btf)
		return cgroup_mode_btf(cfg, task_cgroup(), enrolled_id);
	return cgroup_mode(cfg, enrolled_id);
}

/* The cgroup decision cache in front of the walk (layout and protocol in warden_types.h).
 * x86-64 only: the epoch protocol relies on loads not being reordered with older loads (the
 * epoch is read before the walk's map loads, and userspace writes the epoch after the maps);
 * weakly ordered CPUs would need an acquire load that clang 14 cannot emit for BPF, so there
 * every call walks. */
static __always_inline __u64 cgcache_mix(__u64 a, __u64 b)
{
	__u64 x = a ^ (b * 0x9e3779b97f4a7c15ULL);

	/* splitmix64's finaliser: every input bit reaches every output bit */
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

/* The mode of the calling task's nearest enrolled (or exempt) cgroup, and that cgroup's id. */
static __always_inline __u32 cgroup_mode_cached(const struct warden_config *cfg,
						__u64 *enrolled_id, __u64 *cgroup_id)
{
#ifdef __TARGET_ARCH_x86
	struct cgroup___warden *c = NULL;
	struct warden_cgcache *s;
	__u32 zero = 0, slot, mode;
	__u64 *epoch, id, tag, t, eid;

	if (!cfg->level_mask)
		return WARDEN_MODE_NONE;	/* nothing enrolled: no need to know who calls */
	epoch = bpf_map_lookup_elem(&warden_epoch, &zero);
	if (!epoch)
		return cgroup_mode_any(cfg, enrolled_id);
	tag = *(volatile __u64 *)epoch;		/* before any map load of the walk */
	if (warden_task_btf) {
		c = task_cgroup();
		id = c->kn->id;
	} else {
		id = bpf_get_current_cgroup_id();
	}
	*cgroup_id = id;
	tag = cgcache_mix(id, tag) & ~WARDEN_CGCACHE_MODE_MASK;
	slot = (__u32)(id ^ (id >> 32)) & (WARDEN_CGCACHE_SLOTS - 1);
	s = bpf_map_lookup_elem(&warden_cgcache, &slot);
	if (s) {
		t = *(volatile __u64 *)&s->tag;
		eid = *(volatile __u64 *)&s->enrolled_id;
		if ((t & ~WARDEN_CGCACHE_MODE_MASK) == tag &&
		    *(volatile __u64 *)&s->check == cgcache_mix(t, eid)) {
			*enrolled_id = eid;
			return (__u32)(t & WARDEN_CGCACHE_MODE_MASK);
		}
	}
	if (warden_task_btf) {
		/* id and ancestry come from the same cgroup snapshot */
		mode = cgroup_mode_btf(cfg, c, enrolled_id);
	} else {
		mode = cgroup_mode(cfg, enrolled_id);
		/* The helper walk reads the task's cgroup afresh at every level: if the task
		 * was moved meanwhile, the mode may be another cgroup's. Use it, do not keep it. */
		if (bpf_get_current_cgroup_id() != id)
			return mode;
	}
	if (s) {
		t = tag | (mode & WARDEN_CGCACHE_MODE_MASK);
		*(volatile __u64 *)&s->tag = t;
		*(volatile __u64 *)&s->enrolled_id = *enrolled_id;
		*(volatile __u64 *)&s->check = cgcache_mix(t, *enrolled_id);
	}
	return mode;
#else
	return cgroup_mode_any(cfg, enrolled_id);
#endif
}

/* The host rule of kind for d at port (network order; 0: the "any port" entry). */
static __always_inline struct warden_rule *exact_match(const struct dst *d, __u16 port,
						       __u8 kind)
{
	if (d->family == AF_INET) {
		struct warden_exact4_key k = { .port = port, .kind = kind };

		__builtin_memcpy(k.addr, &d->addr[0], 4);
		return bpf_map_lookup_elem(&warden_exact4, &k);
	}
	struct warden_exact6_key k6 = { .port = port, .kind = kind };

	__builtin_memcpy(k6.addr, d->addr, 16);
	return bpf_map_lookup_elem(&warden_exact6, &k6);
}

/* Longest-prefix match of d at port (0: the "any port" entries) in the family's trie. */
static __always_inline struct warden_rule *lpm_match(void *map4, void *map6, const struct dst *d,
						     __u16 port)
{
	if (d->family == AF_INET) {
		struct warden_lpm4_key k = { .prefixlen = 48, .port = port };

		__builtin_memcpy(k.addr, &d->addr[0], 4);
		return bpf_map_lookup_elem(map4, &k);
	}
	struct warden_lpm6_key k6 = { .prefixlen = 144, .port = port };

	__builtin_memcpy(k6.addr, d->addr, 16);
	return bpf_map_lookup_elem(map6, &k6);
}

/* Which warden_config.flags bits say a map may hold candidates of one kind. */
struct rule_bits {
	__u16 host_port, prefix_port, host_any, prefix_any;
};

/* The rule of one kind that d matches, most specific first: host:port, prefix:port, host
 * (any port), prefix (any port) — a port-specific rule beats an any-port one, and within
 * each the longest address wins. This is the rule an event names; whether anything matched
 * does not depend on the order. Only maps whose flags bit is set are consulted, so the
 * usual "host:port rules only" policy costs one hash lookup. Destination port 0 can only
 * match any-port entries. */
static __always_inline struct warden_rule *rule_match(const struct dst *d, __u16 flags,
						      __u8 kind, void *trie4, void *trie6,
						      const struct rule_bits b)
{
	struct warden_rule *r;

	if (d->port) {
		if ((flags & b.host_port) && (r = exact_match(d, d->port, kind)))
			return r;
		if ((flags & b.prefix_port) && (r = lpm_match(trie4, trie6, d, d->port)))
			return r;
	}
	if ((flags & b.host_any) && (r = exact_match(d, 0, kind)))
		return r;
	if (flags & b.prefix_any)
		return lpm_match(trie4, trie6, d, 0);
	return NULL;
}

#define match_protect(cfg, d) rule_match(d, (cfg)->flags, WARDEN_KIND_PROTECT,		\
	&warden_protect4, &warden_protect6, (struct rule_bits){				\
		WARDEN_CFG_F_XPROTECT_PORT, WARDEN_CFG_F_PROTECT_PORT,			\
		WARDEN_CFG_F_XPROTECT_ANY, WARDEN_CFG_F_PROTECT_ANY })
#define match_allow(cfg, d) rule_match(d, (cfg)->flags, WARDEN_KIND_ALLOW,		\
	&warden_allow4, &warden_allow6, (struct rule_bits){				\
		WARDEN_CFG_F_XALLOW_PORT, WARDEN_CFG_F_ALLOW_PORT,			\
		WARDEN_CFG_F_XALLOW_ANY, WARDEN_CFG_F_ALLOW_ANY })

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
		v->rule_flags = r->flags;
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
