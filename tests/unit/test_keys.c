/* Keys: generation, hashing, lookup, expired/disabled/unknown, run-time changes, the per-peer
 * failure tracker, and the config sections. */
#include <CUnit/Basic.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/config.h"
#include "govern/keys.h"
#include "govern/policy.h"
#include "config_errors_util.h"
#include "cunit_main.h"

#define NOW 1800000000LL   /* a fixed wall-clock time, unix seconds */

static struct keystore *store(void)
{
	struct keystore *ks = NULL;

	CU_ASSERT_EQUAL_FATAL(keys_new(NULL, &ks), 0);
	return ks;
}

static struct key_record record(const char *id, const char *key, const char *policy)
{
	struct key_record r = { 0 };

	snprintf(r.id, sizeof(r.id), "%s", id);
	snprintf(r.name, sizeof(r.name), "name of %s", id);
	snprintf(r.policy, sizeof(r.policy), "%s", policy);
	CU_ASSERT_EQUAL(keys_hash(key, strlen(key), r.hash), 0);
	return r;
}

/* Give team its policy and add key id (secret key, its own policy) to it: keys_add's result. */
static int add_team_key(struct keystore *ks, const char *team, const char *team_policy,
			const char *id, const char *key, const char *policy)
{
	struct key_record r = record(id, key, policy);

	CU_ASSERT_EQUAL(keys_team_set(ks, team, team_policy), 0);
	snprintf(r.team, sizeof(r.team), "%s", team);
	return keys_add(ks, &r);
}

/* A new store in *ks with the config text parsed into it (policies ps, may be NULL), its
 * errors in *e: keys_config_parse()'s result. */
static int parse_keys(const char *text, struct policy_set *ps, struct keystore **ks,
		      struct config_errors *e)
{
	cJSON *root = cJSON_Parse(text);
	int rc;

	CU_ASSERT_PTR_NOT_NULL_FATAL(root);
	*ks = store();
	memset(e, 0, sizeof(*e));
	rc = keys_config_parse(root, ps, *ks, e);
	cJSON_Delete(root);
	return rc;
}

static enum keys_auth auth(struct keystore *ks, const char *key, int64_t now,
			   struct key_identity *who)
{
	struct key_identity tmp;

	return keys_authenticate(ks, key, strlen(key), now, who ? who : &tmp);
}

static enum keys_auth memo_auth(struct keystore *ks, struct keys_memo *m, const char *key,
				int64_t now, struct key_identity *who)
{
	return keys_authenticate_memo(ks, m, key, strlen(key), now, who);
}

/* A connection's memo answers as the full check would, through every change to the keys. */
static void test_memo(void)
{
	struct keystore *ks = store(), *ks2 = store();
	struct keys_memo m = { 0 };
	struct key_identity who;
	struct key_record r = record("k-one", "secret-one", "pol-a");

	r.expires = NOW + 10;
	CU_ASSERT_EQUAL_FATAL(keys_add(ks, &r), 0);
	CU_ASSERT_EQUAL_FATAL(add_team_key(ks, "team-x", "pol-team", "k-two", "secret-two", "pol-b"), 0);

	/* A refusal is not remembered; an OK is, and the same key is then taken from it. */
	CU_ASSERT_EQUAL(memo_auth(ks, &m, "secret-none", NOW, &who), KEYS_AUTH_UNKNOWN);
	CU_ASSERT_EQUAL(m.gen, 0);
	CU_ASSERT_EQUAL(memo_auth(ks, &m, "secret-one", NOW, &who), KEYS_AUTH_OK);
	CU_ASSERT_NOT_EQUAL(m.gen, 0);
	uint64_t gen = m.gen;
	memset(&who, 0x55, sizeof(who));
	CU_ASSERT_EQUAL(memo_auth(ks, &m, "secret-one", NOW, &who), KEYS_AUTH_OK);
	CU_ASSERT_EQUAL(m.gen, gen);   /* answered from the memo */
	CU_ASSERT_STRING_EQUAL(who.id, "k-one");
	CU_ASSERT_STRING_EQUAL(who.name, "name of k-one");
	CU_ASSERT_STRING_EQUAL(who.policy, "pol-a");
	CU_ASSERT_STRING_EQUAL(who.team, "");
	CU_ASSERT_EQUAL(who.expires, NOW + 10);

	/* Another key, one byte off, or a prefix: never the remembered one. */
	CU_ASSERT_EQUAL(memo_auth(ks, &m, "secret-onf", NOW, &who), KEYS_AUTH_UNKNOWN);
	CU_ASSERT_EQUAL(m.gen, 0);
	CU_ASSERT_EQUAL(memo_auth(ks, &m, "secret-one", NOW, &who), KEYS_AUTH_OK);
	CU_ASSERT_EQUAL(memo_auth(ks, &m, "secret-on", NOW, &who), KEYS_AUTH_UNKNOWN);
	CU_ASSERT_EQUAL(memo_auth(ks, &m, "", NOW, &who), KEYS_AUTH_MALFORMED);
	CU_ASSERT_EQUAL(memo_auth(ks, &m, "secret-two", NOW, &who), KEYS_AUTH_OK);
	CU_ASSERT_STRING_EQUAL(who.id, "k-two");
	CU_ASSERT_STRING_EQUAL(who.team, "team-x");
	CU_ASSERT_STRING_EQUAL(who.team_policy, "pol-team");

	/* Expiry is checked at every use. */
	CU_ASSERT_EQUAL(memo_auth(ks, &m, "secret-one", NOW, &who), KEYS_AUTH_OK);
	CU_ASSERT_EQUAL(memo_auth(ks, &m, "secret-one", NOW + 10, &who), KEYS_AUTH_EXPIRED);
	CU_ASSERT_STRING_EQUAL(who.id, "k-one");

	/* Changes: disabled, updated, a team's policy, deleted. */
	CU_ASSERT_EQUAL(memo_auth(ks, &m, "secret-one", NOW, &who), KEYS_AUTH_OK);
	CU_ASSERT_EQUAL(keys_set_disabled(ks, "k-one", true), 0);
	CU_ASSERT_EQUAL(memo_auth(ks, &m, "secret-one", NOW, &who), KEYS_AUTH_DISABLED);
	CU_ASSERT_EQUAL(keys_set_disabled(ks, "k-one", false), 0);
	CU_ASSERT_EQUAL(memo_auth(ks, &m, "secret-one", NOW, &who), KEYS_AUTH_OK);
	snprintf(r.policy, sizeof(r.policy), "pol-c");
	CU_ASSERT_EQUAL(keys_update(ks, &r), 0);
	CU_ASSERT_EQUAL(memo_auth(ks, &m, "secret-one", NOW, &who), KEYS_AUTH_OK);
	CU_ASSERT_STRING_EQUAL(who.policy, "pol-c");
	CU_ASSERT_EQUAL(memo_auth(ks, &m, "secret-two", NOW, &who), KEYS_AUTH_OK);
	CU_ASSERT_EQUAL(keys_team_set(ks, "team-x", "pol-team2"), 0);
	CU_ASSERT_EQUAL(memo_auth(ks, &m, "secret-two", NOW, &who), KEYS_AUTH_OK);
	CU_ASSERT_STRING_EQUAL(who.team_policy, "pol-team2");
	CU_ASSERT_EQUAL(memo_auth(ks, &m, "secret-one", NOW, &who), KEYS_AUTH_OK);
	CU_ASSERT_EQUAL(keys_delete(ks, "k-one"), 0);
	CU_ASSERT_EQUAL(memo_auth(ks, &m, "secret-one", NOW, &who), KEYS_AUTH_UNKNOWN);
	CU_ASSERT_EQUAL(m.gen, 0);

	/* Another keystore (a reload): its own keys, whatever the memo holds. */
	CU_ASSERT_EQUAL(memo_auth(ks, &m, "secret-two", NOW, &who), KEYS_AUTH_OK);
	CU_ASSERT_EQUAL(memo_auth(ks2, &m, "secret-two", NOW, &who), KEYS_AUTH_UNKNOWN);
	CU_ASSERT_EQUAL(memo_auth(ks, &m, "secret-two", NOW, &who), KEYS_AUTH_OK);
	keys_free(ks2);
	CU_ASSERT_EQUAL(memo_auth(ks, &m, "secret-two", NOW, &who), KEYS_AUTH_OK);
	CU_ASSERT_STRING_EQUAL(who.id, "k-two");
	/* No memo: the plain check. */
	CU_ASSERT_EQUAL(keys_authenticate_memo(ks, NULL, "secret-two", 10, NOW, &who), KEYS_AUTH_OK);
	keys_free(ks);
}

