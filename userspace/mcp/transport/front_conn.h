/* front_conn: what the agent listener (mcp/transport/front.h) keeps per connection of its
 * base/http_server: the caps on connections, and who the caller is.
 *
 * Caps: at most max_total open connections, max_per_peer from one source address (on a
 * unix socket: from one caller cgroup, else uid); one past a cap gets a fixed 503 with a
 * JSON-RPC error and Retry-After, and is closed at once.
 *
 * Callers: the kernel names who opened a connection (enforce/peer_cgroup.h), never the
 * request: looked up on the first request that asks, and kept with the connection.
 */
#ifndef WARDEN_FRONT_CONN_H
#define WARDEN_FRONT_CONN_H

#include <stdbool.h>
#include <stdint.h>

#include "observe/metrics.h"
#include "warden_types.h"

struct http_conn;
struct http_req;
struct front_conns;

int front_conns_new(enum metrics_listener which, struct front_conns **out);
void front_conns_free(struct front_conns *fc);
/* ~0u: no cap. Sharing caps (below): the shared ones. */
void front_conns_set_caps(struct front_conns *fc, unsigned max_total, unsigned max_per_peer);
/* Count the connections in caps (the listeners of every loop: one cap for the process), not
 * in fc's own, from now on, and set caps' limits from then on; caps outlives fc. -EBUSY
 * once fc counts a connection. */
struct conn_caps;
int front_conns_share(struct front_conns *fc, struct conn_caps *caps);
/* The http_server's accept and close hooks (arg: the front_conns). */
int front_conns_accept(struct front_conns *fc, struct http_conn *c);
void front_conns_close(struct front_conns *fc, struct http_conn *c);

/* The caller's cgroup path below the cgroup2 root ("/a/b") and its id in *cgid (may be
 * NULL). NULL when unknown: not a process of this network namespace, or no cgroup v2. */
const char *front_conn_caller(struct http_req *req, uint64_t *cgid);
/* The peer's address as text, NULL on a unix socket (its clients have none). */
const char *front_conn_peer(struct http_req *req);
/* The connection's memory of the key it last authenticated with (govern/keys.h), NULL when
 * the request has no connection of the front's. */
struct keys_memo;
struct keys_memo *front_conn_auth_memo(struct http_req *req);
/* The cookie of the client socket (0: unknown): transparent redirect finds the connection's
 * original destination with it. */
uint64_t front_conn_cookie(struct http_req *req);

/* What the caller lookup learnt about an inet connection besides its caller: our own port,
 * and when warden_conns answered (fast), whether the kernel redirected it and from where. */
struct conn_origin {
	bool known;			/* an inet connection whose own address was read */
	bool fast;			/* warden_conns answered: redirected/orig are the kernel's */
	bool redirected;
	uint16_t local_port;		/* host order */
	struct warden_redirect orig;
};
/* NULL when not known (not inet): ask the kernel another way. */
const struct conn_origin *front_conn_origin(struct http_req *req);

/* Transparent redirect's answer for a connection (mcp/transport/redirect_in.c), kept with it
 * so that only its first request pays the system calls that find it. */
enum conn_redirect_state {
	CONN_REDIRECT_UNKNOWN = 0,	/* not asked yet */
	CONN_REDIRECT_NO,		/* not accepted on the redirect listener */
	CONN_REDIRECT_YES,		/* redirected by the kernel: rv says where it was going */
	CONN_REDIRECT_LOST,		/* on the redirect listener, but no entry in the map */
};
struct conn_redirect {
	enum conn_redirect_state state;
	struct warden_redirect rv;
};
struct conn_redirect *front_conn_redirect(struct http_req *req);

#endif
