/* test_budget: exact money, UTC period boundaries, cost table, reserve/commit/release. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <CUnit/Basic.h>

#include "govern/budget.h"
#include "config_errors_util.h"
#include "cunit_main.h"

#define DAY 86400ll
#define M(x) ((int64_t)(x))     /* micro-units, for readability */

/* unix seconds of a UTC date and time */
static int64_t at(int64_t y, unsigned mo, unsigned d, int h, int mi, int s)
{
	struct tm tm = { .tm_year = (int)(y - 1900), .tm_mon = (int)mo - 1, .tm_mday = (int)d,
			 .tm_hour = h, .tm_min = mi, .tm_sec = s };

	return (int64_t)timegm(&tm);
}

static void test_money_parse(void)
{
	int64_t v = -1;

	CU_ASSERT(budget_parse_money("0.0025", &v) == 0 && v == 2500);
	CU_ASSERT(budget_parse_money("12", &v) == 0 && v == 12000000);
	CU_ASSERT(budget_parse_money("5.10", &v) == 0 && v == 5100000);
	CU_ASSERT(budget_parse_money("0.000001", &v) == 0 && v == 1);
	CU_ASSERT(budget_parse_money("0", &v) == 0 && v == 0);
	CU_ASSERT(budget_parse_money("0.1", &v) == 0 && v == 100000);     /* no 0.1 float drift */
	CU_ASSERT(budget_parse_money("1000000000000", &v) == 0 && v == BUDGET_MONEY_MAX);
	v = 42;
	CU_ASSERT(budget_parse_money("0.0000001", &v) == -EINVAL);        /* 7 decimals */
	CU_ASSERT(budget_parse_money("1.1234567", &v) == -EINVAL);
	CU_ASSERT(budget_parse_money("-1", &v) == -EINVAL);
	CU_ASSERT(budget_parse_money("-0.5", &v) == -EINVAL);
	CU_ASSERT(budget_parse_money("+1", &v) == -EINVAL);
	CU_ASSERT(budget_parse_money("1e3", &v) == -EINVAL);
	CU_ASSERT(budget_parse_money(" 1", &v) == -EINVAL);
	CU_ASSERT(budget_parse_money("1 ", &v) == -EINVAL);
	CU_ASSERT(budget_parse_money("1.", &v) == -EINVAL);
	CU_ASSERT(budget_parse_money(".5", &v) == -EINVAL);
	CU_ASSERT(budget_parse_money("", &v) == -EINVAL);
	CU_ASSERT(budget_parse_money("1,5", &v) == -EINVAL);
	CU_ASSERT(budget_parse_money("NaN", &v) == -EINVAL);
	CU_ASSERT(budget_parse_money("1000000000000.000001", &v) == -ERANGE);
	CU_ASSERT(budget_parse_money("99999999999999999999999", &v) == -ERANGE);
	CU_ASSERT(v == 42);     /* untouched on error */
}

static void test_money_format(void)
{
	char b[40];

	budget_format_money(2500, b, sizeof(b));
	CU_ASSERT_STRING_EQUAL(b, "0.0025");
	budget_format_money(5000000, b, sizeof(b));
	CU_ASSERT_STRING_EQUAL(b, "5.00");
	budget_format_money(5100000, b, sizeof(b));
	CU_ASSERT_STRING_EQUAL(b, "5.10");
	budget_format_money(1, b, sizeof(b));
	CU_ASSERT_STRING_EQUAL(b, "0.000001");
	budget_format_money(0, b, sizeof(b));
	CU_ASSERT_STRING_EQUAL(b, "0.00");
	budget_format_money(BUDGET_MONEY_MAX, b, sizeof(b));
	CU_ASSERT_STRING_EQUAL(b, "1000000000000.00");
}