static void test_generate(void)
{
	static char keys[2000][KEYS_TOKEN_SIZE];
	unsigned seen[256] = { 0 };
	char small[KEYS_TOKEN_SIZE - 1], id[16];

	for (int i = 0; i < 2000; i++) {
		CU_ASSERT_EQUAL_FATAL(keys_generate(keys[i], sizeof(keys[i])), 0);
		CU_ASSERT_EQUAL(strlen(keys[i]), KEYS_TOKEN_SIZE - 1);
		CU_ASSERT_EQUAL(strncmp(keys[i], "mcpw_", 5), 0);
		/* 43 base64url characters carry the 256 random bits */
		CU_ASSERT_EQUAL(strspn(keys[i] + 5, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
				       "0123456789-_"), 43);
		for (const char *p = keys[i] + 5; *p; p++)
			seen[(unsigned char)*p]++;
	}
	/* Every one of the 64 symbols shows up, and no key repeats. */
	int symbols = 0;
	for (int c = 0; c < 256; c++)
		symbols += seen[c] > 0;
	CU_ASSERT_EQUAL(symbols, 64);
	for (int i = 0; i < 2000; i++)
		for (int j = i + 1; j < 2000; j++)
			if (strcmp(keys[i], keys[j]) == 0)
				CU_FAIL("duplicate key");
	CU_ASSERT_EQUAL(keys_generate(small, sizeof(small)), -ENOSPC);
	CU_ASSERT_EQUAL(keys_generate_id(id, sizeof(id)), 0);
	CU_ASSERT_EQUAL(strlen(id), 10);
	CU_ASSERT_EQUAL(strncmp(id, "k_", 2), 0);
	CU_ASSERT_EQUAL(strspn(id + 2, "0123456789abcdef"), 8);
	CU_ASSERT_EQUAL(keys_generate_id(id, 10), -ENOSPC);
}

static void test_hash_text(void)
{
	unsigned char d[KEYS_HASH_LEN], d2[KEYS_HASH_LEN];
	char text[KEYS_HASH_TEXT_SIZE];

	CU_ASSERT_EQUAL(keys_hash("abc", 3, d), 0);
	keys_hash_format(d, text);
	CU_ASSERT_STRING_EQUAL(text, "sha256:ba7816bf8f01cfea414140de5dae2223"
			       "b00361a396177a9cb410ff61f20015ad");
	CU_ASSERT_EQUAL(keys_hash_parse(text, d2), 0);
	CU_ASSERT_EQUAL(memcmp(d, d2, sizeof(d)), 0);
	CU_ASSERT_EQUAL(keys_hash_parse("sha256:BA7816BF8F01CFEA414140DE5DAE2223"
					"B00361A396177A9CB410FF61F20015AD", d2), 0);
	CU_ASSERT_EQUAL(memcmp(d, d2, sizeof(d)), 0);
	CU_ASSERT_EQUAL(keys_hash_parse("ba7816bf8f01cfea414140de5dae2223"
					"b00361a396177a9cb410ff61f20015ad", d2), -EINVAL);
	CU_ASSERT_EQUAL(keys_hash_parse("sha256:ba7816bf", d2), -EINVAL);
	CU_ASSERT_EQUAL(keys_hash_parse("sha256:za7816bf8f01cfea414140de5dae2223"
					"b00361a396177a9cb410ff61f20015ad", d2), -EINVAL);
	CU_ASSERT_EQUAL(keys_hash_parse("sha256:ba7816bf8f01cfea414140de5dae2223"
					"b00361a396177a9cb410ff61f20015ad0", d2), -EINVAL);
	CU_ASSERT_EQUAL(keys_hash_parse("", d2), -EINVAL);
}

static void test_lookup(void)
{
	struct keystore *ks = store();
	static char keys[3000][KEYS_TOKEN_SIZE];
	struct key_identity who;
	char id[16];

	for (int i = 0; i < 3000; i++) {
		CU_ASSERT_EQUAL_FATAL(keys_generate(keys[i], sizeof(keys[i])), 0);
		snprintf(id, sizeof(id), "k%d", i);
		struct key_record r = record(id, keys[i], "p");
		CU_ASSERT_EQUAL_FATAL(keys_add(ks, &r), 0);
	}
	CU_ASSERT_EQUAL(keys_count(ks), 3000);
	for (int i = 0; i < 3000; i++) {
		snprintf(id, sizeof(id), "k%d", i);
		CU_ASSERT_EQUAL(auth(ks, keys[i], NOW, &who), KEYS_AUTH_OK);
		CU_ASSERT_STRING_EQUAL(who.id, id);
	}
	CU_ASSERT_STRING_EQUAL(who.name, "name of k2999");
	CU_ASSERT_STRING_EQUAL(who.policy, "p");
	CU_ASSERT_STRING_EQUAL(who.team, "");
	CU_ASSERT_STRING_EQUAL(who.team_policy, "");

	/* A near miss (last character changed) is simply unknown, and says nothing. */
	char near[KEYS_TOKEN_SIZE];
	memcpy(near, keys[7], sizeof(near));
	near[KEYS_TOKEN_SIZE - 2] = near[KEYS_TOKEN_SIZE - 2] == 'A' ? 'B' : 'A';
	CU_ASSERT_EQUAL(auth(ks, near, NOW, &who), KEYS_AUTH_UNKNOWN);
	CU_ASSERT_STRING_EQUAL(who.id, "");
	/* Any printable token is hashed (keys imported from elsewhere), other input is malformed. */
	CU_ASSERT_EQUAL(auth(ks, "sk-legacy-0123", NOW, NULL), KEYS_AUTH_UNKNOWN);
	CU_ASSERT_EQUAL(auth(ks, "", NOW, NULL), KEYS_AUTH_MALFORMED);
	CU_ASSERT_EQUAL(auth(ks, "mcpw_ abc", NOW, NULL), KEYS_AUTH_MALFORMED);
	CU_ASSERT_EQUAL(auth(ks, "mcpw_\x01" "abc", NOW, NULL), KEYS_AUTH_MALFORMED);
	CU_ASSERT_EQUAL(auth(ks, "mcpw_\xc3\xa9", NOW, NULL), KEYS_AUTH_MALFORMED);
	CU_ASSERT_EQUAL(keys_authenticate(ks, NULL, 0, NOW, &who), KEYS_AUTH_MALFORMED);
	char *big = malloc(KEYS_PRESENTED_MAX + 2);
	CU_ASSERT_PTR_NOT_NULL_FATAL(big);
	memset(big, 'a', KEYS_PRESENTED_MAX + 1);
	big[KEYS_PRESENTED_MAX + 1] = '\0';
	CU_ASSERT_EQUAL(auth(ks, big, NOW, NULL), KEYS_AUTH_MALFORMED);
	big[KEYS_PRESENTED_MAX] = '\0';
	CU_ASSERT_EQUAL(auth(ks, big, NOW, NULL), KEYS_AUTH_UNKNOWN);
	free(big);
	/* Only len bytes count: a key followed by more bytes in the buffer still matches. */
	char longer[KEYS_TOKEN_SIZE + 8];
	snprintf(longer, sizeof(longer), "%s, x", keys[9]);
	CU_ASSERT_EQUAL(keys_authenticate(ks, longer, KEYS_TOKEN_SIZE - 1, NOW, &who),
			KEYS_AUTH_OK);
	CU_ASSERT_STRING_EQUAL(who.id, "k9");
	keys_free(ks);
}

