/* events: the deny-event ring buffer read on the loop, and events rendered as records. */
#include "enforce/enforce_int.h"

#include "base/event_opt.h"
#include "base/log.h"
#include "enforce/cgroup.h"
#include "enforce/pins.h"
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* ---- audit ------------------------------------------------------------------------------- */

int enforcer_counters(struct enforcer *e, struct enforcer_counters *out)
{
	return pins_counters_read(e->map_fds[WARDEN_M_COUNTERS], out->hook, &out->total);
}

static int rb_sample(void *ctx, void *data, size_t size)
{
	struct enforcer *e = ctx;
	struct warden_event ev;

	if (size < sizeof(ev))
		return 0;	/* not ours (older layout): skip, never crash */
	memcpy(&ev, data, sizeof(ev));	/* the ring slot is released when we return */
	e->handled++;
	if (e->cb)
		e->cb(&ev, e->cb_arg);
	return 0;
}

static void rb_ready(evutil_socket_t fd, short what, void *arg)
{
	struct enforcer *e = arg;
	int ret = ring_buffer__consume(e->rb);

	if (ret < 0)
		log_warn("enforcer: reading deny events: %s", strerror(-ret));
}

static int rb_open(struct enforcer *e)
{
	if (e->rb)
		return 0;
	e->rb = ring_buffer__new(e->map_fds[WARDEN_M_EVENTS], rb_sample, e, NULL);
	return e->rb ? 0 : -errno;
}

int enforcer_events_attach(struct enforcer *e, struct event_base *base, enforcer_event_cb cb,
			   void *arg)
{
	int ret;

	if (e->rb_ev)
		return -EBUSY;
	ret = rb_open(e);
	if (ret < 0)
		return ret;
	/* The ring buffer's epoll fd becomes readable when events are there: one read event on
	 * our loop, consumed without blocking. */
	e->rb_ev = event_new(base, ring_buffer__epoll_fd(e->rb), EV_READ | EV_PERSIST, rb_ready, e);
	if (!e->rb_ev)
		return -ENOMEM;
	if (event_add(e->rb_ev, NULL) < 0) {
		event_free(e->rb_ev);
		e->rb_ev = NULL;
		return -EIO;
	}
	e->cb = cb;
	e->cb_arg = arg;
	return 0;
}

void enforcer_events_detach(struct enforcer *e)
{
	event_free_opt(e->rb_ev);
	e->rb_ev = NULL;
	ring_buffer__free(e->rb);
	e->rb = NULL;
	e->cb = NULL;
}

int enforcer_events_poll(struct enforcer *e)
{
	int ret = rb_open(e);

	if (ret < 0)
		return ret;
	e->handled = 0;
	ret = ring_buffer__consume(e->rb);
	return ret < 0 ? ret : e->handled;
}

static const char *proto_name(unsigned p)
{
	switch (p) {
	case 6: return "tcp";
	case 17: return "udp";
	case 1: return "icmp";
	case 58: return "icmpv6";
	case 255: return "raw";
	case 262: return "mptcp";
	default: return NULL;
	}
}

static const char *family_name(unsigned family)
{
	switch (family) {
	case AF_UNIX: return "unix";
	case AF_INET: return "inet";
	case AF_INET6: return "inet6";
	case WARDEN_AF_PACKET: return "packet";
	case WARDEN_AF_VSOCK: return "vsock";
	case WARDEN_AF_XDP: return "xdp";
	default: return "other";
	}
}