static void test_rfc3339(void)
{
	char b[40];

	CU_ASSERT(at(1970, 1, 1, 0, 0, 0) == 0);
	CU_ASSERT(at(2000, 3, 1, 0, 0, 0) == 11017 * DAY);
	budget_rfc3339(-1, b, sizeof(b));
	CU_ASSERT_STRING_EQUAL(b, "1969-12-31T23:59:59Z");
	budget_rfc3339(at(2028, 2, 29, 0, 0, 0), b, sizeof(b));
	CU_ASSERT_STRING_EQUAL(b, "2028-02-29T00:00:00Z");
	CU_ASSERT(at(2028, 2, 29, 23, 59, 59) == 1835481599);
	budget_rfc3339(1835481599, b, sizeof(b));
	CU_ASSERT_STRING_EQUAL(b, "2028-02-29T23:59:59Z");
}

static void check_period(enum budget_period p, int64_t now, int64_t start, int64_t next)
{
	int64_t s = budget_period_start(p, now);
	CU_ASSERT(s == start);
	CU_ASSERT(budget_period_next(p, s) == next);
}

static void test_periods(void)
{
	/* month ends: 31, 30, 28 and 29 days */
	check_period(BUDGET_MONTHLY, at(2027, 1, 31, 23, 59, 59), at(2027, 1, 1, 0, 0, 0),
		     at(2027, 2, 1, 0, 0, 0));
	check_period(BUDGET_MONTHLY, at(2027, 4, 30, 23, 59, 59), at(2027, 4, 1, 0, 0, 0),
		     at(2027, 5, 1, 0, 0, 0));
	check_period(BUDGET_MONTHLY, at(2027, 2, 28, 23, 59, 59), at(2027, 2, 1, 0, 0, 0),
		     at(2027, 3, 1, 0, 0, 0));
	check_period(BUDGET_MONTHLY, at(2028, 2, 28, 12, 0, 0), at(2028, 2, 1, 0, 0, 0),
		     at(2028, 3, 1, 0, 0, 0));
	/* leap day */
	check_period(BUDGET_MONTHLY, at(2028, 2, 29, 23, 59, 59), at(2028, 2, 1, 0, 0, 0),
		     at(2028, 3, 1, 0, 0, 0));
	check_period(BUDGET_DAILY, at(2028, 2, 29, 23, 59, 59), at(2028, 2, 29, 0, 0, 0),
		     at(2028, 3, 1, 0, 0, 0));
	check_period(BUDGET_MONTHLY, at(2028, 3, 1, 0, 0, 0), at(2028, 3, 1, 0, 0, 0),
		     at(2028, 4, 1, 0, 0, 0));
	check_period(BUDGET_DAILY, at(2100, 2, 28, 1, 0, 0), at(2100, 2, 28, 0, 0, 0),
		     at(2100, 3, 1, 0, 0, 0));                     /* 2100: not a leap year */
	/* year end */
	check_period(BUDGET_MONTHLY, at(2027, 12, 31, 23, 59, 59), at(2027, 12, 1, 0, 0, 0),
		     at(2028, 1, 1, 0, 0, 0));
	check_period(BUDGET_DAILY, at(2027, 12, 31, 23, 59, 59), at(2027, 12, 31, 0, 0, 0),
		     at(2028, 1, 1, 0, 0, 0));
	check_period(BUDGET_MONTHLY, at(2028, 1, 1, 0, 0, 0), at(2028, 1, 1, 0, 0, 0),
		     at(2028, 2, 1, 0, 0, 0));
	/* ISO weeks start on Monday 00:00 UTC, across the year end: 2027-01-01 is a Friday of
	 * the week that began Monday 2026-12-28; Sunday 2028-01-02 ends 2027-W52. */
	check_period(BUDGET_WEEKLY, at(2027, 1, 1, 8, 0, 0), at(2026, 12, 28, 0, 0, 0),
		     at(2027, 1, 4, 0, 0, 0));
	check_period(BUDGET_WEEKLY, at(2028, 1, 2, 23, 59, 59), at(2027, 12, 27, 0, 0, 0),
		     at(2028, 1, 3, 0, 0, 0));
	check_period(BUDGET_WEEKLY, at(2028, 1, 3, 0, 0, 0), at(2028, 1, 3, 0, 0, 0),
		     at(2028, 1, 10, 0, 0, 0));
	check_period(BUDGET_WEEKLY, at(1970, 1, 1, 0, 0, 0), at(1969, 12, 29, 0, 0, 0),
		     at(1970, 1, 5, 0, 0, 0));
	CU_ASSERT(budget_rolling_slot(86400) == 60);
	CU_ASSERT(budget_rolling_slot(3600) == 3);
	CU_ASSERT(budget_rolling_slot(60) == 1);
}

