/* fleet: counters in Redis over hiredis's async API, on the event loop. */
#include "govern/fleet.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libevent.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/hmap.h"
#include "base/list.h"
#include "base/log.h"
#include "govern/budget_int.h"
#include "govern/fleet_int.h"
#include "govern/fleet_lua.h"

#define KEY_MAX 700
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000
#define RETRY_AFTER_MS 1000

enum script { SC_RESERVE, SC_SETTLE, SC_USAGE, SC_N };
static const char *const script_src[SC_N] = { FLEET_LUA_RESERVE, FLEET_LUA_SETTLE, FLEET_LUA_USAGE };

/* A charge for Redis: sent at once, or kept (durable in the store) and replayed in order. */
struct settle {
	struct list_head link;          /* in fleet->replay while waiting */
	int argc;
	char **argv;                    /* "EVALSHA", sha, nkeys, keys..., args... */
	size_t *argvlen;
	store_done_fn cb;               /* the caller, once Redis or the store has it */
	void *arg;
	struct fleet *arg2;             /* settle_stored's fleet */
	bool release;                   /* nothing to keep when Redis is away */
	bool queued;                    /* in fleet->replay */
	bool storing;                   /* store_charge not answered yet */
	/* For the store when Redis is away: what the charge was. */
	size_t nb;
	struct store_spend items[FLEET_MAX_BUDGETS];
	char *scopes[FLEET_MAX_BUDGETS], *periods[FLEET_MAX_BUDGETS];
};

enum req_kind { RQ_INIT, RQ_RESERVE, RQ_SETTLE, RQ_USAGE, RQ_SENTINEL };

struct req {
	struct list_head link;          /* in fleet->inflight, oldest first */
	struct fleet *f;
	enum req_kind kind;
	enum script sc;
	uint64_t sent_ns;
	bool retried;                   /* NOSCRIPT: sent again with EVAL */
	int argc;
	char **argv;
	size_t *argvlen;
	/* RQ_RESERVE */
	fleet_reserve_fn rcb;
	void *arg;
	struct fleet_resv *r;
	struct fleet_budget b[FLEET_MAX_BUDGETS];
	struct budget_spec spec[FLEET_MAX_BUDGETS];
	struct rate_spec rspec[RATE_NLEVELS];
	enum rate_level rlevel[RATE_NLEVELS];
	int64_t cost, now;
	/* RQ_SETTLE */
	struct settle *s;
	/* RQ_USAGE */
	fleet_usage_fn ucb;
};

struct fleet_resv {
	size_t nb;
	char rid[64];
	char *keys[FLEET_MAX_BUDGETS];
	int kind[FLEET_MAX_BUDGETS];
	int64_t start[FLEET_MAX_BUDGETS], ttl[FLEET_MAX_BUDGETS];
	char *scopes[FLEET_MAX_BUDGETS], *periods[FLEET_MAX_BUDGETS];
	int64_t cost;
	bool local;                     /* admitted by the local allowance */
	char *key_id;                   /* local: whose allowance */
};

/* A key's local allowance during one outage. */
struct allowance {
	int64_t spent, calls;
};

struct fleet {
	struct event_base *base;
	const struct fleet_config *cfg;
	struct store *st;
	redisAsyncContext *ac;
	enum fleet_state state;
	char sha[SC_N][41];
	int loads_pending;              /* SCRIPT LOADs not answered yet */
	struct list_head inflight;      /* struct req, in send order */
	struct list_head replay;        /* struct settle, oldest first */
	size_t nreplay, ninflight;
	bool replaying;                 /* one replayed charge at a time: order kept */
	struct event *timer;            /* connect and command timeouts */
	struct event *retry;            /* reconnect with backoff */
	int backoff_ms;
	uint64_t connect_ns;
	size_t sentinel_next;           /* sentinel to ask next */
	redisAsyncContext *sentinel_ac;
	struct fleet_addr master;       /* from the sentinels */
	struct hmap *allow;             /* key id -> struct allowance, during an outage */
	uint64_t seq, errors, reconnects, replayed, local_admits;
	char sidecar[32];
	char why[160];
	bool freeing;
};

