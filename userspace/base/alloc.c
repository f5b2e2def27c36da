/* alloc: allocate or abort. */
#include "base/alloc.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include <event2/event.h>

static _Noreturn void oom(size_t n)
{
	char msg[96];
	int len = snprintf(msg, sizeof(msg), "mcpwarden: out of memory allocating %zu bytes\n", n);

	/* No stdio buffers, no locks: the log thread may be the one that ran out. */
	if (len > 0 && write(STDERR_FILENO, msg, (size_t)len) < 0)
		abort();
	abort();
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		oom(n);
	return p;
}

/* Small blocks are malloc'd and cleared: glibc's calloc skips its per-thread cache and takes
 * the arena's lock every time, and the loop makes a dozen small structs a call. Large ones
 * keep calloc, which knows fresh pages are zero already. (alloc_cache_get, in another file:
 * the compiler turns a malloc it sees followed by a memset back into calloc.) */
#define CALLOC_SMALL 4096

void *xcalloc(size_t n, size_t size)
{
	size_t bytes;

	if (!__builtin_mul_overflow(n, size, &bytes) && bytes && bytes <= CALLOC_SMALL)
		return memset(alloc_cache_get(bytes), 0, bytes);
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (!p)
		oom(n * size);
	return p;
}

void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (!q)
		oom(n);
	return q;
}

void *xgrow(void *v, size_t n, size_t *cap, size_t size, size_t first)
{
	size_t want = *cap ? *cap * 2 : first, bytes;

	if (v && n < *cap)
		return v;
	if (want < *cap || __builtin_mul_overflow(want, size, &bytes))
		oom(SIZE_MAX);
	*cap = want;
	return xrealloc(v, bytes);
}

void *xreserve_grow(void *v, size_t need, size_t *cap, size_t first)
{
	size_t want = *cap ? *cap : first;

	if (v && need <= *cap)
		return v;
	while (want < need)
		if (__builtin_mul_overflow(want, 2, &want))
			oom(SIZE_MAX);
	*cap = want;
	return xrealloc(v, want);
}

/* Copies go through alloc_cache_get: on the loop a call makes and frees a few (its target,
 * its upstream's name), elsewhere it is xmalloc. */
char *xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;

	return memcpy(alloc_cache_get(n), s, n);
}

char *xstrndup(const char *s, size_t n)
{
	char *d;

	n = strnlen(s, n);
	d = alloc_cache_get(n + 1);
	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

static void *ev_realloc(void *p, size_t n)
{
	return xrealloc(p, n);
}

void alloc_init(void)
{
	cJSON_Hooks h = { alloc_cache_get, alloc_cache_put };

	cJSON_InitHooks(&h);
	/* libevent's too: a call's timer and buffers come and go with it */
	event_set_mem_functions(alloc_cache_get, ev_realloc, alloc_cache_put);
}

void strv_free(char **v)
{
	for (char **p = v; p && *p; p++)
		free(*p);
	free(v);
}

void free_secret(char *s)
{
	if (s)
		explicit_bzero(s, strlen(s));
	free(s);
}
