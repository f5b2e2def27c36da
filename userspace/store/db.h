/* db: SQLite as every mcpwarden database uses it — the store's (store/), the log store's and
 * its readers' (observe/logstore_db, logquery, logverify): one way to open a connection (mode,
 * threading, busy timeout, pragmas, a clear error), statements run with their failure logged,
 * and SQLite's result codes as negative errnos. Blocking: for start-up and worker threads. */
#ifndef WARDEN_STORE_DB_H
#define WARDEN_STORE_DB_H

#include <stdbool.h>
#include <sqlite3.h>

/* How a connection is opened. */
struct store_db_spec {
	const char *who;        /* the log prefix ("store", "logs"); NULL: a failure to open is
				 * not logged (a reader polling for a file not written yet) */
	bool read_only;         /* else read-write, the file created if missing */
	bool shared;            /* used by several threads (serialized); else by one at a time */
	bool wal;               /* journal_mode WAL, or the open fails (-EPROTO) */
	int busy_ms;            /* how long a statement waits for another connection's lock */
	const char *pragmas;    /* run once open (journal mode, synchronous, cache), or NULL */
	/* The page size of a database this open creates (0: SQLite's 4096). An existing file
	 * keeps its own: WAL mode fixes it once the file exists. */
	int new_page_size;
};

/* Open path as spec says. 0, or a negative errno (the connection closed, *out NULL); a
 * failure is logged as "<who>: cannot open <path>: <why>" unless spec->who is NULL. */
int store_db_open(const char *path, const struct store_db_spec *spec, sqlite3 **out);
/* Put db in WAL mode: 0, or -EPROTO (logged as "<who>: <path>: cannot use WAL mode"). */
int store_db_wal(sqlite3 *db, const char *path, const char *who);
/* Run sql, logging what failed. */
int store_db_exec(sqlite3 *db, const char *sql);
/* A SQLite result code as 0 (OK, ROW, DONE) or a negative errno. */
int store_db_errno(int rc);

#endif
