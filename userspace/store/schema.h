/* schema: the store's database file: opening, migrations, SQLite errors as negative errnos.
 * Blocking; the store calls these at start-up and from its writer thread. */
#ifndef WARDEN_STORE_SCHEMA_H
#define WARDEN_STORE_SCHEMA_H

#include <sqlite3.h>

/* The schema this mcpwarden writes; an older database is migrated, a newer one refused. */
#define STORE_SCHEMA_VERSION 7

/* Open (creating) path read-write, serialized, with a busy timeout. 0 or a negative errno. */
int store_db_open(const char *path, sqlite3 **out);
/* Take the database to STORE_SCHEMA_VERSION, one transaction per step; a newer one is
 * refused (-EPROTO). */
int store_db_migrate(sqlite3 *db, const char *path);
/* Run sql, logging what failed. */
int store_db_exec(sqlite3 *db, const char *sql);
/* A SQLite result code as 0 or a negative errno. */
int store_db_errno(int rc);

#endif
