/* keys: virtual keys and teams, their tables and changes (authentication: keys_auth.c). */
#include "govern/keys_int.h"

#include "base/config.h"
#include "base/log.h"
#include "govern/peer_guard.h"
#include "govern/policy.h"
#include "base/alloc.h"
#include "base/hex.h"
#include "base/htab.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#define KEY_ALIGN 16                   /* as malloc's */

/* keys_pack: a block of keys, one after another. */
#define KEY_BLOCK_SIZE (128 * 1024)
struct key_block {
	struct key_block *next;
	size_t used;                   /* bytes from the block's start */
};
_Static_assert(sizeof(struct key) + 3 * KEYS_ID_SIZE + KEYS_NAME_SIZE + KEYS_WORKLOADS_SIZE + 64 <
	       KEY_BLOCK_SIZE - sizeof(struct key_block), "the largest key fits a block");

_Atomic uint64_t keys_generation = 1;

static void changed(void)
{
	atomic_fetch_add_explicit(&keys_generation, 1, memory_order_relaxed);
}

static const struct peer_guard_limits default_limits = {
	.max_failures = 10,
	.window_ms = 60 * 1000,
	.block_ms = 30 * 1000,
	.max_block_ms = 15 * 60 * 1000,
	.capacity = 8192,
};

/* ---- the three tables ---- */

static uint64_t str_key_hash(const struct htab *t, const void *key) { return htab_hash_str(t, key); }

static bool id_eq(const struct htab_node *n, const void *key)
{
	return !strcmp(htab_entry(n, struct key, by_id)->text, key);
}

/* A digest is found by the whole digest, compared in constant time. */
static uint64_t digest_hash(const struct htab *t, const void *key)
{
	return htab_hash_bytes(t, key, KEYS_HASH_LEN);
}

static bool digest_eq(const struct htab_node *n, const void *key)
{
	return !CRYPTO_memcmp(htab_entry(n, struct key, by_hash)->hash, key, KEYS_HASH_LEN);
}

static bool team_eq(const struct htab_node *n, const void *key)
{
	return !strcmp(htab_entry(n, struct team, hn)->name, key);
}

static const struct htab_type id_type = { str_key_hash, id_eq };
static const struct htab_type digest_type = { digest_hash, digest_eq };
static const struct htab_type team_type = { str_key_hash, team_eq };

static struct key *find_by_id(const struct keystore *ks, const char *id)
{
	struct htab_node *n = htab_find(&ks->by_id, id);

	return n ? htab_entry(n, struct key, by_id) : NULL;
}

struct key *keys_find_by_hash(const struct keystore *ks, const unsigned char *d)
{
	struct htab_node *n = htab_find(&ks->by_hash, d);

	return n ? htab_entry(n, struct key, by_hash) : NULL;
}

static struct team *find_team(const struct keystore *ks, const char *name)
{
	struct htab_node *n = htab_find(&ks->teams, name);

	return n ? htab_entry(n, struct team, hn) : NULL;
}

/* ---- life cycle ---- */

int keys_new(const struct peer_guard_limits *limits, struct keystore **out)
{
	struct keystore *ks = xcalloc(1, sizeof(*ks));
	int rc;

	*out = NULL;
	pthread_rwlock_init(&ks->lock, NULL);
	if ((rc = peer_guard_new(limits ? limits : &default_limits, &ks->peers)) ||
	    (rc = htab_init(&ks->by_id, &id_type)) || (rc = htab_init(&ks->by_hash, &digest_type)) ||
	    (rc = htab_init(&ks->teams, &team_type)))
		goto out;
	/* Fetch SHA-256 once: the implicit fetch inside one-shot digests costs on every call. */
	ks->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	rc = -ENOMEM;
	if (!ks->sha256)
		goto out;
	changed();
	*out = ks;
	ks = NULL;
	rc = 0;
out:
	keys_free(ks);
	return rc;
}

static void key_free(struct key *k)
{
	OPENSSL_cleanse(k->hash, sizeof(k->hash));
	if (!k->packed)
		free(k);
}

static void free_key(struct htab_node *n, void *arg)
{
	key_free(htab_entry(n, struct key, by_id));
}

void keys_pack(struct keystore *ks, bool on) { ks->packing = on; }

