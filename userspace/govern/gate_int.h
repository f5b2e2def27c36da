/* gate_int: what the gate's files share — its state and the refusal builder. gate.h is the
 * interface; this is not one. */
#ifndef WARDEN_GATE_INT_H
#define WARDEN_GATE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include <event2/event.h>

#include "govern/gate.h"
#include "govern/toolpin.h"
#include "mcp/catalog.h"

struct budget;
struct budget_config;
struct budget_resv;
struct circuit;
struct hmap;
struct keystore;
struct loop_guard;
struct policy_cache;
struct policy_entry;
struct policy_set;
struct ratelimit;
struct ratelimit_config;
struct store;

struct gate {
	bool auth_required;
	struct event *sweep;            /* budget_sweep */
	struct policy_set *ps;
	struct keystore *ks;
	struct policy_cache *pc;
	struct ratelimit_config *rlc;
	struct ratelimit *rl;
	struct budget_config *bc;
	struct budget *budget;
	struct store *store;
	const struct catalog *cat;
	/* The flat catalogue the policy views index: tools, resources, templates, prompts. */
	struct policy_entry *entries;
	size_t nentries;
	size_t offset[CAT_NKINDS];
	int64_t *tool_cost;     /* per tool entry, resolved once per catalogue */
	/* Which keys and teams the config defines (the rest came through the admin API): a
	 * reload replaces the former and keeps the latter. */
	struct hmap *config_keys, *config_teams;
	/* Tool integrity (govern/toolpin.h): the pins, and per catalogue tool its digest and
	 * state (enum pin_state), judged once per catalogue. */
	struct toolpin_config tpc;
	struct toolpins *pins;
	char (*tool_digest)[TOOL_DIGEST_HEX];
	unsigned char *tool_state;
	size_t ntools;                  /* entries in tool_digest and tool_state */
	bool pins_on;                   /* some tool_integrity is not off */
	struct loop_guard *loops;       /* the loop breaker's counts */
	struct circuit *circuits;       /* per upstream (config order) */
	size_t ncircuits;
};

struct gate_ticket {
	struct budget_resv *resv;
	int64_t cost;
	bool charge_failures;
};

/* The JSON-RPC error object {code, message, data} of a refusal; data (taken over, may be
 * NULL) gets data.type, the code's name. */
cJSON *gate_refusal(int code, cJSON *data, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* gate_guard.c: tool integrity and the loop breaker. */
void gate_judge_tools(struct gate *g, const struct catalog *c);
bool gate_withheld(struct gate *g, const struct key_identity *who, const struct catalog_entry *e);
int gate_admit_integrity(struct gate *g, const struct gate_request *rq, cJSON **error,
			 char *reason, size_t reason_len);
int gate_admit_loop(struct gate *g, const struct gate_request *rq, cJSON **error,
		    char *reason, size_t reason_len);

#endif
