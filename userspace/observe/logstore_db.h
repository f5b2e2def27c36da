/* logstore_db: the log store's SQLite file — schema, the batch insert that extends the chain,
 * and retention that moves the chain's anchor and drops the targets no remaining record
 * names. Writer thread only (logstore.c); readers open the file themselves, read-only. */
#ifndef WARDEN_LOGSTORE_DB_H
#define WARDEN_LOGSTORE_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "observe/logchain.h"

/* The indexed columns a record fills (observe/logstore.c names them). */
enum logstore_text_col {
	LS_KEY, LS_TEAM, LS_SESSION, LS_METHOD, LS_SERVER, LS_TARGET, LS_DECISION, LS_REASON,
	LS_STATUS, LS_ERROR_MESSAGE, LS_TRACE_ID,
	LOGSTORE_NTEXT
};
enum logstore_int_col {
	LS_ERROR_CODE, LS_LATENCY_US, LS_UPSTREAM_US, LS_COST_MICROS, LS_RESULT_BYTES,
	LOGSTORE_NINT
};

/* One record's columns. text[]: key, team, session, method, server, target, decision,
 * reason, status, error_message, trace_id (NULL: none); ints: error_code, latency_us,
 * upstream_us, cost_micros, result_bytes (has_int false: NULL). */
struct logstore_row {
	int64_t id, ts;
	const char *type;
	const char *text[LOGSTORE_NTEXT];
	uint32_t text_len[LOGSTORE_NTEXT];      /* each text's bytes, without its NUL */
	int64_t ints[LOGSTORE_NINT];
	bool has_int[LOGSTORE_NINT];
	const char *record;
	size_t record_len;
};

/* The chain table: the anchor (the hash before first_id) and the head (last_id's hash). */
struct logstore_chain {
	int64_t first_id, last_id;      /* last_id < first_id: no record stored */
	uint8_t prev_hash[LOGCHAIN_HASH_LEN], head[LOGCHAIN_HASH_LEN];
};

/* What one retention chunk did. */
struct logstore_retained {
	int64_t first_id;               /* the new anchor */
	uint8_t prev_hash[LOGCHAIN_HASH_LEN];
	int64_t deleted;
	int64_t targets;                /* targets dropped: no remaining record names them */
	int64_t blocks;                 /* block summaries dropped: their block wholly deleted */
	bool by_size;
};

struct logstore_db;

/* Open or create path (WAL, schema; an older version converted, a newer one refused with
 * -EPROTO). max_bytes, the bound retention keeps it to, picks the page size of a new file
 * (large pages for a store of at least LOGSTORE_LARGE_PAGES_FROM bytes). 0 or -errno. */
#define LOGSTORE_LARGE_PAGES_FROM (64LL << 20)
int logstore_db_open(const char *path, int64_t max_bytes, struct logstore_db **out);
void logstore_db_close(struct logstore_db *db);
void logstore_db_chain(const struct logstore_db *db, struct logstore_chain *out);
/* Insert rows (ids consecutive after the head) in one transaction, each hashed onto the
 * chain. All or nothing: on failure the chain is as before. 0 or -errno. A batch is up to
 * ~10 ms of CPU: the thread gives the CPU back every 32 rows (base/thread.h, thread_pace). */
int logstore_db_insert(struct logstore_db *db, struct logstore_row *const *rows, size_t n);
/* One chunk of retention: records older than cutoff_ms (INT64_MIN: no age check), else the
 * oldest while the used pages exceed max_bytes; in the same transaction, the targets that
 * only deleted records named. 1 when a chunk was deleted (out filled), 0 when nothing is
 * due, -errno. */
int logstore_db_retain(struct logstore_db *db, int64_t cutoff_ms, int64_t max_bytes,
		       struct logstore_retained *out);

/* The schema version in PRAGMA user_version. */
#define LOGSTORE_SCHEMA_VERSION 5

#endif
