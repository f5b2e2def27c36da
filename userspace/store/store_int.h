/* store_int.h: what the store's files share (store.c: the loop side, open and close;
 * store_writer.c: the writer and checkpointer threads). Not an interface. */
#ifndef WARDEN_STORE_INT_H
#define WARDEN_STORE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sqlite3.h>

#include "base/doorbell.h"
#include "base/list.h"
#include "base/thread.h"
#include "store/journal.h"
#include "store/store.h"

struct event;

#define PRUNE_EVERY_S 3600
/* The longest a charge nobody waits for waits for its commit (it is safe in the journal):
 * 20 ms of calls fold into one row write per spend row (store_writer.c); at 20,000 calls a
 * second they hold a tenth of the journal's ring (8192 slots: 4096 two-row charges). */
#define GATHER_MS 20
#define RETRY_MS 500            /* while the disk fails: how often the writer tries again */
/* An idle writer (store.writer_priority) is raised when this many operations wait for it: a
 * quarter of the journal's ring in two-row charges, so the ring never fills for want of idle
 * CPU time. It lowers itself again once fewer than a tenth of that wait. */
#define RAISE_OPS 1024

/* Transaction control, prepared once like the writes (not parsed again for every batch and
 * operation). */
enum store_tx { TX_BEGIN, TX_COMMIT, TX_ROLLBACK, TX_SAVEPOINT, TX_RELEASE, TX_ROLLBACK_TO,
		TX_COUNT };

enum op_type { OP_CHARGE, OP_KEY_PUT, OP_KEY_DELETE, OP_AUDIT, OP_FLUSH, OP_SPEND_RESET,
	       OP_TEAM_PUT, OP_TEAM_DELETE, OP_PIN_PUT, OP_PENDING_DELETE };

struct store_loop;

struct op {
	struct list_head link;          /* in a loop's staged list, st->queue, a batch, or the
					 * loop's done list */
	struct store_loop *lp;          /* the loop that queued it: its completion runs there */
	enum op_type type;
	store_done_fn cb;
	void *arg;
	int err;
	size_t n;                       /* OP_CHARGE, OP_SPEND_RESET: items */
	struct store_spend *items;      /* OP_CHARGE, OP_SPEND_RESET; strings in data[] */
	struct store_key key;           /* OP_KEY_PUT; the text ops (OP_KEY_DELETE, OP_TEAM_PUT,
					 * OP_TEAM_DELETE, OP_PENDING_DELETE) use key.id */
	int64_t ts;                     /* OP_AUDIT */
	uint64_t seq;                   /* OP_CHARGE: its journal record; 0: none */
	const char *text;               /* OP_AUDIT; OP_TEAM_PUT: the policy */
	struct store_tool_pin pin;      /* OP_PIN_PUT */
	const char *pend_id, *pend_cmd; /* OP_CHARGE: its fleet_pending row (NULL: none) */
	char data[];
};

/* One event loop's side of the store (workers: N): what it staged this turn, and the answers
 * for it. The first is the thread that opened the store; others come by store_loop_attach. */
struct store_loop {
	struct store *st;
	_Atomic pthread_t thread;       /* whose loop it is, while attached */
	_Atomic bool attached;          /* false: free for store_loop_attach (or never used) */
	bool draining;                  /* under st->lock: store_loop_detach waits for it */
	_Atomic unsigned awaited;       /* its operations whose callback has not run */
	struct list_head staged;        /* its thread only: handed over once per loop turn */
	size_t staged_n;                /* its thread only: operations in staged */
	bool staged_urgent;             /* its thread only: staged holds one someone waits for */
	struct event *flush_ev;         /* hands staged over */
	struct list_head done;          /* under st->lock: answered, for the loop */
	bool ring;                      /* under st->lock: done filled since the last ring */
	struct doorbell bell;           /* the writer's: done holds answers */
};

struct store {
	sqlite3 *db;                    /* writer connection; loop thread only at open/load/close */
	sqlite3 *ckpt_db;               /* checkpointer connection */
	sqlite3_stmt *st_charge, *st_key_put, *st_key_del, *st_audit, *st_prune;
	sqlite3_stmt *st_reset, *st_team_put, *st_team_del, *st_jseq, *st_pin_put;
	sqlite3_stmt *st_pend_put, *st_pend_del;
	sqlite3_stmt *st_tx[TX_COUNT];
	struct journal *jr;             /* charges safe before their commit, under lock (a
					 * charge's number and its place in the queue are taken
					 * together); NULL: none */
	char *path;
	int fsync_interval_ms;

	pthread_mutex_t lock;           /* queue, the journal, the loops' done lists, flags */
	pthread_cond_t wake;            /* writer: work or stop */
	pthread_cond_t ckpt_wake;       /* checkpointer: stop */
	pthread_cond_t drained;         /* a detaching loop: its answers are in */
	pthread_mutex_t db_lock;        /* the writer connection */
	struct list_head queue;         /* for the writer */
	size_t queued;                  /* operations in queue */
	bool stopping, ckpt_stopping;
	bool urgent;                    /* queue holds an operation someone waits for */
	bool gathering;                 /* writer: collecting operations nobody waits for */
	pthread_t writer, ckpt;
	bool writer_up, ckpt_up;
	bool want_idle;                 /* store.writer_priority: "idle" */
	struct thread_idle writer_prio, ckpt_prio;      /* their classes, under lock */
	_Atomic int64_t synced_ms;      /* CLOCK_MONOTONIC when the checkpointer was last up to date */
	_Atomic uint64_t ckpt_seen;     /* commits covered by the last checkpoint */
	int64_t last_prune;

	struct store_loop loops[STORE_LOOPS_MAX];
	_Atomic size_t nloops;          /* loops[0..nloops-1] are set up */

	_Atomic uint64_t commits, syncs;
	_Atomic int health;             /* writer: 0, or the error of the last write that failed */
};

/* The writer's answers (st->lock held): each operation of batch to the done list of the loop
 * that queued it, the journal's slots of committed charges freed, each loop rung once. */
void store_deliver(struct store *st, struct list_head *batch);
/* Out of the idle class (st->lock held): for good once the store stops. */
void store_raise(struct store *st, struct thread_idle *ti);
/* The threads' bodies (arg: the store). */
void *store_writer_main(void *arg);
void *store_ckpt_main(void *arg);
/* One operation's statements, inside the caller's transaction: 0 or a negative errno. */
int store_apply(struct store *st, struct op *op);
/* Step a statement once, then reset it and clear its bindings: 0 or a negative errno. */
int store_step_reset(sqlite3_stmt *s);
/* Record that the journal's charges up to seq are in this transaction: 0 or a negative errno. */
int store_step_jseq(struct store *st, uint64_t seq);

#endif
