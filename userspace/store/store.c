/* store: the loop side (queueing, completions through an eventfd), open and close, and the
 * start-up readers; the threads are in store_writer.c. */
#include "store/store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <event2/event.h>
#include <sqlite3.h>

#include "base/alloc.h"
#include "base/event_opt.h"
#include "base/json_get.h"
#include "base/list.h"
#include "base/log.h"
#include "base/thread.h"
#include "base/path.h"
#include "store/journal.h"
#include "store/db.h"
#include "store/schema.h"

/* ---- options ---- */

/* The section's fields, read into and freed from struct store_options. */
static const struct cfg_field store_fields[] = {
	CFG_FIELD(struct store_options, path, CFG_COPY, 0, 0, CFG_NONEMPTY),
	CFG_FIELD(struct store_options, fsync_interval_ms, CFG_INT, 1, 60000, 0),
	CFG_KNOWN_FIELD("writer_priority"),     /* store_options_parse */
	CFG_END,
};

int store_options_parse(const cJSON *root, const char *state_dir, struct store_options *out,
			struct config_errors *errs)
{
	const cJSON *sec = root ? json_get(root, "store") : NULL;
	const cJSON *prio = sec ? json_get(sec, "writer_priority") : NULL;

	*out = (struct store_options){ .fsync_interval_ms = STORE_FSYNC_INTERVAL_MS_DEFAULT,
				       .writer_idle = true };
	if (sec && !cJSON_IsObject(sec))
		return config_fail(errs, "store", "expected {\"path\": ..., \"fsync_interval_ms\": 1000}");
	int rc = sec ? cfg_fields(sec, "store", store_fields, out, errs) : 0;
	if (prio && (!cJSON_IsString(prio) || (strcmp(prio->valuestring, "idle") &&
					       strcmp(prio->valuestring, "normal"))))
		rc = config_fail(errs, "store.writer_priority", "must be \"idle\" or \"normal\"");
	if (rc) {
		store_options_clear(out);
		return -EINVAL;
	}
	if (prio)
		out->writer_idle = !strcmp(prio->valuestring, "idle");
	if (!out->path)
		out->path = path_in_dir(state_dir, "mcpwarden.db");
	return out->path ? 0 : -ENOMEM;
}

void store_options_clear(struct store_options *o)
{
	cfg_fields_free(store_fields, o);
}

/* ---- the loop side ---- */

static void run_done(struct store_loop *lp)
{
	struct list_head list;
	struct op *op, *tmp;

	list_init(&list);
	pthread_mutex_lock(&lp->st->lock);
	list_splice_tail_init(&lp->done, &list);
	pthread_mutex_unlock(&lp->st->lock);
	list_for_each_entry_safe(op, tmp, &list, link) {
		if (op->cb) {
			op->cb(op->arg, op->err);
			atomic_fetch_sub(&lp->awaited, 1);
		}
		alloc_cache_put(op);
	}
}

static void on_done(void *arg)
{
	run_done(arg);
}

void store_deliver(struct store *st, struct list_head *batch)
{
	size_t nloops = atomic_load_explicit(&st->nloops, memory_order_acquire);
	struct op *op, *tmp;

	list_for_each_entry_safe(op, tmp, batch, link) {
		if (op->seq && !op->err)
			journal_committed(st->jr, op->seq);
		else if (op->seq)
			log_error("store: charge %llu not committed (%s); it stays in the journal "
				  "and is replayed at the next start", (unsigned long long)op->seq,
				  strerror(-op->err));
		list_del(&op->link);
		/* One nobody waits for whose loop has gone: the first loop frees it. */
		if (!op->cb && !atomic_load(&op->lp->attached))
			op->lp = &st->loops[0];
		list_add_tail(&op->link, &op->lp->done);
		op->lp->ring = true;
		if (op->lp->draining)
			pthread_cond_broadcast(&st->drained);
	}
	for (size_t i = 0; i < nloops; i++)
		if (st->loops[i].ring) {
			st->loops[i].ring = false;
			doorbell_ring(&st->loops[i].bell);
		}
}

/* The loop of the calling thread: the one it attached, else the first. */
static struct store_loop *cur_loop(struct store *st)
{
	size_t n = atomic_load_explicit(&st->nloops, memory_order_acquire);