const char *fleet_state_name(enum fleet_state s)
{
	static const char *const n[] = { "connecting", "up", "down" };
	return n[s];
}

/* ---- argument vectors ---- */

struct argv_b {
	int n, cap;
	char **v;
	size_t *len;
};

static void av_add(struct argv_b *a, const char *s)
{
	if (a->n == a->cap) {
		a->cap = a->cap ? 2 * a->cap : 32;
		a->v = xrealloc(a->v, (size_t)a->cap * sizeof(*a->v));
		a->len = xrealloc(a->len, (size_t)a->cap * sizeof(*a->len));
	}
	a->v[a->n] = xstrdup(s);
	a->len[a->n++] = strlen(s);
}

static void av_addi(struct argv_b *a, int64_t v)
{
	char b[24];

	snprintf(b, sizeof(b), "%" PRId64, v);
	av_add(a, b);
}

static void av_free(int argc, char **argv, size_t *len)
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

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct fleet *f = arg;
	uint64_t now = clock_mono_ns();

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

static void go_up(struct fleet *f)
{
	const struct fleet_addr *a = f->cfg->nsentinels ? &f->master : &f->cfg->addr;

	f->state = FLEET_UP;
	f->backoff_ms = BACKOFF_MIN_MS;
	f->why[0] = 0;
	if (a->path)
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

static int send_req(struct fleet *f, struct req *q)
{
	if (!f->ac || redisAsyncCommandArgv(f->ac, on_reply, q, q->argc, (const char **)q->argv,
					    q->argvlen) != REDIS_OK)
		return -ENOTCONN;
	q->sent_ns = clock_mono_ns();
	list_add_tail(&q->link, &f->inflight);
	f->ninflight++;
	return 0;
}

static void req_free(struct req *q)
{
	av_free(q->argc, q->argv, q->argvlen);
	free(q);
}

static void resv_free(struct fleet_resv *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->nb; i++) {
		free(r->keys[i]);
		free(r->scopes[i]);
		free(r->periods[i]);
	}
	free(r->key_id);
	free(r);
}

static void settle_free(struct settle *s)
{
	av_free(s->argc, s->argv, s->argvlen);
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
		resv_free(q->r);
		q->r = NULL;
	}
	o->r = q->r;
	q->r = NULL;
	q->rcb(q->arg, o);
}