/* Digests that land in the same bucket (same first 8 bytes) and differ only at the end are
 * told apart: the whole digest is compared (with CRYPTO_memcmp), not a prefix. */
static void test_full_digest_compare(void)
{
	struct keystore *ks = store();
	struct key_identity who;
	struct key_record a = record("a", "x", "p"), b = record("b", "x", "p");
	unsigned char probe[KEYS_HASH_LEN];

	memset(a.hash, 0x5a, KEYS_HASH_LEN);
	memset(b.hash, 0x5a, KEYS_HASH_LEN);
	b.hash[KEYS_HASH_LEN - 1] = 0x5b;
	CU_ASSERT_EQUAL_FATAL(keys_add(ks, &a), 0);
	CU_ASSERT_EQUAL_FATAL(keys_add(ks, &b), 0);
	CU_ASSERT_EQUAL(keys_authenticate_hash(ks, a.hash, NOW, &who), KEYS_AUTH_OK);
	CU_ASSERT_STRING_EQUAL(who.id, "a");
	CU_ASSERT_EQUAL(keys_authenticate_hash(ks, b.hash, NOW, &who), KEYS_AUTH_OK);
	CU_ASSERT_STRING_EQUAL(who.id, "b");
	memcpy(probe, a.hash, sizeof(probe));
	for (int i = 0; i < KEYS_HASH_LEN; i++) {
		probe[i] ^= 0x80;
		CU_ASSERT_EQUAL(keys_authenticate_hash(ks, probe, NOW, &who), KEYS_AUTH_UNKNOWN);
		probe[i] ^= 0x80;
	}
	keys_free(ks);
}

/* Lookups stay right through deletes, with clusters of digests that want the same slot,
 * including one that wraps around the end of the table. */
static void test_delete_clusters(void)
{
	struct keystore *ks = store();
	struct key_identity who;
	struct key_record r[40];
	bool live[40];
	char id[16];

	for (int i = 0; i < 40; i++) {
		r[i] = record("x", "x", "p");
		snprintf(r[i].id, sizeof(r[i].id), "c%d", i);
		/* 30 digests whose first bytes put them in the last slot, 10 in the first */
		memset(r[i].hash, i < 30 ? 0xff : 0x00, KEYS_HASH_LEN);
		r[i].hash[7] = (unsigned char)i;
		r[i].hash[31] = (unsigned char)i;
		CU_ASSERT_EQUAL_FATAL(keys_add(ks, &r[i]), 0);
		live[i] = true;
	}
	for (int round = 0; round < 3; round++) {
		for (int i = round; i < 40; i += 3) {
			snprintf(id, sizeof(id), "c%d", i);
			CU_ASSERT_EQUAL(keys_delete(ks, id), 0);
			live[i] = false;
			for (int j = 0; j < 40; j++) {
				enum keys_auth a = keys_authenticate_hash(ks, r[j].hash, NOW, &who);

				CU_ASSERT_EQUAL(a, live[j] ? KEYS_AUTH_OK : KEYS_AUTH_UNKNOWN);
				if (live[j] && a == KEYS_AUTH_OK)
					CU_ASSERT_STRING_EQUAL(who.id, r[j].id);
			}
		}
	}
	CU_ASSERT_EQUAL(keys_count(ks), 0);
	for (int i = 39; i >= 0; i--)
		CU_ASSERT_EQUAL(keys_add(ks, &r[i]), 0);
	for (int i = 0; i < 40; i++)
		CU_ASSERT_EQUAL(keys_authenticate_hash(ks, r[i].hash, NOW, &who), KEYS_AUTH_OK);
	keys_free(ks);

	/* Many real keys, half deleted in a scattered order, the rest still found. */
	static char keys[6000][KEYS_TOKEN_SIZE];
	ks = store();
	for (int i = 0; i < 6000; i++) {
		CU_ASSERT_EQUAL_FATAL(keys_generate(keys[i], sizeof(keys[i])), 0);
		snprintf(id, sizeof(id), "k%d", i);
		struct key_record k = record(id, keys[i], "p");
		CU_ASSERT_EQUAL_FATAL(keys_add(ks, &k), 0);
	}
	for (int i = 0; i < 6000; i++) {
		int j = (i * 7919) % 6000;  /* a permutation: 7919 is prime */

		if (j % 2) {
			snprintf(id, sizeof(id), "k%d", j);
			CU_ASSERT_EQUAL(keys_delete(ks, id), 0);
		}
	}
	CU_ASSERT_EQUAL(keys_count(ks), 3000);
	int wrong = 0;
	for (int i = 0; i < 6000; i++)
		wrong += auth(ks, keys[i], NOW, NULL) != (i % 2 ? KEYS_AUTH_UNKNOWN : KEYS_AUTH_OK);
	CU_ASSERT_EQUAL(wrong, 0);
	keys_free(ks);
}

static void test_expired_disabled(void)
{
	struct keystore *ks = store();
	struct key_identity who;
	struct key_record r = record("exp", "mcpw_expiring", "p");

	r.expires = NOW + 60;
	CU_ASSERT_EQUAL_FATAL(keys_add(ks, &r), 0);
	CU_ASSERT_EQUAL(auth(ks, "mcpw_expiring", NOW + 59, &who), KEYS_AUTH_OK);
	CU_ASSERT_EQUAL(who.expires, NOW + 60);
	CU_ASSERT_EQUAL(auth(ks, "mcpw_expiring", NOW + 60, &who), KEYS_AUTH_EXPIRED);
	CU_ASSERT_STRING_EQUAL(who.id, "exp");  /* the audit record names the key */
	r = record("off", "mcpw_off", "p");
	r.disabled = true;
	CU_ASSERT_EQUAL_FATAL(keys_add(ks, &r), 0);
	CU_ASSERT_EQUAL(auth(ks, "mcpw_off", NOW, &who), KEYS_AUTH_DISABLED);
	CU_ASSERT_STRING_EQUAL(who.id, "off");
	CU_ASSERT_EQUAL(auth(ks, "mcpw_nobody", NOW, &who), KEYS_AUTH_UNKNOWN);
	CU_ASSERT_STRING_EQUAL(keys_auth_name(KEYS_AUTH_OK), "ok");
	CU_ASSERT_STRING_EQUAL(keys_auth_name(KEYS_AUTH_MALFORMED), "malformed");
	CU_ASSERT_STRING_EQUAL(keys_auth_name(KEYS_AUTH_UNKNOWN), "unknown");
	CU_ASSERT_STRING_EQUAL(keys_auth_name(KEYS_AUTH_EXPIRED), "expired");
	CU_ASSERT_STRING_EQUAL(keys_auth_name(KEYS_AUTH_DISABLED), "disabled");
	keys_free(ks);
}

