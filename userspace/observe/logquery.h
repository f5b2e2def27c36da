/* logquery: read-only queries over the log store (logs.db, docs/audit.md) for the admin
 * plane's /api/logs — on a reader thread with its own read-only SQLite connection, so the
 * event loop never touches SQLite.
 *
 * A query is queued (at most LOGQ_MAX_PENDING waiting; past it -EAGAIN, which the API answers
 * 503) and its result, a cJSON tree built on the reader thread, comes back to the loop through
 * an eventfd. SQL is built only from fixed fragments; every value is a bound parameter. The
 * file is opened at the first query (the log store creates it) and re-tried on the next one
 * while it is missing. A query runs at most LOGQ_TIME_LIMIT_MS.
 */
#ifndef WARDEN_LOGQUERY_H
#define WARDEN_LOGQUERY_H

#include <stdbool.h>
#include <stdint.h>
#include <cjson/cJSON.h>

struct event_base;
struct logquery;

#define LOGQ_MAX_PENDING 32
#define LOGQ_LIMIT_DEFAULT 50
#define LOGQ_LIMIT_MAX 500
#define LOGQ_TIME_LIMIT_MS 5000
#define LOGQ_MAX_BUCKETS 2000          /* stats: (until - since) / bucket */
#define LOGQ_TEXT_MAX 256              /* any one filter's text */
#define LOGQ_FOLLOW_MAX 200            /* logquery_follow: records per sidecar and call */

/* The filters of GET /api/logs; NULL / 0 = no filter. Strings are copied at submission. */
struct logq_filter {
	const char *key, *team, *server, *tool, *decision, *status, *type;
	const char *sidecar;            /* the shared store (logquery_new_pg) only */
	const char *q;                  /* free text over target, reason, error_message */
	int64_t since_ms, until_ms;     /* ts >= since, ts <= until */
	int64_t cursor;                 /* records with id < cursor */
	int limit;                      /* 1..LOGQ_LIMIT_MAX */
};

enum logq_group { LOGQ_BY_KEY, LOGQ_BY_TEAM, LOGQ_BY_TOOL, LOGQ_BY_SERVER };

/* On the loop thread: err 0 and result (the caller's to free), or err < 0 and NULL:
 * -ENOENT (no logs.db yet; for logquery_get: no such record), -ETIMEDOUT, -ECANCELED
 * (logquery_free), -ENOTCONN (the shared store is unreachable), -EIO. */
typedef void (*logq_done_fn)(void *arg, int err, cJSON *result);

int logquery_new(struct event_base *base, const char *path, struct logquery **out);
/* The same queries over the fleet's shared store on PostgreSQL (observe/logpg.h): records
 * carry "sidecar" and "seq", ids are the shared store's own. Connects at the first query and
 * again after a failure; -ENOENT while the schema is not there, -EIO while unreachable. */
struct logpg_options;
int logquery_new_pg(struct event_base *base, const struct logpg_options *o,
		    struct logquery **out);
/* true: the queries are over the shared store (the sidecar filter applies). */
bool logquery_fleet(const struct logquery *lq);
/* Cancels what is queued and stops the running query (their callbacks run now, with
 * -ECANCELED), then stops the thread. */
void logquery_free(struct logquery *lq);
/* true: free text uses fts5 (the records_fts table exists); false: LIKE, or not opened yet. */
bool logquery_fts(const struct logquery *lq);

/* {"records": [objects, newest first, each with "id"], "next_cursor": "<id>" | null} */
int logquery_page(struct logquery *lq, const struct logq_filter *f, logq_done_fn cb, void *arg);
/* The record object with "id". */
int logquery_get(struct logquery *lq, int64_t id, logq_done_fn cb, void *arg);
/* The fleet's live tail, over the shared store only (else -ENOTSUP): the records each sidecar
 * shipped after the seq that heads gives it (heads: a JSON object {"<sidecar>": seq} or NULL; a
 * sidecar not in it starts at its current head), oldest first, at most LOGQ_FOLLOW_MAX per
 * sidecar: {"records": [objects with "id", "sidecar"], "heads": {"<sidecar>": seq, ...}}, the
 * heads to give next time. A sidecar's records arrive with its chain's head in one
 * transaction (observe/logship.c), so following each chain by seq misses none. */
int logquery_follow(struct logquery *lq, const char *heads, logq_done_fn cb, void *arg);
/* {"buckets": [{"t", "group", "calls", "denied", "errors", "cost_micros", "p50_ms",
 * "p99_ms"}]} over the decision records of f (its since/until required), bucket_ms wide. */
int logquery_stats(struct logquery *lq, const struct logq_filter *f, enum logq_group by,
		   int64_t bucket_ms, logq_done_fn cb, void *arg);

#endif
