/* call_trace: a call's server and client spans, named and attributed per the semantic
 * conventions (mcp.*, gen_ai.*, jsonrpc.*, error.type), with governance in mcpwarden.*:
 * key ids, teams, decisions and costs, never a key or an argument. */
#include "mcp/call_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/config.h"
#include "base/json_get.h"
#include "mcp/call.h"
#include "mcp/catalog.h"
#include "mcp/reply.h"
#include "mcp/session.h"
#include "observe/trace.h"

static void id_string(const cJSON *id, char *buf, size_t len)
{
	if (cJSON_IsString(id))
		snprintf(buf, len, "%s", id->valuestring);
	else if (cJSON_IsNumber(id))
		snprintf(buf, len, "%.0f", id->valuedouble);
	else
		buf[0] = '\0';
}

/* The agent's context: the header wins over params._meta (both W3C); an invalid one is
 * ignored and the call starts a new trace. */
static bool parent_of(const cJSON *params, const struct reply *reply, struct trace_ctx *out,
		      const char **state)
{
	const cJSON *meta, *tp, *ts;

	*state = NULL;
	if (reply && reply->traceparent && trace_parent_parse(reply->traceparent, out) == 0) {
		*state = reply->tracestate;
		return true;
	}
	meta = json_get(params, "_meta");
	tp = json_get(meta, "traceparent");
	if (!cJSON_IsString(tp) || trace_parent_parse(tp->valuestring, out))
		return false;
	ts = json_get(meta, "tracestate");
	*state = cJSON_IsString(ts) ? ts->valuestring : NULL;
	return true;
}

static void outcome(struct span *s, const cJSON *resp);

static void session_attrs(struct span *sp, const struct session *s)
{
	char buf[9];

	/* the first 8 characters, as in the records: enough to correlate, not to hijack */
	memcpy(buf, s->id, 8);
	buf[8] = '\0';
	span_attr_str(sp, "mcp.session.id", buf);
	if (s->version[0])
		span_attr_str(sp, "mcp.protocol.version", s->version);
}

/* The SERVER span of a request of method, from its arrival (reply: the transport's view of
 * it) in the agent's trace; who: the caller (NULL: authentication off). */
static struct span *server_span(const char *method, const cJSON *id, const cJSON *params,
				const struct reply *reply, const struct key_identity *who)
{
	struct trace_ctx parent;
	const char *state;
	bool has_parent = parent_of(params, reply, &parent, &state);
	char buf[256];
	struct span *sp = span_start(SPAN_SERVER, has_parent ? &parent : NULL, state,
				     reply ? reply->received_ns : 0);

	if (!span_recording(sp))
		return sp;
	span_set_name(sp, method, NULL);
	span_attr_str(sp, "mcp.method.name", method);
	id_string(id, buf, sizeof(buf));
	if (buf[0])
		span_attr_str(sp, "jsonrpc.request.id", buf);
	span_attr_str(sp, "network.transport", "tcp");
	span_attr_str(sp, "network.protocol.name", "http");
	if (reply && reply->peer) {
		span_attr_str(sp, "client.address", reply->peer);
		span_attr_int(sp, "client.port", reply->peer_port);
	}
	if (who) {
		span_attr_str(sp, "mcpwarden.key.id", who->id);
		if (who->team[0])
			span_attr_str(sp, "mcpwarden.team", who->team);
	}
	return sp;
}

void call_trace_start(struct call *c, const cJSON *id, const cJSON *params,
		      const struct reply *reply)
{
	c->span = server_span(c->asked, id, params, reply, c->has_who ? &c->who : NULL);
	if (span_recording(c->span) && c->s)
		session_attrs(c->span, c->s);
}

struct span *call_trace_initialize(const cJSON *id, const cJSON *params,
				   const struct reply *reply, const struct key_identity *who)
{
	return trace_enabled() ? server_span("initialize", id, params, reply, who) : NULL;
}

void call_trace_initialized(struct span *sp, const struct session *s, const cJSON *response)
{
	if (span_recording(sp)) {
		if (s)
			session_attrs(sp, s);
		outcome(sp, response);
	}
	span_end(sp);
}

/* gen_ai.* and mcp.resource.uri for what the call names; the name "{method} {target}". */
static void target_attrs(struct span *s, int method, const char *method_name, const char *target)
{
	switch (method) {
	case MCP_TOOLS_CALL:
		span_set_name(s, method_name, target);
		span_attr_str(s, "gen_ai.tool.name", target);
		span_attr_str(s, "gen_ai.operation.name", "execute_tool");
		break;
	case MCP_PROMPTS_GET:
		span_set_name(s, method_name, target);
		span_attr_str(s, "gen_ai.prompt.name", target);
		break;
	case MCP_RESOURCES_READ:
	case MCP_RESOURCES_SUBSCRIBE:
	case MCP_RESOURCES_UNSUBSCRIBE:
		span_attr_str(s, "mcp.resource.uri", target);
		break;
	default:
		break;
	}
}

