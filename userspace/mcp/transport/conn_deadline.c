/* conn_deadline: whole-request deadlines, connection caps and JSON error pages for the admin
 * listener's evhttp. */
#include "mcp/transport/conn_deadline.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <limits.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_struct.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/conn_caps.h"
#include "base/event_opt.h"
#include "base/htab.h"
#include "base/list.h"
#include "base/log.h"

#define SWEEP_MS 500

/* A client connection. We hold a reference on the bufferevent so it outlives evhttp's use of
 * it; evhttp is done with it when its callbacks are cleared (bufferevent_free does that), and
 * the sweep then lets it go. The bufferevent owns its descriptor (BEV_OPT_CLOSE_ON_FREE): it
 * is closed when the last reference goes, after libevent has deleted the bufferevent's
 * events. Were evhttp to close it (as it does for a bufferevent without that option), the
 * events our reference keeps would stay registered for a number the next accept() reuses:
 * they would read that connection's bytes into this dead buffer, and hide it from epoll. */
struct conn {
	struct htab_node hn;     /* keyed by the bufferevent's address */
	struct bufferevent *bev;
	struct conn_deadline *d;
	uint64_t deadline_ms;    /* the current request must be in by then; 0: none being read */
	struct list_head fresh;  /* in d->fresh until admitted or refused */
	struct conn_peer *peer;  /* set once admitted (counted: base/conn_caps.h) */
	struct evbuffer_cb_entry *in_cb, *out_cb;
	size_t head_bytes;       /* of the request being read, until its blank line */
	uint32_t tail;           /* its last four bytes, to find the blank line */
	bool in_body;            /* the current request's header section is complete */
	bool rewritten;          /* evhttp's error page was replaced */
	struct event *watch;     /* keeps the descriptor's read interest registered (on_watch) */
	bool read_seen;          /* evhttp read bytes since on_watch last ran */
};

struct conn_deadline {
	int timeout_ms;
	size_t max_header_bytes;
	enum metrics_listener which;
	struct conn_caps caps;   /* admitted connections evhttp still holds, per peer */
	struct htab conns;
	struct list_head fresh;  /* accepted, not yet checked against the caps */
	struct event_base *base;
	struct event *sweep, *admit;
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
	return clock_loop_ms() + (uint64_t)d->timeout_ms;
}

static bool released(const struct conn *c);

/* --- evhttp's error pages as JSON-RPC errors ------------------------------------------ */

/* Follow the header section of the request being read: its size, and where it ends. Runs on
 * every read before evhttp parses it. */
static void on_input(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct conn *c = arg;
	struct evbuffer_ptr pos;
	struct evbuffer_iovec v[8];
	size_t len = evbuffer_get_length(buf);
	int nv;

	if (info->n_added)
		c->read_seen = true;	/* for on_watch */
	/* A connection evhttp let go, whose read event is still ours: stop reading it (its
	 * descriptor is closed when the sweep drops it). */
	if (info->n_added && released(c)) {
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
		evbuffer_drain(buf, len);
		return;
	}
	if (!info->n_added || c->in_body || info->n_added > len ||
	    evbuffer_ptr_set(buf, &pos, len - info->n_added, EVBUFFER_PTR_SET))
		return;
	nv = evbuffer_peek(buf, (ev_ssize_t)info->n_added, &pos, v, 8);
	for (int i = 0; i < nv && i < 8 && !c->in_body; i++) {
		const uint8_t *p = v[i].iov_base;
		for (size_t k = 0; k < v[i].iov_len; k++) {
			c->head_bytes++;
			c->tail = c->tail << 8 | p[k];
			if (c->tail == 0x0d0a0d0a || (c->tail & 0xffff) == 0x0a0a) {
				c->in_body = true;
				break;
			}
		}
	}
}

/* evhttp answers what it refuses itself (a body over max_body_bytes, headers over
 * max_header_bytes, a malformed request, an unknown method) with an HTML page, before any
 * callback of ours runs. Agents speak JSON-RPC: replace the page, whole in the output buffer
 * once its last line is added, by a JSON-RPC error of the same meaning. */
