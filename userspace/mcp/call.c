/* call: one downstream request from receipt to answer, one state at a time. */
#include "mcp/call.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/event.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/config.h"
#include "base/json_get.h"
#include "base/log.h"
#include "govern/gate.h"
#include "govern/refusal.h"
#include "mcp/call_int.h"
#include "mcp/catalog.h"
#include "mcp/jsonrpc.h"
#include "mcp/jsonrpc_splice.h"
#include "mcp/links.h"
#include "mcp/reply.h"
#include "mcp/scope.h"
#include "mcp/session.h"
#include "mcp/tasks.h"
#include "mcp/upstream.h"
#include "observe/audit.h"
#include "observe/metrics.h"
#include "observe/trace.h"

#define PENDING_RETRY_MS 1000  /* a session at its pending cap: when to try again */

static const char *const decision_names[] = { "allow", "deny", "error" };

const char *decision_name(enum decision d)
{
	return decision_names[d];
}

static const char *server_name(const struct call *c)
{
	return c->server < catalog_nservers(c->env->cat)
		? catalog_server_config(c->env->cat, c->server)->name : NULL;
}

/* --- the record ------------------------------------------------------------------------ */

/* What is charged, not what was reserved: refused, failed and cancelled calls release
 * their reservation (failures are charged only where the upstream says so). -1: nothing. */
static int64_t charged(const struct call *c, enum decision decision, const cJSON *resp)
{
	if (c->ticket && decision == DECISION_ALLOW && resp &&
	    (!json_get(resp, "error") ||
	     catalog_server_config(c->env->cat, c->server)->charge_failures))
		return gate_ticket_cost(c->ticket);
	return -1;
}

static void record_cost(struct call *c, enum decision decision, const char *reason,
			const cJSON *resp, int64_t cost_micros)
{
	const cJSON *err = json_get(resp, "error");
	const cJSON *res = json_get(resp, "result");
	const char *server = server_name(c);
	uint64_t now = clock_mono_ns();
	/* waiting for the upstream: until its answer, or until now when none came */
	uint64_t up = !c->fwd_ns ? 0 : c->ans_ns >= c->fwd_ns ? c->ans_ns - c->fwd_ns
		      : now - c->fwd_ns;
	struct audit_decision d = {
		.session = c->s && !c->s->stateless ? c->s->id : NULL,
		.key = c->has_who ? c->who.id : NULL,
		.team = c->has_who ? c->who.team : NULL,
		.policy = c->has_who ? c->who.policy : NULL,
		.workload = c->has_who && c->who.workload[0] ? c->who.workload : NULL,
		.redirected_from = c->s && c->s->redirected_from[0] ? c->s->redirected_from : NULL,
		.method = c->method->name,
		.server = server,
		.target = c->target,
		.decision = decision_name(decision),
		.reason = reason,
		.response = resp,
		.cost_micros = cost_micros,
		.args_shape = c->args_shape,
		.latency_us = (now - c->t0_ns) / 1000,
		.went_upstream = c->fwd_ns != 0,
		.upstream_us = up / 1000,
		.trace_id = NULL,       /* s3-otel: the call's trace */
		.input_rounds = c->reply ? c->reply->rounds : 0,
		.arguments = c->logged_args,
	};
	cJSON *logged_result = NULL;
	char trace_id[33];
	if (c->span) {
		call_trace_decided(c, d.decision, reason, d.cost_micros, trace_id);
		d.trace_id = trace_id;
	}
	if (c->has_who && res && c->method->id == MCP_TOOLS_CALL && !cJSON_IsRaw(res))
		d.result = logged_result = gate_logged_copy(c->env->gate, &c->who, res);
	audit_decision(&d);
	cJSON_Delete(logged_result);
	const cJSON *code = json_get(err, "code");
	metrics_decision(c->method->name, decision_name(decision),
			 cJSON_IsNumber(code) ? code->valueint : 0,
			 cJSON_IsTrue(json_get(res, "isError")), server,
			 now - c->t0_ns - up, up);
	if (c->rx_ns && c->t0_ns >= c->rx_ns)
		metrics_stage(METRICS_STAGE_FRONT, c->t0_ns - c->rx_ns);
	if (c->gate_ns)
		metrics_stage(METRICS_STAGE_GATE, c->gate_ns);
	if (c->method->id == MCP_TOOLS_CALL)
		metrics_tool_call(server, server ? c->upname : NULL, now - c->t0_ns);
	if (c->ans_ns) {
		metrics_stage(METRICS_STAGE_UPSTREAM, c->ans_ns - c->fwd_ns);
		metrics_stage(METRICS_STAGE_SETTLE, now - c->ans_ns);
	}
}