/* Redis is away: fail closed, or admit within this key's allowance for the outage. */
static void reserve_unreachable(struct fleet *f, struct req *q)
{
	struct fleet_outcome o = { .rc = -ENOTCONN };
	const char *key = q->r->key_id;
	struct allowance *a;

	if (!f->cfg->fail_closed && key) {
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
		if (a && a->calls < calls && a->spent + q->cost <= f->cfg->local_spend) {
			a->calls++;
			a->spent += q->cost;
			q->r->local = true;
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
		o.rw.level = q->rlevel[j < RATE_NLEVELS ? j : 0];
		o.rw.spec = q->rspec[j < RATE_NLEVELS ? j : 0];
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
	if (cb)
		cb(cbarg, err);
	send_next_replay(f);
}

/* Redis did not take the charge: keep it (durable in the store before the caller answers)
 * and replay it when Redis is back. A release needs nothing: its deadline gives it back.
 * Returns 0: s->cb follows; 1: durable now (or nothing to keep), s->cb is not called; < 0:
 * the store could not take it (kept in memory for the replay), s->cb is not called. */
static int settle_keep(struct fleet *f, struct settle *s)
{
	int rc;

	if (s->release || f->freeing) {
		rc = s->release ? 1 : -ECANCELED;
		settle_free(s);
		return rc;
	}
	list_add_tail(&s->link, &f->replay);
	s->queued = true;
	f->nreplay++;
	if (!s->cb)
		return 1;
	s->arg2 = f;
	rc = f->st ? store_charge(f->st, s->items, s->nb, settle_stored, s) : 1;
	if (rc == 0) {
		s->storing = true;
		return 0;
	}
	s->cb = NULL;           /* durable in the journal already, or failed: the caller hears */
	return rc;
}

static struct req *settle_req(struct fleet *f, struct settle *s)
{
	struct req *q = xcalloc(1, sizeof(*q));

	q->f = f;
	q->kind = RQ_SETTLE;
	q->sc = SC_SETTLE;
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
	if (s->queued) {
		/* A replayed one: done, or it stays first until the next connection. */
		f->replaying = false;
		if (!ok)
			return;
		list_del(&s->link);
		f->nreplay--;
		f->replayed++;
		settle_free(s);
		send_next_replay(f);
		return;
	}
	store_done_fn cb = s->cb;
	void *arg = s->arg;
	int rc = 0;

	if (!ok)
		rc = settle_keep(f, s);
	else
		settle_free(s);
	if (cb && (ok || rc))
		cb(arg, rc < 0 ? rc : 0);
}

static void send_next_replay(struct fleet *f)
{
	if (f->replaying || f->state != FLEET_UP || list_empty(&f->replay))
		return;
	struct settle *s = list_first_entry(&f->replay, struct settle, link);
	if (s->storing)         /* durable first: settle_stored calls again */
		return;
	struct req *q = settle_req(f, s);

	f->replaying = true;
	if (send_req(f, q)) {
		f->replaying = false;
		free(q);
	}
}

/* ---- replies ---- */

static bool is_noscript(const redisReply *rep)
{
	return rep && rep->type == REDIS_REPLY_ERROR && !strncmp(rep->str, "NOSCRIPT", 8);
}

static void on_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	struct req *q = priv;
	struct fleet *f = q->f;
	redisReply *rep = reply;

	list_del(&q->link);
	f->ninflight--;
	/* Redis lost its script cache (a restart, SCRIPT FLUSH): the script body again, which
	 * also caches it, and SCRIPT LOAD on the next connection. */
	if (is_noscript(rep) && !q->retried && f->ac) {
		q->retried = true;
		free(q->argv[0]);
		free(q->argv[1]);
		q->argv[0] = xstrdup("EVAL");
		q->argvlen[0] = 4;
		q->argv[1] = xstrdup(script_src[q->sc]);
		q->argvlen[1] = strlen(q->argv[1]);
		if (send_req(f, q) == 0)
			return;
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
		}
		if (f->ac == ac && rep && rep->type != REDIS_REPLY_ERROR && --f->loads_pending == 0)
			go_up(f);
		req_free(q);
		return;
	case RQ_RESERVE:
		if (!rep)
			reserve_unreachable(f, q);
		else if (rep->type == REDIS_REPLY_ERROR) {
			struct fleet_outcome o = { .rc = -EIO };
			f->errors++;
			log_warn("counters: Redis refused a reservation: %s", rep->str);
			reserve_done(q, &o);
		} else {
			reserve_reply(f, q, rep);
		}
		req_free(q);
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
		req_free(q);
		return;
	case RQ_SENTINEL:
		break;
	}
	req_free(q);
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

static void init_cmd(struct fleet *f, enum script sc, int argc, const char *const *argv)
{
	struct req *q = xcalloc(1, sizeof(*q));
	struct argv_b a = { 0 };

	for (int i = 0; i < argc; i++)
		av_add(&a, argv[i]);
	q->f = f;
	q->kind = RQ_INIT;
	q->sc = sc;
	q->argc = a.n;
	q->argv = a.v;
	q->argvlen = a.len;
	if (send_req(f, q))
		req_free(q);
	else
		f->loads_pending++;
}

static void connect_to(struct fleet *f, const struct fleet_addr *a)
{
	char db[16];

	f->ac = a->path ? redisAsyncConnectUnix(a->path) : redisAsyncConnect(a->host, a->port);
	if (!f->ac || f->ac->err) {
		go_down(f, "cannot connect", f->ac ? f->ac->errstr : "out of memory");
		if (f->ac)
			redisAsyncFree(f->ac);
		f->ac = NULL;
		schedule_reconnect(f);
		return;
	}
	f->ac->data = f;
	redisLibeventAttach(f->ac, f->base);
	redisAsyncSetConnectCallback(f->ac, on_connect);
	redisAsyncSetDisconnectCallback(f->ac, on_disconnect);
	f->connect_ns = clock_mono_ns();
	f->loads_pending = 0;
	/* Queued before the connection is up: they go first, in order. */
	if (f->cfg->password)
		init_cmd(f, SC_N, 2, (const char *[]){ "AUTH", f->cfg->password });
	if (f->cfg->db) {
		snprintf(db, sizeof(db), "%d", f->cfg->db);
		init_cmd(f, SC_N, 2, (const char *[]){ "SELECT", db });
	}
	for (int i = 0; i < SC_N; i++)
		init_cmd(f, (enum script)i, 3, (const char *[]){ "SCRIPT", "LOAD", script_src[i] });
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
	    rep->element[0]->type == REDIS_REPLY_STRING) {
		free(f->master.host);
		f->master.host = xstrdup(rep->element[0]->str);
		f->master.port = atoi(rep->element[1]->str);
		redisAsyncDisconnect(ac);
		connect_to(f, &f->master);
		return;
	}
	f->sentinel_next = (f->sentinel_next + 1) % f->cfg->nsentinels;
	go_down(f, "the sentinel does not name the master", f->cfg->sentinel_master);
	redisAsyncDisconnect(ac);
	schedule_reconnect(f);
}

