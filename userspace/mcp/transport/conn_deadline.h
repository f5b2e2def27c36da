/* conn_deadline: the one limit libevent's evhttp lacks — a whole request must arrive within
 * a deadline (evhttp's own timeout restarts on every byte, so a client trickling a header
 * line every few seconds was never cut).
 *
 * Install conn_deadline_bevcb with evhttp_set_bevcb; call conn_deadline_request_in() when a
 * request has arrived whole: no deadline while it is served, a fresh one once it is answered.
 * A periodic sweep cuts connections past their deadline.
 */
#ifndef WARDEN_CONN_DEADLINE_H
#define WARDEN_CONN_DEADLINE_H

#include <event2/event.h>
#include <event2/http.h>

struct conn_deadline;

int conn_deadline_new(struct event_base *base, int timeout_ms, struct conn_deadline **out);
/* A reload's new timeout, for the requests that start from now on. */
void conn_deadline_set_timeout(struct conn_deadline *d, int timeout_ms);
/* Frees the tracking only: call after evhttp_free (evhttp frees the connections). */
void conn_deadline_free(struct conn_deadline *d);
/* evhttp's bufferevent callback (arg: the conn_deadline). */
struct bufferevent *conn_deadline_bevcb(struct event_base *base, void *arg);
void conn_deadline_request_in(struct conn_deadline *d, struct evhttp_request *req);

#endif
