/* logship: the thread that copies logs.db to the shared store on PostgreSQL. */
#include "observe/logship.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sqlite3.h>

#include "base/alloc.h"
#include "base/log.h"
#include "base/thread.h"
#include "observe/logchain.h"

#define NCOL 21                 /* a row's parameters: all but the sidecar ($1) */
#define STATEMENT_MS 30000      /* one batch, at most */
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000
#define HOUSEKEEP_MS 3600000    /* partitions ahead and retention this often */
#define STOP_BATCHES 64         /* at stop: this many batches at most, then the rest waits */

static struct {
	pthread_mutex_t mu;
	pthread_cond_t wake;
	pthread_t th;
	bool running, stopping;
	struct logpg_options opt;
	char *path;
	PGconn *pg;
	sqlite3 *db;
	sqlite3_stmt *sel;
	int64_t next;                   /* the next local id to ship */
	int64_t days[8];                /* partitions known to exist (a small cache) */
	unsigned ndays;
	bool prepared;                  /* "ship": the INSERT of a full batch */
	_Atomic bool connected;
	_Atomic uint64_t shipped, lost, failures;
	_Atomic int64_t head, local_last;
} g = { .mu = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER };

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleep ms unless stopping; true when stopping. */
static bool nap(unsigned ms)
{
	struct timespec until;
	bool stop;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (long)(ms % 1000) * 1000000L;
	until.tv_sec += until.tv_nsec / 1000000000L;
	until.tv_nsec %= 1000000000L;
	pthread_mutex_lock(&g.mu);
	while (!g.stopping && pthread_cond_timedwait(&g.wake, &g.mu, &until) != ETIMEDOUT)
		;
	stop = g.stopping;
	pthread_mutex_unlock(&g.mu);
	return stop;
}

static bool stopping(void)
{
	pthread_mutex_lock(&g.mu);
	bool s = g.stopping;
	pthread_mutex_unlock(&g.mu);
	return s;
}

/* ---- the local side: logs.db, read-only ---- */

static void local_close(void)
{
	sqlite3_finalize(g.sel);
	g.sel = NULL;
	sqlite3_close(g.db);
	g.db = NULL;
}

static int local_open(void)
{
	if (g.db)
		return 0;
	if (sqlite3_open_v2(g.path, &g.db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) !=
	    SQLITE_OK ||
	    sqlite3_busy_timeout(g.db, 2000) != SQLITE_OK ||
	    sqlite3_prepare_v2(g.db, "SELECT id, ts, type, key, team, session, method, server,"
			       " target, decision, reason, status, error_message, trace_id,"
			       " error_code, latency_us, upstream_us, cost_micros, result_bytes,"
			       " record, hash FROM records WHERE id >= ?1 ORDER BY id LIMIT ?2", -1,
			       &g.sel, NULL) != SQLITE_OK) {
		local_close();
		return -ENOENT;
	}
	return 0;
}

