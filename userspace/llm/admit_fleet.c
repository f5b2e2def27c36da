/* admit_fleet: a request's budgets and rate limits counted by the fleet in Redis
 * ("counters": {"backend": "redis"}, docs/counters.md), as tool calls are: the estimate
 * reserved in every budget of the key and its team and one token taken from each request and
 * token bucket, in one script, all or none. The answer comes later on the loop, and the
 * request may be gone by then: its reservation is then released. The answer's tokens are
 * taken from the token buckets after it (llm_fleet_debit), its cost committed by route.c. */
#include "llm/llm_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#include "govern/budget.h"
#include "govern/fleet.h"
#include "govern/gate.h"
#include "govern/ratelimit.h"

struct llm_admission {
	struct llm_req *r;              /* NULL: the request is gone */
	struct fleet *f;
	size_t nb;                      /* budgets the reservation holds */
	bool inside;                    /* the reservation call has not returned yet */
	bool done;                      /* answered while inside */
	struct fleet_outcome o;
};

/* The route's two sets of buckets: requests, then tokens (fleet_outcome.rate_set). */
static void rates_of(const struct llm_req *r, struct rate_limits lim[2],
		     struct fleet_rates rs[2])
{
	struct rate_subject who = llm_rate_who(r);

	ratelimit_config_resolve(r->cfg->requests, &who, &lim[0]);
	ratelimit_config_resolve(r->cfg->tokens, &who, &lim[1]);
	rs[0] = (struct fleet_rates){ "llm:requests", &lim[0] };
	rs[1] = (struct fleet_rates){ "llm:tokens", &lim[1] };
}

static void unavailable(struct failure *f, const struct fleet *fl, bool local)
{
	struct fleet_stats st;

	fleet_stats(fl, &st);
	if (local)
		llm_set_failure(f, 503, "server_error", "local_allowance_spent",
				"Counters unavailable: Redis is unreachable and this key's local "
				"allowance on this sidecar is spent; requests with a budget or rate "
				"limit are refused until Redis is back");
	else
		llm_set_failure(f, 503, "server_error", "counters_unavailable",
				"Counters unavailable: Redis, which holds this fleet's budgets and "
				"rate limits, is unreachable (%s); requests with a budget or rate "
				"limit are refused until it is back", st.why[0] ? st.why
				: fleet_state_name(st.state));
	f->retry_after_s = 1;
}

/* 0: admitted (r->fresv holds the reservation); else *f says why. */
static int outcome(struct llm_req *r, struct fleet *fl, size_t nb, struct fleet_outcome *o,
		   struct failure *f)
{
	switch (o->rc) {
	case 0:
		/* kept even without a budget: settling it keeps a local admission's allowance
		 * spent, releasing it (a failure) gives it back, as for a tool call */
		r->fresv = o->r;
		r->fresv_charges = nb > 0;
		return 0;
	case -EDQUOT:
		llm_budget_failure(f, &o->bw, clock_real_s());
		break;
	case -EAGAIN:
		llm_rate_failure(f, &o->rw, o->rate_set == 1 ? "tokens" : "requests");
		break;
	case -ECANCELED:
		llm_set_failure(f, 503, "server_error", "shutting_down",
				"the gateway is reloading or stopping: retry");
		break;
	default:                /* -ENOTCONN, -EIO */
		unavailable(f, fl, o->rc == -ENOTCONN && o->local);
		break;
	}
	return o->rc;
}

static void on_reserved(void *arg, struct fleet_outcome *o)
{
	struct llm_admission *a = arg;
	struct llm_req *r = a->r;
	struct fleet *fl = a->f;
	size_t nb = a->nb;
	struct failure f;

	if (a->inside) {
		a->o = *o;
		a->done = true;
		return;
	}
	free(a);
	if (!r) {               /* the request went meanwhile */
		if (o->rc == 0)
			fleet_release(fl, o->r);
		return;
	}
	r->admission = NULL;
	if (outcome(r, fl, nb, o, &f))
		llm_fail(r, &f);
	else
		llm_forward(r);
}

int llm_admit_fleet(struct llm_req *r, struct failure *f)
{
	struct rate_limits lim[2];
	struct fleet_rates rs[2];
	struct llm_admission *a;
	struct fleet *fl = gate_fleet(r->l->gate);
	int rc;

	r->estimate = llm_estimate(r->cfg, r->model, r->body, r->ep, &r->est_out_tokens);
	rates_of(r, lim, rs);
	a = xcalloc(1, sizeof(*a));
	a->r = r;
	a->f = fl;
	a->inside = true;
	rc = gate_fleet_reserve_llm(r->l->gate, &r->who, r->estimate > 0 ? r->estimate : 0, rs, 2,
				    r->prov->name, r->model->name, &a->nb, on_reserved, a);
	a->inside = false;
	if (rc == 1) {          /* nothing to count */
		free(a);
		return 0;
	}
	if (rc < 0) {
		free(a);
		return llm_internal_failure(f, "budget reservation", rc);
	}
	if (!a->done) {
		r->admission = a;
		return -EINPROGRESS;
	}
	/* Answered at once (Redis known unreachable): no wait. */
	struct fleet_outcome o = a->o;
	size_t nb = a->nb;
	free(a);
	return outcome(r, fl, nb, &o, f);
}

void llm_admission_cancel(struct llm_req *r)
{
	if (r->admission) {
		r->admission->r = NULL;
		r->admission = NULL;
	}
}

int llm_fleet_debit(struct llm_req *r, int64_t n, void (*done)(void *arg, int err))
{
	struct rate_subject who = llm_rate_who(r);
	struct rate_limits lim;
	struct fleet_rates rs = { "llm:tokens", &lim };
	int rc;

	ratelimit_config_resolve(r->cfg->tokens, &who, &lim);
	rc = fleet_debit(gate_fleet(r->l->gate), &rs, r->who.id, r->prov->name, r->model->name,
			 n, done, r);
	if (rc < 0)
		log_warn("llm: the tokens of a request could not be taken in Redis: %s",
			 strerror(-rc));
	return rc == 0 && done ? 0 : 1;
}