static struct budget_config *parse(const char *text, struct config_errors *errs, int *rc)
{
	cJSON *root = cJSON_Parse(text);
	struct budget_config *cfg = (void *)1;

	CU_ASSERT_PTR_NOT_NULL_FATAL(root);
	*rc = budget_config_parse(root, &cfg, errs);
	cJSON_Delete(root);
	return cfg;
}

/* text is a valid budget config: parsed (the test frees it) */
static struct budget_config *parse_ok(const char *text)
{
	struct config_errors errs = { 0 };
	int rc;
	struct budget_config *cfg = parse(text, &errs, &rc);

	for (int i = 0; i < errs.count; i++)
		fprintf(stderr, "config: %s\n", errs.msg[i]);
	CU_ASSERT_FATAL(rc == 0 && cfg);
	return cfg;
}

/* text is refused as a whole, its errors in *errs */
static void parse_bad(const char *text, struct config_errors *errs)
{
	int rc;

	memset(errs, 0, sizeof(*errs));
	CU_ASSERT_PTR_NULL(parse(text, errs, &rc));
	CU_ASSERT_EQUAL(rc, -EINVAL);
}

static void test_costs(void)
{
	struct config_errors errs;
	struct budget_config *cfg = parse_ok(
		"{\"costs\": {\"default\": \"0.001\", \"github/*\": \"0.002\","
		" \"github/create_*\": \"0.005\", \"github/create_issue\": \"0.0100\","
		" \"*/search\": 1, \"web/sear?h\": \"0.25\"}}");

	CU_ASSERT(budget_cost(cfg, "github", "create_issue") == 10000);   /* exact wins */
	CU_ASSERT(budget_cost(cfg, "github", "create_pr") == 5000);       /* longer glob */
	CU_ASSERT(budget_cost(cfg, "github", "list") == 2000);
	CU_ASSERT(budget_cost(cfg, "fs", "read") == 1000);                /* default */
	CU_ASSERT(budget_cost(cfg, "fs", "search") == 1000000);           /* integer JSON */
	CU_ASSERT(budget_cost(cfg, "web", "search") == 250000);           /* more literals */
	budget_config_free(cfg);

	cfg = parse_ok("{}");
	CU_ASSERT(budget_cost(cfg, "a", "b") == 0);
	budget_config_free(cfg);

	parse_bad("{\"costs\": {\"a/b\": \"0.0000001\", \"a/c\": 0.5, \"a/d\": \"-1\","
		  " \"nosep\": \"1\", \"a/e\": \"1e-3\", \"a/f\": true}}", &errs);
	CU_ASSERT_ERRORS(&errs,
			 "costs.a/b: \"0.0000001\" is not an amount with at most 6",
			 "costs.a/c: write amounts with decimals as a string",
			 "costs.a/d: \"-1\": must not be negative",
			 "costs.nosep: a pattern is",
			 "costs.a/e: \"1e-3\" is not an amount",
			 "costs.a/f: expected an amount");
}

