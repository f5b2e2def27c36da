/* test_catalog: the aggregated catalogue over real stdio upstreams on a real event loop — the
 * fault fixture (twice), a small sh server that pages its tools/list (no stock server pages),
 * and one that never comes up. Asserts what agents are shown: every page, prefixed names and
 * URIs, lookups and routes, refresh on list_changed, and that a dead upstream holds no one. */
#include "mcp/catalog.h"

#include <string.h>

#include <CUnit/Basic.h>
#include <event2/event.h>

#include "mcp/upstream.h"
#include "mcp/transport/upstream_stdio.h"
#include "cunit_main.h"
#include "loop_util.h"

static struct event_base *base;
static struct lu_env env;
static struct catalog *cat;

struct seen {
	unsigned ready;            /* bit per server that became ready */
	int changes[CAT_NKINDS];   /* on_change per kind */
};
static struct seen seen;

static void on_change(void *arg, enum catalog_kind kind) { ((struct seen *)arg)->changes[kind]++; }
static void on_ready(void *arg, size_t server) { ((struct seen *)arg)->ready |= 1u << server; }

/* An MCP server in sh: initialize, and tools/list in two pages (t1, t2 | t3). The gateway
 * numbers its requests itself; the id is echoed back. */
static const char pager_script[] =
	"while IFS= read -r line; do\n"
	"  id=$(printf '%s' \"$line\" | sed -n 's/.*\"id\":\\([0-9]*\\).*/\\1/p')\n"
	"  case \"$line\" in\n"
	"  *'\"method\":\"initialize\"'*) printf '{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"protocolVersion\":"
	"\"2025-06-18\",\"capabilities\":{\"tools\":{}},\"serverInfo\":{\"name\":\"pager\",\"version\":\"1\"}}}\\n' \"$id\";;\n"
	"  *'\"cursor\":\"page-2\"'*) printf '{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"tools\":["
	"{\"name\":\"t3\",\"inputSchema\":{\"type\":\"object\"}}]}}\\n' \"$id\";;\n"
	"  *'\"method\":\"tools/list\"'*) printf '{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"tools\":["
	"{\"name\":\"t1\",\"inputSchema\":{\"type\":\"object\"}},{\"name\":\"t2\",\"inputSchema\":{\"type\":\"object\"}}],"
	"\"nextCursor\":\"page-2\"}}\\n' \"$id\";;\n"
	"  esac\n"
	"done\n";

/* {"name": name, "transport": "stdio", "command": ["/bin/sh", "-c", script]} as text (freed
 * by the caller with cJSON_free). */
static char *sh_upstream(const char *name, const char *script)
{
	const char *argv[] = { "/bin/sh", "-c", script };
	cJSON *u = cJSON_CreateObject();
	char *text;

	cJSON_AddStringToObject(u, "name", name);
	cJSON_AddStringToObject(u, "transport", "stdio");
	cJSON_AddItemToObject(u, "command", cJSON_CreateStringArray(argv, 3));
	text = cJSON_PrintUnformatted(u);
	cJSON_Delete(u);
	return text;
}

static void start(const char *prefix, const char *upstreams)
{
	struct catalog_hooks hooks = { on_change, on_ready, NULL, NULL, &seen };

	memset(&seen, 0, sizeof(seen));
	base = event_base_new();
	CU_ASSERT_FATAL(base != NULL);
	memset(&env, 0, sizeof(env));
	lu_config(&env, "{\"listen\": \"127.0.0.1:0\", \"prefix\": \"%s\", \"upstreams\": [%s]}",
		  prefix, upstreams);
	CU_ASSERT_FATAL(catalog_new(base, env.cfg, &hooks, &cat) == 0);
}

static void stop(void)
{
	catalog_free(cat);
	upstream_stdio_shutdown();
	event_base_free(base);
	lu_env_free(&env);
	CU_ASSERT(lu_no_children());
}

static unsigned want_ready;
static bool servers_ready(void *arg) { return (seen.ready & want_ready) == want_ready; }

struct tcall {
	enum obj_type t;           /* not a downstream call: the catalogue leaves it to us */
	cJSON *resp;
};

