/* gate_fleet: a call's budgets and rate limits admitted through the fleet's counters in Redis,
 * and the reload that would leave their queued charges behind. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/config.h"
#include "base/json_get.h"
#include "govern/budget_int.h"
#include "govern/gate_int.h"
#include "govern/refusal.h"
#include "store/store.h"

struct pending {
	struct gate *g;
	gate_admit_fn cb;
	void *arg;
	int64_t cost;
	bool charge_failures;
	bool inside;                    /* fleet_reserve has not returned yet */
	bool done;                      /* answered while inside */
	int rc;
	struct gate_ticket *t;
	cJSON *error;
	char reason[256];
};

static cJSON *unavailable(const struct gate *g, bool local, char *reason, size_t len)
{
	struct fleet_stats st;
	cJSON *d = cJSON_CreateObject();

	fleet_stats(g->fleet, &st);
	cJSON_AddStringToObject(d, "reason", local ? "local_allowance_spent"
				: "counters_unreachable");
	cJSON_AddStringToObject(d, "backend", "redis");
	cJSON_AddStringToObject(d, "state", fleet_state_name(st.state));
	cJSON_AddNumberToObject(d, "retry_after_ms", 1000);
	if (local) {
		snprintf(reason, len, "counters unavailable (local allowance spent)");
		return gate_refusal(REFUSAL_STORE_UNAVAILABLE, d,
				    "Counters unavailable: Redis is unreachable and this key's "
				    "local allowance on this sidecar is spent; calls with a budget "
				    "or rate limit are refused until Redis is back");
	}
	snprintf(reason, len, "counters unavailable (Redis %s)", fleet_state_name(st.state));
	return gate_refusal(REFUSAL_STORE_UNAVAILABLE, d,
			    "Counters unavailable: Redis, which holds this fleet's budgets and "
			    "rate limits, is unreachable (%s); calls with a budget or rate limit are "
			    "refused until it is back (counters.on_unreachable fail_closed)",
			    st.why[0] ? st.why : fleet_state_name(st.state));
}

static void on_reserved(void *arg, struct fleet_outcome *o)
{
	struct pending *p = arg;

	p->rc = o->rc;
	switch (o->rc) {
	case 0:
		p->t = xcalloc(1, sizeof(*p->t));
		p->t->fr = o->r;
		p->t->cost = p->cost;
		p->t->charge_failures = p->charge_failures;
		break;
	case -EDQUOT:
		p->error = gate_budget_error(&o->bw, p->reason, sizeof(p->reason));
		break;
	case -EAGAIN:
		p->error = gate_rate_error(&o->rw, p->reason, sizeof(p->reason));
		break;
	case -ECANCELED:
		break;          /* shutting down: no answer */
	default:
		p->error = unavailable(p->g, o->rc == -ENOTCONN && o->local, p->reason,
				       sizeof(p->reason));
		break;
	}
	if (p->inside) {
		p->done = true;
		return;
	}
	p->cb(p->arg, p->rc, p->t, p->error, p->reason);
	free(p);
}

/* The budgets that apply to who (scopes written to kscope and tscope): fb[0..*nb). */
static int applicable(const struct gate *g, const struct key_identity *who,
		      struct fleet_budget *fb, size_t *nb, char *kscope, char *tscope)
{
	struct budget_subject bs = { who->id, who->team, who->policy };
	const struct budget_spec *ks, *ts;
	size_t nk, nt;

	*nb = 0;
	budget_applicable(rules(g)->bc, &bs, &ks, &nk, &ts, &nt);
	if (snprintf(kscope, BUDGET_NAME_BUF, "key:%s", who->id) >= BUDGET_NAME_BUF ||
	    (nt && snprintf(tscope, BUDGET_NAME_BUF, "team:%s", who->team) >= BUDGET_NAME_BUF))
		return -EINVAL;
	for (size_t i = 0; i < nk; i++)
		fb[(*nb)++] = (struct fleet_budget){ kscope, &ks[i] };
	for (size_t i = 0; i < nt; i++)
		fb[(*nb)++] = (struct fleet_budget){ tscope, &ts[i] };
	return 0;
}

