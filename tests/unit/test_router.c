/* The router, the call life and the catalogue: the method table, lists filtered by policy,
 * routing to the upstream, refusals in the order of the gate, against a real gateway with the
 * fixture MCP server over stdio. */
#include "gateway_util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <event2/thread.h>

#include "base/epoch.h"
#include "base/log.h"
#include "govern/keys.h"
#include "mcp/catalog.h"
#include "cunit_main.h"

static struct gw g;
static char sid_all[80], sid_ro[80];

static void hash_text(const char *key, char out[KEYS_HASH_TEXT_SIZE])
{
	unsigned char h[KEYS_HASH_LEN];

	keys_hash(key, strlen(key), h);
	keys_hash_format(h, out);
}

static int open_with(const char *key, char *sid, size_t len)
{
	char auth[128], body[256];
	const char *h[] = { auth, NULL };
	struct http_res r;

	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
	snprintf(body, sizeof(body), "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\","
		 "\"params\":{\"protocolVersion\":\"2025-11-25\",\"capabilities\":{},"
		 "\"clientInfo\":{\"name\":\"u\",\"version\":\"1\"}}}");
	r = gw_http(&g, EVHTTP_REQ_POST, "/mcp", h, body);
	snprintf(sid, len, "%s", r.session);
	int ok = r.status == 200 ? 0 : -1;
	gw_res_free(&r);
	return ok;
}

static int setup(void)
{
	char up[2048], ha[KEYS_HASH_TEXT_SIZE], hr[KEYS_HASH_TEXT_SIZE];

	log_set_level(LOG_ERROR);
	if (evthread_use_pthreads())    /* another loop reads the catalogue (test_loops_read) */
		return -1;
	gw_fixture_upstream(up, sizeof(up), "fx");
	hash_text("key-all", ha);
	hash_text("key-ro", hr);
	if (gw_start(&g, "\"prefix\":\"always\","
		     "\"keys\":[{\"id\":\"all\",\"policy\":\"all\",\"hash\":\"%s\"},"
		     "{\"id\":\"ro\",\"policy\":\"some\",\"hash\":\"%s\"}],"
		     "\"policies\":{\"all\":{\"tools\":{\"allow\":[\"*/*\"]},"
		     "\"resources\":{\"allow\":[\"*/*\"]},\"prompts\":{\"allow\":[\"*/*\"]}},"
		     "\"some\":{\"tools\":{\"allow\":[\"fx/test_*\"],\"deny\":[\"fx/test_error_*\"]}}},"
		     "\"upstreams\":[%s]", ha, hr, up))
		return -1;
	return open_with("key-all", sid_all, sizeof(sid_all)) ||
	       open_with("key-ro", sid_ro, sizeof(sid_ro)) ? -1 : 0;
}

static int teardown(void)
{
	gw_stop(&g);
	return 0;
}

static struct http_res call(const char *sid, const char *key, const char *body)
{
	char auth[128], hs[128];
	const char *h[] = { auth, hs, NULL };

	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
	snprintf(hs, sizeof(hs), "Mcp-Session-Id: %s", sid);
	return gw_http(&g, EVHTTP_REQ_POST, "/mcp", h, body);
}

/* The request is answered with the JSON-RPC error code. */
static void refuses(const char *sid, const char *key, const char *body, int code)
{
	struct http_res r = call(sid, key, body);

	CU_ASSERT_EQUAL(gw_error_code(&r), code);
	gw_res_free(&r);
}

static const cJSON *result(const struct http_res *r)
{
	return cJSON_GetObjectItemCaseSensitive(r->json, "result");
}

static const cJSON *error_data(const struct http_res *r)
{
	return cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r->json, "error"),
						"data");
}