static void on_output(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	static const char page_end[] = "</BODY></HTML>\n";
	struct conn *c = arg;
	size_t len = evbuffer_get_length(buf), el = sizeof(page_end) - 1;
	char end[sizeof(page_end)], start[80];
	struct evbuffer_ptr pos;
	const char *reason, *message;
	char body[256];
	int status;

	if (!info->n_added || c->rewritten || len < el + 13)
		return;
	if (evbuffer_ptr_set(buf, &pos, len - el, EVBUFFER_PTR_SET) ||
	    evbuffer_copyout_from(buf, &pos, end, el) != (ev_ssize_t)el || memcmp(end, page_end, el))
		return;
	ev_ssize_t got = evbuffer_copyout(buf, start, sizeof(start) - 1);
	if (got < 13 || memcmp(start, "HTTP/1.", 7) || sscanf(start + 9, "%3d", &status) != 1)
		return;
	start[got] = 0;
	start[strcspn(start, "\r\n")] = 0;
	start[8] = 0;  /* the version; the reason phrase evhttp chose follows at start + 13 */
	/* evhttp says 400 (or 413) when the header section grew past its limit. */
	if ((status == 400 || status == 413) && c->d->max_header_bytes &&
	    c->head_bytes > c->d->max_header_bytes)
		status = 431;
	switch (status) {
	case 413:
		reason = "Payload Too Large";
		message = "request body too large (limits.max_body_bytes)";
		break;
	case 431:
		reason = "Request Header Fields Too Large";
		message = "request headers too large (limits.max_header_bytes)";
		break;
	case 400:
		reason = "Bad Request";
		message = "malformed HTTP request";
		break;
	case 501:
		reason = "Not Implemented";
		message = "method not supported: use POST, GET or DELETE";
		break;
	case 417:
		reason = "Expectation Failed";
		message = "only \"Expect: 100-continue\" is supported";
		break;
	default:
		reason = start[12] == ' ' && start[13] ? start + 13 : "Error";
		message = "the request was refused";
	}
	c->rewritten = true;  /* our own additions below come back here */
	metrics_http_refused(c->d->which, status);
	snprintf(body, sizeof(body), "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":%d,"
		 "\"message\":\"%s\"}}", -32600, message);
	evbuffer_drain(buf, len);
	evbuffer_add_printf(buf, "%s %d %s\r\nContent-Type: application/json\r\n"
			    "Connection: close\r\nContent-Length: %zu\r\n\r\n%s", start, status,
			    reason, strlen(body), body);
}

/* --- connection caps ------------------------------------------------------------------ */

/* What a connection counts against for max_per_peer: its source address (the admin
 * listener is TCP only). */
static void peer_key(int fd, struct htab_bytes *key, uint8_t buf[16])
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	key->p = buf;
	key->n = 0;
	if (getpeername(fd, (struct sockaddr *)&ss, &sl))
		return;
	if (ss.ss_family == AF_INET) {
		memcpy(buf, &((struct sockaddr_in *)&ss)->sin_addr, 4);
		key->n = 4;
	} else if (ss.ss_family == AF_INET6) {
		memcpy(buf, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
		key->n = 16;
	}
}

/* Forget a connection evhttp let go, or that the table is being freed with. */
static void conn_drop(struct conn_deadline *d, struct conn *c)
{
	list_del(&c->fresh);
	if (c->peer) {
		conn_caps_release(&d->caps, c->peer);
		metrics_connections(d->which, -1);
	}
	event_free_opt(c->watch);       /* before the descriptor can close */
	evbuffer_remove_cb_entry(bufferevent_get_input(c->bev), c->in_cb);
	evbuffer_remove_cb_entry(bufferevent_get_output(c->bev), c->out_cb);
	bufferevent_decref(c->bev);
	free(c);
}

static bool released(const struct conn *c)
{
	bufferevent_data_cb rcb = NULL;

	bufferevent_getcb(c->bev, &rcb, NULL, NULL, NULL);
	return !rcb;
}

/* Drop what evhttp let go (the counts must be exact when a cap is near). */
static void purge(struct conn_deadline *d)
{
	struct htab_iter it = htab_iter(&d->conns);

	for (struct htab_node *n; (n = htab_next(&it));) {
		struct conn *c = htab_entry(n, struct conn, hn);
		if (released(c)) {
			htab_remove(&d->conns, n);
			conn_drop(d, c);
		}
	}
}

