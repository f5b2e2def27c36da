/* budget_config: exact money, UTC calendar arithmetic, the costs and budgets sections. */
#include "govern/budget.h"

#include <errno.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "base/json_get.h"
#include "govern/budget_int.h"
#include "govern/selector.h"


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

int64_t budget_floor_div(int64_t a, int64_t b)
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
	int64_t days = budget_floor_div(now, BUDGET_DAY);

	switch (p) {
	case BUDGET_DAILY:
		return days * BUDGET_DAY;
	case BUDGET_WEEKLY:
		/* 1970-01-01 was a Thursday: Monday-based weekday = (days + 3) mod 7. */
		return (days - (days + 3 - budget_floor_div(days + 3, 7) * 7)) * BUDGET_DAY;
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
		return start + BUDGET_DAY;
	case BUDGET_WEEKLY:
		return start + 7 * BUDGET_DAY;
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

static const char *const period_names[] = { "daily", "weekly", "monthly", "rolling" };
const char *const budget_period_ids[] = { "day", "week", "month", "rolling" };

void budget_period_id(const struct budget_spec *s, char *buf, size_t len)
{
	if (s->period == BUDGET_ROLLING)
		snprintf(buf, len, "rolling:%" PRId64, s->window);
	else
		snprintf(buf, len, "%s", budget_period_ids[s->period]);
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
		/* Too large first: converting a double beyond int64 is undefined. */
		if (v->valuedouble > (double)(BUDGET_MONEY_MAX / BUDGET_MICRO))
			return config_fail(errs, path, "too large");
		if (v->valuedouble != (double)(int64_t)v->valuedouble)
			return config_fail(errs, path, "write amounts with decimals as a string, "
					   "e.g. \"0.0025\" (JSON numbers are binary floats)");
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
	case 'd': mul = BUDGET_DAY; break;
	default: return -EINVAL;
	}
	if (n > 400 * BUDGET_DAY / mul)
		return -ERANGE;
	*out = n * mul;
	return 0;
}

static int parse_spec(const cJSON *v, const char *path, struct budget_spec *out,
		      struct config_errors *errs)
{
	static const char *const known[] = { "name", "limit", "period", "rolling", NULL };
	const cJSON *name = json_get(v, "name");
	const cJSON *limit = json_get(v, "limit");
	const cJSON *period = json_get(v, "period");
	const cJSON *rolling = json_get(v, "rolling");
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

void budget_config_free(struct budget_config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < cfg->npats; i++)
		free(cfg->pats[i].pat);
	free(cfg->pats);
	selector_free(cfg->sel, cfg->nsel, sizeof(*cfg->sel));
	free(cfg);
}

/* costs.<pattern>: the price of the calls whose "server/tool" it matches, or the default */
static int parse_cost(const cJSON *c, const char *path, struct budget_config *cfg,
		      struct config_errors *errs)
{
	struct cost_pat *p;
	int64_t price;
	int literal = 0;
	bool glob = false;

	if (parse_money_item(c, path, &price, errs) < 0)
		return -EINVAL;
	if (strcmp(c->string, "default") == 0) {
		cfg->default_cost = price;
		return 0;
	}
	if (!strchr(c->string, '/'))
		return config_fail(errs, path, "a pattern is \"<server>/<tool>\" (globs * ? [...] "
				   "allowed) or \"default\"");
	for (const char *s = c->string; *s; s++) {
		if (*s == '*' || *s == '?' || *s == '[' || *s == ']')
			glob = true;
		else
			literal++;
	}
	cfg->pats = xgrow(cfg->pats, cfg->npats, &cfg->pats_cap, sizeof(*cfg->pats), 8);
	p = &cfg->pats[cfg->npats++];
	p->pat = xstrdup(c->string);
	p->price = price;
	p->score = 2 * literal + !glob;
	return 0;
}

/* budgets.<selector>: the budgets of the callers it names, at most one per period */
static int parse_selector(const cJSON *s, const char *path, struct budget_config *cfg,
			  struct config_errors *errs)
{
	char item[512], ida[32], idb[32];
	struct selector *sel;
	int rc = 0, i = 0;

	if (!selector_name_ok(s->string) || strlen(s->string) >= 256)
		return config_fail(errs, path, "selector must be \"default\", \"key:<id>\", "
				   "\"policy:<name>\" or \"team:<name>\"");
	if (!cJSON_IsArray(s) || cJSON_GetArraySize(s) > BUDGET_MAX_PER_SCOPE)
		return config_fail(errs, path, "expected an array of at most %d budgets",
				   BUDGET_MAX_PER_SCOPE);
	cfg->sel = xgrow(cfg->sel, cfg->nsel, &cfg->sel_cap, sizeof(*cfg->sel), 8);
	sel = &cfg->sel[cfg->nsel++];
	memset(sel, 0, sizeof(*sel));
	sel->name = xstrdup(s->string);
	for (const cJSON *v = s->child; v; v = v->next, i++) {
		snprintf(item, sizeof(item), "%s[%d]", path, i);
		if (parse_spec(v, item, &sel->spec[sel->n], errs) < 0) {
			rc = -EINVAL;
			continue;
		}
		/* A counter is (scope, period): two budgets of one period would share it. */
		budget_period_id(&sel->spec[sel->n], ida, sizeof(ida));
		for (size_t j = 0; j < sel->n; j++) {
			budget_period_id(&sel->spec[j], idb, sizeof(idb));
			if (strcmp(ida, idb) == 0)
				rc = config_fail(errs, item, "a second budget with the same "
						 "period in one selector");
		}
		sel->n++;
	}
	return rc;
}

