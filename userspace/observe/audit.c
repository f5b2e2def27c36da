/* audit: decision, auth, kernel_deny, enforcement, admin and the store's notes, each leaving
 * through audit_emit (stdout and the log store). */
#include "observe/audit.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "base/json_get.h"
#include "base/jsonfmt.h"
#include "base/jsonw.h"
#include "base/log.h"
#include "observe/logstore.h"
#include "observe/logtail.h"

/* A record's sequence number and its place in the log store's queue are taken together: one
 * lock from the number to the record being queued (the record itself is written before it,
 * where it can be). On stdout a thread's records leave in their order; a loop hands a turn's
 * lines over together (base/log.h). */
static pthread_mutex_t emit_mu = PTHREAD_MUTEX_INITIALIZER;

/* The one place records leave: the stdout line and, when the store takes it, the same line
 * (with "seq" = its id) in the log store and the live tail (observe/logtail.h). */
static void audit_emit(const char *type, cJSON *obj)
{
	int64_t ts = 0, seq;
	char *line;

	pthread_mutex_lock(&emit_mu);
	seq = logstore_reserve();
	if (seq > 0 && !cJSON_AddNumberToObject(obj, "seq", (double)seq))
		seq = 0;        /* out of memory: not stored (the store's chain shows the gap) */
	line = log_record_line(type, obj, &ts);
	if (line) {
		logstore_append(seq, ts, type, obj, line);
		log_record_text(line);
		logtail_publish(line);     /* the dashboard's live tail */
		cJSON_free(line);
	}
	if (seq > 0)
		cJSON_DeleteItemFromObjectCaseSensitive(obj, "seq");  /* obj may be the caller's */
	pthread_mutex_unlock(&emit_mu);
}

/* The length of v printed compactly by cJSON, without printing it: a result's size costs a
 * walk, not a copy. Numbers are counted as cJSON prints them (integers exactly, others as
 * %1.15g, near enough). */
static size_t json_size(const cJSON *v)
{
	char buf[64];
	size_t n = 0;

	if (!v)
		return 0;
	switch (v->type & 0xff) {
	case cJSON_False: return 5;
	case cJSON_True: return 4;
	case cJSON_NULL: return 4;
	case cJSON_Number:
		if (v->valuedouble == (double)v->valueint)
			return (size_t)snprintf(buf, sizeof(buf), "%d", v->valueint);
		if (!isfinite(v->valuedouble))
			return 4;
		return (size_t)snprintf(buf, sizeof(buf), "%1.15g", v->valuedouble);
	case cJSON_Raw: return v->valuestring ? strlen(v->valuestring) : 0;
	case cJSON_String: {
		n = 2;
		for (const unsigned char *p = (const unsigned char *)v->valuestring; p && *p; p++)
			n += *p == '"' || *p == '\\' || *p == '\b' || *p == '\f' || *p == '\n' ||
			     *p == '\r' || *p == '\t' ? 2 : *p < 32 ? 6 : 1;
		return n;
	}
	case cJSON_Array:
	case cJSON_Object: {
		bool obj = (v->type & 0xff) == cJSON_Object;
		n = 2;
		for (const cJSON *c = v->child; c; c = c->next) {
			if (c != v->child)
				n++;
			if (obj) {
				cJSON k = { .type = cJSON_String, .valuestring = c->string };
				n += json_size(&k) + 1;
			}
			n += json_size(c);
		}
		return n;
	}
	}
	return 0;
}

/* The session id's first 8 characters: enough to correlate, not to hijack. */
static void add_session(cJSON *o, const char *session)
{
	char sid[9] = "";

	if (session)
		strncat(sid, session, sizeof(sid) - 1);
	cJSON_AddStringToObject(o, "session", sid);
}

/* The key's id and, when it has them, its team and its own policy. */
static void add_key(cJSON *o, const char *key, const char *team, const char *policy)
{
	if (!key)
		return;
	cJSON_AddStringToObject(o, "key", key);
	if (team && *team)
		cJSON_AddStringToObject(o, "team", team);
	if (policy && *policy)
		cJSON_AddStringToObject(o, "policy", policy);
}

/* A string member and, when the store indexes it, its column. */
static void str_col(struct jsonw *w, struct logstore_cols *cols, int col, const char *name,
		    const char *v)
{
	if (!v)
		return;
	jsonw_member_str(w, name, v);
	if (col >= 0)
		cols->text[col] = v;
}

