/* gate: key → permission → rate → budget, for every call. */
#include "govern/gate.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>

#include "base/alloc.h"
#include "base/epoch.h"
#include "base/clock.h"
#include "base/json_get.h"
#include "base/path.h"
#include "govern/budget.h"
#include "govern/fleet.h"
#include "govern/gate_int.h"
#include "govern/gate_guard.h"
#include "govern/oauth.h"
#include "mcp/catalog.h"
#include "base/config.h"
#include "base/jsonfmt.h"
#include "base/log.h"
#include "govern/policy.h"
#include "govern/ratelimit.h"
#include "govern/refusal.h"
#include "govern/schema.h"
#include "store/store.h"

#define SWEEP_EVERY_S 600      /* how often idle budget counters are looked for */

static int load_key(void *arg, const struct store_key *k)
{
	struct gate *g = arg;
	struct key_record r = { 0 };

	snprintf(r.id, sizeof(r.id), "%s", k->id);
	snprintf(r.name, sizeof(r.name), "%s", k->name ? k->name : "");
	snprintf(r.team, sizeof(r.team), "%s", k->team ? k->team : "");
	snprintf(r.policy, sizeof(r.policy), "%s", k->policy ? k->policy : "");
	snprintf(r.workloads, sizeof(r.workloads), "%s", k->workloads ? k->workloads : "");
	memcpy(r.hash, k->hash, sizeof(r.hash));
	r.created = k->created;
	r.expires = k->expires;
	r.disabled = k->disabled;
	int rc = keys_add(rules(g)->ks, &r);
	if (rc == -EEXIST)
		log_warn("key %s from the store is also in the config: the config's wins", k->id);
	else if (rc)
		log_warn("key %s from the store not loaded: %s", k->id, strerror(-rc));
	return 0;
}

static int load_team(void *arg, const char *name, const char *policy)
{
	struct gate *g = arg;
	int rc;

	if (keys_team_policy(rules(g)->ks, name)) {
		log_warn("team %s from the store is also in the config: the config's wins", name);
		return 0;
	}
	if ((rc = keys_team_set(rules(g)->ks, name, policy)))
		log_warn("team %s from the store not loaded: %s", name, strerror(-rc));
	return rc == -ENOMEM ? rc : 0;
}

static int load_spend(void *arg, const struct store_spend *row)
{
	return budget_load_spend(arg, row, clock_real_s());
}

/* Budget counters that hold nothing any more (removed keys, ended periods) go. */
static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
	struct gate *g = arg;
	size_t n = budget_sweep(g->budget, clock_real_s());

	if (n)
		log_debug("budget: %zu idle counter%s forgotten", n, n == 1 ? "" : "s");
}

static void gate_cat_free(void *arg)
{
	struct gate_cat *cv = arg;

	if (!cv)
		return;
	policy_cache_free(cv->pc);
	free(cv->entries);
	free(cv->tool_cost);
	free(cv);
}

/* Publish cv (NULL: no catalogue); the one replaced goes once no loop can be reading it. The
 * rules it borrowed from outlive it: a governance reload replaces them in the same turn of
 * this loop, which the epoch waits for too. */
static void cat_set(struct gate *g, struct gate_cat *cv)
{
	struct gate_cat *old = atomic_exchange(&g->cv, cv);

	if (old)
		epoch_defer(gate_cat_free, old);
}

static void rules_clear(struct gate_rules *r)
{
	cJSON_Delete(r->tool_lock);
	oauth_config_free(r->oauth);
	budget_config_free(r->bc);
	ratelimit_config_free(r->rlc);
	keys_free(r->ks);
	policy_set_free(r->ps);
}

void gate_rules_free(struct gate_rules *r)
{
	if (!r)
		return;
	rules_clear(r);
	free(r);
}

static bool rules_policy_exists(void *arg, const char *name)
{
	return policy_set_has(((struct gate_rules *)arg)->ps, name);
}

static bool rules_team_exists(void *arg, const char *name)
{
	return keys_team_policy(((struct gate_rules *)arg)->ks, name) != NULL;
}

int gate_rules_parse(const struct config *cfg, struct gate_rules **out,
		     struct config_errors *errs)
{
	struct gate_rules *r;
	int rc, x;

