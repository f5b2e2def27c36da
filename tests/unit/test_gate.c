/* The gate: authentication and its brute-force hold-off, admission in the design's order
 * (permission, arguments, budget, rate: a step that refuses leaves the later ones unspent), settling (commit durable, release), argument checks, and a
 * governance reload that keeps what the admin API made — with a real SQLite store. */
#define _XOPEN_SOURCE 700
#include <CUnit/Basic.h>
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/event.h>

#include "base/clock.h"
#include "base/config.h"
#include "base/log.h"
#include "govern/budget.h"
#include "govern/gate.h"
#include "govern/keys.h"
#include "mcp/catalog.h"
#include "store/store.h"
#include "base/epoch.h"
#include "cunit_main.h"
#include <stdatomic.h>
#include <event2/thread.h>

static char dir[64];
static struct event_base *base;

static const char *const cfg_fmt =
	"{\"state_dir\":\"%s\",\"keys\":["
	"{\"id\":\"alpha\",\"team\":\"ops\",\"policy\":\"docs\",\"hash\":\"%s\"},"
	"{\"id\":\"old\",\"policy\":\"docs\",\"hash\":\"%s\",\"expires\":\"2020-01-01T00:00:00Z\"},"
	"{\"id\":\"off\",\"policy\":\"docs\",\"hash\":\"%s\",\"disabled\":true}],"
	"\"teams\":[{\"name\":\"ops\",\"policy\":\"docs\"}],"
	"\"policies\":{\"docs\":{\"resources\":{\"allow\":[\"fs/file:///docs/*\"],"
	"\"deny\":[\"fs/file:///docs/secret*\"]}}},"
	"\"rate_limits\":{\"default\":{\"key\":{\"requests\":3,\"per\":\"hour\"}}},"
	"\"costs\":{\"fs/file:///docs/big*\":\"2.00\",\"fs/file:///docs/mid*\":\"0.50\"},"
	"\"budgets\":{\"default\":[{\"name\":\"daily\",\"limit\":\"3.00\",\"period\":\"daily\"}]}%s}";

static void hash_text(const char *key, char out[KEYS_HASH_TEXT_SIZE])
{
	unsigned char h[KEYS_HASH_LEN];

	keys_hash(key, strlen(key), h);
	keys_hash_format(h, out);
}

static struct config *make_config(const char *extra)
{
	char ha[KEYS_HASH_TEXT_SIZE], ho[KEYS_HASH_TEXT_SIZE], hf[KEYS_HASH_TEXT_SIZE];
	char text[4096];
	struct config_errors errs = { 0 };
	struct config *c = NULL;

	hash_text("key-alpha", ha);
	hash_text("key-old", ho);
	hash_text("key-off", hf);
	snprintf(text, sizeof(text), cfg_fmt, dir, ha, ho, hf, extra);
	CU_ASSERT_EQUAL_FATAL(config_parse(text, "test", &c, &errs), 0);
	return c;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(p);
}

static int setup(void)
{
	log_set_level(LOG_ERROR);
	if (evthread_use_pthreads())    /* the epochs post to other loops (main.c does it too) */
		return -1;
	snprintf(dir, sizeof(dir), "/tmp/mcpwarden-gate-XXXXXX");
	base = event_base_new();
	return mkdtemp(dir) && base ? 0 : -1;
}

static int teardown(void)
{
	event_base_free(base);
	nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	return 0;
}

