/* ratelimit: token buckets per key, per key x server and per key x tool.
 *
 * A bucket holds at most `burst` tokens and refills at `requests` per `per` (second, minute,
 * hour, day). A call takes one token from each bucket that applies (key, key x server,
 * key x tool), all or nothing: when one bucket is empty nothing is taken from the others.
 * Arithmetic is integer only: one token is `period_ns` units and a bucket gains `requests`
 * units per elapsed nanosecond, so refill and retry-after are exact. Time is a monotonic
 * nanosecond clock passed in by the caller.
 *
 * Buckets live in one hash table (O(1) per check) with a bounded number of entries. A bucket
 * that has refilled to its burst carries no information (it equals a fresh one), so such idle
 * buckets are evicted, oldest first, a couple per check; when the table is full of buckets
 * still refilling, a new bucket is refused rather than an old one forgotten (forgetting would
 * hand out tokens: fail closed).
 *
 * Which limits apply to a key comes from the "rate_limits" config section (docs/budgets.md):
 *   "rate_limits": { "default": {...}, "team:<t>": {...}, "policy:<p>": {...}, "key:<id>": {...} }
 * each value {"key": L, "server": L, "tool": L} with L = {"requests": n, "per": "minute",
 * "burst": b} or "unlimited". Per level, the most specific selector that sets it wins:
 * key > policy > team > default. Rate state is in memory only: a restart starts full buckets.
 */
#ifndef WARDEN_RATELIMIT_H
#define WARDEN_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

#include "base/config.h"

#define RATELIMIT_MAX_BUCKETS_DEFAULT 262144u

enum rate_level { RATE_KEY, RATE_SERVER, RATE_TOOL, RATE_NLEVELS };

struct rate_spec {
	uint32_t requests;      /* tokens per period; 0: no limit at this level */
	uint32_t burst;         /* bucket capacity in tokens (>= 1) */
	uint64_t period_ns;     /* 1 s, 1 min, 1 h or 1 day in ns */
};

struct rate_limits {
	struct rate_spec level[RATE_NLEVELS];
};

/* Who a check is for: key id, and its team and policy (NULL or "": none). */
struct rate_subject {
	const char *key_id;
	const char *team;
	const char *policy;
};

struct rate_refusal {
	enum rate_level level;  /* the limit that refused (the one that frees up last) */
	bool table_full;        /* refused because the bucket table is full of active buckets */
	uint64_t retry_after_ms;/* rounded up: a retry after this many ms succeeds (if alone) */
	struct rate_spec spec;  /* that level's limit, for the error message */
};

struct ratelimit_config;
struct ratelimit;

/* Parse the "rate_limits" section of root (absent: no limits). Errors carry field paths
 * ("rate_limits.key:k1.tool.per: ..."). Returns 0 or -EINVAL (errs filled) or -ENOMEM. */
int ratelimit_config_parse(const cJSON *root, struct ratelimit_config **out,
			   struct config_errors *errs);
/* The same syntax in another section (sec may be NULL: no limits); where names it in errors
 * ("llm.rate_limits"). */
int ratelimit_config_parse_section(const cJSON *sec, const char *where,
				   struct ratelimit_config **out, struct config_errors *errs);
void ratelimit_config_free(struct ratelimit_config *cfg);
/* The effective limits for a subject (per level, key > policy > team > default). */
void ratelimit_config_resolve(const struct ratelimit_config *cfg, const struct rate_subject *who,
			      struct rate_limits *out);

/* max_buckets 0: RATELIMIT_MAX_BUCKETS_DEFAULT; at least 3 (one check's buckets). A
 * limiter may be used from several threads (each loop of workers: N): every check is one
 * step under its lock. */
int ratelimit_new(size_t max_buckets, struct ratelimit **out);
void ratelimit_free(struct ratelimit *rl);

/* Take one token from each bucket that `lim` enables for (key), (key, server), (key, server,
 * tool). Returns 0 (taken from all), -EAGAIN (refused: nothing taken, *why filled) or -ENOMEM.
 * server/tool may be NULL when the call has none (the levels needing them are skipped). */
int ratelimit_check(struct ratelimit *rl, const struct rate_limits *lim, const char *key_id,
		    const char *server, const char *tool, uint64_t now_ns,
		    struct rate_refusal *why);
/* Take up to n more tokens from each bucket lim enables, never refusing and never below
 * empty: usage known only after the fact (an LLM answer's tokens), charged to the buckets the
 * next check reads. */
void ratelimit_debit(struct ratelimit *rl, const struct rate_limits *lim, const char *key_id,
		     const char *server, const char *tool, uint32_t n, uint64_t now_ns);
/* Same, with the limits resolved from cfg for who. */
int ratelimit_check_subject(struct ratelimit *rl, const struct ratelimit_config *cfg,
			    const struct rate_subject *who, const char *server, const char *tool,
			    uint64_t now_ns, struct rate_refusal *why);

/* The refusal as the JSON-RPC error's data: {"limit": "tool", "requests": 10, "per": "minute",
 * "burst": 10, "retry_after_ms": 5400} (+ "table_full": true when that was the cause). */
cJSON *ratelimit_refusal_json(const struct rate_refusal *why);

/* Number of buckets currently held (tests, metrics). */
size_t ratelimit_bucket_count(struct ratelimit *rl);
const char *ratelimit_level_name(enum rate_level level);   /* "key", "server", "tool" */
const char *ratelimit_per_name(uint64_t period_ns);        /* "second", ... */

#endif
