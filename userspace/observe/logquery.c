/* logquery: the reader thread over logs.db and the SQL it runs. */
#include "observe/logquery.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <event2/event.h>
#include <sqlite3.h>

#include "base/alloc.h"
#include "base/doorbell.h"
#include "base/json_get.h"
#include "base/list.h"
#include "base/log.h"
#include "base/thread.h"
#include "observe/logblock.h"
#include "observe/logquery_int.h"
#include "store/db.h"

#define NSTR 9                          /* the string filters of struct logq_filter */

struct job {
	struct list_head link;          /* in lq->queue, then lq->done */
	enum job_kind kind;
	struct logq_filter f;           /* its strings point into str[] */
	char *str[NSTR];
	int64_t id;                     /* J_GET */
	enum logq_group by;             /* J_STATS */
	int64_t bucket_ms;
	char *heads;                    /* J_FOLLOW */
	logq_done_fn cb;
	void *arg;
	int err;
	cJSON *result;
};

struct logquery {
	char *path;
	sqlite3 *db;                    /* reader thread only */
	atomic_bool fts;
	bool blocks;                    /* the file has block summaries (schema version 3) */
	bool targets;                   /* targets in their own fts5 table (version 4) */
	atomic_bool cancel;             /* logquery_free: the running query stops at once */
	pthread_mutex_t lock;           /* queue, done, stopping, nqueued */
	pthread_cond_t wake;
	struct list_head queue, done;
	size_t nqueued;
	bool stopping;
	pthread_t th;
	bool th_up;
	struct doorbell bell;   /* the reader's: done holds answers */
	struct logq_pg *pg;     /* the shared store instead of path (logquery_pg.c) */
};

/* ---- the SQL, built from fixed fragments with bound values ---- */

#define MAX_BINDS 24

struct sql {
	char text[2048];
	size_t n;
	int nb;
	bool is_text[MAX_BINDS];
	const char *s[MAX_BINDS];
	int64_t i[MAX_BINDS];
	bool overflow;
	int range;                      /* Q_FTS_TARGETS_BLOCK: the bind of records_fts's id range */
};

/* How q is asked: a store without fts5 (LIKE); version 3's records_fts over target, reason
 * and error_message; version 4's over reason and error_message, with the targets q matches
 * (logquery_text.c) given as a subquery, for the whole table or a block at a time. */
enum qmode { Q_LIKE, Q_FTS_ALL, Q_FTS, Q_FTS_TARGETS, Q_FTS_TARGETS_BLOCK };

static void sql_add(struct sql *q, const char *frag)
{
	size_t l = strlen(frag);

	if (q->n + l >= sizeof(q->text)) {
		q->overflow = true;
		return;
	}
	memcpy(q->text + q->n, frag, l + 1);
	q->n += l;
}

static void bind_text(struct sql *q, const char *s)
{
	if (q->nb >= MAX_BINDS) {
		q->overflow = true;
		return;
	}
	q->is_text[q->nb] = true;
	q->s[q->nb++] = s;
}

static void bind_int(struct sql *q, int64_t v)
{
	if (q->nb >= MAX_BINDS) {
		q->overflow = true;
		return;
	}
	q->is_text[q->nb] = false;
	q->i[q->nb++] = v;
}

/* The fts5 query of free text: one phrase (so nothing the user types is syntax), as a
 * prefix. Caller frees. */
static char *fts_phrase(const char *text)
{
	size_t n = strlen(text);
	char *out = xmalloc(2 * n + 4), *p = out;

	*p++ = '"';
	for (const char *c = text; *c; c++) {
		if (*c == '"')
			*p++ = '"';
		*p++ = *c;
	}
	*p++ = '"';
	*p++ = '*';
	*p = '\0';
	return out;
}

/* (logquery_int.h) */
char *logq_like_pattern(const char *text)
{
	size_t n = strlen(text);
	char *out = xmalloc(2 * n + 3), *p = out;

	*p++ = '%';
	for (const char *c = text; *c; c++) {
		if (*c == '%' || *c == '_' || *c == '\\')
			*p++ = '\\';
		*p++ = *c;
	}
	*p++ = '%';
	*p = '\0';
	return out;
}

