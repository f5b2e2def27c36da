/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* audit: per-CPU counters and the deny-event ring buffer. */
#ifndef WARDEN_BPF_AUDIT_H
#define WARDEN_BPF_AUDIT_H

#include "lib/common.h"
#include "lib/maps.h"
#include "lib/policy.h"

enum count_kind { COUNT_ALLOWED, COUNT_DENIED, COUNT_DROPPED, COUNT_UNENROLLED, COUNT_REDIRECTED };

static __always_inline void count(__u32 hook, enum count_kind kind)
{
	struct warden_counters *c = bpf_map_lookup_elem(&warden_counters, &hook);

	if (!c)
		return;
	/* Per-CPU slot: no other writer, a plain increment is exact. */
	switch (kind) {
	case COUNT_ALLOWED: c->allowed++; break;
	case COUNT_DENIED: c->denied++; break;
	case COUNT_DROPPED: c->events_dropped++; break;
	case COUNT_UNENROLLED: c->unenrolled++; break;
	case COUNT_REDIRECTED: c->redirected++; break;
	}
}

/* Reserve and fill the common part of a deny event; NULL (and counted) when the ring is full:
 * the refusal itself never depends on the audit trail having room. */
static __always_inline struct warden_event *event_begin(__u32 hook, const struct verdict *v)
{
	struct warden_event *ev = bpf_ringbuf_reserve(&warden_events, sizeof(*ev), 0);
	__u64 pid_tgid, uid_gid;

	if (!ev) {
		count(hook, COUNT_DROPPED);
		return NULL;
	}
	__builtin_memset(ev, 0, sizeof(*ev));
	if (warden_task_btf) {
		/* The same values as the helpers, as plain loads: calls are what costs. */
		struct task_struct___warden *t = (void *)bpf_get_current_task_btf();
		const struct cred___warden *cr = t->cred;

		ev->pid = (__u32)t->pid;
		ev->tgid = (__u32)t->tgid;
		ev->uid = cr->uid.val;
		ev->gid = cr->gid.val;
		/* comm is always NUL-terminated in the task; a concurrent rename may tear it,
		 * as it may the helper's copy */
		*(__u64 *)&ev->comm[0] = *(const __u64 *)&t->comm[0];
		*(__u64 *)&ev->comm[8] = *(const __u64 *)&t->comm[8];
	} else {
		pid_tgid = bpf_get_current_pid_tgid();
		uid_gid = bpf_get_current_uid_gid();
		ev->pid = (__u32)pid_tgid;
		ev->tgid = pid_tgid >> 32;
		ev->uid = (__u32)uid_gid;
		ev->gid = uid_gid >> 32;
	}
	ev->ts_boot_ns = bpf_ktime_get_boot_ns();
	ev->cgroup_id = v->cgroup_id ? v->cgroup_id : bpf_get_current_cgroup_id();
	ev->enrolled_id = v->enrolled_id;
	ev->rule_id = v->rule_id;
	ev->hook = hook;
	ev->mode = v->mode;
	ev->reason = v->reason;
	if (!warden_task_btf)
		bpf_get_current_comm(ev->comm, sizeof(ev->comm));
	return ev;
}

static __always_inline void event_inet(__u32 hook, const struct verdict *v, const struct dst *d,
				       __u16 protocol)
{
	struct warden_event *ev = event_begin(hook, v);

	if (!ev)
		return;
	ev->family = d->family;
	ev->flags = d->flags;
	ev->protocol = protocol;
	ev->dport = bpf_ntohs(d->port);
	__builtin_memcpy(ev->daddr, d->addr, 16);
	bpf_ringbuf_submit(ev, 0);
}

/* The configured errno for refused connects/sends (EPERM unless the operator chose e.g.
 * ECONNREFUSED so that clients fail fast and look like a closed port). */
static __always_inline void deny_errno(const struct warden_config *cfg)
{
	if (cfg->deny_errno && cfg->deny_errno != EPERM)
		bpf_set_retval(-(int)cfg->deny_errno);
}

#endif