/* The local chain's anchor and head ids (and the anchor's hash). */
static int local_chain(int64_t *first, int64_t *last, uint8_t prev[LOGCHAIN_HASH_LEN])
{
	sqlite3_stmt *s = NULL;
	int rc = -EIO;

	if (sqlite3_prepare_v2(g.db, "SELECT first_id, last_id, prev_hash FROM chain WHERE id = 1",
			       -1, &s, NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW &&
	    sqlite3_column_bytes(s, 2) == LOGCHAIN_HASH_LEN) {
		*first = sqlite3_column_int64(s, 0);
		*last = sqlite3_column_int64(s, 1);
		memcpy(prev, sqlite3_column_blob(s, 2), LOGCHAIN_HASH_LEN);
		rc = 0;
	}
	sqlite3_finalize(s);
	return rc;
}

/* ---- the shared side ---- */

static void pg_drop(const char *why)
{
	if (why)
		log_warn("logs.postgres: %s", why);
	PQfinish(g.pg);
	g.pg = NULL;
	g.ndays = 0;
	g.prepared = false;
	atomic_store(&g.connected, false);
}

static int ensure_day(int64_t day)
{
	for (unsigned i = 0; i < g.ndays; i++)
		if (g.days[i] == day)
			return 0;
	int rc = logpg_partition(g.pg, g.opt.prefix, day);
	if (rc == 0)
		g.days[g.ndays++ % 8] = day;
	if (g.ndays > 8)
		g.ndays = 8;
	return rc;
}

static void housekeep(void)
{
	int64_t today = now_ms() / LOGPG_DAY_MS;
	int n;

	for (int64_t d = today; d <= today + (int64_t)g.opt.ahead; d++)
		if (logpg_partition(g.pg, g.opt.prefix, d))
			return;
	n = logpg_retain(g.pg, g.opt.prefix, now_ms() - g.opt.max_age_s * 1000);
	if (n > 0) {
		g.ndays = 0;
		log_info("logs.postgres: retention dropped %d day%s", n, n == 1 ? "" : "s");
	}
}

static char *insert_sql(int n);

/* Connect, create what is missing and find where this sidecar's records stop. */
static int pg_connect(void)
{
	const char *v[] = { g.opt.sidecar };
	int64_t first, last;
	uint8_t prev[LOGCHAIN_HASH_LEN];
	char err[256];
	PGresult *r;

	if (local_open() || local_chain(&first, &last, prev))
		return -ENOENT;         /* the log store creates logs.db: not yet */
	g.pg = logpg_connect(&g.opt, STATEMENT_MS, err, sizeof(err));
	if (!g.pg) {
		log_warn("logs.postgres: cannot connect: %s", err);
		return -EIO;
	}
	if (logpg_schema(g.pg, g.opt.prefix))
		goto fail;
	char sql[256];
	snprintf(sql, sizeof(sql), "SELECT last_seq FROM %schain WHERE sidecar = $1",
		 g.opt.prefix);
	r = PQexecParams(g.pg, sql, 1, NULL, v, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		PQclear(r);
		goto fail;
	}
	if (PQntuples(r) == 1) {
		g.next = strtoll(PQgetvalue(r, 0, 0), NULL, 10) + 1;
		PQclear(r);
	} else {
		/* This sidecar's first time: the chain starts at the local anchor. */
		PQclear(r);
		char first_s[24], last_s[24];
		const char *iv[] = { g.opt.sidecar, first_s, (const char *)prev, last_s };
		int len[] = { 0, 0, LOGCHAIN_HASH_LEN, 0 }, fmt[] = { 0, 0, 1, 0 };
		snprintf(first_s, sizeof(first_s), "%" PRId64, first);
		snprintf(last_s, sizeof(last_s), "%" PRId64, first - 1);
		snprintf(sql, sizeof(sql), "INSERT INTO %schain (sidecar, first_seq, prev_hash, "
			 "last_seq, head) VALUES ($1, $2, $3, $4, $3) ON CONFLICT DO NOTHING",
			 g.opt.prefix);
		r = PQexecParams(g.pg, sql, 4, NULL, iv, len, fmt, 0);
		bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
		PQclear(r);
		if (!ok)
			goto fail;
		g.next = first;
	}
	if (g.next > last + 1) {
		log_error("logs.postgres: the shared store holds records of sidecar \"%s\" up to %"
			  PRId64 " but logs.db ends at %" PRId64 ": each sidecar needs its own name "
			  "(logs.postgres.sidecar) and its own logs.db; not shipping",
			  g.opt.sidecar, g.next - 1, last);
		pg_drop(NULL);
		return -EEXIST;
	}
	if (g.next < first) {
		atomic_fetch_add(&g.lost, (uint64_t)(first - g.next));
		log_error("logs.postgres: records %" PRId64 "..%" PRId64 " of \"%s\" were deleted "
			  "by local retention before they were shipped (logs.max_bytes/max_age "
			  "too small for the outage)", g.next, first - 1, g.opt.sidecar);
		g.next = first;
	}
	char *ins = insert_sql((int)g.opt.batch);
	r = PQprepare(g.pg, "ship", ins, 0, NULL);
	g.prepared = PQresultStatus(r) == PGRES_COMMAND_OK;
	PQclear(r);
	free(ins);
	atomic_store(&g.head, g.next - 1);
	atomic_store(&g.connected, true);
	housekeep();
	log_info("logs.postgres: connected; sidecar \"%s\" resumes at record %" PRId64,
		 g.opt.sidecar, g.next);
	return 0;
fail:
	pg_drop(logpg_error(g.pg));
	return -EIO;
}

/* ---- one batch ---- */

struct batch {
	int n;
	char **vals;                    /* 1 + NCOL * n + 2 (last seq, head) */
	int *lens, *fmts;
	int64_t last;
};

static void batch_clear(struct batch *b, int nparams)
{
	for (int i = 1; i < nparams; i++)
		free(b->vals[i]);
	memset(b->vals, 0, sizeof(char *) * (size_t)nparams);
	memset(b->lens, 0, sizeof(int) * (size_t)nparams);
	memset(b->fmts, 0, sizeof(int) * (size_t)nparams);
	b->n = 0;
}

static char *col_text(sqlite3_stmt *s, int col)
{
	if (sqlite3_column_type(s, col) == SQLITE_NULL)
		return NULL;
	return xstrdup((const char *)sqlite3_column_text(s, col));
}

static char *blob_copy(sqlite3_stmt *s, int col, int *len)
{
	*len = sqlite3_column_bytes(s, col);
	char *p = xmalloc((size_t)*len + 1);
	memcpy(p, sqlite3_column_blob(s, col), (size_t)*len);
	return p;
}

/* Read up to opt.batch records from g.next into b. The number read, or -errno. */
static int read_batch(struct batch *b, int64_t *min_day, int64_t *max_day)
{
	int rc;

	sqlite3_bind_int64(g.sel, 1, g.next);
	sqlite3_bind_int(g.sel, 2, (int)g.opt.batch);
	while ((rc = sqlite3_step(g.sel)) == SQLITE_ROW) {
		int base = 1 + NCOL * b->n;
		int64_t ts = sqlite3_column_int64(g.sel, 1), day = ts / LOGPG_DAY_MS;
		int64_t id = sqlite3_column_int64(g.sel, 0);

		if (!b->n && id > g.next) {
			/* Local retention (or a failed local write) went past the shipper. */
			atomic_fetch_add(&g.lost, (uint64_t)(id - g.next));
			log_error("logs.postgres: records %" PRId64 "..%" PRId64 " of \"%s\" are not in "
				  "logs.db and were never shipped", g.next, id - 1, g.opt.sidecar);
		}

		if (!b->n || day < *min_day)
			*min_day = day;
		if (!b->n || day > *max_day)
			*max_day = day;
		/* seq, ts, type, 11 texts, 5 ints, record: the same order as the SELECT. */
		for (int c = 0; c < NCOL - 1; c++)
			b->vals[base + c] = col_text(g.sel, c);
		b->vals[base + NCOL - 1] = blob_copy(g.sel, 20, &b->lens[base + NCOL - 1]);
		b->fmts[base + NCOL - 1] = 1;
		b->last = sqlite3_column_int64(g.sel, 0);
		b->n++;
	}
	sqlite3_reset(g.sel);
	if (rc != SQLITE_DONE) {
		log_warn("logs.postgres: reading logs.db: %s", sqlite3_errmsg(g.db));
		return -EIO;
	}
	return b->n;
}

/* The statement for n rows: one INSERT that also moves the chain's head, atomically. */
static char *insert_sql(int n)
{
	size_t cap = 1024 + (size_t)n * (NCOL * 8 + 8), len;
	char *sql = xmalloc(cap);
	int p = 2;

	len = (size_t)snprintf(sql, cap,
		"WITH ins AS (INSERT INTO %srecords (sidecar, seq, ts, type, key, team, session,"
		" method, server, target, decision, reason, status, error_message, trace_id,"
		" error_code, latency_us, upstream_us, cost_micros, result_bytes, record, hash)"
		" VALUES ", g.opt.prefix);
	for (int r = 0; r < n; r++) {
		len += (size_t)snprintf(sql + len, cap - len, "%s($1", r ? "," : "");
		for (int c = 0; c < NCOL; c++)
			len += (size_t)snprintf(sql + len, cap - len, ",$%d", p++);
		len += (size_t)snprintf(sql + len, cap - len, ")");
	}
	snprintf(sql + len, cap - len, " ON CONFLICT (sidecar, seq, ts) DO NOTHING RETURNING 1)"
		 " UPDATE %1$schain SET last_seq = $%2$d, head = $%3$d WHERE sidecar = $1 AND"
		 " last_seq < $%2$d", g.opt.prefix, p, p + 1);
	return sql;
}

static int send_batch(struct batch *b, int64_t min_day, int64_t max_day)
{
	int np = 1 + NCOL * b->n + 2, rc = 0;
	char last[24];
	char *sql;
	PGresult *r;

	for (int64_t d = min_day; d <= max_day; d++)
		if (ensure_day(d))
			return -EIO;
	snprintf(last, sizeof(last), "%" PRId64, b->last);
	b->vals[np - 2] = xstrdup(last);
	/* The head is the last record's stored hash. */
	b->vals[np - 1] = xmalloc(LOGCHAIN_HASH_LEN);
	memcpy(b->vals[np - 1], b->vals[np - 2 - 1], LOGCHAIN_HASH_LEN);
	b->lens[np - 1] = LOGCHAIN_HASH_LEN;
	b->fmts[np - 1] = 1;
	/* A full batch (the usual case under load) runs the statement prepared at connect:
	 * parsing and planning thousands of parameters each time costs as much as the insert. */
	if (b->n == (int)g.opt.batch && g.prepared) {
		r = PQexecPrepared(g.pg, "ship", np, (const char *const *)b->vals, b->lens, b->fmts, 0);
	} else {
		sql = insert_sql(b->n);
		r = PQexecParams(g.pg, sql, np, NULL, (const char *const *)b->vals, b->lens, b->fmts,
				 0);
		free(sql);
	}
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		rc = -EIO;
	PQclear(r);
	return rc;
}

/* ---- the thread ---- */

static void *shipper(void *arg)
{
	int cap = 1 + NCOL * (int)g.opt.batch + 2;
	struct batch b = { .vals = xcalloc((size_t)cap, sizeof(char *)),
			   .lens = xcalloc((size_t)cap, sizeof(int)),
			   .fmts = xcalloc((size_t)cap, sizeof(int)) };
	unsigned backoff = BACKOFF_MIN_MS, at_stop = 0;
	int64_t last_housekeep = now_ms();

	(void)arg;
	b.vals[0] = g.opt.sidecar;
	for (;;) {
		bool stop = stopping();
		if (stop && (!g.pg || at_stop++ >= STOP_BATCHES))
			break;
		if (!g.pg) {
			int rc = pg_connect();
			if (rc) {
				if (rc != -ENOENT)
					atomic_fetch_add(&g.failures, 1);
				if (nap(rc == -ENOENT ? g.opt.poll_ms : backoff))
					break;
				if (rc != -ENOENT)
					backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
									       : backoff * 2;
				continue;
			}
			backoff = BACKOFF_MIN_MS;
			last_housekeep = now_ms();
		}
		int64_t min_day = 0, max_day = 0, first, last;
		uint8_t anchor[LOGCHAIN_HASH_LEN];
		int n = local_open() ? -ENOENT : read_batch(&b, &min_day, &max_day);
		if (n >= 0 && local_chain(&first, &last, anchor) == 0)
			atomic_store(&g.local_last, last);
		if (n > 0) {
			int rc = send_batch(&b, min_day, max_day);
			batch_clear(&b, cap);
			b.vals[0] = g.opt.sidecar;
			if (rc) {
				atomic_fetch_add(&g.failures, 1);
				/* Connection gone or not, start over from the shared head. */
				pg_drop(logpg_error(g.pg));
				if (nap(backoff))
					break;
				backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
				continue;
			}
			g.next = b.last + 1;
			atomic_fetch_add(&g.shipped, (uint64_t)n);
			atomic_store(&g.head, b.last);
			backoff = BACKOFF_MIN_MS;
			if (n == (int)g.opt.batch)
				continue;       /* more waiting: no nap */
		} else {
			batch_clear(&b, cap);
			b.vals[0] = g.opt.sidecar;
			if (n < 0)
				local_close();
			if (stop)
				break;
		}
		if (now_ms() - last_housekeep >= HOUSEKEEP_MS) {
			last_housekeep = now_ms();
			housekeep();
		}
		if (!stop && nap(g.opt.poll_ms))
			continue;       /* stopping: one more round ships what is left */
	}
	free(b.vals);
	free(b.lens);
	free(b.fmts);
	return NULL;
}

int logship_start(const struct logpg_options *o, const char *sqlite_path)
{
	int rc;

	if (!o->enabled || g.running)
		return 0;
	g.opt = *o;
	g.opt.conninfo = xstrdup(o->conninfo);
	g.opt.password = o->password ? xstrdup(o->password) : NULL;
	g.opt.password_file = o->password_file ? xstrdup(o->password_file) : NULL;
	g.opt.sidecar = xstrdup(o->sidecar);
	g.path = xstrdup(sqlite_path);
	g.stopping = false;
	g.ndays = 0;
	atomic_store(&g.shipped, 0);
	atomic_store(&g.lost, 0);
	atomic_store(&g.failures, 0);
	atomic_store(&g.head, 0);
	atomic_store(&g.local_last, 0);
	rc = thread_start(&g.th, THREAD_NAME_PREFIX "logship", shipper, NULL);
	if (rc) {
		logpg_options_clear(&g.opt);
		free(g.path);
		g.path = NULL;
		return rc;
	}
	g.running = true;
	return 0;
}

void logship_stop(void)
{
	if (!g.running)
		return;
	pthread_mutex_lock(&g.mu);
	g.stopping = true;
	pthread_cond_signal(&g.wake);
	pthread_mutex_unlock(&g.mu);
	pthread_join(g.th, NULL);
	pg_drop(NULL);
	local_close();
	logpg_options_clear(&g.opt);
	free(g.path);
	g.path = NULL;
	g.running = false;
}

void logship_get_stats(struct logship_stats *out)
{
	out->running = g.running;
	out->connected = atomic_load(&g.connected);
	out->shipped = atomic_load(&g.shipped);
	out->lost = atomic_load(&g.lost);
	out->failures = atomic_load(&g.failures);
	out->shipped_seq = atomic_load(&g.head);
	int64_t last = atomic_load(&g.local_last);
	out->pending = last > out->shipped_seq ? (uint64_t)(last - out->shipped_seq) : 0;
}
