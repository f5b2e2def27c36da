/* logverify: the chain walk behind `wardenctl audit verify`. */
#include "observe/logverify.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <sqlite3.h>
#include <cjson/cJSON.h>

#include "observe/logblock.h"
#include "store/db.h"
#include "base/json_get.h"

enum logverify_status logverify_say(struct logverify_result *r, enum logverify_status st,
				    int64_t id, const char *fmt, ...)
{
	va_list ap;

	r->status = st;
	r->id = id;
	va_start(ap, fmt);
	vsnprintf(r->detail, sizeof(r->detail), fmt, ap);
	va_end(ap);
	return st;
}

static bool blob32(sqlite3_stmt *s, int col, uint8_t out[LOGCHAIN_HASH_LEN])
{
	const void *b = sqlite3_column_blob(s, col);

	if (!b || sqlite3_column_bytes(s, col) != LOGCHAIN_HASH_LEN)
		return false;
	memcpy(out, b, LOGCHAIN_HASH_LEN);
	return true;
}

/* One integer from a query with up to one bound integer; *found false when no row/NULL. */
static int64_t query_int(sqlite3 *db, const char *sql, int64_t arg, bool *found)
{
	sqlite3_stmt *s = NULL;
	int64_t v = 0;

	*found = false;
	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
		return 0;
	if (sqlite3_bind_parameter_count(s) > 0)
		sqlite3_bind_int64(s, 1, arg);
	if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL) {
		v = sqlite3_column_int64(s, 0);
		*found = true;
	}
	sqlite3_finalize(s);
	return v;
}

/* The first record at or after since_ms, from first_id on. The block summaries (schema 3 on)
 * say where to start: no record of a block whose newest is older than since can be it, so the
 * scan starts at the first block that is not ruled out — one whose time range reaches since,
 * or one without a summary (written by another program) — instead of at the anchor. */
static int64_t first_since(sqlite3 *db, int64_t first_id, int64_t since_ms, bool *found)
{
	sqlite3_stmt *s = NULL;
	int64_t from = first_id, expect = logblock_of(first_id);
	int rc;

	if (sqlite3_prepare_v2(db, "SELECT blk, max_ts FROM blocks WHERE blk >= ?1 ORDER BY blk",
			       -1, &s, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(s, 1, expect);
		while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
			int64_t blk = sqlite3_column_int64(s, 0);
			if (blk > expect || sqlite3_column_int64(s, 1) >= since_ms)
				break;
			expect = blk + 1;
		}
		if (rc == SQLITE_ROW || rc == SQLITE_DONE)
			from = expect << LOGBLOCK_SHIFT > first_id ? expect << LOGBLOCK_SHIFT : first_id;
	}
	sqlite3_finalize(s);
	if (sqlite3_prepare_v2(db, "SELECT min(id) FROM records WHERE id >= ?1 AND ts >= ?2", -1,
			       &s, NULL) != SQLITE_OK) {
		*found = false;
		return 0;
	}
	sqlite3_bind_int64(s, 1, from);
	sqlite3_bind_int64(s, 2, since_ms);
	*found = sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL;
	from = *found ? sqlite3_column_int64(s, 0) : 0;
	sqlite3_finalize(s);
	return from;
}

/* The columns the walk reads after id, record and hash (the query below), each copied from
 * the record's field of the same name: the chain covers the record, and this ties the columns
 * that filters and the dashboard read to it. */
static const char *const text_cols[] = {
	"type", "key", "team", "session", "method", "server", "target", "decision", "reason",
	"status", "error_message", "trace_id",
};
static const char *const int_cols[] = {
	"error_code", "latency_us", "upstream_us", "cost_micros", "result_bytes",
};
#define NTEXT (sizeof(text_cols) / sizeof(text_cols[0]))
#define NINT (sizeof(int_cols) / sizeof(int_cols[0]))
#define FIRST_COL 4             /* id, record, hash, ts, then text_cols, then int_cols */

int64_t logverify_ts_ms(const char *s)
{
	struct tm tm = { 0 };
	int ms, n = 0;

	if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
			 &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms, &n) != 7 || s[n])
		return -1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (int64_t)timegm(&tm) * 1000 + ms;
}

