/* metrics: fixed-size counters, rendered as Prometheus text on scrape. */
#include "observe/metrics.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <event2/buffer.h>

#include "base/log.h"
#include "enforce/enforcer.h"
#include "enforce/peer_fast.h"
#include "govern/keys.h"
#include "govern/refusal.h"
#include "observe/logship.h"
#include "observe/logstore.h"
#include "store/store.h"
#include "observe/trace.h"

enum method {
	M_INITIALIZE, M_PING, M_TOOLS_LIST, M_TOOLS_CALL, M_RESOURCES_LIST, M_TEMPLATES_LIST,
	M_RESOURCES_READ, M_SUBSCRIBE, M_UNSUBSCRIBE, M_PROMPTS_LIST, M_PROMPTS_GET, M_COMPLETE,
	M_SET_LEVEL, M_OTHER, M_COUNT
};
static const char *const method_names[M_COUNT] = {
	"initialize", "ping", "tools/list", "tools/call", "resources/list",
	"resources/templates/list", "resources/read", "resources/subscribe",
	"resources/unsubscribe", "prompts/list", "prompts/get", "completion/complete",
	"logging/setLevel", "other",
};

enum decision { D_ALLOW, D_DENY, D_ERROR, D_COUNT };
static const char *const decision_names[D_COUNT] = { "allow", "deny", "error" };

/* Reason classes: what an operator alerts on, never free text (label cardinality stays fixed). */
enum reason {
	R_OK, R_TOOL_ERROR, R_UPSTREAM_ERROR, R_NOT_PERMITTED, R_RATE_LIMITED, R_OVER_BUDGET,
	R_INVALID_ARGUMENTS, R_UNAUTHENTICATED, R_UPSTREAM_FAILURE, R_UPSTREAM_TIMEOUT, R_INTERNAL,
	R_STORE_UNAVAILABLE, R_TOO_MANY_PENDING, R_TOOL_CHANGED, R_LOOP_DETECTED, R_CIRCUIT_OPEN,
	R_COUNT
};
static const char *const reason_names[R_COUNT] = {
	"ok", "tool_error", "upstream_error", "not_permitted", "rate_limited", "over_budget",
	"invalid_arguments", "unauthenticated", "upstream_failure", "upstream_timeout", "internal",
	"store_unavailable", "too_many_pending", "tool_changed", "loop_detected", "circuit_open",
};

/* Histogram bounds in nanoseconds (rendered in seconds), ending in 0: whole requests from
 * 100 us, a call's stages (a few microseconds of gateway work each) from 1 us. */
static const uint64_t request_bounds[] = {
	100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000, 25000000, 50000000,
	100000000, 250000000, 500000000, 1000000000, 2500000000, 5000000000, 10000000000, 0
};
static const uint64_t stage_bounds[] = {
	1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000,
	5000000, 10000000, 25000000, 50000000, 100000000, 250000000, 1000000000, 0
};
#define MAX_BOUNDS 24

struct histogram {
	uint64_t bucket[MAX_BOUNDS];    /* non-cumulative; the one after the last bound is +Inf */
	uint64_t count, sum_ns;
};

static const char *const stage_names[METRICS_NSTAGES] = { "front", "gate", "upstream", "settle" };

#define SERVERS_MAX 256                 /* upstream names seen; later ones share "other" */
#define SERVER_NAME_SIZE 33             /* [a-z0-9-]{1,32} */

struct server_errors {
	char name[SERVER_NAME_SIZE];
	uint64_t failure, timeout;
	bool has_circuit;               /* the upstream has a circuit breaker */
	int circuit;                    /* enum circuit_state */
};

#define LLM_SERIES_MAX 1024             /* key x model pairs; later ones share key "other" */

struct llm_series {
	char key[KEYS_ID_SIZE];
	char model[160];
	uint64_t requests, input, output;
	int64_t cost_micros;
};

/* Per-tool latency: one histogram per (server, tool) the catalogue routed a call to. Bounded:
 * once TOOLS_MAX series exist, further ones (and names too long for a label) share
 * {server="other",tool="other"}. */
#define TOOLS_MAX 1024
#define TOOL_LABEL_SIZE 97              /* "server/tool", at most 96 bytes */

struct tool_series {
	char name[TOOL_LABEL_SIZE];     /* server '\0' tool: split at the first NUL */
	size_t server_len;
	struct histogram h;
};

