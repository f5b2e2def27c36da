/* test_upstream_http: the Streamable HTTP upstream transport on a real event loop.
 *
 * Against the real server-everything (streamableHttp mode, wrapped so it listens on loopback
 * only): initialize, session id, initialized, tools/list, tools/call with SSE answers and
 * progress, an expired session after a server restart, DELETE on destroy. Against a scripted
 * evhttp server on the same loop, for what server-everything never does: JSON answers, 404,
 * 502, non-JSON and oversized bodies, SSE polling (priming event, retry, GET + Last-Event-ID);
 * those run on the own HTTP client (URLs with an IP address), one session with a host name on
 * libcurl. And against plain sockets: connection refused, and a peer that never answers.
 */
#include "mcp/transport/upstream_http.h"
#include "mcp/transport/http_exchange.h"
#include "mcp/jsonrpc.h"
#include "mcp/jsonrpc_splice.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <CUnit/Basic.h>
#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "base/config.h"
#include "mcp/transport/sse.h"
#include "cunit_main.h"

static struct event_base *base;
static char top[4096];
static char preload[64];

/* ---- what the transport reported ---- */

#define MAX_GOT 64

static struct {
	int nmsg;
	cJSON *msg[MAX_GOT];
	cJSON *rel[MAX_GOT];
	int nerr;
	cJSON *err_id;
	int err;
	char why[160];
	int ndown;
	int down_err;
	char down_why[160];
	int after_destroy;              /* callbacks after the hook destroyed the transport */
} got;

/* Hooks that act from inside on_message, as the MCP client on top will. */
static struct {
	struct transport *send_initialized;     /* on the initialize response */
	struct transport *destroy;              /* on the next message */
	bool destroyed;
} hook;

static void got_reset(void)
{
	for (int i = 0; i < got.nmsg; i++) {
		cJSON_Delete(got.msg[i]);
		cJSON_Delete(got.rel[i]);
	}
	cJSON_Delete(got.err_id);
	memset(&got, 0, sizeof(got));
}

static void notify(struct transport *t, const char *method);

static void on_message(void *arg, cJSON *msg, const cJSON *related)
{
	if (hook.destroyed)
		got.after_destroy++;
	if (hook.destroy) {
		transport_destroy(hook.destroy);
		hook.destroy = NULL;
		hook.destroyed = true;
	}
	if (hook.send_initialized && cJSON_HasObjectItem(msg, "result")) {
		notify(hook.send_initialized, "notifications/initialized");
		hook.send_initialized = NULL;
	}
	if (got.nmsg == MAX_GOT) {
		cJSON_Delete(msg);
		return;
	}
	got.msg[got.nmsg] = msg;
	got.rel[got.nmsg] = related ? cJSON_Duplicate(related, true) : NULL;
	got.nmsg++;
}

static void on_send_error(void *arg, const cJSON *id, int err, const char *why)
{
	if (hook.destroyed)
		got.after_destroy++;
	got.nerr++;
	cJSON_Delete(got.err_id);
	got.err_id = cJSON_Duplicate(id, true);
	got.err = err;
	snprintf(got.why, sizeof(got.why), "%s", why);
}

static void on_down(void *arg, int err, const char *why)
{
	if (hook.destroyed)
		got.after_destroy++;
	got.ndown++;
	got.down_err = err;
	snprintf(got.down_why, sizeof(got.down_why), "%s", why);
}

static const struct transport_cb cbs = { on_message, on_send_error, on_down, NULL };

/* ---- loop helpers ---- */

static long long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Run the loop in 10 ms slices until done() or ms elapsed; returns done(). */
static bool run_until(bool (*done)(void *), void *arg, int ms)
{
	long long end = mono_ms() + ms;
	struct timeval slice = { 0, 10000 };

	while (!done(arg) && mono_ms() < end) {
		event_base_loopexit(base, &slice);
		event_base_dispatch(base);
	}
	return done(arg);
}

static bool never(void *arg) { return false; }

static int response_index(int id)
{
	for (int i = 0; i < got.nmsg; i++) {
		const cJSON *mid = cJSON_GetObjectItem(got.msg[i], "id");
		if (cJSON_IsNumber(mid) && mid->valueint == id && !cJSON_HasObjectItem(got.msg[i],
										      "method"))
			return i;
	}
	return -1;
}

static bool answered(void *arg)
{
	int id = *(int *)arg;

	return response_index(id) >= 0 || got.nerr > 0 || got.ndown > 0;
}

static bool errored(void *arg) { return got.nerr > 0 || got.ndown > 0; }

static cJSON *make_request(int id, const char *method, cJSON *params)
{
	cJSON *m = cJSON_CreateObject();

	cJSON_AddStringToObject(m, "jsonrpc", "2.0");
	cJSON_AddNumberToObject(m, "id", id);
	cJSON_AddStringToObject(m, "method", method);
	if (params)
		cJSON_AddItemToObject(m, "params", params);
	return m;
}

/* Whether call()'s last response came with its result as text. */
static int last_spliced;

/* Send a request and run the loop until its response (returned, owned by got) or an error. */
static const cJSON *call(struct transport *t, int id, const char *method, cJSON *params, int ms)
{
	cJSON *m = make_request(id, method, params);
	int i;

	CU_ASSERT_EQUAL(transport_send(t, m), 0);
	cJSON_Delete(m);
	run_until(answered, &id, ms);
	i = response_index(id);
	if (i < 0)
		return NULL;
	/* a response names its request itself: no related id comes with it (server requests
	 * and notifications on the response's stream do get one: the progress test) */
	CU_ASSERT_PTR_NULL(got.rel[i]);
	/* a tools/call result may come as its text (jsonrpc_splice.h): read it as a tree, as a
	 * caller that looks inside does */
	last_spliced = jsonrpc_spliced(got.msg[i]);
	CU_ASSERT(jsonrpc_unsplice(got.msg[i]) == 0);
	return got.msg[i];
}

