/* http_server: HTTP/1.1 connections on the loop (see http_server.h): listening, reading and
 * the connection's life, one state and the transitions below: idle → reading → serving →
 * (idle | closing). The answers are written by http_server_answer.c. */
#include "base/http_server.h"
#include "base/http_server_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <event2/event.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/event_opt.h"
#include "base/http_parse.h"
#include "base/list.h"
#include "base/log.h"

#define READ_STEP (16u << 10)           /* free input room asked of each read */
#define SWEEP_MS 250                    /* deadlines are checked this often */
#define ACCEPT_BATCH 64                 /* connections accepted per wake-up, at most */
#define ACCEPT_PAUSE_MS 100             /* out of descriptors: try again after */
#define LINGER_MS 2000                  /* a closing connection drains its input this long */

static void conn_process(struct http_conn *c);
static void on_read(evutil_socket_t fd, short what, void *arg);

/* --- small helpers ------------------------------------------------------------------- */

static enum http_method method_of(const char *m)
{
	static const struct { const char *name; enum http_method m; } known[] = {
		{ "GET", HTTP_GET }, { "POST", HTTP_POST }, { "DELETE", HTTP_DELETE },
		{ "HEAD", HTTP_HEAD }, { "PUT", HTTP_PUT }, { "OPTIONS", HTTP_OPTIONS },
		{ "PATCH", HTTP_PATCH },
	};

	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (!strcmp(m, known[i].name))
			return known[i].m;
	return 0;
}

/* The path of an origin-form ("/a?b") or absolute-form ("http://h/a?b") target. */
static const char *path_of(struct http_conn *c, const char *target)
{
	const char *p = target, *e;

	if (*p != '/') {
		const char *scheme = strstr(p, "://");
		if (!scheme)
			return NULL;
		p = strchr(scheme + 3, '/');
		if (!p)
			p = "/";
	}
	e = p + strcspn(p, "?#");
	c->path = xreserve(c->path, (size_t)(e - p) + 1, &c->path_cap, 64);
	memcpy(c->path, p, (size_t)(e - p));
	c->path[e - p] = '\0';
	return c->path;
}

/* --- closing ------------------------------------------------------------------------- */

static void conn_free(struct http_conn *c)
{
	struct http_server *s = c->s;

	list_del(&c->link);
	list_del(&c->later);
	if (c->admitted && s->hooks.close)
		s->hooks.close(s->arg, c);
	event_free_opt(c->rev);
	event_free_opt(c->wev);
	if (c->fd >= 0)
		close(c->fd);
	free(c->req.hbuf);
	http_parser_free(&c->parser);
	free(c->in);
	free(c->body);
	free(c->path);
	free(c->out);
	free(c);
}

/* The connection ends now: a request still served hears it (its gone hook). */
void conn_close(struct http_conn *c)
{
	if (c->dead)
		return;
	c->dead = true;
	if (c->req_live) {
		c->req_live = false;
		if (c->req.gone) {
			c->busy++;
			c->req.gone(c->req.gone_arg);
			c->busy--;
		}
	}
	if (c->rev)
		event_del(c->rev);
	if (c->wev)
		event_del(c->wev);
	if (!c->busy)
		conn_free(c);
}

/* A write failed, inside a call of the request's owner: the connection closes on the next
 * turn (the gone hook runs then), so that nothing the owner holds goes away under it. */
void conn_fail(struct http_conn *c)
{
	if (c->failed || c->dead)
		return;
	c->failed = true;
	if (c->rev)
		event_del(c->rev);
	if (c->wev)
		event_del(c->wev);
	list_del(&c->link);
	list_add_tail(&c->link, &c->s->failed);
	event_active(c->s->reaper, EV_TIMEOUT, 0);
}

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
	struct http_server *s = arg;

	(void)fd;
	(void)what;
	while (!list_empty(&s->later)) {
		struct http_conn *c = list_first_entry(&s->later, struct http_conn, later);
		list_del(&c->later);
		conn_process(c);
	}
	while (!list_empty(&s->failed)) {
		struct http_conn *c = list_first_entry(&s->failed, struct http_conn, link);
		list_del(&c->link);
		list_add_tail(&c->link, &s->conns);
		conn_close(c);
	}
}