static void record(struct call *c, enum decision decision, const char *reason, const cJSON *resp)
{
	record_cost(c, decision, reason, resp, charged(c, decision, resp));
}

/* The allowed call's record, kept for after its answer (answered): now. */
static void record_late(void *arg, const cJSON *resp)
{
	struct call *c = arg;

	if (!c->record_late)
		return;
	c->record_late = false;
	record_cost(c, DECISION_ALLOW, c->note, resp, c->late_cost);
}

/* --- deciding and finishing -------------------------------------------------------------- */

/* The answer is decided: the call goes to DONE, where it is written. */
static void decide(struct call *c, cJSON *resp)
{
	cJSON_Delete(c->resp);
	c->resp = resp;
	c->state = CALL_DONE;
}

static void on_client_gone(void *arg);

void call_park(struct call *c, cJSON *params)
{
	cJSON_Delete(c->up_params);
	c->up_params = params;
	c->parked = true;
	c->state = CALL_SENT;
	if (c->reply)
		reply_on_gone(c->reply, on_client_gone, c);
}

void call_answer(struct call *c, cJSON *result)
{
	decide(c, jsonrpc_result(c->down_id, result));
}

void call_fail(struct call *c, int code, const char *reason, cJSON *data, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cJSON *e = jsonrpc_error(c->down_id, code, msg, data);
	record(c, reason ? DECISION_DENY : DECISION_ERROR, reason ? reason : msg, e);
	decide(c, e);
}

/* The upstream's circuit hears how a call it let through went (failure: transport error,
 * timeout, HTTP 5xx — what the link reports as -32010/-32011). */
static void circuit_outcome(struct call *c, bool failure)
{
	if (!c->circuit_out)
		return;
	c->circuit_out = false;
	gate_circuit_result(c->env->gate, c->server, failure, c->circuit_probe);
}

/* Freed calls kept for the next ones, a loop's own (a call lives on one loop). A call is
 * 1.7 KiB, more than glibc's per-thread cache takes: each calloc went to the arena, and set
 * off a malloc_consolidate on most calls (1.2 % of the loop at 64 connections). */
#define CALL_SPARES_MAX 64
static _Thread_local struct call *spares[CALL_SPARES_MAX];
static _Thread_local unsigned nspares;

static struct call *call_alloc(void)
{
	struct call *c = nspares ? spares[--nspares] : xmalloc(sizeof(*c));

	memset(c, 0, offsetof(struct call, key));
	c->key[0] = '\0';
	return c;
}

static void call_release(struct call *c)
{
	if (nspares < CALL_SPARES_MAX)
		spares[nspares++] = c;
	else
		free(c);
}

void call_spares_drop(void)
{
	while (nspares)
		free(spares[--nspares]);
}

static void call_free(struct call *c)
{
	if (c->span || c->client_span)
		call_trace_end(c, NULL);
	if (c->ticket)  /* never settled: nothing was acknowledged, give the capacity back */
		gate_settle(c->env->gate, c->ticket, false, NULL, NULL);
	if (c->circuit_out && c->circuit_probe)  /* cancelled: the next call probes */
		gate_circuit_abandon(c->env->gate, c->server);
	if (c->s)
		session_unbook(c->s, &c->book);
	cJSON_Delete(c->down_id);
	cJSON_Delete(c->up_params);
	jsonrpc_request_text_free(&c->up_text);
	cJSON_Delete(c->retry_params);
	if (c->retry_ev)
		event_free(c->retry_ev);
	alloc_cache_put(c->args_shape);
	cJSON_Delete(c->logged_args);
	record_late(c, c->resp);        /* a record is never lost, whatever ended the call */
	cJSON_Delete(c->resp);
	alloc_cache_put(c->target);     /* xstrdup'd on the loop: its kept blocks */
	alloc_cache_put(c->upname);
	alloc_cache_put(c->note);
	call_release(c);
	metrics_request_end();
}

