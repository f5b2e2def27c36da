/* audit: decision, auth and kernel_deny records. */
#include "observe/audit.h"

#include <string.h>

#include "base/log.h"
#include "observe/logtail.h"

/* The live tail's copy of a record: the same fields as the stdout line, in the same order.
 * (At the merge with the log store, log_record_line gives the one string for all three.) */
static void tail_record(const char *type, cJSON *obj)
{
	char ts[40];
	cJSON *line;
	char *text;

	if (!logtail_subscribers())
		return;
	line = cJSON_CreateObject();
	log_timestamp(ts, sizeof(ts));
	cJSON_AddStringToObject(line, "ts", ts);
	cJSON_AddStringToObject(line, "type", type);
	for (cJSON *it = obj ? obj->child : NULL; it; it = it->next)
		cJSON_AddItemReferenceToObject(line, it->string, it);
	text = cJSON_PrintUnformatted(line);
	cJSON_Delete(line);
	logtail_publish(text);
	cJSON_free(text);
}

/* The one place records leave: stdout, the log store, the live tail. */
static void audit_emit(const char *type, cJSON *obj)
{
	log_record(type, obj);
	tail_record(type, obj);
}

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
	audit_emit("decision", o);
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

void audit_admin(cJSON *action)
{
	audit_emit("admin", action);
}
