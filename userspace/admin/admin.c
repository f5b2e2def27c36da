/* admin: the token-protected admin listener — authentication, the route table, life. */
#include "admin/admin_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/config.h"
#include "base/jsonfmt.h"
#include "base/listener.h"
#include "base/log.h"
#include "govern/budget.h"
#include "govern/gate.h"
#include "mcp/router.h"
#include "mcp/transport/conn_deadline.h"
#include "observe/audit.h"
#include "observe/metrics.h"
#include "store/store.h"

/* --- HTTP helpers --------------------------------------------------------------------- */

static const char *status_text(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 413: return "Payload Too Large";
	case 415: return "Unsupported Media Type";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	}
	return "Error";
}

void admin_send_json(struct evhttp_request *req, int status, const cJSON *body)
{
	struct evbuffer *buf = evbuffer_new();
	char *text = body ? cJSON_PrintUnformatted(body) : NULL;

	/* Answers may carry a fresh key: never cached anywhere. */
	http_set_header(req, "Cache-Control", "no-store");
	if (buf && text) {
		http_set_header(req, "Content-Type", "application/json");
		evbuffer_add(buf, text, strlen(text));
		evbuffer_add(buf, "\n", 1);
	}
	evhttp_send_reply(req, status, status_text(status), buf);
	if (text) {
		OPENSSL_cleanse(text, strlen(text));
		cJSON_free(text);
	}
	if (buf)
		evbuffer_free(buf);
}

void admin_send_error(struct evhttp_request *req, int status, const char *field,
		       const char *fmt, ...)
{
	va_list ap;
	cJSON *e = cJSON_CreateObject();

	va_start(ap, fmt);
	jsonfmt_add_v(e, "error", fmt, ap);
	va_end(ap);
	if (field)
		cJSON_AddStringToObject(e, "field", field);
	admin_send_json(req, status, e);
	cJSON_Delete(e);
}

/* A refusal of the request in c: answered, and remembered for the record of a write. */
void admin_fail(struct ctx *c, int status, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void admin_fail(struct ctx *c, int status, const char *field, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->why, sizeof(c->why), fmt, ap);
	va_end(ap);
	c->refused = status;
	admin_send_error(c->req, status, field, "%s", c->why);
}

/* The body as a JSON object; NULL after answering 400 itself. Empty bodies read as {}. */
cJSON *admin_body_object(struct ctx *c)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(c->req);
	size_t len = evbuffer_get_length(in);
	cJSON *o;

	if (len == 0)
		return cJSON_CreateObject();
	o = cJSON_ParseWithLength((const char *)evbuffer_pullup(in, -1), len);
	if (!cJSON_IsObject(o)) {
		cJSON_Delete(o);
		admin_fail(c, 400, NULL, "the body must be a JSON object");
		return NULL;
	}
	return o;
}

/* Unknown fields are refused, as in the config: a typo must not be ignored silently. */
bool admin_known_fields(struct ctx *c, const cJSON *o, const char *const *allowed)
{
	for (const cJSON *it = o->child; it; it = it->next) {
		const char *const *f = allowed;
		while (*f && strcmp(*f, it->string))
			f++;
		if (!*f) {
			admin_fail(c, 400, it->string, "unknown field \"%s\"", it->string);
			return false;
		}
	}
	return true;
}

void admin_time_json(cJSON *o, const char *name, int64_t t)
{
	char buf[40];

	if (t <= 0) {
		cJSON_AddNullToObject(o, name);
		return;
	}
	budget_rfc3339(t, buf, sizeof(buf));
	cJSON_AddStringToObject(o, name, buf);
}

void admin_money_json(cJSON *o, const char *name, int64_t micro)
{
	char buf[40];

	budget_format_money(micro, buf, sizeof(buf));
	cJSON_AddStringToObject(o, name, buf);
}

/* --- records ---------------------------------------------------------------------------- */

cJSON *admin_record_new(const struct ctx *c, const char *action)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "action", action);
	if (c->peer)
		cJSON_AddStringToObject(o, "peer", c->peer);
	return o;
}

void admin_record_emit(cJSON *o, const char *result, int status)
{
	cJSON_AddStringToObject(o, "result", result);
	cJSON_AddNumberToObject(o, "status", status);
	audit_admin(o);
	cJSON_Delete(o);
}