static void free_team(struct htab_node *n, void *arg)
{
	free(htab_entry(n, struct team, hn));
}

void keys_free(struct keystore *ks)
{
	if (!ks)
		return;
	changed();
	if (ks->by_id.buckets)
		htab_drain(&ks->by_id, free_key, NULL);
	if (ks->teams.buckets)
		htab_drain(&ks->teams, free_team, NULL);
	htab_fini(&ks->by_id);
	htab_fini(&ks->by_hash);
	htab_fini(&ks->teams);
	for (struct key_block *b = ks->blocks, *next; b; b = next) {
		next = b->next;
		free(b);
	}
	peer_guard_free(ks->peers);
	free(ks->wl);
	EVP_MD_free(ks->sha256);
	pthread_rwlock_destroy(&ks->lock);
	free(ks);
}

/* ---- key material ---- */

int keys_generate(char *out, size_t len)
{
	unsigned char raw[32];
	unsigned char b64[48];  /* EVP_EncodeBlock: 4 * ceil(32 / 3) = 44, + NUL */
	int n, rc = 0;

	if (len < KEYS_TOKEN_SIZE)
		return -ENOSPC;
	if (RAND_bytes(raw, sizeof(raw)) != 1) {
		rc = -EIO;
		goto out;
	}
	n = EVP_EncodeBlock(b64, raw, sizeof(raw));
	/* base64 -> base64url, without the padding */
	while (n > 0 && b64[n - 1] == '=')
		n--;
	for (int i = 0; i < n; i++) {
		if (b64[i] == '+')
			b64[i] = '-';
		else if (b64[i] == '/')
			b64[i] = '_';
	}
	memcpy(out, KEYS_PREFIX, sizeof(KEYS_PREFIX) - 1);
	memcpy(out + sizeof(KEYS_PREFIX) - 1, b64, (size_t)n);
	out[sizeof(KEYS_PREFIX) - 1 + (size_t)n] = '\0';
out:
	OPENSSL_cleanse(raw, sizeof(raw));
	OPENSSL_cleanse(b64, sizeof(b64));
	return rc;
}

int keys_generate_id(char *out, size_t len)
{
	unsigned char raw[4];

	if (len < 11)
		return -ENOSPC;
	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return -EIO;
	snprintf(out, len, "k_%02x%02x%02x%02x", raw[0], raw[1], raw[2], raw[3]);
	return 0;
}

int keys_hash(const char *key, size_t len, unsigned char out[KEYS_HASH_LEN])
{
	unsigned int n = 0;

	if (EVP_Digest(key, len, out, &n, EVP_sha256(), NULL) != 1 || n != KEYS_HASH_LEN)
		return -EIO;
	return 0;
}

/* A context a digest, not one a keystore: loops on several threads may authenticate against
 * one keystore at once, and a connection hashes only its first key (keys_authenticate_memo). */
int keys_hash_with(const struct keystore *ks, const char *key, size_t len, unsigned char *out)
{
	unsigned int n = 0;

	if (EVP_Digest(key, len, out, &n, ks->sha256, NULL) != 1 || n != KEYS_HASH_LEN)
		return -EIO;
	return 0;
}

void keys_hash_format(const unsigned char hash[KEYS_HASH_LEN], char out[KEYS_HASH_TEXT_SIZE])
{
	static const char hex[] = "0123456789abcdef";

	memcpy(out, "sha256:", 7);
	for (int i = 0; i < KEYS_HASH_LEN; i++) {
		out[7 + 2 * i] = hex[hash[i] >> 4];
		out[8 + 2 * i] = hex[hash[i] & 15];
	}
	out[7 + 2 * KEYS_HASH_LEN] = '\0';
}

