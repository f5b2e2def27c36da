/* router: MCP method dispatch between downstream sessions and upstream links. */
#include "mcp/router.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "observe/audit.h"
#include "mcp/catalog.h"
#include "base/config.h"
#include "mcp/transport/front.h"
#include "govern/gate.h"
#include "base/hmap.h"
#include "mcp/jsonrpc.h"
#include "base/log.h"
#include "observe/metrics.h"
#include "govern/refusal.h"
#include "govern/schema.h"
#include "mcp/session.h"
#include "mcp/upstream.h"

#define CALL_MAGIC 0x43414c4cu  /* "CALL": tells router calls from catalogue fetches */
#define PAGE_SIZE 100

struct router;

/* The owner of a session's own link to one upstream. */
struct slink {
	struct router *r;
	struct session *s;
	size_t server;
};

/* Router state hung on each session. */
struct rsess {
	struct slink *slinks;   /* one per upstream */
	struct hmap *subs;      /* exposed URIs this session subscribed to */
};

/* A server request relayed to the client, waiting for its answer. */
struct relay {
	size_t server;
	cJSON *server_id;
};

struct call {
	uint32_t magic;
	struct router *r;
	struct session *s;
	cJSON *down_id;
	char key[256];          /* in s->calls */
	struct front_reply *reply;
	struct link *link;
	uint64_t handle;
	size_t server;
	const char *method;     /* static */
	struct key_identity who;
	bool has_who;
	struct gate_ticket *ticket;
	char *target;           /* tool / prompt / uri for the record */
	unsigned fanout;        /* logging/setLevel: answers still expected */
	uint64_t started_ms;
	uint64_t sent_ms;       /* when it went upstream: splits gateway from upstream latency */
	cJSON *args_shape;      /* tools/call: the arguments' types, never their values */
	uint64_t t0_ns, fwd_ns;  /* metrics: received, forwarded upstream (0: not forwarded) */
};

struct router {
	struct event_base *base;
	const struct config *cfg;
	struct catalog *cat;
	struct gate *gate;
	bool ready;
	struct event *startup;          /* the startup_ms deadline */
	void (*when_ready)(void *arg);
	void *when_ready_arg;
	struct session_table *sessions;
};

static const char *const list_key[CAT_NKINDS] = { "tools", "resources", "resourceTemplates", "prompts" };

static void slink_on_request(void *owner, struct link *l, cJSON *msg, void *call);
static void slink_on_notification(void *owner, struct link *l, cJSON *msg, void *call);
static void slink_on_state(void *owner, struct link *l, int err, const char *why);
static const struct link_ops slink_ops = { slink_on_request, slink_on_notification, slink_on_state };

/* --- records ------------------------------------------------------------------------ */

static void record(struct call *c, const char *decision, const char *reason, const cJSON *resp)
{
	const cJSON *err = cJSON_GetObjectItemCaseSensitive(resp, "error");
	const cJSON *res = cJSON_GetObjectItemCaseSensitive(resp, "result");
	const char *server = c->server < catalog_nservers(c->r->cat)
		? catalog_server_config(c->r->cat, c->server)->name : NULL;
	uint64_t now = session_now_ms();
	struct audit_decision d = {
		.session = c->s ? c->s->id : NULL,
		.key = c->has_who ? c->who.id : NULL,
		.team = c->has_who ? c->who.team : NULL,
		.method = c->method,
		.server = server,
		.target = c->target,
		.decision = decision,
		.reason = reason,
		.response = resp,
		.cost_micros = -1,
		.args_shape = c->args_shape,
		.latency_ms = now - c->started_ms,
		.went_upstream = c->sent_ms != 0,
		.upstream_ms = c->sent_ms ? now - c->sent_ms : 0,
	};

	/* What is charged, not what was reserved: refused, failed and cancelled calls release
	 * their reservation (failures are charged only where the upstream says so). */
	if (c->ticket && !strcmp(decision, "allow") && resp &&
	    (!err || catalog_server_config(c->r->cat, c->server)->charge_failures))
		d.cost_micros = gate_ticket_cost(c->ticket);
	audit_decision(&d);
	uint64_t tns = metrics_now_ns(), up = c->fwd_ns ? tns - c->fwd_ns : 0;
	const cJSON *code = cJSON_GetObjectItemCaseSensitive(err, "code");
	metrics_decision(c->method, decision, cJSON_IsNumber(code) ? code->valueint : 0,
			 cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "isError")),
			 server, tns - c->t0_ns - up, up);
}

/* --- calls -------------------------------------------------------------------------- */

static struct call *call_new(struct router *r, struct session *s, const struct key_identity *who,
			     const struct jsonrpc_msg *m, const char *method,
			     struct front_reply *reply)
{
	struct call *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	if (who) {
		c->who = *who;
		c->has_who = true;
	}
	c->magic = CALL_MAGIC;
	c->r = r;
	c->s = s;
	c->down_id = cJSON_Duplicate(m->id, 1);
	c->reply = reply;
	c->method = method;
	c->server = SIZE_MAX;
	c->started_ms = session_now_ms();
	c->t0_ns = metrics_now_ns();
	jsonrpc_id_key(m->id, c->key, sizeof(c->key));
	if (!c->down_id) {
		free(c);
		return NULL;
	}
	metrics_request_begin();
	return c;
}

static void call_free(struct call *c)
{
	if (c->ticket)  /* never settled: nothing was acknowledged, give the capacity back */
		gate_settle(c->r->gate, c->ticket, false, NULL, NULL);
	if (c->s && hmap_get(c->s->calls, c->key) == c)
		hmap_del(c->s->calls, c->key);
	cJSON_Delete(c->down_id);
	cJSON_Delete(c->args_shape);
	free(c->target);
	free(c);
	metrics_request_end();
}

static void call_gone(void *arg)
{
	struct call *c = arg;

	/* Disconnection is not cancellation (spec): the call runs on, its answer is dropped. */
	c->reply = NULL;
}

/* Finish a call with a response whose id is replaced by the client's. */
static void call_finish(struct call *c, cJSON *resp)
{
	if (resp)
		cJSON_ReplaceItemInObjectCaseSensitive(resp, "id", jsonrpc_id_dup(c->down_id));
	if (c->reply)
		front_reply_finish(c->reply, resp);
	else
		cJSON_Delete(resp);
	call_free(c);
}

