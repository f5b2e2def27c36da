/* The log store's table of targets on a real SQLite file: retention (by age and by size)
 * drops the targets that no remaining record names, with their free-text entries, in the
 * same transactions as the records; the logs API's q then finds no deleted record's target
 * and still finds every live one; a trimmed target that comes back is found again; the
 * chain still verifies; a version-4 store is converted (schema version 5). */
#include <CUnit/Basic.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <sqlite3.h>
#include <event2/event.h>

#include "base/alloc.h"
#include "observe/audit.h"
#include "observe/logquery.h"
#include "observe/logstore.h"
#include "observe/logstore_db.h"
#include "observe/logverify.h"
#include "cunit_main.h"
#include "logs_test_util.h"
#include "loop_util.h"

static struct event_base *base;
static char dir[PATH_MAX], db[PATH_MAX + 32];

static int setup(void)
{
	alloc_init();
	base = event_base_new();
	return base ? tmpdir_setup(dir, sizeof(dir), db, sizeof(db), "logs.db") : -1;
}

static int teardown(void)
{
	event_base_free(base);
	tmpdir_remove(dir);
	return 0;
}

static struct logstore_options opts(int64_t max_age_s, int64_t max_bytes)
{
	return (struct logstore_options){ .enabled = true, .path = db, .max_age_s = max_age_s,
					  .max_bytes = max_bytes, .queue = 100000,
					  .checkpoint_every = 1000000 };
}

/* A run of the writer (retention runs as it starts and after each batch), storing one "test"
 * record per target named (padded by pad bytes), quietly: records go to stdout too. */
static void write_run(const struct logstore_options *o, const char *const *targets, int n,
		      int pad)
{
	char text[1024];
	int saved, null;

	memset(text, 'x', sizeof(text));
	text[pad < (int)sizeof(text) ? pad : (int)sizeof(text) - 1] = '\0';
	CU_ASSERT_FATAL(logstore_start(o, audit_note) == 0);
	fflush(stdout);
	saved = dup(STDOUT_FILENO);
	null = open("/dev/null", O_WRONLY);
	dup2(null, STDOUT_FILENO);
	close(null);
	for (int i = 0; i < n; i++) {
		cJSON *r = cJSON_CreateObject();
		CU_ASSERT_FATAL(r && cJSON_AddStringToObject(r, "target", targets[i]) &&
				cJSON_AddStringToObject(r, "pad", text));
		audit_note("test", r);
		cJSON_Delete(r);
	}
	logstore_flush();
	logstore_stop();
	dup2(saved, STDOUT_FILENO);
	close(saved);
}

/* The table of targets holds exactly the targets the remaining records name, its free-text
 * index agrees with it, and the chain verifies. */
static void check_targets_exact(void)
{
	struct logverify_options vo = { .path = db, .since_ms = INT64_MIN };
	struct logverify_result r;

	CU_ASSERT_EQUAL(sqlu_int(db, "SELECT count(*) FROM targets WHERE name NOT IN (SELECT target "
				"FROM records WHERE target IS NOT NULL)"), 0);
	CU_ASSERT_EQUAL(sqlu_int(db, "SELECT count(*) FROM (SELECT DISTINCT target FROM records "
				"WHERE target IS NOT NULL) WHERE target NOT IN (SELECT name FROM "
				"targets)"), 0);
	/* A target's last_id reaches its newest record's block end. */
	CU_ASSERT_EQUAL(sqlu_int(db, "SELECT count(*) FROM targets t WHERE last_id < (SELECT "
				"max(id) FROM records WHERE target = t.name)"), 0);
	sqlu_exec(db, "INSERT INTO targets_fts (targets_fts, rank) VALUES ('integrity-check', 1)");
	CU_ASSERT_EQUAL(logverify_run(&vo, &r), LOGVERIFY_INTACT);
}

/* The ids GET /api/logs?q=<q> answers (newest first, up to max), or -1 on an error. */
static int q_ids(const char *q, int64_t *out, int max)
{
	struct logq_filter f = { .q = q, .limit = LOGQ_LIMIT_MAX };
	struct logquery *lq;
	struct lq_result r = { 0 };
	const cJSON *rec;
	int n = 0;

	CU_ASSERT_FATAL(logquery_new(base, db, &lq) == 0);
	CU_ASSERT_FATAL(logquery_page(lq, &f, lq_on_done, &r) == 0);
	CU_ASSERT_FATAL(lu_run_until(base, lq_done, &r, 10000));
	CU_ASSERT(logquery_fts(lq));
	logquery_free(lq);
	if (r.err)
		return -1;
	cJSON_ArrayForEach(rec, cJSON_GetObjectItem(r.res, "records"))
		if (n < max)
			out[n++] = (int64_t)cJSON_GetObjectItem(rec, "id")->valuedouble;
	cJSON_Delete(r.res);
	return n;
}

