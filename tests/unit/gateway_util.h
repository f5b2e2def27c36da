/* gateway_util: a real gateway (config, gate, router, HTTP front) on a real event loop, and an
 * HTTP client on the same loop, for the unit suites of the request path. Header only. */
#ifndef WARDEN_GATEWAY_UTIL_H
#define WARDEN_GATEWAY_UTIL_H

#define _XOPEN_SOURCE 700
#include <CUnit/Basic.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <cjson/cJSON.h>

#include "base/config.h"
#include "govern/gate.h"
#include "mcp/router.h"
#include "mcp/transport/front.h"
#include "mcp/transport/upstream_http.h"
#include "mcp/transport/upstream_stdio.h"

struct gw {
	struct event_base *base;
	struct config *cfg;
	struct gate *gate;
	struct router *router;
	struct front *front;
	char dir[64];
};

struct http_res {
	int status;
	char *body;
	cJSON *json;
	char session[80];
	char allow[64], www_auth[128], retry_after[16], ctype[64];
	bool done;
};

static int gw_rm(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb; (void)flag; (void)ftw;
	return remove(p);
}

/* The stdio fixture upstream's JSON (tests/fixtures/conformance-server.mjs). */
static inline void gw_fixture_upstream(char *buf, size_t len, const char *name)
{
	const char *top = getenv("MCPWARDEN_TOP");
	char node[1024];

	snprintf(node, sizeof(node), "%s/tests/node_modules/node/bin/node", top ? top : ".");
	if (access(node, X_OK) < 0)
		snprintf(node, sizeof(node), "node");
	snprintf(buf, len, "{\"name\":\"%s\",\"transport\":\"stdio\",\"command\":[\"%s\",\"%s/tests/"
		 "fixtures/conformance-server.mjs\",\"--stdio\"]}", name, node, top ? top : ".");
}

static void gw_ready(void *arg)
{
	event_base_loopbreak(arg);
}

static void gw_deadline(evutil_socket_t fd, short what, void *arg)
{
	event_base_loopbreak(arg);
}

/* Run the loop until *flag or ms pass. */
static inline void gw_run_until(struct gw *g, const bool *flag, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	struct event *t = evtimer_new(g->base, gw_deadline, g->base);

	evtimer_add(t, &tv);
	while (!*flag && evtimer_pending(t, NULL))
		event_base_loop(g->base, EVLOOP_ONCE);
	event_free(t);
}

/* A gateway on config `fmt` (printf-style; the listener and state_dir are added). 0 on success;
 * waits until the catalogue is ready. */