	if (n > 1) {
		pthread_t self = pthread_self();

		for (size_t i = 1; i < n; i++)
			if (atomic_load_explicit(&st->loops[i].attached, memory_order_acquire) &&
			    pthread_equal(atomic_load_explicit(&st->loops[i].thread,
							       memory_order_relaxed), self))
				return &st->loops[i];
	}
	return &st->loops[0];
}

/* st->lock held: the writer woken for work, unless it is gathering charges nobody waits for
 * and none came that someone does; an idle writer raised for whoever waits for it, and
 * before the journal fills. */
static void wake_writer(struct store *st, bool urgent)
{
	st->urgent |= urgent;
	if (!st->gathering || urgent)
		pthread_cond_signal(&st->wake);
	if (st->writer_prio.idle && (urgent || st->queued >= RAISE_OPS))
		store_raise(st, &st->writer_prio);
}

/* st->lock held: what lp staged, to the writer's queue. Whether someone waits for it. */
static bool take_staged(struct store *st, struct store_loop *lp)
{
	bool urgent = lp->staged_urgent;

	list_splice_tail_init(&lp->staged, &st->queue);
	st->queued += lp->staged_n;
	lp->staged_n = 0;
	lp->staged_urgent = false;
	return urgent;
}

/* Hand what the loop staged to the writer: one lock and one wake-up for every operation of a
 * loop turn, not one per call. */
static void hand_over(struct store_loop *lp)
{
	struct store *st = lp->st;

	if (list_empty(&lp->staged))
		return;
	pthread_mutex_lock(&st->lock);
	wake_writer(st, take_staged(st, lp));
	pthread_mutex_unlock(&st->lock);
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
	hand_over(arg);
}

/* On a loop thread (stopping is written only once every loop has stopped). The operation goes
 * to the writer when the callbacks of this loop turn are done. */
static int enqueue(struct store *st, struct op *op)
{
	struct store_loop *lp = cur_loop(st);

	if (st->stopping) {
		alloc_cache_put(op);
		return -ECANCELED;
	}
	if (list_empty(&lp->staged))
		event_active(lp->flush_ev, EV_TIMEOUT, 1);
	op->lp = lp;
	if (op->cb)
		atomic_fetch_add(&lp->awaited, 1);
	list_add_tail(&op->link, &lp->staged);
	lp->staged_n++;
	lp->staged_urgent |= op->cb != NULL;
	return 0;
}

static struct op *op_new(enum op_type type, size_t extra, store_done_fn cb, void *arg)
{
	struct op *op = xcalloc(1, sizeof(*op) + extra);

	op->type = type;
	op->cb = cb;
	op->arg = arg;
	return op;
}

/* Copy s into the op's data area at *pos. */
static const char *put_str(struct op *op, size_t *pos, const char *s)
{
	size_t n;

	if (!s)
		return NULL;
	n = strlen(s) + 1;
	memcpy(op->data + *pos, s, n);
	*pos += n;
	return op->data + *pos - n;
}

/* An op whose data holds copies of the strings *f[0..n-1] (NULL stays NULL); each *f is
 * pointed at its copy, so the record the f point into can then be copied into the op as it
 * is. */
static struct op *op_own(enum op_type type, const char **const f[], size_t n, store_done_fn cb,
			 void *arg)
{
	size_t extra = 0, pos = 0;
	struct op *op;

	for (size_t i = 0; i < n; i++)
		extra += *f[i] ? strlen(*f[i]) + 1 : 0;
	op = op_new(type, extra, cb, arg);
	for (size_t i = 0; i < n; i++)
		*f[i] = put_str(op, &pos, *f[i]);
	return op;
}

#define OP_OWN(type, cb, arg, ...)                                                        \
	op_own(type, (const char **const[]){ __VA_ARGS__ },                               \
	       sizeof((const char **[]){ __VA_ARGS__ }) / sizeof(const char **), cb, arg)

/* An op carrying one or two strings (b may be NULL): the writer reads them as op->key.id and
 * op->text. */
static int queue_texts(struct store *st, enum op_type type, const char *a, const char *b,
		       store_done_fn cb, void *arg)
{
	struct op *op;

	if (!st || !a)
		return -EINVAL;
	op = OP_OWN(type, cb, arg, &a, &b);
	op->key.id = a;
	op->text = b;
	return enqueue(st, op);
}

