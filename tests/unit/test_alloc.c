/* test_alloc: cJSON's allocator with the event loop's cache of blocks (up to 64 KiB)
 * (base/alloc_cache.c): blocks come back for reuse only where the cache was started, every
 * block holds what was asked, kept blocks are poisoned under AddressSanitizer, and stopping
 * frees them (LeakSanitizer checks that at exit). */
#include <CUnit/Basic.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

#include "cunit_main.h"
#include "base/alloc.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define POISONED(p) __asan_address_is_poisoned(p)
#else
#define POISONED(p) true
#endif

/* A freed block is the next one of its size class; one of another class is not. */
static void test_reuse_by_class(void)
{
	alloc_cache_start();
	char *a = alloc_cache_get(20), *b;

	memset(a, 'a', 20);
	alloc_cache_put(a);
	CU_ASSERT(POISONED(a));
	b = alloc_cache_get(70);                /* another class: a stays kept */
	CU_ASSERT_PTR_NOT_EQUAL(b, a);
	memset(b, 'b', 70);
	CU_ASSERT_PTR_EQUAL(alloc_cache_get(24), a);   /* 20 and 24: the first class */
	alloc_cache_put(b);
	CU_ASSERT_PTR_EQUAL(alloc_cache_get(72), b);   /* 70 and 72: one class */
	free(a);                                /* plain free takes them, as anywhere */
	free(b);
	/* the larger classes, 64 bytes apart from 184 up: the structs a call makes */
	a = alloc_cache_get(300);
	memset(a, 'a', 300);
	alloc_cache_put(a);
	b = alloc_cache_get(313);               /* past 312: the next class */
	CU_ASSERT_PTR_NOT_EQUAL(b, a);
	memset(b, 'b', 313);
	CU_ASSERT_PTR_EQUAL(alloc_cache_get(249), a);  /* 249 .. 312: one class */
	alloc_cache_put(b);
	CU_ASSERT_PTR_EQUAL(alloc_cache_get(376), b);
	free(a);
	free(b);
	alloc_cache_stop();
}

/* Every size a node or a string may have, got from the cache and written whole; blocks
 * malloc'd elsewhere (a string cJSON_Print made, a strdup) are taken too and serve their
 * class. */
static void test_every_size_holds_its_bytes(void)
{
	enum { N = 1100 };      /* past the largest medium class (1080) */
	static void *p[N];

	alloc_cache_start();
	for (int round = 0; round < 3; round++) {
		for (size_t n = 0; n < N; n++) {
			p[n] = alloc_cache_get(n + 1);
			CU_ASSERT(malloc_usable_size(p[n]) >= n + 1);
			memset(p[n], (int)n, n + 1);
		}
		for (size_t n = 0; n < N; n++) {
			const unsigned char *c = p[n];
			CU_ASSERT(c[0] == (unsigned char)n && c[n] == (unsigned char)n);
			alloc_cache_put(p[n]);
		}
	}
	alloc_cache_put(strdup("a string strdup made"));
	alloc_cache_put(malloc(100));
	alloc_cache_put(NULL);
	for (size_t n = 1; n <= 120; n++) {
		char *s = alloc_cache_get(n);
		memset(s, 'x', n);
		alloc_cache_put(s);
	}
	alloc_cache_stop();
}

/* What a call makes outside cJSON comes back to the class it came from: libevent's buffer
 * chain (1024 bytes: it took a new block from malloc every call while the largest class was
 * 1016) and xstrdup's copies; xstrndup copies at most n bytes. */
static void test_balanced_round_trips(void)
{
	alloc_cache_start();
	void *chain = alloc_cache_get(1024);

	memset(chain, 'c', 1024);
	alloc_cache_put(chain);
	CU_ASSERT_PTR_EQUAL(alloc_cache_get(1024), chain);
	alloc_cache_put(chain);

	char *s = xstrdup("tools/call echo");

	CU_ASSERT_STRING_EQUAL(s, "tools/call echo");
	alloc_cache_put(s);
	CU_ASSERT_PTR_EQUAL(xstrdup("another target"), s);     /* 15 bytes each: one class */
	CU_ASSERT_STRING_EQUAL(s, "another target");
	alloc_cache_put(s);

	char *t = xstrndup("upstream__tool", 8);

	CU_ASSERT_STRING_EQUAL(t, "upstream");
	alloc_cache_put(t);
	t = xstrndup("short", 100);    /* n past the end: the whole string */
	CU_ASSERT_STRING_EQUAL(t, "short");
	free(t);
	t = xstrdup("");
	CU_ASSERT_STRING_EQUAL(t, "");
	free(t);
	alloc_cache_stop();
}

/* The large classes, 1.5 KiB to 64 KiB in half steps of powers of two (a tool's kilobytes of
 * answer): a block comes back to the largest class it holds and serves every size up to it;
 * one past 1.5 x 64 KiB is not kept; from 1081 to 1535 usable bytes, the 1080 class. */
