/* htab: the one hash table (intrusive, chained, typed; redis's dict with its dictType).
 *
 * Elements embed a `struct htab_node`; the table never allocates them. A `struct htab_type`
 * says how to hash a key and whether a node holds it, so one implementation serves string
 * names, integer ids and composite keys alike. Hashes are SipHash-1-3 under a per-table random
 * seed, so attacker-chosen keys (tool names, session ids, key hashes) cannot force collisions.
 * Buckets double when the load passes 1 (2 from 65,536 buckets up); lookups are O(1) expected.
 */
#ifndef WARDEN_HTAB_H
#define WARDEN_HTAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/list.h"  /* container_of */

struct htab;

struct htab_node {
	struct htab_node *next;
	uint64_t hash;
};

struct htab_type {
	/* Hash `key` with htab_hash_bytes (or a helper below) so the table's seed is used. */
	uint64_t (*hash)(const struct htab *t, const void *key);
	/* Does node n hold key? */
	bool (*eq)(const struct htab_node *n, const void *key);
};

struct htab {
	const struct htab_type *type;
	struct htab_node **buckets;
	size_t nbuckets;   /* power of two; 0 (and no array) while the table is empty */
	size_t count;
	uint8_t seed[16];
};

/* 0 or -ENOMEM / -EIO (no randomness for the seed). */
int htab_init(struct htab *t, const struct htab_type *type);
/* Frees the buckets only: the caller owns (and frees) the elements, e.g. with htab_drain. */
void htab_fini(struct htab *t);

uint64_t htab_hash_bytes(const struct htab *t, const void *data, size_t len);
uint64_t htab_hash_str(const struct htab *t, const char *s);
uint64_t htab_hash_u64(const struct htab *t, uint64_t v);
/* n words of ids the process assigned itself (base/intern), not of client-chosen bytes:
 * a seeded mix, several times cheaper than SipHash. */
uint64_t htab_hash_words(const struct htab *t, const uint64_t *w, size_t n);

/* A key of n bytes (a name joined from parts with NULs): elements that are found by one
 * embed `struct htab_node` and point at their own copy with htab_bytes_of. */
struct htab_bytes {
	const void *p;
	size_t n;
};
uint64_t htab_bytes_hash(const struct htab *t, const void *key);  /* key: struct htab_bytes */
static inline bool htab_bytes_eq(const struct htab_bytes *a, const struct htab_bytes *b)
{
	return a->n == b->n && !__builtin_memcmp(a->p, b->p, a->n);
}

struct htab_node *htab_find(const struct htab *t, const void *key);
/* The same with a hash already computed by t->type->hash (a lookup followed by an insert). */
struct htab_node *htab_find_hashed(const struct htab *t, const void *key, uint64_t hash);
/* Insert n under key (the caller checked it is absent). Never fails: when the buckets cannot
 * grow the chains just get longer. */
void htab_insert(struct htab *t, struct htab_node *n, const void *key);
void htab_insert_hashed(struct htab *t, struct htab_node *n, uint64_t hash);
/* Unlink n, which must be in t. */
void htab_remove(struct htab *t, struct htab_node *n);
static inline size_t htab_count(const struct htab *t) { return t->count; }

/* Iteration, safe against htab_remove of the node just returned:
 *   struct htab_iter it = htab_iter(t);
 *   for (struct htab_node *n; (n = htab_next(&it)); ) ...
 * Inserting while iterating may skip or repeat nodes. */
struct htab_iter {
	const struct htab *t;
	size_t bucket;
	struct htab_node *next;
};
struct htab_iter htab_iter(const struct htab *t);
struct htab_node *htab_next(struct htab_iter *it);

/* Remove every node, calling fn on each (to free it); the table stays usable. */
void htab_drain(struct htab *t, void (*fn)(struct htab_node *n, void *arg), void *arg);

#define htab_entry(ptr, type, member) container_of(ptr, type, member)

#endif