static void test_budget_config_errors(void)
{
	struct config_errors errs;

	parse_bad("{\"budgets\": {"
		  " \"everyone\": [],"
		  " \"default\": [{\"limit\": \"1\", \"period\": \"daily\", \"rolling\": \"1h\"}],"
		  " \"key:a\": [{\"limit\": \"1\", \"rolling\": \"25x\"}],"
		  " \"key:b\": [{\"limit\": \"1\", \"period\": \"daily\"},"
		  "             {\"limit\": \"2\", \"period\": \"daily\"}],"
		  " \"key:c\": [{\"limit\": \"1\", \"period\": \"yearly\", \"colour\": 1}],"
		  " \"key:d\": [{\"period\": \"daily\"}],"
		  " \"team:t\": {\"limit\": \"1\"}}}", &errs);
	CU_ASSERT_ERRORS(&errs,
			 "budgets.everyone: selector must be",
			 "budgets.default[0]: exactly one of \"period\" or \"rolling\"",
			 "budgets.key:a[0].rolling: a duration",
			 "budgets.key:b[1]: a second budget with the same period",
			 "budgets.key:c[0].period: one of daily, weekly, monthly",
			 "budgets.key:c[0].colour: unknown field",
			 "budgets.key:d[0].limit: required",
			 "budgets.team:t: expected an array");

	parse_bad("{\"budgets\": {\"key:e\": [], \"team:e\": [], \"key:e\": []}}", &errs);
	CU_ASSERT_ERRORS(&errs, "budgets: selector \"key:e\" appears twice");
}

static struct budget_config *mk_cfg;   /* the config of the budget mk() made */

/* A budget (no store) under the config text; done() frees both. */
static struct budget *mk(const char *text)
{
	struct budget *b;

	mk_cfg = parse_ok(text);
	CU_ASSERT_FATAL(budget_new(NULL, &b) == 0);
	budget_set_config(b, mk_cfg);
	return b;
}

static void done(struct budget *b)
{
	budget_free(b);
	budget_config_free(mk_cfg);
	mk_cfg = NULL;
}

static void test_reserve_commit_release(void)
{
	struct budget *b = mk("{\"budgets\": {\"default\": [{\"name\": \"key-daily\","
			      " \"limit\": \"1.00\", \"period\": \"daily\"}]}}");
	struct budget_subject k = { "k1", NULL, NULL };
	struct budget_resv *r[4];
	struct budget_refusal why;
	int64_t now = at(2028, 2, 29, 12, 0, 0), spent, reserved;

	for (int i = 0; i < 3; i++)
		CU_ASSERT(budget_reserve(b, &k, M(300000), now, &r[i], &why) == 0);
	CU_ASSERT(budget_reserve(b, &k, M(300000), now, &r[3], &why) == -EDQUOT);
	CU_ASSERT(r[3] == NULL);
	CU_ASSERT_STRING_EQUAL(why.name, "key-daily");
	CU_ASSERT_STRING_EQUAL(why.scope, "key:k1");
	CU_ASSERT_STRING_EQUAL(why.period, "day");
	CU_ASSERT(why.spent == 0 && why.reserved == 900000 && why.limit == 1000000);
	CU_ASSERT(why.resets_at == at(2028, 3, 1, 0, 0, 0));
	/* Release gives the capacity back. */
	budget_release(b, r[2]);
	CU_ASSERT(budget_reserve(b, &k, M(300000), now, &r[2], &why) == 0);
	for (int i = 0; i < 3; i++)
		CU_ASSERT(budget_commit(b, r[i], NULL, NULL) == 1);    /* no store: done */
	CU_ASSERT(budget_counter(b, "key:k1", "day", now, &spent, &reserved) == 0);
	CU_ASSERT(spent == 900000 && reserved == 0);
	/* Exactly up to the limit is fine; a micro-unit more is not. */
	CU_ASSERT(budget_reserve(b, &k, M(100001), now, &r[0], &why) == -EDQUOT);
	CU_ASSERT(budget_reserve(b, &k, M(100000), now, &r[0], &why) == 0);
	budget_release(b, r[0]);
	/* A free call always passes. */
	CU_ASSERT(budget_reserve(b, &k, 0, now, &r[0], &why) == 0);
	CU_ASSERT(budget_commit(b, r[0], NULL, NULL) == 1);
	/* Refusal as JSON data. */
	CU_ASSERT(budget_reserve(b, &k, M(250000), now, &r[0], &why) == -EDQUOT);
	cJSON *j = budget_refusal_json(&why);
	char *s = cJSON_PrintUnformatted(j);
	CU_ASSERT_STRING_EQUAL(s, "{\"budget\":\"key-daily\",\"scope\":\"key:k1\",\"period\":"
			       "\"day\",\"spent\":\"0.90\",\"reserved\":\"0.00\",\"limit\":"
			       "\"1.00\",\"cost\":\"0.25\",\"resets_at\":\"2028-03-01T00:00:00Z\"}");
	cJSON_free(s);
	cJSON_Delete(j);
	/* A new day starts at zero. */
	CU_ASSERT(budget_reserve(b, &k, M(1000000), at(2028, 3, 1, 0, 0, 0), &r[0], &why) == 0);
	budget_release(b, r[0]);
	/* A call dearer than the whole limit can never fit: resets_at is null. */
	CU_ASSERT(budget_reserve(b, &k, M(1000001), now, &r[0], &why) == -EDQUOT);
	CU_ASSERT(why.resets_at == 0);
	done(b);
}