/* call() with the message given to the transport (transport_give) and its params a Raw text
 * (a tools/call's arguments as the agent wrote them: sent from where they lie). */
static const cJSON *call_given(struct transport *t, int id, const char *params_text, int ms)
{
	cJSON *m = make_request(id, "tools/call", cJSON_CreateRaw(params_text));
	int i;

	CU_ASSERT_EQUAL(transport_give(t, m), 0);
	run_until(answered, &id, ms);
	i = response_index(id);
	if (i < 0)
		return NULL;
	CU_ASSERT(jsonrpc_unsplice(got.msg[i]) == 0);
	return got.msg[i];
}

/* Long arguments, given: the upstream reads them whole (its echo is the same tree). */
static void check_given_args(struct transport *t, int id)
{
	size_t n = 200000;
	char *text = malloc(n + 64), *p = text;
	const cJSON *r;
	cJSON *want;

	CU_ASSERT_FATAL(text != NULL);
	p += sprintf(p, "{\"name\":\"echo\",\"arguments\":{\"s\":\"");
	for (size_t i = 0; i < n; i++)
		*p++ = i % 97 == 0 ? ' ' : (char)('a' + i % 26);
	strcpy(p, "\\\"\\n\u00e9\"}}");       /* an escape or two, UTF-8 */
	want = cJSON_Parse(text);
	CU_ASSERT_PTR_NOT_NULL_FATAL(want);
	r = call_given(t, id, text, 5000);
	CU_ASSERT_PTR_NOT_NULL(r);
	CU_ASSERT(r && cJSON_Compare(cJSON_GetObjectItem(r, "result"), want, true));
	cJSON_Delete(want);
	free(text);
}

static void notify(struct transport *t, const char *method)
{
	cJSON *m = cJSON_CreateObject();

	cJSON_AddStringToObject(m, "jsonrpc", "2.0");
	cJSON_AddStringToObject(m, "method", method);
	CU_ASSERT_EQUAL(transport_send(t, m), 0);
	cJSON_Delete(m);
}

static cJSON *init_params(void)
{
	return cJSON_Parse("{\"protocolVersion\":\"2025-11-25\",\"capabilities\":{},"
			   "\"clientInfo\":{\"name\":\"mcpwarden-test\",\"version\":\"0\"}}");
}

static struct upstream_config make_cfg(char *url, int request_ms)
{
	struct upstream_config c = { 0 };

	c.name = "test";
	c.kind = UPSTREAM_HTTP;
	c.url = url;
	c.connect_timeout_ms = 1000;
	c.request_timeout_ms = request_ms;
	return c;
}

/* ---- ports and server-everything ---- */

static int free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

static bool accepts(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;

	if (fd >= 0)
		close(fd);
	return ok;
}

struct server {
	pid_t pid;
	int port;
};

/* Every server still running, by pid: a test stopped by a fatal assertion leaves its own
 * behind, and the suite's clean-up stops it (stop_pid). */
static pid_t running[8];

static void note_pid(pid_t old, pid_t pid)
{
	for (size_t i = 0; i < sizeof(running) / sizeof(running[0]); i++)
		if (running[i] == old) {
			running[i] = pid;
			return;
		}
}

