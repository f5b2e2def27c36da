/* fleet: counters in Redis over hiredis's async API, on the event loop. */
#include "govern/fleet.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/random.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libevent.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/event_opt.h"
#include "base/hmap.h"
#include "base/list.h"
#include "base/log.h"
#include "govern/budget_int.h"
#include "govern/fleet_int.h"
#include "govern/fleet_lua.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000

const char *const fleet_script_src[SC_N] = { FLEET_LUA_RESERVE, FLEET_LUA_SETTLE, FLEET_LUA_USAGE,
					       FLEET_LUA_DEBIT };

const char *fleet_state_name(enum fleet_state s)
{
	static const char *const n[] = { "connecting", "up", "down" };
	return n[s];
}

/* ---- argument vectors ---- */

void fleet_av_add(struct argv_b *a, const char *s)
{
	if (a->n == a->cap) {
		a->cap = a->cap ? 2 * a->cap : 32;
		a->v = xrealloc(a->v, (size_t)a->cap * sizeof(*a->v));
		a->len = xrealloc(a->len, (size_t)a->cap * sizeof(*a->len));
	}
	a->v[a->n] = xstrdup(s);
	a->len[a->n++] = strlen(s);
}

void fleet_av_addi(struct argv_b *a, int64_t v)
{
	char b[24];

	snprintf(b, sizeof(b), "%" PRId64, v);
	fleet_av_add(a, b);
}

void fleet_av_rate(struct argv_b *a, const struct rate_spec *r)
{
	fleet_av_addi(a, r->requests);
	fleet_av_addi(a, r->burst);
	fleet_av_addi(a, (int64_t)(r->period_ns / 1000));
}

struct req *fleet_req_new(struct fleet *f, enum req_kind kind, enum script sc)
{
	struct req *q = xcalloc(1, sizeof(*q));

	*q = (struct req){ .f = f, .kind = kind, .sc = sc };
	return q;
}

void fleet_req_argv(struct req *q, struct argv_b *a)
{
	q->argc = a->n;
	q->argv = a->v;
	q->argvlen = a->len;
}

void fleet_av_free(int argc, char **argv, size_t *len)
{
	for (int i = 0; i < argc; i++)
		free(argv[i]);
	free(argv);
	free(len);
}

/* ---- state ---- */

static void set_why(struct fleet *f, const char *what, const char *detail)
{
	snprintf(f->why, sizeof(f->why), "%s%s%s", what, detail ? ": " : "", detail ? detail : "");
}

static void go_down(struct fleet *f, const char *what, const char *detail);
static void start_connect(struct fleet *f);
static void schedule_reconnect(struct fleet *f);

void fleet_go_down(struct fleet *f, const char *what, const char *detail)
{
	go_down(f, what, detail);
}

void fleet_schedule_reconnect(struct fleet *f)
{
	schedule_reconnect(f);
}
static void send_next_replay(struct fleet *f);

static void schedule_reconnect(struct fleet *f)
{
	struct timeval tv = { f->backoff_ms / 1000, (f->backoff_ms % 1000) * 1000 };

	if (f->freeing)
		return;
	event_add(f->retry, &tv);
	f->backoff_ms = f->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : f->backoff_ms * 2;
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
	struct fleet *f = arg;

	f->reconnects++;
	start_connect(f);
}

/* Drop the connection from outside hiredis's callbacks: every pending command fails now. */
static void drop(struct fleet *f, const char *what, const char *detail)
{
	redisAsyncContext *ac = f->ac;

	go_down(f, what, detail);
	if (ac) {
		f->ac = NULL;
		ac->data = NULL;
		redisAsyncFree(ac);
	}
	schedule_reconnect(f);
}

void fleet_drop(struct fleet *f, const char *what, const char *detail)
{
	drop(f, what, detail);
}