static void test_authenticate(void)
{
	struct config *c = make_config("");
	struct gate *g = NULL;
	struct key_identity who;
	const char *why;
	int64_t retry;

	CU_ASSERT_EQUAL_FATAL(gate_new(base, c, &g, &(struct config_errors){ 0 }), 0);
	CU_ASSERT_EQUAL(gate_authenticate(g, "key-alpha", "10.0.0.1", NULL, &who, &why, &retry),
			GATE_AUTH_OK);
	CU_ASSERT_STRING_EQUAL(who.id, "alpha");
	CU_ASSERT_STRING_EQUAL(who.team, "ops");
	CU_ASSERT_EQUAL(gate_authenticate(g, NULL, "10.0.0.1", NULL, &who, &why, &retry),
			GATE_AUTH_MISSING);
	CU_ASSERT_EQUAL(gate_authenticate(g, "key-old", "10.0.0.1", NULL, &who, &why, &retry),
			GATE_AUTH_REFUSED);
	CU_ASSERT_STRING_EQUAL(why, "expired");
	CU_ASSERT_EQUAL(gate_authenticate(g, "key-off", "10.0.0.1", NULL, &who, &why, &retry),
			GATE_AUTH_REFUSED);
	CU_ASSERT_STRING_EQUAL(why, "disabled");
	/* A peer that keeps guessing is held off, even with the right key next; others are not. */
	for (int i = 0; i < 10; i++)
		gate_authenticate(g, "guess", "10.0.0.9", NULL, &who, &why, &retry);
	CU_ASSERT_EQUAL(gate_authenticate(g, "key-alpha", "10.0.0.9", NULL, &who, &why, &retry),
			GATE_AUTH_BLOCKED);
	CU_ASSERT(retry > 0);
	CU_ASSERT_EQUAL(gate_authenticate(g, "key-alpha", "10.0.0.2", NULL, &who, &why, &retry),
			GATE_AUTH_OK);
	/* A reload of the keys does not forgive the guessing peer. */
	struct config *c2 = make_config("");
	CU_ASSERT_EQUAL(gate_reload(g, c2, &(struct config_errors){ 0 }), 0);
	CU_ASSERT_EQUAL(gate_authenticate(g, "key-alpha", "10.0.0.9", NULL, &who, &why, &retry),
			GATE_AUTH_BLOCKED);
	gate_free(g);
	config_free(c);
	config_free(c2);
}

/* A reload's reading half, as main.c runs it: the rules of a config, parsed on a thread. */
struct rules_job {
	const struct config *cfg;
	struct gate_rules *rules;
	int rc;
};

static void *parse_rules(void *arg)
{
	struct rules_job *j = arg;

	j->rc = gate_rules_parse(j->cfg, &j->rules, &(struct config_errors){ 0 });
	return NULL;
}

static int admit(struct gate *g, const struct key_identity *who, const char *uri,
		 struct gate_ticket **t, cJSON **err)
{
	char reason[256];

	struct gate_request rq = { .who = who, .kind = CAT_RESOURCES, .server = "fs",
				   .name = uri, .work = true };

	return gate_admit(g, &rq, t, err, reason, sizeof(reason));
}

static void test_admit_in_order(void)
{
	struct config *c = make_config("");
	struct gate *g = NULL;
	struct key_identity who;
	struct gate_ticket *t = NULL;
	const char *why;
	int64_t retry;
	cJSON *err = NULL;

	CU_ASSERT_EQUAL_FATAL(gate_new(base, c, &g, &(struct config_errors){ 0 }), 0);
	CU_ASSERT_EQUAL_FATAL(gate_authenticate(g, "key-alpha", NULL, NULL, &who, &why, &retry),
			      GATE_AUTH_OK);
	/* 1. permission: deny wins over allow; a refusal spends no rate token. */
	CU_ASSERT_EQUAL(admit(g, &who, "file:///docs/secret.txt", &t, &err), -EACCES);
	CU_ASSERT_EQUAL(cJSON_GetObjectItemCaseSensitive(err, "code")->valueint, -32003);
	cJSON_Delete(err);
	err = NULL;
	/* 2. budget: a 2.00 call fits the 3.00 daily budget once. */
	CU_ASSERT_EQUAL(admit(g, &who, "file:///docs/big-1", &t, &err), 0);
	CU_ASSERT_EQUAL(gate_ticket_cost(t), 2000000);
	CU_ASSERT_EQUAL(gate_settle(g, t, true, NULL, NULL), 1);  /* durable: in the journal */
	t = NULL;
	CU_ASSERT_EQUAL(admit(g, &who, "file:///docs/big-2", &t, &err), -EDQUOT);
	CU_ASSERT_EQUAL(cJSON_GetObjectItemCaseSensitive(err, "code")->valueint, -32005);
	cJSON_Delete(err);
	err = NULL;
	/* A failed call releases its reservation: a free read still fits the budget... */
	CU_ASSERT_EQUAL(admit(g, &who, "file:///docs/a", &t, &err), 0);
	CU_ASSERT_PTR_NULL(t);  /* free: nothing to settle */
	/* 3. rate: 3 per hour per key; the budget refusal above spent none of them. */
	CU_ASSERT_EQUAL(admit(g, &who, "file:///docs/b", &t, &err), 0);
	/* A call that fits the budget but not the rate limit keeps nothing reserved. */
	CU_ASSERT_EQUAL(admit(g, &who, "file:///docs/mid-1", &t, &err), -EAGAIN);
	CU_ASSERT_PTR_NULL(t);
	const cJSON *data = cJSON_GetObjectItemCaseSensitive(err, "data");
	CU_ASSERT(cJSON_GetObjectItemCaseSensitive(data, "retry_after_ms")->valuedouble > 0);
	CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItemCaseSensitive(data, "limit")->valuestring, "key");
	cJSON_Delete(err);
	/* The spend is in the budget counters. */
	int64_t spent = 0, reserved = 0;
	CU_ASSERT_EQUAL(budget_counter(gate_budget(g), "key:alpha", "day", clock_real_s(),
				       &spent, &reserved), 0);
	CU_ASSERT_EQUAL(spent, 2000000);
	CU_ASSERT_EQUAL(reserved, 0);
	gate_free(g);
	config_free(c);
}