/* An op carrying n spend items (copied, strings after them) and tail more bytes of data. */
static struct op *spend_op(enum op_type type, const struct store_spend *items, size_t n,
			   size_t tail, store_done_fn cb, void *arg, size_t *pos)
{
	size_t extra = n * sizeof(struct store_spend);
	struct op *op;

	if (!items || n == 0 || n > 64)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (!items[i].scope || !items[i].period)
			return NULL;
		extra += strlen(items[i].scope) + strlen(items[i].period) + 2;
	}
	op = op_new(type, extra + tail, cb, arg);
	/* Items first (aligned: data[] follows pointer-aligned members), then the strings. */
	op->items = (struct store_spend *)(void *)op->data;
	op->n = n;
	*pos = n * sizeof(struct store_spend);
	for (size_t i = 0; i < n; i++) {
		op->items[i] = items[i];
		op->items[i].scope = put_str(op, pos, items[i].scope);
		op->items[i].period = put_str(op, pos, items[i].period);
	}
	return op;
}

static int queue_spend(struct store *st, enum op_type type, const struct store_spend *items,
		       size_t n, store_done_fn cb, void *arg)
{
	size_t pos;
	struct op *op;

	if (!st || !(op = spend_op(type, items, n, 0, cb, arg, &pos)))
		return -EINVAL;
	return enqueue(st, op);
}

int store_charge(struct store *st, const struct store_spend *items, size_t n,
		 store_done_fn cb, void *arg)
{
	struct store_loop *lp;
	struct op *op;
	uint64_t seq;
	size_t pos;
	int rc;

	if (!items || !n)
		return -EINVAL;
	if (!st || !st->jr || st->stopping)
		return queue_spend(st, OP_CHARGE, items, n, cb, arg);
	if (!(op = spend_op(OP_CHARGE, items, n, 0, NULL, NULL, &pos)))
		return -EINVAL;
	/* In the journal, the charge is safe now: it is committed without anyone waiting. Its
	 * number and its place in the writer's queue are taken together, behind what this loop
	 * staged before it (a usage reset), so the queue holds the journal's charges in their
	 * order whatever loop made them: a replay starts after the last number committed. */
	lp = cur_loop(st);
	op->lp = lp;
	if (op->cb)
		atomic_fetch_add(&lp->awaited, 1);
	pthread_mutex_lock(&st->lock);
	rc = journal_append(st->jr, op->items, n, &seq);
	if (rc == 0) {
		bool urgent = take_staged(st, lp);

		op->seq = seq;
		list_add_tail(&op->link, &st->queue);
		st->queued++;
		wake_writer(st, urgent);
	}
	pthread_mutex_unlock(&st->lock);
	if (rc == 0)
		return 1;
	/* The journal cannot take it (full: the writer is behind): the caller waits, as before. */
	op->cb = cb;
	op->arg = arg;
	return enqueue(st, op);
}

int store_charge_pending(struct store *st, const struct store_spend *items, size_t n,
			 const char *id, const char *command, store_done_fn cb, void *arg)
{
	size_t pos;
	struct op *op;

	if (!st || !id || !command || !id[0] || strlen(id) > STORE_PENDING_ID_MAX ||
	    strlen(command) > STORE_PENDING_CMD_MAX)
		return -EINVAL;
	/* Not through the journal (its records hold spend only): the caller waits for the
	 * commit, which holds both. */
	op = spend_op(OP_CHARGE, items, n, strlen(id) + strlen(command) + 2, cb, arg, &pos);
	if (!op)
		return -EINVAL;
	op->pend_id = put_str(op, &pos, id);
	op->pend_cmd = put_str(op, &pos, command);
	return enqueue(st, op);
}

int store_pending_delete(struct store *st, const char *id, store_done_fn cb, void *arg)
{
	return queue_texts(st, OP_PENDING_DELETE, id, NULL, cb, arg);
}

int store_spend_reset(struct store *st, const struct store_spend *items, size_t n,
		      store_done_fn cb, void *arg)
{
	struct store_loop *lp;
	struct op *op;
	bool urgent;
	size_t pos;

	if (!st || !(op = spend_op(OP_SPEND_RESET, items, n, 0, cb, arg, &pos)))
		return -EINVAL;
	if (st->stopping) {
		alloc_cache_put(op);
		return -ECANCELED;
	}
	/* To the writer's queue at once, as a journaled charge goes: a charge another loop
	 * makes after the reset (budget.c orders the two) must not reach the writer first. */
	lp = cur_loop(st);
	op->lp = lp;
	if (op->cb)
		atomic_fetch_add(&lp->awaited, 1);
	pthread_mutex_lock(&st->lock);
	urgent = take_staged(st, lp) || cb;
	list_add_tail(&op->link, &st->queue);
	st->queued++;
	wake_writer(st, urgent);
	pthread_mutex_unlock(&st->lock);
	return 0;
}

