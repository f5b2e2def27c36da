/* budget_int.h: what budget.c (counters) and budget_config.c (money, calendar, the config
 * sections) share. Private to the two. */
#ifndef WARDEN_BUDGET_INT_H
#define WARDEN_BUDGET_INT_H

#include <stdint.h>

#include "govern/budget.h"
#include "govern/selector.h"

#define BUDGET_DAY 86400ll
#define BUDGET_NAME_BUF 600

struct cost_pat {
	char *pat;                      /* "server/tool" glob */
	int64_t price;
	int score;                      /* 2 * literal chars, +1 when no wildcard at all */
};

struct selector {
	char *name;                     /* "default", "key:<id>", "policy:<p>", "team:<t>" */
	struct budget_spec spec[BUDGET_MAX_PER_SCOPE];
	size_t n;
};

struct budget_config {
	struct cost_pat *pats;
	size_t npats, pats_cap;
	int64_t default_cost;
	struct selector *sel;           /* sorted by name */
	size_t nsel, sel_cap;
	struct selector_kinds kinds;    /* of sel, once sorted */
};

extern const char *const budget_period_ids[];   /* by enum budget_period */

/* "day" | "week" | "month" | "rolling:<seconds>" of a spec, and back. */
void budget_period_id(const struct budget_spec *s, char *buf, size_t len);
int budget_parse_period_id(const char *s, enum budget_period *kind, int64_t *window);
/* The selectors whose budgets who's calls count against: the key's own, else its policy's,
 * else the default (*ks), and its team's (*ts); NULL where there is none. */
void budget_scopes(const struct budget_config *cfg, const struct budget_subject *who,
		   const struct selector **ks, const struct selector **ts);
int64_t budget_floor_div(int64_t a, int64_t b);

#endif
