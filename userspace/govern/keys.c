/* keys: virtual keys, teams, authentication and the per-peer failure tracker. */
#include "govern/keys.h"

#include "base/config.h"
#include "base/log.h"
#include "govern/policy.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

/* Intrusive chained hash table: elements embed a struct node. */
struct node {
	struct node *next;
	uint64_t h;
};

struct table {
	struct node **slot;
	size_t mask;
	size_t count;
};

#define container_of(p, type, member) ((type *)(void *)((char *)(p) - offsetof(type, member)))

struct team {
	struct node node;
	char name[KEYS_ID_SIZE];
	char policy[KEYS_ID_SIZE];
	size_t nkeys;
};

/* A stored key: what authentication reads sits in the first cache line, the strings packed right
 * after it, so a lookup touches about two lines whatever the number of keys. */
struct key {
	unsigned char hash[KEYS_HASH_LEN];
	int64_t expires;
	struct team *team;
	int64_t created;
	bool disabled;
	uint8_t name_off, policy_off;  /* into text, which starts with the id */
	struct node by_id;
	char text[];                   /* "id\0name\0policy\0" */
} __attribute__((aligned(64)));

/* Open addressing by digest: a slot holds the digest's first 8 bytes, so probing a slot that
 * belongs to another key costs no access to that key. */
struct slot {
	uint64_t tag;
	struct key *key;
};

/* Failure tracker entry. Links are indexes into the peers array; NIL ends a list. */
#define NIL UINT32_MAX
#define PEER_KEY_LEN 17        /* a tag byte, then up to 16 address bytes */

struct peer {
	uint8_t addr[PEER_KEY_LEN];
	uint32_t next;                 /* bucket chain, or free list */
	uint32_t prev_lru, next_lru;   /* most recently failed first */
	uint32_t failures;             /* in the current window */
	uint32_t strikes;              /* blocks so far: the next one lasts block_ms << strikes */
	int64_t window_start;
	int64_t last_failure;
	int64_t blocked_until;
};

struct keystore {
	struct slot *slots;            /* power of two, at most half full */
	size_t slot_mask;
	struct table keys_by_id;
	struct table teams;
	EVP_MD *sha256;
	EVP_MD_CTX *md_ctx;
	struct keys_peer_limits lim;
	struct peer *peers;
	uint32_t *buckets;             /* capacity buckets, power of two */
	uint32_t bucket_mask;
	uint32_t free_list, lru_head, lru_tail;
	uint32_t npeers;
	uint64_t peer_seed[7];         /* keys the peer hash: addresses cannot be picked to collide */
};

static const struct keys_peer_limits default_limits = {
	.max_failures = 10,
	.window_ms = 60 * 1000,
	.block_ms = 30 * 1000,
	.max_block_ms = 15 * 60 * 1000,
	.capacity = 8192,
};

/* ---- hash tables ---- */

static int table_init(struct table *t, size_t nslots)
{
	t->slot = calloc(nslots, sizeof(*t->slot));
	if (!t->slot)
		return -ENOMEM;
	t->mask = nslots - 1;
	t->count = 0;
	return 0;
}

/* Keep the load factor at most 1; a failed grow only lengthens chains. */
static void table_insert(struct table *t, struct node *n)
{
	if (t->count >= t->mask + 1) {
		size_t nslots = (t->mask + 1) * 2;
		struct node **ns = calloc(nslots, sizeof(*ns));

		if (ns) {
			for (size_t i = 0; i <= t->mask; i++) {
				struct node *e = t->slot[i], *next;

				for (; e; e = next) {
					next = e->next;
					e->next = ns[e->h & (nslots - 1)];
					ns[e->h & (nslots - 1)] = e;
				}
			}
			free(t->slot);
			t->slot = ns;
			t->mask = nslots - 1;
		}
	}
	n->next = t->slot[n->h & t->mask];
	t->slot[n->h & t->mask] = n;
	t->count++;
}