cJSON *admin_key_json(const struct admin *a, const struct key_record *k)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "id", k->id);
	cJSON_AddStringToObject(o, "name", k->name);
	jsonfmt_add_or_null(o, "team", k->team);
	jsonfmt_add_or_null(o, "policy", k->policy);
	admin_time_json(o, "created", k->created);
	admin_time_json(o, "expires", k->expires);
	cJSON_AddBoolToObject(o, "disabled", k->disabled);
	if (k->workloads[0])
		cJSON_AddItemToObject(o, "workloads", keys_workloads_to_json(k->workloads));
	else
		cJSON_AddNullToObject(o, "workloads");
	cJSON_AddBoolToObject(o, "expired", k->expires > 0 && clock_real_s() >= k->expires);
	cJSON_AddStringToObject(o, "source", gate_config_key(router_gate(a->r), k->id) ? "config" : "api");
	return o;
}

/* --- routing ------------------------------------------------------------------------------ */

static bool authorized(struct admin *a, struct evhttp_request *req)
{
	const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
	unsigned char d[KEYS_HASH_LEN];
	bool ok;

	if (!h || strncasecmp(h, "Bearer ", 7))
		return false;
	h += 7;
	while (*h == ' ')
		h++;
	/* Digests of equal length: the compare reveals neither the token nor its length. */
	if (keys_hash(h, strlen(h), d))
		return false;
	ok = CRYPTO_memcmp(d, a->token_hash, sizeof(d)) == 0;
	OPENSSL_cleanse(d, sizeof(d));
	return ok;
}

/* The route table: a path is "/v1/keys" or a prefix, an {id} and a suffix. Every method a
 * path accepts is listed in order, so a 405 names them in its Allow header. */
struct route {
	const char *prefix;             /* the whole path when !has_id */
	unsigned char has_id;           /* path segments in the {id}: 0, 1, or 2 ("<a>/<b>") */
	const char *suffix;             /* after the id: "" or "/revoke" */
	enum evhttp_cmd_type cmd;
	const char *action;             /* writes: the record's action; NULL for reads */
	void (*fn)(struct ctx *c, const char *id);
};

static const struct route routes[] = {
	{ "/metrics", false, "", EVHTTP_REQ_GET, NULL, admin_metrics_get },
	{ "/v1/keys", false, "", EVHTTP_REQ_GET, NULL, admin_key_list },
	{ "/v1/keys", false, "", EVHTTP_REQ_POST, "key.create", admin_key_create },
	{ "/v1/keys/", true, "/revoke", EVHTTP_REQ_POST, "key.revoke", admin_key_revoke },
	{ "/v1/keys/", true, "", EVHTTP_REQ_GET, NULL, admin_key_show },
	{ "/v1/keys/", true, "", EVHTTP_REQ_PATCH, "key.update", admin_key_patch },
	{ "/v1/keys/", true, "", EVHTTP_REQ_DELETE, "key.delete", admin_key_delete },
	{ "/v1/teams", false, "", EVHTTP_REQ_GET, NULL, admin_team_list },
	{ "/v1/teams/", true, "", EVHTTP_REQ_GET, NULL, admin_team_show },
	{ "/v1/teams/", true, "", EVHTTP_REQ_PUT, "team.put", admin_team_put },
	{ "/v1/teams/", true, "", EVHTTP_REQ_DELETE, "team.delete", admin_team_delete },
	{ "/v1/usage", false, "", EVHTTP_REQ_GET, NULL, admin_usage_get },
	{ "/v1/usage/reset", false, "", EVHTTP_REQ_POST, "usage.reset", admin_usage_reset },
	{ "/v1/tools/pins", false, "", EVHTTP_REQ_GET, NULL, admin_tool_pins_list },
	{ "/v1/tools/pins/", 2, "/approve", EVHTTP_REQ_POST, "tool.approve", admin_tool_approve },
	/* The logs API (admin_logs.c); the fixed paths before the {id} that would match them. */
	{ "/api/logs", false, "", EVHTTP_REQ_GET, NULL, admin_logs_list },
	{ "/api/logs/stats", false, "", EVHTTP_REQ_GET, NULL, admin_logs_stats },
	{ "/api/logs/stream", false, "", EVHTTP_REQ_GET, NULL, admin_logs_stream },
	{ "/api/logs/", true, "", EVHTTP_REQ_GET, NULL, admin_logs_show },
	{ "/api/kernel", false, "", EVHTTP_REQ_GET, NULL, admin_kernel_get },
};

