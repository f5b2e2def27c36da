/* links: the shared child, or the session's own link. */
#include "mcp/links.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <event2/event.h>

#include "base/clock.h"
#include "base/config.h"
#include "base/json_get.h"
#include "mcp/catalog.h"
#include "mcp/jsonrpc.h"
#include "mcp/session.h"
#include "mcp/upstream.h"

/* The children of every session's own stdio links: one count a process, whichever loop
 * opened them, taken before a child is started so that the cap holds exactly. */
static _Atomic unsigned children;

static bool child_take(unsigned max)
{
	unsigned n = atomic_load_explicit(&children, memory_order_relaxed);

	do {
		if (max && n >= max)
			return false;
	} while (!atomic_compare_exchange_weak_explicit(&children, &n, n + 1,
							memory_order_relaxed, memory_order_relaxed));
	return true;
}

static void child_put(void)
{
	atomic_fetch_sub_explicit(&children, 1, memory_order_relaxed);
}

static bool own_child(const struct links *ls, size_t server)
{
	return catalog_server_config(ls->cat, server)->kind == UPSTREAM_STDIO &&
	       !links_shared(ls, server);
}

static void close_link(struct session_link *sl)
{
	link_close(sl->link);
	sl->link = NULL;
	if (sl->child)
		child_put();
	sl->child = false;
}

/* --- the pool of idle links of 2026-07-28 requests --------------------------------------- */

struct pooled {
	size_t server;
	cJSON *caps;                  /* the client capabilities it was initialized with */
	struct link *l;
	uint64_t since_ms;            /* idle since (monotonic) */
	bool dead;                    /* went down while idle: closed by the next sweep */
};

struct link_pool {
	struct pooled e[LINKS_POOL_MAX];
	size_t n;
	struct event *sweep;
};

static void pool_drop(struct link_pool *p, size_t i)
{
	link_close(p->e[i].l);
	cJSON_Delete(p->e[i].caps);
	p->e[i] = p->e[--p->n];
}

/* An idle link has nobody to ask: its server's requests are refused, its notifications are
 * the catalogue's business (it lists through its own link), and going down marks it. */
static void idle_on_request(void *owner, struct link *l, cJSON *msg, enum obj_type *ctx)
{
	cJSON *e = cJSON_CreateObject();

	cJSON_AddNumberToObject(e, "code", JSONRPC_METHOD_NOT_FOUND);
	cJSON_AddStringToObject(e, "message", "no client to relay this to");
	link_respond(l, json_get(msg, "id"), NULL, e);
	cJSON_Delete(msg);
}

static void idle_on_notification(void *owner, struct link *l, cJSON *msg, enum obj_type *ctx)
{
	cJSON_Delete(msg);
}

static void idle_on_state(void *owner, struct link *l, int err, const char *why)
{
	struct link_pool *p = owner;

	for (size_t i = 0; i < p->n && err; i++)
		if (p->e[i].l == l)
			p->e[i].dead = true;  /* closed outside its own callback */
}

static const struct link_ops idle_ops = { idle_on_request, idle_on_notification, idle_on_state,
					   false };

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
	struct link_pool *p = arg;
	uint64_t now = clock_loop_ms();
	static const struct timeval tv = { LINKS_POOL_IDLE_MS / 2000, 0 };

	for (size_t i = p->n; i-- > 0;)
		if (p->e[i].dead || now - p->e[i].since_ms >= LINKS_POOL_IDLE_MS)
			pool_drop(p, i);
	if (p->n)
		evtimer_add(p->sweep, &tv);
}

struct link_pool *links_pool_new(struct event_base *base)
{
	struct link_pool *p = calloc(1, sizeof(*p));

	if (p && !(p->sweep = evtimer_new(base, on_sweep, p))) {
		free(p);
		p = NULL;
	}
	return p;
}

void links_pool_free(struct link_pool *p)
{
	if (!p)
		return;
	while (p->n)
		pool_drop(p, p->n - 1);
	event_free(p->sweep);
	free(p);
}

size_t links_pool_idle(const struct link_pool *p)
{
	return p ? p->n : 0;
}

static bool same_caps(const cJSON *a, const cJSON *b)
{
	if (!a || !b)
		return (!a || !a->child) && (!b || !b->child);
	return cJSON_Compare(a, b, 1);
}

/* Only HTTP links of a 2026-07-28 request's session: stdio children are processes of their
 * own, and a shared child is never the session's. */
