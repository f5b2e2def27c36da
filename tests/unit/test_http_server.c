/* test_http_server: the agent listener's HTTP/1.1 server (base/http_server) on a real event
 * loop with real loopback and unix sockets, driven by plain clients written here: what an
 * agent sees of keep-alive, pipelining, streaming, the limits and refusals, deadlines, a
 * client leaving while its request is served, and the connection caps' hooks. */
#include <CUnit/Basic.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <event2/event.h>

#include "cunit_main.h"
#include "base/http_server.h"

/* ---- the server side ---- */

enum mode { ANSWER_NOW, ANSWER_LATER, STREAM, HOLD };

struct srv {
	struct event_base *base;
	struct http_server *s;
	int port;
	enum mode mode;
	unsigned requests, gone, accepted, closed, refuse_next;
	int refused[8];
	unsigned nrefused;
	struct http_req *held;
	struct event *later;
	char last_body[256];
};

static void on_gone(void *arg)
{
	struct srv *v = arg;

	v->gone++;
	v->held = NULL;
}

static void answer(struct http_req *r, const char *path)
{
	char body[320];

	snprintf(body, sizeof(body), "{\"path\":\"%s\"}", path ? path : "");
	http_req_set_header(r, "X-Test", "first");
	http_req_set_header(r, "x-test", "second");     /* replaces, whatever the case */
	http_req_send_text(r, 200, NULL, "application/json", body);
}

static void on_later(evutil_socket_t fd, short what, void *arg)
{
	struct srv *v = arg;

	if (v->held) {
		struct http_req *r = v->held;
		v->held = NULL;
		answer(r, http_req_path(r));
	}
}

static void on_request(void *arg, struct http_req *r)
{
	struct srv *v = arg;
	size_t len;
	const char *body = http_req_body(r, &len);

	v->requests++;
	snprintf(v->last_body, sizeof(v->last_body), "%.*s", (int)len, body);
	switch (v->mode) {
	case ANSWER_NOW:
		answer(r, http_req_path(r));
		break;
	case ANSWER_LATER: {
		struct timeval tv = { 0, 100 * 1000 };
		v->held = r;
		http_req_on_gone(r, on_gone, v);
		evtimer_add(v->later, &tv);
		break;
	}
	case STREAM:
		http_req_set_header(r, "Content-Type", "text/event-stream");
		http_req_stream_start(r, 200, NULL);
		CU_ASSERT_EQUAL(http_req_stream_write(r, "data: one\n\n", 11), 0);
		CU_ASSERT_EQUAL(http_req_stream_write(r, "data: two\n\n", 11), 0);
		http_req_stream_end(r);
		break;
	case HOLD:
		v->held = r;
		http_req_on_gone(r, on_gone, v);
		break;
	}
}

