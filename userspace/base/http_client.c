/* http_client: keep-alive HTTP/1.1 connections on the loop (see the header for the pool, the
 * retry rule and why the read event stays registered).
 *
 * Each connection is one state machine, driven only by conn_run(conn, event), as in libcurl's
 * multi.c: the libevent callbacks and the request calls translate what happened into an event
 * and let the transition function decide. A connection serves one request at a time.
 */
#include "base/http_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/jsonw.h"
#include "base/list.h"

/* A literal appended at p, returning its end: a copy of known length (stpcpy of a literal
 * is a call). */
#define PUT(p, lit) ((char *)mempcpy((p), (lit), sizeof(lit) - 1))

enum conn_state {
	C_CONNECTING,           /* non-blocking connect in progress: waiting for writable */
	C_SENDING,              /* request partly written: waiting for writable */
	C_WAITING,              /* request written: reading the answer */
	C_IDLE,                 /* pooled: the read event watches for the server's close */
};

enum conn_event {
	E_WRITABLE,
	E_READABLE,
	E_TIMEOUT,              /* the request's deadline, or the idle expiry */
	E_ERROR,                /* a deferred failure (conn->pending_err) */
};

struct http_pool {
	struct list_head link;          /* in g.pools */
	struct sockaddr_storage addr;
	socklen_t addrlen;
	struct list_head conns;         /* every connection */
	struct list_head idle;          /* idle ones, most recently used first */
	size_t open, nidle;
	unsigned long connects, retries;
};

struct conn {
	struct list_head link;          /* in pool->conns */
	struct list_head idle_link;     /* in pool->idle while C_IDLE */
	struct http_pool *pool;
	enum conn_state state;
	int fd;
	struct event *rd;               /* EV_READ|EV_PERSIST, added once connected */
	struct event *wr;               /* EV_WRITE, only while connecting or write-blocked */
	struct event *tm;               /* deadline / idle expiry; activated for pending_err */
	uint64_t due;                   /* when tm must have fired (monotonic ms), 0: never */
	uint64_t armed;                 /* when tm is set to fire, 0: not set */
	int pending_err;
	bool reused;                    /* has served a request before this one */
	struct http_parser parser;
	char *rbuf;
	struct http_request *req;
};

struct http_request {
	struct conn *conn;
	struct http_request_cb cb;
	void *arg;
	char *head;                     /* request line and headers */
	size_t head_len;
	const struct iovec *body;       /* the caller's pieces, or &one */
	struct iovec one;
	int nbody;
	size_t body_len;                /* of all of them */
	size_t sent;                    /* of head + body */
	uint64_t deadline;              /* monotonic ms, 0: none */
	long connect_ms;
	bool retried;
};

/* A loop's client: each loop thread that calls http_client_init has its own pools. */
static _Thread_local struct {
	struct event_base *base;
	void (*after)(void);
	struct list_head pools;
} g;

static void conn_run(struct conn *c, enum conn_event ev);
static int attach(struct http_pool *pool, struct http_request *r, bool fresh);

/* ---- connections ---- */

static void conn_close(struct conn *c)
{
	if (c->state == C_IDLE) {
		list_del(&c->idle_link);
		c->pool->nidle--;
	}
	list_del(&c->link);
	c->pool->open--;
	event_free(c->rd);
	event_free(c->wr);
	event_free(c->tm);
	close(c->fd);
	http_parser_free(&c->parser);
	free(c->rbuf);
	free(c);
}

static void after(void)
{
	if (g.after)
		g.after();
}

/* An answer's deadlines and idle times, and those of what its callbacks start, read the
 * loop's clock once (base/clock.h). */
static void on_read(evutil_socket_t fd, short what, void *arg)
{
	bool held = clock_hold();

	conn_run(arg, E_READABLE);
	after();
	clock_release(held);
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
	bool held = clock_hold();

	conn_run(arg, E_WRITABLE);
	after();
	clock_release(held);
}

static void arm_at(struct conn *c, uint64_t at);

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	uint64_t now;

	c->armed = 0;                   /* fired or activated: no longer set */
	if (c->pending_err) {
		conn_run(c, E_ERROR);
	} else if (c->due && (now = clock_loop_ms()) < c->due) {
		arm_at(c, c->due);      /* set early (set_due): on to what is due now */
		return;
	} else if (c->due) {
		conn_run(c, E_TIMEOUT);
	} else {
		return;                 /* nothing was due any more */
	}
	after();
}

static int p_head(void *arg, const struct http_head *h)
{
	struct conn *c = arg;

	return c->req->cb.head ? c->req->cb.head(c->req->arg, h) : 0;
}

static int p_body(void *arg, const char *p, size_t n)
{
	struct conn *c = arg;

	return c->req->cb.body ? c->req->cb.body(c->req->arg, p, n) : 0;
}