static void call_fail(struct call *c, int code, const char *reason, cJSON *data, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
static void call_fail(struct call *c, int code, const char *reason, cJSON *data, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cJSON *e = jsonrpc_error(c->down_id, code, msg, data);
	record(c, reason ? "deny" : "error", reason ? reason : msg, e);
	call_finish(c, e);
}

/* Replace obj[field], an upstream's URI, by the URI the client sees. */
static void expose_uri(struct router *r, size_t server, cJSON *obj, const char *field)
{
	cJSON *u = cJSON_GetObjectItemCaseSensitive(obj, field);
	char *ex;

	if (!catalog_prefixing(r->cat) || !cJSON_IsString(u))
		return;
	ex = catalog_expose_uri(r->cat, server, u->valuestring);
	if (ex) {
		cJSON_SetValuestring(u, ex);
		free(ex);
	}
}

static void expose_uris(struct router *r, size_t server, cJSON *arr, const char *field)
{
	cJSON *it;

	cJSON_ArrayForEach(it, arr)
		expose_uri(r, server, it, field);
}

/* Resource links and embedded resources in tool results and prompts name the upstream's URIs:
 * expose them so the client can read them back through the gateway. */
static void expose_block_uri(struct router *r, size_t server, cJSON *block)
{
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(block, "type");

	if (!cJSON_IsString(type))
		return;
	if (!strcmp(type->valuestring, "resource_link"))
		expose_uri(r, server, block, "uri");
	else if (!strcmp(type->valuestring, "resource"))
		expose_uri(r, server, cJSON_GetObjectItemCaseSensitive(block, "resource"), "uri");
}

struct settling {
	struct call *c;
	cJSON *resp;
};

static void on_charged(void *arg, int err)
{
	struct settling *st = arg;

	if (err) {
		/* Unrecorded means unacknowledged: the client must not take it as done and paid. */
		log_error("charge for %s not persisted: %s", st->c->target ? st->c->target : "call",
			  strerror(-err));
		cJSON_Delete(st->resp);
		st->resp = jsonrpc_error(st->c->down_id, JSONRPC_INTERNAL_ERROR,
					 "the call ran but its charge could not be recorded", NULL);
	}
	call_finish(st->c, st->resp);
	free(st);
}

static void on_call_reply(void *arg, cJSON *resp)
{
	struct call *c = arg;
	struct gate_ticket *t = c->ticket;

	if (!strcmp(c->method, "resources/read")) {
		cJSON *res = cJSON_GetObjectItemCaseSensitive(resp, "result");
		expose_uris(c->r, c->server, cJSON_GetObjectItemCaseSensitive(res, "contents"), "uri");
	} else if (!strcmp(c->method, "tools/call")) {
		cJSON *res = cJSON_GetObjectItemCaseSensitive(resp, "result"), *b;
		cJSON_ArrayForEach(b, cJSON_GetObjectItemCaseSensitive(res, "content"))
			expose_block_uri(c->r, c->server, b);
	} else if (!strcmp(c->method, "prompts/get")) {
		cJSON *res = cJSON_GetObjectItemCaseSensitive(resp, "result"), *m;
		cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(res, "messages"))
			expose_block_uri(c->r, c->server, cJSON_GetObjectItemCaseSensitive(m, "content"));
	}
	record(c, "allow", NULL, resp);
	if (!t) {
		call_finish(c, resp);
		return;
	}
	/* The charge is durable before the client hears the answer: an acknowledged call is
	 * never lost to a crash. */
	c->ticket = NULL;
	struct settling *st = malloc(sizeof(*st));
	bool ok = !cJSON_GetObjectItemCaseSensitive(resp, "error");
	int rc = st ? gate_settle(c->r->gate, t, ok, on_charged, st) : -ENOMEM;
	if (rc == 0) {
		/* Out of the session's books while the store commits: a session ending now must
		 * not free the call under the store's callback. */
		hmap_del(c->s->calls, c->key);
		c->s = NULL;
		st->c = c;
		st->resp = resp;
		return;
	}
	free(st);
	if (rc < 0) {
		if (!st)
			gate_settle(c->r->gate, t, false, NULL, NULL);
		log_error("charge for %s could not be recorded: %s", c->target ? c->target : "call",
			  strerror(-rc));
		cJSON_Delete(resp);
		resp = jsonrpc_error(c->down_id, JSONRPC_INTERNAL_ERROR,
				     "the call ran but its charge could not be recorded", NULL);
	}
	call_finish(c, resp);
}

/* Admission by the gate; on refusal the call is answered and 0 returned. */
static bool admit(struct call *c, const struct catalog_entry *e, int kind, size_t server,
		  const char *name)
{
	char reason[256];
	cJSON *err = NULL;
	int rc;

	/* Rate limits and costs apply to the calls that do work upstream (docs/budgets.md). */
	bool work = !strcmp(c->method, "tools/call") || !strcmp(c->method, "prompts/get") ||
		    !strcmp(c->method, "resources/read");

	c->server = server;
	rc = gate_admit(c->r->gate, c->has_who ? &c->who : NULL, e, kind,
			catalog_server_config(c->r->cat, server)->name, name, work, &c->ticket, &err,
			reason, sizeof(reason));
	if (rc == 0)
		return true;
	if (!err) {
		call_fail(c, JSONRPC_INTERNAL_ERROR, NULL, NULL, "cannot admit the call: %s", strerror(-rc));
		return false;
	}
	cJSON *resp = jsonrpc_error(c->down_id, 0, "", NULL);
	cJSON_ReplaceItemInObjectCaseSensitive(resp, "error", err);
	record(c, "deny", reason, resp);
	call_finish(c, resp);
	return false;
}

static struct link *session_link(struct router *r, struct session *s, size_t server, int *err)
{
	struct link *shared = catalog_shared_link(r->cat, server);
	struct rsess *rs = s->owner;
	int rc;

	*err = 0;
	if (catalog_server_config(r->cat, server)->kind == UPSTREAM_STDIO &&
	    !catalog_server_config(r->cat, server)->per_session) {
		if (!shared || link_down(shared))
			*err = -ENOTCONN;
		return *err ? NULL : shared;
	}
	if (s->links[server] && !link_down(s->links[server]))
		return s->links[server];
	/* A link that went down is replaced here, outside its own callbacks. */
	link_close(s->links[server]);
	s->links[server] = NULL;
	rc = link_open(r->base, catalog_server_config(r->cat, server), s->client_caps, &slink_ops,
		       &rs->slinks[server], &s->links[server]);
	if (rc) {
		s->links[server] = NULL;
		*err = rc;
		return NULL;
	}
	return s->links[server];
}

