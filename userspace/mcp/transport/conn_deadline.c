/* conn_deadline: whole-request deadlines for evhttp connections. */
#include "mcp/transport/conn_deadline.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <event2/bufferevent.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/htab.h"
#include "base/log.h"

#define SWEEP_MS 500

/* A client connection. We hold a reference on the bufferevent so it outlives evhttp's use of
 * it; evhttp is done with it when its callbacks are cleared (bufferevent_free does that,
 * before the fd is closed), and the sweep then lets it go. */
struct conn {
	struct htab_node hn;     /* keyed by the bufferevent's address */
	struct bufferevent *bev;
	uint64_t deadline_ms;    /* the current request must be in by then; 0: none being read */
};

struct conn_deadline {
	int timeout_ms;
	struct htab conns;
	struct event *sweep;
};

static uint64_t conn_hash(const struct htab *t, const void *key)
{
	return htab_hash_u64(t, (uint64_t)(uintptr_t)key);
}

static bool conn_eq(const struct htab_node *n, const void *key)
{
	return htab_entry(n, struct conn, hn)->bev == key;
}

static const struct htab_type conn_type = { conn_hash, conn_eq };

static uint64_t deadline(const struct conn_deadline *d)
{
	return clock_mono_ms() + (uint64_t)d->timeout_ms;
}

struct bufferevent *conn_deadline_bevcb(struct event_base *base, void *arg)
{
	struct conn_deadline *d = arg;
	/* What evhttp would make itself (options 0: it closes the fd), plus our reference. */
	struct bufferevent *bev = bufferevent_socket_new(base, -1, 0);
	struct conn *c;

	if (!bev)
		return NULL;
	c = xcalloc(1, sizeof(*c));
	c->bev = bev;
	c->deadline_ms = deadline(d);
	htab_insert(&d->conns, &c->hn, bev);
	bufferevent_incref(bev);
	return bev;
}

static struct conn *conn_of(struct conn_deadline *d, struct evhttp_request *req)
{
	struct bufferevent *bev = evhttp_connection_get_bufferevent(
		evhttp_request_get_connection(req));
	struct htab_node *n = htab_find(&d->conns, bev);

	return n ? htab_entry(n, struct conn, hn) : NULL;
}

/* A reply is done: the next request on this connection has the whole timeout to arrive. */
static void on_reply_complete(struct evhttp_request *req, void *arg)
{
	struct conn *c = conn_of(arg, req);

	if (c)
		c->deadline_ms = deadline(arg);
}

void conn_deadline_request_in(struct conn_deadline *d, struct evhttp_request *req)
{
	struct conn *c = conn_of(d, req);

	if (c && c->deadline_ms) {
		c->deadline_ms = 0;
		evhttp_request_set_on_complete_cb(req, on_reply_complete, d);
	}
}

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
	struct conn_deadline *d = arg;
	struct htab_iter it = htab_iter(&d->conns);
	uint64_t now = clock_mono_ms();

	for (struct htab_node *n; (n = htab_next(&it));) {
		struct conn *c = htab_entry(n, struct conn, hn);
		bufferevent_data_cb rcb = NULL;
		bufferevent_getcb(c->bev, &rcb, NULL, NULL, NULL);
		if (!rcb) {  /* evhttp let it go */
			htab_remove(&d->conns, n);
			bufferevent_decref(c->bev);
			free(c);
			continue;
		}
		if (c->deadline_ms && now > c->deadline_ms) {
			/* evhttp still owns the fd (its callbacks are set): end the connection the
			 * way a peer would, and evhttp frees it on the EOF. */
			log_info("cut a client that did not send its request within %d ms",
				 d->timeout_ms);
			c->deadline_ms = 0;
			shutdown(bufferevent_getfd(c->bev), SHUT_RDWR);
		}
	}
}

int conn_deadline_new(struct event_base *base, int timeout_ms, struct conn_deadline **out)
{
	struct conn_deadline *d = xcalloc(1, sizeof(*d));
	struct timeval tv = { 0, SWEEP_MS * 1000 };
	int rc = htab_init(&d->conns, &conn_type);

	if (rc) {
		free(d);
		return rc;
	}
	d->timeout_ms = timeout_ms;
	d->sweep = event_new(base, -1, EV_PERSIST, on_sweep, d);
	if (!d->sweep || event_add(d->sweep, &tv)) {
		conn_deadline_free(d);
		return -ENOMEM;
	}
	*out = d;
	return 0;
}

void conn_deadline_set_timeout(struct conn_deadline *d, int timeout_ms)
{
	d->timeout_ms = timeout_ms;
}

static void conn_release(struct htab_node *n, void *arg)
{
	struct conn *c = htab_entry(n, struct conn, hn);

	bufferevent_decref(c->bev);
	free(c);
}

void conn_deadline_free(struct conn_deadline *d)
{
	if (!d)
		return;
	if (d->sweep)
		event_free(d->sweep);
	htab_drain(&d->conns, conn_release, NULL);
	htab_fini(&d->conns);
	free(d);
}
