/* metrics_render: the scrape: every loop's block of counts added up (observe/metrics_int.h),
 * and the Prometheus text exposition (version 0.0.4) of it and of what other modules count. */
#include "observe/metrics.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>

#include "base/alloc.h"
#include "base/log.h"
#include "enforce/enforcer.h"
#include "enforce/peer_fast.h"
#include "govern/keys.h"
#include "observe/logship.h"
#include "observe/logstore.h"
#include "observe/metrics_int.h"
#include "observe/trace.h"
#include "store/store.h"

static const char *const decision_names[D_COUNT] = { "allow", "deny", "error" };

static const char *const reason_names[R_COUNT] = {
	"ok", "tool_error", "upstream_error", "not_permitted", "rate_limited", "over_budget",
	"invalid_arguments", "unauthenticated", "upstream_failure", "upstream_timeout", "internal",
	"store_unavailable", "too_many_pending", "tool_changed", "loop_detected", "circuit_open",
};

static const char *const stage_names[METRICS_NSTAGES] = { "front", "gate", "upstream", "settle" };

/* ---- the sum of the blocks, for a scrape ---- */

static void histogram_add(struct histogram *to, const struct histogram *from)
{
	for (size_t i = 0; i < MAX_BOUNDS; i++)
		BUMP(to->bucket[i], READ(from->bucket[i]));
	BUMP(to->count, READ(from->count));
	BUMP(to->sum_ns, READ(from->sum_ns));
}

static void counters_add(counter *to, const counter *from, size_t n)
{
	for (size_t i = 0; i < n; i++)
		BUMP(to[i], READ(from[i]));
}

/* Add from (another thread's, read as it is being written) into sum (the scrape's own). The
 * named series go by name: two loops name theirs in different slots. */
static void block_add(struct block *sum, const struct block *from)
{
	counters_add(&sum->requests[0][0][0], &from->requests[0][0][0],
		     (size_t)M_COUNT * D_COUNT * R_COUNT);
	histogram_add(&sum->gateway, &from->gateway);
	histogram_add(&sum->upstream, &from->upstream);
	for (int i = 0; i < METRICS_NSTAGES; i++)
		histogram_add(&sum->stage[i], &from->stage[i]);
	histogram_add(&sum->tools_other, &from->tools_other);
	for (size_t i = 0; i < TOOLS_MAX; i++) {
		const struct tool_series *t = &from->tools[i];
		struct tool_series *to;

		if (!atomic_load_explicit(&t->used, memory_order_acquire))
			continue;
		to = metrics_tool_slot(sum, t->name, t->name + t->server_len + 1);
		histogram_add(to ? &to->h : &sum->tools_other, &t->h);
	}
	for (size_t i = 0; i < SERVERS_MAX; i++) {
		const struct server_errors *e = &from->servers[i];
		struct server_errors *to;

		if (!atomic_load_explicit(&e->used, memory_order_acquire))
			continue;
		to = metrics_server_slot(sum, e->name);
		BUMP(*(to ? &to->failure : &sum->other_failure), READ(e->failure));
		BUMP(*(to ? &to->timeout : &sum->other_timeout), READ(e->timeout));
	}
	BUMP(sum->other_failure, READ(from->other_failure));
	BUMP(sum->other_timeout, READ(from->other_timeout));
	for (size_t i = 0; i < LLM_SERIES_MAX; i++) {
		const struct llm_series *l = &from->llm[i];
		struct llm_series *to;

		if (!atomic_load_explicit(&l->used, memory_order_acquire))
			continue;
		if ((to = metrics_llm_slot(sum, l->key, l->model)))
			metrics_llm_add(to, READ(l->requests), READ(l->input), READ(l->output),
				READ(l->cost_micros));
	}
	BUMP(sum->sessions, READ(from->sessions));
	BUMP(sum->in_flight, READ(from->in_flight));
	BUMP(sum->loop_breaks, READ(from->loop_breaks));
	BUMP(sum->auth_workload, READ(from->auth_workload));
	for (int l = 0; l < METRICS_NLISTENERS; l++)
		BUMP(sum->conns[l], READ(from->conns[l]));
	counters_add(&sum->refused[0][0], &from->refused[0][0],
		     (size_t)METRICS_NLISTENERS * METRICS_NREFUSALS);
	counters_add(&sum->http_refused[0][0], &from->http_refused[0][0],
		     (size_t)METRICS_NLISTENERS * 4);
}