void fleet_reconnect_now(struct fleet *f)
{
	event_del(f->retry);
	f->backoff_ms = BACKOFF_MIN_MS;
	start_connect(f);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct fleet *f = arg;
	uint64_t now = clock_mono_ns();

	if (f->cfg->nsentinels && !f->watch_ac && f->state == FLEET_UP &&
	    now - f->watch_ns > BACKOFF_MAX_MS * 1000000ull)
		fleet_watch_start(f);
	if (f->cluster) {
		fleet_cluster_tick(f, now);
		return;
	}
	if (!f->ac)
		return;
	if (f->state != FLEET_UP &&
	    now - f->connect_ns > (uint64_t)f->cfg->connect_timeout_ms * 1000000u) {
		drop(f, "no connection within counters.connect_timeout_ms", NULL);
		return;
	}
	if (!list_empty(&f->inflight)) {
		struct req *q = list_first_entry(&f->inflight, struct req, link);
		if (now - q->sent_ns > (uint64_t)f->cfg->command_timeout_ms * 1000000u)
			drop(f, "no answer within counters.command_timeout_ms", NULL);
	}
}

static void go_down(struct fleet *f, const char *what, const char *detail)
{
	set_why(f, what, detail);
	if (f->state != FLEET_DOWN)
		log_warn("counters: Redis unreachable (%s): %s", f->why, f->cfg->fail_closed
			 ? "governed calls are refused (on_unreachable fail_closed)"
			 : "calls are admitted within the local allowance (on_unreachable local)");
	f->state = FLEET_DOWN;
	f->errors++;
}

void fleet_go_up(struct fleet *f)
{
	const struct fleet_addr *a = f->cfg->nsentinels ? &f->master : &f->cfg->addr;
	char desc[64];

	f->state = FLEET_UP;
	f->backoff_ms = BACKOFF_MIN_MS;
	f->why[0] = 0;
	if (f->cluster) {
		fleet_cluster_describe(f, desc, sizeof(desc));
		log_info("counters: Redis %s up (%zu charges to replay)", desc, f->nreplay);
	} else if (a->path)
		log_info("counters: Redis %s up (%zu charges to replay)", a->path, f->nreplay);
	else
		log_info("counters: Redis %s:%d up (%zu charges to replay)", a->host, a->port,
			 f->nreplay);
	/* A new outage gets a new allowance. */
	hmap_free(f->allow, free);
	f->allow = hmap_new();
	send_next_replay(f);
}

/* ---- commands ---- */

static void on_reply(redisAsyncContext *ac, void *reply, void *priv);

int fleet_send_on(struct fleet *f, redisAsyncContext *ac, struct req *q)
{
	if (!ac || redisAsyncCommandArgv(ac, on_reply, q, q->argc, (const char **)q->argv,
					 q->argvlen) != REDIS_OK)
		return -ENOTCONN;
	q->conn = ac;
	q->sent_ns = clock_mono_ns();
	list_add_tail(&q->link, &f->inflight);
	f->ninflight++;
	return 0;
}

int fleet_send_req(struct fleet *f, struct req *q)
{
	if (f->cluster)
		return fleet_cluster_send(f, q);
	return f->state == FLEET_UP ? fleet_send_on(f, f->ac, q) : -ENOTCONN;
}

unsigned fleet_argv_slot(int argc, char *const *argv, const size_t *len)
{
	return argc > 3 ? fleet_key_slot(argv[3], len[3]) : 0;
}

bool fleet_slot_up(const struct fleet *f, unsigned slot)
{
	return f->cluster ? fleet_cluster_slot_up(f, slot) : f->state == FLEET_UP;
}

void fleet_queue_add(struct fleet *f, struct settle *s)
{
	s->slot = fleet_argv_slot(s->argc, s->argv, s->argvlen);
	list_add_tail(&s->link, &f->replay);
	s->queued = true;
	f->nreplay++;
	f->slot_queued[s->slot]++;
}

void fleet_queue_del(struct fleet *f, struct settle *s)
{
	list_del(&s->link);
	f->nreplay--;
	f->slot_queued[s->slot]--;
}

