/* gate_guard: tool integrity (pins judged per catalogue, withheld tools), the loop breaker
 * and the upstream circuits, as the gate applies them. */
#include "govern/gate_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/config.h"
#include "base/log.h"
#include "govern/circuit.h"
#include "govern/loop_guard.h"
#include "govern/policy.h"
#include "govern/refusal.h"
#include "govern/tool_digest.h"
#include "observe/audit.h"
#include "observe/metrics.h"

/* --- tool integrity ------------------------------------------------------------------- */

/* Is anyone's tool_integrity other than off? If not, nothing is pinned or recorded. Worked
 * out once per catalogue and configuration (gate_judge_tools), read per listed tool. */
static bool pins_enabled(const struct gate *g)
{
	return g->pins_on;
}

/* An entry's definition as its upstream lists it (its own name, not the exposed one; caller
 * frees) and its digest. */
static cJSON *entry_definition(const struct catalog_entry *e, char hex[TOOL_DIGEST_HEX], int *rc)
{
	cJSON *def = cJSON_Duplicate(e->json, 1);

	cJSON_ReplaceItemInObjectCaseSensitive(def, "name", cJSON_CreateString(e->name));
	*rc = tool_digest(def, hex);
	return def;
}

static enum pin_state see_entry(struct gate *g, const struct catalog_entry *e, char *hex)
{
	const char *server = catalog_server_config(g->cat, e->server)->name;
	int rc;
	cJSON *def = entry_definition(e, hex, &rc);
	/* a definition that cannot be digested is never trusted */
	enum pin_state st = rc ? PIN_NEW : toolpins_see(g->pins, server, e->name, def, hex);

	cJSON_Delete(def);
	return st;
}

/* Every catalogue tool against its pin, once per catalogue (and after an approval). */
void gate_judge_tools(struct gate *g, const struct catalog *c)
{
	size_t n = catalog_count(c, CAT_TOOLS);

	free(g->tool_digest);
	free(g->tool_state);
	g->tool_digest = xcalloc(n + 1, sizeof(*g->tool_digest));
	g->tool_state = xcalloc(n + 1, 1);
	g->ntools = n;
	g->pins_on = g->pins && (g->tpc.mode != TOOL_INTEGRITY_OFF ||
				 policy_tool_integrity_max(g->ps) > TOOL_INTEGRITY_OFF);
	if (!pins_enabled(g))
		return;
	for (size_t i = 0; i < n; i++)
		g->tool_state[i] = (unsigned char)see_entry(g, catalog_at(c, CAT_TOOLS, i),
							    g->tool_digest[i]);
}

static enum tool_integrity mode_for(const struct gate *g, const struct key_identity *who)
{
	int m = who ? policy_tool_integrity(g->ps, who->policy, who->team_policy)
		    : TOOL_INTEGRITY_UNSET;

	return m == TOOL_INTEGRITY_UNSET ? g->tpc.mode : (enum tool_integrity)m;
}

static enum pin_state entry_state(struct gate *g, const struct catalog_entry *e)
{
	char hex[TOOL_DIGEST_HEX];

	if (e->kind != CAT_TOOLS || !pins_enabled(g) || !g->tool_state)
		return PIN_OK;
	if (e->index != CATALOG_OWN)
		return e->index < g->ntools ? (enum pin_state)g->tool_state[e->index] : PIN_NEW;
	return see_entry(g, e, hex);  /* a session's own tool: judged as it is listed */
}

/* Is tool entry e kept from who (withhold and not approved)? */
bool gate_withheld(struct gate *g, const struct key_identity *who, const struct catalog_entry *e)
{
	/* the state first: one array read for catalogue tools, almost always PIN_OK */
	return e->kind == CAT_TOOLS && pins_enabled(g) && entry_state(g, e) != PIN_OK &&
	       mode_for(g, who) == TOOL_INTEGRITY_WITHHOLD;
}

cJSON *gate_tool_pins(struct gate *g)
{
	return g->pins ? toolpins_json(g->pins) : cJSON_CreateArray();
}

int gate_tool_approve(struct gate *g, const char *server, const char *tool, const char *by,
		      void (*cb)(void *arg, int err), void *arg)
{
	int rc;

	if (!g->pins)
		return -ENOENT;
	rc = toolpins_approve(g->pins, server, tool, by, cb, arg);
	if (rc >= 0 && g->cat)
		gate_judge_tools(g, g->cat);
	return rc;
}

