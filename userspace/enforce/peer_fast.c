/* peer_fast: an accepted connection's caller from the mapped warden_conns array. */
#include "enforce/peer_fast.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/epoch.h"
#include "base/log.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71	/* Linux 5.14 */
#endif

/* What is mapped. Every loop's accepts read it; a loop that maps new pins (a reload, or the
 * first accept trying the default ones) publishes a new one and the old is unmapped once
 * every loop has passed a turn (base/epoch.h). */
struct mapping {
	const struct warden_conn *slots;	/* WARDEN_CONN_SLOTS entries, read-only */
	size_t len;
	uint64_t own_netns;
	char pin[4096];
};

static _Atomic(struct mapping *) cur;
static pthread_mutex_t open_mu = PTHREAD_MUTEX_INITIALIZER;	/* opens and closes */
static _Atomic bool default_tried;
/* Counted by every loop's accepts (relaxed: counts, nothing ordered by them). */
static _Atomic uint64_t hits, fallbacks;

bool peer_fast_ready(void) { return atomic_load(&cur) != NULL; }

static void mapping_free(void *arg)
{
	struct mapping *m = arg;

	munmap((void *)m->slots, m->len);
	free(m);
}

/* open_mu held: m (NULL: none) in place of what is mapped. */
static void publish(struct mapping *m)
{
	struct mapping *old = atomic_exchange(&cur, m);

	if (old)
		epoch_defer(mapping_free, old);
}

void peer_fast_stats(struct peer_fast_stats *out)
{
	out->hits = atomic_load_explicit(&hits, memory_order_relaxed);
	out->fallbacks = atomic_load_explicit(&fallbacks, memory_order_relaxed);
}

/* This process's network namespace, as bpf_get_netns_cookie() names it. */
static int netns_cookie(uint64_t *out)
{
	socklen_t len = sizeof(*out);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), rc = 0;

	if (fd < 0)
		return -errno;
	if (getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, out, &len) < 0)
		rc = errno == ENOPROTOOPT ? -EOPNOTSUPP : -errno;
	close(fd);
	return rc;
}

static int open_locked(const char *pin_dir)
{
	struct mapping *m = atomic_load(&cur);
	uint64_t netns;
	struct bpf_map_info info;
	__u32 ilen = sizeof(info);
	char pin[4096];
	long page = sysconf(_SC_PAGESIZE);
	size_t len;
	void *p;
	int fd, rc;

	if ((size_t)snprintf(pin, sizeof(pin), "%s/%s", pin_dir ? pin_dir : WARDEN_PIN_DIR_DEFAULT,
			     WARDEN_MAP_CONNS) >= sizeof(pin))
		return -ENAMETOOLONG;
	if (m && !strcmp(pin, m->pin))
		return 0;
	publish(NULL);		/* a reload moved the pins: map the new ones */
	rc = netns_cookie(&netns);
	if (rc < 0)
		return rc;
	fd = bpf_obj_get(pin);
	if (fd < 0)
		return -errno;
	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &ilen) < 0) {
		rc = -errno;
		goto out;
	}
	/* A pin of another build (another layout) is never read. */
	if (info.type != BPF_MAP_TYPE_ARRAY || info.value_size != sizeof(struct warden_conn) ||
	    info.max_entries != WARDEN_CONN_SLOTS || !(info.map_flags & BPF_F_MMAPABLE)) {
		rc = -EPROTO;
		goto out;
	}
	len = (sizeof(struct warden_conn) * WARDEN_CONN_SLOTS + (size_t)page - 1) &
	      ~((size_t)page - 1);
	p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		rc = -errno;
		goto out;
	}
	m = xmalloc(sizeof(*m));
	m->slots = p;
	m->len = len;
	m->own_netns = netns;
	memcpy(m->pin, pin, sizeof(m->pin));
	publish(m);
	log_info("identity: callers found from %s without a system call (sock_diag when it "
		 "cannot tell)", pin);
out:
	close(fd);	/* the mapping keeps the map */
	return rc;
}

