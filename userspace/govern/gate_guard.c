/* gate_guard: tool integrity, the loop breaker and the upstream circuits, as the gate applies
 * them. */
#include "govern/gate_guard.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/config.h"
#include "base/epoch.h"
#include "base/hmap.h"
#include "base/log.h"
#include "govern/circuit.h"
#include "govern/keys.h"
#include "govern/loop_guard.h"
#include "govern/policy.h"
#include "govern/refusal.h"
#include "govern/tool_digest.h"
#include "mcp/catalog.h"
#include "observe/audit.h"
#include "observe/metrics.h"

/* The catalogue's tools as judged once against their pins: made whole on the catalogue's
 * loop, published, and the one replaced freed once every loop has passed a turn (every loop
 * reads it on each call; base/epoch.h). */
struct judged {
	const struct catalog *cat;
	unsigned long generation;       /* of the tools list judged */
	bool pins_on;                   /* some tool_integrity is not off */
	enum tool_integrity mode;       /* tool_pins.mode when judged */
	size_t ntools;
	/* per tool: its digest and enum pin_state */
	char (*digest)[TOOL_DIGEST_HEX];
	unsigned char *state;
	struct hmap *by_name;           /* exposed name -> index + 1 (pins_on only) */
};

/* The upstreams' circuits by upstream index, replaced whole by a full reload (under the
 * guard's lock) and freed through the epochs: a loop reads a circuit's settings without the
 * lock (a circuit that is off costs none), and for its state takes the lock and loads the
 * array again. */
struct circuits {
	size_t n;
	struct circuit *c;
	char **names;                   /* their upstreams' names */
};

struct gate_guard {
	struct toolpin_config tpc;
	/* The catalogue's tools are judged on its loop; a session's own tool is judged as it is
	 * seen, on the session's loop (the pins have a lock of their own). */
	struct toolpins *pins;
	_Atomic(struct judged *) judged;  /* NULL: no catalogue */
	/* What every loop's calls count (workers: N): the loop breaker's entries and the
	 * circuits' states, one lock around each look and change. */
	pthread_mutex_t mu;
	struct loop_guard *loops;
	_Atomic(struct circuits *) circuits;    /* per upstream, config order */
};

static void note_lock(int changed)
{
	if (changed)
		log_info("tool pins: %d pin%s set from tool_pins.lockfile", changed,
			 changed == 1 ? "" : "s");
}

static struct circuits *circuits_new(size_t n)
{
	struct circuits *cs = xcalloc(1, sizeof(*cs));

	cs->n = n;
	cs->c = xcalloc(n + 1, sizeof(*cs->c));
	cs->names = xcalloc(n + 1, sizeof(*cs->names));
	return cs;
}

/* The array only: its circuits' rings were moved to the next or cleared when it was
 * replaced. */
static void circuits_free(void *arg)
{
	struct circuits *cs = arg;

	if (!cs)
		return;
	for (size_t i = 0; i < cs->n; i++)
		free(cs->names[i]);
	free(cs->names);
	free(cs->c);
	free(cs);
}

static struct circuits *circuits_of(const struct gate_guard *gd)
{
	return atomic_load_explicit(&((struct gate_guard *)gd)->circuits, memory_order_acquire);
}

struct gate_guard *gate_guard_new(struct store *st, const struct config *cfg,
				  const struct toolpin_config *tpc)
{
	struct gate_guard *gd = xcalloc(1, sizeof(*gd));

	gd->tpc = *tpc;
	pthread_mutex_init(&gd->mu, NULL);
	gd->pins = toolpins_new(st);
	gd->loops = loop_guard_new(LOOP_GUARD_MAX_ENTRIES);
	if (!gd->pins || !gd->loops) {
		gate_guard_free(gd);
		return NULL;
	}
	toolpins_set_config(gd->pins, tpc);
	struct circuits *cs = circuits_new(cfg->nupstreams);
	for (size_t i = 0; i < cs->n; i++) {
		const struct upstream_config *u = &cfg->upstreams[i];
		struct circuit_config cc = { u->circuit_failures, u->circuit_window_ms,
					     u->circuit_open_for_ms };
		circuit_init(&cs->c[i], &cc);
		cs->names[i] = xstrdup(u->name);
		if (cc.failures)
			metrics_circuit_state(u->name, CIRCUIT_CLOSED);
	}
	atomic_store(&gd->circuits, cs);
	return gd;
}

