/* schema: the store's database migrated to the schema this mcpwarden writes (opened with
 * store/db.h). Blocking; the store calls these at start-up and from its writer thread. */
#ifndef WARDEN_STORE_SCHEMA_H
#define WARDEN_STORE_SCHEMA_H

#include <sqlite3.h>

/* The schema this mcpwarden writes; an older database is migrated, a newer one refused. */
#define STORE_SCHEMA_VERSION 8

/* Take the database to STORE_SCHEMA_VERSION, one transaction per step; a newer one is
 * refused (-EPROTO). */
int store_db_migrate(sqlite3 *db, const char *path);

#endif
