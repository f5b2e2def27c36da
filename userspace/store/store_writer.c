/* store_writer: the writer thread (group commit, retries while the disk fails) and the
 * checkpointer thread (the fsyncs). */
#include "store/store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "store/db.h"
#include "store/schema.h"

static int64_t now_s(void)
{
	return (int64_t)time(NULL);
}

int store_step_reset(sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);

	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc == SQLITE_DONE ? 0 : store_db_errno(rc);
}

int store_step_jseq(struct store *st, uint64_t seq)
{
	sqlite3_bind_int64(st->st_jseq, 1, (sqlite3_int64)seq);
	return store_step_reset(st->st_jseq);
}

/* Bind v[0..n-1] as texts to the parameters from 1 on (NULL binds NULL); 0 or a negative
 * errno. */
static int bind_texts(sqlite3_stmt *s, size_t n, const char *const *v)
{
	for (size_t i = 0; i < n; i++) {
		int rc = sqlite3_bind_text(s, (int)i + 1, v[i], -1, SQLITE_STATIC);

		if (rc != SQLITE_OK)
			return store_db_errno(rc);
	}
	return 0;
}

/* The statements that take only text: bind them and run. */
static int step_texts(sqlite3_stmt *s, size_t n, const char *const *v)
{
	int rc = bind_texts(s, n, v);

	return rc ? rc : store_step_reset(s);
}

/* The n, v arguments of bind_texts and step_texts for a list of strings. */
#define TEXTS(...) sizeof((const char *[]){ __VA_ARGS__ }) / sizeof(const char *), \
		   (const char *[]){ __VA_ARGS__ }

/* One spend row: st_charge takes scope, period, start, amount, expires; st_reset the first
 * three. */
static int step_spend(sqlite3_stmt *s, const struct store_spend *it)
{
	int rc = bind_texts(s, TEXTS(it->scope, it->period));

	if (rc)
		return rc;
	sqlite3_bind_int64(s, 3, it->start);
	if (sqlite3_bind_parameter_count(s) == 5) {
		sqlite3_bind_int64(s, 4, it->amount);
		sqlite3_bind_int64(s, 5, it->expires);
	}
	return store_step_reset(s);
}

static int step_items(sqlite3_stmt *s, const struct op *op)
{
	int rc = 0;

	for (size_t i = 0; i < op->n && rc == 0; i++)
		rc = step_spend(s, &op->items[i]);
	return rc;
}

int store_apply(struct store *st, struct op *op)
{
	sqlite3_stmt *s;
	int rc;

	switch (op->type) {
	case OP_CHARGE:
		rc = step_items(st->st_charge, op);
		if (rc == 0 && op->pend_id)
			/* The same transaction: the charge and its replay are durable together. */
			rc = step_texts(st->st_pend_put, TEXTS(op->pend_id, op->pend_cmd));
		if (rc == 0 && op->seq)
			rc = store_step_jseq(st, op->seq);
		return rc;
	case OP_KEY_PUT:
		s = st->st_key_put;
		rc = bind_texts(s, TEXTS(op->key.id, op->key.name, op->key.team, op->key.policy));
		if (rc)
			return rc;
		sqlite3_bind_blob(s, 5, op->key.hash, sizeof(op->key.hash), SQLITE_STATIC);
		sqlite3_bind_int64(s, 6, op->key.created);
		sqlite3_bind_int64(s, 7, op->key.expires);
		sqlite3_bind_int(s, 8, op->key.disabled);
		sqlite3_bind_text(s, 9, op->key.workloads, -1, SQLITE_STATIC);
		return store_step_reset(s);
	case OP_AUDIT:
		s = st->st_audit;
		sqlite3_bind_int64(s, 1, op->ts);
		sqlite3_bind_text(s, 2, op->text, -1, SQLITE_STATIC);
		return store_step_reset(s);
	case OP_SPEND_RESET:
		return step_items(st->st_reset, op);
	case OP_PIN_PUT:
		s = st->st_pin_put;
		rc = bind_texts(s, TEXTS(op->pin.server, op->pin.tool, op->pin.digest,
					 op->pin.definition));
		if (rc)
			return rc;
		sqlite3_bind_int64(s, 5, op->pin.approved_at);
		sqlite3_bind_text(s, 6, op->pin.approved_by, -1, SQLITE_STATIC);
		return store_step_reset(s);
	case OP_KEY_DELETE:
	case OP_TEAM_PUT:
	case OP_TEAM_DELETE:
	case OP_PENDING_DELETE:
		/* The text ops (store.c queue_texts): key.id, and text for a put. */
		s = op->type == OP_KEY_DELETE  ? st->st_key_del :
		    op->type == OP_TEAM_PUT    ? st->st_team_put :
		    op->type == OP_TEAM_DELETE ? st->st_team_del : st->st_pend_del;
		return step_texts(s, op->text ? 2 : 1, (const char *[]){ op->key.id, op->text });
	case OP_FLUSH:
		return 0;
	}
	return -EINVAL;
}