/* Send a call to an upstream; params taken over. */
static void forward(struct call *c, size_t server, const char *method, cJSON *params)
{
	struct router *r = c->r;
	int err;

	c->server = server;
	c->link = session_link(r, c->s, server, &err);
	if (!c->link) {
		cJSON_Delete(params);
		cJSON *data = cJSON_CreateObject();
		cJSON_AddStringToObject(data, "server", catalog_server_config(r->cat, server)->name);
		call_fail(c, UPSTREAM_ERR_FAILED, NULL, data, "upstream %s is not available (%s)",
			  catalog_server_config(r->cat, server)->name,
			  err == -ENOTCONN ? "restarting" : strerror(-err));
		return;
	}
	if (c->reply)
		front_reply_on_gone(c->reply, call_gone, c);
	c->sent_ms = session_now_ms();
	c->fwd_ns = metrics_now_ns();
	if (link_call(c->link, method, params, 0, on_call_reply, c, &c->handle)) {
		cJSON *data = cJSON_CreateObject();
		cJSON_AddStringToObject(data, "server", catalog_server_config(r->cat, server)->name);
		call_fail(c, UPSTREAM_ERR_FAILED, NULL, data, "upstream %s: cannot send",
			  catalog_server_config(r->cat, server)->name);
	}
}

/* --- relaying what upstreams send during calls --------------------------------------- */

static bool client_has(const struct session *s, const char *cap)
{
	return cJSON_GetObjectItemCaseSensitive(s->client_caps, cap) != NULL;
}

static void relay_request(struct router *r, struct link *l, size_t server, cJSON *msg,
			  struct call *c, struct session *s)
{
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(msg, "id");
	const char *method = cJSON_GetObjectItemCaseSensitive(msg, "method")->valuestring;
	const char *need = !strcmp(method, "sampling/createMessage") ? "sampling"
			 : !strcmp(method, "elicitation/create")     ? "elicitation"
			 : !strcmp(method, "roots/list")             ? "roots" : NULL;
	char gid[48], key[64];
	struct relay *rel;
	int rc = -ENOTCONN;

	if (!s || (need && !client_has(s, need)) || ((!c || !c->reply) && !s->stream)) {
		cJSON *e = cJSON_CreateObject();
		cJSON_AddNumberToObject(e, "code", JSONRPC_METHOD_NOT_FOUND);
		cJSON_AddStringToObject(e, "message", need ? "the client does not support this"
							   : "no client to relay this to");
		link_respond(l, id, NULL, e);
		cJSON_Delete(msg);
		return;
	}
	rel = calloc(1, sizeof(*rel));
	if (!rel)
		goto out;
	rel->server = server;
	rel->server_id = cJSON_Duplicate(id, 1);
	snprintf(gid, sizeof(gid), "mcpwarden-%" PRIu64, s->next_relay_id++);
	cJSON *gidj = cJSON_CreateString(gid);
	jsonrpc_id_key(gidj, key, sizeof(key));
	cJSON_ReplaceItemInObjectCaseSensitive(msg, "id", gidj);
	if (hmap_put(s->relayed, key, rel, NULL)) {
		cJSON_Delete(rel->server_id);
		free(rel);
		goto out;
	}
	rc = c && c->reply ? front_reply_event(c->reply, msg) : front_stream_event(s->stream, msg);
	if (rc) {
		hmap_del(s->relayed, key);
		cJSON_Delete(rel->server_id);
		free(rel);
	}
out:
	if (rc) {
		cJSON *e = cJSON_CreateObject();
		cJSON_AddNumberToObject(e, "code", JSONRPC_INTERNAL_ERROR);
		cJSON_AddStringToObject(e, "message", "the client could not be reached");
		link_respond(l, id, NULL, e);
	}
	cJSON_Delete(msg);
}

/* The upstream cancels a request it sent us: the client knows it by the gateway's id. */
static bool remap_cancel(size_t server, cJSON *msg, struct session *s)
{
	cJSON *params = cJSON_GetObjectItemCaseSensitive(msg, "params");
	const cJSON *rid = cJSON_GetObjectItemCaseSensitive(params, "requestId");
	struct hmap_iter it;
	const char *key;
	struct relay *rel;

	if (!s || !rid)
		return false;
	it = hmap_iter(s->relayed);
	while (hmap_next(s->relayed, &it, &key, (void **)&rel)) {
		if (rel->server != server || !cJSON_Compare(rel->server_id, rid, 1))
			continue;
		cJSON_ReplaceItemInObjectCaseSensitive(params, "requestId", cJSON_CreateString(key + 2));
		hmap_del(s->relayed, key);
		cJSON_Delete(rel->server_id);
		free(rel);
		return true;
	}
	return false;
}

static void relay_notification(struct router *r, size_t server, cJSON *msg, struct call *c,
			       struct session *s)
{
	const char *method = cJSON_GetObjectItemCaseSensitive(msg, "method")->valuestring;

	if (!strcmp(method, "notifications/cancelled") && !remap_cancel(server, msg, s)) {
		cJSON_Delete(msg);  /* about nothing the client knows */
		return;
	}

	if (!strcmp(method, "notifications/resources/updated")) {
		cJSON *params = cJSON_GetObjectItemCaseSensitive(msg, "params");
		cJSON *uri = cJSON_GetObjectItemCaseSensitive(params, "uri");
		if (cJSON_IsString(uri) && catalog_prefixing(r->cat)) {
			char *ex = catalog_expose_uri(r->cat, server, uri->valuestring);
			if (ex) {
				cJSON_SetValuestring(uri, ex);
				free(ex);
			}
		}
	}
	if (c && c->reply)
		front_reply_event(c->reply, msg);
	else if (s && s->stream)
		front_stream_event(s->stream, msg);
	cJSON_Delete(msg);
}

static struct call *as_call(void *p)
{
	return p && *(uint32_t *)p == CALL_MAGIC ? p : NULL;
}

struct owners {
	struct session *s;
	bool several;
};

static void note_owner(void *arg, void *callp)
{
	struct owners *o = arg;
	struct call *c = as_call(callp);

	if (!c || !c->s)
		return;
	if (o->s && o->s != c->s)
		o->several = true;
	o->s = c->s;
}