/* Answered for the last time: once the output is out, no more writing; the input is read
 * and dropped a little longer, so that a client still sending does not get a reset that
 * would destroy the answer in its receive buffer. */
void conn_linger(struct http_conn *c)
{
	c->state = CONN_CLOSING;
	c->close_after = true;
	if (c->failed || c->dead)
		return;
	if (c->out_len != c->out_off) {
		/* the write event comes back here; a client that does not read is cut */
		c->deadline_ms = clock_loop_ms() + (uint64_t)c->s->lim.timeout_ms;
		return;
	}
	if (c->peer_eof || shutdown(c->fd, SHUT_WR) < 0) {
		conn_close(c);  /* all it sent was read: nothing to drain */
		return;
	}
	c->deadline_ms = clock_loop_ms() + LINGER_MS;
}

/* --- requests ------------------------------------------------------------------------ */

void req_reset(struct http_req *r)
{
	r->nout = 0;
	r->hlen = 0;
	r->gone = NULL;
	r->gone_arg = NULL;
	r->chunked = false;
}

/* The answer is written (or queued): the connection reads the next request, or closes. */
void req_done(struct http_conn *c)
{
	bool keep = c->req.keep_alive;

	c->req_live = false;
	req_reset(&c->req);
	http_parser_reset(&c->parser);
	/* a reload's limit, from the next request on */
	c->parser.head_max = c->s->lim.max_header && c->s->lim.max_header < HTTP_HEAD_MAX
		? c->s->lim.max_header : HTTP_HEAD_MAX;
	c->body_len = 0;
	if (!keep) {
		conn_linger(c);
		return;
	}
	c->state = CONN_IDLE;
	c->deadline_ms = clock_loop_ms() + (uint64_t)c->s->lim.timeout_ms;
	if (c->peer_eof && c->in_off == c->in_len) {
		conn_linger(c);         /* nothing more can come */
		return;
	}
	if (c->reading_paused && !c->peer_eof && !c->dead) {
		c->reading_paused = false;
		if (event_add(c->rev, NULL)) {
			conn_close(c);
			return;
		}
	}
	/* A pipelined request is served on the next turn, not inside its predecessor's
	 * answer (the owner's call stack). */
	if (c->in_off < c->in_len && !c->busy && !list_linked(&c->later)) {
		list_add_tail(&c->later, &c->s->later);
		event_active(c->s->reaper, EV_TIMEOUT, 0);
	}
}

enum http_method http_req_method(const struct http_req *r) { return r->method; }
const char *http_req_target(const struct http_req *r) { return r->c->parser.head.target; }
const char *http_req_path(const struct http_req *r) { return r->path; }
struct http_conn *http_req_conn(const struct http_req *r) { return r->c; }

const char *http_req_header(const struct http_req *r, const char *name)
{
	return http_head_get(&r->c->parser.head, name);
}

size_t http_req_nheaders(const struct http_req *r) { return r->c->parser.head.nheaders; }

size_t http_req_header_at(const struct http_req *r, size_t i, const char **name,
			  const char **value)
{
	*name = r->c->parser.head.headers[i].name;
	*value = r->c->parser.head.headers[i].value;
	return r->c->parser.head.headers[i].name_len;
}

const char *http_req_body(const struct http_req *r, size_t *len)
{
	struct http_conn *c = r->c;

	c->body = xreserve(c->body, c->body_len + 1, &c->body_cap, 1024);
	c->body[c->body_len] = '\0';
	*len = c->body_len;
	return c->body;
}

