/* test_llm: the LLM route's config and policies, prices and estimates, and the settle-to-usage
 * and token-debit additions to budgets and rate limits. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <CUnit/Basic.h>

#include "base/alloc.h"
#include "base/config.h"
#include "govern/budget.h"
#include "govern/ratelimit.h"
#include "llm/llm_int.h"
#include "cunit_main.h"
#include "config_errors_util.h"

static int parse(const char *text, struct llm_config **out, struct config_errors *errs)
{
	cJSON *root = cJSON_Parse(text);
	int rc;

	memset(errs, 0, sizeof(*errs));
	CU_ASSERT_PTR_NOT_NULL_FATAL(root);
	rc = llm_config_parse(root, out, errs);
	cJSON_Delete(root);
	return rc;
}

static void test_cost(void)
{
	CU_ASSERT_EQUAL(llm_cost(1000000, 150000), 150000);     /* 1M tokens at 0.15 */
	CU_ASSERT_EQUAL(llm_cost(1, 150000), 1);                /* 0.15 micro: rounded up */
	CU_ASSERT_EQUAL(llm_cost(10, 1000000), 10);
	CU_ASSERT_EQUAL(llm_cost(0, 1000000), 0);
	CU_ASSERT_EQUAL(llm_cost(10, 0), 0);
	CU_ASSERT_EQUAL(llm_cost(INT64_MAX, BUDGET_MONEY_MAX), BUDGET_MONEY_MAX);  /* no overflow */
}

static void test_config(void)
{
	struct config_errors errs;
	struct llm_config *c = NULL;
	int64_t out;

	setenv("TEST_LLM_KEY", "sk-test", 1);
	CU_ASSERT(parse("{\"providers\": [{\"name\": \"oa\", \"base_url\": \"http://x/v1/\","
			"\"api_key_env\": \"TEST_LLM_KEY\", \"models\": {\"m\": {\"input\": \"0.15\","
			"\"output\": \"0.60\"}}}], \"llm\": {\"default_max_tokens\": 100}}", &c, &errs) == 0);
	CU_ASSERT_EQUAL_FATAL(c->nproviders, 1);
	CU_ASSERT_STRING_EQUAL(c->providers[0].base_url, "http://x/v1");
	CU_ASSERT_STRING_EQUAL(c->providers[0].api_key, "sk-test");
	CU_ASSERT_STRING_EQUAL(c->default_provider, "oa");       /* the only one */
	const struct llm_model *m = llm_model_find(&c->providers[0], "m");
	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	CU_ASSERT_EQUAL(m->in_price, 150000);
	CU_ASSERT_EQUAL(m->out_price, 600000);
	/* 16 bytes of text -> 4 tokens x 0.15, 100 default output tokens x 0.60 */
	cJSON *body = cJSON_Parse("{\"messages\": [{\"role\": \"user\", \"content\": \"0123456789ab\"}]}");
	CU_ASSERT_EQUAL(llm_estimate(c, m, body, LLM_CHAT, &out), 1 + 60);
	CU_ASSERT_EQUAL(out, 100);
	cJSON_AddNumberToObject(body, "max_tokens", 10);
	CU_ASSERT_EQUAL(llm_estimate(c, m, body, LLM_CHAT, &out), 1 + 6);
	cJSON_Delete(body);
	llm_config_put(c);

	CU_ASSERT(parse("{\"providers\": [{\"name\": \"Bad Name\", \"base_url\": \"http://x\"},"
			"{\"name\": \"a\", \"base_url\": \"ftp://x\", \"kind\": \"grpc\", \"fallback\": \"zz\","
			"\"api_key_env\": \"NO_SUCH_ENV_VAR_LLM\", \"models\": {\"m\": {\"input\": \"-1\"}}}],"
			"\"llm\": {\"default_provider\": \"q\", \"bogus\": 1}}", &c, &errs) == -EINVAL);
	CU_ASSERT_ERRORS(&errs, "providers[0]: name", "providers[1]: base_url", "providers[1]: kind",
			 "NO_SUCH_ENV_VAR_LLM is not set", "providers[1].models.m", "a.fallback",
			 "llm.default_provider", "llm.bogus: unknown field");
	CU_ASSERT(parse("{\"providers\": [{\"name\": \"a\", \"base_url\": \"http://x\","
			"\"api_key_file\": \"/nonexistent/key\"}]}", &c, &errs) == -EINVAL);
	CU_ASSERT(has_error(&errs, "api_key_file: cannot read /nonexistent/key"));
	/* a key with a line break would split the header */
	setenv("TEST_LLM_KEY", "sk\r\nX-Evil: 1", 1);
	CU_ASSERT(parse("{\"providers\": [{\"name\": \"a\", \"base_url\": \"http://x\","
			"\"api_key_env\": \"TEST_LLM_KEY\"}]}", &c, &errs) == -EINVAL);
	CU_ASSERT(has_error(&errs, "visible ASCII"));
	CU_ASSERT(!has_error(&errs, "sk\r\n"));   /* the key is never in a message */
}