/* 1b. A tool whose definition changed since its approval, under withhold. */
int gate_admit_integrity(struct gate *g, const struct gate_request *rq, cJSON **error,
			   char *reason, size_t reason_len)
{
	char hex[TOOL_DIGEST_HEX] = "";
	enum pin_state st;

	if (!rq->e || rq->e->kind != CAT_TOOLS || !pins_enabled(g) ||
	    (st = entry_state(g, rq->e)) == PIN_OK)
		return 0;
	switch (mode_for(g, rq->who)) {
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
	if (rq->e->index != CATALOG_OWN && rq->e->index < g->ntools) {
		memcpy(hex, g->tool_digest[rq->e->index], sizeof(hex));
	} else {
		int rc;
		cJSON_Delete(entry_definition(rq->e, hex, &rc));
		if (rc)
			hex[0] = '\0';  /* not known: the refusal says so with an empty digest */
	}
	cJSON *d = cJSON_CreateObject();
	cJSON_AddStringToObject(d, "tool", rq->e->exposed);
	cJSON_AddStringToObject(d, "server", rq->server);
	cJSON_AddStringToObject(d, "state", pin_state_name(st));
	cJSON_AddStringToObject(d, "current_digest", hex);
	snprintf(reason, reason_len, "%s", st == PIN_NEW ? "tool not approved"
		 : "tool changed since approval");
	*error = gate_refusal(REFUSAL_TOOL_CHANGED, d, st == PIN_NEW
			 ? "Tool %s is new and waits for an operator's approval "
			   "(wardenctl tools approve %s/%s)"
			 : "Tool %s changed since it was approved and is withheld until an operator "
			   "approves the new definition (wardenctl tools approve %s/%s)",
			 rq->e->exposed, rq->server, rq->name);
	return -EPERM;
}

/* 2b. The same key, tool and arguments too often within the policy's window. */
int gate_admit_loop(struct gate *g, const struct gate_request *rq, cJSON **error,
		      char *reason, size_t reason_len)
{
	unsigned max;
	int64_t window, retry;
	char hex[TOOL_DIGEST_HEX];

	if (!g->loops || rq->kind != CAT_TOOLS ||
	    !policy_loop_breaker(g->ps, rq->who->policy, rq->who->team_policy, &max, &window))
		return 0;
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
	if (loop_guard_check(g->loops, hex, max, window, (int64_t)clock_mono_ms(), &retry) == 0)
		return 0;
	cJSON *d = cJSON_CreateObject();
	cJSON_AddStringToObject(d, "tool", rq->e ? rq->e->exposed : rq->name);
	cJSON_AddNumberToObject(d, "max_repeats", max);
	cJSON_AddNumberToObject(d, "window_ms", (double)window);
	cJSON_AddNumberToObject(d, "retry_after_ms", (double)retry);
	snprintf(reason, reason_len, "loop detected (%u identical calls within %lld ms)", max,
		 (long long)window);
	*error = gate_refusal(REFUSAL_LOOP_DETECTED, d,
			 "Loop detected: tool %s was called with the same arguments %u times within "
			 "%lld ms; retry after %lld ms or change the arguments",
			 rq->e ? rq->e->exposed : rq->name, max, (long long)window, (long long)retry);
	audit_loop_break(rq->who->id, rq->server, rq->name, max, window, retry);
	metrics_loop_break();
	return -ELOOP;
}

/* --- upstream circuits -------------------------------------------------------------------- */

int gate_circuit_allow(struct gate *g, size_t server, bool *probe, int64_t *retry_ms)
{
	struct circuit *c;
	enum circuit_state before;
	int rc;

	*probe = false;
	*retry_ms = 0;
	if (server >= g->ncircuits)
		return 0;
	c = &g->circuits[server];
	before = c->state;
	rc = circuit_allow(c, (int64_t)clock_mono_ms(), probe, retry_ms);
	if (c->state != before) {
		const char *name = g->cat ? catalog_server_config(g->cat, server)->name : "?";
		audit_circuit(name, circuit_state_name(before), circuit_state_name(c->state), 0);
		metrics_circuit_state(name, (int)c->state);
	}
	return rc;
}

void gate_circuit_result(struct gate *g, size_t server, bool failure, bool probe)
{
	struct circuit *c;
	enum circuit_state before;

	if (server >= g->ncircuits)
		return;
	c = &g->circuits[server];
	before = c->state;
	if (!circuit_result(c, failure, probe, (int64_t)clock_mono_ms()))
		return;
	const char *name = g->cat ? catalog_server_config(g->cat, server)->name : "?";
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
}

void gate_circuit_abandon(struct gate *g, size_t server)
{
	if (server < g->ncircuits)
		circuit_abandon(&g->circuits[server]);
}

const char *gate_circuit_state(const struct gate *g, size_t server)
{
	return server < g->ncircuits ? circuit_state_name(g->circuits[server].state) : "closed";
}
