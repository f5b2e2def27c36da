/* The HTTP front: status codes, Origin and Host, credentials, session headers, batches and
 * limits, against a real gateway on a real loop with the fixture MCP server behind it. */
#include "gateway_util.h"

#include "base/log.h"
#include "govern/keys.h"
#include "cunit_main.h"

static struct gw g;
static const char *const KEY_A = "mcpw_unit_key_alpha";
static const char *const KEY_B = "mcpw_unit_key_bravo";

static void hash_text(const char *key, char out[KEYS_HASH_TEXT_SIZE])
{
	unsigned char h[KEYS_HASH_LEN];

	keys_hash(key, strlen(key), h);
	keys_hash_format(h, out);
}

static int setup(void)
{
	char up[2048], ha[KEYS_HASH_TEXT_SIZE], hb[KEYS_HASH_TEXT_SIZE];

	log_set_level(LOG_ERROR);
	gw_fixture_upstream(up, sizeof(up), "fx");
	hash_text(KEY_A, ha);
	hash_text(KEY_B, hb);
	return gw_start(&g, "\"prefix\":\"never\",\"allowed_origins\":[\"https://app.example\"],"
			"\"limits\":{\"max_body_bytes\":4096},"
			"\"keys\":[{\"id\":\"alpha\",\"policy\":\"all\",\"hash\":\"%s\"},"
			"{\"id\":\"bravo\",\"policy\":\"all\",\"hash\":\"%s\"}],"
			"\"policies\":{\"all\":{\"tools\":{\"allow\":[\"*/*\"]},"
			"\"resources\":{\"allow\":[\"*/*\"]},\"prompts\":{\"allow\":[\"*/*\"]}}},"
			"\"upstreams\":[%s]", ha, hb, up) ? -1 : 0;
}

static int teardown(void)
{
	gw_stop(&g);
	return 0;
}

#define AUTH_A "Authorization: Bearer mcpw_unit_key_alpha"
#define INIT(v) "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{" \
		"\"protocolVersion\":\"" v "\",\"capabilities\":{},\"clientInfo\":{\"name\":\"u\"," \
		"\"version\":\"1\"}}}"

/* A session opened with key A (the default headers plus the key). */
static void open_session(const char *version, char *sid, size_t len)
{
	const char *h[] = { AUTH_A, NULL };
	char body[512];

	snprintf(body, sizeof(body), INIT("%s"), version);
	struct http_res r = gw_http(&g, EVHTTP_REQ_POST, "/mcp", h, body);
	CU_ASSERT_EQUAL(r.status, 200);
	CU_ASSERT_EQUAL(strlen(r.session), 64);  /* 256 random bits, hex */
	snprintf(sid, len, "%s", r.session);
	gw_res_free(&r);
}

static struct http_res post_a(const char *sid, const char *body, const char *extra)
{
	char hs[128];
	const char *h[] = { AUTH_A, hs, extra, NULL };

	snprintf(hs, sizeof(hs), "Mcp-Session-Id: %s", sid);
	return gw_http(&g, EVHTTP_REQ_POST, "/mcp", h, body);
}

/* POST body with headers h to /mcp; the answer's HTTP status. */
static int post_status(const char *const *h, const char *body)
{
	struct http_res r = gw_http(&g, EVHTTP_REQ_POST, "/mcp", h, body);
	int status = r.status;

	gw_res_free(&r);
	return status;
}

