/* policy_bench: the per-call cost of "who is this key, and may it call this tool?".
 *
 * 100,000 keys in 10 teams sharing 10 policies, a catalogue of 10,000 tools on 100 servers. One
 * operation = keys_authenticate (SHA-256, table lookup, constant-time compare, identity copy) +
 * policy_cache_get (the key's view) + policy_view_allows (the tool). The baseline, measured in
 * the same run, is a bare SHA-256 of the same key: the part no implementation can skip. Prints
 * ns/op and the ratio to the baseline; best of several rounds, so a busy machine skews less.
 *
 * A second line measures the whole governance work of one call: the above, then the three
 * rate buckets (key, key x server, key x tool) and a budget reserve + commit (memory only: the
 * store's commit is asynchronous and off the hot path), as the gate does it.
 *
 * usage: policy_bench [keys] [tools] [ops]
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "govern/budget.h"
#include "base/config.h"
#include "govern/keys.h"
#include "govern/policy.h"
#include "govern/ratelimit.h"

#define NPOLICIES 10
#define NTEAMS 10
#define ROUNDS 5
#define NIDS 256   /* identities reused by the split measurement */

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* xorshift: a cheap, reproducible order of keys and tools */
static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static int build_policies(struct policy_set **ps)
{
	char text[8192];
	size_t len = 0;
	struct config_errors errs = { 0 };
	cJSON *root;
	int rc;

	len += (size_t)snprintf(text + len, sizeof(text) - len, "{\"policies\": {");
	for (int p = 0; p < NPOLICIES; p++)
		len += (size_t)snprintf(text + len, sizeof(text) - len,
			"%s\"key-%d\": {\"tools\": {\"allow\": [\"srv-%d*/*\", \"*/get_*\"],"
			" \"deny\": [\"*/delete_*\"]}%s},"
			"\"team-%d\": {\"tools\": {\"allow\": [\"*/*\"], \"deny\": [\"srv-9%d/*\"]}}",
			p ? "," : "", p, p,
			p % 2 ? ", \"annotations\": {\"deny\": {\"destructiveHint\": true}}" : "",
			p, p);
	snprintf(text + len, sizeof(text) - len, "}}");
	root = cJSON_Parse(text);
	if (!root)
		return -EINVAL;
	rc = policy_set_parse(root, ps, &errs);
	for (int i = 0; i < errs.count; i++)
		fprintf(stderr, "policy_bench: %s\n", errs.msg[i]);
	cJSON_Delete(root);
	return rc;
}

