/* The router on two loops (workers: N): a second loop serves MCP through a half of its own
 * (its sessions, their links, their calls) sharing the first loop's catalogue, gate and
 * readiness. A client of the second loop's listener initialises, lists what its key may see,
 * calls a tool on a per_session stdio upstream (the child started and reaped on that loop),
 * is refused a shared stdio child (the first loop's), and hears of a list's change on its
 * stream when the first loop refreshes the catalogue. Its session is the second loop's only.
 * In make tsan. */
#include "gateway_util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <event2/thread.h>

#include "base/epoch.h"
#include "base/log.h"
#include "govern/keys.h"
#include "mcp/catalog.h"
#include "mcp/session.h"
#include "observe/audit.h"
#include "observe/metrics.h"
#include "store/store.h"
#include "cunit_main.h"

static struct gw g;
static struct front_group *group;

/* ---- the second loop ---- */

struct loop2 {
	struct event_base *base;
	struct event *stop;
	struct router *r;
	struct front *f;
	atomic_int port;                /* 0: starting; -1: failed */
};

static struct loop2 l2;

static void stop_loop(evutil_socket_t fd, short what, void *arg)
{
	event_base_loopbreak(arg);
}

static void *loop2_main(void *arg)
{
	struct loop2 *l = arg;
	int rc;

	metrics_loop_attach();
	l->base = event_base_new();
	rc = !l->base || upstream_http_init(l->base) || epoch_loop_attach(l->base) ||
	     log_loop_attach(l->base) || store_loop_attach(gate_store(g.gate), l->base) ||
	     !(l->stop = event_new(l->base, -1, 0, stop_loop, l->base)) ||
	     router_new_loop(g.router, l->base, &l->r) ||
	     front_new(l->base, g.cfg, g.gate, l->r, &l->f) || front_join(l->f, group) ? -1 : 0;
	atomic_store(&l->port, rc ? -1 : front_port(l->f));
	if (rc == 0)
		event_base_dispatch(l->base);
	front_free(l->f);
	router_free(l->r);
	upstream_stdio_shutdown();      /* this loop's children */
	upstream_http_shutdown();
	if (l->base)
		event_base_loop(l->base, EVLOOP_NONBLOCK);
	log_loop_detach();
	epoch_loop_detach();
	audit_thread_end();
	return NULL;    /* the base outlives the gate: the store holds events on it */
}

static pthread_t t2;

static void hash_text(const char *key, char out[KEYS_HASH_TEXT_SIZE])
{
	unsigned char h[KEYS_HASH_LEN];

	keys_hash(key, strlen(key), h);
	keys_hash_format(h, out);
}

static int setup(void)
{
	char fx[2048], sh[2048], hk[KEYS_HASH_TEXT_SIZE];
	size_t n;

	log_set_level(LOG_ERROR);
	if (evthread_use_pthreads())
		return -1;
	gw_fixture_upstream(fx, sizeof(fx), "fx");
	n = strlen(fx);
	snprintf(fx + n - 1, sizeof(fx) - n + 1, ",\"per_session\":true}");
	gw_fixture_upstream(sh, sizeof(sh), "sh");
	hash_text("key-some", hk);
	group = front_group_new();
	if (gw_start(&g, "\"prefix\":\"always\",\"limits\":{\"max_sessions_per_key\":4},"
		     "\"keys\":[{\"id\":\"some\",\"policy\":\"some\",\"hash\":\"%s\"}],"
		     "\"policies\":{\"some\":{\"tools\":{\"allow\":[\"*/test_*\"],"
		     "\"deny\":[\"*/test_error_*\"]}}},"
		     "\"upstreams\":[%s,%s]", hk, fx, sh))
		return -1;
	if (front_join(g.front, group))
		return -1;
	if (pthread_create(&t2, NULL, loop2_main, &l2))
		return -1;
	/* The first loop keeps running while the second starts (its store staging, ...). */
	while (!atomic_load(&l2.port))
		event_base_loop(g.base, EVLOOP_NONBLOCK), usleep(1000);
	return atomic_load(&l2.port) > 0 ? 0 : -1;
}

