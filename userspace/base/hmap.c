/* hmap: chained string-keyed hash map with SipHash-2-4. */
#include "base/hmap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/rand.h>

struct node {
	struct node *next;
	uint64_t hash;
	void *value;
	char key[];
};

struct hmap {
	struct node **buckets;
	size_t nbuckets;    /* power of two */
	size_t count;
	uint8_t seed[16];
};

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

uint64_t hmap_siphash(const uint8_t k[16], const void *data, size_t len)
{
	const uint8_t *in = data, *end = in + (len - len % 8);
	uint64_t k0 = le64(k), k1 = le64(k + 8), b = (uint64_t)len << 56, m;
	uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
	uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;

	for (; in != end; in += 8) {
		m = le64(in);
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	for (size_t i = 0; i < len % 8; i++)
		b |= (uint64_t)in[i] << (8 * i);
	v3 ^= b;
	SIPROUND;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

struct hmap *hmap_new(void)
{
	struct hmap *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->nbuckets = 16;
	m->buckets = calloc(m->nbuckets, sizeof(*m->buckets));
	if (!m->buckets || RAND_bytes(m->seed, sizeof(m->seed)) != 1) {
		free(m->buckets);
		free(m);
		return NULL;
	}
	return m;
}

void hmap_free(struct hmap *m, void (*free_value)(void *))
{
	if (!m)
		return;
	for (size_t i = 0; i < m->nbuckets; i++) {
		struct node *n = m->buckets[i], *next;
		for (; n; n = next) {
			next = n->next;
			if (free_value)
				free_value(n->value);
			free(n);
		}
	}
	free(m->buckets);
	free(m);
}

static struct node **find(const struct hmap *m, const char *key, uint64_t h)
{
	struct node **pp = &m->buckets[h & (m->nbuckets - 1)];

	for (; *pp; pp = &(*pp)->next)
		if ((*pp)->hash == h && strcmp((*pp)->key, key) == 0)
			return pp;
	return pp;
}

static int grow(struct hmap *m)
{
	size_t nb = m->nbuckets * 2;
	struct node **b = calloc(nb, sizeof(*b));

	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < m->nbuckets; i++) {
		struct node *n = m->buckets[i], *next;
		for (; n; n = next) {
			next = n->next;
			n->next = b[n->hash & (nb - 1)];
			b[n->hash & (nb - 1)] = n;
		}
	}
	free(m->buckets);
	m->buckets = b;
	m->nbuckets = nb;
	return 0;
}

int hmap_put(struct hmap *m, const char *key, void *value, void **old)
{
	size_t klen = strlen(key);
	uint64_t h = hmap_siphash(m->seed, key, klen);
	struct node **pp = find(m, key, h), *n;

	if (*pp) {
		if (old)
			*old = (*pp)->value;
		(*pp)->value = value;
		return 0;
	}
	if (old)
		*old = NULL;
	if (m->count >= m->nbuckets && grow(m) == 0)
		pp = find(m, key, h);
	n = malloc(sizeof(*n) + klen + 1);
	if (!n)
		return -ENOMEM;
	n->hash = h;
	n->value = value;
	memcpy(n->key, key, klen + 1);
	n->next = NULL;
	*pp = n;
	m->count++;
	return 0;
}

void *hmap_get(const struct hmap *m, const char *key)
{
	struct node *n = *find(m, key, hmap_siphash(m->seed, key, strlen(key)));

	return n ? n->value : NULL;
}

void *hmap_del(struct hmap *m, const char *key)
{
	struct node **pp = find(m, key, hmap_siphash(m->seed, key, strlen(key))), *n = *pp;
	void *v;

	if (!n)
		return NULL;
	*pp = n->next;
	v = n->value;
	free(n);
	m->count--;
	return v;
}

size_t hmap_count(const struct hmap *m) { return m->count; }

struct hmap_iter hmap_iter(const struct hmap *m)
{
	struct hmap_iter it = { 0, NULL, NULL };

	(void)m;
	return it;
}

int hmap_next(const struct hmap *m, struct hmap_iter *it, const char **key, void **value)
{
	struct node *n = it->next;

	/* `next` is read before the caller can delete the current node. */
	while (!n && it->bucket < m->nbuckets)
		n = m->buckets[it->bucket++];
	if (!n)
		return 0;
	it->node = n;
	it->next = n->next;
	if (key)
		*key = n->key;
	if (value)
		*value = n->value;
	return 1;
}
