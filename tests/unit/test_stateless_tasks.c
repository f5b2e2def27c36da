/* The tasks extension's wire shapes (mcp/stateless_tasks.h): what a 2025-11-25 upstream says,
 * and what a 2026-07-28 agent gets, as a table. */
#include <CUnit/Basic.h>
#include <string.h>

#include "mcp/stateless_tasks.h"
#include "cunit_main.h"

/* Compare as JSON (key order free). */
static void assert_json(cJSON *got, const char *want, const char *what)
{
	cJSON *w = cJSON_Parse(want);
	bool same = w && cJSON_Compare(got, w, true);

	if (!same) {
		char *g = cJSON_PrintUnformatted(got);
		fprintf(stderr, "\n%s:\n  got  %s\n  want %s\n", what, g ? g : "(null)", want);
		cJSON_free(g);
	}
	CU_ASSERT(same);
	cJSON_Delete(w);
}

#define TASK(status) "\"taskId\":\"t1\",\"status\":\"" status "\",\"createdAt\":\"2026-01-01T00:00:00Z\"," \
		     "\"lastUpdatedAt\":\"2026-01-01T00:00:01Z\""

struct created_case {
	const char *what, *upstream, *agent;
	int rc;
};

static void test_created(void)
{
	static const struct created_case cases[] = {
		{ "flat, renamed, resultType task",
		  "{\"task\":{" TASK("working") ",\"ttl\":60000,\"pollInterval\":200}}",
		  "{" TASK("working") ",\"ttlMs\":60000,\"pollIntervalMs\":200,\"resultType\":\"task\"}", 0 },
		{ "null ttl stays null; no poll interval, none given",
		  "{\"task\":{" TASK("working") ",\"ttl\":null}}",
		  "{" TASK("working") ",\"ttlMs\":null,\"resultType\":\"task\"}", 0 },
		{ "fractional ms become integers; related-task _meta dropped",
		  "{\"task\":{" TASK("working") ",\"ttl\":1500.7,\"pollInterval\":99.5},"
		  "\"_meta\":{\"io.modelcontextprotocol/related-task\":{\"taskId\":\"t1\"}}}",
		  "{" TASK("working") ",\"ttlMs\":1500,\"pollIntervalMs\":99,\"resultType\":\"task\"}", 0 },
		{ "input_required at creation: working until its requests are here",
		  "{\"task\":{" TASK("input_required") ",\"ttl\":60000}}",
		  "{" TASK("working") ",\"ttlMs\":60000,\"resultType\":\"task\"}", 0 },
		{ "a plain tool result is left alone",
		  "{\"content\":[{\"type\":\"text\",\"text\":\"hi\"}]}",
		  "{\"content\":[{\"type\":\"text\",\"text\":\"hi\"}]}", -ENOENT },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cJSON *r = cJSON_Parse(cases[i].upstream);
		CU_ASSERT_EQUAL(stasks_created(r), cases[i].rc);
		assert_json(r, cases[i].agent, cases[i].what);
		cJSON_Delete(r);
	}
}

struct detailed_case {
	const char *what, *upstream, *ext, *agent;
};

#define RESULT_OK "{\"content\":[{\"type\":\"text\",\"text\":\"done\"}]," \
		  "\"_meta\":{\"io.modelcontextprotocol/related-task\":{\"taskId\":\"t1\"}}}"
#define TOOL_ERROR "{\"content\":[{\"type\":\"text\",\"text\":\"bad\"}],\"isError\":true}"