static void judged_free(void *arg)
{
	struct judged *j = arg;

	if (!j)
		return;
	free(j->digest);
	free(j->state);
	hmap_free(j->by_name, NULL);
	free(j);
}

static struct judged *judged_of(const struct gate_guard *gd)
{
	return atomic_load_explicit(&((struct gate_guard *)gd)->judged, memory_order_acquire);
}

/* Publish j (NULL: none); the one replaced goes once no loop can be reading it. */
static void judged_set(struct gate_guard *gd, struct judged *j)
{
	struct judged *old = atomic_exchange(&gd->judged, j);

	if (old)
		epoch_defer(judged_free, old);
}

void gate_guard_free(struct gate_guard *gd)
{
	if (!gd)
		return;
	toolpins_free(gd->pins);
	loop_guard_free(gd->loops);
	struct circuits *cs = atomic_load(&gd->circuits);
	for (size_t i = 0; cs && i < cs->n; i++)
		circuit_clear(&cs->c[i]);
	circuits_free(cs);
	judged_free(atomic_load(&gd->judged));
	pthread_mutex_destroy(&gd->mu);
	free(gd);
}

void gate_guard_set_upstreams(struct gate_guard *gd, const struct config *cfg)
{
	struct circuits *cs = circuits_new(cfg->nupstreams), *old;
	bool *fresh = xcalloc(cs->n + 1, sizeof(*fresh));
	size_t i, j;

	for (i = 0; i < cs->n; i++)
		cs->names[i] = xstrdup(cfg->upstreams[i].name);
	/* The states move under the lock: other loops' calls change them. */
	pthread_mutex_lock(&gd->mu);
	old = circuits_of(gd);
	bool *kept = xcalloc(old->n + 1, sizeof(*kept));
	for (i = 0; i < cs->n; i++) {
		const struct upstream_config *u = &cfg->upstreams[i];
		struct circuit_config cc = { u->circuit_failures, u->circuit_window_ms,
					     u->circuit_open_for_ms };

		for (j = 0; j < old->n; j++)
			if (!kept[j] && !strcmp(old->names[j], u->name) &&
			    old->c[j].cfg.failures == cc.failures &&
			    old->c[j].cfg.window_ms == cc.window_ms &&
			    old->c[j].cfg.open_for_ms == cc.open_for_ms)
				break;
		if (j < old->n) {
			cs->c[i] = old->c[j];   /* moved: its failure ring goes with it */
			kept[j] = true;
			continue;
		}
		circuit_init(&cs->c[i], &cc);
		fresh[i] = cc.failures != 0;
	}
	for (j = 0; j < old->n; j++)
		if (!kept[j])
			circuit_clear(&old->c[j]);
	atomic_store_explicit(&gd->circuits, cs, memory_order_release);
	pthread_mutex_unlock(&gd->mu);
	epoch_defer(circuits_free, old);        /* a loop may be reading its settings */
	for (i = 0; i < cs->n; i++)
		if (fresh[i])
			metrics_circuit_state(cs->names[i], CIRCUIT_CLOSED);
	free(kept);
	free(fresh);
	/* The catalogue judged last belonged to the router that is gone. */
	judged_set(gd, NULL);
}

int gate_guard_load(struct gate_guard *gd, const cJSON *lock)
{
	int rc = toolpins_load(gd->pins);

	if (rc == 0)
		note_lock(toolpins_apply_lock(gd->pins, lock));
	return rc;
}

void gate_guard_reconfigure(struct gate_guard *gd, const struct toolpin_config *tpc,
			    const cJSON *lock)
{
	gd->tpc = *tpc;
	toolpins_set_config(gd->pins, tpc);
	note_lock(toolpins_apply_lock(gd->pins, lock));
}

/* --- tool integrity ------------------------------------------------------------------- */

/* An entry's definition as its upstream lists it (its own name, not the exposed one; caller
 * frees) and its digest. */
static cJSON *entry_definition(const struct catalog_entry *e, char hex[TOOL_DIGEST_HEX], int *rc)
{
	cJSON *def = cJSON_Duplicate(e->json, 1);

	cJSON_ReplaceItemInObjectCaseSensitive(def, "name", cJSON_CreateString(e->name));
	*rc = tool_digest(def, hex);
	return def;
}

