/* gate_int.h: what gate.c and gate_fleet.c (admission against the fleet's counters in
 * Redis) share. Private to the two. */
#ifndef WARDEN_GATE_INT_H
#define WARDEN_GATE_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

#include "govern/budget.h"
#include "govern/fleet.h"
#include "govern/gate.h"
#include "govern/gate_guard.h"
#include "govern/policy.h"
#include "govern/ratelimit.h"
#include "govern/toolpin.h"
#include "store/store.h"
#include "mcp/catalog.h"

/* The governance sections of a configuration, parsed: what a gate decides with. */
struct gate_rules {
	bool auth_required;
	struct policy_set *ps;
	struct keystore *ks;
	struct ratelimit_config *rlc;
	struct budget_config *bc;
	struct toolpin_config tpc;      /* its lockfile name borrows from the config */
	cJSON *tool_lock;               /* the lockfile's content (a copy), or NULL */
	struct oauth_config *oauth;     /* the resource server's, or NULL */
};

struct gate {
	/* Replaced whole by a governance reload: published here, and the rules replaced are
	 * freed once every loop has passed a turn (base/epoch.h). Read through rules(g), once
	 * in a callback, and nothing of them kept past it. */
	_Atomic(struct gate_rules *) r;
	struct event *sweep;            /* budget_sweep */
	struct ratelimit *rl;
	struct budget *budget;
	struct store *store;
	/* What the store and the counters were opened with: a full reload keeps the gate when
	 * both are unchanged (gate_keeps_store). */
	struct store_options store_opt;
	cJSON *counters;                /* the "counters" section (a copy), or NULL */
	/* What the rules make of the catalogue, replaced whole when either changes: published
	 * here, the one replaced freed once every loop has passed a turn. NULL: no catalogue. */
	_Atomic(struct gate_cat *) cv;
	/* Tool integrity, the loop breaker and the upstream circuits (govern/gate_guard.h). */
	struct gate_guard *guard;
	/* Counters in Redis ("counters": {"backend": "redis"}); NULL: in memory and SQLite. */
	struct fleet_config *fc;
	struct fleet *fleet;
};

/* What the gate derives from one catalogue under one set of rules: the flat catalogue the
 * policy views index (tools, resources, templates, prompts), the views, compiled on first
 * use, and the tools' costs. Its arrays serve an entry of the lists it was made from only
 * (entry_indexed); another loop may hold an entry of a list published a moment before its
 * successor, which is judged by name as a session's own entries are. */
struct gate_cat {
	const struct catalog *cat;
	unsigned long generation[CAT_NKINDS];   /* of the lists indexed */
	struct policy_cache *pc;        /* borrows the rules' policy set and `entries` */
	struct policy_entry *entries;
	size_t nentries;
	size_t offset[CAT_NKINDS];
	int64_t *tool_cost;             /* per tool entry */
};

static inline struct gate_cat *catview(const struct gate *g)
{
	return atomic_load_explicit(&((struct gate *)g)->cv, memory_order_acquire);
}

/* e's index means the same in cv's arrays. */
static inline bool entry_indexed(const struct gate_cat *cv, const struct catalog_entry *e)
{
	return cv && e->index != CATALOG_OWN && e->generation == cv->generation[e->kind];
}

struct gate_ticket {
	struct budget_resv *resv;
	struct fleet_resv *fr;          /* counters in Redis */
	int64_t cost;
	bool charge_failures;
};


static inline struct gate_rules *rules(const struct gate *g)
{
	return atomic_load_explicit(&((struct gate *)g)->r, memory_order_acquire);
}

cJSON *gate_refusal(int code, cJSON *data, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* charge_failures of the upstream called `server` (resources outside the lists have no entry) */
bool gate_charges_failures(const struct gate *g, const struct catalog_entry *e, const char *server);
/* The price of the call (costs matched on server/name, tools resolved per catalogue). */
int64_t gate_call_cost(const struct gate *g, const struct gate_request *rq);
/* The -32005 and -32004 error objects; reason gets the record's text. */
cJSON *gate_budget_error(const struct budget_refusal *br, char *reason, size_t reason_len);
cJSON *gate_rate_error(const struct rate_refusal *rr, char *reason, size_t reason_len);
/* Budget and rate admission through Redis: gate_admit_async's last step. */
int gate_admit_fleet(struct gate *g, const struct gate_request *rq, gate_admit_fn cb, void *arg,
		     struct gate_ticket **ticket, cJSON **error, char *reason, size_t reason_len);

#endif
