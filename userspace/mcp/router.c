/* router: the method table, what each method names, and the sessions it runs on. */
#include "mcp/router.h"
#include "mcp/router_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/config.h"
#include "base/hmap.h"
#include "base/json_get.h"
#include "base/jsonw.h"
#include "base/log.h"
#include "govern/gate.h"
#include "govern/refusal.h"
#include "mcp/call.h"
#include "mcp/catalog.h"
#include "mcp/jsonrpc.h"
#include "mcp/links.h"
#include "mcp/method.h"
#include "mcp/relay.h"
#include "mcp/scope.h"
#include "mcp/reply.h"
#include "mcp/session.h"
#include "mcp/session_view.h"
#include "mcp/tasks.h"
#include "mcp/upstream.h"
#include "observe/metrics.h"

#define PAGE_SIZE 100
#define SESSION_RETRY_MS 10000  /* a key at its session cap: when to try again */
#define CHILDREN_RETRY_MS 5000  /* the stdio children cap: when to try again */

static const char *const list_key[CAT_NKINDS] = { "tools", "resources", "resourceTemplates", "prompts" };

static struct router *router_of(const struct call *c)
{
	return (struct router *)((char *)c->env - offsetof(struct router, env));
}

/* --- routing each method ------------------------------------------------------------------- */

static void route_unknown(struct call *c, cJSON *params)
{
	cJSON_Delete(params);
	call_fail(c, JSONRPC_METHOD_NOT_FOUND, NULL, NULL, "Method not found: %s", c->asked);
}

static void route_ping(struct call *c, cJSON *params)
{
	cJSON_Delete(params);
	call_answer(c, cJSON_CreateObject());
}

