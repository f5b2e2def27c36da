/* metrics: the counting hooks, each into the calling loop's block (observe/metrics_int.h);
 * metrics_render.c adds the blocks up on a scrape. */
#include "observe/metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "govern/refusal.h"
#include "observe/metrics_int.h"

const char *const metrics_method_names[M_COUNT] = {
	"initialize", "ping", "tools/list", "tools/call", "resources/list",
	"resources/templates/list", "resources/read", "resources/subscribe",
	"resources/unsubscribe", "prompts/list", "prompts/get", "completion/complete",
	"logging/setLevel", "other",
};

/* Histogram bounds in nanoseconds (rendered in seconds), ending in 0: whole requests from
 * 100 us, a call's stages (a few microseconds of gateway work each) from 1 us. */
const uint64_t metrics_request_bounds[] = {
	100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000, 25000000, 50000000,
	100000000, 250000000, 500000000, 1000000000, 2500000000, 5000000000, 10000000000, 0
};
const uint64_t metrics_stage_bounds[] = {
	1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000,
	5000000, 10000000, 25000000, 50000000, 100000000, 250000000, 1000000000, 0
};

struct block metrics_main_block;
static _Thread_local struct block *mine;        /* NULL: metrics_main_block */
struct metrics_shared metrics_shared = { .mu = PTHREAD_MUTEX_INITIALIZER };

static inline struct block *blk(void)
{
	return mine ? mine : &metrics_main_block;
}

void metrics_loop_attach(void)
{
	struct block *b;

	if (mine)
		return;
	pthread_mutex_lock(&metrics_shared.mu);
	for (b = metrics_shared.blocks; b && b->attached; b = b->next)
		;
	if (!b) {
		b = xcalloc(1, sizeof(*b));
		b->next = metrics_shared.blocks;
		metrics_shared.blocks = b;
	}
	b->attached = true;
	pthread_mutex_unlock(&metrics_shared.mu);
	mine = b;
}

void metrics_loop_detach(void)
{
	if (!mine)
		return;
	pthread_mutex_lock(&metrics_shared.mu);
	mine->attached = false;
	pthread_mutex_unlock(&metrics_shared.mu);
	mine = NULL;
}

uint64_t metrics_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void block_zero(struct block *b)
{
	struct block *next = b->next;
	bool attached = b->attached;

	memset(b, 0, sizeof(*b));
	b->next = next;
	b->attached = attached;
}

void metrics_reset(void)
{
	pthread_mutex_lock(&metrics_shared.mu);
	block_zero(&metrics_main_block);
	for (struct block *b = metrics_shared.blocks; b; b = b->next)
		block_zero(b);
	memset(metrics_shared.circuits, 0, sizeof(metrics_shared.circuits));
	pthread_mutex_unlock(&metrics_shared.mu);
}

struct llm_series *metrics_llm_slot(struct block *b, const char *key, const char *model)
{
	uint64_t h = 1469598103934665603ull;