static void stop_pid(pid_t pid)
{
	kill(pid, SIGTERM);
	for (int i = 0; i < 100; i++) {
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return;
		usleep(20 * 1000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static int server_start(struct server *s, int port)
{
	char node[4200], script[4200], portenv[16], imp[96];

	s->port = port;
	snprintf(node, sizeof(node), "%s/tests/node_modules/node/bin/node", top);
	if (access(node, X_OK) != 0)
		snprintf(node, sizeof(node), "node");
	snprintf(script, sizeof(script), "%s/tests/node_modules/.bin/mcp-server-everything", top);
	snprintf(portenv, sizeof(portenv), "%d", port);
	snprintf(imp, sizeof(imp), "file://%s", preload);
	if (access(script, R_OK) != 0) {
		fprintf(stderr, "server-everything missing (%s): run scripts/deps.sh\n", script);
		return -ENOENT;
	}
	s->pid = fork();
	if (s->pid < 0)
		return -errno;
	if (s->pid == 0) {
		int devnull = open("/dev/null", O_RDWR);
		if (devnull >= 0) {
			dup2(devnull, 0);
			dup2(devnull, 1);
			if (!getenv("MCPWARDEN_TEST_VERBOSE"))
				dup2(devnull, 2);
		}
		setenv("PORT", portenv, 1);
		execlp(node, node, "--import", imp, script, "streamableHttp", (char *)NULL);
		_exit(127);
	}
	note_pid(0, s->pid);
	for (int i = 0; i < 300; i++) {         /* node starts in about a second */
		if (accepts(port))
			return 0;
		if (waitpid(s->pid, NULL, WNOHANG) == s->pid) {
			note_pid(s->pid, 0);
			s->pid = 0;
			return -ECHILD;
		}
		usleep(50 * 1000);
	}
	return -ETIMEDOUT;
}

static void server_stop(struct server *s)
{
	if (s->pid <= 0)
		return;
	stop_pid(s->pid);
	note_pid(s->pid, 0);
	s->pid = 0;
}

static size_t discard(char *p, size_t sz, size_t n, void *arg) { return sz * n; }

/* Does the server still know this session? A blocking probe from outside the transport. */
static bool session_alive(int port, const char *sid)
{
	char url[64], hdr[256];
	struct curl_slist *h = NULL;
	long status = 0;
	CURL *e = curl_easy_init();

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/mcp", port);
	snprintf(hdr, sizeof(hdr), "Mcp-Session-Id: %s", sid);
	h = curl_slist_append(h, hdr);
	h = curl_slist_append(h, "Content-Type: application/json");
	h = curl_slist_append(h, "Accept: application/json, text/event-stream");
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS,
			 "{\"jsonrpc\":\"2.0\",\"id\":99,\"method\":\"ping\"}");
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 2000L);
	if (curl_easy_perform(e) == CURLE_OK)
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(h);
	curl_easy_cleanup(e);
	return status == 200;
}

struct probe {
	int port;
	const char *sid;
};

static bool session_gone(void *arg)
{
	struct probe *p = arg;

	return !session_alive(p->port, p->sid);
}

/* ---- tests against server-everything ---- */

static void initialize(struct transport *t)
{
	const cJSON *r = call(t, 1, "initialize", init_params(), 8000);

	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	CU_ASSERT_PTR_NOT_NULL(cJSON_GetObjectItem(r, "result"));
	CU_ASSERT_PTR_NOT_NULL(upstream_http_session_id(t));
	notify(t, "notifications/initialized");
}

static void test_everything_session(void)
{
	struct server s = { 0 };
	char url[64], *sid;
	struct upstream_config cfg;
	struct transport *t = NULL;
	const cJSON *r, *tools, *it;
	const char *text;
	bool has_sum = false;
	int first_progress = -1, nprogress = 0, result_at;
	struct probe pr;

	CU_ASSERT_FATAL(server_start(&s, free_port()) == 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/mcp", s.port);
	cfg = make_cfg(url, 8000);
	CU_ASSERT_FATAL(upstream_http_new(base, &cfg, &cbs, &t) == 0);
	CU_ASSERT_EQUAL(transport_start(t), 0);
	CU_ASSERT_PTR_NULL(upstream_http_session_id(t));

	initialize(t);
	CU_ASSERT_STRING_EQUAL(upstream_http_protocol_version(t), "2025-11-25");

	/* tools/list: the SSE answer (priming event skipped) relates to the request */
	r = call(t, 2, "tools/list", NULL, 5000);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	tools = cJSON_GetObjectItem(cJSON_GetObjectItem(r, "result"), "tools");
	cJSON_ArrayForEach(it, tools) {
		const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(it, "name"));
		has_sum |= name && strcmp(name, "get-sum") == 0;
	}
	CU_ASSERT(has_sum);

	r = call(t, 3, "tools/call", cJSON_Parse("{\"name\":\"get-sum\",\"arguments\":{\"a\":2,"
						  "\"b\":3}}"), 5000);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	it = cJSON_GetObjectItem(cJSON_GetObjectItem(r, "result"), "content");
	text = cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(it, 0), "text"));
	CU_ASSERT(text && strstr(text, "5") != NULL);
	CU_ASSERT(last_spliced);        /* relayed as the server's text, not parsed and printed */

	/* Progress notifications stream on the call's response and arrive before its result. */
	got_reset();
	r = call(t, 4, "tools/call", cJSON_Parse("{\"name\":\"trigger-long-running-operation\","
						  "\"arguments\":{\"duration\":1,\"steps\":3},"
						  "\"_meta\":{\"progressToken\":\"tok-4\"}}"),
		 6000);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	result_at = response_index(4);
	for (int i = 0; i < got.nmsg; i++) {
		const char *m = cJSON_GetStringValue(cJSON_GetObjectItem(got.msg[i], "method"));
		if (!m || strcmp(m, "notifications/progress") != 0)
			continue;
		nprogress++;
		if (first_progress < 0)
			first_progress = i;
		CU_ASSERT(cJSON_IsNumber(got.rel[i]) && got.rel[i]->valueint == 4);
		CU_ASSERT(i < result_at);
	}
	CU_ASSERT_EQUAL(nprogress, 3);
	CU_ASSERT_EQUAL(got.nerr, 0);
	CU_ASSERT_EQUAL(got.ndown, 0);

	/* destroy DELETEs the session, in the background, on the loop */
	sid = strdup(upstream_http_session_id(t));
	CU_ASSERT_FATAL(sid != NULL);
	CU_ASSERT(session_alive(s.port, sid));
	transport_destroy(t);
	pr = (struct probe){ s.port, sid };
	CU_ASSERT(run_until(session_gone, &pr, 3000));
	free(sid);
	got_reset();
	server_stop(&s);
}