/* (logquery_int.h) */
void logq_filter_columns(const struct logq_filter *f, bool fleet,
			 void (*fn)(void *q, const char *col, const char *v), void *q)
{
	static const struct { size_t off; const char *col; bool fleet; } eq[] = {
		{ offsetof(struct logq_filter, key), "key", false },
		{ offsetof(struct logq_filter, team), "team", false },
		{ offsetof(struct logq_filter, server), "server", false },
		{ offsetof(struct logq_filter, tool), "target", false },
		{ offsetof(struct logq_filter, decision), "decision", false },
		{ offsetof(struct logq_filter, status), "status", false },
		{ offsetof(struct logq_filter, type), "type", false },
		{ offsetof(struct logq_filter, sidecar), "sidecar", true },
	};

	for (size_t k = 0; k < sizeof(eq) / sizeof(eq[0]); k++) {
		const char *v = *(const char *const *)((const char *)f + eq[k].off);
		if (v && (fleet || !eq[k].fleet))
			fn(q, eq[k].col, v);
	}
}

static void sql_eq(void *arg, const char *col, const char *v)
{
	struct sql *q = arg;

	sql_add(q, " AND ");
	sql_add(q, col);
	sql_add(q, " = ?");
	bind_text(q, v);
}

/* " AND ..." for every filter of f; *owned receives a string the binds point into. */
static void sql_where(struct sql *q, const struct logq_filter *f, enum qmode mode,
		      char **owned)
{
	*owned = NULL;
	logq_filter_columns(f, false, sql_eq, q);
	/* The partial indexes' conditions, literally: SQLite uses an index on (decision, id)
	 * WHERE decision <> 'allow' only for a query that says so (observe/logstore_db.c). */
	if (f->decision && strcmp(f->decision, "allow"))
		sql_add(q, " AND decision <> 'allow'");
	if (f->status && strcmp(f->status, "ok"))
		sql_add(q, " AND status <> 'ok'");
	if (f->since_ms) {
		sql_add(q, " AND ts >= ?");
		bind_int(q, f->since_ms);
	}
	if (f->until_ms) {
		sql_add(q, " AND ts <= ?");
		bind_int(q, f->until_ms);
	}
	if (f->cursor) {
		sql_add(q, " AND id < ?");
		bind_int(q, f->cursor);
	}
	if (f->q) {
		if (mode == Q_FTS_ALL || mode == Q_FTS) {
			*owned = fts_phrase(f->q);
			sql_add(q, " AND id IN (SELECT rowid FROM records_fts WHERE records_fts MATCH ?)");
			bind_text(q, *owned);
		} else if (mode == Q_FTS_TARGETS || mode == Q_FTS_TARGETS_BLOCK) {
			*owned = fts_phrase(f->q);
			sql_add(q, " AND (id IN (SELECT rowid FROM records_fts WHERE records_fts MATCH ?");
			bind_text(q, *owned);
			if (mode == Q_FTS_TARGETS_BLOCK) {
				sql_add(q, " AND rowid BETWEEN ? AND ?");
				q->range = q->nb + 1;
				bind_int(q, 0);
				bind_int(q, 0);
			}
			sql_add(q, ") OR target IN (SELECT name FROM targets_fts WHERE targets_fts "
				"MATCH ?))");
			bind_text(q, *owned);
		} else {
			*owned = logq_like_pattern(f->q);
			sql_add(q, " AND (target LIKE ? ESCAPE '\\' OR reason LIKE ? ESCAPE '\\'"
				" OR error_message LIKE ? ESCAPE '\\')");
			bind_text(q, *owned);
			bind_text(q, *owned);
			bind_text(q, *owned);
		}
	}
}

static int db_errno(sqlite3 *db, int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE:
		return 0;
	case SQLITE_INTERRUPT:
		return -ETIMEDOUT;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_CANTOPEN:
		return -ENOENT;
	case SQLITE_NOMEM:
		return -ENOMEM;
	}
	log_warn("logquery: %s", sqlite3_errmsg(db));
	return -EIO;
}

static int sql_prepare(sqlite3 *db, struct sql *q, sqlite3_stmt **out)
{
	int rc;

	*out = NULL;
	if (q->overflow)
		return -E2BIG;
	rc = sqlite3_prepare_v2(db, q->text, -1, out, NULL);
	if (rc != SQLITE_OK)
		return db_errno(db, rc);
	for (int k = 0; k < q->nb && rc == SQLITE_OK; k++)
		rc = q->is_text[k] ? sqlite3_bind_text(*out, k + 1, q->s[k], -1, SQLITE_STATIC)
				   : sqlite3_bind_int64(*out, k + 1, q->i[k]);
	if (rc != SQLITE_OK) {
		sqlite3_finalize(*out);
		*out = NULL;
		return db_errno(db, rc);
	}
	return 0;
}

