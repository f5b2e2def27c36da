/* Repeated member names (base/json_keys.h): found at any depth, in small objects and large
 * ones, and nothing is found where every object's names are distinct. And the member lookup
 * (base/json_get.h): cJSON's own answer for every name of a set of objects. */
#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/json_get.h"
#include "base/json_keys.h"
#include "cunit_main.h"

/* The name json_repeated_key finds in text (NULL: none). */
static void expect(const char *text, const char *name)
{
	cJSON *v = cJSON_Parse(text);
	const char *dup;

	CU_ASSERT_PTR_NOT_NULL_FATAL(v);
	dup = json_repeated_key(v);
	if (!name) {
		CU_ASSERT_PTR_NULL(dup);
	} else if (!dup || strcmp(dup, name)) {
		CU_FAIL(text);
	}
	cJSON_Delete(v);
}

static void test_small(void)
{
	expect("{}", NULL);
	expect("[]", NULL);
	expect("42", NULL);
	expect("{\"a\":1,\"b\":2}", NULL);
	expect("{\"a\":1,\"a\":2}", "a");
	expect("{\"a\":1,\"b\":2,\"a\":3}", "a");
	/* names are compared as parsed: another case is another name, an escape the same one */
	expect("{\"a\":1,\"A\":2}", NULL);
	expect("{\"\\u0061\":1,\"a\":2}", "a");
	expect("{\"\":1,\"\":2}", "");
	/* at any depth, in arrays too: the arguments of a tools/call */
	expect("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"t\","
	       "\"arguments\":{\"path\":\"/safe\",\"path\":\"/etc/shadow\"}}}", "path");
	expect("[{\"x\":[1,{\"k\":1,\"k\":2}]}]", "k");
	expect("{\"a\":{\"b\":1},\"c\":{\"b\":2}}", NULL);
}

/* Past the pairwise size: sorted neighbours. */
static void test_large(void)
{
	char text[8192];
	size_t n = 0;

	n += (size_t)snprintf(text + n, sizeof(text) - n, "{");
	for (int i = 0; i < 500; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "%s\"k%03d\":%d", i ? "," : "",
				      i, i);
	snprintf(text + n, sizeof(text) - n, "}");
	expect(text, NULL);
	/* the same with one name again, last */
	text[strlen(text) - 1] = '\0';
	strcat(text, ",\"k250\":0}");
	expect(text, "k250");
}

/* json_get answers as cJSON_GetObjectItemCaseSensitive for each name asked of each object:
 * absent names, names that share a first byte or are a prefix of another, the empty name,
 * the first of a repeated name, case, escapes; not an object; NULL. */
static void test_get(void)
{
	static const char *const objects[] = {
		"{}",
		"{\"id\":1,\"it\":2,\"i\":3,\"idx\":4}",
		"{\"a\":1,\"a\":2,\"A\":3}",
		"{\"\":1,\"name\":\"n\",\"\\u006eame\":2}",
		"{\"params\":{\"name\":\"t\"},\"method\":\"tools/call\",\"jsonrpc\":\"2.0\"}",
		"[1,2]",
		"\"id\"",
	};
	static const char *const names[] = {
		"id", "it", "i", "idx", "ix", "a", "A", "", "name", "params", "method", "jsonrpc",
		"zz", "param",
	};

	for (size_t o = 0; o < sizeof(objects) / sizeof(*objects); o++) {
		cJSON *v = cJSON_Parse(objects[o]);

		CU_ASSERT_PTR_NOT_NULL_FATAL(v);
		for (size_t n = 0; n < sizeof(names) / sizeof(*names); n++)
			CU_ASSERT_PTR_EQUAL(json_get(v, names[n]),
					    cJSON_GetObjectItemCaseSensitive(v, names[n]));
		CU_ASSERT_PTR_NULL(json_get(v, NULL));
		cJSON_Delete(v);
	}
	CU_ASSERT_PTR_NULL(json_get(NULL, "id"));
	/* the first of a repeated name, found */
	cJSON *v = cJSON_Parse("{\"a\":1,\"a\":2}");
	CU_ASSERT_PTR_NOT_NULL_FATAL(v);
	CU_ASSERT_EQUAL(json_get(v, "a")->valueint, 1);
	cJSON_Delete(v);
}

CU_MAIN("json_keys", NULL, NULL,
	{ "member lookup", test_get },
	{ "small objects and nesting", test_small },
	{ "large objects", test_large })
