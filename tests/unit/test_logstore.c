/* The log store on a real SQLite file: records are stored with their "seq" and chained; the
 * `sqlite3` CLI then changes, deletes or inserts one row and the verifier names each; a
 * restart continues the chain; retention by size trims the oldest and moves the anchor so that
 * the rest still verifies. */
#include <CUnit/Basic.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <sqlite3.h>
#include <event2/event.h>

#include "base/log.h"
#include "observe/audit.h"
#include "observe/logchain.h"
#include "observe/logstore.h"
#include "observe/logverify.h"
#include "logs_test_util.h"
#include "store_test_util.h"
#include "thread_test_util.h"
#include "cunit_main.h"

static char dir[PATH_MAX], db[PATH_MAX + 32], copy[PATH_MAX + 32];

static int setup(void)
{
	if (tmpdir_make(dir, sizeof(dir)))
		return -1;
	snprintf(db, sizeof(db), "%s/logs.db", dir);
	snprintf(copy, sizeof(copy), "%s/copy.db", dir);
	return 0;
}

static int teardown(void)
{
	tmpdir_remove(dir);
	return 0;
}

static struct logstore_options opts(int64_t max_bytes)
{
	return (struct logstore_options){ .enabled = true, .path = db, .max_age_s = 86400,
					  .max_bytes = max_bytes, .queue = 100000,
					  .checkpoint_every = 1000000 };
}

static unsigned append_gap_us;  /* between records, for distinct timestamps */

/* n "test" records, each with its number and pad bytes of text. */
static void append(int from, int n, int pad)
{
	char text[4096];

	memset(text, 'x', sizeof(text));
	text[pad < (int)sizeof(text) ? pad : (int)sizeof(text) - 1] = '\0';
	for (int i = from; i < from + n; i++) {
		cJSON *o = cJSON_CreateObject();
		CU_ASSERT_FATAL(o && cJSON_AddNumberToObject(o, "n", i) &&
				cJSON_AddStringToObject(o, "target", "tool_a") &&
				cJSON_AddStringToObject(o, "pad", text));
		audit_note("test", o);
		cJSON_Delete(o);
		if (append_gap_us)
			usleep(append_gap_us);
	}
}

/* Records go to stdout too: keep the test's output readable. */
static int quiet(void)
{
	int saved = dup(STDOUT_FILENO), null = open("/dev/null", O_WRONLY);

	fflush(stdout);
	dup2(null, STDOUT_FILENO);
	close(null);
	return saved;
}

static void loud(int saved)
{
	dup2(saved, STDOUT_FILENO);
	close(saved);
}

/* One run of the writer: start it, append n records quietly, drain and stop it. */
static void write_run(const struct logstore_options *o, int from, int n, int pad)
{
	int saved;

	CU_ASSERT_FATAL(logstore_start(o, audit_note) == 0);
	saved = quiet();
	append(from, n, pad);
	logstore_flush();
	logstore_stop();
	loud(saved);
}