/* The record's JSON with its id; a record whose text does not parse is given as text. */
static cJSON *record_json(sqlite3_stmt *s)
{
	int64_t id = sqlite3_column_int64(s, 0);
	const char *text = (const char *)sqlite3_column_text(s, 1);
	cJSON *o = text ? cJSON_Parse(text) : NULL;

	if (!cJSON_IsObject(o)) {
		cJSON_Delete(o);
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "record_text", text ? text : "");
	}
	cJSON_DeleteItemFromObjectCaseSensitive(o, "id");
	cJSON_AddNumberToObject(o, "id", (double)id);
	return o;
}

/* ---- pages by block (version 3: no index on key, team, server, target or ts) ---- */

/* Whether a block's summary leaves room for a record that f takes. */
static bool block_may_match(sqlite3_stmt *sum, const struct logq_filter *f)
{
	const uint8_t *bloom = sqlite3_column_blob(sum, 3);

	if ((f->since_ms && sqlite3_column_int64(sum, 2) < f->since_ms) ||
	    (f->until_ms && sqlite3_column_int64(sum, 1) > f->until_ms))
		return false;
	if (!bloom || sqlite3_column_bytes(sum, 3) != LOGBLOCK_BLOOM_BYTES)
		return true;
	return !((f->key && !logblock_may_have(bloom, LOGBLOCK_KEY, f->key)) ||
		 (f->team && !logblock_may_have(bloom, LOGBLOCK_TEAM, f->team)) ||
		 (f->server && !logblock_may_have(bloom, LOGBLOCK_SERVER, f->server)) ||
		 (f->tool && !logblock_may_have(bloom, LOGBLOCK_TARGET, f->tool)));
}

/* With q, the targets it matches (t->n) need the blocks: there is no index on target. */
static bool by_blocks(const struct logquery *lq, const struct logq_filter *f,
		      const struct logq_text *t)
{
	if (f->q)
		return lq->blocks && t->n;
	return lq->blocks && (f->key || f->team || f->server || f->tool || f->since_ms ||
			      f->until_ms);
}

static enum qmode qmode_of(const struct logquery *lq, const struct logq_text *t, bool blocks)
{
	if (!atomic_load(&lq->fts))
		return Q_LIKE;
	if (!lq->targets)
		return Q_FTS_ALL;
	return !t->n ? Q_FTS : blocks ? Q_FTS_TARGETS_BLOCK : Q_FTS_TARGETS;
}

/* The targets q matches, in a store of version 4 (t->n 0 otherwise). */
static int text_open(struct logquery *lq, const struct logq_filter *f, struct logq_text *t)
{
	char *phrase;
	int rc;

	memset(t, 0, sizeof(*t));
	if (!f->q || !lq->targets || !atomic_load(&lq->fts))
		return 0;
	phrase = fts_phrase(f->q);
	rc = logq_text_open(lq->db, phrase, f->cursor ? f->cursor - 1 : INT64_MAX, t);
	free(phrase);
	return rc;
}

