/* tools/call messages kept as text (mcp/jsonrpc_splice.h). An upstream's answer: what is
 * spliced prints exactly as the full parse would have printed it. The agent's request: its
 * one-pass tree is cJSON's, node for node; what is forwarded is the agent's params with the
 * routed tool name, the same tree once parsed. Both: everything unusual falls back. */
#include <CUnit/Basic.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcp/jsonrpc.h"
#include "mcp/jsonrpc_splice.h"
#include "cunit_main.h"
#include "json_same.h"

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

/* Every escape cJSON prints back, at every place of a string longer than the 16-byte scan:
 * spliced, the same as the full parse; a raw control character or \\/ there: not spliced. */
static void test_string_sweep(void)
{
	static const char *const ok[] = { "\\\"", "\\\\", "\\n", "\\t", "\\b" };
	static const char *const no[] = { "\x01", "\x1f", "\\/", "\\u0041" };
	char text[256], s[128];

	for (size_t at = 0; at <= 40; at++) {
		for (size_t k = 0; k < sizeof(ok) / sizeof(ok[0]) + sizeof(no) / sizeof(no[0]); k++) {
			bool good = k < sizeof(ok) / sizeof(ok[0]);
			const char *esc = good ? ok[k] : no[k - sizeof(ok) / sizeof(ok[0])];

			snprintf(s, sizeof(s), "%.*s%s%.*s", (int)at, "abcdefghijklmnopqrstuvwxyz"
				 "ABCDEFGHIJKLMNOPQRSTUVWXYZ", esc, (int)(40 - at),
				 "0123456789012345678901234567890123456789");
			snprintf(text, sizeof(text), "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":"
				 "{\"text\":\"%s\"}}", s);
			if (good) {
				check_same(text);
			} else {
				cJSON *sp = jsonrpc_splice_response(text, strlen(text));
				CU_ASSERT_PTR_NULL(sp);
				cJSON_Delete(sp);
			}
		}
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


/* The agent's request as the route leaves it: the tree parsed from text, its name replaced by
 * upname (NULL: left). What is forwarded must parse to that tree, and be the text's bytes. */
static char *forwarded(const char *text, const char *upname)
{
	struct jsonrpc_request_text t;
	cJSON *full = cJSON_Parse(text), *msg, *params, *raw;
	char *out = NULL;

	CU_ASSERT_PTR_NOT_NULL_FATAL(full);
	if (jsonrpc_splice_request(text, strlen(text), &t, &msg)) {
		CU_ASSERT_PTR_NULL(t.text);
		CU_ASSERT_PTR_NULL(msg);
		cJSON_Delete(full);
		return NULL;
	}
	/* the route works on the one-pass tree: cJSON's own */
	CU_ASSERT_PTR_NOT_NULL_FATAL(msg);
	CU_ASSERT_TRUE(json_same_tree(msg, full));
	cJSON_Delete(full);
	params = cJSON_GetObjectItemCaseSensitive(msg, "params");
	if (upname)
		cJSON_ReplaceItemInObjectCaseSensitive(params, "name", cJSON_CreateString(upname));
	raw = jsonrpc_splice_params(&t, params);
	CU_ASSERT_PTR_NULL(t.text);     /* used up */
	CU_ASSERT_PTR_NOT_NULL_FATAL(raw);
	CU_ASSERT_TRUE(cJSON_IsRaw(raw));
	/* as the transports print it: inside the gateway's request */
	cJSON *id = cJSON_CreateNumber(7);
	cJSON *req = jsonrpc_request(id, "tools/call", raw);
	char *wire = jsonrpc_print(req);
	cJSON *back = cJSON_Parse(wire);
	CU_ASSERT_PTR_NOT_NULL_FATAL(back);
	CU_ASSERT_TRUE(cJSON_Compare(cJSON_GetObjectItemCaseSensitive(back, "params"), params, true));
	CU_ASSERT_EQUAL(cJSON_GetObjectItemCaseSensitive(back, "id")->valueint, 7);
	out = strdup(raw->valuestring);
	cJSON_Delete(back);
	cJSON_free(wire);
	cJSON_Delete(req);
	cJSON_Delete(id);
	cJSON_Delete(msg);
	return out;
}

static void check_forwarded(const char *text, const char *upname, const char *want)
{
	char *got = forwarded(text, upname);

	CU_ASSERT_PTR_NOT_NULL_FATAL(got);
	CU_ASSERT_STRING_EQUAL(got, want);
	free(got);
}

static void test_request_forwarded(void)
{
	/* the agent's numbers digit for digit (cJSON would print 1.5e+300 as 1.5e+300, 2.50 as
	 * 2.5, 1E2 as 100), whitespace outside strings dropped */
	check_forwarded("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":"
			"{\"name\":\"echo\",\"arguments\":{\"a\": 2.50, \"b\":[1E2,-0.001e-5,"
			"true,false,null,\"x y\\n\\/\"],\"c\":{}}}}", NULL,
			"{\"name\":\"echo\",\"arguments\":{\"a\":2.50,\"b\":[1E2,-0.001e-5,true,"
			"false,null,\"x y\\n\\/\"],\"c\":{}}}");
	/* any key order, string ids, no arguments */
	check_forwarded(" {\"params\" : { \"name\" : \"t\" } , \"method\":\"tools/call\","
			"\"id\":\"abc\",\"jsonrpc\":\"2.0\"}\n", NULL, "{\"name\":\"t\"}");
	/* the upstream's name put in: shorter (a prefix stripped), longer, escaped */
	check_forwarded("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":"
			"{\"arguments\":{\"x\":1},\"name\":\"files__read\"}}", "read",
			"{\"arguments\":{\"x\":1},\"name\":\"read\"}");
	check_forwarded("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":"
			"{\"name\":\"a\",\"arguments\":{}}}",
			"a-much-longer-name-than-the-text-had-room-for-in-its-buffer-at-all",
			"{\"name\":\"a-much-longer-name-than-the-text-had-room-for-in-its-buffer-at-"
			"all\",\"arguments\":{}}");
	check_forwarded("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":"
			"{\"name\":\"q\\\"\"}}", "q\"\\\x01é", "{\"name\":\"q\\\"\\\\\\u0001é\"}");
	/* a 15-digit number is kept */
	check_forwarded("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":"
			"{\"name\":\"n\",\"arguments\":{\"v\":123456789.012345}}}", NULL,
			"{\"name\":\"n\",\"arguments\":{\"v\":123456789.012345}}");
}

static void test_request_fallbacks(void)
{
	static const char *const cases[] = {
		/* the gateway changes these */
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"t\","
		"\"_meta\":{\"progressToken\":1}}}",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"t\","
		"\"task\":{}}}",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"t\","
		"\"other\":1}}",
		/* duplicates: the tree judges the first, a reader may take the last */
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"t\","
		"\"name\":\"u\"}}",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"t\","
		"\"arguments\":{},\"arguments\":{}}}",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"t\"},"
		"\"params\":{\"name\":\"u\"}}",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"t\"}}",
		/* not this shape */
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\"}",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{}}",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":1}}",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":[]}",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"t\"},\"x\":1}",
		"{\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"t\"}}",
		"[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"t\"}}]",
		/* read otherwise by cJSON than by the upstream */
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"t\","
		"\"arguments\":{\"s\":\"a\\u0000b\"}}}",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"t\","
		"\"arguments\":{\"n\":9007199254740993}}}",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"t\","
		"\"arguments\":{\"n\":0.1234567890123456}}}",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"t\","
		"\"arguments\":{\"n\":1e1000}}}",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"t\","
		"\"arguments\":{\"s\":\"tab\there\"}}}",
		/* invalid JSON: refused (or not) by the full parse, as before */
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"t\","
		"\"arguments\":{\"n\":01}}}",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"t\","
		"\"arguments\":{\"n\":1.}}}",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"t\","
		"\"arguments\":[1,]}}",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"t\"}} x",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"t\"}",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"t\",}}",
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct jsonrpc_request_text t;
		cJSON *tree = (cJSON *)&t;      /* must be set to NULL */
		int rc = jsonrpc_splice_request(cases[i], strlen(cases[i]), &t, &tree);
		if (rc != -EINVAL)
			fprintf(stderr, "kept, should not: %s\n", cases[i]);
		CU_ASSERT_EQUAL(rc, -EINVAL);
		CU_ASSERT_PTR_NULL(t.text);
		CU_ASSERT_PTR_NULL(tree);
	}
}