/* The disk failed (full, read-only, I/O error), not the operation: worth trying again. */
static bool disk_error(int err)
{
	return err == -ENOSPC || err == -EIO || err == -EROFS || err == -EPERM || err == -EBUSY ||
	       err == -ENOMEM;
}

/* SQLite says SQLITE_IOERR for most failed writes (and keeps no errno to tell why): the file
 * system tells a read-only one (EROFS), a full one (ENOSPC) or write-protected files (EPERM)
 * from a failing disk. */
static int disk_errno(struct store *st, int rc)
{
	struct statvfs sv;
	char dir[4096];
	const char *slash = strrchr(st->path, '/');
	int fd;

	if (rc != -EIO)
		return rc;
	if (statvfs(st->path, &sv) == 0 && (sv.f_flag & ST_RDONLY))
		return -EROFS;
	if (statvfs(st->path, &sv) == 0 && sv.f_bavail == 0)
		return -ENOSPC;
	/* An emergency read-only file system (ext4 after an error) still shows rw in statvfs:
	 * creating an unnamed file there says EROFS. */
	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - st->path) + 1 : 1,
		 slash ? st->path : ".");
	fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
	if (fd < 0 && errno == EROFS)
		return -EROFS;
	/* Write-protected files (chattr +i: EPERM even through descriptors already open). */
	for (int i = 0; i < 2; i++) {
		snprintf(dir, sizeof(dir), "%s%s", st->path, i ? "-wal" : "");
		fd = open(dir, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd >= 0)
			close(fd);
		else if (errno == EPERM || errno == EACCES)
			return -EPERM;
	}
	return rc;
}

/* Transaction control on the writer: failures are reported once, by set_health, not at every
 * retry of a disk that stays full. */
static int tx(struct store *st, enum store_tx t)
{
	return store_step_reset(st->st_tx[t]);
}

/* The result of a write (0 or its error, already through disk_errno): health, and a log line
 * when it changes. */
static void set_health(struct store *st, int rc)
{
	int now = rc == 0 ? 0 : disk_error(rc) ? rc : -EIO;
	int was = atomic_exchange(&st->health, now);

	if (was && !now)
		log_info("store: %s: writes succeed again", st->path);
	else if (now && now != was)
		log_error("store: %s: writes fail (%s): calls with a budget are refused, answered "
			  "charges wait in the journal; trying again every %d ms", st->path,
			  strerror(-now), RETRY_MS);
}

/* body under a savepoint, so that it fails alone: *err is its own result; the return value
 * is what fails the whole batch (the disk's error, or a savepoint that cannot be undone). */
static int in_savepoint(struct store *st, int (*body)(struct store *st, void *arg), void *arg,
			int *err)
{
	int rc = 0;

	if ((*err = tx(st, TX_SAVEPOINT)) != 0)
		return *err;
	*err = body(st, arg);
	if (disk_error(*err))
		rc = *err = disk_errno(st, *err);
	if (*err && tx(st, TX_ROLLBACK_TO) != 0)
		rc = -EIO;
	if (tx(st, TX_RELEASE) != 0)
		rc = -EIO;
	return rc;
}

static int apply_op(struct store *st, void *op)
{
	return store_apply(st, op);
}