static void test_runtime_changes(void)
{
	struct keystore *ks = store();
	struct key_identity who;
	struct key_record r, got;

	CU_ASSERT_EQUAL_FATAL(add_team_key(ks, "ml", "team-ro", "k1", "mcpw_one", "mine"), 0);
	CU_ASSERT_EQUAL(auth(ks, "mcpw_one", NOW, &who), KEYS_AUTH_OK);
	CU_ASSERT_STRING_EQUAL(who.team, "ml");
	CU_ASSERT_STRING_EQUAL(who.team_policy, "team-ro");

	/* A team's new policy applies to the next request. */
	CU_ASSERT_EQUAL(keys_team_set(ks, "ml", "team-rw"), 0);
	CU_ASSERT_EQUAL(auth(ks, "mcpw_one", NOW, &who), KEYS_AUTH_OK);
	CU_ASSERT_STRING_EQUAL(who.team_policy, "team-rw");
	CU_ASSERT_STRING_EQUAL(keys_team_policy(ks, "ml"), "team-rw");
	CU_ASSERT_PTR_NULL(keys_team_policy(ks, "nope"));
	CU_ASSERT_EQUAL(keys_team_delete(ks, "ml"), -EBUSY);

	/* Revocation: disable, enable, then delete; each applies to the next request. */
	CU_ASSERT_EQUAL(keys_set_disabled(ks, "k1", true), 0);
	CU_ASSERT_EQUAL(auth(ks, "mcpw_one", NOW, NULL), KEYS_AUTH_DISABLED);
	CU_ASSERT_EQUAL(keys_set_disabled(ks, "k1", false), 0);
	CU_ASSERT_EQUAL(auth(ks, "mcpw_one", NOW, NULL), KEYS_AUTH_OK);

	/* Rotation: a new hash replaces the old secret. */
	r = record("k1", "mcpw_one-rotated", "mine");
	CU_ASSERT_EQUAL(keys_update(ks, &r), 0);
	CU_ASSERT_EQUAL(auth(ks, "mcpw_one", NOW, NULL), KEYS_AUTH_UNKNOWN);
	CU_ASSERT_EQUAL(auth(ks, "mcpw_one-rotated", NOW, &who), KEYS_AUTH_OK);
	CU_ASSERT_STRING_EQUAL(who.team, "");  /* the update replaced every field */
	CU_ASSERT_EQUAL(keys_team_delete(ks, "ml"), 0);
	CU_ASSERT_EQUAL(keys_team_delete(ks, "ml"), -ENOENT);
	CU_ASSERT_EQUAL(keys_get(ks, "k1", &got), 0);
	CU_ASSERT_STRING_EQUAL(got.name, "name of k1");
	CU_ASSERT_EQUAL(memcmp(got.hash, r.hash, KEYS_HASH_LEN), 0);

	/* Conflicts and bad records. */
	struct key_record k2 = record("k2", "mcpw_two", "mine");
	CU_ASSERT_EQUAL(keys_add(ks, &k2), 0);
	r = record("k1", "mcpw_x", "mine");
	CU_ASSERT_EQUAL(keys_add(ks, &r), -EEXIST);            /* id in use */
	r = record("k3", "mcpw_two", "mine");
	CU_ASSERT_EQUAL(keys_add(ks, &r), -EEXIST);            /* secret in use */
	r = record("k1", "mcpw_two", "mine");
	CU_ASSERT_EQUAL(keys_update(ks, &r), -EEXIST);         /* another key's secret */
	r = record("k9", "mcpw_nine", "mine");
	CU_ASSERT_EQUAL(keys_update(ks, &r), -ENOENT);
	snprintf(r.team, sizeof(r.team), "ghost");
	CU_ASSERT_EQUAL(keys_add(ks, &r), -ENOENT);
	r = record("k9", "mcpw_nine", "");
	CU_ASSERT_EQUAL(keys_add(ks, &r), -EINVAL);            /* no policy, no team */
	r = record("bad id", "mcpw_nine", "mine");
	CU_ASSERT_EQUAL(keys_add(ks, &r), -EINVAL);
	r = record("", "mcpw_nine", "mine");
	CU_ASSERT_EQUAL(keys_add(ks, &r), -EINVAL);
	r = record("k9", "mcpw_nine", "mine");
	r.name[0] = '\0';
	CU_ASSERT_EQUAL(keys_add(ks, &r), -EINVAL);
	r = record("k9", "mcpw_nine", "mine");
	memset(r.id, 'a', sizeof(r.id));                       /* not terminated */
	CU_ASSERT_EQUAL(keys_add(ks, &r), -EINVAL);
	CU_ASSERT_EQUAL(keys_team_set(ks, "t", ""), -EINVAL);
	CU_ASSERT_EQUAL(keys_team_set(ks, "t t", "p"), -EINVAL);

	/* A key in a team may leave its own policy out: the team's alone governs. */
	CU_ASSERT_EQUAL(add_team_key(ks, "ops", "ops-policy", "k4", "mcpw_four", ""), 0);
	CU_ASSERT_EQUAL(auth(ks, "mcpw_four", NOW, &who), KEYS_AUTH_OK);
	CU_ASSERT_STRING_EQUAL(who.policy, "");
	CU_ASSERT_STRING_EQUAL(who.team_policy, "ops-policy");

	CU_ASSERT_EQUAL(keys_count(ks), 3);
	CU_ASSERT_EQUAL(keys_delete(ks, "k1"), 0);
	CU_ASSERT_EQUAL(auth(ks, "mcpw_one-rotated", NOW, NULL), KEYS_AUTH_UNKNOWN);
	CU_ASSERT_EQUAL(keys_delete(ks, "k1"), -ENOENT);
	CU_ASSERT_EQUAL(keys_get(ks, "k1", &got), -ENOENT);
	CU_ASSERT_EQUAL(keys_set_disabled(ks, "k1", true), -ENOENT);
	CU_ASSERT_EQUAL(keys_count(ks), 2);
	/* The freed hash can be used again. */
	r = record("k5", "mcpw_one-rotated", "mine");
	CU_ASSERT_EQUAL(keys_add(ks, &r), 0);
	keys_free(ks);
}

static struct keystore *tracker(size_t capacity)
{
	struct peer_guard_limits lim = {
		.max_failures = 3, .window_ms = 1000, .block_ms = 100, .max_block_ms = 400,
		.capacity = capacity,
	};
	struct keystore *ks = NULL;

	CU_ASSERT_EQUAL_FATAL(keys_new(&lim, &ks), 0);
	return ks;
}