static void test_method_table(void)
{
	struct http_res r = call(sid_all, "key-all", "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}");

	CU_ASSERT_TRUE(cJSON_IsObject(result(&r)));
	CU_ASSERT_EQUAL(cJSON_GetArraySize(result(&r)), 0);
	gw_res_free(&r);
	refuses(sid_all, "key-all", "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/unknown\"}",
		-32601);
	/* A request a server would drop unanswered is refused at once. */
	refuses(sid_all, "key-all", "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/list\","
		 "\"params\":{\"_meta\":5}}", -32602);
	/* The client's id comes back exactly, whatever id the upstream used. */
	r = call(sid_all, "key-all", "{\"jsonrpc\":\"2.0\",\"id\":\"s-9\",\"method\":\"tools/call\","
		 "\"params\":{\"name\":\"fx__test_simple_text\"}}");
	CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItemCaseSensitive(r.json, "id")->valuestring, "s-9");
	gw_res_free(&r);
}

static bool listed(const cJSON *tools, const char *name)
{
	const cJSON *t;

	cJSON_ArrayForEach(t, tools)
		if (!strcmp(cJSON_GetObjectItemCaseSensitive(t, "name")->valuestring, name))
			return true;
	return false;
}

static void test_lists_follow_policy(void)
{
	struct http_res r = call(sid_all, "key-all",
				 "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/list\"}");
	const cJSON *tools = cJSON_GetObjectItemCaseSensitive(result(&r), "tools");

	CU_ASSERT_TRUE(listed(tools, "fx__test_simple_text"));  /* prefix "always" */
	CU_ASSERT_TRUE(listed(tools, "fx__test_error_handling"));
	CU_ASSERT_TRUE(listed(tools, "fx__json_schema_2020_12_tool"));
	gw_res_free(&r);
	r = call(sid_ro, "key-ro", "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"tools/list\"}");
	tools = cJSON_GetObjectItemCaseSensitive(result(&r), "tools");
	CU_ASSERT_TRUE(listed(tools, "fx__test_simple_text"));
	CU_ASSERT_FALSE(listed(tools, "fx__test_error_handling"));   /* denied */
	CU_ASSERT_FALSE(listed(tools, "fx__json_schema_2020_12_tool")); /* not allowed */
	gw_res_free(&r);
	refuses(sid_all, "key-all", "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/list\","
		 "\"params\":{\"cursor\":\"garbage\"}}", -32602);
}

static void test_calls_route_and_refuse(void)
{
	struct http_res r = call(sid_all, "key-all", "{\"jsonrpc\":\"2.0\",\"id\":8,"
				 "\"method\":\"tools/call\",\"params\":{\"name\":\"fx__test_simple_text\"}}");
	const cJSON *content = cJSON_GetObjectItemCaseSensitive(result(&r), "content");

	CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(content, 0),
								"text")->valuestring,
			       "This is a simple text response for testing.");
	gw_res_free(&r);
	/* Unknown tool: -32602 naming it. */
	r = call(sid_all, "key-all", "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"tools/call\","
		 "\"params\":{\"name\":\"fx__nope\"}}");
	CU_ASSERT_EQUAL(gw_error_code(&r), -32602);
	CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItemCaseSensitive(error_data(&r), "tool")->valuestring,
			       "fx__nope");
	gw_res_free(&r);
	/* Not permitted: -32003 with the rule, even though the tool exists. */
	r = call(sid_ro, "key-ro", "{\"jsonrpc\":\"2.0\",\"id\":10,\"method\":\"tools/call\","
		 "\"params\":{\"name\":\"fx__test_error_handling\"}}");
	CU_ASSERT_EQUAL(gw_error_code(&r), -32003);
	CU_ASSERT_PTR_NOT_NULL(cJSON_GetObjectItemCaseSensitive(error_data(&r), "rule"));
	gw_res_free(&r);
	/* Arguments against the tool's schema: the failing path is named. */
	r = call(sid_all, "key-all", "{\"jsonrpc\":\"2.0\",\"id\":11,\"method\":\"tools/call\","
		 "\"params\":{\"name\":\"fx__json_schema_2020_12_tool\",\"arguments\":"
		 "{\"email\":\"a@b\",\"address\":{\"city\":7}}}}");
	CU_ASSERT_EQUAL(gw_error_code(&r), -32602);
	CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItemCaseSensitive(error_data(&r), "path")->valuestring,
			       "$.address.city");
	gw_res_free(&r);
	refuses(sid_all, "key-all", "{\"jsonrpc\":\"2.0\",\"id\":12,\"method\":\"tools/call\","
		 "\"params\":{\"name\":\"fx__test_simple_text\",\"arguments\":[1]}}", -32602);
}