void fleet_req_free(struct req *q)
{
	fleet_av_free(q->argc, q->argv, q->argvlen);
	free(q);
}

void fleet_resv_free(struct fleet_resv *r)
{
	if (!r)
		return;
	fleet_resv_free(r->next);
	for (size_t i = 0; i < r->nb; i++) {
		free(r->keys[i]);
		free(r->scopes[i]);
		free(r->periods[i]);
	}
	free(r->key_id);
	free(r);
}

void fleet_settle_free(struct settle *s)
{
	fleet_av_free(s->argc, s->argv, s->argvlen);
	free(s->id);
	for (size_t i = 0; i < s->nb; i++) {
		free(s->scopes[i]);
		free(s->periods[i]);
	}
	free(s);
}

/* ---- reservations ---- */

static void reserve_done(struct req *q, struct fleet_outcome *o)
{
	if (o->rc && q->r) {
		fleet_resv_free(q->r);
		q->r = NULL;
	}
	o->r = q->r;
	q->r = NULL;
	q->rcb(q->arg, o);
}

/* Redis is away: fail closed, or admit within this key's allowance for the outage. */
void fleet_reserve_unreachable(struct fleet *f, struct req *q)
{
	struct fleet_outcome o = { .rc = f->freeing ? -ECANCELED : -ENOTCONN };
	const char *key = q->r->key_id;
	struct allowance *a;

	if (!f->cfg->fail_closed && key && !f->freeing) {
		a = hmap_get(f->allow, key);
		if (!a) {
			a = xcalloc(1, sizeof(*a));
			if (hmap_put(f->allow, key, a, NULL)) {
				free(a);
				a = NULL;
			}
		}
		o.local = true;
		int64_t calls = f->cfg->local_calls ? f->cfg->local_calls : INT64_MAX;
		/* Past FLEET_REPLAY_MAX kept charges no more are made: memory and the store's
		 * table stay bounded while Redis is away. */
		if (a && a->calls < calls && a->spent + q->cost <= f->cfg->local_spend &&
		    f->nreplay < FLEET_REPLAY_MAX) {
			a->calls++;
			a->spent += q->cost;
			q->r->local = true;
			q->r->allowance = true;
			f->local_admits++;
			o.rc = 0;
		}
	}
	reserve_done(q, &o);
}

static void reserve_reply(struct fleet *f, struct req *q, redisReply *rep)
{
	struct fleet_outcome o = { .rc = 0 };

	if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 ||
	    rep->element[0]->type != REDIS_REPLY_INTEGER) {
		o.rc = -EIO;
	} else if (rep->element[0]->integer == 1 && rep->elements == 5) {
		size_t i = (size_t)rep->element[1]->integer - 1;
		struct budget_refusal *w = &o.bw;
		const struct budget_spec *sp = &q->spec[i < q->r->nb ? i : 0];

		o.rc = -EDQUOT;
		snprintf(w->name, sizeof(w->name), "%s", sp->name);
		snprintf(w->scope, sizeof(w->scope), "%s", q->r->scopes[i < q->r->nb ? i : 0]);
		budget_period_id(sp, w->period, sizeof(w->period));
		w->spent = rep->element[2]->integer;
		w->reserved = rep->element[3]->integer;
		w->limit = sp->limit;
		w->cost = q->cost;
		if (q->cost > sp->limit)
			w->resets_at = 0;
		else if (sp->period == BUDGET_ROLLING) {
			int64_t slot = budget_rolling_slot(sp->window);
			/* when the oldest slot leaves the window (as budget.c counts it) */
			w->resets_at = rep->element[4]->integer
				? rep->element[4]->integer + ((sp->window + slot - 1) / slot + 1) * slot
				: q->now;
		} else
			w->resets_at = budget_period_next(sp->period,
							  budget_period_start(sp->period, q->now));
	} else if (rep->element[0]->integer == 2 && rep->elements == 3) {
		size_t j = (size_t)rep->element[1]->integer - 1;

		o.rc = -EAGAIN;
		if (j >= q->nr)
			j = 0;
		o.rw.level = q->rlevel[j];
		o.rw.spec = q->rspec[j];
		o.rate_set = q->rset[j];
		o.rw.retry_after_ms = (uint64_t)rep->element[2]->integer;
	} else if (rep->element[0]->integer != 0) {
		o.rc = -EIO;
	}
	if (o.rc == -EIO) {
		f->errors++;
		log_warn("counters: unexpected answer to a reservation");
	}
	reserve_done(q, &o);
}