/* A shared child's requests and log messages carry no relation to the call they belong to
 * (stdio has none): the newest call in flight is the right guess only while every call in
 * flight is one session's. Otherwise one agent's prompt could reach another agent. */
static bool one_session_in_flight(struct link *l)
{
	struct owners o = { NULL, false };

	link_foreach_call(l, note_owner, &o);
	return !o.several;
}

static void hook_call_request(void *arg, struct link *l, cJSON *msg, void *callp)
{
	struct call *c = as_call(callp);

	if (c && !one_session_in_flight(l)) {
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(msg, "id");
		const cJSON *m = cJSON_GetObjectItemCaseSensitive(msg, "method");
		cJSON *e = cJSON_CreateObject();
		log_warn("upstream %s: %s refused: calls of several sessions are in flight on this shared "
			 "child, so which client it is for is unknown (per_session: true avoids this)",
			 link_server(l), m->valuestring);
		cJSON_AddNumberToObject(e, "code", JSONRPC_INTERNAL_ERROR);
		cJSON_AddStringToObject(e, "message", "mcpwarden: calls from several clients are in "
				       "flight on this server; cannot tell which client this request is for");
		link_respond(l, id, NULL, e);
		cJSON_Delete(msg);
		return;
	}
	relay_request(arg, l, c ? c->server : 0, msg, c, c ? c->s : NULL);
}

struct updated_ctx { struct router *r; cJSON *msg; };

static void send_if_subscribed(void *arg, struct session *s)
{
	struct updated_ctx *u = arg;
	struct rsess *rs = s->owner;
	const cJSON *uri = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(u->msg, "params"), "uri");

	if (s->stream && cJSON_IsString(uri) && hmap_get(rs->subs, uri->valuestring))
		front_stream_event(s->stream, u->msg);
}

static void hook_call_notification(void *arg, struct link *l, cJSON *msg, void *callp)
{
	struct router *r = arg;
	struct call *c = as_call(callp);

	if (!c) {
		/* An update on a shared child: every session subscribed to that URI hears it. */
		size_t server = 0;
		for (size_t i = 0; i < catalog_nservers(r->cat); i++)
			if (catalog_shared_link(r->cat, i) == l)
				server = i;
		cJSON *params = cJSON_GetObjectItemCaseSensitive(msg, "params");
		cJSON *uri = cJSON_GetObjectItemCaseSensitive(params, "uri");
		if (cJSON_IsString(uri) && catalog_prefixing(r->cat)) {
			char *ex = catalog_expose_uri(r->cat, server, uri->valuestring);
			if (ex) {
				cJSON_SetValuestring(uri, ex);
				free(ex);
			}
		}
		struct updated_ctx u = { r, msg };
		session_foreach(r->sessions, send_if_subscribed, &u);
		cJSON_Delete(msg);
		return;
	}
	/* Progress is matched by token, exactly; anything else was a guess (see above). */
	if (strcmp(cJSON_GetObjectItemCaseSensitive(msg, "method")->valuestring,
		   "notifications/progress") && !one_session_in_flight(l)) {
		log_debug("upstream %s: a notification of unknown session dropped", link_server(l));
		cJSON_Delete(msg);
		return;
	}
	relay_notification(r, c->server, msg, c, c->s);
}

static void slink_on_request(void *owner, struct link *l, cJSON *msg, void *callp)
{
	struct slink *sl = owner;

	relay_request(sl->r, l, sl->server, msg, as_call(callp), sl->s);
}

static void slink_on_notification(void *owner, struct link *l, cJSON *msg, void *callp)
{
	struct slink *sl = owner;
	const char *method = cJSON_GetObjectItemCaseSensitive(msg, "method")->valuestring;

	if (!strcmp(method, "notifications/tools/list_changed")) {
		catalog_refresh(sl->r->cat, sl->server, CAT_TOOLS);
	} else if (!strcmp(method, "notifications/resources/list_changed")) {
		catalog_refresh(sl->r->cat, sl->server, CAT_RESOURCES);
	} else if (!strcmp(method, "notifications/prompts/list_changed")) {
		catalog_refresh(sl->r->cat, sl->server, CAT_PROMPTS);
	} else {
		relay_notification(sl->r, sl->server, msg, as_call(callp), sl->s);
		return;
	}
	cJSON_Delete(msg);
}

static void slink_on_state(void *owner, struct link *l, int err, const char *why)
{
	struct slink *sl = owner;

	if (err)
		log_info("session %.8s…: link to %s down (%s)", sl->s->id,
			 catalog_server_config(sl->r->cat, sl->server)->name, why);
}

/* --- list_changed to every session that listens ------------------------------------- */

static void send_list_changed(void *arg, struct session *s)
{
	if (s->stream)
		front_stream_event(s->stream, arg);
}

static void become_ready(struct router *r, const char *why)
{
	void (*fn)(void *) = r->when_ready;

	if (r->ready)
		return;
	r->ready = true;
	if (r->startup)
		event_del(r->startup);
	log_info("serving: %s", why);
	r->when_ready = NULL;
	if (fn)
		fn(r->when_ready_arg);
}

static void on_server_ready(void *arg, size_t server)
{
	struct router *r = arg;

	if (catalog_all_ready(r->cat))
		become_ready(r, "every upstream is ready");
}

static void on_startup_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct router *r = arg;

	for (size_t i = 0; i < catalog_nservers(r->cat); i++)
		if (!catalog_server_ready(r->cat, i))
			log_warn("upstream %s is not ready after %d ms: serving without it; it joins "
				 "when it comes up", catalog_server_config(r->cat, i)->name,
				 r->cfg->startup_timeout_ms);
	become_ready(r, "start-up wait is over");
}

bool router_ready(const struct router *r) { return r->ready; }

void router_when_ready(struct router *r, void (*fn)(void *arg), void *arg)
{
	if (r->ready) {
		fn(arg);
		return;
	}
	r->when_ready = fn;
	r->when_ready_arg = arg;
}

static void on_catalog_change(void *arg, enum catalog_kind kind)
{
	struct router *r = arg;
	static const char *const method[CAT_NKINDS] = {
		"notifications/tools/list_changed", "notifications/resources/list_changed",
		"notifications/resources/list_changed", "notifications/prompts/list_changed"
	};
	cJSON *n = jsonrpc_notification(method[kind], NULL);

	gate_catalog_changed(r->gate, r->cat);
	if (n)
		session_foreach(r->sessions, send_list_changed, n);
	cJSON_Delete(n);
}