/* The first column that does not match the record's text, or NULL. */
static const char *column_differs(sqlite3_stmt *s, const cJSON *o)
{
	const cJSON *v = json_get(o, "ts");

	if (sqlite3_column_int64(s, 3) != logverify_ts_ms(cJSON_IsString(v) ? v->valuestring : NULL))
		return "ts";
	for (size_t i = 0; i < NTEXT; i++) {
		const char *col = (const char *)sqlite3_column_text(s, FIRST_COL + (int)i);
		const char *want = logchain_text_column(o, text_cols[i]);
		if ((col == NULL) != (want == NULL) || (col && strcmp(col, want)))
			return text_cols[i];
	}
	for (size_t i = 0; i < NINT; i++) {
		int c = FIRST_COL + (int)NTEXT + (int)i;
		v = json_get(o, int_cols[i]);
		bool null = sqlite3_column_type(s, c) == SQLITE_NULL;
		/* as the writer keeps it (logstore.c): a number past int64_t's range is no column */
		bool num = cJSON_IsNumber(v) && v->valuedouble > -9.2e18 && v->valuedouble < 9.2e18;
		if (null != !num ||
		    (!null && (double)sqlite3_column_int64(s, c) != v->valuedouble))
			return int_cols[i];
	}
	return NULL;
}

static enum logverify_status walk(sqlite3 *db, const struct logverify_options *o,
				  struct logverify_result *r)
{
	uint8_t prev[LOGCHAIN_HASH_LEN], stored[LOGCHAIN_HASH_LEN], h[LOGCHAIN_HASH_LEN];
	sqlite3_stmt *s = NULL;
	int64_t start, expected;
	bool found;
	enum logverify_status st = LOGVERIFY_INTACT;

	if (sqlite3_prepare_v2(db, "SELECT first_id, prev_hash, last_id, head FROM chain WHERE "
			       "id = 1", -1, &s, NULL) != SQLITE_OK || sqlite3_step(s) != SQLITE_ROW ||
	    !blob32(s, 1, prev) || !blob32(s, 3, r->head)) {
		sqlite3_finalize(s);
		return logverify_say(r, LOGVERIFY_UNREADABLE, 0, "not a log store: no chain anchor (%s)",
			   sqlite3_errmsg(db));
	}
	r->first_id = sqlite3_column_int64(s, 0);
	r->last_id = sqlite3_column_int64(s, 2);
	sqlite3_finalize(s);
	s = NULL;

	int64_t before = query_int(db, "SELECT min(id) FROM records WHERE id < ?1", r->first_id,
				   &found);
	if (found)
		return logverify_say(r, LOGVERIFY_INSERTED, before, "record %lld is before the chain's anchor "
			   "(first id %lld)", (long long)before, (long long)r->first_id);
	start = r->first_id;
	if (o->since_ms != INT64_MIN) {
		start = first_since(db, r->first_id, o->since_ms, &found);
		if (!found)
			start = r->last_id + 1;
		if (start < r->first_id)
			start = r->first_id;
		if (start > r->first_id && start <= r->last_id) {
			/* From the stored hash of the record before: trusted, as --since asks. */
			if (sqlite3_prepare_v2(db, "SELECT hash FROM records WHERE id = ?1", -1, &s,
					       NULL) != SQLITE_OK)
				return logverify_say(r, LOGVERIFY_UNREADABLE, 0, "%s", sqlite3_errmsg(db));
			sqlite3_bind_int64(s, 1, start - 1);
			bool ok = sqlite3_step(s) == SQLITE_ROW && blob32(s, 0, prev);
			sqlite3_finalize(s);
			s = NULL;
			if (!ok)
				return logverify_say(r, LOGVERIFY_REMOVED, start - 1, "record %lld is missing",
					   (long long)(start - 1));
		}
	}
	if (o->have_checkpoint && o->checkpoint_seq > r->last_id)
		return logverify_say(r, LOGVERIFY_REMOVED, r->last_id + 1, "the store ends at record %lld, "
			   "before the checkpoint's record %lld: records %lld.. are missing",
			   (long long)r->last_id, (long long)o->checkpoint_seq,
			   (long long)r->last_id + 1);

