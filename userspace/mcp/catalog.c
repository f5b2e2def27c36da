/* catalog: aggregated, cached, refreshed lists of every upstream. */
#include "mcp/catalog.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/config.h"
#include "base/epoch.h"
#include "base/event_opt.h"
#include "base/hmap.h"
#include "mcp/jsonrpc.h"
#include "mcp/list_fetch.h"
#include "base/json_get.h"
#include "base/log.h"
#include "mcp/names.h"
#include "govern/schema.h"
#include "mcp/upstream.h"

#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000


static const char *const list_method[CAT_NKINDS] = {
	"tools/list", "resources/list", "resources/templates/list", "prompts/list"
};
static const char *const list_field[CAT_NKINDS] = { "tools", "resources", "resourceTemplates", "prompts" };
static const char *const name_field[CAT_NKINDS] = { "name", "uri", "uriTemplate", "name" };
static const char *const kind_cap[CAT_NKINDS] = { "tools", "resources", "resources", "prompts" };

struct catalog;

struct server {
	struct catalog *cat;
	size_t index;
	const struct upstream_config *cfg;
	struct link *ctl;
	bool shared;                    /* one stdio child serves every session */
	bool ready;
	bool was_ready;                 /* ready at least once */
	int backoff_ms;
	struct event *retry;
	cJSON *lists[CAT_NKINDS];       /* last complete list per kind (array), owned */
	unsigned fetching;              /* bit per kind */
	unsigned again;                 /* bit per kind: list_changed arrived while fetching */
	unsigned have;                  /* bit per kind fetched at least once */
	/* What its initialize answered ({capabilities, serverInfo}, a copy), published for
	 * every loop while its link is up; one replaced is freed through the epochs. */
	_Atomic(cJSON *) init;
	_Atomic unsigned asked;         /* bit per kind: another loop asked for a refresh */
};

struct fetch {
	struct list_fetch lf;           /* first; obj_type OBJ_TYPE_FETCH: tells fetches from
					 * downstream calls */
	struct server *srv;
	enum catalog_kind kind;
};

/* A published list and its index by exposed name (pub first: catalog_list_find finds it). */
struct list {
	struct catalog_list pub;
	struct catalog_entry *e;        /* pub.e, owned */
	struct hmap *by_name;
};

static const struct list empty_list;

struct catalog {
	struct event_base *base;
	const struct config *cfg;
	struct catalog_hooks hooks;
	struct server *srv;
	size_t nsrv;
	bool prefix;
	/* Made and replaced on the catalogue's loop, read by every loop (workers: N): the ones
	 * replaced are freed through the epochs. NULL until a kind's first list. */
	_Atomic(struct list *) lists[CAT_NKINDS];
	_Atomic unsigned long generation;
	struct hmap *server_by_name;    /* name -> index+1 */
	pthread_t thread;               /* the catalogue's loop's */
	struct event *asked_ev;         /* another loop asked for a refresh (server.asked) */
};

static void ctl_on_state(void *owner, struct link *l, int err, const char *why);
static void ctl_on_request(void *owner, struct link *l, cJSON *msg, enum obj_type *ctx);
static void ctl_on_notification(void *owner, struct link *l, cJSON *msg, enum obj_type *ctx);
static const struct link_ops ctl_ops = { ctl_on_request, ctl_on_notification, ctl_on_state,
					  .keep_init_result = true };

void catalog_entries_free(struct catalog_entry *e, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free((char *)e[i].name);
		free((char *)e[i].exposed);
		cJSON_Delete(e[i].json);
		schema_free(e[i].schema);
	}
	free(e);
}

static void list_free(void *arg)
{
	struct list *l = arg;

	if (!l)
		return;
	catalog_entries_free(l->e, l->pub.n);
	hmap_free(l->by_name, NULL);
	free(l);
}

static const struct list *list_of(const struct catalog *c, enum catalog_kind kind)
{
	const struct list *l = atomic_load_explicit(&((struct catalog *)c)->lists[kind],
						    memory_order_acquire);

	return l ? l : &empty_list;
}