/* --- sessions ------------------------------------------------------------------------ */

static void rsess_free(struct session *s)
{
	struct rsess *rs = s->owner;

	if (!rs)
		return;
	hmap_free(rs->subs, NULL);
	free(rs->slinks);
	free(rs);
	s->owner = NULL;
	metrics_session_closed();
}

static void teardown(struct router *r, struct session *s)
{
	struct hmap_iter it = hmap_iter(s->calls);
	struct call *c;
	struct relay *rel;
	const char *key;

	/* Every call in flight is cancelled upstream before it is finished here: a link still
	 * holding it would call back into freed memory (own links are closed only below). */
	while (hmap_next(s->calls, &it, NULL, (void **)&c)) {
		if (c->fanout) {
			/* Its link calls have no handle: answered now, it frees itself on the last
			 * reply (own links deliver theirs when closed below). */
			hmap_del(s->calls, c->key);
			c->s = NULL;
			if (c->reply)
				front_reply_finish(c->reply, jsonrpc_error(c->down_id,
					JSONRPC_REQUEST_CANCELLED, "session ended", NULL));
			c->reply = NULL;
			continue;
		}
		if (c->link && c->handle)
			link_cancel(c->link, c->handle, "session ended");
		cJSON *e = jsonrpc_error(c->down_id, JSONRPC_REQUEST_CANCELLED, "session ended", NULL);
		call_finish(c, e);
	}
	/* Requests relayed to this client and still unanswered: a shared child hears that no
	 * answer is coming (own links close below). */
	it = hmap_iter(s->relayed);
	while (hmap_next(s->relayed, &it, &key, (void **)&rel)) {
		struct link *l = catalog_shared_link(r->cat, rel->server);
		if (l && !link_down(l)) {
			cJSON *e = cJSON_CreateObject();
			cJSON_AddNumberToObject(e, "code", JSONRPC_INTERNAL_ERROR);
			cJSON_AddStringToObject(e, "message", "the client's session ended");
			link_respond(l, rel->server_id, NULL, e);
		}
		hmap_del(s->relayed, key);
		cJSON_Delete(rel->server_id);
		free(rel);
	}
	for (size_t i = 0; i < s->nlinks; i++) {
		link_close(s->links[i]);
		s->links[i] = NULL;
	}
	rsess_free(s);
}

static void on_expire(void *arg, struct session *s)
{
	teardown(arg, s);
}

void router_initialize(struct router *r, const struct jsonrpc_msg *m, const char *key_id,
		       struct session **out, cJSON **response)
{
	const cJSON *pv = cJSON_GetObjectItemCaseSensitive(m->params, "protocolVersion");
	const cJSON *caps = cJSON_GetObjectItemCaseSensitive(m->params, "capabilities");
	const cJSON *info = cJSON_GetObjectItemCaseSensitive(m->params, "clientInfo");
	struct session *s = NULL;
	struct rsess *rs = NULL;
	int rc;

	*out = NULL;
	if (!cJSON_IsString(pv)) {
		*response = jsonrpc_error(m->id, JSONRPC_INVALID_PARAMS,
					  "initialize needs params.protocolVersion", NULL);
		return;
	}
	rc = session_create(r->sessions, session_negotiate(pv->valuestring),
			    cJSON_IsObject(caps) ? caps : NULL, cJSON_IsObject(info) ? info : NULL,
			    key_id, &s);
	if (rc) {
		*response = jsonrpc_error(m->id, JSONRPC_INTERNAL_ERROR,
					  rc == -EBUSY ? "too many sessions" : "cannot create a session",
					  NULL);
		return;
	}
	rs = calloc(1, sizeof(*rs));
	if (rs) {
		rs->slinks = calloc(s->nlinks ? s->nlinks : 1, sizeof(*rs->slinks));
		rs->subs = hmap_new();
	}
	if (!rs || !rs->slinks || !rs->subs) {
		if (rs) {
			hmap_free(rs->subs, NULL);
			free(rs->slinks);
			free(rs);
		}
		session_destroy(r->sessions, s);
		*response = jsonrpc_error(m->id, JSONRPC_INTERNAL_ERROR, "out of memory", NULL);
		return;
	}
	for (size_t i = 0; i < s->nlinks; i++)
		rs->slinks[i] = (struct slink){ r, s, i };
	s->owner = rs;
	metrics_session_opened();

	cJSON *res = cJSON_CreateObject(), *si = cJSON_CreateObject();
	cJSON_AddStringToObject(res, "protocolVersion", s->version);
	cJSON_AddItemToObject(res, "capabilities", catalog_capabilities(r->cat));
	cJSON_AddStringToObject(si, "name", "mcpwarden");
	cJSON_AddStringToObject(si, "version", WARDEN_VERSION);
	cJSON_AddItemToObject(res, "serverInfo", si);
	*response = jsonrpc_result(m->id, res);
	*out = s;
	log_info("session %.8s…: initialised (protocol %s, client %s)", s->id, s->version,
		 cJSON_IsString(cJSON_GetObjectItemCaseSensitive(info, "name"))
			 ? cJSON_GetObjectItemCaseSensitive(info, "name")->valuestring : "?");
}

struct session *router_session(struct router *r, const char *id)
{
	struct session *s = session_find(r->sessions, id);

	if (s)
		session_touch(s);
	return s;
}

void router_end_session(struct router *r, struct session *s)
{
	log_info("session %.8s…: ended", s->id);
	teardown(r, s);
	session_destroy(r->sessions, s);
}

void router_stream_open(struct router *r, struct session *s, struct front_stream *st)
{
	s->stream = st;
}

void router_stream_closed(struct router *r, struct session *s, struct front_stream *st)
{
	if (s->stream == st)
		s->stream = NULL;
}

/* --- requests ------------------------------------------------------------------------ */

static int parse_cursor(const cJSON *params, size_t *offset)
{
	const cJSON *cur = cJSON_GetObjectItemCaseSensitive(params, "cursor");
	char *end;

	*offset = 0;
	if (!cur || cJSON_IsNull(cur))
		return 0;
	if (!cJSON_IsString(cur) || strncmp(cur->valuestring, "mcpw:", 5))
		return -EINVAL;
	errno = 0;
	unsigned long long v = strtoull(cur->valuestring + 5, &end, 10);
	if (errno || *end || end == cur->valuestring + 5)
		return -EINVAL;
	*offset = (size_t)v;
	return 0;
}