static void test_large_classes(void)
{
	static const size_t size[] = { 1536, 2048, 3072, 4096, 6144, 8192, 12288, 16384, 24576,
				       32768, 49152, 65536 };
	enum { N = sizeof(size) / sizeof(size[0]) };

	alloc_cache_start();
	for (int i = 0; i < N; i++) {
		size_t lo = i ? size[i - 1] + 1 : 1081;
		char *a = alloc_cache_get(size[i]), *b;

		CU_ASSERT_FATAL(malloc_usable_size(a) >= size[i]);
		memset(a, 'a', size[i]);
		alloc_cache_put(a);
		CU_ASSERT(POISONED(a));
		b = alloc_cache_get(lo);        /* the smallest size of the class: the same block */
		CU_ASSERT_PTR_EQUAL(b, a);
		memset(b, 'b', size[i]);        /* and it holds the class's bytes */
		alloc_cache_put(b);
		if (i + 1 < N) {                /* one byte more: the next class, a new block */
			b = alloc_cache_get(size[i] + 1);
			CU_ASSERT_PTR_NOT_EQUAL(b, a);
			CU_ASSERT(malloc_usable_size(b) >= size[i + 1]);
			free(b);
		}
		free(alloc_cache_get(size[i]));
	}
	/* a block malloc'd elsewhere goes to the largest class it holds */
	char *m = malloc(5000);

	CU_ASSERT_FATAL(m != NULL);
	alloc_cache_put(m);
	CU_ASSERT_PTR_EQUAL(alloc_cache_get(4000), m);
	free(m);
	m = malloc(1200);               /* between the medium and the large classes */
	alloc_cache_put(m);
	CU_ASSERT_PTR_EQUAL(alloc_cache_get(1080), m);
	free(m);
	m = malloc(100000);             /* past the last half step: freed, not kept */
	alloc_cache_put(m);
	char *n = alloc_cache_get(65536);
	CU_ASSERT_PTR_NOT_EQUAL(n, m);
	alloc_cache_put(n);
	m = alloc_cache_get(70000);     /* past the last class: malloc's */
	CU_ASSERT(malloc_usable_size(m) >= 70000);
	memset(m, 'm', 70000);
	free(m);
	alloc_cache_stop();
}

/* More frees of one class than it keeps: the rest go back to malloc, nothing is lost. */
static void test_bounded(void)
{
	enum { N = 5000 };
	void **p = calloc(N, sizeof(*p));

	CU_ASSERT_FATAL(p != NULL);
	alloc_cache_start();
	for (int i = 0; i < N; i++)
		p[i] = alloc_cache_get(64);
	for (int i = 0; i < N; i++)
		alloc_cache_put(p[i]);
	for (int i = 0; i < N; i++)
		p[i] = alloc_cache_get(64);
	for (int i = 0; i < N; i++)
		alloc_cache_put(p[i]);
	for (int i = 0; i < N; i++)            /* a larger class, bounded by bytes */
		p[i] = alloc_cache_get(900);
	for (int i = 0; i < N; i++)
		alloc_cache_put(p[i]);
	for (int i = 0; i < 100; i++)          /* a large one: 2 blocks of 64 KiB at least */
		p[i] = alloc_cache_get(60000);
	for (int i = 0; i < 100; i++)
		alloc_cache_put(p[i]);
	alloc_cache_stop();
	free(p);
}

/* cJSON through the hooks alloc_init installs: trees made and freed while the cache runs. */
static void test_cjson_through_the_cache(void)
{
	alloc_cache_start();
	for (int i = 0; i < 100; i++) {
		cJSON *j = cJSON_Parse("{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\","
				       "\"params\":{\"name\":\"echo\",\"arguments\":{\"text\":\"hi\"}}}");
		CU_ASSERT_FATAL(j != NULL);
		char *s = cJSON_PrintUnformatted(j);
		CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(cJSON_GetObjectItem(
			cJSON_GetObjectItem(j, "params"), "arguments"), "text")->valuestring, "hi");
		CU_ASSERT(s && strstr(s, "\"method\":\"tools/call\""));
		cJSON_free(s);
		cJSON_Delete(j);
	}
	alloc_cache_stop();
}

/* Another thread, which never started the cache, gets plain malloc'd blocks and frees what
 * the loop's thread made. */
static void *other_thread(void *arg)
{
	void *mine = alloc_cache_get(24);

	alloc_cache_put(arg);           /* the loop's block: freed, not kept here */
	return mine;
}

static void test_threads_keep_their_own(void)
{
	pthread_t t;
	void *theirs = NULL;

	alloc_cache_start();
	void *mine = alloc_cache_get(24);
	CU_ASSERT_FATAL(pthread_create(&t, NULL, other_thread, mine) == 0);
	CU_ASSERT_FATAL(pthread_join(t, &theirs) == 0);
	CU_ASSERT_PTR_NOT_NULL(theirs);
	alloc_cache_put(theirs);        /* kept here: this thread started the cache */
	void *again = alloc_cache_get(24);
	CU_ASSERT_PTR_EQUAL(again, theirs);
	free(again);
	alloc_cache_stop();
}

static int suite_init(void)
{
	alloc_init();
	return 0;
}

CU_MAIN("alloc", suite_init, NULL,
	{ "a freed block is reused in its class", test_reuse_by_class },
	{ "every size holds its bytes; foreign blocks taken", test_every_size_holds_its_bytes },
	{ "the large classes, to 64 KiB", test_large_classes },
	{ "a call's blocks come back to their class", test_balanced_round_trips },
	{ "each class keeps a bounded number", test_bounded },
	{ "cJSON trees through the cache", test_cjson_through_the_cache },
	{ "a thread without the cache mallocs and frees", test_threads_keep_their_own })