/* DONE: the answer goes out under the client's id, and the call is over. */
static void finish(struct call *c)
{
	cJSON *resp = c->resp;

	c->resp = NULL;
	if (c->span)
		call_trace_end(c, resp);
	if (resp)
		jsonrpc_set_id(resp, c->down_id);
	if (c->reply && c->record_late) {
		reply_finish_then(c->reply, resp, record_late, c);
	} else if (c->reply) {
		reply_finish(c->reply, resp);
	} else {
		record_late(c, resp);
		cJSON_Delete(resp);
	}
	call_free(c);
}

static void on_client_gone(void *arg)
{
	call_event(arg, CALL_EV_CLIENT_GONE, NULL, 0);
}

/* --- ROUTED → ADMITTED: the gate ------------------------------------------------------- */

static void refuse(struct call *c, cJSON *err, const char *reason)
{
	cJSON *resp = jsonrpc_error(c->down_id, 0, "", NULL);

	/* a redirected session reads its upstream's names (the record keeps the gateway's) */
	scope_error_names(c->env->cat, c->s, c->kind, c->target, err);
	cJSON_ReplaceItemInObjectCaseSensitive(resp, "error", err);
	record(c, DECISION_DENY, reason, resp);
	decide(c, resp);
}

static void run(struct call *c, cJSON *params);

/* The gate's answer, now or from the fleet's counters. */
static void admitted(struct call *c, int rc, cJSON *err, const char *reason)
{
	if (rc == 0) {
		if (reason[0])  /* admitted with a note (a changed tool under warn) */
			c->note = xstrdup(reason);
		c->state = CALL_ADMITTED;
		return;
	}
	if (err)
		refuse(c, err, reason);
	else
		call_fail(c, JSONRPC_INTERNAL_ERROR, NULL, NULL, "cannot admit the call: %s",
			  strerror(-rc));
}

static void on_admitted(void *arg, int rc, struct gate_ticket *t, cJSON *err, const char *reason)
{
	struct call *c = arg;

	if (c->orphan) {        /* its session is gone: nothing to run, capacity back */
		cJSON_Delete(err);
		/* t is NULL when the gate is going (a reload or shutdown: the router, c->env,
		 * may be gone already) */
		if (t)
			gate_settle(c->env->gate, t, false, NULL, NULL);
		call_free(c);
		return;
	}
	c->ticket = t;
	c->gate_ns = clock_mono_ns() - c->gate_ns + 1;
	admitted(c, rc, err, reason);
	run(c, NULL);
}

static void admit(struct call *c)
{
	const struct upstream_config *uc = catalog_server_config(c->env->cat, c->server);
	uint64_t t = clock_mono_ns();
	char reason[256] = "";
	cJSON *err = NULL;
	int rc;

	struct gate_request rq = {
		.who = c->has_who ? &c->who : NULL, .e = c->entry, .kind = (int)c->kind,
		.server = uc->name, .name = c->upname,
		.work = (c->method->flags & METHOD_WORK) && !c->ui_tool,
		.has_args = c->method->id == MCP_TOOLS_CALL,
		.args = json_get(c->up_params, "arguments"),
	};

	rc = gate_admit_async(c->env->gate, &rq, on_admitted, c, &c->ticket, &err, reason,
			      sizeof(reason));
	c->entry = NULL;  /* the catalogue may be rebuilt while the call waits */
	if (rc == -EINPROGRESS) {
		/* The counters answer later: the client may leave meanwhile. */
		c->gate_ns = t;  /* on_admitted makes it a duration */
		c->state = CALL_ADMITTING;
		if (c->reply)
			reply_on_gone(c->reply, on_client_gone, c);
		return;
	}
	c->gate_ns = clock_mono_ns() - t + 1;
	admitted(c, rc, err, reason);
}

