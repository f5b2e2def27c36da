/* relay: server→client requests and notifications, and the client's answers back. */
#include "mcp/relay.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/config.h"
#include "base/hmap.h"
#include "base/json_get.h"
#include "base/log.h"
#include "mcp/call.h"
#include "mcp/catalog.h"
#include "mcp/jsonrpc.h"
#include "mcp/links.h"
#include "mcp/reply.h"
#include "mcp/session.h"
#include "mcp/tasks.h"
#include "mcp/session_view.h"
#include "mcp/upstream.h"

/* A server request relayed to the client, waiting for its answer. */
struct relayed {
	size_t server;
	cJSON *server_id;
};

static void respond_error(struct link *l, const cJSON *id, int code, const char *message)
{
	cJSON *e = cJSON_CreateObject();

	cJSON_AddNumberToObject(e, "code", code);
	cJSON_AddStringToObject(e, "message", message);
	link_respond(l, id, NULL, e);
}

static void relayed_free(struct relayed *rel)
{
	cJSON_Delete(rel->server_id);
	free(rel);
}

/* Exposed form of an upstream's URI in msg.params.uri (resource updates). */
static void expose_params_uri(struct relay *rl, size_t server, cJSON *msg)
{
	cJSON *uri = json_get(json_get(msg, "params"), "uri");

	if (cJSON_IsString(uri) && catalog_prefixing(rl->cat)) {
		char *ex = catalog_expose_uri(rl->cat, server, uri->valuestring);
		if (ex) {
			cJSON_SetValuestring(uri, ex);
			free(ex);
		}
	}
}

static bool client_has(const struct session *s, const char *cap)
{
	return json_get(s->client_caps, cap) != NULL;
}

static void relay_request(struct link *l, size_t server, cJSON *msg, struct call *c,
			  struct session *s)
{
	const cJSON *id = json_get(msg, "id");
	const char *method = json_get(msg, "method")->valuestring;
	const char *need = !strcmp(method, "sampling/createMessage") ? "sampling"
			 : !strcmp(method, "elicitation/create")     ? "elicitation"
			 : !strcmp(method, "roots/list")             ? "roots" : NULL;
	char gid[48], key[64];
	struct relayed *rel;
	int rc;

	/* A 2026-07-28 request's reply decides itself: a capability its agent did not declare
	 * fails that request with the revision's own error (mcp/stateless.h). */
	bool own_reply = s && s->stateless && c && c->reply;

	if (!s || (need && !own_reply && !client_has(s, need)) ||
	    ((!c || !c->reply) && !s->stream)) {
		respond_error(l, id, JSONRPC_METHOD_NOT_FOUND,
			      need ? "the client does not support this" : "no client to relay this to");
		cJSON_Delete(msg);
		return;
	}
	rel = xcalloc(1, sizeof(*rel));
	rel->server = server;
	rel->server_id = cJSON_Duplicate(id, 1);
	snprintf(gid, sizeof(gid), "mcpwarden-%" PRIu64, s->next_relay_id++);
	cJSON *gidj = cJSON_CreateString(gid);
	jsonrpc_id_key(gidj, key, sizeof(key));
	cJSON_ReplaceItemInObjectCaseSensitive(msg, "id", gidj);
	rc = hmap_put_lazy(&s->relayed, key, rel, NULL);
	if (rc == 0) {
		rc = c && c->reply ? reply_event(c->reply, msg) : stream_event(s->stream, msg);
		if (rc)
			hmap_del(s->relayed, key);
	}
	if (rc) {
		/* msg's own id is gone (replaced by the gateway's): answer by the kept copy */
		if (rc == -EOPNOTSUPP)
			respond_error(l, rel->server_id, JSONRPC_METHOD_NOT_FOUND,
				      "the client does not support this");
		else
			respond_error(l, rel->server_id, JSONRPC_INTERNAL_ERROR,
				      "the client could not be reached");
		relayed_free(rel);
	}
	cJSON_Delete(msg);
}

