/* JSON-RPC classification and builders: what the gateway accepts and how it refuses. */
#include <CUnit/Basic.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/jsonw.h"
#include "mcp/jsonrpc.h"
#include "cunit_main.h"

static cJSON *keep;  /* m borrows from the value: kept until the next call */

static int classify(const char *text, struct jsonrpc_msg *m, int *code, const char **why)
{
	cJSON_Delete(keep);
	keep = cJSON_Parse(text);
	CU_ASSERT_PTR_NOT_NULL_FATAL(keep);
	return jsonrpc_classify(keep, m, code, why);
}

static void test_kinds(void)
{
	struct jsonrpc_msg m;
	int code;
	const char *why;

	CU_ASSERT_EQUAL(classify("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}", &m, &code, &why), 0);
	CU_ASSERT_EQUAL(m.kind, JSONRPC_REQUEST);
	CU_ASSERT_STRING_EQUAL(m.method, "tools/list");
	CU_ASSERT_EQUAL(classify("{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"method\":\"x\",\"params\":{}}", &m, &code, &why), 0);
	CU_ASSERT_PTR_NOT_NULL(m.params);
	CU_ASSERT_EQUAL(classify("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}", &m, &code, &why), 0);
	CU_ASSERT_EQUAL(m.kind, JSONRPC_NOTIFICATION);
	CU_ASSERT_EQUAL(classify("{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{}}", &m, &code, &why), 0);
	CU_ASSERT_EQUAL(m.kind, JSONRPC_RESPONSE);
	CU_ASSERT_EQUAL(classify("{\"jsonrpc\":\"2.0\",\"id\":7,\"error\":{\"code\":-1,\"message\":\"x\"}}", &m, &code, &why), 0);
	CU_ASSERT_PTR_NOT_NULL(m.error);
	/* Members in any order, others ignored, and a repeated one read as its first. */
	CU_ASSERT_EQUAL(classify("{\"params\":{\"a\":1},\"x\":0,\"method\":\"m1\",\"id\":\"q\","
				 "\"jsonrpc\":\"2.0\",\"method\":\"m2\",\"jsonrpc\":\"1.0\"}",
				 &m, &code, &why), 0);
	CU_ASSERT_EQUAL(m.kind, JSONRPC_REQUEST);
	CU_ASSERT_STRING_EQUAL(m.method, "m1");
	CU_ASSERT_STRING_EQUAL(m.id->valuestring, "q");
	CU_ASSERT_PTR_NOT_NULL(cJSON_GetObjectItemCaseSensitive(m.params, "a"));
	CU_ASSERT_EQUAL(classify("{\"jsonrpc\":\"1.0\",\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\"}",
				 &m, &code, &why), -EINVAL);
	CU_ASSERT_EQUAL(classify("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\",\"Method\":\"y\","
				 "\"ID\":2}", &m, &code, &why), 0);
	CU_ASSERT_STRING_EQUAL(m.method, "x");
	CU_ASSERT_EQUAL(m.id->valuedouble, 1);
}

static void test_invalid(void)
{
	static const struct { const char *text; int code; const char *why; } cases[] = {
		{ "[1]", JSONRPC_INVALID_REQUEST, "must be an object" },
		{ "{\"id\":1,\"method\":\"x\"}", JSONRPC_INVALID_REQUEST, "\"jsonrpc\" must be \"2.0\"" },
		{ "{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"x\"}", JSONRPC_INVALID_REQUEST, "\"2.0\"" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"x\"}", JSONRPC_INVALID_REQUEST, "must not be null" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"x\"}", JSONRPC_INVALID_REQUEST, "string or an integer" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"x\"}", JSONRPC_INVALID_REQUEST, "string or an integer" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\"}", JSONRPC_INVALID_REQUEST, "non-empty string" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":3}", JSONRPC_INVALID_REQUEST, "non-empty string" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\",\"params\":[1]}", JSONRPC_INVALID_PARAMS, "must be an object" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1}", JSONRPC_INVALID_REQUEST, "exactly one of" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{},\"error\":{}}", JSONRPC_INVALID_REQUEST, "exactly one of" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":\"x\"}}", JSONRPC_INVALID_REQUEST, "integer \"code\"" },
		{ "{\"jsonrpc\":\"2.0\"}", JSONRPC_INVALID_REQUEST, "needs \"method\"" },
	};
	struct jsonrpc_msg m;
	int code;
	const char *why;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		CU_ASSERT_EQUAL(classify(cases[i].text, &m, &code, &why), -EINVAL);
		CU_ASSERT_EQUAL(code, cases[i].code);
		CU_ASSERT_PTR_NOT_NULL(strstr(why, cases[i].why));
	}
	/* The id is still reported when it could be read, so the error can echo it. */
	CU_ASSERT_EQUAL(classify("{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"x\",\"params\":5}", &m, &code, &why), -EINVAL);
	CU_ASSERT_TRUE(cJSON_IsNumber(m.id) && m.id->valueint == 9);
}

