/* logquery_int: between the query thread (logquery.c) and its PostgreSQL backend
 * (logquery_pg.c). Not an interface for other modules. */
#ifndef WARDEN_LOGQUERY_INT_H
#define WARDEN_LOGQUERY_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "observe/logpg.h"
#include "observe/logquery.h"

enum job_kind { J_PAGE, J_GET, J_STATS, J_FOLLOW };

struct logq_pg;

/* A copy of o's connection settings (nothing is contacted yet). */
/* LIKE pattern: the text anywhere, with % _ \ taken literally (both backends). Caller frees. */
char *logq_like_pattern(const char *text);
/* The filters of f that match one column exactly, for both backends: fn(q, column, value) for
 * each that is set, in a fixed order (tool matches "target"); sidecar only when fleet. */
void logq_filter_columns(const struct logq_filter *f, bool fleet,
			 void (*fn)(void *q, const char *col, const char *v), void *q);

/* Free text over a store of schema version 4 (logquery_text.c): the targets that q's fts5
 * phrase matches (targets_fts), and a walk down the matching reasons and errors beside the
 * blocks, so that a page reads only the blocks that may hold a match. */
#define LOGQ_TEXT_TARGETS 64            /* more matches: no block is skipped for them */
struct logq_text {
	char *names[LOGQ_TEXT_TARGETS];
	int n;                          /* 0: q matches no target (records_fts alone answers) */
	bool many, broken;
	sqlite3_stmt *hits;             /* records_fts's matches, id descending */
	int64_t hit;                    /* the last read; -1: none left */
};
/* Fill t for phrase (the fts5 query) and ids up to hi. 0 or -EIO. */
int logq_text_open(sqlite3 *db, const char *phrase, int64_t hi, struct logq_text *t);
/* Whether block [lo, hi] (its bloom; NULL: not summarized) may hold a record q matches.
 * Blocks are asked from the newest down. */
bool logq_text_may_be_in(struct logq_text *t, const uint8_t *bloom, int64_t lo, int64_t hi);
void logq_text_close(struct logq_text *t);

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
