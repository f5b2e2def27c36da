/* logship: copies the local log store's records (observe/logstore.h, logs.db) to the shared
 * store on PostgreSQL (observe/logpg.h), on its own thread: the event loop never waits for it.
 *
 * The local store is the spool: the shipper reads logs.db read-only, in id order, from the
 * record after the last one the shared store holds for this sidecar (its chain row's
 * last_seq), and sends up to "batch" records in one multi-row INSERT with bound parameters
 * that also moves the chain row's head — all or nothing. While PostgreSQL is away the records
 * wait in logs.db (bounded by logs.max_bytes and logs.max_age); on reconnect the shipper
 * resumes from the shared store's head, so nothing is sent twice (and (sidecar, seq, ts) is
 * unique besides). Records the local retention deleted before they were shipped are counted
 * as lost and logged (the chain then shows them as removed). docs/fleet-logs.md.
 */
#ifndef WARDEN_LOGSHIP_H
#define WARDEN_LOGSHIP_H

#include <stdbool.h>
#include <stdint.h>

#include "observe/logpg.h"

/* Start the shipper of the local store at sqlite_path. A disabled o starts nothing. 0 or
 * -errno (nothing is contacted yet: an unreachable database is not an error here). */
int logship_start(const struct logpg_options *o, const char *sqlite_path);
/* Ship what is stored (while the database answers), then stop. Call after logstore_stop so
 * that its last checkpoint goes too. */
void logship_stop(void);

struct logship_stats {
	bool running, connected;
	uint64_t shipped;               /* records this process sent */
	uint64_t lost;                  /* deleted locally before they were shipped */
	uint64_t failures;              /* failed connects and batches */
	int64_t shipped_seq;            /* the shared store's head for this sidecar */
	uint64_t pending;               /* stored locally, not yet shipped (sampled each poll) */
};
void logship_get_stats(struct logship_stats *out);

#endif
