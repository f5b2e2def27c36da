/* front: MCP Streamable HTTP towards agents, on base/http_server. */
#include "mcp/transport/front.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <event2/buffer.h>

#include "observe/audit.h"
#include "observe/metrics.h"
#include "observe/trace.h"
#include "base/alloc.h"
#include "base/ascii.h"
#include "base/clock.h"
#include "base/config.h"
#include "govern/gate.h"
#include "govern/keys.h"
#include "base/http_parse.h"
#include "base/http_server.h"
#include "base/json_keys.h"
#include "base/list.h"
#include "mcp/call.h"
#include "mcp/jsonrpc.h"
#include "mcp/jsonrpc_splice.h"
#include "base/listen_unix.h"
#include "base/listener.h"
#include "base/log.h"
#include "mcp/reply.h"
#include "mcp/router.h"
#include "mcp/scope.h"
#include "mcp/session.h"
#include "mcp/stateless.h"
#include "mcp/transport/front_conn.h"
#include "mcp/transport/front_auth.h"
#include "mcp/transport/front_headers.h"
#include "mcp/transport/front_refusal.h"
#include "mcp/transport/front_reply.h"
#include "mcp/transport/redirect_in.h"
#include "mcp/transport/sse.h"
#include "store/store.h"
#include "base/conn_caps.h"
#include "llm/llm.h"

#define KEEPALIVE_MS 25000


struct front {
	struct event_base *base;
	uint64_t rx_ns;                 /* when the request being handled arrived */
	const struct config *cfg;
	struct gate *gate;
	struct router *r;
	struct http_server *http;
	int port;
	bool loopback;
	struct list_head streams;          /* open GET streams */
	struct event *keepalive;
	struct list_head parked;           /* requests waiting for the router to be ready */
	struct front_conns *conns;         /* connection caps, and who each caller is */
	struct llm *llm;                   /* the /v1/ LLM route, or NULL */
	struct front_auth *auth;           /* who a request comes from */
	struct redirect_in *redirect;      /* the transparent-redirect listener, or NULL */
	struct listen_unix *unix_sock;     /* "listen_unix", or NULL */
	struct redirect_route rroute, *route; /* the request's, when it came redirected */
	struct front_group *group;         /* the other loops' fronts, or NULL */
};

struct front_group {
	_Atomic(struct http_server *) loops[SESSION_LOOPS_MAX];
	struct conn_caps caps;             /* every loop's connections: one cap */
};

/* A request that came while the catalogue was still being listed. */
struct parked {
	struct front *f;
	struct http_req *req;
	struct list_head link;
};

struct front_stream {
	struct stream base;
	struct front *f;
	struct http_req *req;
	struct session *s;
	struct list_head link;           /* in front->streams */
};

static bool origin_allowed(const struct front *f, const char *origin)
{
	const char *host;

	for (char **o = f->cfg->allowed_origins; o && *o; o++)
		if (!strcasecmp(*o, origin))
			return true;
	if (!strncasecmp(origin, "http://", 7))
		host = origin + 7;
	else if (!strncasecmp(origin, "https://", 8))
		host = origin + 8;
	else
		return false;
	return listener_is_loopback(host);
}

/* --- GET streams ---------------------------------------------------------------------- */

static void stream_closed(void *arg)
{
	struct front_stream *st = arg;

	router_stream_closed(st->f->r, st->s, &st->base);
	list_del(&st->link);
	free(st);
}

static int stream_write_event(struct stream *base, const cJSON *msg)
{
	return front_write_event(container_of(base, struct front_stream, base)->req, msg);
}

static const struct stream_ops front_stream_ops = { stream_write_event, NULL };

/* End a GET stream from the server side (the session ended). */
static void stream_close(struct front_stream *st)
{
	http_req_on_gone(st->req, NULL, NULL);
	router_stream_closed(st->f->r, st->s, &st->base);
	http_req_stream_end(st->req);
	list_del(&st->link);
	free(st);
}

static void on_keepalive(evutil_socket_t fd, short what, void *arg)
{
	struct front *f = arg;

	/* A comment line keeps proxies from timing the stream out and finds dead clients. */
	struct front_stream *st;

	list_for_each_entry(st, &f->streams, link) {
		struct evbuffer *buf = evbuffer_new();
		if (buf && sse_write_comment(buf, "keepalive") == 0 &&
		    http_req_stream_write(st->req, evbuffer_pullup(buf, -1), evbuffer_get_length(buf)))
			log_debug("front: a stream's keepalive was not written");
		if (buf)
			evbuffer_free(buf);
	}
}