void call_trace_decided(struct call *c, const char *decision, const char *reason,
			int64_t cost_micros, char *out)
{
	trace_id_hex(span_ctx(c->span)->trace_id, out);
	if (!span_recording(c->span))
		return;
	span_attr_str(c->span, "mcpwarden.decision", decision);
	span_attr_str(c->span, "mcpwarden.reason", reason);
	if (cost_micros >= 0)
		span_attr_int(c->span, "mcpwarden.cost_micros", cost_micros);
}

/* error.type from an answer: the JSON-RPC error code, or tool_error for a result with
 * isError (semantic conventions); status description from the error's message. */
static void outcome(struct span *s, const cJSON *resp)
{
	const cJSON *err = json_get(resp, "error");
	const cJSON *res = json_get(resp, "result");
	char code[24];

	if (err) {
		const cJSON *cd = json_get(err, "code");
		const cJSON *msg = json_get(err, "message");
		snprintf(code, sizeof(code), "%d", cJSON_IsNumber(cd) ? cd->valueint : 0);
		span_attr_str(s, "rpc.response.status_code", code);
		span_set_error(s, code, cJSON_IsString(msg) ? msg->valuestring : NULL);
	} else if (cJSON_IsTrue(json_get(res, "isError"))) {
		span_set_error(s, "tool_error", NULL);
	}
}

/* server.address and server.port from an http(s) URL, without a resolver. */
static void server_attrs(struct span *s, const char *url)
{
	const char *h = strstr(url, "://"), *end, *colon = NULL;
	char host[256];
	long port;

	if (!h)
		return;
	h += 3;
	if (*h == '[') {
		end = strchr(h, ']');
		if (!end)
			return;
		snprintf(host, sizeof(host), "%.*s", (int)(end - h - 1), h + 1);
		colon = end[1] == ':' ? end + 1 : NULL;
	} else {
		end = h + strcspn(h, ":/?#");
		snprintf(host, sizeof(host), "%.*s", (int)(end - h), h);
		colon = *end == ':' ? end : NULL;
	}
	port = colon ? strtol(colon + 1, NULL, 10) : (!strncasecmp(url, "https", 5) ? 443 : 80);
	span_attr_str(s, "server.address", host);
	span_attr_int(s, "server.port", port);
}

void call_trace_forward(struct call *c, cJSON **params)
{
	const struct upstream_config *uc = catalog_server_config(c->env->cat, c->server);
	char tp[TRACE_PARENT_LEN + 1];
	cJSON *meta;

	c->client_span = span_start(SPAN_CLIENT, span_ctx(c->span), span_tracestate(c->span), 0);
	if (!c->client_span)
		return;
	if (!*params)
		*params = cJSON_CreateObject();
	meta = json_get(*params, "_meta");
	if (!cJSON_IsObject(meta)) {
		cJSON_DeleteItemFromObjectCaseSensitive(*params, "_meta");
		meta = cJSON_AddObjectToObject(*params, "_meta");
	}
	trace_parent_format(span_ctx(c->client_span), tp);
	cJSON_DeleteItemFromObjectCaseSensitive(meta, "traceparent");
	cJSON_DeleteItemFromObjectCaseSensitive(meta, "tracestate");
	cJSON_AddStringToObject(meta, "traceparent", tp);
	if (span_tracestate(c->client_span))
		cJSON_AddStringToObject(meta, "tracestate", span_tracestate(c->client_span));
	if (!span_recording(c->client_span))
		return;
	span_set_name(c->client_span, c->up_method, NULL);
	span_attr_str(c->client_span, "mcp.method.name", c->up_method);
	target_attrs(c->client_span, c->method->id, c->up_method, c->upname);
	span_attr_str(c->client_span, "mcpwarden.upstream", uc->name);
	if (uc->kind == UPSTREAM_HTTP) {
		span_attr_str(c->client_span, "network.transport", "tcp");
		span_attr_str(c->client_span, "network.protocol.name", "http");
		server_attrs(c->client_span, uc->url);
	} else {
		span_attr_str(c->client_span, "network.transport", "pipe");
	}
}

void call_trace_sent(struct call *c, uint64_t handle)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)handle);
	span_attr_str(c->client_span, "jsonrpc.request.id", buf);
}

void call_trace_answer(struct call *c, const cJSON *resp)
{
	if (!c->client_span)
		return;
	outcome(c->client_span, resp);
	span_end(c->client_span);
	c->client_span = NULL;
}

void call_trace_end(struct call *c, const cJSON *resp)
{
	if (c->client_span) {
		span_set_error(c->client_span, "cancelled", "no answer from the upstream was awaited");
		span_end(c->client_span);
		c->client_span = NULL;
	}
	if (!c->span)
		return;
	if (span_recording(c->span)) {
		if (c->target)
			target_attrs(c->span, c->method->id, c->method->name, c->target);
		const char *server = c->server < catalog_nservers(c->env->cat)
			? catalog_server_config(c->env->cat, c->server)->name : NULL;
		span_attr_str(c->span, "mcpwarden.server", server);
		outcome(c->span, resp);
	}
	span_end(c->span);
	c->span = NULL;
}