static enum pin_state see_entry(struct gate_guard *gd, const struct catalog *c,
			       const struct catalog_entry *e, char *hex)
{
	const char *server = catalog_server_config(c, e->server)->name;
	int rc;
	cJSON *def = entry_definition(e, hex, &rc);
	/* a definition that cannot be digested is never trusted */
	enum pin_state st = rc ? PIN_NEW : toolpins_see(gd->pins, server, e->name, def, hex);

	cJSON_Delete(def);
	return st;
}

void gate_guard_judge(struct gate_guard *gd, const struct catalog *c,
		      const struct policy_set *ps)
{
	const struct catalog_list *l = catalog_list(c, CAT_TOOLS);
	struct judged *j = xcalloc(1, sizeof(*j));

	j->cat = c;
	j->generation = l->generation;
	j->mode = gd->tpc.mode;
	j->ntools = l->n;
	j->digest = xcalloc(l->n + 1, sizeof(*j->digest));
	j->state = xcalloc(l->n + 1, 1);
	/* when every mode is off nothing is pinned or recorded: worked out here, read per tool */
	j->pins_on = gd->tpc.mode != TOOL_INTEGRITY_OFF ||
		     policy_tool_integrity_max(ps) > TOOL_INTEGRITY_OFF;
	if (j->pins_on)
		j->by_name = hmap_new();
	for (size_t i = 0; j->pins_on && i < l->n; i++) {
		j->state[i] = (unsigned char)see_entry(gd, c, &l->e[i], j->digest[i]);
		/* 0 always: out of memory ends the process (base/alloc.h) */
		(void)hmap_put(j->by_name, l->e[i].exposed, (void *)(i + 1), NULL);
	}
	judged_set(gd, j);
}

static enum tool_integrity mode_for(const struct judged *j, const struct policy_set *ps,
				    const struct key_identity *who)
{
	int m = who ? policy_tool_integrity(ps, who->policy, who->team_policy)
		    : TOOL_INTEGRITY_UNSET;

	return m == TOOL_INTEGRITY_UNSET ? j->mode : (enum tool_integrity)m;
}

/* e was judged with the list j holds: its index means the same there. */
static bool judged_entry(const struct judged *j, const struct catalog_entry *e)
{
	return e->index != CATALOG_OWN && e->generation == j->generation && e->index < j->ntools;
}

static enum pin_state entry_state(struct gate_guard *gd, const struct judged *j,
				  const struct catalog_entry *e)
{
	char hex[TOOL_DIGEST_HEX];

	if (e->kind != CAT_TOOLS || !j->pins_on)
		return PIN_OK;
	if (judged_entry(j, e))
		return (enum pin_state)j->state[e->index];
	if (e->index == CATALOG_OWN)    /* a session's own tool: judged as it is seen */
		return see_entry(gd, j->cat, e, hex);
	/* Of a list published a moment before its judgement (another loop's read), which the
	 * catalogue's loop is making in this very turn: not judged a second time here. The same
	 * definition judged before keeps its state; anything else is kept back until judged. */
	size_t i = (size_t)hmap_get(j->by_name, e->exposed);
	int rc;
	cJSON_Delete(entry_definition(e, hex, &rc));
	return i && !rc && !strcmp(hex, j->digest[i - 1]) ? (enum pin_state)j->state[i - 1]
							  : PIN_NEW;
}

bool gate_guard_withheld(struct gate_guard *gd, const struct policy_set *ps,
			 const struct key_identity *who, const struct catalog_entry *e)
{
	const struct judged *j = gd && e->kind == CAT_TOOLS ? judged_of(gd) : NULL;

	/* the state first: one array read for catalogue tools, almost always PIN_OK */
	return j && j->pins_on && entry_state(gd, j, e) != PIN_OK &&
	       mode_for(j, ps, who) == TOOL_INTEGRITY_WITHHOLD;
}