/* --- reading ------------------------------------------------------------------------- */

/* A request the server refuses itself: a JSON-RPC error, and the connection closes. */
static void refuse(struct http_conn *c, int status, const char *message)
{
	char body[256], head[256];
	struct iovec iov[2];
	int bl, hl;

	bl = snprintf(body, sizeof(body), "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":"
		      "-32600,\"message\":\"%s\"}}", message);
	hl = snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: "
		      "application/json\r\nConnection: close\r\nContent-Length: %d\r\n\r\n",
		      status, http_reason(status), http_date_now(), bl);
	iov[0] = (struct iovec){ head, (size_t)hl };
	iov[1] = (struct iovec){ body, (size_t)bl };
	if (c->s->hooks.refused)
		c->s->hooks.refused(c->s->arg, status);
	c->req_live = false;
	if (conn_write(c, iov, 2) == 0)
		conn_linger(c);
}

/* The head is in: what the server refuses before the body (the codes are ours, for
 * on_parse_error). */
#define E_METHOD (-ENOSYS)
#define E_EXPECT (-EBADRQC)
#define E_BODY (-EFBIG)

static int on_head(void *arg, const struct http_head *h)
{
	struct http_conn *c = arg;

	c->req.method = method_of(h->method);
	if (!c->req.method)
		return E_METHOD;
	if (h->expect_other)
		return E_EXPECT;
	if (h->length > c->s->lim.max_body)
		return E_BODY;
	if (h->expect_continue && (h->length || h->chunked) && h->minor >= 1) {
		struct iovec iov = { "HTTP/1.1 100 Continue\r\n\r\n", 25 };
		if (conn_write(c, &iov, 1))
			return -EPIPE;
	}
	return 0;
}

static int on_body(void *arg, const char *p, size_t n)
{
	struct http_conn *c = arg;

	if (c->body_len + n > c->s->lim.max_body)
		return E_BODY;
	c->body = xreserve(c->body, c->body_len + n + 1, &c->body_cap, 1024);
	memcpy(c->body + c->body_len, p, n);
	c->body_len += n;
	return 0;
}

static const struct http_parse_cb parse_cb = { on_head, on_body };

static void on_parse_error(struct http_conn *c, ssize_t err)
{
	if (err == -EPIPE || c->dead)
		return;
	if (err == E_METHOD)
		refuse(c, 501, "method not supported: use POST, GET or DELETE");
	else if (err == E_EXPECT)
		refuse(c, 417, "only \\\"Expect: 100-continue\\\" is supported");
	else if (err == E_BODY)
		refuse(c, 413, "request body too large (limits.max_body_bytes)");
	else if (err == -EMSGSIZE && !http_parse_head_seen(&c->parser))
		refuse(c, 431, "request headers too large (limits.max_header_bytes)");
	else
		refuse(c, 400, "malformed HTTP request");
}

/* The accept hook's word on a new connection (or one handed over): true when admitted;
 * else it is closed, or closes once the hook's refusal is out. */
static bool conn_admit(struct http_conn *c)
{
	struct http_server *s = c->s;

	c->busy++;
	int rc = s->hooks.accept ? s->hooks.accept(s->arg, c) : 0;
	c->busy--;
	if (c->dead) {
		conn_free(c);
		return false;
	}
	if (rc) {
		conn_linger(c);         /* a refusal written by the hook leaves first */
		return false;
	}
	c->admitted = true;
	return true;
}

/* --- handing a connection to another loop ------------------------------------------ */

int http_req_handoff(struct http_req *r, struct http_server *to)
{
	struct http_conn *c = r->c;

	if (c->state != CONN_SERVING || c->moving_to || c->dead || c->failed || r->nout ||
	    r->hlen || c->out_off != c->out_len)
		return -EBUSY;
	r->gone = NULL;
	r->gone_arg = NULL;
	c->req_live = false;
	c->moving_to = to;
	return 0;
}