static int64_t one_int(sqlite3 *db, const char *sql, int *rc)
{
	sqlite3_stmt *s = NULL;
	int64_t v = 0;

	*rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
	if (*rc == SQLITE_OK && (*rc = sqlite3_step(s)) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	*rc = *rc == SQLITE_ROW || *rc == SQLITE_DONE ? 0 : db_errno(db, *rc);
	sqlite3_finalize(s);
	return v;
}

/* The ids records holds now, [*lo, *hi] (1 and 0 when it is empty). Two statements: each is
 * one look at the index, which min() and max() in one would not be (a scan). */
static int id_span(sqlite3 *db, int64_t *lo, int64_t *hi)
{
	int rc;

	*hi = one_int(db, "SELECT COALESCE(max(id), 0) FROM records", &rc);
	if (!rc)
		*lo = one_int(db, "SELECT COALESCE(min(id), 1) FROM records", &rc);
	return rc;
}

/* The block summaries from block blk on: down to the oldest (down), else up to the newest. */
static int summaries_from(sqlite3 *db, int64_t blk, bool down, sqlite3_stmt **out)
{
	int rc = sqlite3_prepare_v2(db, down ? "SELECT blk, min_ts, max_ts, bloom FROM blocks "
					       "WHERE blk <= ?1 ORDER BY blk DESC"
					     : "SELECT blk, min_ts, max_ts, bloom FROM blocks "
					       "WHERE blk >= ?1 ORDER BY blk", -1, out, NULL);

	if (rc != SQLITE_OK)
		return db_errno(db, rc);
	sqlite3_bind_int64(*out, 1, blk);
	return 0;
}

/* Walk the blocks from the newest (below the cursor) to the oldest; a block whose summary
 * rules the filter out is skipped, a block without one (written by another program) is
 * looked at. The rows of a block are read by id: the query (q, with "AND id BETWEEN ? AND ?
 * ORDER BY id DESC LIMIT ?" last) runs once per block that may match. Adds to arr up to
 * want rows, counted in *n. */
static int walk_blocks(struct logquery *lq, struct sql *q, sqlite3_stmt *s,
		       const struct logq_filter *f, struct logq_text *t, cJSON *arr, int want,
		       int *n)
{
	sqlite3_stmt *sum = NULL;
	int64_t lo = 1, hi = 0, blk;
	int rc, src;

	if ((rc = id_span(lq->db, &lo, &hi)))
		return rc;
	if (f->cursor && f->cursor - 1 < hi)
		hi = f->cursor - 1;
	if (hi < lo)
		return 0;
	if ((rc = summaries_from(lq->db, logblock_of(hi), true, &sum)))
		return rc;
	src = sqlite3_step(sum);
	for (blk = logblock_of(hi); blk >= logblock_of(lo) && *n < want; blk--) {
		int64_t b_lo = blk << LOGBLOCK_SHIFT, b_hi = ((blk + 1) << LOGBLOCK_SHIFT) - 1;
		bool summed;

		while (src == SQLITE_ROW && sqlite3_column_int64(sum, 0) > blk)
			src = sqlite3_step(sum);
		summed = src == SQLITE_ROW && sqlite3_column_int64(sum, 0) == blk;
		if (summed && !block_may_match(sum, f))
			continue;
		if (src != SQLITE_ROW && src != SQLITE_DONE)
			break;
		if (hi < b_hi)
			b_hi = hi;
		if (t && t->n && !logq_text_may_be_in(t, summed && sqlite3_column_bytes(sum, 3) ==
						      LOGBLOCK_BLOOM_BYTES ? sqlite3_column_blob(sum, 3)
						      : NULL, b_lo, b_hi))
			continue;
		if (q->range) {
			sqlite3_bind_int64(s, q->range, b_lo);
			sqlite3_bind_int64(s, q->range + 1, b_hi);
		}
		sqlite3_bind_int64(s, q->nb - 2, b_lo);
		sqlite3_bind_int64(s, q->nb - 1, b_hi);
		sqlite3_bind_int64(s, q->nb, want - *n);
		while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
			cJSON_AddItemToArray(arr, record_json(s));
			(*n)++;
		}
		sqlite3_reset(s);
		if (rc != SQLITE_DONE) {
			src = rc;
			break;
		}
	}
	sqlite3_finalize(sum);
	return src == SQLITE_ROW || src == SQLITE_DONE ? 0 : db_errno(lq->db, src);
}

/* The ids a time window can hold, from the summaries: the first and last blocks whose time
 * range meets [since, until] (or that have no summary). *lo > *hi: none. */
static int window_ids(struct logquery *lq, const struct logq_filter *f, int64_t *lo,
		      int64_t *hi)
{
	sqlite3_stmt *sum = NULL;
	int64_t min_id = 1, max_id = 0, expect, first = -1, lastb = -1;
	int rc;

	if ((rc = id_span(lq->db, &min_id, &max_id)))
		return rc;
	if ((rc = summaries_from(lq->db, logblock_of(min_id), false, &sum)))
		return rc;
	expect = logblock_of(min_id);
	while ((rc = sqlite3_step(sum)) == SQLITE_ROW) {
		int64_t blk = sqlite3_column_int64(sum, 0);
		if (blk > logblock_of(max_id))
			break;
		if (blk > expect) {             /* blocks without a summary: they may */
			if (first < 0)
				first = expect;
			lastb = blk - 1;
		}
		if (block_may_match(sum, f)) {
			if (first < 0)
				first = blk;
			lastb = blk;
		}
		expect = blk + 1;
	}
	sqlite3_finalize(sum);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_errno(lq->db, rc);
	if (expect <= logblock_of(max_id)) {
		if (first < 0)
			first = expect;
		lastb = logblock_of(max_id);
	}
	*lo = first < 0 ? 1 : first << LOGBLOCK_SHIFT;
	*hi = first < 0 ? 0 : ((lastb + 1) << LOGBLOCK_SHIFT) - 1;
	return 0;
}

