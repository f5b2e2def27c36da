/* stateless: which POSTs are 2026-07-28 ones, and how their headers are checked against the
 * body (the revision's -32020 header mismatch, -32022 unsupported version, -32602 _meta),
 * the Mcp-Param-{Name} headers of x-mcp-header arguments included (mcp/param_headers.h). */
#include <CUnit/Basic.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "mcp/jsonrpc.h"
#include "mcp/param_headers.h"
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
		{ "2026-07-28", "tools/call", "=?base64?!!!!?=", CALL("caf\xc3\xa9"), 400, ANY_CODE },
		/* Strict Base64: padding, alphabet, no whitespace inside */
		{ "2026-07-28", "tools/call", "=?base64?ZWNobw==?=", CALL("echo"), 0, 0 },
		{ "2026-07-28", "tools/call", "=?base64?ZWNobw?=", CALL("echo"), 400,
		  STATELESS_HEADER_MISMATCH },
		{ "2026-07-28", "tools/call", "=?base64?ZWN obw==?=", CALL("echo"), 400,
		  STATELESS_HEADER_MISMATCH },
		{ "2026-07-28", "tools/call", "=?base64?ZW=obw==?=", CALL("echo"), 400,
		  STATELESS_HEADER_MISMATCH },
		/* Without both sentinel marks the value is literal */
		{ "2026-07-28", "tools/call", "=?base64?ZWNobw==", CALL("=?base64?ZWNobw=="), 0, 0 },
		/* Bytes a header may not carry never match, even the same bytes */
		{ "2026-07-28", "tools/call", "caf\xc3\xa9", CALL("caf\xc3\xa9"), 400,
		  STATELESS_HEADER_MISMATCH },
		/* The tasks extension's methods name their task (SEP-2663 routing headers). */
		{ "2026-07-28", "tasks/get", "t-1", TASK_REQ("tasks/get", "t-1"), 0, 0 },
		{ "2026-07-28", "tasks/cancel", "t-2", TASK_REQ("tasks/cancel", "t-1"), 400,
		  STATELESS_HEADER_MISMATCH },
		{ "2026-07-28", "tasks/update", NULL, TASK_REQ("tasks/update", "t-1"), 400,
		  STATELESS_HEADER_MISMATCH },
	};

	run_checks(cases, sizeof(cases) / sizeof(cases[0]));
}

/* --- Mcp-Param-{Name} (x-mcp-header) -------------------------------------------------------- */

#define SCHEMA "{\"type\":\"object\",\"properties\":{" \
	"\"region\":{\"type\":\"string\",\"x-mcp-header\":\"Region\"}," \
	"\"priority\":{\"type\":\"integer\",\"x-mcp-header\":\"Priority\"}," \
	"\"verbose\":{\"type\":\"boolean\",\"x-mcp-header\":\"Verbose\"}," \
	"\"where\":{\"type\":\"object\",\"properties\":{" \
		"\"zone\":{\"type\":\"string\",\"x-mcp-header\":\"Zone\"}}}," \
	"\"score\":{\"type\":\"number\",\"x-mcp-header\":\"Score\"}," \
	"\"tags\":{\"type\":\"array\",\"x-mcp-header\":\"Tags\"}," \
	"\"bad\":{\"type\":\"string\",\"x-mcp-header\":\"Bad Name\"}," \
	"\"deep\":{\"allOf\":[{\"properties\":{\"x\":{\"type\":\"string\",\"x-mcp-header\":\"X\"}}}]}," \
	"\"query\":{\"type\":\"string\"}}}"

/* The request's Mcp-Param headers: "Name: value" lines, names compared without case. */
static const char *lookup(const void *ctx, const char *name)
{
	static char value[256];

	for (const char *const *h = ctx; *h; h++) {
		const char *colon = strchr(*h, ':');
		if ((size_t)(colon - *h) == strlen(name) && !strncasecmp(*h, name, strlen(name))) {
			snprintf(value, sizeof(value), "%s", colon + 2);
			return value;
		}
	}
	return NULL;
}

struct param_case {
	const char *args;
	const char *headers[4];
	int rc;
};

