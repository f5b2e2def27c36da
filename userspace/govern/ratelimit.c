/* ratelimit: integer token buckets in a bounded hash table with idle eviction. */
#include "govern/ratelimit.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/htab.h"
#include "base/intern.h"
#include "base/json_get.h"
#include "base/list.h"
#include "govern/selector.h"

#define NS_PER_SEC 1000000000ull
#define NAME_MAX_LEN 1024       /* a key id, server or tool name */
#define EVICT_PER_CHECK 2       /* idle buckets looked at per check: amortised O(1) */
/* A full bucket is the same as none, but one in use is kept: under a limit far above the
 * traffic every call would otherwise free its buckets and make them again. */
#define IDLE_NS NS_PER_SEC

/* A bucket's identity: its level, then the interned ids of key, server and tool (those below
 * the level only; the others are INTERN_NONE). */
struct bucket_key {
	union {
		struct { uint32_t level, id[RATE_NLEVELS]; };
		uint64_t w[2];
	};
};

/* One bucket. level is in units where one token = period_ns; it gains `requests` units per
 * ns. It holds a reference to each name in its key. */
struct bucket {
	struct htab_node hn;            /* in rl->buckets, by key */
	struct list_head lru;           /* in rl->lru, newest first */
	uint64_t level;
	uint64_t last_ns;               /* refilled up to */
	uint64_t used_ns;               /* last found or made by a check */
	uint64_t cap;                   /* burst * period_ns */
	uint64_t period_ns;
	uint32_t requests;
	struct bucket_key k;
};

/* Every loop takes from the same buckets (workers: N): one lock around a check, so a call's
 * tokens are taken all or nothing and a limit admits exactly its count. */
struct ratelimit {
	pthread_mutex_t mu;
	struct htab buckets;
	struct intern *names;           /* key ids, servers, tools */
	struct list_head lru;           /* most recently used first */
	size_t max;
};

static uint64_t bucket_hash(const struct htab *t, const void *key)
{
	return htab_hash_words(t, ((const struct bucket_key *)key)->w, 2);
}

static bool bucket_eq(const struct htab_node *hn, const void *key)
{
	return !memcmp(&htab_entry(hn, struct bucket, hn)->k, key, sizeof(struct bucket_key));
}

static const struct htab_type bucket_type = { bucket_hash, bucket_eq };

static struct bucket *oldest(const struct ratelimit *rl)
{
	return list_empty(&rl->lru) ? NULL : list_last_entry(&rl->lru, struct bucket, lru);
}

struct selector {
	char *name;                     /* "default", "key:<id>", "team:<t>", "policy:<p>" */
	bool set[RATE_NLEVELS];         /* this selector sets the level (possibly to unlimited) */
	struct rate_spec spec[RATE_NLEVELS];
};

struct ratelimit_config {
	struct selector *sel;           /* sorted by name */
	size_t nsel;
	struct selector_kinds kinds;    /* of sel */
};

static const char *const level_names[RATE_NLEVELS] = { "key", "server", "tool" };

static const struct {
	const char *name;
	uint64_t ns;
} pers[] = {
	{ "second", NS_PER_SEC },
	{ "minute", 60 * NS_PER_SEC },
	{ "hour", 3600 * NS_PER_SEC },
	{ "day", 86400 * NS_PER_SEC },
};

const char *ratelimit_level_name(enum rate_level level)
{
	return (unsigned)level < RATE_NLEVELS ? level_names[level] : "?";
}

const char *ratelimit_per_name(uint64_t period_ns)
{
	for (size_t i = 0; i < sizeof(pers) / sizeof(pers[0]); i++)
		if (pers[i].ns == period_ns)
			return pers[i].name;
	return "?";
}

/* ---- config ---- */

