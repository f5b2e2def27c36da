/* budget: exact money, UTC calendar arithmetic, counters with reservations. */
#include "govern/budget.h"

#include <errno.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "base/htab.h"
#include "base/intern.h"
#include "base/list.h"

#define DAY 86400ll
#define NAME_BUF 600

/* ---- money ---- */

int budget_parse_money(const char *s, int64_t *out)
{
	int64_t whole = 0, frac = 0;
	int nd = 0, nf = 0;

	if (!s)
		return -EINVAL;
	for (; *s >= '0' && *s <= '9'; s++, nd++) {
		whole = whole * 10 + (*s - '0');
		if (whole > BUDGET_MONEY_MAX / BUDGET_MICRO)
			return -ERANGE;
	}
	if (nd == 0)
		return -EINVAL;
	if (*s == '.') {
		for (s++; *s >= '0' && *s <= '9'; s++, nf++) {
			if (nf == 6)
				return -EINVAL;         /* finer than a micro-unit */
			frac = frac * 10 + (*s - '0');
		}
		if (nf == 0)
			return -EINVAL;
	}
	if (*s)
		return -EINVAL;
	for (int i = nf; i < 6; i++)
		frac *= 10;
	if (whole * BUDGET_MICRO + frac > BUDGET_MONEY_MAX)
		return -ERANGE;
	*out = whole * BUDGET_MICRO + frac;
	return 0;
}

void budget_format_money(int64_t micro, char *buf, size_t len)
{
	uint64_t u = micro < 0 ? -(uint64_t)micro : (uint64_t)micro;
	char frac[8];
	int n;

	snprintf(frac, sizeof(frac), "%06" PRIu64, (uint64_t)(u % BUDGET_MICRO));
	for (n = 6; n > 2 && frac[n - 1] == '0'; n--)
		;
	frac[n] = '\0';
	snprintf(buf, len, "%s%" PRIu64 ".%s", micro < 0 ? "-" : "", (uint64_t)(u / BUDGET_MICRO), frac);
}

/* ---- UTC calendar (gmtime_r and timegm: UTC, no locale, no TZ) ---- */

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static struct tm utc(int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	return tm;
}

/* The first second of the month that is `months` after t's month (timegm normalises). */
static int64_t month_start(int64_t t, int months)
{
	struct tm tm = utc(t);

	tm.tm_mon += months;
	tm.tm_mday = 1;
	tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
	return (int64_t)timegm(&tm);
}

int64_t budget_period_start(enum budget_period p, int64_t now)
{
	int64_t days = floor_div(now, DAY);

	switch (p) {
	case BUDGET_DAILY:
		return days * DAY;
	case BUDGET_WEEKLY:
		/* 1970-01-01 was a Thursday: Monday-based weekday = (days + 3) mod 7. */
		return (days - (days + 3 - floor_div(days + 3, 7) * 7)) * DAY;
	case BUDGET_MONTHLY:
		return month_start(now, 0);
	case BUDGET_ROLLING:
		break;
	}
	return now;
}

int64_t budget_period_next(enum budget_period p, int64_t start)
{
	switch (p) {
	case BUDGET_DAILY:
		return start + DAY;
	case BUDGET_WEEKLY:
		return start + 7 * DAY;
	case BUDGET_MONTHLY:
		return month_start(start, 1);
	case BUDGET_ROLLING:
		break;
	}
	return start;
}

int64_t budget_rolling_slot(int64_t window)
{
	int64_t g = (window + 1439) / 1440;
	return g < 1 ? 1 : g;
}

void budget_rfc3339(int64_t t, char *buf, size_t len)
{
	struct tm tm = utc(t);

	if (!strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) && len)
		buf[0] = '\0';
}

/* ---- config ---- */

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
	size_t npats;
	int64_t default_cost;
	struct selector *sel;           /* sorted by name */
	size_t nsel;
};

static const char *const period_names[] = { "daily", "weekly", "monthly", "rolling" };
static const char *const period_ids[] = { "day", "week", "month", "rolling" };

static void period_id(const struct budget_spec *s, char *buf, size_t len)
{
	if (s->period == BUDGET_ROLLING)
		snprintf(buf, len, "rolling:%" PRId64, s->window);
	else
		snprintf(buf, len, "%s", period_ids[s->period]);
}

/* A price or limit: a decimal string, or a JSON integer (exact); a JSON fraction is refused
 * because it was already rounded to binary floating point by the parser. */
