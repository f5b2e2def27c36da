/* mcp_tools: the MCP tools a key may call, offered to the model in OpenAI's tools format, and
 * the model's tool calls executed through the gateway (POST /v1/mcp/tool/execute) as a
 * tools/call: governed, charged and recorded by the router like any other. */
#include "llm/llm_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>

#include "base/alloc.h"
#include "base/hmap.h"
#include "base/json_get.h"
#include "base/log.h"
#include "govern/gate.h"
#include "govern/refusal.h"
#include "mcp/catalog.h"
#include "mcp/jsonrpc.h"
#include "mcp/jsonrpc_splice.h"
#include "mcp/reply.h"
#include "mcp/router.h"
#include "mcp/session.h"

#define TOOLS_OFFERED_MAX 128           /* OpenAI's limit on a request's tools */
#define TOOL_TEXT_MAX (1u << 20)        /* a tool message's content */

struct llm_exec {
	struct reply base;              /* the router answers through it */
	struct llm_req *r;
	void (*gone)(void *arg);
	void *gone_arg;
};

/* OpenAI's function names: ^[a-zA-Z0-9_-]{1,64}$ */
static bool function_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (!n || n > 64)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		      *s == '_' || *s == '-'))
			return false;
	return true;
}

int llm_tools_offer(struct llm_req *r, struct failure *f)
{
	const cJSON *flag = json_get(r->body, "mcp_tools");
	const char *hdr = http_req_header(r->req, "x-mcp-tools");
	struct router *rt = r->l->router;
	const struct key_identity *who = r->authed ? &r->who : NULL;
	cJSON *tools;
	size_t n, offered = 0;

	if (!cJSON_IsTrue(flag) && !(hdr && (!strcmp(hdr, "1") || !strcmp(hdr, "true")))) {
		if (flag)
			cJSON_DeleteItemFromObjectCaseSensitive(r->body, "mcp_tools");
		return 0;
	}
	cJSON_DeleteItemFromObjectCaseSensitive(r->body, "mcp_tools");
	if (!rt || !router_ready(rt)) {
		llm_set_failure(f, 503, "server_error", "tools_not_ready",
				"the MCP tools are still being listed: retry shortly");
		f->retry_after_s = 1;
		return -EAGAIN;
	}
	tools = json_get(r->body, "tools");
	if (!cJSON_IsArray(tools)) {
		cJSON_DeleteItemFromObjectCaseSensitive(r->body, "tools");
		tools = cJSON_AddArrayToObject(r->body, "tools");
	}
	offered = (size_t)cJSON_GetArraySize(tools);
	struct catalog *cat = router_catalog(rt);
	const struct catalog_list *l = catalog_list(cat, CAT_TOOLS);
	n = l->n;
	for (size_t i = gate_next_visible(r->l->gate, who, CAT_TOOLS, l, 0); i < n && offered <
	     TOOLS_OFFERED_MAX; i = gate_next_visible(r->l->gate, who, CAT_TOOLS, l, i + 1)) {
		const struct catalog_entry *e = &l->e[i];
		const cJSON *desc = json_get(e->json, "description");
		const cJSON *schema = json_get(e->json, "inputSchema");
		if (!function_name_ok(e->exposed))
			continue;
		cJSON *t = cJSON_CreateObject(), *fn = cJSON_AddObjectToObject(t, "function");
		cJSON_AddStringToObject(t, "type", "function");
		cJSON_AddStringToObject(fn, "name", e->exposed);
		if (cJSON_IsString(desc))
			cJSON_AddStringToObject(fn, "description", desc->valuestring);
		if (cJSON_IsObject(schema))
			cJSON_AddItemToObject(fn, "parameters", cJSON_Duplicate(schema, 1));
		cJSON_AddItemToArray(tools, t);
		offered++;
	}
	if (!cJSON_GetArraySize(tools))
		cJSON_DeleteItemFromObjectCaseSensitive(r->body, "tools");
	return 0;
}

/* ---- execution ---- */

static void exec_free(struct llm_exec *x)
{
	free(x);
}

