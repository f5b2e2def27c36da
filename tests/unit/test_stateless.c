/* stateless: which POSTs are 2026-07-28 ones, and how their headers are checked against the
 * body (the revision's -32020 header mismatch, -32022 unsupported version, -32602 _meta). */
#include <CUnit/Basic.h>
#include <string.h>

#include "mcp/jsonrpc.h"
#include "mcp/stateless.h"
#include "cunit_main.h"

#define META26 "\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\"," \
	       "\"io.modelcontextprotocol/clientCapabilities\":{}}"

static cJSON *keep;

static struct jsonrpc_msg parse(const char *text)
{
	struct jsonrpc_msg m;
	int code;
	const char *why;

	cJSON_Delete(keep);
	keep = cJSON_Parse(text);
	CU_ASSERT_PTR_NOT_NULL_FATAL(keep);
	CU_ASSERT_EQUAL_FATAL(jsonrpc_classify(keep, &m, &code, &why), 0);
	return m;
}

/* The HTTP status, and the JSON-RPC code in *code (0 when accepted). */
static int check(const struct stateless_headers *h, const char *text, int *code)
{
	struct jsonrpc_msg m = parse(text);
	cJSON *err = NULL;
	int status = stateless_check(h, &m, &err);
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(err, "error");

	*code = e ? cJSON_GetObjectItemCaseSensitive(e, "code")->valueint : 0;
	if (err) {
		/* Every refusal keeps the request's id. */
		CU_ASSERT_TRUE(cJSON_Compare(cJSON_GetObjectItemCaseSensitive(err, "id"),
					     m.id, 1));
	}
	cJSON_Delete(err);
	return status;
}

static void test_wanted(void)
{
	struct stateless_headers old = { NULL, "2025-11-25", NULL, NULL };
	struct stateless_headers none = { NULL, NULL, NULL, NULL };
	struct stateless_headers new = { NULL, "2026-07-28", "tools/list", NULL };
	struct stateless_headers unknown = { NULL, "2099-01-01", "tools/list", NULL };
	struct stateless_headers session = { "abc", "2026-07-28", "tools/list", NULL };
	struct jsonrpc_msg m;

	m = parse("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{}}");
	CU_ASSERT_FALSE(stateless_wanted(&none, &m));   /* an older client's first request */
	CU_ASSERT_FALSE(stateless_wanted(&old, &m));
	CU_ASSERT_TRUE(stateless_wanted(&new, &m));     /* removed in 2026-07-28: answered 404 */
	m = parse("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}");
	CU_ASSERT_FALSE(stateless_wanted(&old, &m));    /* an older session without its id: 400 */
	CU_ASSERT_TRUE(stateless_wanted(&new, &m));
	CU_ASSERT_TRUE(stateless_wanted(&unknown, &m));
	CU_ASSERT_FALSE(stateless_wanted(&session, &m));
	m = parse("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{" META26 "}}");
	CU_ASSERT_TRUE(stateless_wanted(&none, &m));    /* the header is missing: -32020 */
}

/* One request: its headers (no session id), its body, and the answer wanted: the HTTP status
 * (0: accepted) and the JSON-RPC code, ANY_CODE where the code is not the point. */
struct check_case {
	const char *version, *method, *name, *body;
	int status, code;
};

#define ANY_CODE 1

static void run_checks(const struct check_case *c, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct stateless_headers h = { NULL, c[i].version, c[i].method, c[i].name };
		int code;

		CU_ASSERT_EQUAL(check(&h, c[i].body, &code), c[i].status);
		if (c[i].code != ANY_CODE)
			CU_ASSERT_EQUAL(code, c[i].code);
	}
}

#define LIST "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/list\",\"params\":{" META26 "}}"

static void test_check(void)
{
	static const struct check_case cases[] = {
		{ "2026-07-28", "tools/list", NULL, LIST, 0, 0 },
		{ "2026-07-28", "prompts/list", NULL, LIST, 400, STATELESS_HEADER_MISMATCH },
		{ "2026-07-28", NULL, NULL, LIST, 400, STATELESS_HEADER_MISMATCH },
		{ NULL, "tools/list", NULL, LIST, 400, STATELESS_HEADER_MISMATCH },
		/* header and _meta disagree */
		{ "2025-11-25", "tools/list", NULL, LIST, 400, STATELESS_HEADER_MISMATCH },
		{ "2099-01-01", "tools/list", NULL,
		  "{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"method\":\"tools/list\",\"params\":"
		  "{\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2099-01-01\","
		  "\"io.modelcontextprotocol/clientCapabilities\":{}}}}",
		  400, STATELESS_UNSUPPORTED_VERSION },
		{ "2026-07-28", "tools/list", NULL,
		  "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"tools/list\",\"params\":{}}",
		  400, JSONRPC_INVALID_PARAMS },
		{ "2026-07-28", "tools/list", NULL,
		  "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"tools/list\",\"params\":"
		  "{\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\"}}}",
		  400, JSONRPC_INVALID_PARAMS },
	};

	run_checks(cases, sizeof(cases) / sizeof(cases[0]));
}

#define CALL(name) "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":" \
		   "{\"name\":\"" name "\"," META26 "}}"

#define TASK_REQ(method, id) "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"" method "\"," \
			   "\"params\":{\"taskId\":\"" id "\"," META26 "}}"

static void test_name(void)
{
	static const struct check_case cases[] = {
		{ "2026-07-28", "tools/call", "echo", CALL("echo"), 0, 0 },
		{ "2026-07-28", "tools/call", "other", CALL("echo"), 400, STATELESS_HEADER_MISMATCH },
		{ "2026-07-28", "tools/call", NULL, CALL("echo"), 400, STATELESS_HEADER_MISMATCH },
		{ "2026-07-28", "resources/read", "test://a",
		  "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"resources/read\",\"params\":"
		  "{\"uri\":\"test://a\"," META26 "}}", 0, 0 },
		/* Non-ASCII names travel as the Base64 sentinel: "café" */
		{ "2026-07-28", "tools/call", "=?base64?Y2Fmw6k=?=", CALL("caf\xc3\xa9"), 0, 0 },
		{ "2026-07-28", "tools/call", "=?base64?Y2FmZQ==?=", /* "cafe" */
		  CALL("caf\xc3\xa9"), 400, ANY_CODE },
		{ "2026-07-28", "tools/call", "=?base64?!!!!?=", CALL("caf\xc3\xa9"), 400, ANY_CODE },		/* The tasks extension's methods name their task (SEP-2663 routing headers). */
		{ "2026-07-28", "tasks/get", "t-1", TASK_REQ("tasks/get", "t-1"), 0, 0 },
		{ "2026-07-28", "tasks/cancel", "t-2", TASK_REQ("tasks/cancel", "t-1"), 400,
		  STATELESS_HEADER_MISMATCH },
		{ "2026-07-28", "tasks/update", NULL, TASK_REQ("tasks/update", "t-1"), 400,
		  STATELESS_HEADER_MISMATCH },
	};

	run_checks(cases, sizeof(cases) / sizeof(cases[0]));
}

static int done(void)
{
	cJSON_Delete(keep);
	keep = NULL;
	return 0;
}

CU_MAIN("stateless", NULL, done,
	{ "which requests are 2026-07-28 ones", test_wanted },
	{ "version, _meta and Mcp-Method checks", test_check },
	{ "Mcp-Name, plain and Base64, and the taskId of tasks/*", test_name })