/* How many records q finds. */
static int q_count(const char *q)
{
	int64_t got[LOGQ_LIMIT_MAX];

	return q_ids(q, got, LOGQ_LIMIT_MAX);
}

/* By age: the first run stores 1500 records; a second later the next run's retention deletes
 * them all (two chunks: ids 1-1000, then 1001 to the checkpoint, in the block the new
 * records go on filling). Every target they alone named goes, including those whose newest
 * record shares its block with live ones; one that comes back in the same writer run (whose
 * cache knew it) is stored and found again. */
static void test_age_trims_targets(void)
{
	static const char *first[1500], *second[22];
	static char names[300][24];
	struct logstore_options o = opts(86400, 1LL << 30);
	int64_t got[4];

	for (int k = 0; k < 300; k++)
		snprintf(names[k], sizeof(names[k]), "gone_%d", k);
	for (int i = 0; i < 1500; i++)
		first[i] = names[(i + 1) % 300];
	first[4] = "dying.search";              /* id 5: block 0, deleted */
	first[5] = "living.search";             /* id 6: block 0, deleted, named again later */
	first[1399] = "edge.search";            /* id 1400: block 1, deleted, named again later */
	first[1349] = "lone.search";            /* id 1350: block 1, deleted */
	unlink(db);
	write_run(&o, first, 1500, 2);
	CU_ASSERT_EQUAL(sqlu_int(db, "SELECT count(*) FROM targets"), 304);
	CU_ASSERT_EQUAL(q_count("lone"), 1);

	usleep(1100 * 1000);
	o.max_age_s = 1;
	for (int i = 0; i < 20; i++)
		second[i] = i % 2 ? "fresh_a" : "fresh_b";
	second[20] = "living.search";
	second[21] = "edge.search";
	write_run(&o, second, 22, 2);

	CU_ASSERT_EQUAL(sqlu_int(db, "SELECT min(id) FROM records"), 1502);  /* after the checkpoint */
	check_targets_exact();
	CU_ASSERT_EQUAL(sqlu_int(db, "SELECT count(*) FROM targets"), 4);
	CU_ASSERT_EQUAL(sqlu_int(db, "SELECT count(*) FROM targets_fts WHERE targets_fts MATCH "
				"'gone* OR dying OR lone'"), 0);
	/* q: a deleted record's target finds nothing; a live one's finds only the live record. */
	CU_ASSERT_EQUAL(q_count("dying"), 0);
	CU_ASSERT_EQUAL(q_count("lone"), 0);
	CU_ASSERT_EQUAL(q_count("gone_7"), 0);
	CU_ASSERT_EQUAL(q_ids("living", got, 4), 1);
	CU_ASSERT_EQUAL(got[0], sqlu_int(db, "SELECT id FROM records WHERE target = 'living.search'"));
	CU_ASSERT_EQUAL(q_ids("edge", got, 4), 1);
	CU_ASSERT_EQUAL(got[0], sqlu_int(db, "SELECT id FROM records WHERE target = 'edge.search'"));
	CU_ASSERT_EQUAL(q_count("search"), 2);
	CU_ASSERT_EQUAL(q_count("fresh_a"), 10);
	/* The audit_anchor notes of the two chunks, which say how many targets went: all 304
	 * (retention runs as the writer starts, before the second run's records; the two named
	 * again come back with them); and how many block summaries: block 0's, which the second
	 * chunk (up to id 1501) left empty; block 1 keeps its own. */
	CU_ASSERT_EQUAL(sqlu_int(db, "SELECT count(*) FROM records WHERE type = 'audit_anchor'"), 2);
	CU_ASSERT_EQUAL(sqlu_int(db, "SELECT sum(json_extract(record, '$.targets_dropped')) FROM "
				"records WHERE type = 'audit_anchor'"), 304);
	CU_ASSERT_EQUAL(sqlu_int(db, "SELECT json_extract(record, '$.blocks_dropped') FROM records "
				"WHERE type = 'audit_anchor' ORDER BY id LIMIT 1"), 0);
	CU_ASSERT_EQUAL(sqlu_int(db, "SELECT json_extract(record, '$.blocks_dropped') FROM records "
				"WHERE type = 'audit_anchor' ORDER BY id DESC LIMIT 1"), 1);
	CU_ASSERT_EQUAL(sqlu_int(db, "SELECT min(blk) FROM blocks"), 1);
}