static void table_remove(struct table *t, struct node *n)
{
	struct node **pp = &t->slot[n->h & t->mask];

	for (; *pp; pp = &(*pp)->next) {
		if (*pp == n) {
			*pp = n->next;
			t->count--;
			return;
		}
	}
}

/* FNV-1a: ids and team names come from the operator, not from clients. */
static uint64_t str_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
	return h;
}

/* A digest is uniformly distributed: its first bytes are a good hash as they are. */
static uint64_t digest_hash(const unsigned char *d)
{
	uint64_t h;

	memcpy(&h, d, sizeof(h));
	return h;
}

static struct key *find_by_id(const struct keystore *ks, const char *id)
{
	uint64_t h = str_hash(id);

	for (struct node *n = ks->keys_by_id.slot[h & ks->keys_by_id.mask]; n; n = n->next) {
		struct key *k = container_of(n, struct key, by_id);

		if (n->h == h && strcmp(k->text, id) == 0)
			return k;
	}
	return NULL;
}

/* The slot index of a digest, or of the free slot where it would go. A candidate whose tag
 * matches is confirmed by comparing the whole digest in constant time. */
static size_t slot_find(const struct keystore *ks, const unsigned char *d)
{
	uint64_t h = digest_hash(d);
	size_t i = h & ks->slot_mask;

	for (; ks->slots[i].key; i = (i + 1) & ks->slot_mask) {
		if (ks->slots[i].tag == h &&
		    CRYPTO_memcmp(ks->slots[i].key->hash, d, KEYS_HASH_LEN) == 0)
			break;
	}
	return i;
}

static struct key *find_by_hash(const struct keystore *ks, const unsigned char *d)
{
	return ks->slots[slot_find(ks, d)].key;
}

/* Keeps the table at most half full; a failed grow just leaves it fuller. */
static void slot_insert(struct keystore *ks, struct key *k)
{
	size_t n = ks->slot_mask + 1;

	if ((keys_count(ks) + 1) * 2 > n) {
		struct slot *ns = calloc(n * 2, sizeof(*ns));

		if (ns) {
			for (size_t i = 0; i < n; i++) {
				size_t j = ks->slots[i].tag & (n * 2 - 1);

				if (!ks->slots[i].key)
					continue;
				while (ns[j].key)
					j = (j + 1) & (n * 2 - 1);
				ns[j] = ks->slots[i];
			}
			free(ks->slots);
			ks->slots = ns;
			ks->slot_mask = n * 2 - 1;
		}
	}
	size_t i = slot_find(ks, k->hash);

	ks->slots[i].tag = digest_hash(k->hash);
	ks->slots[i].key = k;
}

/* Linear-probing delete: pull later members of the cluster back over the hole. */
static void slot_remove(struct keystore *ks, const struct key *k)
{
	size_t m = ks->slot_mask, i = slot_find(ks, k->hash), j = i;

	if (ks->slots[i].key != k)
		return;
	for (;;) {
		j = (j + 1) & m;
		if (!ks->slots[j].key)
			break;
		size_t home = ks->slots[j].tag & m;

		/* move j into the hole at i unless its home lies cyclically in (i, j] */
		if (i <= j ? (home <= i || home > j) : (home <= i && home > j)) {
			ks->slots[i] = ks->slots[j];
			i = j;
		}
	}
	ks->slots[i].key = NULL;
	ks->slots[i].tag = 0;
}

static struct team *find_team(const struct keystore *ks, const char *name)
{
	uint64_t h = str_hash(name);

	for (struct node *n = ks->teams.slot[h & ks->teams.mask]; n; n = n->next) {
		struct team *t = container_of(n, struct team, node);

		if (n->h == h && strcmp(t->name, name) == 0)
			return t;
	}
	return NULL;
}

/* ---- life cycle ---- */

