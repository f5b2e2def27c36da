/* loop_guard: repeated identical calls, counted per digest in a bounded LRU table. */
#include "govern/loop_guard.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/hmap.h"
#include "base/list.h"

struct entry {
	struct list_head lru;           /* most recent first */
	char digest[65];
	unsigned n, head;               /* times held, next slot */
	int64_t t[LOOP_GUARD_MAX_REPEATS];
};

struct loop_guard {
	struct hmap *by_digest;
	struct list_head lru;
	size_t max;
};

struct loop_guard *loop_guard_new(size_t max_entries)
{
	struct loop_guard *lg = xcalloc(1, sizeof(*lg));

	lg->by_digest = hmap_new();
	if (!lg->by_digest) {
		free(lg);
		return NULL;
	}
	list_init(&lg->lru);
	lg->max = max_entries ? max_entries : 1;
	return lg;
}

void loop_guard_free(struct loop_guard *lg)
{
	if (!lg)
		return;
	hmap_free(lg->by_digest, free);
	free(lg);
}

size_t loop_guard_count(const struct loop_guard *lg)
{
	return hmap_count(lg->by_digest);
}

int loop_guard_check(struct loop_guard *lg, const char *digest, unsigned max_repeats,
		     int64_t window_ms, int64_t now_ms, int64_t *retry_ms)
{
	struct entry *e = hmap_get(lg->by_digest, digest);
	unsigned in_window = 0;
	int64_t oldest = 0;

	*retry_ms = 0;
	if (!max_repeats)
		return 0;
	if (max_repeats > LOOP_GUARD_MAX_REPEATS)
		max_repeats = LOOP_GUARD_MAX_REPEATS;
	if (!e) {
		if (hmap_count(lg->by_digest) >= lg->max) {
			struct entry *old = list_last_entry(&lg->lru, struct entry, lru);
			list_del(&old->lru);
			hmap_del(lg->by_digest, old->digest);
			free(old);
		}
		e = xcalloc(1, sizeof(*e));
		memcpy(e->digest, digest, sizeof(e->digest) - 1);
		if (hmap_put(lg->by_digest, e->digest, e, NULL)) {
			free(e);
			return -ENOMEM;
		}
	} else {
		list_del(&e->lru);
	}
	list_add(&e->lru, &lg->lru);
	/* the last max_repeats admitted calls are in the ring; count those still in the window */
	for (unsigned i = 0; i < e->n; i++) {
		int64_t t = e->t[i];
		if (now_ms - t < window_ms) {
			if (!in_window || t < oldest)
				oldest = t;
			in_window++;
		}
	}
	if (in_window >= max_repeats) {
		*retry_ms = oldest + window_ms - now_ms;
		return -EAGAIN;
	}
	e->t[e->head] = now_ms;
	e->head = (e->head + 1) % max_repeats;
	if (e->n < max_repeats)
		e->n++;
	return 0;
}