static inline int gw_start(struct gw *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline int gw_start(struct gw *g, const char *fmt, ...)
{
	struct config_errors errs = { 0 };
	char body[8192], text[9000];
	va_list ap;

	memset(g, 0, sizeof(*g));
	snprintf(g->dir, sizeof(g->dir), "/tmp/mcpwarden-unit-XXXXXX");
	if (!mkdtemp(g->dir))
		return -1;
	va_start(ap, fmt);
	vsnprintf(body, sizeof(body), fmt, ap);
	va_end(ap);
	snprintf(text, sizeof(text), "{\"listen\":\"127.0.0.1:0\",\"state_dir\":\"%s\",%s}", g->dir,
		 body);
	g->base = event_base_new();
	if (upstream_http_init(g->base) ||
	    config_parse(text, "test", &g->cfg, &errs)) {
		for (int i = 0; i < errs.count; i++)
			fprintf(stderr, "config: %s\n", errs.msg[i]);
		return -1;
	}
	if (gate_new(g->base, g->cfg, &g->gate, &errs) ||
	    router_new(g->base, g->cfg, g->gate, &g->router) ||
	    front_new(g->base, g->cfg, g->gate, g->router, &g->front))
		return -1;
	if (!router_ready(g->router)) {
		struct timeval tv = { 20, 0 };
		event_base_loopexit(g->base, &tv);
		router_when_ready(g->router, gw_ready, g->base);
		event_base_dispatch(g->base);
	}
	return router_ready(g->router) ? 0 : -1;
}

static inline void gw_stop(struct gw *g)
{
	front_free(g->front);
	router_free(g->router);
	gate_free(g->gate);
	upstream_stdio_shutdown();
	upstream_http_shutdown();
	/* Let reaped children and closed connections finish their callbacks. */
	event_base_loop(g->base, EVLOOP_NONBLOCK);
	config_free(g->cfg);
	event_base_free(g->base);
	nftw(g->dir, gw_rm, 8, FTW_DEPTH | FTW_PHYS);
}

static void gw_copy_header(struct evhttp_request *req, const char *name, char *buf, size_t len)
{
	const char *v = evhttp_find_header(evhttp_request_get_input_headers(req), name);

	snprintf(buf, len, "%s", v ? v : "");
}

static void gw_on_response(struct evhttp_request *req, void *arg)
{
	struct http_res *r = arg;

	r->done = true;
	if (!req)
		return;
	r->status = evhttp_request_get_response_code(req);
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t n = evbuffer_get_length(in);
	r->body = malloc(n + 1);
	evbuffer_copyout(in, r->body, n);
	r->body[n] = '\0';
	r->json = cJSON_Parse(r->body);
	gw_copy_header(req, "Mcp-Session-Id", r->session, sizeof(r->session));
	gw_copy_header(req, "Allow", r->allow, sizeof(r->allow));
	gw_copy_header(req, "WWW-Authenticate", r->www_auth, sizeof(r->www_auth));
	gw_copy_header(req, "Retry-After", r->retry_after, sizeof(r->retry_after));
	gw_copy_header(req, "Content-Type", r->ctype, sizeof(r->ctype));
}

/* One HTTP request on a fresh connection. hdrs: "Name: value" strings, NULL-terminated; the
 * defaults (Host, Accept, Content-Type) are sent unless hdrs names them. */
static inline struct http_res gw_http(struct gw *g, enum evhttp_cmd_type cmd, const char *path,
				      const char *const *hdrs, const char *body)
{
	struct http_res r = { 0 };
	struct evhttp_connection *c = evhttp_connection_base_new(g->base, NULL, "127.0.0.1",
								   (ev_uint16_t)front_port(g->front));
	struct evhttp_request *req = evhttp_request_new(gw_on_response, &r);
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	bool host = false, accept = false, ctype = false;

	for (const char *const *p = hdrs; p && *p; p++) {
		char name[64];
		const char *colon = strchr(*p, ':');
		snprintf(name, sizeof(name), "%.*s", (int)(colon - *p), *p);
		evhttp_add_header(h, name, colon + 2);
		host |= !strcasecmp(name, "Host");
		accept |= !strcasecmp(name, "Accept");
		ctype |= !strcasecmp(name, "Content-Type");
	}
	if (!host)
		evhttp_add_header(h, "Host", "127.0.0.1");
	if (!accept)
		evhttp_add_header(h, "Accept", "application/json, text/event-stream");
	if (!ctype && body)
		evhttp_add_header(h, "Content-Type", "application/json");
	if (body)
		evbuffer_add(evhttp_request_get_output_buffer(req), body, strlen(body));
	evhttp_make_request(c, req, cmd, path);
	gw_run_until(g, &r.done, 15000);
	evhttp_connection_free(c);
	return r;
}

static inline void gw_res_free(struct http_res *r)
{
	free(r->body);
	cJSON_Delete(r->json);
}

/* POST a JSON-RPC message on session sid (NULL: none). */
static inline struct http_res gw_post(struct gw *g, const char *sid, const char *body)
{
	char hs[128];
	const char *hdrs[] = { hs, NULL };

	snprintf(hs, sizeof(hs), "Mcp-Session-Id: %s", sid ? sid : "");
	return gw_http(g, EVHTTP_REQ_POST, "/mcp", sid ? hdrs : NULL, body);
}

/* initialize a session; its id goes to sid. */
static inline int gw_initialize(struct gw *g, const char *version, char *sid, size_t len)
{
	char body[512];
	struct http_res r;

	snprintf(body, sizeof(body), "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\","
		 "\"params\":{\"protocolVersion\":\"%s\",\"capabilities\":{},"
		 "\"clientInfo\":{\"name\":\"unit\",\"version\":\"1\"}}}", version);
	r = gw_post(g, NULL, body);
	snprintf(sid, len, "%s", r.session);
	int ok = r.status == 200 && r.session[0] ? 0 : -1;
	gw_res_free(&r);
	return ok;
}

/* The JSON-RPC error code of an answer, 0 when it is a result. */
static inline int gw_error_code(const struct http_res *r)
{
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(r->json, "error");
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "code");

	return cJSON_IsNumber(c) ? c->valueint : 0;
}

#endif
