/* call_int: what mcp/call.c shares with the rest of its group.
 *
 * call_trace.c: a call's spans (observe/trace.h), per the OpenTelemetry semantic conventions
 * for MCP and GenAI tools: a SERVER span for the agent's request, from receipt to answer, and
 * a CLIENT span for the request sent upstream, whose context travels with it (params._meta
 * for every transport, and the traceparent header over HTTP: docs/tracing.md). Called by
 * call.c only when c->span is set, which needs tracing on: the no-tracing path costs one test
 * per call.
 */
#ifndef WARDEN_CALL_INT_H
#define WARDEN_CALL_INT_H

#include <stdint.h>
#include <cjson/cJSON.h>

struct call;
struct reply;

/* The server span, child of the agent's context: the traceparent header, else
 * params._meta.traceparent; none valid, a new trace. Sets c->span (NULL: tracing off). */
void call_trace_start(struct call *c, const cJSON *id, const cJSON *params,
		      const struct reply *reply);
/* The decision, for the span and the record: out holds 33 bytes (the trace id). */
void call_trace_decided(struct call *c, const char *decision, const char *reason,
			int64_t cost_micros, char *out);
/* The client span for the request about to go upstream, its context put into *params
 * (created when NULL; params is the call's own: no copy). */
void call_trace_forward(struct call *c, cJSON **params);
/* After link_call: the upstream's request id. */
void call_trace_sent(struct call *c, uint64_t handle);
/* The upstream's answer (or the link's error for it): the client span ends. */
void call_trace_answer(struct call *c, const cJSON *resp);
/* The answer the agent gets (NULL: none): the server span ends, with the client span if it
 * is still open (cancelled, session ended). */
void call_trace_end(struct call *c, const cJSON *resp);

#endif
