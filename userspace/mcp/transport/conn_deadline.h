/* conn_deadline: the limits libevent's evhttp (2.1) lacks, per listener.
 *
 * Deadlines: the one evhttp lacks — a whole request must arrive within
 * a deadline (evhttp's own timeout restarts on every byte, so a client trickling a header
 * line every few seconds was never cut).
 *
 * Install conn_deadline_bevcb with evhttp_set_bevcb; call conn_deadline_request_in() when a
 * request has arrived whole: no deadline while it is served, a fresh one once it is answered.
 * A periodic sweep cuts connections past their deadline.
 *
 * Caps: at most max_total open connections, max_per_peer from one source address (on a
 * unix socket: from one caller cgroup, else uid); one past a cap gets a fixed 503 with a
 * JSON-RPC error and Retry-After, and is closed at once.
 *
 * Error pages: evhttp's own refusals (413 body, headers too large, 400 malformed) are
 * rewritten from HTML into JSON-RPC errors; headers past max_header_bytes answer 431.
 */
#ifndef WARDEN_CONN_DEADLINE_H
#define WARDEN_CONN_DEADLINE_H

#include <event2/event.h>
#include <event2/http.h>
#include <stdint.h>

#include "observe/metrics.h"
#include "warden_types.h"

struct conn_deadline;

int conn_deadline_new(struct event_base *base, int timeout_ms, enum metrics_listener which,
		      struct conn_deadline **out);
/* The caps (none until set) and the header limit evhttp was given. */
void conn_deadline_set_caps(struct conn_deadline *d, unsigned max_total, unsigned max_per_peer,
			    size_t max_header_bytes);
/* A reload's new timeout, for the requests that start from now on. */
void conn_deadline_set_timeout(struct conn_deadline *d, int timeout_ms);
/* Frees the tracking only: call after evhttp_free (evhttp frees the connections). */
void conn_deadline_free(struct conn_deadline *d);
/* evhttp's bufferevent callback (arg: the conn_deadline). */
struct bufferevent *conn_deadline_bevcb(struct event_base *base, void *arg);
void conn_deadline_request_in(struct conn_deadline *d, struct evhttp_request *req);
/* Who opened req's connection, from the kernel (enforce/peer_cgroup.h), never from the
 * request: the caller's cgroup path below the cgroup2 root ("/a/b") and its id in *cgid
 * (may be NULL). Looked up on the first call for a connection and kept with it. NULL when
 * unknown: not a process of this network namespace, or no cgroup v2. */
const char *conn_deadline_caller(struct conn_deadline *d, struct evhttp_request *req,
				 uint64_t *cgid);
/* The cookie of the client socket of req's connection, from the same lookup (0: unknown):
 * transparent redirect finds the connection's original destination with it. */
uint64_t conn_deadline_cookie(struct conn_deadline *d, struct evhttp_request *req);

/* What the caller lookup learnt about an inet connection besides its caller: our own port,
 * and when warden_conns answered (fast), whether the kernel redirected it and from where. */
struct conn_origin {
	bool known;			/* an inet connection whose own address was read */
	bool fast;			/* warden_conns answered: redirected/orig are the kernel's */
	bool redirected;
	uint16_t local_port;		/* host order */
	struct warden_redirect orig;
};
/* NULL when not known (not inet, not tracked): ask the kernel another way. */
const struct conn_origin *conn_deadline_origin(struct conn_deadline *d,
					       struct evhttp_request *req);

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
/* req's connection's slot (zero until someone fills it); NULL when it is not tracked. */
struct conn_redirect *conn_deadline_redirect(struct conn_deadline *d, struct evhttp_request *req);

#endif