static int run_page(struct logquery *lq, struct job *j)
{
	struct sql q = { 0 };
	struct logq_text t;
	sqlite3_stmt *s = NULL;
	char *owned = NULL;
	int rc, n = 0;
	int64_t last;
	bool blocks;
	cJSON *out = NULL, *arr;

	if ((rc = text_open(lq, &j->f, &t)))
		return rc;
	blocks = by_blocks(lq, &j->f, &t);
	sql_add(&q, "SELECT id, record FROM records WHERE 1");
	sql_where(&q, &j->f, qmode_of(lq, &t, blocks), &owned);
	if (blocks) {
		sql_add(&q, " AND id BETWEEN ? AND ?");
		bind_int(&q, 0);
		bind_int(&q, 0);
	}
	sql_add(&q, " ORDER BY id DESC LIMIT ?");
	bind_int(&q, j->f.limit + 1);
	rc = sql_prepare(lq->db, &q, &s);
	if (rc)
		goto out;
	out = cJSON_CreateObject();
	arr = cJSON_AddArrayToObject(out, "records");
	if (blocks) {
		rc = walk_blocks(lq, &q, s, &j->f, &t, arr, j->f.limit + 1, &n);
	} else {
		while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
			cJSON_AddItemToArray(arr, record_json(s));
			n++;
		}
		rc = rc == SQLITE_DONE ? 0 : db_errno(lq->db, rc);
	}
	if (rc)
		goto out;
	if (n > j->f.limit) {
		/* One row more than the page says there is a next: it goes, the cursor is the
		 * page's last. */
		char buf[24];
		cJSON_DeleteItemFromArray(arr, n - 1);
		last = (int64_t)cJSON_GetNumberValue(json_get(
			cJSON_GetArrayItem(arr, n - 2), "id"));
		snprintf(buf, sizeof(buf), "%" PRId64, last);
		cJSON_AddStringToObject(out, "next_cursor", buf);
	} else {
		cJSON_AddNullToObject(out, "next_cursor");
	}
	j->result = out;
	out = NULL;
out:
	cJSON_Delete(out);
	sqlite3_finalize(s);
	free(owned);
	logq_text_close(&t);
	return rc;
}

static int run_get(struct logquery *lq, struct job *j)
{
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(lq->db, "SELECT id, record FROM records WHERE id = ?", -1, &s,
				    NULL);

	if (rc != SQLITE_OK)
		return db_errno(lq->db, rc);
	sqlite3_bind_int64(s, 1, j->id);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		j->result = record_json(s);
		rc = 0;
	} else {
		rc = rc == SQLITE_DONE ? -ENOENT : db_errno(lq->db, rc);
	}
	sqlite3_finalize(s);
	return rc;
}

/* One bucket of the stats being gathered: the latencies of its calls, sorted by the query. */
struct acc {
	int64_t t;
	char *group;
	int64_t calls, denied, errors, cost;
	int64_t *lat;
	size_t nlat, cap;
};

static double pct_ms(const struct acc *a, int p)
{
	size_t idx;

	if (!a->nlat)
		return 0;
	idx = (a->nlat * (size_t)p + 99) / 100;  /* nearest rank */
	idx = idx ? idx - 1 : 0;
	return (double)a->lat[idx] / 1000.0;
}

static void acc_flush(struct acc *a, cJSON *arr)
{
	cJSON *o;

	if (!a->group)
		return;
	o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "t", (double)a->t);
	cJSON_AddStringToObject(o, "group", a->group);
	cJSON_AddNumberToObject(o, "calls", (double)a->calls);
	cJSON_AddNumberToObject(o, "denied", (double)a->denied);
	cJSON_AddNumberToObject(o, "errors", (double)a->errors);
	cJSON_AddNumberToObject(o, "cost_micros", (double)a->cost);
	cJSON_AddNumberToObject(o, "p50_ms", pct_ms(a, 50));
	cJSON_AddNumberToObject(o, "p99_ms", pct_ms(a, 99));
	cJSON_AddItemToArray(arr, o);
	free(a->group);
	a->group = NULL;
	a->calls = a->denied = a->errors = a->cost = 0;
	a->nlat = 0;
}