static int parse_spec(const cJSON *v, const char *path, struct rate_spec *out,
		      struct config_errors *errs)
{
	static const char *const known[] = { "requests", "per", "burst", NULL };
	const cJSON *req, *per, *burst;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	if (cJSON_IsString(v) && strcmp(v->valuestring, "unlimited") == 0)
		return 0;
	if (!cJSON_IsObject(v))
		return config_fail(errs, path, "expected {\"requests\": n, \"per\": \"minute\", "
			       "\"burst\": n} or \"unlimited\"");
	for (const cJSON *it = v->child; it; it = it->next) {
		bool ok = false;
		for (const char *const *k = known; *k; k++)
			ok |= strcmp(it->string, *k) == 0;
		if (!ok)
			rc = config_fail(errs, path, "unknown field \"%s\"", it->string);
	}
	req = json_get(v, "requests");
	per = json_get(v, "per");
	burst = json_get(v, "burst");
	/* The range before the integer test: converting a double beyond long long (or NaN) is
	 * undefined. */
	if (!cJSON_IsNumber(req) || !(req->valuedouble >= 1 && req->valuedouble <= 1000000) ||
	    req->valuedouble != (double)(long long)req->valuedouble)
		rc = config_fail(errs, path, "requests: an integer from 1 to 1000000 is required");
	else
		out->requests = (uint32_t)req->valuedouble;
	if (!cJSON_IsString(per)) {
		rc = config_fail(errs, path, "per: one of second, minute, hour, day is required");
	} else {
		for (size_t i = 0; i < sizeof(pers) / sizeof(pers[0]); i++)
			if (strcmp(per->valuestring, pers[i].name) == 0)
				out->period_ns = pers[i].ns;
		if (!out->period_ns)
			rc = config_fail(errs, path, "per: \"%s\" is not one of second, minute, hour, "
				     "day", per->valuestring);
	}
	if (!burst) {
		out->burst = out->requests;
	} else if (!cJSON_IsNumber(burst) ||
		   !(burst->valuedouble >= 1 && burst->valuedouble <= 1000000) ||
		   burst->valuedouble != (double)(long long)burst->valuedouble) {
		rc = config_fail(errs, path, "burst: an integer from 1 to 1000000 is required");
	} else {
		out->burst = (uint32_t)burst->valuedouble;
	}
	/* The bucket capacity burst * period_ns must fit in 63 bits. */
	if (rc == 0 && out->burst > INT64_MAX / out->period_ns)
		rc = config_fail(errs, path, "burst: %u per %s is too large", out->burst,
			     per->valuestring);
	if (rc)
		memset(out, 0, sizeof(*out));
	return rc;
}

void ratelimit_config_free(struct ratelimit_config *cfg)
{
	if (!cfg)
		return;
	selector_free(cfg->sel, cfg->nsel, sizeof(*cfg->sel));
	free(cfg);
}

int ratelimit_config_parse(const cJSON *root, struct ratelimit_config **out,
			   struct config_errors *errs)
{
	return ratelimit_config_parse_section(
		root ? json_get(root, "rate_limits") : NULL, "rate_limits",
		out, errs);
}

int ratelimit_config_parse_section(const cJSON *sec, const char *where,
				   struct ratelimit_config **out, struct config_errors *errs)
{
	struct ratelimit_config *cfg = xcalloc(1, sizeof(*cfg));
	char path[512];
	int rc = 0;

	*out = NULL;
	if (!sec)
		goto out;
	if (!cJSON_IsObject(sec)) {
		rc = config_fail(errs, where, "expected an object of selector: limits");
		goto out;
	}
	cfg->sel = xcalloc((size_t)cJSON_GetArraySize(sec) + 1, sizeof(*cfg->sel));
	for (const cJSON *s = sec->child; s; s = s->next) {
		struct selector *sel = &cfg->sel[cfg->nsel];

		snprintf(path, sizeof(path), "%s.%s", where, s->string);
		if (!selector_name_ok(s->string)) {
			rc = config_fail(errs, path, "selector must be \"default\", \"key:<id>\", "
				     "\"team:<name>\" or \"policy:<name>\"");
			continue;
		}
		if (!cJSON_IsObject(s)) {
			rc = config_fail(errs, path, "expected {\"key\": ..., \"server\": ..., "
				     "\"tool\": ...}");
			continue;
		}
		for (const cJSON *l = s->child; l; l = l->next) {
			int lv = -1;
			for (int i = 0; i < RATE_NLEVELS; i++)
				if (strcmp(l->string, level_names[i]) == 0)
					lv = i;
			snprintf(path, sizeof(path), "%s.%s.%s", where, s->string, l->string);
			if (lv < 0) {
				rc = config_fail(errs, path, "unknown level (key, server, tool)");
				continue;
			}
			if (parse_spec(l, path, &sel->spec[lv], errs) < 0) {
				rc = -EINVAL;
				continue;
			}
			sel->set[lv] = true;
		}
		sel->name = xstrdup(s->string);
		cfg->nsel++;
	}
	if (selector_sort(cfg->sel, cfg->nsel, sizeof(*cfg->sel), where, errs))
		rc = -EINVAL;
	selector_kinds(cfg->sel, cfg->nsel, sizeof(*cfg->sel), &cfg->kinds);
out:
	if (rc) {
		ratelimit_config_free(cfg);
		return rc;
	}
	*out = cfg;
	return 0;
}

