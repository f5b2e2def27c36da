/* metrics: fixed-size counters, rendered as Prometheus text on scrape. */
#include "observe/metrics.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <event2/buffer.h>

#include "enforce/enforcer.h"
#include "govern/keys.h"
#include "govern/refusal.h"
#include "store/store.h"

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
	R_COUNT
};
static const char *const reason_names[R_COUNT] = {
	"ok", "tool_error", "upstream_error", "not_permitted", "rate_limited", "over_budget",
	"invalid_arguments", "unauthenticated", "upstream_failure", "upstream_timeout", "internal",
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
};

static struct {
	uint64_t requests[M_COUNT][D_COUNT][R_COUNT];
	struct histogram gateway, upstream;
	struct histogram stage[METRICS_NSTAGES];
	struct server_errors servers[SERVERS_MAX];      /* open addressing by name */
	uint64_t other_failure, other_timeout;
	int64_t sessions, in_flight;
	int64_t conns[METRICS_NLISTENERS];
	uint64_t refused[METRICS_NLISTENERS][METRICS_NREFUSALS];
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

static enum method method_of(const char *m)
{
	if (!m)
		return M_OTHER;
	for (int i = 0; i < M_OTHER; i++)
		if (!strcmp(m, method_names[i]))
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

void metrics_request_begin(void) { g.in_flight++; }
void metrics_request_end(void) { g.in_flight--; }
void metrics_session_opened(void) { g.sessions++; }
void metrics_session_closed(void) { g.sessions--; }
void metrics_connections(enum metrics_listener l, int delta) { g.conns[l] += delta; }
void metrics_connection_refused(enum metrics_listener l, enum metrics_refusal why)
{
	g.refused[l][why]++;
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
		rc = family(out, "mcpwarden_sessions", "gauge", "Open MCP sessions.");
	if (!rc)
		rc = add(out, "mcpwarden_sessions %lld\n", (long long)g.sessions);
	static const char *const listener_names[] = { "agent", "admin" };
	static const char *const refusal_names[] = { "total_cap", "peer_cap" };
	if (!rc)
		rc = family(out, "mcpwarden_connections", "gauge",
			    "Open client connections, by listener.");
	for (int l = 0; l < METRICS_NLISTENERS && !rc; l++)
		rc = add(out, "mcpwarden_connections{listener=\"%s\"} %lld\n", listener_names[l],
			 (long long)g.conns[l]);
	if (!rc)
		rc = family(out, "mcpwarden_connections_refused_total", "counter",
			    "Client connections closed at once because a cap was reached: "
			    "limits.max_connections (total_cap) or max_connections_per_peer "
			    "(peer_cap).");
	for (int l = 0; l < METRICS_NLISTENERS && !rc; l++)
		for (int w = 0; w < METRICS_NREFUSALS && !rc; w++)
			rc = add(out, "mcpwarden_connections_refused_total{listener=\"%s\","
				 "reason=\"%s\"} %llu\n", listener_names[l], refusal_names[w],
				 (unsigned long long)g.refused[l][w]);
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
	if (!rc && st) {
		rc = family(out, "mcpwarden_store_commits_total", "counter",
			    "Store transactions committed (group commits).");
		if (!rc)
			rc = add(out, "mcpwarden_store_commits_total %llu\n",
				 (unsigned long long)store_commits(st));
		if (!rc)
			rc = family(out, "mcpwarden_store_syncs_total", "counter",
				    "Store checkpoints, each an fsync of the write-ahead log.");
		if (!rc)
			rc = add(out, "mcpwarden_store_syncs_total %llu\n",
				 (unsigned long long)store_syncs(st));
	}
	if (!rc && ks) {
		rc = family(out, "mcpwarden_keys", "gauge", "Virtual keys known (config and store).");
		if (!rc)
			rc = add(out, "mcpwarden_keys %zu\n", keys_count(ks));
	}
	if (!rc)
		rc = render_ebpf(out);
	return rc;
}