/* --- ADMITTED → SENT: the upstream ------------------------------------------------------- */

static void on_answer(enum obj_type *ctx, cJSON *resp)
{
	call_event(obj_call(ctx), CALL_EV_ANSWER, resp, 0);
}

/* The link's answer when the upstream had dropped its session (mcp/upstream.c go_down). */
static bool session_lost(const cJSON *resp)
{
	const cJSON *e = json_get(resp, "error");
	const cJSON *code = json_get(e, "code");
	const cJSON *lost = json_get(json_get(e, "data"), "session_lost");

	return cJSON_IsNumber(code) && code->valueint == UPSTREAM_ERR_FAILED && cJSON_IsTrue(lost);
}

static void forward(struct call *c);

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
	struct call *c = arg;

	c->state = CALL_ADMITTED;
	forward(c);
}

/* The pooled upstream session was gone: send once more, on a new one (the lost link is
 * replaced by links_get, which must not run inside that link's callback). */
static bool retry_later(struct call *c)
{
	static const struct timeval now = { 0, 0 };

	if (!c->retry_ev &&
	    !(c->retry_ev = evtimer_new(c->env->links->base, on_retry, c)))
		return false;
	c->s->pool_skip = true;
	c->up_params = c->retry_params;
	c->retry_params = NULL;
	c->circuit_out = false;  /* not the upstream failing: its session was gone */
	evtimer_add(c->retry_ev, &now);
	return true;
}

static void forward(struct call *c)
{
	const char *name = catalog_server_config(c->env->cat, c->server)->name;
	cJSON *params = c->up_params;
	int64_t retry;
	int err;

	if (gate_circuit_allow(c->env->gate, c->server, &c->circuit_probe, &retry)) {
		cJSON *data = cJSON_CreateObject();
		cJSON_AddStringToObject(data, "type", "circuit_open");
		cJSON_AddStringToObject(data, "server", name);
		cJSON_AddStringToObject(data, "state", gate_circuit_state(c->env->gate, c->server));
		cJSON_AddNumberToObject(data, "retry_after_ms", (double)retry);
		call_fail(c, REFUSAL_CIRCUIT_OPEN, "circuit open", data,
			  "upstream %s is failing (circuit open): calls are refused without trying "
			  "it; it is tried again in %lld ms", name, (long long)retry);
		return;
	}
	c->circuit_out = true;
	c->link = links_get(c->env->links, c->s, c->server, &err);
	if (!c->link) {
		circuit_outcome(c, true);
		cJSON *data = cJSON_CreateObject();
		cJSON_AddStringToObject(data, "server", name);
		call_fail(c, UPSTREAM_ERR_FAILED, NULL, data, "upstream %s is not available (%s)", name,
			  err == -ENOTCONN ? "restarting" : err == -EUSERS
			  ? "too many stdio children: limits.max_stdio_children" : err == -EXDEV
			  ? "its one stdio child serves the first loop's sessions only"
			  : strerror(-err));
		return;
	}
	/* tools/call: the agent's own params text with the upstream's name of the tool put in,
	 * not a print of the tree; the tree when the route changed more than the name. */
	if (c->up_text.text && !c->span) {
		cJSON *raw = jsonrpc_splice_params(&c->up_text, params);
		if (raw) {
			cJSON_Delete(params);
			params = raw;
		}
	}
	/* A pooled upstream session may have been dropped by the upstream meanwhile: keep what
	 * to send again, once, on a new one (mcp/links.h). */
	if (c->s && c->s->links[c->server].pooled && !c->s->pool_skip)
		c->retry_params = cJSON_Duplicate(params, 1);
	if (c->reply)
		reply_on_gone(c->reply, on_client_gone, c);
	if (c->span)
		call_trace_forward(c, &params);
	c->fwd_ns = clock_mono_ns();
	c->up_params = NULL;
	c->state = CALL_SENT;
	if (link_call(c->link, c->up_method, params, 0, on_answer, &c->obj_type, &c->handle)) {
		circuit_outcome(c, true);
		cJSON *data = cJSON_CreateObject();
		cJSON_AddStringToObject(data, "server", name);
		call_fail(c, UPSTREAM_ERR_FAILED, NULL, data, "upstream %s: cannot send", name);
	} else if (c->client_span) {
		call_trace_sent(c, c->handle);
	}
}

