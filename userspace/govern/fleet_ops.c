/* fleet_ops: what the gate asks of the fleet's counters: reserve, commit, release, usage,
 * state. fleet.c owns the connection. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>

#include "base/alloc.h"
#include "base/hmap.h"
#include "govern/budget_int.h"
#include "govern/fleet_int.h"

/* ---- the interface ---- */

/* The buckets of rs that apply: q->rlevel, rspec, rset and nr. */
static void buckets_of(struct req *q, const struct fleet_rates *rs, size_t nrs,
		       const char *server, const char *tool)
{
	q->nr = 0;
	for (size_t i = 0; i < nrs; i++) {
		const struct rate_limits *lim = rs[i].lim;
		for (int l = 0; lim && l < RATE_NLEVELS; l++) {
			if (!lim->level[l].requests || (l >= RATE_SERVER && !server) ||
			    (l == RATE_TOOL && !tool))
				continue;
			q->rset[q->nr] = i;
			q->rlevel[q->nr] = (enum rate_level)l;
			q->rspec[q->nr++] = lim->level[l];
		}
	}
}

static size_t count_buckets(const struct fleet_rates *rs, size_t nrs, const char *server,
			    const char *tool)
{
	size_t n = 0;

	for (size_t i = 0; i < nrs; i++)
		for (int l = 0; rs[i].lim && l < RATE_NLEVELS; l++)
			n += rs[i].lim->level[l].requests && (l < RATE_SERVER || server) &&
			     (l != RATE_TOOL || tool);
	return n;
}

int fleet_reserve(struct fleet *f, const struct fleet_budget *b, size_t nb,
		  const struct rate_limits *lim, const char *key_id, const char *server,
		  const char *tool, int64_t cost, int64_t now, fleet_reserve_fn cb, void *arg)
{
	struct fleet_rates rs = { "r", lim };

	return fleet_reserve_sets(f, b, nb, &rs, 1, key_id, server, tool, cost, now, cb, arg);
}

/* The reservation request of budgets b[0..nb) and (buckets) the rate buckets of rs. */
static int build_reserve(struct fleet *f, const struct fleet_budget *b, size_t nb,
			 const struct fleet_rates *rs, size_t nrs, const char *key_id,
			 const char *server, const char *tool, int64_t cost, int64_t now,
			 struct req **out)
{
	struct req *q;
	struct fleet_resv *r;
	struct argv_b a = { 0 };
	char key[KEY_MAX], pid[32];
	size_t nr = 0;
	int rc = 0;

	q = fleet_req_new(f, RQ_RESERVE, SC_RESERVE);
	r = xcalloc(1, sizeof(*r));
	q->r = r;
	q->cost = cost;
	q->now = now;
	r->cost = cost;
	r->key_id = xstrdup(key_id);
	snprintf(r->rid, sizeof(r->rid), "%s.%" PRIu64, f->sidecar, ++f->seq);
	buckets_of(q, rs, nrs, server, tool);
	nr = q->nr;
	fleet_av_add(&a, "EVALSHA");
	fleet_av_add(&a, f->sha[SC_RESERVE]);
	fleet_av_addi(&a, (int64_t)(nb + nr));
	for (size_t i = 0; i < nb && !rc; i++) {
		q->spec[i] = *b[i].spec;
		rc = fleet_counter_key(f->cfg->prefix, b[i].scope, b[i].spec, now, key, sizeof(key));
		if (rc)
			break;
		fleet_av_add(&a, key);
		r->keys[i] = xstrdup(key);
		r->scopes[i] = xstrdup(b[i].scope);
		budget_period_id(b[i].spec, pid, sizeof(pid));
		r->periods[i] = xstrdup(pid);
		r->kind[i] = b[i].spec->period == BUDGET_ROLLING;
		int64_t slot = r->kind[i] ? budget_rolling_slot(b[i].spec->window) : 0;
		r->start[i] = r->kind[i] ? budget_floor_div(now, slot) * slot
			    : budget_period_start(b[i].spec->period, now);
		r->ttl[i] = fleet_counter_ttl(b[i].spec, now, f->cfg->resv_ttl_s);
		r->nb = i + 1;
	}
	for (size_t j = 0; j < nr && !rc; j++) {
		rc = fleet_bucket_key_ns(f->cfg->prefix, rs[q->rset[j]].ns, key_id, q->rlevel[j],
					 server, tool, key, sizeof(key));
		if (!rc)
			fleet_av_add(&a, key);
	}
	if (rc) {
		fleet_av_free(a.n, a.v, a.len);
		fleet_resv_free(r);
		free(q);
		return rc;
	}
	fleet_av_add(&a, r->rid);
	fleet_av_addi(&a, now);
	fleet_av_addi(&a, now + f->cfg->resv_ttl_s);
	fleet_av_addi(&a, cost);
	fleet_av_addi(&a, (int64_t)nb);
	fleet_av_addi(&a, (int64_t)nr);
	for (size_t i = 0; i < nb; i++) {
		int64_t slot = r->kind[i] ? budget_rolling_slot(b[i].spec->window) : 1;
		fleet_av_addi(&a, r->kind[i]);
		fleet_av_addi(&a, b[i].spec->limit);
		fleet_av_addi(&a, slot);
		fleet_av_addi(&a, r->kind[i] ? (b[i].spec->window + slot - 1) / slot + 1 : 1);
		fleet_av_addi(&a, r->ttl[i]);
	}
	for (size_t j = 0; j < nr; j++)
		fleet_av_rate(&a, &q->rspec[j]);
	fleet_req_argv(q, &a);
	for (size_t i = 0; i < nb; i++)
		q->b[i] = (struct fleet_budget){ r->scopes[i], &q->spec[i] };
	*out = q;
	return 0;
}

