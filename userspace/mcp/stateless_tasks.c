/* stateless_tasks: the 2026-07-28 tasks extension over 2025-11-25 upstream tasks. */
#include "mcp/stateless_tasks.h"

#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/config.h"
#include "base/json_get.h"
#include "base/list.h"
#include "base/log.h"
#include "govern/keys.h"
#include "mcp/catalog.h"
#include "mcp/jsonrpc.h"
#include "mcp/reply.h"
#include "mcp/router.h"
#include "mcp/session.h"
#include "mcp/stateless_record.h"
#include "mcp/tasks.h"
#include "observe/audit.h"

#define RELATED_TASK "io.modelcontextprotocol/related-task"
#define MAX_PENDING 16          /* a task's requests to the client kept at once */

/* Task state (tasks_ext) keys. */
#define EXT_ASKED "asked"       /* gateway id -> {method, params}: pending input requests */
#define EXT_OUTCOME "outcome"   /* {result} or {error}: the watch's answer */

bool stasks_declared(const cJSON *caps)
{
	const cJSON *ext = json_get(caps, "extensions");

	return cJSON_IsObject(json_get(ext, STASKS_EXTENSION));
}

void stasks_advertise(cJSON *caps)
{
	cJSON *v1 = cJSON_DetachItemFromObjectCaseSensitive(caps, "tasks");
	const cJSON *call = json_get(json_get(
			json_get(v1, "requests"), "tools"), "call");
	cJSON *ext;

	if (call) {
		ext = json_get(caps, "extensions");
		if (!ext)
			ext = cJSON_AddObjectToObject(caps, "extensions");
		if (ext && !cJSON_HasObjectItem(ext, STASKS_EXTENSION))
			cJSON_AddObjectToObject(ext, STASKS_EXTENSION);
	}
	cJSON_Delete(v1);
}

/* A duration in ms as the extension writes it: a positive integer, or null (ttl only). */
static void rename_ms(cJSON *o, const char *from, const char *to, bool nullable)
{
	cJSON *v;

	if (cJSON_HasObjectItem(o, to)) {
		/* an upstream that writes it the new way already: the old name goes */
		cJSON_DeleteItemFromObjectCaseSensitive(o, from);
		return;
	}
	v = cJSON_DetachItemFromObjectCaseSensitive(o, from);
	if (cJSON_IsNumber(v) && v->valuedouble >= 1 && v->valuedouble < 9e15)
		cJSON_AddNumberToObject(o, to, floor(v->valuedouble));
	else if (nullable)
		cJSON_AddNullToObject(o, to);
	cJSON_Delete(v);
}

/* The fields of a 2025-11-25 Task, renamed, copied into the flat shape. */
static void task_fields(cJSON *to, const cJSON *task)
{
	static const char *const plain[] = { "taskId", "status", "statusMessage", "createdAt",
					     "lastUpdatedAt", NULL };

	for (const char *const *f = plain; *f; f++) {
		const cJSON *v = json_get(task, *f);
		if (v && !cJSON_HasObjectItem(to, *f))
			cJSON_AddItemToObject(to, *f, cJSON_Duplicate(v, 1));
	}
}

static void drop_related_meta(cJSON *o)
{
	cJSON *meta = json_get(o, "_meta");

	cJSON_DeleteItemFromObjectCaseSensitive(meta, RELATED_TASK);
	if (cJSON_IsObject(meta) && !meta->child)
		cJSON_DeleteItemFromObjectCaseSensitive(o, "_meta");
}

static void set_string(cJSON *o, const char *k, const char *v)
{
	cJSON_DeleteItemFromObjectCaseSensitive(o, k);
	cJSON_AddStringToObject(o, k, v);
}

int stasks_created(cJSON *result)
{
	cJSON *task = cJSON_DetachItemFromObjectCaseSensitive(result, "task");
	const cJSON *status;

	if (!cJSON_IsObject(task)) {
		if (task)
			cJSON_AddItemToObject(result, "task", task);
		return -ENOENT;
	}
	task_fields(result, task);
	rename_ms(task, "ttl", "ttlMs", true);
	rename_ms(task, "pollInterval", "pollIntervalMs", false);
	cJSON_AddItemToObject(result, "ttlMs",
			      cJSON_Duplicate(json_get(task, "ttlMs"), 1));
	if (cJSON_HasObjectItem(task, "pollIntervalMs"))
		cJSON_AddItemToObject(result, "pollIntervalMs", cJSON_Duplicate(
			json_get(task, "pollIntervalMs"), 1));
	cJSON_Delete(task);
	/* The requests of an input_required task reach the agent through tasks/get. */
	status = json_get(result, "status");
	if (cJSON_IsString(status) && !strcmp(status->valuestring, "input_required"))
		set_string(result, "status", "working");
	drop_related_meta(result);
	set_string(result, "resultType", "task");
	return 0;
}

