/* logstore_db: schema, chained batch inserts and retention of the log store's SQLite file. */
#include "observe/logstore_db.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>

#include "base/htab.h"
#include "base/log.h"
#include "base/thread.h"
#include "observe/logblock.h"
#include "store/db.h"

#define RETAIN_CHUNK 1000       /* records deleted per retention transaction, at most */
#define PACE_ROWS 32            /* rows inserted between two yields of the CPU (thread_pace) */

/* docs/audit.md describes every column; the logs API (observe/logquery.c) reads them. */
static const char schema[] =
	"CREATE TABLE IF NOT EXISTS records ("
	"  id INTEGER PRIMARY KEY,"
	"  ts INTEGER NOT NULL,"
	"  type TEXT NOT NULL,"
	"  key TEXT, team TEXT, session TEXT, method TEXT, server TEXT, target TEXT,"
	"  decision TEXT, reason TEXT, status TEXT,"
	"  error_code INTEGER, error_message TEXT,"
	"  latency_us INTEGER, upstream_us INTEGER, cost_micros INTEGER, result_bytes INTEGER,"
	"  trace_id TEXT,"
	"  record TEXT NOT NULL,"
	"  hash BLOB NOT NULL);"
	/* Block summaries (observe/logblock.h) instead of an index per filter: one row per 1024
	 * ids, written once per batch, holds the block's time range and a bloom filter of its
	 * keys, teams, servers and targets (version 3; docs/performance.md "Issue 11's third
	 * pass"). */
	"CREATE TABLE IF NOT EXISTS blocks ("
	"  blk INTEGER PRIMARY KEY,"
	"  min_ts INTEGER NOT NULL,"
	"  max_ts INTEGER NOT NULL,"
	"  bloom BLOB NOT NULL);"
	/* Only the rare values: an "allow" or "ok" row (nearly every row) costs no index insert,
	 * and a filter on them finds its page among the newest rows at once. The logs API names
	 * the index's condition in its query (observe/logquery.c) so that SQLite uses it. */
	"CREATE INDEX IF NOT EXISTS records_refused ON records(decision, id)"
	"  WHERE decision <> 'allow';"
	"CREATE INDEX IF NOT EXISTS records_failed ON records(status, id) WHERE status <> 'ok';"
	/* Free text over the reasons and error messages, of the rows that have one (~10%; version
	 * 4). Kept in step by the writer: a plain insert for each such row (text_index) and one
	 * statement a transaction for deletions (delete_upto), not row triggers (FTS5 under a
	 * trigger flushes per row, 6x the cost of the whole insert). Its content is a view of
	 * those rows, so that the index and its content agree (FTS5's integrity-check). */
	"CREATE VIEW IF NOT EXISTS records_text AS SELECT id, reason, error_message FROM records"
	"  WHERE reason IS NOT NULL OR error_message IS NOT NULL;"
	"CREATE VIRTUAL TABLE IF NOT EXISTS records_fts USING fts5(reason, error_message,"
	"  content='records_text', content_rowid='id');"
	/* Free text over targets: every distinct target once (the writer adds a new one as it
	 * first sees it), indexed; the logs API matches q against them and walks the blocks whose
	 * bloom has a match (version 4; docs/performance.md "Issue 11's fourth pass"). last_id
	 * (version 5): the last id of the newest block with a record naming it, so that retention
	 * drops the targets no remaining record names (delete_upto); the writer moves it at most
	 * once per target and block (target_note). */
	"CREATE TABLE IF NOT EXISTS targets ("
	"  id INTEGER PRIMARY KEY,"
	"  name TEXT NOT NULL UNIQUE,"
	"  last_id INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX IF NOT EXISTS targets_last ON targets(last_id);"
	"CREATE VIRTUAL TABLE IF NOT EXISTS targets_fts USING fts5(name, content='targets',"
	"  content_rowid='id');"
	/* The anchor (hash before first_id) and, beyond the contract's two columns, the head
	 * (last_id and its hash), so that a row added after the head shows as inserted. */
	"CREATE TABLE IF NOT EXISTS chain ("
	"  id INTEGER PRIMARY KEY CHECK (id = 1),"
	"  first_id INTEGER NOT NULL,"
	"  prev_hash BLOB NOT NULL,"
	"  last_id INTEGER NOT NULL,"
	"  head BLOB NOT NULL);"
	"INSERT OR IGNORE INTO chain (id, first_id, prev_hash, last_id, head)"
	"  VALUES (1, 1, zeroblob(32), 0, zeroblob(32));"
	/* Version 1 indexed every decision and status, and key, team, target, server without ts. */
	"DROP INDEX IF EXISTS records_decision;"
	"DROP INDEX IF EXISTS records_status;"
	"DROP INDEX IF EXISTS records_key;"
	"DROP INDEX IF EXISTS records_team;"
	"DROP INDEX IF EXISTS records_target;"
	"DROP INDEX IF EXISTS records_server;"
	/* Version 2 indexed ts, and key, team, target and server with (id, ts). */
	"DROP INDEX IF EXISTS records_ts;"
	"DROP INDEX IF EXISTS records_key_ts;"
	"DROP INDEX IF EXISTS records_team_ts;"
	"DROP INDEX IF EXISTS records_target_ts;"
	"DROP INDEX IF EXISTS records_server_ts;"
	"PRAGMA user_version = 5;";