static void test_everything_session_expired(void)
{
	struct server s = { 0 };
	char url[64];
	struct upstream_config cfg;
	struct transport *t = NULL;
	const cJSON *r;
	cJSON *m;

	CU_ASSERT_FATAL(server_start(&s, free_port()) == 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/mcp", s.port);
	cfg = make_cfg(url, 5000);
	CU_ASSERT_FATAL(upstream_http_new(base, &cfg, &cbs, &t) == 0);
	initialize(t);
	run_until(never, NULL, 200);    /* let the GET stream open */

	/* The server forgets every session when it restarts. */
	server_stop(&s);
	CU_ASSERT_FATAL(server_start(&s, s.port) == 0);
	got_reset();
	m = make_request(5, "tools/list", NULL);
	CU_ASSERT_EQUAL(transport_send(t, m), 0);
	cJSON_Delete(m);
	run_until(errored, NULL, 5000);
	CU_ASSERT_EQUAL(got.ndown, 1);
	CU_ASSERT_EQUAL(got.down_err, -ESTALE);
	CU_ASSERT_STRING_EQUAL(got.down_why, "session expired");
	CU_ASSERT_EQUAL(got.nerr, 0);   /* the caller fails what was in flight */
	CU_ASSERT_PTR_NULL(upstream_http_session_id(t));

	/* The same transport re-initialises into a new session. */
	got_reset();
	r = call(t, 6, "initialize", init_params(), 8000);
	CU_ASSERT_PTR_NOT_NULL(r);
	CU_ASSERT_PTR_NOT_NULL(upstream_http_session_id(t));
	transport_destroy(t);
	run_until(never, NULL, 100);
	got_reset();
	server_stop(&s);
}

/* ---- plain sockets ---- */

static void test_connection_refused(void)
{
	char url[64];
	struct upstream_config cfg;
	struct transport *t = NULL;
	cJSON *m = make_request(1, "initialize", init_params());
	long long t0;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/mcp", free_port());
	cfg = make_cfg(url, 10000);
	CU_ASSERT_FATAL(upstream_http_new(base, &cfg, &cbs, &t) == 0);
	t0 = mono_ms();
	CU_ASSERT_EQUAL(transport_send(t, m), 0);
	cJSON_Delete(m);
	/* refused at once, not after the 10 s request timeout */
	CU_ASSERT(run_until(errored, NULL, 5000));
	CU_ASSERT(mono_ms() - t0 < 5000);
	CU_ASSERT_EQUAL(got.nerr, 1);
	CU_ASSERT_EQUAL(got.err, -ECONNREFUSED);
	CU_ASSERT(cJSON_IsNumber(got.err_id) && got.err_id->valueint == 1);
	transport_destroy(t);
	got_reset();
}

static void test_never_answers(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	char url[64];
	struct upstream_config cfg;
	struct transport *t = NULL;
	cJSON *m = make_request(7, "tools/list", NULL);

	/* The kernel completes the handshake into the backlog; nobody ever reads or answers. */
	CU_ASSERT_FATAL(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
			listen(fd, 8) == 0 && getsockname(fd, (struct sockaddr *)&a, &len) == 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/mcp", ntohs(a.sin_port));
	cfg = make_cfg(url, 400);
	CU_ASSERT_FATAL(upstream_http_new(base, &cfg, &cbs, &t) == 0);
	CU_ASSERT_EQUAL(transport_send(t, m), 0);
	cJSON_Delete(m);
	CU_ASSERT(run_until(errored, NULL, 4000));
	CU_ASSERT_EQUAL(got.nerr, 1);
	CU_ASSERT_EQUAL(got.err, -ETIMEDOUT);
	CU_ASSERT(cJSON_IsNumber(got.err_id) && got.err_id->valueint == 7);
	transport_destroy(t);
	close(fd);
	got_reset();
}

/* ---- a scripted server on the loop (evhttp) ---- */

static struct {
	struct evhttp *http;
	int port;
	bool get_405;           /* answer the standalone GET with 405 */
	bool poll_never;        /* resumed GETs never carry the response */
	int good_accept;        /* requests with the Accept the spec asks for */
	int posts, gets, deletes;
	int with_api_key;       /* requests carrying the configured header */
	int with_version;       /* requests carrying MCP-Protocol-Version after initialize */
	int with_session;       /* POSTs carrying Mcp-Session-Id fake-1 */
	bool no_session;        /* initialize answers without an Mcp-Session-Id */
	bool bad_version;       /* ... with a protocolVersion that is not a string */
	char delete_sid[64];
	char last_event_id[64];
	cJSON *poll_id;         /* the request waiting for a GET + Last-Event-ID */
	char *last_post;        /* the last POST's body, as it came */
} fake;

static void reply_json(struct evhttp_request *req, int code, const char *body)
{
	struct evbuffer *b = evbuffer_new();

	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "application/json");
	evbuffer_add(b, body, strlen(body));
	evhttp_send_reply(req, code, code == 200 ? "OK" : "Error", b);
	evbuffer_free(b);
}

static void reply_sse(struct evhttp_request *req, struct evbuffer *events)
{
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "text/event-stream");
	evhttp_send_reply_start(req, 200, "OK");
	evhttp_send_reply_chunk(req, events);
	evhttp_send_reply_end(req);
}

static char *result_for(const cJSON *id, const char *result)
{
	cJSON *m = cJSON_CreateObject();
	char *s;

	cJSON_AddStringToObject(m, "jsonrpc", "2.0");
	cJSON_AddItemToObject(m, "id", cJSON_Duplicate(id, true));
	cJSON_AddRawToObject(m, "result", result);
	s = cJSON_PrintUnformatted(m);
	cJSON_Delete(m);
	return s;
}