	*out = NULL;
	/* Its keys and teams went to a gate (config_shrink): parsed now, it would have none. */
	if (cfg->shrunk)
		return config_fail(errs, "keys", "this configuration's keys and teams were handed "
				   "to its gate and are no longer in its document");
	r = xcalloc(1, sizeof(*r));
	rc = policy_set_parse(cfg->raw, &r->ps, errs);
	r->auth_required = cfg->auth_required;
	if ((x = keys_new(NULL, &r->ks)))
		rc = x;
	else if (r->ps && (x = keys_config_parse(cfg->raw, r->ps, r->ks, errs)))
		rc = rc ? rc : x;
	if ((x = ratelimit_config_parse(cfg->raw, &r->rlc, errs)))
		rc = rc ? rc : x;
	if ((x = budget_config_parse(cfg->raw, &r->bc, errs)))
		rc = rc ? rc : x;
	if ((x = toolpin_config_parse(cfg->raw, &r->tpc, errs)))
		rc = rc ? rc : x;
	if (r->ps && r->ks &&
	    (x = oauth_config_parse(cfg->raw, rules_policy_exists, rules_team_exists, r,
				    &r->oauth, errs)))
		rc = rc ? rc : x;
	if (rc == 0 && cfg->tool_lock)
		r->tool_lock = cJSON_Duplicate(cfg->tool_lock, 1);
	if (rc == 0)
		keys_mark_config(r->ks);   /* a reload replaces these and keeps the admin API's */
	if (rc) {
		gate_rules_free(r);
		return rc;
	}
	*out = r;
	return 0;
}

int gate_check(const struct config *cfg, struct gate_rules **rules, struct config_errors *errs)
{
	struct store_options so = { 0 };
	struct gate_rules *r = NULL;
	int rc = gate_rules_parse(cfg, &r, errs);
	int x = store_options_parse(cfg->raw, cfg->state_dir, &so, errs);
	struct fleet_config *fc = NULL;

	store_options_clear(&so);
	rc = rc ? rc : x;
	x = fleet_config_parse(cfg->raw, &fc, errs);
	fleet_config_free(fc);
	rc = rc ? rc : x;
	if (rc || !rules) {
		gate_rules_free(r);
		r = NULL;
	}
	if (rules)
		*rules = r;
	return rc;
}

int gate_new(struct event_base *base, const struct config *cfg, struct gate **out,
	     struct config_errors *errs)
{
	return gate_open(base, cfg, NULL, out, errs);
}

int gate_open(struct event_base *base, const struct config *cfg, struct gate_rules *r,
	      struct gate **out, struct config_errors *errs)
{
	struct store_options so = { 0 };
	struct gate *g;
	int rc = r ? 0 : gate_rules_parse(cfg, &r, errs), x;

	struct fleet_config *fc = NULL;

	if ((x = store_options_parse(cfg->raw, cfg->state_dir, &so, errs)))
		rc = rc ? rc : x;
	if ((x = fleet_config_parse(cfg->raw, &fc, errs)))
		rc = rc ? rc : x;
	if (rc) {
		gate_rules_free(r);
		store_options_clear(&so);
		fleet_config_free(fc);
		return rc;
	}
	g = xcalloc(1, sizeof(*g));
	atomic_init(&g->r, r);
	g->fc = fc;
	if (!base) {
		store_options_clear(&so);
		*out = g;
		return 0;
	}
	if ((rc = ratelimit_new(0, &g->rl)))
		goto fail;
	rc = path_make_parents(so.path);
	if (rc == 0)
		rc = store_open(&so, base, &g->store);
	if (rc == -EPROTO) {
		/* Never repaired or replaced here: spend and keys made at run time live only there. */
		config_fail(errs, "store.path", "the store %s is not a SQLite database or is corrupt; "
			    "it is left untouched for inspection: restore a backup, or move it aside "
			    "to start with an empty store (docs/security.md)", so.path);
		goto fail;
	}
	if (rc) {
		config_fail(errs, "store.path", "cannot open the store %s: %s", so.path, strerror(-rc));
		goto fail;
	}
	if ((rc = budget_new(g->store, &g->budget)))
		goto fail;
	if (g->fc && (rc = fleet_new(base, g->fc, g->store, &g->fleet)))
		goto fail;
	budget_set_config(g->budget, rules(g)->bc);
	g->sweep = event_new(base, -1, EV_PERSIST, on_sweep, g);
	if (!g->sweep || event_add(g->sweep, &(struct timeval){ SWEEP_EVERY_S, 0 })) {
		rc = -ENOMEM;
		goto fail;
	}
	if (!(g->guard = gate_guard_new(g->store, cfg, &rules(g)->tpc))) {
		rc = -ENOMEM;
		goto fail;
	}
	/* Start-up only: these read SQLite synchronously before the loop serves anyone. */
	if ((rc = store_load_teams(g->store, load_team, g)) ||
	    (rc = store_load_keys(g->store, load_key, g)) ||
	    (rc = store_load_spend(g->store, load_spend, g->budget)) ||
	    (rc = gate_guard_load(g->guard, rules(g)->tool_lock))) {
		config_fail(errs, "store.path", "cannot load the store %s: %s", so.path,
			    rc == -EPROTO ? "it is corrupt (left untouched for inspection)"
			    : strerror(-rc));
		goto fail;
	}
	g->store_opt = so;              /* moved: the gate frees it */
	so = (struct store_options){ 0 };
	const cJSON *counters = json_get(cfg->raw, "counters");
	if (counters && !(g->counters = cJSON_Duplicate(counters, 1))) {
		rc = -ENOMEM;
		goto fail;
	}
	*out = g;
	return 0;
fail:
	store_options_clear(&so);
	gate_free(g);
	return rc;
}