static bool is(const cJSON *s, const char *v)
{
	return cJSON_IsString(s) && !strcmp(s->valuestring, v);
}

void stasks_detailed(cJSON *result, const cJSON *ext)
{
	const cJSON *status = json_get(result, "status");
	const cJSON *asked = json_get(ext, EXT_ASKED);
	const cJSON *outcome = json_get(ext, EXT_OUTCOME);
	const cJSON *res = json_get(outcome, "result");
	const cJSON *err = json_get(outcome, "error");
	cJSON *v;

	rename_ms(result, "ttl", "ttlMs", true);
	rename_ms(result, "pollInterval", "pollIntervalMs", false);
	drop_related_meta(result);
	if (is(status, "completed") || is(status, "failed")) {
		if (cJSON_IsObject(err)) {
			set_string(result, "status", "failed");
			cJSON_AddItemToObject(result, "error", cJSON_Duplicate(err, 1));
		} else if (cJSON_IsObject(res) && (is(status, "completed") ||
			   cJSON_IsTrue(json_get(res, "isError")))) {
			/* A tool that ran and reported an error is a completed task. */
			set_string(result, "status", "completed");
			v = cJSON_Duplicate(res, 1);
			drop_related_meta(v);
			cJSON_AddItemToObject(result, "result", v);
		} else if (cJSON_IsObject(res)) {
			/* failed, with a result that is not a tool error: an error of the task */
			const cJSON *msg = json_get(result, "statusMessage");
			v = cJSON_AddObjectToObject(result, "error");
			cJSON_AddNumberToObject(v, "code", JSONRPC_INTERNAL_ERROR);
			cJSON_AddStringToObject(v, "message", cJSON_IsString(msg) ? msg->valuestring
									       : "the task failed");
		} else {
			/* Terminal upstream, its outcome not here yet: the agent polls again. */
			set_string(result, "status", "working");
		}
	} else if (!is(status, "cancelled")) {
		if (cJSON_IsObject(asked) && asked->child) {
			set_string(result, "status", "input_required");
			cJSON_AddItemToObject(result, "inputRequests", cJSON_Duplicate(asked, 1));
		} else if (is(status, "input_required")) {
			set_string(result, "status", "working");  /* its requests are on their way */
		}
	}
	set_string(result, "resultType", "complete");
}

void stasks_cancelled(cJSON *response, bool owned)
{
	const cJSON *err = json_get(response, "error");
	cJSON *ack;

	if (err && !(owned &&
		     cJSON_GetNumberValue(json_get(err, "code")) == JSONRPC_INVALID_PARAMS))
		return;
	ack = cJSON_CreateObject();
	cJSON_AddStringToObject(ack, "resultType", "complete");
	cJSON_DeleteItemFromObjectCaseSensitive(response, "error");
	cJSON_DeleteItemFromObjectCaseSensitive(response, "result");
	cJSON_AddItemToObject(response, "result", ack);
}

int stasks_keep_request(cJSON *ext, const cJSON *request)
{
	const cJSON *id = json_get(request, "id");
	const cJSON *method = json_get(request, "method");
	const cJSON *params = json_get(request, "params");
	cJSON *asked = json_get(ext, EXT_ASKED), *one;

	if (!cJSON_IsString(id) || !cJSON_IsString(method))
		return -EINVAL;
	if (!asked && !(asked = cJSON_AddObjectToObject(ext, EXT_ASKED)))
		return -ENOMEM;
	if (cJSON_GetArraySize(asked) >= MAX_PENDING)
		return -ENOBUFS;
	one = cJSON_CreateObject();
	if (!one)
		return -ENOMEM;
	cJSON_AddStringToObject(one, "method", method->valuestring);
	if (params) {
		cJSON *p = cJSON_Duplicate(params, 1);
		drop_related_meta(p);
		cJSON_AddItemToObject(one, "params", p);
	}
	cJSON_DeleteItemFromObjectCaseSensitive(asked, id->valuestring);
	cJSON_AddItemToObject(asked, id->valuestring, one);
	return 0;
}

