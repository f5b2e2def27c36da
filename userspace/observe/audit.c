/* audit: decision, auth and kernel_deny records. */
#include "observe/audit.h"

#include <string.h>

#include "base/log.h"

void audit_decision(const struct audit_decision *d)
{
	cJSON *o = cJSON_CreateObject();
	const cJSON *err = cJSON_GetObjectItemCaseSensitive(d->response, "error");
	const cJSON *res = cJSON_GetObjectItemCaseSensitive(d->response, "result");
	char sid[9] = "";

	if (!o)
		return;
	if (d->session)
		strncat(sid, d->session, sizeof(sid) - 1);  /* enough to correlate, not to hijack */
	cJSON_AddStringToObject(o, "session", sid);
	if (d->key) {
		cJSON_AddStringToObject(o, "key", d->key);
		if (d->team && *d->team)
			cJSON_AddStringToObject(o, "team", d->team);
	}
	cJSON_AddStringToObject(o, "method", d->method);
	if (d->server)
		cJSON_AddStringToObject(o, "server", d->server);
	if (d->target)
		cJSON_AddStringToObject(o, "target", d->target);
	cJSON_AddStringToObject(o, "decision", d->decision);
	if (d->reason)
		cJSON_AddStringToObject(o, "reason", d->reason);
	if (err) {
		cJSON_AddStringToObject(o, "status", "error");
		cJSON_AddItemToObject(o, "error_code",
				      cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(err, "code"), 1));
	} else if (res) {
		cJSON_AddStringToObject(o, "status",
					cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "isError"))
						? "tool_error" : "ok");
	}
	if (d->cost_micros >= 0)
		cJSON_AddNumberToObject(o, "cost_micros", (double)d->cost_micros);
	if (d->args_shape)
		cJSON_AddItemReferenceToObject(o, "args_shape", (cJSON *)d->args_shape);
	cJSON_AddNumberToObject(o, "latency_ms", (double)d->latency_ms);
	if (d->went_upstream)
		cJSON_AddNumberToObject(o, "upstream_ms", (double)d->upstream_ms);
	if (d->trace_id)
		cJSON_AddStringToObject(o, "trace_id", d->trace_id);
	log_record("decision", o);
	cJSON_Delete(o);
}

void audit_llm(const struct audit_llm *r)
{
	cJSON *o = cJSON_CreateObject();

	if (r->key) {
		cJSON_AddStringToObject(o, "key", r->key);
		if (r->team && *r->team)
			cJSON_AddStringToObject(o, "team", r->team);
	}
	cJSON_AddStringToObject(o, "endpoint", r->endpoint);
	if (r->provider)
		cJSON_AddStringToObject(o, "provider", r->provider);
	if (r->model)
		cJSON_AddStringToObject(o, "model", r->model);
	if (r->fallback_from)
		cJSON_AddStringToObject(o, "fallback_from", r->fallback_from);
	cJSON_AddBoolToObject(o, "stream", r->stream);
	cJSON_AddNumberToObject(o, "status", r->status);
	if (r->error)
		cJSON_AddStringToObject(o, "error", r->error);
	if (r->error_code)
		cJSON_AddStringToObject(o, "error_code", r->error_code);
	if (r->input_tokens >= 0)
		cJSON_AddNumberToObject(o, "input_tokens", (double)r->input_tokens);
	if (r->output_tokens >= 0)
		cJSON_AddNumberToObject(o, "output_tokens", (double)r->output_tokens);
	if (r->cost_micros >= 0)
		cJSON_AddNumberToObject(o, "cost_micros", (double)r->cost_micros);
	cJSON_AddNumberToObject(o, "latency_ms", (double)r->latency_ms);
	if (r->ttft_ms >= 0)
		cJSON_AddNumberToObject(o, "ttft_ms", (double)r->ttft_ms);
	if (r->prompt)
		cJSON_AddItemReferenceToObject(o, "prompt", (cJSON *)r->prompt);
	if (r->completion)
		cJSON_AddItemReferenceToObject(o, "completion", (cJSON *)r->completion);
	if (r->tool_calls)
		cJSON_AddItemReferenceToObject(o, "tool_calls", (cJSON *)r->tool_calls);
	if (r->tool)
		cJSON_AddStringToObject(o, "tool", r->tool);
	if (r->tool_call_id)
		cJSON_AddStringToObject(o, "tool_call_id", r->tool_call_id);
	if (r->session) {
		char sid[9] = "";
		strncat(sid, r->session, sizeof(sid) - 1);   /* as decision records have it */
		cJSON_AddStringToObject(o, "session", sid);
	}
	log_record("llm", o);
	cJSON_Delete(o);
}

void audit_auth(const char *reason, const char *key, const char *peer)
{
	cJSON *o = cJSON_CreateObject();

	if (!o)
		return;
	cJSON_AddStringToObject(o, "reason", reason);
	if (key && *key)
		cJSON_AddStringToObject(o, "key", key);
	if (peer)
		cJSON_AddStringToObject(o, "peer", peer);
	log_record("auth", o);
	cJSON_Delete(o);
}

void audit_kernel_deny(cJSON *event)
{
	log_record("kernel_deny", event);
}

void audit_enforcement(cJSON *action)
{
	log_record("enforcement", action);
}

void audit_tool_change(const char *server, const char *tool, const char *old_digest,
		       const char *new_digest, const cJSON *diff)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "server", server);
	cJSON_AddStringToObject(o, "tool", tool);
	if (old_digest)
		cJSON_AddStringToObject(o, "old_digest", old_digest);
	else
		cJSON_AddNullToObject(o, "old_digest");
	cJSON_AddStringToObject(o, "new_digest", new_digest);
	if (diff)
		cJSON_AddItemReferenceToObject(o, "diff", (cJSON *)diff);
	log_record("tool_change", o);
	cJSON_Delete(o);
}

void audit_tool_pin(const char *server, const char *tool, const char *digest, const char *by,
		    const char *how)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "server", server);
	cJSON_AddStringToObject(o, "tool", tool);
	cJSON_AddStringToObject(o, "digest", digest);
	cJSON_AddStringToObject(o, "how", how);
	cJSON_AddStringToObject(o, "by", by);
	log_record("tool_pin", o);
	cJSON_Delete(o);
}

void audit_loop_break(const char *key, const char *server, const char *tool, unsigned repeats,
		      int64_t window_ms, int64_t retry_ms)
{
	cJSON *o = cJSON_CreateObject();

	if (key)
		cJSON_AddStringToObject(o, "key", key);
	cJSON_AddStringToObject(o, "server", server);
	cJSON_AddStringToObject(o, "tool", tool);
	cJSON_AddNumberToObject(o, "max_repeats", repeats);
	cJSON_AddNumberToObject(o, "window_ms", (double)window_ms);
	cJSON_AddNumberToObject(o, "retry_after_ms", (double)retry_ms);
	log_record("loop_break", o);
	cJSON_Delete(o);
}

void audit_circuit(const char *server, const char *from, const char *to, int64_t retry_ms)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "server", server);
	cJSON_AddStringToObject(o, "from", from);
	cJSON_AddStringToObject(o, "to", to);
	if (retry_ms > 0)
		cJSON_AddNumberToObject(o, "retry_after_ms", (double)retry_ms);
	log_record("circuit", o);
	cJSON_Delete(o);
}

void audit_admin(cJSON *action)
{
	log_record("admin", action);
}
