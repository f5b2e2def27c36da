/* hmap: a string-keyed hash map (chained, power-of-two buckets, SipHash-2-4 with a per-map
 * random key so that attacker-chosen names — tool names, session ids — cannot force
 * collisions). Keys are copied; values are opaque pointers the caller owns.
 */
#ifndef WARDEN_HMAP_H
#define WARDEN_HMAP_H

#include <stddef.h>
#include <stdint.h>

struct hmap;

struct hmap *hmap_new(void);
/* Frees the map and its key copies; calls free_value on each value when not NULL. */
void hmap_free(struct hmap *m, void (*free_value)(void *));
/* Insert or replace; returns the previous value through *old when not NULL. 0 or -ENOMEM. */
int hmap_put(struct hmap *m, const char *key, void *value, void **old);
void *hmap_get(const struct hmap *m, const char *key);
/* Remove; returns the value or NULL. */
void *hmap_del(struct hmap *m, const char *key);
size_t hmap_count(const struct hmap *m);

/* Iteration: for (it = hmap_iter(m); hmap_next(m, &it, &k, &v); ) — do not modify the map
 * while iterating except through hmap_del of the current key. */
struct hmap_iter { size_t bucket; void *node; void *next; };
struct hmap_iter hmap_iter(const struct hmap *m);
int hmap_next(const struct hmap *m, struct hmap_iter *it, const char **key, void **value);

/* SipHash-2-4 of data under key k (16 bytes). */
uint64_t hmap_siphash(const uint8_t k[16], const void *data, size_t len);

#endif