/* ---- charges ---- */

static void send_next_replay(struct fleet *f);

static void settle_stored(void *arg, int err)
{
	struct settle *s = arg;
	store_done_fn cb = s->cb;
	void *cbarg = s->arg;
	struct fleet *f = s->arg2;

	s->cb = NULL;
	s->storing = false;
	if (err && s->durable) {
		/* Not in the store after all: kept in memory only (the caller hears err). */
		s->durable = false;
		f->nstored--;
	}
	if (cb)
		cb(cbarg, err);
	send_next_replay(f);
}

/* Redis did not take the charge: keep it (durable in the store, the spend and the command to
 * replay in one transaction, before the caller answers) and replay it when Redis is back. A
 * release needs nothing: its deadline gives it back. Returns 0: s->cb follows (when set); 1:
 * nothing to keep, or no store (tests), s->cb is not called; < 0: the store could not take
 * it (kept in memory for the replay), s->cb is not called. */
int fleet_settle_keep(struct fleet *f, struct settle *s)
{
	char *cmd;
	int rc;

	if (s->release || f->freeing) {
		rc = s->release ? 1 : -ECANCELED;
		fleet_settle_free(s);
		return rc;
	}
	fleet_queue_add(f, s);
	if (!f->st) {
		s->cb = NULL;
		return 1;
	}
	s->arg2 = f;
	cmd = fleet_pending_encode(s);
	rc = cmd ? store_charge_pending(f->st, s->items, s->nb, s->id, cmd, settle_stored, s)
		 : -ENOMEM;
	free(cmd);
	if (rc == 0) {
		s->storing = true;
		s->durable = true;
		f->nstored++;
		return 0;
	}
	s->cb = NULL;           /* failed: the caller hears */
	return rc;
}

struct req *fleet_settle_req(struct fleet *f, struct settle *s)
{
	struct req *q = fleet_req_new(f, RQ_SETTLE, SC_SETTLE);

	q->s = s;
	/* the settle owns the vector: the request borrows it */
	free(s->argv[0]);
	free(s->argv[1]);
	s->argv[0] = xstrdup("EVALSHA");
	s->argvlen[0] = 7;
	s->argv[1] = xstrdup(f->sha[SC_SETTLE]);
	s->argvlen[1] = strlen(s->argv[1]);
	q->argc = s->argc;
	q->argv = s->argv;
	q->argvlen = s->argvlen;
	return q;
}

static void settle_reply(struct fleet *f, struct req *q, redisReply *rep)
{
	struct settle *s = q->s;
	bool ok = rep && rep->type != REDIS_REPLY_ERROR;

	if (rep && !ok) {
		f->errors++;
		log_warn("counters: Redis refused a charge: %s", rep->str);
	}
	if (ok && fleet_settle_answer(rep) == 1) {
		/* Its first sending reached Redis, the reply did not: counted once. */
		f->duplicates++;
		log_info("counters: charge %s was counted already (its reply had been lost)", s->id);
	}
	if (s->queued) {
		/* A replayed one: done, or it stays first until the next connection. */
		f->replaying = false;
		if (!ok)
			return;
		fleet_queue_del(f, s);
		f->replayed++;
		if (s->durable) {
			f->nstored--;
			/* Deleted on the writer thread; a row left by a failure is replayed at the
			 * next start and counted once by its id (charge_id_ttl). */
			if (f->st && store_pending_delete(f->st, s->id, NULL, NULL))
				log_warn("counters: kept charge %s stays in the store", s->id);
		}
		fleet_settle_free(s);
		send_next_replay(f);
		return;
	}
	store_done_fn cb = s->cb;
	void *arg = s->arg;
	int rc = 0;

	if (!ok)
		rc = fleet_settle_keep(f, s);
	else
		fleet_settle_free(s);
	if (cb && (ok || rc))
		cb(arg, rc < 0 ? rc : 0);
}

