/* schema: the store's database file migrated to the schema this mcpwarden uses. */
#include "store/schema.h"

#include <errno.h>
#include <stdio.h>

#include "base/log.h"
#include "store/db.h"

/* ---- schema ---- */

/* migrations[i] takes user_version i to i + 1. Never edit one that has shipped: add another. */
static const char *const migrations[STORE_SCHEMA_VERSION] = {
	"CREATE TABLE keys ("
	"  id TEXT PRIMARY KEY,"
	"  name TEXT NOT NULL,"
	"  team TEXT,"
	"  policy TEXT,"
	"  hash BLOB NOT NULL CHECK (length(hash) = 32),"
	"  created INTEGER NOT NULL,"
	"  expires INTEGER NOT NULL DEFAULT 0,"
	"  disabled INTEGER NOT NULL DEFAULT 0"
	");"
	"CREATE UNIQUE INDEX keys_hash ON keys(hash);"
	"CREATE TABLE spend ("
	"  scope TEXT NOT NULL,"
	"  period TEXT NOT NULL,"
	"  start INTEGER NOT NULL,"
	"  amount INTEGER NOT NULL,"
	"  expires INTEGER NOT NULL DEFAULT 0,"
	"  PRIMARY KEY (scope, period, start)"
	") WITHOUT ROWID;",

	"CREATE TABLE audit ("
	"  id INTEGER PRIMARY KEY,"
	"  ts INTEGER NOT NULL,"
	"  record TEXT NOT NULL"
	");"
	"CREATE INDEX audit_ts ON audit(ts);"
	"CREATE INDEX spend_expires ON spend(expires) WHERE expires != 0;",

	/* Teams made through the admin API (config teams live in the config file). */
	"CREATE TABLE teams ("
	"  name TEXT PRIMARY KEY,"
	"  policy TEXT NOT NULL"
	");",

	/* The last charge journal record committed (store/journal.h). */
	"CREATE TABLE journal (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL,"
	"  ring INTEGER NOT NULL);"
	"INSERT INTO journal (id, seq, ring) VALUES (1, 0, (random() & 9223372036854775807) | 1);",

	/* Pinned tool definitions (govern/toolpin.h): the digest and definition as approved. */
	"CREATE TABLE tool_pins ("
	"  server TEXT NOT NULL,"
	"  tool TEXT NOT NULL,"
	"  digest TEXT NOT NULL CHECK (length(digest) = 64),"
	"  definition TEXT,"
	"  approved_at INTEGER NOT NULL,"
	"  approved_by TEXT NOT NULL,"
	"  PRIMARY KEY (server, tool)"
	") WITHOUT ROWID;",
	/* Keys bound to workloads (govern/keys.h): '\n'-separated patterns, NULL anywhere. */
	"ALTER TABLE keys ADD COLUMN workloads TEXT;",
	/* Tool digests of version 2 ("v2:" and 64 hex digits, govern/tool_digest.h) besides the
	 * bare v1 ones: SQLite changes a CHECK only by copying the table. */
	"CREATE TABLE tool_pins_v2 ("
	"  server TEXT NOT NULL,"
	"  tool TEXT NOT NULL,"
	"  digest TEXT NOT NULL CHECK (length(digest) = 64 OR"
	"    (length(digest) = 67 AND substr(digest, 1, 3) = 'v2:')),"
	"  definition TEXT,"
	"  approved_at INTEGER NOT NULL,"
	"  approved_by TEXT NOT NULL,"
	"  PRIMARY KEY (server, tool)"
	") WITHOUT ROWID;"
	"INSERT INTO tool_pins_v2 (server, tool, digest, definition, approved_at, approved_by)"
	"  SELECT server, tool, digest, definition, approved_at, approved_by FROM tool_pins;"
	"DROP TABLE tool_pins;"
	"ALTER TABLE tool_pins_v2 RENAME TO tool_pins;",
	/* Charges for the fleet's Redis counters kept while Redis was away (govern/fleet.h):
	 * written with the charge, deleted once Redis acknowledged the replay; seq keeps the
	 * order they were made in. */
	"CREATE TABLE fleet_pending ("
	"  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  id TEXT NOT NULL UNIQUE,"
	"  command TEXT NOT NULL"
	");",
};

static int user_version(sqlite3 *db, int *out)
{
	sqlite3_stmt *s;
	int rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL);

	if (rc != SQLITE_OK)
		return store_db_errno(rc);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	return rc == SQLITE_ROW ? 0 : store_db_errno(rc);
}

int store_db_migrate(sqlite3 *db, const char *path)
{
	char sql[64];
	int v = 0, rc;

	rc = user_version(db, &v);
	if (rc)
		return rc;
	if (v > STORE_SCHEMA_VERSION) {
		log_error("store: %s has schema version %d, newer than this mcpwarden (%d); "
			  "refusing to use it", path, v, STORE_SCHEMA_VERSION);
		return -EPROTO;
	}
	for (; v < STORE_SCHEMA_VERSION; v++) {
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v + 1);
		if ((rc = store_db_exec(db, "BEGIN IMMEDIATE")) != 0)
			return rc;
		if ((rc = store_db_exec(db, migrations[v])) != 0 || (rc = store_db_exec(db, sql)) != 0) {
			if (store_db_exec(db, "ROLLBACK") != 0)
				log_error("store: rollback of migration %d failed", v + 1);
			return rc;
		}
		if ((rc = store_db_exec(db, "COMMIT")) != 0)
			return rc;
		log_info("store: %s migrated to schema version %d", path, v + 1);
	}
	return 0;
}