/* Rules leaving the gate for a reload that may go back to them: what the config defines, with
 * no catalogue (its entries go with the gate). */
static struct gate_rules *rules_back(const struct gate_rules *r)
{
	struct gate_rules *b = xmalloc(sizeof(*b));

	*b = *r;
	if (b->ks)
		keys_keep_config(b->ks);
	return b;
}

struct gate_rules *gate_free_keep_rules(struct gate *g)
{
	struct gate_rules *r;

	if (!g)
		return NULL;
	r = rules_back(rules(g));
	free(atomic_exchange(&g->r, NULL));     /* its parts are r's now */
	gate_free(g);
	return r;
}

void gate_free(struct gate *g)
{
	if (!g)
		return;
	if (g->sweep)
		event_free(g->sweep);
	budget_free(g->budget);
	gate_guard_free(g->guard);
	store_close(g->store);  /* drains: every queued charge is committed first */
	store_options_clear(&g->store_opt);
	cJSON_Delete(g->counters);
	fleet_free(g->fleet);   /* after: a charge kept for replay may be in the store's queue */
	fleet_config_free(g->fc);
	ratelimit_free(g->rl);
	gate_cat_free(atomic_load(&g->cv));   /* before the rules: its views borrow them */
	gate_rules_free(atomic_load(&g->r));
	free(g);
}

static void rules_free_cb(void *arg)
{
	gate_rules_free(arg);
}

/* prev not NULL: the rules replaced go there (rules_back) instead of being freed. */
static void swap_rules(struct gate *g, struct gate_rules *r, struct gate_rules **prev)
{
	struct gate_rules *old = rules(g);

	/* What the admin API added stays, and what guessing peers have earned. */
	keys_carry_runtime(r->ks, old->ks);
	keys_take_peers(r->ks, old->ks);
	/* Swap. Buckets, spend and reservations in flight live on: they are not config. */
	atomic_store_explicit(&g->r, r, memory_order_release);
	budget_set_config(g->budget, r->bc);
	if (g->guard)
		gate_guard_reconfigure(g->guard, &r->tpc, r->tool_lock);
	struct gate_cat *cv = catview(g);
	if (cv)
		gate_catalog_changed(g, cv->cat);  /* new views and costs for the same catalogue */
	if (prev) {
		/* Handed back to a full reload, which changes them (keys_keep_config): with
		 * workers: N, only once the reload barrier has stopped the other loops. */
		*prev = rules_back(old);
		free(old);
	} else {
		epoch_defer(rules_free_cb, old);        /* other loops may be reading them */
	}
}

void gate_reload_rules(struct gate *g, struct gate_rules *r)
{
	swap_rules(g, r, NULL);
}

static bool same_section(const cJSON *a, const cJSON *b)
{
	return (!a && !b) || (a && b && cJSON_Compare(a, b, 1));
}

bool gate_keeps_store(const struct gate *g, const struct config *cfg)
{
	struct store_options so;
	bool same;

	if (!g->store || store_options_parse(cfg->raw, cfg->state_dir, &so, NULL))
		return false;
	same = !strcmp(so.path, g->store_opt.path) &&
	       so.fsync_interval_ms == g->store_opt.fsync_interval_ms &&
	       same_section(json_get(cfg->raw, "counters"), g->counters);
	store_options_clear(&so);
	return same;
}

int gate_reload_all(struct gate *g, const struct config *cfg, struct gate_rules *r,
		    struct gate_rules **prev)
{
	if (g->guard)
		gate_guard_set_upstreams(g->guard, cfg);
	if (prev)
		*prev = NULL;
	/* The policy views indexed the old router's catalogue, which is gone: the new router
	 * hands its own over (gate_catalog_changed) once built. */
	cat_set(g, NULL);
	if (r)
		swap_rules(g, r, prev);
	return 0;
}

int gate_reload(struct gate *g, const struct config *cfg, struct config_errors *errs)
{
	struct gate_rules *r;
	int rc = gate_rules_parse(cfg, &r, errs);

	if (rc == 0)
		gate_reload_rules(g, r);
	return rc;
}