static const struct selector *find_sel(const struct ratelimit_config *cfg, const char *prefix,
				       const char *name)
{
	return selector_find(cfg->sel, cfg->nsel, sizeof(*cfg->sel), prefix, name);
}

void ratelimit_config_resolve(const struct ratelimit_config *cfg, const struct rate_subject *who,
			      struct rate_limits *out)
{
	const struct selector *order[4];

	memset(out, 0, sizeof(*out));
	if (!cfg || !cfg->nsel)
		return;
	/* Most specific first. */
	order[0] = cfg->kinds.key ? find_sel(cfg, "key:", who->key_id) : NULL;
	order[1] = cfg->kinds.policy ? find_sel(cfg, "policy:", who->policy) : NULL;
	order[2] = cfg->kinds.team ? find_sel(cfg, "team:", who->team) : NULL;
	order[3] = cfg->kinds.dflt;
	for (int lv = 0; lv < RATE_NLEVELS; lv++) {
		for (int i = 0; i < 4; i++) {
			if (order[i] && order[i]->set[lv]) {
				out->level[lv] = order[i]->spec[lv];
				break;
			}
		}
	}
}

/* ---- the bucket table ---- */

int ratelimit_new(size_t max_buckets, struct ratelimit **out)
{
	struct ratelimit *rl = xcalloc(1, sizeof(*rl));
	int rc;

	*out = NULL;
	rl->max = max_buckets ? max_buckets : RATELIMIT_MAX_BUCKETS_DEFAULT;
	/* One check touches up to three buckets; a table that cannot hold them while making
	 * room would evict a bucket the same check still uses. */
	if (rl->max < RATE_NLEVELS)
		rl->max = RATE_NLEVELS;
	list_init(&rl->lru);
	pthread_mutex_init(&rl->mu, NULL);
	/* Every name is held by a bucket: three per bucket at most. */
	if ((rc = htab_init(&rl->buckets, &bucket_type)) != 0 ||
	    (rc = intern_new(RATE_NLEVELS * rl->max, &rl->names)) != 0) {
		free(rl);       /* neither holds anything when it fails: no bucket array yet */
		return rc;
	}
	*out = rl;
	return 0;
}

void ratelimit_free(struct ratelimit *rl)
{
	if (!rl)
		return;
	struct bucket *b, *n;

	list_for_each_entry_safe(b, n, &rl->lru, lru)
		free(b);
	htab_fini(&rl->buckets);
	intern_free(rl->names);
	pthread_mutex_destroy(&rl->mu);
	free(rl);
}

size_t ratelimit_bucket_count(struct ratelimit *rl)
{
	size_t n;

	pthread_mutex_lock(&rl->mu);
	n = htab_count(&rl->buckets);
	pthread_mutex_unlock(&rl->mu);
	return n;
}

static void bucket_remove(struct ratelimit *rl, struct bucket *b)
{
	htab_remove(&rl->buckets, &b->hn);
	list_del(&b->lru);
	for (int i = 0; i < RATE_NLEVELS; i++)
		intern_put(rl->names, b->k.id[i]);
	free(b);
}

/* Bring b's level up to now. The clock is monotonic; an earlier now changes nothing. */
static void refill(struct bucket *b, uint64_t now)
{
	uint64_t el, room;

	if (now <= b->last_ns)
		return;
	el = now - b->last_ns;
	room = b->cap - b->level;
	if (el > room / b->requests)
		b->level = b->cap;
	else
		b->level += el * b->requests;
	b->last_ns = now;
}

/* Nanoseconds until b holds `units` (b refilled to now). */
static uint64_t wait_for(const struct bucket *b, uint64_t units)
{
	if (b->level >= units)
		return 0;
	return (units - b->level + b->requests - 1) / b->requests;
}

/* The config changed under a live bucket: keep its fill ratio, in the new units. */
static void respec(struct bucket *b, const struct rate_spec *s)
{
	uint64_t cap = (uint64_t)s->burst * s->period_ns;
	unsigned __int128 lvl = (unsigned __int128)b->level * cap / b->cap;

	b->level = (uint64_t)lvl;
	b->cap = cap;
	b->period_ns = s->period_ns;
	b->requests = s->requests;
}