/* The oldest queued charge whose server is up (a cluster's other nodes may be down: their
 * charges wait, each slot's in order). */
static void send_next_replay(struct fleet *f)
{
	struct settle *s;

	if (f->replaying)
		return;
	list_for_each_entry(s, &f->replay, link) {
		if (!fleet_slot_up(f, s->slot))
			continue;
		if (s->storing)         /* durable first: settle_stored calls again */
			return;
		struct req *q = fleet_settle_req(f, s);
		f->replaying = true;
		if (fleet_send_req(f, q)) {
			f->replaying = false;
			free(q);
		}
		return;
	}
}

void fleet_replay_kick(struct fleet *f)
{
	send_next_replay(f);
}

/* ---- replies ---- */

/* Anything but ROLE's answer of a replica or a sentinel. */
static bool is_master(const redisReply *rep)
{
	return rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 ||
	       rep->element[0]->type != REDIS_REPLY_STRING || !strcmp(rep->element[0]->str, "master");
}

static bool is_noscript(const redisReply *rep)
{
	return rep && rep->type == REDIS_REPLY_ERROR && !strncmp(rep->str, "NOSCRIPT", 8);
}

static void handle_reply(struct fleet *f, redisAsyncContext *ac, struct req *q, redisReply *rep);

static void on_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	struct req *q = priv;
	struct fleet *f = q->f;
	redisReply *rep = reply;

	list_del(&q->link);
	f->ninflight--;
	if (f->cluster && fleet_cluster_reply(f, ac, q, &rep))
		return;
	handle_reply(f, ac, q, rep);
}

void fleet_req_fail(struct fleet *f, struct req *q)
{
	handle_reply(f, NULL, q, NULL);
}

