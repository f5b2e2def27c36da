/* test_logquery: observe/logquery against a real logs.db (the contract's schema from
 * tests/fixtures/logs-schema.sql) on a real event loop, and observe/logtail's fan-out. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>
#include <CUnit/Basic.h>
#include <event2/event.h>

#include "base/alloc.h"
#include "observe/logquery.h"
#include "observe/logstore_db.h"
#include "observe/logtail.h"
#include "cunit_main.h"
#include "logs_test_util.h"
#include "loop_util.h"

static struct event_base *base;
static char dir[256], dbpath[512];

static void wait_for(struct lq_result *r)
{
	CU_ASSERT_FATAL(lu_run_until(base, lq_done, r, 10000));
}

static void reset(struct lq_result *r)
{
	cJSON_Delete(r->res);
	memset(r, 0, sizeof(*r));
}

/* One page query run to its answer in *r (what r held before is freed). */
static void page(struct logquery *lq, const struct logq_filter *f, struct lq_result *r)
{
	reset(r);
	CU_ASSERT(logquery_page(lq, f, lq_on_done, r) == 0);
	wait_for(r);
}

/* logs.db with the schema and n decision records: key "k<i % 3>", target "tool<i % 2>",
 * reason "quota" on every 5th, ts 1000 * i. */
static void make_db(int n)
{
	char path[512], *ddl, *err = NULL;
	sqlite3 *db;
	sqlite3_stmt *s;
	FILE *f;
	long len;

	lu_path(path, sizeof(path), "tests/fixtures/logs-schema.sql");
	f = fopen(path, "r");
	CU_ASSERT_FATAL(f != NULL);
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	rewind(f);
	ddl = xcalloc(1, (size_t)len + 1);
	CU_ASSERT_FATAL(fread(ddl, 1, (size_t)len, f) == (size_t)len);
	fclose(f);
	CU_ASSERT_FATAL(sqlite3_open(dbpath, &db) == SQLITE_OK);
	CU_ASSERT_FATAL(sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL) == SQLITE_OK);
	CU_ASSERT_FATAL(sqlite3_exec(db, ddl, NULL, NULL, &err) == SQLITE_OK);
	free(ddl);
	CU_ASSERT_FATAL(sqlite3_prepare_v2(db, "INSERT INTO records (id, ts, type, key, target, "
		"decision, reason, latency_us, record, hash) VALUES (?, ?, 'decision', ?, ?, ?, ?, ?, ?, "
		"zeroblob(32))", -1, &s, NULL) == SQLITE_OK);
	sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
	for (int i = 1; i <= n; i++) {
		char key[8], tool[8], rec[256];
		const char *reason = i % 5 ? NULL : "daily quota exceeded";
		snprintf(key, sizeof(key), "k%d", i % 3);
		snprintf(tool, sizeof(tool), "tool%d", i % 2);
		snprintf(rec, sizeof(rec), "{\"type\":\"decision\",\"key\":\"%s\",\"target\":\"%s\","
			 "\"n\":%d}", key, tool, i);
		sqlite3_bind_int(s, 1, i);
		sqlite3_bind_int64(s, 2, 1000LL * i);
		sqlite3_bind_text(s, 3, key, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(s, 4, tool, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(s, 5, reason ? "deny" : "allow", -1, SQLITE_STATIC);
		if (reason)
			sqlite3_bind_text(s, 6, reason, -1, SQLITE_STATIC);
		else
			sqlite3_bind_null(s, 6);
		sqlite3_bind_int(s, 7, i * 1000);
		sqlite3_bind_text(s, 8, rec, -1, SQLITE_TRANSIENT);
		CU_ASSERT_FATAL(sqlite3_step(s) == SQLITE_DONE);
		sqlite3_reset(s);
	}
	/* The writer keeps the free-text index per batch (no triggers): do as it does. */
	CU_ASSERT_FATAL(sqlite3_exec(db, "INSERT INTO records_fts(rowid, reason, error_message) "
		"SELECT id, reason, error_message FROM records WHERE reason IS NOT NULL OR "
		"error_message IS NOT NULL; INSERT INTO targets (name, last_id) SELECT target, "
		"max(id) | 1023 FROM records GROUP BY target; "
		"INSERT INTO targets_fts (targets_fts) VALUES ('rebuild')", NULL, NULL,
		NULL) == SQLITE_OK);
	sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	sqlite3_finalize(s);
	sqlite3_close(db);
}

/* Every table and index of db, as SQLite keeps their CREATE text, in one string. */
static char *schema_of(const char *path)
{
	sqlite3 *db;
	sqlite3_stmt *s;
	char *out = xstrdup("");

	CU_ASSERT_FATAL(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK);
	CU_ASSERT_FATAL(sqlite3_prepare_v2(db, "SELECT name || ':' || coalesce(sql, '') FROM "
		"sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name", -1, &s, NULL) ==
		SQLITE_OK);
	while (sqlite3_step(s) == SQLITE_ROW) {
		const char *t = (const char *)sqlite3_column_text(s, 0);
		size_t n = strlen(out) + strlen(t) + 2;
		char *grown = xmalloc(n);

		snprintf(grown, n, "%s%s\n", out, t);
		free(out);
		out = grown;
	}
	sqlite3_finalize(s);
	sqlite3_close(db);
	return out;
}

/* The fixture the API tests fill stores from is the daemon's own schema, not a look-alike. */
static void test_fixture_is_the_store_schema(void)
{
	struct logstore_db *ldb = NULL;
	char own[600];
	char *a, *b;

	unlink(dbpath);
	make_db(1);
	snprintf(own, sizeof(own), "%s/own.db", dir);
	CU_ASSERT_FATAL(logstore_db_open(own, 1LL << 30, &ldb) == 0);
	logstore_db_close(ldb);
	a = schema_of(dbpath);
	b = schema_of(own);
	CU_ASSERT_STRING_EQUAL(a, b);
	free(a);
	free(b);
	unlink(own);
	unlink(dbpath);
}

static int init(void)
{
	alloc_init();
	base = event_base_new();
	return base ? tmpdir_setup(dir, sizeof(dir), dbpath, sizeof(dbpath), "logs.db") : -1;
}

static int cleanup(void)
{
	event_base_free(base);
	tmpdir_remove(dir);
	return 0;
}

static int ids(const cJSON *page, int *out, int max)
{
	int n = 0;
	const cJSON *r;

	cJSON_ArrayForEach(r, cJSON_GetObjectItem(page, "records"))
		if (n < max)
			out[n++] = cJSON_GetObjectItem(r, "id")->valueint;
	return n;
}

/* f (limit 2) answered in two pages: a and b, its next_cursor b; then, from b, c alone and
 * no next_cursor. */
static void two_pages(struct logquery *lq, struct logq_filter *f, struct lq_result *r, int a, int b,
		      int c)
{
	char cursor[16];
	int got[4];

	page(lq, f, r);
	CU_ASSERT_EQUAL_FATAL(r->err, 0);
	CU_ASSERT_EQUAL(ids(r->res, got, 4), 2);
	CU_ASSERT(got[0] == a && got[1] == b);
	snprintf(cursor, sizeof(cursor), "%d", b);
	CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(r->res, "next_cursor")->valuestring, cursor);
	f->cursor = b;
	page(lq, f, r);
	CU_ASSERT_EQUAL_FATAL(r->err, 0);
	CU_ASSERT_EQUAL(ids(r->res, got, 4), 1);
	CU_ASSERT_EQUAL(got[0], c);
	CU_ASSERT(cJSON_IsNull(cJSON_GetObjectItem(r->res, "next_cursor")));
}