static const char *method_name(enum evhttp_cmd_type cmd)
{
	switch (cmd) {
	case EVHTTP_REQ_GET: return "GET";
	case EVHTTP_REQ_POST: return "POST";
	case EVHTTP_REQ_PUT: return "PUT";
	case EVHTTP_REQ_PATCH: return "PATCH";
	case EVHTTP_REQ_DELETE: return "DELETE";
	default: return "?";
	}
}

/* Does path match r? The {id} goes to id. */
static bool route_matches(const struct route *r, const char *path, char *id, size_t len)
{
	size_t pl = strlen(r->prefix), n;

	if (!r->has_id)
		return !strcmp(path, r->prefix);
	if (strncmp(path, r->prefix, pl))
		return false;
	path += pl;
	n = strcspn(path, "/");
	if (r->has_id == 2 && n && path[n] == '/')
		n += 1 + strcspn(path + n + 1, "/");
	if (n == 0 || n >= len || strcmp(path + n, r->suffix))
		return false;
	memcpy(id, path, n);
	id[n] = '\0';
	return true;
}

static void route(struct ctx *c, const char *path, enum evhttp_cmd_type cmd)
{
	char id[512], allow[64] = "";
	bool fixed = false;             /* a path without {id} matched */

	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		const struct route *r = &routes[i];
		if (fixed && r->has_id)
			continue;       /* /api/logs/stats is not the record "stats" */
		if (!route_matches(r, path, id, r->has_id == 2 ? sizeof(id) : KEYS_ID_SIZE))
			continue;
		fixed |= !r->has_id;
		if (r->cmd == cmd) {
			c->action = r->action;
			r->fn(c, r->has_id ? id : NULL);
			return;
		}
		snprintf(allow + strlen(allow), sizeof(allow) - strlen(allow), "%s%s",
			 allow[0] ? ", " : "", method_name(r->cmd));
	}
	if (allow[0]) {
		http_set_header(c->req, "Allow", allow);
		admin_send_error(c->req, 405, NULL, "method not allowed here; use %s", allow);
		return;
	}
	admin_send_error(c->req, 404, NULL, "no such admin endpoint: %s", path);
}

static void on_request(struct evhttp_request *req, void *arg)
{
	struct admin *a = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	const char *host = evhttp_find_header(evhttp_request_get_input_headers(req), "Host");
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);

	conn_deadline_request_in(a->deadline, req);
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	char *peer = NULL;
	ev_uint16_t port = 0;
	struct ctx c = { .a = a, .req = req };

	if (!a->r) {
		admin_send_error(req, 503, NULL, "the daemon is reloading its configuration; retry");
		return;
	}
	c.g = router_gate(a->r);
	c.ks = gate_keystore(c.g);
	evhttp_connection_get_peer(evcon, &peer, &port);
	c.peer = peer;
	if (!path)
		path = "";
	/* DNS rebinding: a web page must not reach a loopback admin plane through its own name. */
	if (a->loopback && (!host || !listener_is_loopback(host))) {
		admin_send_error(req, 403, NULL, "Host not allowed: the admin plane listens on loopback");
		return;
	}
	/* Token guessing: a peer that keeps failing is held off before its token is looked at. */
	int64_t retry_ms = 0;
	if (peer && peer_guard_blocked(a->guard, peer, clock_mono_ms(), &retry_ms)) {
		char ra[24];
		cJSON *o = admin_record_new(&c, "auth");
		cJSON_AddStringToObject(o, "path", path);
		admin_record_emit(o, "blocked", 429);
		snprintf(ra, sizeof(ra), "%lld", (long long)((retry_ms + 999) / 1000));
		http_set_header(req, "Retry-After", ra);
		admin_send_error(req, 429, NULL, "too many failed token attempts from this address; "
				 "retry after %s s", ra);
		return;
	}
	/* The dashboard's pages and its login answer before any token is asked for. */
	if (admin_dashboard_route(a, req, path, cmd, peer))
		return;
	/* The dashboard's cookie stands for the token on reads only: a write needs the token. */
	if (!authorized(a, req) && !(cmd == EVHTTP_REQ_GET && admin_cookie_ok(a, req))) {
		cJSON *o = admin_record_new(&c, "auth");
		cJSON_AddStringToObject(o, "path", path);
		admin_record_emit(o, "refused", 401);
		if (peer)
			peer_guard_failure(a->guard, peer, clock_mono_ms());
		http_set_header(req, "WWW-Authenticate", "Bearer realm=\"mcpwarden-admin\"");
		admin_send_error(req, 401, NULL, "admin token required: Authorization: Bearer <token>");
		return;
	}
	if (peer)
		peer_guard_success(a->guard, peer, clock_mono_ms());
	route(&c, path, cmd);
	if (c.action && c.refused) {
		/* Refused changes are on the record too, with the reason the caller was given. */
		cJSON *o = admin_record_new(&c, c.action);
		cJSON_AddStringToObject(o, "path", path);
		cJSON_AddStringToObject(o, "error", c.why);
		admin_record_emit(o, "refused", c.refused);
	}
}