int keys_new(const struct keys_peer_limits *limits, struct keystore **out)
{
	struct keystore *ks;
	size_t nb = 16;
	int rc = -ENOMEM;

	*out = NULL;
	if (!limits)
		limits = &default_limits;
	if (!limits->max_failures || limits->window_ms <= 0 || limits->block_ms <= 0 ||
	    limits->max_block_ms < limits->block_ms || !limits->capacity ||
	    limits->capacity > (1u << 24))
		return -EINVAL;
	ks = calloc(1, sizeof(*ks));
	if (!ks)
		return -ENOMEM;
	ks->lim = *limits;
	while (nb < limits->capacity)
		nb *= 2;
	if (table_init(&ks->keys_by_id, 64) || table_init(&ks->teams, 16))
		goto out;
	ks->slots = calloc(128, sizeof(*ks->slots));
	if (!ks->slots)
		goto out;
	ks->slot_mask = 127;
	ks->peers = calloc(limits->capacity, sizeof(*ks->peers));
	ks->buckets = malloc(nb * sizeof(*ks->buckets));
	if (!ks->peers || !ks->buckets)
		goto out;
	for (size_t i = 0; i < nb; i++)
		ks->buckets[i] = NIL;
	ks->bucket_mask = (uint32_t)(nb - 1);
	for (size_t i = 0; i < limits->capacity; i++)
		ks->peers[i].next = i + 1 < limits->capacity ? (uint32_t)(i + 1) : NIL;
	ks->free_list = 0;
	ks->lru_head = ks->lru_tail = NIL;
	/* Fetch SHA-256 once: the implicit fetch inside one-shot digests costs on every call. */
	ks->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	ks->md_ctx = EVP_MD_CTX_new();
	if (!ks->sha256 || !ks->md_ctx)
		goto out;
	rc = -EIO;
	if (RAND_bytes((unsigned char *)ks->peer_seed, sizeof(ks->peer_seed)) != 1)
		goto out;
	*out = ks;
	ks = NULL;
	rc = 0;
out:
	keys_free(ks);
	return rc;
}