static void test_detailed(void)
{
	static const struct detailed_case cases[] = {
		{ "working: metadata only",
		  "{" TASK("working") ",\"ttl\":60000,\"pollInterval\":200}", NULL,
		  "{" TASK("working") ",\"ttlMs\":60000,\"pollIntervalMs\":200,\"resultType\":\"complete\"}" },
		{ "completed: the result inlined, without related-task _meta",
		  "{" TASK("completed") ",\"ttl\":60000}", "{\"outcome\":{\"result\":" RESULT_OK "}}",
		  "{" TASK("completed") ",\"ttlMs\":60000,\"resultType\":\"complete\","
		  "\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"done\"}]}}" },
		{ "completed upstream, outcome not here yet: still working",
		  "{" TASK("completed") ",\"ttl\":60000}", "{}",
		  "{" TASK("working") ",\"ttlMs\":60000,\"resultType\":\"complete\"}" },
		{ "failed with a JSON-RPC error: failed + error, no result",
		  "{" TASK("failed") ",\"ttl\":60000}",
		  "{\"outcome\":{\"error\":{\"code\":-32603,\"message\":\"boom\"}}}",
		  "{" TASK("failed") ",\"ttlMs\":60000,\"resultType\":\"complete\","
		  "\"error\":{\"code\":-32603,\"message\":\"boom\"}}" },
		{ "failed upstream with a tool error: completed + isError",
		  "{" TASK("failed") ",\"ttl\":60000}", "{\"outcome\":{\"result\":" TOOL_ERROR "}}",
		  "{" TASK("completed") ",\"ttlMs\":60000,\"resultType\":\"complete\","
		  "\"result\":" TOOL_ERROR "}" },
		{ "failed upstream with another result: failed + an error from its message",
		  "{" TASK("failed") ",\"statusMessage\":\"gone\",\"ttl\":60000}",
		  "{\"outcome\":{\"result\":{\"content\":[]}}}",
		  "{" TASK("failed") ",\"statusMessage\":\"gone\",\"ttlMs\":60000,\"resultType\":\"complete\","
		  "\"error\":{\"code\":-32603,\"message\":\"gone\"}}" },
		{ "input_required: the pending requests",
		  "{" TASK("input_required") ",\"ttl\":null}",
		  "{\"asked\":{\"mcpwarden-3\":{\"method\":\"elicitation/create\",\"params\":{\"message\":\"ok?\"}}}}",
		  "{" TASK("input_required") ",\"ttlMs\":null,\"resultType\":\"complete\","
		  "\"inputRequests\":{\"mcpwarden-3\":{\"method\":\"elicitation/create\","
		  "\"params\":{\"message\":\"ok?\"}}}}" },
		{ "input_required upstream, nothing pending here (answered, or on its way): working",
		  "{" TASK("input_required") ",\"ttl\":60000}", "{\"asked\":{}}",
		  "{" TASK("working") ",\"ttlMs\":60000,\"resultType\":\"complete\"}" },
		{ "fields already named the new way are kept, not doubled",
		  "{" TASK("working") ",\"ttlMs\":5000,\"pollIntervalMs\":100}", NULL,
		  "{" TASK("working") ",\"ttlMs\":5000,\"pollIntervalMs\":100,\"resultType\":\"complete\"}" },
		{ "cancelled: nothing inlined",
		  "{" TASK("cancelled") ",\"ttl\":60000}", "{\"outcome\":{\"error\":{\"code\":-32602,\"message\":\"x\"}}}",
		  "{" TASK("cancelled") ",\"ttlMs\":60000,\"resultType\":\"complete\"}" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cJSON *r = cJSON_Parse(cases[i].upstream);
		cJSON *ext = cases[i].ext ? cJSON_Parse(cases[i].ext) : NULL;
		stasks_detailed(r, ext);
		assert_json(r, cases[i].agent, cases[i].what);
		cJSON_Delete(r);
		cJSON_Delete(ext);
	}
}

static void test_cancelled(void)
{
	static const struct { const char *what, *upstream; bool owned; const char *agent; } cases[] = {
		{ "the cancelled task becomes the empty ack",
		  "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{" TASK("cancelled") "}}", true,
		  "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"resultType\":\"complete\"}}" },
		{ "already terminal (the upstream's -32602): the same ack",
		  "{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32602,\"message\":\"terminal\"}}", true,
		  "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"resultType\":\"complete\"}}" },
		{ "an unknown task stays -32602",
		  "{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32602,\"message\":\"not found\"}}", false,
		  "{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32602,\"message\":\"not found\"}}" },
		{ "other errors stay",
		  "{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32010,\"message\":\"upstream gone\"}}", true,
		  "{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32010,\"message\":\"upstream gone\"}}" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cJSON *r = cJSON_Parse(cases[i].upstream);
		stasks_cancelled(r, cases[i].owned);
		assert_json(r, cases[i].agent, cases[i].what);
		cJSON_Delete(r);
	}
}

static void test_advertise_and_declared(void)
{
	cJSON *caps = cJSON_Parse("{\"tools\":{},\"tasks\":{\"list\":{},\"cancel\":{},"
				  "\"requests\":{\"tools\":{\"call\":{}}}}}");
	cJSON *none = cJSON_Parse("{\"tools\":{},\"tasks\":{\"list\":{}}}");
	cJSON *c1 = cJSON_Parse("{\"extensions\":{\"io.modelcontextprotocol/tasks\":{}}}");
	cJSON *c2 = cJSON_Parse("{\"extensions\":{},\"tasks\":{}}");

	stasks_advertise(caps);
	assert_json(caps, "{\"tools\":{},\"extensions\":{\"io.modelcontextprotocol/tasks\":{}}}",
		    "tools as tasks: the extension, no v1 slot");
	stasks_advertise(none);
	assert_json(none, "{\"tools\":{}}", "no tools as tasks: neither");
	CU_ASSERT(stasks_declared(c1));
	CU_ASSERT(!stasks_declared(c2));
	CU_ASSERT(!stasks_declared(NULL));
	cJSON_Delete(caps);
	cJSON_Delete(none);
	cJSON_Delete(c1);
	cJSON_Delete(c2);
}

/* Requests the upstream makes during the task, and the agent's tasks/update answering them:
 * one at a time, unknown keys ignored; the outcome clears what is pending. */
static void test_inputs(void)
{
	cJSON *ext = cJSON_CreateObject();
	cJSON *a = cJSON_Parse("{\"jsonrpc\":\"2.0\",\"id\":\"mcpwarden-1\",\"method\":\"elicitation/create\","
			       "\"params\":{\"message\":\"a?\",\"_meta\":{\"io.modelcontextprotocol/related-task\":{\"taskId\":\"t1\"}}}}");
	cJSON *b = cJSON_Parse("{\"jsonrpc\":\"2.0\",\"id\":\"mcpwarden-2\",\"method\":\"elicitation/create\","
			       "\"params\":{\"message\":\"b?\"}}");
	cJSON *in = cJSON_Parse("{\"mcpwarden-1\":{\"action\":\"accept\",\"content\":{\"x\":1}},"
				"\"unknown\":{\"action\":\"decline\"}}");
	cJSON *out;

	CU_ASSERT_EQUAL(stasks_keep_request(ext, a), 0);
	CU_ASSERT_EQUAL(stasks_keep_request(ext, b), 0);
	assert_json(ext, "{\"asked\":{\"mcpwarden-1\":{\"method\":\"elicitation/create\","
		    "\"params\":{\"message\":\"a?\"}},\"mcpwarden-2\":{\"method\":\"elicitation/create\","
		    "\"params\":{\"message\":\"b?\"}}}}", "two pending, related-task _meta dropped");
	out = stasks_answers(ext, in);
	assert_json(out, "[{\"jsonrpc\":\"2.0\",\"id\":\"mcpwarden-1\",\"result\":"
		    "{\"action\":\"accept\",\"content\":{\"x\":1}}}]", "the answer of the known key");
	assert_json(ext, "{\"asked\":{\"mcpwarden-2\":{\"method\":\"elicitation/create\","
		    "\"params\":{\"message\":\"b?\"}}}}", "the other still pending");
	cJSON_Delete(out);
	out = stasks_answers(ext, in);
	assert_json(out, "[]", "answered once only");
	cJSON_Delete(out);
	cJSON_Delete(a);
	a = cJSON_Parse("{\"jsonrpc\":\"2.0\",\"id\":\"mcpwarden-taskwatch-1\",\"result\":" RESULT_OK "}");
	stasks_keep_outcome(ext, a);
	assert_json(ext, "{\"outcome\":{\"result\":" RESULT_OK "}}", "the outcome; nothing pending");
	cJSON_Delete(a);
	cJSON_Delete(b);
	cJSON_Delete(in);
	cJSON_Delete(ext);
}

CU_MAIN("stateless_tasks", NULL, NULL,
	{ "CreateTaskResult: v1 to the flat shape", test_created },
	{ "tasks/get: renamed fields, inlined outcome, pending inputs", test_detailed },
	{ "tasks/cancel: the empty ack", test_cancelled },
	{ "server/discover advertises the extension; requests declare it", test_advertise_and_declared },
	{ "inputRequests and tasks/update answers", test_inputs })
