/* test_http_client: the HTTP/1.1 response parser on crafted bytes, and the client against a
 * scripted server on real loopback sockets of the same event loop: keep-alive reuse, a server
 * that closes a pooled connection, the one retry on a reused connection, early close, stray
 * bytes after an answer, close-delimited and slow chunked bodies, timeouts, refused connects.
 */
#include "base/event_opt.h"
#include "base/clock.h"
#include "base/http_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CUnit/Basic.h>
#include <event2/event.h>

#include "cunit_main.h"

/* ---- the parser ---- */

struct got {
	int heads, status;
	bool keep_alive;
	char body[4096];
	size_t len;
	char ctype[64];
};

static int g_head(void *arg, const struct http_head *h)
{
	struct got *g = arg;
	const char *ct = http_head_get(h, "content-type");

	g->heads++;
	g->status = h->status;
	g->keep_alive = h->keep_alive;
	snprintf(g->ctype, sizeof(g->ctype), "%s", ct ? ct : "");
	return 0;
}

static int g_body(void *arg, const char *p, size_t n)
{
	struct got *g = arg;

	if (g->len + n > sizeof(g->body))
		return -EMSGSIZE;
	memcpy(g->body + g->len, p, n);
	g->len += n;
	return 0;
}

static const struct http_parse_cb gcb = { g_head, g_body };

/* Parse s whole; returns the feed result and fills g. */
static ssize_t parse(const char *s, size_t n, struct got *g)
{
	struct http_parser p;
	ssize_t rc;

	memset(g, 0, sizeof(*g));
	http_parser_init(&p, &gcb, g);
	rc = http_parse_feed(&p, s, n);
	if (rc >= 0 && !http_parse_done(&p))
		rc = http_parse_eof(&p) == 0 ? rc : -ECONNRESET;
	http_parser_free(&p);
	return rc;
}

static const char chunked[] =
	"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
	"7\r\ndata: a\r\n18;ext=1\r\n\n\ndata: {\"x\":\"hello!\"}\n\n\r\n0\r\nX-T: 1\r\n\r\n";
static const char chunked_body[] = "data: a\n\ndata: {\"x\":\"hello!\"}\n\n";

static void test_chunked_split_everywhere(void)
{
	size_t n = strlen(chunked);

	/* two pieces cut at every byte, then one byte at a time */
	for (size_t cut = 0; cut <= n; cut++) {
		struct http_parser p;
		struct got g = { 0 };
		http_parser_init(&p, &gcb, &g);
		ssize_t a = http_parse_feed(&p, chunked, cut);
		ssize_t b = http_parse_feed(&p, chunked + cut, n - cut);
		CU_ASSERT_EQUAL(a, (ssize_t)cut);
		CU_ASSERT_EQUAL(b, (ssize_t)(n - cut));
		CU_ASSERT(http_parse_done(&p));
		CU_ASSERT_EQUAL(g.heads, 1);
		CU_ASSERT(g.len == strlen(chunked_body) && !memcmp(g.body, chunked_body, g.len));
		http_parser_free(&p);
	}
	struct http_parser p;
	struct got g = { 0 };
	http_parser_init(&p, &gcb, &g);
	for (size_t i = 0; i < n; i++)
		CU_ASSERT_EQUAL(http_parse_feed(&p, chunked + i, 1), 1);
	CU_ASSERT(http_parse_done(&p));
	CU_ASSERT_STRING_EQUAL(g.ctype, "text/event-stream");
	CU_ASSERT(g.keep_alive);
	CU_ASSERT(g.len == strlen(chunked_body) && !memcmp(g.body, chunked_body, g.len));
	http_parser_free(&p);
}