static void test_resources_prompts_fanout(void)
{
	struct http_res r = call(sid_all, "key-all", "{\"jsonrpc\":\"2.0\",\"id\":13,"
				 "\"method\":\"resources/read\",\"params\":{\"uri\":\"fx+test://static-text\"}}");
	const cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(result(&r), "contents"), 0);

	/* The answer names the resource as the client knows it (exposed, prefixed). */
	CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItemCaseSensitive(c0, "uri")->valuestring,
			       "fx+test://static-text");
	gw_res_free(&r);
	refuses(sid_all, "key-all", "{\"jsonrpc\":\"2.0\",\"id\":14,\"method\":\"resources/read\","
		 "\"params\":{\"uri\":\"elsewhere://x\"}}", -32602);
	r = call(sid_all, "key-all", "{\"jsonrpc\":\"2.0\",\"id\":15,\"method\":\"prompts/get\","
		 "\"params\":{\"name\":\"fx__test_simple_prompt\"}}");
	CU_ASSERT_TRUE(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(result(&r), "messages")));
	gw_res_free(&r);
	/* logging/setLevel goes to every upstream that logs; one answer. */
	r = call(sid_all, "key-all", "{\"jsonrpc\":\"2.0\",\"id\":16,\"method\":\"logging/setLevel\","
		 "\"params\":{\"level\":\"debug\"}}");
	CU_ASSERT_TRUE(cJSON_IsObject(result(&r)));
	gw_res_free(&r);
}

static void test_catalogue(void)
{
	struct catalog *c = router_catalog(g.router);
	const struct catalog_entry *e = catalog_find(c, CAT_TOOLS, "fx__test_simple_text");
	size_t server;
	const char *uri;

	CU_ASSERT_TRUE(catalog_prefixing(c));
	CU_ASSERT_TRUE(catalog_all_ready(c));
	CU_ASSERT_PTR_NOT_NULL_FATAL(e);
	CU_ASSERT_STRING_EQUAL(e->name, "test_simple_text");  /* the upstream's own name */
	CU_ASSERT_PTR_NULL(catalog_find(c, CAT_TOOLS, "test_simple_text"));
	CU_ASSERT(catalog_list(c, CAT_TOOLS)->n >= 10);
	CU_ASSERT_EQUAL(catalog_route_uri(c, "fx+test://template/42/data", &server, &uri), 0);
	CU_ASSERT_STRING_EQUAL(uri, "test://template/42/data");
	CU_ASSERT_EQUAL(catalog_route_uri(c, "zz+test://static-text", &server, &uri), -ENOENT);
	cJSON *caps = catalog_capabilities(c);
	CU_ASSERT_TRUE(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(caps, "tools"), "listChanged")));
	cJSON_Delete(caps);
}

/* ---- another loop reading the catalogue while it is refreshed (workers: N) ---- */

#define REFRESHES 25

static atomic_bool readers_stop;

struct lreader {
	struct event_base *base;
	struct event *ev;
	struct catalog *cat;
	long reads, bad, misjudged, shown;
};

/* What key "ro" (policy "some") may see: fx/test_*, not fx/test_error_*. */
static bool some_allows(const struct catalog_entry *e)
{
	return !strncmp(e->name, "test_", 5) && strncmp(e->name, "test_error_", 11);
}