/* Charges from the journal that nobody waits for, folded (issue 9): a batch holds GATHER_MS
 * of calls, nearly all adding to the same few spend rows (a key's day, its team's month), so
 * a run of them writes each row once, with the sum, and the journal's sequence number once,
 * not every row and the number once per call. The run is one unit: it commits or fails
 * whole, before whatever follows it in the batch (a reset) is applied. */
#define FOLD_ROWS 32

struct fold {
	struct store_spend row[FOLD_ROWS];
	size_t n;
	uint64_t seq;           /* the run's last journal record */
	struct op *first;       /* the run's first operation, and how many follow it */
	size_t ops;
};

static bool foldable(const struct op *op)
{
	return op->type == OP_CHARGE && op->seq && !op->cb && !op->pend_id && op->n <= FOLD_ROWS;
}

static struct store_spend *fold_row(struct fold *f, const struct store_spend *it)
{
	for (size_t i = 0; i < f->n; i++)
		if (f->row[i].start == it->start && strcmp(f->row[i].scope, it->scope) == 0 &&
		    strcmp(f->row[i].period, it->period) == 0)
			return &f->row[i];
	return NULL;
}

/* Add a foldable op to the run; false if its rows do not fit (write the run first). */
static bool fold_add(struct fold *f, struct op *op)
{
	size_t fresh = 0;

	for (size_t i = 0; i < op->n; i++)
		fresh += !fold_row(f, &op->items[i]);
	if (f->n + fresh > FOLD_ROWS)
		return false;
	for (size_t i = 0; i < op->n; i++) {
		struct store_spend *r = fold_row(f, &op->items[i]);

		if (!r) {
			r = &f->row[f->n++];
			*r = op->items[i];
			continue;
		}
		r->amount += op->items[i].amount;
		if (op->items[i].expires > r->expires)
			r->expires = op->items[i].expires;
	}
	if (!f->ops++)
		f->first = op;
	if (op->seq > f->seq)
		f->seq = op->seq;
	return true;
}

static int fold_body(struct store *st, void *arg)
{
	const struct fold *f = arg;
	int rc = 0;

	for (size_t i = 0; i < f->n && rc == 0; i++)
		rc = step_spend(st->st_charge, &f->row[i]);
	return rc ? rc : store_step_jseq(st, f->seq);
}

/* Write the run, if any, and give each of its operations the result; the batch's error. */
static int fold_write(struct store *st, struct fold *f)
{
	struct op *op = f->first;
	int err, rc;

	if (!f->ops)
		return 0;
	rc = in_savepoint(st, fold_body, f, &err);
	for (size_t i = 0; i < f->ops; i++, op = list_entry(op->link.next, struct op, link))
		op->err = err;
	*f = (struct fold){ .n = 0 };
	return rc;
}

/* One transaction for the whole batch; a savepoint per operation (or folded run of charges)
 * so one bad operation (a duplicate key hash) fails alone. A disk error fails the whole
 * batch: a charge from the journal must never be committed after a later one (the journal
 * replays only what follows the last committed sequence number). */
static void commit_batch(struct store *st, struct list_head *batch)
{
	struct fold run = { .n = 0 }, *f = &run;
	struct op *op;
	int rc;

	pthread_mutex_lock(&st->db_lock);
	rc = tx(st, TX_BEGIN);
	list_for_each_entry(op, batch, link) {
		if (rc) {
			op->err = rc;
			continue;
		}
		if (foldable(op) && fold_add(f, op))
			continue;
		if ((rc = fold_write(st, f)) != 0) {
			op->err = rc;
			continue;
		}
		if (foldable(op) && fold_add(f, op))
			continue;
		rc = in_savepoint(st, apply_op, op, &op->err);
	}
	if (rc == 0)
		rc = fold_write(st, f);
	if (rc == 0 && now_s() - st->last_prune >= PRUNE_EVERY_S) {
		/* Rolling-window slots that left their window: nothing reads them again. */
		sqlite3_bind_int64(st->st_prune, 1, now_s());
		if (store_step_reset(st->st_prune) == 0)
			st->last_prune = now_s();
	}
	if (rc == 0 && (rc = tx(st, TX_COMMIT)) != 0)
		rc = disk_errno(st, rc);
	if (rc) {
		if (!sqlite3_get_autocommit(st->db) && tx(st, TX_ROLLBACK) != 0)
			log_error("store: rollback failed");
		if (!disk_error(rc))
			log_error("store: batch not committed: %s", strerror(-rc));
		list_for_each_entry(op, batch, link)
			if (!op->err || !disk_error(op->err))
				op->err = rc;
	} else {
		atomic_fetch_add(&st->commits, 1);
	}
	set_health(st, rc);
	pthread_mutex_unlock(&st->db_lock);
}

