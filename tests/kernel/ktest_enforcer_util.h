/* ktest_enforcer_util: what the suites that open an enforcer share — its audit events kept for
 * the checks, and the BPF links whose programs use its maps. Header-only: each suite is one
 * binary; include it once, after defining KTEST_MAX_EVENTS if 256 events is not the size. */
#ifndef WARDEN_KTEST_ENFORCER_UTIL_H
#define WARDEN_KTEST_ENFORCER_UTIL_H

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <event2/event.h>

#include "enforce/enforcer.h"

#ifndef KTEST_MAX_EVENTS
#define KTEST_MAX_EVENTS 256
#endif

/* The events the enforcer reported, in order (the first KTEST_MAX_EVENTS). */
static struct warden_event events[KTEST_MAX_EVENTS];
static int nevents;

/* enforcer_events_attach()'s callback. */
static inline void on_event(const struct warden_event *ev, void *arg)
{
	if (nevents < KTEST_MAX_EVENTS)
		events[nevents++] = *ev;
}

/* The first event of process pid, running base for up to 2 s to read the ring buffer. */
static inline const struct warden_event *wait_event(struct event_base *base, pid_t pid)
{
	for (int i = 0; i < 200; i++) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		for (int j = 0; j < nevents; j++)
			if ((pid_t)events[j].tgid == pid)
				return &events[j];
		usleep(10000);
	}
	return NULL;
}

/* enforcer_open() with its pins in pin_dir and cgroup root root; says why on stderr when it fails. */
static inline int ktest_open_enforcer(const char *pin_dir, const char *root, struct enforcer **e)
{
	struct enforcer_opts o = { .pin_dir = pin_dir, .cgroup_root = root };
	int ret = enforcer_open(&o, e);

	if (ret < 0)
		fprintf(stderr, "enforcer_open: %s\n", strerror(-ret));
	return ret;
}

/* Count the links of link_type (BPF_LINK_TYPE_*) whose program uses e's enrolled map: each
 * adds fn(its info, arg), or 1 without fn. The total, or -errno. */
static inline int ktest_count_links(struct enforcer *e, __u32 link_type,
				    int (*fn)(const struct bpf_link_info *li, void *arg), void *arg)
{
	struct bpf_map_info mi = { 0 };
	__u32 mlen = sizeof(mi), id = 0;
	int total = 0;

	if (bpf_obj_get_info_by_fd(enforcer_map_fd(e, WARDEN_MAP_ENROLLED), &mi, &mlen) < 0)
		return -errno;
	while (bpf_link_get_next_id(id, &id) == 0) {
		struct bpf_link_info li = { 0 };
		struct bpf_prog_info pi = { 0 };
		__u32 ids[16], llen = sizeof(li), plen = sizeof(pi);
		int lfd = bpf_link_get_fd_by_id(id), pfd;

		if (lfd < 0)
			continue;
		if (bpf_obj_get_info_by_fd(lfd, &li, &llen) == 0 && li.type == link_type &&
		    (pfd = bpf_prog_get_fd_by_id(li.prog_id)) >= 0) {
			pi.nr_map_ids = 16;
			pi.map_ids = (unsigned long)ids;
			if (bpf_obj_get_info_by_fd(pfd, &pi, &plen) == 0)
				for (__u32 k = 0; k < pi.nr_map_ids && k < 16; k++)
					if (ids[k] == mi.id)
						total += fn ? fn(&li, arg) : 1;
			close(pfd);
		}
		close(lfd);
	}
	return total;
}

#endif