/* Stop tracking a connection we end (shut down): its counts go now, and with our reference
 * evhttp frees it, and its descriptor, as soon as it reads the EOF, not at the next sweep. */
static void conn_forget(struct conn_deadline *d, struct conn *c)
{
	htab_remove(&d->conns, &c->hn);
	conn_drop(d, c);
}

/* Past a cap: a fixed answer written straight to the socket (it is empty, the write does not
 * block), then the connection ends the way the deadline ends one: evhttp sees EOF. */
static void refuse(struct conn_deadline *d, struct conn *c, int fd, enum conn_caps_verdict v)
{
	char msg[512];
	size_t n = conn_caps_refusal(v, msg, sizeof(msg));

	if (send(fd, msg, n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		log_debug("refused connection: %s", strerror(errno));
	shutdown(fd, SHUT_RDWR);
	metrics_connection_refused(d->which, v == CONN_CAPS_TOTAL ? METRICS_REFUSED_TOTAL
								  : METRICS_REFUSED_PEER);
	conn_forget(d, c);
}

/* Answers and stream events go out as soon as they are written: with Nagle on, a second
 * small write (the next SSE event, the tail of a body past one segment) would wait for the
 * peer's delayed ACK, up to 40 ms. Not TCP (a unix socket): nothing to do. */
static void no_delay(int fd)
{
	int one = 1;

	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) && errno != EOPNOTSUPP)
		log_debug("conn_deadline: TCP_NODELAY: %s", strerror(errno));
}

/* evhttp deletes a connection's read event once a request is in and adds it back with the
 * answer: two epoll_ctl per request. A second read event of ours on the descriptor keeps it
 * registered with the kernel meanwhile, so evhttp's changes stay inside libevent. Ours only
 * has to step aside when the descriptor is readable and evhttp does not read it (bytes or an
 * EOF arriving while a request is served, which level-triggered epoll would report on every
 * turn): the next request puts it back (conn_deadline_request_in). */
static void on_watch(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	bool seen = c->read_seen;

	c->read_seen = false;
	if (!released(c) && (event_pending(&c->bev->ev_read, EV_READ, NULL) || seen))
		return;	/* evhttp reads it, or has just read what woke us */
	event_del(c->watch);
}

static void on_admit(evutil_socket_t unused, short what, void *arg)
{
	struct conn_deadline *d = arg;
	bool purged = false;

	while (!list_empty(&d->fresh)) {
		struct conn *c = list_first_entry(&d->fresh, struct conn, fresh);
		int fd = bufferevent_getfd(c->bev);
		struct htab_bytes key;
		uint8_t addr[CONN_CAPS_KEY_MAX];
		enum conn_caps_verdict v;

		list_del(&c->fresh);
		if (fd < 0)
			continue;
		if (released(c)) {
			/* evhttp gave up on it as it accepted it. If adding its read event failed,
			 * evhttp_get_request closed the descriptor itself: not ours to close again
			 * (the number may be the next connection's by now). */
			if (!event_pending(&c->bev->ev_read, EV_READ, NULL) &&
			    bufferevent_setfd(c->bev, -1))
				log_warn("conn_deadline: cannot detach a refused descriptor");
			continue;
		}
		peer_key(fd, &key, addr);
		v = conn_caps_check(&d->caps, key.p, key.n);
		if (v != CONN_CAPS_OK && !purged) {
			purge(d);       /* what evhttp let go does not count */
			purged = true;
			v = conn_caps_check(&d->caps, key.p, key.n);
		}
		if (v != CONN_CAPS_OK) {
			refuse(d, c, fd, v);
			continue;
		}
		c->peer = conn_caps_take(&d->caps, key.p, key.n);
		no_delay(fd);
		c->watch = event_new(d->base, fd, EV_READ | EV_PERSIST, on_watch, c);
		if (c->watch && event_add(c->watch, NULL)) {
			event_free(c->watch);
			c->watch = NULL;
		}
		metrics_connections(d->which, 1);
	}
}

/* --- tracking ------------------------------------------------------------------------- */

struct bufferevent *conn_deadline_bevcb(struct event_base *base, void *arg)
{
	struct conn_deadline *d = arg;
	/* What evhttp would make itself, plus our reference, owning its descriptor (above). */
	struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	struct conn *c;