/* The route changed more than the name: the tree is sent. */
static void test_request_tree_changed(void)
{
	const char *text = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":"
			   "{\"name\":\"t\",\"arguments\":{\"a\":1}}}";
	struct jsonrpc_request_text t;
	cJSON *msg = cJSON_Parse(text), *params = cJSON_GetObjectItemCaseSensitive(msg, "params");

	CU_ASSERT_EQUAL_FATAL(jsonrpc_splice_request(text, strlen(text), &t, NULL), 0);
	cJSON_AddItemToObject(params, "_meta", cJSON_CreateObject());
	CU_ASSERT_PTR_NULL(jsonrpc_splice_params(&t, params));
	CU_ASSERT_PTR_NULL(t.text);
	CU_ASSERT_EQUAL_FATAL(jsonrpc_splice_request(text, strlen(text), &t, NULL), 0);
	cJSON_DeleteItemFromObjectCaseSensitive(params, "_meta");
	cJSON_DeleteItemFromObjectCaseSensitive(params, "arguments");
	CU_ASSERT_PTR_NULL(jsonrpc_splice_params(&t, params));
	CU_ASSERT_EQUAL_FATAL(jsonrpc_splice_request(text, strlen(text), &t, NULL), 0);
	jsonrpc_request_text_free(&t);  /* never forwarded (refused): freed with the call */
	CU_ASSERT_PTR_NULL(t.text);
	cJSON_Delete(msg);
}

