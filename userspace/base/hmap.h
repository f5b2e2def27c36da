/* hmap: a string → pointer map for the places that want one without embedding a node (the
 * callers' maps of session ids, request ids, subscriptions). A thin layer on htab: keys are
 * copied into the map's own nodes; values are opaque pointers the caller owns.
 */
#ifndef WARDEN_HMAP_H
#define WARDEN_HMAP_H

#include <stddef.h>

#include "base/htab.h"

struct hmap;

/* A map that most of its owners never use (a session's relayed requests, subscriptions) may
 * stay NULL until the first hmap_put_lazy: every reader below takes NULL as the empty map. */
struct hmap *hmap_new(void);
/* Frees the map and its key copies; calls free_value on each value when not NULL. */
void hmap_free(struct hmap *m, void (*free_value)(void *));
/* Insert or replace; returns the previous value through *old when not NULL. 0 (out of memory
 * ends the process: base/alloc.h). */
int hmap_put(struct hmap *m, const char *key, void *value, void **old);
/* The same, making *m first when it is NULL. 0 or -ENOMEM / -EIO (as hmap_new). */
int hmap_put_lazy(struct hmap **m, const char *key, void *value, void **old);
void *hmap_get(const struct hmap *m, const char *key);
/* Remove; returns the value or NULL. */
void *hmap_del(struct hmap *m, const char *key);
size_t hmap_count(const struct hmap *m);

/* Iteration: for (it = hmap_iter(m); hmap_next(m, &it, &k, &v); ) — do not modify the map
 * while iterating except through hmap_del of the current key. */
struct hmap_iter { struct htab_iter it; };
struct hmap_iter hmap_iter(const struct hmap *m);
int hmap_next(const struct hmap *m, struct hmap_iter *it, const char **key, void **value);

#endif
