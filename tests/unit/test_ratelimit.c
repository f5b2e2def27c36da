/* test_ratelimit: token bucket arithmetic, all-or-nothing checks, eviction, config. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <CUnit/Basic.h>

#include "govern/ratelimit.h"
#include "config_errors_util.h"
#include "cunit_main.h"

#define SEC 1000000000ull
#define T0 (1000 * SEC)         /* an arbitrary monotonic start */

static struct rate_limits key_only(uint32_t req, uint32_t burst, uint64_t per)
{
	struct rate_limits l;

	memset(&l, 0, sizeof(l));
	l.level[RATE_KEY] = (struct rate_spec){ req, burst, per };
	return l;
}

static void test_burst_then_refill(void)
{
	struct ratelimit *rl;
	struct rate_refusal why;
	struct rate_limits l = key_only(60, 10, 60 * SEC);   /* 1 token/s, burst 10 */

	CU_ASSERT_FATAL(ratelimit_new(0, &rl) == 0);
	for (int i = 0; i < 10; i++)
		CU_ASSERT(ratelimit_check(rl, &l, "k1", "s", "t", T0, &why) == 0);
	CU_ASSERT(ratelimit_check(rl, &l, "k1", "s", "t", T0, &why) == -EAGAIN);
	CU_ASSERT(why.level == RATE_KEY);
	CU_ASSERT(!why.table_full);
	CU_ASSERT(why.retry_after_ms == 1000);
	CU_ASSERT(why.spec.requests == 60 && why.spec.burst == 10);
	/* One ns short of a whole token: still refused, retry after 1 ms (rounded up). */
	CU_ASSERT(ratelimit_check(rl, &l, "k1", "s", "t", T0 + SEC - 1, &why) == -EAGAIN);
	CU_ASSERT(why.retry_after_ms == 1);
	CU_ASSERT(ratelimit_check(rl, &l, "k1", "s", "t", T0 + SEC, &why) == 0);
	CU_ASSERT(ratelimit_check(rl, &l, "k1", "s", "t", T0 + SEC, &why) == -EAGAIN);
	/* A long idle period refills to the burst, never beyond. */
	for (int i = 0; i < 10; i++)
		CU_ASSERT(ratelimit_check(rl, &l, "k1", "s", "t", T0 + 3600 * SEC, &why) == 0);
	CU_ASSERT(ratelimit_check(rl, &l, "k1", "s", "t", T0 + 3600 * SEC, &why) == -EAGAIN);
	/* Another key has its own bucket. */
	CU_ASSERT(ratelimit_check(rl, &l, "k2", "s", "t", T0, &why) == 0);
	ratelimit_free(rl);
}

/* 7 per hour: one token every 3600/7 s = 514285714285.71 ns; integer units make the wait
 * exact: refused one ns before ceil(), allowed at it. */
static void test_retry_after_exact(void)
{
	struct ratelimit *rl;
	struct rate_refusal why;
	struct rate_limits l = key_only(7, 1, 3600 * SEC);
	const uint64_t tok = 514285714286ull;

	CU_ASSERT_FATAL(ratelimit_new(0, &rl) == 0);
	CU_ASSERT(ratelimit_check(rl, &l, "k", NULL, NULL, T0, &why) == 0);
	CU_ASSERT(ratelimit_check(rl, &l, "k", NULL, NULL, T0, &why) == -EAGAIN);
	CU_ASSERT(why.retry_after_ms == 514286);
	CU_ASSERT(ratelimit_check(rl, &l, "k", NULL, NULL, T0 + tok - 1, &why) == -EAGAIN);
	CU_ASSERT(why.retry_after_ms == 1);
	CU_ASSERT(ratelimit_check(rl, &l, "k", NULL, NULL, T0 + tok, &why) == 0);
	/* The fraction left over is kept: the next token comes at exactly 2 * 3600/7 s
	 * (1028571428571.43 ns), not 2 * tok after a rounded first wait. */
	CU_ASSERT(ratelimit_check(rl, &l, "k", NULL, NULL, T0 + 2 * tok - 1, &why) == -EAGAIN);
	CU_ASSERT(ratelimit_check(rl, &l, "k", NULL, NULL, T0 + 1028571428572ull, &why) == 0);
	ratelimit_free(rl);
}