static void start_connect(struct fleet *f)
{
	if (f->state != FLEET_DOWN)
		f->state = FLEET_CONNECTING;
	f->connect_ns = clock_mono_ns();
	if (!f->cfg->nsentinels) {
		connect_to(f, &f->cfg->addr);
		return;
	}
	const struct fleet_addr *s = &f->cfg->sentinels[f->sentinel_next];
	redisAsyncContext *sc = redisAsyncConnect(s->host, s->port);
	if (!sc || sc->err) {
		if (sc)
			redisAsyncFree(sc);
		f->sentinel_next = (f->sentinel_next + 1) % f->cfg->nsentinels;
		schedule_reconnect(f);
		return;
	}
	redisLibeventAttach(sc, f->base);
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

	f->base = base;
	f->cfg = cfg;
	f->st = st;
	f->state = FLEET_CONNECTING;
	f->backoff_ms = BACKOFF_MIN_MS;
	list_init(&f->inflight);
	list_init(&f->replay);
	gethostname(host, sizeof(host) - 1);
	snprintf(f->sidecar, sizeof(f->sidecar), "%.15s.%d.%lx", host, (int)getpid(),
		 (unsigned long)(clock_mono_ns() & 0xffffff));
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
	start_connect(f);
	*out = f;
	return 0;
}

void fleet_free(struct fleet *f)
{
	if (!f)
		return;
	f->freeing = true;
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
	if (f->nreplay)
		log_warn("counters: %zu charges not replayed to Redis (kept in the store)",
			 f->nreplay);
	while (!list_empty(&f->replay)) {
		struct settle *s = list_first_entry(&f->replay, struct settle, link);
		list_del(&s->link);
		if (s->cb)      /* its store write is pending: the store drains after us */
			s->cb(s->arg, -ECANCELED);
		settle_free(s);
	}
	if (f->timer)
		event_free(f->timer);
	if (f->retry)
		event_free(f->retry);
	if (f->allow)
		hmap_free(f->allow, free);
	free(f->master.host);
	free(f);
}

/* ---- the interface ---- */