static const struct http_parse_cb parse_cb = { p_head, p_body };

/* Fail in the next loop turn, never from inside http_request_start. */
static void defer_error(struct conn *c, int err)
{
	c->pending_err = err;
	event_active(c->tm, EV_TIMEOUT, 1);
}

static void arm_at(struct conn *c, uint64_t at)
{
	uint64_t now = clock_loop_ms(), ms = at > now ? at - now : 1;
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };

	evtimer_add(c->tm, &tv);        /* the timer heap: no system call */
	c->armed = at;
}

/* What the timer is for, set lazily: a later due leaves the timer where it is (it fires
 * early, and on_timer sets it again for what is due then); only an earlier one moves it. A
 * connection's request deadline and the idle expiry after each answer come later every time,
 * so one that keeps serving moves its timer about once a timeout, not twice a call
 * (event_add was ~6 % of the loop's instruction-cache misses: docs/performance.md). */
static void set_due(struct conn *c, uint64_t due)
{
	c->due = due;
	if (due && (!c->armed || due < c->armed))
		arm_at(c, due);
}

/* The request's deadline, or the connect's while connecting, whichever comes first. */
static void arm_deadline(struct conn *c)
{
	struct http_request *r = c->req;
	uint64_t now = clock_loop_ms(), ms = 0;

	if (r->deadline)
		ms = r->deadline > now ? r->deadline - now : 1;
	if (c->state == C_CONNECTING && r->connect_ms > 0 && (!ms || (uint64_t)r->connect_ms < ms))
		ms = (uint64_t)r->connect_ms;
	set_due(c, ms ? now + ms : 0);
}