static int run_stats(struct logquery *lq, struct job *j)
{
	static const char *const cols[] = { "key", "team", "target", "server" };
	struct sql q = { 0 };
	struct logq_text text;
	sqlite3_stmt *s = NULL;
	struct acc a = { 0 };
	char *owned = NULL, sel[160];
	int rc;
	cJSON *out, *arr;

	if ((rc = text_open(lq, &j->f, &text)))
		return rc;

	snprintf(sel, sizeof(sel), "SELECT (ts / ?) * ?, COALESCE(%s, ''), decision, status, "
		 "COALESCE(cost_micros, 0), latency_us FROM records WHERE type = 'decision'",
		 cols[j->by]);
	sql_add(&q, sel);
	bind_int(&q, j->bucket_ms);
	bind_int(&q, j->bucket_ms);
	sql_where(&q, &j->f, qmode_of(lq, &text, false), &owned);
	if (lq->blocks) {
		int64_t lo = 1, hi = 0;
		if ((rc = window_ids(lq, &j->f, &lo, &hi)))
			goto out;
		sql_add(&q, " AND id BETWEEN ? AND ?");
		bind_int(&q, lo);
		bind_int(&q, hi);
	}
	sql_add(&q, " ORDER BY 1, 2, 6");
	rc = sql_prepare(lq->db, &q, &s);
	if (rc)
		goto out;
	out = cJSON_CreateObject();
	arr = cJSON_AddArrayToObject(out, "buckets");
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		int64_t t = sqlite3_column_int64(s, 0);
		const char *g = (const char *)sqlite3_column_text(s, 1);
		const char *dec = (const char *)sqlite3_column_text(s, 2);
		const char *st = (const char *)sqlite3_column_text(s, 3);

		if (!g)
			g = "";
		if (!a.group || a.t != t || strcmp(a.group, g)) {
			acc_flush(&a, arr);
			a.t = t;
			a.group = xstrdup(g);
		}
		a.calls++;
		if (dec && !strcmp(dec, "deny"))
			a.denied++;
		else if ((dec && !strcmp(dec, "error")) ||
			 (st && (!strcmp(st, "error") || !strcmp(st, "tool_error"))))
			a.errors++;
		a.cost += sqlite3_column_int64(s, 4);
		if (sqlite3_column_type(s, 5) != SQLITE_NULL) {
			a.lat = xgrow(a.lat, a.nlat, &a.cap, sizeof(*a.lat), 256);
			a.lat[a.nlat++] = sqlite3_column_int64(s, 5);
		}
	}
	acc_flush(&a, arr);
	if (rc != SQLITE_DONE) {
		rc = db_errno(lq->db, rc);
		cJSON_Delete(out);
		goto out;
	}
	rc = 0;
	j->result = out;
out:
	free(a.group);
	free(a.lat);
	sqlite3_finalize(s);
	free(owned);
	logq_text_close(&text);
	return rc;
}

/* ---- the reader thread ---- */

struct deadline {
	struct timespec until;
	atomic_bool *cancel;
};

static int past_deadline(void *arg)
{
	const struct deadline *d = arg;
	struct timespec now;

	if (atomic_load(d->cancel))
		return 1;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > d->until.tv_sec ||
	       (now.tv_sec == d->until.tv_sec && now.tv_nsec >= d->until.tv_nsec);
}

/* Quiet: the reader tries again at each query until the log store has written the file. */
static const struct store_db_spec reader_db = { .read_only = true, .busy_ms = 1000 };

static int db_open(struct logquery *lq)
{
	sqlite3_stmt *s = NULL;
	int rc;

	if (lq->db)
		return 0;
	if ((rc = store_db_open(lq->path, &reader_db, &lq->db)))
		return rc;
	/* The file has the log store's table (not yet created: not there yet). */
	rc = sqlite3_prepare_v2(lq->db, "SELECT count(*), sum(name = 'records_fts'), "
				"sum(name = 'blocks'), sum(name = 'targets_fts') FROM sqlite_master "
				"WHERE name IN ('records', 'records_fts', 'blocks', 'targets_fts')", -1,
				&s, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		int n = sqlite3_column_int(s, 0);
		rc = n >= 1 ? SQLITE_OK : SQLITE_CANTOPEN;
		atomic_store(&lq->fts, sqlite3_column_int(s, 1) == 1);
		lq->blocks = sqlite3_column_int(s, 2) == 1;
		lq->targets = sqlite3_column_int(s, 3) == 1;
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_OK) {
		rc = (rc & 0xff) == SQLITE_CANTOPEN ? -ENOENT : db_errno(lq->db, rc);
		sqlite3_close(lq->db);
		lq->db = NULL;
		return rc;
	}
	return 0;
}

