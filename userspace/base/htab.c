/* htab: intrusive chained hash table with SipHash-1-3 under a per-table seed (the rounds
 * Rust's and CPython's tables use: flooding-resistant for a secret seed, ~40 % cheaper than
 * 2-4 for the short names hashed on every call). */
#include "base/htab.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/rand.h>

#include "base/alloc.h"

#define MIN_BUCKETS 16
/* From this many buckets a table fills to a load of 2 before it doubles: chains of 1 to 2
 * nodes (each compared by its stored hash first) for half the array, which is what counts at
 * that size (100k keys: 1 MB less for the keystore's two tables). */
#define BIG_BUCKETS 65536

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                           \
	do {                                                                               \
		v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);                  \
		v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                                     \
		v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                                     \
		v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);                  \
	} while (0)

static uint64_t le64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v; /* x86-64 and arm64 are little-endian; the hash only has to be stable here */
}

static uint64_t siphash(const uint8_t k[16], const void *data, size_t len)
{
	const uint8_t *in = data, *end = in + (len - len % 8);
	uint64_t k0 = le64(k), k1 = le64(k + 8), b = (uint64_t)len << 56, m;
	uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
	uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;

	for (; in != end; in += 8) {
		m = le64(in);
		v3 ^= m;
		SIPROUND;
		v0 ^= m;
	}
	for (size_t i = 0; i < len % 8; i++)
		b |= (uint64_t)in[i] << (8 * i);
	v3 ^= b;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

uint64_t htab_hash_bytes(const struct htab *t, const void *data, size_t len)
{
	return siphash(t->seed, data, len);
}

uint64_t htab_hash_str(const struct htab *t, const char *s)
{
	return siphash(t->seed, s, strlen(s));
}

uint64_t htab_hash_u64(const struct htab *t, uint64_t v)
{
	return siphash(t->seed, &v, sizeof(v));
}

/* Keys that are tuples of ids this process assigned (dense, not chosen by a client) need no
 * SipHash: a seeded multiply-xorshift mix per word, then murmur3's finaliser. */
uint64_t htab_hash_words(const struct htab *t, const uint64_t *w, size_t n)
{
	uint64_t h, s0, s1;

	memcpy(&s0, t->seed, 8);
	memcpy(&s1, t->seed + 8, 8);
	h = s0;
	for (size_t i = 0; i < n; i++) {
		h ^= w[i] + s1;
		h *= 0x9e3779b97f4a7c15ull;
		h ^= h >> 29;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	return h ^ (h >> 33);
}

uint64_t htab_bytes_hash(const struct htab *t, const void *key)
{
	const struct htab_bytes *k = key;

	return siphash(t->seed, k->p, k->n);
}

/* No bucket array while empty (until the first insert, and again once the last node goes):
 * most of a session's maps (calls, relayed requests, subscriptions, a link's pending calls)
 * are empty most of its life, and 10,000 sessions hold tens of thousands. */
int htab_init(struct htab *t, const struct htab_type *type)
{
	*t = (struct htab){ .type = type };
	return RAND_bytes(t->seed, sizeof(t->seed)) == 1 ? 0 : -EIO;
}

void htab_fini(struct htab *t)
{
	free(t->buckets);
	t->buckets = NULL;
	t->nbuckets = 0;
	t->count = 0;
}

struct htab_node *htab_find_hashed(const struct htab *t, const void *key, uint64_t hash)
{
	if (!t->nbuckets)
		return NULL;
	for (struct htab_node *n = t->buckets[hash & (t->nbuckets - 1)]; n; n = n->next)
		if (n->hash == hash && t->type->eq(n, key))
			return n;
	return NULL;
}

struct htab_node *htab_find(const struct htab *t, const void *key)
{
	return htab_find_hashed(t, key, t->type->hash(t, key));
}

static void grow(struct htab *t)
{
	size_t nb = t->nbuckets ? t->nbuckets * 2 : MIN_BUCKETS;
	/* the first array is a must (the out-of-memory policy: base/alloc.h); a later one is
	 * not: longer chains are still correct */
	struct htab_node **b = t->nbuckets ? calloc(nb, sizeof(*b)) : xcalloc(nb, sizeof(*b));

	if (!b)
		return;
	for (size_t i = 0; i < t->nbuckets; i++) {
		for (struct htab_node *n = t->buckets[i], *next; n; n = next) {
			next = n->next;
			n->next = b[n->hash & (nb - 1)];
			b[n->hash & (nb - 1)] = n;
		}
	}
	free(t->buckets);
	t->buckets = b;
	t->nbuckets = nb;
}

void htab_insert_hashed(struct htab *t, struct htab_node *n, uint64_t hash)
{
	if (t->count >= (t->nbuckets < BIG_BUCKETS ? t->nbuckets : 2 * t->nbuckets))
		grow(t);
	n->hash = hash;
	n->next = t->buckets[hash & (t->nbuckets - 1)];
	t->buckets[hash & (t->nbuckets - 1)] = n;
	t->count++;
}

void htab_insert(struct htab *t, struct htab_node *n, const void *key)
{
	htab_insert_hashed(t, n, t->type->hash(t, key));
}

void htab_remove(struct htab *t, struct htab_node *n)
{
	if (!t->nbuckets)
		return;         /* nothing was ever inserted */
	struct htab_node **pp = &t->buckets[n->hash & (t->nbuckets - 1)];

	while (*pp && *pp != n)
		pp = &(*pp)->next;
	if (*pp) {
		*pp = n->next;
		n->next = NULL;
		if (!--t->count)
			htab_fini(t);   /* empty again: as before the first insert */
	}
}

struct htab_iter htab_iter(const struct htab *t)
{
	struct htab_iter it = { t, 0, NULL };

	while (it.bucket < t->nbuckets && !(it.next = t->buckets[it.bucket]))
		it.bucket++;
	return it;
}

struct htab_node *htab_next(struct htab_iter *it)
{
	struct htab_node *n = it->next;

	if (!n)
		return NULL;
	it->next = n->next;
	while (!it->next && ++it->bucket < it->t->nbuckets)
		it->next = it->t->buckets[it->bucket];
	return n;
}

void htab_drain(struct htab *t, void (*fn)(struct htab_node *n, void *arg), void *arg)
{
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct htab_node *n = t->buckets[i], *next;
		t->buckets[i] = NULL;
		for (; n; n = next) {
			next = n->next;
			n->next = NULL;
			if (fn)
				fn(n, arg);
		}
	}
	t->count = 0;
}