static void handle_reply(struct fleet *f, redisAsyncContext *ac, struct req *q, redisReply *rep)
{
	/* Redis lost its script cache (a restart, SCRIPT FLUSH): the script body again, which
	 * also caches it, and SCRIPT LOAD on the next connection. */
	if (is_noscript(rep) && !q->retried && (f->ac || f->cluster)) {
		q->retried = true;
		free(q->argv[0]);
		free(q->argv[1]);
		q->argv[0] = xstrdup("EVAL");
		q->argvlen[0] = 4;
		q->argv[1] = xstrdup(fleet_script_src[q->sc]);
		q->argvlen[1] = strlen(q->argv[1]);
		if (fleet_send_req(f, q) == 0)
			return;
	}
	/* A master demoted under us (a failover the sentinels have not told us of yet): the
	 * command fails as any error does, and the connection is closed once its pending replies
	 * are in, so that the next one asks the sentinels again. */
	if (rep && rep->type == REDIS_REPLY_ERROR && !strncmp(rep->str, "READONLY", 8) && ac &&
	    f->ac == ac) {
		set_why(f, "Redis is a replica now", rep->str);
		redisAsyncDisconnect(ac);
	}
	switch (q->kind) {
	case RQ_INIT:
		if (!rep || rep->type == REDIS_REPLY_ERROR) {
			if (rep && f->ac == ac) {
				set_why(f, "Redis refused the connection's set-up", rep->str);
				log_warn("counters: %s", f->why);
				f->errors++;
			}
		} else if (q->sc < SC_N && rep->type == REDIS_REPLY_STRING && rep->len == 40) {
			memcpy(f->sha[q->sc], rep->str, 40);
		} else if (!is_master(rep) && f->ac == ac) {
			/* ROLE: the sentinels named a replica (their view lags a failover) */
			set_why(f, "the address the sentinels named is not a master", NULL);
			log_warn("counters: %s", f->why);
			redisAsyncDisconnect(ac);
			fleet_req_free(q);
			return;
		}
		if (f->ac == ac && rep && rep->type != REDIS_REPLY_ERROR && --f->loads_pending == 0)
			fleet_go_up(f);
		fleet_req_free(q);
		return;
	case RQ_RESERVE:
		if (!rep && q->r->nb && q->cost && !f->freeing) {
			/* Redis may have run it before the connection went: give it back first
			 * thing on the next connection rather than hold it until its deadline. */
			struct settle *s = fleet_settle_new(f, q->r, 0);
			fleet_queue_add(f, s);
		}
		if (!rep)
			fleet_reserve_unreachable(f, q);
		else if (rep->type == REDIS_REPLY_ERROR) {
			struct fleet_outcome o = { .rc = -EIO };
			f->errors++;
			log_warn("counters: Redis refused a reservation: %s", rep->str);
			reserve_done(q, &o);
		} else {
			reserve_reply(f, q, rep);
		}
		fleet_req_free(q);
		return;
	case RQ_SETTLE:
		settle_reply(f, q, rep);
		free(q);
		return;
	case RQ_USAGE:
		if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2)
			q->ucb(q->arg, rep ? -EIO : -ENOTCONN, 0, 0);
		else
			q->ucb(q->arg, 0, rep->element[0]->integer, rep->element[1]->integer);
		fleet_req_free(q);
		return;
	case RQ_DEBIT:
		if (rep && rep->type == REDIS_REPLY_ERROR) {
			f->errors++;
			log_warn("counters: Redis refused a token debit: %s", rep->str);
		}
		if (q->dcb)
			q->dcb(q->arg, 0);
		break;
	case RQ_SENTINEL:
	case RQ_ASKING:
		break;
	}
	fleet_req_free(q);
}

/* ---- connecting ---- */

static void on_connect(const redisAsyncContext *ac, int status)
{
	struct fleet *f = ac->data;

	if (!f)
		return;
	if (status != REDIS_OK) {
		f->ac = NULL;   /* hiredis frees it */
		go_down(f, "cannot connect", ac->errstr);
		schedule_reconnect(f);
	}
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
	struct fleet *f = ac->data;

	if (!f)
		return;
	f->ac = NULL;
	go_down(f, "connection lost", status == REDIS_OK ? "closed" : ac->errstr);
	schedule_reconnect(f);
}

static int init_cmd(struct fleet *f, redisAsyncContext *ac, enum script sc, int argc,
		    const char *const *argv)
{
	struct req *q = fleet_req_new(f, RQ_INIT, sc);
	struct argv_b a = { 0 };

	for (int i = 0; i < argc; i++)
		fleet_av_add(&a, argv[i]);
	fleet_req_argv(q, &a);
	if (fleet_send_on(f, ac, q)) {
		fleet_req_free(q);
		return 0;
	}
	return 1;
}

int fleet_send_setup(struct fleet *f, redisAsyncContext *ac)
{
	char db[16];
	int n = 0;

	/* Queued before the connection is up: they go first, in order. */
	if (f->cfg->password)
		n += init_cmd(f, ac, SC_N, 2, (const char *[]){ "AUTH", f->cfg->password });
	if (f->cfg->db) {
		snprintf(db, sizeof(db), "%d", f->cfg->db);
		n += init_cmd(f, ac, SC_N, 2, (const char *[]){ "SELECT", db });
	}
	if (f->cfg->nsentinels)
		n += init_cmd(f, ac, SC_N, 1, (const char *[]){ "ROLE" });
	for (int i = 0; i < SC_N; i++)
		n += init_cmd(f, ac, (enum script)i, 3,
			      (const char *[]){ "SCRIPT", "LOAD", fleet_script_src[i] });
	return n;
}