void stasks_keep_outcome(cJSON *ext, const cJSON *response)
{
	const cJSON *res = json_get(response, "result");
	const cJSON *err = json_get(response, "error");
	cJSON *o = cJSON_CreateObject();

	if (cJSON_IsObject(res))
		cJSON_AddItemToObject(o, "result", cJSON_Duplicate(res, 1));
	else if (cJSON_IsObject(err))
		cJSON_AddItemToObject(o, "error", cJSON_Duplicate(err, 1));
	cJSON_DeleteItemFromObjectCaseSensitive(ext, EXT_OUTCOME);
	cJSON_AddItemToObject(ext, EXT_OUTCOME, o);
	/* Nothing is pending once the upstream has answered. */
	cJSON_DeleteItemFromObjectCaseSensitive(ext, EXT_ASKED);
}

cJSON *stasks_answers(cJSON *ext, const cJSON *input_responses)
{
	cJSON *asked = json_get(ext, EXT_ASKED);
	cJSON *out = cJSON_CreateArray();
	const cJSON *r;

	if (!out)
		return NULL;
	cJSON_ArrayForEach(r, input_responses) {
		cJSON *msg;
		if (!r->string || !json_get(asked, r->string))
			continue;
		msg = cJSON_CreateObject();
		if (!msg) {
			cJSON_Delete(out);
			return NULL;
		}
		cJSON_AddStringToObject(msg, "jsonrpc", "2.0");
		cJSON_AddStringToObject(msg, "id", r->string);
		cJSON_AddItemToObject(msg, "result", cJSON_Duplicate(r, 1));
		cJSON_AddItemToArray(out, msg);
		cJSON_DeleteItemFromObjectCaseSensitive(asked, r->string);
	}
	return out;
}

/* --- requests --------------------------------------------------------------------------- */

static const char *task_support(struct router *r, const cJSON *params)
{
	const struct catalog *cat = router_catalog(r);
	const cJSON *name = json_get(params, "name");
	const struct catalog_entry *e;
	const cJSON *ts;

	if (!cJSON_IsString(name))
		return NULL;
	e = catalog_find(cat, CAT_TOOLS, name->valuestring);
	if (!e || !catalog_server_tasks(cat, e->server, "tools/call"))
		return NULL;
	ts = json_get(json_get(e->json, "execution"), "taskSupport");
	return cJSON_IsString(ts) && (!strcmp(ts->valuestring, "optional") ||
				      !strcmp(ts->valuestring, "required")) ? ts->valuestring : NULL;
}

int stasks_prepare_call(struct router *r, cJSON *params, bool ext, bool *as_task)
{
	const char *support;
	cJSON *task;

	*as_task = false;
	/* A v1 agent's hint: the tool and the negotiation decide, not the hint. */
	cJSON_DeleteItemFromObjectCaseSensitive(params, "task");
	support = task_support(r, params);
	if (!support)
		return 0;
	if (!ext) {
		return strcmp(support, "required") ? 0 : -ENOTSUP;
	}
	task = cJSON_AddObjectToObject(params, "task");
	if (!task || !cJSON_AddNumberToObject(task, "ttl", STASKS_TTL_MS))
		return 0;       /* out of memory: it runs as a plain call */
	*as_task = true;
	return 0;
}

/* The watch: the gateway's tasks/result for one task, on the holder. */
struct watch {
	struct reply base;
	struct session *s;
	char task_id[256];
};

static int watch_event(struct reply *base, const cJSON *msg)
{
	struct watch *w = container_of(base, struct watch, base);
	cJSON *ext;

	if (!json_get(msg, "id"))
		return 0;       /* progress, logs: nobody polls for them */
	ext = tasks_ext(&w->s->tasks, w->task_id);
	if (!ext)
		return -ENOENT;
	return stasks_keep_request(ext, msg) ? -EOPNOTSUPP : 0;
}

static void watch_finish(struct reply *base, cJSON *response)
{
	struct watch *w = container_of(base, struct watch, base);
	cJSON *ext = response ? tasks_ext(&w->s->tasks, w->task_id) : NULL;

	if (ext)
		stasks_keep_outcome(ext, response);
	cJSON_Delete(response);
	free(w);
}

static void watch_on_gone(struct reply *base, void (*fn)(void *arg), void *arg)
{
	/* The gateway's own request: it never goes away before its answer. */
	(void)base, (void)fn, (void)arg;
}

static const struct reply_ops watch_ops = {
	.event = watch_event, .finish = watch_finish, .on_gone = watch_on_gone,
};

