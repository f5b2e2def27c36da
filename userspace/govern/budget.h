/* budget: per-call costs and spend limits per key and per team, reserve -> commit/release.
 *
 * Money is integer micro-units of currency (1.00 = 1000000); prices and limits are written as
 * decimal strings ("0.0025") and parsed exactly, never through floating point.
 *
 * A call first reserves its cost against every budget that applies to its key and its team:
 * the reservation succeeds only when spent + reserved + cost <= limit holds for all of them,
 * and then holds the cost in each (all or none). Concurrent calls in flight therefore can
 * never spend past a limit. On success the reservation is committed (spent += cost, and the
 * charge is queued to the store; the caller answers the agent from the commit callback, so an
 * acknowledged charge is durable). On failure it is released (or committed when the upstream's
 * charge_failures is set).
 *
 * Periods are UTC calendar periods (daily; weekly from Monday 00:00, ISO weeks; monthly from
 * the 1st) where a new period starts at zero, or rolling windows ("rolling": "24h") summed
 * from slots of window/1440 (one minute for 24h): a charge counts for at least the window and
 * at most window + 2 slots, so no window-long interval ever holds more than the limit.
 * A counter is identified by (scope, period): "key:<id>" or "team:<name>" with "day", "week",
 * "month" or "rolling:<seconds>"; changing a limit keeps what was spent.
 *
 * Config (docs/budgets.md):
 *   "costs":   {"default": "0", "<server>/<tool glob>": "0.002", "github/create_issue": "0.01"}
 *   "budgets": {"default" | "policy:<p>" | "key:<id>": [per-key budgets],
 *               "team:<t>": [budgets shared by the team's keys]}
 *   a budget: {"name": "daily", "limit": "5.00", "period": "daily"|"weekly"|"monthly"}
 *             or {"limit": "1.50", "rolling": "24h"}
 * A key's own budgets come from the most specific of key:<id>, policy:<p>, default; its
 * team's budgets apply as well.
 */
#ifndef WARDEN_BUDGET_H
#define WARDEN_BUDGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

#include "base/config.h"
#include "store/store.h"

#define BUDGET_MICRO 1000000ll            /* micro-units per currency unit */
#define BUDGET_MONEY_MAX (1000000000000ll * BUDGET_MICRO)   /* 10^12 units */
#define BUDGET_MAX_PER_SCOPE 8            /* budgets per selector */
#define BUDGET_NAME_MAX 64

enum budget_period { BUDGET_DAILY, BUDGET_WEEKLY, BUDGET_MONTHLY, BUDGET_ROLLING };

struct budget_spec {
	char name[BUDGET_NAME_MAX];
	int64_t limit;                  /* micro-units */
	enum budget_period period;
	int64_t window;                 /* rolling: seconds */
};

struct budget_subject {
	const char *key_id;
	const char *team;               /* NULL or "": none */
	const char *policy;             /* NULL or "": none */
};

struct budget_refusal {
	char name[BUDGET_NAME_MAX];     /* the budget that refused */
	char scope[160];                /* "key:<id>" or "team:<name>" */
	char period[32];                /* "day", "week", "month", "rolling:<seconds>" */
	int64_t spent, reserved, limit, cost;
	int64_t resets_at;              /* unix s when the call would fit; 0: never (cost > limit) */
};

/* ---- money and time (exposed for the config, the admin plane and tests) ---- */

/* "12", "0.0025", "5.10" -> micro-units. At most 6 decimals; no sign, exponent or spaces.
 * Returns 0, -EINVAL (malformed, negative, too many decimals) or -ERANGE (> BUDGET_MONEY_MAX). */
int budget_parse_money(const char *s, int64_t *out);
/* micro-units -> "0.0025", "5.00" (at least 2 decimals, trailing zeros trimmed). */
void budget_format_money(int64_t micro, char *buf, size_t len);
/* Start of the period containing now, and the start of the next one (calendar periods). */
int64_t budget_period_start(enum budget_period p, int64_t now);
int64_t budget_period_next(enum budget_period p, int64_t start);
/* A counter id ("day", "week", "month", "rolling:<seconds>") -> its period. 0 or -EINVAL. */
int budget_period_kind(const char *id, enum budget_period *kind, int64_t *window);
/* Rolling window slot width in seconds: ceil(window / 1440), at least 1. */
int64_t budget_rolling_slot(int64_t window);
/* unix seconds -> "2028-02-29T00:00:00Z" (buf >= 32 bytes). */
void budget_rfc3339(int64_t t, char *buf, size_t len);

/* ---- config ---- */

struct budget_config;

/* Parse "costs" and "budgets" from root (both optional). Errors carry field paths. */
int budget_config_parse(const cJSON *root, struct budget_config **out,
			struct config_errors *errs);