redisAsyncContext *fleet_async_connect(struct fleet *f, const char *host, int port,
				       const char *path, void *data,
				       void (*on_conn)(const redisAsyncContext *, int),
				       void (*on_disc)(const redisAsyncContext *, int),
				       const char **why)
{
	static _Thread_local char err[128];       /* *why outlives the call */
	redisAsyncContext *ac = path ? redisAsyncConnectUnix(path) : redisAsyncConnect(host, port);

	*why = "out of memory";
	if (ac && ac->err) {
		snprintf(err, sizeof(err), "%s", ac->errstr);
		*why = err;
		goto fail;
	}
	if (!ac)
		return NULL;
	ac->data = data;
	/* each fails only on a context already set up: never on a new one, checked anyway */
	if (redisLibeventAttach(ac, f->base) != REDIS_OK ||
	    (on_conn && redisAsyncSetConnectCallback(ac, on_conn) != REDIS_OK) ||
	    (on_disc && redisAsyncSetDisconnectCallback(ac, on_disc) != REDIS_OK)) {
		*why = "cannot attach the connection to the event loop";
		goto fail;
	}
	return ac;
fail:
	redisAsyncFree(ac);
	return NULL;
}

static void connect_to(struct fleet *f, const struct fleet_addr *a)
{
	const char *why;

	f->ac = fleet_async_connect(f, a->host, a->port, a->path, f, on_connect, on_disconnect,
				    &why);
	if (!f->ac) {
		go_down(f, "cannot connect", why);
		schedule_reconnect(f);
		return;
	}
	f->connect_ns = clock_mono_ns();
	f->loads_pending = fleet_send_setup(f, f->ac);
}

/* Sentinel: ask one sentinel (blocking is not allowed: a short-lived async context) for
 * the master's address, then connect there; the next sentinel on failure. */
static void on_sentinel(redisAsyncContext *ac, void *reply, void *priv)
{
	struct fleet *f = priv;
	redisReply *rep = reply;

	if (!f || f->freeing)
		return;
	f->sentinel_ac = NULL;
	if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
	    rep->element[0]->type == REDIS_REPLY_STRING && fleet_switching(f) && f->master.host &&
	    !strcmp(f->master.host, rep->element[0]->str) &&
	    f->master.port == atoi(rep->element[1]->str)) {
		/* still the old master: the switch is not announced yet */
		go_down(f, "Sentinel failover in progress", f->cfg->sentinel_master);
		redisAsyncDisconnect(ac);
		schedule_reconnect(f);
		return;
	}
	if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
	    rep->element[0]->type == REDIS_REPLY_STRING) {
		free(f->master.host);
		f->master.host = xstrdup(rep->element[0]->str);
		f->master.port = atoi(rep->element[1]->str);
		redisAsyncDisconnect(ac);
		connect_to(f, &f->master);
		return;
	}
	f->sentinel_next = (f->sentinel_next + 1) % f->cfg->nsentinels;
	go_down(f, rep ? "the sentinel does not name the master" : "the sentinel is unreachable",
		f->cfg->sentinel_master);
	if (rep)        /* without a reply hiredis is freeing the context already */
		redisAsyncDisconnect(ac);
	schedule_reconnect(f);
}