static cJSON *list_page(struct router *r, const struct key_identity *who, enum catalog_kind kind,
			size_t offset)
{
	cJSON *res = cJSON_CreateObject();
	cJSON *arr = cJSON_AddArrayToObject(res, list_key[kind]);
	size_t n = catalog_count(r->cat, kind), i = offset, shown = 0;

	/* A key sees only what it may call: invisible entries are skipped, never scanned. */
	for (i = gate_next_visible(r->gate, who, kind, i); i < n && shown < PAGE_SIZE;
	     i = gate_next_visible(r->gate, who, kind, i + 1), shown++)
		cJSON_AddItemToArray(arr, cJSON_Duplicate(catalog_at(r->cat, kind, i)->json, 1));
	if (i < n) {
		char cur[32];
		snprintf(cur, sizeof(cur), "mcpw:%zu", i);
		cJSON_AddStringToObject(res, "nextCursor", cur);
	}
	return res;
}

static void handle_list(struct router *r, struct call *c, enum catalog_kind kind,
			const cJSON *params)
{
	size_t offset;

	if (parse_cursor(params, &offset) || offset > catalog_count(r->cat, kind)) {
		call_fail(c, JSONRPC_INVALID_PARAMS, NULL, NULL, "invalid cursor");
		return;
	}
	call_finish(c, jsonrpc_result(c->down_id,
				      list_page(r, c->has_who ? &c->who : NULL, kind, offset)));
}

static cJSON *take_params(cJSON *msg)
{
	cJSON *p = cJSON_DetachItemFromObjectCaseSensitive(msg, "params");

	return p ? p : cJSON_CreateObject();
}

/* The shape of a value for the record: types and keys, no values (arguments can carry
 * secrets and personal data). */
static cJSON *shape_of(const cJSON *v, int depth)
{
	if (cJSON_IsObject(v)) {
		cJSON *o = cJSON_CreateObject();
		const cJSON *it;
		if (depth >= 4)
			return cJSON_CreateString("object");
		cJSON_ArrayForEach(it, v)
			cJSON_AddItemToObject(o, it->string, shape_of(it, depth + 1));
		return o;
	}
	if (cJSON_IsArray(v)) {
		char buf[32];
		snprintf(buf, sizeof(buf), "array[%d]", cJSON_GetArraySize(v));
		return cJSON_CreateString(buf);
	}
	return cJSON_CreateString(cJSON_IsString(v) ? "string" : cJSON_IsNumber(v) ? "number"
				  : cJSON_IsBool(v) ? "boolean" : "null");
}

static void handle_tool_call(struct router *r, struct call *c, cJSON *msg)
{
	cJSON *params = take_params(msg);
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(params, "name");
	const cJSON *args = cJSON_GetObjectItemCaseSensitive(params, "arguments");
	const struct catalog_entry *e;

	if (!cJSON_IsString(name)) {
		cJSON_Delete(params);
		call_fail(c, JSONRPC_INVALID_PARAMS, NULL, NULL, "tools/call needs params.name");
		return;
	}
	c->target = strdup(name->valuestring);
	if (args)
		c->args_shape = shape_of(args, 0);
	e = catalog_find(r->cat, CAT_TOOLS, name->valuestring);
	if (!e) {
		cJSON *data = cJSON_CreateObject();
		cJSON_AddStringToObject(data, "type", refusal_name(REFUSAL_INVALID_ARGUMENTS));
		cJSON_AddStringToObject(data, "tool", name->valuestring);
		call_fail(c, JSONRPC_INVALID_PARAMS, NULL, data, "Unknown tool: %s", name->valuestring);
		cJSON_Delete(params);
		return;
	}
	if (!admit(c, e, CAT_TOOLS, e->server, e->name)) {
		cJSON_Delete(params);
		return;
	}
	if (args && !cJSON_IsObject(args)) {
		cJSON *data = cJSON_CreateObject();
		cJSON_AddStringToObject(data, "type", refusal_name(REFUSAL_INVALID_ARGUMENTS));
		cJSON_AddStringToObject(data, "path", "$");
		cJSON_AddStringToObject(data, "keyword", "type");
		cJSON_AddStringToObject(data, "message", "arguments must be an object");
		cJSON_Delete(params);
		call_fail(c, JSONRPC_INVALID_PARAMS, "invalid arguments", data,
			  "params.arguments must be an object");
		return;
	}
	if (e->schema && catalog_server_config(r->cat, e->server)->validate_args) {
		struct schema_error se;
		cJSON *empty = args ? NULL : cJSON_CreateObject();
		int rc = schema_validate(e->schema, args ? args : empty, &se);
		cJSON_Delete(empty);
		if (rc) {
			cJSON *data = cJSON_CreateObject();
			cJSON_AddStringToObject(data, "type", refusal_name(REFUSAL_INVALID_ARGUMENTS));
			cJSON_AddStringToObject(data, "path", se.path);
			cJSON_AddStringToObject(data, "keyword", se.keyword);
			cJSON_AddStringToObject(data, "message", se.message);
			c->server = e->server;
			call_fail(c, JSONRPC_INVALID_PARAMS, "invalid arguments", data,
				  "Invalid arguments for tool %s: %s: %s", e->exposed, se.path,
				  se.message);
			cJSON_Delete(params);
			return;
		}
	}
	cJSON_ReplaceItemInObjectCaseSensitive(params, "name", cJSON_CreateString(e->name));
	forward(c, e->server, "tools/call", params);
}

static void handle_prompt_get(struct router *r, struct call *c, cJSON *msg)
{
	cJSON *params = take_params(msg);
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(params, "name");
	const struct catalog_entry *e;

	if (!cJSON_IsString(name)) {
		cJSON_Delete(params);
		call_fail(c, JSONRPC_INVALID_PARAMS, NULL, NULL, "prompts/get needs params.name");
		return;
	}
	c->target = strdup(name->valuestring);
	e = catalog_find(r->cat, CAT_PROMPTS, name->valuestring);
	if (!e) {
		call_fail(c, JSONRPC_INVALID_PARAMS, NULL, NULL, "Unknown prompt: %s", name->valuestring);
		cJSON_Delete(params);
		return;
	}
	if (!admit(c, e, CAT_PROMPTS, e->server, e->name)) {
		cJSON_Delete(params);
		return;
	}
	cJSON_ReplaceItemInObjectCaseSensitive(params, "name", cJSON_CreateString(e->name));
	forward(c, e->server, "prompts/get", params);
}

