/* alloc: the out-of-memory policy, one place (docs/architecture.md).
 *
 * mcpwarden does not try to limp on without memory: a path that silently drops a JSON field
 * or a record under memory pressure is worse than a restart (the kernel half keeps enforcing
 * through pinned programs, charges are durable). So every allocation either succeeds or the
 * process aborts with a message, as redis does. cJSON gets the same allocator through
 * alloc_init(), which makes cJSON_Create* and cJSON_Add* infallible for want of memory: their
 * results need no check. Limits on what a client may make us allocate (body size, sessions,
 * pending requests) are enforced where the input arrives, long before this.
 */
#ifndef WARDEN_ALLOC_H
#define WARDEN_ALLOC_H

#include <stddef.h>

/* Install the aborting allocator into cJSON and libevent (whose first call must come after).
 * Call once, first thing in main(). */
void alloc_init(void);

void *xmalloc(size_t n) __attribute__((malloc, returns_nonnull));
void *xcalloc(size_t n, size_t size) __attribute__((malloc, returns_nonnull));
void *xrealloc(void *p, size_t n) __attribute__((returns_nonnull));
char *xstrdup(const char *s) __attribute__((malloc, returns_nonnull));
char *xstrndup(const char *s, size_t n) __attribute__((malloc, returns_nonnull));

/* Room for one more element in a growable array v of *cap elements (size bytes each) that
 * holds n: when full, the capacity doubles (first, the first time). Returns the array:
 * `l->v = xgrow(l->v, l->n, &l->cap, sizeof(*l->v), 16);`. */
void *xgrow(void *v, size_t n, size_t *cap, size_t size, size_t first)
	__attribute__((returns_nonnull));

/* A byte buffer v of *cap bytes made to hold at least need: the capacity doubles (from first)
 * until it does. Returns the buffer. Inline where it has room (dozens of appends a call on
 * the request path: the JSON writer, the parsers), a call only to grow. */
void *xreserve_grow(void *v, size_t need, size_t *cap, size_t first)
	__attribute__((returns_nonnull));

static inline __attribute__((returns_nonnull)) void *xreserve(void *v, size_t need, size_t *cap,
							       size_t first)
{
	return __builtin_expect(v && need <= *cap, 1) ? v : xreserve_grow(v, need, cap, first);
}

/* cJSON's and libevent's allocator (alloc_init installs it), also behind xcalloc's small
 * blocks and xstrdup: blocks of up to 64 KiB are kept for reuse on a thread between
 * alloc_cache_start and alloc_cache_stop, the event loop's (base/alloc_cache.c); elsewhere
 * xmalloc and free.
 * alloc_cache_put takes any malloc'd block: the blocks every call makes and frees (the
 * upstream exchange, the pending entry, the budget hold, the reply, the store operation, its
 * target's name) are freed with it, so that a class gets back what it gave; a block freed with
 * free() instead is no error, but the class then takes a new one from malloc next time. */
void *alloc_cache_get(size_t n) __attribute__((malloc, returns_nonnull));
void alloc_cache_put(void *p);
void alloc_cache_start(void);
/* Stop keeping blocks on this thread and free those kept. */
void alloc_cache_stop(void);

/* Free a NULL-terminated vector of strings and its strings; NULL: nothing. */
void strv_free(char **v);
/* Wipe a secret (a key, a token, a password) before its memory goes back; NULL: nothing. */
void free_secret(char *s);

#endif