static int on_accept(void *arg, struct http_conn *c)
{
	struct srv *v = arg;
	static const char no[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
				 "Connection: close\r\n\r\n";

	if (v->refuse_next) {
		v->refuse_next--;
		http_conn_refuse(c, no, sizeof(no) - 1);
		return -EBUSY;
	}
	v->accepted++;
	return 0;
}

static void on_close(void *arg, struct http_conn *c) { ((struct srv *)arg)->closed++; }

static void on_refused(void *arg, int status)
{
	struct srv *v = arg;

	if (v->nrefused < 8)
		v->refused[v->nrefused++] = status;
}

static const struct http_server_hooks hooks = { on_request, on_accept, on_close, on_refused };

static void srv_start(struct srv *v, size_t max_body, size_t max_header, int timeout_ms)
{
	struct http_server_limits l = { max_body, max_header, timeout_ms };

	memset(v, 0, sizeof(*v));
	v->base = event_base_new();
	CU_ASSERT_FATAL(v->base != NULL);
	v->later = evtimer_new(v->base, on_later, v);
	CU_ASSERT_FATAL(http_server_new(v->base, &hooks, v, &v->s) == 0);
	http_server_set_limits(v->s, &l);
	CU_ASSERT_FATAL(http_server_bind(v->s, "test", "127.0.0.1", 0, &v->port, NULL) == 0);
	CU_ASSERT_FATAL(v->port > 0);
}

static void srv_stop(struct srv *v)
{
	http_server_free(v->s);
	event_free(v->later);
	event_base_free(v->base);
}

/* ---- the client side: blocking sockets, every wait bounded, the loop turned meanwhile ---- */

static int connect_tcp(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	CU_ASSERT_FATAL(fd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CU_ASSERT_FATAL(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	return fd;
}

static void put(int fd, const char *s)
{
	CU_ASSERT_FATAL(write(fd, s, strlen(s)) == (ssize_t)strlen(s));
}

/* Read what arrives for up to ms (the loop runs meanwhile) or until the peer closes, into
 * buf; returns the bytes read, and *closed whether the server closed. Stops early once
 * `until` (if not NULL) appears. */
static size_t take(struct srv *v, int fd, char *buf, size_t cap, int ms, const char *until,
		   bool *closed)
{
	size_t n = 0;

	*closed = false;
	buf[0] = '\0';
	for (int waited = 0; waited < ms; waited += 5) {
		struct pollfd p = { fd, POLLIN, 0 };

		event_base_loop(v->base, EVLOOP_NONBLOCK);
		if (poll(&p, 1, 5) > 0) {
			ssize_t r = read(fd, buf + n, cap - 1 - n);
			if (r <= 0) {
				*closed = true;
				break;
			}
			n += (size_t)r;
			buf[n] = '\0';
			if (until && strstr(buf, until))
				break;
		}
	}
	return n;
}

static unsigned count(const char *hay, const char *needle)
{
	unsigned k = 0;

	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		k++;
	return k;
}

/* ---- tests ---- */

static void test_keep_alive(void)
{
	struct srv v;
	char buf[4096];
	bool closed;
	int fd;

	srv_start(&v, 1 << 20, 8192, 5000);
	fd = connect_tcp(v.port);
	put(fd, "POST /mcp?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello");
	take(&v, fd, buf, sizeof(buf), 2000, "{\"path\":\"/mcp\"}", &closed);
	CU_ASSERT(!strncmp(buf, "HTTP/1.1 200 OK\r\n", 17));
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "\r\nDate: "));
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "\r\nx-test: second\r\n"));
	CU_ASSERT_PTR_NULL(strstr(buf, "first"));
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "\r\nContent-Type: application/json\r\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "\r\nContent-Length: 15\r\n"));
	CU_ASSERT_PTR_NULL(strstr(buf, "Connection: close"));
	CU_ASSERT_STRING_EQUAL(v.last_body, "hello");
	/* the same connection serves the next one, chunked this time */
	put(fd, "POST /two HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
	take(&v, fd, buf, sizeof(buf), 2000, "{\"path\":\"/two\"}", &closed);
	CU_ASSERT(!closed);
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "{\"path\":\"/two\"}"));
	CU_ASSERT_STRING_EQUAL(v.last_body, "abc");
	CU_ASSERT_EQUAL(v.requests, 2);
	CU_ASSERT_EQUAL(v.accepted, 1);
	close(fd);
	srv_stop(&v);
}

static void test_pipelined_and_close(void)
{
	struct srv v;
	char buf[8192];
	bool closed;
	int fd;

	srv_start(&v, 1 << 20, 8192, 5000);
	fd = connect_tcp(v.port);
	/* three in one write, then the client shuts its side: each answered, in order */
	put(fd, "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\nGET /c HTTP/1.1\r\n\r\n");
	CU_ASSERT_EQUAL(shutdown(fd, SHUT_WR), 0);
	take(&v, fd, buf, sizeof(buf), 3000, NULL, &closed);
	CU_ASSERT(closed);
	CU_ASSERT_EQUAL(count(buf, "HTTP/1.1 200 OK"), 3);
	char *a = strstr(buf, "/a\"}"), *b = strstr(buf, "/b\"}"), *c = strstr(buf, "/c\"}");
	CU_ASSERT(a && b && c && a < b && b < c);
	close(fd);
	/* Connection: close is said in the answer, and the server closes after it */
	fd = connect_tcp(v.port);
	put(fd, "GET /d HTTP/1.1\r\nConnection: close\r\n\r\n");
	take(&v, fd, buf, sizeof(buf), 3000, NULL, &closed);
	CU_ASSERT(closed);
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "\r\nConnection: close\r\n"));
	close(fd);
	/* HTTP/1.0 closes unless it asks to keep the connection */
	fd = connect_tcp(v.port);
	put(fd, "GET /e HTTP/1.0\r\n\r\n");
	take(&v, fd, buf, sizeof(buf), 3000, NULL, &closed);
	CU_ASSERT(closed);
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "/e\"}"));
	close(fd);
	fd = connect_tcp(v.port);
	put(fd, "GET /f HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
	take(&v, fd, buf, sizeof(buf), 300, "/f\"}", &closed);
	CU_ASSERT(!closed);
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "\r\nConnection: keep-alive\r\n"));
	close(fd);
	srv_stop(&v);
	CU_ASSERT_EQUAL(v.closed, v.accepted);  /* the close hook, once each, at free too */
}