/* The upstream cancels a request it sent us: the client knows it by the gateway's id. */
static bool remap_cancel(size_t server, cJSON *msg, struct session *s)
{
	cJSON *params = json_get(msg, "params");
	const cJSON *rid = json_get(params, "requestId");
	struct hmap_iter it;
	const char *key;
	struct relayed *rel;

	if (!s || !rid)
		return false;
	it = hmap_iter(s->relayed);
	while (hmap_next(s->relayed, &it, &key, (void **)&rel)) {
		if (rel->server != server || !cJSON_Compare(rel->server_id, rid, 1))
			continue;
		cJSON_ReplaceItemInObjectCaseSensitive(params, "requestId", cJSON_CreateString(key + 2));
		hmap_del(s->relayed, key);
		relayed_free(rel);
		return true;
	}
	return false;
}

static void relay_notification(struct relay *rl, size_t server, cJSON *msg, struct call *c,
			       struct session *s)
{
	const char *method = json_get(msg, "method")->valuestring;

	if (!strcmp(method, "notifications/cancelled") && !remap_cancel(server, msg, s)) {
		cJSON_Delete(msg);  /* about nothing the client knows */
		return;
	}
	if (!strcmp(method, "notifications/resources/updated"))
		expose_params_uri(rl, server, msg);
	if (c && c->reply)
		reply_event(c->reply, msg);
	else if (s && s->stream)
		stream_event(s->stream, msg);
	cJSON_Delete(msg);
}

/* --- a shared stdio child ---------------------------------------------------------------- */

struct owners {
	struct session *s;
	bool several;
};

