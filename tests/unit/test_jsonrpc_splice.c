/* An upstream's tools/call answer kept as text (mcp/jsonrpc_splice.h): what is spliced prints
 * exactly as the full parse would have printed it, and everything unusual falls back. */
#include <CUnit/Basic.h>
#include <string.h>

#include "mcp/jsonrpc.h"
#include "mcp/jsonrpc_splice.h"
#include "cunit_main.h"

/* The spliced message prints as cJSON would print the fully parsed one. */
static void check_same(const char *text)
{
	cJSON *sp = jsonrpc_splice_response(text, strlen(text));
	cJSON *full = cJSON_Parse(text);

	CU_ASSERT_PTR_NOT_NULL_FATAL(sp);
	CU_ASSERT_PTR_NOT_NULL_FATAL(full);
	CU_ASSERT_TRUE(jsonrpc_spliced(sp));
	char *a = jsonrpc_print(sp);
	/* the upstream's key order may differ: compare the result and the id */
	char *b = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(full, "result"));
	CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItemCaseSensitive(sp, "result")->valuestring, b);
	CU_ASSERT_TRUE(cJSON_Compare(cJSON_GetObjectItemCaseSensitive(sp, "id"),
				     cJSON_GetObjectItemCaseSensitive(full, "id"), true));
	CU_ASSERT_PTR_NOT_NULL(strstr(a, "\"jsonrpc\":\"2.0\""));
	/* and turned back into a tree, it is the full parse's */
	CU_ASSERT_EQUAL(jsonrpc_unsplice(sp), 0);
	CU_ASSERT_FALSE(jsonrpc_spliced(sp));
	CU_ASSERT_TRUE(cJSON_Compare(sp, full, true));
	cJSON_free(a);
	cJSON_free(b);
	cJSON_Delete(sp);
	cJSON_Delete(full);
}

static void test_spliced(void)
{
	check_same("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}");
	check_same("{\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"hi \\\"there\\\"\\n\"}],"
		   "\"isError\":false},\"jsonrpc\":\"2.0\",\"id\":42}");
	check_same(" { \"id\" : -7 ,\r\n \"jsonrpc\":\"2.0\", \"result\": { \"a\" : [ 1 , -2 , 0 ,"
		   " true, false, null, \"\\\\\\t\\b\\f\\r\" ], \"b\": {\"c\": [[]], \"d\": {}},"
		   " \"é\": \"ü\" } }\n");
	check_same("{\"jsonrpc\":\"2.0\",\"id\":999999999999999,\"result\":{\"n\":123456789,"
		   "\"structuredContent\":{\"x\":[\"uri-like\",\"task\"]}}}");
}

static void test_whitespace_dropped(void)
{
	const char *text = "{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{ \"a\" :\n[ 1, \"b c\" ] }}";
	cJSON *sp = jsonrpc_splice_response(text, strlen(text));

	CU_ASSERT_PTR_NOT_NULL_FATAL(sp);
	/* its length is the record's result_bytes: as a tree printed compactly */
	CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItemCaseSensitive(sp, "result")->valuestring,
			       "{\"a\":[1,\"b c\"]}");
	cJSON_Delete(sp);
}

static void test_fallbacks(void)
{
	static const char *const cases[] = {
		/* not this shape */
		"", "[]", "{}", "{\"jsonrpc\":\"2.0\",\"id\":1}",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-1,\"message\":\"x\"}}",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":[]}",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{},\"extra\":1}",
		"{\"jsonrpc\":\"2.0\",\"method\":\"x\",\"id\":1,\"result\":{}}",
		"{\"jsonrpc\":\"1.0\",\"id\":1,\"result\":{}}",
		"{\"jsonrpc\":\"2.0\",\"id\":\"s\",\"result\":{}}",
		"{\"jsonrpc\":\"2.0\",\"id\":1.5,\"result\":{}}",
		"{\"jsonrpc\":\"2.0\",\"id\":01,\"result\":{}}",
		"{\"jsonrpc\":\"2.0\",\"id\":-0,\"result\":{}}",
		"{\"jsonrpc\":\"2.0\",\"id\":1234567890123456,\"result\":{}}",
		"{\"jsonrpc\":\"2.0\",\"id\":null,\"result\":{}}",
		/* duplicate keys: the full parse decides */
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"id\":2,\"result\":{}}",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{},\"result\":{}}",
		"{\"jsonrpc\":\"2.0\",\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}",
		/* the gateway reads inside */
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"isError\":true}}",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"isError\":null}}",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"task\":{\"taskId\":\"t\"}}}",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"content\":[{\"type\":\"resource_link\","
		"\"uri\":\"file:///x\"}]}}",
		/* printed differently by cJSON */
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"a\":\"\\u00e9\"}}",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"a\":\"\\/\"}}",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"a\":1.5}}",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"a\":1e3}}",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"a\":1234567890}}",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"a\":-0}}",
		/* invalid JSON: refused (or not) by the full parse, as before */
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"a\":01}}",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"a\":[1,]}}",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"a\":tru}}",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"a\":\"x\ty\"}}",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"a\":\"x}}",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"a\" 1}}",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}} x",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\f}}",
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cJSON *sp = jsonrpc_splice_response(cases[i], strlen(cases[i]));
		if (sp)
			fprintf(stderr, "spliced, should not: %s\n", cases[i]);
		CU_ASSERT_PTR_NULL(sp);
		cJSON_Delete(sp);
	}
}

static void test_depth(void)
{
	char text[4096];
	size_t n = 0;
	int depth;

	for (int pass = 0; pass < 2; pass++) {
		/* the result at JSONRPC_SPLICE_MAX_DEPTH - 1 nested arrays is kept, one more not */
		depth = JSONRPC_SPLICE_MAX_DEPTH - 1 + pass;
		n = (size_t)snprintf(text, sizeof(text), "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"a\":");
		for (int i = 0; i < depth; i++)
			text[n++] = '[';
		for (int i = 0; i < depth; i++)
			text[n++] = ']';
		n += (size_t)snprintf(text + n, sizeof(text) - n, "}}");
		cJSON *sp = jsonrpc_splice_response(text, n);
		CU_ASSERT_EQUAL(sp != NULL, pass == 0);
		cJSON_Delete(sp);
	}
}

static void test_unsplice_plain(void)
{
	cJSON *m = cJSON_Parse("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"a\":1}}");

	CU_ASSERT_FALSE(jsonrpc_spliced(m));
	CU_ASSERT_EQUAL(jsonrpc_unsplice(m), 0);     /* a tree already: untouched */
	CU_ASSERT_TRUE(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(m, "result")));
	cJSON_Delete(m);
}

CU_MAIN("jsonrpc_splice", NULL, NULL,
	{ "spliced answers print as the full parse", test_spliced },
	{ "whitespace outside strings dropped", test_whitespace_dropped },
	{ "unusual answers fall back to the full parse", test_fallbacks },
	{ "nesting limit", test_depth },
	{ "unsplice of a tree", test_unsplice_plain })