int store_team_put(struct store *st, const char *name, const char *policy, store_done_fn cb,
		   void *arg)
{
	return policy ? queue_texts(st, OP_TEAM_PUT, name, policy, cb, arg) : -EINVAL;
}

int store_team_delete(struct store *st, const char *name, store_done_fn cb, void *arg)
{
	return queue_texts(st, OP_TEAM_DELETE, name, NULL, cb, arg);
}

int store_key_put(struct store *st, const struct store_key *k, store_done_fn cb, void *arg)
{
	struct store_key key;
	struct op *op;

	if (!st || !k || !k->id || !k->name)
		return -EINVAL;
	key = *k;
	op = OP_OWN(OP_KEY_PUT, cb, arg, &key.id, &key.name, &key.team, &key.policy,
		    &key.workloads);
	op->key = key;
	return enqueue(st, op);
}

int store_key_delete(struct store *st, const char *id, store_done_fn cb, void *arg)
{
	return queue_texts(st, OP_KEY_DELETE, id, NULL, cb, arg);
}

int store_audit(struct store *st, int64_t ts_ms, const char *json, store_done_fn cb, void *arg)
{
	struct op *op;

	if (!st || !json)
		return -EINVAL;
	op = OP_OWN(OP_AUDIT, cb, arg, &json);
	op->ts = ts_ms;
	op->text = json;
	return enqueue(st, op);
}

int store_tool_pin_put(struct store *st, const struct store_tool_pin *p, store_done_fn cb,
		       void *arg)
{
	struct store_tool_pin pin;
	struct op *op;

	if (!st || !p || !p->server || !p->tool || !p->digest || !p->approved_by)
		return -EINVAL;
	pin = *p;
	op = OP_OWN(OP_PIN_PUT, cb, arg, &pin.server, &pin.tool, &pin.digest, &pin.approved_by,
		    &pin.definition);
	op->pin = pin;
	return enqueue(st, op);
}

int store_flush(struct store *st, store_done_fn cb, void *arg)
{
	struct op *op;

	if (!st)
		return -EINVAL;
	op = op_new(OP_FLUSH, 0, cb, arg);
	return enqueue(st, op);
}

int store_health(const struct store *st)
{
	return st ? atomic_load(&st->health) : 0;
}

uint64_t store_commits(const struct store *st) { return atomic_load(&st->commits); }
uint64_t store_syncs(const struct store *st) { return atomic_load(&st->syncs); }

void store_get_thread_stats(struct store *st, struct store_thread_stats *out)
{
	pthread_mutex_lock(&st->lock);
	out->writer_idle = st->writer_prio.idle;
	out->ckpt_idle = st->ckpt_prio.idle;
	pthread_mutex_unlock(&st->lock);
	out->writer_raised = atomic_load(&st->writer_prio.raised);
	out->ckpt_raised = atomic_load(&st->ckpt_prio.raised);
}

/* ---- open, load, close ---- */