int main(int argc, char **argv)
{
	size_t nkeys = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000;
	size_t ntools = argc > 2 ? strtoul(argv[2], NULL, 10) : 10000;
	size_t nops = argc > 3 ? strtoul(argv[3], NULL, 10) : 1000000;
	struct keystore *ks = NULL;
	struct policy_set *ps = NULL;
	struct policy_cache *cache = NULL;
	struct policy_entry *entries = NULL;
	char (*tokens)[KEYS_TOKEN_SIZE] = NULL;
	char (*names)[2][24] = NULL;
	cJSON *ann[3] = { NULL };
	EVP_MD *md = NULL;
	EVP_MD_CTX *ctx = NULL;
	uint32_t *order = NULL;
	static struct key_identity ids[NIDS];
	struct ratelimit_config *rlc = NULL;
	struct ratelimit *rl = NULL;
	struct budget_config *bc = NULL;
	struct budget *budget = NULL;
	cJSON *gov = NULL;
	uint32_t *gov_tool = NULL;
	struct config_errors gerrs = { 0 };
	int rc = 1;

	if (!nkeys || !ntools || !nops) {
		fprintf(stderr, "usage: policy_bench [keys] [tools] [ops]\n");
		return 2;
	}
	tokens = calloc(nkeys, sizeof(*tokens));
	names = calloc(ntools, sizeof(*names));
	entries = calloc(ntools, sizeof(*entries));
	order = calloc(nops, sizeof(*order) * 2);
	md = EVP_MD_fetch(NULL, "SHA256", NULL);
	ctx = EVP_MD_CTX_new();
	if (!tokens || !names || !entries || !order || !md || !ctx)
		goto out;
	if (keys_new(NULL, &ks) || build_policies(&ps) || policy_cache_new(ps, &cache))
		goto out;
	/* Limits high enough never to refuse: the bench measures the bookkeeping, not refusals. */
	gov = cJSON_Parse("{\"rate_limits\": {\"default\": {"
			  "\"key\": {\"requests\": 1000000, \"per\": \"second\"},"
			  "\"server\": {\"requests\": 1000000, \"per\": \"second\"},"
			  "\"tool\": {\"requests\": 1000000, \"per\": \"second\"}}},"
			  "\"costs\": {\"default\": \"0.000001\"},"
			  "\"budgets\": {\"default\": [{\"name\": \"daily\", \"limit\": \"1000000\","
			  " \"period\": \"daily\"}]}}");
	if (!gov || ratelimit_config_parse(gov, &rlc, &gerrs) || budget_config_parse(gov, &bc, &gerrs) ||
	    ratelimit_new(3 * nops + 16, &rl) || budget_new(NULL, &budget)) {
		for (int i = 0; i < gerrs.count; i++)
			fprintf(stderr, "policy_bench: %s\n", gerrs.msg[i]);
		goto out;
	}
	budget_set_config(budget, bc);

	/* Catalogue: 100 tools per server, a third read-only, a third non-destructive. */
	ann[0] = cJSON_Parse("{\"readOnlyHint\": true}");
	ann[1] = cJSON_Parse("{\"destructiveHint\": false}");
	for (size_t i = 0; i < ntools; i++) {
		static const char *const verbs[] = { "get", "set", "delete", "list" };

		snprintf(names[i][0], sizeof(names[i][0]), "srv-%zu", i / 100);
		snprintf(names[i][1], sizeof(names[i][1]), "%s_%zu", verbs[i % 4], i % 100);
		entries[i] = (struct policy_entry){ POLICY_TOOL, names[i][0], names[i][1],
						    ann[i % 3] };
	}
	policy_cache_set_catalogue(cache, entries, ntools);

	/* Keys */
	for (int t = 0; t < NTEAMS; t++) {
		char team[24], pol[24];

		snprintf(team, sizeof(team), "t%d", t);
		snprintf(pol, sizeof(pol), "team-%d", t);
		if (keys_team_set(ks, team, pol))
			goto out;
	}
	for (size_t i = 0; i < nkeys; i++) {
		struct key_record r = { 0 };

		if (keys_generate(tokens[i], sizeof(tokens[i])))
			goto out;
		snprintf(r.id, sizeof(r.id), "k_%zu", i);
		snprintf(r.name, sizeof(r.name), "key %zu", i);
		snprintf(r.team, sizeof(r.team), "t%zu", i % NTEAMS);
		snprintf(r.policy, sizeof(r.policy), "key-%zu", (i / NTEAMS) % NPOLICIES);
		if (keys_hash(tokens[i], strlen(tokens[i]), r.hash) || keys_add(ks, &r))
			goto out;
	}
	uint64_t seed = 0x9e3779b97f4a7c15ULL;
	for (size_t i = 0; i < nops; i++) {
		order[2 * i] = (uint32_t)(rnd(&seed) % nkeys);
		order[2 * i + 1] = (uint32_t)(rnd(&seed) % ntools);
	}

	/* Compile every view first: the bench measures calls, not the first call after a
	 * catalogue change (reported separately). */
	double t0 = now_ns();
	for (size_t i = 0; i < nkeys && i < NPOLICIES * NTEAMS * 4; i++) {
		struct key_identity who;
		const struct policy_view *v;

		if (keys_authenticate(ks, tokens[i], strlen(tokens[i]), 0, &who) != KEYS_AUTH_OK ||
		    policy_cache_get(cache, who.policy, who.team_policy, &v))
			goto out;
	}
	double compile_ms = (now_ns() - t0) / 1e6;

	/* The governance line measures admitted calls only: each op's tool is moved to the next
	 * one the key may call, so every op pays for buckets and budget too. */
	gov_tool = calloc(nops, sizeof(*gov_tool));
	if (!gov_tool)
		goto out;
	for (size_t i = 0; i < nops; i++) {
		struct key_identity who;
		const struct policy_view *v;

		if (keys_authenticate(ks, tokens[order[2 * i]], KEYS_TOKEN_SIZE - 1, 0, &who) !=
		    KEYS_AUTH_OK || policy_cache_get(cache, who.policy, who.team_policy, &v))
			goto out;
		size_t t = policy_view_next(v, order[2 * i + 1]);
		if (t >= ntools)
			t = policy_view_next(v, 0);
		if (t >= ntools)
			goto out;  /* a key that may call nothing: the catalogue setup is wrong */
		gov_tool[i] = (uint32_t)t;
	}
	size_t nviews = policy_cache_views(cache);

	double best_base = 1e30, best_full = 1e30, best_miss = 1e30;
	double best_auth = 1e30, best_perm = 1e30, best_gov = 1e30;
	size_t allowed = 0, sink = 0;
	for (int round = 0; round < ROUNDS; round++) {
		unsigned char d[32];
		unsigned int n;

		t0 = now_ns();
		for (size_t i = 0; i < nops; i++) {
			const char *k = tokens[order[2 * i]];

			if (EVP_DigestInit_ex2(ctx, md, NULL) != 1 ||
			    EVP_DigestUpdate(ctx, k, KEYS_TOKEN_SIZE - 1) != 1 ||
			    EVP_DigestFinal_ex(ctx, d, &n) != 1)
				goto out;
			sink += d[0];
		}
		double base = (now_ns() - t0) / (double)nops;

		allowed = 0;
		t0 = now_ns();
		for (size_t i = 0; i < nops; i++) {
			struct key_identity who;
			const struct policy_view *v;
			const char *why;

			if (keys_authenticate(ks, tokens[order[2 * i]], KEYS_TOKEN_SIZE - 1, 0, &who) !=
			    KEYS_AUTH_OK ||
			    policy_cache_get(cache, who.policy, who.team_policy, &v))
				goto out;
			allowed += policy_view_allows(v, order[2 * i + 1], &why);
		}
		double full = (now_ns() - t0) / (double)nops;

		/* The whole governance work of a call, as the gate does it. */
		t0 = now_ns();
		for (size_t i = 0; i < nops; i++) {
			struct key_identity who;
			const struct policy_view *v;
			struct rate_refusal rr;
			struct budget_refusal br;
			struct budget_resv *resv;
			uint32_t tool = gov_tool[i];

			if (keys_authenticate(ks, tokens[order[2 * i]], KEYS_TOKEN_SIZE - 1, 0, &who) !=
			    KEYS_AUTH_OK ||
			    policy_cache_get(cache, who.policy, who.team_policy, &v))
				goto out;
			if (!policy_view_allows(v, tool, NULL))
				goto out;
			struct rate_subject rs = { who.id, who.team, who.policy };
			struct budget_subject bs = { who.id, who.team, who.policy };
			int e1 = ratelimit_check_subject(rl, rlc, &rs, names[tool][0], names[tool][1],
							 (uint64_t)now_ns(), &rr);
			int e2 = e1 ? 0 : budget_reserve(budget, &bs, 1, 1800000000, &resv, &br);
			int e3 = e1 || e2 ? 0 : budget_commit(budget, resv, NULL, NULL);
			if (e1 || e2 || e3 < 0) {
				fprintf(stderr, "policy_bench: governance step failed: rate %d budget %d "
					"commit %d\n", e1, e2, e3);
				goto out;
			}
		}
		double gov_ns = (now_ns() - t0) / (double)nops;

		/* The two halves alone. */
		t0 = now_ns();
		for (size_t i = 0; i < nops; i++) {
			struct key_identity *who = &ids[i % NIDS];

			sink += keys_authenticate(ks, tokens[order[2 * i]], KEYS_TOKEN_SIZE - 1, 0, who);
		}
		double auth = (now_ns() - t0) / (double)nops;
		t0 = now_ns();
		for (size_t i = 0; i < nops; i++) {
			const struct key_identity *who = &ids[i % NIDS];
			const struct policy_view *v;

			if (policy_cache_get(cache, who->policy, who->team_policy, &v))
				goto out;
			sink += policy_view_allows(v, order[2 * i + 1], NULL);
		}
		double perm = (now_ns() - t0) / (double)nops;

		/* Unknown keys: the cost of a refusal, which an attacker can make us pay. */
		t0 = now_ns();
		for (size_t i = 0; i < nops / 10; i++) {
			struct key_identity who;
			char bad[KEYS_TOKEN_SIZE];

			memcpy(bad, tokens[order[2 * i]], sizeof(bad));
			bad[10] ^= 1;
			sink += keys_authenticate(ks, bad, KEYS_TOKEN_SIZE - 1, 0, &who);
		}
		double miss = (now_ns() - t0) / (double)(nops / 10 ? nops / 10 : 1);

		best_base = base < best_base ? base : best_base;
		best_full = full < best_full ? full : best_full;
		best_miss = miss < best_miss ? miss : best_miss;
		best_auth = auth < best_auth ? auth : best_auth;
		best_perm = perm < best_perm ? perm : best_perm;
		best_gov = gov_ns < best_gov ? gov_ns : best_gov;
	}

	printf("policy_bench: %zu keys, %zu tools, %d policies, %zu views (compiled in %.1f ms), "
	       "%zu ops x %d rounds, best round\n", nkeys, ntools, 2 * NPOLICIES, nviews,
	       compile_ms, nops, ROUNDS);
	printf("  baseline: bare SHA-256 of the key        %8.1f ns/op\n", best_base);
	printf("  key lookup + permission check            %8.1f ns/op  (%.2fx baseline)\n",
	       best_full, best_full / best_base);
	printf("    of which: authenticate                 %8.1f ns/op\n", best_auth);
	printf("    of which: view lookup + check          %8.1f ns/op\n", best_perm);
	printf("  whole governance per admitted call (+ 3 rate buckets, budget reserve, commit)\n"
	       "                                           %8.1f ns/op  (%.2fx baseline)\n",
	       best_gov, best_gov / best_base);
	printf("  unknown key (refused)                    %8.1f ns/op  (%.2fx baseline)\n",
	       best_miss, best_miss / best_base);
	printf("  allowed in the last round: %.1f%%%s\n", 100.0 * (double)allowed / (double)nops,
	       sink == 42 ? " " : "");
	rc = 0;
out:
	if (rc)
		fprintf(stderr, "policy_bench: setup or run failed\n");
	budget_free(budget);
	budget_config_free(bc);
	ratelimit_free(rl);
	ratelimit_config_free(rlc);
	cJSON_Delete(gov);
	free(gov_tool);
	policy_cache_free(cache);
	policy_set_free(ps);
	keys_free(ks);
	for (int i = 0; i < 3; i++)
		cJSON_Delete(ann[i]);
	EVP_MD_CTX_free(ctx);
	EVP_MD_free(md);
	free(order);
	free(entries);
	free(names);
	free(tokens);
	return rc;
}