static void on_reply(enum obj_type *ctx, cJSON *resp) { ((struct tcall *)ctx)->resp = resp; }
static bool replied(void *arg) { return ((struct tcall *)arg)->resp != NULL; }
static bool tools_changed(void *arg) { return seen.changes[CAT_TOOLS] > 0; }

static void test_aggregate(void)
{
	char a[4096], b[4096], all[12288];
	char *pager = sh_upstream("pager", pager_script), *down = sh_upstream("down", "exit 3");

	lu_fault_upstream(a, sizeof(a), "a", "");
	lu_fault_upstream(b, sizeof(b), "b", "");
	snprintf(all, sizeof(all), "%s, %s, %s, %s", a, b, pager, down);
	cJSON_free(pager);
	cJSON_free(down);
	start("auto", all);

	/* The three that work are served; the one that does not holds none of them up. */
	want_ready = 7;
	CU_ASSERT_FATAL(lu_run_until(base, servers_ready, NULL, 20000));
	CU_ASSERT_EQUAL(catalog_nservers(cat), 4);
	CU_ASSERT_TRUE(catalog_server_ready(cat, 0) && catalog_server_ready(cat, 1) &&
		       catalog_server_ready(cat, 2));
	CU_ASSERT_FALSE(catalog_server_ready(cat, 3));
	CU_ASSERT_FALSE(catalog_all_ready(cat));
	CU_ASSERT_PTR_NULL(catalog_server_caps(cat, 3));
	CU_ASSERT_STRING_EQUAL(catalog_server_config(cat, 3)->name, "down");

	/* Every page of every list: 8 + 8 fixture tools and t1..t3 over two pages. */
	CU_ASSERT_TRUE(catalog_prefixing(cat));
	const struct catalog_list *tl = catalog_list(cat, CAT_TOOLS);
	CU_ASSERT_EQUAL(tl->n, 19);
	CU_ASSERT(tl->generation > 0 && tl->generation <= catalog_generation(cat));
	for (size_t i = 0; i < tl->n; i++) {
		const struct catalog_entry *e = catalog_list_at(tl, i);
		CU_ASSERT_EQUAL(e->generation, tl->generation);
		char want[256];
		snprintf(want, sizeof(want), "%s__%s", catalog_server_config(cat, e->server)->name, e->name);
		CU_ASSERT_STRING_EQUAL(e->exposed, want);
		CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItemCaseSensitive(e->json, "name")->valuestring, want);
		CU_ASSERT_EQUAL(e->index, i);
		CU_ASSERT_PTR_EQUAL(catalog_find(cat, CAT_TOOLS, want), e);
	}
	const struct catalog_entry *t3 = catalog_find(cat, CAT_TOOLS, "pager__t3");
	CU_ASSERT_FATAL(t3 != NULL);
	CU_ASSERT_EQUAL(t3->server, 2);
	CU_ASSERT_STRING_EQUAL(t3->name, "t3");
	CU_ASSERT_PTR_NOT_NULL(catalog_find(cat, CAT_TOOLS, "pager__t1"));
	CU_ASSERT_PTR_NULL(catalog_find(cat, CAT_TOOLS, "echo"));
	CU_ASSERT_PTR_NULL(catalog_find(cat, CAT_TOOLS, "a__nope"));
	CU_ASSERT_PTR_NULL(catalog_find(cat, CAT_PROMPTS, "a__echo"));
	/* The fixture's schema is compiled for argument checks. */
	CU_ASSERT_PTR_NOT_NULL(catalog_find(cat, CAT_TOOLS, "b__echo")->schema);

	/* Routes by exposed name and URI. */
	size_t server = 99;
	const char *up = NULL;
	CU_ASSERT_EQUAL(catalog_route_name(cat, CAT_TOOLS, "b__echo", &server, &up), 0);
	CU_ASSERT_EQUAL(server, 1);
	CU_ASSERT_STRING_EQUAL(up, "echo");
	CU_ASSERT_NOT_EQUAL(catalog_route_name(cat, CAT_TOOLS, "zz__echo", &server, &up), 0);
	CU_ASSERT_NOT_EQUAL(catalog_route_name(cat, CAT_TOOLS, "echo", &server, &up), 0);
	CU_ASSERT_EQUAL(catalog_route_uri(cat, "pager+file:///x/y", &server, &up), 0);
	CU_ASSERT_EQUAL(server, 2);
	CU_ASSERT_STRING_EQUAL(up, "file:///x/y");
	CU_ASSERT_EQUAL(catalog_route_uri(cat, "zz+file:///x", &server, &up), -ENOENT);
	CU_ASSERT_EQUAL(catalog_route_uri(cat, "file:///x", &server, &up), -ENOENT);
	char *ex = catalog_expose_uri(cat, 1, "file:///x");
	CU_ASSERT_STRING_EQUAL(ex, "b+file:///x");
	free(ex);

	/* The gateway's capabilities: what the ready servers offer, listChanged always. */
	cJSON *caps = catalog_capabilities(cat);
	CU_ASSERT_TRUE(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(caps, "tools"), "listChanged")));
	CU_ASSERT_PTR_NOT_NULL(cJSON_GetObjectItemCaseSensitive(caps, "logging"));
	cJSON_Delete(caps);

	/* list_changed: the fixture adds a tool and says so; the list is fetched again. */
	unsigned long gen = catalog_generation(cat);
	/* Each first listing was announced too (a server that comes up late joins that way). */
	CU_ASSERT(seen.changes[CAT_TOOLS] >= 1);
	seen.changes[CAT_TOOLS] = 0;
	struct link *l = catalog_shared_link(cat, 0);
	struct tcall tc = { OBJ_TYPE_NONE, NULL };
	CU_ASSERT_FATAL(l != NULL);
	CU_ASSERT_FATAL(link_call(l, "tools/call",
				  cJSON_Parse("{\"name\": \"add-tool\", \"arguments\": {\"name\": \"fresh\"}}"),
				  0, on_reply, &tc.t, NULL) == 0);
	CU_ASSERT_TRUE(lu_run_until(base, replied, &tc, 10000));
	cJSON_Delete(tc.resp);
	CU_ASSERT_TRUE(lu_run_until(base, tools_changed, NULL, 10000));
	CU_ASSERT_EQUAL(seen.changes[CAT_TOOLS], 1);
	CU_ASSERT_EQUAL(catalog_list(cat, CAT_TOOLS)->n, 20);
	CU_ASSERT(catalog_generation(cat) > gen);
	const struct catalog_entry *fresh = catalog_find(cat, CAT_TOOLS, "a__fresh");
	CU_ASSERT_FATAL(fresh != NULL);
	CU_ASSERT_EQUAL(fresh->server, 0);
	CU_ASSERT_PTR_NOT_NULL(catalog_find(cat, CAT_TOOLS, "pager__t3"));
	CU_ASSERT_FALSE(catalog_server_ready(cat, 3));
	stop();
}