static void send_reserve(struct fleet *f, struct req *q)
{
	if (fleet_send_req(f, q)) {
		fleet_reserve_unreachable(f, q);
		fleet_req_free(q);
	}
}

/* On a cluster a call of a key in a team touches two hash tags, so two slots and two scripts:
 * the team's budgets are reserved first, then the key's budgets and rate buckets. A refusal
 * of the second gives the first back (the team briefly holds a reservation it did not need;
 * nothing is spent), and a call refused by the team's budget takes no token of the key's. */
struct chain {
	struct fleet *f;
	fleet_reserve_fn cb;
	void *arg;
	struct req *q2;                 /* the key's part, sent once the team's is reserved */
	struct fleet_resv *r1;
};

static void chain_second(void *arg, struct fleet_outcome *o)
{
	struct chain *c = arg;

	if (o->rc == 0) {
		c->r1->next = o->r;
		o->r = c->r1;
	} else {
		fleet_release(c->f, c->r1);
	}
	c->cb(c->arg, o);
	free(c);
}

static void chain_first(void *arg, struct fleet_outcome *o)
{
	struct chain *c = arg;
	struct req *q2 = c->q2;

	if (o->rc || o->r->local) {
		if (o->rc == 0) {
			/* admitted by the local allowance: so is the whole call, whose commit
			 * charges the key's counters too */
			q2->r->local = true;
			o->r->next = q2->r;
			q2->r = NULL;
		}
		fleet_resv_free(q2->r);
		fleet_req_free(q2);
		c->cb(c->arg, o);
		free(c);
		return;
	}
	c->r1 = o->r;
	q2->rcb = chain_second;
	q2->arg = c;
	send_reserve(c->f, q2);
}

int fleet_reserve_sets(struct fleet *f, const struct fleet_budget *b, size_t nb,
		       const struct fleet_rates *rs, size_t nrs, const char *key_id,
		       const char *server, const char *tool, int64_t cost, int64_t now,
		       fleet_reserve_fn cb, void *arg)
{
	struct fleet_budget team[FLEET_MAX_BUDGETS], rest[FLEET_MAX_BUDGETS];
	size_t nt = 0, nrest = 0;
	struct req *q, *q2;
	struct chain *c;
	int rc;

	if (nb > FLEET_MAX_BUDGETS || nrs > FLEET_MAX_RATE_SETS || cost < 0)
		return -EINVAL;
	for (size_t i = 0; f->cluster && i < nb; i++) {
		if (!strncmp(b[i].scope, "team:", 5))
			team[nt++] = b[i];
		else
			rest[nrest++] = b[i];
	}
	/* one script: no cluster, no team, or nothing of the key's beside the team's */
	if (!nt || (!nrest && !count_buckets(rs, nrs, server, tool))) {
		rc = build_reserve(f, b, nb, rs, nrs, key_id, server, tool, cost, now, &q);
		if (rc)
			return rc;
		q->rcb = cb;
		q->arg = arg;
		send_reserve(f, q);
		return 0;
	}
	if ((rc = build_reserve(f, team, nt, NULL, 0, key_id, server, tool, cost, now, &q)))
		return rc;
	if ((rc = build_reserve(f, rest, nrest, rs, nrs, key_id, server, tool, cost, now, &q2))) {
		fleet_resv_free(q->r);
		fleet_req_free(q);
		return rc;
	}
	c = xcalloc(1, sizeof(*c));
	*c = (struct chain){ .f = f, .cb = cb, .arg = arg, .q2 = q2 };
	q->rcb = chain_first;
	q->arg = c;
	send_reserve(f, q);
	return 0;
}

