/* spend.h: a spend row, as the store, its journal and the budgets exchange it. Types only. */
#ifndef WARDEN_STORE_SPEND_H
#define WARDEN_STORE_SPEND_H

#include <stdint.h>

/* One spend counter row: amount added to (scope, period, start). */
struct store_spend {
	const char *scope;      /* "key:<id>" or "team:<name>" */
	const char *period;     /* "day", "week", "month", "rolling:<seconds>" */
	int64_t start;          /* period (or rolling slot) start, unix seconds UTC */
	int64_t amount;         /* micro-units of currency */
	int64_t expires;        /* unix seconds after which the row may be pruned; 0: keep */
};

#endif
