/* budget: counters with reservations, per key and team and period, keyed by interned ids. */
#include "govern/budget.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/htab.h"
#include "base/intern.h"
#include "base/list.h"
#include "govern/budget_int.h"

/* ---- counters ---- */

struct slot_ent {
	int64_t start, amount;
};

/* A counter's identity: whose (a key or a team, by interned id) and which period. */
enum scope_kind { SCOPE_KEY, SCOPE_TEAM };
static const char *const scope_prefix[] = { "key:", "team:" };

struct counter_key {
	union {
		struct {
			uint32_t scope, name;   /* enum scope_kind, intern id */
			uint32_t kind, pad;     /* enum budget_period */
			int64_t window;         /* rolling */
		};
		uint64_t w[3];
	};
};

struct counter {
	struct htab_node hn;            /* in budget->counters, by key */
	struct counter_key k;           /* holds a reference to k.name */
	enum budget_period kind;
	int64_t window, slot, nslots;   /* rolling */
	int64_t start;                  /* calendar: start of the period spent belongs to */
	int64_t spent, reserved;
	struct slot_ent *ents;          /* rolling: ents[lo..hi), oldest first */
	size_t lo, hi, cap;
	size_t slen, nlen;              /* name = scope NUL period, as the store keys it */
	char name[];
};

struct budget_resv {
	struct list_head link;          /* in budget->resvs */
	int64_t cost;
	size_t n;
	struct {
		struct counter *c;
		int64_t start;          /* period start, or rolling slot start */
	} e[2 * BUDGET_MAX_PER_SCOPE];
};

/* Every loop reserves and settles against the same counters (workers: N): one lock around
 * each operation, so a check and its reservation are one step and limits hold exactly. */
struct budget {
	pthread_mutex_t mu;
	struct store *st;
	const struct budget_config *cfg;
	struct htab counters;           /* by struct counter_key */
	struct intern *names;           /* key ids and team names the counters are for */
	struct list_head resvs;         /* outstanding, freed by budget_free */
};

static uint64_t counter_hash(const struct htab *t, const void *key)
{
	return htab_hash_words(t, ((const struct counter_key *)key)->w, 3);
}

static bool counter_eq(const struct htab_node *hn, const void *key)
{
	return !memcmp(&htab_entry(hn, struct counter, hn)->k, key, sizeof(struct counter_key));
}

static const struct htab_type counter_type = { counter_hash, counter_eq };

int budget_new(struct store *st, struct budget **out)
{
	struct budget *b = xcalloc(1, sizeof(*b));
	int rc = htab_init(&b->counters, &counter_type);

	*out = NULL;
	if (!rc && (rc = intern_new(0, &b->names)))
		htab_fini(&b->counters);
	if (rc) {
		free(b);
		return rc;
	}
	b->st = st;
	pthread_mutex_init(&b->mu, NULL);
	list_init(&b->resvs);
	*out = b;
	return 0;
}

static void counter_free(struct htab_node *hn, void *arg)
{
	struct counter *c = htab_entry(hn, struct counter, hn);

	free(c->ents);
	free(c);
}

static void counter_advance(struct counter *c, int64_t now);

size_t budget_sweep(struct budget *b, int64_t now)
{
	struct htab_iter it;
	size_t n = 0;

	pthread_mutex_lock(&b->mu);
	it = htab_iter(&b->counters);
	for (struct htab_node *hn; (hn = htab_next(&it));) {
		struct counter *c = htab_entry(hn, struct counter, hn);

		counter_advance(c, now);
		if (c->spent || c->reserved || c->lo != c->hi)
			continue;
		htab_remove(&b->counters, hn);
		intern_put(b->names, c->k.name);
		counter_free(hn, NULL);
		n++;
	}
	pthread_mutex_unlock(&b->mu);
	return n;
}

size_t budget_counter_count(struct budget *b)
{
	size_t n;

	pthread_mutex_lock(&b->mu);
	n = htab_count(&b->counters);
	pthread_mutex_unlock(&b->mu);
	return n;
}

void budget_free(struct budget *b)
{
	struct budget_resv *r, *tmp;

	if (!b)
		return;
	list_for_each_entry_safe(r, tmp, &b->resvs, link)
		free(r);
	htab_drain(&b->counters, counter_free, NULL);
	htab_fini(&b->counters);
	intern_free(b->names);  /* the counters' references go with it */
	pthread_mutex_destroy(&b->mu);
	free(b);
}