	if (strlen(key) >= KEYS_ID_SIZE || strlen(model) >= sizeof(b->llm[0].model))
		return NULL;
	for (const char *p = key; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	for (const char *p = model; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	for (size_t i = 0; i < LLM_SERIES_MAX; i++) {
		struct llm_series *c = &b->llm[(h + i) % LLM_SERIES_MAX];
		if (!atomic_load_explicit(&c->used, memory_order_relaxed)) {
			snprintf(c->key, sizeof(c->key), "%s", i < LLM_SERIES_MAX / 2 ? key : "other");
			snprintf(c->model, sizeof(c->model), "%s", model);
			atomic_store_explicit(&c->used, true, memory_order_release);
		}
		if (!strcmp(c->model, model) &&
		    (!strcmp(c->key, key) || (i >= LLM_SERIES_MAX / 2 && !strcmp(c->key, "other"))))
			return c;
	}
	return NULL;
}

void metrics_llm_add(struct llm_series *s, uint64_t requests, uint64_t input, uint64_t output,
		    int64_t cost_micros)
{
	BUMP(s->requests, requests);
	BUMP(s->input, input);
	BUMP(s->output, output);
	BUMP(s->cost_micros, cost_micros > 0 ? cost_micros : 0);
}

void metrics_llm(const char *key, const char *model, uint64_t input, uint64_t output,
		 int64_t cost_micros)
{
	struct llm_series *s = metrics_llm_slot(blk(), key ? key : "", model);

	if (s)
		metrics_llm_add(s, 1, input, output, cost_micros);
}

static enum method method_of(const char *m)
{
	if (!m)
		return M_OTHER;
	for (int i = 0; i < M_OTHER; i++)
		if (m[0] == metrics_method_names[i][0] && !strcmp(m, metrics_method_names[i]))
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

/* Inlined at each of its callers (a call observes seven histograms): the relaxed atomics
 * made it too large for the compiler to choose to. */
static inline __attribute__((always_inline)) void observe(struct histogram *h,
							    const uint64_t *bounds, uint64_t ns)
{
	size_t i = 0;

	while (bounds[i] && ns > bounds[i])
		i++;
	BUMP(h->bucket[i], 1);
	BUMP(h->count, 1);
	BUMP(h->sum_ns, ns);
}

/* FNV-1a of a server's name, and whether it fits a slot. */
static bool server_hash(const char *name, size_t *len, uint64_t *hash)
{
	uint64_t h = 0xcbf29ce484222325ull;

	*len = strnlen(name, SERVER_NAME_SIZE);
	if (*len == 0 || *len >= SERVER_NAME_SIZE)
		return false;
	for (size_t i = 0; i < *len; i++)
		h = (h ^ (unsigned char)name[i]) * 0x100000001b3ull;
	*hash = h;
	return true;
}

/* The slot of server name in b (created on first use), or NULL when the table is full. */
struct server_errors *metrics_server_slot(struct block *b, const char *name)
{
	uint64_t h;
	size_t len;

	if (!server_hash(name, &len, &h))
		return NULL;
	for (size_t n = 0, i = h % SERVERS_MAX; n < SERVERS_MAX; n++, i = (i + 1) % SERVERS_MAX) {
		struct server_errors *s = &b->servers[i];
		if (!atomic_load_explicit(&s->used, memory_order_relaxed)) {
			memcpy(s->name, name, len + 1);
			atomic_store_explicit(&s->used, true, memory_order_release);
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
	struct block *b = blk();

	BUMP(b->requests[method_of(method)][d][r], 1);
	observe(&b->gateway, metrics_request_bounds, gateway_ns);
	if (upstream_ns)
		observe(&b->upstream, metrics_request_bounds, upstream_ns);
	if (server && (r == R_UPSTREAM_FAILURE || r == R_UPSTREAM_TIMEOUT)) {
		struct server_errors *s = metrics_server_slot(b, server);
		counter *c = r == R_UPSTREAM_FAILURE ? (s ? &s->failure : &b->other_failure)
						     : (s ? &s->timeout : &b->other_timeout);
		BUMP(*c, 1);
	}
}

void metrics_loop_break(void) { BUMP(blk()->loop_breaks, 1); }
void metrics_auth_workload_refused(void) { BUMP(blk()->auth_workload, 1); }

/* A circuit is the process's (the gate's), not a loop's: one table, under the lock. */
void metrics_circuit_state(const char *server, int state)
{
	uint64_t h;
	size_t len;

	if (!server_hash(server, &len, &h))
		return;
	pthread_mutex_lock(&metrics_shared.mu);
	for (size_t n = 0, i = h % SERVERS_MAX; n < SERVERS_MAX; n++, i = (i + 1) % SERVERS_MAX) {
		struct circuit_state *c = &metrics_shared.circuits[i];
		if (!c->name[0])
			memcpy(c->name, server, len + 1);
		if (!strcmp(c->name, server)) {
			c->state = state;
			break;
		}
	}
	pthread_mutex_unlock(&metrics_shared.mu);
}

struct tool_series *metrics_tool_slot(struct block *b, const char *server, const char *tool)
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
		struct tool_series *t = &b->tools[i];
		if (!atomic_load_explicit(&t->used, memory_order_relaxed)) {
			/* Keep a slot free, so that a lookup of a new name always ends. */
			if (b->ntools >= TOOLS_MAX - 1)
				return NULL;
			memcpy(t->name, server, sl + 1);
			memcpy(t->name + sl + 1, tool, tl + 1);
			t->server_len = sl;
			b->ntools++;
			atomic_store_explicit(&t->used, true, memory_order_release);
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
	struct block *b = blk();
	struct tool_series *t = server && tool ? metrics_tool_slot(b, server, tool) : NULL;

	observe(t ? &t->h : &b->tools_other, metrics_request_bounds, ns);
}

void metrics_request_begin(void) { BUMP(blk()->in_flight, 1); }
void metrics_request_end(void) { BUMP(blk()->in_flight, -1); }
void metrics_session_opened(void) { BUMP(blk()->sessions, 1); }
void metrics_session_closed(void) { BUMP(blk()->sessions, -1); }
void metrics_connections(enum metrics_listener l, int delta) { BUMP(blk()->conns[l], delta); }
void metrics_connection_refused(enum metrics_listener l, enum metrics_refusal why)
{
	BUMP(blk()->refused[l][why], 1);
}
void metrics_http_refused(enum metrics_listener l, int status)
{
	BUMP(blk()->http_refused[l][status == 400 ? 0 : status == 413 ? 1 : status == 431 ? 2 : 3],
	     1);
}
void metrics_set_enforcer(struct enforcer *e) { metrics_shared.enforcer = e; }
struct enforcer *metrics_enforcer(void) { return metrics_shared.enforcer; }

void metrics_stage(enum metrics_stage stage, uint64_t ns)
{
	if ((unsigned)stage < METRICS_NSTAGES)
		observe(&blk()->stage[stage], metrics_stage_bounds, ns);
}