static struct {
	struct llm_series llm[LLM_SERIES_MAX];   /* open addressing by key and model */
	struct tool_series tools[TOOLS_MAX];            /* open addressing by server and tool */
	struct histogram tools_other;
	size_t ntools;
	uint64_t requests[M_COUNT][D_COUNT][R_COUNT];
	struct histogram gateway, upstream;
	struct histogram stage[METRICS_NSTAGES];
	struct server_errors servers[SERVERS_MAX];      /* open addressing by name */
	uint64_t other_failure, other_timeout;
	int64_t sessions, in_flight;
	uint64_t loop_breaks;
	uint64_t auth_workload;
	int64_t conns[METRICS_NLISTENERS];
	uint64_t refused[METRICS_NLISTENERS][METRICS_NREFUSALS];
	uint64_t http_refused[METRICS_NLISTENERS][4];   /* 400, 413, 431, other */
	struct enforcer *enforcer;
	int64_t started;
} g;

uint64_t metrics_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void metrics_reset(void)
{
	struct enforcer *e = g.enforcer;

	memset(&g, 0, sizeof(g));
	g.enforcer = e;
}

void metrics_llm(const char *key, const char *model, uint64_t input, uint64_t output,
		 int64_t cost_micros)
{
	uint64_t h = 1469598103934665603ull;
	struct llm_series *s = NULL;

	if (!key)
		key = "";
	if (strlen(key) >= KEYS_ID_SIZE || strlen(model) >= sizeof(s->model))
		return;
	for (const char *p = key; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	for (const char *p = model; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	for (size_t i = 0; i < LLM_SERIES_MAX; i++) {
		struct llm_series *c = &g.llm[(h + i) % LLM_SERIES_MAX];
		if (!c->model[0]) {
			snprintf(c->key, sizeof(c->key), "%s", i < LLM_SERIES_MAX / 2 ? key : "other");
			snprintf(c->model, sizeof(c->model), "%s", model);
		}
		if (!strcmp(c->model, model) &&
		    (!strcmp(c->key, key) || (i >= LLM_SERIES_MAX / 2 && !strcmp(c->key, "other")))) {
			s = c;
			break;
		}
	}
	if (!s)
		return;
	s->requests++;
	s->input += input;
	s->output += output;
	s->cost_micros += cost_micros > 0 ? cost_micros : 0;
}

static int render_llm(struct evbuffer *out);

static enum method method_of(const char *m)
{
	if (!m)
		return M_OTHER;
	for (int i = 0; i < M_OTHER; i++)
		if (m[0] == method_names[i][0] && !strcmp(m, method_names[i]))
			return (enum method)i;
	return M_OTHER;
}

static enum reason reason_of(enum decision d, int code, bool tool_error)
{
	switch (code) {
	case 0:                         return tool_error ? R_TOOL_ERROR : R_OK;
	case REFUSAL_NOT_PERMITTED:     return R_NOT_PERMITTED;
	case REFUSAL_RATE_LIMITED:      return R_RATE_LIMITED;
	case REFUSAL_OVER_BUDGET:       return R_OVER_BUDGET;
	case REFUSAL_INVALID_ARGUMENTS: return R_INVALID_ARGUMENTS;
	case REFUSAL_UNAUTHENTICATED:   return R_UNAUTHENTICATED;
	case REFUSAL_UPSTREAM_FAILURE:  return R_UPSTREAM_FAILURE;
	case REFUSAL_UPSTREAM_TIMEOUT:  return R_UPSTREAM_TIMEOUT;
	case REFUSAL_STORE_UNAVAILABLE: return R_STORE_UNAVAILABLE;
	case REFUSAL_TOO_MANY_PENDING:  return R_TOO_MANY_PENDING;
	case REFUSAL_TOOL_CHANGED:      return R_TOOL_CHANGED;
	case REFUSAL_LOOP_DETECTED:     return R_LOOP_DETECTED;
	case REFUSAL_CIRCUIT_OPEN:      return R_CIRCUIT_OPEN;
	}
	/* An error the upstream sent itself is relayed as allowed; anything else is ours. */
	return d == D_ALLOW ? R_UPSTREAM_ERROR : R_INTERNAL;
}

static void observe(struct histogram *h, const uint64_t *bounds, uint64_t ns)
{
	size_t i = 0;

	while (bounds[i] && ns > bounds[i])
		i++;
	h->bucket[i]++;
	h->count++;
	h->sum_ns += ns;
}

/* The slot of server name (created on first use), or NULL when the table is full. */
static struct server_errors *server_slot(const char *name)
{
	uint64_t h = 0xcbf29ce484222325ull;
	size_t len = strnlen(name, SERVER_NAME_SIZE);

	if (len == 0 || len >= SERVER_NAME_SIZE)
		return NULL;
	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)name[i]) * 0x100000001b3ull;
	for (size_t n = 0, i = h % SERVERS_MAX; n < SERVERS_MAX; n++, i = (i + 1) % SERVERS_MAX) {
		struct server_errors *s = &g.servers[i];
		if (!s->name[0]) {
			memcpy(s->name, name, len + 1);
			return s;
		}
		if (!strcmp(s->name, name))
			return s;
	}
	return NULL;
}