static char *exposed_name(const struct catalog *c, const struct server *s,
			  enum catalog_kind kind, const char *name)
{
	if (!c->prefix)
		return strdup(name);
	return names_expose(s->cfg->name, kind == CAT_TOOLS || kind == CAT_PROMPTS ? NAMES_NAME
										  : NAMES_URI, name);
}

static int rebuild(struct catalog *c, enum catalog_kind kind)
{
	struct list *nl = xcalloc(1, sizeof(*nl));
	size_t total = 0, n = 0;
	int rc = 0;

	for (size_t i = 0; i < c->nsrv; i++)
		total += (size_t)cJSON_GetArraySize(c->srv[i].lists[kind]);
	nl->by_name = hmap_new();
	nl->e = calloc(total ? total : 1, sizeof(*nl->e));
	if (!nl->by_name || !nl->e) {
		rc = -ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < c->nsrv; i++) {
		struct server *s = &c->srv[i];
		const cJSON *it;
		cJSON_ArrayForEach(it, s->lists[kind]) {
			const cJSON *nm = json_get(it, name_field[kind]);
			if (!cJSON_IsString(nm) || !*nm->valuestring)
				continue;
			char *ex = exposed_name(c, s, kind, nm->valuestring);
			if (!ex) {
				rc = -ENOMEM;
				goto fail;
			}
			const struct catalog_entry *prev = hmap_get(nl->by_name, ex);
			if (prev) {
				log_error("configuration error: %s \"%s\" is offered by both %s and %s "
					  "(prefix \"never\"): keeping %s's",
					  list_field[kind], ex, c->srv[prev->server].cfg->name,
					  s->cfg->name, c->srv[prev->server].cfg->name);
				free(ex);
				continue;
			}
			struct catalog_entry *e = &nl->e[n];
			e->kind = kind;
			e->server = i;
			e->index = n;
			e->exposed = ex;
			e->json = cJSON_Duplicate(it, 1);
			if (!e->json) {
				free(ex);
				rc = -ENOMEM;
				goto fail;
			}
			cJSON_ReplaceItemInObjectCaseSensitive(e->json, name_field[kind],
							       cJSON_CreateString(ex));
			e->name = strdup(nm->valuestring);
			if (!e->name) {
				n++;
				rc = -ENOMEM;
				goto fail;
			}
			if (kind == CAT_TOOLS) {
				char err[256];
				catalog_expose_tool_ui(c, i, e->json);
				const cJSON *sch = json_get(it, "inputSchema");
				if (schema_compile(sch, (struct schema **)&e->schema, err, sizeof(err)))
					log_warn("upstream %s: tool %s: inputSchema not usable (%s): "
						 "arguments will not be validated",
						 s->cfg->name, nm->valuestring, err);
			}
			n++;
			if (hmap_put(nl->by_name, ex, e, NULL)) {
				rc = -ENOMEM;
				goto fail;
			}
		}
	}
	/* Made whole before it is published: from here on nothing in it changes. */
	nl->pub.generation = atomic_load(&c->generation) + 1;
	nl->pub.n = n;
	nl->pub.e = nl->e;
	for (size_t i = 0; i < n; i++)
		nl->e[i].generation = nl->pub.generation;
	struct list *old = atomic_exchange(&c->lists[kind], nl);
	atomic_store(&c->generation, nl->pub.generation);
	if (old)
		epoch_defer(list_free, old);   /* another loop may be reading it */
	return 0;
fail:
	nl->pub.n = n;
	list_free(nl);
	return rc;
}

static bool server_supports(const struct server *s, enum catalog_kind kind)
{
	const cJSON *caps = json_get(link_init_result(s->ctl), "capabilities");

	return json_get(caps, kind_cap[kind]) != NULL;
}