struct settle *fleet_settle_new(struct fleet *f, struct fleet_resv *r, int64_t amount)
{
	struct settle *s = xcalloc(1, sizeof(*s));
	struct argv_b a = { 0 };
	char marker[KEY_MAX + 80];

	fleet_av_add(&a, "EVALSHA");
	fleet_av_add(&a, f->sha[SC_SETTLE]);
	fleet_av_addi(&a, (int64_t)r->nb + (amount != 0));
	for (size_t i = 0; i < r->nb; i++)
		fleet_av_add(&a, r->keys[i]);
	if (amount) {
		/* Counter keys always carry a hash tag and fit KEY_MAX: this cannot fail; were it
		 * to, the marker without the tag still works on one server. */
		if (fleet_charge_marker(r->keys[0], r->rid, marker, sizeof(marker)))
			snprintf(marker, sizeof(marker), "%.*s:c:%s", KEY_MAX, r->keys[0], r->rid);
		fleet_av_add(&a, marker);
	}
	fleet_av_add(&a, r->rid);
	fleet_av_addi(&a, amount);
	fleet_av_addi(&a, (int64_t)r->nb);
	for (size_t i = 0; i < r->nb; i++) {
		fleet_av_addi(&a, r->kind[i]);
		fleet_av_addi(&a, r->start[i]);
		fleet_av_addi(&a, r->ttl[i]);
		s->scopes[i] = xstrdup(r->scopes[i]);
		s->periods[i] = xstrdup(r->periods[i]);
		s->items[i] = (struct store_spend){ .scope = s->scopes[i], .period = s->periods[i],
						    .start = r->start[i], .amount = amount,
						    .expires = r->start[i] + r->ttl[i] };
	}
	if (amount)
		fleet_av_addi(&a, f->cfg->charge_id_ttl_ms);
	s->id = xstrdup(r->rid);
	s->nb = r->nb;
	s->argc = a.n;
	s->argv = a.v;
	s->argvlen = a.len;
	return s;
}

/* 0: s->cb follows; otherwise settle_keep's answer. */
static int settle_send(struct fleet *f, struct settle *s)
{
	unsigned slot = fleet_argv_slot(s->argc, s->argv, s->argvlen);

	/* Behind queued charges: Redis gets them in the order they were made (a cluster: those
	 * of the same slot). */
	if (fleet_slot_up(f, slot) && (f->cluster ? !f->slot_queued[slot] : list_empty(&f->replay))) {
		struct req *q = fleet_settle_req(f, s);
		if (fleet_send_req(f, q) == 0)
			return 0;
		free(q);
	}
	return fleet_settle_keep(f, s);
}

static int commit_one(struct fleet *f, struct fleet_resv *r, int64_t amount, store_done_fn cb,
		      void *arg)
{
	struct settle *s;

	if (amount < 0 || amount > BUDGET_MONEY_MAX)
		amount = r->cost;
	if (!r->nb || (!amount && !r->cost)) {
		fleet_resv_free(r);
		return 1;
	}
	s = fleet_settle_new(f, r, amount);
	s->cb = cb;
	s->arg = arg;
	s->release = !amount;
	fleet_resv_free(r);
	return settle_send(f, s);
}

/* The parts of a reservation on two slots (a cluster) settle apart: the caller hears once. */
struct join {
	store_done_fn cb;
	void *arg;
	int n, err;
};

