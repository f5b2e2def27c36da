/* logquery_int: between the query thread (logquery.c) and its PostgreSQL backend
 * (logquery_pg.c). Not an interface for other modules. */
#ifndef WARDEN_LOGQUERY_INT_H
#define WARDEN_LOGQUERY_INT_H

#include <stdint.h>
#include <cjson/cJSON.h>

#include "observe/logpg.h"
#include "observe/logquery.h"

enum job_kind { J_PAGE, J_GET, J_STATS, J_FOLLOW };

struct logq_pg;

/* A copy of o's connection settings (nothing is contacted yet). */
/* LIKE pattern: the text anywhere, with % _ \ taken literally (both backends). Caller frees. */
char *logq_like_pattern(const char *text);

struct logq_pg *logq_pg_new(const struct logpg_options *o);
void logq_pg_free(struct logq_pg *p);
/* From any thread: ask PostgreSQL to stop the running query (logquery_free), which then ends
 * with an error at once instead of at its time limit. */
void logq_pg_cancel(struct logq_pg *p);
/* Run one query on the reader thread: 0 and *out (the same shapes as the SQLite queries,
 * records with "sidecar"), or -ENOENT (no schema yet) / -ETIMEDOUT / -ENOTCONN (unreachable)
 * / -EIO. */
int logq_pg_run(struct logq_pg *p, enum job_kind kind, const struct logq_filter *f, int64_t id,
		enum logq_group by, int64_t bucket_ms, const char *heads, cJSON **out);

#endif