/* --- SENT → SETTLING: the answer, and its charge ----------------------------------------- */

/* Replace obj[field], an upstream's URI, by the URI the client sees. */
static void expose_uri(struct call *c, cJSON *obj, const char *field)
{
	cJSON *u = json_get(obj, field);
	char *ex;

	if (!catalog_prefixing(c->env->cat) || !cJSON_IsString(u))
		return;
	ex = catalog_expose_uri(c->env->cat, c->server, u->valuestring);
	if (ex) {
		cJSON_SetValuestring(u, ex);
		free(ex);
	}
}

/* Resource links and embedded resources in tool results and prompts name the upstream's URIs:
 * expose them so the client can read them back through the gateway. */
static void expose_block_uri(struct call *c, cJSON *block)
{
	const cJSON *type = json_get(block, "type");

	if (!cJSON_IsString(type))
		return;
	if (!strcmp(type->valuestring, "resource_link"))
		expose_uri(c, block, "uri");
	else if (!strcmp(type->valuestring, "resource"))
		expose_uri(c, json_get(block, "resource"), "uri");
}

/* A CreateTaskResult: the session remembers who owns the task, and the call's record says
 * which task it created. */
static void task_created(struct call *c, const cJSON *task)
{
	const cJSON *id = json_get(task, "taskId");
	char note[600];
	int rc;

	if (!cJSON_IsObject(task) || !c->s)
		return;
	rc = tasks_remember(&c->s->tasks, c->server, task);
	if (rc)
		log_warn("%s: task of %s not remembered (%s): its tasks/* requests will fail",
			 server_name(c), c->target ? c->target : "?", strerror(-rc));
	snprintf(note, sizeof(note), "%s%stask %s created", c->note ? c->note : "",
		 c->note ? "; " : "", cJSON_IsString(id) ? id->valuestring : "?");
	free(c->note);
	c->note = xstrdup(note);
}

static bool lists_tasks(void *cat, size_t server)
{
	return catalog_server_tasks(cat, server, "list");
}

/* One page of tasks/list (mcp/tasks.h): this session's tasks only, and the gateway's cursor —
 * the upstream's next page, else the next upstream that owns one of the session's tasks. */
static void tasks_list_page(struct call *c, cJSON *res)
{
	const cJSON *next = json_get(res, "nextCursor");
	const struct catalog *cat = c->env->cat;
	char *cursor = NULL;
	size_t server;

	tasks_filter_list(&c->s->tasks, res);
	if (cJSON_IsString(next) && next->valuestring[0])
		cursor = tasks_cursor(catalog_server_config(cat, c->server)->name, next->valuestring);
	else if (!tasks_next_server(&c->s->tasks, false, c->server, lists_tasks, (void *)cat,
				    &server))
		cursor = tasks_cursor(catalog_server_config(cat, server)->name, "");
	cJSON_DeleteItemFromObjectCaseSensitive(res, "nextCursor");
	if (cursor)
		cJSON_AddStringToObject(res, "nextCursor", cursor);
	free(cursor);
}

/* tasks/result: the record says how the task ended (its size is the record's result_bytes). */
static void task_result_note(struct call *c, const cJSON *resp)
{
	const cJSON *res = json_get(resp, "result");

	free(c->note);
	c->note = xstrdup(!res ? "task result: error"
			  : cJSON_IsTrue(json_get(res, "isError"))
			  ? "task result: failed" : "task result: completed");
}