static void join_done(void *arg, int err)
{
	struct join *j = arg;

	if (err && !j->err)
		j->err = err;
	if (--j->n == 0) {
		if (j->cb)
			j->cb(j->arg, j->err);
		free(j);
	}
}

int fleet_commit(struct fleet *f, struct fleet_resv *r, int64_t amount, store_done_fn cb,
		 void *arg)
{
	struct join *j;
	int err;

	if (!r)
		return -EINVAL;
	if (!r->next)
		return commit_one(f, r, amount, cb, arg);
	j = xcalloc(1, sizeof(*j));
	*j = (struct join){ .cb = cb, .arg = arg, .n = 1 };
	while (r) {
		struct fleet_resv *next = r->next;
		int rc;

		r->next = NULL;
		j->n++;
		rc = commit_one(f, r, amount, join_done, j);
		if (rc) {
			j->n--;
			if (rc < 0 && !j->err)
				j->err = rc;
		}
		r = next;
	}
	if (--j->n)
		return 0;
	err = j->err;
	free(j);
	return err ? err : 1;
}

void fleet_release(struct fleet *f, struct fleet_resv *r)
{
	struct settle *s;

	if (!r)
		return;
	if (r->next) {
		struct fleet_resv *next = r->next;
		r->next = NULL;
		fleet_release(f, next);
	}
	if (r->local) {
		/* A local admission reserved nothing in Redis: give the allowance back. */
		struct allowance *a = r->allowance ? hmap_get(f->allow, r->key_id) : NULL;
		if (a) {
			a->calls--;
			a->spent -= r->cost;
		}
		fleet_resv_free(r);
		return;
	}
	if (!r->nb || !r->cost) {
		fleet_resv_free(r);
		return;
	}
	s = fleet_settle_new(f, r, 0);
	s->release = true;
	fleet_resv_free(r);
	/* A release that cannot reach Redis needs no replay: the deadline gives it back. */
	struct req *q = fleet_settle_req(f, s);
	if (fleet_send_req(f, q) == 0)
		return;
	free(q);
	fleet_settle_free(s);
}

int fleet_debit(struct fleet *f, const struct fleet_rates *rs, const char *key_id,
		const char *server, const char *tool, int64_t n, store_done_fn cb, void *arg)
{
	struct req *q;
	struct argv_b a = { 0 };
	char key[KEY_MAX];
	int rc = 0;

	if (!rs || n <= 0)
		return -EINVAL;
	if (f->state != FLEET_UP && !f->cluster)
		return 1;
	q = fleet_req_new(f, RQ_DEBIT, SC_DEBIT);
	buckets_of(q, rs, 1, server, tool);
	if (!q->nr) {
		free(q);
		return 1;
	}
	fleet_av_add(&a, "EVALSHA");
	fleet_av_add(&a, f->sha[SC_DEBIT]);
	fleet_av_addi(&a, (int64_t)q->nr);
	for (size_t j = 0; j < q->nr && !rc; j++)
		if (!(rc = fleet_bucket_key_ns(f->cfg->prefix, rs->ns, key_id, q->rlevel[j], server,
					       tool, key, sizeof(key))))
			fleet_av_add(&a, key);
	fleet_av_addi(&a, n);
	for (size_t j = 0; j < q->nr; j++)
		fleet_av_rate(&a, &q->rspec[j]);
	q->dcb = cb;
	q->arg = arg;
	fleet_req_argv(q, &a);
	if (rc || fleet_send_req(f, q)) {
		fleet_req_free(q);
		return rc ? rc : 1;
	}
	return 0;
}

int fleet_usage(struct fleet *f, const char *scope, const struct budget_spec *spec, int64_t now,
		fleet_usage_fn cb, void *arg)
{
	struct req *q;
	struct argv_b a = { 0 };
	char key[KEY_MAX];
	int64_t slot = spec->period == BUDGET_ROLLING ? budget_rolling_slot(spec->window) : 1;
	int rc = fleet_counter_key(f->cfg->prefix, scope, spec, now, key, sizeof(key));

	if (rc)
		return rc;
	if (f->state != FLEET_UP && !f->cluster)
		return -ENOTCONN;
	fleet_av_add(&a, "EVALSHA");
	fleet_av_add(&a, f->sha[SC_USAGE]);
	fleet_av_add(&a, "1");
	fleet_av_add(&a, key);
	fleet_av_addi(&a, spec->period == BUDGET_ROLLING);
	fleet_av_addi(&a, now);
	fleet_av_addi(&a, slot);
	fleet_av_addi(&a, spec->period == BUDGET_ROLLING ? (spec->window + slot - 1) / slot + 1 : 1);
	q = fleet_req_new(f, RQ_USAGE, SC_USAGE);
	q->ucb = cb;
	q->arg = arg;
	fleet_req_argv(q, &a);
	if (fleet_send_req(f, q)) {
		fleet_req_free(q);
		return -ENOTCONN;
	}
	return 0;
}