static void test_builders(void)
{
	cJSON *id = cJSON_CreateString("req-1");
	cJSON *e = jsonrpc_errorf(id, JSONRPC_METHOD_NOT_FOUND, NULL, "Method not found: %s", "x/y");
	char *t = cJSON_PrintUnformatted(e);

	CU_ASSERT_STRING_EQUAL(t, "{\"jsonrpc\":\"2.0\",\"id\":\"req-1\",\"error\":{\"code\":-32601,\"message\":\"Method not found: x/y\"}}");
	cJSON_free(t);
	cJSON_Delete(e);
	e = jsonrpc_error(NULL, JSONRPC_PARSE_ERROR, "Parse error", NULL);
	t = cJSON_PrintUnformatted(e);
	CU_ASSERT_STRING_EQUAL(t, "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,\"message\":\"Parse error\"}}");
	cJSON_free(t);
	cJSON_Delete(e);
	e = jsonrpc_result(id, cJSON_CreateObject());
	t = cJSON_PrintUnformatted(e);
	CU_ASSERT_STRING_EQUAL(t, "{\"jsonrpc\":\"2.0\",\"id\":\"req-1\",\"result\":{}}");
	cJSON_free(t);
	cJSON_Delete(e);
	e = jsonrpc_notification("notifications/tools/list_changed", NULL);
	t = cJSON_PrintUnformatted(e);
	CU_ASSERT_STRING_EQUAL(t, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}");
	cJSON_free(t);
	cJSON_Delete(e);
	cJSON_Delete(id);
}

static void test_id_keys(void)
{
	char a[64], b[64];
	cJSON *n = cJSON_CreateNumber(42), *s = cJSON_CreateString("42");

	/* 42 and "42" are different ids and must not collide. */
	jsonrpc_id_key(n, a, sizeof(a));
	jsonrpc_id_key(s, b, sizeof(b));
	CU_ASSERT_STRING_NOT_EQUAL(a, b);
	CU_ASSERT_STRING_EQUAL(a, "n:42");
	CU_ASSERT_TRUE(jsonrpc_valid_id(n));
	/* integer keys are the digits "%.0f" gives, at the edges too */
	static const double ids[] = { 0, -1, 1000000007, -9007199254740991.0, 9007199254740991.0,
				      9007199254740992.0, 1e20, -0.0, 2.5 };
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		char want[64];
		cJSON *v = cJSON_CreateNumber(ids[i]);
		snprintf(want, sizeof(want), "n:%.0f", ids[i]);
		jsonrpc_id_key(v, a, sizeof(a));
		CU_ASSERT_STRING_EQUAL(a, want);
		cJSON_Delete(v);
	}
	CU_ASSERT_FALSE(jsonrpc_valid_id(NULL));
	cJSON_Delete(n);
	cJSON_Delete(s);
}

static void test_exact_numbers(void)
{
	cJSON *m = cJSON_Parse("{\"a\":9007199254740991,\"b\":[0.30000000000000004,1.5,42],"
			       "\"c\":{\"d\":1e-7,\"e\":123456789}}");
	char *t = jsonrpc_print(m);

	/* Values 15 digits would change keep 17; the rest print as cJSON always did. */
	CU_ASSERT_STRING_EQUAL(t, "{\"a\":9007199254740991,\"b\":[0.30000000000000004,1.5,42],"
				  "\"c\":{\"d\":1e-07,\"e\":123456789}}");
	cJSON_free(t);
	cJSON_Delete(m);
}

/* An answer takes the client's id: in place for a small integer over a number, a new member
 * otherwise, and each prints as the client sent it. */
