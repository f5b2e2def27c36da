/* db: opening SQLite connections the same way everywhere, and its result codes as errnos. */
#include "store/db.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "base/log.h"

int store_db_errno(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_DONE:
	case SQLITE_ROW:
		return 0;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_CONSTRAINT:
		return -EEXIST;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_READONLY:
	case SQLITE_PERM:
		return -EROFS;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_CANTOPEN:
		return -ENOENT;
	case SQLITE_NOTADB:
	case SQLITE_CORRUPT:
		return -EPROTO;
	default:
		return -EIO;
	}
}

int store_db_exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK) {
		log_error("store: %s: %s", sql, msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
	}
	return store_db_errno(rc);
}

/* SQLite answers the journal mode it ended up in, which is not WAL on a file system that
 * cannot share memory between connections: say so rather than run without it. */
int store_db_wal(sqlite3 *db, const char *path, const char *who)
{
	sqlite3_stmt *s = NULL;
	const unsigned char *mode = NULL;
	int rc = 0;

	if (sqlite3_prepare_v2(db, "PRAGMA journal_mode = WAL", -1, &s, NULL) == SQLITE_OK &&
	    sqlite3_step(s) == SQLITE_ROW)
		mode = sqlite3_column_text(s, 0);
	if (!mode || strcmp((const char *)mode, "wal") != 0) {
		if (who)
			log_error("%s: %s: cannot use WAL mode: %s", who, path,
				  mode ? (const char *)mode : sqlite3_errmsg(db));
		rc = -EPROTO;
	}
	sqlite3_finalize(s);
	return rc;
}

/* Before SQLite's first use in the process: no memory statistics. With them on (Debian's
 * build), every sqlite3_malloc and sqlite3_free takes one process-wide mutex, shared by the
 * log store's writer, the budget store's writer and the logs API's readers, to count bytes
 * nothing here reads (sqlite3_status): 5 % of the log store writer's SQLite instructions
 * (docs/performance.md, "The log store's cost, located"). Too late (SQLite already running in
 * this process, as in a test that opened a database another way) it is only slower. */
static pthread_once_t tune_once = PTHREAD_ONCE_INIT;

static void tune(void)
{
	int rc = sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);

	if (rc != SQLITE_OK)
		log_debug("sqlite: memory statistics stay on: %s", sqlite3_errstr(rc));
}

int store_db_open(const char *path, const struct store_db_spec *spec, sqlite3 **out)
{
	int flags = spec->read_only ? SQLITE_OPEN_READONLY
				    : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
	char *msg = NULL;
	int rc;

	flags |= spec->shared ? SQLITE_OPEN_FULLMUTEX : SQLITE_OPEN_NOMUTEX;
	*out = NULL;
	(void)pthread_once(&tune_once, tune);   /* cannot fail with a valid once and routine */
	rc = sqlite3_open_v2(path, out, flags, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_busy_timeout(*out, spec->busy_ms);
	if (rc == SQLITE_OK && spec->new_page_size > 0 && !spec->read_only) {
		char sql[48];

		snprintf(sql, sizeof(sql), "PRAGMA page_size = %d", spec->new_page_size);
		rc = sqlite3_exec(*out, sql, NULL, NULL, &msg);
	}
	if (rc == SQLITE_OK && spec->wal && (rc = store_db_wal(*out, path, spec->who)) != 0)
		goto fail;
	if (rc == SQLITE_OK && spec->pragmas)
		rc = sqlite3_exec(*out, spec->pragmas, NULL, NULL, &msg);
	if (rc == SQLITE_OK)
		return 0;
	if (spec->who)
		log_error("%s: cannot open %s: %s", spec->who, path,
			  msg ? msg : *out ? sqlite3_errmsg(*out) : sqlite3_errstr(rc));
	sqlite3_free(msg);
	rc = store_db_errno(rc);
	if (!rc)
		rc = -EIO;
fail:
	sqlite3_close(*out);
	*out = NULL;
	return rc;
}