/* A call refused by the tool bucket takes nothing from the key bucket. */
static void test_all_or_nothing(void)
{
	struct ratelimit *rl;
	struct rate_refusal why;
	struct rate_limits l;

	memset(&l, 0, sizeof(l));
	l.level[RATE_KEY] = (struct rate_spec){ 3, 3, 3600 * SEC };
	l.level[RATE_TOOL] = (struct rate_spec){ 2, 2, 3600 * SEC };
	CU_ASSERT_FATAL(ratelimit_new(0, &rl) == 0);
	CU_ASSERT(ratelimit_check(rl, &l, "k", "gh", "a", T0, &why) == 0);
	CU_ASSERT(ratelimit_check(rl, &l, "k", "gh", "a", T0, &why) == 0);
	for (int i = 0; i < 5; i++) {
		CU_ASSERT(ratelimit_check(rl, &l, "k", "gh", "a", T0, &why) == -EAGAIN);
		CU_ASSERT(why.level == RATE_TOOL);
	}
	/* The key bucket still has its third token. */
	CU_ASSERT(ratelimit_check(rl, &l, "k", "gh", "b", T0, &why) == 0);
	CU_ASSERT(ratelimit_check(rl, &l, "k", "gh", "c", T0, &why) == -EAGAIN);
	CU_ASSERT(why.level == RATE_KEY);
	/* Tools are per server: gh/a and fs/a are different buckets (key bucket is empty). */
	CU_ASSERT(ratelimit_check(rl, &l, "k2", "fs", "a", T0, &why) == 0);
	ratelimit_free(rl);
}

/* Several buckets empty: the refusal names the one that frees up last. */
static void test_refusal_names_longest_wait(void)
{
	struct ratelimit *rl;
	struct rate_refusal why;
	struct rate_limits l;

	memset(&l, 0, sizeof(l));
	l.level[RATE_KEY] = (struct rate_spec){ 1, 1, SEC };
	l.level[RATE_SERVER] = (struct rate_spec){ 1, 1, 60 * SEC };
	l.level[RATE_TOOL] = (struct rate_spec){ 10, 1, 60 * SEC };
	CU_ASSERT_FATAL(ratelimit_new(0, &rl) == 0);
	CU_ASSERT(ratelimit_check(rl, &l, "k", "s", "t", T0, &why) == 0);
	CU_ASSERT(ratelimit_check(rl, &l, "k", "s", "t", T0, &why) == -EAGAIN);
	CU_ASSERT(why.level == RATE_SERVER);
	CU_ASSERT(why.retry_after_ms == 60000);
	cJSON *j = ratelimit_refusal_json(&why);
	char *txt = cJSON_PrintUnformatted(j);
	CU_ASSERT_STRING_EQUAL(txt, "{\"limit\":\"server\",\"requests\":1,\"per\":\"minute\","
			       "\"burst\":1,\"retry_after_ms\":60000}");
	cJSON_free(txt);
	cJSON_Delete(j);
	/* No server: only the key level applies. */
	CU_ASSERT(ratelimit_check(rl, &l, "k", NULL, NULL, T0 + SEC, &why) == 0);
	ratelimit_free(rl);
}

static void test_eviction(void)
{
	struct ratelimit *rl;
	struct rate_refusal why;
	struct rate_limits l = key_only(1, 1, SEC);
	char id[16];

	CU_ASSERT_FATAL(ratelimit_new(8, &rl) == 0);
	for (int i = 0; i < 8; i++) {
		snprintf(id, sizeof(id), "k%d", i);
		CU_ASSERT(ratelimit_check(rl, &l, id, NULL, NULL, T0 + (uint64_t)i, &why) == 0);
	}
	CU_ASSERT(ratelimit_bucket_count(rl) == 8);
	/* Full of buckets still refilling: a new one is refused, not an old one forgotten.
	 * k0 (the oldest) is full again 1 s after T0: at T0 + 1 ms that is 999 ms away. */
	CU_ASSERT(ratelimit_check(rl, &l, "new", NULL, NULL, T0 + SEC / 1000, &why) == -EAGAIN);
	CU_ASSERT(why.table_full);
	CU_ASSERT(why.retry_after_ms == 999);
	/* k1..k7 still hold an empty bucket: they must not have been reset by the attempt. */
	CU_ASSERT(ratelimit_check(rl, &l, "k7", NULL, NULL, T0 + SEC / 1000, &why) == -EAGAIN);
	CU_ASSERT(!why.table_full);
	/* Once idle buckets are full again they are evicted, a couple per check. */
	CU_ASSERT(ratelimit_check(rl, &l, "new", NULL, NULL, T0 + 2 * SEC, &why) == 0);
	for (int i = 0; i < 8; i++)
		CU_ASSERT(ratelimit_check(rl, &l, "new", NULL, NULL,
					  T0 + (uint64_t)(3 + i) * SEC, &why) == 0);
	CU_ASSERT(ratelimit_bucket_count(rl) == 1);
	ratelimit_free(rl);
}

