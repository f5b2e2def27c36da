/* The front's one-pass header index (mcp/transport/front_headers.h) answers as evhttp's own
 * lookup would: any case, the first of repeated headers, NULL when absent, and the plain
 * lookup for a request that is not the one indexed. */
#include <CUnit/Basic.h>
#include <string.h>
#include <event2/http.h>

#include "cunit_main.h"
#include "mcp/transport/front_headers.h"

static struct evhttp_request *request(const char *const *kv)
{
	struct evhttp_request *req = evhttp_request_new(NULL, NULL);
	struct evkeyvalq *q = evhttp_request_get_input_headers(req);

	for (; *kv; kv += 2)
		CU_ASSERT_EQUAL(evhttp_add_header(q, kv[0], kv[1]), 0);
	return req;
}

static void test_index(void)
{
	static const char *const a[] = {
		"host", "127.0.0.1:8080", "CONTENT-TYPE", "application/json",
		"mcp-session-id", "s1", "Mcp-Session-Id", "s2", "Accept-Language", "fr",
		"Mcp-Name", "echo", "Authorization", "Bearer k", "X-Mcp-Method", "no", NULL
	};
	static const char *const b[] = { "Origin", "http://evil", NULL };
	struct evhttp_request *r1 = request(a), *r2 = request(b);

	front_headers_read(r1);
	CU_ASSERT_STRING_EQUAL(front_header(r1, FH_HOST), "127.0.0.1:8080");
	CU_ASSERT_STRING_EQUAL(front_header(r1, FH_CONTENT_TYPE), "application/json");
	CU_ASSERT_STRING_EQUAL(front_header(r1, FH_MCP_SESSION_ID), "s1");   /* the first */
	CU_ASSERT_STRING_EQUAL(front_header(r1, FH_MCP_NAME), "echo");
	CU_ASSERT_STRING_EQUAL(front_header(r1, FH_AUTHORIZATION), "Bearer k");
	CU_ASSERT_PTR_NULL(front_header(r1, FH_ACCEPT));        /* Accept-Language is not it */
	CU_ASSERT_PTR_NULL(front_header(r1, FH_MCP_METHOD));    /* nor X-Mcp-Method */
	CU_ASSERT_PTR_NULL(front_header(r1, FH_ORIGIN));
	/* another request than the indexed one: evhttp's lookup */
	CU_ASSERT_STRING_EQUAL(front_header(r2, FH_ORIGIN), "http://evil");
	CU_ASSERT_PTR_NULL(front_header(r2, FH_HOST));
	front_headers_drop();
	CU_ASSERT_STRING_EQUAL(front_header(r1, FH_MCP_SESSION_ID), "s1");
	CU_ASSERT_PTR_NULL(front_header(r1, FH_ACCEPT));
	evhttp_request_free(r1);
	evhttp_request_free(r2);
}

CU_MAIN("front_headers", NULL, NULL,
	{ "one pass answers as evhttp's lookup", test_index })
