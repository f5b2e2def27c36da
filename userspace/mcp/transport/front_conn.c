/* front_conn: the agent listener's connection caps and callers (see front_conn.h). */
#include "mcp/transport/front_conn.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include "base/alloc.h"
#include "base/conn_caps.h"
#include "base/htab.h"
#include "base/http_server.h"
#include "base/log.h"
#include "enforce/cgroup.h"
#include "enforce/peer_cgroup.h"
#include "enforce/peer_fast.h"
#include "govern/keys.h"

struct conn {
	struct front_conns *fc;
	struct conn_caps *cc;           /* the caps it is counted in */
	struct conn_peer *peer;         /* what it counts against there (base/conn_caps.h) */
	bool caller_done;        /* the caller's identity was looked up (caller: NULL unknown) */
	char *caller;            /* its cgroup path below the cgroup2 root */
	uint64_t caller_cgid;
	uint64_t caller_cookie;  /* the client socket's cookie (0: unknown) */
	struct conn_origin origin;
	struct conn_redirect redirect;
	struct keys_memo auth;   /* the key it last authenticated with (govern/keys.h) */
};

struct front_conns {
	enum metrics_listener which;
	struct conn_caps caps;
	struct conn_caps *shared;       /* every loop's listener's (front_conns_share), or NULL */
	char cgroot[256];        /* the cgroup2 mount; "" none: callers have no identity */
};

/* What a connection counts against for max_per_peer: its source address. On the unix-socket
 * listener every client has the same (no) address: there it is the caller's cgroup, the
 * identity it is governed as (looked up here, once for the connection), else its uid. The
 * kinds have different lengths (4 or 16; 9; 5 bytes), so their keys never meet. */
static void peer_key(struct front_conns *fc, struct conn *c, struct http_conn *hc,
		     struct htab_bytes *key, uint8_t buf[16])
{
	const struct sockaddr *sa = http_conn_peer(hc, NULL);
	int fd = http_conn_fd(hc);
	socklen_t cl = sizeof(struct ucred);
	struct ucred cred;
	char path[PATH_MAX];

	key->p = buf;
	key->n = 0;
	if (sa->sa_family == AF_INET) {
		memcpy(buf, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		key->n = 4;
	} else if (sa->sa_family == AF_INET6) {
		memcpy(buf, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
		key->n = 16;
	} else if (sa->sa_family == AF_UNIX) {
		if (!c->caller && fc->cgroot[0] &&
		    peer_unix_cgroup(fd, fc->cgroot, &c->caller_cgid, path, sizeof(path)) == 0) {
			c->caller = xstrdup(path);
			c->caller_done = true;
		}
		buf[0] = c->caller ? 'c' : 'u';
		if (c->caller) {
			memcpy(buf + 1, &c->caller_cgid, 8);
			key->n = 9;
		} else if (!getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl)) {
			memcpy(buf + 1, &cred.uid, 4);
			key->n = 5;
		}
	}
}

/* Past a cap: a fixed answer (the socket is new: the write does not block), then closed. */
static void refuse(struct front_conns *fc, struct http_conn *hc, enum conn_caps_verdict v)
{
	char msg[512];

	http_conn_refuse(hc, msg, conn_caps_refusal(v, msg, sizeof(msg)));
	metrics_connection_refused(fc->which, v == CONN_CAPS_TOTAL ? METRICS_REFUSED_TOTAL
								   : METRICS_REFUSED_PEER);
}

static void conn_free(struct conn *c)
{
	free(c->caller);
	free(c);
}

int front_conns_accept(struct front_conns *fc, struct http_conn *hc)
{
	struct conn *c = xcalloc(1, sizeof(*c));
	struct htab_bytes key;
	uint8_t addr[CONN_CAPS_KEY_MAX];
	enum conn_caps_verdict v;

	c->fc = fc;
	c->cc = fc->shared ? fc->shared : &fc->caps;
	peer_key(fc, c, hc, &key, addr);
	/* One handed over from another loop was admitted there; with caps of its own, this
	 * loop's listener judges it anew (tests run such loops). */
	c->peer = conn_caps_admit(c->cc, key.p, key.n, fc->shared && http_conn_handed(hc), &v);
	if (!c->peer) {
		refuse(fc, hc, v);
		conn_free(c);
		return -EBUSY;
	}
	metrics_connections(fc->which, 1);
	http_conn_set_data(hc, c);
	return 0;
}

void front_conns_close(struct front_conns *fc, struct http_conn *hc)
{
	struct conn *c = http_conn_data(hc);

	if (!c)
		return;
	conn_caps_release(c->cc, c->peer);
	metrics_connections(fc->which, -1);
	http_conn_set_data(hc, NULL);
	conn_free(c);
}

static bool wildcard(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ((const struct sockaddr_in *)ss)->sin_addr.s_addr == htonl(INADDR_ANY);
	return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)ss)->sin6_addr);
}

