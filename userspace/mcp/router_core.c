/* router_core: what every loop's sessions share (workers: N), run on the first loop (the
 * catalogue, its shared stdio children, the readiness), and the life of each loop's half. */
#include "mcp/router.h"
#include "mcp/router_int.h"

#include <errno.h>
#include <stdlib.h>

#include "base/alloc.h"
#include "base/config.h"
#include "base/log.h"
#include "govern/gate.h"
#include "mcp/catalog.h"
#include "mcp/jsonrpc.h"
#include "mcp/reply.h"
#include "mcp/session.h"

/* --- readiness and list_changed ---------------------------------------------------------- */

static void send_list_changed(void *arg, struct session *s)
{
	if (s->stream)
		(void)stream_event(s->stream, arg);  /* a notification: nothing waits on it */
}

static void become_ready(struct router_core *rc, const char *why)
{
	void (*fn)(void *) = rc->when_ready;

	if (atomic_load(&rc->ready))
		return;
	atomic_store(&rc->ready, true);
	if (rc->startup)
		event_del(rc->startup);
	log_info("serving: %s", why);
	rc->when_ready = NULL;
	if (fn)
		fn(rc->when_ready_arg);
}

static void on_server_ready(void *arg, size_t server)
{
	struct router_core *rc = arg;

	if (catalog_all_ready(rc->cat))
		become_ready(rc, "every upstream is ready");
}

static void on_startup_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct router_core *rc = arg;

	for (size_t i = 0; i < catalog_nservers(rc->cat); i++)
		if (!catalog_server_ready(rc->cat, i))
			log_warn("upstream %s is not ready after %d ms: serving without it; it joins "
				 "when it comes up", catalog_server_config(rc->cat, i)->name,
				 rc->cfg->startup_timeout_ms);
	become_ready(rc, "start-up wait is over");
}

bool router_ready(const struct router *r) { return atomic_load(&r->core->ready); }

void router_when_ready(struct router *r, void (*fn)(void *arg), void *arg)
{
	struct router_core *rc = r->core;

	if (atomic_load(&rc->ready)) {
		fn(arg);
		return;
	}
	rc->when_ready = fn;
	rc->when_ready_arg = arg;
}

static const char *const list_changed_method[CAT_NKINDS] = {
	"notifications/tools/list_changed", "notifications/resources/list_changed",
	"notifications/resources/list_changed", "notifications/prompts/list_changed"
};

/* This loop's sessions hear of the kinds that changed. */
static void tell_sessions(struct router *r, unsigned kinds)
{
	for (int k = 0; k < CAT_NKINDS; k++) {
		if (!(kinds & (1u << k)) || (k == CAT_TEMPLATES && (kinds & (1u << CAT_RESOURCES))))
			continue;       /* one resources/list_changed for both */
		cJSON *n = jsonrpc_notification(list_changed_method[k], NULL);
		session_foreach(r->sessions, send_list_changed, n);
		cJSON_Delete(n);
	}
}

static void on_changed(evutil_socket_t fd, short what, void *arg)
{
	struct router *r = arg;

	tell_sessions(r, atomic_exchange(&r->changed_kinds, 0));
}

/* On the core's loop: the gate recompiles, then every loop's sessions are told, each on its
 * own loop. */
static void lists_changed(struct router_core *rc, enum catalog_kind kind)
{
	gate_catalog_changed(rc->gate, rc->cat);
	tell_sessions(rc->first, 1u << kind);
	pthread_mutex_lock(&rc->mu);
	for (struct router *r = rc->others; r; r = r->next) {
		atomic_fetch_or(&r->changed_kinds, 1u << kind);
		event_active(r->changed, EV_TIMEOUT, 0);
	}
	pthread_mutex_unlock(&rc->mu);
}

static void on_catalog_change(void *arg, enum catalog_kind kind)
{
	lists_changed(arg, kind);
}

/* The shared links serve the first loop's sessions only (links.remote). */
static void on_shared_request(void *arg, struct link *l, cJSON *msg, enum obj_type *ctx)
{
	relay_shared_request(&((struct router_core *)arg)->first->relay, l, msg, ctx);
}

static void on_shared_notification(void *arg, struct link *l, cJSON *msg, enum obj_type *ctx)
{
	relay_shared_notification(&((struct router_core *)arg)->first->relay, l, msg, ctx);
}

/* --- life ------------------------------------------------------------------------------------- */

static void half_free(struct router *r);