/* A bucket a check used within the last second stays, full or not, so that a limit far above
 * the traffic does not free and make its buckets on every call; once idle it goes. */
static void test_in_use_kept(void)
{
	struct ratelimit *rl;
	struct rate_refusal why;
	struct rate_limits l = key_only(1000000, 1, SEC);

	CU_ASSERT_FATAL(ratelimit_new(8, &rl) == 0);
	CU_ASSERT(ratelimit_check(rl, &l, "a", NULL, NULL, T0, &why) == 0);
	CU_ASSERT(ratelimit_check(rl, &l, "b", NULL, NULL, T0 + SEC / 2, &why) == 0);
	/* a is full again (a token a microsecond) but was used half a second ago */
	CU_ASSERT(ratelimit_check(rl, &l, "b", NULL, NULL, T0 + SEC / 2 + 1000, &why) == 0);
	CU_ASSERT(ratelimit_bucket_count(rl) == 2);
	/* a, idle for a second, goes at the next check; b, used within it, stays */
	CU_ASSERT(ratelimit_check(rl, &l, "b", NULL, NULL, T0 + SEC + 1000, &why) == 0);
	CU_ASSERT(ratelimit_bucket_count(rl) == 1);
	/* the limit still holds for b, whose bucket was kept: a burst of 1 at 1M/s */
	CU_ASSERT(ratelimit_check(rl, &l, "b", NULL, NULL, T0 + SEC + 1000, &why) == -EAGAIN);
	CU_ASSERT(ratelimit_check(rl, &l, "b", NULL, NULL, T0 + SEC + 2000, &why) == 0);
	CU_ASSERT(ratelimit_bucket_count(rl) == 1);
	ratelimit_free(rl);
}

/* Many keys grow the table past its initial size; every bucket stays distinct. */
static void test_many_keys(void)
{
	struct ratelimit *rl;
	struct rate_refusal why;
	struct rate_limits l = key_only(1, 1, 3600 * SEC);
	char id[16];

	CU_ASSERT_FATAL(ratelimit_new(0, &rl) == 0);
	for (int i = 0; i < 5000; i++) {
		snprintf(id, sizeof(id), "k%d", i);
		CU_ASSERT(ratelimit_check(rl, &l, id, NULL, NULL, T0, &why) == 0);
	}
	for (int i = 0; i < 5000; i++) {
		snprintf(id, sizeof(id), "k%d", i);
		CU_ASSERT(ratelimit_check(rl, &l, id, NULL, NULL, T0, &why) == -EAGAIN);
	}
	CU_ASSERT(ratelimit_bucket_count(rl) == 5000);
	ratelimit_free(rl);
}

/* A reload that changes a limit keeps the bucket's fill ratio in the new units. */
static void test_respec(void)
{
	struct ratelimit *rl;
	struct rate_refusal why;
	struct rate_limits a = key_only(10, 10, SEC), b = key_only(100, 100, 60 * SEC);

	CU_ASSERT_FATAL(ratelimit_new(0, &rl) == 0);
	for (int i = 0; i < 5; i++)
		CU_ASSERT(ratelimit_check(rl, &a, "k", NULL, NULL, T0, &why) == 0);
	/* Half full: 50 of the new 100. */
	for (int i = 0; i < 50; i++)
		CU_ASSERT(ratelimit_check(rl, &b, "k", NULL, NULL, T0, &why) == 0);
	CU_ASSERT(ratelimit_check(rl, &b, "k", NULL, NULL, T0, &why) == -EAGAIN);
	CU_ASSERT(why.retry_after_ms == 600);
	ratelimit_free(rl);
}