void fleet_stats(const struct fleet *f, struct fleet_stats *out)
{
	*out = (struct fleet_stats){
		.state = f->state, .fail_closed = f->cfg->fail_closed, .errors = f->errors,
		.reconnects = f->reconnects, .replayed = f->replayed,
		.local_admits = f->local_admits, .replay_queue = f->nreplay,
		.replay_stored = f->nstored, .duplicates = f->duplicates,
		.inflight = f->ninflight,
	};
	snprintf(out->why, sizeof(out->why), "%s", f->why);
}

bool fleet_ready(const struct fleet *f, char *why, size_t len)
{
	if (f->state == FLEET_UP || !f->cfg->fail_closed)
		return true;
	snprintf(why, len, "counters unavailable: Redis %s%s%s", fleet_state_name(f->state),
		 f->why[0] ? ": " : "", f->why);
	return false;
}

int fleet_metrics(const struct fleet *f, struct evbuffer *out)
{
	int rc = evbuffer_add_printf(out,
		"# HELP mcpwarden_counters_backend_up Redis counters: 1 connected, 0 unreachable.\n"
		"# TYPE mcpwarden_counters_backend_up gauge\n"
		"mcpwarden_counters_backend_up{backend=\"redis\",state=\"%s\",on_unreachable=\"%s\"} %d\n"
		"# HELP mcpwarden_counters_replay_queue Charges kept on this sidecar for Redis.\n"
		"# TYPE mcpwarden_counters_replay_queue gauge\n"
		"mcpwarden_counters_replay_queue %zu\n"
		"# HELP mcpwarden_counters_replay_stored Of those, kept in the store (replayed after a restart).\n"
		"# TYPE mcpwarden_counters_replay_stored gauge\n"
		"mcpwarden_counters_replay_stored %zu\n"
		"# HELP mcpwarden_counters_inflight Commands sent to Redis, not answered yet.\n"
		"# TYPE mcpwarden_counters_inflight gauge\n"
		"mcpwarden_counters_inflight %zu\n"
		"# HELP mcpwarden_counters_errors_total Connection losses, timeouts and error answers.\n"
		"# TYPE mcpwarden_counters_errors_total counter\n"
		"mcpwarden_counters_errors_total %llu\n"
		"# HELP mcpwarden_counters_reconnects_total Connection attempts after a loss.\n"
		"# TYPE mcpwarden_counters_reconnects_total counter\n"
		"mcpwarden_counters_reconnects_total %llu\n"
		"# HELP mcpwarden_counters_replayed_total Kept charges Redis took later.\n"
		"# TYPE mcpwarden_counters_replayed_total counter\n"
		"mcpwarden_counters_replayed_total %llu\n"
		"# HELP mcpwarden_counters_local_admits_total Calls admitted by the local allowance.\n"
		"# TYPE mcpwarden_counters_local_admits_total counter\n"
		"mcpwarden_counters_local_admits_total %llu\n"
		"# HELP mcpwarden_counters_duplicates_total Replayed commits Redis had counted already.\n"
		"# TYPE mcpwarden_counters_duplicates_total counter\n"
		"mcpwarden_counters_duplicates_total %llu\n",
		fleet_state_name(f->state), f->cfg->fail_closed ? "fail_closed" : "local",
		f->state == FLEET_UP, f->nreplay, f->nstored, f->ninflight, (unsigned long long)f->errors,
		(unsigned long long)f->reconnects, (unsigned long long)f->replayed,
		(unsigned long long)f->local_admits, (unsigned long long)f->duplicates);
	if (rc >= 0 && f->cluster)
		return fleet_cluster_metrics(f, out);
	return rc < 0 ? -ENOMEM : 0;
}