static bool poolable(const struct links *ls, const struct session *s, size_t server)
{
	return ls->pool && s->stateless &&
	       catalog_server_config(ls->cat, server)->kind == UPSTREAM_HTTP;
}

static bool may_take(const struct links *ls, const struct session *s, size_t server)
{
	return poolable(ls, s, server) && !s->pool_skip;
}

static struct link *pool_take(const struct links *ls, struct session *s, size_t server)
{
	struct link_pool *p = ls->pool;

	for (size_t i = 0; i < p->n; i++) {
		struct pooled *e = &p->e[i];
		struct link *l = e->l;
		if (e->server != server || e->dead || !link_ready(l) || link_inflight(l) ||
		    !same_caps(e->caps, s->client_caps))
			continue;
		cJSON_Delete(e->caps);
		p->e[i] = p->e[--p->n];
		link_rebind(l, ls->ops, &s->links[server]);
		return l;
	}
	return NULL;
}

/* The request's link goes idle into the pool (the oldest idle one makes room). */
static bool pool_put(const struct links *ls, struct session *s, size_t server)
{
	static const struct timeval tv = { LINKS_POOL_IDLE_MS / 2000, 0 };
	struct link_pool *p = ls->pool;
	struct link *l = s->links[server].link;
	cJSON *caps;

	if (!link_ready(l) || link_inflight(l) || s->tasks)
		return false;
	caps = s->client_caps ? cJSON_Duplicate(s->client_caps, 1) : NULL;
	if (s->client_caps && !caps)
		return false;
	if (p->n == LINKS_POOL_MAX) {
		size_t oldest = 0;
		for (size_t i = 1; i < p->n; i++)
			if (p->e[i].since_ms < p->e[oldest].since_ms)
				oldest = i;
		pool_drop(p, oldest);
	}
	p->e[p->n++] = (struct pooled){ server, caps, l, clock_loop_ms(), false };
	link_rebind(l, &idle_ops, p);
	if (!evtimer_pending(p->sweep, NULL))
		evtimer_add(p->sweep, &tv);
	return true;
}

unsigned links_children(void)
{
	return atomic_load_explicit(&children, memory_order_relaxed);
}

size_t links_children_per_session(const struct links *ls)
{
	size_t n = 0;

	for (size_t i = 0; i < catalog_nservers(ls->cat); i++)
		n += own_child(ls, i);
	return n;
}

bool links_shared(const struct links *ls, size_t server)
{
	const struct upstream_config *uc = catalog_server_config(ls->cat, server);

	return uc->kind == UPSTREAM_STDIO && !uc->per_session;
}

struct link *links_get(const struct links *ls, struct session *s, size_t server, int *err)
{
	struct session_link *sl = &s->links[server];
	int rc;

	*err = 0;
	if (links_shared(ls, server)) {
		struct link *l = ls->remote ? NULL : catalog_shared_link(ls->cat, server);
		if (!l || link_down(l))
			*err = ls->remote ? -EXDEV : -ENOTCONN;
		return *err ? NULL : l;
	}
	if (sl->link && !link_down(sl->link))
		return sl->link;
	/* A link that went down is replaced here, outside its own callbacks. */
	close_link(sl);
	sl->pooled = false;
	if (may_take(ls, s, server) && (sl->link = pool_take(ls, s, server))) {
		sl->pooled = true;
		return sl->link;
	}
	bool child = own_child(ls, server);
	if (child && !child_take(ls->max_children)) {
		*err = -EUSERS;
		return NULL;
	}
	rc = link_open(ls->base, catalog_server_config(ls->cat, server), s->client_caps, ls->ops,
		       sl, &sl->link);
	if (rc) {
		sl->link = NULL;
		*err = rc;
		if (child)
			child_put();
	} else if (child) {
		sl->child = true;
	}
	return sl->link;
}

struct link *links_current(const struct links *ls, struct session *s, size_t server)
{
	struct link *l = !links_shared(ls, server) ? s->links[server].link
			 : ls->remote ? NULL : catalog_shared_link(ls->cat, server);

	return l && !link_down(l) ? l : NULL;
}

void links_close_session(const struct links *ls, struct session *s)
{
	for (size_t i = 0; i < s->nlinks; i++) {
		if (s->links[i].link && !s->links[i].child && poolable(ls, s, i) &&
		    pool_put(ls, s, i)) {
			s->links[i].link = NULL;
			continue;
		}
		close_link(&s->links[i]);
	}
}