static bool blocked(struct keystore *ks, const char *peer, int64_t now, int64_t *retry)
{
	int64_t r;

	return keys_peer_blocked(ks, peer, now, retry ? retry : &r);
}

static void fail_n(struct keystore *ks, const char *peer, int64_t now, int n)
{
	for (int i = 0; i < n; i++)
		keys_peer_failure(ks, peer, now);
}

static void test_tracker_window(void)
{
	struct keystore *ks = tracker(64);
	int64_t retry;

	fail_n(ks, "10.0.0.1", 1000, 2);
	CU_ASSERT_FALSE(blocked(ks, "10.0.0.1", 1000, &retry));
	CU_ASSERT_EQUAL(retry, 0);
	keys_peer_failure(ks, "10.0.0.1", 1010);
	CU_ASSERT_TRUE(blocked(ks, "10.0.0.1", 1010, &retry));
	CU_ASSERT_EQUAL(retry, 100);
	CU_ASSERT_TRUE(blocked(ks, "10.0.0.1", 1109, &retry));
	CU_ASSERT_EQUAL(retry, 1);
	CU_ASSERT_FALSE(blocked(ks, "10.0.0.1", 1110, NULL));
	CU_ASSERT_FALSE(blocked(ks, "10.0.0.2", 1010, NULL));  /* others are unaffected */

	/* Failures further apart than the window do not add up. */
	for (int64_t t = 0; t < 10000; t += 600)
		keys_peer_failure(ks, "10.0.0.3", t);
	CU_ASSERT_FALSE(blocked(ks, "10.0.0.3", 10000, NULL));

	/* A success clears the count. */
	fail_n(ks, "10.0.0.4", 0, 2);
	keys_peer_success(ks, "10.0.0.4", 1);
	fail_n(ks, "10.0.0.4", 2, 2);
	CU_ASSERT_FALSE(blocked(ks, "10.0.0.4", 2, NULL));
	keys_free(ks);
}

static void test_tracker_escalation(void)
{
	struct keystore *ks = tracker(64);
	int64_t retry, t = 0;

	/* Each further block doubles, up to max_block_ms. */
	const int64_t expect[] = { 100, 200, 400, 400 };
	for (int i = 0; i < 4; i++) {
		fail_n(ks, "192.0.2.7", t, 3);
		CU_ASSERT_TRUE(blocked(ks, "192.0.2.7", t, &retry));
		CU_ASSERT_EQUAL(retry, expect[i]);
		t += retry;
		CU_ASSERT_FALSE(blocked(ks, "192.0.2.7", t, NULL));
	}
	/* A success clears the count but not the escalation. */
	keys_peer_success(ks, "192.0.2.7", t);
	fail_n(ks, "192.0.2.7", t, 3);
	CU_ASSERT_TRUE(blocked(ks, "192.0.2.7", t, &retry));
	CU_ASSERT_EQUAL(retry, 400);
	t += retry;
	/* After max_block_ms of quiet the escalation is forgotten. */
	t += 401;
	fail_n(ks, "192.0.2.7", t, 3);
	CU_ASSERT_TRUE(blocked(ks, "192.0.2.7", t, &retry));
	CU_ASSERT_EQUAL(retry, 100);
	keys_free(ks);
}

static void test_tracker_addresses(void)
{
	struct keystore *ks = tracker(64);

	/* An IPv6 peer counts as its /64. */
	keys_peer_failure(ks, "2001:db8::1", 0);
	keys_peer_failure(ks, "2001:db8::2", 0);
	keys_peer_failure(ks, "[2001:db8::3]", 0);
	CU_ASSERT_TRUE(blocked(ks, "2001:db8::99", 0, NULL));
	CU_ASSERT_TRUE(blocked(ks, "2001:db8:0:0:ffff::1", 0, NULL));
	CU_ASSERT_FALSE(blocked(ks, "2001:db8:0:1::1", 0, NULL));
	/* A v4-mapped address is the IPv4 address. */
	keys_peer_failure(ks, "::ffff:10.1.2.3", 0);
	keys_peer_failure(ks, "10.1.2.3", 0);
	keys_peer_failure(ks, "::ffff:10.1.2.3", 0);
	CU_ASSERT_TRUE(blocked(ks, "10.1.2.3", 0, NULL));
	CU_ASSERT_FALSE(blocked(ks, "10.1.2.4", 0, NULL));
	/* Anything else is an opaque name; nothing crashes. */
	fail_n(ks, "unix:/run/agent.sock", 0, 3);
	CU_ASSERT_TRUE(blocked(ks, "unix:/run/agent.sock", 0, NULL));
	CU_ASSERT_FALSE(blocked(ks, "unix:/run/other.sock", 0, NULL));
	fail_n(ks, "", 0, 3);
	fail_n(ks, NULL, 0, 3);
	CU_ASSERT_TRUE(blocked(ks, NULL, 0, NULL));
	keys_free(ks);
}

static void test_tracker_eviction(void)
{
	struct keystore *ks = tracker(4);
	char peer[32];

	/* B, C, D fail once; A is blocked last, so it is the most recent. */
	keys_peer_failure(ks, "10.0.0.2", 0);
	keys_peer_failure(ks, "10.0.0.3", 1);
	keys_peer_failure(ks, "10.0.0.4", 2);
	fail_n(ks, "10.0.0.1", 3, 3);
	CU_ASSERT_TRUE(blocked(ks, "10.0.0.1", 3, NULL));
	/* A fifth peer evicts the least recently failing one (B), not A. */
	keys_peer_failure(ks, "10.0.0.5", 4);
	CU_ASSERT_TRUE(blocked(ks, "10.0.0.1", 4, NULL));
	fail_n(ks, "10.0.0.2", 5, 2);   /* B starts again from zero: not blocked after 2 */
	CU_ASSERT_FALSE(blocked(ks, "10.0.0.2", 5, NULL));
	/* Memory stays bounded however many peers fail. */
	for (int i = 0; i < 100000; i++) {
		snprintf(peer, sizeof(peer), "198.51.%d.%d", i / 256 % 256, i % 256);
		keys_peer_failure(ks, peer, 10 + i);
	}
	fail_n(ks, "203.0.113.9", 200000, 3);
	CU_ASSERT_TRUE(blocked(ks, "203.0.113.9", 200000, NULL));
	CU_ASSERT_FALSE(blocked(ks, "10.0.0.1", 200000, NULL));
	keys_free(ks);

	struct peer_guard_limits bad = { 0 };
	CU_ASSERT_EQUAL(keys_new(&bad, &ks), -EINVAL);
	CU_ASSERT_PTR_NULL(ks);
}

#define H_ABC "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