static int prepare(struct store *st)
{
	static const char *const sql[] = {
		"INSERT INTO spend (scope, period, start, amount, expires) VALUES (?, ?, ?, ?, ?)"
		" ON CONFLICT (scope, period, start) DO UPDATE SET"
		" amount = amount + excluded.amount, expires = max(expires, excluded.expires)",
		/* An upsert on id, not OR REPLACE: that would also silently delete another key
		 * whose hash collides instead of failing. */
		"INSERT INTO keys (id, name, team, policy, hash, created, expires, disabled, workloads)"
		" VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
		" name = excluded.name, team = excluded.team, policy = excluded.policy,"
		" hash = excluded.hash, created = excluded.created, expires = excluded.expires,"
		" disabled = excluded.disabled, workloads = excluded.workloads",
		"DELETE FROM keys WHERE id = ?",
		"INSERT INTO audit (ts, record) VALUES (?, ?)",
		"DELETE FROM spend WHERE expires != 0 AND expires < ?",
		"DELETE FROM spend WHERE scope = ? AND period = ? AND start >= ?",
		"INSERT INTO teams (name, policy) VALUES (?, ?)"
		" ON CONFLICT (name) DO UPDATE SET policy = excluded.policy",
		"DELETE FROM teams WHERE name = ?",
		"UPDATE journal SET seq = max(seq, ?) WHERE id = 1",
		"INSERT OR REPLACE INTO tool_pins (server, tool, digest, definition, approved_at,"
		" approved_by) VALUES (?, ?, ?, ?, ?, ?)",
		/* kept again after a replay whose reply was lost: one row, its first place */
		"INSERT INTO fleet_pending (id, command) VALUES (?, ?) ON CONFLICT (id) DO NOTHING",
		"DELETE FROM fleet_pending WHERE id = ?",
	};
	sqlite3_stmt **out[] = { &st->st_charge, &st->st_key_put, &st->st_key_del, &st->st_audit,
				 &st->st_prune, &st->st_reset, &st->st_team_put, &st->st_team_del,
				 &st->st_jseq, &st->st_pin_put, &st->st_pend_put, &st->st_pend_del };

	static const char *const tx[TX_COUNT] = {
		[TX_BEGIN] = "BEGIN IMMEDIATE", [TX_COMMIT] = "COMMIT", [TX_ROLLBACK] = "ROLLBACK",
		[TX_SAVEPOINT] = "SAVEPOINT op", [TX_RELEASE] = "RELEASE op",
		[TX_ROLLBACK_TO] = "ROLLBACK TO op",
	};
	int rc = SQLITE_OK;

	for (size_t i = 0; i < sizeof(sql) / sizeof(sql[0]) && rc == SQLITE_OK; i++)
		rc = sqlite3_prepare_v3(st->db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, out[i], NULL);
	for (size_t i = 0; i < TX_COUNT && rc == SQLITE_OK; i++)
		rc = sqlite3_prepare_v3(st->db, tx[i], -1, SQLITE_PREPARE_PERSISTENT, &st->st_tx[i],
					NULL);
	if (rc != SQLITE_OK) {
		log_error("store: prepare: %s", sqlite3_errmsg(st->db));
		return store_db_errno(rc);
	}
	return 0;
}

static void store_free(struct store *st)
{
	sqlite3_finalize(st->st_charge);
	sqlite3_finalize(st->st_jseq);
	journal_close(st->jr);
	sqlite3_finalize(st->st_key_put);
	sqlite3_finalize(st->st_key_del);
	sqlite3_finalize(st->st_audit);
	sqlite3_finalize(st->st_prune);
	sqlite3_finalize(st->st_reset);
	sqlite3_finalize(st->st_team_put);
	sqlite3_finalize(st->st_team_del);
	sqlite3_finalize(st->st_pin_put);
	sqlite3_finalize(st->st_pend_put);
	sqlite3_finalize(st->st_pend_del);
	for (size_t i = 0; i < TX_COUNT; i++)
		sqlite3_finalize(st->st_tx[i]);
	if (st->db) {
		/* Fold the WAL back into the database so a clean stop leaves one file. */
		if (sqlite3_wal_checkpoint_v2(st->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL,
					      NULL) != SQLITE_OK)
			log_warn("store: final checkpoint: %s", sqlite3_errmsg(st->db));
		sqlite3_close(st->db);
	}
	sqlite3_close(st->ckpt_db);
	for (size_t i = 0; i < atomic_load(&st->nloops); i++) {
		doorbell_fini(&st->loops[i].bell);
		event_free_opt(st->loops[i].flush_ev);
	}
	pthread_cond_destroy(&st->wake);
	pthread_cond_destroy(&st->ckpt_wake);
	pthread_cond_destroy(&st->drained);
	pthread_mutex_destroy(&st->lock);
	pthread_mutex_destroy(&st->db_lock);
	free(st->path);
	free(st);
}

/* ---- the charge journal ---- */

struct replay {
	struct store *st;
	size_t charges;
};

static int replay_one(const struct store_spend *items, size_t n, uint64_t seq, void *arg)
{
	struct replay *r = arg;
	struct op op = { .type = OP_CHARGE, .n = n, .items = (struct store_spend *)items,
			 .seq = seq };

	r->charges++;
	return store_apply(r->st, &op);
}

/* Open the journal beside the database and commit what the last run left in it (charges
 * answered before a crash). Without a journal charges wait for their commit, as before. */