static void int_col(struct jsonw *w, struct logstore_cols *cols, int col, const char *name,
		    int64_t v)
{
	jsonw_member_int(w, name, v);
	if (col >= 0) {
		cols->ints[col] = v;
		cols->has_int[col] = true;
	}
}

/* The thread's decision record buffer (audit_thread_end frees it). */
static _Thread_local struct jsonw w;

void audit_thread_end(void)
{
	jsonw_free(&w);
}

/* The decision record is made on every call, so it is written as text (base/jsonw.h), not
 * built as a tree and printed: the same bytes, members and order audit_emit would give the
 * tree (docs/audit.md; the chain hashes them), without an allocation once the buffer has
 * grown. It is written outside emit_mu (each thread has its buffer: loops write theirs side
 * by side); under it only the stamp goes in, the sequence number last, and the record out,
 * so stamps still rise with the numbers. */
void audit_decision(const struct audit_decision *d)
{
	const cJSON *err = json_get(d->response, "error");
	const cJSON *res = json_get(d->response, "result");
	struct logstore_cols cols = { 0 };
	char ts[LOG_STAMP_LEN + 1], sid[9] = "";
	int64_t ts_ms, seq;
	size_t stamp_at;

	if (d->session)
		strncat(sid, d->session, sizeof(sid) - 1);
	jsonw_reset(&w);
	jsonw_raw(&w, "{\"ts\":\"", 7);
	stamp_at = w.len;
	jsonw_raw(&w, "YYYY-MM-DDTHH:MM:SS.mmmZ", LOG_STAMP_LEN);    /* stamped below */
	jsonw_raw(&w, "\",\"type\":\"decision\"", 19);
	str_col(&w, &cols, LS_SESSION, "session", sid);
	if (d->key) {
		str_col(&w, &cols, LS_KEY, "key", d->key);
		str_col(&w, &cols, LS_TEAM, "team", d->team && *d->team ? d->team : NULL);
		str_col(&w, &cols, -1, "policy", d->policy && *d->policy ? d->policy : NULL);
	}
	str_col(&w, &cols, -1, "workload", d->workload);
	if (d->redirected_from) {
		str_col(&w, &cols, -1, "original_destination", d->redirected_from);
		jsonw_member_bool(&w, "redirected", true);
	}
	str_col(&w, &cols, LS_METHOD, "method", d->method);
	str_col(&w, &cols, LS_SERVER, "server", d->server);
	str_col(&w, &cols, LS_TARGET, "target", d->target);
	str_col(&w, &cols, LS_DECISION, "decision", d->decision);
	str_col(&w, &cols, LS_REASON, "reason", d->reason);
	if (err) {
		const cJSON *code = json_get(err, "code");
		const cJSON *msg = json_get(err, "message");

		str_col(&w, &cols, LS_STATUS, "status", "error");
		if (code) {
			jsonw_member_tree(&w, "error_code", code);
			/* in int64_t's range before the conversion: written as it came */
			if ((cols.has_int[LS_ERROR_CODE] = cJSON_IsNumber(code) &&
			     code->valuedouble > -9.2e18 && code->valuedouble < 9.2e18))
				cols.ints[LS_ERROR_CODE] = (int64_t)code->valuedouble;
		}
		if (cJSON_IsString(msg))
			str_col(&w, &cols, LS_ERROR_MESSAGE, "error_message", msg->valuestring);
	} else if (res) {
		str_col(&w, &cols, LS_STATUS, "status",
			cJSON_IsTrue(json_get(res, "isError"))
				? "tool_error" : "ok");
		int_col(&w, &cols, LS_RESULT_BYTES, "result_bytes", (int64_t)json_size(res));
	}
	if (d->cost_micros >= 0)
		int_col(&w, &cols, LS_COST_MICROS, "cost_micros", d->cost_micros);
	if (d->args_shape) {
		jsonw_name(&w, "args_shape");
		jsonw_raw(&w, d->args_shape, strlen(d->args_shape));
	}
	int_col(&w, &cols, -1, "latency_ms", (int64_t)(d->latency_us / 1000));
	int_col(&w, &cols, LS_LATENCY_US, "latency_us", (int64_t)d->latency_us);
	if (d->went_upstream) {
		int_col(&w, &cols, -1, "upstream_ms", (int64_t)(d->upstream_us / 1000));
		int_col(&w, &cols, LS_UPSTREAM_US, "upstream_us", (int64_t)d->upstream_us);
	}
	str_col(&w, &cols, LS_TRACE_ID, "trace_id", d->trace_id);
	if (d->input_rounds)
		int_col(&w, &cols, -1, "input_rounds", d->input_rounds);
	if (d->arguments)
		jsonw_member_tree(&w, "arguments", d->arguments);
	if (d->result)
		jsonw_member_tree(&w, "result", d->result);
	pthread_mutex_lock(&emit_mu);
	seq = logstore_reserve();
	log_record_stamp(ts, &ts_ms);
	memcpy(w.buf + stamp_at, ts, LOG_STAMP_LEN);
	if (seq > 0)
		jsonw_member_int(&w, "seq", seq);
	jsonw_raw(&w, "}", 1);
	logstore_append_cols(seq, ts_ms, "decision", &cols, w.buf, w.len);
	log_record_text(w.buf);
	logtail_publish(w.buf);
	pthread_mutex_unlock(&emit_mu);
}