/* --- life cycle ----------------------------------------------------------------------------- */

int admin_new(struct event_base *base, const struct config *cfg, struct router *r,
	      struct admin **out)
{
	struct admin *a;
	int rc = -ENOMEM;

	*out = NULL;
	if (!cfg->admin_host)
		return 0;
	if (!cfg->admin_token || !cfg->admin_token[0])
		return -EINVAL;
	a = xcalloc(1, sizeof(*a));
	list_init(&a->pending);
	list_init(&a->streams);
	list_init(&a->log_reqs);
	a->base = base;
	a->cfg = cfg;
	a->r = r;
	if (keys_hash(cfg->admin_token, strlen(cfg->admin_token), a->token_hash)) {
		rc = -EIO;
		goto fail;
	}
	/* The agents' defaults: 10 failures a minute block a peer for 30 s, doubling. */
	if ((rc = peer_guard_new(&(struct peer_guard_limits){ 10, 60000, 30000, 900000, 1024 },
				 &a->guard)))
		goto fail;
	rc = -ENOMEM;
	a->http = evhttp_new(base);
	if (!a->http)
		goto fail;
	rc = conn_deadline_new(base, ADMIN_TIMEOUT_S * 1000, METRICS_LISTENER_ADMIN, &a->deadline);
	if (rc)
		goto fail;
	rc = -ENOMEM;
	conn_deadline_set_caps(a->deadline, cfg->max_connections, cfg->max_connections_per_peer,
			       cfg->max_header_bytes);
	evhttp_set_bevcb(a->http, conn_deadline_bevcb, a->deadline);
	evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
					    EVHTTP_REQ_PATCH | EVHTTP_REQ_DELETE);
	evhttp_set_max_body_size(a->http, ADMIN_MAX_BODY);
	evhttp_set_max_headers_size(a->http, (ev_ssize_t)cfg->max_header_bytes);
	evhttp_set_timeout(a->http, ADMIN_TIMEOUT_S);
	evhttp_set_gencb(a->http, on_request, a);
	rc = listener_bind(a->http, "admin", cfg->admin_host, cfg->admin_port, &a->port);
	if (rc)
		goto fail;
	a->loopback = listener_is_loopback(cfg->admin_host);
	rc = admin_logs_init(a, cfg);
	if (rc)
		goto fail;
	if (!a->loopback)
		log_warn("admin: listening on %s, not loopback: anyone who can reach it and has the "
			 "token manages keys", cfg->admin_host);
	*out = a;
	return 0;
fail:
	admin_free(a);
	return rc;
}

int admin_reconfigure(struct admin *a, const struct config *cfg, struct router *r)
{
	unsigned char old[KEYS_HASH_LEN];

	admin_pending_orphan(a);
	a->r = NULL;
	if (!r)
		return 0;
	a->cfg = cfg;
	conn_deadline_set_caps(a->deadline, cfg->max_connections, cfg->max_connections_per_peer,
			       cfg->max_header_bytes);
	memcpy(old, a->token_hash, sizeof(old));
	if (keys_hash(cfg->admin_token, strlen(cfg->admin_token), a->token_hash))
		return -EIO;
	/* A new token logs the dashboard out: its cookies stood for the old one. */
	if (CRYPTO_memcmp(old, a->token_hash, sizeof(old)))
		admin_logins_clear(a);
	OPENSSL_cleanse(old, sizeof(old));
	if (admin_logs_reconfigure(a, cfg))
		log_error("admin: the log reader could not start: /api/logs answers 503");
	a->r = r;
	return 0;
}

void admin_free(struct admin *a)
{
	if (!a)
		return;
	admin_pending_orphan(a);
	admin_logs_free(a);             /* answers what is in flight, before the connections go */
	if (a->http)
		evhttp_free(a->http);
	conn_deadline_free(a->deadline);  /* after evhttp_free: it frees the connections */
	peer_guard_free(a->guard);
	OPENSSL_cleanse(a->token_hash, sizeof(a->token_hash));
	admin_logins_clear(a);
	free(a);
}

int admin_port(const struct admin *a)
{
	return a ? a->port : 0;
}