static void read_lists(evutil_socket_t fd, short what, void *arg)
{
	struct lreader *lr = arg;
	const struct catalog_list *l = catalog_list(lr->cat, CAT_TOOLS);
	struct key_identity ro = { .id = "ro", .policy = "some" };

	(void)fd, (void)what;
	for (size_t i = 0; i < l->n; i++) {
		const struct catalog_entry *e = &l->e[i];
		lr->bad += e->index != i || e->generation != l->generation ||
			   strncmp(e->exposed, "fx__", 4) || catalog_list_find(l, e->exposed) != e;
		lr->misjudged += gate_visible(g.gate, &ro, e) != some_allows(e);
	}
	for (size_t i = gate_next_visible(g.gate, &ro, CAT_TOOLS, l, 0); i < l->n;
	     i = gate_next_visible(g.gate, &ro, CAT_TOOLS, l, i + 1)) {
		lr->misjudged += !some_allows(&l->e[i]);
		lr->shown++;
	}
	lr->reads++;
	if (atomic_load(&readers_stop))
		event_base_loopbreak(lr->base);
	else
		event_active(lr->ev, EV_TIMEOUT, 1);
}

static pthread_barrier_t readers_go;

static void *reader_main(void *arg)
{
	struct lreader *lr = arg;
	int rc;

	lr->base = event_base_new();
	rc = lr->base ? epoch_loop_attach(lr->base) : -1;
	pthread_barrier_wait(&readers_go);
	if (rc == 0 && (lr->ev = event_new(lr->base, -1, 0, read_lists, lr))) {
		event_active(lr->ev, EV_TIMEOUT, 1);
		event_base_dispatch(lr->base);
		event_free(lr->ev);
	}
	epoch_loop_detach();
	event_base_free(lr->base);
	return NULL;
}

/* Run the gateway's loop until the tools list is replaced (or 10 s). */
static bool refreshed(struct catalog *c, unsigned long gen)
{
	bool timed_out = false;
	struct event *t = evtimer_new(g.base, gw_deadline, g.base);
	struct timeval tv = { 10, 0 };

	evtimer_add(t, &tv);
	while (catalog_list(c, CAT_TOOLS)->generation == gen && !timed_out) {
		event_base_loop(g.base, EVLOOP_ONCE);
		timed_out = !evtimer_pending(t, NULL);
	}
	event_free(t);
	return catalog_list(c, CAT_TOOLS)->generation != gen;
}

/* Two loops list and judge the tools while the gateway's loop refreshes the catalogue again
 * and again: each list they take is whole (its entries, index and names agree), the gate
 * judges its entries as the policy says whichever list the views were compiled for, and a
 * list replaced is freed only after they have let go of it (ASan; make tsan). */
static void test_loops_read(void)
{
	struct catalog *c = router_catalog(g.router);
	struct lreader lr[2] = { { .cat = c }, { .cat = c } };
	pthread_t t[2];
	int refreshes = 0;

	atomic_store(&readers_stop, false);
	CU_ASSERT_FATAL(pthread_barrier_init(&readers_go, NULL, 3) == 0);
	for (int i = 0; i < 2; i++)
		CU_ASSERT_FATAL(pthread_create(&t[i], NULL, reader_main, &lr[i]) == 0);
	pthread_barrier_wait(&readers_go);
	for (int i = 0; i < REFRESHES; i++) {
		unsigned long gen = catalog_list(c, CAT_TOOLS)->generation;
		catalog_refresh(c, 0, CAT_TOOLS);
		refreshes += refreshed(c, gen);
	}
	atomic_store(&readers_stop, true);
	for (int i = 0; i < 2; i++) {
		CU_ASSERT_FATAL(pthread_join(t[i], NULL) == 0);
		CU_ASSERT(lr[i].reads > 0);
		CU_ASSERT(lr[i].shown > 0);
		CU_ASSERT_EQUAL(lr[i].bad, 0);
		CU_ASSERT_EQUAL(lr[i].misjudged, 0);
	}
	pthread_barrier_destroy(&readers_go);
	CU_ASSERT_EQUAL(refreshes, REFRESHES);
}

CU_MAIN("router", setup, teardown,
	{ "method table: ping, unknown, bad _meta, ids echoed", test_method_table },
	{ "lists follow the key's policy; bad cursor", test_lists_follow_policy },
	{ "calls routed; unknown, not permitted, bad arguments", test_calls_route_and_refuse },
	{ "resources, prompts, setLevel fan-out", test_resources_prompts_fanout },
	{ "catalogue: exposed names, URIs, capabilities", test_catalogue },
	{ "other loops read the catalogue while it is refreshed", test_loops_read })