static void test_lengths_and_eof(void)
{
	struct got g;
	const char *s;

	s = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
	CU_ASSERT_EQUAL(parse(s, strlen(s), &g), (ssize_t)strlen(s));
	CU_ASSERT(g.len == 5 && !memcmp(g.body, "hello", 5) && g.keep_alive);
	/* cut short: the connection's end is an error */
	CU_ASSERT_EQUAL(parse(s, strlen(s) - 1, &g), -ECONNRESET);
	/* close-delimited: the end completes it, and the connection is not reusable */
	s = "HTTP/1.1 200 OK\r\n\r\nto the end";
	CU_ASSERT_EQUAL(parse(s, strlen(s), &g), (ssize_t)strlen(s));
	CU_ASSERT(g.len == 10 && !g.keep_alive);
	/* interim 100 skipped; 204 has no body; Connection: close and HTTP/1.0 not reusable */
	s = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nConnection: Close\r\n\r\n";
	CU_ASSERT_EQUAL(parse(s, strlen(s), &g), (ssize_t)strlen(s));
	CU_ASSERT(g.heads == 1 && g.status == 204 && !g.keep_alive && g.len == 0);
	/* a status line without its reason phrase */
	s = "HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok";
	CU_ASSERT_EQUAL(parse(s, strlen(s), &g), (ssize_t)strlen(s));
	CU_ASSERT(g.status == 200 && g.len == 2);
	s = "HTTP/1.0 202 Accepted\r\nContent-Length: 0\r\n\r\n";
	CU_ASSERT_EQUAL(parse(s, strlen(s), &g), (ssize_t)strlen(s));
	CU_ASSERT(g.status == 202 && !g.keep_alive);
	/* repeated identical Content-Length is fine */
	s = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok";
	CU_ASSERT_EQUAL(parse(s, strlen(s), &g), (ssize_t)strlen(s));
	/* no answer at all */
	CU_ASSERT_EQUAL(parse("", 0, &g), -ECONNRESET);
}

static void test_pipelined_garbage(void)
{
	const char *one = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
	char s[256];
	struct got g;

	snprintf(s, sizeof(s), "%sHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nbad", one);
	/* the parser stops at the end of the first answer; the rest is not consumed */
	CU_ASSERT_EQUAL(parse(s, strlen(s), &g), (ssize_t)strlen(one));
	CU_ASSERT(g.len == 2 && g.heads == 1);
}

static void test_malformed(void)
{
	static const char *bad[] = {
		"HTTP/1.1 200 OK\nContent-Length: 0\n\n",                      /* bare LF */
		"HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n",   /* obs-fold */
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokX\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n",
		"HTTP/2 200 OK\r\n\r\n",
		"HTTP/1.1 20 OK\r\n\r\n",
		"HTTP/1.1 600 Huh\r\n\r\n",
		"HTTP/1.1 101 Switching Protocols\r\n\r\n",
		"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX: a\x01b\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX: a\rb\r\nContent-Length: 0\r\n\r\n",  /* a CR alone */
		"HTTP/1.1 200 OK\r\n\rX: a\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\r\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200\r\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 O\rK\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 20\r\nContent-Length: 0\r\n\r\n",           /* a status line too short */
		"HTTP/1.1 200 OK\r\n: x\r\n\r\n",
		"HTTP/1.1 204 No Content\r\nContent-Length: 4\r\n\r\nbody",
		"<html>nonsense</html>\r\n\r\n",
	};
	struct got g;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ssize_t rc = parse(bad[i], strlen(bad[i]), &g);
		if (rc != -EPROTO && rc != -EMSGSIZE)
			printf("\n  accepted bad answer %zu (rc %zd)\n", i, rc);
		CU_ASSERT(rc == -EPROTO || rc == -EMSGSIZE);
	}
}

static void test_oversize_head(void)
{
	size_t n = HTTP_HEAD_MAX + 100;
	char *s = malloc(n + 64);
	struct got g;
	size_t off;

	CU_ASSERT_FATAL(s != NULL);
	/* one endless header */
	off = (size_t)sprintf(s, "HTTP/1.1 200 OK\r\nX: ");
	memset(s + off, 'a', n - off);
	CU_ASSERT_EQUAL(parse(s, n, &g), -EMSGSIZE);
	/* too many headers */
	off = (size_t)sprintf(s, "HTTP/1.1 200 OK\r\n");
	for (int i = 0; i <= HTTP_HEADERS_MAX; i++)
		off += (size_t)sprintf(s + off, "X-%d: 1\r\n", i);
	off += (size_t)sprintf(s + off, "Content-Length: 0\r\n\r\n");
	CU_ASSERT_EQUAL(parse(s, off, &g), -EMSGSIZE);
	free(s);
}

