/* conn_deadline: the limits libevent's evhttp (2.1) lacks, for the admin listener (the agent
 * listener has its own server: base/http_server, mcp/transport/front_conn).
 *
 * Deadlines: the one evhttp lacks — a whole request must arrive within
 * a deadline (evhttp's own timeout restarts on every byte, so a client trickling a header
 * line every few seconds was never cut).
 *
 * Install conn_deadline_bevcb with evhttp_set_bevcb; call conn_deadline_request_in() when a
 * request has arrived whole: no deadline while it is served, a fresh one once it is answered.
 * A periodic sweep cuts connections past their deadline.
 *
 * Caps: at most max_total open connections, max_per_peer from one source address; one past a
 * cap gets a fixed 503 with a JSON-RPC error and Retry-After, and is closed at once.
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
#endif