static void fake_cb(struct evhttp_request *req, void *arg)
{
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	struct evbuffer *body = evhttp_request_get_input_buffer(req);
	const char *sid = evhttp_find_header(in, "Mcp-Session-Id");
	const char *lei = evhttp_find_header(in, "Last-Event-ID");
	const char *key = evhttp_find_header(in, "X-Api-Key");
	const char *ver = evhttp_find_header(in, "MCP-Protocol-Version");
	const char *accept = evhttp_find_header(in, "Accept");
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	struct evbuffer *ev = evbuffer_new();
	cJSON *msg = NULL;
	const cJSON *id, *method;
	const char *tool = "";
	char *s = NULL;

	if (key && strcmp(key, "k-123") == 0)
		fake.with_api_key++;
	if (ver && strcmp(ver, "2025-06-18") == 0)
		fake.with_version++;
	if (accept && strcmp(accept, cmd == EVHTTP_REQ_POST ?
			     "application/json, text/event-stream" : "text/event-stream") == 0)
		fake.good_accept++;
	switch (cmd) {
	case EVHTTP_REQ_DELETE:
		fake.deletes++;
		snprintf(fake.delete_sid, sizeof(fake.delete_sid), "%s", sid ? sid : "");
		evhttp_send_reply(req, 200, "OK", NULL);
		goto out;
	case EVHTTP_REQ_GET:
		fake.gets++;
		if (lei && fake.poll_never) {
			/* a poll that finds nothing new: the client must try again after retry */
			sse_write_event(ev, lei, NULL, 50, "", 0);
			reply_sse(req, ev);
		} else if (lei && fake.poll_id) {
			/* resume: replay the response after the given event */
			snprintf(fake.last_event_id, sizeof(fake.last_event_id), "%s", lei);
			s = result_for(fake.poll_id, "{\"content\":[],\"polled\":true}");
			sse_write_event(ev, "ev-2", "message", -1, s, strlen(s));
			cJSON_Delete(fake.poll_id);
			fake.poll_id = NULL;
			reply_sse(req, ev);
		} else if (fake.get_405) {
			evhttp_send_reply(req, 405, "Method Not Allowed", NULL);
		} else {
			/* the standalone stream: one server notification, then the stream ends */
			s = strdup("{\"jsonrpc\":\"2.0\","
				   "\"method\":\"notifications/tools/list_changed\"}");
			sse_write_event(ev, "g-1", NULL, 60000, s, strlen(s));
			reply_sse(req, ev);
		}
		goto out;
	default:
		break;
	}
	fake.posts++;
	free(fake.last_post);
	fake.last_post = strndup((const char *)evbuffer_pullup(body, -1), evbuffer_get_length(body));
	if (sid && strcmp(sid, "fake-1") == 0)
		fake.with_session++;
	msg = cJSON_ParseWithLength((const char *)evbuffer_pullup(body, -1),
				    evbuffer_get_length(body));
	id = cJSON_GetObjectItem(msg, "id");
	method = cJSON_GetObjectItem(msg, "method");
	if (!cJSON_IsString(method) || !id) {
		evhttp_send_reply(req, 202, "Accepted", NULL);
		goto out;
	}
	if (strcmp(method->valuestring, "initialize") == 0) {
		if (!fake.no_session)
			evhttp_add_header(evhttp_request_get_output_headers(req), "Mcp-Session-Id",
					  "fake-1");
		s = result_for(id, fake.bad_version
			       ? "{\"protocolVersion\":1,\"capabilities\":{},"
				 "\"serverInfo\":{\"name\":\"fake\",\"version\":\"0\"}}"
			       : "{\"protocolVersion\":\"2025-06-18\",\"capabilities\":{},"
				 "\"serverInfo\":{\"name\":\"fake\",\"version\":\"0\"}}");
		reply_json(req, 200, s);
		goto out;
	}
	if (!cJSON_GetObjectItem(msg, "params")) {     /* ping and the like */
		s = result_for(id, "{}");
		reply_json(req, 200, s);
		goto out;
	}
	tool = cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(msg, "params"),
							"name"));
	if (!tool)
		tool = "";
	if (strcmp(tool, "json") == 0) {
		s = result_for(id, "{\"content\":[{\"type\":\"text\",\"text\":\"plain json\"}]}");
		reply_json(req, 200, s);
	} else if (strcmp(tool, "echo") == 0) {
		/* the request's params as the fake read them, as the result */
		char *params = cJSON_PrintUnformatted(cJSON_GetObjectItem(msg, "params"));
		s = result_for(id, params);
		cJSON_free(params);
		reply_json(req, 200, s);
	} else if (strcmp(tool, "bad") == 0) {
		reply_json(req, 200, "this is not json");
	} else if (strcmp(tool, "e502") == 0) {
		reply_json(req, 502, "{\"error\":\"bad gateway\"}");
	} else if (strcmp(tool, "gone") == 0) {
		reply_json(req, 404, "{}");
	} else if (strncmp(tool, "text", 4) == 0) {
		/* "text<N>": a result whose text is N bytes, the answer read in many pieces */
		size_t n = strtoul(tool + 4, NULL, 10);
		char *res = malloc(n + 64);
		int k = snprintf(res, 64, "{\"content\":[{\"type\":\"text\",\"text\":\"");
		for (size_t i = 0; i < n; i++)
			res[k + i] = (char)('a' + i % 26);
		memcpy(res + k + n, "\"}]}", 5);
		s = result_for(id, res);
		free(res);
		reply_json(req, 200, s);
	} else if (strcmp(tool, "big") == 0) {
		size_t n = (16u << 20) + 4096;
		char *big = malloc(n + 1);
		memset(big, ' ', n);
		big[0] = '{';
		memcpy(big + n - 2, "}", 2);
		reply_json(req, 200, big);
		free(big);
	} else if (strcmp(tool, "badsse") == 0) {
		sse_write_event(ev, NULL, NULL, -1, "{not json", 9);
		reply_sse(req, ev);
	} else if (strcmp(tool, "poll") == 0) {
		/* SEP-1699: priming event with an id and retry, then close before the response */
		fake.poll_id = cJSON_Duplicate(id, true);
		sse_write_event(ev, "ev-1", NULL, 50, "", 0);
		reply_sse(req, ev);
	} else {
		reply_json(req, 400, "{}");
	}
out:
	free(s);
	cJSON_Delete(msg);
	evbuffer_free(ev);
}

static int fake_start(void)
{
	struct evhttp_bound_socket *bs;
	struct sockaddr_in a;
	socklen_t len = sizeof(a);

	memset(&fake, 0, sizeof(fake));
	if (!(fake.http = evhttp_new(base)))
		return -ENOMEM;
	evhttp_set_allowed_methods(fake.http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_DELETE);
	evhttp_set_max_body_size(fake.http, 1 << 20);
	evhttp_set_gencb(fake.http, fake_cb, NULL);
	if (!(bs = evhttp_bind_socket_with_handle(fake.http, "127.0.0.1", 0)) ||
	    getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&a, &len) != 0)
		return -EADDRNOTAVAIL;
	fake.port = ntohs(a.sin_port);
	return 0;
}

static void fake_stop(void)
{
	evhttp_free(fake.http);
	cJSON_Delete(fake.poll_id);
	free(fake.last_post);
	memset(&fake, 0, sizeof(fake));
}

static struct transport *fake_session(struct upstream_config *cfg, char *url,
				      struct config_header *hdr)
{
	struct transport *t = NULL;
	const cJSON *r;

	CU_ASSERT_FATAL(fake_start() == 0);
	snprintf(url, 64, "http://127.0.0.1:%d/mcp", fake.port);
	*cfg = make_cfg(url, 3000);
	hdr->name = "X-Api-Key";
	hdr->value = "k-123";
	cfg->headers = hdr;
	cfg->nheaders = 1;
	CU_ASSERT_FATAL(upstream_http_new(base, cfg, &cbs, &t) == 0);
	r = call(t, 1, "initialize", init_params(), 3000);
	CU_ASSERT_PTR_NOT_NULL(r);
	CU_ASSERT_STRING_EQUAL(upstream_http_session_id(t), "fake-1");
	CU_ASSERT_STRING_EQUAL(upstream_http_protocol_version(t), "2025-06-18");
	return t;
}

