/* keys: virtual keys, teams, authentication and the per-peer failure tracker. */
#include "govern/keys.h"

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
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

struct team {
	struct htab_node hn;           /* in ks->teams, by name */
	char name[KEYS_ID_SIZE];
	char policy[KEYS_ID_SIZE];
	size_t nkeys;
	bool from_config;
};

/* A stored key: what authentication checks (the digest chain's node, the digest, expiry, the
 * flags) in its first 64 bytes, the strings packed right after the rest. No cache-line
 * alignment: 16 bytes a key (100k keys: 1.5 MB) for a lookup that hashes the presented key
 * with SHA-256 anyway. */
struct key {
	struct htab_node by_hash;
	unsigned char hash[KEYS_HASH_LEN];
	int64_t expires;
	bool disabled;
	bool from_config;              /* keys_mark_config */
	bool packed;                   /* in a block of ks->blocks (keys_pack), not its own */
	uint8_t name_off, policy_off;  /* into text, which starts with the id (name_off 0: the
					* name is the id) */
	uint16_t workloads_off;
	struct team *team;
	int64_t created;
	struct htab_node by_id;
	char text[];                   /* "id\0name\0policy\0workloads\0" */
};
#define KEY_ALIGN 16                   /* as malloc's */

/* keys_pack: a block of keys, one after another. */
#define KEY_BLOCK_SIZE (128 * 1024)
struct key_block {
	struct key_block *next;
	size_t used;                   /* bytes from the block's start */
};
_Static_assert(sizeof(struct key) + 3 * KEYS_ID_SIZE + KEYS_NAME_SIZE + KEYS_WORKLOADS_SIZE + 64 <
	       KEY_BLOCK_SIZE - sizeof(struct key_block), "the largest key fits a block");

struct keystore {
	struct key_block *blocks;      /* packed keys' memory, newest first */
	bool packing;
	struct htab by_id;             /* keys by id */
	struct htab by_hash;           /* keys by SHA-256 digest: authentication's lookup */
	struct htab teams;             /* by name */
	EVP_MD *sha256;                /* fetched once; read by every thread that hashes */
	struct peer_guard *peers;      /* brute-force hold-off */
	struct keys_workload *wl;      /* keyless workloads, in config order (first match wins) */
	size_t nwl;
};

/* Moved on by every change to any keystore, and by a new or freed one: a memo taken before
 * no longer matches (keys_authenticate_memo). Atomic: the reload thread builds keystores. */
static _Atomic uint64_t generation = 1;

