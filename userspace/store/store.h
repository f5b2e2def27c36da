/* store: SQLite persistence on its own writer thread.
 *
 * The event loop never waits on the disk. Writes (charges, key changes, audit rows) are queued
 * to a writer thread that applies everything queued so far in one transaction (group commit)
 * and then calls each operation's callback back on the event loop that queued it (an eventfd
 * a loop, watched by libevent). The database is in WAL mode with synchronous=NORMAL: a commit
 * is a write(2) to the WAL, in the kernel's page cache before the callback runs, so anything
 * acknowledged after its callback survives kill -9 of the daemon. The writer checkpoints (which fsyncs the WAL)
 * every fsync_interval_ms when something was written: power loss can lose at most the commits
 * of that last interval. The router therefore answers a charged tools/call only from the
 * charge's callback.
 *
 * Blocking SQLite calls happen on the caller's thread only in store_open, the store_load_*
 * functions (start-up, before traffic) and store_close. Schema migrations are versioned with
 * PRAGMA user_version; a database written by a newer mcpwarden is refused, not downgraded.
 *
 * Config: "store": {"path": "<file>", "fsync_interval_ms": 1000}; path defaults to
 * <state_dir>/mcpwarden.db.
 */
#ifndef WARDEN_STORE_H
#define WARDEN_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

#include "base/config.h"
#include "store/schema.h"   /* STORE_SCHEMA_VERSION */
#include "store/spend.h"

struct event_base;
struct store;

#define STORE_FSYNC_INTERVAL_MS_DEFAULT 1000

struct store_options {
	char *path;                     /* owned */
	int fsync_interval_ms;          /* 1..60000 */
	bool writer_idle;               /* "writer_priority": "idle" (store_writer_main) */
};

/* Parse the "store" section of root (absent: defaults under state_dir). Returns 0, -EINVAL
 * (errs filled) or -ENOMEM. Free with store_options_clear. */
int store_options_parse(const cJSON *root, const char *state_dir, struct store_options *out,
			struct config_errors *errs);
void store_options_clear(struct store_options *o);


/* A virtual key record as the keys module keeps it. The secret is never stored: only hash. */
struct store_key {
	const char *id;
	const char *name;
	const char *team;       /* NULL: none */
	const char *policy;     /* NULL: none */
	uint8_t hash[32];       /* SHA-256 of the key */
	int64_t created;        /* unix seconds */
	int64_t expires;        /* unix seconds; 0: never */
	bool disabled;
	const char *workloads;  /* NULL: usable anywhere; else '\n'-separated patterns */
};

/* A pinned tool definition (govern/toolpin.h). */
struct store_tool_pin {
	const char *server, *tool;
	const char *digest;     /* 64 hex digits */
	const char *definition; /* canonical JSON; NULL: unknown (pinned from a lockfile) */
	const char *approved_by;
	int64_t approved_at;    /* unix seconds */
};

/* Completion on the event loop thread that queued the operation: err 0 once the operation is
 * committed (in the WAL), or a negative errno (-EIO, -ENOSPC, -EEXIST, -ECANCELED when the
 * store closed first). */
typedef void (*store_done_fn)(void *arg, int err);

/* Open (creating and migrating as needed) and start the writer thread; completions are
 * delivered on base. Blocking: call at start-up. */
int store_open(const struct store_options *opt, struct event_base *base, struct store **out);
/* Drain the queue (every queued operation is committed and its callback called, from here),
 * checkpoint, stop the thread and close. NULL is fine. Every loop attached with
 * store_loop_attach must have stopped running: what is still in flight for it completes on
 * the closing thread. */
void store_close(struct store *st);

/* Another event loop queues operations too (workers: N): call on that loop's thread with its
 * base, before it queues anything. Each operation's callback runs on the loop that queued it;
 * the thread that called store_open is the first loop, and a thread not attached counts as
 * it. 0, -ENOSPC past STORE_LOOPS_MAX loops, or a negative errno. */
#define STORE_LOOPS_MAX 64
int store_loop_attach(struct store *st, struct event_base *base);
/* That loop ends (on its thread, after it stopped queueing and before its base is freed):
 * what it staged goes to the writer, and it waits for the answers to what it queued with a
 * callback, running those callbacks here. Its place is free for another loop afterwards.
 * The first loop does not detach (store_close answers it). */