static bool got_one_msg(void *arg) { return got.nmsg > 0; }
static bool got_one_msg_after_init(void *arg) { return got.nmsg > 1; }
static bool deleted(void *arg) { return fake.deletes > 0; }

static cJSON *tool_params(const char *name)
{
	cJSON *p = cJSON_CreateObject();

	cJSON_AddStringToObject(p, "name", name);
	return p;
}

static void test_scripted_answers(void)
{
	char url[64];
	struct upstream_config cfg;
	struct config_header hdr;
	struct transport *t = fake_session(&cfg, url, &hdr);
	const cJSON *r;
	int gets;

	/* the GET stream opens after initialized; its messages relate to no request */
	got_reset();
	notify(t, "notifications/initialized");
	CU_ASSERT(run_until(got_one_msg, NULL, 3000));
	CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(cJSON_GetObjectItem(got.msg[0], "method")),
			       "notifications/tools/list_changed");
	CU_ASSERT_PTR_NULL(got.rel[0]);

	got_reset();
	r = call(t, 10, "tools/call", tool_params("json"), 3000);
	CU_ASSERT_PTR_NOT_NULL(r);
	CU_ASSERT_EQUAL(got.nerr, 0);

	got_reset();
	check_given_args(t, 13);        /* sent from where they lie, in one write */
	CU_ASSERT_EQUAL(got.nerr, 0);

	got_reset();
	CU_ASSERT_PTR_NULL(call(t, 11, "tools/call", tool_params("e502"), 3000));
	CU_ASSERT_EQUAL(got.err, -EPROTO);
	CU_ASSERT_STRING_EQUAL(got.why, "HTTP 502 from upstream");
	CU_ASSERT(cJSON_IsNumber(got.err_id) && got.err_id->valueint == 11);

	got_reset();
	CU_ASSERT_PTR_NULL(call(t, 12, "tools/call", tool_params("bad"), 3000));
	CU_ASSERT_EQUAL(got.err, -EPROTO);

	/* answers of many reads, under and over the room made ahead for an announced length
	 * (1 MiB), come whole */
	static const char *const long_texts[] = { "text200000", "text1048500", "text1500000" };
	for (size_t i = 0; i < sizeof(long_texts) / sizeof(long_texts[0]); i++) {
		size_t n = strtoul(long_texts[i] + 4, NULL, 10);

		got_reset();
		r = call(t, 20 + (int)i, "tools/call", tool_params(long_texts[i]), 5000);
		CU_ASSERT_PTR_NOT_NULL_FATAL(r);
		const cJSON *text = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(
			cJSON_GetObjectItem(r, "result"), "content"), 0), "text");
		CU_ASSERT_FATAL(cJSON_IsString(text));
		CU_ASSERT_EQUAL(strlen(text->valuestring), n);
		CU_ASSERT(text->valuestring[n - 1] == (char)('a' + (n - 1) % 26));
	}

	got_reset();
	CU_ASSERT_PTR_NULL(call(t, 13, "tools/call", tool_params("big"), 5000));
	CU_ASSERT_EQUAL(got.err, -EMSGSIZE);

	got_reset();
	CU_ASSERT_PTR_NULL(call(t, 15, "tools/call", tool_params("badsse"), 3000));
	CU_ASSERT_EQUAL(got.err, -EPROTO);

	/* SSE polling: the stream ends after the priming event; the transport waits `retry`
	 * and resumes with GET + Last-Event-ID; the response still relates to the call. */
	got_reset();
	r = call(t, 14, "tools/call", tool_params("poll"), 3000);
	CU_ASSERT_PTR_NOT_NULL(r);
	CU_ASSERT_STRING_EQUAL(fake.last_event_id, "ev-1");
	CU_ASSERT(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "result"), "polled")));

	/* Polling that never finds the response ends at the request deadline. */
	got_reset();
	fake.poll_never = true;
	cfg.request_timeout_ms = 400;
	gets = fake.gets;
	CU_ASSERT_PTR_NULL(call(t, 16, "tools/call", tool_params("poll"), 3000));
	CU_ASSERT_EQUAL(got.err, -ETIMEDOUT);
	CU_ASSERT(fake.gets - gets >= 2);
	fake.poll_never = false;

	/* every request carried the configured header; all after initialize the version, and
	 * every POST after initialize the session */
	CU_ASSERT_EQUAL(fake.with_api_key, fake.posts + fake.gets + fake.deletes);
	CU_ASSERT_EQUAL(fake.with_version, fake.posts + fake.gets - 1);
	CU_ASSERT_EQUAL(fake.with_session, fake.posts - 1);
	CU_ASSERT_EQUAL(fake.good_accept, fake.posts + fake.gets);

	/* destroy: no callback afterwards, DELETE with the session id */
	got_reset();
	transport_destroy(t);
	CU_ASSERT(run_until(deleted, NULL, 3000));
	CU_ASSERT_STRING_EQUAL(fake.delete_sid, "fake-1");
	CU_ASSERT_EQUAL(got.nmsg + got.nerr + got.ndown, 0);
	got_reset();
	fake_stop();
}

/* Each of what initialize's answer sets, the session id and the protocol version (their
 * lengths noted then: upstream_http.c), is sent from the next POST on, also when the other is
 * not set: a server without sessions, or one whose version is not kept. */
static void session_headers_case(bool no_session, bool bad_version)
{
	char url[64];
	struct upstream_config cfg;
	struct transport *t = NULL;

	CU_ASSERT_FATAL(fake_start() == 0);
	fake.no_session = no_session;
	fake.bad_version = bad_version;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/mcp", fake.port);
	cfg = make_cfg(url, 3000);
	CU_ASSERT_FATAL(upstream_http_new(base, &cfg, &cbs, &t) == 0);
	CU_ASSERT_PTR_NOT_NULL(call(t, 1, "initialize", init_params(), 3000));
	for (int i = 0; i < 2; i++)
		CU_ASSERT_PTR_NOT_NULL(call(t, 2 + i, "tools/call", tool_params("json"), 3000));
	CU_ASSERT_EQUAL(fake.posts, 3);
	CU_ASSERT_EQUAL(fake.with_session, no_session ? 0 : 2);
	CU_ASSERT_EQUAL(fake.with_version, bad_version ? 0 : 2);
	transport_destroy(t);
	run_until(never, NULL, 100);
	got_reset();
	fake_stop();
}

