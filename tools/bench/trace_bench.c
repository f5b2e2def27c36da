/* trace_bench: what tracing adds to one call on the event loop (docs/tracing.md).
 *
 * One operation does what mcp/call_trace.c does for a sampled tools/call: parse the agent's
 * traceparent, start the SERVER span with its attributes, start the CLIENT span, put its
 * context in the request's params._meta, read it back as the HTTP transport does for its
 * headers, and end both spans (encoded and handed to the exporter's queue). The exporter runs
 * towards a port nothing listens on, with a queue large enough that nothing is dropped or sent
 * during a round: what is measured is the loop's share. A second line measures the exporter
 * thread's own encoding of a 512-span request. Best of several rounds, in ns of this thread's
 * CPU time per operation.
 *
 * usage: trace_bench [ops per round]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "base/config.h"
#include "base/log.h"
#include "observe/trace.h"
#include "observe/trace_int.h"

#define ROUNDS 5

/* This thread's CPU time: on a shared machine, the time it was not running is not its cost. */
static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* The attributes mcp/call_trace.c sets that are the same on every call of the bench. */
static const char *const server_attrs[][2] = {
	{ "mcp.method.name", "tools/call" }, { "mcp.session.id", "bc13939c" },
	{ "mcp.protocol.version", "2025-11-25" }, { "network.transport", "tcp" },
	{ "network.protocol.name", "http" }, { "client.address", "127.0.0.1" },
	{ "mcpwarden.key.id", "bench" },
};
static const char *const client_attrs[][2] = {
	{ "mcp.method.name", "tools/call" }, { "gen_ai.tool.name", "echo" },
	{ "gen_ai.operation.name", "execute_tool" }, { "mcpwarden.upstream", "bench" },
	{ "network.transport", "tcp" }, { "server.address", "127.0.0.1" },
};
static const char *const done_attrs[][2] = {
	{ "gen_ai.tool.name", "bench__echo" }, { "gen_ai.operation.name", "execute_tool" },
	{ "mcpwarden.decision", "allow" }, { "mcpwarden.server", "bench" },
};

static void attrs(struct span *s, const char *const (*a)[2], size_t n)
{
	for (size_t i = 0; i < n; i++)
		span_attr_str(s, a[i][0], a[i][1]);
}

static void one_call(cJSON *msg, unsigned i)
{
	cJSON *params = cJSON_GetObjectItemCaseSensitive(msg, "params");
	struct trace_ctx parent;
	char tp[TRACE_PARENT_LEN + 1], hdr[TRACE_PARENT_LEN + 1], state[TRACE_STATE_MAX + 1];
	char id[24];

	bool ok = trace_parent_parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
				     &parent) == 0;
	struct span *s = span_start(SPAN_SERVER, ok ? &parent : NULL, NULL, 0);
	span_set_name(s, "tools/call", NULL);
	snprintf(id, sizeof(id), "%u", i);
	span_attr_str(s, "jsonrpc.request.id", id);
	attrs(s, server_attrs, sizeof(server_attrs) / sizeof(server_attrs[0]));
	span_attr_int(s, "client.port", 40000);

	struct span *c = span_start(SPAN_CLIENT, span_ctx(s), NULL, 0);
	cJSON *meta = cJSON_GetObjectItemCaseSensitive(params, "_meta");
	trace_parent_format(span_ctx(c), tp);
	cJSON_DeleteItemFromObjectCaseSensitive(meta, "traceparent");
	cJSON_AddStringToObject(meta, "traceparent", tp);
	span_set_name(c, "tools/call", "echo");
	attrs(c, client_attrs, sizeof(client_attrs) / sizeof(client_attrs[0]));
	span_attr_int(c, "server.port", 8080);
	span_attr_str(c, "jsonrpc.request.id", id);
	trace_meta_headers(params, hdr, state);
	span_end(c);

	span_set_name(s, "tools/call", "bench__echo");
	attrs(s, done_attrs, sizeof(done_attrs) / sizeof(done_attrs[0]));
	span_attr_int(s, "mcpwarden.cost_micros", 1);
	span_end(s);
}

int main(int argc, char **argv)
{
	unsigned ops = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 40000;
	double best = 1e18, best_enc = 1e18;
	struct config_errors errs = { 0 };
	struct config *cfg = NULL;
	char json[512];
	cJSON *msg;

	alloc_init();
	log_set_level(LOG_ERROR);   /* each round's stop reports its (intended) drops */
	snprintf(json, sizeof(json), "{\"upstreams\":[],\"log\":{\"level\":\"warn\"},"
		 "\"tracing\":{\"endpoint\":\"http://127.0.0.1:1\",\"timeout_ms\":100,"
		 "\"queue_size\":%u,\"batch_size\":%u,\"batch_delay_ms\":3600000}}",
		 2 * ops + 1, 2 * ops + 1 > 100000 ? 100000 : 2 * ops + 1);
	if (config_parse(json, "trace_bench", &cfg, &errs)) {
		fprintf(stderr, "trace_bench: %s\n", errs.count ? errs.msg[0] : "bad config");
		return 1;
	}
	msg = cJSON_Parse("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":"
			  "{\"name\":\"echo\",\"arguments\":{\"text\":\"hi\"},\"_meta\":{}}}");
	for (int r = 0; r < ROUNDS; r++) {
		if (trace_start(cfg))
			return 1;
		double t0 = now_ns();
		for (unsigned i = 0; i < ops; i++)
			one_call(msg, i);
		double dt = (now_ns() - t0) / ops;
		if (dt < best)
			best = dt;
		trace_stop();          /* one failed attempt: the queue is dropped */
	}

	/* the exporter's side: one request of 512 encoded spans */
	struct pb res = { 0 }, *spans[512];
	otlp_resource(&res, "mcpwarden");
	for (int i = 0; i < 512; i++) {
		spans[i] = xcalloc(1, sizeof(struct pb));
		for (int k = 0; k < 20; k++)
			pb_kv_str(spans[i], OTLP_SPAN_ATTRIBUTES, "mcp.method.name", "tools/call");
	}
	for (int r = 0; r < ROUNDS; r++) {
		struct pb out = { 0 };
		double t0 = now_ns();
		for (int k = 0; k < 100; k++) {
			out.n = 0;
			otlp_request(&out, &res, spans, 512);
		}
		double dt = (now_ns() - t0) / 100 / 512;
		if (dt < best_enc)
			best_enc = dt;
		pb_free(&out);
	}
	for (int i = 0; i < 512; i++) {
		pb_free(spans[i]);
		free(spans[i]);
	}
	pb_free(&res);
	printf("trace_bench: one sampled call on the loop (2 spans, 25 attributes, propagation): "
	       "%.0f ns of CPU (best of %d rounds of %u)\n", best, ROUNDS, ops);
	printf("trace_bench: the exporter thread encodes a 512-span request at %.0f ns per span\n",
	       best_enc);
	cJSON_Delete(msg);
	config_free(cfg);
	return 0;
}