static void note_owner(void *arg, enum obj_type *ctx)
{
	struct owners *o = arg;
	struct call *c = obj_call(ctx);

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

void relay_shared_request(struct relay *rl, struct link *l, cJSON *msg, enum obj_type *ctx)
{
	struct call *c = obj_call(ctx);

	if (c && !one_session_in_flight(l)) {
		const cJSON *id = json_get(msg, "id");
		const cJSON *m = json_get(msg, "method");
		log_warn("upstream %s: %s refused: calls of several sessions are in flight on this shared "
			 "child, so which client it is for is unknown (per_session: true avoids this)",
			 link_server(l), m->valuestring);
		respond_error(l, id, JSONRPC_INTERNAL_ERROR, "mcpwarden: calls from several clients are "
			      "in flight on this server; cannot tell which client this request is for");
		cJSON_Delete(msg);
		return;
	}
	relay_request(l, c ? c->server : 0, msg, c, c ? c->s : NULL);
}

struct updated_ctx { cJSON *msg; };

static void send_if_subscribed(void *arg, struct session *s)
{
	struct updated_ctx *u = arg;
	const cJSON *uri = json_get(json_get(u->msg, "params"), "uri");

	if (s->stream && cJSON_IsString(uri) && hmap_get(s->subs, uri->valuestring))
		stream_event(s->stream, u->msg);
}

struct status_ctx { cJSON *msg; size_t server; };

/* A task's status goes to the session that created it, and to no other. */
static void send_if_task_owner(void *arg, struct session *s)
{
	struct status_ctx *u = arg;
	const cJSON *id = json_get(json_get(u->msg, "params"), "taskId");
	size_t server;

	if (s->stream && cJSON_IsString(id) && !tasks_owner(&s->tasks, id->valuestring, &server) &&
	    server == u->server)
		stream_event(s->stream, u->msg);
}

void relay_shared_notification(struct relay *rl, struct link *l, cJSON *msg, enum obj_type *ctx)
{
	struct call *c = obj_call(ctx);
	size_t server = 0;

	for (size_t i = 0; i < catalog_nservers(rl->cat); i++)
		if (catalog_shared_link(rl->cat, i) == l)
			server = i;
	/* A task's status names its task: never a guess by the calls in flight. */
	if (!strcmp(json_get(msg, "method")->valuestring,
		    "notifications/tasks/status")) {
		struct status_ctx u = { msg, server };
		session_foreach(rl->sessions, send_if_task_owner, &u);
		cJSON_Delete(msg);
		return;
	}
	if (!c) {
		/* An update on a shared child: every session subscribed to that URI hears it. */
		expose_params_uri(rl, server, msg);
		struct updated_ctx u = { msg };
		session_foreach(rl->sessions, send_if_subscribed, &u);
		cJSON_Delete(msg);
		return;
	}
	/* Progress is matched by token, exactly; anything else was a guess (see above). */
	if (strcmp(json_get(msg, "method")->valuestring,
		   "notifications/progress") && !one_session_in_flight(l)) {
		log_debug("upstream %s: a notification of unknown session dropped", link_server(l));
		cJSON_Delete(msg);
		return;
	}
	relay_notification(rl, c->server, msg, c, c->s);
}

/* --- a session's own links ------------------------------------------------------------------ */

static void own_on_request(void *owner, struct link *l, cJSON *msg, enum obj_type *ctx)
{
	struct session_link *sl = owner;

	relay_request(l, sl->server, msg, obj_call(ctx), sl->s);
}

static void own_on_notification(void *owner, struct link *l, cJSON *msg, enum obj_type *ctx)
{
	struct session_link *sl = owner;
	int kind = catalog_kind_of_list_changed(
		json_get(msg, "method")->valuestring);

	if (kind >= 0) {
		catalog_refresh(sl->relay->cat, sl->server, (enum catalog_kind)kind);
		if (kind == CAT_TOOLS)
			view_refresh(sl);
		cJSON_Delete(msg);
		return;
	}
	relay_notification(sl->relay, sl->server, msg, obj_call(ctx), sl->s);
}

static void own_on_state(void *owner, struct link *l, int err, const char *why)
{
	struct session_link *sl = owner;

	if (err)
		log_info("session %.8s…: link to %s down (%s)", sl->s->id,
			 catalog_server_config(sl->relay->cat, sl->server)->name, why);
}

const struct link_ops relay_link_ops = { own_on_request, own_on_notification, own_on_state,
					  false };

/* --- the client's side ------------------------------------------------------------------------ */

void relay_response(struct relay *rl, struct session *s, cJSON *msg, const struct jsonrpc_msg *m)
{
	char key[256];
	struct relayed *rel;
	struct link *l;

	jsonrpc_id_key(m->id, key, sizeof(key));
	rel = hmap_del(s->relayed, key);
	if (!rel) {
		log_debug("session %.8s…: response to an unknown request dropped", s->id);
		cJSON_Delete(msg);
		return;
	}
	l = links_current(rl->links, s, rel->server);
	if (l && m->result && !cJSON_IsObject(m->result)) {
		/* MCP results are objects: servers drop anything else unread and would wait for
		 * an answer forever. They hear a precise error instead. */
		respond_error(l, rel->server_id, JSONRPC_INTERNAL_ERROR,
			      "the client answered with a result that is not an object");
	} else if (l) {
		link_respond(l, rel->server_id,
			     cJSON_DetachItemFromObjectCaseSensitive(msg, "result"),
			     cJSON_DetachItemFromObjectCaseSensitive(msg, "error"));
	}
	relayed_free(rel);
	cJSON_Delete(msg);
}

void relay_session_end(struct relay *rl, struct session *s)
{
	struct hmap_iter it = hmap_iter(s->relayed);
	struct relayed *rel;
	const char *key;

	/* A shared child hears that no answer is coming (a session's own links close next). */
	while (hmap_next(s->relayed, &it, &key, (void **)&rel)) {
		struct link *l = catalog_shared_link(rl->cat, rel->server);
		if (l && !link_down(l))
			respond_error(l, rel->server_id, JSONRPC_INTERNAL_ERROR,
				      "the client's session ended");
		hmap_del(s->relayed, key);
		relayed_free(rel);
	}
}