void budget_set_config(struct budget *b, const struct budget_config *cfg)
{
	pthread_mutex_lock(&b->mu);
	b->cfg = cfg;
	pthread_mutex_unlock(&b->mu);
}


static struct counter *counter_lookup(const struct budget *b, const struct counter_key *k)
{
	struct htab_node *hn = htab_find(&b->counters, k);

	return hn ? htab_entry(hn, struct counter, hn) : NULL;
}

/* The counter for (scope, name, period), made on first use. NULL when a name is too long. */
static struct counter *counter_make(struct budget *b, enum scope_kind scope, const char *name,
				    enum budget_period kind, int64_t window)
{
	size_t plen = strlen(scope_prefix[scope]), len = strlen(name), slen = plen + len, nlen;
	struct counter_key k = { .scope = scope, .kind = kind, .window = window };
	char pid[32];
	struct counter *c;

	if (len >= BUDGET_NAME_BUF)
		return NULL;
	k.name = intern_get(b->names, name, len);
	if ((c = counter_lookup(b, &k))) {
		intern_put(b->names, k.name);
		return c;
	}
	if (kind == BUDGET_ROLLING)
		snprintf(pid, sizeof(pid), "rolling:%" PRId64, window);
	else
		snprintf(pid, sizeof(pid), "%s", budget_period_ids[kind]);
	nlen = slen + 1 + strlen(pid);
	c = xcalloc(1, sizeof(*c) + nlen + 1);
	c->k = k;
	c->kind = kind;
	c->window = window;
	if (kind == BUDGET_ROLLING) {
		c->slot = budget_rolling_slot(window);
		/* The current partial slot plus enough whole ones to cover the window. */
		c->nslots = (window + c->slot - 1) / c->slot + 1;
	}
	c->start = INT64_MIN;
	c->slen = slen;
	c->nlen = nlen;
	memcpy(c->name, scope_prefix[scope], plen);
	memcpy(c->name + plen, name, len + 1);
	memcpy(c->name + slen + 1, pid, nlen - slen);
	htab_insert(&b->counters, &c->hn, &k);
	return c;
}

/* The counter a store row or an operator names: scope "key:<id>" | "team:<name>", period
 * "day" | "week" | "month" | "rolling:<seconds>". */
static struct counter *counter_find(struct budget *b, const char *scope, const char *period,
				    bool create)
{
	struct counter_key k = { .w = { 0 } };
	enum budget_period kind;
	int64_t window;
	const char *name = NULL;

	for (uint32_t i = 0; i < sizeof(scope_prefix) / sizeof(*scope_prefix) && !name; i++)
		if (!strncmp(scope, scope_prefix[i], strlen(scope_prefix[i])))
			name = scope + strlen(scope_prefix[k.scope = i]);
	if (!name || budget_parse_period_id(period, &kind, &window) < 0)
		return NULL;
	if (create)
		return counter_make(b, (enum scope_kind)k.scope, name, kind, window);
	k.name = intern_find(b->names, name, strlen(name));
	k.kind = kind;
	k.window = window;
	return k.name ? counter_lookup(b, &k) : NULL;
}

static int64_t slot_of(const struct counter *c, int64_t t)
{
	return budget_floor_div(t, c->slot) * c->slot;
}

/* Bring a counter to now: a new calendar period starts at zero; rolling slots that left the
 * window stop counting. A clock that went back never moves a counter back. */
static void counter_advance(struct counter *c, int64_t now)
{
	if (c->kind != BUDGET_ROLLING) {
		int64_t s = budget_period_start(c->kind, now);
		if (s > c->start) {
			c->start = s;
			c->spent = 0;
		}
		return;
	}
	int64_t oldest = slot_of(c, now) - (c->nslots - 1) * c->slot;
	while (c->lo < c->hi && c->ents[c->lo].start < oldest) {
		c->spent -= c->ents[c->lo].amount;
		c->lo++;
	}
	if (c->lo == c->hi)
		c->lo = c->hi = 0;
}