static void test_request_depth(void)
{
	char text[4096];
	size_t n;
	struct jsonrpc_request_text t;

	for (int pass = 0; pass < 2; pass++) {
		/* arguments hold JSONRPC_SPLICE_MAX_DEPTH - 2 nested arrays: kept; one more not */
		int depth = JSONRPC_SPLICE_MAX_DEPTH - 2 + pass;
		n = (size_t)snprintf(text, sizeof(text), "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":"
				     "\"tools/call\",\"params\":{\"name\":\"t\",\"arguments\":{\"a\":");
		for (int i = 0; i < depth; i++)
			text[n++] = '[';
		for (int i = 0; i < depth; i++)
			text[n++] = ']';
		n += (size_t)snprintf(text + n, sizeof(text) - n, "}}}");
		cJSON *tree, *full = cJSON_ParseWithLength(text, n);
		int rc = jsonrpc_splice_request(text, n, &t, &tree);
		CU_ASSERT_EQUAL(rc, pass == 0 ? 0 : -EINVAL);
		CU_ASSERT_PTR_NOT_NULL_FATAL(full);
		CU_ASSERT_TRUE(pass == 0 ? tree && json_same_tree(tree, full) : !tree);
		jsonrpc_request_text_free(&t);
		cJSON_Delete(tree);
		cJSON_Delete(full);
	}
}