	if (!bev)
		return NULL;
	c = xcalloc(1, sizeof(*c));
	c->bev = bev;
	c->d = d;
	c->deadline_ms = deadline(d);
	c->in_cb = evbuffer_add_cb(bufferevent_get_input(bev), on_input, c);
	c->out_cb = evbuffer_add_cb(bufferevent_get_output(bev), on_output, c);
	if (!c->in_cb || !c->out_cb) {
		if (c->in_cb)
			evbuffer_remove_cb_entry(bufferevent_get_input(bev), c->in_cb);
		free(c);
		bufferevent_free(bev);
		return NULL;
	}
	htab_insert(&d->conns, &c->hn, bev);
	bufferevent_incref(bev);
	/* evhttp sets the socket right after this returns; the caps are checked then. */
	list_add_tail(&c->fresh, &d->fresh);
	event_active(d->admit, EV_TIMEOUT, 1);
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

	if (!c)
		return;
	/* The next request's header section starts with the next byte. */
	c->in_body = false;
	c->head_bytes = 0;
	c->tail = 0;
	if (c->watch && !event_pending(c->watch, EV_READ, NULL) && event_add(c->watch, NULL))
		log_debug("conn_deadline: cannot watch a connection again");
	if (c->deadline_ms) {
		c->deadline_ms = 0;
		evhttp_request_set_on_complete_cb(req, on_reply_complete, d);
	}
}

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
	struct conn_deadline *d = arg;
	struct htab_iter it = htab_iter(&d->conns);
	uint64_t now = clock_loop_ms();

	for (struct htab_node *n; (n = htab_next(&it));) {
		struct conn *c = htab_entry(n, struct conn, hn);
		if (released(c)) {  /* evhttp let it go */
			htab_remove(&d->conns, n);
			conn_drop(d, c);
			continue;
		}
		if (c->deadline_ms && now > c->deadline_ms) {
			/* evhttp still owns the fd (its callbacks are set): end the connection the
			 * way a peer would, and evhttp frees it on the EOF. */
			log_info("cut a client that did not send its request within %d ms",
				 d->timeout_ms);
			shutdown(bufferevent_getfd(c->bev), SHUT_RDWR);
			conn_forget(d, c);
		}
	}
}

int conn_deadline_new(struct event_base *base, int timeout_ms, enum metrics_listener which,
		      struct conn_deadline **out)
{
	struct conn_deadline *d = xcalloc(1, sizeof(*d));
	struct timeval tv = { 0, SWEEP_MS * 1000 };
	int rc;

	list_init(&d->fresh);
	if ((rc = htab_init(&d->conns, &conn_type)) != 0 ||
	    (rc = conn_caps_init(&d->caps)) != 0)
		goto fail;
	d->timeout_ms = timeout_ms;
	d->which = which;
	d->sweep = event_new(base, -1, EV_PERSIST, on_sweep, d);
	d->admit = event_new(base, -1, 0, on_admit, d);
	d->base = base;
	if (!d->sweep || !d->admit || event_add(d->sweep, &tv)) {
		rc = -ENOMEM;
		goto fail;
	}
	*out = d;
	return 0;
fail:
	conn_deadline_free(d);
	return rc;
}

void conn_deadline_set_timeout(struct conn_deadline *d, int timeout_ms)
{
	d->timeout_ms = timeout_ms;
}

void conn_deadline_set_caps(struct conn_deadline *d, unsigned max_total, unsigned max_per_peer,
			    size_t max_header_bytes)
{
	conn_caps_set(&d->caps, max_total, max_per_peer);
	d->max_header_bytes = max_header_bytes;
}

void conn_deadline_free(struct conn_deadline *d)
{
	struct htab_iter it;

	if (!d)
		return;
	event_free_opt(d->sweep);
	event_free_opt(d->admit);
	it = htab_iter(&d->conns);
	for (struct htab_node *n; (n = htab_next(&it));) {
		htab_remove(&d->conns, n);
		conn_drop(d, htab_entry(n, struct conn, hn));
	}
	htab_fini(&d->conns);
	conn_caps_fini(&d->caps);
	free(d);
}