static int parse_money_item(const cJSON *v, const char *path, int64_t *out,
			    struct config_errors *errs)
{
	int rc;

	if (cJSON_IsNumber(v)) {
		if (v->valuedouble < 0)
			return config_fail(errs, path, "must not be negative");
		if (v->valuedouble != (double)(int64_t)v->valuedouble)
			return config_fail(errs, path, "write amounts with decimals as a string, "
					   "e.g. \"0.0025\" (JSON numbers are binary floats)");
		if (v->valuedouble > (double)(BUDGET_MONEY_MAX / BUDGET_MICRO))
			return config_fail(errs, path, "too large");
		*out = (int64_t)v->valuedouble * BUDGET_MICRO;
		return 0;
	}
	if (!cJSON_IsString(v))
		return config_fail(errs, path, "expected an amount such as \"0.0025\"");
	rc = budget_parse_money(v->valuestring, out);
	if (rc == -ERANGE)
		return config_fail(errs, path, "\"%s\" is too large", v->valuestring);
	if (rc < 0) {
		if (v->valuestring[0] == '-')
			return config_fail(errs, path, "\"%s\": must not be negative",
					   v->valuestring);
		return config_fail(errs, path, "\"%s\" is not an amount with at most 6 decimals "
				   "(e.g. \"0.0025\")", v->valuestring);
	}
	return 0;
}

/* "90s", "30m", "24h", "7d" -> seconds (1 s .. 400 d). */
static int parse_duration(const char *s, int64_t *out)
{
	int64_t n = 0, mul;
	int nd = 0;

	for (; *s >= '0' && *s <= '9' && nd < 9; s++, nd++)
		n = n * 10 + (*s - '0');
	if (nd == 0 || n == 0 || !s[0] || s[1])
		return -EINVAL;
	switch (*s) {
	case 's': mul = 1; break;
	case 'm': mul = 60; break;
	case 'h': mul = 3600; break;
	case 'd': mul = DAY; break;
	default: return -EINVAL;
	}
	if (n > 400 * DAY / mul)
		return -ERANGE;
	*out = n * mul;
	return 0;
}

static int parse_spec(const cJSON *v, const char *path, struct budget_spec *out,
		      struct config_errors *errs)
{
	static const char *const known[] = { "name", "limit", "period", "rolling", NULL };
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(v, "name");
	const cJSON *limit = cJSON_GetObjectItemCaseSensitive(v, "limit");
	const cJSON *period = cJSON_GetObjectItemCaseSensitive(v, "period");
	const cJSON *rolling = cJSON_GetObjectItemCaseSensitive(v, "rolling");
	char p[560];
	int rc = 0;

	memset(out, 0, sizeof(*out));
	if (!cJSON_IsObject(v))
		return config_fail(errs, path, "expected {\"limit\": \"5.00\", \"period\": "
				   "\"daily\"} or {\"limit\": ..., \"rolling\": \"24h\"}");
	rc = cfg_known_keys(v, path, known, errs);
	snprintf(p, sizeof(p), "%s.limit", path);
	if (!limit)
		rc = config_fail(errs, p, "required");
	else if (parse_money_item(limit, p, &out->limit, errs) < 0)
		rc = -EINVAL;
	if (!!period == !!rolling) {
		rc = config_fail(errs, path, "exactly one of \"period\" or \"rolling\" is required");
	} else if (period) {
		snprintf(p, sizeof(p), "%s.period", path);
		out->period = BUDGET_ROLLING;
		for (int i = 0; i < 3 && cJSON_IsString(period); i++)
			if (strcmp(period->valuestring, period_names[i]) == 0)
				out->period = (enum budget_period)i;
		if (out->period == BUDGET_ROLLING)
			rc = config_fail(errs, p, "one of daily, weekly, monthly (or use "
					 "\"rolling\": \"24h\")");
	} else {
		snprintf(p, sizeof(p), "%s.rolling", path);
		out->period = BUDGET_ROLLING;
		if (!cJSON_IsString(rolling) || parse_duration(rolling->valuestring,
							       &out->window) < 0)
			rc = config_fail(errs, p, "a duration from 1s to 400d such as \"90m\", "
					 "\"24h\", \"7d\"");
	}
	if (name) {
		snprintf(p, sizeof(p), "%s.name", path);
		if (!cJSON_IsString(name) || !name->valuestring[0] ||
		    strlen(name->valuestring) >= BUDGET_NAME_MAX)
			rc = config_fail(errs, p, "a non-empty string of at most %d bytes",
					 BUDGET_NAME_MAX - 1);
		else
			snprintf(out->name, sizeof(out->name), "%s", name->valuestring);
	} else if (rc == 0) {
		if (out->period == BUDGET_ROLLING)
			snprintf(out->name, sizeof(out->name), "rolling %s", rolling->valuestring);
		else
			snprintf(out->name, sizeof(out->name), "%s", period->valuestring);
	}
	return rc;
}