static void test_config(void)
{
	struct config_errors e = { 0 };
	struct policy_set *ps = NULL;
	struct keystore *ks = store();
	struct key_record r;
	unsigned char d[KEYS_HASH_LEN];
	char h2[KEYS_HASH_TEXT_SIZE], h3[KEYS_HASH_TEXT_SIZE], text[2048];
	struct key_identity who;
	cJSON *root;

	CU_ASSERT_EQUAL(keys_hash("mcpw_two", 8, d), 0);
	keys_hash_format(d, h2);
	CU_ASSERT_EQUAL(keys_hash("mcpw_three", 10, d), 0);
	keys_hash_format(d, h3);
	snprintf(text, sizeof(text),
		 "{\"policies\": {\"ro\": {}, \"rw\": {}},"
		 " \"teams\": [{\"name\": \"ml\", \"policy\": \"ro\"}],"
		 " \"keys\": ["
		 "  {\"id\": \"ci\", \"name\": \"CI runner\", \"hash\": \"" H_ABC "\","
		 "   \"policy\": \"rw\", \"expires\": \"2027-01-31T00:00:00Z\","
		 "   \"created\": \"2026-01-01T00:00:00.250+01:00\"},"
		 "  {\"hash\": \"%s\", \"team\": \"ml\", \"disabled\": true},"
		 "  {\"id\": \"late\", \"hash\": \"%s\", \"team\": \"ml\", \"policy\": \"rw\","
		 "   \"expires\": \"2027-01-31T01:30:00+01:30\"}]}", h2, h3);
	root = cJSON_Parse(text);
	CU_ASSERT_PTR_NOT_NULL_FATAL(root);
	CU_ASSERT_EQUAL_FATAL(policy_set_parse(root, &ps, &e), 0);
	CU_ASSERT_EQUAL(keys_config_parse(root, ps, ks, &e), 0);
	for (int i = 0; i < e.count; i++)
		fprintf(stderr, "unexpected: %s\n", e.msg[i]);
	cJSON_Delete(root);
	CU_ASSERT_EQUAL(keys_count(ks), 3);

	CU_ASSERT_EQUAL(keys_get(ks, "ci", &r), 0);
	CU_ASSERT_STRING_EQUAL(r.name, "CI runner");
	CU_ASSERT_EQUAL(r.expires, 1801353600);
	CU_ASSERT_EQUAL(r.created, 1767222000);
	CU_ASSERT_EQUAL(auth(ks, "abc", 1801353599, &who), KEYS_AUTH_OK);
	CU_ASSERT_EQUAL(auth(ks, "abc", 1801353600, &who), KEYS_AUTH_EXPIRED);
	/* No id: derived from the hash, so it stays the same across restarts. */
	char derived[16];
	snprintf(derived, sizeof(derived), "k_%.8s", h2 + 7);
	CU_ASSERT_EQUAL(auth(ks, "mcpw_two", NOW, &who), KEYS_AUTH_DISABLED);
	CU_ASSERT_STRING_EQUAL(who.id, derived);
	CU_ASSERT_STRING_EQUAL(who.name, derived);
	CU_ASSERT_STRING_EQUAL(who.team_policy, "ro");
	CU_ASSERT_EQUAL(keys_get(ks, "late", &r), 0);
	CU_ASSERT_EQUAL(r.expires, 1801353600);
	CU_ASSERT_FALSE(r.disabled);
	/* What the config defined is marked; what is added later is not, and an update of a
	 * config key keeps it the config's. */
	CU_ASSERT_FALSE(keys_from_config(ks, "ci"));
	keys_mark_config(ks);
	CU_ASSERT_TRUE(keys_from_config(ks, "ci") && keys_from_config(ks, derived));
	CU_ASSERT_TRUE(keys_team_from_config(ks, "ml"));
	CU_ASSERT_EQUAL(keys_team_set(ks, "ops", "rw"), 0);
	CU_ASSERT_FALSE(keys_team_from_config(ks, "ops"));
	struct key_record extra = { 0 };
	snprintf(extra.id, sizeof(extra.id), "extra");
	snprintf(extra.name, sizeof(extra.name), "extra");
	snprintf(extra.policy, sizeof(extra.policy), "ro");
	keys_hash("mcpw_extra", strlen("mcpw_extra"), extra.hash);
	CU_ASSERT_EQUAL(keys_add(ks, &extra), 0);
	CU_ASSERT_FALSE(keys_from_config(ks, "extra"));
	CU_ASSERT_FALSE(keys_from_config(ks, "nope"));
	CU_ASSERT_EQUAL(keys_get(ks, "ci", &r), 0);
	snprintf(r.name, sizeof(r.name), "renamed");
	CU_ASSERT_EQUAL(keys_update(ks, &r), 0);
	CU_ASSERT_TRUE(keys_from_config(ks, "ci"));
	keys_free(ks);

	/* Every problem is reported, each with its field path. */
	snprintf(text, sizeof(text),
		 "{\"teams\": [{\"name\": \"ml\", \"policy\": \"ro\"},"
		 "             {\"name\": \"x\", \"policy\": \"nope\"},"
		 "             {\"name\": \"ml\", \"policy\": \"ro\"}, 7, {\"policy\": \"ro\"}],"
		 " \"keys\": ["
		 "  {\"id\": \"a\", \"hash\": \"mcpw_plaintext\", \"policy\": \"ro\"},"
		 "  {\"id\": \"b\", \"hash\": \"%s\", \"team\": \"ghost\"},"
		 "  {\"id\": \"c\", \"hash\": \"%s\"},"
		 "  {\"id\": \"d\", \"hash\": \"%s\", \"policy\": \"ro\", \"expires\": \"tomorrow\"},"
		 "  {\"id\": \"e e\", \"hash\": \"%s\", \"policy\": \"ro\"},"
		 "  {\"id\": \"f\", \"hash\": \"%s\", \"policy\": \"ro\", \"secret\": \"x\"},"
		 "  {\"id\": \"g\", \"hash\": \"%s\", \"policy\": \"ro\"},"
		 "  {\"id\": \"g\", \"hash\": \"" H_ABC "\", \"policy\": \"ro\"},"
		 "  {\"id\": \"h\", \"hash\": \"%s\", \"policy\": \"ro\"},"
		 "  {\"id\": \"i\", \"hash\": 5, \"policy\": \"missing\", \"disabled\": \"no\"},"
		 "  \"k\"]}",
		 h2, h2, h2, h2, h2, h3, h3);
	CU_ASSERT_EQUAL(parse_keys(text, ps, &ks, &e), -EINVAL);
	CU_ASSERT_ERRORS(&e,
		"teams[1].policy: no policy named \"nope\"",
		"teams[2].name: team \"ml\" is defined twice",
		"teams[3]: must be an object",
		"teams[4].name: required field is missing",
		"keys[0].hash: must be \"sha256:\" and 64 hex digits",
		"keys[1].team: no team named \"ghost\"",
		"keys[2].policy: required for a key without a team",
		"keys[3].expires: not an RFC 3339 date-time",
		"keys[4].id: must be 1-64 of",
		"keys[5].secret: unknown field",
		"keys[7].id: key id \"g\" is used twice",
		"keys[8].hash: the same hash is used by another key",
		"keys[9].hash: must be a string",
		"keys[9].policy: no policy named \"missing\"",
		"keys[9].disabled: must be true or false",
		"keys[10]: must be an object");
	/* The secret itself never appears in an error. */
	for (int j = 0; j < e.count; j++)
		CU_ASSERT_PTR_NULL(strstr(e.msg[j], "mcpw_plaintext"));
	keys_free(ks);

	CU_ASSERT_EQUAL(parse_keys("{\"teams\": {}, \"keys\": 3}", NULL, &ks, &e), -EINVAL);
	CU_ASSERT_ERRORS(&e,
			 "teams: must be an array",
			 "keys: must be an array");
	keys_free(ks);
	policy_set_free(ps);
}

/* keys[].workloads: parsed, copied to the identity, matched against the kernel's name for the
 * caller (an unknown caller never matches); bad patterns refused with the field's path. */
