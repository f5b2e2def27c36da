/* logquery_text: free text (q) over a log store of schema version 4, where FTS5 indexes only
 * the reasons and error messages and the targets are matched in their own small table
 * (observe/logstore_db.c): which targets q names, and which blocks of records a page has to
 * read for them (the blocks whose bloom may hold one, and those with a reason or error that
 * matches). Reader thread (observe/logquery.c). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>

#include "base/alloc.h"
#include "observe/logblock.h"
#include "observe/logquery_int.h"

/* (logquery_int.h) */
int logq_text_open(sqlite3 *db, const char *phrase, int64_t hi, struct logq_text *t)
{
	sqlite3_stmt *s = NULL;
	int rc;

	memset(t, 0, sizeof(*t));
	t->hit = -1;
	rc = sqlite3_prepare_v2(db, "SELECT name FROM targets_fts WHERE targets_fts MATCH ?1",
				-1, &s, NULL);
	if (rc != SQLITE_OK)
		return -EIO;
	sqlite3_bind_text(s, 1, phrase, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(s, 0);
		if (t->n == LOGQ_TEXT_TARGETS) {
			t->many = true;
			break;
		}
		if (name)
			t->names[t->n++] = xstrdup(name);
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		logq_text_close(t);
		return -EIO;
	}
	if (!t->n)
		return 0;
	/* The reasons and errors that match, newest first, walked down beside the blocks. */
	rc = sqlite3_prepare_v2(db, "SELECT rowid FROM records_fts WHERE records_fts MATCH ?1 AND "
				"rowid <= ?2 ORDER BY rowid DESC", -1, &t->hits, NULL);
	if (rc != SQLITE_OK) {
		logq_text_close(t);
		return -EIO;
	}
	sqlite3_bind_text(t->hits, 1, phrase, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(t->hits, 2, hi);
	t->hit = INT64_MAX;     /* not read yet */
	return 0;
}

/* (logquery_int.h) */
bool logq_text_may_be_in(struct logq_text *t, const uint8_t *bloom, int64_t lo, int64_t hi)
{
	if (!bloom || t->many || t->broken)
		return true;
	for (int k = 0; k < t->n; k++)
		if (logblock_may_have(bloom, LOGBLOCK_TARGET, t->names[k]))
			return true;
	while (t->hits && t->hit > hi) {
		int rc = sqlite3_step(t->hits);
		if (rc == SQLITE_ROW) {
			t->hit = sqlite3_column_int64(t->hits, 0);
		} else {
			t->broken = rc != SQLITE_DONE;  /* then every block is looked at */
			t->hit = -1;
			break;
		}
	}
	return t->broken || t->hit >= lo;
}

/* (logquery_int.h) */
void logq_text_close(struct logq_text *t)
{
	for (int k = 0; k < t->n; k++)
		free(t->names[k]);
	sqlite3_finalize(t->hits);
	memset(t, 0, sizeof(*t));
}