void audit_refusal(const struct audit_refusal *r)
{
	cJSON *o = cJSON_CreateObject();        /* cannot fail: base/alloc.h */
	const cJSON *code = json_get(r->error, "code");
	const cJSON *msg = json_get(r->error, "message");

	if (r->session)
		add_session(o, r->session);
	add_key(o, r->key, NULL, NULL);
	cJSON_AddStringToObject(o, "decision", "deny");
	cJSON_AddStringToObject(o, "reason", r->reason);
	cJSON_AddStringToObject(o, "status", "error");
	cJSON_AddNumberToObject(o, "http_status", r->http_status);
	if (cJSON_IsNumber(code))
		cJSON_AddNumberToObject(o, "error_code", code->valuedouble);
	if (cJSON_IsString(msg))
		cJSON_AddStringToObject(o, "error_message", msg->valuestring);
	jsonfmt_add_opt(o, "peer", r->peer);
	audit_emit("decision", o);
	cJSON_Delete(o);
}

void audit_llm(const struct audit_llm *r)
{
	cJSON *o = cJSON_CreateObject();

	add_key(o, r->key, r->team, r->policy);
	jsonfmt_add_opt(o, "workload", r->workload);
	cJSON_AddStringToObject(o, "endpoint", r->endpoint);
	jsonfmt_add_opt(o, "provider", r->provider);
	jsonfmt_add_opt(o, "model", r->model);
	jsonfmt_add_opt(o, "fallback_from", r->fallback_from);
	cJSON_AddBoolToObject(o, "stream", r->stream);
	cJSON_AddNumberToObject(o, "status", r->status);
	jsonfmt_add_opt(o, "error", r->error);
	jsonfmt_add_opt(o, "error_code", r->error_code);
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
	jsonfmt_add_opt(o, "tool", r->tool);
	jsonfmt_add_opt(o, "tool_call_id", r->tool_call_id);
	if (r->session)
		add_session(o, r->session);
	audit_emit("llm", o);
	cJSON_Delete(o);
}

void audit_auth(const char *reason, const char *key, const char *peer)
{
	audit_auth_workload(reason, key, peer, NULL);
}

void audit_auth_workload(const char *reason, const char *key, const char *peer,
			 const char *workload)
{
	cJSON *o = cJSON_CreateObject();        /* cannot fail: base/alloc.h */

	cJSON_AddStringToObject(o, "reason", reason);
	if (key && *key)
		cJSON_AddStringToObject(o, "key", key);
	jsonfmt_add_opt(o, "peer", peer);
	jsonfmt_add_opt(o, "workload", workload);
	audit_emit("auth", o);
	cJSON_Delete(o);
}

void audit_kernel_deny(cJSON *event)
{
	audit_emit("kernel_deny", event);
}

void audit_enforcement(cJSON *action)
{
	audit_emit("enforcement", action);
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
	audit_emit("tool_change", o);
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
	audit_emit("tool_pin", o);
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
	audit_emit("loop_break", o);
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
	audit_emit("circuit", o);
	cJSON_Delete(o);
}

void audit_admin(cJSON *action)
{
	audit_emit("admin", action);
}

void audit_note(const char *type, cJSON *obj)
{
	audit_emit(type, obj);
}
