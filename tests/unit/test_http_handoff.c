/* http_server's hand-over (workers: N): a request's connection moves from one loop's server to
 * another's, which admits it, serves the same request (its head and body as sent) and what
 * the client pipelined after it, and keeps the connection. The first server's close hook runs
 * once at the move, the second's accept hook once. A server freed with a connection handed to
 * it and not taken yet closes it. In make tsan. */
#include <CUnit/Basic.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "base/http_server.h"
#include "cunit_main.h"

struct side {
	const char *name;
	struct event_base *base;
	struct http_server *s;
	struct http_server *to;         /* hand "/move" requests here */
	int port;
	atomic_int accepts, closes, requests, moved;
};

static struct side a = { .name = "a" }, b = { .name = "b" };

static void on_request(void *arg, struct http_req *r)
{
	struct side *sd = arg;
	const char *path = http_req_path(r);
	char body[256];
	size_t len;
	const char *in = http_req_body(r, &len);

	atomic_fetch_add(&sd->requests, 1);
	if (sd->to && path && !strcmp(path, "/move")) {
		CU_ASSERT_EQUAL(http_req_handoff(r, sd->to), 0);
		atomic_fetch_add(&sd->moved, 1);
		return;
	}
	snprintf(body, sizeof(body), "%s:%s:%.*s:%s", sd->name, path ? path : "", (int)len, in,
		 http_req_header(r, "X-Tag") ? http_req_header(r, "X-Tag") : "");
	http_req_send_text(r, 200, NULL, "text/plain", body);
}

static int on_accept(void *arg, struct http_conn *c)
{
	struct side *sd = arg;

	CU_ASSERT(http_conn_local(c)->ss_family == AF_INET);
	atomic_fetch_add(&sd->accepts, 1);
	return 0;
}

static void on_close(void *arg, struct http_conn *c)
{
	atomic_fetch_add(&((struct side *)arg)->closes, 1);
}

static const struct http_server_hooks hooks = { on_request, on_accept, on_close, NULL };

static atomic_bool stop_b;

static void b_tick(evutil_socket_t fd, short what, void *arg)
{
	if (atomic_load(&stop_b))
		event_base_loopbreak(b.base);
}

static void *b_main(void *arg)
{
	struct timeval tv = { 0, 5000 };
	struct event *t = event_new(b.base, -1, EV_PERSIST, b_tick, NULL);

	(void)arg;
	event_add(t, &tv);
	event_base_dispatch(b.base);
	event_free(t);
	return NULL;
}

static int client(int port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CU_ASSERT_FATAL(fd >= 0 && connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0);
	return fd;
}

/* Read until `want` answers have begun and a little after (their bodies follow their heads
 * in one write), running loop a meanwhile. */
static size_t read_answers(int fd, char *buf, size_t cap, int want)
{
	size_t len = 0;
	int after = -1;

	for (int i = 0; i < 5000 && after != 0; i++) {
		event_base_loop(a.base, EVLOOP_NONBLOCK);
		ssize_t n = recv(fd, buf + len, cap - 1 - len, MSG_DONTWAIT);
		if (n > 0)
			len += (size_t)n;
		buf[len] = '\0';
		int got = 0;
		for (const char *p = buf; (p = strstr(p, "HTTP/1.1 200")); p++)
			got++;
		if (got >= want && after < 0)
			after = 20;
		else if (after > 0)
			after--;
		usleep(1000);
	}
	return len;
}

static void test_handoff(void)
{
	char buf[8192];
	pthread_t t;
	const char *req =
		"POST /move HTTP/1.1\r\nHost: x\r\nX-Tag: one\r\nContent-Length: 5\r\n\r\nhello"
		"GET /next HTTP/1.1\r\nHost: x\r\nX-Tag: two\r\n\r\n";

	CU_ASSERT_FATAL(evthread_use_pthreads() == 0);
	a.base = event_base_new();
	b.base = event_base_new();
	CU_ASSERT_FATAL(http_server_new(a.base, &hooks, &a, &a.s) == 0);
	CU_ASSERT_FATAL(http_server_new(b.base, &hooks, &b, &b.s) == 0);
	a.to = b.s;
	CU_ASSERT_FATAL(http_server_bind(a.s, "a", "127.0.0.1", 0, &a.port, NULL) == 0);
	CU_ASSERT_FATAL(pthread_create(&t, NULL, b_main, NULL) == 0);

	/* A request and one pipelined behind it, on one connection to a: both answered by b,
	 * the first as it was sent (head and body). */
	int fd = client(a.port);
	CU_ASSERT_FATAL(send(fd, req, strlen(req), 0) == (ssize_t)strlen(req));
	size_t len = read_answers(fd, buf, sizeof(buf), 2);
	CU_ASSERT(len > 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "b:/move:hello:one"));
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "b:/next::two"));
	CU_ASSERT(strstr(buf, "b:/move") < strstr(buf, "b:/next"));
	CU_ASSERT_PTR_NULL(strstr(buf, "a:"));
	/* the connection stays b's: a third request is b's without passing by a */
	const char *third = "GET /third HTTP/1.1\r\nHost: x\r\n\r\n";
	CU_ASSERT_FATAL(send(fd, third, strlen(third), 0) == (ssize_t)strlen(third));
	len = read_answers(fd, buf, sizeof(buf), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "b:/third::"));
	close(fd);
	usleep(50000);
	event_base_loop(a.base, EVLOOP_NONBLOCK);

	atomic_store(&stop_b, true);
	CU_ASSERT_FATAL(pthread_join(t, NULL) == 0);
	CU_ASSERT_EQUAL(atomic_load(&a.accepts), 1);
	CU_ASSERT_EQUAL(atomic_load(&a.closes), 1);      /* let go of at the move */
	CU_ASSERT_EQUAL(atomic_load(&a.requests), 1);
	CU_ASSERT_EQUAL(atomic_load(&a.moved), 1);
	CU_ASSERT_EQUAL(atomic_load(&b.accepts), 1);
	CU_ASSERT_EQUAL(atomic_load(&b.requests), 3);
	CU_ASSERT_EQUAL(atomic_load(&b.closes), 1);      /* the client closed */

	/* Handed to a server whose loop no longer runs: closed when it is freed. */
	fd = client(a.port);
	const char *move = "GET /move HTTP/1.1\r\nHost: x\r\n\r\n";
	CU_ASSERT_FATAL(send(fd, move, strlen(move), 0) == (ssize_t)strlen(move));
	for (int i = 0; i < 2000 && atomic_load(&a.moved) < 2; i++) {
		event_base_loop(a.base, EVLOOP_NONBLOCK);
		usleep(1000);
	}
	CU_ASSERT_EQUAL(atomic_load(&a.moved), 2);
	http_server_free(b.s);
	char c;
	CU_ASSERT_EQUAL(recv(fd, &c, 1, 0), 0);          /* closed, not left open */
	close(fd);
	CU_ASSERT_EQUAL(atomic_load(&b.accepts), 1);     /* never admitted there */
	http_server_free(a.s);
	CU_ASSERT_EQUAL(atomic_load(&a.closes), 2);
	event_base_free(a.base);
	event_base_free(b.base);
}

CU_MAIN("http_handoff", cu_quiet, NULL,
	{ "a connection handed to another loop's server, its request served there",
	  test_handoff })