/* Add amount to the rolling slot starting at s, keeping ents ordered. */
static int slot_add(struct counter *c, int64_t s, int64_t amount)
{
	size_t i = c->hi;

	while (i > c->lo && c->ents[i - 1].start > s)
		i--;
	if (i > c->lo && c->ents[i - 1].start == s) {
		c->ents[i - 1].amount += amount;
		c->spent += amount;
		return 0;
	}
	if (c->hi == c->cap) {
		if (c->lo > 0) {
			memmove(c->ents, c->ents + c->lo, (c->hi - c->lo) * sizeof(*c->ents));
			i -= c->lo;
			c->hi -= c->lo;
			c->lo = 0;
		} else {
			c->ents = xgrow(c->ents, c->hi, &c->cap, sizeof(*c->ents), 4);
		}
	}
	memmove(c->ents + i + 1, c->ents + i, (c->hi - i) * sizeof(*c->ents));
	c->ents[i] = (struct slot_ent){ s, amount };
	c->hi++;
	c->spent += amount;
	return 0;
}

/* When, for a refused call, the spent part alone would let it fit. */
static int64_t fits_at(const struct counter *c, int64_t limit, int64_t cost, int64_t now)
{
	int64_t need;

	if (cost > limit)
		return 0;
	if (c->kind != BUDGET_ROLLING)
		return budget_period_next(c->kind, c->start);
	need = c->spent + cost - limit;        /* what has to expire */
	for (size_t i = c->lo; i < c->hi && need > 0; i++) {
		need -= c->ents[i].amount;
		if (need <= 0)
			return c->ents[i].start + c->nslots * c->slot;
	}
	return now;     /* only reservations in flight are in the way */
}

int budget_reserve(struct budget *b, const struct budget_subject *who, int64_t cost,
		   int64_t now, struct budget_resv **out, struct budget_refusal *why)
{
	const struct selector *ks, *ts;
	const struct budget_spec *spec[2 * BUDGET_MAX_PER_SCOPE];
	const char *whose[2] = { who ? who->key_id : NULL, who ? who->team : NULL };
	uint32_t id[2];
	int which[2 * BUDGET_MAX_PER_SCOPE];
	struct budget_resv *r = NULL;
	size_t n = 0;
	int rc = 0;

	*out = NULL;
	if (cost < 0 || cost > BUDGET_MONEY_MAX || !who || !who->key_id)
		return -EINVAL;
	pthread_mutex_lock(&b->mu);
	budget_scopes(b->cfg, who, &ks, &ts);
	if (strlen(who->key_id) >= BUDGET_NAME_BUF || (ts && strlen(who->team) >= BUDGET_NAME_BUF)) {
		rc = -EINVAL;
		goto out;
	}
	id[0] = intern_find(b->names, whose[0], strlen(whose[0]));
	id[1] = ts ? intern_find(b->names, whose[1], strlen(whose[1])) : 0;
	for (size_t i = 0; ks && i < ks->n; i++, n++) {
		spec[n] = &ks->spec[i];
		which[n] = 0;
	}
	for (size_t i = 0; ts && i < ts->n; i++, n++) {
		spec[n] = &ts->spec[i];
		which[n] = 1;
	}
	/* Fail closed: a charge the store cannot write would be lost at the next start, so a
	 * call with a budget is refused while the disk fails (store_health says why). */
	if (n && cost && b->st && store_health(b->st)) {
		rc = -EIO;
		goto out;
	}
	/* e[] is filled up to n below: only the head cleared (e[] is most of it, in a cold block) */
	r = alloc_cache_get(sizeof(*r));
	memset(r, 0, offsetof(struct budget_resv, e));
	r->cost = cost;
	/* Check every budget first; reserve in all of them only when all have room. */
	for (size_t i = 0; i < n; i++) {
		struct counter_key k = {
			.scope = (uint32_t)which[i], .name = id[which[i]], .kind = spec[i]->period,
			.window = spec[i]->period == BUDGET_ROLLING ? spec[i]->window : 0 };
		struct counter *c = k.name ? counter_lookup(b, &k) : NULL;
		int64_t total;

		if (!c && !(c = counter_make(b, (enum scope_kind)which[i], whose[which[i]],
					     spec[i]->period, k.window))) {
			rc = -EINVAL;
			goto out;
		}
		counter_advance(c, now);
		r->e[i].c = c;
		r->e[i].start = c->kind == BUDGET_ROLLING ? slot_of(c, now) : c->start;
		if (__builtin_add_overflow(c->spent, c->reserved, &total) ||
		    __builtin_add_overflow(total, cost, &total) || total > spec[i]->limit) {
			memset(why, 0, sizeof(*why));
			snprintf(why->name, sizeof(why->name), "%s", spec[i]->name);
			snprintf(why->scope, sizeof(why->scope), "%.*s", (int)c->slen, c->name);
			snprintf(why->period, sizeof(why->period), "%s", c->name + c->slen + 1);
			why->spent = c->spent;
			why->reserved = c->reserved;
			why->limit = spec[i]->limit;
			why->cost = cost;
			why->resets_at = fits_at(c, spec[i]->limit, cost, now);
			rc = -EDQUOT;
			goto out;
		}
	}
	for (size_t i = 0; i < n; i++)
		r->e[i].c->reserved += cost;
	r->n = n;
	list_add(&r->link, &b->resvs);
	*out = r;
	r = NULL;
out:
	pthread_mutex_unlock(&b->mu);
	if (r)
		alloc_cache_put(r);
	return rc;
}