static void test_later_and_gone(void)
{
	struct srv v;
	char buf[4096];
	bool closed;
	int fd;

	srv_start(&v, 1 << 20, 8192, 5000);
	v.mode = ANSWER_LATER;
	fd = connect_tcp(v.port);
	put(fd, "GET /later HTTP/1.1\r\n\r\n");
	take(&v, fd, buf, sizeof(buf), 2000, "/later\"}", &closed);
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "/later\"}"));
	CU_ASSERT_EQUAL(v.gone, 0);
	close(fd);
	/* a client that leaves while its request is held: the gone hook runs once, at once */
	v.mode = HOLD;
	fd = connect_tcp(v.port);
	put(fd, "GET /held HTTP/1.1\r\n\r\n");
	for (int i = 0; i < 200 && !v.held; i++)
		event_base_loop(v.base, EVLOOP_NONBLOCK), usleep(1000);
	CU_ASSERT_FATAL(v.held != NULL);
	close(fd);
	for (int i = 0; i < 200 && !v.gone; i++)
		event_base_loop(v.base, EVLOOP_NONBLOCK), usleep(1000);
	CU_ASSERT_EQUAL(v.gone, 1);
	CU_ASSERT_PTR_NULL(v.held);
	for (int i = 0; i < 50; i++)
		event_base_loop(v.base, EVLOOP_NONBLOCK), usleep(1000);
	CU_ASSERT_EQUAL(v.gone, 1);
	srv_stop(&v);
}

static void test_stream(void)
{
	struct srv v;
	char buf[4096];
	bool closed;
	int fd;

	srv_start(&v, 1 << 20, 8192, 5000);
	v.mode = STREAM;
	fd = connect_tcp(v.port);
	put(fd, "GET /s HTTP/1.1\r\n\r\n");
	take(&v, fd, buf, sizeof(buf), 2000, "0\r\n\r\n", &closed);
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "\r\nTransfer-Encoding: chunked\r\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "\r\n\r\nb\r\ndata: one\n\n\r\nb\r\ndata: two\n\n\r\n0\r\n\r\n"));
	CU_ASSERT(!closed);
	close(fd);
	/* to HTTP/1.0: no chunks, the body runs to the close */
	fd = connect_tcp(v.port);
	put(fd, "GET /s HTTP/1.0\r\n\r\n");
	take(&v, fd, buf, sizeof(buf), 2000, NULL, &closed);
	CU_ASSERT(closed);
	CU_ASSERT_PTR_NULL(strstr(buf, "chunked"));
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "\r\n\r\ndata: one\n\ndata: two\n\n"));
	close(fd);
	srv_stop(&v);
}

/* One request on a fresh connection; the server's answer in buf, and whether it closed. */
static void refused(struct srv *v, const char *req, char *buf, size_t cap, bool *closed)
{
	int fd = connect_tcp(v->port);

	put(fd, req);
	take(v, fd, buf, cap, 3000, NULL, closed);
	close(fd);
}

static void test_refusals(void)
{
	struct srv v;
	char buf[4096], big[600];
	bool closed;

	srv_start(&v, 16, 256, 5000);
	refused(&v, "POST /mcp HTTP/1.1\r\nContent-Length: 17\r\n\r\n", buf, sizeof(buf), &closed);
	CU_ASSERT(!strncmp(buf, "HTTP/1.1 413 ", 13));
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32600,"));
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "limits.max_body_bytes"));
	CU_ASSERT(closed);
	/* chunked past the limit too */
	refused(&v, "POST /mcp HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n11\r\n"
		"0123456789abcdefg\r\n0\r\n\r\n", buf, sizeof(buf), &closed);
	CU_ASSERT(!strncmp(buf, "HTTP/1.1 413 ", 13));
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	char req[800];
	snprintf(req, sizeof(req), "GET /mcp HTTP/1.1\r\nX-Big: %s\r\n\r\n", big);
	refused(&v, req, buf, sizeof(buf), &closed);
	CU_ASSERT(!strncmp(buf, "HTTP/1.1 431 ", 13));
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "limits.max_header_bytes"));
	refused(&v, "GET /mcp HTTP/1.1\r\nBad Header\r\n\r\n", buf, sizeof(buf), &closed);
	CU_ASSERT(!strncmp(buf, "HTTP/1.1 400 ", 13));
	refused(&v, "POST /mcp HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
		buf, sizeof(buf), &closed);
	CU_ASSERT(!strncmp(buf, "HTTP/1.1 400 ", 13));     /* no smuggling */
	refused(&v, "BREW /pot HTTP/1.1\r\n\r\n", buf, sizeof(buf), &closed);
	CU_ASSERT(!strncmp(buf, "HTTP/1.1 501 ", 13));
	refused(&v, "POST /mcp HTTP/1.1\r\nExpect: tea\r\nContent-Length: 2\r\n\r\n{}", buf,
		sizeof(buf), &closed);
	CU_ASSERT(!strncmp(buf, "HTTP/1.1 417 ", 13));
	CU_ASSERT_EQUAL(v.requests, 0);
	CU_ASSERT_EQUAL(v.nrefused, 7);
	int want[] = { 413, 413, 431, 400, 400, 501, 417 };
	for (unsigned i = 0; i < 7 && i < v.nrefused; i++)
		CU_ASSERT_EQUAL(v.refused[i], want[i]);
	/* Expect: 100-continue: told to go on before the body is sent */
	int fd = connect_tcp(v.port);
	put(fd, "POST /mcp HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
	take(&v, fd, buf, sizeof(buf), 2000, "\r\n\r\n", &closed);
	CU_ASSERT_STRING_EQUAL(buf, "HTTP/1.1 100 Continue\r\n\r\n");
	CU_ASSERT_EQUAL(v.requests, 0);
	put(fd, "{}");
	take(&v, fd, buf, sizeof(buf), 2000, "/mcp\"}", &closed);
	CU_ASSERT(!strncmp(buf, "HTTP/1.1 200 ", 13));
	CU_ASSERT_STRING_EQUAL(v.last_body, "{}");
	close(fd);
	srv_stop(&v);
}