/* A half on base, of core rc. */
static int half_new(struct router_core *rc, struct event_base *base, struct router **out)
{
	struct router *r = xcalloc(1, sizeof(*r));
	const struct config *cfg = rc->cfg;
	int rc2;

	r->core = rc;
	r->base = base;
	r->cfg = cfg;
	r->gate = rc->gate;
	r->cat = rc->cat;
	rc2 = session_table_new(base, cfg->nupstreams, cfg->max_sessions, cfg->session_idle_ms,
				&r->relay, router_on_expire, r, &r->sessions);
	if (rc2)
		goto fail;
	session_table_set_key_cap(r->sessions, cfg->max_sessions_per_key);
	session_table_share_counts(r->sessions, rc->counts);   /* the caps are the process's */
	pthread_mutex_lock(&rc->mu);
	r->loop = rc->nloops++;
	pthread_mutex_unlock(&rc->mu);
	if (r->loop >= SESSION_LOOPS_MAX) {
		rc2 = -ENOSPC;
		goto fail;
	}
	session_table_set_loop(r->sessions, r->loop);
	r->reap = event_new(base, -1, 0, router_on_reap, r);
	r->changed = event_new(base, -1, 0, on_changed, r);
	if (!r->reap || !r->changed) {
		rc2 = -ENOMEM;
		goto fail;
	}
	r->links = (struct links){ base, r->cat, &relay_link_ops, cfg->max_stdio_children,
				   links_pool_new(base), base != rc->base };
	r->relay = (struct relay){ r->cat, r->sessions, &r->links };
	r->env = (struct call_env){ r->gate, r->cat, &r->links, cfg->max_pending_per_session };
	*out = r;
	return 0;
fail:
	half_free(r);
	return rc2;
}

static void end_each(void *arg, struct session *s)
{
	router_teardown(arg, s);
}

static void half_free(struct router *r)
{
	if (!r)
		return;
	if (r->sessions)
		session_foreach(r->sessions, end_each, r);
	if (r->reap)
		event_free(r->reap);
	if (r->changed)
		event_free(r->changed);
	session_table_free(r->sessions);
	links_pool_free(r->links.pool);
	call_spares_drop();
	free(r);
}

static void core_free(struct router_core *rc)
{
	if (!rc)
		return;
	if (rc->startup)
		event_free(rc->startup);
	catalog_free(rc->cat);
	session_counts_free(rc->counts);
	pthread_mutex_destroy(&rc->mu);
	free(rc);
}

int router_new(struct event_base *base, const struct config *cfg, struct gate *gate,
	       struct router **out)
{
	struct router_core *rc = xcalloc(1, sizeof(*rc));
	struct catalog_hooks hooks;
	int err;

	rc->base = base;
	rc->cfg = cfg;
	rc->gate = gate;
	pthread_mutex_init(&rc->mu, NULL);
	if (!(rc->counts = session_counts_new())) {
		err = -ENOMEM;
		goto fail;
	}
	hooks = (struct catalog_hooks){ on_catalog_change, on_server_ready, on_shared_request,
					 on_shared_notification, rc };
	err = catalog_new(base, cfg, &hooks, &rc->cat);
	if (err)
		goto fail;
	err = half_new(rc, base, &rc->first);
	if (err)
		goto fail;
	gate_catalog_changed(gate, rc->cat);
	if (catalog_all_ready(rc->cat)) {
		atomic_store(&rc->ready, true);  /* no upstreams: nothing to wait for */
	} else {
		struct timeval tv = { cfg->startup_timeout_ms / 1000,
				      (cfg->startup_timeout_ms % 1000) * 1000 };
		rc->startup = evtimer_new(base, on_startup_deadline, rc);
		if (!rc->startup || evtimer_add(rc->startup, &tv)) {
			err = -ENOMEM;
			goto fail;
		}
	}
	*out = rc->first;
	return 0;
fail:
	half_free(rc->first);
	core_free(rc);
	return err;
}

int router_new_loop(struct router *first, struct event_base *base, struct router **out)
{
	struct router_core *rc = first->core;
	struct router *r;
	int err = half_new(rc, base, &r);

	if (err)
		return err;
	pthread_mutex_lock(&rc->mu);
	r->next = rc->others;
	rc->others = r;
	pthread_mutex_unlock(&rc->mu);
	*out = r;
	return 0;
}

void router_free(struct router *r)
{
	struct router_core *rc;

	if (!r)
		return;
	rc = r->core;
	if (r != rc->first) {
		pthread_mutex_lock(&rc->mu);
		for (struct router **pp = &rc->others; *pp; pp = &(*pp)->next)
			if (*pp == r) {
				*pp = r->next;
				break;
			}
		pthread_mutex_unlock(&rc->mu);
		half_free(r);
		return;
	}
	half_free(r);
	core_free(rc);
}

struct catalog *router_catalog(struct router *r) { return r->cat; }
struct event_base *router_event_base(struct router *r) { return r->base; }
struct gate *router_gate(struct router *r) { return r->gate; }
unsigned router_loop(const struct router *r) { return r->loop; }

void router_lists_changed(struct router *r, int kind)
{
	lists_changed(r->core, (enum catalog_kind)kind);
}