static void resv_unlink(struct budget *b, struct budget_resv *r)
{
	list_del(&r->link);
}

void budget_release(struct budget *b, struct budget_resv *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&b->mu);
	for (size_t i = 0; i < r->n; i++)
		r->e[i].c->reserved -= r->cost;
	resv_unlink(b, r);
	pthread_mutex_unlock(&b->mu);
	alloc_cache_put(r);     /* one a call: kept for the next (base/alloc.h) */
}

int budget_commit(struct budget *b, struct budget_resv *r, store_done_fn cb, void *arg)
{
	return budget_commit_amount(b, r, r ? r->cost : 0, cb, arg);
}

int budget_commit_amount(struct budget *b, struct budget_resv *r, int64_t amount,
			 store_done_fn cb, void *arg)
{
	struct store_spend items[2 * BUDGET_MAX_PER_SCOPE];
	int64_t reserved;
	int rc = 1;

	if (!r)
		return -EINVAL;
	if (amount < 0 || amount > BUDGET_MONEY_MAX)
		amount = r->cost;
	pthread_mutex_lock(&b->mu);
	reserved = r->cost;
	r->cost = amount;       /* what is charged from here on */
	for (size_t i = 0; i < r->n; i++) {
		struct counter *c = r->e[i].c;

		c->reserved -= reserved;
		items[i] = (struct store_spend){ .scope = c->name, .period = c->name + c->slen + 1,
						 .start = r->e[i].start, .amount = r->cost };
		if (c->kind == BUDGET_ROLLING) {
			items[i].expires = r->e[i].start + c->nslots * c->slot;
			if (r->cost && slot_add(c, r->e[i].start, r->cost) < 0)
				c->spent += r->cost;    /* keep the total; the slot is lost */
		} else if (c->start == r->e[i].start) {
			c->spent += r->cost;
		}
		/* else the period rolled over while the call ran: the charge belongs to the
		 * period it was reserved in, which only the store still records. */
	}
	/* Under the lock: a reset (budget_reset) reaches the store before a later charge, or
	 * after an earlier one, as it did in memory. */
	if (b->st && r->cost && r->n)
		rc = store_charge(b->st, items, r->n, cb, arg);
	resv_unlink(b, r);
	pthread_mutex_unlock(&b->mu);
	alloc_cache_put(r);
	return rc;
}

/* Start-up, before any loop runs: no lock. */
int budget_load_spend(struct budget *b, const struct store_spend *row, int64_t now)
{
	struct counter *c = counter_find(b, row->scope, row->period, false);
	enum budget_period kind;
	int64_t window;

	if (budget_parse_period_id(row->period, &kind, &window) < 0)
		return 0;               /* not ours to judge: a future period kind */
	if (!c && !(c = counter_find(b, row->scope, row->period, true)))
		return -ENOMEM;
	counter_advance(c, now);
	if (kind != BUDGET_ROLLING) {
		if (row->start == c->start)
			c->spent += row->amount;
		return 0;
	}
	if (row->start < slot_of(c, now) - (c->nslots - 1) * c->slot)
		return 0;
	return slot_add(c, row->start, row->amount);
}

int budget_counter(struct budget *b, const char *scope, const char *period, int64_t now,
		   int64_t *spent, int64_t *reserved)
{
	struct counter *c;
	int rc = -ENOENT;

	pthread_mutex_lock(&b->mu);
	if ((c = counter_find(b, scope, period, false))) {
		counter_advance(c, now);
		*spent = c->spent;
		*reserved = c->reserved;
		rc = 0;
	}
	pthread_mutex_unlock(&b->mu);
	return rc;
}