static void expose_answer(struct call *c, cJSON *resp)
{
	cJSON *res = json_get(resp, "result"), *it;

	switch (c->method->id) {
	case MCP_RESOURCES_READ:
		cJSON_ArrayForEach(it, json_get(res, "contents"))
			expose_uri(c, it, "uri");
		break;
	case MCP_TOOLS_CALL:
		cJSON_ArrayForEach(it, json_get(res, "content"))
			expose_block_uri(c, it);
		task_created(c, json_get(res, "task"));
		break;
	case MCP_TASKS_RESULT:
		cJSON_ArrayForEach(it, json_get(res, "content"))
			expose_block_uri(c, it);
		task_result_note(c, resp);
		break;
	case MCP_TASKS_LIST:
		if (c->s)
			tasks_list_page(c, res);
		break;
	case MCP_PROMPTS_GET:
		cJSON_ArrayForEach(it, json_get(res, "messages"))
			expose_block_uri(c, json_get(it, "content"));
		break;
	default:
		break;
	}
}

static void on_charged(void *arg, int err)
{
	call_event(arg, CALL_EV_CHARGED, NULL, err);
}

static void uncharged(struct call *c, int err)
{
	/* Unrecorded means unacknowledged: the client must not take it as done and paid. */
	log_error("charge for %s not persisted: %s", c->target ? c->target : "call", strerror(-err));
	decide(c, jsonrpc_error(c->down_id, JSONRPC_INTERNAL_ERROR,
				"the call ran but its charge could not be recorded", NULL));
}

static void answered(struct call *c, cJSON *resp)
{
	struct gate_ticket *t = c->ticket;
	const cJSON *code = json_get(json_get(resp, "error"), "code");
	int rc;

	circuit_outcome(c, cJSON_IsNumber(code) && (code->valueint == UPSTREAM_ERR_FAILED ||
						     code->valueint == UPSTREAM_ERR_TIMEOUT));
	/* A result kept as text (jsonrpc_splice.h) becomes a tree when the record holds it:
	 * redaction reads inside. Should that fail, the record goes without it, never raw. */
	if (jsonrpc_spliced(resp) && c->has_who && gate_logs_values(c->env->gate, &c->who) &&
	    jsonrpc_unsplice(resp) < 0)
		log_error("call: a result could not be read for the record");
	expose_answer(c, resp);
	/* The record after the answer has left (finish), as a web server logs a request: the
	 * agent does not wait for it. Not with a span, whose end the record's decision joins
	 * (call_trace_decided), nor where the charge is not settled at once (below). */
	if (c->span) {
		record(c, DECISION_ALLOW, c->note, resp);
	} else {
		c->late_cost = charged(c, DECISION_ALLOW, resp);
		c->record_late = true;
	}
	c->resp = resp;
	if (!t) {
		c->state = CALL_DONE;
		return;
	}
	/* The charge is durable before the client hears the answer: an acknowledged call is
	 * never lost to a crash. */
	c->ticket = NULL;
	rc = gate_settle(c->env->gate, t, !json_get(resp, "error"),
			 on_charged, c);
	/* Settling later leaves the session's books (the record names the session), and a
	 * charge that failed changes the answer (the record keeps the upstream's): the record
	 * now, as it was decided. */
	if (rc != 1)
		record_late(c, resp);
	if (rc == 0) {
		/* Out of the session's books while the store commits: a session ending now must
		 * not free the call under the store's callback. */
		session_unbook(c->s, &c->book);
		c->s = NULL;
		c->state = CALL_SETTLING;
		return;
	}
	if (rc < 0)
		uncharged(c, rc);
	c->state = CALL_DONE;
}

/* --- the transition function --------------------------------------------------------------- */