static int sel_cmp(const void *a, const void *b)
{
	return strcmp(((const struct selector *)a)->name, ((const struct selector *)b)->name);
}

static bool selector_name_ok(const char *s)
{
	static const char *const prefixes[] = { "key:", "team:", "policy:", NULL };

	if (strcmp(s, "default") == 0)
		return true;
	for (const char *const *p = prefixes; *p; p++)
		if (strncmp(s, *p, strlen(*p)) == 0 && s[strlen(*p)] && strlen(s) < 256)
			return true;
	return false;
}

void budget_config_free(struct budget_config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < cfg->npats; i++)
		free(cfg->pats[i].pat);
	free(cfg->pats);
	for (size_t i = 0; i < cfg->nsel; i++)
		free(cfg->sel[i].name);
	free(cfg->sel);
	free(cfg);
}

static int parse_costs(const cJSON *sec, struct budget_config *cfg, struct config_errors *errs)
{
	char path[512];
	int rc = 0;

	if (!cJSON_IsObject(sec))
		return config_fail(errs, "costs", "expected {\"default\": \"0\", "
				   "\"server/tool-glob\": \"0.0025\", ...}");
	cfg->pats = calloc((size_t)cJSON_GetArraySize(sec) + 1, sizeof(*cfg->pats));
	if (!cfg->pats)
		return -ENOMEM;
	for (const cJSON *c = sec->child; c; c = c->next) {
		struct cost_pat *p = &cfg->pats[cfg->npats];
		int64_t price;
		int literal = 0;
		bool glob = false;

		snprintf(path, sizeof(path), "costs.%s", c->string);
		if (parse_money_item(c, path, &price, errs) < 0) {
			rc = -EINVAL;
			continue;
		}
		if (strcmp(c->string, "default") == 0) {
			cfg->default_cost = price;
			continue;
		}
		if (!strchr(c->string, '/')) {
			rc = config_fail(errs, path, "a pattern is \"<server>/<tool>\" (globs * ? "
					 "[...] allowed) or \"default\"");
			continue;
		}
		for (const char *s = c->string; *s; s++) {
			if (*s == '*' || *s == '?' || *s == '[' || *s == ']')
				glob = true;
			else
				literal++;
		}
		p->pat = strdup(c->string);
		if (!p->pat)
			return -ENOMEM;
		p->price = price;
		p->score = 2 * literal + !glob;
		cfg->npats++;
	}
	return rc;
}

static int parse_budgets(const cJSON *sec, struct budget_config *cfg, struct config_errors *errs)
{
	char path[512], ida[32], idb[32];
	int rc = 0;

	if (!cJSON_IsObject(sec))
		return config_fail(errs, "budgets", "expected {\"<selector>\": [budgets]} with "
				   "selectors default, key:<id>, policy:<name>, team:<name>");
	cfg->sel = calloc((size_t)cJSON_GetArraySize(sec) + 1, sizeof(*cfg->sel));
	if (!cfg->sel)
		return -ENOMEM;
	for (const cJSON *s = sec->child; s; s = s->next) {
		struct selector *sel = &cfg->sel[cfg->nsel];
		int i = 0;

		snprintf(path, sizeof(path), "budgets.%s", s->string);
		if (!selector_name_ok(s->string)) {
			rc = config_fail(errs, path, "selector must be \"default\", \"key:<id>\", "
					 "\"policy:<name>\" or \"team:<name>\"");
			continue;
		}
		if (!cJSON_IsArray(s) || cJSON_GetArraySize(s) > BUDGET_MAX_PER_SCOPE) {
			rc = config_fail(errs, path, "expected an array of at most %d budgets",
					 BUDGET_MAX_PER_SCOPE);
			continue;
		}
		for (const cJSON *v = s->child; v; v = v->next, i++) {
			snprintf(path, sizeof(path), "budgets.%s[%d]", s->string, i);
			if (parse_spec(v, path, &sel->spec[sel->n], errs) < 0) {
				rc = -EINVAL;
				continue;
			}
			/* A counter is (scope, period): two budgets of one period would share it. */
			period_id(&sel->spec[sel->n], ida, sizeof(ida));
			for (size_t j = 0; j < sel->n; j++) {
				period_id(&sel->spec[j], idb, sizeof(idb));
				if (strcmp(ida, idb) == 0)
					rc = config_fail(errs, path, "a second budget with the same "
							 "period in one selector");
			}
			sel->n++;
		}
		sel->name = strdup(s->string);
		if (!sel->name)
			return -ENOMEM;
		cfg->nsel++;
	}
	qsort(cfg->sel, cfg->nsel, sizeof(*cfg->sel), sel_cmp);
	for (size_t i = 1; i < cfg->nsel; i++)
		if (strcmp(cfg->sel[i - 1].name, cfg->sel[i].name) == 0)
			rc = config_fail(errs, "budgets", "selector \"%s\" appears twice",
					 cfg->sel[i].name);
	return rc;
}