static void test_deadlines(void)
{
	struct srv v;
	char buf[1024];
	bool closed;
	int fd, idle;

	srv_start(&v, 1 << 20, 8192, 300);
	fd = connect_tcp(v.port);
	idle = connect_tcp(v.port);
	put(fd, "GET /slow HTTP/1.1\r\nHost:");   /* half a request, then nothing */
	take(&v, fd, buf, sizeof(buf), 3000, NULL, &closed);
	CU_ASSERT(closed);
	CU_ASSERT_EQUAL(buf[0], '\0');
	take(&v, idle, buf, sizeof(buf), 3000, NULL, &closed);
	CU_ASSERT(closed);              /* an idle connection goes too */
	close(fd);
	close(idle);
	/* a request being served is not cut however long it takes */
	v.mode = HOLD;
	fd = connect_tcp(v.port);
	put(fd, "GET /held HTTP/1.1\r\n\r\n");
	take(&v, fd, buf, sizeof(buf), 1000, NULL, &closed);
	CU_ASSERT(!closed);
	CU_ASSERT_FATAL(v.held != NULL);
	CU_ASSERT_EQUAL(v.gone, 0);
	answer(v.held, "/held");
	v.held = NULL;
	take(&v, fd, buf, sizeof(buf), 1000, "/held\"}", &closed);
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "/held\"}"));
	close(fd);
	srv_stop(&v);
}

static void test_accept_hook_and_unix(void)
{
	struct srv v;
	char buf[1024], path[108];
	bool closed;
	int fd;

	srv_start(&v, 1 << 20, 8192, 5000);
	v.refuse_next = 1;
	fd = connect_tcp(v.port);
	take(&v, fd, buf, sizeof(buf), 2000, NULL, &closed);
	CU_ASSERT(closed);
	CU_ASSERT_STRING_EQUAL(buf, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
				    "Connection: close\r\n\r\n");
	close(fd);
	CU_ASSERT_EQUAL(v.accepted, 0);
	CU_ASSERT_EQUAL(v.closed, 0);   /* no close hook for a connection it refused */

	/* a unix listening socket the caller made */
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(path, sizeof(path), "/tmp/test_http_server.%d.sock", (int)getpid());
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	unlink(path);
	int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CU_ASSERT_FATAL(lfd >= 0);
	CU_ASSERT_FATAL(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	CU_ASSERT_FATAL(listen(lfd, 8) == 0);
	CU_ASSERT_FATAL(http_server_adopt(v.s, lfd, NULL) == 0);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	CU_ASSERT_FATAL(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	put(fd, "GET /unix HTTP/1.1\r\n\r\n");
	take(&v, fd, buf, sizeof(buf), 2000, "/unix\"}", &closed);
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "/unix\"}"));
	close(fd);
	unlink(path);
	srv_stop(&v);
	CU_ASSERT_EQUAL(v.accepted, 1);
	CU_ASSERT_EQUAL(v.closed, 1);
}

CU_MAIN("http_server", NULL, NULL,
	{ "keep-alive: answers with Date, headers, length; a chunked body", test_keep_alive },
	{ "pipelined then shut: each answered in order; close and HTTP/1.0", test_pipelined_and_close },
	{ "an answer given later; a client that leaves is told once", test_later_and_gone },
	{ "a streamed answer: chunked, or to the close for HTTP/1.0", test_stream },
	{ "its own refusals as JSON-RPC errors; 100-continue", test_refusals },
	{ "deadlines cut slow and idle clients, never a request being served", test_deadlines },
	{ "the accept hook's refusal; a unix socket adopted", test_accept_hook_and_unix })
