/* The front's one-pass header index (mcp/transport/front_headers.h) answers as the server's
 * own lookup would: any case, the first of repeated headers, NULL when absent, and the plain
 * lookup for a request that is not the one indexed. The requests are real: two connections to
 * a base/http_server on loopback, both held unanswered while the index is checked. */
#include <CUnit/Basic.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <event2/event.h>

#include "cunit_main.h"
#include "base/http_server.h"
#include "mcp/transport/front_headers.h"

struct seen {
	struct http_req *req[2];
	unsigned n;
};

static void on_request(void *arg, struct http_req *req)
{
	struct seen *s = arg;

	if (s->n < 2)
		s->req[s->n++] = req;
}

static const struct http_server_hooks hooks = { on_request, NULL, NULL, NULL };

static int client(int port, const char *request)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	CU_ASSERT_FATAL(fd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CU_ASSERT_FATAL(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	CU_ASSERT_FATAL(write(fd, request, strlen(request)) == (ssize_t)strlen(request));
	return fd;
}

static void test_index(void)
{
	static const char a[] =
		"POST /mcp HTTP/1.1\r\nhost: 127.0.0.1:8080\r\nCONTENT-TYPE: application/json\r\n"
		"mcp-session-id: s1\r\nMcp-Session-Id: s2\r\nAccept-Language: fr\r\n"
		"Mcp-Name: echo\r\nAuthorization: Bearer k\r\nX-Mcp-Method: no\r\n"
		"Content-Length: 0\r\n\r\n";
	static const char b[] = "GET /mcp HTTP/1.1\r\nOrigin: http://evil\r\n\r\n";
	struct event_base *base = event_base_new();
	struct http_server *srv = NULL;
	struct seen seen = { 0 };
	int port = 0, fa, fb;

	CU_ASSERT_FATAL(base != NULL);
	CU_ASSERT_FATAL(http_server_new(base, &hooks, &seen, &srv) == 0);
	CU_ASSERT_FATAL(http_server_bind(srv, "test", "127.0.0.1", 0, &port, NULL) == 0);
	fa = client(port, a);
	for (int i = 0; i < 200 && seen.n < 1; i++)
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK), usleep(1000);
	fb = client(port, b);
	for (int i = 0; i < 200 && seen.n < 2; i++)
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK), usleep(1000);
	CU_ASSERT_FATAL(seen.n == 2);
	struct http_req *r1 = seen.req[0], *r2 = seen.req[1];

	front_headers_read(r1);
	CU_ASSERT_STRING_EQUAL(front_header(r1, FH_HOST), "127.0.0.1:8080");
	CU_ASSERT_STRING_EQUAL(front_header(r1, FH_CONTENT_TYPE), "application/json");
	CU_ASSERT_STRING_EQUAL(front_header(r1, FH_MCP_SESSION_ID), "s1");   /* the first */
	CU_ASSERT_STRING_EQUAL(front_header(r1, FH_MCP_NAME), "echo");
	CU_ASSERT_STRING_EQUAL(front_header(r1, FH_AUTHORIZATION), "Bearer k");
	CU_ASSERT_PTR_NULL(front_header(r1, FH_ACCEPT));        /* Accept-Language is not it */
	CU_ASSERT_PTR_NULL(front_header(r1, FH_MCP_METHOD));    /* nor X-Mcp-Method */
	CU_ASSERT_PTR_NULL(front_header(r1, FH_ORIGIN));
	/* another request than the indexed one: the server's lookup */
	CU_ASSERT_STRING_EQUAL(front_header(r2, FH_ORIGIN), "http://evil");
	CU_ASSERT_PTR_NULL(front_header(r2, FH_HOST));
	front_headers_drop();
	CU_ASSERT_STRING_EQUAL(front_header(r1, FH_MCP_SESSION_ID), "s1");
	CU_ASSERT_PTR_NULL(front_header(r1, FH_ACCEPT));
	http_req_send(r1, 202, NULL, NULL, NULL, 0);
	http_req_send(r2, 202, NULL, NULL, NULL, 0);
	close(fa);
	close(fb);
	http_server_free(srv);
	event_base_free(base);
}

CU_MAIN("front_headers", NULL, NULL,
	{ "one pass answers as the server's lookup", test_index })