/* While the disk fails and no charge is waiting to be tried again: a write that really
 * changes a page (a row in and out; an UPDATE to the same value writes nothing), so that
 * health turns back to 0 as soon as the disk takes writes again. */
static void probe(struct store *st)
{
	static const struct store_spend probe_row = { .scope = "-probe", .period = "-",
						       .expires = 1 };
	int rc;

	pthread_mutex_lock(&st->db_lock);
	rc = tx(st, TX_BEGIN);
	if (rc == 0)
		rc = step_spend(st->st_charge, &probe_row);
	if (rc == 0)
		rc = step_spend(st->st_reset, &probe_row);
	if (rc == 0)
		rc = tx(st, TX_COMMIT);
	rc = rc ? disk_errno(st, rc) : 0;
	if (rc && !sqlite3_get_autocommit(st->db) && tx(st, TX_ROLLBACK) != 0)
		log_error("store: rollback failed");
	set_health(st, rc);
	pthread_mutex_unlock(&st->db_lock);
}

/* ---- the threads' classes (store.writer_priority; st->lock held) ---- */

void store_raise(struct store *st, struct thread_idle *ti)
{
	int rc = st->stopping ? thread_idle_end(ti) : thread_idle_raise(ti);

	if (rc)
		log_error("store: the %s could not leave the idle class: %s",
			  ti == &st->writer_prio ? "writer" : "checkpointer", strerror(-rc));
}

/* Each thread at its start, in the idle class when wanted and the process may raise it
 * again (asked on a probe thread, so without the lock). */
static void prio_setup(struct store *st, struct thread_idle *ti)
{
	bool may = st->want_idle && thread_idle_reversible();

	pthread_mutex_lock(&st->lock);
	thread_idle_setup(ti, pthread_self(), may && !st->stopping);
	pthread_mutex_unlock(&st->lock);
	if (st->want_idle && !may && ti == &st->writer_prio)
		log_info("store: the writer and checkpointer run at normal priority: raising them "
			 "from the idle class when they fall behind needs CAP_SYS_NICE or an "
			 "RLIMIT_NICE of 20");
}

/* Wait until RETRY_MS from now, or until the store stops. Called with st->lock held. */
static void wait_retry(struct store *st)
{
	struct timespec until;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_nsec += RETRY_MS * 1000000L;
	until.tv_sec += until.tv_nsec / 1000000000L;
	until.tv_nsec %= 1000000000L;
	while (!st->stopping && pthread_cond_timedwait(&st->wake, &st->lock, &until) != ETIMEDOUT)
		;
}