/* Version 3 indexed target with reason and error_message, in every row: the index goes before
 * the schema makes the new one, and is filled again (with the targets) after it. */
static const char to_v4_before[] = "DROP TABLE IF EXISTS records_fts;";
static const char to_v4_after[] =
	"INSERT INTO records_fts (records_fts) VALUES ('rebuild');"
	"INSERT OR IGNORE INTO targets (name) SELECT DISTINCT target FROM records"
	"  WHERE target IS NOT NULL;"
	"INSERT INTO targets_fts (targets_fts) VALUES ('rebuild');";

/* Version 4's targets had no last_id: the column goes in before the schema indexes it; after
 * it, each target gets its newest record's block end (one pass over the records, at open),
 * and the targets no record names any more are dropped (and forgotten by targets_fts). */
static const char to_v5_before[] =
	"ALTER TABLE targets ADD COLUMN last_id INTEGER NOT NULL DEFAULT 0;";
static const char to_v5_after[] =
	"UPDATE targets SET last_id = m.last FROM (SELECT target, max(id) | 1023 AS last"
	"  FROM records WHERE target IS NOT NULL GROUP BY target) AS m WHERE m.target = targets.name;"
	"INSERT INTO targets_fts (targets_fts, rowid, name) SELECT 'delete', id, name FROM targets"
	"  WHERE last_id = 0;"
	"DELETE FROM targets WHERE last_id = 0;";
_Static_assert(LOGBLOCK_IDS == 1024, "to_v5_after rounds ids up to a block's end");

/* Targets dropped per retention chunk, at most; more (a chunk whose block ends let go of
 * more names) go with the next chunks. */
#define TRIM_TARGETS_MAX 2048

/* The targets the writer knows are in the table: a cache that spares a statement per record.
 * Emptied when it reaches this many (then refilled as targets come), and after a failed
 * batch (its rows rolled back). */
#define KNOWN_TARGETS_MAX 65536

struct known_target {
	struct htab_node node;
	int64_t last;                   /* its last_id in the table */
	char name[];
};

/* The summary of the block being filled, as in the table once its batch commits. */
struct block {
	int64_t blk;                    /* -1: none loaded */
	int64_t min_ts, max_ts;
	bool any;                       /* min_ts/max_ts hold a record's */
	uint8_t bloom[LOGBLOCK_BLOOM_BYTES];
};

struct logstore_db {
	sqlite3 *db;
	sqlite3_stmt *ins, *fts_ins, *head, *begin, *commit, *rollback, *blk_get, *blk_put;
	sqlite3_stmt *tgt_ins, *tgt_fts, *tgt_last, *tgt_due, *tgt_due_blk, *tgt_unfts, *tgt_del;
	struct htab known;              /* struct known_target by name */
	struct logchain_hasher *hasher; /* the writer's: no allocation per link */
	struct logstore_chain chain;
	struct block cur;
	int64_t floor;                  /* retention by size stops here: fit_pages */
};

static int exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK) {
		log_error("logs: %s", msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		return store_db_errno(rc) ? store_db_errno(rc) : -EIO;
	}
	return 0;
}

static int64_t pragma_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *s = NULL;
	int64_t v = -1;

	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return v;
}

/* Step s once and reset it, its bindings kept: for a statement whose every parameter is
 * bound before each step. */
static int step_rebind(sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);

	sqlite3_reset(s);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : (store_db_errno(rc) ? store_db_errno(rc)
								       : -EIO);
}

static int step_reset(sqlite3_stmt *s)
{
	int rc = step_rebind(s);

	sqlite3_clear_bindings(s);
	return rc;
}

/* Text of a known length, or NULL. */
static void bind_text_or_null(sqlite3_stmt *s, int i, const char *t, uint32_t len)
{
	if (t)
		sqlite3_bind_text(s, i, t, (int)len, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, i);
}

static int blob32(sqlite3_stmt *s, int col, uint8_t out[LOGCHAIN_HASH_LEN])
{
	const void *b = sqlite3_column_blob(s, col);

	if (!b || sqlite3_column_bytes(s, col) != LOGCHAIN_HASH_LEN)
		return -EIO;
	memcpy(out, b, LOGCHAIN_HASH_LEN);
	return 0;
}