static int teardown(void)
{
	event_active(l2.stop, EV_TIMEOUT, 0);
	pthread_join(t2, NULL);
	gw_stop(&g);
	if (l2.stop)
		event_free(l2.stop);
	if (l2.base)
		event_base_free(l2.base);
	front_group_free(group);
	return 0;
}

/* ---- a client of the second loop ---- */

static struct http_res post_to(int port, const char *sid, const char *body);

static struct http_res post2(const char *sid, const char *body)
{
	return post_to(atomic_load(&l2.port), sid, body);
}

static struct http_res post_to(int port, const char *sid, const char *body)
{
	char hs[128];
	const char *h[] = { "Authorization: Bearer key-some", sid ? hs : NULL, NULL };
	struct http_res r = { 0 };
	struct evhttp_connection *c = evhttp_connection_base_new(g.base, NULL, "127.0.0.1",
								   (ev_uint16_t)port);
	struct evhttp_request *req = evhttp_request_new(gw_on_response, &r);
	struct evkeyvalq *hd = evhttp_request_get_output_headers(req);

	snprintf(hs, sizeof(hs), "Mcp-Session-Id: %s", sid ? sid : "");
	for (const char *const *p = h; *p; p++) {
		const char *colon = strchr(*p, ':');
		char name[64];
		snprintf(name, sizeof(name), "%.*s", (int)(colon - *p), *p);
		evhttp_add_header(hd, name, colon + 2);
	}
	evhttp_add_header(hd, "Host", "127.0.0.1");
	evhttp_add_header(hd, "Accept", "application/json, text/event-stream");
	evhttp_add_header(hd, "Content-Type", "application/json");
	evbuffer_add(evhttp_request_get_output_buffer(req), body, strlen(body));
	evhttp_make_request(c, req, EVHTTP_REQ_POST, "/mcp");
	gw_run_until(&g, &r.done, 15000);
	evhttp_connection_free(c);
	return r;
}

static const cJSON *result(const struct http_res *r)
{
	return cJSON_GetObjectItemCaseSensitive(r->json, "result");
}

/* The stream of a session: list_changed counted as it arrives. */
struct stream_seen {
	int tools_changed;
	bool open;
};

static void on_chunk(struct evhttp_request *req, void *arg)
{
	struct stream_seen *ss = arg;
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t n = evbuffer_get_length(in);
	char *p = malloc(n + 1);

	evbuffer_remove(in, p, n);
	p[n] = '\0';
	ss->open = true;
	for (char *q = p; (q = strstr(q, "notifications/tools/list_changed")); q++)
		ss->tools_changed++;
	free(p);
}

static void on_stream_end(struct evhttp_request *req, void *arg)
{
}

static bool got_changed(void *arg)
{
	return ((struct stream_seen *)arg)->tools_changed > 0;
}

static void run_until(bool (*done)(void *), void *arg, int ms)
{
	for (int i = 0; i < ms && !done(arg); i++) {
		event_base_loop(g.base, EVLOOP_NONBLOCK);
		usleep(1000);
	}
}

