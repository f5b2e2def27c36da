/* logstore: every record also goes into an SQLite log store (docs/audit.md), chained by
 * SHA-256 so that a changed, removed or inserted row shows.
 *
 * One store per process (records leave from anywhere through observe/audit.c). The event loop
 * only takes a sequence number and copies the record's line into a bounded queue (into an
 * item the writer handed back from an earlier batch, when one fits); a writer
 * thread inserts what is queued in one transaction per batch (WAL), computes the chain in id
 * order, applies retention (age, then size, in chunks, moving the chain's anchor in the same
 * transaction) and samples the file's size. When the queue is full the record is not stored
 * (its stdout line, without "seq", is all that is left of it) and the drop is counted.
 *
 * The writer's priority ("writer_priority"): "idle" (the default) runs it in the kernel's idle
 * class, on CPU time nothing else on the host wants, so that on a busy host its SQLite work
 * does not slow the request path (docs/performance.md). When its backlog reaches a quarter of
 * the queue (a flush or a stop waits, or the host has no idle time for it), the appender
 * raises it to normal priority; it goes idle again once it has caught up. That needs the
 * right to raise a thread (CAP_SYS_NICE or RLIMIT_NICE 20): without it the writer stays at
 * normal priority, as with "normal", and says so at start.
 *
 * File schema: docs/audit.md (the contract with the logs API and dashboard).
 *
 * Config: "logs": {"enabled": true, "path": "<state_dir>/logs.db", "max_age": "7d",
 * "max_bytes": 1073741824, "queue": 65536, "checkpoint_every": 1000,
 * "writer_priority": "idle"}.
 */
#ifndef WARDEN_LOGSTORE_H
#define WARDEN_LOGSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

#include "base/config.h"
#include "observe/logstore_db.h"

#define LOGSTORE_MAX_AGE_S_DEFAULT (7 * 86400LL)
#define LOGSTORE_MAX_BYTES_DEFAULT (1LL << 30)
#define LOGSTORE_QUEUE_DEFAULT 65536
#define LOGSTORE_CHECKPOINT_EVERY_DEFAULT 1000

struct logstore_options {
	bool enabled;
	char *path;                     /* owned */
	int64_t max_age_s;              /* records older than this are deleted */
	int64_t max_bytes;              /* the database's used pages above this: oldest deleted */
	unsigned queue;                 /* records waiting for the writer, at most */
	unsigned checkpoint_every;      /* a checkpoint record every this many stored records */
	bool writer_idle;               /* "writer_priority": "idle" */
};

/* Parse the "logs" section of root (absent: defaults under state_dir). 0, -EINVAL (errs
 * filled) or -ENOMEM. Free with logstore_options_clear. */
int logstore_options_parse(const cJSON *root, const char *state_dir,
			   struct logstore_options *out, struct config_errors *errs);
void logstore_options_clear(struct logstore_options *o);

/* The store's own notes (checkpoint, audit_anchor) are records too: the store hands them to
 * this function (on its writer thread), which emits them like any other record. */
typedef void (*logstore_note_fn)(const char *type, cJSON *obj);

/* Open (creating the file and schema) and start the writer. Blocking: start-up only. A
 * disabled configuration starts nothing and returns 0. */
int logstore_start(const struct logstore_options *o, logstore_note_fn note);
/* Store everything queued, write the final checkpoint, stop the writer and close. */
void logstore_stop(void);
bool logstore_running(void);

/* Appending is two steps so that the record's line can carry its sequence number:
 * logstore_reserve returns the id the next appended record gets (0: not stored — the store is
 * off or its queue is full, the drop counted), then logstore_append queues the line (copied)
 * with that id. Callers serialise reserve..append (observe/audit.c holds one lock for both;
 * the items appends reuse are kept under it too). */
int64_t logstore_reserve(void);
void logstore_append(int64_t seq, int64_t ts_ms, const char *type, const cJSON *obj,
		     const char *line);
/* The same with the indexed columns given, for a record written as text without a tree
 * (the decision record: observe/audit.c); line_len is strlen(line). */
struct logstore_cols {
	const char *text[LOGSTORE_NTEXT];       /* NULL: none */
	int64_t ints[LOGSTORE_NINT];
	bool has_int[LOGSTORE_NINT];            /* false: NULL */
};
void logstore_append_cols(int64_t seq, int64_t ts_ms, const char *type,
			  const struct logstore_cols *cols, const char *line, size_t line_len);
/* Block until everything queued so far is committed (tests, shutdown). */
void logstore_flush(void);

struct logstore_stats {
	uint64_t queue_depth, dropped, written;
	uint64_t bytes;                 /* database + WAL files, sampled by the writer */
	uint64_t writer_raised;         /* times the idle writer fell behind and was raised */
	bool writer_idle;               /* the writer is in the idle class now */
	bool running;
};
void logstore_get_stats(struct logstore_stats *out);

#endif