/* --- request handling ----------------------------------------------------------------- */

/* Session lookup shared by POST, GET and DELETE: answers the error itself when it fails.
 * A session is not authentication: the key of every request must be the session's. */
static struct session *find_session(struct front *f, struct http_req *req,
				    const struct key_identity *who)
{
	const char *sid = front_header(req, FH_MCP_SESSION_ID);
	const char *ver = front_header(req, FH_MCP_PROTOCOL_VERSION);
	struct session *s;

	if (!sid) {
		front_send_error(req, 400, "Bad Request", JSONRPC_INVALID_REQUEST,
			   "Mcp-Session-Id header is required (send initialize first)");
		return NULL;
	}
	s = router_session(f->r, sid);
	if (!s || !redirect_in_session_ok(f->route, s)) {
		front_send_error(req, 404, "Not Found", JSONRPC_INVALID_REQUEST,
			   "session not found: it ended or never existed; initialize again");
		return NULL;
	}
	if (who && strcmp(who->id, s->key_id)) {
		audit_auth("key does not match the session", who->id, front_conn_peer(req));
		front_send_error(req, 403, "Forbidden", -32001,
			   "this session was opened with another key");
		return NULL;
	}
	if (ver && !session_version_supported(ver)) {
		char m[160];
		snprintf(m, sizeof(m), "unsupported MCP-Protocol-Version \"%.40s\" (supported: "
			 "2025-11-25, 2025-06-18, 2025-03-26)", ver);
		front_send_error(req, 400, "Bad Request", JSONRPC_INVALID_REQUEST, m);
		return NULL;
	}
	/* A supported version other than the negotiated one is accepted: the spec refuses only
	 * invalid or unsupported ones, and clients (the conformance suite among them) send an
	 * older header on some requests. */
	return s;
}

/* 2025-03-26 allows batches (later versions removed them): each element is handled as if it
 * came alone, and the answers go back together. */
static void handle_batch(struct front *f, struct http_req *req,
			 const struct key_identity *who, cJSON *arr)
{
	struct session *s = find_session(f, req, who);
	struct front_batch *b;
	cJSON *el;

	if (!s)
		goto out;
	if (strcmp(s->version, "2025-03-26")) {
		char m[160];
		snprintf(m, sizeof(m), "JSON-RPC batches are not allowed in protocol version %s: "
			 "send one message per request", s->version);
		front_send_error(req, 400, "Bad Request", JSONRPC_INVALID_REQUEST, m);
		goto out;
	}
	if (!cJSON_GetArraySize(arr)) {
		front_send_error(req, 400, "Bad Request", JSONRPC_INVALID_REQUEST, "empty batch");
		goto out;
	}
	http_req_set_header(req, "Mcp-Session-Id", s->id);
	b = front_batch_new(req);
	cJSON_ArrayForEach(el, arr) {
		cJSON *msg = cJSON_Duplicate(el, 1);
		struct jsonrpc_msg m;
		int code;
		const char *why;

		if (!msg) {
			front_batch_add(b, jsonrpc_error(NULL, JSONRPC_INTERNAL_ERROR,
							 "out of memory", NULL));
			continue;
		}
		int rc = jsonrpc_classify(msg, &m, &code, &why);
		if (rc == 0 && m.kind == JSONRPC_REQUEST && !strcmp(m.method, "initialize")) {
			rc = -EINVAL;
			code = JSONRPC_INVALID_REQUEST;
			why = "initialize must not be part of a batch";
		}
		if (rc) {
			front_batch_add(b, jsonrpc_error(m.id, code, why, NULL));
			cJSON_Delete(msg);
			continue;
		}
		if (m.kind == JSONRPC_NOTIFICATION) {
			router_notification(f->r, s, msg, &m);
			continue;
		}
		if (m.kind == JSONRPC_RESPONSE) {
			router_response(f->r, s, msg, &m);
			continue;
		}
		router_request(f->r, s, who, msg, &m, front_batch_reply(b, f->rx_ns));
	}
	front_batch_done(b);
out:
	cJSON_Delete(arr);
}