static void evict_idle(struct ratelimit *rl, uint64_t now)
{
	for (int i = 0; i < EVICT_PER_CHECK && oldest(rl); i++) {
		struct bucket *b = oldest(rl);
		if (now < b->used_ns + IDLE_NS)
			return;  /* the oldest in use: so is every other */
		refill(b, now);
		if (b->level < b->cap)
			return;
		bucket_remove(rl, b);
	}
}

static int take(struct ratelimit *rl, const struct rate_limits *lim, const char *key_id,
		const char *server, const char *tool, uint32_t n, bool partial, uint64_t now_ns,
		struct rate_refusal *why);

/* The names of one check: part[i] and its id, INTERN_NONE while no bucket holds it. */
struct names {
	const char *part[RATE_NLEVELS];
	size_t len[RATE_NLEVELS];
	uint32_t id[RATE_NLEVELS];
};

/* Find or create the level lv bucket of nm. Returns NULL with *err -EAGAIN when the table is
 * full of active buckets. */
static struct bucket *bucket_get(struct ratelimit *rl, int lv, struct names *nm,
				 const struct rate_spec *s, uint64_t now, int *err)
{
	struct bucket_key key = { .level = (uint32_t)lv }, *k = &key;
	struct htab_node *hn = NULL;
	bool evicted = false;
	struct bucket *b;
	uint64_t h;

	memcpy(key.id, nm->id, (size_t)(lv + 1) * sizeof(*nm->id));
	for (int i = 0; i <= lv; i++)
		if (nm->id[i] == INTERN_NONE)
			goto create;    /* a name no bucket holds: no bucket has it */
	h = bucket_hash(&rl->buckets, k);
	hn = htab_find_hashed(&rl->buckets, k, h);
	if (hn) {
		b = htab_entry(hn, struct bucket, hn);
		if (b->period_ns != s->period_ns || b->requests != s->requests ||
		    b->cap != (uint64_t)s->burst * s->period_ns)
			respec(b, s);
		refill(b, now);
		b->used_ns = now;
		list_move(&b->lru, &rl->lru);
		return b;
	}
create:
	if (htab_count(&rl->buckets) >= rl->max) {
		struct bucket *old = oldest(rl);
		refill(old, now);
		if (old->level < old->cap) {
			*err = -EAGAIN;
			return NULL;
		}
		bucket_remove(rl, old);
		evicted = true;
	}
	/* The bucket's references. An eviction may have freed a name this check looked up (and
	 * the next intern_get would hand its id on), so then every name is looked up again. */
	for (int i = 0; i < RATE_NLEVELS; i++) {
		if (i > lv) {
			if (evicted && nm->part[i])
				nm->id[i] = intern_find(rl->names, nm->part[i], nm->len[i]);
			continue;
		}
		if (!evicted && nm->id[i] != INTERN_NONE) {
			intern_ref(rl->names, key.id[i] = nm->id[i]);
			continue;
		}
		key.id[i] = nm->id[i] = intern_get(rl->names, nm->part[i], nm->len[i]);
		if (key.id[i] == INTERN_NONE) {
			while (i--)
				intern_put(rl->names, key.id[i]);
			*err = -ENOMEM;
			return NULL;
		}
	}
	h = bucket_hash(&rl->buckets, k);
	b = xmalloc(sizeof(*b));
	b->k = *k;
	b->period_ns = s->period_ns;
	b->requests = s->requests;
	b->cap = (uint64_t)s->burst * s->period_ns;
	b->level = b->cap;
	b->last_ns = b->used_ns = now;
	htab_insert_hashed(&rl->buckets, &b->hn, h);
	list_add(&b->lru, &rl->lru);
	return b;
}

int ratelimit_check(struct ratelimit *rl, const struct rate_limits *lim, const char *key_id,
		    const char *server, const char *tool, uint64_t now_ns,
		    struct rate_refusal *why)
{
	return take(rl, lim, key_id, server, tool, 1, false, now_ns, why);
}

void ratelimit_debit(struct ratelimit *rl, const struct rate_limits *lim, const char *key_id,
		     const char *server, const char *tool, uint32_t n, uint64_t now_ns)
{
	struct rate_refusal why;

	if (n)
		(void)take(rl, lim, key_id, server, tool, n, true, now_ns, &why);
}

static int take_locked(struct ratelimit *rl, const struct rate_limits *lim, const char *key_id,
		       const char *server, const char *tool, uint32_t n, bool partial,
		       uint64_t now_ns, struct rate_refusal *why);