static void test_scripted_session_headers(void)
{
	session_headers_case(true, false);      /* no session: the version alone */
	session_headers_case(false, true);      /* no version kept: the session alone */
	session_headers_case(false, false);
}

static void test_scripted_404(void)
{
	char url[64];
	struct upstream_config cfg;
	struct config_header hdr;
	struct transport *t = fake_session(&cfg, url, &hdr);

	fake.get_405 = true;            /* no standalone stream: fine */
	notify(t, "notifications/initialized");
	run_until(never, NULL, 100);
	got_reset();
	CU_ASSERT_PTR_NULL(call(t, 20, "tools/call", tool_params("gone"), 3000));
	CU_ASSERT_EQUAL(got.ndown, 1);
	CU_ASSERT_EQUAL(got.down_err, -ESTALE);
	CU_ASSERT_EQUAL(got.nerr, 0);
	CU_ASSERT_PTR_NULL(upstream_http_session_id(t));
	/* the session is gone: nothing to DELETE */
	transport_destroy(t);
	run_until(never, NULL, 100);
	CU_ASSERT_EQUAL(fake.deletes, 0);
	got_reset();
	fake_stop();
}

/* A request given as its parts (transport_ops.request: the link's calls): the upstream gets
 * the bytes cJSON prints for the same request's tree, long Raw params from where they lie, and
 * the answer relates to it like any other. */
static const cJSON *request_parts(struct transport *t, int id, const char *method,
				  cJSON *params)
{
	cJSON *idn = cJSON_CreateNumber(id);
	cJSON *tree = jsonrpc_request(idn, method, params ? cJSON_Duplicate(params, true) : NULL);
	char *want = cJSON_PrintUnformatted(tree);
	int i;

	got_reset();
	CU_ASSERT_FATAL(t->ops->request != NULL);
	CU_ASSERT_EQUAL(t->ops->request(t, (uint64_t)id, method, params), 0);
	run_until(answered, &id, 5000);
	CU_ASSERT_STRING_EQUAL(fake.last_post ? fake.last_post : "", want);
	i = response_index(id);
	CU_ASSERT(i >= 0 && !got.rel[i]);     /* the answer names its request itself */
	CU_ASSERT_EQUAL(got.nerr, 0);
	cJSON_Delete(idn);
	cJSON_Delete(tree);
	cJSON_free(want);
	return i >= 0 ? got.msg[i] : NULL;
}

static void test_scripted_request_parts(void)
{
	char url[64];
	struct upstream_config cfg;
	struct config_header hdr;
	struct transport *t = fake_session(&cfg, url, &hdr);
	cJSON *p = tool_params("json");
	char *text = malloc(70000);

	cJSON_AddItemToObject(p, "arguments", cJSON_Parse("{\"a\":[1,-2.5,\"\\\"q\\n\"],\"b\":null}"));
	/* a tools/call: its answer's result kept as text */
	CU_ASSERT(jsonrpc_spliced(request_parts(t, 31, "tools/call", p)));
	CU_ASSERT_PTR_NOT_NULL(request_parts(t, 32, "ping", NULL));    /* no params: none */
	CU_ASSERT_EQUAL(fake.posts, 3);
	/* long arguments as the agent wrote them: sent from where they lie, read whole */
	CU_ASSERT_FATAL(text != NULL);
	strcpy(text, "{\"name\":\"echo\",\"arguments\":{\"s\":\"");
	memset(text + strlen(text), 'x', 65000);
	strcpy(text + strlen("{\"name\":\"echo\",\"arguments\":{\"s\":\"") + 65000, "\"}}");
	request_parts(t, 33, "tools/call", cJSON_CreateRaw(text));
	free(text);
	transport_destroy(t);
	run_until(never, NULL, 100);
	got_reset();
	fake_stop();
}