/* Random interleavings of reserve/commit/release against a nearly spent budget: the invariant
 * spent + reserved <= limit holds after every step, and spent is exactly the committed sum. */
static void test_interleavings(void)
{
	struct budget *b = mk("{\"budgets\": {\"default\": [{\"limit\": \"10.00\","
			      " \"period\": \"monthly\"}], \"team:t\": [{\"limit\": \"7.50\","
			      " \"period\": \"weekly\"}]}}");
	struct budget_subject ks[3] = { { "a", "t", NULL }, { "b", "t", NULL }, { "c", NULL, NULL } };
	struct budget_resv *inflight[64];
	int64_t committed[3] = { 0 }, team_committed = 0, now = at(2028, 2, 29, 10, 0, 0);
	size_t n = 0;
	struct budget_refusal why;
	unsigned seed = 12345;

	for (int step = 0; step < 20000; step++) {
		int op = rand_r(&seed) % 3;
		if (op == 0 && n < 64) {
			int who = rand_r(&seed) % 3;
			int64_t cost = 1 + rand_r(&seed) % 400000;
			struct budget_resv *r;
			if (budget_reserve(b, &ks[who], cost, now, &r, &why) == 0)
				inflight[n++] = r;
		} else if (n > 0) {
			size_t i = (size_t)rand_r(&seed) % n;
			struct budget_resv *r = inflight[i];
			inflight[i] = inflight[--n];
			if (op == 1) {
				/* peek: who and cost are not exposed, so track through counters */
				budget_commit(b, r, NULL, NULL);
			} else {
				budget_release(b, r);
			}
		}
		int64_t sp, rs;
		for (int k = 0; k < 3; k++) {
			char scope[16];
			snprintf(scope, sizeof(scope), "key:%s", ks[k].key_id);
			if (budget_counter(b, scope, "month", now, &sp, &rs) == 0) {
				if (sp + rs > 10000000 || sp < committed[k])
					CU_FAIL("key budget overshoot");
				committed[k] = sp;
			}
		}
		if (budget_counter(b, "team:t", "week", now, &sp, &rs) == 0) {
			if (sp + rs > 7500000 || sp < team_committed)
				CU_FAIL("team budget overshoot");
			team_committed = sp;
		}
	}
	while (n > 0)
		budget_commit(b, inflight[--n], NULL, NULL);
	int64_t sa, sb, st, rs;
	CU_ASSERT(budget_counter(b, "key:a", "month", now, &sa, &rs) == 0 && rs == 0);
	CU_ASSERT(budget_counter(b, "key:b", "month", now, &sb, &rs) == 0 && rs == 0);
	CU_ASSERT(budget_counter(b, "team:t", "week", now, &st, &rs) == 0 && rs == 0);
	/* The team counter is charged exactly what its keys were charged, and is nearly full
	 * (the run is long enough to fill it). */
	CU_ASSERT(st == sa + sb);
	CU_ASSERT(st <= 7500000 && st > 7500000 - 400000);
	done(b);
}