/* Take n tokens from each bucket lim enables, all or nothing; partial: take what each holds,
 * up to n, and never refuse (usage learnt after the fact). A loop's clock may be behind
 * another's by a callback's length: a bucket refills only forwards (refill). */
static int take(struct ratelimit *rl, const struct rate_limits *lim, const char *key_id,
		const char *server, const char *tool, uint32_t n, bool partial, uint64_t now_ns,
		struct rate_refusal *why)
{
	int rc;

	pthread_mutex_lock(&rl->mu);
	rc = take_locked(rl, lim, key_id, server, tool, n, partial, now_ns, why);
	pthread_mutex_unlock(&rl->mu);
	return rc;
}

static int take_locked(struct ratelimit *rl, const struct rate_limits *lim, const char *key_id,
		       const char *server, const char *tool, uint32_t n, bool partial,
		       uint64_t now_ns, struct rate_refusal *why)
{
	struct bucket *b[RATE_NLEVELS] = { 0 };
	struct names nm = { { key_id, server, tool }, { 0 }, { 0 } };
	uint64_t worst = 0;
	int worst_lv = -1, err = 0, top = -1;

	for (int lv = 0; lv < RATE_NLEVELS; lv++)
		if (lim->level[lv].requests && (lv < RATE_SERVER || server) && (lv < RATE_TOOL || tool))
			top = lv;
	evict_idle(rl, now_ns);
	for (int i = 0; i <= top; i++) {
		if ((nm.len[i] = strlen(nm.part[i])) > NAME_MAX_LEN)
			return -ENAMETOOLONG;
		nm.id[i] = intern_find(rl->names, nm.part[i], nm.len[i]);
	}
	for (int lv = 0; lv <= top; lv++) {
		const struct rate_spec *s = &lim->level[lv];

		if (!s->requests)
			continue;
		b[lv] = bucket_get(rl, lv, &nm, s, now_ns, &err);
		if (b[lv])
			continue;
		if (err != -EAGAIN)
			return err;
		/* Table full: wait until the oldest bucket has refilled and can be evicted. */
		memset(why, 0, sizeof(*why));
		why->level = (enum rate_level)lv;
		why->table_full = true;
		why->spec = *s;
		why->retry_after_ms = (wait_for(oldest(rl), oldest(rl)->cap) + 999999) / 1000000;
		return -EAGAIN;
	}
	/* All or nothing: only take when every bucket holds a whole token. */
	for (int lv = 0; lv < RATE_NLEVELS; lv++) {
		uint64_t w;
		if (!b[lv])
			continue;
		if (partial)
			break;
		w = wait_for(b[lv], b[lv]->period_ns * n);
		if (w > worst) {
			worst = w;
			worst_lv = lv;
		}
	}
	if (worst_lv >= 0) {
		memset(why, 0, sizeof(*why));
		why->level = (enum rate_level)worst_lv;
		why->spec = lim->level[worst_lv];
		why->retry_after_ms = (worst + 999999) / 1000000;
		return -EAGAIN;
	}
	for (int lv = 0; lv < RATE_NLEVELS; lv++) {
		if (!b[lv])
			continue;
		/* saturating: a bucket never holds more than cap, so more than that is all of it */
		uint64_t units = n > b[lv]->cap / b[lv]->period_ns ? b[lv]->cap
							    : b[lv]->period_ns * n;
		b[lv]->level -= units < b[lv]->level ? units : b[lv]->level;
	}
	return 0;
}

int ratelimit_check_subject(struct ratelimit *rl, const struct ratelimit_config *cfg,
			    const struct rate_subject *who, const char *server, const char *tool,
			    uint64_t now_ns, struct rate_refusal *why)
{
	struct rate_limits lim;

	ratelimit_config_resolve(cfg, who, &lim);
	return ratelimit_check(rl, &lim, who->key_id, server, tool, now_ns, why);
}

cJSON *ratelimit_refusal_json(const struct rate_refusal *why)
{
	cJSON *o = cJSON_CreateObject();

	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "limit", ratelimit_level_name(why->level));
	cJSON_AddNumberToObject(o, "requests", why->spec.requests);
	cJSON_AddStringToObject(o, "per", ratelimit_per_name(why->spec.period_ns));
	cJSON_AddNumberToObject(o, "burst", why->spec.burst);
	cJSON_AddNumberToObject(o, "retry_after_ms", (double)why->retry_after_ms);
	if (why->table_full)
		cJSON_AddTrueToObject(o, "table_full");
	return o;
}