static void test_health_and_paths(void)
{
	struct http_res r = gw_http(&g, EVHTTP_REQ_GET, "/healthz", NULL, NULL);
	CU_ASSERT_EQUAL(r.status, 200);
	gw_res_free(&r);
	r = gw_http(&g, EVHTTP_REQ_GET, "/readyz", NULL, NULL);
	CU_ASSERT_EQUAL(r.status, 200);  /* the fixture was listed before serving */
	gw_res_free(&r);
	r = gw_http(&g, EVHTTP_REQ_POST, "/other", NULL, "{}");
	CU_ASSERT_EQUAL(r.status, 404);
	CU_ASSERT_EQUAL(gw_error_code(&r), -32600);  /* a JSON-RPC error body, not HTML */
	gw_res_free(&r);
	r = gw_http(&g, EVHTTP_REQ_PUT, "/mcp", NULL, "{}");
	CU_ASSERT_EQUAL(r.status, 405);
	CU_ASSERT_STRING_EQUAL(r.allow, "GET, POST, DELETE");
	gw_res_free(&r);
}

static void test_credentials(void)
{
	const char *bad[] = { "Authorization: Bearer not-a-key", NULL };
	const char *xkey[] = { "X-Api-Key: mcpw_unit_key_alpha", NULL };
	struct http_res r = gw_http(&g, EVHTTP_REQ_POST, "/mcp", NULL, INIT("2025-11-25"));

	CU_ASSERT_EQUAL(r.status, 401);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.www_auth, "Bearer"));
	CU_ASSERT_EQUAL(gw_error_code(&r), -32001);
	gw_res_free(&r);
	r = gw_http(&g, EVHTTP_REQ_POST, "/mcp", bad, INIT("2025-11-25"));
	CU_ASSERT_EQUAL(r.status, 401);
	CU_ASSERT_PTR_NULL(strstr(r.body, "not-a-key"));  /* a key is never echoed */
	gw_res_free(&r);
	CU_ASSERT_EQUAL(post_status(xkey, INIT("2025-11-25")), 200);
}

static void test_origin_and_host(void)
{
	const char *foreign[] = { AUTH_A, "Origin: https://evil.example", NULL };
	const char *listed[] = { AUTH_A, "Origin: https://app.example", NULL };
	const char *local[] = { AUTH_A, "Origin: http://localhost:3000", NULL };
	const char *host[] = { AUTH_A, "Host: attacker.example", NULL };

	CU_ASSERT_EQUAL(post_status(foreign, INIT("2025-11-25")), 403);
	CU_ASSERT_EQUAL(post_status(listed, INIT("2025-11-25")), 200);
	CU_ASSERT_EQUAL(post_status(local, INIT("2025-11-25")), 200);
	/* DNS rebinding: a loopback gateway answers only to loopback names. */
	CU_ASSERT_EQUAL(post_status(host, INIT("2025-11-25")), 403);
}

static void test_content_negotiation_and_parse_errors(void)
{
	const char *no_accept[] = { AUTH_A, "Accept: text/html", NULL };
	const char *ctype[] = { AUTH_A, "Content-Type: text/plain", NULL };
	const char *h[] = { AUTH_A, NULL };
	struct http_res r;

	CU_ASSERT_EQUAL(post_status(no_accept, INIT("2025-11-25")), 406);
	CU_ASSERT_EQUAL(post_status(ctype, INIT("2025-11-25")), 415);
	r = gw_http(&g, EVHTTP_REQ_POST, "/mcp", h, "{\"jsonrpc\":");
	CU_ASSERT_EQUAL(r.status, 400);
	CU_ASSERT_EQUAL(gw_error_code(&r), -32700);
	gw_res_free(&r);
	r = gw_http(&g, EVHTTP_REQ_POST, "/mcp", h, "{\"hello\":\"world\"}");
	CU_ASSERT_EQUAL(r.status, 400);
	CU_ASSERT_EQUAL(gw_error_code(&r), -32600);
	gw_res_free(&r);
}