/* Key and team both limit; a refusal by the team reserves nothing on the key. */
static void test_team_and_key(void)
{
	struct budget *b = mk("{\"budgets\": {"
			      " \"default\": [{\"limit\": \"0.50\", \"period\": \"daily\"}],"
			      " \"policy:big\": [{\"limit\": \"100\", \"period\": \"daily\"}],"
			      " \"key:vip\": [{\"limit\": \"2.00\", \"period\": \"daily\"},"
			      "               {\"name\": \"burst\", \"limit\": \"1.00\", \"rolling\": \"1h\"}],"
			      " \"team:research\": [{\"name\": \"research-monthly\", \"limit\": \"1.00\","
			      "                      \"period\": \"monthly\"}]}}");
	struct budget_subject a = { "a", "research", "big" }, c = { "c", "research", NULL };
	struct budget_subject vip = { "vip", NULL, "big" };
	struct budget_resv *r1, *r2;
	struct budget_refusal why;
	int64_t now = at(2027, 12, 31, 23, 0, 0), sp, rs;

	CU_ASSERT(budget_reserve(b, &a, M(600000), now, &r1, &why) == 0);  /* policy: 100 */
	CU_ASSERT(budget_reserve(b, &c, M(400000), now, &r2, &why) == 0);  /* default: 0.50 */
	budget_release(b, r2);
	CU_ASSERT(budget_reserve(b, &c, M(450000), now, &r2, &why) == -EDQUOT);
	CU_ASSERT_STRING_EQUAL(why.scope, "team:research");
	CU_ASSERT_STRING_EQUAL(why.name, "research-monthly");
	CU_ASSERT(why.reserved == 600000);
	CU_ASSERT(why.resets_at == at(2028, 1, 1, 0, 0, 0));
	CU_ASSERT(budget_counter(b, "key:c", "day", now, &sp, &rs) == 0);
	CU_ASSERT(sp == 0 && rs == 0);
	/* The key's own limit refuses first when it is the one exceeded. */
	CU_ASSERT(budget_reserve(b, &c, M(510000), now, &r2, &why) == -EDQUOT);
	CU_ASSERT_STRING_EQUAL(why.scope, "key:c");
	CU_ASSERT(budget_commit(b, r1, NULL, NULL) == 1);
	CU_ASSERT(budget_counter(b, "team:research", "month", now, &sp, &rs) == 0);
	CU_ASSERT(sp == 600000 && rs == 0);
	/* key:<id> beats the policy; both of its budgets apply. */
	CU_ASSERT(budget_reserve(b, &vip, M(1000000), now, &r1, &why) == 0);
	CU_ASSERT(budget_reserve(b, &vip, M(1), now, &r2, &why) == -EDQUOT);
	CU_ASSERT_STRING_EQUAL(why.name, "burst");
	CU_ASSERT_STRING_EQUAL(why.period, "rolling:3600");
	budget_release(b, r1);
	done(b);
}