/* Mcp-Param-{Name} of a 2026-07-28 tools/call (mcp/param_headers.h). */
static const char *param_header(const void *ctx, const char *name)
{
	return http_req_header((struct http_req *)ctx, name);
}

/* 2026-07-28: no session; the request says its version and the headers mirror the body. */
static void handle_stateless(struct front *f, struct http_req *req,
			     const struct key_identity *who, cJSON *msg,
			     const struct jsonrpc_msg *m, const struct stateless_headers *sh)
{
	cJSON *err = NULL;
	int status = stateless_check(sh, m, &err);
	if (!status)
		status = stateless_check_params(f->r, m, param_header, req, &err);

	if (!status) {
		struct reply *r = front_reply_new(req, f->rx_ns);
		status = stateless_request(f->r, who, msg, m, r, &err);
		msg = NULL;
		if (!status)
			return;
		front_reply_drop(req, r);
	}
	front_refused(req, status, err);
	front_send_json(req, status, status == 404 ? "Not Found" : status == 429 ? "Too Many Requests"
			   : status >= 500 ? "Service Unavailable" : "Bad Request", err);
	cJSON_Delete(err);
	cJSON_Delete(msg);
}

/* One POSTed JSON text, parsed (msg, taken; NULL: not JSON), with a tools/call's params
 * as written (kept; the call takes them). */
static void serve_post(struct front *f, struct http_req *req, const struct key_identity *who,
		       cJSON *msg, struct jsonrpc_request_text *kept)
{
	struct jsonrpc_msg m;
	struct session *s;
	int code;
	const char *why, *dup;

	if (!msg) {
		front_send_error(req, 400, "Bad Request", JSONRPC_PARSE_ERROR, "Parse error: body is not valid JSON");
		return;
	}
	if ((dup = json_repeated_key(msg))) {    /* judged one value, forwarded another */
		char text[160];

		snprintf(text, sizeof(text), "Invalid Request: the member name \"%.64s\" appears "
			 "twice in one object", dup);
		front_send_error(req, 400, "Bad Request", JSONRPC_INVALID_REQUEST, text);
		cJSON_Delete(msg);
		return;
	}
	if (cJSON_IsArray(msg)) {
		handle_batch(f, req, who, msg);
		return;
	}
	if (jsonrpc_classify(msg, &m, &code, &why)) {
		cJSON *e = jsonrpc_error(m.id, code, why, NULL);
		front_refused(req, 400, e);
		front_send_json(req, 400, "Bad Request", e);
		cJSON_Delete(e);
		cJSON_Delete(msg);
		return;
	}
	struct stateless_headers sh = { front_header(req, FH_MCP_SESSION_ID),
					front_header(req, FH_MCP_PROTOCOL_VERSION), front_header(req, FH_MCP_METHOD),
					front_header(req, FH_MCP_NAME) };
	if (stateless_wanted(&sh, &m) && !f->route) {
		handle_stateless(f, req, who, msg, &m, &sh);
		return;
	}
	if (m.kind == JSONRPC_REQUEST && !strcmp(m.method, "initialize")) {
		cJSON *resp = NULL;
		struct reply view = { 0 };
		front_reply_trace_view(req, f->rx_ns, &view);
		struct span *sp = call_trace_initialize(m.id, m.params, &view, who);
		router_initialize(f->r, &m, who ? who->id : "", &s, &resp);
		redirect_in_scope(f->route, s);
		scope_initialize_result(router_catalog(f->r), s, resp);	/* as its upstream */
		call_trace_initialized(sp, s, resp);
		if (s)
			http_req_set_header(req, "Mcp-Session-Id", s->id);
		front_send_answer(req, resp);
		cJSON_Delete(resp);
		cJSON_Delete(msg);
		return;
	}
	s = find_session(f, req, who);
	if (!s) {
		cJSON_Delete(msg);
		return;
	}
	http_req_set_header(req, "Mcp-Session-Id", s->id);
	if (m.kind == JSONRPC_NOTIFICATION) {
		router_notification(f->r, s, msg, &m);
		http_req_send(req, 202, "Accepted", NULL, NULL, 0);
		return;
	}
	if (m.kind == JSONRPC_RESPONSE) {
		router_response(f->r, s, msg, &m);
		http_req_send(req, 202, "Accepted", NULL, NULL, 0);
		return;
	}
	struct reply *r = front_reply_new(req, f->rx_ns);
	r->kept = kept;         /* handed over only: taken as the call starts */
	router_request(f->r, s, who, msg, &m, r);
}