bool gate_auth_required(const struct gate *g) { return rules(g)->auth_required; }
struct keystore *gate_keystore(struct gate *g) { return rules(g)->ks; }
struct store *gate_store(struct gate *g) { return g->store; }
struct budget *gate_budget(struct gate *g) { return g->budget; }
bool gate_config_key(const struct gate *g, const char *id)
{
	const struct keystore *ks = rules(g)->ks;

	return ks && keys_from_config(ks, id);
}

bool gate_config_team(const struct gate *g, const char *name)
{
	const struct keystore *ks = rules(g)->ks;

	return ks && keys_team_from_config(ks, name);
}

bool gate_policy_exists(const struct gate *g, const char *name)
{
	const struct policy_set *ps = rules(g)->ps;

	return ps && policy_set_has(ps, name);
}

cJSON *gate_logged_copy(const struct gate *g, const struct key_identity *who, const cJSON *v)
{
	const struct policy_set *ps = rules(g)->ps;
	bool opted_in;

	return who && ps ? policy_logged_copy(ps, who->policy, who->team_policy, v, &opted_in)
			 : NULL;
}

bool gate_logs_values(const struct gate *g, const struct key_identity *who)
{
	const struct policy_set *ps = rules(g)->ps;
	bool opted_in = false;

	if (who && ps)
		policy_logged_copy(ps, who->policy, who->team_policy, NULL, &opted_in);
	return opted_in;
}

bool gate_workload_identity(struct gate *g, const char *cgroup_path, struct key_identity *who)
{
	return keys_workload_identity(rules(g)->ks, cgroup_path, who) == 0;
}

const struct oauth_config *gate_oauth(const struct gate *g) { return rules(g)->oauth; }

bool gate_has_workloads(const struct gate *g) { return keys_workload_count(rules(g)->ks) > 0; }

enum gate_auth gate_authenticate(struct gate *g, const char *presented, const char *peer,
				 struct keys_memo *memo, struct key_identity *who, const char **reason,
				 int64_t *retry_after_ms)
{
	int64_t now = (int64_t)clock_loop_ms();
	struct keystore *ks = rules(g)->ks;
	enum keys_auth r;

	memset(who, 0, sizeof(*who));
	*retry_after_ms = 0;
	if (peer && keys_peer_blocked(ks, peer, now, retry_after_ms)) {
		*reason = "blocked";
		return GATE_AUTH_BLOCKED;
	}
	if (!presented || !*presented) {
		*reason = "missing";
		return GATE_AUTH_MISSING;
	}
	r = keys_authenticate_memo(ks, memo, presented, strlen(presented), clock_real_s(),
				   who);
	*reason = keys_auth_name(r);
	if (r == KEYS_AUTH_OK) {
		if (peer)
			keys_peer_success(ks, peer, now);
		return GATE_AUTH_OK;
	}
	if (peer)
		keys_peer_failure(ks, peer, now);
	return GATE_AUTH_REFUSED;
}

static enum policy_kind policy_kind_of(int kind)
{
	return kind == CAT_TOOLS ? POLICY_TOOL : kind == CAT_PROMPTS ? POLICY_PROMPT : POLICY_RESOURCE;
}

void gate_catalog_changed(struct gate *g, const struct catalog *c)
{
	const struct gate_rules *r = rules(g);
	const struct catalog_list *l[CAT_NKINDS];
	struct gate_cat *cv = xcalloc(1, sizeof(*cv));
	size_t n = 0, k;

	cv->cat = c;
	for (k = 0; k < CAT_NKINDS; k++) {
		l[k] = catalog_list(c, k);
		cv->generation[k] = l[k]->generation;
		n += l[k]->n;
	}
	cv->entries = calloc(n ? n : 1, sizeof(*cv->entries));
	cv->tool_cost = calloc(l[CAT_TOOLS]->n + 1, sizeof(*cv->tool_cost));
	if (!cv->entries || !cv->tool_cost || policy_cache_new(r->ps, &cv->pc)) {
		/* Keep the previous one: a call to an entry it does not index is judged by name. */
		log_error("out of memory recompiling policies; the previous catalogue stays in force");
		gate_cat_free(cv);
		return;
	}
	n = 0;
	for (k = 0; k < CAT_NKINDS; k++) {
		cv->offset[k] = n;
		for (size_t i = 0; i < l[k]->n; i++, n++) {
			const struct catalog_entry *e = &l[k]->e[i];
			const char *server = catalog_server_config(c, e->server)->name;
			cv->entries[n].kind = policy_kind_of((int)k);
			cv->entries[n].server = server;
			cv->entries[n].name = e->name;
			cv->entries[n].annotations = k == CAT_TOOLS
				? json_get(e->json, "annotations") : NULL;
			if (k == CAT_TOOLS)
				cv->tool_cost[i] = budget_cost(r->bc, server, e->name);
		}
	}
	cv->nentries = n;
	policy_cache_set_catalogue(cv->pc, cv->entries, n);
	cat_set(g, cv);
	if (g->guard)
		gate_guard_judge(g->guard, c, r->ps);
}