static void test_second_loop_serves(void)
{
	char sid[80];
	struct http_res r;
	const cJSON *it;
	int listed = 0;

	r = post2(NULL, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{"
		  "\"protocolVersion\":\"2025-11-25\",\"capabilities\":{},"
		  "\"clientInfo\":{\"name\":\"u\",\"version\":\"1\"}}}");
	CU_ASSERT_EQUAL_FATAL(r.status, 200);
	snprintf(sid, sizeof(sid), "%s", r.session);
	gw_res_free(&r);
	CU_ASSERT_FATAL(sid[0] != '\0');
	/* the second loop's session: the first loop's half does not know it */
	CU_ASSERT_PTR_NULL(router_session(g.router, sid));
	r = post2(sid, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}");
	gw_res_free(&r);

	/* the catalogue the first loop fetched, filtered by the key's policy */
	r = post2(sid, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\"}");
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(result(&r), "tools")) {
		const char *name = cJSON_GetObjectItemCaseSensitive(it, "name")->valuestring;
		CU_ASSERT(strstr(name, "__test_") != NULL && !strstr(name, "__test_error_"));
		listed++;
	}
	CU_ASSERT(listed >= 4);
	gw_res_free(&r);

	/* a call on the per_session upstream: its child is the second loop's */
	r = post2(sid, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{"
		  "\"name\":\"fx__test_simple_text\",\"arguments\":{}}}");
	CU_ASSERT_PTR_NOT_NULL(cJSON_GetObjectItemCaseSensitive(result(&r), "content"));
	gw_res_free(&r);
	/* ... refused, not denied: the shared child serves the first loop's sessions */
	r = post2(sid, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/call\",\"params\":{"
		  "\"name\":\"sh__test_simple_text\",\"arguments\":{}}}");
	const cJSON *err = cJSON_GetObjectItemCaseSensitive(r.json, "error");
	CU_ASSERT_PTR_NOT_NULL(err);
	CU_ASSERT_PTR_NOT_NULL(strstr(cJSON_GetObjectItemCaseSensitive(err, "message")->valuestring,
				      "first loop"));
	gw_res_free(&r);
	/* a refusal of the policy is the gate's, whichever loop */
	r = post2(sid, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/call\",\"params\":{"
		  "\"name\":\"fx__test_error_handling\",\"arguments\":{}}}");
	CU_ASSERT_PTR_NOT_NULL(cJSON_GetObjectItemCaseSensitive(r.json, "error"));
	gw_res_free(&r);

	/* its stream hears of a change the first loop saw */
	struct stream_seen ss = { 0 };
	char hs[128];
	struct evhttp_connection *c = evhttp_connection_base_new(g.base, NULL, "127.0.0.1",
								   (ev_uint16_t)atomic_load(&l2.port));
	struct evhttp_request *req = evhttp_request_new(on_stream_end, &ss);
	struct evkeyvalq *hd = evhttp_request_get_output_headers(req);
	snprintf(hs, sizeof(hs), "%s", sid);
	evhttp_request_set_chunked_cb(req, on_chunk);
	evhttp_add_header(hd, "Host", "127.0.0.1");
	evhttp_add_header(hd, "Accept", "text/event-stream");
	evhttp_add_header(hd, "Authorization", "Bearer key-some");
	evhttp_add_header(hd, "Mcp-Session-Id", hs);
	evhttp_make_request(c, req, EVHTTP_REQ_GET, "/mcp");
	for (int i = 0; i < 300 && !router_ready(g.router); i++)
		usleep(1000);
	/* the stream is open once the second loop has answered its head */
	for (int i = 0; i < 200; i++)
		event_base_loop(g.base, EVLOOP_NONBLOCK), usleep(1000);
	router_lists_changed(g.router, CAT_TOOLS);
	run_until(got_changed, &ss, 5000);
	CU_ASSERT_EQUAL(ss.tools_changed, 1);
	evhttp_connection_free(c);

	/* still served after it */
	r = post2(sid, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"ping\"}");
	CU_ASSERT_PTR_NOT_NULL(result(&r));
	gw_res_free(&r);
}

static struct http_res initialize_at(int port, char *sid, size_t len)
{
	struct http_res r = post_to(port, NULL, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":"
				    "\"initialize\",\"params\":{\"protocolVersion\":\"2025-11-25\","
				    "\"capabilities\":{},\"clientInfo\":{\"name\":\"u\","
				    "\"version\":\"1\"}}}");

	snprintf(sid, len, "%s", r.session);
	return r;
}

/* A session belongs to the loop that made it (its id says which); a request for it that
 * reaches another loop's listener is handed over with its connection and served there. */
static void test_sessions_stay_on_their_loop(void)
{
	char sid0[80], sid1[80];
	struct http_res r;
	const char *call = "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":{"
			   "\"name\":\"fx__test_simple_text\",\"arguments\":{}}}";

	r = initialize_at(front_port(g.front), sid0, sizeof(sid0));
	CU_ASSERT_EQUAL(r.status, 200);
	gw_res_free(&r);
	r = initialize_at(atomic_load(&l2.port), sid1, sizeof(sid1));
	CU_ASSERT_EQUAL(r.status, 200);
	gw_res_free(&r);
	CU_ASSERT_EQUAL(session_id_loop(sid0), 0);
	CU_ASSERT_EQUAL(session_id_loop(sid1), 1);
	CU_ASSERT_PTR_NOT_NULL(router_session(g.router, sid0));
	CU_ASSERT_PTR_NULL(router_session(g.router, sid1));

	/* the second loop's session through the first loop's listener, and the reverse */
	r = post_to(front_port(g.front), sid1, call);
	CU_ASSERT_EQUAL(r.status, 200);
	CU_ASSERT_PTR_NOT_NULL(cJSON_GetObjectItemCaseSensitive(result(&r), "content"));
	CU_ASSERT_STRING_EQUAL(r.session, sid1);
	gw_res_free(&r);
	r = post_to(atomic_load(&l2.port), sid0, call);
	CU_ASSERT_EQUAL(r.status, 200);
	CU_ASSERT_PTR_NOT_NULL(cJSON_GetObjectItemCaseSensitive(result(&r), "content"));
	gw_res_free(&r);
	/* an id no loop made: not found, wherever it lands */
	char bogus[80];
	snprintf(bogus, sizeof(bogus), "%.62s7f", sid1);
	r = post_to(front_port(g.front), bogus, call);
	CU_ASSERT_EQUAL(r.status, 404);
	gw_res_free(&r);
	snprintf(bogus, sizeof(bogus), "%.62s01", sid0);       /* loop 1's name, not its session */
	r = post_to(front_port(g.front), bogus, call);
	CU_ASSERT_EQUAL(r.status, 404);
	gw_res_free(&r);
}

/* The session caps are the process's: a key's sessions on every loop count together. */
static void test_caps_count_every_loop(void)
{
	char sid[4][80];
	struct http_res r;
	int open = 0;

	/* the earlier tests left three of this key's sessions (one on the first loop, two on
	 * the second): a fourth fits, on either loop */
	r = initialize_at(front_port(g.front), sid[0], sizeof(sid[0]));
	CU_ASSERT_EQUAL(r.status, 200);
	gw_res_free(&r);
	/* a fifth does not, on either loop */
	r = initialize_at(atomic_load(&l2.port), sid[1], sizeof(sid[1]));
	CU_ASSERT_EQUAL(r.status, 429);
	gw_res_free(&r);
	r = initialize_at(front_port(g.front), sid[1], sizeof(sid[1]));
	CU_ASSERT_EQUAL(r.status, 429);
	gw_res_free(&r);
	/* one ends on the first loop: the second loop may open one */
	struct evhttp_connection *c = evhttp_connection_base_new(g.base, NULL, "127.0.0.1",
								   (ev_uint16_t)front_port(g.front));
	struct http_res d = { 0 };
	struct evhttp_request *req = evhttp_request_new(gw_on_response, &d);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Host", "127.0.0.1");
	evhttp_add_header(evhttp_request_get_output_headers(req), "Authorization",
			  "Bearer key-some");
	evhttp_add_header(evhttp_request_get_output_headers(req), "Mcp-Session-Id", sid[0]);
	evhttp_make_request(c, req, EVHTTP_REQ_DELETE, "/mcp");
	gw_run_until(&g, &d.done, 15000);
	evhttp_connection_free(c);
	CU_ASSERT(d.status == 200 || d.status == 204);
	gw_res_free(&d);
	r = initialize_at(atomic_load(&l2.port), sid[2], sizeof(sid[2]));
	CU_ASSERT_EQUAL(r.status, 200);
	open += r.status == 200;
	gw_res_free(&r);
	CU_ASSERT_EQUAL(open, 1);
}

CU_MAIN("router_loops", setup, teardown,
	{ "a second loop serves MCP with the first loop's catalogue and gate",
	  test_second_loop_serves },
	{ "sessions stay on their loop; connections move to them",
	  test_sessions_stay_on_their_loop },
	{ "the session caps count every loop's sessions", test_caps_count_every_loop })