static void test_release_and_reload(void)
{
	struct config *c = make_config(""), *c2;
	struct gate *g = NULL;
	struct key_identity who;
	struct gate_ticket *t = NULL;
	struct key_record k = { 0 };
	const char *why;
	int64_t retry, spent = 0, reserved = 0;
	cJSON *err = NULL;

	CU_ASSERT_EQUAL_FATAL(gate_new(base, c, &g, &(struct config_errors){ 0 }), 0);
	CU_ASSERT_EQUAL_FATAL(gate_authenticate(g, "key-alpha", NULL, NULL, &who, &why, &retry),
			      GATE_AUTH_OK);
	/* The spend of the previous gate was durable: it is back from the store. */
	CU_ASSERT_EQUAL(budget_counter(gate_budget(g), "key:alpha", "day", clock_real_s(),
				       &spent, &reserved), 0);
	CU_ASSERT_EQUAL(spent, 2000000);
	/* A reservation released on failure leaves nothing spent or reserved. */
	CU_ASSERT_EQUAL(admit(g, &who, "file:///docs/big-3", &t, &err), -EDQUOT);
	cJSON_Delete(err);
	/* A key made at run time (the admin API's way) survives a governance reload. */
	snprintf(k.id, sizeof(k.id), "runtime");
	snprintf(k.name, sizeof(k.name), "made at run time");
	snprintf(k.policy, sizeof(k.policy), "docs");
	keys_hash("key-runtime", strlen("key-runtime"), k.hash);
	CU_ASSERT_EQUAL(keys_add(gate_keystore(g), &k), 0);
	CU_ASSERT_FALSE(gate_config_key(g, "runtime"));
	CU_ASSERT_TRUE(gate_config_key(g, "alpha"));
	/* The new rules are parsed on another thread, as a SIGHUP's are, and swapped in here. */
	c2 = make_config(",\"auth\":{\"required\":true}");
	struct rules_job j = { .cfg = c2 };
	pthread_t th;
	CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, parse_rules, &j), 0);
	CU_ASSERT_EQUAL(pthread_join(th, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(j.rc, 0);
	gate_reload_rules(g, j.rules);
	CU_ASSERT_EQUAL(gate_authenticate(g, "key-runtime", NULL, NULL, &who, &why, &retry),
			GATE_AUTH_OK);
	/* Carried over as the admin API's, not taken for the config's. */
	CU_ASSERT_FALSE(gate_config_key(g, "runtime"));
	CU_ASSERT_TRUE(gate_config_key(g, "alpha"));
	CU_ASSERT_EQUAL(gate_authenticate(g, "key-alpha", NULL, NULL, &who, &why, &retry),
			GATE_AUTH_OK);
	gate_free(g);
	config_free(c);
	config_free(c2);
}

/* A full reload keeps the rules it replaces, as the config alone defines them, for going back
 * to that configuration: its keys are no longer in its document (config_shrink). */
static void test_full_reload_back(void)
{
	struct config *c = make_config(""), *c3 = NULL;
	struct config_errors errs = { 0 };
	struct gate *g = NULL, *g2 = NULL;
	struct gate_rules *r3 = NULL, *back = NULL;
	struct key_identity who;
	struct key_record k = { 0 };
	char hb[KEYS_HASH_TEXT_SIZE], text[1024];
	const char *why;
	int64_t retry;

	CU_ASSERT_EQUAL_FATAL(gate_new(base, c, &g, &errs), 0);
	config_shrink(c);
	CU_ASSERT_TRUE(c->shrunk);
	CU_ASSERT_PTR_NULL(cJSON_GetObjectItemCaseSensitive(c->raw, "keys"));
	CU_ASSERT_PTR_NULL(cJSON_GetObjectItemCaseSensitive(c->raw, "teams"));
	CU_ASSERT_PTR_NOT_NULL(cJSON_GetObjectItemCaseSensitive(c->raw, "policies"));
	/* Parsed again, it would have no keys: refused, loudly. */
	CU_ASSERT_EQUAL(gate_rules_parse(c, &r3, &errs), -EINVAL);
	CU_ASSERT_PTR_NULL(r3);
	CU_ASSERT_PTR_NOT_NULL(strstr(errs.msg[0], "keys"));
	snprintf(k.id, sizeof(k.id), "runtime");
	snprintf(k.name, sizeof(k.name), "made at run time");
	snprintf(k.policy, sizeof(k.policy), "docs");
	keys_hash("key-runtime", strlen("key-runtime"), k.hash);
	CU_ASSERT_EQUAL(keys_add(gate_keystore(g), &k), 0);

	hash_text("key-beta", hb);
	snprintf(text, sizeof(text), "{\"state_dir\":\"%s\",\"keys\":[{\"id\":\"beta\","
		 "\"policy\":\"docs\",\"hash\":\"%s\"}],\"policies\":{\"docs\":{}}}", dir, hb);
	CU_ASSERT_EQUAL_FATAL(config_parse(text, "test", &c3, &errs), 0);
	CU_ASSERT_EQUAL_FATAL(gate_rules_parse(c3, &r3, &errs), 0);
	CU_ASSERT_EQUAL_FATAL(gate_reload_all(g, c3, r3, &back), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(back);
	CU_ASSERT_EQUAL(gate_authenticate(g, "key-beta", NULL, NULL, &who, &why, &retry), GATE_AUTH_OK);
	CU_ASSERT_EQUAL(gate_authenticate(g, "key-alpha", NULL, NULL, &who, &why, &retry),
			GATE_AUTH_REFUSED);
	CU_ASSERT_EQUAL(gate_authenticate(g, "key-runtime", NULL, NULL, &who, &why, &retry),
			GATE_AUTH_OK);

	/* Going back in place: the first config's keys and teams, the run-time key carried. */
	CU_ASSERT_EQUAL_FATAL(gate_reload_all(g, c, back, NULL), 0);
	CU_ASSERT_EQUAL(gate_authenticate(g, "key-alpha", NULL, NULL, &who, &why, &retry), GATE_AUTH_OK);
	CU_ASSERT_STRING_EQUAL(who.team, "ops");
	CU_ASSERT_EQUAL(gate_authenticate(g, "key-off", NULL, NULL, &who, &why, &retry),
			GATE_AUTH_REFUSED);
	CU_ASSERT_STRING_EQUAL(why, "disabled");
	CU_ASSERT_EQUAL(gate_authenticate(g, "key-beta", NULL, NULL, &who, &why, &retry),
			GATE_AUTH_REFUSED);
	CU_ASSERT_EQUAL(gate_authenticate(g, "key-runtime", NULL, NULL, &who, &why, &retry),
			GATE_AUTH_OK);
	CU_ASSERT_TRUE(gate_config_key(g, "alpha"));
	CU_ASSERT_FALSE(gate_config_key(g, "runtime"));
	/* r NULL keeps the rules in force. */
	CU_ASSERT_EQUAL(gate_reload_all(g, c, NULL, &back), 0);
	CU_ASSERT_PTR_NULL(back);
	CU_ASSERT_EQUAL(gate_authenticate(g, "key-alpha", NULL, NULL, &who, &why, &retry), GATE_AUTH_OK);

	/* Going back through a new gate (another store): only what the config defines. */
	back = gate_free_keep_rules(g);
	CU_ASSERT_PTR_NOT_NULL_FATAL(back);
	CU_ASSERT_EQUAL_FATAL(gate_open(base, c, back, &g2, &errs), 0);
	CU_ASSERT_EQUAL(gate_authenticate(g2, "key-alpha", NULL, NULL, &who, &why, &retry), GATE_AUTH_OK);
	CU_ASSERT_TRUE(gate_config_team(g2, "ops"));
	CU_ASSERT_EQUAL(keys_count(gate_keystore(g2)), 3);
	CU_ASSERT_EQUAL(gate_authenticate(g2, "key-runtime", NULL, NULL, &who, &why, &retry),
			GATE_AUTH_REFUSED);
	gate_free(g2);
	CU_ASSERT_PTR_NULL(gate_free_keep_rules(NULL));
	config_free(c);
	config_free(c3);
}

static void test_config_errors(void)
{
	struct config_errors errs = { 0 };
	struct config *c = NULL;
	struct gate *g = NULL;
	const char *bad = "{\"keys\":[{\"id\":\"x\",\"policy\":\"nope\",\"hash\":\"sha256:00\"}],"
			  "\"policies\":{}}";

	CU_ASSERT_EQUAL_FATAL(config_parse(bad, "test", &c, &errs), 0);
	CU_ASSERT_EQUAL(gate_new(NULL, c, &g, &errs), -EINVAL);
	CU_ASSERT(errs.count >= 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(errs.msg[0], "keys[0]"));  /* the field path is named */
	/* A reload's check says the same, and hands over no rules. */
	struct gate_rules *rules = (struct gate_rules *)&errs;
	memset(&errs, 0, sizeof(errs));
	CU_ASSERT_EQUAL(gate_check(c, &rules, &errs), -EINVAL);
	CU_ASSERT_PTR_NULL(rules);
	CU_ASSERT_PTR_NOT_NULL(strstr(errs.msg[0], "keys[0]"));
	config_free(c);
}

/* ---- many loops at one gate (workers: N) ---- */

#define LOOPS 4
#define RATE 500                /* the rate key's calls an hour */
#define FITS 300                /* the budget key's calls that fit its budget */

static const char *const many_fmt =
	"{\"state_dir\":\"%s\",\"keys\":["
	"{\"id\":\"rate\",\"policy\":\"docs\",\"hash\":\"%s\"},"
	"{\"id\":\"spend\",\"policy\":\"docs\",\"hash\":\"%s\"},"
	"{\"id\":\"other\",\"policy\":\"docs2\",\"hash\":\"%s\"}],"
	"\"policies\":{\"docs\":{\"resources\":{\"allow\":[\"fs/file:///docs/*\"]}},"
	"\"docs2\":{\"resources\":{\"allow\":[\"fs/file:///docs/*\"]}}},"
	"\"rate_limits\":{\"key:rate\":{\"key\":{\"requests\":%d,\"per\":\"hour\"}},"
	"\"key:spend\":{\"key\":{\"requests\":100000,\"per\":\"hour\"}}},"
	"\"costs\":{\"fs/file:///docs/paid*\":\"0.01\"},"
	"\"budgets\":{\"key:spend\":[{\"name\":\"daily\",\"limit\":\"%d.%02d\","
	"\"period\":\"daily\"}]}}";

static struct config *many_config(void)
{
	char hr[KEYS_HASH_TEXT_SIZE], hs[KEYS_HASH_TEXT_SIZE], ho[KEYS_HASH_TEXT_SIZE];
	char text[2048];
	struct config *c = NULL;

	hash_text("key-rate", hr);
	hash_text("key-spend", hs);
	hash_text("key-other", ho);
	snprintf(text, sizeof(text), many_fmt, dir, hr, hs, ho, RATE, FITS / 100, FITS % 100);
	CU_ASSERT_EQUAL_FATAL(config_parse(text, "test", &c, &(struct config_errors){ 0 }), 0);
	return c;
}

struct many_loop {
	struct gate *g;
	struct event_base *base;        /* the loop's: freed after the gate (its store's events) */
	const char *key, *uri;
	char peer[32];
	int calls, admitted, refused, other, unsettled, attached;
};

static pthread_barrier_t many_go;

/* A loop thread: its store staging attached, then its calls as fast as it can, each admitted
 * one settled as a success (charged). */
static void *many_main(void *arg)
{
	struct many_loop *l = arg;
	struct key_identity who;
	const char *why;
	int64_t retry;

	l->base = event_base_new();
	l->attached = l->base && store_loop_attach(gate_store(l->g), l->base) == 0;
	pthread_barrier_wait(&many_go);
	for (int i = 0; i < l->calls && l->attached; i++) {
		struct gate_ticket *t = NULL;
		cJSON *err = NULL;
		int rc;

		/* A guessing peer on the side: its failures are counted by every loop at once. A
		 * key of another policy in between, unlimited: loops authenticate and admit two
		 * keys in turns. */
		(void)gate_authenticate(l->g, "guess", "10.9.9.9", NULL, &who, &why, &retry);
		if (gate_authenticate(l->g, "key-other", l->peer, NULL, &who, &why, &retry) !=
		    GATE_AUTH_OK || admit(l->g, &who, "file:///docs/free", &t, &err) != 0)
			l->other++;
		if (gate_authenticate(l->g, l->key, l->peer, NULL, &who, &why, &retry) != GATE_AUTH_OK) {
			l->other++;
			continue;
		}
		rc = admit(l->g, &who, l->uri, &t, &err);
		l->admitted += rc == 0;
		l->refused += rc == -EAGAIN || rc == -EDQUOT;
		l->other += rc && rc != -EAGAIN && rc != -EDQUOT;
		cJSON_Delete(err);
		if (t && gate_settle(l->g, t, true, NULL, NULL) < 0)
			l->unsettled++;
	}
	return NULL;
}

/* LOOPS threads fire twice a limit's worth of calls at once; returns how many were admitted. */
static int fire(struct gate *g, const char *key, const char *uri, int total,
		struct many_loop l[LOOPS])
{
	pthread_t t[LOOPS];
	int admitted = 0;

	CU_ASSERT_FATAL(pthread_barrier_init(&many_go, NULL, LOOPS) == 0);
	for (int i = 0; i < LOOPS; i++) {
		l[i] = (struct many_loop){ .g = g, .key = key, .uri = uri, .calls = total / LOOPS };
		snprintf(l[i].peer, sizeof(l[i].peer), "10.0.0.%d", i + 1);
		CU_ASSERT_FATAL(pthread_create(&t[i], NULL, many_main, &l[i]) == 0);
	}
	for (int i = 0; i < LOOPS; i++) {
		CU_ASSERT_FATAL(pthread_join(t[i], NULL) == 0);
		CU_ASSERT(l[i].attached);
		CU_ASSERT_EQUAL(l[i].other, 0);
		CU_ASSERT_EQUAL(l[i].unsettled, 0);
		CU_ASSERT_EQUAL(l[i].admitted + l[i].refused, total / LOOPS);
		admitted += l[i].admitted;
	}
	pthread_barrier_destroy(&many_go);
	return admitted;
}

/* The exactness of workers: N: loops admitting at one gate side by side admit exactly a rate
 * limit's count and exactly what fits a budget, and the spend is the sum of the charges, in
 * memory and in the store; the peer guard counts every loop's failures. */
static void test_many_loops_exact(void)
{
	struct many_loop rl[LOOPS], bl[LOOPS];
	struct config *c = many_config();
	struct gate *g = NULL;
	struct key_identity who;
	int64_t spent = -1, reserved = -1, retry;
	const char *why;

	CU_ASSERT_EQUAL_FATAL(gate_new(base, c, &g, &(struct config_errors){ 0 }), 0);
	CU_ASSERT_EQUAL(fire(g, "key-rate", "file:///docs/free", 2 * RATE, rl), RATE);
	CU_ASSERT_EQUAL(fire(g, "key-spend", "file:///docs/paid", 2 * FITS, bl), FITS);
	CU_ASSERT_EQUAL(budget_counter(gate_budget(g), "key:spend", "day", clock_real_s(), &spent,
				       &reserved), 0);
	CU_ASSERT_EQUAL(spent, FITS * 10000);
	CU_ASSERT_EQUAL(reserved, 0);
	CU_ASSERT_EQUAL(gate_authenticate(g, "key-rate", "10.9.9.9", NULL, &who, &why, &retry),
			GATE_AUTH_BLOCKED);
	gate_free(g);                   /* every charge committed, on its loop's list */
	for (int i = 0; i < LOOPS; i++) {
		event_base_free(rl[i].base);
		event_base_free(bl[i].base);
	}

	/* What the store holds: a new gate reads the same spend back. */
	CU_ASSERT_EQUAL_FATAL(gate_new(base, c, &g, &(struct config_errors){ 0 }), 0);
	spent = -1;
	CU_ASSERT_EQUAL(budget_counter(gate_budget(g), "key:spend", "day", clock_real_s(), &spent,
				       &reserved), 0);
	CU_ASSERT_EQUAL(spent, FITS * 10000);
	gate_free(g);
	config_free(c);
}

/* ---- governance reloads under loops ---- */

#define RELOADS 40

static atomic_bool reloading_done;

struct reload_loop {
	struct gate *g;
	struct event_base *base;
	struct event *ev;
	char peer[32];
	long calls, wrong;
	int attached;
};

/* One call a turn, as a loop serves them: authenticate, admit; then the next turn. */
static void reload_turn(evutil_socket_t fd, short what, void *arg)
{
	struct reload_loop *l = arg;
	struct gate_ticket *t = NULL;
	struct key_identity who;
	cJSON *err = NULL;
	const char *why;
	int64_t retry;

	(void)fd, (void)what;
	if (gate_authenticate(l->g, "key-other", l->peer, NULL, &who, &why, &retry) != GATE_AUTH_OK ||
	    strcmp(who.policy, "docs2") || admit(l->g, &who, "file:///docs/free", &t, &err) != 0 ||
	    !gate_policy_exists(l->g, "docs2"))
		l->wrong++;
	cJSON_Delete(err);
	l->calls++;
	if (atomic_load(&reloading_done))
		event_base_loopbreak(l->base);
	else
		event_active(l->ev, EV_TIMEOUT, 1);
}

static void *reload_loop_main(void *arg)
{
	struct reload_loop *l = arg;

	l->base = event_base_new();
	l->attached = l->base && epoch_loop_attach(l->base) == 0;
	pthread_barrier_wait(&many_go);
	if (l->attached && (l->ev = event_new(l->base, -1, 0, reload_turn, l))) {
		event_active(l->ev, EV_TIMEOUT, 1);
		event_base_dispatch(l->base);
		event_free(l->ev);
	}
	epoch_loop_detach();    /* the rules replaced that still wait for this loop go */
	event_base_free(l->base);
	return NULL;
}

/* Loops authenticate and admit while the main thread reloads the governance sections again
 * and again: each reload publishes new rules (a new keystore, policies, limits) and the old
 * are freed only once every loop has passed a turn, so no loop ever reads freed rules
 * (AddressSanitizer) or races the swap (ThreadSanitizer), and every call is answered as the
 * configuration says. */
static void test_reloads_under_loops(void)
{
	struct reload_loop l[LOOPS];
	struct config *c = many_config();
	struct gate *g = NULL;
	pthread_t t[LOOPS];

	CU_ASSERT_EQUAL_FATAL(gate_new(base, c, &g, &(struct config_errors){ 0 }), 0);
	atomic_store(&reloading_done, false);
	CU_ASSERT_FATAL(pthread_barrier_init(&many_go, NULL, LOOPS + 1) == 0);
	for (int i = 0; i < LOOPS; i++) {
		l[i] = (struct reload_loop){ .g = g };
		snprintf(l[i].peer, sizeof(l[i].peer), "10.1.0.%d", i + 1);
		CU_ASSERT_FATAL(pthread_create(&t[i], NULL, reload_loop_main, &l[i]) == 0);
	}
	pthread_barrier_wait(&many_go);
	for (int i = 0; i < RELOADS; i++)
		CU_ASSERT_EQUAL(gate_reload(g, c, &(struct config_errors){ 0 }), 0);
	atomic_store(&reloading_done, true);
	for (int i = 0; i < LOOPS; i++) {
		CU_ASSERT_FATAL(pthread_join(t[i], NULL) == 0);
		CU_ASSERT(l[i].attached);
		CU_ASSERT(l[i].calls > 0);
		CU_ASSERT_EQUAL(l[i].wrong, 0);
	}
	pthread_barrier_destroy(&many_go);
	gate_free(g);
	config_free(c);
}

/* ---- circuits counted by loops while a full reload replaces their array ---- */

#define CIRCUIT_FAILURES 50

static atomic_bool circuits_done;

struct circuit_loop {
	struct gate *g;
	struct event_base *base;
	struct event *ev;
	long turns, failures, off_refused, refused;
	int attached;
};

/* A turn: upstream "a" (a circuit) fails a call; upstream "b" (no circuit) is never refused. */
static void circuit_turn(evutil_socket_t fd, short what, void *arg)
{
	struct circuit_loop *l = arg;
	int64_t retry;
	bool probe;

	(void)fd, (void)what;
	if (gate_circuit_allow(l->g, 0, &probe, &retry) == 0) {
		gate_circuit_result(l->g, 0, true, probe);
		l->failures++;
	} else {
		l->refused++;
	}
	l->off_refused += gate_circuit_allow(l->g, 1, &probe, &retry) != 0;
	gate_circuit_result(l->g, 1, true, probe);
	l->turns++;
	if (atomic_load(&circuits_done))
		event_base_loopbreak(l->base);
	else
		event_active(l->ev, EV_TIMEOUT, 1);
}

static void *circuit_loop_main(void *arg)
{
	struct circuit_loop *l = arg;

	l->base = event_base_new();
	l->attached = l->base && epoch_loop_attach(l->base) == 0;
	pthread_barrier_wait(&many_go);
	if (l->attached && (l->ev = event_new(l->base, -1, 0, circuit_turn, l))) {
		event_active(l->ev, EV_TIMEOUT, 1);
		event_base_dispatch(l->base);
		event_free(l->ev);
	}
	epoch_loop_detach();
	event_base_free(l->base);
	return NULL;
}

/* Loops count failures on one upstream's circuit and pass calls to one without a circuit while
 * the main thread makes full reloads that replace the circuits' array (the same settings: the
 * state moves to the new array): the circuit opens once, on the failures of all the loops
 * together, the upstream without one is never refused, and the arrays replaced are freed
 * only after the loops have let go of them (ASan; ThreadSanitizer in make tsan). */
static void test_circuits_under_loops(void)
{
	char text[1024];
	struct circuit_loop l[LOOPS];
	struct config *c = NULL;
	struct gate *g = NULL;
	pthread_t t[LOOPS];
	long failures = 0;

	snprintf(text, sizeof(text), "{\"state_dir\":\"%s\",\"upstreams\":["
		 "{\"name\":\"a\",\"transport\":\"http\",\"url\":\"http://127.0.0.1:1/mcp\","
		 "\"circuit\":{\"failures\":%d,\"window\":\"1h\",\"open_for\":\"1h\"}},"
		 "{\"name\":\"b\",\"transport\":\"http\",\"url\":\"http://127.0.0.1:1/mcp\"}]}",
		 dir, CIRCUIT_FAILURES);
	CU_ASSERT_EQUAL_FATAL(config_parse(text, "test", &c, &(struct config_errors){ 0 }), 0);
	CU_ASSERT_EQUAL_FATAL(gate_new(base, c, &g, &(struct config_errors){ 0 }), 0);
	atomic_store(&circuits_done, false);
	CU_ASSERT_FATAL(pthread_barrier_init(&many_go, NULL, LOOPS + 1) == 0);
	for (int i = 0; i < LOOPS; i++) {
		l[i] = (struct circuit_loop){ .g = g };
		CU_ASSERT_FATAL(pthread_create(&t[i], NULL, circuit_loop_main, &l[i]) == 0);
	}
	pthread_barrier_wait(&many_go);
	for (int i = 0; i < RELOADS; i++) {
		CU_ASSERT_EQUAL(gate_reload_all(g, c, NULL, NULL), 0);
		usleep(1000);
	}
	atomic_store(&circuits_done, true);
	for (int i = 0; i < LOOPS; i++) {
		CU_ASSERT_FATAL(pthread_join(t[i], NULL) == 0);
		CU_ASSERT(l[i].attached);
		CU_ASSERT(l[i].turns > 0);
		CU_ASSERT_EQUAL(l[i].off_refused, 0);
		failures += l[i].failures;
	}
	pthread_barrier_destroy(&many_go);
	/* Open on its threshold: the failures of every loop counted together, across the
	 * replacements; once open, none let through (a loop's call allowed just before may
	 * fail just after: one a loop at most). */
	CU_ASSERT(failures >= CIRCUIT_FAILURES && failures < CIRCUIT_FAILURES + LOOPS);
	CU_ASSERT_STRING_EQUAL(gate_circuit_state(g, 0), "open");
	CU_ASSERT_STRING_EQUAL(gate_circuit_state(g, 1), "closed");
	gate_free(g);
	config_free(c);
}

CU_MAIN("gate", setup, teardown,
	{ "authenticate: ok, missing, expired, disabled, held off", test_authenticate },
	{ "admission: permission, budget, rate; refusals spend nothing; settle",
	  test_admit_in_order },
	{ "spend survives; refusal; runtime key kept across reload", test_release_and_reload },
	{ "full reload: the rules replaced kept to go back to", test_full_reload_back },
	{ "config errors name their field", test_config_errors },
	{ "loops admitting side by side: limits exact, spend the sum", test_many_loops_exact },
	{ "governance reloads while loops authenticate and admit", test_reloads_under_loops },
	{ "circuits counted by loops while full reloads replace them", test_circuits_under_loops })