void store_loop_detach(struct store *st);

/* Queue one charge: every item is added in the same transaction (a key and its team are
 * charged together or not at all). Strings are copied. cb may be NULL. */
int store_charge(struct store *st, const struct store_spend *items, size_t n,
		 store_done_fn cb, void *arg);
/* A charge for the fleet's counters that Redis has not acknowledged (govern/fleet.h): the
 * items and a fleet_pending row (id, the command to replay, opaque here) in one transaction,
 * cb once both are committed (never through the journal). A second row with the same id is
 * ignored. -EINVAL past the limits below. */
#define STORE_PENDING_ID_MAX 128
#define STORE_PENDING_CMD_MAX 65536
int store_charge_pending(struct store *st, const struct store_spend *items, size_t n,
			 const char *id, const char *command, store_done_fn cb, void *arg);
/* Redis has it: delete the row (missing is not an error). Usually cb NULL: nobody waits. */
int store_pending_delete(struct store *st, const char *id, store_done_fn cb, void *arg);
/* Insert or replace a key record / delete one (deleting a missing id is not an error). */
int store_key_put(struct store *st, const struct store_key *k, store_done_fn cb, void *arg);
int store_key_delete(struct store *st, const char *id, store_done_fn cb, void *arg);
/* Delete the persisted spend of each item's (scope, period) from item.start on (amount and
 * expires are ignored): an admin usage reset. Strings are copied. Queued for the writer at
 * once, as a journaled charge is: it stays in order with every loop's charges. */
int store_spend_reset(struct store *st, const struct store_spend *items, size_t n,
		      store_done_fn cb, void *arg);
/* Insert or replace a team made through the admin API / delete one (missing is not an error). */
int store_team_put(struct store *st, const char *name, const char *policy, store_done_fn cb,
		   void *arg);
int store_team_delete(struct store *st, const char *name, store_done_fn cb, void *arg);
/* Insert or replace the pin of (server, tool). Strings are copied. */
int store_tool_pin_put(struct store *st, const struct store_tool_pin *p, store_done_fn cb,
		       void *arg);
/* Append an audit record (a JSON text) stamped ts (unix ms). */
int store_audit(struct store *st, int64_t ts_ms, const char *json, store_done_fn cb, void *arg);
/* Completes once everything queued before it is committed. */
int store_flush(struct store *st, store_done_fn cb, void *arg);

/* Start-up readers (blocking; before traffic). The callback returning non-zero stops the walk
 * and that value is returned. Spend rows come grouped by scope and period, oldest first. */
int store_load_keys(struct store *st, int (*cb)(void *arg, const struct store_key *k),
		    void *arg);
int store_load_spend(struct store *st, int (*cb)(void *arg, const struct store_spend *row),
		     void *arg);
int store_load_teams(struct store *st, int (*cb)(void *arg, const char *name, const char *policy),
		     void *arg);
int store_load_tool_pins(struct store *st,
			 int (*cb)(void *arg, const struct store_tool_pin *p), void *arg);
/* The fleet_pending rows, oldest first. */
int store_load_pending(struct store *st, int (*cb)(void *arg, const char *id, const char *command),
		       void *arg);

/* 0 while writes succeed; after a write failed on the disk (-ENOSPC full, -EROFS read-only,
 * -EPERM write-protected files, -EIO), that error until a write succeeds again. Meanwhile the writer tries again every
 * 500 ms: charges from the journal that failed first (they are kept, in order, never dropped),
 * else a probe write. Any thread; NULL is healthy. */
int store_health(const struct store *st);

/* Counters for tests and metrics (loop thread). */
uint64_t store_commits(const struct store *st);   /* transactions committed */
uint64_t store_syncs(const struct store *st);     /* checkpoints (fsyncs) done */
/* The writer's and the checkpointer's classes (store.writer_priority): whether each is in
 * the kernel's idle class now, and how often it was raised out of it. */
struct store_thread_stats {
	bool writer_idle, ckpt_idle;
	unsigned long writer_raised, ckpt_raised;
};
void store_get_thread_stats(struct store *st, struct store_thread_stats *out);

#endif