static const struct policy_view *view_for(const struct gate_cat *cv,
					 const struct key_identity *who)
{
	const struct policy_view *v = NULL;

	if (policy_cache_get(cv->pc, who->policy, who->team_policy, &v))
		return NULL;
	return v;
}

/* An entry no compiled view indexes (a session's own, mcp/session_view.h, or one of a list
 * newer than the views): its permission is evaluated by name, with its annotations, like the
 * compiled ones. server: its upstream's name. */
static int by_name_allowed(const struct gate *g, const struct key_identity *who,
			   const struct catalog_entry *e, const char *server, const char **why)
{
	struct policy_entry pe = {
		policy_kind_of((int)e->kind), server, e->name,
		e->kind == CAT_TOOLS ? json_get(e->json, "annotations") : NULL
	};

	return policy_check(rules(g)->ps, who->policy, who->team_policy, &pe, why);
}

bool gate_visible(struct gate *g, const struct key_identity *who, const struct catalog_entry *e)
{
	const struct gate_cat *cv = catview(g);
	const struct policy_view *v;

	if (gate_guard_withheld(g->guard, rules(g)->ps, who, e))
		return false;
	if (!who)
		return true;
	if (!cv)
		return false;           /* no catalogue: nothing to judge its server by */
	if (!entry_indexed(cv, e))
		return by_name_allowed(g, who, e, catalog_server_config(cv->cat, e->server)->name,
				       NULL) == 0;
	v = view_for(cv, who);
	return v && policy_view_allows(v, cv->offset[e->kind] + e->index, NULL);
}

static size_t next_allowed(struct gate *g, const struct key_identity *who, int kind,
			   const struct catalog_list *l, size_t from);

size_t gate_next_visible(struct gate *g, const struct key_identity *who, int kind,
			 const struct catalog_list *l, size_t from)
{
	size_t i = next_allowed(g, who, kind, l, from);

	/* withheld tools (govern/gate_guard.h) are few: skipped one by one */
	while (kind == CAT_TOOLS && i < l->n &&
	       gate_guard_withheld(g->guard, rules(g)->ps, who, &l->e[i]))
		i = next_allowed(g, who, kind, l, i + 1);
	return i;
}

static size_t next_allowed(struct gate *g, const struct key_identity *who, int kind,
			   const struct catalog_list *l, size_t from)
{
	const struct gate_cat *cv = catview(g);
	size_t n = l->n;
	const struct policy_view *v;

	if (!who || from >= n)
		return from < n ? from : n;
	if (!cv || cv->generation[kind] != l->generation) {
		/* a list the views were not compiled for: entry by entry, by name */
		while (from < n && !(cv && by_name_allowed(g, who, &l->e[from],
				      catalog_server_config(cv->cat, l->e[from].server)->name,
				      NULL) == 0))
			from++;
		return from;
	}
	v = view_for(cv, who);
	if (!v)
		return n;
	size_t next = policy_view_next(v, cv->offset[kind] + from);
	return next < cv->offset[kind] + n ? next - cv->offset[kind] : n;
}

cJSON *gate_refusal(int code, cJSON *data, const char *fmt, ...)
{
	va_list ap;
	cJSON *e = cJSON_CreateObject();

	cJSON_AddNumberToObject(e, "code", code);
	va_start(ap, fmt);
	jsonfmt_add_v(e, "message", fmt, ap);
	va_end(ap);
	if (data) {
		/* docs/policy.md: agents tell refusals apart by data.type as well as by code. */
		cJSON_AddStringToObject(data, "type", refusal_name(code));
		cJSON_AddItemToObject(e, "data", data);
	}
	return e;
}

/* A refusal the guard decided, in the gate's shape. */
static cJSON *guard_refusal(struct gate_guard_refusal *r)
{
	return gate_refusal(r->code, r->data, "%s", r->message);
}

/* charge_failures of the upstream called `server` (resources outside the lists have no entry) */
bool gate_charges_failures(const struct gate *g, const struct catalog_entry *e, const char *server)
{
	const struct gate_cat *cv = catview(g);

	if (!cv)
		return false;  /* no catalogue yet: no upstream says so */
	if (e)
		return catalog_server_config(cv->cat, e->server)->charge_failures;
	for (size_t i = 0; i < catalog_nservers(cv->cat); i++)
		if (!strcmp(catalog_server_config(cv->cat, i)->name, server))
			return catalog_server_config(cv->cat, i)->charge_failures;
	return false;
}