size_t budget_usage(struct budget *b, const char *scope, const char *policy, int64_t now,
		    struct budget_usage out[BUDGET_MAX_PER_SCOPE])
{
	const struct selector *sel = NULL, *ks, *ts;
	size_t n = 0;

	pthread_mutex_lock(&b->mu);
	if (!strncmp(scope, "key:", 4)) {
		budget_scopes(b->cfg, &(struct budget_subject){ scope + 4, NULL, policy }, &ks, &ts);
		sel = ks;
	} else if (!strncmp(scope, "team:", 5)) {
		budget_scopes(b->cfg, &(struct budget_subject){ NULL, scope + 5, NULL }, &ks, &ts);
		sel = ts;
	}
	for (size_t i = 0; sel && i < sel->n; i++, n++) {
		const struct budget_spec *sp = &sel->spec[i];
		struct budget_usage *u = &out[n];
		struct counter *c;

		memset(u, 0, sizeof(*u));
		snprintf(u->name, sizeof(u->name), "%s", sp->name);
		budget_period_id(sp, u->period, sizeof(u->period));
		u->limit = sp->limit;
		if (sp->period == BUDGET_ROLLING) {
			u->period_start = now - sp->window;
		} else {
			u->period_start = budget_period_start(sp->period, now);
			u->resets_at = budget_period_next(sp->period, u->period_start);
		}
		c = counter_find(b, scope, u->period, false);
		if (!c)
			continue;
		counter_advance(c, now);
		u->spent = c->spent;
		u->reserved = c->reserved;
		if (c->kind == BUDGET_ROLLING && c->lo < c->hi)
			u->resets_at = c->ents[c->lo].start + c->nslots * c->slot;
	}
	pthread_mutex_unlock(&b->mu);
	return n;
}

int budget_reset(struct budget *b, const char *scope, int64_t now, store_done_fn cb, void *arg)
{
	size_t slen = strlen(scope), n = 0;
	struct store_spend items[64];
	struct htab_iter it;
	int rc = 1;

	pthread_mutex_lock(&b->mu);
	it = htab_iter(&b->counters);
	for (struct htab_node *hn; (hn = htab_next(&it));) {
		struct counter *c = htab_entry(hn, struct counter, hn);
		{
			if (c->slen != slen || memcmp(c->name, scope, slen) != 0)
				continue;
			if (n == sizeof(items) / sizeof(items[0])) {
				rc = -E2BIG;
				goto out;
			}
			counter_advance(c, now);
			/* Rolling: every slot still in the window; calendar: this period's row. */
			items[n++] = (struct store_spend){ .scope = c->name,
							  .period = c->name + c->slen + 1,
							  .start = c->kind == BUDGET_ROLLING ? INT64_MIN
											    : c->start };
		}
	}
	/* Zero only once every counter is known to fit the store operation: all or nothing. */
	for (size_t i = 0; i < n; i++) {
		struct counter *c = counter_find(b, items[i].scope, items[i].period, false);

		c->spent = 0;
		c->lo = c->hi = 0;
	}
	/* Under the lock, as charges are queued: the store applies the reset after the charges
	 * it zeroed and before any that follow, whatever loop made them. */
	if (b->st && n)
		rc = store_spend_reset(b->st, items, n, cb, arg);
out:
	pthread_mutex_unlock(&b->mu);
	return rc;
}

cJSON *budget_refusal_json(const struct budget_refusal *why)
{
	cJSON *o = cJSON_CreateObject();
	char buf[40];

	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "budget", why->name);
	cJSON_AddStringToObject(o, "scope", why->scope);
	cJSON_AddStringToObject(o, "period", why->period);
	budget_format_money(why->spent, buf, sizeof(buf));
	cJSON_AddStringToObject(o, "spent", buf);
	budget_format_money(why->reserved, buf, sizeof(buf));
	cJSON_AddStringToObject(o, "reserved", buf);
	budget_format_money(why->limit, buf, sizeof(buf));
	cJSON_AddStringToObject(o, "limit", buf);
	budget_format_money(why->cost, buf, sizeof(buf));
	cJSON_AddStringToObject(o, "cost", buf);
	if (why->resets_at) {
		budget_rfc3339(why->resets_at, buf, sizeof(buf));
		cJSON_AddStringToObject(o, "resets_at", buf);
	} else {
		cJSON_AddNullToObject(o, "resets_at");
	}
	return o;
}