static void test_policy(void)
{
	struct config_errors errs;
	struct llm_config *c = NULL;
	struct key_identity who = { .id = "k", .policy = "p", .team_policy = "" };
	char why[256];

	CU_ASSERT_FATAL(parse("{\"providers\": [{\"name\": \"oa\", \"base_url\": \"http://x\"},"
			      "{\"name\": \"an\", \"base_url\": \"http://y\"}],"
			      "\"policies\": {\"p\": {\"llm\": {\"providers\": {\"allow\": [\"*\"],"
			      "\"deny\": [\"an\"]}, \"models\": {\"allow\": [\"oa/gpt-*\"],"
			      "\"deny\": [\"*/*-preview\"]}}}, \"t\": {\"llm\": {\"providers\":"
			      "{\"allow\": [\"oa\"]}, \"log_arguments\": true}}, \"none\": {}}}",
			      &c, &errs) == 0);
	CU_ASSERT(llm_policy_allows(c, &who, "oa", "gpt-4o", why, sizeof(why)) == 0);
	CU_ASSERT(llm_policy_allows(c, &who, "oa", "gpt-4o-preview", why, sizeof(why)) == -EACCES);
	CU_ASSERT(strstr(why, "deny models */*-preview") != NULL);
	CU_ASSERT(llm_policy_allows(c, &who, "an", "gpt-4o", why, sizeof(why)) == -EACCES);
	CU_ASSERT(strstr(why, "deny providers an") != NULL);
	CU_ASSERT(llm_policy_allows(c, &who, "oa", "o1", why, sizeof(why)) == -EACCES);
	CU_ASSERT(!llm_policy_logs(c, &who));
	strcpy(who.team_policy, "t");
	CU_ASSERT(llm_policy_allows(c, &who, "oa", "gpt-4o", why, sizeof(why)) == 0);
	CU_ASSERT(llm_policy_logs(c, &who));
	strcpy(who.team_policy, "none");        /* no llm member: nothing */
	CU_ASSERT(llm_policy_allows(c, &who, "oa", "gpt-4o", why, sizeof(why)) == -EACCES);
	CU_ASSERT(strstr(why, "no llm section") != NULL);
	CU_ASSERT(llm_policy_allows(c, NULL, "an", "x", why, sizeof(why)) == 0);  /* auth off */
	llm_config_put(c);
}

static void test_settle_amount(void)
{
	struct budget_config *bc = NULL;
	struct config_errors errs = { 0 };
	struct budget *b = NULL;
	struct budget_resv *r1, *r2;
	struct budget_refusal why;
	struct budget_subject k = { "k", NULL, NULL };
	int64_t spent, reserved, now = 1800000000;
	cJSON *root = cJSON_Parse("{\"budgets\": {\"key:k\": [{\"name\": \"m\", \"limit\": \"0.001\","
				  "\"period\": \"monthly\"}]}}");

	CU_ASSERT_FATAL(budget_config_parse(root, &bc, &errs) == 0);
	CU_ASSERT_FATAL(budget_new(NULL, &b) == 0);
	budget_set_config(b, bc);
	CU_ASSERT(budget_reserve(b, &k, 600, now, &r1, &why) == 0);
	CU_ASSERT(budget_reserve(b, &k, 600, now, &r2, &why) == -EDQUOT);  /* estimates hold */
	CU_ASSERT(budget_commit_amount(b, r1, 50, NULL, NULL) == 1);          /* the real usage */
	CU_ASSERT(budget_counter(b, "key:k", "month", now, &spent, &reserved) == 0);
	CU_ASSERT_EQUAL(spent, 50);
	CU_ASSERT_EQUAL(reserved, 0);
	CU_ASSERT(budget_reserve(b, &k, 600, now, &r2, &why) == 0);
	CU_ASSERT(budget_commit_amount(b, r2, 2000, NULL, NULL) == 1);        /* past the estimate */
	CU_ASSERT(budget_counter(b, "key:k", "month", now, &spent, &reserved) == 0);
	CU_ASSERT_EQUAL(spent, 2050);
	budget_free(b);
	budget_config_free(bc);
	cJSON_Delete(root);
}

static void test_debit(void)
{
	struct ratelimit *rl = NULL;
	struct rate_limits lim = { 0 };
	struct rate_refusal why;
	uint64_t now = 1000000000ull;

	lim.level[RATE_KEY] = (struct rate_spec){ .requests = 100, .burst = 100,
						  .period_ns = 3600000000000ull };
	CU_ASSERT_FATAL(ratelimit_new(0, &rl) == 0);
	CU_ASSERT(ratelimit_check(rl, &lim, "k", NULL, NULL, now, &why) == 0);   /* 99 left */
	ratelimit_debit(rl, &lim, "k", NULL, NULL, 90, now);                      /* 9 left */
	for (int i = 0; i < 9; i++)
		CU_ASSERT(ratelimit_check(rl, &lim, "k", NULL, NULL, now, &why) == 0);
	CU_ASSERT(ratelimit_check(rl, &lim, "k", NULL, NULL, now, &why) == -EAGAIN);
	ratelimit_debit(rl, &lim, "k", NULL, NULL, UINT32_MAX, now);   /* saturates at empty */
	CU_ASSERT(ratelimit_check(rl, &lim, "k", NULL, NULL, now + 36000000000ull, &why) == 0);
	ratelimit_free(rl);
}

CU_MAIN("llm", cu_alloc, NULL,
	{ "cost", test_cost },
	{ "config", test_config },
	{ "policy", test_policy },
	{ "settle to usage", test_settle_amount },
	{ "token debit", test_debit })
