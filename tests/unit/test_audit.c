/* The decision record (observe/audit.c) is written as text (base/jsonw.h), not built as a tree: its bytes must
 * be those the tree printed by log_record_line gives — the members, their order, escaping and
 * numbers — since stdout pipelines and the log store's chain read them. The oracle here builds
 * the tree the way the record was built before, member for member. */
#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "cunit_main.h"
#include "observe/audit.h"

/* ---- the decision record ---- */

/* The record as the tree used to be built (before it was written as text). */
static cJSON *oracle(const struct audit_decision *d)
{
	cJSON *o = cJSON_CreateObject();
	const cJSON *err = cJSON_GetObjectItemCaseSensitive(d->response, "error");
	const cJSON *res = cJSON_GetObjectItemCaseSensitive(d->response, "result");
	char sid[9] = "";

	if (d->session)
		strncat(sid, d->session, sizeof(sid) - 1);
	cJSON_AddStringToObject(o, "session", sid);
	if (d->key) {
		cJSON_AddStringToObject(o, "key", d->key);
		if (d->team && *d->team)
			cJSON_AddStringToObject(o, "team", d->team);
		if (d->policy && *d->policy)
			cJSON_AddStringToObject(o, "policy", d->policy);
	}
	if (d->workload)
		cJSON_AddStringToObject(o, "workload", d->workload);
	if (d->redirected_from) {
		cJSON_AddStringToObject(o, "original_destination", d->redirected_from);
		cJSON_AddBoolToObject(o, "redirected", true);
	}
	if (d->method)
		cJSON_AddStringToObject(o, "method", d->method);
	if (d->server)
		cJSON_AddStringToObject(o, "server", d->server);
	if (d->target)
		cJSON_AddStringToObject(o, "target", d->target);
	cJSON_AddStringToObject(o, "decision", d->decision);
	if (d->reason)
		cJSON_AddStringToObject(o, "reason", d->reason);
	if (err) {
		const cJSON *msg = cJSON_GetObjectItemCaseSensitive(err, "message");
		cJSON_AddStringToObject(o, "status", "error");
		cJSON_AddItemToObject(o, "error_code",
				      cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(err, "code"), 1));
		if (cJSON_IsString(msg))
			cJSON_AddStringToObject(o, "error_message", msg->valuestring);
	} else if (res) {
		char *printed = cJSON_PrintUnformatted(res);
		cJSON_AddStringToObject(o, "status",
					cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "isError"))
						? "tool_error" : "ok");
		cJSON_AddNumberToObject(o, "result_bytes", (double)strlen(printed));
		cJSON_free(printed);
	}
	if (d->cost_micros >= 0)
		cJSON_AddNumberToObject(o, "cost_micros", (double)d->cost_micros);
	if (d->args_shape)
		cJSON_AddItemToObject(o, "args_shape", cJSON_Parse(d->args_shape));
	cJSON_AddNumberToObject(o, "latency_ms", (double)(d->latency_us / 1000));
	cJSON_AddNumberToObject(o, "latency_us", (double)d->latency_us);
	if (d->went_upstream) {
		cJSON_AddNumberToObject(o, "upstream_ms", (double)(d->upstream_us / 1000));
		cJSON_AddNumberToObject(o, "upstream_us", (double)d->upstream_us);
	}
	if (d->trace_id)
		cJSON_AddStringToObject(o, "trace_id", d->trace_id);
	if (d->input_rounds)
		cJSON_AddNumberToObject(o, "input_rounds", d->input_rounds);
	if (d->arguments)
		cJSON_AddItemReferenceToObject(o, "arguments", (cJSON *)d->arguments);
	if (d->result)
		cJSON_AddItemReferenceToObject(o, "result", (cJSON *)d->result);
	return o;
}

static char path[] = "/tmp/test_audit.XXXXXX";