static int journal_start(struct store *st)
{
	size_t n = strlen(st->path) + sizeof("-charges");
	char *path = xmalloc(n);
	struct replay r = { st, 0 };
	sqlite3_stmt *s = NULL;
	uint64_t done = 0, seen = 0, ring = 0;
	int rc;

	if (sqlite3_prepare_v2(st->db, "SELECT seq, ring FROM journal WHERE id = 1", -1, &s,
			       NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW) {
		done = (uint64_t)sqlite3_column_int64(s, 0);
		ring = (uint64_t)sqlite3_column_int64(s, 1);
	}
	sqlite3_finalize(s);
	snprintf(path, n, "%s-charges", st->path);
	rc = ring ? journal_open(path, ring, 0, &st->jr) : -ENOENT;
	if (rc) {
		log_warn("store: no charge journal at %s (%s): each charge waits for its commit",
			 path, strerror(-rc));
		free(path);
		return 0;
	}
	free(path);
	if ((rc = store_db_exec(st->db, "BEGIN IMMEDIATE")) != 0)
		return rc;
	rc = journal_replay(st->jr, done, replay_one, &r, &seen);
	if (!rc && seen > done) {
		/* Past what is seen even when incomplete, so a torn record never comes back. */
		rc = store_step_jseq(st, seen);
	}
	rc = rc ? rc : store_db_exec(st->db, "COMMIT");
	if (rc) {
		if (!sqlite3_get_autocommit(st->db) && store_db_exec(st->db, "ROLLBACK") != 0)
			log_error("store: rollback failed");
		log_error("store: cannot replay the charge journal: %s", strerror(-rc));
		return rc;
	}
	if (r.charges)
		log_info("store: %zu charge%s answered before the last stop replayed from the journal",
			 r.charges, r.charges == 1 ? "" : "s");
	journal_restart(st->jr, (seen > done ? seen : done) + 1);
	return 0;
}

/* NORMAL: a commit is a write(2) to the WAL (kill -9 safe); fsync happens at checkpoints,
 * which only the checkpointer thread runs (autocheckpoint off). */
static const struct store_db_spec writer_db = {
	.who = "store", .shared = true, .wal = true, .busy_ms = 5000,
	.pragmas = "PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 0; "
		   "PRAGMA journal_size_limit = 67108864;",
};
static const struct store_db_spec ckpt_db = {
	.who = "store", .shared = true, .busy_ms = 5000, .pragmas = "PRAGMA synchronous = NORMAL;",
};

int store_loop_attach(struct store *st, struct event_base *base)
{
	struct store_loop *lp = NULL;
	size_t i, n;
	int rc = 0;

	pthread_mutex_lock(&st->lock);          /* loops attaching at once */
	n = atomic_load(&st->nloops);
	for (i = 1; i < n && !lp; i++)          /* one a loop that ended left */
		if (!atomic_load(&st->loops[i].attached))
			lp = &st->loops[i];
	if (!lp && n == STORE_LOOPS_MAX) {
		rc = -ENOSPC;
		goto out;
	}
	if (!lp)
		lp = &st->loops[n];
	lp->st = st;
	lp->bell.fd = -1;
	lp->draining = false;
	atomic_store(&lp->awaited, 0);
	atomic_store_explicit(&lp->thread, pthread_self(), memory_order_relaxed);
	list_init(&lp->staged);
	lp->staged_n = 0;
	lp->staged_urgent = false;
	list_init(&lp->done);
	lp->ring = false;
	if ((rc = doorbell_init(&lp->bell, base, "store", on_done, lp)) != 0 ||
	    !(lp->flush_ev = event_new(base, -1, 0, on_flush, lp))) {
		doorbell_fini(&lp->bell);
		rc = rc ? rc : -ENOMEM;
		goto out;
	}
	/* Seen whole by the writer and the other loops once counted. */
	atomic_store_explicit(&lp->attached, true, memory_order_release);
	if (lp == &st->loops[n])
		atomic_store_explicit(&st->nloops, n + 1, memory_order_release);
out:
	pthread_mutex_unlock(&st->lock);
	return rc;
}

void store_loop_detach(struct store *st)
{
	struct store_loop *lp = st ? cur_loop(st) : NULL;
	struct list_head list;
	struct op *op, *tmp;

	if (!lp || lp == &st->loops[0])
		return;
	list_init(&list);
	pthread_mutex_lock(&st->lock);
	lp->draining = true;
	for (;;) {
		if (!list_empty(&lp->staged))   /* also what a callback below queued */
			wake_writer(st, take_staged(st, lp));
		list_splice_tail_init(&lp->done, &list);
		if (list_empty(&list) && !atomic_load(&lp->awaited))
			break;
		if (list_empty(&list)) {
			pthread_cond_wait(&st->drained, &st->lock);
			continue;
		}
		pthread_mutex_unlock(&st->lock);
		list_for_each_entry_safe(op, tmp, &list, link) {
			list_del(&op->link);
			if (op->cb) {
				op->cb(op->arg, op->err);
				atomic_fetch_sub(&lp->awaited, 1);
			}
			alloc_cache_put(op);
		}
		pthread_mutex_lock(&st->lock);
	}
	lp->draining = false;
	lp->ring = false;
	atomic_store_explicit(&lp->attached, false, memory_order_release);
	doorbell_fini(&lp->bell);
	event_free_opt(lp->flush_ev);
	lp->flush_ev = NULL;
	pthread_mutex_unlock(&st->lock);
}

int store_open(const struct store_options *opt, struct event_base *base, struct store **out)
{
	struct store *st = calloc(1, sizeof(*st));
	int rc, fd;

	*out = NULL;
	if (!st)
		return -ENOMEM;
	pthread_mutex_init(&st->lock, NULL);
	pthread_mutex_init(&st->db_lock, NULL);
	{
		pthread_condattr_t ca;
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&st->wake, &ca);
		pthread_cond_init(&st->ckpt_wake, &ca);
		pthread_condattr_destroy(&ca);
		pthread_cond_init(&st->drained, NULL);
	}
	list_init(&st->queue);
	st->fsync_interval_ms = opt->fsync_interval_ms > 0 ? opt->fsync_interval_ms
							   : STORE_FSYNC_INTERVAL_MS_DEFAULT;
	st->want_idle = opt->writer_idle;
	st->path = strdup(opt->path ? opt->path : "");
	if (!st->path || !st->path[0]) {
		rc = st->path ? -EINVAL : -ENOMEM;
		goto out;
	}
	/* Key hashes live here: create the file owner-only; SQLite gives -wal/-shm the same mode. */
	fd = open(st->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		log_error("store: cannot open %s: %s", st->path, strerror(errno));
		goto out;
	}
	close(fd);
	if ((rc = store_db_open(st->path, &writer_db, &st->db)) != 0 ||
	    (rc = store_db_migrate(st->db, st->path)) != 0 || (rc = prepare(st)) != 0 ||
	    (rc = journal_start(st)) != 0)
		goto out;
	if ((rc = store_db_open(st->path, &ckpt_db, &st->ckpt_db)) != 0)
		goto out;
	if ((rc = store_loop_attach(st, base)) != 0)
		goto out;
	if ((rc = thread_start(&st->writer, THREAD_NAME_PREFIX "store", store_writer_main, st)) != 0)
		goto out;
	st->writer_up = true;
	if ((rc = thread_start(&st->ckpt, THREAD_NAME_PREFIX "checkpoint", store_ckpt_main, st)) != 0)
		goto out;
	st->ckpt_up = true;
	log_info("store: %s open (schema %d, fsync every %d ms)", st->path, STORE_SCHEMA_VERSION,
		 st->fsync_interval_ms);
	*out = st;
	return 0;
out:
	store_close(st);
	return rc;
}