/* ---- the client against a scripted server ---- */

enum script {
	S_KEEP,                 /* answer, keep the connection */
	S_CLOSE_AFTER,          /* answer with Connection: close, then close */
	S_SILENT_CLOSE,         /* read the request, close without a byte */
	S_CLOSE_ON_REUSE,       /* answer the first request; close on the second, silently */
	S_PARTIAL_ON_REUSE,     /* answer the first; on the second, half a head and close */
	S_GARBAGE,              /* answer plus a second, unasked answer */
	S_TO_THE_END,           /* a close-delimited body */
	S_SLOW_CHUNKS,          /* a chunked body, a few bytes per timer tick */
	S_NEVER,                /* read, never answer */
};

static struct event_base *base;
struct sconn;

static struct {
	int lfd, port;
	struct event *accept_ev;
	enum script script;
	int accepts, requests;
	char last_body[256];
	struct sconn *last;     /* the connection that served the last request */
} srv;

struct sconn {
	struct sconn *next, *prev;      /* every open one, for the clean-up */
	int fd, served;
	struct event *rd, *tick;
	char in[8192];
	size_t len;
	const char *out;        /* slow answer left to send */
};

static struct sconn *sconns;

static void sconn_close(struct sconn *s)
{
	if (srv.last == s)
		srv.last = NULL;
	if (s->prev)
		s->prev->next = s->next;
	else
		sconns = s->next;
	if (s->next)
		s->next->prev = s->prev;
	event_free(s->rd);
	event_free_opt(s->tick);
	close(s->fd);
	free(s);
}

static const char slow_answer[] =
	"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
	"10\r\ndata: slow body\n\r\n1\r\n\n\r\n0\r\n\r\n";

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct sconn *s = arg;
	struct timeval tv = { 0, 2000 };
	size_t n = strlen(s->out) < 5 ? strlen(s->out) : 5;

	if (write(s->fd, s->out, n) != (ssize_t)n)
		return;
	s->out += n;
	if (*s->out)
		evtimer_add(s->tick, &tv);
}

static void reply(struct sconn *s, const char *a)
{
	if (write(s->fd, a, strlen(a)) < 0)
		perror("write");
}