static void check_ready(struct server *s)
{
	if (s->ready || s->fetching)
		return;
	for (int k = 0; k < CAT_NKINDS; k++)
		if (server_supports(s, k) && !(s->have & (1u << k)))
			return;
	s->ready = true;
	s->was_ready = true;
	s->backoff_ms = BACKOFF_MIN_MS;
	log_info("upstream %s: ready (%d tools, %d resources, %d templates, %d prompts)",
		 s->cfg->name, cJSON_GetArraySize(s->lists[CAT_TOOLS]),
		 cJSON_GetArraySize(s->lists[CAT_RESOURCES]),
		 cJSON_GetArraySize(s->lists[CAT_TEMPLATES]),
		 cJSON_GetArraySize(s->lists[CAT_PROMPTS]));
	if (s->cat->hooks.on_ready)
		s->cat->hooks.on_ready(s->cat->hooks.arg, s->index);
}

static void fetch_done(struct list_fetch *lf, int rc, const char *why);

static void start_fetch(struct server *s, enum catalog_kind kind)
{
	struct fetch *f;

	if (!s->ctl || !link_ready(s->ctl) || !server_supports(s, kind))
		return;
	if (s->fetching & (1u << kind)) {
		s->again |= 1u << kind;
		return;
	}
	f = xcalloc(1, sizeof(*f));
	f->lf.obj_type = OBJ_TYPE_FETCH;
	f->lf.link = s->ctl;
	f->lf.method = list_method[kind];
	f->lf.field = list_field[kind];
	f->lf.done = fetch_done;
	f->srv = s;
	f->kind = kind;
	s->fetching |= 1u << kind;
	list_fetch_start(&f->lf);
}

static void fetch_done(struct list_fetch *lf, int rc, const char *why)
{
	struct fetch *f = (struct fetch *)lf;
	struct server *s = f->srv;
	struct catalog *c = s->cat;
	enum catalog_kind kind = f->kind;

	if (rc == -EPROTO)
		log_warn("upstream %s: %s failed: %s", s->cfg->name, lf->method, why);
	else if (rc)
		log_warn("upstream %s: cannot send %s", s->cfg->name, lf->method);
	s->fetching &= ~(1u << kind);
	if (rc == 0) {
		cJSON_Delete(s->lists[kind]);
		s->lists[kind] = lf->acc;
		lf->acc = NULL;
		s->have |= 1u << kind;
		if (rebuild(c, kind) == 0 && c->hooks.on_change)
			c->hooks.on_change(c->hooks.arg, kind);
	}
	cJSON_Delete(lf->acc);
	free(f);
	if (s->again & (1u << kind)) {
		s->again &= ~(1u << kind);
		start_fetch(s, kind);
	}
	check_ready(s);
}

const char *const catalog_declared_caps[] = { "sampling", "elicitation", NULL };

static void open_ctl(struct server *s)
{
	cJSON *caps = cJSON_CreateObject();
	int rc;

	/* Declaring sampling and elicitation lets servers list the tools that need them; calls
	 * still reach the downstream client, which answers for itself. Not roots: a server may
	 * act on the roots it is given (server-filesystem narrows its folders to them), and the
	 * catalogue's link has no client to ask. */
	for (const char *const *cap = catalog_declared_caps; *cap; cap++)
		cJSON_AddItemToObject(caps, *cap, cJSON_CreateObject());
	rc = link_open(s->cat->base, s->cfg, caps, &ctl_ops, s, &s->ctl);
	cJSON_Delete(caps);
	if (rc) {
		s->ctl = NULL;
		log_warn("upstream %s: cannot start: %s; retrying in %d ms", s->cfg->name,
			 strerror(-rc), s->backoff_ms);
		struct timeval tv = { s->backoff_ms / 1000, (s->backoff_ms % 1000) * 1000 };
		evtimer_add(s->retry, &tv);
		s->backoff_ms = s->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : s->backoff_ms * 2;
	}
}

static void json_free(void *j)
{
	cJSON_Delete(j);
}