static void test_params(void)
{
	static const struct param_case cases[] = {
		/* plain values of each type */
		{ "{\"region\":\"us-west1\",\"query\":\"q\"}", { "Mcp-Param-Region: us-west1" }, 0 },
		{ "{\"region\":\"us-west1\"}", { "mcp-param-region: us-west1" }, 0 },
		{ "{\"region\":\"us-west1\"}", { "Mcp-Param-Region: us-east1" }, -EINVAL },
		{ "{\"priority\":42}", { "Mcp-Param-Priority: 42" }, 0 },
		{ "{\"priority\":42}", { "Mcp-Param-Priority: 42.0" }, 0 },  /* numerically */
		{ "{\"priority\":-7}", { "Mcp-Param-Priority: -7" }, 0 },
		{ "{\"priority\":42}", { "Mcp-Param-Priority: 43" }, -EINVAL },
		{ "{\"priority\":42}", { "Mcp-Param-Priority: 0x2a" }, -EINVAL },
		{ "{\"priority\":42}", { "Mcp-Param-Priority: 42abc" }, -EINVAL },
		{ "{\"priority\":\"42\"}", { "Mcp-Param-Priority: 42" }, -EINVAL }, /* not a number */
		{ "{\"verbose\":true}", { "Mcp-Param-Verbose: true" }, 0 },
		{ "{\"verbose\":false}", { "Mcp-Param-Verbose: false" }, 0 },
		{ "{\"verbose\":false}", { "Mcp-Param-Verbose: FALSE" }, -EINVAL },
		{ "{\"verbose\":true}", { "Mcp-Param-Verbose: 1" }, -EINVAL },
		/* Base64 sentinel: "Hello", "  padded ", "Hello, 世界" */
		{ "{\"region\":\"Hello\"}", { "Mcp-Param-Region: =?base64?SGVsbG8=?=" }, 0 },
		{ "{\"region\":\" padded \"}", { "Mcp-Param-Region: =?base64?IHBhZGRlZCA=?=" }, 0 },
		{ "{\"region\":\"Hello, \xe4\xb8\x96\xe7\x95\x8c\"}",
		  { "Mcp-Param-Region: =?base64?SGVsbG8sIOS4lueVjA==?=" }, 0 },
		{ "{\"region\":\"Hello\"}", { "Mcp-Param-Region: =?base64?SGVsbG8?=" }, -EINVAL },
		{ "{\"region\":\"Hello\"}", { "Mcp-Param-Region: =?base64?SGVs!!!bG8=?=" }, -EINVAL },
		{ "{\"priority\":42}", { "Mcp-Param-Priority: =?base64?NDI=?=" }, 0 },
		/* one encoding per value: bits under the padding must be zero */
		{ "{\"region\":\"Hello\"}", { "Mcp-Param-Region: =?base64?SGVsbG9=?=" }, -EINVAL },
		/* without both marks: literal */
		{ "{\"region\":\"SGVsbG8=\"}", { "Mcp-Param-Region: SGVsbG8=" }, 0 },
		{ "{\"region\":\"=?base64?SGVsbG8=\"}", { "Mcp-Param-Region: =?base64?SGVsbG8=" }, 0 },
		/* a literal value with bytes no header carries */
		{ "{\"region\":\"a\\u0001b\"}", { "Mcp-Param-Region: a\001b" }, -EINVAL },
		/* omitted header while the body has the value; null or absent needs none */
		{ "{\"region\":\"us-west1\"}", { NULL }, -EINVAL },
		{ "{\"region\":null,\"query\":\"q\"}", { NULL }, 0 },
		{ "{\"query\":\"q\"}", { NULL }, 0 },
		{ NULL, { NULL }, 0 },
		/* a header whose value the body does not have */
		{ "{\"query\":\"q\"}", { "Mcp-Param-Region: us-west1" }, -EINVAL },
		{ "{\"region\":null}", { "Mcp-Param-Region: null" }, -EINVAL },
		/* nested through properties only */
		{ "{\"where\":{\"zone\":\"b\"}}", { "Mcp-Param-Zone: b" }, 0 },
		{ "{\"where\":{\"zone\":\"b\"}}", { NULL }, -EINVAL },
		{ "{\"where\":{\"zone\":\"b\"}}", { "Mcp-Param-Zone: c" }, -EINVAL },
		/* invalid declarations (number, array, a name that is no token, under a composition
		 * keyword) are not checked: conforming clients drop such tools */
		{ "{\"score\":1.5,\"tags\":[1],\"bad\":\"x\",\"deep\":{\"x\":\"y\"}}", { NULL }, 0 },
		/* several at once */
		{ "{\"region\":\"r\",\"priority\":0,\"verbose\":false}",
		  { "Mcp-Param-Region: r", "Mcp-Param-Priority: 0", "Mcp-Param-Verbose: false" }, 0 },
		{ "{\"region\":\"r\",\"priority\":0,\"verbose\":false}",
		  { "Mcp-Param-Region: r", "Mcp-Param-Priority: 0" }, -EINVAL },
	};
	cJSON *schema = cJSON_Parse(SCHEMA);
	char why[256];

	CU_ASSERT_PTR_NOT_NULL_FATAL(schema);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cJSON *args = cases[i].args ? cJSON_Parse(cases[i].args) : NULL;
		int rc = param_headers_check(schema, args, lookup, cases[i].headers, why,
					     sizeof(why));
		if (rc != cases[i].rc)
			fprintf(stderr, "case %zu: %d (%s)\n", i, rc, why);
		CU_ASSERT_EQUAL(rc, cases[i].rc);
		/* a refusal names the header */
		if (rc)
			CU_ASSERT_PTR_NOT_NULL(strstr(why, "Mcp-Param-"));
		cJSON_Delete(args);
	}
	/* No schema, no declarations: nothing to check. */
	CU_ASSERT_EQUAL(param_headers_check(NULL, NULL, lookup, (const char *[]){ NULL }, why,
					    sizeof(why)), 0);
	cJSON_Delete(schema);
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
	{ "Mcp-Name, plain and Base64, and the taskId of tasks/*", test_name },
	{ "Mcp-Param headers against the arguments", test_params })