int keys_hash_parse(const char *text, unsigned char out[KEYS_HASH_LEN])
{
	if (strncmp(text, "sha256:", 7) != 0 || strlen(text) != 7 + 2 * KEYS_HASH_LEN)
		return -EINVAL;
	for (int i = 0; i < KEYS_HASH_LEN; i++) {
		int hi = hex_digit(text[7 + 2 * i]), lo = hex_digit(text[8 + 2 * i]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

/* ---- validation ---- */

bool keys_valid_ident(const char *s)
{
	size_t n = strnlen(s, KEYS_ID_SIZE);

	if (n == 0 || n >= KEYS_ID_SIZE)
		return false;
	for (; *s; s++) {
		if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-' && *s != '.')
			return false;
	}
	return true;
}

bool keys_valid_name(const char *s)
{
	size_t n = strnlen(s, KEYS_NAME_SIZE);

	if (n == 0 || n >= KEYS_NAME_SIZE)
		return false;
	for (; *s; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	}
	return true;
}

/* Checks a record and resolves its team. */
static int check_record(const struct keystore *ks, const struct key_record *k, struct team **team)
{
	*team = NULL;
	if (!keys_valid_ident(k->id) || !keys_valid_name(k->name) || k->created < 0 || k->expires < 0)
		return -EINVAL;
	if (strnlen(k->team, KEYS_ID_SIZE) >= KEYS_ID_SIZE ||
	    strnlen(k->policy, KEYS_ID_SIZE) >= KEYS_ID_SIZE)
		return -EINVAL;
	if (k->policy[0] && !keys_valid_ident(k->policy))
		return -EINVAL;
	if (k->team[0]) {
		if (!keys_valid_ident(k->team))
			return -EINVAL;
		*team = find_team(ks, k->team);
		if (!*team)
			return -ENOENT;
	} else if (!k->policy[0]) {
		return -EINVAL;   /* nothing would govern this key */
	}
	return 0;
}

/* ---- teams ---- */

static int keys_team_set_locked(struct keystore *ks, const char *name, const char *policy)
{
	struct team *t;

	if (!name || !policy || !keys_valid_ident(name) || !keys_valid_ident(policy))
		return -EINVAL;
	t = find_team(ks, name);
	if (!t) {
		t = xcalloc(1, sizeof(*t));
		strcpy(t->name, name);
		htab_insert(&ks->teams, &t->hn, t->name);
	}
	strcpy(t->policy, policy);
	changed();
	return 0;
}

int keys_team_set(struct keystore *ks, const char *name, const char *policy)
{
	int rc;

	keys_wr(ks);
	rc = keys_team_set_locked(ks, name, policy);
	keys_unlock(ks);
	return rc;
}

static int keys_team_delete_locked(struct keystore *ks, const char *name)
{
	struct team *t = find_team(ks, name);

	if (!t)
		return -ENOENT;
	if (t->nkeys)
		return -EBUSY;
	htab_remove(&ks->teams, &t->hn);
	free(t);
	changed();
	return 0;
}

int keys_team_delete(struct keystore *ks, const char *name)
{
	int rc;

	keys_wr(ks);
	rc = keys_team_delete_locked(ks, name);
	keys_unlock(ks);
	return rc;
}

const char *keys_team_policy(const struct keystore *ks, const char *name)
{
	const struct team *t = find_team(ks, name);

	return t ? t->policy : NULL;
}

bool keys_team_policy_copy(const struct keystore *ks, const char *name,
			   char out[KEYS_ID_SIZE])
{
	const struct team *t;

	keys_rd(ks);
	if ((t = find_team(ks, name)))
		memcpy(out, t->policy, KEYS_ID_SIZE);
	keys_unlock(ks);
	return t != NULL;
}

/* ---- keyless workloads ---- */

static int keys_workload_add_locked(struct keystore *ks, const struct keys_workload *w)
{
	struct keys_workload *n;

	if (ks->nwl >= KEYS_WORKLOADS_ENTRIES_MAX)
		return -ENOSPC;
	if (!keys_valid_ident(w->name) || (w->team[0] && !keys_team_policy(ks, w->team)) ||
	    (!w->policy[0] && !w->team[0]) || !keys_valid_workload(w->pattern))
		return -EINVAL;
	for (size_t i = 0; i < ks->nwl; i++)
		if (strcmp(ks->wl[i].name, w->name) == 0)
			return -EEXIST;
	n = realloc(ks->wl, (ks->nwl + 1) * sizeof(*n));
	if (!n)
		return -ENOMEM;
	ks->wl = n;
	ks->wl[ks->nwl++] = *w;
	return 0;
}

int keys_workload_add(struct keystore *ks, const struct keys_workload *w)
{
	int rc;

	keys_wr(ks);
	rc = keys_workload_add_locked(ks, w);
	keys_unlock(ks);
	return rc;
}

size_t keys_workload_count(const struct keystore *ks) { return ks->nwl; }
const struct keys_workload *keys_workload_at(const struct keystore *ks, size_t i)
{
	return i < ks->nwl ? &ks->wl[i] : NULL;
}

static int keys_workload_identity_locked(const struct keystore *ks, const char *cgroup_path,
					 struct key_identity *who)
{
	const char *tp;

	if (!cgroup_path)
		return -ENOENT;
	for (size_t i = 0; i < ks->nwl; i++) {
		const struct keys_workload *w = &ks->wl[i];

		if (!keys_workload_allows(w->pattern, cgroup_path))
			continue;
		memset(who, 0, sizeof(*who));
		snprintf(who->id, sizeof(who->id), "%s%s", KEYS_WORKLOAD_ID_PREFIX, w->name);
		snprintf(who->name, sizeof(who->name), "%s", w->name);
		memcpy(who->policy, w->policy, sizeof(who->policy));
		if (w->team[0] && (tp = keys_team_policy(ks, w->team))) {
			memcpy(who->team, w->team, sizeof(who->team));
			snprintf(who->team_policy, sizeof(who->team_policy), "%s", tp);
		}
		return 0;
	}
	return -ENOENT;
}

int keys_workload_identity(const struct keystore *ks, const char *cgroup_path,
			   struct key_identity *who)
{
	int rc;

	keys_rd(ks);
	rc = keys_workload_identity_locked(ks, cgroup_path, who);
	keys_unlock(ks);
	return rc;
}

/* ---- keys ---- */

/* size bytes (a multiple of the alignment) from the current block, or NULL when a new one
 * cannot be had. */
static struct key *pack_alloc(struct keystore *ks, size_t size)
{
	struct key_block *b = ks->blocks;

	if (!b || b->used + size > KEY_BLOCK_SIZE) {
		b = malloc(KEY_BLOCK_SIZE);
		if (!b)
			return NULL;
		b->next = ks->blocks;
		b->used = sizeof(*b);
		ks->blocks = b;
	}
	b->used += size;
	return (struct key *)((char *)b + b->used - size);
}

/* A stored key built from a checked record. */
static struct key *key_new(struct keystore *ks, const struct key_record *r, struct team *team)
{
	/* A key named by its id (the config's default) keeps one copy: name_off 0 is the id. */
	bool named_id = !strcmp(r->name, r->id);
	size_t lid = strlen(r->id), lname = named_id ? 0 : strlen(r->name), lpol = strlen(r->policy);
	size_t lwl = strnlen(r->workloads, sizeof(r->workloads) - 1);
	size_t size = offsetof(struct key, text) + lid + lname + lpol + lwl + 3 + !named_id;
	bool packed = ks->packing;
	struct key *k = NULL;

	size = (size + KEY_ALIGN - 1) & ~(size_t)(KEY_ALIGN - 1);
	if (packed && !(k = pack_alloc(ks, size)))
		packed = false;
	if (!k)
		k = malloc(size);
	if (!k)
		return NULL;
	memset(k, 0, size);
	k->packed = packed;
	memcpy(k->hash, r->hash, KEYS_HASH_LEN);
	k->expires = r->expires;
	k->created = r->created;
	k->disabled = r->disabled;
	k->team = team;
	k->name_off = named_id ? 0 : (uint8_t)(lid + 1);
	k->policy_off = (uint8_t)(lid + 1 + (named_id ? 0 : lname + 1));
	memcpy(k->text, r->id, lid);
	if (!named_id)
		memcpy(k->text + k->name_off, r->name, lname);
	memcpy(k->text + k->policy_off, r->policy, lpol);
	k->workloads_off = (uint16_t)(k->policy_off + lpol + 1);
	memcpy(k->text + k->workloads_off, r->workloads, lwl);
	return k;
}

static void key_link(struct keystore *ks, struct key *k)
{
	changed();
	if (k->team)
		k->team->nkeys++;
	htab_insert(&ks->by_id, &k->by_id, k->text);
	htab_insert(&ks->by_hash, &k->by_hash, k->hash);
}

static void key_unlink(struct keystore *ks, struct key *k)
{
	changed();
	htab_remove(&ks->by_hash, &k->by_hash);
	htab_remove(&ks->by_id, &k->by_id);
	if (k->team)
		k->team->nkeys--;
}

static int keys_add_locked(struct keystore *ks, const struct key_record *k)
{
	struct team *team;
	struct key *nk;
	int rc = check_record(ks, k, &team);

	if (rc)
		return rc;
	if (find_by_id(ks, k->id) || keys_find_by_hash(ks, k->hash))
		return -EEXIST;
	nk = key_new(ks, k, team);
	if (!nk)
		return -ENOMEM;
	key_link(ks, nk);
	return 0;
}

int keys_add(struct keystore *ks, const struct key_record *k)
{
	int rc;

	keys_wr(ks);
	rc = keys_add_locked(ks, k);
	keys_unlock(ks);
	return rc;
}

static int keys_update_locked(struct keystore *ks, const struct key_record *k)
{
	struct key *cur, *other, *nk;
	struct team *team;
	int rc = check_record(ks, k, &team);

	if (rc)
		return rc;
	cur = find_by_id(ks, k->id);
	if (!cur)
		return -ENOENT;
	other = keys_find_by_hash(ks, k->hash);
	if (other && other != cur)
		return -EEXIST;
	nk = key_new(ks, k, team);
	if (!nk)
		return -ENOMEM;
	nk->from_config = cur->from_config;
	key_unlink(ks, cur);
	key_free(cur);
	key_link(ks, nk);
	return 0;
}

int keys_update(struct keystore *ks, const struct key_record *k)
{
	int rc;

	keys_wr(ks);
	rc = keys_update_locked(ks, k);
	keys_unlock(ks);
	return rc;
}

static int keys_set_disabled_locked(struct keystore *ks, const char *id, bool disabled)
{
	struct key *k = find_by_id(ks, id);

	if (!k)
		return -ENOENT;
	k->disabled = disabled;
	changed();
	return 0;
}

int keys_set_disabled(struct keystore *ks, const char *id, bool disabled)
{
	int rc;

	keys_wr(ks);
	rc = keys_set_disabled_locked(ks, id, disabled);
	keys_unlock(ks);
	return rc;
}

static int keys_delete_locked(struct keystore *ks, const char *id)
{
	struct key *k = find_by_id(ks, id);

	if (!k)
		return -ENOENT;
	key_unlink(ks, k);
	key_free(k);
	return 0;
}

int keys_delete(struct keystore *ks, const char *id)
{
	int rc;

	keys_wr(ks);
	rc = keys_delete_locked(ks, id);
	keys_unlock(ks);
	return rc;
}

static int keys_get_locked(const struct keystore *ks, const char *id, struct key_record *out)
{
	const struct key *k = find_by_id(ks, id);

	if (!k)
		return -ENOENT;
	memset(out, 0, sizeof(*out));
	memcpy(out->hash, k->hash, KEYS_HASH_LEN);
	out->expires = k->expires;
	out->created = k->created;
	out->disabled = k->disabled;
	strcpy(out->id, k->text);
	strcpy(out->name, k->text + k->name_off);
	strcpy(out->policy, k->text + k->policy_off);
	strcpy(out->workloads, k->text + k->workloads_off);
	if (k->team)
		strcpy(out->team, k->team->name);
	return 0;
}

int keys_get(const struct keystore *ks, const char *id, struct key_record *out)
{
	int rc;

	keys_rd(ks);
	rc = keys_get_locked(ks, id, out);
	keys_unlock(ks);
	return rc;
}

void keys_mark_config(struct keystore *ks)
{
	struct htab_iter it;

	keys_wr(ks);
	it = htab_iter(&ks->by_id);
	for (struct htab_node *n; (n = htab_next(&it));)
		htab_entry(n, struct key, by_id)->from_config = true;
	it = htab_iter(&ks->teams);
	for (struct htab_node *n; (n = htab_next(&it));)
		htab_entry(n, struct team, hn)->from_config = true;
	keys_unlock(ks);
}

void keys_keep_config(struct keystore *ks)
{
	struct htab_iter it;

	keys_wr(ks);
	it = htab_iter(&ks->by_id);

	for (struct htab_node *n; (n = htab_next(&it));) {
		struct key *k = htab_entry(n, struct key, by_id);

		if (!k->from_config) {
			key_unlink(ks, k);
			key_free(k);
		}
	}
	/* Their keys are gone: a config key names only the config's teams. */
	it = htab_iter(&ks->teams);
	for (struct htab_node *n; (n = htab_next(&it));) {
		struct team *t = htab_entry(n, struct team, hn);

		if (!t->from_config) {
			htab_remove(&ks->teams, &t->hn);
			free(t);
			changed();
		}
	}
	keys_unlock(ks);
}

bool keys_from_config(const struct keystore *ks, const char *id)
{
	const struct key *k;
	bool yes;

	keys_rd(ks);
	k = find_by_id(ks, id);
	yes = k && k->from_config;
	keys_unlock(ks);
	return yes;
}

bool keys_team_from_config(const struct keystore *ks, const char *name)
{
	const struct team *t;
	bool yes;

	keys_rd(ks);
	t = find_team(ks, name);
	yes = t && t->from_config;
	keys_unlock(ks);
	return yes;
}

size_t keys_count(const struct keystore *ks)
{
	size_t n;

	keys_rd(ks);
	n = htab_count(&ks->by_id);
	keys_unlock(ks);
	return n;
}

int keys_foreach(const struct keystore *ks, int (*fn)(void *arg, const struct key_record *k),
		 void *arg)
{
	struct key_record r = { 0 };
	struct htab_iter it;
	int rc = 0;

	keys_rd(ks);
	it = htab_iter(&ks->by_id);
	for (struct htab_node *n; !rc && (n = htab_next(&it));) {
		const struct key *k = htab_entry(n, struct key, by_id);

		if (keys_get_locked(ks, k->text, &r) == 0)
			rc = fn(arg, &r);
	}
	keys_unlock(ks);
	OPENSSL_cleanse(r.hash, sizeof(r.hash));
	return rc;
}

int keys_team_foreach(const struct keystore *ks,
		      int (*fn)(void *arg, const char *name, const char *policy, size_t nkeys),
		      void *arg)
{
	struct htab_iter it;
	int rc = 0;

	keys_rd(ks);
	it = htab_iter(&ks->teams);
	for (struct htab_node *n; !rc && (n = htab_next(&it));) {
		const struct team *t = htab_entry(n, struct team, hn);

		rc = fn(arg, t->name, t->policy, t->nkeys);
	}
	keys_unlock(ks);
	return rc;
}

void keys_carry_runtime(struct keystore *to, const struct keystore *from)
{
	const struct keystore *first = (const void *)to < (const void *)from ? to : from;
	struct key_record r = { 0 };
	struct htab_iter it;
	int rc;

	/* Both locked, always in the order of their addresses: a reload back and forth carries
	 * each way. */
	if (first == to) {
		keys_wr(to);
		keys_rd(from);
	} else {
		keys_rd(from);
		keys_wr(to);
	}
	/* Teams first, so the keys find them. The config's, or one it now defines, wins. */
	it = htab_iter(&from->teams);
	for (struct htab_node *n; (n = htab_next(&it));) {
		const struct team *t = htab_entry(n, struct team, hn);

		if (t->from_config || find_team(to, t->name))
			continue;
		if (keys_team_set_locked(to, t->name, t->policy))
			log_warn("reload: team %s (admin API) could not be kept", t->name);
	}
	it = htab_iter(&from->by_id);
	for (struct htab_node *n; (n = htab_next(&it));) {
		const struct key *k = htab_entry(n, struct key, by_id);

		if (k->from_config || keys_get_locked(from, k->text, &r))
			continue;
		rc = keys_add_locked(to, &r);
		if (rc == -EEXIST)
			log_warn("reload: key %s (admin API) is now also in the config: the "
				 "config's wins", r.id);
		else if (rc)
			log_warn("reload: key %s (admin API) is no longer usable (%s): its team or "
				 "policy went away", r.id, strerror(-rc));
	}
	OPENSSL_cleanse(r.hash, sizeof(r.hash));
	keys_unlock(from);
	keys_unlock(to);
}