void stasks_watch(struct router *r, struct session *s, const struct key_identity *who,
		  const char *task_id)
{
	static _Atomic unsigned long long next;
	struct watch *w = calloc(1, sizeof(*w));
	cJSON *msg = cJSON_CreateObject(), *params;
	struct jsonrpc_msg m;
	char gid[48];
	int code;
	const char *why;

	if (!w || !msg || strlen(task_id) >= sizeof(w->task_id))
		goto fail;
	w->base.ops = &watch_ops;
	w->s = s;
	snprintf(w->task_id, sizeof(w->task_id), "%s", task_id);
	snprintf(gid, sizeof(gid), "mcpwarden-taskwatch-%llu",
		 atomic_fetch_add_explicit(&next, 1, memory_order_relaxed) + 1);
	cJSON_AddStringToObject(msg, "jsonrpc", "2.0");
	cJSON_AddStringToObject(msg, "id", gid);
	cJSON_AddStringToObject(msg, "method", "tasks/result");
	params = cJSON_AddObjectToObject(msg, "params");
	if (!params || !cJSON_AddStringToObject(params, "taskId", task_id) ||
	    jsonrpc_classify(msg, &m, &code, &why))
		goto fail;
	router_request(r, s, who, msg, &m, &w->base);
	return;
fail:
	log_warn("task %s: not watched (out of memory): tasks/get will not inline its outcome",
		 task_id);
	cJSON_Delete(msg);
	free(w);
}

/* tasks/update is answered by the gateway itself, with no call made of it: its decision
 * record is written here (docs/audit.md), naming the task and the upstream that runs it. */
static void update_record(struct router *r, struct session *s, const struct key_identity *who,
			  const char *task_id, const char *decision, const char *reason,
			  const cJSON *resp, uint64_t received_ns)
{
	const struct catalog *cat = router_catalog(r);
	size_t server;

	stateless_record(who, &(struct audit_decision){
		.method = "tasks/update",
		.server = !tasks_owner(&s->tasks, task_id, &server) &&
			  server < catalog_nservers(cat)
			  ? catalog_server_config(cat, server)->name : NULL,
		.target = task_id,
		.decision = decision,
		.reason = reason,
		.response = resp,
	}, received_ns);
}

int stasks_update(struct router *r, struct session *s, const struct key_identity *who,
		  const struct jsonrpc_msg *m, struct reply *reply, cJSON **err)
{
	const cJSON *id = json_get(m->params, "taskId");
	const cJSON *in = json_get(m->params, "inputResponses");
	cJSON *ext, *answers, *a, *ack, *resp;
	unsigned relayed = 0;
	char note[64];

	*err = NULL;
	if (!cJSON_IsString(id) || (in && !cJSON_IsObject(in))) {
		*err = jsonrpc_error(m->id, JSONRPC_INVALID_PARAMS, "tasks/update needs "
				     "params.taskId and an inputResponses object", NULL);
		return 400;
	}
	ext = tasks_ext(&s->tasks, id->valuestring);
	if (!ext) {
		cJSON *data = cJSON_CreateObject();
		cJSON_AddStringToObject(data, "taskId", id->valuestring);
		resp = jsonrpc_error(m->id, JSONRPC_INVALID_PARAMS,
				     "Failed to retrieve task: Task not found", data);
		update_record(r, s, who, id->valuestring, "deny", "unknown task", resp,
			      reply->received_ns);
		reply_finish(reply, resp);
		return 0;
	}
	answers = stasks_answers(ext, in);
	if (!answers) {
		*err = jsonrpc_error(m->id, JSONRPC_INTERNAL_ERROR, "out of memory", NULL);
		return 500;
	}
	/* Each answer goes to the upstream request it names, as the client's response. */
	while (answers->child) {
		struct jsonrpc_msg rm;
		int code;
		const char *why;
		a = cJSON_DetachItemViaPointer(answers, answers->child);
		if (jsonrpc_classify(a, &rm, &code, &why)) {
			cJSON_Delete(a);
		} else {
			router_response(r, s, a, &rm);
			relayed++;
		}
	}
	cJSON_Delete(answers);
	ack = cJSON_CreateObject();
	cJSON_AddStringToObject(ack, "resultType", "complete");
	resp = jsonrpc_result(m->id, ack);
	snprintf(note, sizeof(note), "task input: %u answer%s relayed", relayed,
		 relayed == 1 ? "" : "s");
	update_record(r, s, who, id->valuestring, "allow", note, resp, reply->received_ns);
	reply_finish(reply, resp);
	return 0;
}