/* Outside the request hook, nothing of it on this loop's stack: let go of it and post it. */
static void conn_send(struct http_conn *c)
{
	struct http_server *s = c->s, *to = c->moving_to;

	list_del(&c->link);
	list_del(&c->later);
	if (c->admitted && s->hooks.close)
		s->hooks.close(s->arg, c);
	c->admitted = false;
	c->data = NULL;
	event_free_opt(c->rev);
	event_free_opt(c->wev);
	c->rev = c->wev = NULL;
	c->l = NULL;
	pthread_mutex_lock(&to->inbox_mu);
	list_add_tail(&c->link, &to->inbox);
	pthread_mutex_unlock(&to->inbox_mu);
	doorbell_ring(&to->bell);
}

static void dispatch(struct http_conn *c);

/* On the receiving loop: the connection is this server's from now on, admitted as a new one,
 * and its request served again. */
static void conn_arrive(struct http_server *s, struct http_conn *c)
{
	c->s = s;
	c->moving_to = NULL;
	c->handed = true;
	list_add_tail(&c->link, &s->conns);
	c->rev = event_new(s->base, c->fd, EV_READ | EV_PERSIST, on_read, c);
	if (!c->rev || (!c->reading_paused && !c->peer_eof && event_add(c->rev, NULL))) {
		log_warn("http: cannot watch a connection handed over");
		conn_close(c);
		return;
	}
	bool admitted = conn_admit(c);

	c->handed = false;
	if (!admitted)
		return;
	dispatch(c);
	if (c->moving_to)
		conn_send(c);           /* on again (a loop that does not own it either) */
	else
		conn_process(c);        /* what was pipelined after it */
}

static void on_inbox(void *arg)
{
	struct http_server *s = arg;
	struct list_head got;

	list_init(&got);
	pthread_mutex_lock(&s->inbox_mu);
	list_splice_tail_init(&s->inbox, &got);
	pthread_mutex_unlock(&s->inbox_mu);
	while (!list_empty(&got)) {
		struct http_conn *c = list_first_entry(&got, struct http_conn, link);
		list_del(&c->link);
		conn_arrive(s, c);
	}
}

static void dispatch(struct http_conn *c)
{
	struct http_req *r = &c->req;

	c->state = CONN_SERVING;
	c->deadline_ms = 0;
	c->req_live = true;
	r->c = c;
	r->keep_alive = c->parser.head.keep_alive;
	r->path = path_of(c, c->parser.head.target);
	c->busy++;
	c->s->hooks.request(c->s->arg, r);
	c->busy--;
}

/* Parse what was read; serve each request that is whole, one at a time. */
static void conn_process(struct http_conn *c)
{
	while (!c->dead && (c->state == CONN_IDLE || c->state == CONN_READING) &&
	       c->in_off < c->in_len) {
		if (c->state == CONN_IDLE) {
			c->state = CONN_READING;
			c->deadline_ms = clock_loop_ms() + (uint64_t)c->s->lim.timeout_ms;
		}
		c->busy++;
		ssize_t n = http_parse_feed(&c->parser, c->in + c->in_off, c->in_len - c->in_off);
		c->busy--;
		if (c->dead)
			break;
		if (n < 0) {
			on_parse_error(c, n);
			break;
		}
		c->in_off += (size_t)n;
		if (c->in_off == c->in_len)
			c->in_off = c->in_len = 0;
		if (!http_parse_done(&c->parser))
			break;
		dispatch(c);
		if (c->moving_to) {
			conn_send(c);
			return;
		}
	}
	/* The client shut its side: what it sent is answered, an unfinished request never will
	 * be. */
	if (!c->dead && c->peer_eof && !c->busy &&
	    (c->state == CONN_IDLE || c->state == CONN_READING))
		conn_linger(c);
	if (c->dead && !c->busy)
		conn_free(c);
}