/* What the server's initialize answered, for every loop (NULL: its link is closing). */
static void publish_init(struct server *s, const cJSON *result)
{
	cJSON *n = NULL, *old;

	if (result) {
		n = cJSON_CreateObject();
		const cJSON *caps = json_get(result, "capabilities");
		const cJSON *info = json_get(result, "serverInfo");
		if (caps)
			cJSON_AddItemToObject(n, "capabilities", cJSON_Duplicate(caps, 1));
		if (info)
			cJSON_AddItemToObject(n, "serverInfo", cJSON_Duplicate(info, 1));
	}
	if ((old = atomic_exchange(&s->init, n)))
		epoch_defer(json_free, old);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
	struct server *s = arg;

	/* Closing happens here, outside the link's own callbacks. */
	publish_init(s, NULL);
	link_close(s->ctl);
	s->ctl = NULL;
	s->fetching = s->again = 0;
	open_ctl(s);
}

static void ctl_on_state(void *owner, struct link *l, int err, const char *why)
{
	struct server *s = owner;

	if (err == 0) {
		log_info("upstream %s: initialised", s->cfg->name);
		publish_init(s, link_init_result(l));
		for (int k = 0; k < CAT_NKINDS; k++)
			start_fetch(s, k);
		check_ready(s);
		return;
	}
	s->ready = false;
	log_warn("upstream %s: down (%s); restarting in %d ms", s->cfg->name, why, s->backoff_ms);
	struct timeval tv = { s->backoff_ms / 1000, (s->backoff_ms % 1000) * 1000 };
	evtimer_add(s->retry, &tv);
	s->backoff_ms = s->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : s->backoff_ms * 2;
}

static void ctl_on_request(void *owner, struct link *l, cJSON *msg, enum obj_type *ctx)
{
	struct server *s = owner;
	struct catalog *c = s->cat;

	if (obj_type(ctx) == OBJ_TYPE_CALL && c->hooks.on_call_request) {
		c->hooks.on_call_request(c->hooks.arg, l, msg, ctx);
		return;
	}
	/* No downstream client is waiting on this link: nobody can answer. */
	const cJSON *id = json_get(msg, "id");
	cJSON *e = cJSON_CreateObject();
	cJSON_AddNumberToObject(e, "code", JSONRPC_METHOD_NOT_FOUND);
	cJSON_AddStringToObject(e, "message", "no client request is in progress to relay this to");
	link_respond(l, id, NULL, e);
	cJSON_Delete(msg);
}

int catalog_kind_of_list_changed(const char *method)
{
	/* Templates change with resources: they have no notification of their own. */
	static const char *const list_changed[CAT_NKINDS] = {
		[CAT_TOOLS] = "notifications/tools/list_changed",
		[CAT_RESOURCES] = "notifications/resources/list_changed",
		[CAT_PROMPTS] = "notifications/prompts/list_changed",
	};

	for (int k = 0; k < CAT_NKINDS; k++)
		if (list_changed[k] && !strcmp(method, list_changed[k]))
			return k;
	return -1;
}

static void ctl_on_notification(void *owner, struct link *l, cJSON *msg, enum obj_type *ctx)
{
	struct server *s = owner;
	struct catalog *c = s->cat;
	const cJSON *m = json_get(msg, "method");
	int kind = catalog_kind_of_list_changed(m->valuestring);

	if (kind >= 0) {
		catalog_refresh(c, s->index, (enum catalog_kind)kind);
		cJSON_Delete(msg);
		return;
	}
	if (obj_type(ctx) == OBJ_TYPE_CALL && c->hooks.on_call_notification) {
		c->hooks.on_call_notification(c->hooks.arg, l, msg, ctx);
		return;
	}
	/* Outside any call: resource updates go to their subscribers, task status to the
	 * session that owns the task (mcp/relay.c). */
	if (s->shared && c->hooks.on_call_notification &&
	    (!strcmp(m->valuestring, "notifications/resources/updated") ||
	     !strcmp(m->valuestring, "notifications/tasks/status"))) {
		c->hooks.on_call_notification(c->hooks.arg, l, msg, NULL);
		return;
	}
	cJSON_Delete(msg);
}

void catalog_refresh(struct catalog *c, size_t server, enum catalog_kind kind)
{
	struct server *s = &c->srv[server];

	if (!pthread_equal(pthread_self(), c->thread)) {
		/* Another loop's session heard its own child say so: the fetch is this loop's. */
		atomic_fetch_or(&s->asked, 1u << kind);
		event_active(c->asked_ev, EV_TIMEOUT, 1);
		return;
	}
	start_fetch(s, kind);
	if (kind == CAT_RESOURCES)
		start_fetch(s, CAT_TEMPLATES);
}