/* A tool result as the text of a tool message: text parts joined, others as JSON. */
static char *result_text(const cJSON *result)
{
	const cJSON *content = json_get(result, "content"), *part;
	struct evbuffer *b = evbuffer_new();
	char *out;

	cJSON_ArrayForEach(part, content) {
		const cJSON *t = json_get(part, "text");
		if (evbuffer_get_length(b))
			evbuffer_add(b, "\n", 1);
		if (cJSON_IsString(t)) {
			evbuffer_add(b, t->valuestring, strlen(t->valuestring));
		} else {
			char *j = cJSON_PrintUnformatted(part);
			evbuffer_add(b, j, strlen(j));
			cJSON_free(j);
		}
		if (evbuffer_get_length(b) > TOOL_TEXT_MAX)
			break;
	}
	if (!cJSON_GetArraySize(content)) {
		const cJSON *sc = json_get(result, "structuredContent");
		char *j = sc ? cJSON_PrintUnformatted(sc) : NULL;
		if (j)
			evbuffer_add(b, j, strlen(j));
		cJSON_free(j);
	}
	size_t n = evbuffer_get_length(b);
	if (n > TOOL_TEXT_MAX)
		n = TOOL_TEXT_MAX;
	out = xmalloc(n + 1);
	evbuffer_remove(b, out, n);
	out[n] = '\0';
	evbuffer_free(b);
	return out;
}

/* A JSON-RPC refusal as the HTTP status and OpenAI error an agent of this API expects. */
static void refusal_failure(const cJSON *err, struct failure *f)
{
	const cJSON *code = json_get(err, "code");
	const cJSON *msg = json_get(err, "message");
	const cJSON *ra = json_get(json_get(err, "data"), "retry_after_ms");
	int c = cJSON_IsNumber(code) ? code->valueint : 0;
	const char *m = cJSON_IsString(msg) ? msg->valuestring : "the tool call failed";

	switch (c) {
	case REFUSAL_NOT_PERMITTED:
		llm_set_failure(f, 403, "permission_error", "not_permitted", "%s", m);
		break;
	case REFUSAL_RATE_LIMITED:
		llm_set_failure(f, 429, "rate_limit_error", "rate_limited", "%s", m);
		if (cJSON_IsNumber(ra) && ra->valuedouble >= 0 && ra->valuedouble <= 1e9)
			f->retry_after_s = ((int64_t)ra->valuedouble + 999) / 1000;
		break;
	case REFUSAL_OVER_BUDGET:
		llm_set_failure(f, 429, "insufficient_quota", "over_budget", "%s", m);
		break;
	case REFUSAL_UPSTREAM_FAILURE:
		llm_set_failure(f, 502, "api_error", "upstream_failure", "%s", m);
		break;
	case REFUSAL_UPSTREAM_TIMEOUT:
		llm_set_failure(f, 504, "timeout", "upstream_timeout", "%s", m);
		break;
	default:
		llm_set_failure(f, 400, "invalid_request_error", c == JSONRPC_INVALID_PARAMS
				? "invalid_arguments" : "tool_call_failed", "%s", m);
	}
}

static int exec_event(struct reply *base, const cJSON *msg)
{
	return 0;       /* progress and logs of the call: a tool message has no place for them */
}

static void exec_finish(struct reply *base, cJSON *response)
{
	struct llm_exec *x = container_of(base, struct llm_exec, base);
	struct llm_req *r = x->r;
	int urc = jsonrpc_unsplice(response);     /* a result kept as text read as a tree */
	const cJSON *err = json_get(response, "error");
	const cJSON *res = urc < 0 ? NULL : json_get(response, "result");
	struct failure f;

	r->exec = NULL;
	if (err || !res) {
		refusal_failure(err, &f);
		llm_fail(r, &f);
	} else {
		cJSON *o = cJSON_CreateObject();
		char *text = result_text(res);
		cJSON_AddStringToObject(o, "role", "tool");
		cJSON_AddStringToObject(o, "tool_call_id", r->tool_call_id);
		cJSON_AddStringToObject(o, "content", text);
		if (cJSON_IsTrue(json_get(res, "isError")))
			cJSON_AddTrueToObject(o, "is_error");
		free(text);
		llm_record(r, 200, NULL);
		if (r->req) {
			llm_send_json(r->req, 200, o);
			r->req = NULL;
		}
		cJSON_Delete(o);
		llm_req_free(r);
	}
	cJSON_Delete(response);
	exec_free(x);
}

static void exec_on_gone(struct reply *base, void (*fn)(void *arg), void *arg)
{
	struct llm_exec *x = container_of(base, struct llm_exec, base);

	x->gone = fn;
	x->gone_arg = arg;
}

static const struct reply_ops exec_ops = {
	.event = exec_event, .finish = exec_finish, .on_gone = exec_on_gone,
};

void llm_tool_gone(struct llm_req *r)
{
	struct llm_exec *x = r->exec;

	/* the router drops the answer (the call runs on and is charged as any other) */
	if (x->gone)
		x->gone(x->gone_arg);
	r->exec = NULL;
	exec_free(x);
}

/* The key's session for tool calls from the LLM route: one per key, opened on first use and
 * kept (the router ends it when idle). */