int fleet_reserve(struct fleet *f, const struct fleet_budget *b, size_t nb,
		  const struct rate_limits *lim, const char *key_id, const char *server,
		  const char *tool, int64_t cost, int64_t now, fleet_reserve_fn cb, void *arg)
{
	struct req *q;
	struct fleet_resv *r;
	struct argv_b a = { 0 };
	char key[KEY_MAX], pid[32];
	size_t nr = 0;
	int rc = 0;

	if (nb > FLEET_MAX_BUDGETS || cost < 0)
		return -EINVAL;
	q = xcalloc(1, sizeof(*q));
	r = xcalloc(1, sizeof(*r));
	q->f = f;
	q->kind = RQ_RESERVE;
	q->sc = SC_RESERVE;
	q->rcb = cb;
	q->arg = arg;
	q->r = r;
	q->cost = cost;
	q->now = now;
	r->cost = cost;
	r->key_id = xstrdup(key_id);
	snprintf(r->rid, sizeof(r->rid), "%s.%" PRIu64, f->sidecar, ++f->seq);
	for (int l = 0; lim && l < RATE_NLEVELS; l++) {
		if (!lim->level[l].requests || (l >= RATE_SERVER && !server) ||
		    (l == RATE_TOOL && !tool))
			continue;
		q->rlevel[nr] = (enum rate_level)l;
		q->rspec[nr++] = lim->level[l];
	}
	av_add(&a, "EVALSHA");
	av_add(&a, f->sha[SC_RESERVE]);
	av_addi(&a, (int64_t)(nb + nr));
	for (size_t i = 0; i < nb && !rc; i++) {
		q->spec[i] = *b[i].spec;
		rc = fleet_counter_key(f->cfg->prefix, b[i].scope, b[i].spec, now, key, sizeof(key));
		if (rc)
			break;
		av_add(&a, key);
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
		rc = fleet_bucket_key(f->cfg->prefix, key_id, q->rlevel[j], server, tool, key,
				      sizeof(key));
		if (!rc)
			av_add(&a, key);
	}
	if (rc) {
		av_free(a.n, a.v, a.len);
		resv_free(r);
		free(q);
		return rc;
	}
	av_add(&a, r->rid);
	av_addi(&a, now);
	av_addi(&a, now + f->cfg->resv_ttl_s);
	av_addi(&a, cost);
	av_addi(&a, (int64_t)nb);
	av_addi(&a, (int64_t)nr);
	for (size_t i = 0; i < nb; i++) {
		int64_t slot = r->kind[i] ? budget_rolling_slot(b[i].spec->window) : 1;
		av_addi(&a, r->kind[i]);
		av_addi(&a, b[i].spec->limit);
		av_addi(&a, slot);
		av_addi(&a, r->kind[i] ? (b[i].spec->window + slot - 1) / slot + 1 : 1);
		av_addi(&a, r->ttl[i]);
	}
	for (size_t j = 0; j < nr; j++) {
		av_addi(&a, q->rspec[j].requests);
		av_addi(&a, q->rspec[j].burst);
		av_addi(&a, (int64_t)(q->rspec[j].period_ns / 1000));
	}
	q->argc = a.n;
	q->argv = a.v;
	q->argvlen = a.len;
	for (size_t i = 0; i < nb; i++)
		q->b[i] = (struct fleet_budget){ r->scopes[i], &q->spec[i] };
	if (f->state != FLEET_UP || send_req(f, q)) {
		reserve_unreachable(f, q);
		req_free(q);
	}
	return 0;
}

static struct settle *settle_new(struct fleet *f, struct fleet_resv *r, int64_t amount)
{
	struct settle *s = xcalloc(1, sizeof(*s));
	struct argv_b a = { 0 };