static void test_set_id(void)
{
	static const struct {
		const char *old, *id, *want;
		bool in_place;
	} cases[] = {
		{ "7", "42", "{\"jsonrpc\":\"2.0\",\"id\":42,\"result\":{}}", true },
		{ "7", "-3", "{\"jsonrpc\":\"2.0\",\"id\":-3,\"result\":{}}", true },
		{ "7", "\"a-1\"", "{\"jsonrpc\":\"2.0\",\"id\":\"a-1\",\"result\":{}}", false },
		{ "7", "9007199254740991",
		  "{\"jsonrpc\":\"2.0\",\"id\":9007199254740991,\"result\":{}}", false },
		{ "\"x\"", "5", "{\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{}}", false },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[128];
		snprintf(text, sizeof(text), "{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{}}",
			 cases[i].old);
		cJSON *msg = cJSON_Parse(text), *id = cJSON_Parse(cases[i].id);
		CU_ASSERT_PTR_NOT_NULL_FATAL(msg);
		CU_ASSERT_PTR_NOT_NULL_FATAL(id);
		const cJSON *before = cJSON_GetObjectItemCaseSensitive(msg, "id");
		jsonrpc_set_id(msg, id);
		CU_ASSERT_EQUAL(cJSON_GetObjectItemCaseSensitive(msg, "id") == before,
				cases[i].in_place);
		char *t = jsonrpc_print(msg);
		CU_ASSERT_STRING_EQUAL(t, cases[i].want);
		cJSON_free(t);
		cJSON_Delete(msg);
		cJSON_Delete(id);
	}
}

/* jsonrpc_write: the bytes and holes of jsonw_value, for every call's answer's shape (written
 * by it) and for every other message (handed to jsonw_value). */
static void write_same(const cJSON *msg)
{
	struct jsonw_hole ha[4], hb[4];
	struct jsonw a = { .holes = ha, .max_holes = 4 }, b = { .holes = hb, .max_holes = 4 };

	CU_ASSERT_EQUAL(jsonrpc_write(&a, msg), jsonw_value(&b, msg));
	CU_ASSERT_EQUAL(a.len, b.len);
	CU_ASSERT(a.buf && b.buf && strcmp(a.buf, b.buf) == 0);
	CU_ASSERT_EQUAL_FATAL(a.nholes, b.nholes);
	for (unsigned i = 0; i < a.nholes; i++)
		CU_ASSERT(ha[i].at == hb[i].at && ha[i].text == hb[i].text && ha[i].len == hb[i].len);
	jsonw_free(&a);
	jsonw_free(&b);
}

static void test_write(void)
{
	static const char *const texts[] = {
		"{\"jsonrpc\":\"2.0\",\"id\":42,\"result\":{\"a\":[1,2.5,\"x\\n\\u0001\"]}}",
		"{\"jsonrpc\":\"2.0\",\"id\":-3,\"result\":{}}",
		"{\"jsonrpc\":\"2.0\",\"id\":0,\"result\":[]}",
		"{\"jsonrpc\":\"2.0\",\"id\":-0,\"result\":{}}",
		"{\"jsonrpc\":\"2.0\",\"id\":999999999999999,\"result\":{}}",
		"{\"jsonrpc\":\"2.0\",\"id\":1000000000000000,\"result\":{}}",
		"{\"jsonrpc\":\"2.0\",\"id\":\"s-1\",\"result\":{}}",
		"{\"id\":1,\"jsonrpc\":\"2.0\",\"result\":{}}",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{},\"x\":1}",
		"{\"jsonrpc\":\"2.0\",\"id\":1}",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-1,\"message\":\"m\"}}",
		"{\"jsonrpc\":\"1.0\",\"id\":1,\"result\":{}}",
		"{\"jsonrpc\":2,\"id\":1,\"result\":{}}",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\"}",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"q\\\"\"}",
		"[1]",
	};
	char raw[400];

	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		cJSON *m = cJSON_Parse(texts[i]);
		CU_ASSERT_PTR_NOT_NULL_FATAL(m);
		write_same(m);
		cJSON_Delete(m);
	}
	/* a result kept as text, long enough to be a hole; an id over int range (a Raw node) */
	memset(raw, ' ', sizeof(raw) - 1);
	raw[0] = '[';
	raw[sizeof(raw) - 2] = ']';
	raw[sizeof(raw) - 1] = '\0';
	cJSON *id = cJSON_CreateNumber(7), *big = cJSON_Parse("9007199254740991");
	cJSON *m = jsonrpc_result(id, cJSON_CreateRaw(raw));
	write_same(m);
	jsonrpc_set_id(m, big);
	write_same(m);
	cJSON_Delete(m);
	cJSON_Delete(id);
	cJSON_Delete(big);
}

CU_MAIN("jsonrpc", NULL, NULL,
	{ "message kinds", test_kinds },
	{ "invalid messages get precise codes", test_invalid },
	{ "builders", test_builders },
	{ "id keys", test_id_keys },
	{ "numbers printed exactly", test_exact_numbers },
	{ "an answer takes the client's id", test_set_id },
	{ "an answer written by its shape is jsonw_value's", test_write })