static void test_prefix_never_keeps_the_first(void)
{
	char a[4096], b[4096], all[8200];

	lu_fault_upstream(a, sizeof(a), "a", "");
	lu_fault_upstream(b, sizeof(b), "b", "\"--extra-tools\", \"2\"");
	snprintf(all, sizeof(all), "%s, %s", a, b);
	start("never", all);
	want_ready = 3;
	CU_ASSERT_FATAL(lu_run_until(base, servers_ready, NULL, 20000));
	CU_ASSERT_TRUE(catalog_all_ready(cat));
	CU_ASSERT_FALSE(catalog_prefixing(cat));
	/* The eight names both offer are a's; b's two extra are its own. */
	CU_ASSERT_EQUAL(catalog_list(cat, CAT_TOOLS)->n, 10);
	CU_ASSERT_EQUAL(catalog_find(cat, CAT_TOOLS, "echo")->server, 0);
	CU_ASSERT_EQUAL(catalog_find(cat, CAT_TOOLS, "extra-001")->server, 1);
	CU_ASSERT_STRING_EQUAL(catalog_find(cat, CAT_TOOLS, "echo")->exposed, "echo");
	/* Unprefixed URIs are exposed as they are. */
	char *ex = catalog_expose_uri(cat, 1, "file:///x");
	CU_ASSERT_STRING_EQUAL(ex, "file:///x");
	free(ex);
	stop();
}

CU_MAIN("catalog", NULL, NULL,
	{ "aggregate: pages, prefixes, routes, list_changed, a dead upstream", test_aggregate },
	{ "prefix never: a clash keeps the first server's", test_prefix_never_keeps_the_first })