int gate_guard_integrity(struct gate_guard *gd, const struct policy_set *ps,
			 const struct gate_guard_call *rq, struct gate_guard_refusal *out,
			 char *reason, size_t reason_len)
{
	char hex[TOOL_DIGEST_HEX] = "";
	const struct judged *j = gd && rq->e && rq->e->kind == CAT_TOOLS ? judged_of(gd) : NULL;
	enum pin_state st;

	if (!j || !j->pins_on || (st = entry_state(gd, j, rq->e)) == PIN_OK)
		return 0;
	switch (mode_for(j, ps, rq->who)) {
	case TOOL_INTEGRITY_WARN:
		/* passed, and its decision record says so */
		snprintf(reason, reason_len, "%s (tool_integrity warn)",
			 st == PIN_NEW ? "tool not approved" : "tool changed since approval");
		return 0;
	case TOOL_INTEGRITY_WITHHOLD:
		break;
	default:
		return 0;
	}
	if (judged_entry(j, rq->e)) {
		memcpy(hex, j->digest[rq->e->index], sizeof(hex));
	} else {
		int rc;
		cJSON_Delete(entry_definition(rq->e, hex, &rc));
		if (rc)
			hex[0] = '\0';  /* not known: the refusal says so with an empty digest */
	}
	out->code = REFUSAL_TOOL_CHANGED;
	out->data = cJSON_CreateObject();
	cJSON_AddStringToObject(out->data, "tool", rq->e->exposed);
	cJSON_AddStringToObject(out->data, "server", rq->server);
	cJSON_AddStringToObject(out->data, "state", pin_state_name(st));
	cJSON_AddStringToObject(out->data, "current_digest", hex);
	snprintf(reason, reason_len, "%s", st == PIN_NEW ? "tool not approved"
		 : "tool changed since approval");
	snprintf(out->message, sizeof(out->message), st == PIN_NEW
		 ? "Tool %s is new and waits for an operator's approval "
		   "(wardenctl tools approve %s/%s)"
		 : "Tool %s changed since it was approved and is withheld until an operator "
		   "approves the new definition (wardenctl tools approve %s/%s)",
		 rq->e->exposed, rq->server, rq->name);
	return -EPERM;
}

/* --- the loop breaker -------------------------------------------------------------------- */

int gate_guard_loop(struct gate_guard *gd, const struct policy_set *ps,
		    const struct gate_guard_call *rq, struct gate_guard_refusal *out,
		    char *reason, size_t reason_len)
{
	unsigned max;
	int64_t window, retry;
	char hex[TOOL_DIGEST_HEX];

	if (!gd || rq->kind != CAT_TOOLS ||
	    !policy_loop_breaker(ps, rq->who->policy, rq->who->team_policy, &max, &window))
		return 0;
	/* (key, upstream, tool, canonical arguments), NUL-separated: nothing of it is kept */
	char *args = tool_canonical_value(rq->args);  /* none: "null" */
	size_t la = strlen(args), lk = strlen(rq->who->id), ls = strlen(rq->server),
	       ln = strlen(rq->name);
	char *buf = xmalloc(lk + ls + ln + la + 3);
	memcpy(buf, rq->who->id, lk + 1);
	memcpy(buf + lk + 1, rq->server, ls + 1);
	memcpy(buf + lk + ls + 2, rq->name, ln + 1);
	memcpy(buf + lk + ls + ln + 3, args, la);
	int rc = tool_sha256_hex(buf, lk + ls + ln + la + 3, hex);
	free(buf);
	free(args);
	if (rc)
		return rc;
	pthread_mutex_lock(&gd->mu);
	rc = loop_guard_check(gd->loops, hex, max, window, (int64_t)clock_loop_ms(), &retry);
	pthread_mutex_unlock(&gd->mu);
	if (rc == 0)
		return 0;
	const char *tool = rq->e ? rq->e->exposed : rq->name;
	out->code = REFUSAL_LOOP_DETECTED;
	out->data = cJSON_CreateObject();
	cJSON_AddStringToObject(out->data, "tool", tool);
	cJSON_AddNumberToObject(out->data, "max_repeats", max);
	cJSON_AddNumberToObject(out->data, "window_ms", (double)window);
	cJSON_AddNumberToObject(out->data, "retry_after_ms", (double)retry);
	snprintf(reason, reason_len, "loop detected (%u identical calls within %lld ms)", max,
		 (long long)window);
	snprintf(out->message, sizeof(out->message),
		 "Loop detected: tool %s was called with the same arguments %u times within "
		 "%lld ms; retry after %lld ms or change the arguments", tool, max,
		 (long long)window, (long long)retry);
	audit_loop_break(rq->who->id, rq->server, rq->name, max, window, retry);
	metrics_loop_break();
	return -ELOOP;
}

/* --- pins through the admin plane ---------------------------------------------------------- */

cJSON *gate_guard_pins(struct gate_guard *gd)
{
	return gd ? toolpins_json(gd->pins) : cJSON_CreateArray();
}