/* No file yet: -ENOENT; the next query, once the store has made it, opens it. */
static void test_missing_then_pages(void)
{
	struct logquery *lq;
	struct lq_result r = { 0 };
	struct logq_filter f = { .limit = 4 };
	int got[8];

	CU_ASSERT_FATAL(logquery_new(base, dbpath, &lq) == 0);
	page(lq, &f, &r);
	CU_ASSERT_EQUAL(r.err, -ENOENT);
	CU_ASSERT_PTR_NULL(r.res);

	make_db(20);
	page(lq, &f, &r);
	CU_ASSERT_EQUAL_FATAL(r.err, 0);
	CU_ASSERT(logquery_fts(lq));
	CU_ASSERT_EQUAL(ids(r.res, got, 8), 4);
	CU_ASSERT(got[0] == 20 && got[3] == 17);
	CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(r.res, "next_cursor")->valuestring, "17");
	CU_ASSERT_EQUAL(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(r.res, "records"),
							       0), "n")->valueint, 20);

	/* Filters, a cursor, the last page. */
	f = (struct logq_filter){ .key = "k1", .tool = "tool0", .cursor = 10, .limit = 10 };
	page(lq, &f, &r);
	CU_ASSERT_EQUAL(ids(r.res, got, 8), 1);      /* i < 10, i % 3 == 1, even: 4 */
	CU_ASSERT_EQUAL(got[0], 4);
	CU_ASSERT(cJSON_IsNull(cJSON_GetObjectItem(r.res, "next_cursor")));

	/* Free text through fts5; text that would be fts5 syntax is only text. */
	f = (struct logq_filter){ .q = "quota", .since_ms = 6000, .until_ms = 15000, .limit = 50 };
	page(lq, &f, &r);
	CU_ASSERT_EQUAL(ids(r.res, got, 8), 2);      /* 10 and 15 */
	CU_ASSERT(got[0] == 15 && got[1] == 10);
	f = (struct logq_filter){ .q = "\"quota\" OR NEAR(", .limit = 50 };
	page(lq, &f, &r);
	CU_ASSERT_EQUAL(r.err, 0);
	CU_ASSERT_EQUAL(ids(r.res, got, 8), 0);

	/* Values are bound, never SQL. */
	f = (struct logq_filter){ .key = "k1' OR '1'='1", .limit = 50 };
	page(lq, &f, &r);
	CU_ASSERT_EQUAL(r.err, 0);
	CU_ASSERT_EQUAL(ids(r.res, got, 8), 0);
	reset(&r);

	/* One record; one that is not there. */
	CU_ASSERT(logquery_get(lq, 7, lq_on_done, &r) == 0);
	wait_for(&r);
	CU_ASSERT_EQUAL(cJSON_GetObjectItem(r.res, "id")->valueint, 7);
	CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(r.res, "target")->valuestring, "tool1");
	reset(&r);
	CU_ASSERT(logquery_get(lq, 99, lq_on_done, &r) == 0);
	wait_for(&r);
	CU_ASSERT_EQUAL(r.err, -ENOENT);
	reset(&r);
	logquery_free(lq);
}