static void start_connect(struct fleet *f)
{
	if (f->state != FLEET_DOWN)
		f->state = FLEET_CONNECTING;
	f->connect_ns = clock_mono_ns();
	if (f->cluster) {
		fleet_cluster_connect(f);
		return;
	}
	if (!f->cfg->nsentinels) {
		connect_to(f, &f->cfg->addr);
		return;
	}
	const struct fleet_addr *s = &f->cfg->sentinels[f->sentinel_next];
	const char *why;
	redisAsyncContext *sc = fleet_async_connect(f, s->host, s->port, NULL, NULL, NULL, NULL,
						    &why);
	if (!sc) {
		f->sentinel_next = (f->sentinel_next + 1) % f->cfg->nsentinels;
		schedule_reconnect(f);
		return;
	}
	f->sentinel_ac = sc;
	if (redisAsyncCommand(sc, on_sentinel, f, "SENTINEL get-master-addr-by-name %s",
			      f->cfg->sentinel_master) != REDIS_OK) {
		f->sentinel_ac = NULL;
		redisAsyncFree(sc);
		schedule_reconnect(f);
	}
}

int fleet_new(struct event_base *base, const struct fleet_config *cfg, struct store *st,
	      struct fleet **out)
{
	struct fleet *f = xcalloc(1, sizeof(*f));
	char host[16] = "";
	uint64_t id = 0;

	f->base = base;
	f->cfg = cfg;
	f->st = st;
	f->state = FLEET_CONNECTING;
	f->backoff_ms = BACKOFF_MIN_MS;
	list_init(&f->inflight);
	list_init(&f->replay);
	gethostname(host, sizeof(host) - 1);
	/* Reservation and charge ids are "<sidecar>.<seq>": random, so a restarted sidecar (same
	 * host name, same pid in a container) never reuses one Redis still remembers. */
	if (getrandom(&id, sizeof(id), 0) != sizeof(id))
		id = clock_mono_ns() ^ ((uint64_t)clock_real_s() << 20) ^ ((uint64_t)getpid() << 44);
	snprintf(f->sidecar, sizeof(f->sidecar), "%.15s.%016llx", host, (unsigned long long)id);
	f->allow = hmap_new();
	f->timer = event_new(base, -1, EV_PERSIST, on_timer, f);
	f->retry = event_new(base, -1, 0, on_retry, f);
	int64_t tick = (cfg->command_timeout_ms < cfg->connect_timeout_ms
			? cfg->command_timeout_ms : cfg->connect_timeout_ms) / 4 + 1;
	if (!f->allow || !f->timer || !f->retry ||
	    event_add(f->timer, &(struct timeval){ tick / 1000, (tick % 1000) * 1000 })) {
		fleet_free(f);
		return -ENOMEM;
	}
	int rc = cfg->nseeds ? fleet_cluster_new(f) : 0;
	/* Start-up, beside the store's other loaders: what a previous run kept goes first. */
	if (rc == 0)
		rc = fleet_pending_load(f);
	if (rc) {
		fleet_free(f);
		return rc;
	}
	start_connect(f);
	*out = f;
	return 0;
}

void fleet_free(struct fleet *f)
{
	if (!f)
		return;
	f->freeing = true;
	fleet_cluster_free(f);
	if (f->ac) {
		redisAsyncContext *ac = f->ac;
		f->ac = NULL;
		redisAsyncFree(ac);     /* pending callbacks run with no reply */
	}
	if (f->sentinel_ac) {
		redisAsyncContext *sc = f->sentinel_ac;
		f->sentinel_ac = NULL;
		redisAsyncFree(sc);
	}
	if (f->watch_ac) {
		redisAsyncContext *w = f->watch_ac;
		f->watch_ac = NULL;
		redisAsyncFree(w);
	}
	if (f->nreplay)
		log_warn("counters: %zu charges not replayed to Redis (kept in the store)",
			 f->nreplay);
	while (!list_empty(&f->replay)) {
		struct settle *s = list_first_entry(&f->replay, struct settle, link);
		list_del(&s->link);
		if (s->cb)      /* its store write is pending: the store drains after us */
			s->cb(s->arg, -ECANCELED);
		fleet_settle_free(s);
	}
	event_free_opt(f->timer);
	event_free_opt(f->retry);
	if (f->allow)
		hmap_free(f->allow, free);
	free(f->master.host);
	free(f);
}