int budget_config_parse(const cJSON *root, struct budget_config **out,
			struct config_errors *errs)
{
	struct budget_config *cfg = calloc(1, sizeof(*cfg));
	const cJSON *sec;
	int rc = 0, r;

	*out = NULL;
	if (!cfg)
		return -ENOMEM;
	if (root && (sec = cJSON_GetObjectItemCaseSensitive(root, "costs"))) {
		r = parse_costs(sec, cfg, errs);
		if (r == -ENOMEM) {
			rc = r;
			goto out;
		}
		rc = rc ? rc : r;
	}
	if (root && (sec = cJSON_GetObjectItemCaseSensitive(root, "budgets"))) {
		r = parse_budgets(sec, cfg, errs);
		rc = (r == -ENOMEM || !rc) ? r : rc;
	}
out:
	if (rc) {
		budget_config_free(cfg);
		return rc;
	}
	*out = cfg;
	return 0;
}

int64_t budget_cost(const struct budget_config *cfg, const char *server, const char *tool)
{
	char name[NAME_BUF];
	const struct cost_pat *best = NULL;

	if (!cfg)
		return 0;
	if ((size_t)snprintf(name, sizeof(name), "%s/%s", server, tool) >= sizeof(name))
		return cfg->default_cost;
	for (size_t i = 0; i < cfg->npats; i++) {
		const struct cost_pat *p = &cfg->pats[i];
		if ((!best || p->score > best->score) && fnmatch(p->pat, name, 0) == 0)
			best = p;
	}
	return best ? best->price : cfg->default_cost;
}

static const struct selector *find_sel(const struct budget_config *cfg, const char *prefix,
				       const char *name)
{
	char buf[NAME_BUF];
	struct selector key;

	if (!cfg || !name || !*name)        /* keys use "" for no team / no policy */
		return NULL;
	if ((size_t)snprintf(buf, sizeof(buf), "%s%s", prefix, name) >= sizeof(buf))
		return NULL;
	key.name = buf;
	return bsearch(&key, cfg->sel, cfg->nsel, sizeof(*cfg->sel), sel_cmp);
}

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

struct budget {
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
	free(b);
}

void budget_set_config(struct budget *b, const struct budget_config *cfg) { b->cfg = cfg; }