static void handle_post(struct front *f, struct http_req *req,
			const struct key_identity *who)
{
	const char *accept = front_header(req, FH_ACCEPT), *ctype = front_header(req, FH_CONTENT_TYPE);
	struct jsonrpc_request_text kept;
	const char *body;
	size_t len;
	cJSON *msg;

	/* one pass over Accept (it comes with every call): any type, or both of the two; the
	 * value the MCP SDKs send is compared whole first (a list walk is ~350 instructions) */
	static const char *const types[] = { "*/*", "application/json", "text/event-stream" };
	uint32_t listed = !accept ? 0
			  : !strcmp(accept, "application/json, text/event-stream") ? 6
			  : http_list_match(accept, types, 3);

	if (!(listed & 1) && (listed & 6) != 6) {
		front_send_error(req, 406, "Not Acceptable", JSONRPC_INVALID_REQUEST,
			   "Accept must list application/json and text/event-stream");
		return;
	}
	if (!ctype || !ascii_caseprefix(ctype, "application/json", 16)) {
		front_send_error(req, 415, "Unsupported Media Type", JSONRPC_INVALID_REQUEST,
			   "Content-Type must be application/json");
		return;
	}
	/* A plain tools/call in one pass, its params kept as written (issue 9); anything
	 * else, or that pass out of memory, by cJSON in full. */
	body = http_req_body(req, &len);
	if (jsonrpc_splice_request(body, len, &kept, &msg))
		msg = cJSON_ParseWithLength(body, len);
	serve_post(f, req, who, msg, &kept);
	jsonrpc_request_text_free(&kept);      /* unless the call took it */
}

static void handle_get(struct front *f, struct http_req *req, const struct key_identity *who)
{
	const char *accept = front_header(req, FH_ACCEPT);
	struct front_stream *st;
	struct session *s;

	if (!accept || !http_list_has(accept, "text/event-stream")) {
		front_send_error(req, 406, "Not Acceptable", JSONRPC_INVALID_REQUEST,
			   "GET opens an event stream: Accept must list text/event-stream");
		return;
	}
	s = find_session(f, req, who);
	if (!s)
		return;
	if (s->stream) {
		front_send_error(req, 409, "Conflict", JSONRPC_INVALID_REQUEST,
			   "this session already has an open stream");
		return;
	}
	st = calloc(1, sizeof(*st));
	if (!st) {
		front_send_error(req, 500, "Internal Server Error", JSONRPC_INTERNAL_ERROR, "out of memory");
		return;
	}
	st->base.ops = &front_stream_ops;
	st->f = f;
	st->req = req;
	st->s = s;
	http_req_set_header(req, "Mcp-Session-Id", s->id);
	front_start_stream(req);
	struct evbuffer *buf = evbuffer_new();
	if (buf && sse_write_comment(buf, "stream open") == 0 &&
	    http_req_stream_write(req, evbuffer_pullup(buf, -1), evbuffer_get_length(buf)))
		log_debug("front: a stream's first comment was not written");
	if (buf)
		evbuffer_free(buf);
	http_req_on_gone(req, stream_closed, st);
	list_add(&st->link, &f->streams);
	router_stream_open(f->r, s, &st->base);
}

static void handle_delete(struct front *f, struct http_req *req,
			  const struct key_identity *who)
{
	struct session *s = find_session(f, req, who);

	if (!s)
		return;
	if (s->stream)
		stream_close(container_of(s->stream, struct front_stream, base));
	router_end_session(f->r, s);
	http_req_send(req, 200, "OK", NULL, NULL, 0);
}

static void on_request(void *arg, struct http_req *req);

static void parked_closed(void *arg)
{
	struct parked *p = arg;

	list_del(&p->link);
	free(p);
}

/* The router is ready: serve what waited, in arrival order. */
static void unpark(void *arg)
{
	struct front *f = arg;

	while (!list_empty(&f->parked)) {
		struct parked *p = list_first_entry(&f->parked, struct parked, link);
		struct http_req *req = p->req;
		list_del(&p->link);
		http_req_on_gone(req, NULL, NULL);
		free(p);
		on_request(f, req);
	}
}