/* Run from the current state as far as the call can go without waiting. */
static void run(struct call *c, cJSON *params)
{
	for (;;) {
		switch (c->state) {
		case CALL_RECEIVED: {
			const cJSON *meta = json_get(params, "_meta");
			if (c->method->id != MCP_UNKNOWN && meta && !cJSON_IsObject(meta)) {
				/* Servers drop such a request unanswered: the client would wait for
				 * the timeout. */
				cJSON_Delete(params);
				call_fail(c, JSONRPC_INVALID_PARAMS, NULL, NULL,
					  "params._meta must be an object");
			} else {
				c->method->route(c, params);
			}
			params = NULL;
			if (c->state == CALL_RECEIVED)
				c->state = c->up_method ? CALL_ROUTED : CALL_DONE;
			break;
		}
		case CALL_ROUTED:
			if (c->method->flags & METHOD_GOVERNED)
				admit(c);
			else
				c->state = CALL_ADMITTED;
			break;
		case CALL_ADMITTED:
			if (c->method->admitted)
				c->method->admitted(c);
			forward(c);
			break;
		case CALL_ADMITTING:
		case CALL_SENT:
		case CALL_SETTLING:
			return;  /* the counters, the upstream or the store call back */
		case CALL_DONE:
			finish(c);
			return;
		}
	}
}

/* A call cut short (cancelled, its session ended) is on record as that, unless its reply
 * answered the agent itself first (reply.h): then as that answer. */
static void record_cut(struct call *c, enum decision decision, const char *why)
{
	if (c->reply && c->reply->answered)
		record(c, DECISION_ERROR, c->reply->answered_why, c->reply->answered);
	else
		record(c, decision, why, NULL);
}

/* The session ended under a call that is not done with yet: out of its books, answered now;
 * whoever still owes the call an answer frees it. */
static void session_ended_early(struct call *c)
{
	session_unbook(c->s, &c->book);
	c->s = NULL;
	if (c->reply)
		reply_finish(c->reply, jsonrpc_error(c->down_id, JSONRPC_REQUEST_CANCELLED,
						     "session ended", NULL));
	c->reply = NULL;
}

void call_event(struct call *c, enum call_event ev, cJSON *msg, int err)
{
	switch (ev) {
	case CALL_EV_START:
		break;
	case CALL_EV_ANSWER:
		if (c->state != CALL_SENT) {
			cJSON_Delete(msg);
			return;
		}
		c->ans_ns = clock_mono_ns();
		if (c->client_span)
			call_trace_answer(c, msg);
		if (c->method->flags & METHOD_FANOUT) {
			/* Every upstream that logs got the level; the answer waits for all of them. */
			cJSON_Delete(msg);
			if (--c->fanout)
				return;
			if (!c->s) {  /* answered already when its session ended */
				call_free(c);
				return;
			}
			call_answer(c, cJSON_CreateObject());
			break;
		}
		if (c->retry_params && c->s && session_lost(msg) && retry_later(c)) {
			cJSON_Delete(msg);
			return;  /* still SENT: a session end or a client leaving cancels it */
		}
		cJSON_Delete(c->retry_params);
		c->retry_params = NULL;
		answered(c, msg);
		break;
	case CALL_EV_CHARGED:
		if (c->state != CALL_SETTLING)
			return;
		if (err)
			uncharged(c, err);
		c->state = CALL_DONE;
		break;
	case CALL_EV_RESUME: {
		if (c->state != CALL_SENT || !c->parked)
			return;
		cJSON *params = c->up_params;
		c->up_params = NULL;
		c->parked = false;
		c->state = CALL_RECEIVED;
		/* route() sets these again */
		free(c->target);
		c->target = NULL;
		alloc_cache_put(c->args_shape);
		c->args_shape = NULL;
		cJSON_Delete(c->logged_args);
		c->logged_args = NULL;
		run(c, params);
		return;
	}
	case CALL_EV_CANCEL:
		if (c->state == CALL_SENT && c->parked) {
			c->parked = false;
			decide(c, jsonrpc_error(c->down_id, JSONRPC_REQUEST_CANCELLED, "request cancelled", NULL));
			break;
		}
		if (c->state != CALL_SENT || !c->handle)
			return;
		link_cancel(c->link, c->handle, "cancelled by the client");
		record_cut(c, DECISION_ALLOW, "cancelled by the client");
		decide(c, jsonrpc_error(c->down_id, JSONRPC_REQUEST_CANCELLED, "request cancelled", NULL));
		break;
	case CALL_EV_SESSION_END:
		if (c->state == CALL_ADMITTING) {
			/* The counters still owe an answer: out of the session's books, answered
			 * now, freed when the answer comes (on_admitted). */
			c->gate_ns = clock_mono_ns() - c->gate_ns + 1;  /* a duration from here */
			record_cut(c, DECISION_ERROR, "session ended");
			if (c->span || c->client_span)  /* now: the router may be gone by then */
				call_trace_end(c, NULL);
			c->orphan = true;
			session_ended_early(c);
			return;
		}
		if (c->state != CALL_SENT)
			return;
		/* Every call is on record: one the session's end cut short too. */
		record_cut(c, DECISION_ALLOW, "session ended");
		if (c->method->flags & METHOD_FANOUT) {
			/* Its link calls have no handle: answered now, it frees itself on the last
			 * reply (a session's own links deliver theirs when they close). */
			session_ended_early(c);
			return;
		}
		if (c->handle)
			link_cancel(c->link, c->handle, "session ended");
		decide(c, jsonrpc_error(c->down_id, JSONRPC_REQUEST_CANCELLED, "session ended", NULL));
		break;
	case CALL_EV_CLIENT_GONE:
		/* Disconnection is not cancellation (spec): the call runs on, its answer is dropped. */
		c->reply = NULL;
		return;
	}
	run(c, NULL);
}