static void read_some(evutil_socket_t fd, void *arg)
{
	struct http_conn *c = arg;
	size_t bound = c->s->lim.max_header + c->s->lim.max_body + READ_STEP;
	ssize_t n;

	if (c->in_off && c->in_off == c->in_len)
		c->in_off = c->in_len = 0;
	if (c->in_off && c->in_cap - c->in_len < READ_STEP) {
		memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
		c->in_len -= c->in_off;
		c->in_off = 0;
	}
	c->in = xreserve(c->in, c->in_len + READ_STEP, &c->in_cap, READ_STEP);
	/* recv, not read: a socket's read goes through the file layer's hooks (vfs_read) */
	do
		n = recv(fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return;
	if (n == 0 && c->in_off < c->in_len && c->state != CONN_CLOSING) {
		/* Pipelined requests, then the client shut its side (it may still read): they are
		 * answered, then the connection closes. */
		c->peer_eof = true;
		event_del(c->rev);
		if (c->state == CONN_IDLE || c->state == CONN_READING)
			conn_process(c);
		return;
	}
	if (n <= 0) {
		conn_close(c);          /* the client went away (or failed) */
		return;
	}
	if (c->state == CONN_CLOSING) {
		c->in_len = c->in_off = 0;
		return;
	}
	c->in_len += (size_t)n;
	if (c->state == CONN_SERVING || c->state == CONN_STREAMING) {
		/* Pipelined: kept for later, within a bound, then no more reading until then. */
		if (c->in_len - c->in_off > bound) {
			c->reading_paused = true;
			event_del(c->rev);
		}
		return;
	}
	conn_process(c);
}

/* A request's deadlines and idle times read the loop's clock once (base/clock.h). */
static void on_read(evutil_socket_t fd, short what, void *arg)
{
	bool held = clock_hold();

	(void)what;
	read_some(fd, arg);
	clock_release(held);
}

/* --- connections --------------------------------------------------------------------- */

static void no_delay(int fd)
{
	int one = 1;

	/* Answers and stream events leave at once, not after the peer's delayed ACK. */
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) && errno != EOPNOTSUPP)
		log_debug("http: TCP_NODELAY: %s", strerror(errno));
}

static void conn_new(struct http_listener *l, int fd, const struct sockaddr_storage *peer,
		     socklen_t plen)
{
	struct http_server *s = l->s;
	struct http_conn *c = xcalloc(1, sizeof(*c));

	c->s = s;
	c->l = l;
	c->local = l->addr;
	c->fd = fd;
	list_init(&c->later);
	c->peer = *peer;
	c->peer_len = plen;
	http_parser_init_request(&c->parser, &parse_cb, c, s->lim.max_header);
	list_add_tail(&c->link, &s->conns);
	if (peer->ss_family == AF_INET || peer->ss_family == AF_INET6)
		no_delay(fd);
	c->rev = event_new(s->base, fd, EV_READ | EV_PERSIST, on_read, c);
	if (!c->rev || event_add(c->rev, NULL)) {
		log_warn("http: cannot watch a new connection");
		conn_close(c);
		return;
	}
	c->deadline_ms = clock_loop_ms() + (uint64_t)s->lim.timeout_ms;
	(void)conn_admit(c);
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
	struct http_listener *l = arg;

	(void)fd;
	(void)what;
	if (event_add(l->ev, NULL))
		log_error("http: cannot listen again on descriptor %d", l->fd);
}

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
	struct http_listener *l = arg;

	(void)what;
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int cfd = accept4(fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (cfd >= 0) {
			conn_new(l, cfd, &ss, sl);
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
			/* Level-triggered: waiting for a descriptor would spin. Pause instead. */
			struct timeval tv = { 0, ACCEPT_PAUSE_MS * 1000 };
			log_warn("http: cannot accept: %s; pausing %d ms", strerror(errno),
				 ACCEPT_PAUSE_MS);
			event_del(l->ev);
			if (event_add(l->resume, &tv))
				log_error("http: cannot schedule accepting again");
		}
		break;
	}
}

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
	struct http_server *s = arg;
	uint64_t now = clock_loop_ms();
	struct http_conn *c, *tmp;

	(void)fd;
	(void)what;
	list_for_each_entry_safe(c, tmp, &s->conns, link) {
		if (!c->deadline_ms || now < c->deadline_ms || c->busy)
			continue;
		if (c->state == CONN_READING)
			log_info("cut a client that did not send its request within %d ms",
				 s->lim.timeout_ms);
		conn_close(c);
	}
}

