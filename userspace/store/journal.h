/* journal: charges made crash-safe with no system call, for the store to commit later.
 *
 * An answered call's charge must survive the process being killed (kill -9), and waiting for
 * the store's writer thread to commit each one costs a thread round trip per call. Instead the
 * loop writes the charge into a ring of fixed-size records in a MAP_SHARED file: once the
 * stores are done the bytes are in the kernel's page cache, which outlives the process. The
 * store then commits the charge as usual, without the call waiting, and the record's slot is
 * reused once that commit is done. On start, records newer than the last committed sequence
 * number are replayed. Power loss is bounded as before by the store's WAL checkpoints: records
 * reach SQLite within milliseconds.
 *
 * Not thread-safe: the store appends under its lock (its loops' charges) and frees slots
 * under it (its writer).
 */
#ifndef WARDEN_JOURNAL_H
#define WARDEN_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#include "store/spend.h"

#define JOURNAL_SLOTS_DEFAULT 8192
#define JOURNAL_TEXT_MAX 200    /* scope + period of one item */

struct journal;

/* Open (creating) the ring at path with nslots slots (0: the default) for the database whose
 * ring id is ring: a ring file left by another database (deleted, restored from a backup) is
 * emptied, never replayed into this one. Its blocks are allocated here, so a full disk later
 * cannot fault the mapping; when they cannot be (the disk is full already) the ring is still
 * replayed but journal_append refuses. 0 or a negative errno. */
int journal_open(const char *path, uint64_t ring, size_t nslots, struct journal **out);
void journal_close(struct journal *j);

/* Call fn(items, n, seq, arg) for every complete charge with seq > after, oldest first; then
 * *max is the largest sequence number the ring has seen (complete or not). fn returning
 * non-zero stops the walk with that value. */
typedef int (*journal_replay_fn)(const struct store_spend *items, size_t n, uint64_t seq,
				 void *arg);
int journal_replay(struct journal *j, uint64_t after, journal_replay_fn fn, void *arg,
		   uint64_t *max);
/* Sequence numbers continue after next - 1 (what the store last committed, or the ring saw).
 * The pages replay read leave the process's RSS (the page cache keeps their bytes) until
 * charges use them again. */
void journal_restart(struct journal *j, uint64_t next);

/* Write one charge; *seq is its number. -ENOSPC when the ring is full (the store is behind),
 * -ENAMETOOLONG when an item's names do not fit a slot: the caller then waits for a commit. */
int journal_append(struct journal *j, const struct store_spend *items, size_t n, uint64_t *seq);
/* Every charge up to seq is committed: their slots may be reused. Once a busy daemon has gone
 * round the ring, all of it (2 MiB) is resident. */
void journal_committed(struct journal *j, uint64_t seq);

size_t journal_pending(const struct journal *j);       /* charges not committed yet */

#endif