/* Hold a request until the catalogue is complete: an agent that initialises while the
 * upstreams are still being listed would otherwise see no tools and draw conclusions. */
static bool park(struct front *f, struct http_req *req)
{
	struct parked *p = xcalloc(1, sizeof(*p));
	bool first = list_empty(&f->parked);

	p->f = f;
	p->req = req;
	list_add_tail(&p->link, &f->parked);
	http_req_on_gone(req, parked_closed, p);
	if (first)
		router_when_ready(f->r, unpark, f);
	return true;
}

static void serve_request(struct front *f, struct http_req *req);
static void apply_limits(struct front *f);

/* Which loop serves a request: a session's requests its owner's (its calls, streams and end
 * run there); what only the first loop serves so far, the first's: the LLM route, and the
 * 2026-07-28 requests (an MRTR retry and a key's tasks are that loop's). -1: this one. */
static int owner_of(const struct front *f, struct http_req *req)
{
	const char *sid = front_header(req, FH_MCP_SESSION_ID);
	const char *version, *path;

	if (sid)
		return session_id_loop(sid);
	if (router_loop(f->r) == 0)
		return -1;
	path = http_req_path(req);
	if (!f->llm && path && llm_owns_path(path) && strcmp(path, f->cfg->mcp_path))
		return 0;
	version = front_header(req, FH_MCP_PROTOCOL_VERSION);
	if (version && !session_version_supported(version) && strcmp(version, "2024-11-05"))
		return 0;
	return -1;
}

/* A request another loop serves goes there with its connection, which stays there. */
static bool hand_over(struct front *f, struct http_req *req)
{
	int loop = f->group ? owner_of(f, req) : -1;
	struct http_server *to;

	if (loop < 0 || (unsigned)loop == router_loop(f->r) ||
	    !(to = atomic_load(&f->group->loops[loop])))
		return false;   /* ours, or no such loop: served (or refused) here */
	return http_req_handoff(req, to) == 0;
}

static void on_request(void *arg, struct http_req *req)
{
	struct front *f = arg;

	front_headers_read(req);
	if (!hand_over(f, req))
		serve_request(f, req);
	front_headers_drop();
	front_refusal_caller(NULL);
}

struct front_group *front_group_new(void)
{
	struct front_group *g = xcalloc(1, sizeof(*g));

	if (conn_caps_init(&g->caps)) {
		free(g);
		return NULL;
	}
	return g;
}

void front_group_free(struct front_group *g)
{
	if (!g)
		return;
	conn_caps_fini(&g->caps);
	free(g);
}

int front_join(struct front *f, struct front_group *g)
{
	struct http_server *none = NULL;
	int rc;

	if (!atomic_compare_exchange_strong(&g->loops[router_loop(f->r)], &none, f->http))
		return -EEXIST;
	if ((rc = front_conns_share(f->conns, &g->caps)) != 0) {
		atomic_store(&g->loops[router_loop(f->r)], NULL);
		return rc;
	}
	f->group = g;
	apply_limits(f);        /* the caps are the group's now */
	return 0;
}