static void run_job(struct logquery *lq, struct job *j)
{
	struct deadline d = { .cancel = &lq->cancel };
	int rc;

	if (lq->pg) {
		rc = logq_pg_run(lq->pg, j->kind, &j->f, j->id, j->by, j->bucket_ms, j->heads,
				 &j->result);
		j->err = rc == -ETIMEDOUT && atomic_load(&lq->cancel) ? -ECANCELED : rc;
		return;
	}
	rc = db_open(lq);

	if (rc) {
		j->err = rc;
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &d.until);
	d.until.tv_sec += LOGQ_TIME_LIMIT_MS / 1000;
	sqlite3_progress_handler(lq->db, 10000, past_deadline, &d);
	switch (j->kind) {
	case J_PAGE: rc = run_page(lq, j); break;
	case J_GET: rc = run_get(lq, j); break;
	case J_STATS: rc = run_stats(lq, j); break;
	case J_FOLLOW: rc = -ENOTSUP; break;   /* logquery_follow refuses it first */
	}
	sqlite3_progress_handler(lq->db, 0, NULL, NULL);
	j->err = rc == -ETIMEDOUT && atomic_load(&lq->cancel) ? -ECANCELED : rc;
}

static void *reader_main(void *arg)
{
	struct logquery *lq = arg;
	struct job *j;

	pthread_mutex_lock(&lq->lock);
	for (;;) {
		while (list_empty(&lq->queue) && !lq->stopping)
			pthread_cond_wait(&lq->wake, &lq->lock);
		if (lq->stopping)
			break;
		j = list_first_entry(&lq->queue, struct job, link);
		list_del(&j->link);
		lq->nqueued--;
		pthread_mutex_unlock(&lq->lock);

		run_job(lq, j);

		pthread_mutex_lock(&lq->lock);
		list_add_tail(&j->link, &lq->done);
		doorbell_ring(&lq->bell);
	}
	pthread_mutex_unlock(&lq->lock);
	return NULL;
}

/* ---- the loop side ---- */

static void job_free(struct job *j)
{
	for (int k = 0; k < NSTR; k++)
		free(j->str[k]);
	free(j->heads);
	free(j);
}

static void run_done(struct logquery *lq)
{
	struct list_head done;
	struct job *j, *tmp;

	list_init(&done);
	pthread_mutex_lock(&lq->lock);
	list_splice_tail_init(&lq->done, &done);
	pthread_mutex_unlock(&lq->lock);
	list_for_each_entry_safe(j, tmp, &done, link) {
		list_del(&j->link);
		j->cb(j->arg, j->err, j->result);
		job_free(j);
	}
}

static void on_done(void *arg)
{
	run_done(arg);
}

static struct job *job_new(enum job_kind kind, const struct logq_filter *f, logq_done_fn cb,
			   void *arg)
{
	struct job *j = xcalloc(1, sizeof(*j));

	j->kind = kind;
	j->cb = cb;
	j->arg = arg;
	if (f) {
		const char *src[NSTR] = { f->key, f->team, f->server, f->tool, f->decision,
					  f->status, f->type, f->q, f->sidecar };
		for (int k = 0; k < NSTR; k++)
			j->str[k] = src[k] ? xstrdup(src[k]) : NULL;
		j->f = *f;
		j->f.key = j->str[0];
		j->f.team = j->str[1];
		j->f.server = j->str[2];
		j->f.tool = j->str[3];
		j->f.decision = j->str[4];
		j->f.status = j->str[5];
		j->f.type = j->str[6];
		j->f.q = j->str[7];
		j->f.sidecar = j->str[8];
		if (j->f.limit < 1 || j->f.limit > LOGQ_LIMIT_MAX)
			j->f.limit = j->f.limit < 1 ? LOGQ_LIMIT_DEFAULT : LOGQ_LIMIT_MAX;
	}
	return j;
}