static void on_asked(evutil_socket_t fd, short what, void *arg)
{
	struct catalog *c = arg;

	(void)fd;
	(void)what;
	for (size_t i = 0; i < c->nsrv; i++) {
		unsigned kinds = atomic_exchange(&c->srv[i].asked, 0);
		for (int k = 0; k < CAT_NKINDS; k++)
			if (kinds & (1u << k))
				catalog_refresh(c, i, (enum catalog_kind)k);
	}
}

int catalog_new(struct event_base *base, const struct config *cfg,
		const struct catalog_hooks *hooks, struct catalog **out)
{
	struct catalog *c = calloc(1, sizeof(*c));
	int rc = -ENOMEM;

	if (!c)
		return -ENOMEM;
	c->base = base;
	c->cfg = cfg;
	c->thread = pthread_self();
	if (hooks)
		c->hooks = *hooks;
	c->nsrv = cfg->nupstreams;
	c->prefix = cfg->prefix == PREFIX_ALWAYS || (cfg->prefix == PREFIX_AUTO && c->nsrv > 1);
	c->srv = calloc(c->nsrv ? c->nsrv : 1, sizeof(*c->srv));
	c->server_by_name = hmap_new();
	c->asked_ev = event_new(base, -1, 0, on_asked, c);
	if (!c->srv || !c->server_by_name || !c->asked_ev)
		goto fail;
	for (int k = 0; k < CAT_NKINDS; k++)
		if (rebuild(c, k))
			goto fail;
	for (size_t i = 0; i < c->nsrv; i++) {
		struct server *s = &c->srv[i];
		s->cat = c;
		s->index = i;
		s->cfg = &cfg->upstreams[i];
		s->shared = s->cfg->kind == UPSTREAM_STDIO && !s->cfg->per_session;
		s->backoff_ms = BACKOFF_MIN_MS;
		s->retry = evtimer_new(base, on_retry, s);
		if (!s->retry || hmap_put(c->server_by_name, s->cfg->name, (void *)(i + 1), NULL))
			goto fail;
	}
	/* All at once: each initialises on its own and one that is down holds up nobody. */
	for (size_t i = 0; i < c->nsrv; i++)
		open_ctl(&c->srv[i]);
	*out = c;
	return 0;
fail:
	catalog_free(c);
	return rc;
}

void catalog_free(struct catalog *c)
{
	if (!c)
		return;
	for (size_t i = 0; c->srv && i < c->nsrv; i++) {
		struct server *s = &c->srv[i];
		link_close(s->ctl);   /* fails in-flight fetches: fetch_done frees them */
		s->ctl = NULL;
		event_free_opt(s->retry);
		publish_init(s, NULL);
	}
	event_free_opt(c->asked_ev);
	for (int k = 0; k < CAT_NKINDS; k++) {
		struct list *l = atomic_exchange(&c->lists[k], NULL);
		if (l)
			epoch_defer(list_free, l);
	}
	for (size_t i = 0; c->srv && i < c->nsrv; i++)
		for (int k = 0; k < CAT_NKINDS; k++)
			cJSON_Delete(c->srv[i].lists[k]);
	hmap_free(c->server_by_name, NULL);
	free(c->srv);
	free(c);
}

bool catalog_prefixing(const struct catalog *c) { return c->prefix; }
size_t catalog_nservers(const struct catalog *c) { return c->nsrv; }
unsigned long catalog_generation(const struct catalog *c)
{
	return atomic_load(&((struct catalog *)c)->generation);
}

const struct upstream_config *catalog_server_config(const struct catalog *c, size_t server)
{
	return c->srv[server].cfg;
}

bool catalog_server_ready(const struct catalog *c, size_t server)
{
	return c->srv[server].ready && c->srv[server].ctl && link_ready(c->srv[server].ctl);
}