void metrics_decision(const char *method, const char *decision, int error_code, bool tool_error,
		      const char *server, uint64_t gateway_ns, uint64_t upstream_ns)
{
	enum decision d = D_ERROR;

	if (decision && !strcmp(decision, "allow"))
		d = D_ALLOW;
	else if (decision && !strcmp(decision, "deny"))
		d = D_DENY;
	enum reason r = reason_of(d, error_code, tool_error);
	g.requests[method_of(method)][d][r]++;
	observe(&g.gateway, request_bounds, gateway_ns);
	if (upstream_ns)
		observe(&g.upstream, request_bounds, upstream_ns);
	if (server && (r == R_UPSTREAM_FAILURE || r == R_UPSTREAM_TIMEOUT)) {
		struct server_errors *s = server_slot(server);
		uint64_t *c = r == R_UPSTREAM_FAILURE ? (s ? &s->failure : &g.other_failure)
						      : (s ? &s->timeout : &g.other_timeout);
		(*c)++;
	}
}

void metrics_loop_break(void) { g.loop_breaks++; }
void metrics_auth_workload_refused(void) { g.auth_workload++; }

void metrics_circuit_state(const char *server, int state)
{
	struct server_errors *s = server_slot(server);

	if (s) {
		s->has_circuit = true;
		s->circuit = state;
	}
}

static struct tool_series *tool_slot(const char *server, const char *tool)
{
	size_t sl = strlen(server), tl = strlen(tool);
	uint64_t h = 0xcbf29ce484222325ull;

	if (!sl || sl + 1 + tl >= TOOL_LABEL_SIZE)
		return NULL;
	for (size_t i = 0; i < sl; i++)
		h = (h ^ (unsigned char)server[i]) * 0x100000001b3ull;
	h = (h ^ 0) * 0x100000001b3ull;
	for (size_t i = 0; i < tl; i++)
		h = (h ^ (unsigned char)tool[i]) * 0x100000001b3ull;
	for (size_t n = 0, i = h % TOOLS_MAX; n < TOOLS_MAX; n++, i = (i + 1) % TOOLS_MAX) {
		struct tool_series *t = &g.tools[i];
		if (!t->name[0]) {
			/* Keep a slot free, so that a lookup of a new name always ends. */
			if (g.ntools >= TOOLS_MAX - 1)
				return NULL;
			memcpy(t->name, server, sl + 1);
			memcpy(t->name + sl + 1, tool, tl + 1);
			t->server_len = sl;
			g.ntools++;
			return t;
		}
		if (t->server_len == sl && !memcmp(t->name, server, sl) &&
		    !strcmp(t->name + sl + 1, tool))
			return t;
	}
	return NULL;
}

void metrics_tool_call(const char *server, const char *tool, uint64_t ns)
{
	struct tool_series *t = server && tool ? tool_slot(server, tool) : NULL;

	observe(t ? &t->h : &g.tools_other, request_bounds, ns);
}