void store_close(struct store *st)
{
	if (!st)
		return;
	for (size_t i = 0; i < atomic_load(&st->nloops); i++)
		hand_over(&st->loops[i]);       /* staged operations are committed too */
	pthread_mutex_lock(&st->lock);
	st->stopping = true;
	st->ckpt_stopping = true;
	/* The close waits for both: at full speed. */
	store_raise(st, &st->writer_prio);
	store_raise(st, &st->ckpt_prio);
	pthread_cond_signal(&st->wake);
	pthread_cond_signal(&st->ckpt_wake);
	pthread_mutex_unlock(&st->lock);
	if (st->writer_up)
		pthread_join(st->writer, NULL);
	if (st->ckpt_up)
		pthread_join(st->ckpt, NULL);
	for (size_t i = 0; i < atomic_load(&st->nloops); i++)
		run_done(&st->loops[i]);
	store_free(st);
}

static const char *col_text(sqlite3_stmt *s, int i)
{
	return (const char *)sqlite3_column_text(s, i);
}

/* A loader's caller: the callback for the kind of row, and its argument. */
struct loader {
	union {
		int (*key)(void *arg, const struct store_key *k);
		int (*spend)(void *arg, const struct store_spend *row);
		int (*pin)(void *arg, const struct store_tool_pin *p);
		int (*texts)(void *arg, const char *a, const char *b);  /* teams, pending */
	} cb;
	void *arg;
};