void call_start(const struct call_env *env, struct session *s, const struct key_identity *who,
		const struct method *m, const char *asked, cJSON *id, cJSON *params,
		struct reply *reply)
{
	struct call *c = call_alloc();
	struct jsonrpc_request_text *kept = reply ? reply->kept : NULL;

	if (reply)
		reply->kept = NULL;     /* valid only now */
	c->obj_type = OBJ_TYPE_CALL;
	c->state = CALL_RECEIVED;
	c->env = env;
	c->method = m;
	c->asked = asked;
	c->s = s;
	c->reply = reply;
	c->down_id = id;
	c->server = SIZE_MAX;
	c->t0_ns = clock_mono_ns();
	c->rx_ns = reply ? reply->received_ns : 0;
	key_identity_copy(&c->who, who);
	c->has_who = who != NULL;
	jsonrpc_id_key(id, c->key, sizeof(c->key));
	metrics_request_begin();
	if (trace_enabled())
		call_trace_start(c, id, params, reply);
	/* One session cannot hold the daemon's memory with requests it never waits for (a
	 * request id in use is told as such first). */
	if (env->max_pending && session_nbooked(s) >= env->max_pending &&
	    !session_booked(s, c->key)) {
		cJSON *d = cJSON_CreateObject();
		cJSON_AddNumberToObject(d, "retry_after_ms", PENDING_RETRY_MS);
		cJSON_AddNumberToObject(d, "limit", env->max_pending);
		cJSON_AddStringToObject(d, "type", refusal_name(REFUSAL_TOO_MANY_PENDING));
		cJSON_Delete(params);
		call_fail(c, REFUSAL_TOO_MANY_PENDING, "too many pending requests", d,
			  "too many requests in progress in this session (%u, "
			  "limits.max_pending_per_session): wait for answers before sending more",
			  env->max_pending);
		finish(c);
		return;
	}
	if (session_book(s, &c->book, c->key)) {
		cJSON_Delete(params);
		call_fail(c, JSONRPC_INVALID_REQUEST, NULL, NULL,
			  "request id is already in use by a request in progress");
		finish(c);
		return;
	}
	/* tools/call without tracing (which puts its context in _meta): the params as the
	 * agent wrote them, for forward(); anything unusual is printed from the tree there */
	if (kept && kept->text && m && m->id == MCP_TOOLS_CALL && !c->span) {
		c->up_text = *kept;
		memset(kept, 0, sizeof(*kept));
	}
	run(c, params);
}
