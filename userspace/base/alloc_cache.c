/* alloc_cache: the event loop's small blocks kept for reuse on its thread.
 *
 * A call makes and frees a few dozen JSON nodes and short strings (its request's tree, the
 * record's, the upstream's envelope) and a few structs of a few hundred bytes (the upstream
 * exchange, the pending entry, the budget hold), and a loop turn serves many calls at once: it
 * frees hundreds of blocks of a few sizes, then takes as many back the next turn. glibc's
 * per-thread cache keeps 7 blocks a size; the rest went through the arena's bins and their
 * lock, ~7 % of the loop's time in the proxy benchmark. Here each size class keeps up to
 * CLASS_MAX blocks, or CLASS_BYTES for the larger classes: the store's operations come back
 * from its writer a thousand at a time, and a call makes three blocks of their class.
 *
 * Only a thread that asked (alloc_cache_start) keeps blocks; elsewhere this is malloc and
 * free. A class is a usable size: 24 to 120 bytes in steps of 16, then 184 to 1080 in steps
 * of 64 (every one of them a size glibc's chunks give exactly; 1080 holds libevent's 1024-byte
 * buffer chain), then 1.5 KiB to 64 KiB in half steps of powers of two: a tool's larger
 * answer and arguments (kept as text, decoded strings, the answer's buffer) made four blocks
 * of kilobytes a call, each through glibc's bins, ~4 % of the loop's instructions at 4 KiB.
 * A block is put in the largest class its usable size (malloc_usable_size) covers, so
 * whatever allocated it, a block taken from a class holds that class's bytes. Under
 * AddressSanitizer a kept block is poisoned, so a use after free is still caught. */
#include "base/alloc.h"

#include <malloc.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define SMALL 7                 /* 24 .. 120 in steps of 16 */
#define MEDIUM 22               /* then 184 .. 1080 in steps of 64 */
#define CLASSES 34              /* then 1536, 2048, 3072, 4096 .. 49152, 65536 */
#define CLASS_MIN 24
#define CLASS_STEP 16
#define SMALL_MAX 120
#define BIG_STEP 64
#define MEDIUM_MAX 1080
#define CLASS_MAX 512           /* blocks kept a class: 252 KiB at most for the small ones */
#define CLASS_BYTES 262144      /* a medium class keeps what fits in this: 3.75 MiB in all */
#define LARGE_BYTES 131072      /* a large one this, at least 2 blocks: 1.6 MiB in all */

/* A class's kept blocks are a stack of pointers, not a list threaded through the blocks: a
 * take then reads only the stack, never the block, whose memory may have left the cache since
 * it was put (the profile at 64 connections showed the list's load of `next` as the loop's
 * costliest user-space instruction). */
struct cache {
	bool on;
	uint32_t n[CLASSES];            /* blocks kept a class */
	uint32_t max[CLASSES];          /* blocks a class may keep */
	void **slot[CLASSES];           /* the kept blocks, slot[c][0 .. n[c]) */
	void **slots;                   /* one allocation behind every slot[c] */
};

static _Thread_local struct cache cache;

/* The large classes: 3 << k and 4 << k bytes, k from 9. */
static size_t large_size(int i)
{
	return (size_t)(3 + (i & 1)) << (9 + i / 2);
}

static size_t class_size(int c)
{
	return c < SMALL ? CLASS_MIN + (size_t)c * CLASS_STEP
	       : c < MEDIUM ? SMALL_MAX + (size_t)(c - SMALL + 1) * BIG_STEP
	       : large_size(c - MEDIUM);
}

static uint32_t class_max(int c)
{
	if (c < SMALL)
		return CLASS_MAX;
	if (c < MEDIUM)
		return (uint32_t)(CLASS_BYTES / class_size(c));
	return LARGE_BYTES / class_size(c) > 2 ? (uint32_t)(LARGE_BYTES / class_size(c)) : 2;
}

/* The large class that n bytes need (the first that holds them; n in (MEDIUM_MAX, 65536]),
 * or with fits, the one a block of n usable bytes fits (the last it holds; n at least 1536),
 * CLASSES for one past the last half step, which is not kept. Class i is 3 << (9 + i / 2)
 * bytes for an even i, 4 << (8 + i / 2) for an odd one: with b the top bit of n, the two
 * candidates are 3 << (b - 1) and 1 << b or 1 << (b + 1). */
static int large_class(size_t n, bool fits)
{
	int b, i;

	if (!fits) {
		b = 63 - __builtin_clzll((unsigned long long)(n - 1));  /* 2^b < n <= 2^(b+1) */
		i = 2 * (b - 10) + (n > (size_t)3 << (b - 1));
		return MEDIUM + (i < 0 ? 0 : i);
	}
	b = 63 - __builtin_clzll((unsigned long long)n);                /* 2^b <= n < 2^(b+1) */
	i = n >= (size_t)3 << (b - 1) ? 2 * (b - 10) : 2 * (b - 11) + 1;
	return i < CLASSES - MEDIUM ? MEDIUM + i : CLASSES;
}

void *alloc_cache_get(size_t n)
{
	if (cache.on && n <= class_size(CLASSES - 1)) {
		int c = n <= CLASS_MIN ? 0
			: n <= SMALL_MAX ? (int)((n - CLASS_MIN + CLASS_STEP - 1) / CLASS_STEP)
			: n <= MEDIUM_MAX ? SMALL - 1 + (int)((n - SMALL_MAX + BIG_STEP - 1) / BIG_STEP)
			: large_class(n, false);
		if (!cache.n[c])
			return xmalloc(class_size(c));
		void *b = cache.slot[c][--cache.n[c]];
		UNPOISON(b, class_size(c));
		return b;
	}
	return xmalloc(n);
}

void alloc_cache_put(void *p)
{
	size_t u;
	int c;

	if (!p)
		return;
	if (!cache.on || (u = malloc_usable_size(p)) < CLASS_MIN) {
		free(p);
		return;
	}
	c = u <= SMALL_MAX ? (int)((u - CLASS_MIN) / CLASS_STEP)
	    : u <= MEDIUM_MAX ? SMALL - 1 + (int)((u - SMALL_MAX) / BIG_STEP)
	    : u < large_size(0) ? MEDIUM - 1
	    : large_class(u, true);
	if (c >= CLASSES || cache.n[c] == cache.max[c]) {
		free(p);
		return;
	}
	cache.slot[c][cache.n[c]++] = p;
	POISON(p, class_size(c));
}

void alloc_cache_start(void)
{
	size_t total = 0;

	if (cache.on)
		return;
	for (int c = 0; c < CLASSES; c++)
		total += cache.max[c] = class_max(c);
	cache.slots = xmalloc(total * sizeof(*cache.slots));
	total = 0;
	for (int c = 0; c < CLASSES; c++) {
		cache.slot[c] = cache.slots + total;
		cache.n[c] = 0;
		total += cache.max[c];
	}
	cache.on = true;
}

void alloc_cache_stop(void)
{
	cache.on = false;
	for (int c = 0; c < CLASSES; c++) {
		while (cache.n[c]) {
			void *b = cache.slot[c][--cache.n[c]];
			UNPOISON(b, class_size(c));
			free(b);
		}
		cache.max[c] = 0;
	}
	free(cache.slots);
	cache.slots = NULL;
}