/* 1. May who call it at all? */
static int admit_permission(struct gate *g, const struct gate_request *rq, cJSON **error,
			    char *reason, size_t reason_len)
{
	const char *why = NULL;

	if (rq->e) {
		const struct gate_cat *cv = catview(g);
		const struct policy_view *v = entry_indexed(cv, rq->e) ? view_for(cv, rq->who) : NULL;
		bool allowed = !entry_indexed(cv, rq->e)
			     ? by_name_allowed(g, rq->who, rq->e, rq->server, &why) == 0
			     : v && policy_view_allows(v, cv->offset[rq->e->kind] + rq->e->index, &why);
		if (!allowed) {
			cJSON *d = cJSON_CreateObject();
			cJSON_AddStringToObject(d, "rule", why ? why : "no policy");
			cJSON_AddStringToObject(d, rq->kind == CAT_TOOLS ? "tool" : rq->kind == CAT_PROMPTS
						? "prompt" : "resource", rq->e->exposed);
			snprintf(reason, reason_len, "not permitted: %s", why ? why : "no policy");
			*error = gate_refusal(REFUSAL_NOT_PERMITTED, d, "Not permitted: %s %s is refused by %s",
					 rq->kind == CAT_TOOLS ? "tool" : rq->kind == CAT_PROMPTS ? "prompt" : "resource",
					 rq->e->exposed, why ? why : "the key's policy");
			return -EACCES;
		}
	} else {
		struct policy_entry pe = { policy_kind_of(rq->kind), rq->server, rq->name, NULL };
		if (policy_check(rules(g)->ps, rq->who->policy, rq->who->team_policy, &pe, &why)) {
			cJSON *d = cJSON_CreateObject();
			cJSON_AddStringToObject(d, "rule", why ? why : "no policy");
			cJSON_AddStringToObject(d, "resource", rq->name);
			snprintf(reason, reason_len, "not permitted: %s", why ? why : "no policy");
			*error = gate_refusal(REFUSAL_NOT_PERMITTED, d, "Not permitted: resource %s is refused by %s",
					 rq->name, why ? why : "the key's policy");
			return -EACCES;
		}
	}
	return 0;
}

int64_t gate_call_cost(const struct gate *g, const struct gate_request *rq)
{
	/* tools' costs are resolved once per catalogue; prompts and resources (read by URI,
	 * often outside the lists) and a session's own tools are matched per call */
	const struct budget_config *bc = rules(g)->bc;
	const struct gate_cat *cv;

	if (rq->kind != CAT_TOOLS)
		return budget_cost(bc, rq->server, rq->name);
	if (!rq->e)
		return 0;
	return entry_indexed(cv = catview(g), rq->e) ? cv->tool_cost[rq->e->index]
						   : budget_cost(bc, rq->server, rq->name);
}

cJSON *gate_budget_error(const struct budget_refusal *br, char *reason, size_t reason_len)
{
	/* Money as decimal strings (docs/budgets.md); reset is RFC 3339, or null when the call
	 * costs more than the whole limit and can never fit. */
	char spent[32], reserved[32], limit[32], c[32], reset[40] = "never";
	budget_format_money(br->spent, spent, sizeof(spent));
	budget_format_money(br->reserved, reserved, sizeof(reserved));
	budget_format_money(br->limit, limit, sizeof(limit));
	budget_format_money(br->cost, c, sizeof(c));
	if (br->resets_at)
		budget_rfc3339(br->resets_at, reset, sizeof(reset));
	cJSON *d = cJSON_CreateObject();
	cJSON_AddStringToObject(d, "budget", br->name);
	cJSON_AddStringToObject(d, "scope", br->scope);
	cJSON_AddStringToObject(d, "period", br->period);
	cJSON_AddStringToObject(d, "spent", spent);
	cJSON_AddStringToObject(d, "reserved", reserved);
	cJSON_AddStringToObject(d, "limit", limit);
	cJSON_AddStringToObject(d, "cost", c);
	if (br->resets_at)
		cJSON_AddStringToObject(d, "reset", reset);
	else
		cJSON_AddNullToObject(d, "reset");
	snprintf(reason, reason_len, "over budget %s", br->name);
	return gate_refusal(REFUSAL_OVER_BUDGET, d,
			    "Over budget: %s (%s, %s) has %s of %s spent and %s reserved; this "
			    "call costs %s; resets %s", br->name, br->scope, br->period, spent,
			    limit, reserved, c, reset);
}