static int load_chain(struct logstore_db *d)
{
	sqlite3_stmt *s = NULL;
	int rc = -EIO;

	if (sqlite3_prepare_v2(d->db, "SELECT first_id, prev_hash, last_id, head FROM chain "
			       "WHERE id = 1", -1, &s, NULL) != SQLITE_OK)
		goto out;
	if (sqlite3_step(s) != SQLITE_ROW)
		goto out;
	d->chain.first_id = sqlite3_column_int64(s, 0);
	d->chain.last_id = sqlite3_column_int64(s, 2);
	if (blob32(s, 1, d->chain.prev_hash) || blob32(s, 3, d->chain.head))
		goto out;
	rc = 0;
out:
	sqlite3_finalize(s);
	return rc;
}

/* ---- targets ---- */

static uint64_t known_hash(const struct htab *t, const void *key)
{
	return htab_hash_str(t, key);
}

static bool known_eq(const struct htab_node *n, const void *key)
{
	return !strcmp(htab_entry(n, struct known_target, node)->name, key);
}

static const struct htab_type known_type = { .hash = known_hash, .eq = known_eq };

static void known_free(struct htab_node *n, void *arg)
{
	(void)arg;
	free(htab_entry(n, struct known_target, node));
}

/* The last id of id's block: a target's last_id, so that it moves once per block. */
static int64_t block_end(int64_t id)
{
	return id | (LOGBLOCK_IDS - 1);
}

/* Record id's target into the table of targets the first time it is seen, and its last_id
 * onto id's block the first time in each block. */