static int conn_new(struct http_pool *pool, struct conn **out)
{
	struct conn *c = xcalloc(1, sizeof(*c));
	int one = 1, err;

	c->pool = pool;
	list_init(&c->idle_link);
	c->fd = socket(pool->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		err = -errno;
		free(c);
		return err;
	}
	/* one gathered write per request: nothing to gain from Nagle, only a delayed-ACK stall */
	(void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->rd = event_new(g.base, c->fd, EV_READ | EV_PERSIST, on_read, c);
	c->wr = event_new(g.base, c->fd, EV_WRITE, on_write, c);
	c->tm = evtimer_new(g.base, on_timer, c);
	c->rbuf = xmalloc(HTTP_READ_BUF);
	http_parser_init(&c->parser, &parse_cb, c);
	list_add(&c->link, &pool->conns);
	pool->open++;
	pool->connects++;
	if (!c->rd || !c->wr || !c->tm) {
		conn_close(c);
		return -ENOMEM;
	}
	c->state = C_CONNECTING;
	if (connect(c->fd, (struct sockaddr *)&pool->addr, pool->addrlen) == 0 ||
	    errno == EINPROGRESS)
		event_add(c->wr, NULL);         /* writable: connected, or failed (SO_ERROR) */
	else
		c->pending_err = errno == ETIMEDOUT ? -ETIMEDOUT : -ECONNREFUSED;
	*out = c;
	return 0;
}

/* ---- the end of a request ---- */

static void request_free(struct http_request *r)
{
	alloc_cache_put(r->head);       /* one of each a call: kept for the next (base/alloc.h) */
	alloc_cache_put(r);
}

/* Detach the request, call done, free it. The connection is already pooled or closed. */
static void finish_request(struct http_request *r, int err)
{
	r->conn = NULL;
	if (r->cb.done)
		r->cb.done(r->arg, err);
	request_free(r);
}

/* The answer is complete: pool the connection if it can carry another request. */
static void complete(struct conn *c, bool clean)
{
	struct http_request *r = c->req;
	struct http_pool *pool = c->pool;

	c->req = NULL;
	if (clean && c->parser.head.keep_alive && r->sent == r->head_len + r->body_len &&
	    pool->nidle < HTTP_POOL_IDLE_MAX) {
		c->state = C_IDLE;
		c->reused = true;
		http_parser_reset(&c->parser);
		list_add(&c->idle_link, &pool->idle);
		pool->nidle++;
		set_due(c, clock_loop_ms() + HTTP_IDLE_EXPIRY_MS);
	} else {
		conn_close(c);
	}
	finish_request(r, 0);
}

/* The request failed on this connection; it is closed. Retried once on a fresh connection if
 * the failure is the server closing a reused connection before any byte of the answer. */
static void fail(struct conn *c, int err, bool io)
{
	struct http_request *r = c->req;
	struct http_pool *pool = c->pool;
	bool retry = io && c->reused && !http_parse_started(&c->parser) && !r->retried;

	c->req = NULL;
	conn_close(c);
	if (retry) {
		r->retried = true;
		r->sent = 0;
		pool->retries++;
		if (attach(pool, r, true) == 0)
			return;
	}
	finish_request(r, err);
}

/* ---- reading and writing ---- */

/* Write what is left of the request. 0 when all is written or it would block, or an errno. */
static int send_some(struct conn *c)
{
	struct http_request *r = c->req;

	while (r->sent < r->head_len + r->body_len) {
		struct iovec iov[1 + HTTP_BODY_PIECES];
		size_t skip = r->sent;
		int n = 0;
		if (skip < r->head_len) {
			iov[n++] = (struct iovec){ r->head + skip, r->head_len - skip };
			skip = 0;
		} else {
			skip -= r->head_len;
		}
		for (int i = 0; i < r->nbody; i++) {
			size_t len = r->body[i].iov_len;
			if (skip >= len) {      /* sent already (or empty) */
				skip -= len;
				continue;
			}
			iov[n++] = (struct iovec){ (char *)r->body[i].iov_base + skip, len - skip };
			skip = 0;
		}
		/* writev with MSG_NOSIGNAL: a reset peer is EPIPE, never SIGPIPE */
		struct msghdr m = { .msg_iov = iov, .msg_iovlen = (size_t)n };
		ssize_t w = sendmsg(c->fd, &m, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			event_add(c->wr, NULL);
			return 0;
		}
		if (w < 0)
			return -ECONNRESET;
		r->sent += (size_t)w;
	}
	c->state = C_WAITING;
	return 0;
}

/* Read what the socket has and feed the parser; may finish the request (then c is gone). */
static void recv_some(struct conn *c)
{
	for (;;) {
		/* recv, not read: a socket's read goes through the file layer's permission and
		 * notification hooks first (vfs_read), one of two reads a proxied call makes */
		ssize_t n = recv(c->fd, c->rbuf, HTTP_READ_BUF, 0), used;
		int rc;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (c->state == C_IDLE) {       /* EOF, an error or stray bytes: not reusable */
			conn_close(c);
			return;
		}
		if (n < 0) {
			fail(c, -ECONNRESET, true);
			return;
		}
		if (n == 0) {
			if ((rc = http_parse_eof(&c->parser)) == 0)
				complete(c, false);
			else
				fail(c, rc, true);
			return;
		}
		used = http_parse_feed(&c->parser, c->rbuf, (size_t)n);
		if (used < 0) {
			fail(c, (int)used, false);
			return;
		}
		if (http_parse_done(&c->parser)) {
			/* bytes after the answer: a second answer we never asked for */
			complete(c, used == n);
			return;
		}
		if (n < HTTP_READ_BUF)
			return;
	}
}

/* The transition function: every change of a connection's state happens here. */
static void conn_run(struct conn *c, enum conn_event ev)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (ev == E_ERROR) {
		err = c->pending_err;
		c->pending_err = 0;
		if (c->req)             /* -ECONNRESET: a write to a reused connection failed */
			fail(c, err, err == -ECONNRESET);
		else
			conn_close(c);
		return;
	}
	switch (c->state) {
	case C_CONNECTING:
		if (ev == E_TIMEOUT) {
			fail(c, -ETIMEDOUT, false);
			return;
		}
		if (ev != E_WRITABLE)
			return;
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err) {
			fail(c, err == ETIMEDOUT ? -ETIMEDOUT : -ECONNREFUSED, false);
			return;
		}
		event_add(c->rd, NULL);         /* for the connection's whole life */
		c->state = C_SENDING;
		arm_deadline(c);                /* the connect's bound no longer applies */
		/* fall through */
	case C_SENDING:
		if (ev == E_READABLE) {         /* an early answer (e.g. 413) */
			recv_some(c);
			return;
		}
		if (ev == E_TIMEOUT) {
			fail(c, -ETIMEDOUT, false);
			return;
		}
		if ((err = send_some(c)) != 0)
			fail(c, err, true);
		return;
	case C_WAITING:
		if (ev == E_READABLE)
			recv_some(c);
		else if (ev == E_TIMEOUT)
			fail(c, -ETIMEDOUT, false);
		return;
	case C_IDLE:
		if (ev == E_READABLE)
			recv_some(c);
		else if (ev == E_TIMEOUT)
			conn_close(c);          /* idle expiry */
		return;
	}
}

/* Put r on a connection: an idle one unless fresh, else a new one. Writes at once when it
 * can; every failure is reported from the loop later. */