bool catalog_all_ready(const struct catalog *c)
{
	for (size_t i = 0; i < c->nsrv; i++)
		if (!c->srv[i].was_ready)
			return false;
	return true;
}

struct link *catalog_shared_link(const struct catalog *c, size_t server)
{
	return c->srv[server].shared ? c->srv[server].ctl : NULL;
}

const cJSON *catalog_server_caps(const struct catalog *c, size_t server)
{
	const struct server *s = &c->srv[server];

	return json_get(atomic_load(&((struct server *)s)->init), "capabilities");
}

static cJSON *ui_field(const cJSON *tool, cJSON **holder, const char **field)
{
	cJSON *meta = json_get(tool, "_meta");
	cJSON *ui = json_get(meta, "ui");
	cJSON *u = json_get(ui, "resourceUri");

	*holder = ui;
	*field = "resourceUri";
	if (cJSON_IsString(u))
		return u;
	*holder = meta;
	*field = "ui/resourceUri";
	u = json_get(meta, "ui/resourceUri");
	return cJSON_IsString(u) ? u : NULL;
}

const char *catalog_tool_ui(const cJSON *tool)
{
	cJSON *holder;
	const char *field;
	const cJSON *u = ui_field(tool, &holder, &field);

	return u ? u->valuestring : NULL;
}

void catalog_expose_tool_ui(const struct catalog *c, size_t server, cJSON *tool)
{
	cJSON *holder;
	const char *field;
	cJSON *u = ui_field(tool, &holder, &field);
	char *ex;

	if (!u || !catalog_prefixing(c))
		return;
	ex = catalog_expose_uri(c, server, u->valuestring);
	if (ex)
		cJSON_ReplaceItemInObjectCaseSensitive(holder, field, cJSON_CreateString(ex));
	free(ex);
}

bool catalog_server_tasks(const struct catalog *c, size_t server, const char *what)
{
	const cJSON *t = json_get(catalog_server_caps(c, server), "tasks");

	if (!strcmp(what, "tools/call")) {
		t = json_get(t, "requests");
		t = json_get(t, "tools");
		return cJSON_IsObject(json_get(t, "call"));
	}
	return cJSON_IsObject(json_get(t, what));
}

/* The capabilities of servers [lo, hi) merged into the gateway's shape. own: answer as those
 * servers themselves (a session scoped to one): a list they do not declare is not offered. */
static cJSON *capabilities_of(const struct catalog *c, size_t lo, size_t hi, bool own)
{
	cJSON *caps = cJSON_CreateObject(), *o;
	bool subscribe = false, logging = false, completions = false;
	bool task_calls = false, task_list = false, task_cancel = false;
	bool tools = !own, resources = !own, prompts = !own;

	for (size_t i = lo; i < hi && i < c->nsrv; i++) {
		const cJSON *sc = catalog_server_caps(c, i);
		const cJSON *res = json_get(sc, "resources");
		/* Not ready yet: what it declares is unknown, so every list is offered. */
		tools |= !sc || json_get(sc, "tools");
		resources |= !sc || res;
		prompts |= !sc || json_get(sc, "prompts");
		subscribe |= cJSON_IsTrue(json_get(res, "subscribe"));
		logging |= json_get(sc, "logging") != NULL;
		completions |= json_get(sc, "completions") != NULL;
		task_calls |= catalog_server_tasks(c, i, "tools/call");
		task_list |= catalog_server_tasks(c, i, "list");
		task_cancel |= catalog_server_tasks(c, i, "cancel");
	}
	/* Lists are always offered with listChanged: upstreams that come up later announce
	 * themselves through it. */
	if (tools) {
		o = cJSON_AddObjectToObject(caps, "tools");
		cJSON_AddBoolToObject(o, "listChanged", 1);
	}
	if (resources) {
		o = cJSON_AddObjectToObject(caps, "resources");
		cJSON_AddBoolToObject(o, "subscribe", subscribe);
		cJSON_AddBoolToObject(o, "listChanged", 1);
	}
	if (prompts) {
		o = cJSON_AddObjectToObject(caps, "prompts");
		cJSON_AddBoolToObject(o, "listChanged", 1);
	}
	if (logging)
		cJSON_AddObjectToObject(caps, "logging");
	if (completions)
		cJSON_AddObjectToObject(caps, "completions");
	/* Tasks are relayed to the upstreams that run them (mcp/tasks.h). */
	if (task_calls) {
		o = cJSON_AddObjectToObject(caps, "tasks");
		if (task_list)
			cJSON_AddObjectToObject(o, "list");
		if (task_cancel)
			cJSON_AddObjectToObject(o, "cancel");
		o = cJSON_AddObjectToObject(cJSON_AddObjectToObject(o, "requests"), "tools");
		cJSON_AddObjectToObject(o, "call");
	}
	return caps;
}