static int target_note(struct logstore_db *d, const char *name, int64_t id)
{
	struct known_target *k = NULL;
	struct htab_node *n;
	int64_t end = block_end(id);
	uint64_t h;
	size_t len;
	int rc;

	if (!name)
		return 0;
	h = htab_hash_str(&d->known, name);
	if ((n = htab_find_hashed(&d->known, name, h))) {
		k = htab_entry(n, struct known_target, node);
		if (k->last >= id)
			return 0;
	} else {
		sqlite3_bind_text(d->tgt_ins, 1, name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(d->tgt_ins, 2, end);
		if ((rc = step_reset(d->tgt_ins)))
			return rc;
		if (sqlite3_changes(d->db) == 1) {
			sqlite3_bind_int64(d->tgt_fts, 1, sqlite3_last_insert_rowid(d->db));
			sqlite3_bind_text(d->tgt_fts, 2, name, -1, SQLITE_STATIC);
			if ((rc = step_reset(d->tgt_fts)))
				return rc;
			goto cache;
		}
	}
	sqlite3_bind_text(d->tgt_last, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(d->tgt_last, 2, end);
	if ((rc = step_reset(d->tgt_last)))
		return rc;
	if (k) {
		k->last = end;
		return 0;
	}
cache:
	if (htab_count(&d->known) >= KNOWN_TARGETS_MAX)
		htab_drain(&d->known, known_free, NULL);
	len = strlen(name);
	k = malloc(sizeof(*k) + len + 1);
	if (k) {                /* without it, only the next record's lookup is repeated */
		k->last = end;
		memcpy(k->name, name, len + 1);
		htab_insert_hashed(&d->known, &k->node, h);
	}
	return 0;
}

/* Forget name in the cache (it is no longer in the table). */
static void target_forget(struct logstore_db *d, const char *name)
{
	struct htab_node *n = htab_find(&d->known, name);

	if (n) {
		htab_remove(&d->known, n);
		known_free(n, NULL);
	}
}

/* Drop the rows stmt (bound) selects, as targets no remaining record names, from
 * targets_fts (given the values it indexed), the table and the cache; *left: how many more
 * may go. 0 or -errno. */
static int targets_drop(struct logstore_db *d, sqlite3_stmt *stmt, int *left, int64_t *n)
{
	int rc = SQLITE_DONE;

	/* Deleting the row just read is safe while the scan goes on (sqlite.org/isolation.html). */
	while (*left > 0 && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(stmt, 0);
		const char *name = (const char *)sqlite3_column_text(stmt, 1);
		if (!name) {
			rc = SQLITE_CORRUPT;
			break;
		}
		target_forget(d, name);
		sqlite3_bind_int64(d->tgt_unfts, 1, id);
		sqlite3_bind_text(d->tgt_unfts, 2, name, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(d->tgt_del, 1, id);
		if ((rc = step_reset(d->tgt_unfts)) || (rc = step_reset(d->tgt_del)))
			break;
		(*n)++;
		(*left)--;
	}
	if (*left == 0)
		rc = SQLITE_DONE;
	sqlite3_reset(stmt);
	sqlite3_clear_bindings(stmt);
	if (rc < 0)
		return rc;
	return rc == SQLITE_DONE ? 0 : store_db_errno(rc) ? store_db_errno(rc) : -EIO;
}

/* After the records up to cut were deleted (in the caller's transaction): drop the targets
 * that only they named, at most TRIM_TARGETS_MAX. Those whose newest record's block is gone
 * (last_id <= cut), and those whose newest record's block is cut's own, when none of its
 * remaining records (cut + 1 to the block's end, at most 1023) names them. The number
 * dropped or -errno. */
static int64_t targets_trim(struct logstore_db *d, int64_t cut)
{
	int64_t n = 0, end = block_end(cut);
	int left = TRIM_TARGETS_MAX, rc;

	sqlite3_bind_int64(d->tgt_due, 1, cut);
	if ((rc = targets_drop(d, d->tgt_due, &left, &n)))
		return rc;
	if (end > cut) {
		sqlite3_bind_int64(d->tgt_due_blk, 1, cut);
		sqlite3_bind_int64(d->tgt_due_blk, 2, end);
		if ((rc = targets_drop(d, d->tgt_due_blk, &left, &n)))
			return rc;
	}
	return n;
}

/* ---- block summaries ---- */

/* Make blk the current block: its stored summary, or an empty one. */
static int block_load(struct logstore_db *d, int64_t blk)
{
	struct block *b = &d->cur;
	int rc;

	memset(b, 0, sizeof(*b));
	b->blk = blk;
	sqlite3_bind_int64(d->blk_get, 1, blk);
	rc = sqlite3_step(d->blk_get);
	if (rc == SQLITE_ROW && sqlite3_column_bytes(d->blk_get, 2) == LOGBLOCK_BLOOM_BYTES) {
		b->min_ts = sqlite3_column_int64(d->blk_get, 0);
		b->max_ts = sqlite3_column_int64(d->blk_get, 1);
		memcpy(b->bloom, sqlite3_column_blob(d->blk_get, 2), LOGBLOCK_BLOOM_BYTES);
		b->any = true;
	}
	sqlite3_reset(d->blk_get);
	sqlite3_clear_bindings(d->blk_get);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		b->blk = -1;
		return store_db_errno(rc) ? store_db_errno(rc) : -EIO;
	}
	return 0;
}

static int block_put(struct logstore_db *d)
{
	struct block *b = &d->cur;

	if (b->blk < 0 || !b->any)
		return 0;
	sqlite3_bind_int64(d->blk_put, 1, b->blk);
	sqlite3_bind_int64(d->blk_put, 2, b->min_ts);
	sqlite3_bind_int64(d->blk_put, 3, b->max_ts);
	sqlite3_bind_blob(d->blk_put, 4, b->bloom, LOGBLOCK_BLOOM_BYTES, SQLITE_STATIC);
	return step_reset(d->blk_put);
}

/* Add one record to its block's summary, writing the previous block's when it moves on. */
static int block_add(struct logstore_db *d, int64_t id, int64_t ts, const char *key,
		     const char *team, const char *server, const char *target)
{
	struct block *b = &d->cur;
	int64_t blk = logblock_of(id);
	int rc;

	if (b->blk != blk && ((rc = block_put(d)) || (rc = block_load(d, blk))))
		return rc;
	if (!b->any || ts < b->min_ts)
		b->min_ts = ts;
	if (!b->any || ts > b->max_ts)
		b->max_ts = ts;
	b->any = true;
	logblock_add(b->bloom, LOGBLOCK_KEY, key);
	logblock_add(b->bloom, LOGBLOCK_TEAM, team);
	logblock_add(b->bloom, LOGBLOCK_SERVER, server);
	logblock_add(b->bloom, LOGBLOCK_TARGET, target);
	return 0;
}

/* Summaries for the records past the last summarized block: all of them in a store of an
 * earlier version (or filled by another program, as the tests and benchmarks do). Once, in
 * one transaction, at open (before the daemon serves). */
static int block_backfill(struct logstore_db *d)
{
	sqlite3_stmt *s = NULL;
	int64_t n = 0;
	int rc = -EIO;

	if (sqlite3_prepare_v2(d->db, "SELECT id, ts, key, team, server, target FROM records "
			       "WHERE id >= (SELECT COALESCE(max(blk), -1) FROM blocks) * ?1 "
			       "ORDER BY id", -1, &s, NULL) != SQLITE_OK)
		goto out;
	sqlite3_bind_int64(s, 1, LOGBLOCK_IDS);
	if ((rc = step_reset(d->begin)))
		goto out;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if ((rc = block_add(d, sqlite3_column_int64(s, 0), sqlite3_column_int64(s, 1),
				    (const char *)sqlite3_column_text(s, 2),
				    (const char *)sqlite3_column_text(s, 3),
				    (const char *)sqlite3_column_text(s, 4),
				    (const char *)sqlite3_column_text(s, 5))) ||
		    (rc = target_note(d, (const char *)sqlite3_column_text(s, 5),
				      sqlite3_column_int64(s, 0))))
			break;
		n++;
	}
	if (rc == SQLITE_DONE)
		rc = block_put(d);
	else if (rc > 0)
		rc = store_db_errno(rc) ? store_db_errno(rc) : -EIO;
	if (!rc)
		rc = step_reset(d->commit);
	if (rc)
		step_reset(d->rollback);
	else if (n > LOGBLOCK_IDS)
		log_info("logs: block summaries made for %lld records", (long long)n);
out:
	sqlite3_finalize(s);
	d->cur.blk = -1;        /* loaded again from the table at the next insert */
	if (rc)
		htab_drain(&d->known, known_free, NULL);
	return rc;
}

/* The pages holding data (the file only shrinks with a VACUUM; freed pages are reused). */
static int64_t used_bytes(sqlite3 *db)
{
	int64_t pages = pragma_int(db, "PRAGMA page_count");
	int64_t free_pages = pragma_int(db, "PRAGMA freelist_count");
	int64_t size = pragma_int(db, "PRAGMA page_size");

	return pages < 0 || free_pages < 0 || size < 0 ? -1 : (pages - free_pages) * size;
}

/* NORMAL: a commit is in the WAL (page cache) at once, fsynced at checkpoints; a power cut
 * can lose the last moments, which the chain then shows as its end. 16 KiB pages for a new
 * store of LOGSTORE_LARGE_PAGES_FROM and more: a batch's commit writes a quarter as many WAL
 * frames (SQLite writes each with two pwrites), and the writer's CPU per record fell by a
 * third (docs/performance.md, "The log store's page size"). A smaller store keeps SQLite's
 * 4 KiB: its tables and indexes, a page each at least, would not fit a few hundred KiB. The
 * checkpoint comes at 32 MiB of WAL, in pages of the file's own size. */
#define LARGE_PAGE_SIZE 16384
#define SMALL_PAGE_SIZE 4096
#define WAL_CHECKPOINT_BYTES (32 << 20)
#define REPAGE_MAX_BYTES (64LL << 20)   /* a store copied at start to change its page size */
static const struct store_db_spec writer_db = {
	.who = "logs", .wal = true, .busy_ms = 5000,
	.pragmas = "PRAGMA synchronous = NORMAL; PRAGMA cache_size = -2048; "
		   "PRAGMA temp_store = MEMORY; PRAGMA journal_size_limit = 67108864;",
};

/* A store made with another page size than max_bytes wants (logs.max_bytes changed), small
 * enough to copy at start, is rewritten with it: SQLite changes the page size of a file only
 * by a VACUUM out of WAL mode. Then the checkpoint interval, and the floor of retention by
 * size: twice the store's skeleton (a page per table and index), which no deletion shrinks,
 * so that a bound below it does not have retention delete every record, and note each chunk
 * (a record itself), for ever. */
static int fit_pages(struct logstore_db *d, const char *path, int64_t want)
{
	int64_t page = pragma_int(d->db, "PRAGMA page_size");
	int64_t used = used_bytes(d->db);
	char sql[128];

	if (page > 0 && page != want && used >= 0 && used <= REPAGE_MAX_BYTES) {
		snprintf(sql, sizeof(sql), "PRAGMA journal_mode = DELETE; PRAGMA page_size = %lld; "
			 "VACUUM;", (long long)want);
		if (exec(d->db, sql) == 0)
			log_info("logs: %s rewritten with pages of %lld bytes (were %lld), as "
				 "logs.max_bytes wants", path, (long long)want, (long long)page);
		/* WAL again, whatever became of the rest */
		int rc = store_db_wal(d->db, path, "logs");
		if (rc)
			return rc;
		page = pragma_int(d->db, "PRAGMA page_size");
	}
	if (page <= 0)
		page = SMALL_PAGE_SIZE;
	snprintf(sql, sizeof(sql), "PRAGMA wal_autocheckpoint = %lld",
		 (long long)(WAL_CHECKPOINT_BYTES / page));
	return exec(d->db, sql);
}

/* Once the schema is in: see fit_pages. */
static void set_floor(struct logstore_db *d, const char *path, int64_t max_bytes)
{
	d->floor = 2 * pragma_int(d->db, "PRAGMA page_size") *
		   pragma_int(d->db, "SELECT count(*) FROM sqlite_schema WHERE rootpage > 0");
	if (max_bytes < d->floor)
		log_warn("logs: logs.max_bytes (%lld) is below what %s needs however few records it "
			 "holds: it is kept to %lld bytes", (long long)max_bytes, path,
			 (long long)d->floor);
}

int logstore_db_open(const char *path, int64_t max_bytes, struct logstore_db **out)
{
	struct store_db_spec spec = writer_db;
	struct logstore_db *d = calloc(1, sizeof(*d));
	int64_t version;
	int rc;

	*out = NULL;
	if (!d)
		return -ENOMEM;
	if ((rc = htab_init(&d->known, &known_type))) {
		free(d);
		return rc;
	}
	if ((rc = logchain_hasher_new(&d->hasher)))
		goto fail;
	spec.new_page_size = max_bytes >= LOGSTORE_LARGE_PAGES_FROM ? LARGE_PAGE_SIZE
								    : SMALL_PAGE_SIZE;
	if ((rc = store_db_open(path, &spec, &d->db)) ||
	    (rc = fit_pages(d, path, spec.new_page_size)) ||
	    (rc = exec(d->db, "BEGIN IMMEDIATE")))
		goto fail;
	version = pragma_int(d->db, "PRAGMA user_version");
	if (version > LOGSTORE_SCHEMA_VERSION) {
		log_error("logs: %s has schema version %lld, newer than this mcpwarden's %d: "
			  "refusing to use it", path, (long long)version, LOGSTORE_SCHEMA_VERSION);
		exec(d->db, "ROLLBACK");
		rc = -EPROTO;
		goto fail;
	}
	if ((version < 4 && (rc = exec(d->db, to_v4_before))) ||
	    (version == 4 && (rc = exec(d->db, to_v5_before))) || (rc = exec(d->db, schema)) ||
	    (version < 4 && (rc = exec(d->db, to_v4_after))) ||
	    (version > 0 && version < 5 && (rc = exec(d->db, to_v5_after)))) {
		exec(d->db, "ROLLBACK");
		goto fail;
	}
	if (version > 0 && version < 5)
		log_info("logs: %s converted to schema version 5 (free text over reasons and errors, "
			 "a table of targets that retention trims)", path);
	if ((rc = exec(d->db, "COMMIT")) || (rc = load_chain(d)))
		goto fail;
	set_floor(d, path, max_bytes);
	if (sqlite3_prepare_v2(d->db,
		"INSERT INTO records (id, ts, type, key, team, session, method, server, target,"
		" decision, reason, status, error_message, trace_id, error_code, latency_us,"
		" upstream_us, cost_micros, result_bytes, record, hash) VALUES (?1, ?2, ?3, ?4,"
		" ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)",
		-1, &d->ins, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(d->db, "INSERT INTO records_fts (rowid, reason, error_message)"
			       " VALUES (?1, ?2, ?3)", -1, &d->fts_ins, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(d->db, "INSERT OR IGNORE INTO targets (name, last_id) VALUES (?1, ?2)",
			       -1, &d->tgt_ins, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(d->db, "UPDATE targets SET last_id = ?2 WHERE name = ?1 AND "
			       "last_id < ?2", -1, &d->tgt_last, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(d->db, "SELECT id, name FROM targets WHERE last_id <= ?1", -1,
			       &d->tgt_due, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(d->db, "SELECT id, name FROM targets WHERE last_id = ?2 AND name "
			       "NOT IN (SELECT target FROM records WHERE id > ?1 AND id <= ?2 AND "
			       "target IS NOT NULL)", -1, &d->tgt_due_blk, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(d->db, "INSERT INTO targets_fts (targets_fts, rowid, name) "
			       "VALUES ('delete', ?1, ?2)", -1, &d->tgt_unfts, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(d->db, "DELETE FROM targets WHERE id = ?1", -1, &d->tgt_del,
			       NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(d->db, "INSERT INTO targets_fts (rowid, name) VALUES (?1, ?2)", -1,
			       &d->tgt_fts, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(d->db, "UPDATE chain SET last_id = ?1, head = ?2 WHERE id = 1",
			       -1, &d->head, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(d->db, "BEGIN IMMEDIATE", -1, &d->begin, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(d->db, "COMMIT", -1, &d->commit, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(d->db, "ROLLBACK", -1, &d->rollback, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(d->db, "SELECT min_ts, max_ts, bloom FROM blocks WHERE blk = ?1",
			       -1, &d->blk_get, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(d->db, "INSERT OR REPLACE INTO blocks (blk, min_ts, max_ts, bloom)"
			       " VALUES (?1, ?2, ?3, ?4)", -1, &d->blk_put, NULL) != SQLITE_OK) {
		log_error("logs: %s", sqlite3_errmsg(d->db));
		rc = -EIO;
		goto fail;
	}
	d->cur.blk = -1;
	if ((rc = block_backfill(d)))
		goto fail;
	*out = d;
	return 0;
fail:
	logstore_db_close(d);
	return rc;
}

void logstore_db_close(struct logstore_db *d)
{
	if (!d)
		return;
	sqlite3_finalize(d->ins);
	sqlite3_finalize(d->fts_ins);
	sqlite3_finalize(d->head);
	sqlite3_finalize(d->begin);
	sqlite3_finalize(d->commit);
	sqlite3_finalize(d->rollback);
	sqlite3_finalize(d->blk_get);
	sqlite3_finalize(d->blk_put);
	sqlite3_finalize(d->tgt_ins);
	sqlite3_finalize(d->tgt_fts);
	sqlite3_finalize(d->tgt_last);
	sqlite3_finalize(d->tgt_due);
	sqlite3_finalize(d->tgt_due_blk);
	sqlite3_finalize(d->tgt_unfts);
	sqlite3_finalize(d->tgt_del);
	htab_drain(&d->known, known_free, NULL);
	htab_fini(&d->known);
	logchain_hasher_free(d->hasher);
	if (d->db) {
		/* Leave the file whole (no WAL to replay) for readers and backups. */
		sqlite3_wal_checkpoint_v2(d->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
		sqlite3_close(d->db);
	}
	free(d);
}

void logstore_db_chain(const struct logstore_db *d, struct logstore_chain *out)
{
	*out = d->chain;
}

/* Every parameter bound (NULL where the row has none, lengths known): no strlen in SQLite,
 * no clearing of the bindings between rows. */
static int insert_one(struct logstore_db *d, const struct logstore_row *r,
		      const uint8_t hash[LOGCHAIN_HASH_LEN])
{
	sqlite3_stmt *s = d->ins;

	sqlite3_bind_int64(s, 1, r->id);
	sqlite3_bind_int64(s, 2, r->ts);
	sqlite3_bind_text(s, 3, r->type, -1, SQLITE_STATIC);
	for (int i = 0; i < LOGSTORE_NTEXT; i++)
		bind_text_or_null(s, 4 + i, r->text[i], r->text_len[i]);
	for (int i = 0; i < LOGSTORE_NINT; i++)
		if (r->has_int[i])
			sqlite3_bind_int64(s, 4 + LOGSTORE_NTEXT + i, r->ints[i]);
		else
			sqlite3_bind_null(s, 4 + LOGSTORE_NTEXT + i);
	sqlite3_bind_text(s, 20, r->record, (int)r->record_len, SQLITE_STATIC);
	sqlite3_bind_blob(s, 21, hash, LOGCHAIN_HASH_LEN, SQLITE_STATIC);
	return step_rebind(s);
}

/* A row with a reason or an error message into the free-text index, as records_text shows it:
 * one statement a row (no statement journal: FTS5 keeps the terms until the commit), not a
 * pass over the batch's rows read back, which cost ~700 instructions a record. */
static int text_index(struct logstore_db *d, const struct logstore_row *r)
{
	if (!r->text[LS_REASON] && !r->text[LS_ERROR_MESSAGE])
		return 0;
	sqlite3_bind_int64(d->fts_ins, 1, r->id);
	bind_text_or_null(d->fts_ins, 2, r->text[LS_REASON], r->text_len[LS_REASON]);
	bind_text_or_null(d->fts_ins, 3, r->text[LS_ERROR_MESSAGE], r->text_len[LS_ERROR_MESSAGE]);
	return step_rebind(d->fts_ins);
}

int logstore_db_insert(struct logstore_db *d, struct logstore_row *const *rows, size_t n)
{
	uint8_t h[LOGCHAIN_HASH_LEN];
	int64_t last = d->chain.last_id;
	int rc;

	memcpy(h, d->chain.last_id >= d->chain.first_id ? d->chain.head : d->chain.prev_hash,
	       sizeof(h));
	if ((rc = step_reset(d->begin)))
		return rc;
	for (size_t i = 0; i < n; i++) {
		const struct logstore_row *r = rows[i];
		if ((rc = logchain_hasher_link(d->hasher, h, r->record, r->record_len, h)) ||
		    (rc = insert_one(d, r, h)) || (rc = text_index(d, r)) ||
		    (rc = block_add(d, r->id, r->ts, r->text[0], r->text[1], r->text[4],
				    r->text[5])) ||
		    (rc = target_note(d, r->text[5], r->id)))
			goto fail;
		last = rows[i]->id;
		thread_pace(i, PACE_ROWS);
	}
	if (n && (rc = block_put(d)))
		goto fail;
	sqlite3_bind_int64(d->head, 1, last);
	sqlite3_bind_blob(d->head, 2, h, sizeof(h), SQLITE_STATIC);
	if ((rc = step_reset(d->head)) || (rc = step_reset(d->commit)))
		goto fail;
	d->chain.last_id = last;
	memcpy(d->chain.head, h, sizeof(h));
	return 0;
fail:
	step_reset(d->rollback);
	d->cur.blk = -1;        /* the summary in memory may hold rolled-back records */
	htab_drain(&d->known, known_free, NULL);        /* and the cache rolled-back targets */
	return rc;
}



/* The last id of the oldest run of records older than cutoff (at most RETAIN_CHUNK), or 0. */
static int64_t age_cut(struct logstore_db *d, int64_t cutoff)
{
	sqlite3_stmt *s = NULL;
	int64_t cut = 0;

	if (sqlite3_prepare_v2(d->db, "SELECT id, ts FROM records WHERE id >= ?1 ORDER BY id "
			       "LIMIT ?2", -1, &s, NULL) != SQLITE_OK)
		return 0;
	sqlite3_bind_int64(s, 1, d->chain.first_id);
	sqlite3_bind_int(s, 2, RETAIN_CHUNK);
	while (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_int64(s, 1) < cutoff)
		cut = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return cut;
}

/* Delete ids first_id..cut and move the anchor to cut + 1 in one transaction. */
static int delete_upto(struct logstore_db *d, int64_t cut, struct logstore_retained *out)
{
	sqlite3_stmt *s = NULL;
	uint8_t prev[LOGCHAIN_HASH_LEN];
	int rc;

	if ((rc = step_reset(d->begin)))
		return rc;
	rc = -EIO;
	/* The anchor is the hash of the last deleted record, as stored. */
	if (sqlite3_prepare_v2(d->db, "SELECT hash FROM records WHERE id <= ?1 ORDER BY id DESC "
			       "LIMIT 1", -1, &s, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_bind_int64(s, 1, cut);
	if (sqlite3_step(s) != SQLITE_ROW || blob32(s, 0, prev))
		goto fail;
	sqlite3_finalize(s);
	s = NULL;
	/* Out of the free-text index first: an external-content FTS5 table forgets a row by
	 * being given the values it indexed. */
	if (sqlite3_prepare_v2(d->db, "INSERT INTO records_fts (records_fts, rowid, reason,"
			       " error_message) SELECT 'delete', id, reason, error_message FROM records"
			       " WHERE id <= ?1 AND (reason IS NOT NULL OR error_message IS NOT NULL)",
			       -1, &s, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_bind_int64(s, 1, cut);
	if ((rc = step_reset(s)))
		goto fail;
	sqlite3_finalize(s);
	s = NULL;
	rc = -EIO;
	if (sqlite3_prepare_v2(d->db, "DELETE FROM records WHERE id <= ?1", -1, &s, NULL) !=
	    SQLITE_OK)
		goto fail;
	sqlite3_bind_int64(s, 1, cut);
	if ((rc = step_reset(s)))
		goto fail;
	out->deleted = sqlite3_changes(d->db);
	sqlite3_finalize(s);
	s = NULL;
	/* The targets only deleted records named: q stops looking at them. */
	if ((out->targets = targets_trim(d, cut)) < 0) {
		rc = (int)out->targets;
		goto fail;
	}
	rc = -EIO;
	/* The summaries of the blocks now wholly deleted; a block cut in two keeps its own (a
	 * summary of more than the block holds only costs a look at it). */
	if (sqlite3_prepare_v2(d->db, "DELETE FROM blocks WHERE blk < ?1", -1, &s, NULL) !=
	    SQLITE_OK)
		goto fail;
	sqlite3_bind_int64(s, 1, logblock_of(cut + 1));
	if ((rc = step_reset(s)))
		goto fail;
	out->blocks = sqlite3_changes(d->db);
	sqlite3_finalize(s);
	s = NULL;
	rc = -EIO;
	if (sqlite3_prepare_v2(d->db, "UPDATE chain SET first_id = ?1, prev_hash = ?2 WHERE id = 1",
			       -1, &s, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_bind_int64(s, 1, cut + 1);
	sqlite3_bind_blob(s, 2, prev, sizeof(prev), SQLITE_STATIC);
	if ((rc = step_reset(s)) || (rc = step_reset(d->commit)))
		goto fail;
	sqlite3_finalize(s);
	d->chain.first_id = cut + 1;
	memcpy(d->chain.prev_hash, prev, sizeof(prev));
	out->first_id = cut + 1;
	memcpy(out->prev_hash, prev, sizeof(prev));
	return 1;
fail:
	sqlite3_finalize(s);
	step_reset(d->rollback);
	return rc;
}

int logstore_db_retain(struct logstore_db *d, int64_t cutoff_ms, int64_t max_bytes,
		       struct logstore_retained *out)
{
	int64_t stored = d->chain.last_id - d->chain.first_id + 1, cut = 0;

	memset(out, 0, sizeof(*out));
	if (stored <= 0)
		return 0;
	if (cutoff_ms != INT64_MIN)
		cut = age_cut(d, cutoff_ms);
	if (!cut) {
		int64_t used = used_bytes(d->db);
		if (used < 0 || used <= max_bytes || used <= d->floor)
			return 0;
		/* A tenth at a time (whole chunks on a big store): the size falls in steps. */
		int64_t chunk = stored / 10 < RETAIN_CHUNK ? stored / 10 : RETAIN_CHUNK;
		cut = d->chain.first_id + (chunk > 0 ? chunk : 1) - 1;
		out->by_size = true;
	}
	return delete_upto(d, cut, out);
}
