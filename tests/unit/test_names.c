/* Name mapping: exposed names, splitting them back, URI templates; and the hash map under it. */
#include <CUnit/Basic.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/hmap.h"
#include "mcp/names.h"
#include "cunit_main.h"

static void test_expose_split(void)
{
	char server[33];
	const char *rest;
	char *e = names_expose("git-hub", NAMES_NAME, "create__issue");

	CU_ASSERT_STRING_EQUAL(e, "git-hub__create__issue");
	/* The first separator ends the server: tool names may contain "__" themselves. */
	CU_ASSERT_EQUAL(names_split(e, NAMES_NAME, server, &rest), 0);
	CU_ASSERT_STRING_EQUAL(server, "git-hub");
	CU_ASSERT_STRING_EQUAL(rest, "create__issue");
	free(e);
	e = names_expose("fs", NAMES_URI, "git+ssh://host/repo");
	CU_ASSERT_STRING_EQUAL(e, "fs+git+ssh://host/repo");
	CU_ASSERT_EQUAL(names_split(e, NAMES_URI, server, &rest), 0);
	CU_ASSERT_STRING_EQUAL(server, "fs");
	CU_ASSERT_STRING_EQUAL(rest, "git+ssh://host/repo");
	free(e);
	CU_ASSERT_EQUAL(names_split("plain", NAMES_NAME, server, &rest), -ENOENT);
	CU_ASSERT_EQUAL(names_split("__x", NAMES_NAME, server, &rest), -ENOENT);
	CU_ASSERT_EQUAL(names_split("Upper__x", NAMES_NAME, server, &rest), -ENOENT);
	CU_ASSERT_EQUAL(names_split("a__", NAMES_NAME, server, &rest), -ENOENT);
	CU_ASSERT_EQUAL(names_split("abcdefghijabcdefghijabcdefghijabc__x", NAMES_NAME, server, &rest), -ENOENT);
	CU_ASSERT_EQUAL(names_split("demo://x", NAMES_URI, server, &rest), -ENOENT);
}

static void test_templates(void)
{
	CU_ASSERT_TRUE(names_template_match("test://template/{id}/data", "test://template/123/data"));
	CU_ASSERT_FALSE(names_template_match("test://template/{id}/data", "test://template//data"));
	CU_ASSERT_FALSE(names_template_match("test://template/{id}/data", "test://template/1/2/data"));
	CU_ASSERT_TRUE(names_template_match("file:///{+path}", "file:///a/b/c.txt"));
	CU_ASSERT_TRUE(names_template_match("demo://resource/dynamic/text/{resourceId}", "demo://resource/dynamic/text/7"));
	CU_ASSERT_FALSE(names_template_match("demo://{a}", "other://x"));
	CU_ASSERT_TRUE(names_template_match("x://{a}-{b}", "x://p-q-r"));
	CU_ASSERT_FALSE(names_template_match("x://{a", "x://a"));
}

static void test_hmap(void)
{
	struct hmap *m = hmap_new();
	char key[32];
	const char *k;
	void *v;
	size_t seen = 0;

	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	for (long i = 0; i < 5000; i++) {
		snprintf(key, sizeof(key), "tool-%ld", i);
		CU_ASSERT_EQUAL(hmap_put(m, key, (void *)(i + 1), NULL), 0);
	}
	CU_ASSERT_EQUAL(hmap_count(m), 5000);
	CU_ASSERT_EQUAL((long)hmap_get(m, "tool-4321"), 4322);
	CU_ASSERT_PTR_NULL(hmap_get(m, "tool-5000"));
	CU_ASSERT_EQUAL(hmap_put(m, "tool-1", (void *)99, &v), 0);
	CU_ASSERT_EQUAL((long)v, 2);
	/* Deleting the current entry while iterating is allowed. */
	struct hmap_iter it = hmap_iter(m);
	while (hmap_next(m, &it, &k, &v)) {
		seen++;
		if ((long)v % 2 == 0)
			hmap_del(m, k);
	}
	CU_ASSERT_EQUAL(seen, 5000);
	/* 2499 even values went; tool-1 now holds 99 and stays. */
	CU_ASSERT_EQUAL(hmap_count(m), 2501);
	CU_ASSERT_EQUAL((long)hmap_get(m, "tool-1"), 99);
	CU_ASSERT_PTR_NULL(hmap_get(m, "tool-3"));
	CU_ASSERT_PTR_NULL(hmap_del(m, "nope"));
	hmap_free(m, NULL);
}

CU_MAIN("names", NULL, NULL,
	{ "expose and split", test_expose_split },
	{ "URI templates", test_templates },
	{ "hash map", test_hmap })