/* 3. The cost reserved in every budget of the key and its team. */
static int admit_budget(struct gate *g, const struct gate_request *rq,
			struct gate_ticket **ticket, cJSON **error, char *reason, size_t reason_len)
{
	int64_t cost = gate_call_cost(g, rq);
	int rc;

	if (cost <= 0)
		return 0;
	struct budget_subject bs = { rq->who->id, rq->who->team, rq->who->policy };
	struct budget_refusal br;
	struct budget_resv *resv = NULL;
	rc = budget_reserve(g->budget, &bs, cost, clock_real_s(), &resv, &br);
	if (rc == -EDQUOT) {
		*error = gate_budget_error(&br, reason, reason_len);
		return -EDQUOT;
	}
	if (rc == -EIO) {
		int err = store_health(g->store);
		const char *what = err == -ENOSPC ? "the disk is full" : err == -EROFS
				 ? "the disk is read-only" : err == -EPERM
				 ? "the store's files are write-protected" : "writes to the disk fail";

		err = err ? err : -EIO;
		cJSON *d = cJSON_CreateObject();
		cJSON_AddStringToObject(d, "reason", strerror(-err));
		cJSON_AddStringToObject(d, "errno", strerrorname_np(-err));
		cJSON_AddNumberToObject(d, "retry_after_ms", 1000);
		snprintf(reason, reason_len, "store unavailable (%s)", strerrorname_np(-err));
		*error = gate_refusal(REFUSAL_STORE_UNAVAILABLE, d,
				 "Store unavailable: %s (%s), so the charge of this call could not be "
				 "recorded; calls with a budget are refused until it can write again",
				 what, strerror(-err));
		return rc;
	}
	if (rc)
		return rc;
	*ticket = xcalloc(1, sizeof(**ticket));
	(*ticket)->resv = resv;
	(*ticket)->cost = cost;
	(*ticket)->charge_failures = gate_charges_failures(g, rq->e, rq->server);
	return 0;
}

cJSON *gate_rate_error(const struct rate_refusal *rr, char *reason, size_t reason_len)
{
	cJSON *d = cJSON_CreateObject();
	cJSON_AddNumberToObject(d, "retry_after_ms", (double)rr->retry_after_ms);
	cJSON_AddStringToObject(d, "limit", ratelimit_level_name(rr->level));
	cJSON_AddNumberToObject(d, "requests", (double)rr->spec.requests);
	cJSON_AddStringToObject(d, "per", ratelimit_per_name(rr->spec.period_ns));
	snprintf(reason, reason_len, "rate limited (%s)", ratelimit_level_name(rr->level));
	return gate_refusal(REFUSAL_RATE_LIMITED, d,
			    "Rate limited: %s limit of %llu per %s reached; retry after %llu ms",
			    ratelimit_level_name(rr->level), (unsigned long long)rr->spec.requests,
			    ratelimit_per_name(rr->spec.period_ns),
			    (unsigned long long)rr->retry_after_ms);
}

/* 4. A token from each of the key's buckets. */
static int admit_rate(struct gate *g, const struct gate_request *rq, cJSON **error,
		      char *reason, size_t reason_len)
{
	struct rate_subject rs = { rq->who->id, rq->who->team, rq->who->policy };
	struct rate_refusal rr;
	int rrc = ratelimit_check_subject(g->rl, rules(g)->rlc, &rs, rq->server, rq->name,
					  clock_loop_ns(), &rr);
	if (rrc && rrc != -EAGAIN)
		return rrc;  /* not a refusal (a name too long to key a bucket): rr is unset */
	if (rrc) {
		*error = gate_rate_error(&rr, reason, reason_len);
		return -EAGAIN;
	}
	return 0;
}

int gate_admit(struct gate *g, const struct gate_request *rq, struct gate_ticket **ticket,
	       cJSON **error, char *reason, size_t reason_len)
{
	return gate_admit_async(g, rq, NULL, NULL, ticket, error, reason, reason_len);
}

int gate_admit_async(struct gate *g, const struct gate_request *rq, gate_admit_fn cb, void *arg,
		     struct gate_ticket **ticket, cJSON **error, char *reason, size_t reason_len)
{
	int rc;

	struct gate_guard_refusal gr;
	struct gate_guard_call gc = { rq->who, rq->e, rq->kind, rq->server, rq->name, rq->args };