static struct session *session_for(struct llm_req *r, struct failure *f)
{
	struct router *rt = r->l->router;
	const char *kid = r->authed ? r->who.id : "";
	char *sid = hmap_get(r->l->sessions, kid);
	struct session *s = sid ? router_session(rt, sid) : NULL;
	cJSON *init, *resp = NULL;
	struct jsonrpc_msg m;
	int code;
	const char *why;

	if (s)
		return s;
	init = cJSON_Parse("{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":"
			   "{\"protocolVersion\":\"2025-06-18\",\"capabilities\":{},"
			   "\"clientInfo\":{\"name\":\"mcpwarden-llm-route\",\"version\":\"1\"}}}");
	if (jsonrpc_classify(init, &m, &code, &why) == 0)
		router_initialize(rt, &m, kid, &s, &resp);
	cJSON_Delete(init);
	if (!s) {
		const cJSON *e = json_get(resp, "error");
		const cJSON *msg = json_get(e, "message");
		llm_set_failure(f, 503, "server_error", "no_session", "no MCP session for the tool "
				"call: %s", cJSON_IsString(msg) ? msg->valuestring : "refused");
		f->retry_after_s = 1;
		cJSON_Delete(resp);
		return NULL;
	}
	cJSON_Delete(resp);
	void *old = NULL;
	char *copy = xstrdup(s->id);
	if (hmap_put(r->l->sessions, kid, copy, &old) == 0)
		free(old);
	else
		free(copy);     /* not remembered: the next call opens another session */
	return s;
}

void llm_tool_execute(struct llm_req *r)
{
	const cJSON *call = json_get(r->body, "tool_call");
	const cJSON *id, *fn, *name, *args;
	cJSON *arguments = NULL, *msg;
	struct jsonrpc_msg m;
	struct failure f;
	struct session *s;
	struct llm_exec *x;
	int code;
	const char *why;

	if (!call)
		call = r->body;
	id = json_get(call, "id");
	fn = json_get(call, "function");
	name = json_get(fn, "name");
	args = json_get(fn, "arguments");
	if (!cJSON_IsString(id) || !cJSON_IsString(name) || strlen(id->valuestring) > 256 ||
	    strlen(name->valuestring) > 256) {
		llm_set_failure(&f, 400, "invalid_request_error", "invalid_tool_call",
				"expected an OpenAI tool call {\"id\", \"type\": \"function\", "
				"\"function\": {\"name\", \"arguments\"}}");
		goto refuse;
	}
	r->tool = xstrdup(name->valuestring);
	r->tool_call_id = xstrdup(id->valuestring);
	if (cJSON_IsString(args))
		arguments = cJSON_Parse(args->valuestring);
	else if (args)
		arguments = cJSON_Duplicate(args, 1);
	else
		arguments = cJSON_CreateObject();
	if (!cJSON_IsObject(arguments)) {
		llm_set_failure(&f, 400, "invalid_request_error", "invalid_arguments",
				"function.arguments must be a JSON object (or a string holding one)");
		goto refuse;
	}
	if (llm_refuse_repeated(arguments, &f))
		goto refuse;
	if (!r->l->router || !router_ready(r->l->router)) {
		llm_set_failure(&f, 503, "server_error", "tools_not_ready",
				"the MCP tools are still being listed: retry shortly");
		f.retry_after_s = 1;
		goto refuse;
	}
	if (!(s = session_for(r, &f)))
		goto refuse;
	snprintf(r->session, sizeof(r->session), "%s", s->id);
	x = xcalloc(1, sizeof(*x));
	x->base.ops = &exec_ops;
	x->base.received_ns = r->rx_ns;
	x->r = r;
	r->exec = x;
	msg = cJSON_CreateObject();
	cJSON_AddStringToObject(msg, "jsonrpc", "2.0");
	cJSON_AddNumberToObject(msg, "id", 1);
	cJSON_AddStringToObject(msg, "method", "tools/call");
	cJSON *params = cJSON_AddObjectToObject(msg, "params");
	cJSON_AddStringToObject(params, "name", name->valuestring);
	cJSON_AddItemToObject(params, "arguments", arguments);
	arguments = NULL;
	if (jsonrpc_classify(msg, &m, &code, &why)) {
		cJSON_Delete(msg);
		r->exec = NULL;
		exec_free(x);
		llm_set_failure(&f, 500, "server_error", "internal", "%s", why);
		goto refuse;
	}
	router_request(r->l->router, s, r->authed ? &r->who : NULL, msg, &m, &x->base);
	return;
refuse:
	cJSON_Delete(arguments);
	llm_fail(r, &f);
}