/* A call reserved before midnight and committed after it is charged to the old day. */
static void test_rollover_in_flight(void)
{
	struct budget *b = mk("{\"budgets\": {\"default\": [{\"limit\": \"1.00\","
			      " \"period\": \"daily\"}]}}");
	struct budget_subject k = { "k", NULL, NULL };
	struct budget_resv *r1, *r2;
	struct budget_refusal why;
	int64_t sp, rs;

	CU_ASSERT(budget_reserve(b, &k, M(700000), at(2028, 2, 28, 23, 59, 59), &r1, &why) == 0);
	/* New day, old call still in flight: its reservation still holds capacity. */
	CU_ASSERT(budget_reserve(b, &k, M(400000), at(2028, 2, 29, 0, 0, 0), &r2, &why) == -EDQUOT);
	CU_ASSERT(why.spent == 0 && why.reserved == 700000);
	CU_ASSERT(budget_commit(b, r1, NULL, NULL) == 1);
	CU_ASSERT(budget_counter(b, "key:k", "day", at(2028, 2, 29, 0, 0, 1), &sp, &rs) == 0);
	CU_ASSERT(sp == 0 && rs == 0);
	CU_ASSERT(budget_reserve(b, &k, M(1000000), at(2028, 2, 29, 0, 0, 1), &r2, &why) == 0);
	budget_release(b, r2);
	/* A clock that steps back does not reopen the old day. */
	CU_ASSERT(budget_counter(b, "key:k", "day", at(2028, 2, 28, 23, 0, 0), &sp, &rs) == 0);
	CU_ASSERT(sp == 0);
	done(b);
}

/* 1h rolling window: slots of 3 s; a charge counts for at least 3600 s and at most 3606 s. */
static void test_rolling(void)
{
	struct budget *b = mk("{\"budgets\": {\"default\": [{\"limit\": \"1.00\","
			      " \"rolling\": \"1h\"}]}}");
	struct budget_subject k = { "k", NULL, NULL };
	struct budget_resv *r;
	struct budget_refusal why;
	int64_t t0 = at(2028, 2, 29, 23, 30, 0), sp, rs;   /* a multiple of 3 s */

	CU_ASSERT(t0 % 3 == 0);
	CU_ASSERT(budget_reserve(b, &k, M(500000), t0 + 1, &r, &why) == 0);
	CU_ASSERT(budget_commit(b, r, NULL, NULL) == 1);
	CU_ASSERT(budget_reserve(b, &k, M(500000), t0 + 1800, &r, &why) == 0);
	CU_ASSERT(budget_commit(b, r, NULL, NULL) == 1);
	CU_ASSERT(budget_reserve(b, &k, M(1), t0 + 1800, &r, &why) == -EDQUOT);
	CU_ASSERT(why.spent == 1000000);
	/* The first charge (slot t0) leaves the window at t0 + 1201 * 3 s. */
	CU_ASSERT(why.resets_at == t0 + 3603);
	CU_ASSERT(budget_reserve(b, &k, M(1), t0 + 3601, &r, &why) == -EDQUOT);  /* >= W */
	CU_ASSERT(budget_reserve(b, &k, M(1), t0 + 3602, &r, &why) == -EDQUOT);
	CU_ASSERT(budget_reserve(b, &k, M(500000), t0 + 3603, &r, &why) == 0);  /* crosses midnight */
	budget_release(b, r);
	CU_ASSERT(budget_counter(b, "key:k", "rolling:3600", t0 + 3603, &sp, &rs) == 0);
	CU_ASSERT(sp == 500000 && rs == 0);
	/* A whole window later everything has gone. */
	CU_ASSERT(budget_counter(b, "key:k", "rolling:3600", t0 + 1800 + 3606, &sp, &rs) == 0);
	CU_ASSERT(sp == 0);
	done(b);
}

/* Counters that hold nothing any more (keys gone quiet or removed, periods ended) are
 * forgotten; ones with spend in their period or a reservation in flight stay; a forgotten
 * counter used again starts from the zero it held. */
