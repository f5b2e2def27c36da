/* logverify: walk the log store's chain (docs/audit.md) and name the first record that was
 * changed, removed or inserted. Read-only: it opens the file with SQLITE_OPEN_READONLY and
 * reads one snapshot (a running daemon keeps writing meanwhile). Used by `wardenctl audit
 * verify`. */
#ifndef WARDEN_LOGVERIFY_H
#define WARDEN_LOGVERIFY_H

#include <stdbool.h>
#include <stdint.h>

#include "observe/logchain.h"

/* Also wardenctl audit verify's exit statuses. */
enum logverify_status {
	LOGVERIFY_INTACT = 0,
	LOGVERIFY_CHANGED = 1,          /* a record's text or hash (or the chain's head) differs */
	LOGVERIFY_REMOVED = 2,          /* an id of the chain is missing */
	LOGVERIFY_INSERTED = 3,         /* a row that the writer did not put there */
	LOGVERIFY_UNREADABLE = 4,       /* no such file, not a log store, I/O error */
};

struct logverify_options {
	const char *path;
	int64_t since_ms;               /* INT64_MIN: from the anchor */
	bool have_checkpoint;           /* compare the chain at checkpoint_seq with checkpoint */
	uint8_t checkpoint[LOGCHAIN_HASH_LEN];
	int64_t checkpoint_seq;
};

struct logverify_result {
	enum logverify_status status;
	int64_t id;                     /* the record named (status != INTACT, UNREADABLE) */
	int64_t checked;                /* records whose link was checked */
	int64_t first_id, last_id;      /* the chain's anchor and head ids */
	uint8_t head[LOGCHAIN_HASH_LEN];
	bool checkpoint_checked;        /* false: the checkpoint's seq was outside the walk */
	char detail[256];               /* one sentence for a person */
};

/* A verdict into r (status, the record named, the sentence), for both walks; returns st. */
enum logverify_status logverify_say(struct logverify_result *r, enum logverify_status st,
				    int64_t id, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* A record's "ts" as the daemon writes it ("2026-12-04T07:30:19.168Z", nothing else) in unix
 * ms, for both walks to compare with the ts column; -1 when it is not that. */
int64_t logverify_ts_ms(const char *s);

/* Fill out; returns out->status. */
enum logverify_status logverify_run(const struct logverify_options *o,
				    struct logverify_result *out);

/* The same walk over one sidecar's chain in the fleet's shared store on PostgreSQL
 * (observe/logpg.h; logverify_pg.c): o->path is the conninfo; ids are the sidecar's seqs.
 * Checks each record's hash link, its seq and its ts column. */
enum logverify_status logverify_pg_run(const struct logverify_options *o, const char *sidecar,
				       const char *prefix, struct logverify_result *out);

#endif