int http_conn_fd(const struct http_conn *c) { return c->fd; }
struct http_listener *http_conn_listener(const struct http_conn *c) { return c->l; }
const struct sockaddr_storage *http_conn_local(const struct http_conn *c) { return &c->local; }
bool http_conn_handed(const struct http_conn *c) { return c->handed; }
void http_conn_set_data(struct http_conn *c, void *data) { c->data = data; }
void *http_conn_data(const struct http_conn *c) { return c->data; }

const struct sockaddr *http_conn_peer(const struct http_conn *c, socklen_t *len)
{
	if (len)
		*len = c->peer_len;
	return (const struct sockaddr *)&c->peer;
}

const char *http_conn_peer_text(const struct http_conn *c, uint16_t *port)
{
	struct http_conn *m = (struct http_conn *)c;

	if (!m->peer_text[0]) {
		if (c->peer.ss_family == AF_INET) {
			const struct sockaddr_in *a = (const void *)&c->peer;
			inet_ntop(AF_INET, &a->sin_addr, m->peer_text, sizeof(m->peer_text));
			m->peer_port = ntohs(a->sin_port);
		} else if (c->peer.ss_family == AF_INET6) {
			const struct sockaddr_in6 *a = (const void *)&c->peer;
			inet_ntop(AF_INET6, &a->sin6_addr, m->peer_text, sizeof(m->peer_text));
			m->peer_port = ntohs(a->sin6_port);
		}
	}
	if (port)
		*port = c->peer_port;
	return c->peer_text;
}

void http_conn_refuse(struct http_conn *c, const char *bytes, size_t len)
{
	struct iovec iov = { (void *)bytes, len };

	c->req_live = false;
	conn_write(c, &iov, 1);
}

/* --- the server ---------------------------------------------------------------------- */

static int listener_add(struct http_server *s, int fd, struct http_listener **out)
{
	struct http_listener *l = xcalloc(1, sizeof(*l));

	socklen_t sl = sizeof(l->addr);

	l->s = s;
	l->fd = fd;
	if (getsockname(fd, (struct sockaddr *)&l->addr, &sl))
		l->addr.ss_family = AF_UNSPEC;
	l->ev = event_new(s->base, fd, EV_READ | EV_PERSIST, on_accept, l);
	l->resume = evtimer_new(s->base, on_resume, l);
	list_add_tail(&l->link, &s->listeners);
	if (!l->ev || !l->resume || event_add(l->ev, NULL)) {
		http_server_unbind(s, l);
		return -ENOMEM;
	}
	if (out)
		*out = l;
	return 0;
}

int http_server_adopt(struct http_server *s, int fd, struct http_listener **out)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		int rc = -errno;
		close(fd);
		return rc;
	}
	return listener_add(s, fd, out);
}