/* The one-pass tree is the one cJSON builds, for every kind of value the scanner keeps. */
static void test_request_tree(void)
{
	static const char *const cases[] = {
		/* escapes in names and strings, each kind; raw UTF-8 */
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":"
		"\"a\\\"b\\\\c\\/d\",\"arguments\":{\"k\\n\\t\":\"\\b\\f\\n\\r\\t x\","
		"\"\\\"\":\"\",\"\":\"\\\\\",\"é\":\"日本\"}}}",
		/* numbers: int saturation both ways, exponents, fractions, negative zero */
		"{\"jsonrpc\":\"2.0\",\"id\":-7,\"method\":\"tools/call\",\"params\":{\"name\":"
		"\"n\",\"arguments\":{\"big\":2147483648,\"small\":-2147483649,\"e\":1.5e300,"
		"\"f\":-0.000001234e-5,\"z\":-0,\"zf\":-0.0,\"i\":2147483647,\"E\":1E+2,"
		"\"x\":123456789012345,\"d\":0.1}}}",
		/* ids of every kind (the classifier judges them later), member order, whitespace */
		" { \"params\" : { \"arguments\" : [ 1 , [ ] , { } , true , false , null ] ,"
		" \"name\" : \"t\" } ,\n\"method\" : \"tools/call\" , \"id\" : \"s\" ,"
		" \"jsonrpc\" : \"2.0\" }\r\n",
		"{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"prompts/get\",\"params\":"
		"{\"name\":\"p\"}}",
		"{\"jsonrpc\":\"2.0\",\"id\":{\"a\":[1,{\"b\":true}]},\"method\":\"m\","
		"\"params\":{\"name\":\"p\",\"arguments\":\"not an object\"}}",
		"{\"jsonrpc\":\"2.0\",\"id\":1.25,\"method\":\"tools/call\",\"params\":"
		"{\"name\":\"\",\"arguments\":{\"a\":{\"a\":{\"a\":[[[\"deep\"]]]}}}}}",
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct jsonrpc_request_text t;
		cJSON *tree = NULL, *full = cJSON_Parse(cases[i]);
		int rc = jsonrpc_splice_request(cases[i], strlen(cases[i]), &t, &tree);

		if (rc)
			fprintf(stderr, "not kept, should be: %s\n", cases[i]);
		CU_ASSERT_EQUAL(rc, 0);
		CU_ASSERT_PTR_NOT_NULL_FATAL(full);
		CU_ASSERT_PTR_NOT_NULL_FATAL(tree);
		CU_ASSERT_TRUE(json_same_tree(tree, full));
		/* and it is a tree cJSON goes on working with: a member added, printed alike */
		cJSON_AddItemToObject(tree, "x", cJSON_CreateTrue());
		cJSON_AddItemToObject(full, "x", cJSON_CreateTrue());
		char *a = cJSON_PrintUnformatted(tree), *b = cJSON_PrintUnformatted(full);
		CU_ASSERT_STRING_EQUAL(a, b);
		cJSON_free(a);
		cJSON_free(b);
		/* the protocol's names are constants in the tree (cJSON_StringIsConst): what the
		 * gateway does with a request's members leaves them alike, and frees each once
		 * (AddressSanitizer) */
		for (int k = 0; k < 2; k++) {
			cJSON *o = k ? full : tree, *dup = cJSON_Duplicate(o, 1), *moved = cJSON_CreateObject();
			cJSON *params = cJSON_GetObjectItemCaseSensitive(o, "params");

			if (params)
				cJSON_ReplaceItemInObjectCaseSensitive(o, "params", cJSON_Duplicate(params, 1));
			cJSON_AddItemToObject(moved, "was_id", cJSON_DetachItemFromObjectCaseSensitive(dup, "id"));
			cJSON_AddItemToObject(o, "moved", moved);
			cJSON_AddItemToObject(o, "dup", dup);
		}
		a = cJSON_PrintUnformatted(tree);
		b = cJSON_PrintUnformatted(full);
		CU_ASSERT_STRING_EQUAL(a, b);
		cJSON_free(a);
		cJSON_free(b);
		jsonrpc_request_text_free(&t);
		cJSON_Delete(tree);
		cJSON_Delete(full);
	}
}

CU_MAIN("jsonrpc_splice", NULL, NULL,
	{ "a request's one-pass tree is cJSON's", test_request_tree },
	{ "spliced answers print as the full parse", test_spliced },
	{ "whitespace outside strings dropped", test_whitespace_dropped },
	{ "unusual answers fall back to the full parse", test_fallbacks },
	{ "strings scanned sixteen bytes at a time", test_string_sweep },
	{ "nesting limit", test_depth },
	{ "unsplice of a tree", test_unsplice_plain },
	{ "requests forwarded as written, the name put in", test_request_forwarded },
	{ "unusual requests fall back to the print", test_request_fallbacks },
	{ "a tree changed beyond the name is sent", test_request_tree_changed },
	{ "request nesting limit", test_request_depth })