void *store_writer_main(void *arg)
{
	struct store *st = arg;
	struct list_head batch, retry;
	struct op *op, *tmp;

	list_init(&batch);
	/* Charges from the journal whose commit failed on the disk: nobody waits for them (the
	 * call was answered), so they are tried again, first in the next batch, until the disk
	 * takes them. Only stopping gives up on them: they stay in the journal for the next start. */
	list_init(&retry);
	prio_setup(st, &st->writer_prio);
	pthread_mutex_lock(&st->lock);
	for (;;) {
		bool failing = atomic_load(&st->health) != 0 || !list_empty(&retry);

		if (failing && !st->stopping) {
			wait_retry(st);
		} else {
			while (list_empty(&st->queue) && !st->stopping)
				pthread_cond_wait(&st->wake, &st->lock);
			if (list_empty(&st->queue) && list_empty(&retry))
				break;
		}
		/* Nobody waits for these (charges safe in the journal, records): gather a few
		 * milliseconds of them into one transaction instead of one per call. */
		if (!failing && !st->urgent && !st->stopping) {
			struct timespec until;

			clock_gettime(CLOCK_MONOTONIC, &until);
			until.tv_nsec += GATHER_MS * 1000000L;
			if (until.tv_nsec >= 1000000000L) {
				until.tv_sec++;
				until.tv_nsec -= 1000000000L;
			}
			st->gathering = true;
			while (!st->urgent && !st->stopping &&
			       pthread_cond_timedwait(&st->wake, &st->lock, &until) != ETIMEDOUT)
				;
			st->gathering = false;
		}
		st->urgent = false;
		/* Group commit: what failed before first, then everything queued meanwhile. */
		list_splice_tail_init(&retry, &batch);
		list_splice_tail_init(&st->queue, &batch);
		st->queued = 0;
		pthread_mutex_unlock(&st->lock);

		if (list_empty(&batch))
			probe(st);
		else
			commit_batch(st, &batch);

		pthread_mutex_lock(&st->lock);
		list_for_each_entry_safe(op, tmp, &batch, link)
			if (op->seq && !op->cb && disk_error(op->err) && !st->stopping) {
				op->err = 0;
				list_del(&op->link);
				list_add_tail(&op->link, &retry);
			}
		store_deliver(st, &batch);
		/* A checkpointer starved of CPU time: the power-loss window is past twice its
		 * interval, so it is raised (and lowers itself after the checkpoint). */
		if (st->ckpt_prio.idle && atomic_load(&st->commits) != atomic_load(&st->ckpt_seen) &&
		    (int64_t)clock_mono_ms() - atomic_load(&st->synced_ms) >
		    2 * (int64_t)st->fsync_interval_ms)
			store_raise(st, &st->ckpt_prio);
		/* Caught up: back to the idle time. */
		if (!st->stopping && !st->urgent && st->queued < RAISE_OPS / 10)
			thread_idle_lower(&st->writer_prio);
	}
	pthread_mutex_unlock(&st->lock);
	return NULL;
}

/* Every fsync_interval_ms, if something was committed: a passive checkpoint on a connection of
 * its own. With synchronous=NORMAL the checkpoint fsyncs the WAL before copying it, which is
 * what bounds power loss; the writer never waits for it (WAL lets both run at once). */
void *store_ckpt_main(void *arg)
{
	struct store *st = arg;
	struct timespec until;

	atomic_store(&st->synced_ms, (int64_t)clock_mono_ms());
	prio_setup(st, &st->ckpt_prio);
	pthread_mutex_lock(&st->lock);
	while (!st->ckpt_stopping) {
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += st->fsync_interval_ms / 1000;
		until.tv_nsec += (long)(st->fsync_interval_ms % 1000) * 1000000;
		if (until.tv_nsec >= 1000000000) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000;
		}
		while (!st->ckpt_stopping &&
		       pthread_cond_timedwait(&st->ckpt_wake, &st->lock, &until) != ETIMEDOUT)
			;
		uint64_t c = atomic_load(&st->commits);
		if (c == atomic_load(&st->ckpt_seen)) {
			/* Up to date: a commit from now on has a whole interval to go. */
			atomic_store(&st->synced_ms, (int64_t)clock_mono_ms());
			continue;
		}
		pthread_mutex_unlock(&st->lock);
		int rc = sqlite3_wal_checkpoint_v2(st->ckpt_db, NULL, SQLITE_CHECKPOINT_PASSIVE,
						   NULL, NULL);
		if (rc == SQLITE_OK) {
			atomic_store(&st->ckpt_seen, c);
			atomic_store(&st->synced_ms, (int64_t)clock_mono_ms());
			atomic_fetch_add(&st->syncs, 1);
		} else if (rc != SQLITE_BUSY) {
			log_error("store: checkpoint: %s", sqlite3_errmsg(st->ckpt_db));
		}
		pthread_mutex_lock(&st->lock);
		if (!st->ckpt_stopping)
			thread_idle_lower(&st->ckpt_prio);
	}
	pthread_mutex_unlock(&st->lock);
	return NULL;
}
