/* session_view: a session's own tools/list of the servers that serve it alone. */
#include "mcp/session_view.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/config.h"
#include "base/hmap.h"
#include "base/json_get.h"
#include "base/log.h"
#include "govern/schema.h"
#include "mcp/call.h"
#include "mcp/catalog.h"
#include "mcp/jsonrpc.h"
#include "mcp/links.h"
#include "mcp/list_fetch.h"
#include "mcp/reply.h"
#include "mcp/session.h"
#include "mcp/upstream.h"

/* The capabilities a server may offer tools for (what relay.c relays to clients). */
static const char *const client_caps[] = { "roots", "sampling", "elicitation", NULL };

struct own_fetch {
	struct list_fetch lf;         /* first; obj_type OBJ_TYPE_VIEW_FETCH; dropped once the
				       * session ended */
	struct session_link *sl;      /* NULL once the session ended */
};

struct own_tools {
	const struct links *ls;       /* the router's: the catalogue and how links open */
	struct own_fetch *fetch;      /* in flight, or NULL */
	bool listed;                  /* a list arrived, or listing failed (names NULL: nothing hidden) */
	bool again;                   /* list_changed while fetching */
	struct hmap *names;           /* the upstream's names of the tools it lists to this session */
	struct catalog_entry *extra;  /* those the catalogue does not list */
	size_t nextra;
};

static void free_extra(struct own_tools *o)
{
	catalog_entries_free(o->extra, o->nextra);
	o->extra = NULL;
	o->nextra = 0;
	hmap_free(o->names, NULL);
	o->names = NULL;
}

/* The list arrived: names to filter the catalogue with, entries for what it does not have. */
static void adopt(struct session_link *sl, const cJSON *tools)
{
	struct own_tools *o = sl->own;
	struct catalog *cat = o->ls->cat;
	const cJSON *it;

	free_extra(o);
	o->names = hmap_new();
	o->extra = xcalloc((size_t)cJSON_GetArraySize(tools) + 1, sizeof(*o->extra));
	cJSON_ArrayForEach(it, tools) {
		const cJSON *nm = json_get(it, "name");
		if (!cJSON_IsString(nm) || !*nm->valuestring || hmap_get(o->names, nm->valuestring))
			continue;
		if (hmap_put(o->names, nm->valuestring, (void *)1, NULL))
			continue;
		char *ex = catalog_expose_name(cat, sl->server, CAT_TOOLS, nm->valuestring);
		if (!ex)
			continue;
		const struct catalog_entry *known = catalog_find(cat, CAT_TOOLS, ex);
		if (known && known->server == sl->server) {
			free(ex);
			continue;
		}
		struct catalog_entry *e = &o->extra[o->nextra++];
		char err[256];
		e->kind = CAT_TOOLS;
		e->server = sl->server;
		e->index = CATALOG_OWN;
		e->name = xstrdup(nm->valuestring);
		e->exposed = ex;
		e->json = cJSON_Duplicate(it, 1);
		cJSON_ReplaceItemInObjectCaseSensitive(e->json, "name", cJSON_CreateString(ex));
		catalog_expose_tool_ui(cat, sl->server, e->json);
		if (schema_compile(json_get(it, "inputSchema"),
				   (struct schema **)&e->schema, err, sizeof(err)))
			log_warn("upstream %s: tool %s: inputSchema not usable (%s): arguments will not "
				 "be validated", link_server(sl->link), nm->valuestring, err);
	}
}

/* Calls that waited for the session's own lists are routed now. */
static void resume_parked(struct session *s)
{
	struct htab_iter it = htab_iter(&s->calls);
	struct call **parked;
	size_t n = 0;

	parked = xcalloc(session_nbooked(s) + 1, sizeof(*parked));
	for (struct htab_node *hn; (hn = htab_next(&it)); )
		if (call_of_book(hn)->parked)
			parked[n++] = call_of_book(hn);
	for (size_t i = 0; i < n; i++)
		call_event(parked[i], CALL_EV_RESUME, NULL, 0);
	free(parked);
}

static void start_fetch(struct session_link *sl);

