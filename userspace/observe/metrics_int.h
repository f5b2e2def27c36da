/* metrics_int: what the counting (observe/metrics.c) and the scrape (metrics_render.c)
 * share: the label enums, a loop's block of counts, and the process's state. */
#ifndef WARDEN_METRICS_INT_H
#define WARDEN_METRICS_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "govern/keys.h"
#include "observe/metrics.h"

enum method {
	M_INITIALIZE, M_PING, M_TOOLS_LIST, M_TOOLS_CALL, M_RESOURCES_LIST, M_TEMPLATES_LIST,
	M_RESOURCES_READ, M_SUBSCRIBE, M_UNSUBSCRIBE, M_PROMPTS_LIST, M_PROMPTS_GET, M_COMPLETE,
	M_SET_LEVEL, M_OTHER, M_COUNT
};

enum decision { D_ALLOW, D_DENY, D_ERROR, D_COUNT };

/* Reason classes: what an operator alerts on, never free text (label cardinality stays fixed). */
enum reason {
	R_OK, R_TOOL_ERROR, R_UPSTREAM_ERROR, R_NOT_PERMITTED, R_RATE_LIMITED, R_OVER_BUDGET,
	R_INVALID_ARGUMENTS, R_UNAUTHENTICATED, R_UPSTREAM_FAILURE, R_UPSTREAM_TIMEOUT, R_INTERNAL,
	R_STORE_UNAVAILABLE, R_TOO_MANY_PENDING, R_TOOL_CHANGED, R_LOOP_DETECTED, R_CIRCUIT_OPEN,
	R_COUNT
};

#define MAX_BOUNDS 24            /* a histogram's bounds, +Inf included */

/* A loop's counts are written by that loop alone and read by the scrape, which may run on
 * another: a relaxed load and store (plain instructions on x86, no locked add), correct with
 * one writer. */
typedef _Atomic uint64_t counter;
typedef _Atomic int64_t gauge;
#define BUMP(x, v) atomic_store_explicit(&(x), atomic_load_explicit(&(x), memory_order_relaxed) + \
					 (v), memory_order_relaxed)
#define READ(x) atomic_load_explicit(&(x), memory_order_relaxed)

struct histogram {
	counter bucket[MAX_BOUNDS];     /* non-cumulative; the one after the last bound is +Inf */
	counter count, sum_ns;
};

#define SERVERS_MAX 256                 /* upstream names seen; later ones share "other" */
#define SERVER_NAME_SIZE 33             /* [a-z0-9-]{1,32} */

/* A slot of a table by name: its name is written once, before `used` is set (release), so a
 * scrape on another thread that sees it set (acquire) reads the whole name. */
struct server_errors {
	char name[SERVER_NAME_SIZE];
	_Atomic bool used;
	counter failure, timeout;
};

#define LLM_SERIES_MAX 1024             /* key x model pairs; later ones share key "other" */

struct llm_series {
	char key[KEYS_ID_SIZE];
	char model[160];
	_Atomic bool used;
	counter requests, input, output;
	gauge cost_micros;
};

/* Per-tool latency: one histogram per (server, tool) the catalogue routed a call to. Bounded:
 * once TOOLS_MAX series exist, further ones (and names too long for a label) share
 * {server="other",tool="other"}. */
#define TOOLS_MAX 1024
#define TOOL_LABEL_SIZE 97              /* "server/tool", at most 96 bytes */

struct tool_series {
	char name[TOOL_LABEL_SIZE];     /* server '\0' tool: split at the first NUL */
	size_t server_len;
	_Atomic bool used;
	struct histogram h;
};

/* One loop's counts (docs/architecture.md, "workers: N"): each loop thread counts into its
 * own block, with no lock and no shared cache line; a scrape adds the blocks up. Gauges are
 * deltas, so that they add up too. The main thread's block is `metrics_main_block`; another loop
 * thread gets one with metrics_loop_attach. */
struct block {
	struct llm_series llm[LLM_SERIES_MAX];   /* open addressing by key and model */
	struct tool_series tools[TOOLS_MAX];            /* open addressing by server and tool */
	struct histogram tools_other;
	size_t ntools;                                  /* the owner's */
	counter requests[M_COUNT][D_COUNT][R_COUNT];
	struct histogram gateway, upstream;
	struct histogram stage[METRICS_NSTAGES];
	struct server_errors servers[SERVERS_MAX];      /* open addressing by name */
	counter other_failure, other_timeout;
	gauge sessions, in_flight;
	counter loop_breaks;
	counter auth_workload;
	gauge conns[METRICS_NLISTENERS];
	counter refused[METRICS_NLISTENERS][METRICS_NREFUSALS];
	counter http_refused[METRICS_NLISTENERS][4];    /* 400, 413, 431, other */
	struct block *next;             /* in `blocks` */
	bool attached;                  /* a thread counts into it */
};

/* What is the process's, not a loop's: set on loop 0, read by the scrape. */
struct metrics_shared {
	pthread_mutex_t mu;             /* blocks; circuits */
	struct block *blocks;           /* other loops' blocks, kept once made: a loop that
					 * stops leaves its counts, and the next takes it up */
	struct circuit_state {
		char name[SERVER_NAME_SIZE];
		int state;              /* enum circuit_state */
	} circuits[SERVERS_MAX];
	struct enforcer *enforcer;
};

extern struct block metrics_main_block;        /* the main thread's */
extern struct metrics_shared metrics_shared;
extern const char *const metrics_method_names[M_COUNT];
extern const uint64_t metrics_request_bounds[], metrics_stage_bounds[];

/* The series of a name in b, made on first use (by b's own thread, or the scrape in its
 * sum); NULL once the table is full. */
struct llm_series *metrics_llm_slot(struct block *b, const char *key, const char *model);
struct server_errors *metrics_server_slot(struct block *b, const char *name);
struct tool_series *metrics_tool_slot(struct block *b, const char *server, const char *tool);
void metrics_llm_add(struct llm_series *s, uint64_t requests, uint64_t input, uint64_t output,
		     int64_t cost_micros);

#endif