/* A whole request in s->in: answer it per the script. Returns false when s was closed. */
static bool serve(struct sconn *s)
{
	const char *ok = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
			 "Content-Length: 11\r\n\r\n{\"ok\":true}";

	srv.requests++;
	s->served++;
	srv.last = s;
	switch (srv.script) {
	case S_KEEP:
		reply(s, ok);
		return true;
	case S_CLOSE_AFTER:
		reply(s, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok");
		break;
	case S_SILENT_CLOSE:
		break;
	case S_CLOSE_ON_REUSE:
		if (s->served > 1)
			break;
		reply(s, ok);
		return true;
	case S_PARTIAL_ON_REUSE:
		if (s->served > 1) {
			reply(s, "HTTP/1.1 200 OK\r\nContent-Le");
			break;
		}
		reply(s, ok);
		return true;
	case S_GARBAGE:
		reply(s, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
		      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nno");
		return true;
	case S_TO_THE_END:
		reply(s, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"end\":1}");
		break;
	case S_SLOW_CHUNKS:
		s->out = slow_answer;
		s->tick = evtimer_new(base, on_tick, s);
		on_tick(-1, 0, s);
		return true;
	case S_NEVER:
		return true;
	}
	sconn_close(s);
	return false;
}

static void on_sread(evutil_socket_t fd, short what, void *arg)
{
	struct sconn *s = arg;
	ssize_t n = read(fd, s->in + s->len, sizeof(s->in) - 1 - s->len);
	char *end, *cl;

	if (n <= 0) {
		sconn_close(s);
		return;
	}
	s->len += (size_t)n;
	s->in[s->len] = '\0';
	while ((end = strstr(s->in, "\r\n\r\n"))) {
		size_t head = (size_t)(end + 4 - s->in), body = 0;
		if ((cl = strcasestr(s->in, "Content-Length:")) && cl < end)
			body = strtoul(cl + 15, NULL, 10);
		if (s->len < head + body)
			return;
		snprintf(srv.last_body, sizeof(srv.last_body), "%.*s", (int)body, s->in + head);
		memmove(s->in, s->in + head + body, s->len - head - body + 1);
		s->len -= head + body;
		if (!serve(s))
			return;
	}
}

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
	int c = accept(fd, NULL, NULL);
	struct sconn *s;

	if (c < 0)
		return;
	srv.accepts++;
	s = calloc(1, sizeof(*s));
	s->fd = c;
	if ((s->next = sconns))
		sconns->prev = s;
	sconns = s;
	s->rd = event_new(base, c, EV_READ | EV_PERSIST, on_sread, s);
	event_add(s->rd, NULL);
}

static int srv_start(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int one = 1;

	srv.lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	setsockopt(srv.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (srv.lfd < 0 || bind(srv.lfd, (struct sockaddr *)&a, sizeof(a)) ||
	    listen(srv.lfd, 64) || getsockname(srv.lfd, (struct sockaddr *)&a, &len))
		return -1;
	srv.port = ntohs(a.sin_port);
	srv.accept_ev = event_new(base, srv.lfd, EV_READ | EV_PERSIST, on_accept, NULL);
	return event_add(srv.accept_ev, NULL);
}

/* One request's outcome. */
struct res {
	bool done;
	int err, status;
	char body[512];
	size_t len;
	int bodies;             /* body callbacks: > 1 for a slow body */
};

static int r_head(void *arg, const struct http_head *h)
{
	((struct res *)arg)->status = h->status;
	return 0;
}

static int r_body(void *arg, const char *p, size_t n)
{
	struct res *r = arg;

	if (r->len + n >= sizeof(r->body))
		return -EMSGSIZE;
	memcpy(r->body + r->len, p, n);
	r->len += n;
	r->bodies++;
	return 0;
}

static void r_done(void *arg, int err)
{
	struct res *r = arg;

	r->done = true;
	r->err = err;
}

static const struct http_request_cb rcb = { r_head, r_body, r_done };

static void run_until_done(struct res *r, int ms)
{
	struct timeval tv = { 0, 1000 };

	for (int i = 0; i < ms && !r->done; i++) {
		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
	}
}

static void spin(int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
}

/* POST body to the scripted server; wait for the outcome. */
static void post(struct http_pool *p, const char *body, long timeout_ms, struct res *r)
{
	struct http_request *req = NULL;
	struct http_request_spec s = {
		.method = "POST", .target = "/mcp", .host = "127.0.0.1",
		.headers = "Content-Type: application/json\r\n", .headers_len = 32,
		.body = body, .body_len = strlen(body), .has_body = true,
		.timeout_ms = timeout_ms, .connect_ms = 1000,
	};

	memset(r, 0, sizeof(*r));
	CU_ASSERT_FATAL(http_request_start(p, &s, &rcb, r, &req) == 0);
	CU_ASSERT(!r->done);            /* never a callback from inside start */
	run_until_done(r, 5000);
	CU_ASSERT(r->done);
}

static struct http_pool *pool(void)
{
	struct http_pool *p = NULL;

	CU_ASSERT_FATAL(http_pool_get("127.0.0.1", (unsigned)srv.port, &p) == 0);
	return p;
}

/* post() with the server playing script, p's stats just before it in *st0 and after it in *st
 * (what a test compares to see what one request did to the pool). */
static void post_counted(struct http_pool *p, enum script script, const char *body,
			 struct res *r, struct http_pool_stats *st0, struct http_pool_stats *st)
{
	srv.script = script;
	http_pool_stats(p, st0);
	post(p, body, 2000, r);
	http_pool_stats(p, st);
}

static void test_keep_alive(void)
{
	struct http_pool *p = pool();
	struct http_pool_stats st;
	struct res r;

	srv.script = S_KEEP;
	srv.accepts = srv.requests = 0;
	for (int i = 0; i < 5; i++) {
		char body[32];
		snprintf(body, sizeof(body), "{\"n\":%d}", i);
		post(p, body, 2000, &r);
		CU_ASSERT(r.err == 0 && r.status == 200);
		CU_ASSERT(r.len == 11 && !memcmp(r.body, "{\"ok\":true}", 11));
		CU_ASSERT_STRING_EQUAL(srv.last_body, body);
	}
	/* five requests, one connection */
	CU_ASSERT_EQUAL(srv.accepts, 1);
	CU_ASSERT_EQUAL(srv.requests, 5);
	http_pool_stats(p, &st);
	CU_ASSERT(st.open == 1 && st.idle == 1);
}

static void test_server_closes_pooled(void)
{
	struct http_pool *p = pool();
	struct http_pool_stats st0, st;
	struct res r;

	/* "Connection: close": answered, then not pooled */
	post_counted(p, S_CLOSE_AFTER, "{}", &r, &st0, &st);
	CU_ASSERT(r.err == 0 && r.status == 200 && r.len == 2);
	CU_ASSERT_EQUAL(st.idle, st0.idle - (st0.idle > 0));
	/* a pooled connection the server closes is seen closed at once (EOF on the idle read
	 * event), not when the next request would have used it */
	srv.script = S_KEEP;
	post(p, "{}", 2000, &r);
	CU_ASSERT(r.err == 0);
	http_pool_stats(p, &st0);
	CU_ASSERT_FATAL(st0.idle >= 1 && srv.last);
	sconn_close(srv.last);
	srv.last = NULL;
	spin(30);
	http_pool_stats(p, &st);
	CU_ASSERT_EQUAL(st.open, st0.open - 1);
	CU_ASSERT_EQUAL(st.idle, st0.idle - 1);
	post(p, "{}", 2000, &r);
	CU_ASSERT(r.err == 0);
	http_pool_stats(p, &st);
	CU_ASSERT_EQUAL(st.retries, st0.retries);
}

/* A fresh listener and its pool, so that the counts are the caller's; the server plays
 * script. */
static struct http_pool *fresh_pool(enum script script)
{
	event_free(srv.accept_ev);
	close(srv.lfd);
	CU_ASSERT_FATAL(srv_start() == 0);
	srv.script = script;
	srv.accepts = srv.requests = 0;
	return pool();
}

static void test_retry_on_reused(void)
{
	struct http_pool_stats st0, st;
	struct http_pool *p = fresh_pool(S_CLOSE_ON_REUSE);
	struct res r;

	post(p, "{\"first\":1}", 2000, &r);
	CU_ASSERT(r.err == 0);
	/* the second goes on the pooled connection, which the server closes without a byte:
	 * sent again, once, on a fresh connection, which answers */
	post_counted(p, S_CLOSE_ON_REUSE, "{\"second\":1}", &r, &st0, &st);
	CU_ASSERT(r.err == 0 && r.status == 200);
	CU_ASSERT_EQUAL(st.retries, st0.retries + 1);
	CU_ASSERT_EQUAL(srv.accepts, 2);
	CU_ASSERT_EQUAL(srv.requests, 3);

	/* an answer that began and was cut: an error, never retried (the call may have run) */
	while (sconns)                  /* the pool empties: the next one is fresh */
		sconn_close(sconns);
	spin(30);
	srv.script = S_PARTIAL_ON_REUSE;
	post(p, "{\"third\":1}", 2000, &r);
	CU_ASSERT(r.err == 0);
	srv.requests = 0;
	post_counted(p, S_PARTIAL_ON_REUSE, "{\"fourth\":1}", &r, &st0, &st);
	CU_ASSERT_EQUAL(r.err, -ECONNRESET);
	CU_ASSERT_EQUAL(srv.requests, 1);
	CU_ASSERT_EQUAL(st.retries, st0.retries);

	/* on a fresh connection, an early close is an error and never retried */
	srv.script = S_SILENT_CLOSE;
	while (st.idle) {               /* empty the pool first */
		struct res tmp;
		post(p, "{}", 2000, &tmp);
		http_pool_stats(p, &st);
	}
	srv.requests = 0;
	post(p, "{\"once\":1}", 2000, &r);
	CU_ASSERT_EQUAL(r.err, -ECONNRESET);
	CU_ASSERT_EQUAL(srv.requests, 1);
}

/* POST a body given in pieces; wait for the outcome. */
static void post_pieces(struct http_pool *p, const struct iovec *iov, int n, struct res *r)
{
	struct http_request *req = NULL;
	struct http_request_spec s = {
		.method = "POST", .target = "/mcp", .host = "127.0.0.1",
		.body_iov = iov, .body_iovcnt = n, .has_body = true,
		.timeout_ms = 2000, .connect_ms = 1000,
	};

	memset(r, 0, sizeof(*r));
	CU_ASSERT_FATAL(http_request_start(p, &s, &rcb, r, &req) == 0);
	run_until_done(r, 5000);
	CU_ASSERT(r->done);
}

/* A body in pieces (a print around text kept elsewhere) goes out whole and in order, with
 * their total as its length, empty pieces and all; sent again whole when a reused connection
 * turns out closed; more pieces than the client holds are refused. */
static void test_body_pieces(void)
{
	static const char a[] = "{\"jsonrpc\":\"2.0\",\"params\":", b[] = "{\"k\":\"kept\"}",
			  c[] = ",\"id\":1}";
	struct iovec iov[HTTP_BODY_PIECES + 1] = {
		{ (void *)a, 3 }, { (void *)(a + 3), sizeof(a) - 4 }, { (void *)b, 0 },
		{ (void *)b, sizeof(b) - 1 }, { (void *)c, sizeof(c) - 1 }, { (void *)c, 0 },
	};
	struct http_pool_stats st0, st;
	struct http_request *req = NULL;
	struct http_pool *p = fresh_pool(S_CLOSE_ON_REUSE);
	struct res r;

	post_pieces(p, iov, 6, &r);
	CU_ASSERT(r.err == 0 && r.status == 200);
	CU_ASSERT_STRING_EQUAL(srv.last_body, "{\"jsonrpc\":\"2.0\",\"params\":{\"k\":\"kept\"},\"id\":1}");
	/* on the pooled connection, which the server closes: all of it again, on a new one */
	memset(srv.last_body, 0, sizeof(srv.last_body));
	http_pool_stats(p, &st0);
	post_pieces(p, iov + 3, 2, &r);
	http_pool_stats(p, &st);
	CU_ASSERT(r.err == 0 && r.status == 200);
	CU_ASSERT_EQUAL(st.retries, st0.retries + 1);
	CU_ASSERT_STRING_EQUAL(srv.last_body, "{\"k\":\"kept\"},\"id\":1}");
	/* no pieces: an empty body, its length said */
	post_pieces(p, iov, 0, &r);
	CU_ASSERT(r.err == 0 && r.status == 200);
	CU_ASSERT_STRING_EQUAL(srv.last_body, "");
	struct http_request_spec s = {
		.method = "POST", .target = "/mcp", .host = "127.0.0.1",
		.body_iov = iov, .body_iovcnt = HTTP_BODY_PIECES + 1, .has_body = true,
	};
	CU_ASSERT_EQUAL(http_request_start(p, &s, &rcb, &r, &req), -EINVAL);
	CU_ASSERT_PTR_NULL(req);
	srv.script = S_KEEP;
}

static void test_garbage_and_close_delimited(void)
{
	struct http_pool *p = pool();
	struct http_pool_stats st0, st;
	struct res r;

	post_counted(p, S_GARBAGE, "{}", &r, &st0, &st);
	CU_ASSERT(r.err == 0 && r.len == 2 && !memcmp(r.body, "ok", 2));
	/* the connection that carried an unasked answer is not pooled */
	CU_ASSERT(st.idle <= st0.idle);
	srv.script = S_TO_THE_END;
	post(p, "{}", 2000, &r);
	CU_ASSERT(r.err == 0 && r.status == 200);
	CU_ASSERT(r.len == 9 && !memcmp(r.body, "{\"end\":1}", 9));
}

static void test_slow_body(void)
{
	struct http_pool *p = pool();
	struct res r;

	srv.script = S_SLOW_CHUNKS;
	post(p, "{}", 3000, &r);
	CU_ASSERT(r.err == 0 && r.status == 200);
	CU_ASSERT(r.len == 17 && !memcmp(r.body, "data: slow body\n\n", 17));
	CU_ASSERT(r.bodies > 1);        /* streamed as it came, not at the end */
}

static void test_timeout_and_refused(void)
{
	struct http_pool *p = pool(), *dead = NULL;
	struct res r;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);

	srv.script = S_NEVER;
	post(p, "{}", 200, &r);
	CU_ASSERT_EQUAL(r.err, -ETIMEDOUT);
	/* a port nobody listens on: refused */
	CU_ASSERT_FATAL(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
			getsockname(fd, (struct sockaddr *)&a, &len) == 0);
	CU_ASSERT_FATAL(http_pool_get("127.0.0.1", ntohs(a.sin_port), &dead) == 0);
	post(dead, "{}", 2000, &r);
	CU_ASSERT_EQUAL(r.err, -ECONNREFUSED);
	close(fd);
	CU_ASSERT(http_pool_get("localhost", 80, &dead) == -EINVAL);
}

/* The connection's timer is set lazily (http_client.c: set_due). A short deadline answered in
 * time leaves the timer set for it while the connection idles: it fires early, and the idle
 * connection stays (and serves the next request). A deadline earlier than the one the timer
 * waits for (a reused connection's idle expiry, a minute off) moves it: the request times
 * out on time. */
static void test_lazy_timer(void)
{
	struct http_pool *p = pool();
	struct http_pool_stats st0, st;
	struct res r;
	int accepts;
	uint64_t t0, ms;

	srv.script = S_KEEP;
	post(p, "{\"short\":1}", 150, &r);
	CU_ASSERT(r.err == 0 && r.status == 200);
	accepts = srv.accepts;
	http_pool_stats(p, &st0);
	spin(400);                      /* past the answered request's deadline */
	http_pool_stats(p, &st);
	CU_ASSERT(st0.idle >= 1 && st.idle == st0.idle && st.open == st0.open);
	post(p, "{\"again\":1}", 2000, &r);
	CU_ASSERT(r.err == 0 && r.status == 200);
	CU_ASSERT_EQUAL(srv.accepts, accepts);        /* the idle connection served it */
	srv.script = S_NEVER;
	t0 = clock_mono_ms();
	post(p, "{}", 200, &r);
	ms = clock_mono_ms() - t0;
	CU_ASSERT_EQUAL(r.err, -ETIMEDOUT);
	CU_ASSERT_EQUAL(srv.accepts, accepts);        /* on the reused connection */
	CU_ASSERT(ms >= 190 && ms < 1500);
}

static void test_cancel(void)
{
	struct http_pool *p = pool();
	struct http_request *req = NULL;
	struct res r = { 0 };
	struct http_request_spec s = {
		.method = "GET", .target = "/", .host = "127.0.0.1", .timeout_ms = 100,
	};

	srv.script = S_NEVER;
	CU_ASSERT_FATAL(http_request_start(p, &s, &rcb, &r, &req) == 0);
	spin(20);
	http_request_cancel(req);
	spin(200);
	CU_ASSERT(!r.done);             /* no callback after cancel, not even the timeout */
}

static int init(void)
{
	if (!(base = event_base_new()) || http_client_init(base, NULL) != 0)
		return -1;
	return srv_start();
}

static int clean(void)
{
	http_client_shutdown();
	while (sconns)
		sconn_close(sconns);
	event_free(srv.accept_ev);
	close(srv.lfd);
	event_base_free(base);
	return 0;
}

CU_MAIN("http_client", init, clean,
	{ "parser: chunked answer cut at every byte", test_chunked_split_everywhere },
	{ "parser: lengths, close-delimited, 1xx, 204, cut short", test_lengths_and_eof },
	{ "parser: stops at the end of an answer", test_pipelined_garbage },
	{ "parser: malformed answers refused", test_malformed },
	{ "parser: oversize head and too many headers", test_oversize_head },
	{ "client: keep-alive, one connection", test_keep_alive },
	{ "client: Connection: close is honoured", test_server_closes_pooled },
	{ "client: one retry on a reused connection, never on a fresh one",
	  test_retry_on_reused },
	{ "client: a body in pieces", test_body_pieces },
	{ "client: unasked bytes, close-delimited body", test_garbage_and_close_delimited },
	{ "client: slow chunked body streamed", test_slow_body },
	{ "client: timeout and refused", test_timeout_and_refused },
	{ "client: the timer set lazily fires early harmlessly, moves for an earlier deadline",
	  test_lazy_timer },
	{ "client: cancel", test_cancel })