static void handle_resource(struct router *r, struct call *c, cJSON *msg, const char *method)
{
	cJSON *params = take_params(msg);
	const cJSON *uri = cJSON_GetObjectItemCaseSensitive(params, "uri");
	struct rsess *rs = c->s->owner;
	size_t server;
	const char *up;

	if (!cJSON_IsString(uri)) {
		cJSON_Delete(params);
		call_fail(c, JSONRPC_INVALID_PARAMS, NULL, NULL, "%s needs params.uri", method);
		return;
	}
	c->target = strdup(uri->valuestring);
	if (catalog_route_uri(r->cat, uri->valuestring, &server, &up)) {
		cJSON *data = cJSON_CreateObject();
		cJSON_AddStringToObject(data, "uri", uri->valuestring);
		call_fail(c, JSONRPC_INVALID_PARAMS, NULL, data, "Unknown resource: %s", uri->valuestring);
		cJSON_Delete(params);
		return;
	}
	const struct catalog_entry *e = catalog_find(r->cat, CAT_RESOURCES, uri->valuestring);
	if (!admit(c, e, CAT_RESOURCES, server, up)) {
		cJSON_Delete(params);
		return;
	}
	if (!strcmp(method, "resources/subscribe"))
		hmap_put(rs->subs, uri->valuestring, (void *)1, NULL);
	else if (!strcmp(method, "resources/unsubscribe"))
		hmap_del(rs->subs, uri->valuestring);
	char *upd = strdup(up);
	cJSON_ReplaceItemInObjectCaseSensitive(params, "uri", cJSON_CreateString(upd ? upd : ""));
	free(upd);
	forward(c, server, method, params);
}

static void handle_complete(struct router *r, struct call *c, cJSON *msg)
{
	cJSON *params = take_params(msg);
	cJSON *ref = cJSON_GetObjectItemCaseSensitive(params, "ref");
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(ref, "type");
	size_t server;
	const char *up;

	if (cJSON_IsString(type) && !strcmp(type->valuestring, "ref/prompt")) {
		cJSON *name = cJSON_GetObjectItemCaseSensitive(ref, "name");
		if (cJSON_IsString(name) &&
		    !catalog_route_name(r->cat, CAT_PROMPTS, name->valuestring, &server, &up)) {
			c->target = strdup(name->valuestring);
			/* Completions reveal a prompt's argument values: only for keys that may use it. */
			if (!admit(c, catalog_find(r->cat, CAT_PROMPTS, name->valuestring), CAT_PROMPTS,
				   server, up)) {
				cJSON_Delete(params);
				return;
			}
			cJSON_ReplaceItemInObjectCaseSensitive(ref, "name", cJSON_CreateString(up));
			forward(c, server, "completion/complete", params);
			return;
		}
	} else if (cJSON_IsString(type) && !strcmp(type->valuestring, "ref/resource")) {
		cJSON *uri = cJSON_GetObjectItemCaseSensitive(ref, "uri");
		if (cJSON_IsString(uri) && !catalog_route_uri(r->cat, uri->valuestring, &server, &up)) {
			c->target = strdup(uri->valuestring);
			if (!admit(c, NULL, CAT_RESOURCES, server, up)) {
				cJSON_Delete(params);
				return;
			}
			char *upd = strdup(up);
			cJSON_ReplaceItemInObjectCaseSensitive(ref, "uri", cJSON_CreateString(upd ? upd : ""));
			free(upd);
			forward(c, server, "completion/complete", params);
			return;
		}
	}
	cJSON_Delete(params);
	call_fail(c, JSONRPC_INVALID_PARAMS, NULL, NULL,
		  "completion/complete needs a ref to a known prompt or resource");
}

static void on_fanout_reply(void *arg, cJSON *resp)
{
	struct call *c = arg;

	cJSON_Delete(resp);
	if (--c->fanout == 0)
		call_finish(c, jsonrpc_result(c->down_id, cJSON_CreateObject()));
}

static void handle_set_level(struct router *r, struct call *c, cJSON *msg)
{
	cJSON *params = take_params(msg);
	const cJSON *level = cJSON_GetObjectItemCaseSensitive(params, "level");

	if (!cJSON_IsString(level)) {
		cJSON_Delete(params);
		call_fail(c, JSONRPC_INVALID_PARAMS, NULL, NULL, "logging/setLevel needs params.level");
		return;
	}
	/* Every upstream that logs gets the level; the answer waits for all of them. */
	c->fanout = 1;
	for (size_t i = 0; i < catalog_nservers(r->cat); i++) {
		const cJSON *caps = catalog_server_caps(r->cat, i);
		int err;
		if (!cJSON_GetObjectItemCaseSensitive(caps, "logging"))
			continue;
		struct link *l = session_link(r, c->s, i, &err);
		if (l && link_call(l, "logging/setLevel", cJSON_Duplicate(params, 1), 0,
				   on_fanout_reply, c, NULL) == 0)
			c->fanout++;
	}
	cJSON_Delete(params);
	on_fanout_reply(c, NULL);
}