static void test_workloads(void)
{
	struct config_errors e;
	struct keystore *ks;
	struct key_identity who;

	CU_ASSERT_EQUAL(parse_keys(
		"{\"keys\": [{\"id\": \"w\", \"hash\": \"" H_ABC "\", \"policy\": \"p\","
		" \"workloads\": [\"cgroup:/kubepods/pod1*\", \"cgroup:/agents/a\"]},"
		" {\"id\": \"x\", \"hash\": \"sha256:" "00000000000000000000000000000000"
		"00000000000000000000000000000001\", \"policy\": \"p\", \"workloads\": [\"pod:ns/a\"]},"
		" {\"id\": \"y\", \"hash\": \"sha256:" "00000000000000000000000000000000"
		"00000000000000000000000000000002\", \"policy\": \"p\", \"workloads\": [\"/a\"]},"
		" {\"id\": \"z\", \"hash\": \"sha256:" "00000000000000000000000000000000"
		"00000000000000000000000000000003\", \"policy\": \"p\", \"workloads\": []}]}",
		NULL, &ks, &e), -EINVAL);
	CU_ASSERT_ERRORS(&e,
		"keys[1].workloads: pod patterns need the pod watch",
		"keys[2].workloads: each entry must be \"cgroup:/<glob>\"",
		"keys[3].workloads: must not be empty");
	CU_ASSERT_EQUAL(keys_authenticate(ks, "abc", 3, 0, &who), KEYS_AUTH_OK);
	CU_ASSERT_STRING_EQUAL(who.workloads, "cgroup:/kubepods/pod1*\ncgroup:/agents/a");
	CU_ASSERT_TRUE(keys_workload_allows(who.workloads, "/kubepods/pod1/c1"));
	CU_ASSERT_TRUE(keys_workload_allows(who.workloads, "/agents/a"));
	CU_ASSERT_FALSE(keys_workload_allows(who.workloads, "/agents/ab"));
	CU_ASSERT_FALSE(keys_workload_allows(who.workloads, "/kubepods/pod2/c1"));
	CU_ASSERT_FALSE(keys_workload_allows(who.workloads, NULL));
	CU_ASSERT_TRUE(keys_workload_allows("", NULL));
	keys_free(ks);

	/* Keyless workloads: first match in config order; the identity is "wl:<name>". */
	CU_ASSERT_EQUAL(parse_keys(
		"{\"teams\": [{\"name\": \"ml\", \"policy\": \"tp\"}], \"workloads\": ["
		" {\"name\": \"agents\", \"cgroup\": \"/agents/*\", \"policy\": \"p\", \"team\": \"ml\"},"
		" {\"name\": \"all\", \"cgroup\": \"/*\", \"team\": \"ml\"},"
		" {\"name\": \"agents\", \"cgroup\": \"/x\", \"policy\": \"p\"},"
		" {\"name\": \"nop\", \"cgroup\": \"/x\"},"
		" {\"name\": \"rel\", \"cgroup\": \"x\", \"policy\": \"p\"},"
		" {\"name\": \"pod\", \"pod\": \"ns/a\", \"cgroup\": \"/p\", \"policy\": \"p\"}]}",
		NULL, &ks, &e), -EINVAL);
	CU_ASSERT_ERRORS(&e,
		"workloads[2].name: workload \"agents\" is defined twice",
		"workloads[3].policy: required for a workload without a team",
		"workloads[4].cgroup: must be a glob of a cgroup path",
		"workloads[5].pod: give \"cgroup\" or \"pod\", not both");
	CU_ASSERT_EQUAL(keys_workload_count(ks), 2);
	CU_ASSERT_EQUAL(keys_workload_identity(ks, "/agents/a1", &who), 0);
	CU_ASSERT_STRING_EQUAL(who.id, "wl:agents");
	CU_ASSERT_STRING_EQUAL(who.policy, "p");
	CU_ASSERT_STRING_EQUAL(who.team_policy, "tp");
	CU_ASSERT_EQUAL(keys_workload_identity(ks, "/system.slice/x", &who), 0);
	CU_ASSERT_STRING_EQUAL(who.id, "wl:all");
	CU_ASSERT_STRING_EQUAL(who.policy, "");
	CU_ASSERT_EQUAL(keys_workload_identity(ks, NULL, &who), -ENOENT);
	keys_free(ks);
}

/* A stand-in for the pod watch's table: /kubepods/podA... is agents/agent-1 (app=agent,
 * tier=x), /kubepods/podB... is agents/web-1 (app=web); the rest is no pod. */
static int pods_asked;
static bool fake_pod_of(void *arg, const char *cg, struct keys_pod *out)
{
	(void)arg;
	pods_asked++;
	memset(out, 0, sizeof(*out));
	snprintf(out->ns, sizeof(out->ns), "agents");
	if (!strncmp(cg, "/kubepods/podA", 14) && (cg[14] == '/' || !cg[14])) {
		snprintf(out->name, sizeof(out->name), "agent-1");
		snprintf(out->labels, sizeof(out->labels), "app=agent\ntier=x");
		return true;
	}
	if (!strncmp(cg, "/kubepods/podB", 14) && (cg[14] == '/' || !cg[14])) {
		snprintf(out->name, sizeof(out->name), "web-1");
		snprintf(out->labels, sizeof(out->labels), "app=web\nxapp=agent");
		return true;
	}
	return false;
}

/* "pod:" patterns: checked, refused without the pod watch, matched by namespace and name glob
 * or by every label pair of a selector, through the registered lookup (asked once per call);
 * with no lookup registered (the watch stopped) they match nothing. */