static void fetch_done(struct list_fetch *lf, int rc, const char *why)
{
	struct own_fetch *f = (struct own_fetch *)lf;
	struct session_link *sl = f->sl;
	struct own_tools *o;
	bool relist;

	if (!sl) {  /* the session ended */
		cJSON_Delete(lf->acc);
		free(f);
		return;
	}
	o = sl->own;
	relist = o->listed;
	if (rc == -EPROTO)
		log_warn("session %.8s…: upstream %s: tools/list failed (%s): the session sees its "
			 "catalogue entries", sl->s->id, sl->link ? link_server(sl->link) : "?", why);
	o->fetch = NULL;
	if (rc == 0)
		adopt(sl, lf->acc);
	o->listed = true;
	cJSON_Delete(lf->acc);
	free(f);
	if (o->again) {
		o->again = false;
		start_fetch(sl);
		return;
	}
	if (rc == 0 && relist && sl->s->stream) {
		cJSON *n = jsonrpc_notification("notifications/tools/list_changed", NULL);
		stream_event(sl->s->stream, n);
		cJSON_Delete(n);
	}
	if (!view_pending(sl->s))
		resume_parked(sl->s);
}

static void start_fetch(struct session_link *sl)
{
	struct own_fetch *f;
	int err;

	if (sl->own->fetch) {
		sl->own->again = true;
		return;
	}
	if (!links_get(sl->own->ls, sl->s, sl->server, &err)) {
		log_warn("session %.8s…: upstream %s: cannot open the session's own link (%s): the "
			 "session sees its catalogue entries", sl->s->id,
			 catalog_server_config(sl->own->ls->cat, sl->server)->name, strerror(-err));
		sl->own->listed = true;
		return;
	}
	f = xcalloc(1, sizeof(*f));
	f->lf.obj_type = OBJ_TYPE_VIEW_FETCH;
	f->lf.link = sl->link;
	f->lf.method = "tools/list";
	f->lf.field = "tools";
	f->lf.done = fetch_done;
	f->sl = sl;
	sl->own->fetch = f;
	list_fetch_start(&f->lf);
}

static bool wants_own_view(const struct session *s)
{
	for (const char *const *cap = client_caps; *cap; cap++) {
		bool declared = false;
		if (!json_get(s->client_caps, *cap))
			continue;
		for (const char *const *d = catalog_declared_caps; *d; d++)
			declared |= !strcmp(*d, *cap);
		if (!declared)
			return true;
	}
	return false;
}

void view_open(const struct links *ls, struct session *s)
{
	if (!wants_own_view(s))
		return;
	for (size_t i = 0; i < s->nlinks; i++) {
		if (links_shared(ls, i))
			continue;
		s->links[i].own = xcalloc(1, sizeof(struct own_tools));
		s->links[i].own->ls = ls;
	}
	/* All allocated first: a fetch that fails at once must not find the others unset. */
	for (size_t i = 0; i < s->nlinks; i++)
		if (s->links[i].own)
			start_fetch(&s->links[i]);
}

void view_close(struct session *s)
{
	for (size_t i = 0; i < s->nlinks; i++) {
		struct own_tools *o = s->links[i].own;
		if (!o)
			continue;
		if (o->fetch) {       /* the link's close answers it; fetch_done frees it */
			o->fetch->sl = NULL;
			o->fetch->lf.dropped = true;
		}
		free_extra(o);
		free(o);
		s->links[i].own = NULL;
	}
}

bool view_pending(const struct session *s)
{
	for (size_t i = 0; i < s->nlinks; i++)
		if (s->links[i].own && (s->links[i].own->fetch || !s->links[i].own->listed))
			return true;
	return false;
}

bool view_hides(const struct session *s, const struct catalog_entry *e)
{
	const struct own_tools *o;

	if (!e || e->kind != CAT_TOOLS || e->index == CATALOG_OWN || e->server >= s->nlinks)
		return false;
	o = s->links[e->server].own;
	return o && o->names && !hmap_get(o->names, e->name);
}

size_t view_count(const struct session *s)
{
	size_t n = 0;

	for (size_t i = 0; i < s->nlinks; i++)
		if (s->links[i].own)
			n += s->links[i].own->nextra;
	return n;
}

const struct catalog_entry *view_at(const struct session *s, size_t i)
{
	for (size_t k = 0; k < s->nlinks; k++) {
		const struct own_tools *o = s->links[k].own;
		if (!o)
			continue;
		if (i < o->nextra)
			return &o->extra[i];
		i -= o->nextra;
	}
	return NULL;
}

const struct catalog_entry *view_find(const struct session *s, const char *exposed)
{
	for (size_t k = 0; k < s->nlinks; k++) {
		const struct own_tools *o = s->links[k].own;
		for (size_t i = 0; o && i < o->nextra; i++)
			if (!strcmp(o->extra[i].exposed, exposed))
				return &o->extra[i];
	}
	return NULL;
}

void view_refresh(struct session_link *sl)
{
	if (sl->own)
		start_fetch(sl);
}