/* The client on top sends and destroys from inside its callbacks. */
static void test_reentrant_callbacks(void)
{
	char url[64];
	struct upstream_config cfg;
	struct transport *t = NULL;
	cJSON *m;
	int id = 1;

	CU_ASSERT_FATAL(fake_start() == 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/mcp", fake.port);
	cfg = make_cfg(url, 3000);
	CU_ASSERT_FATAL(upstream_http_new(base, &cfg, &cbs, &t) == 0);
	got_reset();
	hook.send_initialized = t;
	m = make_request(1, "initialize", init_params());
	CU_ASSERT_EQUAL(transport_send(t, m), 0);
	cJSON_Delete(m);
	CU_ASSERT(run_until(answered, &id, 3000));
	/* initialized was sent from the callback: the GET stream opens and delivers */
	CU_ASSERT(run_until(got_one_msg_after_init, NULL, 3000));

	/* destroy from the callback of one answer while another call waits to resume */
	got_reset();
	m = make_request(31, "tools/call", tool_params("poll"));
	CU_ASSERT_EQUAL(transport_send(t, m), 0);
	cJSON_Delete(m);
	m = make_request(30, "tools/call", tool_params("json"));
	CU_ASSERT_EQUAL(transport_send(t, m), 0);
	cJSON_Delete(m);
	hook.destroy = t;
	CU_ASSERT(run_until(deleted, NULL, 3000));
	run_until(never, NULL, 200);
	CU_ASSERT(hook.destroyed);
	CU_ASSERT_EQUAL(got.after_destroy, 0);
	CU_ASSERT_EQUAL(fake.gets, 1);          /* the poll never resumed */
	memset(&hook, 0, sizeof(hook));
	got_reset();
	fake_stop();
}

/* A host name goes through libcurl (its resolver keeps DNS off the loop), an IP address
 * through the own client: the same session either way. */
static void test_libcurl_path(void)
{
	char url[64];
	struct upstream_config cfg;
	struct config_header hdr = { "X-Api-Key", "k-123" };
	struct transport *t = NULL;
	int rc;

	CU_ASSERT_FATAL(fake_start() == 0);
	snprintf(url, sizeof(url), "http://localhost:%d/mcp", fake.port);
	cfg = make_cfg(url, 3000);
	cfg.headers = &hdr;
	cfg.nheaders = 1;
	if ((rc = upstream_http_new(base, &cfg, &cbs, &t)) == -ENOTSUP) {
		printf("skipped: this libcurl resolves names synchronously ");
		fake_stop();
		return;
	}
	CU_ASSERT_FATAL(rc == 0);
	CU_ASSERT_PTR_NOT_NULL(call(t, 1, "initialize", init_params(), 3000));
	CU_ASSERT_STRING_EQUAL(upstream_http_session_id(t), "fake-1");
	fake.get_405 = true;
	notify(t, "notifications/initialized");
	CU_ASSERT_PTR_NOT_NULL(call(t, 2, "tools/call", tool_params("json"), 3000));
	CU_ASSERT(fake.with_api_key >= 2);
	check_given_args(t, 3);         /* libcurl posts the pieces joined */
	transport_destroy(t);
	CU_ASSERT(run_until(deleted, NULL, 3000));
	CU_ASSERT_STRING_EQUAL(fake.delete_sid, "fake-1");
	got_reset();
	fake_stop();
}

/* Every session's link to an upstream asks for its endpoint: one per URL, held until the last
 * holder lets go (ASan sees a use after free if not). */
static void test_endpoints_shared(void)
{
	struct http_endpoint *a, *b, *c;

	CU_ASSERT_EQUAL_FATAL(http_endpoint_new("http://127.0.0.1:9/mcp", "a", &a), 0);
	CU_ASSERT_EQUAL_FATAL(http_endpoint_new("http://127.0.0.1:9/mcp", "b", &b), 0);
	CU_ASSERT_EQUAL_FATAL(http_endpoint_new("http://127.0.0.1:9/other", "c", &c), 0);
	CU_ASSERT_PTR_EQUAL(a, b);
	CU_ASSERT_PTR_NOT_EQUAL(a, c);
	http_endpoint_free(a);
	CU_ASSERT_TRUE(http_endpoint_native(b));
	http_endpoint_free(b);
	http_endpoint_free(c);
	CU_ASSERT_EQUAL(http_endpoint_new("ftp://127.0.0.1/", "d", &a), -EINVAL);
}

static void test_bad_config(void)
{
	struct upstream_config cfg = make_cfg("ftp://127.0.0.1/mcp", 1000);
	struct config_header hdr = { "X-Evil", "a\r\nInjected: 1" };
	struct transport *t = NULL;

	CU_ASSERT_EQUAL(upstream_http_new(base, &cfg, &cbs, &t), -EINVAL);
	cfg.url = "not a url";
	CU_ASSERT_EQUAL(upstream_http_new(base, &cfg, &cbs, &t), -EINVAL);
	cfg.url = "http://127.0.0.1:1/mcp";
	cfg.headers = &hdr;
	cfg.nheaders = 1;
	CU_ASSERT_EQUAL(upstream_http_new(base, &cfg, &cbs, &t), -EINVAL);
	CU_ASSERT_PTR_NULL(t);
}

static int suite_init(void)
{
	const char *env = getenv("MCPWARDEN_TOP");
	int fd;
	static const char js[] =
		"import net from 'node:net';\n"
		"const listen = net.Server.prototype.listen;\n"
		"net.Server.prototype.listen = function (...a) {\n"
		"\tif (typeof a[0] === 'number' ||\n"
		"\t    (typeof a[0] === 'string' && /^\\d+$/.test(a[0])))\n"
		"\t\tif (typeof a[1] !== 'string') a.splice(1, 0, '127.0.0.1');\n"
		"\treturn listen.apply(this, a);\n"
		"};\n";

	snprintf(top, sizeof(top), "%s", env ? env : ".");
	/* server-everything listens on all interfaces; this preload pins it to loopback */
	snprintf(preload, sizeof(preload), "/tmp/mcpwarden-loopback-XXXXXX.mjs");
	if ((fd = mkstemps(preload, 4)) < 0)
		return -1;
	if (write(fd, js, sizeof(js) - 1) != (ssize_t)(sizeof(js) - 1)) {
		close(fd);
		return -1;
	}
	close(fd);
	signal(SIGPIPE, SIG_IGN);
	if (!(base = event_base_new()))
		return -1;
	return upstream_http_init(base) == 0 ? 0 : -1;
}

static int suite_clean(void)
{
	for (size_t i = 0; i < sizeof(running) / sizeof(running[0]); i++)
		if (running[i] > 0)
			stop_pid(running[i]);
	upstream_http_shutdown();
	event_base_free(base);
	unlink(preload);
	return 0;
}

CU_MAIN("upstream_http", suite_init, suite_clean,
	{ "bad URL and headers are refused", test_bad_config },
	{ "one endpoint per URL, shared", test_endpoints_shared },
	{ "connection refused", test_connection_refused },
	{ "an upstream that never answers times out", test_never_answers },
	{ "scripted: JSON, 502, non-JSON, oversized, SSE polling, GET stream, DELETE", test_scripted_answers },
	{ "scripted: a POST sends the session's id and version, each as soon as it is set",
	  test_scripted_session_headers },
	{ "scripted: a request given as its parts is the tree's bytes", test_scripted_request_parts },
	{ "scripted: 404 means the session expired", test_scripted_404 },
	{ "scripted: send and destroy from inside callbacks", test_reentrant_callbacks },
	{ "scripted: a host name goes through libcurl", test_libcurl_path },
	{ "server-everything: session, tools, progress, DELETE", test_everything_session },
	{ "server-everything: restarted server, session expired", test_everything_session_expired })