int peer_fast_open(const char *pin_dir)
{
	int rc;

	pthread_mutex_lock(&open_mu);
	rc = open_locked(pin_dir);
	pthread_mutex_unlock(&open_mu);
	return rc;
}

void peer_fast_open_default_once(void)
{
	if (atomic_load_explicit(&cur, memory_order_relaxed) ||
	    atomic_load_explicit(&default_tried, memory_order_relaxed))
		return;
	pthread_mutex_lock(&open_mu);
	if (!atomic_exchange(&default_tried, true) && !atomic_load(&cur))
		(void)open_locked(NULL);	/* not installed: sock_diag answers, as before */
	pthread_mutex_unlock(&open_mu);
}

void peer_fast_close(void)
{
	pthread_mutex_lock(&open_mu);
	publish(NULL);
	pthread_mutex_unlock(&open_mu);
}

/* One end of the connection as the sockops program stores it: v4-mapped is v4. */
static int endpoint(const struct sockaddr *sa, uint8_t *family, uint16_t *port, uint8_t addr[16])
{
	memset(addr, 0, 16);
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)sa;

		*family = AF_INET;
		*port = s->sin_port;
		memcpy(addr, &s->sin_addr, 4);
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)sa;

		*port = s->sin6_port;
		if (IN6_IS_ADDR_V4MAPPED(&s->sin6_addr)) {
			*family = AF_INET;
			memcpy(addr, &s->sin6_addr.s6_addr[12], 4);
		} else {
			*family = AF_INET6;
			memcpy(addr, &s->sin6_addr, 16);
		}
		return 0;
	}
	return -EAFNOSUPPORT;
}

/* The seqlock read: a copy taken while no writer held the slot. The sockops program's
 * compare-and-swap and atomic add are full barriers. Here the copy is made of acquire loads,
 * word by word, so none of it can move past the second read of seq (a fence would do the
 * same, but ThreadSanitizer does not support fences; on x86 these are plain loads). */
_Static_assert(sizeof(struct warden_conn) % sizeof(uint64_t) == 0, "warden_conn in words");

static bool slot_copy(const struct warden_conn *e, struct warden_conn *out)
{
	const uint64_t *src = (const uint64_t *)e;
	uint64_t words[sizeof(*out) / sizeof(uint64_t)];

	for (int tries = 0; tries < 2; tries++) {
		uint64_t s1 = __atomic_load_n(&e->seq, __ATOMIC_ACQUIRE), s2;

		if (s1 & 1)
			continue;
		for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
			words[i] = __atomic_load_n(&src[i], __ATOMIC_ACQUIRE);
		s2 = __atomic_load_n(&e->seq, __ATOMIC_RELAXED);
		if (s1 == s2) {
			memcpy(out, words, sizeof(*out));
			return true;
		}
	}
	return false;
}

int peer_fast_lookup(const struct sockaddr *peer, const struct sockaddr *local,
		     struct peer_fast_hit *out)
{
	const struct mapping *m = atomic_load_explicit(&cur, memory_order_acquire);
	uint8_t pf, lf, pa[16], la[16];
	uint16_t pp, lp;
	struct warden_conn c;

	if (!m || !peer || !local || endpoint(peer, &pf, &pp, pa) < 0 ||
	    endpoint(local, &lf, &lp, la) < 0 || pf != lf)
		goto miss;
	if (!slot_copy(&m->slots[ntohs(pp)], &c))
		goto miss;
	/* The whole connection, in our namespace: a slot written for another connection from
	 * the same port (here or in another namespace) differs somewhere. */
	if (c.family != pf || c.netns_cookie != m->own_netns || c.sport != pp || c.dport != lp ||
	    memcmp(c.saddr, pa, 16) || memcmp(c.daddr, la, 16))
		goto miss;
	out->cgroup_id = c.cgroup_id;
	out->cookie = c.cookie;
	out->redirected = c.flags & WARDEN_CONN_F_REDIRECTED;
	out->orig = c.orig;
	atomic_fetch_add_explicit(&hits, 1, memory_order_relaxed);
	return 0;
miss:
	atomic_fetch_add_explicit(&fallbacks, 1, memory_order_relaxed);
	return -ENOENT;
}