/* Pages by block summary (schema version 3): a value in three records of 5000, in three
 * blocks, is found across them page by page; a value in none gives an empty page; a time
 * window with a filter finds what a scan finds. The summaries are made as the writer makes
 * them for a store it did not fill (logstore_db_open). */
static void test_blocks(void)
{
	struct logstore_db *ldb = NULL;
	struct logquery *lq;
	struct lq_result r = { 0 };
	struct logq_filter f = { .key = "rare", .limit = 2 };
	sqlite3 *db;
	int got[64];

	unlink(dbpath);
	make_db(5000);
	CU_ASSERT_FATAL(sqlite3_open(dbpath, &db) == SQLITE_OK);
	CU_ASSERT_FATAL(sqlite3_exec(db, "UPDATE records SET key = 'rare' WHERE id IN "
				     "(10, 2100, 4900)", NULL, NULL, NULL) == SQLITE_OK);
	/* For q: a target in two records (in the table of targets through the writer's open,
	 * below), a reason in one. */
	CU_ASSERT_FATAL(sqlite3_exec(db, "UPDATE records SET target = 'github.search_code' WHERE "
				     "id IN (20, 3000); UPDATE records SET reason = 'search denied' "
				     "WHERE id = 1501; INSERT INTO records_fts (rowid, reason) VALUES "
				     "(1501, 'search denied')", NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_close(db);
	CU_ASSERT_FATAL(logstore_db_open(dbpath, 1LL << 30, &ldb) == 0);
	logstore_db_close(ldb);
	CU_ASSERT_FATAL(logquery_new(base, dbpath, &lq) == 0);

	two_pages(lq, &f, &r, 4900, 2100, 10);

	/* q over targets and reasons (schema version 4): the target's records from the blocks
	 * whose bloom has it, the reason's from records_fts, newest first, paged; a prefix of a
	 * target's word; with another filter. */
	f = (struct logq_filter){ .q = "search", .limit = 2 };
	two_pages(lq, &f, &r, 3000, 1501, 20);
	f = (struct logq_filter){ .q = "SEARCH_CO", .limit = 50 };
	page(lq, &f, &r);
	CU_ASSERT_EQUAL(ids(r.res, got, 64), 2);
	CU_ASSERT(got[0] == 3000 && got[1] == 20);
	f = (struct logq_filter){ .q = "search", .key = "k0", .limit = 50 };
	page(lq, &f, &r);
	CU_ASSERT_EQUAL(ids(r.res, got, 64), 1);
	CU_ASSERT_EQUAL(got[0], 3000);
	f = (struct logq_filter){ .q = "tool1", .limit = 3 };
	page(lq, &f, &r);
	CU_ASSERT_EQUAL(ids(r.res, got, 64), 3);
	CU_ASSERT(got[0] == 4999 && got[1] == 4997 && got[2] == 4995);
	f = (struct logq_filter){ .q = "quota", .limit = 2 };
	page(lq, &f, &r);
	CU_ASSERT_EQUAL(ids(r.res, got, 64), 2);
	CU_ASSERT(got[0] == 5000 && got[1] == 4995);

	f = (struct logq_filter){ .key = "nobody", .limit = 50 };
	page(lq, &f, &r);
	CU_ASSERT_EQUAL(r.err, 0);
	CU_ASSERT_EQUAL(ids(r.res, got, 64), 0);
	CU_ASSERT(cJSON_IsNull(cJSON_GetObjectItem(r.res, "next_cursor")));
	f = (struct logq_filter){ .tool = "tool0", .key = "rare", .limit = 50 };
	page(lq, &f, &r);
	CU_ASSERT_EQUAL(ids(r.res, got, 64), 3);        /* 4900, 2100 and 10 are even */

	/* ts is 1000 * id: the window 3000.5 s to 3040 s holds ids 3001 to 3040; tool1: odd. */
	f = (struct logq_filter){ .tool = "tool1", .since_ms = 3000500, .until_ms = 3040000,
				  .limit = 64 };
	page(lq, &f, &r);
	CU_ASSERT_EQUAL(ids(r.res, got, 64), 20);
	CU_ASSERT(got[0] == 3039 && got[19] == 3001);
	/* A window alone, at the edge of a block (ids 1023 to 1026). */
	f = (struct logq_filter){ .since_ms = 1023000, .until_ms = 1026000, .limit = 64 };
	page(lq, &f, &r);
	CU_ASSERT_EQUAL(ids(r.res, got, 64), 4);
	CU_ASSERT(got[0] == 1026 && got[3] == 1023);
	reset(&r);
	logquery_free(lq);
	unlink(dbpath);
}

/* Stats: per group and bucket, nearest-rank percentiles; the window is required. */
static void test_stats(void)
{
	struct logquery *lq;
	struct lq_result r = { 0 };
	struct logq_filter f = { .since_ms = 1000, .until_ms = 20000 };
	const cJSON *b;
	int n = 0;

	CU_ASSERT_FATAL(logquery_new(base, dbpath, &lq) == 0);
	CU_ASSERT(logquery_stats(lq, &f, LOGQ_BY_TOOL, 10000, lq_on_done, &r) == 0);
	wait_for(&r);
	CU_ASSERT_EQUAL_FATAL(r.err, 0);
	/* Buckets [0, 10000) holds i 1..9, [10000, 20000) i 10..19, [20000, ...) i 20. */
	cJSON_ArrayForEach(b, cJSON_GetObjectItem(r.res, "buckets")) {
		int t = (int)cJSON_GetObjectItem(b, "t")->valuedouble;
		const char *g = cJSON_GetObjectItem(b, "group")->valuestring;
		if (t == 0 && !strcmp(g, "tool1")) {        /* 1 3 5 7 9: one denied (5) */
			CU_ASSERT_EQUAL(cJSON_GetObjectItem(b, "calls")->valueint, 5);
			CU_ASSERT_EQUAL(cJSON_GetObjectItem(b, "denied")->valueint, 1);
			CU_ASSERT_DOUBLE_EQUAL(cJSON_GetObjectItem(b, "p50_ms")->valuedouble, 5, 1e-9);
			CU_ASSERT_DOUBLE_EQUAL(cJSON_GetObjectItem(b, "p99_ms")->valuedouble, 9, 1e-9);
		}
		n++;
	}
	CU_ASSERT_EQUAL(n, 5);                          /* i = 20 is tool0's alone */
	reset(&r);
	f.since_ms = 0;
	CU_ASSERT_EQUAL(logquery_stats(lq, &f, LOGQ_BY_KEY, 10000, lq_on_done, &r), -EINVAL);
	f = (struct logq_filter){ .since_ms = 1, .until_ms = 1 + 1000LL * LOGQ_MAX_BUCKETS };
	CU_ASSERT_EQUAL(logquery_stats(lq, &f, LOGQ_BY_KEY, 1000, lq_on_done, &r), -EINVAL);
	logquery_free(lq);
}

/* The queue is bounded; freeing answers everything that was queued, exactly once. */
static void test_bound_and_free(void)
{
	struct logquery *lq;
	struct logq_filter f = { .limit = 500 };
	struct lq_result r[LOGQ_MAX_PENDING * 4] = { 0 };
	int accepted = 0, refused = 0;

	CU_ASSERT_FATAL(logquery_new(base, dbpath, &lq) == 0);
	/* Without the loop running, answers pile up; the reader drains the queue meanwhile, so
	 * how many are refused depends on its speed, but never more than the bound waits. */
	for (size_t i = 0; i < sizeof(r) / sizeof(r[0]); i++) {
		int rc = logquery_page(lq, &f, lq_on_done, &r[i]);
		if (rc == 0)
			accepted++;
		else if (rc == -EAGAIN)
			refused++;
		else
			CU_FAIL("neither queued nor refused");
	}
	CU_ASSERT(accepted >= LOGQ_MAX_PENDING);
	CU_ASSERT_EQUAL(accepted + refused, (int)(sizeof(r) / sizeof(r[0])));
	logquery_free(lq);
	for (size_t i = 0; i < sizeof(r) / sizeof(r[0]); i++) {
		if (!r[i].done)
			continue;
		accepted--;
		CU_ASSERT(r[i].err == 0 || r[i].err == -ECANCELED);
		cJSON_Delete(r[i].res);
	}
	CU_ASSERT_EQUAL(accepted, 0);
}

/* ---- logtail ---- */

struct tail {
	int seen;
	struct logtail_sub *sub, *other;
	bool drop_self, drop_other;
};

static void on_line(const char *line, size_t len, const cJSON *rec, void *arg)
{
	struct tail *t = arg;

	CU_ASSERT_EQUAL(strlen(line), len);
	CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(rec, "type")->valuestring, "decision");
	t->seen++;
	if (t->drop_self) {
		logtail_unsubscribe(t->sub);
		t->sub = NULL;
	}
	if (t->drop_other && t->other) {
		logtail_unsubscribe(*(struct logtail_sub **)t->other);
		*(struct logtail_sub **)t->other = NULL;
		t->other = NULL;
	}
}

static void test_logtail(void)
{
	struct tail a = { 0 }, b = { 0 }, c = { 0 };
	struct logtail_sub *subs[LOGTAIL_MAX_SUBSCRIBERS], *extra;
	struct tail dummy = { 0 };

	logtail_publish("{\"type\":\"decision\"}");      /* nobody listens: nothing happens */
	CU_ASSERT_FATAL(logtail_subscribe(on_line, &a, &a.sub) == 0);
	CU_ASSERT_FATAL(logtail_subscribe(on_line, &b, &b.sub) == 0);
	CU_ASSERT_FATAL(logtail_subscribe(on_line, &c, &c.sub) == 0);
	a.drop_self = true;                             /* a leaves during its first record */
	b.drop_other = true;                            /* b removes c before c's turn */
	b.other = (struct logtail_sub *)&c.sub;
	logtail_publish("{\"type\":\"decision\",\"n\":1}");
	CU_ASSERT_EQUAL(a.seen, 1);
	CU_ASSERT_EQUAL(b.seen, 1);
	CU_ASSERT_EQUAL(c.seen, 0);
	CU_ASSERT_EQUAL(logtail_subscribers(), 1);
	logtail_publish("{\"type\":\"decision\",\"n\":2}");
	logtail_publish("not json");                     /* dropped, not crashed on */
	CU_ASSERT_EQUAL(a.seen, 1);
	CU_ASSERT_EQUAL(b.seen, 2);
	logtail_unsubscribe(b.sub);
	CU_ASSERT_EQUAL(logtail_subscribers(), 0);

	for (int i = 0; i < LOGTAIL_MAX_SUBSCRIBERS; i++)
		CU_ASSERT_FATAL(logtail_subscribe(on_line, &dummy, &subs[i]) == 0);
	CU_ASSERT_EQUAL(logtail_subscribe(on_line, &dummy, &extra), -EBUSY);
	CU_ASSERT_PTR_NULL(extra);
	for (int i = 0; i < LOGTAIL_MAX_SUBSCRIBERS; i++)
		logtail_unsubscribe(subs[i]);
	CU_ASSERT_EQUAL(logtail_subscribers(), 0);
}

CU_MAIN("logquery", init, cleanup,
	{ "missing file, then pages, filters, fts, bound values, one record",
	  test_missing_then_pages },
	{ "stats per group and bucket", test_stats },
	{ "bounded queue; free answers what was queued", test_bound_and_free },
	{ "logtail: fan-out, unsubscribing inside a callback, the cap", test_logtail },
	{ "the fixture's schema is the log store's own", test_fixture_is_the_store_schema },
	{ "pages by block summary: a rare value, an absent one, a window", test_blocks })