static void test_sweep(void)
{
	struct budget *b = mk("{\"budgets\": {\"default\": [{\"limit\": \"1.00\","
			      " \"period\": \"daily\"}, {\"limit\": \"5.00\", \"rolling\": \"1h\"}]}}");
	struct budget_subject a = { "a", NULL, NULL }, k = { "k", NULL, NULL };
	struct budget_resv *r, *held;
	struct budget_refusal why;
	int64_t day1 = at(2028, 3, 1, 12, 0, 0), day2 = at(2028, 3, 2, 12, 0, 0), sp, rs;

	CU_ASSERT(budget_reserve(b, &a, M(100000), day1, &r, &why) == 0);
	CU_ASSERT(budget_commit(b, r, NULL, NULL) == 1);
	CU_ASSERT(budget_reserve(b, &k, M(200000), day1, &held, &why) == 0);   /* in flight */
	CU_ASSERT_EQUAL(budget_counter_count(b), 4);    /* day and rolling, for a and for k */
	CU_ASSERT_EQUAL(budget_sweep(b, day1), 0);      /* all in use today */
	/* The next day: a's day is over and its rolling hour too; k still has a reservation. */
	CU_ASSERT_EQUAL(budget_sweep(b, day2), 2);
	CU_ASSERT_EQUAL(budget_counter_count(b), 2);
	CU_ASSERT(budget_counter(b, "key:a", "day", day2, &sp, &rs) == -ENOENT);
	budget_release(b, held);
	CU_ASSERT_EQUAL(budget_sweep(b, day2), 2);
	CU_ASSERT_EQUAL(budget_counter_count(b), 0);
	/* Used again: from zero, and the whole limit is there. */
	CU_ASSERT(budget_reserve(b, &a, M(1000000), day2, &r, &why) == 0);
	budget_release(b, r);
	done(b);
}

/* Rows from the store: the current period is restored, older ones are ignored. */
static void test_load_spend(void)
{
	struct budget *b = mk("{\"budgets\": {\"default\": [{\"limit\": \"1.00\","
			      " \"period\": \"monthly\"}, {\"limit\": \"0.50\", \"rolling\": \"24h\"}]}}");
	int64_t now = at(2028, 3, 15, 12, 0, 0), sp, rs;
	struct budget_subject k = { "k", NULL, NULL };
	struct budget_resv *r;
	struct budget_refusal why;
	const struct store_spend rows[] = {
		{ "key:k", "month", at(2028, 2, 1, 0, 0, 0), 990000, 0 },   /* last month */
		{ "key:k", "month", at(2028, 3, 1, 0, 0, 0), 700000, 0 },
		{ "key:k", "rolling:86400", now - 86400 - 120, 400000, now - 60 },    /* gone */
		{ "key:k", "rolling:86400", now - 3600, 200000, now + 82860 },
		{ "key:k", "rolling:86400", now - 60, 100000, now + 86460 },
		{ "key:k", "fortnight", now, 1, 0 },                      /* unknown: ignored */
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		CU_ASSERT(budget_load_spend(b, &rows[i], now) == 0);
	CU_ASSERT(budget_counter(b, "key:k", "month", now, &sp, &rs) == 0 && sp == 700000);
	CU_ASSERT(budget_counter(b, "key:k", "rolling:86400", now, &sp, &rs) == 0 && sp == 300000);
	CU_ASSERT(budget_reserve(b, &k, M(300001), now, &r, &why) == -EDQUOT);
	CU_ASSERT_STRING_EQUAL(why.period, "month");
	CU_ASSERT(budget_reserve(b, &k, M(200001), now, &r, &why) == -EDQUOT);
	CU_ASSERT_STRING_EQUAL(why.period, "rolling:86400");
	CU_ASSERT(budget_reserve(b, &k, M(200000), now, &r, &why) == 0);
	done(b);         /* frees the outstanding reservation too */
}

CU_MAIN("budget", NULL, NULL,
	{ "idle counters are forgotten", test_sweep },
	{ "money: exact parse, rejects", test_money_parse },
	{ "money: format", test_money_format },
	{ "RFC 3339 times", test_rfc3339 },
	{ "period boundaries", test_periods },
	{ "cost table", test_costs },
	{ "budget config errors", test_budget_config_errors },
	{ "reserve, commit, release", test_reserve_commit_release },
	{ "interleavings never overshoot", test_interleavings },
	{ "team and key both limit", test_team_and_key },
	{ "rollover with a call in flight", test_rollover_in_flight },
	{ "rolling window", test_rolling },
	{ "load persisted spend", test_load_spend })