/* By size: every record names a target of its own (the table's worst case); the oldest go a
 * tenth at a time and the table keeps only the live records' targets. */
static void test_size_trims_targets(void)
{
	static const char *t[3000];
	static char names[3000][24];
	struct logstore_options o = opts(86400, 256 << 10);
	int64_t got[4];

	for (int i = 0; i < 3000; i++) {
		snprintf(names[i], sizeof(names[i]), "tool_%d", i);
		t[i] = names[i];
	}
	unlink(db);
	write_run(&o, t, 3000, 300);
	/* Most went (the chunks noted), tool_2999 (the last) stayed. */
	CU_ASSERT_FATAL(sqlu_int(db, "SELECT count(*) FROM records WHERE type = 'test'") < 2000);
	CU_ASSERT(sqlu_int(db, "SELECT count(*) FROM records WHERE type = 'audit_anchor'") > 1);
	check_targets_exact();
	CU_ASSERT_EQUAL(sqlu_int(db, "SELECT count(*) FROM targets"),
			sqlu_int(db, "SELECT count(*) FROM records WHERE type = 'test'"));
	CU_ASSERT_EQUAL(q_count("tool_5"), 0);
	CU_ASSERT_EQUAL(q_count("tool_999"), 0);
	CU_ASSERT_EQUAL(q_ids("tool_2999", got, 4), 1);
	CU_ASSERT_EQUAL(got[0], sqlu_int(db, "SELECT id FROM records WHERE target = 'tool_2999'"));
}

/* A version-4 store (targets without last_id, and targets no record names any more, as
 * version 4's retention left them): opening it converts it to version 5, in place. */
static void test_v4_converted(void)
{
	static const char *t[] = { "alpha.read", "beta.write", "alpha.read" };
	struct logstore_options o = opts(86400, 1LL << 30);

	unlink(db);
	write_run(&o, t, 3, 2);
	/* Version 4's table of targets (tests/fixtures/logs-schema.sql before version 5), with
	 * two names whose records retention deleted. */
	sqlu_exec(db, "BEGIN;"
		 "CREATE TABLE v4 AS SELECT id, name FROM targets;"
		 "DROP INDEX targets_last; DROP TABLE targets;"
		 "CREATE TABLE IF NOT EXISTS targets (  id INTEGER PRIMARY KEY,  name TEXT NOT NULL "
		 "UNIQUE);"
		 "INSERT INTO targets SELECT id, name FROM v4; DROP TABLE v4;"
		 "INSERT INTO targets (name) VALUES ('gamma.gone'), ('delta.gone');"
		 "INSERT INTO targets_fts (targets_fts) VALUES ('rebuild');"
		 "PRAGMA user_version = 4; COMMIT;");
	CU_ASSERT_EQUAL(sqlu_int(db, "SELECT count(*) FROM targets_fts WHERE targets_fts MATCH 'gone'"),
			2);
	static const char *more[] = { "beta.write", "epsilon.new" };
	write_run(&o, more, 2, 2);
	CU_ASSERT_EQUAL(sqlu_int(db, "PRAGMA user_version"), 5);
	CU_ASSERT_EQUAL(sqlu_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'targets_last'"),
			1);
	check_targets_exact();
	CU_ASSERT_EQUAL(sqlu_int(db, "SELECT count(*) FROM targets"), 3);
	CU_ASSERT_EQUAL(sqlu_int(db, "SELECT count(*) FROM targets WHERE last_id = 1023"), 3);
	CU_ASSERT_EQUAL(q_count("gone"), 0);
	CU_ASSERT_EQUAL(q_count("alpha"), 2);
	CU_ASSERT_EQUAL(q_count("beta"), 2);

	/* A store of a newer version is refused, not downgraded. */
	sqlu_exec(db, "PRAGMA user_version = 6");
	struct logstore_db *ldb = NULL;
	CU_ASSERT_EQUAL(logstore_db_open(db, 1LL << 30, &ldb), -EPROTO);
	CU_ASSERT_PTR_NULL(ldb);
	CU_ASSERT_EQUAL(sqlu_int(db, "PRAGMA user_version"), 6);
}

CU_MAIN("logstore_targets", setup, teardown,
	{ "retention by age drops the targets only deleted records named", test_age_trims_targets },
	{ "retention by size keeps the table to the live records' targets",
	  test_size_trims_targets },
	{ "a version-4 store is converted to version 5", test_v4_converted })