static void serve_request(struct front *f, struct http_req *req)
{
	f->rx_ns = clock_mono_ns();   /* the stage metrics' start: the request is all read */
	const char *path = http_req_path(req);
	const char *origin = front_header(req, FH_ORIGIN), *host = front_header(req, FH_HOST);
	enum http_method cmd = http_req_method(req);

	if (path && !strcmp(path, "/healthz") && cmd == HTTP_GET) {
		http_req_send_text(req, 200, "OK", "text/plain; charset=utf-8", "ok\n");
		return;
	}
	if (path && !strcmp(path, "/readyz") && cmd == HTTP_GET) {
		/* A store that cannot write refuses every call with a budget: not ready, and why. */
		int serr = f->gate ? store_health(gate_store(f->gate)) : 0;
		char cwhy[256] = "";    /* Redis counters unreachable under fail_closed */
		bool cready = !f->gate || gate_counters_ready(f->gate, cwhy, sizeof(cwhy));
		bool ready = router_ready(f->r) && !serr && cready;
		char text[512];
		if (!cready)
			snprintf(text, sizeof(text), "%s\n", cwhy);
		else if (serr)
			snprintf(text, sizeof(text), "store unavailable: %s (%s): calls with a budget "
				 "are refused until it can write again\n", strerror(-serr),
				 strerrorname_np(-serr));
		else
			snprintf(text, sizeof(text), "%s", ready ? "ready\n"
				 : "starting: upstreams are being listed\n");
		http_req_send_text(req, ready ? 200 : 503, ready ? "OK" : "Service Unavailable",
				   "text/plain; charset=utf-8", text);
		return;
	}
	/* RFC 9728: where an OAuth client learns which authorization server to ask. */
	if (cmd == HTTP_GET && front_auth_metadata(f->auth, f->gate, req, path))
		return;
	/* /v1/: the LLM route (llm/), which needs no catalogue (the MCP path, wherever it is,
	 * stays MCP's) */
	int redir = f->redirect ? redirect_in_route(f->redirect, req, path, &f->rroute) : 0;
	if (redir < 0)
		return;	/* refused, and answered */
	f->route = redir ? &f->rroute : NULL;	/* the upstream's own path, for its session */
	bool llm = !redir && f->llm && llm_owns_path(path) && strcmp(path, f->cfg->mcp_path);
	if (!llm && !redir && (!path || strcmp(path, f->cfg->mcp_path))) {
		front_send_error(req, 404, "Not Found", JSONRPC_INVALID_REQUEST, "no MCP endpoint here");
		return;
	}
	if (!llm && !router_ready(f->r) && park(f, req))
		return;
	/* DNS rebinding: a page on a foreign origin must not reach a loopback gateway. */
	if (origin && !origin_allowed(f, origin)) {
		front_send_error(req, 403, "Forbidden", JSONRPC_INVALID_REQUEST, "Origin not allowed");
		return;
	}
	if (!redir && f->loopback && (!host || !listener_is_loopback(host))) {
		front_send_error(req, 403, "Forbidden", JSONRPC_INVALID_REQUEST,
			   "Host not allowed: this gateway listens on loopback");
		return;
	}
	if (llm) {
		llm_handle(f->llm, req, f->rx_ns, front_conn_caller(req, NULL));
		return;
	}
	if (cmd != HTTP_POST && cmd != HTTP_GET && cmd != HTTP_DELETE) {
		http_req_set_header(req, "Allow", "GET, POST, DELETE");
		front_send_error(req, 405, "Method Not Allowed", JSONRPC_INVALID_REQUEST,
			   "use POST, GET or DELETE");
		return;
	}
	struct key_identity who;
	enum front_auth_result ar = front_auth_identify(f->auth, f->gate, req, &who);
	if (ar == FRONT_AUTH_REFUSED)
		return;
	const struct key_identity *whop = ar == FRONT_AUTH_IDENTIFIED ? &who : NULL;
	front_refusal_caller(whop ? whop->id : NULL);
	switch (cmd) {
	case HTTP_POST:
		handle_post(f, req, whop);
		break;
	case HTTP_GET:
		handle_get(f, req, whop);
		break;
	case HTTP_DELETE:
		handle_delete(f, req, whop);
		break;
	default:
		http_req_set_header(req, "Allow", "GET, POST, DELETE");
		front_send_error(req, 405, "Method Not Allowed", JSONRPC_INVALID_REQUEST,
			   "use POST, GET or DELETE");
	}
}

static void apply_limits(struct front *f)
{
	struct http_server_limits l = {
		.max_body = f->cfg->max_body_bytes, .max_header = f->cfg->max_header_bytes,
		.timeout_ms = f->cfg->header_timeout_ms,
	};

	http_server_set_limits(f->http, &l);
	front_conns_set_caps(f->conns, f->cfg->max_connections, f->cfg->max_connections_per_peer);
}

void front_close_streams(struct front *f)
{
	while (!list_empty(&f->streams))
		stream_close(list_first_entry(&f->streams, struct front_stream, link));
}

void front_reconfigure(struct front *f, const struct config *cfg, struct gate *gate,
		       struct router *r)
{
	f->cfg = cfg;
	f->gate = gate;
	f->r = r;
	apply_limits(f);
	front_auth_configure(f->auth, gate, cfg->listen_host, f->port, cfg->mcp_path);
	if (!list_empty(&f->parked))
		router_when_ready(r, unpark, f);
}