int gate_fleet_reserve_llm(struct gate *g, const struct key_identity *who, int64_t cost,
			   const struct fleet_rates *rs, size_t nrs, const char *provider,
			   const char *model, size_t *nbudgets,
			   void (*cb)(void *arg, struct fleet_outcome *o), void *arg)
{
	struct fleet_budget fb[FLEET_MAX_BUDGETS];
	char kscope[BUDGET_NAME_BUF], tscope[BUDGET_NAME_BUF];
	bool limited = false;
	size_t nb = 0;
	int rc;

	if (cost > 0 && (rc = applicable(g, who, fb, &nb, kscope, tscope)))
		return rc;
	for (size_t i = 0; i < nrs; i++)
		for (int l = 0; rs[i].lim && l < RATE_NLEVELS; l++)
			limited |= rs[i].lim->level[l].requests != 0;
	if (!nb && !limited)
		return 1;       /* nothing to count: no round trip */
	*nbudgets = nb;
	return fleet_reserve_sets(g->fleet, fb, nb, rs, nrs, who->id, provider, model,
				  nb ? cost : 0, clock_real_s(), cb, arg);
}

int gate_admit_fleet(struct gate *g, const struct gate_request *rq, gate_admit_fn cb, void *arg,
		     struct gate_ticket **ticket, cJSON **error, char *reason, size_t reason_len)
{
	struct rate_subject rs = { rq->who->id, rq->who->team, rq->who->policy };
	struct fleet_budget fb[FLEET_MAX_BUDGETS];
	struct rate_limits lim;
	char kscope[BUDGET_NAME_BUF], tscope[BUDGET_NAME_BUF];
	size_t nb = 0;
	int64_t cost = gate_call_cost(g, rq);
	bool limited = false;
	int rc;

	if (cost > 0 && (rc = applicable(g, rq->who, fb, &nb, kscope, tscope)))
		return rc;
	ratelimit_config_resolve(rules(g)->rlc, &rs, &lim);
	for (int l = 0; l < RATE_NLEVELS; l++)
		limited |= lim.level[l].requests != 0;
	if (!nb && !limited)
		return 0;       /* nothing to count: no round trip */
	if (!cb) {
		*error = unavailable(g, false, reason, reason_len);
		return -ENOTCONN;
	}
	struct pending *p = xcalloc(1, sizeof(*p));
	p->g = g;
	p->cb = cb;
	p->arg = arg;
	p->cost = cost;
	p->charge_failures = gate_charges_failures(g, rq->e, rq->server);
	p->inside = true;
	rc = fleet_reserve(g->fleet, fb, nb, &lim, rq->who->id, rq->server, rq->name, nb ? cost : 0,
			   clock_real_s(), on_reserved, p);
	p->inside = false;
	if (rc) {
		free(p);
		return rc;
	}
	if (!p->done)
		return -EINPROGRESS;
	/* Answered at once (Redis known unreachable): no wait. */
	rc = p->rc;
	*ticket = p->t;
	*error = p->error;
	snprintf(reason, reason_len, "%s", p->reason);
	free(p);
	return rc;
}

bool gate_counters_ready(const struct gate *g, char *why, size_t len)
{
	return !g->fleet || fleet_ready(g->fleet, why, len);
}

struct fleet *gate_fleet(struct gate *g)
{
	return g->fleet;
}

bool gate_reload_strands_charges(const struct gate *g, const struct config *cfg, char *why,
				 size_t len)
{
	const cJSON *now = json_get(cfg->raw, "counters");
	struct store_options so;
	struct fleet_stats st;
	bool same_store;

	if (!g->fleet)
		return false;
	fleet_stats(g->fleet, &st);
	if (!st.replay_queue)
		return false;
	if (store_options_parse(cfg->raw, cfg->state_dir, &so, NULL))
		return false;   /* the reload refuses it with the errors of its own check */
	same_store = !strcmp(so.path, g->store_opt.path);
	store_options_clear(&so);
	if (same_store && now && g->counters && cJSON_Compare(now, g->counters, 1))
		return false;
	/* A queued charge names the keys of the Redis it was made against, and its durable copy
	 * lives in this store: another backend or store would count it elsewhere or forget it. */
	snprintf(why, len, "%s changed while %zu charge%s wait%s for the running Redis (%s): "
		 "they are replayed there when it is back; reload again then, or restart to hand "
		 "them to the new counters (docs/counters.md, \"Reloading counters\")",
		 same_store ? "counters" : "store.path", st.replay_queue,
		 st.replay_queue == 1 ? "" : "s", st.replay_queue == 1 ? "s" : "",
		 st.why[0] ? st.why : fleet_state_name(st.state));
	return true;
}