/* ---- exposition ---- */

static int add(struct evbuffer *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int add(struct evbuffer *out, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = evbuffer_add_vprintf(out, fmt, ap);
	va_end(ap);
	return rc < 0 ? -ENOMEM : 0;
}

static int family(struct evbuffer *out, const char *name, const char *type, const char *help)
{
	return add(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static const char *const listener_names[METRICS_NLISTENERS] = { "agent", "admin" };

/* A counter by listener and one more label of n values: v[listener * n + value]. */
static int by_listener(struct evbuffer *out, const char *name, const char *help,
		       const char *label, const char *const *values, size_t n, const counter *v)
{
	int rc = family(out, name, "counter", help);

	for (size_t l = 0; l < METRICS_NLISTENERS && !rc; l++)
		for (size_t w = 0; w < n && !rc; w++)
			rc = add(out, "%s{listener=\"%s\",%s=\"%s\"} %llu\n", name,
				 listener_names[l], label, values[w],
				 (unsigned long long)READ(v[l * n + w]));
	return rc;
}

/* A family of one unlabelled sample. */
static int single(struct evbuffer *out, const char *name, const char *type, const char *help,
		  unsigned long long v)
{
	int rc = family(out, name, type, help);

	return rc ? rc : add(out, "%s %llu\n", name, v);
}

/* Families of one unlabelled sample each, in order. */
struct sample {
	const char *name, *type, *help;
	unsigned long long v;
};

static int samples(struct evbuffer *out, const struct sample *v, size_t n)
{
	int rc = 0;

	for (size_t i = 0; i < n && !rc; i++)
		rc = single(out, v[i].name, v[i].type, v[i].help, v[i].v);
	return rc;
}

/* Seconds from nanoseconds, exactly, without floating point. */
static void seconds(uint64_t ns, char *buf, size_t len)
{
	snprintf(buf, len, "%llu.%09llu", (unsigned long long)(ns / 1000000000ull),
		 (unsigned long long)(ns % 1000000000ull));
}

/* The lines of one histogram: name_bucket{label="value",le=...}, _sum and _count. */
static int histogram(struct evbuffer *out, const char *name, const char *label,
		     const char *value, const uint64_t *bounds, const struct histogram *h)
{
	uint64_t cum = 0;
	char le[32];
	size_t i;
	int rc = 0;

	for (i = 0; bounds[i] && !rc; i++) {
		cum += h->bucket[i];
		seconds(bounds[i], le, sizeof(le));
		/* trim trailing zeros: "0.000100000" -> "0.0001" */
		for (size_t n = strlen(le); n > 2 && le[n - 1] == '0' && le[n - 2] != '.'; n--)
			le[n - 1] = '\0';
		rc = add(out, "%s_bucket{%s=\"%s\",le=\"%s\"} %llu\n", name, label, value, le,
			 (unsigned long long)cum);
	}
	cum += h->bucket[i];
	seconds(h->sum_ns, le, sizeof(le));
	if (!rc)
		rc = add(out, "%s_bucket{%s=\"%s\",le=\"+Inf\"} %llu\n%s_sum{%s=\"%s\"} %s\n"
			 "%s_count{%s=\"%s\"} %llu\n", name, label, value,
			 (unsigned long long)cum, name, label, value, le, name, label, value,
			 (unsigned long long)h->count);
	return rc;
}

/* A Prometheus label value: backslash, double quote and newline escaped (tool names come from
 * the MCP servers). */
static void label_escape(const char *in, char *out, size_t len)
{
	size_t o = 0;

	for (; *in && o + 3 < len; in++) {
		if (*in == '\\' || *in == '"' || *in == '\n') {
			out[o++] = '\\';
			out[o++] = *in == '\n' ? 'n' : *in;
		} else {
			out[o++] = *in;
		}
	}
	out[o] = '\0';
}

static int render_tools(struct evbuffer *out, const struct block *g)
{
	char server[2 * TOOL_LABEL_SIZE], tool[2 * TOOL_LABEL_SIZE], label[4 * TOOL_LABEL_SIZE + 16];
	int rc = family(out, "mcpwarden_tool_call_duration_seconds", "histogram",
			"Time per tools/call, by upstream server and tool (the catalogue's; others "
			"as server=\"other\",tool=\"other\").");

	for (size_t i = 0; i < TOOLS_MAX && !rc; i++) {
		const struct tool_series *t = &g->tools[i];
		if (!t->used || !t->h.count)
			continue;
		label_escape(t->name, server, sizeof(server));
		label_escape(t->name + t->server_len + 1, tool, sizeof(tool));
		/* histogram() writes {label="value",...}: the value carries the second label. */
		snprintf(label, sizeof(label), "%s\",tool=\"%s", server, tool);
		rc = histogram(out, "mcpwarden_tool_call_duration_seconds", "server", label,
			       metrics_request_bounds, &t->h);
	}
	if (!rc && g->tools_other.count)
		rc = histogram(out, "mcpwarden_tool_call_duration_seconds", "server",
			       "other\",tool=\"other", metrics_request_bounds, &g->tools_other);
	return rc;
}

static int render_logstore(struct evbuffer *out)
{
	struct logstore_stats s;

	logstore_get_stats(&s);
	if (!s.running)
		return 0;
	const struct sample v[] = {
		{ "mcpwarden_logstore_queue_depth", "gauge",
		  "Records waiting for the log store's writer thread.", s.queue_depth },
		{ "mcpwarden_logstore_dropped_total", "counter",
		  "Records not stored (queue full, or a failed write); stdout has them.", s.dropped },
		{ "mcpwarden_logstore_written_total", "counter",
		  "Records stored in the log store.", s.written },
		{ "mcpwarden_logstore_bytes", "gauge",
		  "Size of the log store's files (database and write-ahead log), sampled "
		  "by its writer.", s.bytes },
		{ "mcpwarden_logstore_writer_idle", "gauge",
		  "1 while the log store's writer runs in the kernel's idle class "
		  "(logs.writer_priority).", s.writer_idle },
		{ "mcpwarden_logstore_writer_raised_total", "counter",
		  "Times the idle writer fell a quarter of the queue behind and was raised to "
		  "normal priority: the host had no idle CPU time for it.", s.writer_raised },
	};
	int rc = samples(out, v, sizeof(v) / sizeof(v[0]));
	struct logship_stats p;

	logship_get_stats(&p);
	if (rc || !p.running)
		return rc;
	const struct sample w[] = {
		{ "mcpwarden_logship_connected", "gauge",
		  "1 while the shipper to the fleet's store (logs.postgres) is connected.",
		  p.connected },
		{ "mcpwarden_logship_shipped_total", "counter",
		  "Records copied to the fleet's store by this process.", p.shipped },
		{ "mcpwarden_logship_pending", "gauge",
		  "Records stored locally and not yet in the fleet's store (the spool).",
		  p.pending },
		{ "mcpwarden_logship_lost_total", "counter",
		  "Records deleted by local retention before they were shipped.", p.lost },
		{ "mcpwarden_logship_failures_total", "counter",
		  "Failed connects and batches to the fleet's store.", p.failures },
	};
	return samples(out, w, sizeof(w) / sizeof(w[0]));
}

/* The record stream's writer (base/log.c). */
static int render_records(struct evbuffer *out)
{
	struct log_async_stats s;

	log_async_get_stats(&s);
	if (!s.running)
		return 0;
	const struct sample v[] = {
		{ "mcpwarden_records_queue_bytes", "gauge",
		  "Bytes of records and log lines waiting for the writer to stdout and stderr.",
		  s.queued },
		{ "mcpwarden_records_writer_idle", "gauge",
		  "1 while the writer to stdout and stderr runs in the kernel's idle class "
		  "(logs.writer_priority).", s.idle },
		{ "mcpwarden_records_writer_raised_total", "counter",
		  "Times that idle writer was raised to normal priority: for an operational "
		  "message, or when 1 MiB waited for it.", s.raised },
	};
	return samples(out, v, sizeof(v) / sizeof(v[0]));
}

static int render_store(struct evbuffer *out, struct store *st)
{
	struct store_thread_stats t;

	store_get_thread_stats(st, &t);
	const struct sample v[] = {
		{ "mcpwarden_store_commits_total", "counter",
		  "Store transactions committed (group commits).", store_commits(st) },
		{ "mcpwarden_store_syncs_total", "counter",
		  "Store checkpoints, each an fsync of the write-ahead log.", store_syncs(st) },
		{ "mcpwarden_store_writer_idle", "gauge",
		  "1 while the store's writer runs in the kernel's idle class "
		  "(store.writer_priority).", t.writer_idle },
		{ "mcpwarden_store_writer_raised_total", "counter",
		  "Times that idle writer was raised to normal priority: for an operation someone "
		  "waits for, or when 1024 operations waited for it.", t.writer_raised },
		{ "mcpwarden_store_checkpointer_idle", "gauge",
		  "1 while the store's checkpointer runs in the kernel's idle class.", t.ckpt_idle },
		{ "mcpwarden_store_checkpointer_raised_total", "counter",
		  "Times that idle checkpointer was raised: its last checkpoint was more than "
		  "twice store.fsync_interval_ms ago.", t.ckpt_raised },
	};
	return samples(out, v, sizeof(v) / sizeof(v[0]));
}

/* A counter family with one sample per hook: the counter at offset field of each hook's. */
static int per_hook(struct evbuffer *out, const char *name, const char *help,
		    const struct enforcer_counters *c, size_t field)
{
	int rc = family(out, name, "counter", help);

	for (unsigned h = 0; h < WARDEN_HOOK_MAX && !rc; h++) {
		__u64 v;

		memcpy(&v, (const char *)&c->hook[h] + field, sizeof(v));
		rc = add(out, "%s{hook=\"%s\"} %llu\n", name, enforcer_hook_name(h),
			 (unsigned long long)v);
	}
	return rc;
}

static int render_ebpf(struct evbuffer *out)
{
	struct enforcer_counters c;
	int rc;

	if (!metrics_shared.enforcer || enforcer_counters(metrics_shared.enforcer, &c) < 0)
		return 0;
	rc = family(out, "mcpwarden_ebpf_decisions_total", "counter",
		    "Socket operations from enrolled cgroups decided by the eBPF hooks.");
	for (unsigned h = 0; h < WARDEN_HOOK_MAX && !rc; h++)
		rc = add(out, "mcpwarden_ebpf_decisions_total{hook=\"%s\",verdict=\"allowed\"} %llu\n"
			 "mcpwarden_ebpf_decisions_total{hook=\"%s\",verdict=\"denied\"} %llu\n",
			 enforcer_hook_name(h), (unsigned long long)c.hook[h].allowed,
			 enforcer_hook_name(h), (unsigned long long)c.hook[h].denied);
	if (!rc)
		rc = per_hook(out, "mcpwarden_ebpf_unenrolled_total",
			      "Socket operations from cgroups that are not enrolled (let through).",
			      &c, offsetof(struct warden_counters, unenrolled));
	if (!rc)
		rc = per_hook(out, "mcpwarden_ebpf_events_dropped_total",
			      "Denials whose audit event did not fit the ring buffer.",
			      &c, offsetof(struct warden_counters, events_dropped));
	return rc;
}

/* Callers of accepted inet connections named from warden_conns (no system call) and those
 * sent to sock_diag (the slot did not match, or no map: enforce/peer_fast.h). */
static int render_identity(struct evbuffer *out)
{
	struct peer_fast_stats st;
	int rc;

	peer_fast_stats(&st);
	rc = family(out, "mcpwarden_identity_lookups_total", "counter",
		    "Callers of accepted connections named from the kernel, by how: warden_conns "
		    "(memory, no system call) or sock_diag (the fallback).");
	if (!rc)
		rc = add(out, "mcpwarden_identity_lookups_total{path=\"warden_conns\"} %llu\n"
			 "mcpwarden_identity_lookups_total{path=\"sock_diag\"} %llu\n",
			 (unsigned long long)st.hits, (unsigned long long)st.fallbacks);
	return rc;
}

static int render_llm(struct evbuffer *out, const struct block *g)
{
	static const char *const fam[][2] = {
		{ "mcpwarden_llm_requests_total", "LLM route requests answered, by key and model." },
		{ "mcpwarden_llm_input_tokens_total", "Prompt tokens the providers reported." },
		{ "mcpwarden_llm_output_tokens_total", "Completion tokens the providers reported." },
		{ "mcpwarden_llm_cost_total", "Money charged for LLM usage (currency units)." },
	};
	int rc = 0;

	for (int f = 0; f < 4 && !rc; f++) {
		rc = family(out, fam[f][0], "counter", fam[f][1]);
		for (size_t i = 0; i < LLM_SERIES_MAX && !rc; i++) {
			const struct llm_series *s = &g->llm[i];
			if (!s->used)
				continue;
			if (f == 3)
				rc = add(out, "%s{key=\"%s\",model=\"%s\"} %lld.%06lld\n", fam[f][0],
					 s->key, s->model, (long long)(READ(s->cost_micros) / 1000000),
					 (long long)(READ(s->cost_micros) % 1000000));
			else
				rc = add(out, "%s{key=\"%s\",model=\"%s\"} %llu\n", fam[f][0], s->key,
					 s->model, (unsigned long long)(f == 0 ? READ(s->requests)
								: f == 1 ? READ(s->input) : READ(s->output)));
		}
	}
	return rc;
}

/* The span exporter (observe/trace.h): zeros while tracing is off. */
static int render_tracing(struct evbuffer *out)
{
	struct trace_counters t;

	trace_counters(&t);
	const struct sample v[] = {
		{ "mcpwarden_trace_spans_exported_total", "counter",
		  "Spans the OTLP collector accepted.", t.exported },
		{ "mcpwarden_trace_spans_dropped_total", "counter",
		  "Spans lost: the export queue was full, or their export failed after "
		  "its retries.", t.dropped },
		{ "mcpwarden_trace_export_errors_total", "counter",
		  "OTLP export requests that failed after their retries.", t.export_errors },
		{ "mcpwarden_trace_spans_queued", "gauge", "Spans waiting for export.", t.queued },
	};
	return samples(out, v, sizeof(v) / sizeof(v[0]));
}

/* The process's counts: every loop's block added up, in a block of the scrape's own. */
static struct block *blocks_sum(void)
{
	struct block *sum = xcalloc(1, sizeof(*sum));

	block_add(sum, &metrics_main_block);
	pthread_mutex_lock(&metrics_shared.mu);
	for (const struct block *b = metrics_shared.blocks; b; b = b->next)
		block_add(sum, b);
	pthread_mutex_unlock(&metrics_shared.mu);
	return sum;
}

static int render_circuits(struct evbuffer *out)
{
	int rc = family(out, "mcpwarden_upstream_circuit_state", "gauge",
			"Circuit breaker of an upstream: 0 closed, 1 open, 2 half-open.");

	pthread_mutex_lock(&metrics_shared.mu);
	for (size_t i = 0; i < SERVERS_MAX && !rc; i++)
		if (metrics_shared.circuits[i].name[0])
			rc = add(out, "mcpwarden_upstream_circuit_state{upstream=\"%s\"} %d\n",
				 metrics_shared.circuits[i].name, metrics_shared.circuits[i].state);
	pthread_mutex_unlock(&metrics_shared.mu);
	return rc;
}

int metrics_render(struct evbuffer *out, struct store *st, const struct keystore *ks)
{
	struct block *g = blocks_sum();
	int rc;

	rc = family(out, "mcpwarden_build_info", "gauge", "The mcpwarden version, as a label.");
	if (!rc)
		rc = add(out, "mcpwarden_build_info{version=\"%s\"} 1\n", WARDEN_VERSION);
	if (!rc)
		rc = family(out, "mcpwarden_requests_total", "counter",
			    "JSON-RPC requests answered, by method, decision and reason class.");
	for (int m = 0; m < M_COUNT && !rc; m++)
		for (int d = 0; d < D_COUNT && !rc; d++)
			for (int r = 0; r < R_COUNT && !rc; r++)
				if (g->requests[m][d][r])
					rc = add(out, "mcpwarden_requests_total{method=\"%s\","
						 "decision=\"%s\",reason=\"%s\"} %llu\n",
						 metrics_method_names[m], decision_names[d], reason_names[r],
						 (unsigned long long)g->requests[m][d][r]);
	if (!rc)
		rc = family(out, "mcpwarden_upstream_errors_total", "counter",
			    "Calls that failed (kind=failure) or timed out (kind=timeout) upstream.");
	for (size_t i = 0; i < SERVERS_MAX && !rc; i++) {
		const struct server_errors *s = &g->servers[i];
		if (s->used)
			rc = add(out, "mcpwarden_upstream_errors_total{server=\"%s\",kind=\"failure\"} %llu\n"
				 "mcpwarden_upstream_errors_total{server=\"%s\",kind=\"timeout\"} %llu\n",
				 s->name, (unsigned long long)s->failure, s->name,
				 (unsigned long long)s->timeout);
	}
	if (!rc && (g->other_failure || g->other_timeout))
		rc = add(out, "mcpwarden_upstream_errors_total{server=\"other\",kind=\"failure\"} %llu\n"
			 "mcpwarden_upstream_errors_total{server=\"other\",kind=\"timeout\"} %llu\n",
			 (unsigned long long)g->other_failure, (unsigned long long)g->other_timeout);
	if (!rc)
		rc = render_circuits(out);
	if (!rc)
		rc = single(out, "mcpwarden_loop_breaks_total", "counter",
			    "Calls the loop breaker refused (the same key, tool and arguments "
			    "too often within the policy's window).", g->loop_breaks);
	if (!rc)
		rc = family(out, "mcpwarden_auth_refused_total", "counter",
			    "Valid keys refused by identity: reason=\"workload\" is a key used "
			    "outside the workloads it is bound to.");
	if (!rc)
		rc = add(out, "mcpwarden_auth_refused_total{reason=\"workload\"} %llu\n",
			 (unsigned long long)g->auth_workload);
	if (!rc)
		rc = render_llm(out, g);
	if (!rc)
		rc = family(out, "mcpwarden_sessions", "gauge", "Open MCP sessions.");
	if (!rc)
		rc = add(out, "mcpwarden_sessions %lld\n", (long long)g->sessions);
	static const char *const refusal_names[] = { "total_cap", "peer_cap" };
	if (!rc)
		rc = family(out, "mcpwarden_connections", "gauge",
			    "Open client connections, by listener.");
	for (int l = 0; l < METRICS_NLISTENERS && !rc; l++)
		rc = add(out, "mcpwarden_connections{listener=\"%s\"} %lld\n", listener_names[l],
			 (long long)g->conns[l]);
	static const char *const http_status[] = { "400", "413", "431", "other" };
	if (!rc)
		rc = by_listener(out, "mcpwarden_connections_refused_total",
				 "Client connections closed at once because a cap was reached: "
				 "limits.max_connections (total_cap) or max_connections_per_peer "
				 "(peer_cap).", "reason", refusal_names, METRICS_NREFUSALS,
				 &g->refused[0][0]);
	if (!rc)
		rc = by_listener(out, "mcpwarden_http_refused_total",
				 "Requests refused by the HTTP layer, as JSON-RPC errors, then the "
				 "connection closed: 400 malformed, 413 body past "
				 "limits.max_body_bytes, 431 headers past limits.max_header_bytes.",
				 "status", http_status, 4, &g->http_refused[0][0]);
	if (!rc)
		rc = family(out, "mcpwarden_requests_in_flight", "gauge",
			    "Requests received and not answered yet.");
	if (!rc)
		rc = add(out, "mcpwarden_requests_in_flight %lld\n", (long long)g->in_flight);
	if (!rc)
		rc = family(out, "mcpwarden_request_duration_seconds", "histogram",
			    "Time per request: part=gateway is spent in mcpwarden, part=upstream "
			    "waiting for the upstream.");
	if (!rc)
		rc = histogram(out, "mcpwarden_request_duration_seconds", "part", "gateway",
			       metrics_request_bounds, &g->gateway);
	if (!rc)
		rc = histogram(out, "mcpwarden_request_duration_seconds", "part", "upstream",
			       metrics_request_bounds, &g->upstream);
	if (!rc)
		rc = family(out, "mcpwarden_call_stage_duration_seconds", "histogram",
			    "Time per stage of a call: front (HTTP checks, key authentication, JSON "
			    "parsing), gate (permission, rate limits, budget reservation, argument "
			    "validation), upstream (the upstream's own time), settle (the durable "
			    "charge, the record and the answer).");
	for (int i = 0; i < METRICS_NSTAGES && !rc; i++)
		rc = histogram(out, "mcpwarden_call_stage_duration_seconds", "stage", stage_names[i],
			       metrics_stage_bounds, &g->stage[i]);
	if (!rc)
		rc = render_tools(out, g);
	if (!rc)
		rc = render_logstore(out);
	if (!rc)
		rc = render_records(out);
	if (!rc && st)
		rc = render_store(out, st);
	if (!rc && ks) {
		rc = single(out, "mcpwarden_keys", "gauge", "Virtual keys known (config and store).",
			    keys_count(ks));
	}
	if (!rc)
		rc = render_tracing(out);
	if (!rc)
		rc = render_ebpf(out);
	if (!rc)
		rc = render_identity(out);
	free(g);
	return rc;
}