static int bind_on(struct http_server *s, const char *what, const char *host, int port,
		   bool shared, int *bound, struct http_listener **out)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE };
	struct addrinfo *ai = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char service[8];
	int fd = -1, one = 1, rc, g;

	snprintf(service, sizeof(service), "%d", port);
	if ((g = getaddrinfo(host, service, &hints, &ai)) != 0) {
		log_error("%s: cannot resolve %s: %s", what, host, gai_strerror(g));
		return -EADDRNOTAVAIL;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    (shared && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one))) ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, SOMAXCONN)) {
		rc = errno ? -errno : -EADDRNOTAVAIL;
		log_error("%s: cannot listen on %s:%d: %s", what, host, port, strerror(-rc));
		goto fail;
	}
	*bound = port;
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
		*bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
							: ((struct sockaddr_in *)&ss)->sin_port);
	freeaddrinfo(ai);
	return listener_add(s, fd, out);
fail:
	if (fd >= 0)
		close(fd);
	freeaddrinfo(ai);
	return rc;
}

int http_server_bind(struct http_server *s, const char *what, const char *host, int port,
		     int *bound, struct http_listener **out)
{
	return bind_on(s, what, host, port, false, bound, out);
}

int http_server_bind_shared(struct http_server *s, const char *what, const char *host,
			    int port, int *bound, struct http_listener **out)
{
	return bind_on(s, what, host, port, true, bound, out);
}

void http_server_unbind(struct http_server *s, struct http_listener *l)
{
	(void)s;
	if (!l)
		return;
	list_del(&l->link);
	event_free_opt(l->ev);
	event_free_opt(l->resume);
	close(l->fd);
	free(l);
}

int http_listener_fd(const struct http_listener *l) { return l->fd; }
const struct sockaddr_storage *http_listener_addr(const struct http_listener *l)
{
	return &l->addr;
}

void http_server_set_limits(struct http_server *s, const struct http_server_limits *l)
{
	s->lim = *l;
	if (s->lim.timeout_ms <= 0)
		s->lim.timeout_ms = 30000;
}

int http_server_new(struct event_base *base, const struct http_server_hooks *hooks, void *arg,
		    struct http_server **out)
{
	struct http_server *s = xcalloc(1, sizeof(*s));
	struct timeval tv = { 0, SWEEP_MS * 1000 };

	s->base = base;
	s->hooks = *hooks;
	s->arg = arg;
	s->lim = (struct http_server_limits){ 1 << 20, 16 << 10, 30000 };
	list_init(&s->listeners);
	list_init(&s->conns);
	list_init(&s->failed);
	list_init(&s->later);
	list_init(&s->inbox);
	pthread_mutex_init(&s->inbox_mu, NULL);
	s->sweep = event_new(base, -1, EV_PERSIST, on_sweep, s);
	s->reaper = event_new(base, -1, 0, on_reap, s);
	if (!s->sweep || !s->reaper || event_add(s->sweep, &tv) ||
	    doorbell_init(&s->bell, base, "http hand-over", on_inbox, s)) {
		http_server_free(s);
		return -ENOMEM;
	}
	*out = s;
	return 0;
}

void http_server_free(struct http_server *s)
{
	if (!s)
		return;
	while (!list_empty(&s->listeners))
		http_server_unbind(s, list_first_entry(&s->listeners, struct http_listener, link));
	list_splice_tail_init(&s->failed, &s->conns);
	/* Handed over and not taken yet: closed as this server's (their close hook ran where
	 * they came from). */
	pthread_mutex_lock(&s->inbox_mu);
	while (!list_empty(&s->inbox)) {
		struct http_conn *c = list_first_entry(&s->inbox, struct http_conn, link);
		list_del(&c->link);
		c->s = s;
		c->moving_to = NULL;
		list_add_tail(&c->link, &s->conns);
	}
	pthread_mutex_unlock(&s->inbox_mu);
	while (!list_empty(&s->conns)) {
		struct http_conn *c = list_first_entry(&s->conns, struct http_conn, link);
		c->busy = 0;
		c->dead = false;
		conn_close(c);
	}
	event_free_opt(s->sweep);
	event_free_opt(s->reaper);
	doorbell_fini(&s->bell);
	pthread_mutex_destroy(&s->inbox_mu);
	free(s->head);
	free(s);
}