static int parse_cursor(const cJSON *params, size_t *offset)
{
	const cJSON *cur = json_get(params, "cursor");
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

/* The entry at position i of what the session sees: the catalogue's entries (0..n-1), then
 * its own (n..; mcp/session_view.h). l: the catalogue's list, taken once for the page. */
static const struct catalog_entry *shown_at(const struct catalog_list *l, const struct session *s,
					    size_t i)
{
	return i < l->n ? &l->e[i] : view_at(s, i - l->n);
}

/* The first position >= i the caller sees (the end when none): entries the key may not see
 * are skipped by the compiled views, never scanned; then those the session is not offered. */
static size_t next_shown(struct router *r, const struct session *s,
			 const struct key_identity *who, enum catalog_kind kind,
			 const struct catalog_list *l, size_t i)
{
	size_t n = l->n;
	size_t end = kind == CAT_TOOLS ? n + view_count(s) : n;

	for (i = i < n ? gate_next_visible(r->gate, who, kind, l, i) : i; i < n;
	     i = gate_next_visible(r->gate, who, kind, l, i + 1))
		if (!view_hides(s, &l->e[i]) && scope_shows(s, &l->e[i]))
			return i;
	for (; i < end; i++) {
		const struct catalog_entry *e = view_at(s, i - n);
		/* listed by the catalogue since: shown there */
		if (!catalog_list_find(l, e->exposed) && gate_visible(r->gate, who, e) &&
		    scope_shows(s, e))
			return i;
	}
	return end;
}

/* A page of a list as the caller's key and session may see it. */
static void route_list(struct call *c, cJSON *params)
{
	struct router *r = router_of(c);
	enum catalog_kind kind = c->method->kind;
	const struct key_identity *who = c->has_who ? &c->who : NULL;
	size_t i, shown = 0, end;
	int rc;

	if (kind == CAT_TOOLS && view_pending(c->s)) {
		call_park(c, params);  /* the session's own tools are on their way */
		return;
	}
	const struct catalog_list *l = catalog_list(r->cat, kind);
	end = l->n + (kind == CAT_TOOLS ? view_count(c->s) : 0);
	rc = parse_cursor(params, &i);
	cJSON_Delete(params);
	if (rc || i > end) {
		call_fail(c, JSONRPC_INVALID_PARAMS, NULL, NULL, "invalid cursor");
		return;
	}
	cJSON *res = cJSON_CreateObject();
	cJSON *arr = cJSON_AddArrayToObject(res, list_key[kind]);
	for (i = next_shown(r, c->s, who, kind, l, i); i < end && shown < PAGE_SIZE;
	     i = next_shown(r, c->s, who, kind, l, i + 1), shown++)
		cJSON_AddItemToArray(arr, scope_listed(c->s, shown_at(l, c->s, i)));
	if (i < end) {
		char cur[32];
		snprintf(cur, sizeof(cur), "mcpw:%zu", i);
		cJSON_AddStringToObject(res, "nextCursor", cur);
	}
	call_answer(c, res);
}

/* The shape of a value for the record: types and keys, no values (arguments can carry
 * secrets and personal data). Written as text, the bytes a print of the shape's tree would
 * be, not built as a tree: a shape is made on every call (issue 9). */
static void shape_write(struct jsonw *w, const cJSON *v, int depth)
{
	if (cJSON_IsObject(v)) {
		if (depth >= 4) {
			jsonw_raw(w, "\"object\"", 8);
			return;
		}
		jsonw_raw(w, "{", 1);
		for (const cJSON *it = v->child; it; it = it->next) {
			if (it != v->child)
				jsonw_raw(w, ",", 1);
			jsonw_str(w, it->string ? it->string : "");
			jsonw_raw(w, ":", 1);
			shape_write(w, it, depth + 1);
		}
		jsonw_raw(w, "}", 1);
	} else if (cJSON_IsArray(v)) {
		jsonw_raw(w, "\"array[", 7);
		jsonw_int(w, cJSON_GetArraySize(v));
		jsonw_raw(w, "]\"", 2);
	} else {
		const char *t = cJSON_IsString(v) ? "\"string\"" : cJSON_IsNumber(v) ? "\"number\""
				: cJSON_IsBool(v) ? "\"boolean\"" : "\"null\"";
		jsonw_raw(w, t, strlen(t));
	}
}

static char *shape_of(const cJSON *v)
{
	struct jsonw w = { .buf = alloc_cache_get(JSONW_FIRST / 4), .cap = JSONW_FIRST / 4 };

	w.buf[0] = '\0';
	shape_write(&w, v, 0);
	return w.buf;
}

/* Point the call at an upstream: the entry and names the gate judges (kind, upname: the
 * upstream's own name or URI), and what is sent (params taken over). */
static void target(struct call *c, enum catalog_kind kind, const struct catalog_entry *e,
		   size_t server, const char *upname, cJSON *params)
{
	c->kind = kind;
	c->entry = e;
	c->server = server;
	c->upname = xstrdup(upname);
	c->up_method = c->method->name;
	c->up_params = params;
}

/* tools/call and prompts/get: an exposed name from the lists. */
static void route_named(struct call *c, cJSON *params)
{
	struct router *r = router_of(c);
	const cJSON *name = json_get(params, "name");
	bool tool = c->method->id == MCP_TOOLS_CALL;
	const struct catalog_entry *e;

	if (!cJSON_IsString(name)) {
		cJSON_Delete(params);
		call_fail(c, JSONRPC_INVALID_PARAMS, NULL, NULL, "%s needs params.name", c->method->name);
		return;
	}
	c->target = xstrdup(name->valuestring);
	/* a redirected session names its upstream's tools as that upstream does */
	char *scoped = scope_exposed(r->cat, c->s, c->method->kind, name->valuestring);
	if (scoped) {
		cJSON_ReplaceItemInObjectCaseSensitive(params, "name", cJSON_CreateString(scoped));
		free(scoped);
		name = json_get(params, "name");
	}
	if (tool) {
		const cJSON *args = json_get(params, "arguments");
		if (args)
			c->args_shape = shape_of(args);
		if (args && c->has_who)
			c->logged_args = gate_logged_copy(r->gate, &c->who, args);
	}
	e = catalog_find(r->cat, c->method->kind, name->valuestring);
	if (tool && view_hides(c->s, e))
		e = NULL;  /* its server does not offer it to this client */
	if (!e && tool)
		e = view_find(c->s, name->valuestring);
	if (e && !scope_shows(c->s, e))
		e = NULL;  /* another upstream's: not there for a redirected session */
	if (!e && tool && view_pending(c->s)) {
		call_park(c, params);  /* it may be one of the session's own, on their way */
		return;
	}
	if (!e) {
		cJSON *data = NULL;
		if (tool) {
			data = cJSON_CreateObject();
			cJSON_AddStringToObject(data, "type", refusal_name(REFUSAL_INVALID_ARGUMENTS));
			cJSON_AddStringToObject(data, "tool", c->target);
		}
		/* c->target: the name as the client sent it (a redirected session's own) */
		call_fail(c, JSONRPC_INVALID_PARAMS, NULL, data, "Unknown %s: %s",
			  tool ? "tool" : "prompt", c->target);
		cJSON_Delete(params);
		return;
	}
	/* the upstream's name for it, written over the exposed one (no node made or freed) */
	if (!cJSON_SetValuestring((cJSON *)name, e->name))
		cJSON_ReplaceItemInObjectCaseSensitive(params, "name", cJSON_CreateString(e->name));
	/* A task-augmented call goes as one only to an upstream that runs tools as tasks; to
	 * any other it is the plain call the spec says such a server makes of it. */
	if (tool && json_get(params, "task") &&
	    !catalog_server_tasks(r->cat, e->server, "tools/call"))
		cJSON_DeleteItemFromObjectCaseSensitive(params, "task");
	target(c, c->method->kind, e, e->server, e->name, params);
}

/* tasks/get, tasks/result, tasks/cancel: only the session that created the task reaches it,
 * on the upstream that owns it; for anyone else it does not exist. */
static void route_task(struct call *c, cJSON *params)
{
	const cJSON *id = json_get(params, "taskId");
	size_t server;

	if (!cJSON_IsString(id)) {
		cJSON_Delete(params);
		call_fail(c, JSONRPC_INVALID_PARAMS, NULL, NULL, "%s needs params.taskId",
			  c->method->name);
		return;
	}
	c->target = xstrdup(id->valuestring);
	if (tasks_owner(&c->s->tasks, id->valuestring, &server)) {
		cJSON *data = cJSON_CreateObject();
		cJSON_AddStringToObject(data, "taskId", id->valuestring);
		/* a refusal, recorded as tasks/update's is (stateless_tasks.c) */
		call_fail(c, JSONRPC_INVALID_PARAMS, "unknown task", data,
			  "Failed to retrieve task: Task not found");
		cJSON_Delete(params);
		return;
	}
	target(c, CAT_TOOLS, NULL, server, c->target, params);
}

static bool lists_tasks(void *cat, size_t server)
{
	return catalog_server_tasks(cat, server, "list");
}

/* tasks/list: the upstreams of the session's tasks list them one after the other, each its
 * own pages (the gateway's cursor says which upstream and carries its cursor, mcp/tasks.h);
 * every answer keeps only this session's tasks (call.c). A session that created none has
 * none. */
static void route_task_list(struct call *c, cJSON *params)
{
	struct router *r = router_of(c);
	const cJSON *cursor = json_get(params, "cursor");
	char name[128];
	const char *up = "";
	size_t server = 0, i;

	if (cursor && (!cJSON_IsString(cursor) ||
		       tasks_cursor_parse(cursor->valuestring, name, sizeof(name), &up)))
		goto bad_cursor;
	if (cursor) {
		for (i = 0; i < catalog_nservers(r->cat); i++)
			if (!strcmp(catalog_server_config(r->cat, i)->name, name))
				break;
		if (i == catalog_nservers(r->cat) || !lists_tasks(r->cat, i))
			goto bad_cursor;
		server = i;
		if (*up)
			cJSON_ReplaceItemInObjectCaseSensitive(params, "cursor", cJSON_CreateString(up));
		else
			cJSON_DeleteItemFromObjectCaseSensitive(params, "cursor");
		target(c, CAT_TOOLS, NULL, server, "", params);
		return;
	}
	if (!tasks_next_server(&c->s->tasks, true, 0, lists_tasks, r->cat, &server)) {
		target(c, CAT_TOOLS, NULL, server, "", params);
		return;
	}
	cJSON_Delete(params);
	cJSON *res = cJSON_CreateObject();
	cJSON_AddArrayToObject(res, "tasks");
	call_answer(c, res);
	return;
bad_cursor:
	cJSON_Delete(params);
	call_fail(c, JSONRPC_INVALID_PARAMS, NULL, NULL, "tasks/list: invalid cursor");
}

/* Does tool e of `server` name the exposed URI as its MCP Apps UI? */
static bool names_ui(const struct catalog_entry *e, size_t server, const char *uri)
{
	const char *ui = e && e->server == server ? catalog_tool_ui(e->json) : NULL;

	return ui && !strcmp(ui, uri);
}

/* MCP Apps: a UI resource belongs to the tools that name it, so it is read under their policy,
 * not the resources rules: a key that may call one of them may read it, and one that may call
 * none is refused as it would be the tool (the gate judges the first of them). No cost and no
 * rate: reading a tool's UI is not running the tool. */
static void ui_of_tool(struct call *c)
{
	struct router *r = router_of(c);
	const struct key_identity *who = c->has_who ? &c->who : NULL;
	const struct catalog_entry *first = NULL, *e;
	const struct catalog_list *l = catalog_list(r->cat, CAT_TOOLS);
	size_t n = l->n, own = view_count(c->s);

	for (size_t i = 0; i < n + own; i++) {
		e = shown_at(l, c->s, i);
		if (!names_ui(e, c->server, c->target) || (i < n && view_hides(c->s, e)))
			continue;
		if (!first)
			first = e;
		if (gate_visible(r->gate, who, e)) {
			first = e;
			break;
		}
	}
	if (!first)
		return;
	c->kind = CAT_TOOLS;
	c->entry = first;
	c->ui_tool = true;
	free(c->upname);
	c->upname = xstrdup(first->name);
}

/* resources/read, subscribe, unsubscribe: an exposed URI, listed or not. */
static void route_resource(struct call *c, cJSON *params)
{
	struct router *r = router_of(c);
	const cJSON *uri = json_get(params, "uri");
	size_t server;
	const char *up;

	if (!cJSON_IsString(uri)) {
		cJSON_Delete(params);
		call_fail(c, JSONRPC_INVALID_PARAMS, NULL, NULL, "%s needs params.uri", c->method->name);
		return;
	}
	c->target = xstrdup(uri->valuestring);
	char *scoped = scope_exposed(r->cat, c->s, CAT_RESOURCES, uri->valuestring);
	if (scoped) {
		cJSON_ReplaceItemInObjectCaseSensitive(params, "uri", cJSON_CreateString(scoped));
		free(scoped);
		uri = json_get(params, "uri");
	}
	if (catalog_route_uri(r->cat, uri->valuestring, &server, &up) ||
	    (c->s->scope != SESSION_UNSCOPED && server != c->s->scope)) {
		cJSON *data = cJSON_CreateObject();
		cJSON_AddStringToObject(data, "uri", uri->valuestring);
		call_fail(c, JSONRPC_INVALID_PARAMS, NULL, data, "Unknown resource: %s", uri->valuestring);
		cJSON_Delete(params);
		return;
	}
	target(c, CAT_RESOURCES, catalog_find(r->cat, CAT_RESOURCES, uri->valuestring), server, up,
	       params);
	/* `up` may point into the URI being replaced: c->upname is a copy. */
	cJSON_ReplaceItemInObjectCaseSensitive(params, "uri", cJSON_CreateString(c->upname));
	if (c->method->id == MCP_RESOURCES_READ)
		ui_of_tool(c);
}

/* Admitted resources/subscribe and unsubscribe: the session remembers what it listens to. */
static void subscription_admitted(struct call *c)
{
	if (c->method->id == MCP_RESOURCES_SUBSCRIBE) {
		if (hmap_put_lazy(&c->s->subs, c->target, (void *)1, NULL))
			log_warn("session %.8s…: subscription to %s not kept (out of memory)",
				 c->s->id, c->target);
	} else
		hmap_del(c->s->subs, c->target);
}

/* completion/complete: the ref names a prompt or a resource; completions reveal a prompt's
 * argument values, so only keys that may use it get them. */
static void route_complete(struct call *c, cJSON *params)
{
	struct router *r = router_of(c);
	cJSON *ref = json_get(params, "ref");
	const cJSON *type = json_get(ref, "type");
	cJSON *name = json_get(ref, "name");
	cJSON *uri = json_get(ref, "uri");
	size_t server;
	const char *up;

	if (cJSON_IsString(type) && !strcmp(type->valuestring, "ref/prompt") &&
	    cJSON_IsString(name) &&
	    !catalog_route_name(r->cat, CAT_PROMPTS, name->valuestring, &server, &up)) {
		c->target = xstrdup(name->valuestring);
		target(c, CAT_PROMPTS, catalog_find(r->cat, CAT_PROMPTS, name->valuestring), server, up,
		       params);
		cJSON_ReplaceItemInObjectCaseSensitive(ref, "name", cJSON_CreateString(c->upname));
		return;
	}
	if (cJSON_IsString(type) && !strcmp(type->valuestring, "ref/resource") &&
	    cJSON_IsString(uri) && !catalog_route_uri(r->cat, uri->valuestring, &server, &up)) {
		c->target = xstrdup(uri->valuestring);
		target(c, CAT_RESOURCES, NULL, server, up, params);
		cJSON_ReplaceItemInObjectCaseSensitive(ref, "uri", cJSON_CreateString(c->upname));
		return;
	}
	cJSON_Delete(params);
	call_fail(c, JSONRPC_INVALID_PARAMS, NULL, NULL,
		  "completion/complete needs a ref to a known prompt or resource");
}

static void on_fanout_answer(enum obj_type *ctx, cJSON *resp)
{
	call_event(obj_call(ctx), CALL_EV_ANSWER, resp, 0);
}

/* logging/setLevel: every upstream that logs gets the level; the answer waits for all. */
static void route_set_level(struct call *c, cJSON *params)
{
	struct router *r = router_of(c);
	const cJSON *level = json_get(params, "level");

	if (!cJSON_IsString(level)) {
		cJSON_Delete(params);
		call_fail(c, JSONRPC_INVALID_PARAMS, NULL, NULL, "logging/setLevel needs params.level");
		return;
	}
	c->fanout = 0;
	for (size_t i = 0; i < catalog_nservers(r->cat); i++) {
		int err;
		if (!json_get(catalog_server_caps(r->cat, i), "logging"))
			continue;
		struct link *l = links_get(&r->links, c->s, i, &err);
		if (l && link_call(l, "logging/setLevel", cJSON_Duplicate(params, 1), 0,
				   on_fanout_answer, &c->obj_type, NULL) == 0)
			c->fanout++;
	}
	cJSON_Delete(params);
	if (c->fanout)
		c->state = CALL_SENT;
	else
		call_answer(c, cJSON_CreateObject());
}

/* The method table, sorted by name (looked up by binary search). */
static const struct method methods[] = {
	{ "completion/complete", MCP_COMPLETE, METHOD_GOVERNED | METHOD_FORWARDED, CAT_PROMPTS, route_complete, NULL },
	{ "logging/setLevel", MCP_SET_LEVEL, METHOD_FANOUT, CAT_TOOLS, route_set_level, NULL },
	{ "ping", MCP_PING, METHOD_LOCAL, CAT_TOOLS, route_ping, NULL },
	{ "prompts/get", MCP_PROMPTS_GET, METHOD_GOVERNED | METHOD_WORK | METHOD_FORWARDED, CAT_PROMPTS, route_named, NULL },
	{ "prompts/list", MCP_PROMPTS_LIST, METHOD_LOCAL, CAT_PROMPTS, route_list, NULL },
	{ "resources/list", MCP_RESOURCES_LIST, METHOD_LOCAL, CAT_RESOURCES, route_list, NULL },
	{ "resources/read", MCP_RESOURCES_READ, METHOD_GOVERNED | METHOD_WORK | METHOD_FORWARDED, CAT_RESOURCES, route_resource, NULL },
	{ "resources/subscribe", MCP_RESOURCES_SUBSCRIBE, METHOD_GOVERNED | METHOD_FORWARDED, CAT_RESOURCES, route_resource, subscription_admitted },
	{ "resources/templates/list", MCP_TEMPLATES_LIST, METHOD_LOCAL, CAT_TEMPLATES, route_list, NULL },
	{ "resources/unsubscribe", MCP_RESOURCES_UNSUBSCRIBE, METHOD_GOVERNED | METHOD_FORWARDED, CAT_RESOURCES, route_resource, subscription_admitted },
	{ "tasks/cancel", MCP_TASKS_CANCEL, METHOD_FORWARDED, CAT_TOOLS, route_task, NULL },
	{ "tasks/get", MCP_TASKS_GET, METHOD_FORWARDED, CAT_TOOLS, route_task, NULL },
	{ "tasks/list", MCP_TASKS_LIST, METHOD_FORWARDED, CAT_TOOLS, route_task_list, NULL },
	{ "tasks/result", MCP_TASKS_RESULT, METHOD_FORWARDED, CAT_TOOLS, route_task, NULL },
	{ "tools/call", MCP_TOOLS_CALL, METHOD_GOVERNED | METHOD_WORK | METHOD_FORWARDED, CAT_TOOLS, route_named, NULL },
	{ "tools/list", MCP_TOOLS_LIST, METHOD_LOCAL, CAT_TOOLS, route_list, NULL },
};

static const struct method unknown_method = { "unknown", MCP_UNKNOWN, 0, CAT_TOOLS, route_unknown, NULL };

static int method_cmp(const void *key, const void *m)
{
	return strcmp(key, ((const struct method *)m)->name);
}

const struct method *router_method(const char *name)
{
	const struct method *m = bsearch(name, methods, sizeof(methods) / sizeof(methods[0]),
					 sizeof(methods[0]), method_cmp);

	return m ? m : &unknown_method;
}

/* --- sessions ---------------------------------------------------------------------------- */

void router_teardown(struct router *r, struct session *s)
{
	struct htab_iter it = htab_iter(&s->calls);

	/* Every call in flight is cancelled upstream before its session goes: a link still
	 * holding it would call back into freed memory (own links are closed only below). */
	for (struct htab_node *n; (n = htab_next(&it)); )
		call_event(call_of_book(n), CALL_EV_SESSION_END, NULL, 0);
	relay_session_end(&r->relay, s);
	if (s->stream && s->stream->ops->end) {
		struct stream *st = s->stream;
		s->stream = NULL;
		st->ops->end(st);
	}
	view_close(s);
	links_close_session(&r->links, s);
	metrics_session_closed();
}

void router_on_expire(void *arg, struct session *s)
{
	router_teardown(arg, s);
}

void router_initialize(struct router *r, const struct jsonrpc_msg *m, const char *key_id,
		       struct session **out, cJSON **response)
{
	const cJSON *pv = json_get(m->params, "protocolVersion");
	const cJSON *caps = json_get(m->params, "capabilities");
	const cJSON *info = json_get(m->params, "clientInfo");
	struct session *s = NULL;
	int rc;

	*out = NULL;
	if (!cJSON_IsString(pv)) {
		*response = jsonrpc_error(m->id, JSONRPC_INVALID_PARAMS,
					  "initialize needs params.protocolVersion", NULL);
		return;
	}
	/* Each session may spawn a child per per_session stdio upstream: refuse one that could
	 * pass limits.max_stdio_children rather than fail its calls later. */
	size_t need = links_children_per_session(&r->links);
	if (need && r->cfg->max_stdio_children &&
	    links_children() + need > r->cfg->max_stdio_children) {
		cJSON *data = cJSON_CreateObject();
		cJSON_AddNumberToObject(data, "retry_after_ms", CHILDREN_RETRY_MS);
		cJSON_AddNumberToObject(data, "limit", r->cfg->max_stdio_children);
		cJSON_AddNumberToObject(data, "children", links_children());
		cJSON_AddStringToObject(data, "type", refusal_name(REFUSAL_TOO_MANY_CHILDREN));
		*response = jsonrpc_error(m->id, REFUSAL_TOO_MANY_CHILDREN,
					  "too many stdio children (limits.max_stdio_children): "
					  "this gateway runs one per session for per_session upstreams; "
					  "try again when sessions have ended", data);
		return;
	}
	rc = session_create(r->sessions, session_negotiate(pv->valuestring),
			    cJSON_IsObject(caps) ? caps : NULL, cJSON_IsObject(info) ? info : NULL,
			    key_id, &s);
	if (rc == -EDQUOT) {
		/* The front answers it HTTP 429 with Retry-After (from retry_after_ms). */
		cJSON *data = cJSON_CreateObject();
		cJSON_AddNumberToObject(data, "retry_after_ms", SESSION_RETRY_MS);
		cJSON_AddNumberToObject(data, "limit", r->cfg->max_sessions_per_key);
		*response = jsonrpc_error(m->id, REFUSAL_TOO_MANY_SESSIONS,
					  "too many open sessions for this key "
					  "(limits.max_sessions_per_key): end one with DELETE, or "
					  "wait for idle ones to expire", data);
		return;
	}
	if (rc) {
		*response = jsonrpc_error(m->id, JSONRPC_INTERNAL_ERROR,
					  rc == -EBUSY ? "too many sessions" : "cannot create a session",
					  NULL);
		return;
	}
	metrics_session_opened();
	/* A client with capabilities the catalogue does not declare sees the tools that need
	 * them: its own links open now and list them. */
	view_open(&r->links, s);

	cJSON *res = cJSON_CreateObject(), *si = cJSON_CreateObject();
	cJSON_AddStringToObject(res, "protocolVersion", s->version);
	cJSON_AddItemToObject(res, "capabilities", catalog_capabilities(r->cat));
	cJSON_AddStringToObject(si, "name", "mcpwarden");
	cJSON_AddStringToObject(si, "version", WARDEN_VERSION);
	cJSON_AddItemToObject(res, "serverInfo", si);
	*response = jsonrpc_result(m->id, res);
	*out = s;
	log_info("session %.8s…: initialised (protocol %s, client %s)", s->id, s->version,
		 cJSON_IsString(json_get(info, "name"))
			 ? json_get(info, "name")->valuestring : "?");
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
	router_teardown(r, s);
	session_destroy(r->sessions, s);
}

void router_stream_open(struct router *r, struct session *s, struct stream *st)
{
	s->stream = st;
}

void router_stream_closed(struct router *r, struct session *s, struct stream *st)
{
	if (s->stream == st)
		s->stream = NULL;
}

/* --- 2026-07-28: one-request sessions (mcp/stateless.h) -------------------------------- */

int router_open_stateless(struct router *r, const char *version, const cJSON *caps,
			  const cJSON *info, const char *key_id, struct session **out)
{
	int rc = session_create(r->sessions, version, caps, info, key_id, out);

	if (rc)
		return rc;
	(*out)->stateless = true;
	(*out)->initialized = true;
	metrics_session_opened();
	return 0;
}

struct holder_find {
	const char *key_id;
	struct session *found;
};

static void find_holder(void *arg, struct session *s)
{
	struct holder_find *h = arg;

	if (s->task_holder && !s->ending && !strcmp(s->key_id, h->key_id))
		h->found = s;
}

int router_task_holder(struct router *r, const cJSON *caps, const char *key_id,
		       struct session **out)
{
	struct holder_find h = { key_id, NULL };
	int rc;

	session_foreach(r->sessions, find_holder, &h);
	if (h.found) {
		session_touch(h.found);
		*out = h.found;
		return 0;
	}
	rc = router_open_stateless(r, "2026-07-28", caps, NULL, key_id, out);
	if (rc == 0)
		(*out)->task_holder = true;
	return rc;
}

#define REAP_BATCH 64

struct reap_pass {
	struct session *s[REAP_BATCH];
	size_t n;
	bool more;
};

static void collect_ending(void *arg, struct session *s)
{
	struct reap_pass *p = arg;

	if (!s->ending)
		return;
	if (p->n < REAP_BATCH)
		p->s[p->n++] = s;
	else
		p->more = true;
}

/* Outside any link's callback: ending a session closes its links. */
void router_on_reap(evutil_socket_t fd, short what, void *arg)
{
	struct router *r = arg;
	struct reap_pass p = { .n = 0 };

	session_foreach(r->sessions, collect_ending, &p);
	for (size_t i = 0; i < p.n; i++) {
		router_teardown(r, p.s[i]);
		session_destroy(r->sessions, p.s[i]);
	}
	if (p.more)
		event_active(r->reap, EV_TIMEOUT, 0);
}

void router_end_later(struct router *r, struct session *s)
{
	s->ending = true;
	event_active(r->reap, EV_TIMEOUT, 0);
}

/* --- messages from the client ----------------------------------------------------------------- */

void router_request(struct router *r, struct session *s, const struct key_identity *who,
		    cJSON *msg, const struct jsonrpc_msg *m, struct reply *reply)
{
	/* m's id and params are msg's members: taken out by pointer (no lookup by name, no
	 * copy); msg itself lives until the call has been routed (m->method is in it). */
	cJSON *params = m->params ? cJSON_DetachItemViaPointer(msg, (cJSON *)m->params)
				  : cJSON_CreateObject();
	cJSON *id = cJSON_DetachItemViaPointer(msg, (cJSON *)m->id);

	call_start(&r->env, s, who, router_method(m->method), m->method, id, params, reply);
	cJSON_Delete(msg);
}

void router_notification(struct router *r, struct session *s, cJSON *msg,
			 const struct jsonrpc_msg *m)
{
	if (!strcmp(m->method, "notifications/initialized")) {
		s->initialized = true;
	} else if (!strcmp(m->method, "notifications/cancelled")) {
		const cJSON *rid = json_get(m->params, "requestId");
		char key[256];
		jsonrpc_id_key(rid, key, sizeof(key));
		struct session_booking *b = rid ? session_booked(s, key) : NULL;
		struct call *c = b ? call_of_booking(b) : NULL;
		if (c)
			call_event(c, CALL_EV_CANCEL, NULL, 0);
	} else if (!strcmp(m->method, "notifications/roots/list_changed")) {
		for (size_t i = 0; i < s->nlinks; i++)
			if (s->links[i].link && link_ready(s->links[i].link))
				link_notify(s->links[i].link, m->method, NULL);
	}
	cJSON_Delete(msg);
}

void router_response(struct router *r, struct session *s, cJSON *msg, const struct jsonrpc_msg *m)
{
	relay_response(&r->relay, s, msg, m);
}