/* "day" | "week" | "month" | "rolling:<seconds>" */
static int parse_period_id(const char *s, enum budget_period *kind, int64_t *window)
{
	char *end;

	for (int i = 0; i < 3; i++) {
		if (strcmp(s, period_ids[i]) == 0) {
			*kind = (enum budget_period)i;
			*window = 0;
			return 0;
		}
	}
	if (strncmp(s, "rolling:", 8) != 0)
		return -EINVAL;
	errno = 0;
	long long w = strtoll(s + 8, &end, 10);
	if (errno || *end || end == s + 8 || w < 1 || w > 400 * DAY)
		return -EINVAL;
	*kind = BUDGET_ROLLING;
	*window = w;
	return 0;
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

	if (len >= NAME_BUF)
		return NULL;
	k.name = intern_get(b->names, name, len);
	if ((c = counter_lookup(b, &k))) {
		intern_put(b->names, k.name);
		return c;
	}
	if (kind == BUDGET_ROLLING)
		snprintf(pid, sizeof(pid), "rolling:%" PRId64, window);
	else
		snprintf(pid, sizeof(pid), "%s", period_ids[kind]);
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
	if (!name || parse_period_id(period, &kind, &window) < 0)
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
	return floor_div(t, c->slot) * c->slot;
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
			size_t ncap = c->cap ? c->cap * 2 : 4;
			struct slot_ent *e = realloc(c->ents, ncap * sizeof(*e));
			if (!e)
				return -ENOMEM;
			c->ents = e;
			c->cap = ncap;
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
	struct budget_resv *r;
	size_t n = 0;

	*out = NULL;
	if (cost < 0 || cost > BUDGET_MONEY_MAX || !who || !who->key_id)
		return -EINVAL;
	ks = find_sel(b->cfg, "key:", who->key_id);
	if (!ks)
		ks = find_sel(b->cfg, "policy:", who->policy);
	if (!ks)
		ks = find_sel(b->cfg, "", "default");
	ts = find_sel(b->cfg, "team:", who->team);
	if (strlen(who->key_id) >= NAME_BUF || (ts && strlen(who->team) >= NAME_BUF))
		return -EINVAL;
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
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
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
			free(r);
			return -EINVAL;
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
			free(r);
			return -EDQUOT;
		}
	}
	for (size_t i = 0; i < n; i++)
		r->e[i].c->reserved += cost;
	r->n = n;
	list_add(&r->link, &b->resvs);
	*out = r;
	return 0;
}

static void resv_unlink(struct budget *b, struct budget_resv *r)
{
	list_del(&r->link);
}

void budget_release(struct budget *b, struct budget_resv *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		r->e[i].c->reserved -= r->cost;
	resv_unlink(b, r);
	free(r);
}

int budget_commit(struct budget *b, struct budget_resv *r, store_done_fn cb, void *arg)
{
	struct store_spend items[2 * BUDGET_MAX_PER_SCOPE];
	int rc = 1;

	if (!r)
		return -EINVAL;
	for (size_t i = 0; i < r->n; i++) {
		struct counter *c = r->e[i].c;

		c->reserved -= r->cost;
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
	if (b->st && r->cost && r->n)
		rc = store_charge(b->st, items, r->n, cb, arg);
	resv_unlink(b, r);
	free(r);
	return rc;
}

int budget_load_spend(struct budget *b, const struct store_spend *row, int64_t now)
{
	struct counter *c = counter_find(b, row->scope, row->period, false);
	enum budget_period kind;
	int64_t window;

	if (parse_period_id(row->period, &kind, &window) < 0)
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
	struct counter *c = counter_find(b, scope, period, false);

	if (!c)
		return -ENOENT;
	counter_advance(c, now);
	*spent = c->spent;
	*reserved = c->reserved;
	return 0;
}

size_t budget_usage(struct budget *b, const char *scope, const char *policy, int64_t now,
		    struct budget_usage out[BUDGET_MAX_PER_SCOPE])
{
	const struct selector *sel = NULL;
	size_t n = 0;

	if (!strncmp(scope, "key:", 4)) {
		sel = find_sel(b->cfg, "key:", scope + 4);
		if (!sel)
			sel = find_sel(b->cfg, "policy:", policy);
		if (!sel)
			sel = find_sel(b->cfg, "", "default");
	} else if (!strncmp(scope, "team:", 5)) {
		sel = find_sel(b->cfg, "team:", scope + 5);
	}
	for (size_t i = 0; sel && i < sel->n; i++, n++) {
		const struct budget_spec *sp = &sel->spec[i];
		struct budget_usage *u = &out[n];
		struct counter *c;

		memset(u, 0, sizeof(*u));
		snprintf(u->name, sizeof(u->name), "%s", sp->name);
		period_id(sp, u->period, sizeof(u->period));
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
	return n;
}

int budget_reset(struct budget *b, const char *scope, int64_t now, store_done_fn cb, void *arg)
{
	size_t slen = strlen(scope), n = 0;
	struct store_spend items[64];
	int rc = 1;

	struct htab_iter it = htab_iter(&b->counters);

	for (struct htab_node *hn; (hn = htab_next(&it));) {
		struct counter *c = htab_entry(hn, struct counter, hn);
		{
			if (c->slen != slen || memcmp(c->name, scope, slen) != 0)
				continue;
			if (n == sizeof(items) / sizeof(items[0]))
				return -E2BIG;
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
	if (b->st && n)
		rc = store_spend_reset(b->st, items, n, cb, arg);
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