cJSON *enforcer_event_json(struct enforcer *e, const struct warden_event *ev)
{
	char path[PATH_MAX], addr[INET6_ADDRSTRLEN], ts[40], comm[WARDEN_COMM_LEN + 1];
	struct timespec boot, real;
	cJSON *o = cJSON_CreateObject();
	const char *pn;
	int64_t delta_ns;

	if (!o)
		return NULL;
	/* The event carries boot time: place it on the wall clock relative to now. */
	clock_gettime(CLOCK_BOOTTIME, &boot);
	clock_gettime(CLOCK_REALTIME, &real);
	delta_ns = ((int64_t)boot.tv_sec * 1000000000 + boot.tv_nsec) - (int64_t)ev->ts_boot_ns;
	{
		int64_t wall = (int64_t)real.tv_sec * 1000000000 + real.tv_nsec - delta_ns;
		time_t secs = (time_t)(wall / 1000000000);
		struct tm tm;
		size_t n;

		gmtime_r(&secs, &tm);
		n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
		snprintf(ts + n, sizeof(ts) - n, ".%03dZ", (int)((wall / 1000000) % 1000));
	}
	cJSON_AddStringToObject(o, "time", ts);
	cJSON_AddStringToObject(o, "decision", "deny");
	cJSON_AddStringToObject(o, "hook", enforcer_hook_name(ev->hook) ?
				enforcer_hook_name(ev->hook) : "unknown");
	cJSON_AddStringToObject(o, "reason", enforcer_reason_name(ev->reason));
	cJSON_AddStringToObject(o, "mode", enforcer_mode_name(ev->mode));
	if (ev->rule_id)
		cJSON_AddNumberToObject(o, "rule_id", ev->rule_id);
	cJSON_AddNumberToObject(o, "cgroup_id", (double)ev->cgroup_id);
	if (enforcer_cgroup_path(e, ev->cgroup_id, path, sizeof(path)) == 0)
		cJSON_AddStringToObject(o, "cgroup", path);
	cJSON_AddNumberToObject(o, "enrolled_cgroup_id", (double)ev->enrolled_id);
	if (ev->enrolled_id != ev->cgroup_id &&
	    enforcer_cgroup_path(e, ev->enrolled_id, path, sizeof(path)) == 0)
		cJSON_AddStringToObject(o, "enrolled_cgroup", path);
	cJSON_AddNumberToObject(o, "pid", ev->tgid);
	cJSON_AddNumberToObject(o, "tid", ev->pid);
	cJSON_AddNumberToObject(o, "uid", ev->uid);
	cJSON_AddNumberToObject(o, "gid", ev->gid);
	memcpy(comm, ev->comm, WARDEN_COMM_LEN);
	comm[WARDEN_COMM_LEN] = '\0';
	cJSON_AddStringToObject(o, "comm", comm);
	cJSON_AddStringToObject(o, "family", family_name(ev->family));
	/* lsm_socket: the protocol is the family's own (an ethertype for AF_PACKET) */
	pn = ev->sock_type == 3 ? "raw" : ev->hook == WARDEN_HOOK_LSM_SOCKET ? NULL :
	     proto_name(ev->protocol);
	if (pn)
		cJSON_AddStringToObject(o, "protocol", pn);
	else
		cJSON_AddNumberToObject(o, "protocol", ev->protocol);
	if ((ev->family == AF_INET || ev->family == AF_INET6) &&
	    ev->hook != WARDEN_HOOK_SOCK_CREATE &&
	    inet_ntop(ev->family, ev->daddr, addr, sizeof(addr))) {
		cJSON_AddStringToObject(o, "dst", addr);
		cJSON_AddNumberToObject(o, "dport", ev->dport);
		if (ev->flags & WARDEN_EV_F_V4MAPPED)
			cJSON_AddBoolToObject(o, "v4mapped", 1);
	}
	if (ev->family == AF_UNIX) {
		char p[WARDEN_UNIX_PATH_LEN + 2];

		/* Abstract names start with NUL: shown as "@name", the ss(8) convention. */
		if (ev->path[0])
			snprintf(p, sizeof(p), "%.*s", WARDEN_UNIX_PATH_LEN, ev->path);
		else
			snprintf(p, sizeof(p), "@%.*s", WARDEN_UNIX_PATH_LEN - 1, ev->path + 1);
		cJSON_AddStringToObject(o, "path", p);
	}
	return o;
}