static void changed(void)
{
	atomic_fetch_add_explicit(&generation, 1, memory_order_relaxed);
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

static struct key *find_by_hash(const struct keystore *ks, const unsigned char *d)
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
static int hash_with(const struct keystore *ks, const char *key, size_t len, unsigned char *out)
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

int keys_team_set(struct keystore *ks, const char *name, const char *policy)
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

int keys_team_delete(struct keystore *ks, const char *name)
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

const char *keys_team_policy(const struct keystore *ks, const char *name)
{
	const struct team *t = find_team(ks, name);

	return t ? t->policy : NULL;
}

/* ---- keyless workloads ---- */

int keys_workload_add(struct keystore *ks, const struct keys_workload *w)
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

size_t keys_workload_count(const struct keystore *ks) { return ks->nwl; }
const struct keys_workload *keys_workload_at(const struct keystore *ks, size_t i)
{
	return i < ks->nwl ? &ks->wl[i] : NULL;
}

int keys_workload_identity(const struct keystore *ks, const char *cgroup_path,
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

int keys_add(struct keystore *ks, const struct key_record *k)
{
	struct team *team;
	struct key *nk;
	int rc = check_record(ks, k, &team);

	if (rc)
		return rc;
	if (find_by_id(ks, k->id) || find_by_hash(ks, k->hash))
		return -EEXIST;
	nk = key_new(ks, k, team);
	if (!nk)
		return -ENOMEM;
	key_link(ks, nk);
	return 0;
}

int keys_update(struct keystore *ks, const struct key_record *k)
{
	struct key *cur, *other, *nk;
	struct team *team;
	int rc = check_record(ks, k, &team);

	if (rc)
		return rc;
	cur = find_by_id(ks, k->id);
	if (!cur)
		return -ENOENT;
	other = find_by_hash(ks, k->hash);
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

int keys_set_disabled(struct keystore *ks, const char *id, bool disabled)
{
	struct key *k = find_by_id(ks, id);

	if (!k)
		return -ENOENT;
	k->disabled = disabled;
	changed();
	return 0;
}

int keys_delete(struct keystore *ks, const char *id)
{
	struct key *k = find_by_id(ks, id);

	if (!k)
		return -ENOENT;
	key_unlink(ks, k);
	key_free(k);
	return 0;
}

int keys_get(const struct keystore *ks, const char *id, struct key_record *out)
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

void keys_mark_config(struct keystore *ks)
{
	struct htab_iter it = htab_iter(&ks->by_id);

	for (struct htab_node *n; (n = htab_next(&it));)
		htab_entry(n, struct key, by_id)->from_config = true;
	it = htab_iter(&ks->teams);
	for (struct htab_node *n; (n = htab_next(&it));)
		htab_entry(n, struct team, hn)->from_config = true;
}

void keys_keep_config(struct keystore *ks)
{
	struct htab_iter it = htab_iter(&ks->by_id);

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
}

bool keys_from_config(const struct keystore *ks, const char *id)
{
	const struct key *k = find_by_id(ks, id);

	return k && k->from_config;
}

bool keys_team_from_config(const struct keystore *ks, const char *name)
{
	const struct team *t = find_team(ks, name);

	return t && t->from_config;
}

size_t keys_count(const struct keystore *ks)
{
	return htab_count(&ks->by_id);
}

int keys_foreach(const struct keystore *ks, int (*fn)(void *arg, const struct key_record *k),
		 void *arg)
{
	struct key_record r = { 0 };
	int rc = 0;

	struct htab_iter it = htab_iter(&ks->by_id);

	for (struct htab_node *n; !rc && (n = htab_next(&it));) {
		const struct key *k = htab_entry(n, struct key, by_id);

		if (keys_get(ks, k->text, &r) == 0)
			rc = fn(arg, &r);
	}
	OPENSSL_cleanse(r.hash, sizeof(r.hash));
	return rc;
}

int keys_team_foreach(const struct keystore *ks,
		      int (*fn)(void *arg, const char *name, const char *policy, size_t nkeys),
		      void *arg)
{
	int rc = 0;

	struct htab_iter it = htab_iter(&ks->teams);

	for (struct htab_node *n; !rc && (n = htab_next(&it));) {
		const struct team *t = htab_entry(n, struct team, hn);

		rc = fn(arg, t->name, t->policy, t->nkeys);
	}
	return rc;
}

/* ---- authentication ---- */

const char *keys_auth_name(enum keys_auth r)
{
	switch (r) {
	case KEYS_AUTH_OK:        return "ok";
	case KEYS_AUTH_MALFORMED: return "malformed";
	case KEYS_AUTH_UNKNOWN:   return "unknown";
	case KEYS_AUTH_EXPIRED:   return "expired";
	case KEYS_AUTH_DISABLED:  return "disabled";
	}
	return "unknown";
}

/* who from a stored key, and what it says at time now. */
void key_identity_copy(struct key_identity *dst, const struct key_identity *src)
{
	static const struct key_identity none;

	if (!src)
		src = &none;
	strcpy(dst->id, src->id);
	strcpy(dst->name, src->name);
	strcpy(dst->team, src->team);
	strcpy(dst->policy, src->policy);
	strcpy(dst->team_policy, src->team_policy);
	dst->expires = src->expires;
	strcpy(dst->workloads, src->workloads);
	strcpy(dst->workload, src->workload);
}

static enum keys_auth identify(const struct key *k, int64_t now, struct key_identity *who)
{
	if (!k) {
		memset(who, 0, sizeof(*who));
		return KEYS_AUTH_UNKNOWN;
	}
	/* Lengths were checked on the way in: every string fits its field. */
	strcpy(who->id, k->text);
	strcpy(who->name, k->text + k->name_off);
	strcpy(who->policy, k->text + k->policy_off);
	strcpy(who->workloads, k->text + k->workloads_off);
	if (k->team) {
		strcpy(who->team, k->team->name);
		strcpy(who->team_policy, k->team->policy);
	} else {
		who->team[0] = who->team_policy[0] = '\0';
	}
	who->expires = k->expires;
	if (k->disabled)
		return KEYS_AUTH_DISABLED;
	if (k->expires && now >= k->expires)
		return KEYS_AUTH_EXPIRED;
	return KEYS_AUTH_OK;
}

enum keys_auth keys_authenticate_hash(const struct keystore *ks,
				      const unsigned char hash[KEYS_HASH_LEN], int64_t now,
				      struct key_identity *who)
{
	return identify(find_by_hash(ks, hash), now, who);
}

/* *found: the stored key the presented one hashes to (NULL none). */
static enum keys_auth authenticate(struct keystore *ks, const char *presented, size_t len,
				   int64_t now, struct key_identity *who, const struct key **found)
{
	unsigned char d[KEYS_HASH_LEN];
	enum keys_auth r;

	*found = NULL;
	/* Any printable token is hashed, so keys imported from another system keep working. */
	if (!presented || len == 0 || len > KEYS_PRESENTED_MAX)
		goto malformed;
	for (size_t i = 0; i < len; i++) {
		if ((unsigned char)presented[i] <= 0x20 || (unsigned char)presented[i] >= 0x7f)
			goto malformed;
	}
	if (hash_with(ks, presented, len, d)) {
		log_error("keys: SHA-256 failed; refusing the request");
		memset(who, 0, sizeof(*who));
		return KEYS_AUTH_UNKNOWN;
	}
	*found = find_by_hash(ks, d);
	r = identify(*found, now, who);
	OPENSSL_cleanse(d, sizeof(d));
	return r;
malformed:
	memset(who, 0, sizeof(*who));
	return KEYS_AUTH_MALFORMED;
}

enum keys_auth keys_authenticate(struct keystore *ks, const char *presented, size_t len,
				 int64_t now, struct key_identity *who)
{
	const struct key *k;

	return authenticate(ks, presented, len, now, who, &k);
}

enum keys_auth keys_authenticate_memo(struct keystore *ks, struct keys_memo *m,
				      const char *presented, size_t len, int64_t now,
				      struct key_identity *who)
{
	uint64_t gen = atomic_load_explicit(&generation, memory_order_relaxed), tag = 0;
	const struct key *k;
	enum keys_auth r;

	if (!m)
		return keys_authenticate(ks, presented, len, now, who);
	/* The by_hash table's seed is random and never leaves the process: a different key
	 * matches the tag by chance only (2^-64), and no client can search for one offline. */
	if (presented && len && len <= KEYS_PRESENTED_MAX) {
		tag = htab_hash_bytes(&ks->by_hash, presented, len);
		if (m->gen == gen && m->ks == ks && m->len == len && m->tag == tag)
			return identify(m->key, now, who);
	}
	r = authenticate(ks, presented, len, now, who, &k);
	*m = (struct keys_memo){ 0 };
	if (r == KEYS_AUTH_OK)
		*m = (struct keys_memo){ .gen = gen, .ks = ks, .key = k, .tag = tag, .len = len };
	return r;
}

/* ---- per-peer failure tracker (peer_guard) ---- */

void keys_take_peers(struct keystore *to, struct keystore *from)
{
	struct peer_guard *t = to->peers;

	to->peers = from->peers;
	from->peers = t;
}

bool keys_peer_blocked(struct keystore *ks, const char *peer, int64_t now_ms,
		       int64_t *retry_after_ms)
{
	return peer_guard_blocked(ks->peers, peer, now_ms, retry_after_ms);
}

void keys_peer_failure(struct keystore *ks, const char *peer, int64_t now_ms)
{
	peer_guard_failure(ks->peers, peer, now_ms);
}

void keys_peer_success(struct keystore *ks, const char *peer, int64_t now_ms)
{
	peer_guard_success(ks->peers, peer, now_ms);
}