/* Run a SELECT under the db lock, handing each row to row(stmt, l) until it returns non-zero
 * (which is returned). */
static int load(struct store *st, const char *sql,
		int (*row)(sqlite3_stmt *s, const struct loader *l), struct loader l)
{
	sqlite3_stmt *s = NULL;
	int rc;

	pthread_mutex_lock(&st->db_lock);
	rc = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL);
	if (rc != SQLITE_OK) {
		rc = store_db_errno(rc);
		goto out;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		if ((rc = row(s, &l)) != 0)
			goto out;
	rc = store_db_errno(rc);
out:
	sqlite3_finalize(s);
	pthread_mutex_unlock(&st->db_lock);
	return rc;
}

static int key_row(sqlite3_stmt *s, const struct loader *l)
{
	struct store_key k = {
		.id = col_text(s, 0), .name = col_text(s, 1), .team = col_text(s, 2),
		.policy = col_text(s, 3), .created = sqlite3_column_int64(s, 5),
		.expires = sqlite3_column_int64(s, 6),
		.disabled = sqlite3_column_int(s, 7) != 0, .workloads = col_text(s, 8),
	};

	if (sqlite3_column_bytes(s, 4) == sizeof(k.hash))
		memcpy(k.hash, sqlite3_column_blob(s, 4), sizeof(k.hash));
	return l->cb.key(l->arg, &k);
}

int store_load_keys(struct store *st, int (*cb)(void *arg, const struct store_key *k),
		    void *arg)
{
	return load(st, "SELECT id, name, team, policy, hash, created, expires, disabled, workloads"
		    " FROM keys ORDER BY id", key_row, (struct loader){ .cb.key = cb, .arg = arg });
}

static int spend_row(sqlite3_stmt *s, const struct loader *l)
{
	struct store_spend row = {
		.scope = col_text(s, 0), .period = col_text(s, 1),
		.start = sqlite3_column_int64(s, 2), .amount = sqlite3_column_int64(s, 3),
		.expires = sqlite3_column_int64(s, 4),
	};

	return l->cb.spend(l->arg, &row);
}

int store_load_spend(struct store *st, int (*cb)(void *arg, const struct store_spend *row),
		     void *arg)
{
	return load(st, "SELECT scope, period, start, amount, expires FROM spend"
		    " ORDER BY scope, period, start", spend_row,
		    (struct loader){ .cb.spend = cb, .arg = arg });
}

static int pin_row(sqlite3_stmt *s, const struct loader *l)
{
	struct store_tool_pin p = {
		.server = col_text(s, 0), .tool = col_text(s, 1), .digest = col_text(s, 2),
		.definition = col_text(s, 3), .approved_at = sqlite3_column_int64(s, 4),
		.approved_by = col_text(s, 5),
	};

	return l->cb.pin(l->arg, &p);
}

int store_load_tool_pins(struct store *st,
			 int (*cb)(void *arg, const struct store_tool_pin *p), void *arg)
{
	return load(st, "SELECT server, tool, digest, definition, approved_at, approved_by"
		    " FROM tool_pins ORDER BY server, tool", pin_row,
		    (struct loader){ .cb.pin = cb, .arg = arg });
}

/* Rows of two text columns (teams, the pending fleet commands). */
static int texts_row(sqlite3_stmt *s, const struct loader *l)
{
	return l->cb.texts(l->arg, col_text(s, 0), col_text(s, 1));
}

int store_load_teams(struct store *st, int (*cb)(void *arg, const char *name, const char *policy),
		     void *arg)
{
	return load(st, "SELECT name, policy FROM teams ORDER BY name", texts_row,
		    (struct loader){ .cb.texts = cb, .arg = arg });
}

int store_load_pending(struct store *st, int (*cb)(void *arg, const char *id, const char *command),
		       void *arg)
{
	return load(st, "SELECT id, command FROM fleet_pending ORDER BY seq", texts_row,
		    (struct loader){ .cb.texts = cb, .arg = arg });
}