void keys_free(struct keystore *ks)
{
	if (!ks)
		return;
	for (size_t i = 0; ks->keys_by_id.slot && i <= ks->keys_by_id.mask; i++) {
		struct node *n = ks->keys_by_id.slot[i], *next;

		for (; n; n = next) {
			next = n->next;
			struct key *k = container_of(n, struct key, by_id);

			OPENSSL_cleanse(k->hash, sizeof(k->hash));
			free(k);
		}
	}
	for (size_t i = 0; ks->teams.slot && i <= ks->teams.mask; i++) {
		struct node *n = ks->teams.slot[i], *next;

		for (; n; n = next) {
			next = n->next;
			free(container_of(n, struct team, node));
		}
	}
	free(ks->slots);
	free(ks->keys_by_id.slot);
	free(ks->teams.slot);
	free(ks->peers);
	free(ks->buckets);
	EVP_MD_CTX_free(ks->md_ctx);
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

static int hash_with(struct keystore *ks, const char *key, size_t len, unsigned char *out)
{
	unsigned int n = 0;

	if (EVP_DigestInit_ex2(ks->md_ctx, ks->sha256, NULL) != 1 ||
	    EVP_DigestUpdate(ks->md_ctx, key, len) != 1 ||
	    EVP_DigestFinal_ex(ks->md_ctx, out, &n) != 1 || n != KEYS_HASH_LEN)
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

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int keys_hash_parse(const char *text, unsigned char out[KEYS_HASH_LEN])
{
	if (strncmp(text, "sha256:", 7) != 0 || strlen(text) != 7 + 2 * KEYS_HASH_LEN)
		return -EINVAL;
	for (int i = 0; i < KEYS_HASH_LEN; i++) {
		int hi = hexval(text[7 + 2 * i]), lo = hexval(text[8 + 2 * i]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

/* ---- validation ---- */

static bool valid_ident(const char *s)
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

static bool valid_name(const char *s)
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
	if (!valid_ident(k->id) || !valid_name(k->name) || k->created < 0 || k->expires < 0)
		return -EINVAL;
	if (strnlen(k->team, KEYS_ID_SIZE) >= KEYS_ID_SIZE ||
	    strnlen(k->policy, KEYS_ID_SIZE) >= KEYS_ID_SIZE)
		return -EINVAL;
	if (k->policy[0] && !valid_ident(k->policy))
		return -EINVAL;
	if (k->team[0]) {
		if (!valid_ident(k->team))
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

	if (!name || !policy || !valid_ident(name) || !valid_ident(policy))
		return -EINVAL;
	t = find_team(ks, name);
	if (!t) {
		t = calloc(1, sizeof(*t));
		if (!t)
			return -ENOMEM;
		strcpy(t->name, name);
		t->node.h = str_hash(name);
		table_insert(&ks->teams, &t->node);
	}
	strcpy(t->policy, policy);
	return 0;
}

int keys_team_delete(struct keystore *ks, const char *name)
{
	struct team *t = find_team(ks, name);

	if (!t)
		return -ENOENT;
	if (t->nkeys)
		return -EBUSY;
	table_remove(&ks->teams, &t->node);
	free(t);
	return 0;
}

const char *keys_team_policy(const struct keystore *ks, const char *name)
{
	const struct team *t = find_team(ks, name);

	return t ? t->policy : NULL;
}

/* ---- keys ---- */

/* A stored key built from a checked record. */
static struct key *key_new(const struct key_record *r, struct team *team)
{
	size_t lid = strlen(r->id), lname = strlen(r->name), lpol = strlen(r->policy);
	size_t size = offsetof(struct key, text) + lid + lname + lpol + 3;
	struct key *k;

	size = (size + 63) & ~(size_t)63;  /* aligned_alloc wants a multiple of the alignment */
	k = aligned_alloc(_Alignof(struct key), size);
	if (!k)
		return NULL;
	memset(k, 0, size);
	memcpy(k->hash, r->hash, KEYS_HASH_LEN);
	k->expires = r->expires;
	k->created = r->created;
	k->disabled = r->disabled;
	k->team = team;
	k->name_off = (uint8_t)(lid + 1);
	k->policy_off = (uint8_t)(lid + 1 + lname + 1);
	memcpy(k->text, r->id, lid);
	memcpy(k->text + k->name_off, r->name, lname);
	memcpy(k->text + k->policy_off, r->policy, lpol);
	k->by_id.h = str_hash(r->id);
	return k;
}

static void key_link(struct keystore *ks, struct key *k)
{
	if (k->team)
		k->team->nkeys++;
	table_insert(&ks->keys_by_id, &k->by_id);
	slot_insert(ks, k);
}

static void key_unlink(struct keystore *ks, struct key *k)
{
	slot_remove(ks, k);
	table_remove(&ks->keys_by_id, &k->by_id);
	if (k->team)
		k->team->nkeys--;
}

static void key_free(struct key *k)
{
	OPENSSL_cleanse(k->hash, sizeof(k->hash));
	free(k);
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
	nk = key_new(k, team);
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
	nk = key_new(k, team);
	if (!nk)
		return -ENOMEM;
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
	if (k->team)
		strcpy(out->team, k->team->name);
	return 0;
}

size_t keys_count(const struct keystore *ks)
{
	return ks->keys_by_id.count;
}

int keys_foreach(const struct keystore *ks, int (*fn)(void *arg, const struct key_record *k),
		 void *arg)
{
	struct key_record r = { 0 };
	int rc = 0;

	for (size_t i = 0; i <= ks->keys_by_id.mask && !rc; i++) {
		for (struct node *n = ks->keys_by_id.slot[i]; n && !rc; n = n->next) {
			const struct key *k = container_of(n, struct key, by_id);

			if (keys_get(ks, k->text, &r) == 0)
				rc = fn(arg, &r);
		}
	}
	OPENSSL_cleanse(r.hash, sizeof(r.hash));
	return rc;
}

int keys_team_foreach(const struct keystore *ks,
		      int (*fn)(void *arg, const char *name, const char *policy, size_t nkeys),
		      void *arg)
{
	int rc = 0;

	for (size_t i = 0; i <= ks->teams.mask && !rc; i++) {
		for (struct node *n = ks->teams.slot[i]; n && !rc; n = n->next) {
			const struct team *t = container_of(n, struct team, node);

			rc = fn(arg, t->name, t->policy, t->nkeys);
		}
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

enum keys_auth keys_authenticate_hash(const struct keystore *ks,
				      const unsigned char hash[KEYS_HASH_LEN], int64_t now,
				      struct key_identity *who)
{
	const struct key *k = find_by_hash(ks, hash);

	if (!k) {
		memset(who, 0, sizeof(*who));
		return KEYS_AUTH_UNKNOWN;
	}
	/* Lengths were checked on the way in: every string fits its field. */
	strcpy(who->id, k->text);
	strcpy(who->name, k->text + k->name_off);
	strcpy(who->policy, k->text + k->policy_off);
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

enum keys_auth keys_authenticate(struct keystore *ks, const char *presented, size_t len,
				 int64_t now, struct key_identity *who)
{
	unsigned char d[KEYS_HASH_LEN];
	enum keys_auth r;

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
	r = keys_authenticate_hash(ks, d, now, who);
	OPENSSL_cleanse(d, sizeof(d));
	return r;
malformed:
	memset(who, 0, sizeof(*who));
	return KEYS_AUTH_MALFORMED;
}

/* ---- per-peer failure tracker ---- */

static void peer_key(const char *peer, uint8_t out[PEER_KEY_LEN])
{
	char buf[64];
	struct in6_addr a6;
	struct in_addr a4;
	size_t n;

	memset(out, 0, PEER_KEY_LEN);
	if (!peer)
		peer = "";
	/* strip [brackets] and a %zone */
	if (peer[0] == '[')
		peer++;
	n = strcspn(peer, "]%");
	if (n < sizeof(buf)) {
		memcpy(buf, peer, n);
		buf[n] = '\0';
		if (inet_pton(AF_INET, buf, &a4) == 1) {
			out[0] = 4;
			memcpy(out + 1, &a4, 4);
			return;
		}
		if (inet_pton(AF_INET6, buf, &a6) == 1) {
			if (IN6_IS_ADDR_V4MAPPED(&a6)) {
				out[0] = 4;
				memcpy(out + 1, a6.s6_addr + 12, 4);
			} else {
				/* one host usually owns a whole /64 */
				out[0] = 6;
				memcpy(out + 1, a6.s6_addr, 8);
			}
			return;
		}
	}
	/* not an address (a unix socket peer, say): its FNV-1a hash and first bytes */
	uint64_t h = str_hash(peer);

	out[0] = 1;
	memcpy(out + 1, &h, sizeof(h));
	memcpy(out + 9, peer, strnlen(peer, PEER_KEY_LEN - 9));
}

/* Keyed pair-multiply hash of the 17-byte key (zero-padded to six 32-bit words). */
static uint32_t peer_hash(const struct keystore *ks, const uint8_t a[PEER_KEY_LEN])
{
	uint32_t w[6] = { 0 };
	uint64_t h = ks->peer_seed[6];

	memcpy(w, a, PEER_KEY_LEN);
	for (int i = 0; i < 6; i += 2)
		h += (uint64_t)(w[i] + (uint32_t)ks->peer_seed[i]) *
		     (uint64_t)(w[i + 1] + (uint32_t)ks->peer_seed[i + 1]);
	return (uint32_t)(h >> 32);
}

static uint32_t peer_find(const struct keystore *ks, const uint8_t a[PEER_KEY_LEN], uint32_t b)
{
	for (uint32_t i = ks->buckets[b]; i != NIL; i = ks->peers[i].next) {
		if (memcmp(ks->peers[i].addr, a, PEER_KEY_LEN) == 0)
			return i;
	}
	return NIL;
}

static void lru_unlink(struct keystore *ks, uint32_t i)
{
	struct peer *p = &ks->peers[i];

	if (p->prev_lru != NIL)
		ks->peers[p->prev_lru].next_lru = p->next_lru;
	else
		ks->lru_head = p->next_lru;
	if (p->next_lru != NIL)
		ks->peers[p->next_lru].prev_lru = p->prev_lru;
	else
		ks->lru_tail = p->prev_lru;
}

static void lru_push_front(struct keystore *ks, uint32_t i)
{
	struct peer *p = &ks->peers[i];

	p->prev_lru = NIL;
	p->next_lru = ks->lru_head;
	if (ks->lru_head != NIL)
		ks->peers[ks->lru_head].prev_lru = i;
	ks->lru_head = i;
	if (ks->lru_tail == NIL)
		ks->lru_tail = i;
}

static void peer_release(struct keystore *ks, uint32_t i)
{
	struct peer *p = &ks->peers[i];
	uint32_t *pp = &ks->buckets[peer_hash(ks, p->addr) & ks->bucket_mask];

	for (; *pp != NIL; pp = &ks->peers[*pp].next) {
		if (*pp == i) {
			*pp = p->next;
			break;
		}
	}
	lru_unlink(ks, i);
	memset(p, 0, sizeof(*p));
	p->next = ks->free_list;
	ks->free_list = i;
	ks->npeers--;
}

bool keys_peer_blocked(struct keystore *ks, const char *peer, int64_t now_ms,
		       int64_t *retry_after_ms)
{
	uint8_t a[PEER_KEY_LEN];
	uint32_t i;

	*retry_after_ms = 0;
	peer_key(peer, a);
	i = peer_find(ks, a, peer_hash(ks, a) & ks->bucket_mask);
	if (i == NIL || ks->peers[i].blocked_until <= now_ms)
		return false;
	*retry_after_ms = ks->peers[i].blocked_until - now_ms;
	return true;
}

void keys_peer_failure(struct keystore *ks, const char *peer, int64_t now_ms)
{
	uint8_t a[PEER_KEY_LEN];
	uint32_t b, i;
	struct peer *p;

	peer_key(peer, a);
	b = peer_hash(ks, a) & ks->bucket_mask;
	i = peer_find(ks, a, b);
	if (i == NIL) {
		/* Full: forget the peer whose last failure is oldest. */
		if (ks->free_list == NIL)
			peer_release(ks, ks->lru_tail);
		i = ks->free_list;
		p = &ks->peers[i];
		ks->free_list = p->next;
		memcpy(p->addr, a, PEER_KEY_LEN);
		p->next = ks->buckets[b];
		ks->buckets[b] = i;
		p->window_start = now_ms;
		ks->npeers++;
	} else {
		lru_unlink(ks, i);
	}
	lru_push_front(ks, i);
	p = &ks->peers[i];

	int64_t quiet_since = p->last_failure > p->blocked_until ? p->last_failure
								   : p->blocked_until;
	if (p->strikes && now_ms - quiet_since > ks->lim.max_block_ms)
		p->strikes = 0;
	if (now_ms - p->window_start >= ks->lim.window_ms) {
		p->window_start = now_ms;
		p->failures = 0;
	}
	p->failures++;
	p->last_failure = now_ms;
	if (p->failures >= ks->lim.max_failures) {
		int64_t block = ks->lim.block_ms;

		for (uint32_t s = 0; s < p->strikes && block < ks->lim.max_block_ms; s++)
			block *= 2;
		if (block > ks->lim.max_block_ms)
			block = ks->lim.max_block_ms;
		p->blocked_until = now_ms + block;
		p->strikes++;
		p->failures = 0;
		p->window_start = now_ms;
	}
}

void keys_peer_success(struct keystore *ks, const char *peer, int64_t now_ms)
{
	uint8_t a[PEER_KEY_LEN];
	uint32_t i;

	(void)now_ms;
	peer_key(peer, a);
	i = peer_find(ks, a, peer_hash(ks, a) & ks->bucket_mask);
	if (i == NIL)
		return;
	ks->peers[i].failures = 0;
	if (!ks->peers[i].strikes)
		peer_release(ks, i);
}

/* ---- config ---- */

/* RFC 3339 date-time ("2026-01-31T12:00:00Z", fraction and numeric offset allowed). */
int keys_parse_time(const char *s, int64_t *out)
{
	struct tm tm = { 0 };
	const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	long off = 0;

	if (!p)
		p = strptime(s, "%Y-%m-%dt%H:%M:%S", &tm);
	if (!p || !isdigit((unsigned char)s[0]))
		return -EINVAL;
	if (*p == '.') {
		p++;
		if (!isdigit((unsigned char)*p))
			return -EINVAL;
		while (isdigit((unsigned char)*p))
			p++;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if ((*p == '+' || *p == '-') && isdigit((unsigned char)p[1]) &&
		   isdigit((unsigned char)p[2]) && p[3] == ':' && isdigit((unsigned char)p[4]) &&
		   isdigit((unsigned char)p[5])) {
		off = ((p[1] - '0') * 10 + (p[2] - '0')) * 3600L + ((p[4] - '0') * 10 + (p[5] - '0')) * 60L;
		if (*p == '+')
			off = -off;
		p += 6;
	} else {
		return -EINVAL;
	}
	if (*p)
		return -EINVAL;
	*out = (int64_t)timegm(&tm) + off;
	return 0;
}

/* An error at path.key: the message names the field, as the cfg_* helpers do. */
static int __attribute__((format(printf, 4, 5)))
fail_at(struct config_errors *errs, const char *path, const char *key, const char *fmt, ...)
{
	char fp[128], msg[256];
	va_list ap;

	snprintf(fp, sizeof(fp), "%s.%s", path, key);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return config_fail(errs, fp, "%s", msg);
}

static int cfg_ident(const cJSON *obj, const char *key, const char *path, bool required,
		     const char **out, struct config_errors *errs)
{
	int rc = cfg_string(obj, key, path, required, out, errs);

	if (rc == 0 && !valid_ident(*out))
		rc = fail_at(errs, path, key, "must be 1-64 of A-Z a-z 0-9 _ - .");
	return rc;
}

static int cfg_time(const cJSON *obj, const char *key, const char *path, int64_t *out,
		    struct config_errors *errs)
{
	const char *s;
	int rc = cfg_string(obj, key, path, false, &s, errs);

	if (rc == 0 && keys_parse_time(s, out))
		rc = fail_at(errs, path, key,
			     "not an RFC 3339 date-time (e.g. 2027-01-31T00:00:00Z)");
	return rc;
}

static int parse_team(const cJSON *t, const char *path, const struct policy_set *ps,
		      struct keystore *ks, struct config_errors *errs)
{
	static const char *const fields[] = { "name", "policy", NULL };
	const char *name = NULL, *policy = NULL;
	int rc = 0, r;

	if (!cJSON_IsObject(t))
		return config_fail(errs, path, "must be an object");
	if (cfg_known_keys(t, path, fields, errs))
		rc = -EINVAL;
	if (cfg_ident(t, "name", path, true, &name, errs))
		rc = -EINVAL;
	if (cfg_ident(t, "policy", path, true, &policy, errs))
		rc = -EINVAL;
	if (rc)
		return rc;
	if (ps && !policy_set_has(ps, policy))
		rc = fail_at(errs, path, "policy", "no policy named \"%s\"", policy);
	if (find_team(ks, name))
		rc = fail_at(errs, path, "name", "team \"%s\" is defined twice", name);
	if (rc)
		return rc;
	r = keys_team_set(ks, name, policy);
	if (r)
		rc = config_fail(errs, path, "%s", strerror(-r));
	return rc;
}

static int parse_key(const cJSON *j, const char *path, const struct policy_set *ps,
		     struct keystore *ks, struct config_errors *errs)
{
	static const char *const fields[] = {
		"id", "name", "team", "hash", "created", "expires", "disabled", "policy", NULL
	};
	struct key_record k = { 0 };
	const char *id = NULL, *name = NULL, *team = NULL, *policy = NULL, *hash = NULL;
	int rc = 0, r;

	if (!cJSON_IsObject(j))
		return config_fail(errs, path, "must be an object");
	if (cfg_known_keys(j, path, fields, errs))
		rc = -EINVAL;
	r = cfg_string(j, "hash", path, true, &hash, errs);
	if (r == 0 && keys_hash_parse(hash, k.hash))
		r = fail_at(errs, path, "hash", "must be \"sha256:\" and 64 hex digits "
				"(wardenctl keys hash prints it; never put the key itself here)");
	if (r)
		rc = -EINVAL;
	r = cfg_ident(j, "id", path, false, &id, errs);
	if (r == 0)
		snprintf(k.id, sizeof(k.id), "%s", id);
	else if (r == -ENOENT && !rc)
		snprintf(k.id, sizeof(k.id), "k_%02x%02x%02x%02x", k.hash[0], k.hash[1], k.hash[2],
			 k.hash[3]);
	else if (r != -ENOENT)
		rc = -EINVAL;
	r = cfg_string(j, "name", path, false, &name, errs);
	if (r == 0 && !valid_name(name))
		r = fail_at(errs, path, "name", "must be 1-128 printable characters");
	if (r == 0)
		snprintf(k.name, sizeof(k.name), "%s", name);
	else if (r != -ENOENT)
		rc = -EINVAL;
	r = cfg_ident(j, "team", path, false, &team, errs);
	if (r == 0) {
		snprintf(k.team, sizeof(k.team), "%s", team);
		if (!find_team(ks, team))
			rc = fail_at(errs, path, "team", "no team named \"%s\" in teams", team);
	} else if (r != -ENOENT) {
		rc = -EINVAL;
	}
	r = cfg_ident(j, "policy", path, false, &policy, errs);
	if (r == 0) {
		snprintf(k.policy, sizeof(k.policy), "%s", policy);
		if (ps && !policy_set_has(ps, policy))
			rc = fail_at(errs, path, "policy", "no policy named \"%s\"", policy);
	} else if (r == -ENOENT) {
		if (!team)
			rc = fail_at(errs, path, "policy", "required for a key without a team");
	} else {
		rc = -EINVAL;
	}
	if ((r = cfg_time(j, "created", path, &k.created, errs)) && r != -ENOENT)
		rc = -EINVAL;
	if ((r = cfg_time(j, "expires", path, &k.expires, errs)) && r != -ENOENT)
		rc = -EINVAL;
	if ((r = cfg_bool(j, "disabled", path, false, &k.disabled, errs)) && r != -ENOENT)
		rc = -EINVAL;
	if (rc)
		return rc;
	if (!k.name[0])
		memcpy(k.name, k.id, sizeof(k.id));
	r = keys_add(ks, &k);
	if (r == -EEXIST)
		rc = find_by_id(ks, k.id)
			? fail_at(errs, path, "id", "key id \"%s\" is used twice", k.id)
			: fail_at(errs, path, "hash", "the same hash is used by another key");
	else if (r)
		rc = config_fail(errs, path, "%s", strerror(-r));
	OPENSSL_cleanse(k.hash, sizeof(k.hash));
	return rc;
}

int keys_config_parse(const cJSON *root, const struct policy_set *ps, struct keystore *ks,
		      struct config_errors *errs)
{
	const cJSON *teams = cJSON_GetObjectItemCaseSensitive(root, "teams");
	const cJSON *keys = cJSON_GetObjectItemCaseSensitive(root, "keys");
	char path[64];
	int rc = 0, i;

	if (teams && !cJSON_IsArray(teams))
		rc = config_fail(errs, "teams", "must be an array");
	else if (teams) {
		i = 0;
		for (const cJSON *t = teams->child; t; t = t->next, i++) {
			snprintf(path, sizeof(path), "teams[%d]", i);
			if (parse_team(t, path, ps, ks, errs))
				rc = -EINVAL;
		}
	}
	if (keys && !cJSON_IsArray(keys))
		rc = config_fail(errs, "keys", "must be an array");
	else if (keys) {
		i = 0;
		for (const cJSON *k = keys->child; k; k = k->next, i++) {
			snprintf(path, sizeof(path), "keys[%d]", i);
			if (parse_key(k, path, ps, ks, errs))
				rc = -EINVAL;
		}
	}
	return rc ? -EINVAL : 0;
}