void budget_config_free(struct budget_config *cfg);
/* Price of one call to server/tool: the matching pattern with the most literal characters
 * (an exact name beats any glob; ties: first listed), else "default", else 0. O(patterns):
 * resolve once per catalogue entry, not per call. */
int64_t budget_cost(const struct budget_config *cfg, const char *server, const char *tool);
/* The budgets that apply to who, as budget_reserve picks them: the key's own (from key:<id>,
 * policy:<p> or default; *nk of them) and its team's (*nt). The specs point into cfg. */
void budget_applicable(const struct budget_config *cfg, const struct budget_subject *who,
		       const struct budget_spec **kspec, size_t *nk,
		       const struct budget_spec **tspec, size_t *nt);

/* ---- accounting (any loop thread: one lock around each operation; budget_load_spend at
 * start-up, before any loop runs) ---- */

struct budget;
struct budget_resv;

/* st NULL: memory only (tests); commits then complete at once. */
int budget_new(struct store *st, struct budget **out);
/* Frees outstanding reservations too. */
void budget_free(struct budget *b);
/* Not owned: keep cfg alive until replaced (reservations do not refer to it). */
void budget_set_config(struct budget *b, const struct budget_config *cfg);

/* Reserve cost (micro-units, >= 0) at now (unix seconds) against every budget of who.
 * Returns 0 with *out (a handle to commit or release exactly once), -EDQUOT with *why filled
 * (nothing reserved), -EIO when a budget applies and the store cannot write (store_health
 * says why; nothing reserved), -EINVAL or -ENOMEM. */
int budget_reserve(struct budget *b, const struct budget_subject *who, int64_t cost,
		   int64_t now, struct budget_resv **out, struct budget_refusal *why);
/* Charge a reservation (to the period it was reserved in) and queue it to the store. Returns
 * 0: cb(arg, err) follows on the loop once durable; 1: nothing to persist (no store, zero
 * cost or no budgets), cb is not called; < 0: could not queue (memory is charged anyway, the
 * caller must not acknowledge the call). The handle is consumed in every case. */
int budget_commit(struct budget *b, struct budget_resv *r, store_done_fn cb, void *arg);
/* The same, charging amount (>= 0) instead of what was reserved: a call whose real price is
 * known only afterwards (an LLM answer's tokens) reserves an estimate and settles to this.
 * More than the estimate is charged in full (spend may then pass a limit by that much). */
int budget_commit_amount(struct budget *b, struct budget_resv *r, int64_t amount,
			 store_done_fn cb, void *arg);
/* Give the reserved capacity back. The handle is consumed. */
void budget_release(struct budget *b, struct budget_resv *r);

/* Start-up: feed one persisted row (store_load_spend) into the counters; rows of periods
 * that are over are ignored. Returns 0 or -ENOMEM. */
int budget_load_spend(struct budget *b, const struct store_spend *row, int64_t now);
/* Forget every counter that holds nothing at now (its period ended with no spend since, no
 * reservation): keys and teams that were removed or went quiet stop taking memory. Their
 * history is in the store; a counter used again starts from zero, which is what it held.
 * Returns how many went. */
size_t budget_sweep(struct budget *b, int64_t now);
size_t budget_counter_count(struct budget *b);
/* Current spent and reserved of one counter at now; -ENOENT if it has never been used. */
int budget_counter(struct budget *b, const char *scope, const char *period, int64_t now,
		   int64_t *spent, int64_t *reserved);
/* One budget of a scope as the admin plane reports it. */
struct budget_usage {
	char name[BUDGET_NAME_MAX];
	char period[32];                /* counter id: "day", "week", "month", "rolling:<s>" */
	int64_t limit, spent, reserved; /* micro-units */
	int64_t period_start;           /* calendar: start of the current period; rolling: now - window */
	int64_t resets_at;              /* calendar: next period start; rolling: when the oldest
					 * spend leaves the window (0: nothing spent) */
};
/* The budgets that apply to scope ("key:<id>", chosen with the key's policy as
 * budget_reserve chooses them, or "team:<name>") with their counters at now. Returns how many
 * were written to out (0 when the scope has no budget). */
size_t budget_usage(struct budget *b, const char *scope, const char *policy, int64_t now,
		    struct budget_usage out[BUDGET_MAX_PER_SCOPE]);
/* Zero the spend of every counter of scope in its current period (rolling: the whole window)
 * and queue the deletion of those rows to the store; reservations in flight are kept. Returns
 * 0: cb(arg, err) follows once durable; 1: nothing to persist (no store or no counter), cb is
 * not called; < 0: could not queue (memory is reset anyway). */
int budget_reset(struct budget *b, const char *scope, int64_t now, store_done_fn cb, void *arg);

/* The refusal as the JSON-RPC error's data: {"budget", "scope", "period", "spent", "limit",
 * "cost", "reserved" (money as decimal strings), "resets_at" (RFC 3339 or null)}. */
cJSON *budget_refusal_json(const struct budget_refusal *why);

#endif