static void test_decisions(void)
{
	cJSON *ok = cJSON_Parse("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"content\":[{\"type\":"
				"\"text\",\"text\":\"h\\u00e9 \\\"q\\\" \\n\"}],\"n\":1.5}}");
	cJSON *tool_err = cJSON_Parse("{\"id\":2,\"result\":{\"isError\":true,\"content\":[]}}");
	cJSON *deny = cJSON_Parse("{\"id\":3,\"error\":{\"code\":-32003,\"message\":\"tool "
				  "\\\"x\\\" is not permitted\",\"data\":{\"rule\":\"deny\"}}}");
	cJSON *odd_code = cJSON_Parse("{\"error\":{\"code\":1.25,\"message\":7}}");
	cJSON *str_code = cJSON_Parse("{\"error\":{\"code\":\"E1\"}}");
	cJSON *big_code = cJSON_Parse("{\"error\":{\"code\":1e20,\"message\":\"m\"}}");
	cJSON *no_code = cJSON_Parse("{\"error\":{\"message\":\"m\"}}");
	const char *shape = "{\"text\":\"string\",\"n\":\"number\"}";
	cJSON *args = cJSON_Parse("{\"text\":\"<script>alert(1)</script>\",\"n\":12345678901234567}");
	const struct audit_decision ds[] = {
		{ .session = "0123456789abcdef", .key = "k1", .team = "t1", .policy = "p1",
		  .workload = "/sys/fs/cgroup/agent", .method = "tools/call", .server = "s",
		  .target = "echo", .decision = "allow", .response = ok, .cost_micros = 1,
		  .args_shape = shape, .latency_us = 1234, .went_upstream = true,
		  .upstream_us = 999, .trace_id = "0af7651916cd43dd8448eb211c80319c",
		  .input_rounds = 2, .arguments = args, .result = cJSON_GetObjectItem(ok, "result") },
		{ .method = "tools/call", .target = "x\"y\\z\x01", .decision = "deny",
		  .reason = "not_permitted", .response = deny, .cost_micros = -1, .latency_us = 7 },
		{ .session = "short", .key = "k", .team = "", .policy = "",
		  .redirected_from = "10.0.0.5:8080", .method = "tools/call", .decision = "allow",
		  .response = tool_err, .cost_micros = 0, .latency_us = 0 },
		{ .method = "resources/read", .decision = "error", .reason = "upstream_failure",
		  .response = odd_code, .cost_micros = -1, .latency_us = 5000000000000000ULL },
		{ .method = "prompts/get", .decision = "error", .response = str_code,
		  .cost_micros = -1, .latency_us = 1 },
		{ .method = "prompts/get", .decision = "error", .response = big_code,
		  .cost_micros = -1, .latency_us = 1 },
		{ .method = "ping", .decision = "error", .response = no_code, .cost_micros = -1 },
		{ .method = "ping", .decision = "allow", .cost_micros = -1 },
	};
	size_t n = sizeof(ds) / sizeof(ds[0]);
	int fd, saved;

	fflush(stdout);
	fd = mkstemp(path);
	CU_ASSERT_FATAL(fd >= 0);
	saved = dup(STDOUT_FILENO);
	CU_ASSERT_FATAL(saved >= 0 && dup2(fd, STDOUT_FILENO) == STDOUT_FILENO);
	for (size_t i = 0; i < n; i++)
		audit_decision(&ds[i]);
	log_async_stop();       /* everything written */
	CU_ASSERT_FATAL(dup2(saved, STDOUT_FILENO) == STDOUT_FILENO);
	close(saved);

	FILE *f = fdopen(fd, "r");
	char *line = NULL;
	size_t cap = 0, i = 0;
	CU_ASSERT_FATAL(f != NULL);
	rewind(f);
	for (; getline(&line, &cap, f) > 0; i++) {
		CU_ASSERT_FATAL(i < n);
		line[strcspn(line, "\n")] = '\0';
		cJSON *o = oracle(&ds[i]);
		char *ref = log_record_line("decision", o, NULL);
		/* the same bytes after the time stamp, which is the one thing that differs */
		CU_ASSERT_EQUAL(strncmp(line, "{\"ts\":\"", 7), 0);
		CU_ASSERT_EQUAL(strlen(line), strlen(ref));
		CU_ASSERT_STRING_EQUAL(line + 7 + LOG_STAMP_LEN, ref + 7 + LOG_STAMP_LEN);
		cJSON *back = cJSON_Parse(line);
		CU_ASSERT_PTR_NOT_NULL(back);
		cJSON_Delete(back);
		cJSON_free(ref);
		cJSON_Delete(o);
	}
	CU_ASSERT_EQUAL(i, n);
	free(line);
	fclose(f);
	unlink(path);
	cJSON *all[] = { ok, tool_err, deny, odd_code, str_code, big_code, no_code, args };
	for (size_t k = 0; k < sizeof(all) / sizeof(all[0]); k++)
		cJSON_Delete(all[k]);
}

CU_MAIN("audit", NULL, NULL,
	{ "decision records, byte for byte", test_decisions })