static int submit(struct logquery *lq, struct job *j)
{
	int rc = 0;

	pthread_mutex_lock(&lq->lock);
	if (lq->stopping)
		rc = -ECANCELED;
	else if (lq->nqueued >= LOGQ_MAX_PENDING)
		rc = -EAGAIN;
	if (!rc) {
		list_add_tail(&j->link, &lq->queue);
		lq->nqueued++;
		pthread_cond_signal(&lq->wake);
	}
	pthread_mutex_unlock(&lq->lock);
	if (rc)
		job_free(j);
	return rc;
}

int logquery_page(struct logquery *lq, const struct logq_filter *f, logq_done_fn cb, void *arg)
{
	return submit(lq, job_new(J_PAGE, f, cb, arg));
}

int logquery_get(struct logquery *lq, int64_t id, logq_done_fn cb, void *arg)
{
	struct job *j = job_new(J_GET, NULL, cb, arg);

	j->id = id;
	return submit(lq, j);
}

int logquery_stats(struct logquery *lq, const struct logq_filter *f, enum logq_group by,
		   int64_t bucket_ms, logq_done_fn cb, void *arg)
{
	struct job *j;

	if (bucket_ms <= 0 || f->since_ms <= 0 || f->until_ms < f->since_ms ||
	    (f->until_ms - f->since_ms) / bucket_ms >= LOGQ_MAX_BUCKETS)
		return -EINVAL;
	j = job_new(J_STATS, f, cb, arg);
	j->by = by;
	j->bucket_ms = bucket_ms;
	return submit(lq, j);
}

int logquery_follow(struct logquery *lq, const char *heads, logq_done_fn cb, void *arg)
{
	struct job *j;

	if (!lq->pg)
		return -ENOTSUP;
	j = job_new(J_FOLLOW, NULL, cb, arg);
	j->heads = heads ? xstrdup(heads) : NULL;
	return submit(lq, j);
}

bool logquery_fts(const struct logquery *lq)
{
	return atomic_load(&((struct logquery *)lq)->fts);
}

bool logquery_fleet(const struct logquery *lq)
{
	return lq->pg != NULL;
}

static int start(struct event_base *base, const char *path, struct logq_pg *pg,
		 struct logquery **out)
{
	struct logquery *lq = xcalloc(1, sizeof(*lq));
	int rc;

	*out = NULL;
	lq->pg = pg;
	lq->path = xstrdup(path);
	lq->bell.fd = -1;
	list_init(&lq->queue);
	list_init(&lq->done);
	pthread_mutex_init(&lq->lock, NULL);
	pthread_cond_init(&lq->wake, NULL);
	rc = doorbell_init(&lq->bell, base, "logquery", on_done, lq);
	if (rc)
		goto fail;
	rc = thread_start(&lq->th, THREAD_NAME_PREFIX "logquery", reader_main, lq);
	if (rc)
		goto fail;
	lq->th_up = true;
	*out = lq;
	return 0;
fail:
	logquery_free(lq);
	return rc;
}

int logquery_new(struct event_base *base, const char *path, struct logquery **out)
{
	return start(base, path, NULL, out);
}

int logquery_new_pg(struct event_base *base, const struct logpg_options *o,
		    struct logquery **out)
{
	return start(base, "(postgres)", logq_pg_new(o), out);
}

void logquery_free(struct logquery *lq)
{
	struct list_head cancel;
	struct job *j, *tmp;

	if (!lq)
		return;
	list_init(&cancel);
	atomic_store(&lq->cancel, true);
	pthread_mutex_lock(&lq->lock);
	lq->stopping = true;
	list_splice_tail_init(&lq->queue, &cancel);
	logq_pg_cancel(lq->pg);         /* the running query, if any, ends now */
	pthread_cond_signal(&lq->wake);
	pthread_mutex_unlock(&lq->lock);
	if (lq->th_up)
		pthread_join(lq->th, NULL);
	run_done(lq);                   /* finished: answered as usual */
	list_for_each_entry_safe(j, tmp, &cancel, link) {
		list_del(&j->link);
		j->cb(j->arg, -ECANCELED, NULL);
		job_free(j);
	}
	doorbell_fini(&lq->bell);
	sqlite3_close(lq->db);
	logq_pg_free(lq->pg);
	pthread_cond_destroy(&lq->wake);
	pthread_mutex_destroy(&lq->lock);
	free(lq->path);
	free(lq);
}