int gate_guard_approve(struct gate_guard *gd, const struct policy_set *ps, const char *server,
		       const char *tool, const char *by, void (*cb)(void *arg, int err),
		       void *arg)
{
	int rc;

	if (!gd)
		return -ENOENT;
	rc = toolpins_approve(gd->pins, server, tool, by, cb, arg);
	const struct judged *j = judged_of(gd);
	if (rc >= 0 && j)
		gate_guard_judge(gd, j->cat, ps);
	return rc;
}

/* --- upstream circuits -------------------------------------------------------------------- */

/* The circuit of `server` in cs when it is on (NULL: off, or no such upstream). */
static struct circuit *circuit_on(struct circuits *cs, size_t server)
{
	return server < cs->n && cs->c[server].cfg.failures ? &cs->c[server] : NULL;
}

/* The circuit of `server`, locked, when it is on: the array is loaded again under the lock
 * (a reload may have replaced it since the look without it). NULL: off, nothing locked. */
static struct circuit *circuit_lock(struct gate_guard *gd, size_t server, const char **name)
{
	struct circuits *cs = circuits_of(gd);
	struct circuit *c;

	if (!circuit_on(cs, server))
		return NULL;    /* the common case: no circuit, no lock */
	pthread_mutex_lock(&gd->mu);
	cs = circuits_of(gd);
	if (!(c = circuit_on(cs, server))) {
		pthread_mutex_unlock(&gd->mu);
		return NULL;
	}
	*name = cs->names[server];
	return c;
}

int gate_guard_circuit_allow(struct gate_guard *gd, size_t server, bool *probe,
			     int64_t *retry_ms)
{
	struct circuit *c;
	const char *name;
	enum circuit_state before;
	int rc;

	*probe = false;
	*retry_ms = 0;
	if (!gd || !(c = circuit_lock(gd, server, &name)))
		return 0;
	before = c->state;
	rc = circuit_allow(c, (int64_t)clock_loop_ms(), probe, retry_ms);
	if (c->state != before) {
		audit_circuit(name, circuit_state_name(before), circuit_state_name(c->state), 0);
		metrics_circuit_state(name, (int)c->state);
	}
	pthread_mutex_unlock(&gd->mu);
	return rc;
}

void gate_guard_circuit_result(struct gate_guard *gd, size_t server, bool failure, bool probe)
{
	struct circuit *c;
	const char *name;
	enum circuit_state before;

	if (!gd || !(c = circuit_lock(gd, server, &name)))
		return;
	before = c->state;
	if (!circuit_result(c, failure, probe, (int64_t)clock_loop_ms())) {
		pthread_mutex_unlock(&gd->mu);
		return;
	}
	audit_circuit(name, circuit_state_name(before), circuit_state_name(c->state),
		      c->state == CIRCUIT_OPEN ? c->cfg.open_for_ms : 0);
	metrics_circuit_state(name, (int)c->state);
	if (c->state == CIRCUIT_OPEN && before == CIRCUIT_HALF_OPEN)
		log_warn("upstream %s: circuit open again: the probe call failed; calls are refused "
			 "for %lld ms", name, (long long)c->cfg.open_for_ms);
	else if (c->state == CIRCUIT_OPEN)
		log_warn("upstream %s: circuit open after %u failures within %lld ms; calls are "
			 "refused for %lld ms", name, c->cfg.failures, (long long)c->cfg.window_ms,
			 (long long)c->cfg.open_for_ms);
	else if (c->state == CIRCUIT_CLOSED)
		log_info("upstream %s: circuit closed: the probe call succeeded", name);
	pthread_mutex_unlock(&gd->mu);
}

void gate_guard_circuit_abandon(struct gate_guard *gd, size_t server)
{
	struct circuit *c;
	const char *name;

	if (!gd || !(c = circuit_lock(gd, server, &name)))
		return;
	circuit_abandon(c);
	pthread_mutex_unlock(&gd->mu);
}

const char *gate_guard_circuit_state(struct gate_guard *gd, size_t server)
{
	struct circuit *c;
	const char *name, *s;

	if (!gd || !(c = circuit_lock(gd, server, &name)))
		return "closed";        /* no circuit: never open */
	s = circuit_state_name(c->state);
	pthread_mutex_unlock(&gd->mu);
	return s;
}