	av_add(&a, "EVALSHA");
	av_add(&a, f->sha[SC_SETTLE]);
	av_addi(&a, (int64_t)r->nb);
	for (size_t i = 0; i < r->nb; i++)
		av_add(&a, r->keys[i]);
	av_add(&a, r->rid);
	av_addi(&a, amount);
	av_addi(&a, (int64_t)r->nb);
	for (size_t i = 0; i < r->nb; i++) {
		av_addi(&a, r->kind[i]);
		av_addi(&a, r->start[i]);
		av_addi(&a, r->ttl[i]);
		s->scopes[i] = xstrdup(r->scopes[i]);
		s->periods[i] = xstrdup(r->periods[i]);
		s->items[i] = (struct store_spend){ .scope = s->scopes[i], .period = s->periods[i],
						    .start = r->start[i], .amount = amount,
						    .expires = r->start[i] + r->ttl[i] };
	}
	s->nb = r->nb;
	s->argc = a.n;
	s->argv = a.v;
	s->argvlen = a.len;
	return s;
}

/* 0: s->cb follows; otherwise settle_keep's answer. */
static int settle_send(struct fleet *f, struct settle *s)
{
	/* Behind queued charges: Redis gets them in the order they were made. */
	if (f->state == FLEET_UP && list_empty(&f->replay)) {
		struct req *q = settle_req(f, s);
		if (send_req(f, q) == 0)
			return 0;
		free(q);
	}
	return settle_keep(f, s);
}

int fleet_commit(struct fleet *f, struct fleet_resv *r, int64_t amount, store_done_fn cb,
		 void *arg)
{
	struct settle *s;

	if (!r)
		return -EINVAL;
	if (amount < 0 || amount > BUDGET_MONEY_MAX)
		amount = r->cost;
	if (!r->nb || (!amount && !r->cost)) {
		resv_free(r);
		return 1;
	}
	s = settle_new(f, r, amount);
	s->cb = cb;
	s->arg = arg;
	s->release = !amount;
	resv_free(r);
	return settle_send(f, s);
}

void fleet_release(struct fleet *f, struct fleet_resv *r)
{
	struct settle *s;

	if (!r)
		return;
	if (r->local) {
		/* A local admission reserved nothing in Redis: give the allowance back. */
		struct allowance *a = hmap_get(f->allow, r->key_id);
		if (a) {
			a->calls--;
			a->spent -= r->cost;
		}
		resv_free(r);
		return;
	}
	if (!r->nb || !r->cost) {
		resv_free(r);
		return;
	}
	s = settle_new(f, r, 0);
	s->release = true;
	resv_free(r);
	/* A release that cannot reach Redis needs no replay: the deadline gives it back. */
	if (f->state == FLEET_UP) {
		struct req *q = settle_req(f, s);
		if (send_req(f, q) == 0)
			return;
		free(q);
	}
	settle_free(s);
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
	if (f->state != FLEET_UP)
		return -ENOTCONN;
	av_add(&a, "EVALSHA");
	av_add(&a, f->sha[SC_USAGE]);
	av_add(&a, "1");
	av_add(&a, key);
	av_addi(&a, spec->period == BUDGET_ROLLING);
	av_addi(&a, now);
	av_addi(&a, slot);
	av_addi(&a, spec->period == BUDGET_ROLLING ? (spec->window + slot - 1) / slot + 1 : 1);
	q = xcalloc(1, sizeof(*q));
	q->f = f;
	q->kind = RQ_USAGE;
	q->sc = SC_USAGE;
	q->ucb = cb;
	q->arg = arg;
	q->argc = a.n;
	q->argv = a.v;
	q->argvlen = a.len;
	if (send_req(f, q)) {
		req_free(q);
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
		"mcpwarden_counters_local_admits_total %llu\n",
		fleet_state_name(f->state), f->cfg->fail_closed ? "fail_closed" : "local",
		f->state == FLEET_UP, f->nreplay, f->ninflight, (unsigned long long)f->errors,
		(unsigned long long)f->reconnects, (unsigned long long)f->replayed,
		(unsigned long long)f->local_admits);
	return rc < 0 ? -ENOMEM : 0;
}
