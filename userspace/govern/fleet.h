/* fleet: rate limits and budgets shared by every sidecar of a fleet, in Redis (docs/counters.md).
 *
 * With "counters": {"backend": "redis", ...} the gate admits a governed call with one Lua script
 * run in Redis (EVALSHA; loaded once per connection with SCRIPT LOAD, a NOSCRIPT answer is
 * retried with EVAL, which caches it again). The script reserves the call's cost in every
 * budget that applies and takes one token from every rate bucket, all or none, atomically
 * across any number of sidecars; a second script commits (spent += amount) or releases. The
 * reservation carries a deadline: one that a crashed sidecar never settles is given back by
 * the next reservation of that counter after the deadline.
 *
 * Keys: <prefix>{<scope>}:b:<period>[:<start>] (a hash: spent, reserved, r:<id> and d:<id>
 * per reservation, its cost and deadline; rolling windows s:<slot start> per slot), and <prefix>{key:<id>}:r:<level>[:<server>[/<tool>]] for rate
 * buckets. The braces are a Redis Cluster hash tag: one key's counters live on one slot.
 * Calendar periods put the period's start (unix s, UTC, computed by each sidecar the same way)
 * in the key name and expire a day after they end; rate buckets use Redis's clock (TIME) so
 * every sidecar refills them alike.
 *
 * Everything runs on the event loop with hiredis's async API and its libevent adapter:
 * commands are pipelined on one connection, nothing blocks. A command unanswered within
 * command_timeout_ms drops the connection (every pending command fails at once) and a new
 * one is made with backoff. While Redis is unreachable, reservations answer per
 * "on_unreachable": fail_closed refuses (-ENOTCONN: the gate's -32007 counters_unavailable),
 * local admits within a bounded allowance per key on this sidecar (local_allowance: money
 * and calls per outage). A charge that cannot reach Redis is written to the SQLite store
 * first, with the command that replays it (the fleet_pending table, one transaction: durable
 * before the call is answered), and replayed to Redis, in order, when it is back, also after a
 * restart of the sidecar (fleet_new loads the table). Every commit carries its charge's id
 * and the script records it (<prefix>{tag}:c:<id>, charge_id_ttl): a replay of a commit Redis
 * ran but whose reply was lost counts once.
 *
 * With Sentinel, the sidecar also listens on one sentinel for a failover: it leaves the old
 * master when the promotion begins and connects to the new one when the switch is announced
 * (docs/counters.md, "Sentinel").
 *
 * With a Redis Cluster ("cluster": seed nodes), one connection per master, commands routed by
 * their first key's hash slot, MOVED/ASK followed; a key in a team is reserved in two scripts,
 * the team's first (docs/counters.md, "Cluster"; fleet_cluster.c).
 *
 * The LLM route uses the same counters (fleet_reserve_sets: its request and token buckets in
 * namespaces of their own; fleet_debit: an answer's tokens taken after it).
 *
 * Config: "counters": {"backend": "sqlite"} (default) or {"backend": "redis",
 *   "url": "redis://[:password@]host:port[/db]" | "unix:/path/to/socket[?db=N]",
 *   "password_env": "NAME" | "password_file": "/path", "key_prefix": "mcpwarden:",
 *   "connect_timeout_ms": 1000, "command_timeout_ms": 1000, "reservation_ttl": "1h",
 *   "charge_id_ttl": "6h",
 *   "on_unreachable": "fail_closed" | "local",
 *   "local_allowance": {"spend": "1.00", "calls": 100},
 *   "sentinel": {"master": "name", "addrs": ["host:port", ...]},
 *   "cluster": ["host:port", ...]}  (url, sentinel and cluster exclude each other).
 * "tls": true is refused (Debian's hiredis 0.14 has no TLS): use a local TLS tunnel.
 */
#ifndef WARDEN_FLEET_H
#define WARDEN_FLEET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

#include "base/config.h"
#include "govern/budget.h"
#include "govern/ratelimit.h"
#include "store/store.h"

struct event_base;
struct fleet_config;
struct fleet;
struct fleet_resv;

#define FLEET_MAX_BUDGETS (2 * BUDGET_MAX_PER_SCOPE)
#define FLEET_REPLAY_MAX 100000          /* charges queued for Redis; more: no local admission */
#define FLEET_CHARGE_ID_TTL_MS (6 * 3600 * 1000ll)      /* charge_id_ttl's default */

/* Parse "counters" of root. *out NULL: the SQLite backend (absent or "sqlite"). Returns 0 or
 * -EINVAL (errs filled, with field paths). Reads password_file (blocking: config time). */
int fleet_config_parse(const cJSON *root, struct fleet_config **out, struct config_errors *errs);
void fleet_config_free(struct fleet_config *cfg);

/* Connect (asynchronously: returns at once; calls are refused or admitted locally until
 * Redis answers). st: where charges that cannot reach Redis are kept (may be NULL: tests);
 * the charges a previous run kept there are loaded first (blocking: start-up, like the
 * store's other loaders). */
int fleet_new(struct event_base *base, const struct fleet_config *cfg, struct store *st,
	      struct fleet **out);
/* Pending commands fail (their callbacks run, from here). */
void fleet_free(struct fleet *f);

/* One budget that applies to a call. */
struct fleet_budget {
	const char *scope;                /* "key:<id>" or "team:<name>" */
	const struct budget_spec *spec;
};