/* The section `name` of root (absent: nothing to do), an object whose members one() reads at
 * the path "<name>.<member>". Every member is read, so that one run reports all errors. */
static int parse_section(const cJSON *root, const char *name, const char *expected,
			 int (*one)(const cJSON *m, const char *path, struct budget_config *cfg,
				    struct config_errors *errs),
			 struct budget_config *cfg, struct config_errors *errs)
{
	const cJSON *sec = root ? json_get(root, name) : NULL;
	char path[512];
	int rc = 0;

	if (!sec)
		return 0;
	if (!cJSON_IsObject(sec))
		return config_fail(errs, name, "expected %s", expected);
	for (const cJSON *m = sec->child; m; m = m->next) {
		snprintf(path, sizeof(path), "%s.%s", name, m->string);
		if (one(m, path, cfg, errs))
			rc = -EINVAL;
	}
	return rc;
}

int budget_config_parse(const cJSON *root, struct budget_config **out,
			struct config_errors *errs)
{
	struct budget_config *cfg = xcalloc(1, sizeof(*cfg));
	int rc = 0;

	*out = NULL;
	/* Both sections are read, so that one run reports the errors of both. */
	if (parse_section(root, "costs", "{\"default\": \"0\", \"server/tool-glob\": "
			  "\"0.0025\", ...}", parse_cost, cfg, errs))
		rc = -EINVAL;
	if (parse_section(root, "budgets", "{\"<selector>\": [budgets]} with selectors "
			  "default, key:<id>, policy:<name>, team:<name>", parse_selector, cfg,
			  errs) ||
	    selector_sort(cfg->sel, cfg->nsel, sizeof(*cfg->sel), "budgets", errs))
		rc = -EINVAL;
	selector_kinds(cfg->sel, cfg->nsel, sizeof(*cfg->sel), &cfg->kinds);
	if (rc) {
		budget_config_free(cfg);
		return rc;
	}
	*out = cfg;
	return 0;
}

int64_t budget_cost(const struct budget_config *cfg, const char *server, const char *tool)
{
	char name[BUDGET_NAME_BUF];
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

static const struct selector *find_sel(const struct budget_config *cfg, bool named,
				       const char *prefix, const char *name)
{
	return named ? selector_find(cfg->sel, cfg->nsel, sizeof(*cfg->sel), prefix, name) : NULL;
}

void budget_scopes(const struct budget_config *cfg, const struct budget_subject *who,
		   const struct selector **ks, const struct selector **ts)
{
	*ks = *ts = NULL;
	if (!cfg)
		return;
	*ks = find_sel(cfg, cfg->kinds.key, "key:", who->key_id);
	if (!*ks)
		*ks = find_sel(cfg, cfg->kinds.policy, "policy:", who->policy);
	if (!*ks)
		*ks = cfg->kinds.dflt;
	*ts = find_sel(cfg, cfg->kinds.team, "team:", who->team);
}

/* "day" | "week" | "month" | "rolling:<seconds>" */
int budget_parse_period_id(const char *s, enum budget_period *kind, int64_t *window)
{
	char *end;

	for (int i = 0; i < 3; i++) {
		if (strcmp(s, budget_period_ids[i]) == 0) {
			*kind = (enum budget_period)i;
			*window = 0;
			return 0;
		}
	}
	if (strncmp(s, "rolling:", 8) != 0)
		return -EINVAL;
	errno = 0;
	long long w = strtoll(s + 8, &end, 10);
	if (errno || *end || end == s + 8 || w < 1 || w > 400 * BUDGET_DAY)
		return -EINVAL;
	*kind = BUDGET_ROLLING;
	*window = w;
	return 0;
}

void budget_applicable(const struct budget_config *cfg, const struct budget_subject *who,
		       const struct budget_spec **kspec, size_t *nk,
		       const struct budget_spec **tspec, size_t *nt)
{
	const struct selector *ks, *ts;

	budget_scopes(cfg, who, &ks, &ts);
	*kspec = ks ? ks->spec : NULL;
	*nk = ks ? ks->n : 0;
	*tspec = ts ? ts->spec : NULL;
	*nt = ts ? ts->n : 0;
}

int budget_period_kind(const char *id, enum budget_period *kind, int64_t *window)
{
	return budget_parse_period_id(id, kind, window);
}