/* An inet connection's caller: from warden_conns when it can tell (peer_fast.h: the peer
 * as accept reported it, our own address from the listener, or one getsockname when it
 * listens on a wildcard), else one sock_diag round trip. Either way the kernel's word. */
static int caller_inet(struct conn *c, struct http_conn *hc, int fd)
{
	const struct sockaddr *peer = http_conn_peer(hc, NULL);
	const struct sockaddr_storage *la = http_conn_local(hc);
	struct sockaddr_storage me;
	socklen_t ml = sizeof(me);
	struct peer_fast_hit hit;
	bool have = false;

	peer_fast_open_default_once();
	if ((la->ss_family == AF_INET || la->ss_family == AF_INET6) && !wildcard(la) &&
	    la->ss_family == peer->sa_family) {
		me = *la;
		have = true;
	} else {
		have = getsockname(fd, (struct sockaddr *)&me, &ml) == 0;
	}
	if (have && (me.ss_family == AF_INET || me.ss_family == AF_INET6)) {
		c->origin.known = true;
		c->origin.local_port = ntohs(me.ss_family == AF_INET6
					     ? ((struct sockaddr_in6 *)&me)->sin6_port
					     : ((struct sockaddr_in *)&me)->sin_port);
		if (peer_fast_lookup(peer, (struct sockaddr *)&me, &hit) == 0) {
			c->caller_cgid = hit.cgroup_id;
			c->caller_cookie = hit.cookie;
			c->origin.fast = true;
			c->origin.redirected = hit.redirected;
			c->origin.orig = hit.orig;
			return 0;
		}
	}
	return peer_socket_lookup(fd, &c->caller_cgid, &c->caller_cookie);
}

/* Once per connection, on its first request that asks: no system call when warden_conns
 * answers, else netlink/procfs round trips the kernel answers from memory. */
static struct conn *caller_lookup(struct http_req *req)
{
	struct http_conn *hc = http_req_conn(req);
	struct conn *c = http_conn_data(hc);
	char path[PATH_MAX];
	int fd = http_conn_fd(hc);

	if (c && !c->caller_done) {
		struct front_conns *fc = c->fc;
		c->caller_done = true;
		if (caller_inet(c, hc, fd) == 0 && fc->cgroot[0] &&
		    peer_cgroup_path(fc->cgroot, c->caller_cgid, path, sizeof(path)) == 0)
			c->caller = xstrdup(path);
		/* The unix-socket listener: SO_PEERCRED names the caller. */
		else if (fc->cgroot[0] &&
			 peer_unix_cgroup(fd, fc->cgroot, &c->caller_cgid, path, sizeof(path)) == 0)
			c->caller = xstrdup(path);
	}
	return c;
}

const char *front_conn_peer(struct http_req *req)
{
	const char *p = http_conn_peer_text(http_req_conn(req), NULL);

	return *p ? p : NULL;
}

struct keys_memo *front_conn_auth_memo(struct http_req *req)
{
	struct conn *c = http_conn_data(http_req_conn(req));

	return c ? &c->auth : NULL;
}

uint64_t front_conn_cookie(struct http_req *req)
{
	struct conn *c = caller_lookup(req);

	return c ? c->caller_cookie : 0;
}

const struct conn_origin *front_conn_origin(struct http_req *req)
{
	struct conn *c = caller_lookup(req);

	return c && c->origin.known ? &c->origin : NULL;
}

struct conn_redirect *front_conn_redirect(struct http_req *req)
{
	struct conn *c = http_conn_data(http_req_conn(req));

	return c ? &c->redirect : NULL;
}

const char *front_conn_caller(struct http_req *req, uint64_t *cgid)
{
	struct conn *c = caller_lookup(req);

	if (!c)
		return NULL;
	if (c->caller && cgid)
		*cgid = c->caller_cgid;
	return c->caller;
}

int front_conns_new(enum metrics_listener which, struct front_conns **out)
{
	struct front_conns *fc = xcalloc(1, sizeof(*fc));
	int rc = conn_caps_init(&fc->caps);

	if (rc) {
		free(fc);
		return rc;
	}
	/* Callers are named by their cgroup v2 path; without one they are all unknown. */
	if (cgroup_detect_root(fc->cgroot, sizeof(fc->cgroot)) < 0)
		fc->cgroot[0] = '\0';
	fc->which = which;
	*out = fc;
	return 0;
}

void front_conns_set_caps(struct front_conns *fc, unsigned max_total, unsigned max_per_peer)
{
	conn_caps_set(fc->shared ? fc->shared : &fc->caps, max_total, max_per_peer);
}

int front_conns_share(struct front_conns *fc, struct conn_caps *caps)
{
	if (fc->caps.live)
		return -EBUSY;
	fc->shared = caps;
	return 0;
}

/* After http_server_free: every connection's close hook has run, the peers are gone. */
void front_conns_free(struct front_conns *fc)
{
	if (!fc)
		return;
	conn_caps_fini(&fc->caps);
	free(fc);
}