static int attach(struct http_pool *pool, struct http_request *r, bool fresh)
{
	struct conn *c = NULL;
	int err;

	if (!fresh && !list_empty(&pool->idle)) {
		c = list_first_entry(&pool->idle, struct conn, idle_link);
		list_del(&c->idle_link);
		pool->nidle--;
		c->state = C_SENDING;
	} else {
		if (pool->open >= HTTP_POOL_CONN_MAX)
			return -EAGAIN;
		if ((err = conn_new(pool, &c)) != 0)
			return err;
	}
	c->req = r;
	r->conn = c;
	arm_deadline(c);
	if (c->pending_err) {
		defer_error(c, c->pending_err);
		return 0;
	}
	if (c->state == C_SENDING && (err = send_some(c)) != 0)
		defer_error(c, err);   /* a reused connection the server closed: retried then */
	return 0;
}

/* ---- public ---- */

int http_client_init(struct event_base *base, void (*after_fn)(void))
{
	if (g.base)
		return g.base == base ? 0 : -EBUSY;
	g.base = base;
	g.after = after_fn;
	list_init(&g.pools);
	return 0;
}

bool http_client_running(const struct event_base *base)
{
	return g.base && g.base == base;
}

void http_client_shutdown(void)
{
	if (!g.base)
		return;
	while (!list_empty(&g.pools)) {
		struct http_pool *p = list_first_entry(&g.pools, struct http_pool, link);
		while (!list_empty(&p->conns)) {
			struct conn *c = list_first_entry(&p->conns, struct conn, link);
			if (c->req)
				request_free(c->req);
			conn_close(c);
		}
		list_del(&p->link);
		free(p);
	}
	memset(&g, 0, sizeof(g));
}

int http_pool_get(const char *ip, unsigned port, struct http_pool **out)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t len;
	struct http_pool *p;

	if (!g.base || port == 0 || port > 65535)
		return -EINVAL;
	if (inet_pton(AF_INET, ip, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)port);
		len = sizeof(*a);
	} else if (inet_pton(AF_INET6, ip, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		len = sizeof(*a);
	} else {
		return -EINVAL;
	}
	list_for_each_entry(p, &g.pools, link) {
		if (p->addrlen == len && memcmp(&p->addr, &ss, len) == 0) {
			*out = p;
			return 0;
		}
	}
	p = xcalloc(1, sizeof(*p));
	p->addr = ss;
	p->addrlen = len;
	list_init(&p->conns);
	list_init(&p->idle);
	list_add(&p->link, &g.pools);
	*out = p;
	return 0;
}

int http_request_start(struct http_pool *pool, const struct http_request_spec *s,
		       const struct http_request_cb *cb, void *arg, struct http_request **out)
{
	struct http_request *r;
	char *p;
	size_t hl = s->headers ? s->headers_len : 0;
	int rc;

	if (s->body_iov && (s->body_iovcnt < 0 || s->body_iovcnt > HTTP_BODY_PIECES))
		return -EINVAL;
	r = xcalloc(1, sizeof(*r));
	if (s->has_body && s->body_iov) {
		r->body = s->body_iov;
		r->nbody = s->body_iovcnt;
		for (int i = 0; i < r->nbody; i++)
			r->body_len += s->body_iov[i].iov_len;
	} else if (s->has_body && s->body_len) {
		r->one = (struct iovec){ (void *)s->body, s->body_len };
		r->body = &r->one;
		r->nbody = 1;
		r->body_len = s->body_len;
	}

	/* Put together with copies, not printf: a request leaves on every call. */
	size_t cap = strlen(s->method) + strlen(s->target) + strlen(s->host) + hl + 96;
	p = r->head = alloc_cache_get(cap);
	p = stpcpy(p, s->method);
	*p++ = ' ';
	p = stpcpy(p, s->target);
	p = PUT(p, " HTTP/1.1\r\nHost: ");
	p = stpcpy(p, s->host);
	p = PUT(p, "\r\nUser-Agent: mcpwarden\r\n");
	if (s->has_body) {
		p = PUT(p, "Content-Length: ");
		p += jsonw_int_text(p, (int64_t)r->body_len);
		p = PUT(p, "\r\n");
	}
	if (hl)
		p = mempcpy(p, s->headers, hl);
	memcpy(p, "\r\n", 3);
	r->head_len = (size_t)(p - r->head) + 2;
	r->cb = *cb;
	r->arg = arg;
	r->connect_ms = s->connect_ms;
	if (s->timeout_ms > 0)
		r->deadline = clock_loop_ms() + (uint64_t)s->timeout_ms;
	if ((rc = attach(pool, r, false)) != 0)
		goto fail;
	*out = r;
	return 0;
fail:
	request_free(r);
	return rc;
}

void http_request_cancel(struct http_request *r)
{
	if (!r)
		return;
	if (r->conn) {
		r->conn->req = NULL;
		conn_close(r->conn);
	}
	request_free(r);
}

void http_pool_stats(const struct http_pool *pool, struct http_pool_stats *out)
{
	out->open = pool->open;
	out->idle = pool->nidle;
	out->connects = pool->connects;
	out->retries = pool->retries;
}