cJSON *catalog_capabilities(const struct catalog *c)
{
	return capabilities_of(c, 0, c->nsrv, false);
}

cJSON *catalog_server_capabilities(const struct catalog *c, size_t server)
{
	return capabilities_of(c, server, server + 1, true);
}

const cJSON *catalog_server_info(const struct catalog *c, size_t server)
{
	const struct server *s = server < c->nsrv ? &c->srv[server] : NULL;

	return s ? json_get(atomic_load(&((struct server *)s)->init), "serverInfo") : NULL;
}

const struct catalog_list *catalog_list(const struct catalog *c, enum catalog_kind kind)
{
	return &list_of(c, kind)->pub;
}

const struct catalog_entry *catalog_list_at(const struct catalog_list *l, size_t i)
{
	return i < l->n ? &l->e[i] : NULL;
}

const struct catalog_entry *catalog_list_find(const struct catalog_list *l, const char *exposed)
{
	const struct list *in = (const struct list *)l;

	return in->by_name ? hmap_get(in->by_name, exposed) : NULL;
}

const struct catalog_entry *catalog_find(const struct catalog *c, enum catalog_kind kind,
					 const char *exposed)
{
	return catalog_list_find(catalog_list(c, kind), exposed);
}

int catalog_route_uri(const struct catalog *c, const char *exposed, size_t *server,
		      const char **uri)
{
	const struct catalog_entry *e;

	if (c->prefix) {
		char name[CONFIG_NAME_MAX + 1];
		void *v;
		if (names_split(exposed, NAMES_URI, name, uri) || !(v = hmap_get(c->server_by_name, name)))
			return -ENOENT;
		*server = (size_t)v - 1;
		return 0;
	}
	e = catalog_find(c, CAT_RESOURCES, exposed);
	if (e) {
		*server = e->server;
		*uri = exposed;
		return 0;
	}
	const struct catalog_list *tl = catalog_list(c, CAT_TEMPLATES);
	for (size_t i = 0; i < tl->n; i++) {
		e = &tl->e[i];
		if (names_template_match(e->name, exposed)) {
			*server = e->server;
			*uri = exposed;
			return 0;
		}
	}
	if (c->nsrv == 1) {
		*server = 0;
		*uri = exposed;
		return 0;
	}
	return -ENOENT;
}

char *catalog_expose_name(const struct catalog *c, size_t server, enum catalog_kind kind,
			  const char *name)
{
	return exposed_name(c, &c->srv[server], kind, name);
}

char *catalog_expose_uri(const struct catalog *c, size_t server, const char *uri)
{
	return exposed_name(c, &c->srv[server], CAT_RESOURCES, uri);
}

int catalog_route_name(const struct catalog *c, enum catalog_kind kind, const char *exposed,
		       size_t *server, const char **name)
{
	const struct catalog_entry *e = catalog_find(c, kind, exposed);

	if (e) {
		*server = e->server;
		*name = e->name;
		return 0;
	}
	if (c->prefix) {
		char sname[CONFIG_NAME_MAX + 1];
		void *v;
		if (names_split(exposed, NAMES_NAME, sname, name) ||
		    !(v = hmap_get(c->server_by_name, sname)))
			return -ENOENT;
		*server = (size_t)v - 1;
		return 0;
	}
	if (c->nsrv == 1) {
		*server = 0;
		*name = exposed;
		return 0;
	}
	return -ENOENT;
}