void metrics_request_begin(void) { g.in_flight++; }
void metrics_request_end(void) { g.in_flight--; }
void metrics_session_opened(void) { g.sessions++; }
void metrics_session_closed(void) { g.sessions--; }
void metrics_connections(enum metrics_listener l, int delta) { g.conns[l] += delta; }
void metrics_connection_refused(enum metrics_listener l, enum metrics_refusal why)
{
	g.refused[l][why]++;
}
void metrics_http_refused(enum metrics_listener l, int status)
{
	g.http_refused[l][status == 400 ? 0 : status == 413 ? 1 : status == 431 ? 2 : 3]++;
}
void metrics_set_enforcer(struct enforcer *e) { g.enforcer = e; }
struct enforcer *metrics_enforcer(void) { return g.enforcer; }

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
		       const char *label, const char *const *values, size_t n, const uint64_t *v)
{
	int rc = family(out, name, "counter", help);

	for (size_t l = 0; l < METRICS_NLISTENERS && !rc; l++)
		for (size_t w = 0; w < n && !rc; w++)
			rc = add(out, "%s{listener=\"%s\",%s=\"%s\"} %llu\n", name,
				 listener_names[l], label, values[w],
				 (unsigned long long)v[l * n + w]);
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

static int render_tools(struct evbuffer *out)
{
	char server[2 * TOOL_LABEL_SIZE], tool[2 * TOOL_LABEL_SIZE], label[4 * TOOL_LABEL_SIZE + 16];
	int rc = family(out, "mcpwarden_tool_call_duration_seconds", "histogram",
			"Time per tools/call, by upstream server and tool (the catalogue's; others "
			"as server=\"other\",tool=\"other\").");

	for (size_t i = 0; i < TOOLS_MAX && !rc; i++) {
		const struct tool_series *t = &g.tools[i];
		if (!t->name[0] || !t->h.count)
			continue;
		label_escape(t->name, server, sizeof(server));
		label_escape(t->name + t->server_len + 1, tool, sizeof(tool));
		/* histogram() writes {label="value",...}: the value carries the second label. */
		snprintf(label, sizeof(label), "%s\",tool=\"%s", server, tool);
		rc = histogram(out, "mcpwarden_tool_call_duration_seconds", "server", label,
			       request_bounds, &t->h);
	}
	if (!rc && g.tools_other.count)
		rc = histogram(out, "mcpwarden_tool_call_duration_seconds", "server",
			       "other\",tool=\"other", request_bounds, &g.tools_other);
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

void metrics_stage(enum metrics_stage stage, uint64_t ns)
{
	if ((unsigned)stage < METRICS_NSTAGES)
		observe(&g.stage[stage], stage_bounds, ns);
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

	if (!g.enforcer || enforcer_counters(g.enforcer, &c) < 0)
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

static int render_llm(struct evbuffer *out)
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
			const struct llm_series *s = &g.llm[i];
			if (!s->model[0])
				continue;
			if (f == 3)
				rc = add(out, "%s{key=\"%s\",model=\"%s\"} %lld.%06lld\n", fam[f][0],
					 s->key, s->model, (long long)(s->cost_micros / 1000000),
					 (long long)(s->cost_micros % 1000000));
			else
				rc = add(out, "%s{key=\"%s\",model=\"%s\"} %llu\n", fam[f][0], s->key,
					 s->model, (unsigned long long)(f == 0 ? s->requests
								: f == 1 ? s->input : s->output));
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

int metrics_render(struct evbuffer *out, struct store *st, const struct keystore *ks)
{
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
				if (g.requests[m][d][r])
					rc = add(out, "mcpwarden_requests_total{method=\"%s\","
						 "decision=\"%s\",reason=\"%s\"} %llu\n",
						 method_names[m], decision_names[d], reason_names[r],
						 (unsigned long long)g.requests[m][d][r]);
	if (!rc)
		rc = family(out, "mcpwarden_upstream_errors_total", "counter",
			    "Calls that failed (kind=failure) or timed out (kind=timeout) upstream.");
	for (size_t i = 0; i < SERVERS_MAX && !rc; i++) {
		const struct server_errors *s = &g.servers[i];
		if (s->name[0])
			rc = add(out, "mcpwarden_upstream_errors_total{server=\"%s\",kind=\"failure\"} %llu\n"
				 "mcpwarden_upstream_errors_total{server=\"%s\",kind=\"timeout\"} %llu\n",
				 s->name, (unsigned long long)s->failure, s->name,
				 (unsigned long long)s->timeout);
	}
	if (!rc && (g.other_failure || g.other_timeout))
		rc = add(out, "mcpwarden_upstream_errors_total{server=\"other\",kind=\"failure\"} %llu\n"
			 "mcpwarden_upstream_errors_total{server=\"other\",kind=\"timeout\"} %llu\n",
			 (unsigned long long)g.other_failure, (unsigned long long)g.other_timeout);
	if (!rc)
		rc = family(out, "mcpwarden_upstream_circuit_state", "gauge",
			    "Circuit breaker of an upstream: 0 closed, 1 open, 2 half-open.");
	for (size_t i = 0; i < SERVERS_MAX && !rc; i++)
		if (g.servers[i].name[0] && g.servers[i].has_circuit)
			rc = add(out, "mcpwarden_upstream_circuit_state{upstream=\"%s\"} %d\n",
				 g.servers[i].name, g.servers[i].circuit);
	if (!rc)
		rc = single(out, "mcpwarden_loop_breaks_total", "counter",
			    "Calls the loop breaker refused (the same key, tool and arguments "
			    "too often within the policy's window).", g.loop_breaks);
	if (!rc)
		rc = family(out, "mcpwarden_auth_refused_total", "counter",
			    "Valid keys refused by identity: reason=\"workload\" is a key used "
			    "outside the workloads it is bound to.");
	if (!rc)
		rc = add(out, "mcpwarden_auth_refused_total{reason=\"workload\"} %llu\n",
			 (unsigned long long)g.auth_workload);
	if (!rc)
		rc = render_llm(out);
	if (!rc)
		rc = family(out, "mcpwarden_sessions", "gauge", "Open MCP sessions.");
	if (!rc)
		rc = add(out, "mcpwarden_sessions %lld\n", (long long)g.sessions);
	static const char *const refusal_names[] = { "total_cap", "peer_cap" };
	if (!rc)
		rc = family(out, "mcpwarden_connections", "gauge",
			    "Open client connections, by listener.");
	for (int l = 0; l < METRICS_NLISTENERS && !rc; l++)
		rc = add(out, "mcpwarden_connections{listener=\"%s\"} %lld\n", listener_names[l],
			 (long long)g.conns[l]);
	static const char *const http_status[] = { "400", "413", "431", "other" };
	if (!rc)
		rc = by_listener(out, "mcpwarden_connections_refused_total",
				 "Client connections closed at once because a cap was reached: "
				 "limits.max_connections (total_cap) or max_connections_per_peer "
				 "(peer_cap).", "reason", refusal_names, METRICS_NREFUSALS,
				 &g.refused[0][0]);
	if (!rc)
		rc = by_listener(out, "mcpwarden_http_refused_total",
				 "Requests refused by the HTTP layer, as JSON-RPC errors, then the "
				 "connection closed: 400 malformed, 413 body past "
				 "limits.max_body_bytes, 431 headers past limits.max_header_bytes.",
				 "status", http_status, 4, &g.http_refused[0][0]);
	if (!rc)
		rc = family(out, "mcpwarden_requests_in_flight", "gauge",
			    "Requests received and not answered yet.");
	if (!rc)
		rc = add(out, "mcpwarden_requests_in_flight %lld\n", (long long)g.in_flight);
	if (!rc)
		rc = family(out, "mcpwarden_request_duration_seconds", "histogram",
			    "Time per request: part=gateway is spent in mcpwarden, part=upstream "
			    "waiting for the upstream.");
	if (!rc)
		rc = histogram(out, "mcpwarden_request_duration_seconds", "part", "gateway",
			       request_bounds, &g.gateway);
	if (!rc)
		rc = histogram(out, "mcpwarden_request_duration_seconds", "part", "upstream",
			       request_bounds, &g.upstream);
	if (!rc)
		rc = family(out, "mcpwarden_call_stage_duration_seconds", "histogram",
			    "Time per stage of a call: front (HTTP checks, key authentication, JSON "
			    "parsing), gate (permission, rate limits, budget reservation, argument "
			    "validation), upstream (the upstream's own time), settle (the durable "
			    "charge, the record and the answer).");
	for (int i = 0; i < METRICS_NSTAGES && !rc; i++)
		rc = histogram(out, "mcpwarden_call_stage_duration_seconds", "stage", stage_names[i],
			       stage_bounds, &g.stage[i]);
	if (!rc)
		rc = render_tools(out);
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
	return rc;
}