static void test_pod_workloads(void)
{
	static const char *const good[] = { "pod:agents/agent-*", "pod:*/web-1", "pod:ns/app=agent",
		"pod:ns/app.kubernetes.io/name=agent,tier=x", "pod:ns/app=", NULL };
	static const char *const bad[] = { "pod:", "pod:ns", "pod:/x", "pod:NS/x", "pod:ns/",
		"pod:ns/Agent", "pod:ns/app=a b", "pod:ns/app=a,", "pod:ns/=a", "pod:ns/a=b,c",
		"pod:ns/a=1,b=2,c=3,d=4,e=5,f=6,g=7,h=8,i=9", NULL };
	struct config_errors e;
	struct keystore *ks;
	struct key_identity who;
	char out[KEYS_WORKLOADS_SIZE];
	const char *why = NULL;
	cJSON *a;

	for (size_t i = 0; good[i]; i++)
		CU_ASSERT_TRUE(keys_valid_workload(good[i]));
	for (size_t i = 0; bad[i]; i++)
		CU_ASSERT_FALSE(keys_valid_workload(bad[i]));

	a = cJSON_Parse("[\"pod:agents/agent-*\"]");
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	CU_ASSERT_EQUAL(keys_workloads_from_json(a, false, out, &why), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "pod watch"));
	CU_ASSERT_EQUAL(keys_workloads_from_json(a, true, out, &why), 0);
	CU_ASSERT_STRING_EQUAL(out, "pod:agents/agent-*");
	cJSON_Delete(a);

	/* No lookup registered: nothing is a pod. */
	CU_ASSERT_FALSE(keys_pod_lookup_running());
	CU_ASSERT_FALSE(keys_workload_allows("pod:agents/agent-*", "/kubepods/podA/c1"));
	keys_set_pod_lookup(fake_pod_of, &pods_asked);
	CU_ASSERT_TRUE(keys_pod_lookup_running());
	CU_ASSERT_TRUE(keys_workload_allows("pod:agents/agent-*", "/kubepods/podA/c1"));
	CU_ASSERT_TRUE(keys_workload_allows("pod:agents/agent-*", "/kubepods/podA"));
	CU_ASSERT_FALSE(keys_workload_allows("pod:agents/agent-*", "/kubepods/podB/c1"));
	CU_ASSERT_FALSE(keys_workload_allows("pod:other/agent-*", "/kubepods/podA/c1"));
	CU_ASSERT_FALSE(keys_workload_allows("pod:agents/agent-*", "/kubepods/podC/c1"));
	CU_ASSERT_FALSE(keys_workload_allows("pod:agents/agent-*", NULL));
	CU_ASSERT_TRUE(keys_workload_allows("pod:agents/app=agent", "/kubepods/podA/c1"));
	CU_ASSERT_TRUE(keys_workload_allows("pod:agents/tier=x,app=agent", "/kubepods/podA/c1"));
	CU_ASSERT_FALSE(keys_workload_allows("pod:agents/app=agent,tier=y", "/kubepods/podA/c1"));
	/* A whole label, not a substring of another ("xapp=agent"). */
	CU_ASSERT_FALSE(keys_workload_allows("pod:agents/app=agent", "/kubepods/podB/c1"));
	CU_ASSERT_FALSE(keys_workload_allows("pod:agents/app=agen", "/kubepods/podA/c1"));
	/* Asked once per call whatever the number of pod patterns. */
	pods_asked = 0;
	CU_ASSERT_TRUE(keys_workload_allows("pod:x/a\npod:y/b\npod:agents/web-*",
					    "/kubepods/podB/c1"));
	CU_ASSERT_EQUAL(pods_asked, 1);
	/* A cgroup pattern still matches without asking. */
	pods_asked = 0;
	CU_ASSERT_TRUE(keys_workload_allows("cgroup:/kubepods/*\npod:x/a", "/kubepods/podB/c1"));
	CU_ASSERT_EQUAL(pods_asked, 0);

	/* Config: accepted with the pod watch, for keys and keyless workloads. */
	CU_ASSERT_EQUAL(parse_keys(
		"{\"enforcement\": {\"kubernetes\": {}},"
		" \"keys\": [{\"id\": \"w\", \"hash\": \"" H_ABC "\", \"policy\": \"p\","
		" \"workloads\": [\"pod:agents/app=agent\"]}],"
		" \"workloads\": [{\"name\": \"web\", \"pod\": \"agents/web-*\", \"policy\": \"p\"},"
		" {\"name\": \"bad\", \"pod\": \"agents\", \"policy\": \"p\"}]}",
		NULL, &ks, &e), -EINVAL);
	CU_ASSERT_ERRORS(&e, "workloads[1].pod: must be \"<namespace>/<name glob>\"");
	CU_ASSERT_EQUAL(keys_authenticate(ks, "abc", 3, 0, &who), KEYS_AUTH_OK);
	CU_ASSERT_TRUE(keys_workload_allows(who.workloads, "/kubepods/podA/c1"));
	CU_ASSERT_FALSE(keys_workload_allows(who.workloads, "/kubepods/podB/c1"));
	CU_ASSERT_EQUAL(keys_workload_identity(ks, "/kubepods/podB/c1", &who), 0);
	CU_ASSERT_STRING_EQUAL(who.id, "wl:web");
	CU_ASSERT_EQUAL(keys_workload_identity(ks, "/kubepods/podA/c1", &who), -ENOENT);
	keys_free(ks);

	/* Enforcement off: the pod watch does not run, pod workloads are refused. */
	CU_ASSERT_EQUAL(parse_keys(
		"{\"enforcement\": {\"enabled\": false, \"kubernetes\": {}},"
		" \"workloads\": [{\"name\": \"web\", \"pod\": \"agents/web-*\", \"policy\": \"p\"}]}",
		NULL, &ks, &e), -EINVAL);
	CU_ASSERT_ERRORS(&e, "workloads[0].pod: pod workloads need the pod watch");
	keys_free(ks);

	keys_clear_pod_lookup(NULL);	/* not the registered one: stays */
	CU_ASSERT_TRUE(keys_pod_lookup_running());
	keys_clear_pod_lookup(&pods_asked);
	CU_ASSERT_FALSE(keys_pod_lookup_running());
	CU_ASSERT_FALSE(keys_workload_allows("pod:agents/agent-*", "/kubepods/podA/c1"));
}

/* Every field of a as in b (strings up to their NUL). */
static void assert_same_identity(const struct key_identity *a, const struct key_identity *b)
{
	CU_ASSERT_STRING_EQUAL(a->id, b->id);
	CU_ASSERT_STRING_EQUAL(a->name, b->name);
	CU_ASSERT_STRING_EQUAL(a->team, b->team);
	CU_ASSERT_STRING_EQUAL(a->policy, b->policy);
	CU_ASSERT_STRING_EQUAL(a->team_policy, b->team_policy);
	CU_ASSERT_EQUAL(a->expires, b->expires);
	CU_ASSERT_STRING_EQUAL(a->workloads, b->workloads);
	CU_ASSERT_STRING_EQUAL(a->workload, b->workload);
}

/* A call keeps its caller by copying the identity's strings, not the whole struct: every
 * field arrives, and garbage past a string's end in the destination changes nothing. */
static void test_identity_copy(void)
{
	static const struct key_identity none;
	struct key_identity src, dst;

	memset(&src, 0, sizeof(src));
	strcpy(src.id, "k1");
	strcpy(src.name, "Key one");
	strcpy(src.team, "t");
	strcpy(src.policy, "p");
	strcpy(src.team_policy, "tp");
	src.expires = 1234;
	strcpy(src.workloads, "cgroup:/a/*\ncgroup:/b");
	strcpy(src.workload, "/a/agent");
	memset(&dst, 'x', sizeof(dst));
	key_identity_copy(&dst, &src);
	assert_same_identity(&dst, &src);
	CU_ASSERT_STRING_EQUAL(dst.workloads, "cgroup:/a/*\ncgroup:/b");
	key_identity_copy(&dst, NULL);
	assert_same_identity(&dst, &none);
}

CU_MAIN("keys", NULL, NULL,
	{ "generate: format and entropy", test_generate },
	{ "hash text form", test_hash_text },
	{ "lookup of many keys", test_lookup },
	{ "full-digest compare in one bucket", test_full_digest_compare },
	{ "deletes inside slot clusters", test_delete_clusters },
	{ "expired, disabled, unknown", test_expired_disabled },
	{ "a connection's memo follows every change", test_memo },
	{ "run-time add, update, revoke, teams", test_runtime_changes },
	{ "failure tracker: window", test_tracker_window },
	{ "failure tracker: escalation and decay", test_tracker_escalation },
	{ "failure tracker: addresses", test_tracker_addresses },
	{ "failure tracker: eviction, bounded", test_tracker_eviction },
	{ "config sections", test_config },
	{ "keys bound to workloads; keyless workloads", test_workloads },
	{ "pod workload patterns: names, labels, the pod watch", test_pod_workloads },
	{ "an identity copied string by string", test_identity_copy })