static void test_config(void)
{
	const char *text =
		"{\"rate_limits\": {"
		" \"default\": {\"key\": {\"requests\": 50, \"per\": \"second\", \"burst\": 100}},"
		" \"team:research\": {\"tool\": {\"requests\": 5, \"per\": \"minute\"}},"
		" \"policy:ci\": {\"server\": {\"requests\": 1000, \"per\": \"hour\"},"
		"                 \"tool\": \"unlimited\"},"
		" \"key:k7\": {\"key\": {\"requests\": 1, \"per\": \"day\"}}}}";
	cJSON *root = cJSON_Parse(text);
	struct ratelimit_config *cfg;
	struct config_errors errs = { 0 };
	struct rate_limits l;

	CU_ASSERT_FATAL(ratelimit_config_parse(root, &cfg, &errs) == 0);
	ratelimit_config_resolve(cfg, &(struct rate_subject){ "k1", NULL, NULL }, &l);
	CU_ASSERT(l.level[RATE_KEY].requests == 50 && l.level[RATE_KEY].burst == 100);
	CU_ASSERT(l.level[RATE_KEY].period_ns == SEC);
	CU_ASSERT(l.level[RATE_SERVER].requests == 0 && l.level[RATE_TOOL].requests == 0);
	ratelimit_config_resolve(cfg, &(struct rate_subject){ "k1", "research", "ci" }, &l);
	CU_ASSERT(l.level[RATE_KEY].requests == 50);
	CU_ASSERT(l.level[RATE_SERVER].requests == 1000);
	CU_ASSERT(l.level[RATE_TOOL].requests == 0);     /* policy's "unlimited" beats team */
	ratelimit_config_resolve(cfg, &(struct rate_subject){ "k7", "research", NULL }, &l);
	CU_ASSERT(l.level[RATE_KEY].requests == 1 && l.level[RATE_KEY].burst == 1);
	CU_ASSERT(l.level[RATE_KEY].period_ns == 86400 * SEC);
	CU_ASSERT(l.level[RATE_TOOL].requests == 5 && l.level[RATE_TOOL].burst == 5);
	ratelimit_config_free(cfg);
	cJSON_Delete(root);

	/* Absent section: no limits. */
	root = cJSON_Parse("{}");
	CU_ASSERT_FATAL(ratelimit_config_parse(root, &cfg, &errs) == 0);
	ratelimit_config_resolve(cfg, &(struct rate_subject){ "k", NULL, NULL }, &l);
	CU_ASSERT(l.level[RATE_KEY].requests == 0);
	ratelimit_config_free(cfg);
	cJSON_Delete(root);
}

static void test_config_errors(void)
{
	const char *text =
		"{\"rate_limits\": {"
		" \"everyone\": {},"
		" \"key:a\": {\"keys\": {\"requests\": 1, \"per\": \"second\"}},"
		" \"key:b\": {\"key\": {\"requests\": 1.5, \"per\": \"fortnight\"}},"
		" \"key:c\": {\"key\": {\"requests\": 10, \"per\": \"day\", \"burst\": 1000000}},"
		" \"key:d\": {\"tool\": {\"requests\": 10, \"per\": \"second\", \"brust\": 2}},"
		" \"team:x\": {\"key\": \"unlimited\"}, \"team:x\": {\"tool\": \"unlimited\"}}}";
	cJSON *root = cJSON_Parse(text);
	struct ratelimit_config *cfg = (void *)1;
	struct config_errors errs = { 0 };

	CU_ASSERT(ratelimit_config_parse(root, &cfg, &errs) == -EINVAL);
	CU_ASSERT(cfg == NULL);
	CU_ASSERT_ERRORS(&errs,
			 "rate_limits.everyone: selector must be",
			 "rate_limits.key:a.keys: unknown level",
			 "rate_limits.key:b.key: requests: an integer",
			 "rate_limits.key:b.key: per: \"fortnight\"",
			 "rate_limits.key:c.key: burst: 1000000 per day is too large",
			 "rate_limits.key:d.tool: unknown field \"brust\"",
			 "rate_limits: selector \"team:x\" appears twice");
	cJSON_Delete(root);
}

CU_MAIN("ratelimit", NULL, NULL,
	{ "burst then refill", test_burst_then_refill },
	{ "retry-after is exact", test_retry_after_exact },
	{ "all or nothing across buckets", test_all_or_nothing },
	{ "refusal names the longest wait", test_refusal_names_longest_wait },
	{ "idle eviction, full table refuses", test_eviction },
	{ "buckets in use are kept", test_in_use_kept },
	{ "many keys", test_many_keys },
	{ "limit change keeps fill ratio", test_respec },
	{ "config selectors and precedence", test_config },
	{ "config errors name the field", test_config_errors })