void router_request(struct router *r, struct session *s, const struct key_identity *who,
		    cJSON *msg, const struct jsonrpc_msg *m, struct front_reply *reply)
{
	static const char *const methods[] = {
		"ping", "tools/list", "resources/list", "resources/templates/list", "prompts/list",
		"tools/call", "prompts/get", "resources/read", "resources/subscribe",
		"resources/unsubscribe", "completion/complete", "logging/setLevel", NULL
	};
	const char *method = NULL;
	struct call *c;

	for (const char *const *p = methods; *p; p++)
		if (!strcmp(*p, m->method))
			method = *p;
	c = call_new(r, s, who, m, method ? method : "unknown", reply);
	if (!c) {
		front_reply_finish(reply, jsonrpc_error(m->id, JSONRPC_INTERNAL_ERROR, "out of memory", NULL));
		cJSON_Delete(msg);
		return;
	}
	if (hmap_get(s->calls, c->key)) {
		call_fail(c, JSONRPC_INVALID_REQUEST, NULL, NULL,
			  "request id is already in use by a request in progress");
		cJSON_Delete(msg);
		return;
	}
	if (hmap_put(s->calls, c->key, c, NULL)) {
		call_fail(c, JSONRPC_INTERNAL_ERROR, NULL, NULL, "out of memory");
		cJSON_Delete(msg);
		return;
	}
	const cJSON *meta = cJSON_GetObjectItemCaseSensitive(m->params, "_meta");
	if (!method)
		call_fail(c, JSONRPC_METHOD_NOT_FOUND, NULL, NULL, "Method not found: %s", m->method);
	else if (meta && !cJSON_IsObject(meta))
		/* Servers drop such a request unanswered: the client would wait for the timeout. */
		call_fail(c, JSONRPC_INVALID_PARAMS, NULL, NULL, "params._meta must be an object");
	else if (!strcmp(method, "ping"))
		call_finish(c, jsonrpc_result(c->down_id, cJSON_CreateObject()));
	else if (!strcmp(method, "tools/list"))
		handle_list(r, c, CAT_TOOLS, m->params);
	else if (!strcmp(method, "resources/list"))
		handle_list(r, c, CAT_RESOURCES, m->params);
	else if (!strcmp(method, "resources/templates/list"))
		handle_list(r, c, CAT_TEMPLATES, m->params);
	else if (!strcmp(method, "prompts/list"))
		handle_list(r, c, CAT_PROMPTS, m->params);
	else if (!strcmp(method, "tools/call"))
		handle_tool_call(r, c, msg);
	else if (!strcmp(method, "prompts/get"))
		handle_prompt_get(r, c, msg);
	else if (!strncmp(method, "resources/", 10))
		handle_resource(r, c, msg, method);
	else if (!strcmp(method, "completion/complete"))
		handle_complete(r, c, msg);
	else if (!strcmp(method, "logging/setLevel"))
		handle_set_level(r, c, msg);
	cJSON_Delete(msg);
}

void router_notification(struct router *r, struct session *s, cJSON *msg,
			 const struct jsonrpc_msg *m)
{
	if (!strcmp(m->method, "notifications/initialized")) {
		s->initialized = true;
	} else if (!strcmp(m->method, "notifications/cancelled")) {
		const cJSON *rid = cJSON_GetObjectItemCaseSensitive(m->params, "requestId");
		char key[256];
		struct call *c;
		jsonrpc_id_key(rid, key, sizeof(key));
		c = rid ? hmap_get(s->calls, key) : NULL;
		if (c && c->link && c->handle) {
			link_cancel(c->link, c->handle, "cancelled by the client");
			record(c, "allow", "cancelled by the client", NULL);
			call_finish(c, jsonrpc_error(c->down_id, JSONRPC_REQUEST_CANCELLED,
						     "request cancelled", NULL));
		}
	} else if (!strcmp(m->method, "notifications/roots/list_changed")) {
		for (size_t i = 0; i < s->nlinks; i++)
			if (s->links[i] && link_ready(s->links[i]))
				link_notify(s->links[i], m->method, NULL);
	}
	cJSON_Delete(msg);
}

void router_response(struct router *r, struct session *s, cJSON *msg, const struct jsonrpc_msg *m)
{
	char key[256];
	struct relay *rel;
	struct link *l;
	int err;

	jsonrpc_id_key(m->id, key, sizeof(key));
	rel = hmap_del(s->relayed, key);
	if (!rel) {
		log_debug("session %.8s…: response to an unknown request dropped", s->id);
		cJSON_Delete(msg);
		return;
	}
	l = session_link(r, s, rel->server, &err);
	if (l && m->result && !cJSON_IsObject(m->result)) {
		/* MCP results are objects: servers drop anything else unread and would wait for
		 * an answer forever. They hear a precise error instead. */
		cJSON *e = cJSON_CreateObject();
		cJSON_AddNumberToObject(e, "code", JSONRPC_INTERNAL_ERROR);
		cJSON_AddStringToObject(e, "message", "the client answered with a result that is not "
				       "an object");
		link_respond(l, rel->server_id, NULL, e);
	} else if (l) {
		link_respond(l, rel->server_id,
			     cJSON_DetachItemFromObjectCaseSensitive(msg, "result"),
			     cJSON_DetachItemFromObjectCaseSensitive(msg, "error"));
	}
	cJSON_Delete(rel->server_id);
	free(rel);
	cJSON_Delete(msg);
}

int router_new(struct event_base *base, const struct config *cfg, struct router **out,
	       struct config_errors *errs)
{
	struct router *r = calloc(1, sizeof(*r));
	struct catalog_hooks hooks;
	int rc;

	if (!r)
		return -ENOMEM;
	r->base = base;
	r->cfg = cfg;
	hooks = (struct catalog_hooks){ on_catalog_change, on_server_ready, hook_call_request,
					 hook_call_notification, r };
	rc = gate_new(base, cfg, &r->gate, errs);
	if (rc)
		goto fail;
	rc = session_table_new(base, cfg->nupstreams, cfg->max_sessions, cfg->session_idle_ms,
			       on_expire, r, &r->sessions);
	if (rc)
		goto fail;
	rc = catalog_new(base, cfg, &hooks, &r->cat);
	if (rc)
		goto fail;
	gate_catalog_changed(r->gate, r->cat);
	if (catalog_all_ready(r->cat)) {
		r->ready = true;  /* no upstreams: nothing to wait for */
	} else {
		struct timeval tv = { cfg->startup_timeout_ms / 1000,
				      (cfg->startup_timeout_ms % 1000) * 1000 };
		r->startup = evtimer_new(base, on_startup_deadline, r);
		if (!r->startup || evtimer_add(r->startup, &tv)) {
			rc = -ENOMEM;
			goto fail;
		}
	}
	*out = r;
	return 0;
fail:
	router_free(r);
	return rc;
}

static void end_each(void *arg, struct session *s)
{
	teardown(arg, s);
}

void router_free(struct router *r)
{
	if (!r)
		return;
	if (r->sessions)
		session_foreach(r->sessions, end_each, r);
	if (r->startup)
		event_free(r->startup);
	session_table_free(r->sessions);
	catalog_free(r->cat);
	gate_free(r->gate);  /* last: closing links settles calls, and the store drains */
	free(r);
}

struct catalog *router_catalog(struct router *r) { return r->cat; }
struct gate *router_gate(struct router *r) { return r->gate; }
