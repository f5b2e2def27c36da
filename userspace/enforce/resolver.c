/* resolver: upstream hostnames resolved off the loop and kept protected as they change. */
#include "enforce/enforce_int.h"

#include "base/event_opt.h"
#include "base/log.h"
#include "base/thread.h"
#include "enforce/cgroup.h"
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

/* ---- upstream addresses ------------------------------------------------------------------ */

#define UPSTREAM_MAX_ADDRS 32

struct enforcer_upstream {
	struct enforcer *e;
	char *host;
	uint16_t port;
	uint32_t rule_flags;	/* WARDEN_RULE_F_* on every address's rule */
	int refresh_ms;
	struct event *timer;
	struct event *done_ev;
	int pipe[2];		/* worker -> loop: "resolution finished" */
	pthread_t thread;
	bool running;
	/* filled by the worker, read on the loop after the pipe fires */
	int gai_err;
	size_t nresolved;
	struct enforcer_dest resolved[UPSTREAM_MAX_ADDRS];
	/* what we protected (and added: present before means someone else owns it) */
	size_t nprotected;
	struct enforcer_dest protected_[UPSTREAM_MAX_ADDRS];
	bool added[UPSTREAM_MAX_ADDRS];
};

static void *resolve_thread(void *arg)
{
	struct enforcer_upstream *u = arg;
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	struct addrinfo *res = NULL;
	char one = 1;

	u->nresolved = 0;
	u->gai_err = getaddrinfo(u->host, NULL, &hints, &res);
	for (struct addrinfo *ai = res; ai && u->nresolved < UPSTREAM_MAX_ADDRS; ai = ai->ai_next) {
		struct enforcer_dest *d = &u->resolved[u->nresolved];

		memset(d, 0, sizeof(*d));
		d->family = ai->ai_family;
		d->port = u->port;
		if (ai->ai_family == AF_INET) {
			memcpy(d->addr, &((struct sockaddr_in *)ai->ai_addr)->sin_addr, 4);
			d->prefixlen = 32;
		} else if (ai->ai_family == AF_INET6) {
			memcpy(d->addr, &((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr, 16);
			d->prefixlen = 128;
		} else {
			continue;
		}
		u->nresolved++;
	}
	if (res)
		freeaddrinfo(res);
	/* A full pipe cannot happen (one byte per resolution); nothing else to do on error. */
	if (write(u->pipe[1], &one, 1) < 0)
		u->gai_err = EAI_SYSTEM;
	return NULL;
}

static bool dest_eq(const struct enforcer_dest *a, const struct enforcer_dest *b)
{
	return a->family == b->family && a->prefixlen == b->prefixlen && a->port == b->port &&
	       memcmp(a->addr, b->addr, 16) == 0;
}

/* On the loop: make the protected set equal to the resolved set. */
static void upstream_apply(struct enforcer_upstream *u, const struct enforcer_dest *ds, size_t n)
{
	struct enforcer_dest keep[UPSTREAM_MAX_ADDRS];
	bool keep_added[UPSTREAM_MAX_ADDRS];
	size_t nkeep = 0;

	for (size_t i = 0; i < n && nkeep < UPSTREAM_MAX_ADDRS; i++) {
		bool dup = false, was = false, added = false;

		for (size_t j = 0; j < nkeep; j++)
			dup |= dest_eq(&keep[j], &ds[i]);
		if (dup)
			continue;
		for (size_t j = 0; j < u->nprotected; j++) {
			if (dest_eq(&u->protected_[j], &ds[i])) {
				was = true;
				added = u->added[j];
			}
		}
		if (!was) {
			if (enforcer_rule_add_ex(u->e, &ds[i], true, NULL, &added) < 0) {
				log_warn("enforcer: could not protect an address of %s", u->host);
				continue;
			}
			if (u->rule_flags && enforcer_rule_set_flags(u->e, &ds[i], u->rule_flags) < 0)
				log_warn("enforcer: could not mark an address of %s redirectable",
					 u->host);
		}
		keep[nkeep] = ds[i];
		keep_added[nkeep++] = added;
	}
	for (size_t j = 0; j < u->nprotected; j++) {
		bool still = false;

		for (size_t i = 0; i < nkeep; i++)
			still |= dest_eq(&keep[i], &u->protected_[j]);
		if (!still && u->added[j])
			enforcer_unprotect_dest(u->e, &u->protected_[j]);
	}
	memcpy(u->protected_, keep, nkeep * sizeof(keep[0]));
	memcpy(u->added, keep_added, nkeep * sizeof(keep_added[0]));
	u->nprotected = nkeep;
}

static void upstream_done(evutil_socket_t fd, short what, void *arg)
{
	struct enforcer_upstream *u = arg;
	struct timeval tv = { u->refresh_ms / 1000, (u->refresh_ms % 1000) * 1000 };
	char b;

	if (read(fd, &b, 1) < 0)
		return;
	pthread_join(u->thread, NULL);
	u->running = false;
	if (u->gai_err) {
		/* Keep what was protected: a DNS hiccup must not open the door. */
		log_warn("enforcer: resolving upstream %s: %s", u->host, gai_strerror(u->gai_err));
	} else {
		upstream_apply(u, u->resolved, u->nresolved);
	}
	if (u->refresh_ms > 0)
		evtimer_add(u->timer, &tv);
}

static void upstream_tick(evutil_socket_t fd, short what, void *arg)
{
	struct enforcer_upstream *u = arg;
	int ret;

	if (u->running)
		return;
	ret = -thread_start(&u->thread, THREAD_NAME_PREFIX "resolver", resolve_thread, u);
	if (ret != 0) {
		struct timeval tv = { 1, 0 };

		log_warn("enforcer: resolver thread: %s", strerror(ret));
		evtimer_add(u->timer, &tv);
		return;
	}
	u->running = true;
}

int enforcer_upstream_protect(struct enforcer *e, struct event_base *base, const char *host,
			      uint16_t port, int refresh_ms, struct enforcer_upstream **out)
{
	return enforcer_upstream_protect_ex(e, base, host, port, 0, refresh_ms, out);
}

bool enforcer_upstream_has(const struct enforcer_upstream *u, int family, const uint8_t *addr,
			   uint16_t port)
{
	if (!u || (u->port && u->port != port))
		return false;
	for (size_t i = 0; i < u->nprotected; i++) {
		const struct enforcer_dest *d = &u->protected_[i];

		if (d->family == family &&
		    !memcmp(d->addr, addr, family == AF_INET ? 4 : 16))
			return true;
	}
	return false;
}

int enforcer_upstream_protect_ex(struct enforcer *e, struct event_base *base, const char *host,
				 uint16_t port, uint32_t rule_flags, int refresh_ms,
				 struct enforcer_upstream **out)
{
	struct enforcer_upstream *u = calloc(1, sizeof(*u));
	struct enforcer_dest lit;
	int ret = 0;

	if (!u)
		return -ENOMEM;
	u->e = e;
	u->port = port;
	u->rule_flags = rule_flags;
	u->refresh_ms = refresh_ms;
	u->pipe[0] = u->pipe[1] = -1;
	u->host = strdup(host);
	if (!u->host) {
		ret = -ENOMEM;
		goto out;
	}
	/* A literal address: protect it now, no resolver needed. */
	if (enforcer_dest_parse(host, &lit) == 0 && !strchr(host, '/') &&
	    (lit.family == AF_INET6 || !strchr(host, ':'))) {
		lit.port = port;
		upstream_apply(u, &lit, 1);
		*out = u;
		return 0;
	}
	if (pipe2(u->pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		ret = -errno;
		goto out;
	}
	u->timer = evtimer_new(base, upstream_tick, u);
	u->done_ev = event_new(base, u->pipe[0], EV_READ | EV_PERSIST, upstream_done, u);
	if (!u->timer || !u->done_ev || event_add(u->done_ev, NULL) < 0) {
		ret = -ENOMEM;
		goto out;
	}
	event_active(u->timer, EV_TIMEOUT, 0);	/* first resolution right away */
	*out = u;
	return 0;
out:
	enforcer_upstream_free(u, false);
	return ret;
}

void enforcer_upstream_free(struct enforcer_upstream *u, bool unprotect)
{
	if (!u)
		return;
	if (u->running)
		pthread_join(u->thread, NULL);	/* bounded by the resolver's own timeouts */
	if (unprotect)
		upstream_apply(u, NULL, 0);
	event_free_opt(u->timer);
	event_free_opt(u->done_ev);
	if (u->pipe[0] >= 0)
		close(u->pipe[0]);
	if (u->pipe[1] >= 0)
		close(u->pipe[1]);
	free(u->host);
	free(u);
}

size_t enforcer_upstream_count(const struct enforcer_upstream *u)
{
	return u->nprotected;
}