/* The result of a reservation. rc: 0 (*r to commit or release exactly once), -EDQUOT (bw
 * filled), -EAGAIN (rw filled; rate_set: which fleet_rates refused), -ENOTCONN (Redis unreachable under fail_closed, or the local
 * allowance is spent: *local says which), -EIO (Redis answered with an error). */
struct fleet_outcome {
	int rc;
	bool local;                       /* -ENOTCONN: refused by the local allowance */
	struct fleet_resv *r;
	struct budget_refusal bw;
	struct rate_refusal rw;
	size_t rate_set;
};
typedef void (*fleet_reserve_fn)(void *arg, struct fleet_outcome *o);

/* Reserve cost in every budget of b[0..nb) (scopes and specs copied) and take a token from each
 * bucket lim enables for key_id / server / tool. Returns 0: cb follows (possibly from here, when
 * Redis is known unreachable), or -ENOMEM/-EINVAL (cb not called). now: unix seconds. */
int fleet_reserve(struct fleet *f, const struct fleet_budget *b, size_t nb,
		  const struct rate_limits *lim, const char *key_id, const char *server,
		  const char *tool, int64_t cost, int64_t now, fleet_reserve_fn cb, void *arg);
/* One set of rate buckets: lim's levels for key_id / server / tool, named
 * <prefix>{key:<id>}:<ns>:<level>[:<server>[/<tool>]]. ns "r": a tool call's buckets;
 * "llm:requests" and "llm:tokens": the LLM route's (server the provider, tool the model). */
struct fleet_rates {
	const char *ns;
	const struct rate_limits *lim;
};
#define FLEET_MAX_RATE_SETS 2
/* fleet_reserve with up to FLEET_MAX_RATE_SETS sets of buckets (lim NULL: none). */
int fleet_reserve_sets(struct fleet *f, const struct fleet_budget *b, size_t nb,
		       const struct fleet_rates *rs, size_t nrs, const char *key_id,
		       const char *server, const char *tool, int64_t cost, int64_t now,
		       fleet_reserve_fn cb, void *arg);
/* Take n more tokens from every bucket of the set rs (usage learnt after the call: an LLM
 * answer's tokens); a bucket goes no lower than empty, as ratelimit_debit. Nothing keeps it
 * while Redis is unreachable (a rate limit is not a charge). cb (may be NULL) hears when Redis
 * has run it, always with 0: a debit never fails a call. Returns 0: cb follows; 1: nothing
 * sent (no bucket, Redis unreachable), cb not called; -EINVAL or -ENAMETOOLONG. */
int fleet_debit(struct fleet *f, const struct fleet_rates *rs, const char *key_id,
		const char *server, const char *tool, int64_t n, store_done_fn cb, void *arg);
/* Commit amount (>= 0) to the reservation's counters. Returns 0: cb(arg, err) follows once
 * Redis has it (or the sidecar's store has it for replay); 1: nothing to charge (cb not
 * called). The handle is consumed. */
int fleet_commit(struct fleet *f, struct fleet_resv *r, int64_t amount, store_done_fn cb,
		 void *arg);
void fleet_release(struct fleet *f, struct fleet_resv *r);

/* State for /readyz, /metrics and the logs. */
enum fleet_state { FLEET_CONNECTING, FLEET_UP, FLEET_DOWN };
struct fleet_stats {
	enum fleet_state state;
	bool fail_closed;
	uint64_t errors, reconnects, replayed, local_admits, duplicates;
	size_t replay_queue, replay_stored, inflight;
	char why[160];                    /* last error, "" when none */
};
void fleet_stats(const struct fleet *f, struct fleet_stats *out);
/* Ready unless Redis is unreachable under fail_closed (why filled). */
bool fleet_ready(const struct fleet *f, char *why, size_t len);
const char *fleet_state_name(enum fleet_state s);

/* The Prometheus families of the counters' backend (/metrics): state, replay queue, errors. */
struct evbuffer;
int fleet_metrics(const struct fleet *f, struct evbuffer *out);

/* Fleet-wide spend of one counter (scope, spec) at now: cb(arg, err, spent, reserved). */
typedef void (*fleet_usage_fn)(void *arg, int err, int64_t spent, int64_t reserved);
int fleet_usage(struct fleet *f, const char *scope, const struct budget_spec *spec, int64_t now,
		fleet_usage_fn cb, void *arg);

/* ---- key naming (exposed for tests and wardenctl's docs) ---- */

/* The counter key of (scope, spec) at now: "<prefix>{key:k1}:b:day:1767225600". */
int fleet_counter_key(const char *prefix, const char *scope, const struct budget_spec *spec,
		      int64_t now, char *buf, size_t len);
/* The rate bucket key of level for key_id (server/tool as the level needs). */
int fleet_bucket_key(const char *prefix, const char *key_id, enum rate_level level,
		     const char *server, const char *tool, char *buf, size_t len);
/* The same in namespace ns (struct fleet_rates): "<prefix>{key:k1}:<ns>:key". */
int fleet_bucket_key_ns(const char *prefix, const char *ns, const char *key_id,
			enum rate_level level, const char *server, const char *tool, char *buf,
			size_t len);
/* Seconds a counter key lives: calendar, until a day after its period ends; rolling, the
 * window and two slots past now, plus the reservation deadline. */
int64_t fleet_counter_ttl(const struct budget_spec *spec, int64_t now, int64_t resv_ttl);

#endif