/* The shell command, formatted, succeeds (the checks run sqlite3 on the store). */
__attribute__((format(printf, 1, 2))) static void check_sh(const char *fmt, ...)
{
	char cmd[2 * PATH_MAX + 512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	CU_ASSERT(system(cmd) == 0);
}

static enum logverify_status verify(const char *path, struct logverify_result *r)
{
	struct logverify_options o = { .path = path, .since_ms = INT64_MIN };

	return logverify_run(&o, r);
}

/* Copy the (stopped, checkpointed) store and run sql on the copy with the sqlite3 CLI. */
static void tamper(const char *sql)
{
	char cmd[4 * PATH_MAX + 256];

	snprintf(cmd, sizeof(cmd), "cp '%s' '%s' && sqlite3 '%s' \"%s\"", db, copy, copy, sql);
	CU_ASSERT_FATAL(system(cmd) == 0);
}

/* The writer's hasher (a kept digest context) and the verifier's one-shot link agree, link
 * after link, with out aliasing prev, and with SHA-256(prev || text) computed elsewhere. */
static void test_hasher(void)
{
	static const char *const texts[] = { "{\"a\":1}", "", NULL };
	static const char want[] =
		"82e62150d2a683c0d94c554b5f86027e121085a28b48f14a23409d12fefe8235";
	char big[1001], hex[2 * LOGCHAIN_HASH_LEN + 1];
	uint8_t a[LOGCHAIN_HASH_LEN] = { 0 }, b[LOGCHAIN_HASH_LEN] = { 0 };
	struct logchain_hasher *h = NULL;

	memset(big, 'x', 1000);
	big[1000] = '\0';
	CU_ASSERT_EQUAL_FATAL(logchain_hasher_new(&h), 0);
	for (int i = 0; i < 3; i++) {
		const char *t = texts[i] ? texts[i] : big;

		CU_ASSERT_EQUAL(logchain_hasher_link(h, a, t, strlen(t), a), 0);
		CU_ASSERT_EQUAL(logchain_link(b, t, strlen(t), b), 0);
		CU_ASSERT_EQUAL(memcmp(a, b, sizeof(a)), 0);
	}
	for (int i = 0; i < LOGCHAIN_HASH_LEN; i++)
		snprintf(hex + 2 * i, 3, "%02x", a[i]);
	CU_ASSERT_STRING_EQUAL(hex, want);
	logchain_hasher_free(h);
	logchain_hasher_free(NULL);
}

static void test_chain_and_tampering(void)
{
	struct logstore_options o = opts(1LL << 30);
	struct logverify_result r;

	unlink(db);
	append_gap_us = 2000;
	write_run(&o, 1, 10, 10);       /* + the final checkpoint: record 11 */
	append_gap_us = 0;

	CU_ASSERT_EQUAL(verify(db, &r), LOGVERIFY_INTACT);
	CU_ASSERT_EQUAL(r.checked, 11);
	CU_ASSERT(r.first_id == 1 && r.last_id == 11);

	/* Each column the contract names is filled from the record. */
	tamper("SELECT 1 WHERE 0");
	sqlite3 *h;
	sqlite3_stmt *s;
	CU_ASSERT_FATAL(sqlite3_open_v2(copy, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK);
	CU_ASSERT_FATAL(sqlite3_prepare_v2(h, "SELECT type, target, record FROM records WHERE id = 3",
					   -1, &s, NULL) == SQLITE_OK);
	CU_ASSERT_FATAL(sqlite3_step(s) == SQLITE_ROW);
	CU_ASSERT_STRING_EQUAL(sqlite3_column_text(s, 0), "test");
	CU_ASSERT_STRING_EQUAL(sqlite3_column_text(s, 1), "tool_a");
	CU_ASSERT(strstr((const char *)sqlite3_column_text(s, 2), "\"n\":3,") != NULL);
	CU_ASSERT(strstr((const char *)sqlite3_column_text(s, 2), "\"seq\":3}") != NULL);
	sqlite3_finalize(s);
	CU_ASSERT_FATAL(sqlite3_prepare_v2(h, "SELECT type, record FROM records WHERE id = 11",
					   -1, &s, NULL) == SQLITE_OK);
	CU_ASSERT_FATAL(sqlite3_step(s) == SQLITE_ROW);
	CU_ASSERT_STRING_EQUAL(sqlite3_column_text(s, 0), "checkpoint");
	CU_ASSERT(strstr((const char *)sqlite3_column_text(s, 1), "\"head_seq\":10") != NULL);
	sqlite3_finalize(s);
	sqlite3_close(h);

	/* One edit of a copy each: what the verifier says, the record it names and, where given,
	 * words of its detail. */
	static const struct {
		const char *sql;
		enum logverify_status want;
		int64_t id;
		const char *detail;
	} edits[] = {
		{ "UPDATE records SET record = replace(record, '\\\"n\\\":5,', '\\\"n\\\":50,') "
		  "WHERE id = 5", LOGVERIFY_CHANGED, 5, NULL },
		{ "UPDATE records SET hash = zeroblob(32) WHERE id = 7", LOGVERIFY_CHANGED, 7, NULL },
		{ "DELETE FROM records WHERE id = 4", LOGVERIFY_REMOVED, 4, NULL },
		{ "DELETE FROM records WHERE id = 11", LOGVERIFY_REMOVED, 11, NULL },
		{ "INSERT INTO records (id, ts, type, record, hash) VALUES (12, 0, 'decision', "
		  "'{\\\"seq\\\":12}', zeroblob(32))", LOGVERIFY_INSERTED, 12, NULL },
		/* A row moved into a hole keeps its old seq: not written there. */
		{ "DELETE FROM records WHERE id = 6; UPDATE records SET id = 6 WHERE id = 9",
		  LOGVERIFY_INSERTED, 6, NULL },
		/* The columns filters read are tied to the record's text. */
		{ "UPDATE records SET target = 'tool_b' WHERE id = 3", LOGVERIFY_CHANGED, 3,
		  "column target" },
		{ "UPDATE records SET ts = ts + 1 WHERE id = 8", LOGVERIFY_CHANGED, 8, NULL },
	};

	for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
		tamper(edits[i].sql);
		CU_ASSERT_EQUAL(verify(copy, &r), edits[i].want);
		CU_ASSERT_EQUAL(r.id, edits[i].id);
		if (edits[i].detail)
			CU_ASSERT(strstr(r.detail, edits[i].detail) != NULL);
	}
	CU_ASSERT_EQUAL(verify("/nonexistent/logs.db", &r), LOGVERIFY_UNREADABLE);

	/* --since: from the first record at or after the time, linked from the one before. */
	struct logverify_options so = { .path = copy, .since_ms = 0 };
	tamper("UPDATE records SET record = record || ' ' WHERE id = 2");
	CU_ASSERT_EQUAL(logverify_run(&so, &r), LOGVERIFY_CHANGED);
	so.since_ms = INT64_MAX / 2;
	CU_ASSERT_EQUAL(logverify_run(&so, &r), LOGVERIFY_INTACT);
	CU_ASSERT_EQUAL(r.checked, 0);
	CU_ASSERT_FATAL(sqlite3_open_v2(copy, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK);
	CU_ASSERT_FATAL(sqlite3_prepare_v2(h, "SELECT ts FROM records WHERE id = 6", -1, &s, NULL)
			== SQLITE_OK);
	CU_ASSERT_FATAL(sqlite3_step(s) == SQLITE_ROW);
	so.since_ms = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(h);
	/* Record 2 is before the walk: only 6..11 are checked, and they hold. */
	CU_ASSERT_EQUAL(logverify_run(&so, &r), LOGVERIFY_INTACT);
	CU_ASSERT_EQUAL(r.checked, 6);
}

static void test_checkpoint_and_restart(void)
{
	struct logstore_options o = opts(1LL << 30);
	struct logverify_options vo = { .path = db, .since_ms = INT64_MIN };
	struct logverify_result r;
	int saved;

	/* The previous test's store: its head at record 11. */
	CU_ASSERT_EQUAL_FATAL(verify(db, &r), LOGVERIFY_INTACT);
	vo.have_checkpoint = true;
	vo.checkpoint_seq = 11;
	memcpy(vo.checkpoint, r.head, sizeof(vo.checkpoint));
	CU_ASSERT_EQUAL(logverify_run(&vo, &r), LOGVERIFY_INTACT);
	CU_ASSERT(r.checkpoint_checked);
	vo.checkpoint[0] ^= 1;
	CU_ASSERT_EQUAL(logverify_run(&vo, &r), LOGVERIFY_CHANGED);
	CU_ASSERT_EQUAL(r.id, 11);
	vo.checkpoint[0] ^= 1;

	/* A restart continues the chain from its head. */
	CU_ASSERT_FATAL(logstore_start(&o, audit_note) == 0);
	CU_ASSERT_EQUAL(logstore_reserve(), 12);   /* reserved and never appended: a gap */
	saved = quiet();
	logstore_stop();
	loud(saved);
	CU_ASSERT_FATAL(logstore_start(&o, audit_note) == 0);
	saved = quiet();
	append(100, 3, 10);
	logstore_flush();
	struct logstore_stats st;
	logstore_get_stats(&st);
	CU_ASSERT(st.running && st.written >= 3 && st.queue_depth == 0 && st.bytes > 0);
	logstore_stop();
	loud(saved);
	/* The first run's checkpoint still holds; the reserved-but-lost id shows as removed. */
	CU_ASSERT_EQUAL(logverify_run(&vo, &r), LOGVERIFY_REMOVED);
	CU_ASSERT_EQUAL(r.id, 12);
}

static void test_retention_by_size(void)
{
	struct logstore_options o = opts(256 << 10);
	struct logverify_result r;

	unlink(db);
	write_run(&o, 1, 2000, 400);
	CU_ASSERT_EQUAL(verify(db, &r), LOGVERIFY_INTACT);
	CU_ASSERT(r.first_id > 1);
	CU_ASSERT(r.last_id > 2000);            /* 2000 + audit_anchor notes + checkpoint */
	CU_ASSERT(r.checked < 2000);

	/* The anchor moved with the deletions: the first record left links to it, and the
	 * audit_anchor notes say where it went. */
	check_sh("test \"$(sqlite3 '%s' \"SELECT count(*) FROM records WHERE "
		 "type = 'audit_anchor'\")\" -gt 0", db);
	/* The free-text index forgot the deleted rows with them. */
	check_sh("sqlite3 '%s' \"INSERT INTO records_fts(records_fts, rank) "
		 "VALUES('integrity-check', 1)\"", db);
	/* The used pages stay near the cap (one batch above it at most). */
	check_sh("test \"$(sqlite3 '%s' \"SELECT (page_count - freelist_count) * "
		 "page_size FROM pragma_page_count, pragma_freelist_count, pragma_page_size\")\" "
		 "-lt %d", db, 2 * (256 << 10));
}

static void test_retention_by_age(void)
{
	struct logstore_options o = opts(1LL << 30);
	struct logverify_result r;

	unlink(db);
	write_run(&o, 1, 5, 10);                /* records 1-5, checkpoint 6 */
	usleep(1100 * 1000);
	/* The writer applies retention as it starts: everything is older than a second. */
	o.max_age_s = 1;
	write_run(&o, 7, 2, 10);
	CU_ASSERT_EQUAL(verify(db, &r), LOGVERIFY_INTACT);
	CU_ASSERT_EQUAL(r.first_id, 7);         /* 1-6 deleted */
	/* 2 records, the audit_anchor note (the writer's, racing with them) and the checkpoint */
	CU_ASSERT(r.last_id == 10 && r.checked == 4);

	check_sh("test \"$(sqlite3 '%s' \"SELECT json_extract(record, "
		 "'$.first_seq') || ' ' || json_extract(record, '$.reason') FROM records WHERE type = "
		 "'audit_anchor'\")\" = '7 max_age'", db);
}

/* A writer that cannot write (another connection holds the write lock): the queue fills, and
 * what does not fit is dropped from the store, counted, and printed without "seq". */
/* n records appended (quietly) while another connection holds the store's write lock: they
 * queue behind the writer until held_release. */
static sqlite3 *append_held(int from, int n)
{
	sqlite3 *h = NULL;
	int saved;

	CU_ASSERT_FATAL(sqlite3_open_v2(db, &h, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK);
	CU_ASSERT_FATAL(sqlite3_exec(h, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK);
	saved = quiet();
	append(from, n, 10);
	loud(saved);
	return h;
}

static void held_release(sqlite3 *h)
{
	sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_close(h);
}

static void test_queue_full(void)
{
	struct logstore_options o = opts(1LL << 30);
	struct logstore_stats st;
	struct logverify_result r;
	sqlite3 *h;
	int saved;

	unlink(db);
	o.queue = 16;
	logstore_get_stats(&st);                /* counters run for the process's life */
	uint64_t written0 = st.written, dropped0 = st.dropped;
	CU_ASSERT_FATAL(logstore_start(&o, audit_note) == 0);
	h = append_held(1, 100);
	logstore_get_stats(&st);
	CU_ASSERT_EQUAL(st.dropped - dropped0, 84);     /* 16 queued (or in the blocked batch) */
	CU_ASSERT_EQUAL(st.queue_depth, 16);
	CU_ASSERT_EQUAL(logstore_reserve(), 0);
	held_release(h);
	saved = quiet();
	logstore_flush();
	logstore_get_stats(&st);
	CU_ASSERT(st.written - written0 == 16 && st.queue_depth == 0);
	logstore_stop();
	loud(saved);
	CU_ASSERT_EQUAL(verify(db, &r), LOGVERIFY_INTACT);
	CU_ASSERT(r.last_id == 17 && r.checked == 17);  /* 16 and the final checkpoint */
}

/* A backlog deeper than a transaction's worth (4096 records) is written in batches, each
 * taken from the front, the rest handed back untouched: every record is stored, once and in
 * the order appended, and the chain holds. The writer is held up by another connection's
 * write transaction while the backlog builds. */
static void test_deep_backlog(void)
{
	struct logstore_options o = opts(1LL << 30);
	struct logstore_stats st;
	struct logverify_result r;
	sqlite3 *h;
	int saved;

	unlink(db);
	logstore_get_stats(&st);
	uint64_t written0 = st.written, dropped0 = st.dropped;
	CU_ASSERT_FATAL(logstore_start(&o, audit_note) == 0);
	h = append_held(1, 10000);
	logstore_get_stats(&st);
	CU_ASSERT(st.queue_depth > 4096);
	held_release(h);
	saved = quiet();
	logstore_flush();
	logstore_stop();
	loud(saved);
	logstore_get_stats(&st);
	CU_ASSERT(st.written - written0 == 10001 && st.dropped == dropped0);
	CU_ASSERT_EQUAL(sqlu_int(db, "SELECT count(*) FROM records WHERE type = 'test'"), 10000);
	CU_ASSERT_EQUAL(sqlu_int(db, "SELECT count(DISTINCT json_extract(record, '$.n')) FROM "
				"records WHERE type = 'test'"), 10000);
	/* ids follow the order of appending */
	CU_ASSERT_EQUAL(sqlu_int(db, "SELECT count(*) FROM records a JOIN records b ON "
				"b.id = a.id + 1 WHERE a.type = 'test' AND b.type = 'test' AND "
				"json_extract(b.record, '$.n') <> json_extract(a.record, '$.n') + 1"),
			0);
	CU_ASSERT_EQUAL(verify(db, &r), LOGVERIFY_INTACT);
}

static void test_options(void)
{
	struct logstore_options o;
	struct config_errors errs = { 0 };
	cJSON *root;

	CU_ASSERT_FATAL(logstore_options_parse(NULL, "/state", &o, &errs) == 0);
	CU_ASSERT(o.enabled && !strcmp(o.path, "/state/logs.db"));
	CU_ASSERT(o.max_age_s == 7 * 86400 && o.max_bytes == 1LL << 30 && o.queue == 65536 &&
		  o.checkpoint_every == 1000 && o.writer_idle);
	logstore_options_clear(&o);

	root = cJSON_Parse("{\"logs\": {\"enabled\": false, \"path\": \"/x.db\", \"max_age\": \"36h\","
			   " \"max_bytes\": 1048576, \"queue\": 64, \"checkpoint_every\": 10,"
			   " \"writer_priority\": \"normal\"}}");
	CU_ASSERT_FATAL(logstore_options_parse(root, "/state", &o, &errs) == 0);
	CU_ASSERT(!o.enabled && !strcmp(o.path, "/x.db") && o.max_age_s == 36 * 3600 &&
		  o.max_bytes == 1048576 && o.queue == 64 && o.checkpoint_every == 10 &&
		  !o.writer_idle);
	logstore_options_clear(&o);
	cJSON_Delete(root);

	root = cJSON_Parse("{\"logs\": {\"max_age\": \"7x\", \"max_bytes\": 10, \"queue\": 0, "
			   "\"colour\": 1, \"writer_priority\": \"low\"}}");
	CU_ASSERT_EQUAL(logstore_options_parse(root, "/state", &o, &errs), -EINVAL);
	CU_ASSERT_EQUAL(errs.count, 5);
	cJSON_Delete(root);
}

/* Every record's block has its summary, and no summary outlives its block's records. */
static void check_summaries(void)
{
	check_sh("test \"$(sqlite3 '%s' \"SELECT count(*) FROM records WHERE id >> 10 NOT IN "
		 "(SELECT blk FROM blocks); SELECT count(*) FROM blocks WHERE blk < (SELECT min(id) "
		 "FROM records) >> 10 OR blk > (SELECT max(id) FROM records) >> 10; "
		 "SELECT count(*) > 0 FROM blocks\" | tr '\\n' ' ')\" = '0 0 1 '", db);
}

/* A store of an older version, opened: n records (from 1) written by this daemon, the store
 * turned into that version by to_old (SQL run by sqlite3), then opened again (converted) and
 * two records (padded by pad) appended. */
static void open_old_store(int n, const char *to_old, int pad)
{
	struct logstore_options o = opts(1LL << 30);

	unlink(db);
	write_run(&o, 1, n, 2);
	check_sh("sqlite3 '%s' \"%s\"", db, to_old);
	write_run(&o, n + 1, 2, pad);
}

/* A store written by a version-2 daemon (an index on ts; key, team, target and server
 * indexed with (id, ts); no block summaries) is converted on open: those indexes go, the
 * summaries are made for the records already there, and it goes on storing. */
static void test_schema_v2_converted(void)
{
	open_old_store(2500, "DROP TABLE blocks; CREATE INDEX records_ts ON records(ts); "
		       "CREATE INDEX records_key_ts ON records(key, id, ts); "
		       "CREATE INDEX records_team_ts ON records(team, id, ts); "
		       "CREATE INDEX records_target_ts ON records(target, id, ts); "
		       "CREATE INDEX records_server_ts ON records(server, id, ts); "
		       "PRAGMA user_version = 2;", 10);
	check_sh("test \"$(sqlite3 '%s' \"PRAGMA user_version; SELECT group_concat(name, ',') FROM "
		 "(SELECT name FROM sqlite_master WHERE type = 'index' AND name GLOB 'records_*' "
		 "ORDER BY name); SELECT count(*) FROM records WHERE json_extract(record, '$.n') "
		 "IN (2500, 2501, 2502)\" | tr '\\n' ' ')\" = '5 records_failed,records_refused 3 '",
		 db);
	check_summaries();
}

/* A store of version 3 (records_fts over target, reason and error_message in every row; no
 * table of targets) is converted on open: the index holds the rows with a reason or an error
 * only, the targets are in their table, and both answer. */
static void test_schema_v3_converted(void)
{
	open_old_store(300, "DROP TABLE records_fts; DROP VIEW records_text; "
		       "DROP TABLE targets_fts; DROP TABLE targets; "
		       "UPDATE records SET reason = 'daily quota exceeded' WHERE id % 7 = 0; "
		       "CREATE VIRTUAL TABLE records_fts USING fts5(target, reason, error_message, "
		       "content='records', content_rowid='id'); "
		       "INSERT INTO records_fts (records_fts) VALUES ('rebuild'); "
		       "PRAGMA user_version = 3;", 2);
	check_sh("test \"$(sqlite3 '%s' \"PRAGMA user_version; "
		 "SELECT count(*) = (SELECT count(*) FROM records WHERE reason IS NOT NULL OR "
		 "error_message IS NOT NULL) FROM records_fts_docsize; "
		 "SELECT count(*) = (SELECT count(*) FROM records WHERE reason = "
		 "'daily quota exceeded') FROM records_fts WHERE records_fts MATCH 'quota'; "
		 "SELECT group_concat(name) FROM targets_fts WHERE targets_fts MATCH 'tool*'; "
		 "INSERT INTO records_fts (records_fts, rank) VALUES ('integrity-check', 1); "
		 "INSERT INTO targets_fts (targets_fts, rank) VALUES ('integrity-check', 1)\" "
		 "| tr '\\n' ' ')\" = '5 1 1 tool_a '", db);
}

/* verify --since starts at the first block the summaries do not rule out, and finds the
 * same first record as a scan: with every block summarized, and with one summary missing. */
static void test_verify_since_by_blocks(void)
{
	struct logstore_options o = opts(1LL << 30);
	struct logverify_options so = { .path = db };
	struct logverify_result r;
	int64_t first, last;

	unlink(db);
	append_gap_us = 2;
	write_run(&o, 1, 3500, 2);              /* blocks 0 to 3 */
	append_gap_us = 0;
	so.since_ms = sqlu_int(db, "SELECT ts FROM records WHERE id = 2100");
	first = sqlu_int(db, "SELECT min(id) FROM records WHERE ts >= (SELECT ts FROM records "
			"WHERE id = 2100)");
	last = sqlu_int(db, "SELECT max(id) FROM records");
	CU_ASSERT_FATAL(first > 1024 && first <= 2100);
	CU_ASSERT_EQUAL(logverify_run(&so, &r), LOGVERIFY_INTACT);
	CU_ASSERT_EQUAL(r.checked, last - first + 1);
	tamper("DELETE FROM blocks WHERE blk = 1");
	so.path = copy;
	CU_ASSERT_EQUAL(logverify_run(&so, &r), LOGVERIFY_INTACT);
	CU_ASSERT_EQUAL(r.checked, last - first + 1);
	tamper("UPDATE records SET record = record || ' ' WHERE id = 2900");
	CU_ASSERT_EQUAL(logverify_run(&so, &r), LOGVERIFY_CHANGED);
	CU_ASSERT_EQUAL(r.id, 2900);
}

/* Retention deletes the summaries of the blocks it empties, and keeps the others. */
static void test_retention_with_summaries(void)
{
	struct logstore_options o = opts(1LL << 30);

	unlink(db);
	write_run(&o, 1, 3000, 2);              /* blocks 0 to 2 */
	usleep(1100 * 1000);
	o.max_age_s = 1;
	write_run(&o, 3001, 2, 2);
	check_sh("test \"$(sqlite3 '%s' \"SELECT min(id) > 3000 FROM records\")\" = 1", db);
	check_summaries();
}

/* The queue's items are reused from batch to batch (observe/logstore.c): a record stored from
 * a reused item has its own columns and text only, nothing of the record the item held before,
 * in each size class and past the largest (an allocation of its own). */
static void test_reused_items(void)
{
	static const int pads[] = { 100, 100, 1500, 1500, 4000, 4000, 100, 100 };
	struct logstore_options o = opts(1LL << 30);
	struct logverify_result r;
	char buf[64], pad[4001];
	int saved, rounds = (int)(sizeof(pads) / sizeof(pads[0]));

	unlink(db);
	CU_ASSERT_FATAL(logstore_start(&o, audit_note) == 0);
	saved = quiet();
	for (int round = 0; round < rounds; round++) {
		memset(pad, 'y', sizeof(pad));
		pad[pads[round]] = '\0';
		for (int i = 0; i < 200; i++) {
			int n = round * 200 + i;
			cJSON *rec = cJSON_CreateObject();

			snprintf(buf, sizeof(buf), "tool_r%d", round);
			CU_ASSERT_FATAL(rec && cJSON_AddNumberToObject(rec, "n", n) &&
					cJSON_AddStringToObject(rec, "target", buf) &&
					cJSON_AddStringToObject(rec, "pad", pad));
			if (round % 2 == 0) {      /* the odd rounds reuse these items */
				snprintf(buf, sizeof(buf), "because-%d", n);
				CU_ASSERT_FATAL(cJSON_AddStringToObject(rec, "reason", buf) &&
						cJSON_AddStringToObject(rec, "key", "k-even") &&
						cJSON_AddNumberToObject(rec, "error_code", n));
			}
			audit_note("test", rec);
			cJSON_Delete(rec);
		}
		logstore_flush();       /* committed: the round's items go back for the next */
	}
	logstore_stop();
	loud(saved);

	CU_ASSERT_EQUAL(sqlu_int(db, "SELECT count(*) FROM records WHERE type = 'test'"),
			200 * rounds);
	CU_ASSERT_EQUAL(sqlu_int(db, "SELECT count(*) FROM records WHERE type = 'test' AND "
				"target = 'tool_r' || (json_extract(record, '$.n') / 200)"),
			200 * rounds);
	/* the even rounds' columns, each its own record's */
	CU_ASSERT_EQUAL(sqlu_int(db, "SELECT count(*) FROM records WHERE reason = 'because-' || "
				"json_extract(record, '$.n') AND key = 'k-even' AND error_code = "
				"json_extract(record, '$.n') AND "
				"json_extract(record, '$.n') / 200 % 2 = 0"),
			100 * rounds);
	/* the odd rounds' none, though their items held them */
	CU_ASSERT_EQUAL(sqlu_int(db, "SELECT count(*) FROM records WHERE type = 'test' AND "
				"reason IS NULL AND key IS NULL AND error_code IS NULL AND "
				"json_extract(record, '$.n') / 200 % 2 = 1"), 100 * rounds);
	CU_ASSERT_EQUAL(sqlu_int(db, "SELECT count(*) FROM records WHERE type = 'test' AND "
				"length(json_extract(record, '$.pad')) = 4000"), 400);
	CU_ASSERT_EQUAL(verify(db, &r), LOGVERIFY_INTACT);
}

/* ---- the writer's priority ---- */

/* With "idle" the writer runs in the idle class. On a CPU that a normal thread keeps busy it
 * gets next to nothing, so its backlog grows: at a quarter of the queue the appender raises
 * it, nothing is dropped, and once it has caught up it goes idle again. */
static void test_writer_idle_raised(void)
{
	struct logstore_options o = opts(1LL << 30);
	struct logstore_stats st0, st;
	struct logverify_result r;
	struct busy_cpu busy;
	int saved;

	unlink(db);
	o.queue = 4096;                 /* raised at 2048 queued (a full batch) */
	o.writer_idle = true;
	logstore_get_stats(&st0);
	CU_ASSERT_FATAL(logstore_start(&o, audit_note) == 0);
	CU_ASSERT(thread_policy_becomes("mcpw-logstore", SCHED_IDLE));
	logstore_get_stats(&st);
	CU_ASSERT(st.writer_idle);

	CU_ASSERT_FATAL(busy_cpu_start(&busy));
	saved = quiet();
	append(1, 3000, 10);
	logstore_get_stats(&st);
	loud(saved);
	CU_ASSERT(st.writer_raised - st0.writer_raised >= 1);
	CU_ASSERT(st.dropped == st0.dropped);
	CU_ASSERT(busy_cpu_end(&busy));

	saved = quiet();
	logstore_flush();
	append(3001, 10, 10);   /* a batch after the flush: caught up, idle again */
	loud(saved);
	CU_ASSERT(thread_policy_becomes("mcpw-logstore", SCHED_IDLE));
	saved = quiet();
	logstore_flush();
	logstore_stop();
	loud(saved);
	logstore_get_stats(&st);
	CU_ASSERT(st.written - st0.written == 3011 && st.dropped == st0.dropped);
	CU_ASSERT_EQUAL(sqlu_int(db, "SELECT count(*) FROM records WHERE type = 'test'"), 3010);
	CU_ASSERT_EQUAL(verify(db, &r), LOGVERIFY_INTACT);
}

/* "normal", and "idle" in a process that may not raise a thread again (no CAP_SYS_NICE,
 * RLIMIT_NICE 0, as an unprivileged container): the writer stays in the normal class. */
static int writer_class_in_child(bool drop_right, bool idle)
{
	struct logstore_options o = opts(1LL << 30);
	pid_t pid = fork();
	int status;

	if (pid < 0)
		return -1;
	if (pid == 0) {
		struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
		struct __user_cap_data_struct c[2];
		struct rlimit rl = { 0, 0 };
		struct logstore_stats st;
		int policy;

		if (drop_right) {
			if (syscall(SYS_capget, &h, c) || setrlimit(RLIMIT_NICE, &rl))
				_exit(10);
			c[CAP_SYS_NICE / 32].effective &= ~(1u << (CAP_SYS_NICE % 32));
			c[CAP_SYS_NICE / 32].permitted &= ~(1u << (CAP_SYS_NICE % 32));
			if (syscall(SYS_capset, &h, c))
				_exit(11);
		}
		unlink(db);
		o.writer_idle = idle;
		if (logstore_start(&o, audit_note))
			_exit(12);
		/* One record stored (not flushed: a flush raises the writer), so the writer is
		 * past its start and its first batch, after which an idle one would be idle. */
		logstore_get_stats(&st);
		uint64_t written0 = st.written;         /* the parent's, copied */
		(void)quiet();
		append(1, 1, 1);
		for (int i = 0; i < 500 && st.written == written0; i++) {
			usleep(10000);
			logstore_get_stats(&st);
		}
		if (st.written == written0)
			_exit(14);
		policy = sched_getscheduler(thread_tid("mcpw-logstore"));
		logstore_get_stats(&st);
		logstore_stop();
		_exit(policy == SCHED_OTHER && !st.writer_idle ? 0 : 13);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

/* ---- loops on two threads (workers: N) ---- */

#define LOOP_TURNS 40
#define LOOP_RECORDS 25         /* decisions a turn */

struct decision_loop {
	char key[8];
	struct event_base *base;
	struct event *turn;
	int turns, attached;
};

/* A turn: LOOP_RECORDS decisions, numbered in the target, then the next turn. */
static void decision_turn(evutil_socket_t fd, short what, void *arg)
{
	struct decision_loop *l = arg;
	char target[16];

	(void)fd, (void)what;
	for (int i = 0; i < LOOP_RECORDS; i++) {
		snprintf(target, sizeof(target), "t%05d", l->turns * LOOP_RECORDS + i);
		audit_decision(&(struct audit_decision){
			.session = "0123456789abcdef", .key = l->key, .method = "tools/call",
			.server = "srv", .target = target, .decision = "allow",
			.cost_micros = -1, .latency_us = 100 });
	}
	if (++l->turns < LOOP_TURNS)
		event_active(l->turn, EV_TIMEOUT, 1);
}

static void *decision_loop_main(void *arg)
{
	struct decision_loop *l = arg;

	if (!(l->base = event_base_new()))
		return NULL;
	l->attached = log_loop_attach(l->base) == 0;
	if ((l->turn = event_new(l->base, -1, 0, decision_turn, l))) {
		event_active(l->turn, EV_TIMEOUT, 1);
		event_base_dispatch(l->base);
		event_free(l->turn);
	}
	log_loop_detach();
	audit_thread_end();
	event_base_free(l->base);
	return NULL;
}

/* Two loop threads record decisions at once, each staging its lines per turn and writing
 * its records in a buffer of its own: every record is stored once, numbered without a gap,
 * the chain intact, the stamps rising with the numbers, and each loop's in its order. */
static void test_decisions_from_two_loops(void)
{
	struct logstore_options o = opts(1LL << 30);
	struct decision_loop l[2] = { { .key = "k0" }, { .key = "k1" } };
	struct logverify_result r;
	pthread_t t[2];
	int saved;

	unlink(db);
	CU_ASSERT_FATAL(logstore_start(&o, audit_note) == 0);
	saved = quiet();
	for (int i = 0; i < 2; i++)
		CU_ASSERT_FATAL(pthread_create(&t[i], NULL, decision_loop_main, &l[i]) == 0);
	for (int i = 0; i < 2; i++)
		CU_ASSERT_FATAL(pthread_join(t[i], NULL) == 0);
	logstore_flush();
	logstore_stop();
	loud(saved);

	for (int i = 0; i < 2; i++) {
		CU_ASSERT(l[i].attached);
		CU_ASSERT_EQUAL(l[i].turns, LOOP_TURNS);
	}
	CU_ASSERT_EQUAL(verify(db, &r), LOGVERIFY_INTACT);
	CU_ASSERT_EQUAL(r.checked, 2 * LOOP_TURNS * LOOP_RECORDS + 1);     /* + checkpoint */
	CU_ASSERT_EQUAL(sqlu_int(db, "SELECT count(*) FROM records WHERE type = 'decision' AND "
				 "key = 'k0'"), LOOP_TURNS * LOOP_RECORDS);
	CU_ASSERT_EQUAL(sqlu_int(db, "SELECT count(DISTINCT target) FROM records WHERE key = 'k1'"),
			LOOP_TURNS * LOOP_RECORDS);
	CU_ASSERT_EQUAL(sqlu_int(db, "SELECT count(*) FROM records a JOIN records b ON "
				 "b.id = a.id + 1 WHERE b.ts < a.ts"), 0);
	/* A loop's records in the order it wrote them: targets rise with the numbers. */
	CU_ASSERT_EQUAL(sqlu_int(db, "SELECT count(*) FROM records a JOIN records b ON "
				 "b.key = a.key AND b.id > a.id AND b.target < a.target"), 0);
	CU_ASSERT_EQUAL(sqlu_int(db, "SELECT count(*) FROM records WHERE record NOT LIKE "
				 "'%\"seq\":' || id || '}'"), 0);
}

static void test_writer_normal(void)
{
	CU_ASSERT_EQUAL(writer_class_in_child(false, false), 0);
	CU_ASSERT_EQUAL(writer_class_in_child(true, true), 0);
}

CU_MAIN("logstore", setup, teardown,
	{ "the writer's hasher links as the verifier does", test_hasher },
	{ "records are chained; a changed, removed or inserted row is named",
	  test_chain_and_tampering },
	{ "a checkpoint is compared; a restart continues the chain", test_checkpoint_and_restart },
	{ "retention by size trims the oldest and the chain still verifies",
	  test_retention_by_size },
	{ "retention by age, at start-up too", test_retention_by_age },
	{ "a full queue drops from the store only, counted", test_queue_full },
	{ "a backlog deeper than a batch is stored whole and in order", test_deep_backlog },
	{ "the logs section", test_options },
	{ "a version-2 store is converted on open", test_schema_v2_converted },
	{ "a version-3 store is converted on open", test_schema_v3_converted },
	{ "verify --since starts from the block summaries", test_verify_since_by_blocks },
	{ "retention deletes the summaries of emptied blocks",
	  test_retention_with_summaries },
	{ "reused queue items keep nothing of their earlier records", test_reused_items },
	{ "an idle writer is raised when it falls behind, and nothing is lost",
	  test_writer_idle_raised },
	{ "the writer stays normal when so configured, or when it could not be raised",
	  test_writer_normal },
	{ "two loops record decisions at once, each in its order, none lost",
	  test_decisions_from_two_loops })