static void test_session_headers(void)
{
	const char *h_b[] = { "Authorization: Bearer mcpw_unit_key_bravo", NULL };
	char sid[80], hs[128];
	struct http_res r;

	open_session("2025-11-25", sid, sizeof(sid));
	/* No session id, an unknown one, another key's. */
	r = gw_http(&g, EVHTTP_REQ_POST, "/mcp", (const char *[]){ AUTH_A, NULL },
		    "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}");
	CU_ASSERT_EQUAL(r.status, 400);
	gw_res_free(&r);
	r = post_a("0000000000000000000000000000000000000000000000000000000000000000",
		   "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}", NULL);
	CU_ASSERT_EQUAL(r.status, 404);
	gw_res_free(&r);
	snprintf(hs, sizeof(hs), "Mcp-Session-Id: %s", sid);
	r = gw_http(&g, EVHTTP_REQ_POST, "/mcp", (const char *[]){ h_b[0], hs, NULL },
		    "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}");
	CU_ASSERT_EQUAL(r.status, 403);  /* a session id is not a credential */
	gw_res_free(&r);
	/* Protocol version header: unsupported refused, another supported one served. */
	r = post_a(sid, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}",
		   "MCP-Protocol-Version: 1999-01-01");
	CU_ASSERT_EQUAL(r.status, 400);
	gw_res_free(&r);
	r = post_a(sid, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"ping\"}",
		   "MCP-Protocol-Version: 2025-06-18");
	CU_ASSERT_EQUAL(r.status, 200);
	CU_ASSERT_STRING_EQUAL(r.session, sid);
	gw_res_free(&r);
	/* Notifications are accepted with 202 and no body. */
	r = post_a(sid, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}", NULL);
	CU_ASSERT_EQUAL(r.status, 202);
	gw_res_free(&r);
	/* DELETE ends it: the id answers 404 afterwards. */
	r = gw_http(&g, EVHTTP_REQ_DELETE, "/mcp", (const char *[]){ AUTH_A, hs, NULL }, NULL);
	CU_ASSERT_EQUAL(r.status, 200);
	gw_res_free(&r);
	r = post_a(sid, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"ping\"}", NULL);
	CU_ASSERT_EQUAL(r.status, 404);
	gw_res_free(&r);
}

static void test_batches(void)
{
	char sid[80];
	struct http_res r;

	open_session("2025-03-26", sid, sizeof(sid));
	r = post_a(sid, "[{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"ping\"},"
		   "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"},"
		   "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"nope\"}]", NULL);
	CU_ASSERT_EQUAL(r.status, 200);
	CU_ASSERT_TRUE(cJSON_IsArray(r.json));
	CU_ASSERT_EQUAL(cJSON_GetArraySize(r.json), 2);  /* one answer per request */
	gw_res_free(&r);
	open_session("2025-11-25", sid, sizeof(sid));
	r = post_a(sid, "[{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"ping\"}]", NULL);
	CU_ASSERT_EQUAL(r.status, 400);  /* batches were removed after 2025-03-26 */
	gw_res_free(&r);
}

static void test_body_limit(void)
{
	char sid[80], *big = malloc(8192);
	struct http_res r;

	open_session("2025-11-25", sid, sizeof(sid));
	snprintf(big, 8192, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{\"pad\":\"");
	size_t n = strlen(big);
	memset(big + n, 'x', 8000 - n);
	strcpy(big + 8000, "\"}}");
	r = post_a(sid, big, NULL);
	CU_ASSERT_EQUAL(r.status, 413);
	gw_res_free(&r);
	/* The gateway serves on after it. */
	r = post_a(sid, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}", NULL);
	CU_ASSERT_EQUAL(r.status, 200);
	gw_res_free(&r);
	free(big);
}

CU_MAIN("front", setup, teardown,
	{ "health, paths, methods", test_health_and_paths },
	{ "credentials: missing, wrong, X-Api-Key", test_credentials },
	{ "Origin and Host checks", test_origin_and_host },
	{ "Accept, Content-Type, parse errors", test_content_negotiation_and_parse_errors },
	{ "session id and protocol version headers, 202, DELETE", test_session_headers },
	{ "2025-03-26 batches, refused later", test_batches },
	{ "body limit: 413, then served", test_body_limit })