	if (sqlite3_prepare_v2(db, "SELECT id, record, hash, ts, type, key, team, session, method,"
			       " server, target, decision, reason, status, error_message, trace_id,"
			       " error_code, latency_us, upstream_us, cost_micros, result_bytes"
			       " FROM records WHERE id >= ?1 ORDER BY id", -1, &s, NULL) != SQLITE_OK)
		return logverify_say(r, LOGVERIFY_UNREADABLE, 0, "%s", sqlite3_errmsg(db));
	sqlite3_bind_int64(s, 1, start);
	expected = start;
	for (;;) {
		int rc = sqlite3_step(s);
		if (rc == SQLITE_DONE)
			break;
		if (rc != SQLITE_ROW) {
			st = logverify_say(r, LOGVERIFY_UNREADABLE, expected, "%s", sqlite3_errmsg(db));
			goto out;
		}
		int64_t id = sqlite3_column_int64(s, 0);
		const char *text = (const char *)sqlite3_column_text(s, 1);
		int len = sqlite3_column_bytes(s, 1);
		if (id > r->last_id) {
			st = logverify_say(r, LOGVERIFY_INSERTED, id, "record %lld is after the chain's head "
				 "(record %lld)", (long long)id, (long long)r->last_id);
			goto out;
		}
		if (id != expected) {
			st = logverify_say(r, LOGVERIFY_REMOVED, expected, "record %lld is missing (the next "
				 "stored is %lld)", (long long)expected, (long long)id);
			goto out;
		}
		cJSON *rec = text ? cJSON_ParseWithLength(text, (size_t)len) : NULL;
		const cJSON *seq = json_get(rec, "seq");
		if (!cJSON_IsNumber(seq) || seq->valuedouble != (double)id) {
			cJSON_Delete(rec);
			st = logverify_say(r, LOGVERIFY_INSERTED, id, "record %lld does not carry its own "
				 "sequence number: it was not written there", (long long)id);
			goto out;
		}
		if (!blob32(s, 2, stored) || logchain_link(prev, text, (size_t)len, h) ||
		    memcmp(h, stored, sizeof(h))) {
			cJSON_Delete(rec);
			st = logverify_say(r, LOGVERIFY_CHANGED, id, "record %lld was changed: its hash does "
				 "not follow from the previous one", (long long)id);
			goto out;
		}
		const char *col = column_differs(s, rec);
		cJSON_Delete(rec);
		if (col) {
			st = logverify_say(r, LOGVERIFY_CHANGED, id, "record %lld was changed: its column %s "
				 "differs from its text", (long long)id, col);
			goto out;
		}
		if (o->have_checkpoint && id == o->checkpoint_seq) {
			r->checkpoint_checked = true;
			if (memcmp(h, o->checkpoint, sizeof(h))) {
				st = logverify_say(r, LOGVERIFY_CHANGED, id, "the chain up to record %lld differs "
					 "from the checkpoint: records up to it were rewritten",
					 (long long)id);
				goto out;
			}
		}
		memcpy(prev, h, sizeof(prev));
		r->checked++;
		expected++;
	}
	if (expected <= r->last_id) {
		st = logverify_say(r, LOGVERIFY_REMOVED, expected, "record %lld is missing (the chain's head "
			 "is %lld)", (long long)expected, (long long)r->last_id);
		goto out;
	}
	if (r->checked && memcmp(prev, r->head, sizeof(prev)))
		st = logverify_say(r, LOGVERIFY_CHANGED, r->last_id, "the chain's head does not match "
			 "record %lld", (long long)r->last_id);
	else
		st = logverify_say(r, LOGVERIFY_INTACT, 0, "intact: %lld record%s checked (ids %lld..%lld)",
			 (long long)r->checked, r->checked == 1 ? "" : "s", (long long)start,
			 (long long)r->last_id);
out:
	sqlite3_finalize(s);
	return st;
}

/* wardenctl says why it cannot open the file, in the result. */
static const struct store_db_spec reader_db = { .read_only = true, .busy_ms = 5000 };

enum logverify_status logverify_run(const struct logverify_options *o,
				    struct logverify_result *out)
{
	sqlite3 *db = NULL;
	enum logverify_status st;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = store_db_open(o->path, &reader_db, &db)))
		return logverify_say(out, LOGVERIFY_UNREADABLE, 0, "cannot open %s: %s", o->path,
			   strerror(-rc));
	/* One read transaction: the snapshot the whole walk sees. */
	if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
		st = logverify_say(out, LOGVERIFY_UNREADABLE, 0, "%s", sqlite3_errmsg(db));
	} else {
		st = walk(db, o, out);
		sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	}
	sqlite3_close(db);
	return st;
}