	*ticket = NULL;
	*error = NULL;
	if (rq->who && (rc = admit_permission(g, rq, error, reason, reason_len)))
		return rc;
	/* 1b. a tool changed since its approval, under withhold */
	if ((rc = gate_guard_integrity(g->guard, rules(g)->ps, &gc, &gr, reason, reason_len))) {
		*error = guard_refusal(&gr);
		return rc;
	}
	/* 2. the arguments, with or without keys */
	if (rq->has_args && rq->e &&
	    (rc = gate_check_arguments(g, rq->e, rq->args, error, reason, reason_len)))
		return rc;
	if (!rq->who || !rq->work)
		return 0;
	/* 2b. the loop breaker: before anything is spent, so a loop costs no money and no token */
	if ((rc = gate_guard_loop(g->guard, rules(g)->ps, &gc, &gr, reason, reason_len))) {
		if (rc == -ELOOP)
			*error = guard_refusal(&gr);
		return rc;
	}
	/* Fleet-wide counters: budget and rate in one script in Redis (gate_fleet.c). */
	if (g->fleet)
		return gate_admit_fleet(g, rq, cb, arg, ticket, error, reason, reason_len);
	/* Rate last: a call refused for anything else uses up no quota; one refused by the
	 * rate limit keeps no money reserved. */
	if ((rc = admit_budget(g, rq, ticket, error, reason, reason_len)))
		return rc;
	if ((rc = admit_rate(g, rq, error, reason, reason_len))) {
		gate_settle(g, *ticket, false, NULL, NULL);
		*ticket = NULL;
	}
	return rc;
}

int gate_check_arguments(struct gate *g, const struct catalog_entry *e, const cJSON *args,
			 cJSON **error, char *reason, size_t reason_len)
{
	struct schema_error se;
	cJSON *d;
	int rc;

	*error = NULL;
	if (args && !cJSON_IsObject(args)) {
		d = cJSON_CreateObject();
		cJSON_AddStringToObject(d, "path", "$");
		cJSON_AddStringToObject(d, "keyword", "type");
		cJSON_AddStringToObject(d, "message", "arguments must be an object");
		snprintf(reason, reason_len, "invalid arguments");
		*error = gate_refusal(REFUSAL_INVALID_ARGUMENTS, d, "params.arguments must be an object");
		return -EINVAL;
	}
	const struct gate_cat *cv = catview(g);
	if (!e->schema || !cv || !catalog_server_config(cv->cat, e->server)->validate_args)
		return 0;
	cJSON *empty = args ? NULL : cJSON_CreateObject();
	rc = schema_validate(e->schema, args ? args : empty, &se);
	cJSON_Delete(empty);
	if (rc == 0)
		return 0;
	d = cJSON_CreateObject();
	cJSON_AddStringToObject(d, "path", se.path);
	cJSON_AddStringToObject(d, "keyword", se.keyword);
	cJSON_AddStringToObject(d, "message", se.message);
	snprintf(reason, reason_len, "invalid arguments");
	*error = gate_refusal(REFUSAL_INVALID_ARGUMENTS, d, "Invalid arguments for tool %s: %s: %s",
			 e->exposed, se.path, se.message);
	return -EINVAL;
}

int gate_settle(struct gate *g, struct gate_ticket *t, bool success,
		void (*cb)(void *arg, int err), void *arg)
{
	int rc = 1;

	if (!t)
		return 1;
	if (t->fr && (success || t->charge_failures))
		rc = fleet_commit(g->fleet, t->fr, t->cost, cb, arg);
	else if (t->fr)
		fleet_release(g->fleet, t->fr);
	else if (success || t->charge_failures)
		rc = budget_commit(g->budget, t->resv, cb, arg);
	else
		budget_release(g->budget, t->resv);
	alloc_cache_put(t);     /* one a call (base/alloc.h) */
	return rc;
}

int64_t gate_ticket_cost(const struct gate_ticket *t)
{
	return t ? t->cost : 0;
}

/* --- tool pins and circuits (govern/gate_guard.h) ------------------------------------------- */

cJSON *gate_tool_pins(struct gate *g)
{
	return gate_guard_pins(g->guard);
}

int gate_tool_approve(struct gate *g, const char *server, const char *tool, const char *by,
		      void (*cb)(void *arg, int err), void *arg)
{
	return gate_guard_approve(g->guard, rules(g)->ps, server, tool, by, cb, arg);
}

int gate_circuit_allow(struct gate *g, size_t server, bool *probe, int64_t *retry_ms)
{
	return gate_guard_circuit_allow(g->guard, server, probe, retry_ms);
}

void gate_circuit_result(struct gate *g, size_t server, bool failure, bool probe)
{
	gate_guard_circuit_result(g->guard, server, failure, probe);
}

void gate_circuit_abandon(struct gate *g, size_t server)
{
	gate_guard_circuit_abandon(g->guard, server);
}

const char *gate_circuit_state(const struct gate *g, size_t server)
{
	return gate_guard_circuit_state(g->guard, server);
}