static int on_accept(void *arg, struct http_conn *c)
{
	return front_conns_accept(((struct front *)arg)->conns, c);
}

static void on_close(void *arg, struct http_conn *c)
{
	front_conns_close(((struct front *)arg)->conns, c);
}

static void on_refused(void *arg, int status)
{
	metrics_http_refused(METRICS_LISTENER_AGENT, status);
}

static const struct http_server_hooks front_hooks = { on_request, on_accept, on_close,
						      on_refused };

/* port < 0: the first loop's front (cfg's port; the unix socket too); else another loop's,
 * on the first's port. */
static int front_make(struct event_base *base, const struct config *cfg, struct gate *gate,
		      struct router *r, int port, struct front **out)
{
	struct front *f = xcalloc(1, sizeof(*f));
	struct timeval tv;
	int rc;

	list_init(&f->streams);
	list_init(&f->parked);
	f->base = base;
	f->cfg = cfg;
	f->gate = gate;
	f->r = r;
	f->keepalive = event_new(base, -1, EV_PERSIST, on_keepalive, f);
	if ((rc = front_conns_new(METRICS_LISTENER_AGENT, &f->conns)) != 0 ||
	    (rc = http_server_new(base, &front_hooks, f, &f->http)) != 0 ||
	    (rc = front_auth_new(base, &f->auth)) != 0)
		goto fail;
	rc = -ENOMEM;
	if (!f->keepalive)
		goto fail;
	apply_limits(f);
	if (port >= 0)
		rc = http_server_bind_shared(f->http, "agent listener", cfg->listen_host, port,
					     &f->port, NULL);
	else if (cfg->workers > 1)
		rc = http_server_bind_shared(f->http, "agent listener", cfg->listen_host,
					     cfg->listen_port, &f->port, NULL);
	else
		rc = http_server_bind(f->http, "agent listener", cfg->listen_host,
				      cfg->listen_port, &f->port, NULL);
	if (rc == 0 && port < 0)
		rc = listen_unix_start(f->http, "agent listener", cfg->raw, &f->unix_sock);
	if (rc)
		goto fail;
	f->loopback = listener_is_loopback(cfg->listen_host);
	front_auth_configure(f->auth, gate, cfg->listen_host, f->port, cfg->mcp_path);
	tv.tv_sec = KEEPALIVE_MS / 1000;
	tv.tv_usec = 0;
	event_add(f->keepalive, &tv);
	*out = f;
	return 0;
fail:
	front_free(f);
	return rc;
}

int front_new(struct event_base *base, const struct config *cfg, struct gate *gate,
	      struct router *r, struct front **out)
{
	return front_make(base, cfg, gate, r, -1, out);
}

int front_new_loop(struct event_base *base, const struct config *cfg, struct gate *gate,
		   struct router *r, int port, struct front **out)
{
	return front_make(base, cfg, gate, r, port < 0 ? 0 : port, out);
}

void front_free(struct front *f)
{
	if (!f)
		return;
	if (f->group) {         /* no more connections handed to it */
		struct http_server *mine = f->http;
		atomic_compare_exchange_strong(&f->group->loops[router_loop(f->r)], &mine, NULL);
	}
	front_close_streams(f);
	/* Parked requests are the server's to free with their connections; only forget them. */
	while (!list_empty(&f->parked)) {
		struct parked *p = list_first_entry(&f->parked, struct parked, link);
		list_del(&p->link);
		http_req_on_gone(p->req, NULL, NULL);
		free(p);
	}
	if (f->keepalive)
		event_free(f->keepalive);
	redirect_in_free(f->redirect);
	http_server_free(f->http);     /* every connection: requests still served hear it */
	front_conns_free(f->conns);
	front_auth_free(f->auth);
	listen_unix_stop(f->unix_sock);
	free(f);
}

int front_port(const struct front *f) { return f->port; }
void front_set_llm(struct front *f, struct llm *l)
{
	f->llm = l;
	if (l)
		llm_set_auth(l, f->auth);
}
struct http_server *front_http(struct front *f) { return f->http; }
void front_set_redirect(struct front *f, struct redirect_in *ri) { f->redirect = ri; }
