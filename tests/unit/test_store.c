/* test_store: the SQLite store against a real database in a temporary directory. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <CUnit/Basic.h>
#include <sqlite3.h>

#include "govern/budget.h"
#include "base/log.h"
#include "store/journal.h"
#include "store/store.h"
#include "store_test_util.h"
#include "cunit_main.h"
#include "thread_test_util.h"

static char dir[PATH_MAX], path[PATH_MAX + 32];
static struct event_base *base;

static int setup(void)
{
	log_set_level(LOG_WARN);
	if (tmpdir_setup(dir, sizeof(dir), path, sizeof(path), "warden.db"))
		return -1;
	base = event_base_new();
	return base ? 0 : -1;
}

static int teardown(void)
{
	event_base_free(base);
	tmpdir_remove(dir);
	return 0;
}

static void fresh(void)
{
	char p[PATH_MAX + 40];

	unlink(path);
	snprintf(p, sizeof(p), "%s-wal", path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-charges", path);
	unlink(p);
}

static struct store *open_store(int fsync_ms)
{
	struct store_options o = { .path = path, .fsync_interval_ms = fsync_ms };
	struct store *st = NULL;

	CU_ASSERT_FATAL(store_open(&o, base, &st) == 0);
	return st;
}

struct acks {
	int n, errs, order_bad, last_errno;
	int next;               /* expected sequence number of the next callback */
	bool all;
	int want;
};

struct ack_arg {
	struct acks *a;
	int seq;
};

/* A store in a new, empty database. */
static struct store *fresh_store(void)
{
	fresh();
	return open_store(1000);
}

/* After a batch with one duplicate: every write acknowledged in order, the duplicate alone
 * refused (EEXIST); then st closed and opened again, as the next start would. */
static struct store *reopen_after_dup(struct store *st, struct acks *a)
{
	CU_ASSERT(loop_until(base, &a->all));
	CU_ASSERT(a->errs == 1 && a->last_errno == -EEXIST && a->order_bad == 0);
	store_close(st);
	return open_store(1000);
}

/* A batch of n writes: a waits for n acknowledgements, args[i] is the i-th write's. */
static void acks_init(struct acks *a, struct ack_arg *args, int n)
{
	*a = (struct acks){ .want = n };
	for (int i = 0; i < n; i++)
		args[i] = (struct ack_arg){ a, i };
}

/* A batch of up to 256 writes and their acknowledgements (acks_init). */
struct batch {
	struct acks a;
	struct ack_arg args[256];
};

/* A fresh store for a batch of n writes. */
static struct store *batch_begin(struct batch *b, int n)
{
	CU_ASSERT_FATAL(n <= 256);
	acks_init(&b->a, b->args, n);
	return fresh_store();
}

static void on_ack(void *arg, int err)
{
	struct ack_arg *x = arg;

	if (x->seq != x->a->next++)
		x->a->order_bad++;
	if (err) {
		x->a->errs++;
		x->a->last_errno = err;
	}
	if (++x->a->n == x->a->want)
		x->a->all = true;
}

/* A charge the journal took is safe at once (1: no callback follows); one that waits for its
 * commit is acknowledged by the callback. Either way on_ack counts it, in order. */
static int charge(struct store *st, const struct store_spend *items, size_t n,
		  struct ack_arg *arg)
{
	int rc = store_charge(st, items, n, on_ack, arg);

	if (rc == 1)
		on_ack(arg, 0);
	return rc;
}

/* Everything st was given before is committed (store_flush acknowledged). */
static void flush_store(struct store *st)
{
	struct acks a = { .want = 1 };
	struct ack_arg arg = { &a, 0 };

	CU_ASSERT(store_flush(st, on_ack, &arg) == 0);
	CU_ASSERT(loop_until(base, &a.all));
}

struct sums {
	int64_t key, team, rows;
};

static int sum_spend(void *arg, const struct store_spend *r)
{
	struct sums *s = arg;

	if (strcmp(r->scope, "key:k1") == 0)
		s->key += r->amount;
	else if (strcmp(r->scope, "team:t") == 0)
		s->team += r->amount;
	s->rows++;
	return 0;
}

/* Charges are acknowledged in order, and after reopening the counters hold exactly them. */
static void test_charge_reopen(void)
{
	struct sums s = { 0 };
	struct stat sb;
	struct batch b;
	struct store *st = batch_begin(&b, 200);

	for (int i = 0; i < 200; i++) {
		struct store_spend items[2] = {
			{ "key:k1", "day", 86400 * (i % 2), i + 1, 0 },
			{ "team:t", "month", 0, i + 1, 0 },
		};
		CU_ASSERT(charge(st, items, 2, &b.args[i]) == 1);
	}
	CU_ASSERT(loop_until(base, &b.a.all));
	CU_ASSERT(b.a.errs == 0 && b.a.order_bad == 0);
	/* Group commit: far fewer transactions than operations (every one was queued before
	 * the loop ran, so at most a few batches). */
	CU_ASSERT(store_commits(st) < 200);
	/* The database holds key hashes: owner-only. */
	CU_ASSERT(stat(path, &sb) == 0 && (sb.st_mode & 077) == 0);
	store_close(st);

	st = open_store(1000);
	CU_ASSERT(store_load_spend(st, sum_spend, &s) == 0);
	CU_ASSERT(s.key == 200 * 201 / 2 && s.team == 200 * 201 / 2);
	CU_ASSERT(s.rows == 3);       /* two days for the key, one month for the team */
	/* Reopened counters continue exactly: more charges add to the same rows. */
	acks_init(&b.a, b.args, 1);
	CU_ASSERT(charge(st, &(struct store_spend){ "key:k1", "day", 0, 5, 0 }, 1, &b.args[0]) == 1);
	flush_store(st);	/* committed before it is read */
	s = (struct sums){ 0 };
	CU_ASSERT(store_load_spend(st, sum_spend, &s) == 0);
	CU_ASSERT(s.key == 200 * 201 / 2 + 5);
	store_close(st);
}

struct scope_sums {
	int64_t keys, team;
	int rows;
};

static int sum_scopes(void *arg, const struct store_spend *r)
{
	struct scope_sums *s = arg;

	if (strncmp(r->scope, "key:", 4) == 0)
		s->keys += r->amount;
	else if (strcmp(r->scope, "team:t") == 0)
		s->team += r->amount;
	s->rows++;
	return 0;
}

/* The writer folds a batch's charges into one write per spend row: the sums stay exact over
 * more distinct rows than one run holds, a reset queued between charges clears exactly those
 * before it, and after a reopen nothing is replayed twice from the journal. */
static void test_charge_fold(void)
{
	struct acks ra = { .want = 1 };
	struct ack_arg rarg = { &ra, 0 };
	struct scope_sums s = { 0 };
	char scope[40][24];
	struct batch b;
	struct store *st = batch_begin(&b, 200);

	for (int i = 0; i < 40; i++)
		snprintf(scope[i], sizeof(scope[i]), "key:k%d", i);
	for (int i = 0; i < 200; i++) {
		struct store_spend items[2] = {
			{ scope[i % 40], "day", 0, i + 1, 0 },
			{ "team:t", "day", 0, i < 100 ? 1000 : 1, 0 },
		};
		if (i == 100)
			CU_ASSERT(store_spend_reset(st, &(struct store_spend){ "team:t", "day", 0, 0, 0 },
						    1, on_ack, &rarg) == 0);
		CU_ASSERT(charge(st, items, 2, &b.args[i]) == 1);
	}
	CU_ASSERT(loop_until(base, &ra.all));
	CU_ASSERT(ra.errs == 0 && b.a.errs == 0 && b.a.order_bad == 0);
	flush_store(st);
	CU_ASSERT(store_load_spend(st, sum_scopes, &s) == 0);
	CU_ASSERT(s.keys == 200 * 201 / 2);
	CU_ASSERT(s.team == 100);
	CU_ASSERT(s.rows == 41);
	store_close(st);

	st = open_store(1000);
	s = (struct scope_sums){ 0 };
	CU_ASSERT(store_load_spend(st, sum_scopes, &s) == 0);
	CU_ASSERT(s.keys == 200 * 201 / 2 && s.team == 100 && s.rows == 41);
	store_close(st);
}

struct pend_rows {
	int n;
	char ids[8][16], cmds[8][32];
};

static int pend_row(void *arg, const char *id, const char *command)
{
	struct pend_rows *p = arg;

	if (p->n < 8) {
		snprintf(p->ids[p->n], sizeof(p->ids[0]), "%s", id);
		snprintf(p->cmds[p->n], sizeof(p->cmds[0]), "%s", command);
	}
	p->n++;
	return 0;
}

/* The fleet's kept charges: the spend and the row in one commit, loaded in the order they
 * were made after a restart, a second row with the same id ignored, deleted by id. */
static void test_fleet_pending(void)
{
	static const char *const ids[] = { "c-9", "c-1", "c-5" };
	struct pend_rows p = { 0 };
	struct sums s = { 0 };
	struct batch b;
	struct store *st = batch_begin(&b, 3);

	for (int i = 0; i < 3; i++) {
		char cmd[32];
		snprintf(cmd, sizeof(cmd), "[\"cmd%d\"]", i);
		CU_ASSERT(store_charge_pending(st, &(struct store_spend){ "key:k1", "day", 0, 10, 0 }, 1,
					       ids[i], cmd, on_ack, &b.args[i]) == 0);
	}
	CU_ASSERT(store_charge_pending(st, &(struct store_spend){ "key:k1", "day", 0, 1, 0 }, 1, "",
				       "x", NULL, NULL) == -EINVAL);
	CU_ASSERT(loop_until(base, &b.a.all));
	CU_ASSERT(b.a.errs == 0 && b.a.order_bad == 0);
	/* Committed before the callback: visible to a reader now. */
	CU_ASSERT(store_load_pending(st, pend_row, &p) == 0);
	CU_ASSERT(p.n == 3);
	store_close(st);

	st = open_store(1000);
	p = (struct pend_rows){ 0 };
	CU_ASSERT(store_load_pending(st, pend_row, &p) == 0);
	CU_ASSERT_FATAL(p.n == 3);
	for (int i = 0; i < 3; i++) {
		CU_ASSERT_STRING_EQUAL(p.ids[i], ids[i]);
		CU_ASSERT(p.cmds[i][5] == '0' + i);
	}
	CU_ASSERT(store_load_spend(st, sum_spend, &s) == 0);
	CU_ASSERT(s.key == 30);
	/* Kept again (a replay whose reply was lost): the row stays one, in its first place;
	 * the spend is the sidecar's own record and counts again. */
	acks_init(&b.a, b.args, 1);
	CU_ASSERT(store_charge_pending(st, &(struct store_spend){ "key:k1", "day", 0, 10, 0 }, 1,
				       "c-9", "[\"again\"]", on_ack, &b.args[0]) == 0);
	CU_ASSERT(loop_until(base, &b.a.all) && b.a.errs == 0);
	CU_ASSERT(store_pending_delete(st, "c-1", NULL, NULL) == 0);
	CU_ASSERT(store_pending_delete(st, "missing", NULL, NULL) == 0);
	flush_store(st);
	p = (struct pend_rows){ 0 };
	CU_ASSERT(store_load_pending(st, pend_row, &p) == 0);
	CU_ASSERT_FATAL(p.n == 2);
	CU_ASSERT_STRING_EQUAL(p.ids[0], "c-9");
	CU_ASSERT_STRING_EQUAL(p.cmds[0], "[\"cmd0\"]");
	CU_ASSERT_STRING_EQUAL(p.ids[1], "c-5");
	store_close(st);
}

struct load {
	struct budget *b;
	int64_t now;
};

static int load_into_budget(void *arg, const struct store_spend *row)
{
	struct load *l = arg;

	return budget_load_spend(l->b, row, l->now);
}

/* The budget module charges through the store; a restart restores its counters exactly. */
static void test_budget_through_store(void)
{
	cJSON *root = cJSON_Parse("{\"budgets\": {\"default\": [{\"limit\": \"1.00\","
				  " \"period\": \"daily\"}], \"team:t\": [{\"limit\": \"5\","
				  " \"rolling\": \"24h\"}]}}");
	struct config_errors errs = { 0 };
	struct budget_config *cfg;
	struct budget_subject who = { "k1", "t", NULL };
	struct budget_refusal why;
	struct budget_resv *r;
	struct budget *b;
	struct store *st;
	struct acks a = { .want = 3 };
	struct ack_arg args[3];
	int64_t now = 1835481599 - 600, sp, rs;         /* 2028-02-29T23:49:59Z */

	fresh();
	CU_ASSERT_FATAL(budget_config_parse(root, &cfg, &errs) == 0);
	st = open_store(1000);
	CU_ASSERT_FATAL(budget_new(st, &b) == 0);
	budget_set_config(b, cfg);
	for (int i = 0; i < 3; i++) {
		args[i] = (struct ack_arg){ &a, i };
		CU_ASSERT(budget_reserve(b, &who, 250000, now + i, &r, &why) == 0);
		CU_ASSERT(budget_commit(b, r, on_ack, &args[i]) == 1);     /* journaled */
		on_ack(&args[i], 0);
	}
	/* Released and free calls write nothing. */
	CU_ASSERT(budget_reserve(b, &who, 250000, now, &r, &why) == 0);
	budget_release(b, r);
	CU_ASSERT(budget_reserve(b, &who, 0, now, &r, &why) == 0);
	CU_ASSERT(budget_commit(b, r, on_ack, NULL) == 1);
	CU_ASSERT(loop_until(base, &a.all));
	CU_ASSERT(a.errs == 0);
	budget_free(b);
	store_close(st);

	st = open_store(1000);
	CU_ASSERT_FATAL(budget_new(st, &b) == 0);
	budget_set_config(b, cfg);
	struct load ld = { b, now + 60 };
	CU_ASSERT(store_load_spend(st, load_into_budget, &ld) == 0);
	CU_ASSERT(budget_counter(b, "key:k1", "day", now + 60, &sp, &rs) == 0);
	CU_ASSERT(sp == 750000 && rs == 0);
	CU_ASSERT(budget_counter(b, "team:t", "rolling:86400", now + 60, &sp, &rs) == 0);
	CU_ASSERT(sp == 750000);
	CU_ASSERT(budget_reserve(b, &who, 250001, now + 60, &r, &why) == -EDQUOT);
	CU_ASSERT(why.spent == 750000);
	/* After midnight the daily counter starts at zero; the rolling one still counts. */
	budget_free(b);
	CU_ASSERT_FATAL(budget_new(st, &b) == 0);
	budget_set_config(b, cfg);
	ld = (struct load){ b, now + 700 };
	CU_ASSERT(store_load_spend(st, load_into_budget, &ld) == 0);
	CU_ASSERT(budget_counter(b, "key:k1", "day", now + 700, &sp, &rs) == 0 && sp == 0);
	CU_ASSERT(budget_counter(b, "team:t", "rolling:86400", now + 700, &sp, &rs) == 0);
	CU_ASSERT(sp == 750000);
	budget_free(b);
	store_close(st);
	budget_config_free(cfg);
	cJSON_Delete(root);
}

struct keyseen {
	int n;
	char ids[4][16];
	char teams[4][16];
	char workloads[4][32];
	bool disabled[4];
	int64_t expires[4];
	unsigned char h0[4];
};

static int collect_key(void *arg, const struct store_key *k)
{
	struct keyseen *s = arg;

	if (s->n < 4) {
		snprintf(s->ids[s->n], sizeof(s->ids[0]), "%s", k->id);
		snprintf(s->teams[s->n], sizeof(s->teams[0]), "%s", k->team ? k->team : "-");
		snprintf(s->workloads[s->n], sizeof(s->workloads[0]), "%s",
			 k->workloads ? k->workloads : "-");
		s->disabled[s->n] = k->disabled;
		s->expires[s->n] = k->expires;
		s->h0[s->n] = k->hash[0];
	}
	s->n++;
	return 0;
}

/* Key records: put, replace, delete; a duplicate hash fails alone, not its batch. */
static void test_keys(void)
{
	const struct store_key puts[] = {
		{ "k1", "first", "t", "p", { 1 }, 100, 0, false, "cgroup:/a\ncgroup:/b*" },
		{ "k2", "second", NULL, "p", { 2 }, 100, 5000, false, NULL },
		{ "k3", "dup", NULL, NULL, { 1 }, 100, 0, false, NULL },	/* k1's hash */
		/* k1 replaced: another team, disabled */
		{ "k1", "first", "u", "p", { 1 }, 100, 0, true, "cgroup:/a\ncgroup:/b*" },
	};
	struct keyseen seen = { 0 };
	struct batch b;
	struct store *st = batch_begin(&b, 5);

	for (int i = 0; i < 4; i++)
		CU_ASSERT(store_key_put(st, &puts[i], on_ack, &b.args[i]) == 0);
	CU_ASSERT(store_key_delete(st, "k2", on_ack, &b.args[4]) == 0);
	st = reopen_after_dup(st, &b.a);
	CU_ASSERT(store_load_keys(st, collect_key, &seen) == 0);
	CU_ASSERT(seen.n == 1);
	CU_ASSERT_STRING_EQUAL(seen.ids[0], "k1");
	CU_ASSERT_STRING_EQUAL(seen.teams[0], "u");
	CU_ASSERT_STRING_EQUAL(seen.workloads[0], "cgroup:/a\ncgroup:/b*");
	CU_ASSERT(seen.disabled[0] && seen.h0[0] == 1);
	store_close(st);
}

struct pinseen {
	int n;
	char tool[4][16], digest[4][65], by[4][16];
	bool has_def[4];
	int64_t at[4];
};

static int collect_pin(void *arg, const struct store_tool_pin *p)
{
	struct pinseen *s = arg;

	if (s->n == 4)
		return -E2BIG;
	snprintf(s->tool[s->n], sizeof(s->tool[0]), "%s", p->tool);
	snprintf(s->digest[s->n], sizeof(s->digest[0]), "%s", p->digest);
	snprintf(s->by[s->n], sizeof(s->by[0]), "%s", p->approved_by);
	s->has_def[s->n] = p->definition != NULL;
	s->at[s->n] = p->approved_at;
	s->n++;
	return 0;
}

/* Tool pins: written through the writer, replaced on approval, read back at start; a digest
 * that is not one is refused by the table. */
static void test_tool_pins(void)
{
	const char *d1 = "1111111111111111111111111111111111111111111111111111111111111111";
	const char *d2 = "2222222222222222222222222222222222222222222222222222222222222222";
	const struct store_tool_pin puts[] = {
		{ "srv", "add", d1, "{\"name\":\"add\"}", "first use", 100 },
		{ "srv", "sub", d1, NULL, "lockfile", 101 },
		{ "srv", "bad", "short", NULL, "x", 1 },	/* refused by the table */
		/* add approved again with another digest */
		{ "srv", "add", d2, "{\"name\":\"add\"}", "alice", 200 },
	};
	struct pinseen seen = { 0 };
	struct batch b;
	struct store *st = batch_begin(&b, 4);

	for (int i = 0; i < 4; i++)
		CU_ASSERT(store_tool_pin_put(st, &puts[i], on_ack, &b.args[i]) == 0);
	st = reopen_after_dup(st, &b.a);
	CU_ASSERT(store_load_tool_pins(st, collect_pin, &seen) == 0);
	CU_ASSERT_FATAL(seen.n == 2);
	CU_ASSERT_STRING_EQUAL(seen.tool[0], "add");
	CU_ASSERT_STRING_EQUAL(seen.digest[0], d2);
	CU_ASSERT_STRING_EQUAL(seen.by[0], "alice");
	CU_ASSERT(seen.at[0] == 200 && seen.has_def[0]);
	CU_ASSERT_STRING_EQUAL(seen.tool[1], "sub");
	CU_ASSERT(!seen.has_def[1]);
	store_close(st);
}

/* A database at schema 1 (as the first release wrote it) is migrated and keeps its data;
 * one from a newer mcpwarden is refused. */
static void test_migrations(void)
{
	sqlite3 *db;
	struct store *st = NULL;
	struct store_options o = { .path = path, .fsync_interval_ms = 1000 };
	struct sums s = { 0 };
	struct acks a = { .want = 1 };
	struct ack_arg arg = { &a, 0 };
	sqlite3_stmt *q;
	int v = -1;

	fresh();
	CU_ASSERT_FATAL(sqlite3_open(path, &db) == SQLITE_OK);
	CU_ASSERT(sqlite3_exec(db,
		"PRAGMA journal_mode = WAL;"
		"CREATE TABLE keys (id TEXT PRIMARY KEY, name TEXT NOT NULL, team TEXT,"
		" policy TEXT, hash BLOB NOT NULL CHECK (length(hash) = 32),"
		" created INTEGER NOT NULL, expires INTEGER NOT NULL DEFAULT 0,"
		" disabled INTEGER NOT NULL DEFAULT 0);"
		"CREATE UNIQUE INDEX keys_hash ON keys(hash);"
		"CREATE TABLE spend (scope TEXT NOT NULL, period TEXT NOT NULL,"
		" start INTEGER NOT NULL, amount INTEGER NOT NULL,"
		" expires INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (scope, period, start))"
		" WITHOUT ROWID;"
		"INSERT INTO spend VALUES ('key:k1', 'month', 0, 1234, 0);"
		"PRAGMA user_version = 1;", NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_close(db);

	st = open_store(1000);
	CU_ASSERT(store_load_spend(st, sum_spend, &s) == 0);
	CU_ASSERT(s.key == 1234);
	CU_ASSERT(store_audit(st, 1700000000000, "{\"decision\":\"deny\"}", on_ack, &arg) == 0);
	CU_ASSERT(loop_until(base, &a.all));
	CU_ASSERT(a.errs == 0);
	store_close(st);

	CU_ASSERT_FATAL(sqlite3_open(path, &db) == SQLITE_OK);
	CU_ASSERT(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &q, NULL) == SQLITE_OK);
	if (sqlite3_step(q) == SQLITE_ROW)
		v = sqlite3_column_int(q, 0);
	sqlite3_finalize(q);
	CU_ASSERT(v == STORE_SCHEMA_VERSION);
	CU_ASSERT(sqlite3_prepare_v2(db, "SELECT count(*) FROM audit", -1, &q, NULL) == SQLITE_OK);
	CU_ASSERT(sqlite3_step(q) == SQLITE_ROW && sqlite3_column_int(q, 0) == 1);
	sqlite3_finalize(q);
	CU_ASSERT(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_close(db);
	CU_ASSERT(store_open(&o, base, &st) == -EPROTO);
	CU_ASSERT(st == NULL);
	/* Not a database at all: a clear error, nothing overwritten. */
	fresh();
	FILE *f = fopen(path, "w");
	CU_ASSERT_FATAL(f != NULL);
	fputs("this is not a database, it is a text file of some length........\n", f);
	fclose(f);
	CU_ASSERT(store_open(&o, base, &st) < 0);
	CU_ASSERT(st == NULL);
}

/* The checkpointer fsyncs within the interval after a commit; rolling rows that left their
 * window are pruned. */
static void test_sync_interval(void)
{
	struct acks a = { .want = 1 };
	struct ack_arg arg = { &a, 0 };
	struct store *st;
	bool synced = false;

	fresh();
	st = open_store(20);
	CU_ASSERT(charge(st, &(struct store_spend){ "key:k1", "rolling:60", 60, 7, 120 }, 1,
			 &arg) == 1);
	flush_store(st);	/* committed: the sync can follow */
	for (int i = 0; i < 500 && !synced; i++) {
		struct timeval tv = { 0, 10000 };
		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
		synced = store_syncs(st) > 0;
	}
	CU_ASSERT(synced);
	store_close(st);
	/* Reopen: the first batch prunes the expired rolling row. */
	st = open_store(20);
	flush_store(st);
	struct sums s = { 0 };
	CU_ASSERT(store_load_spend(st, sum_spend, &s) == 0);
	CU_ASSERT(s.rows == 0);
	store_close(st);
}

/* When the journal is full (the writer is behind) a charge waits for its commit instead;
 * every charge, journaled or not, is in the store after a reopen. The writer frees a
 * charge's slots as it commits it, so it is held behind another connection's write lock. */
static void test_journal_full(void)
{
	enum { N = JOURNAL_SLOTS_DEFAULT / 2 + 100 };
	static struct ack_arg args[N];
	struct acks a = { .want = N };
	struct sums s = { 0 };
	int journaled = 0, waited = 0;
	struct store *st;
	sqlite3 *holder = NULL;

	st = fresh_store();
	CU_ASSERT_FATAL(sqlite3_open(path, &holder) == SQLITE_OK);
	CU_ASSERT_FATAL(sqlite3_exec(holder, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK);
	for (int i = 0; i < N; i++) {          /* nothing is committed meanwhile */
		struct store_spend items[2] = { { "key:k1", "day", 0, 1, 0 },
						{ "team:t", "day", 0, 1, 0 } };
		args[i] = (struct ack_arg){ &a, i };
		int rc = charge(st, items, 2, &args[i]);
		journaled += rc == 1;
		waited += rc == 0;
	}
	CU_ASSERT_EQUAL(journaled, JOURNAL_SLOTS_DEFAULT / 2);
	CU_ASSERT_EQUAL(waited, 100);
	CU_ASSERT(sqlite3_exec(holder, "COMMIT", NULL, NULL, NULL) == SQLITE_OK);
	CU_ASSERT(sqlite3_close(holder) == SQLITE_OK);
	CU_ASSERT(loop_until(base, &a.all));
	CU_ASSERT(a.errs == 0);
	/* Committed: the journal has room again. */
	a = (struct acks){ .want = 1, .next = 0 };
	args[0] = (struct ack_arg){ &a, 0 };
	CU_ASSERT(charge(st, &(struct store_spend){ "key:k1", "day", 0, 1, 0 }, 1, &args[0]) == 1);
	store_close(st);
	st = open_store(1000);
	CU_ASSERT(store_load_spend(st, sum_spend, &s) == 0);
	CU_ASSERT_EQUAL(s.key, N + 1);
	CU_ASSERT_EQUAL(s.team, N);
	store_close(st);
}

/* Closing drains: everything queued is committed and called back from store_close. */
static void test_close_drains(void)
{
	struct sums s = { 0 };
	struct batch b;
	struct store *st = batch_begin(&b, 50);

	for (int i = 0; i < 50; i++)
		CU_ASSERT(charge(st, &(struct store_spend){ "team:t", "day", 0, 1, 0 }, 1,
				 &b.args[i]) == 1);
	store_close(st);
	CU_ASSERT(b.a.all && b.a.errs == 0 && b.a.order_bad == 0);
	st = open_store(1000);
	CU_ASSERT(store_load_spend(st, sum_spend, &s) == 0);
	CU_ASSERT(s.team == 50);
	/* Bad arguments are refused up front. */
	CU_ASSERT(store_charge(st, NULL, 0, NULL, NULL) == -EINVAL);
	CU_ASSERT(store_key_put(st, &(struct store_key){ .id = "x" }, NULL, NULL) == -EINVAL);
	store_close(st);
}

/* Whether the store's writer and checkpointer are both idle (or not) within 5 s. */
static bool threads_idle_become(struct store *st, bool idle)
{
	struct store_thread_stats t;

	for (int i = 0; i < 500; i++) {
		store_get_thread_stats(st, &t);
		if (t.writer_idle == idle && t.ckpt_idle == idle)
			return true;
		usleep(10000);
	}
	return false;
}

/* store.writer_priority "idle": the writer and the checkpointer wait in the kernel's idle
 * class. The writer is raised for an operation someone waits for, and when RAISE_OPS charges
 * wait for it (the journal must not fill); it is idle again once it has caught up. A
 * checkpointer with no CPU time is raised by the writer when its last checkpoint is more than
 * twice the interval old. Nothing is lost. */
static void test_writer_idle(void)
{
	struct store_options o = { .path = path, .fsync_interval_ms = 5, .writer_idle = true };
	struct store_thread_stats t0, t;
	struct busy_cpu busy;
	struct sums s = { 0 };
	struct store *st = NULL;
	int charged = 0;

	fresh();
	CU_ASSERT_FATAL(store_open(&o, base, &st) == 0);
	CU_ASSERT(thread_policy_becomes("mcpw-store", SCHED_IDLE));
	CU_ASSERT(thread_policy_becomes("mcpw-checkpoint", SCHED_IDLE));
	CU_ASSERT(threads_idle_become(st, true));

	/* Someone waits: raised, then idle again. */
	store_get_thread_stats(st, &t0);
	flush_store(st);
	store_get_thread_stats(st, &t);
	CU_ASSERT(t.writer_raised == t0.writer_raised + 1);
	CU_ASSERT(threads_idle_become(st, true));

	/* 1100 charges in one loop turn, nobody waiting: handed over at its end, raised. */
	store_get_thread_stats(st, &t0);
	for (int i = 0; i < 1100; i++, charged++)
		CU_ASSERT(store_charge(st, &(struct store_spend){ "key:k1", "day", 0, 1, 0 }, 1,
				       NULL, NULL) == 1);
	CU_ASSERT(event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK) == 0);
	store_get_thread_stats(st, &t);
	CU_ASSERT(t.writer_raised == t0.writer_raised + 1);
	CU_ASSERT(threads_idle_become(st, true));

	/* Every thread on one CPU that a normal thread keeps busy: the checkpointer gets next
	 * to nothing, while commits go on (each flush raises the writer). */
	store_get_thread_stats(st, &t0);
	t = t0;
	CU_ASSERT_FATAL(busy_cpu_start(&busy));
	for (int i = 0; i < 300 && t.ckpt_raised == t0.ckpt_raised; i++, charged++) {
		CU_ASSERT(store_charge(st, &(struct store_spend){ "key:k1", "day", 0, 1, 0 }, 1,
				       NULL, NULL) == 1);
		flush_store(st);
		store_get_thread_stats(st, &t);
	}
	CU_ASSERT(busy_cpu_end(&busy));
	CU_ASSERT(t.ckpt_raised > t0.ckpt_raised);
	CU_ASSERT(threads_idle_become(st, true));
	store_close(st);

	st = open_store(1000);
	CU_ASSERT(store_load_spend(st, sum_spend, &s) == 0);
	CU_ASSERT_EQUAL(s.key, charged);
	store_close(st);

	/* "normal" (the zero options): neither thread leaves the normal class. */
	st = open_store(1000);
	flush_store(st);
	CU_ASSERT(thread_policy_becomes("mcpw-store", SCHED_OTHER));
	CU_ASSERT(thread_policy_becomes("mcpw-checkpoint", SCHED_OTHER));
	store_get_thread_stats(st, &t);
	CU_ASSERT(!t.writer_idle && !t.ckpt_idle && t.writer_raised == 0 && t.ckpt_raised == 0);
	store_close(st);
}

static void test_options(void)
{
	static const struct {
		const char *json, *state_dir, *path;
		int fsync_interval_ms;
		bool idle;
	} ok[] = {
		{ "{}", "/var/lib/mcpwarden", "/var/lib/mcpwarden/mcpwarden.db", 1000, true },
		{ "{\"store\": {\"path\": \"/x.db\", \"fsync_interval_ms\": 250}}", "/s", "/x.db", 250,
		  true },
		{ "{\"store\": {\"writer_priority\": \"normal\"}}", "/s", "/s/mcpwarden.db", 1000, false },
		{ "{\"store\": {\"writer_priority\": \"idle\"}}", "/s", "/s/mcpwarden.db", 1000, true },
	};
	struct config_errors errs = { 0 };
	struct store_options o;
	cJSON *root;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		root = cJSON_Parse(ok[i].json);
		CU_ASSERT_FATAL(store_options_parse(root, ok[i].state_dir, &o, &errs) == 0);
		CU_ASSERT_STRING_EQUAL(o.path, ok[i].path);
		CU_ASSERT(o.fsync_interval_ms == ok[i].fsync_interval_ms);
		CU_ASSERT(o.writer_idle == ok[i].idle);
		store_options_clear(&o);
		cJSON_Delete(root);
	}
	root = cJSON_Parse("{\"store\": {\"path\": \"\", \"fsync_interval_ms\": 0, \"fsync\": 1, "
			   "\"writer_priority\": \"low\"}}");
	CU_ASSERT(store_options_parse(root, "/s", &o, &errs) == -EINVAL);
	CU_ASSERT(errs.count == 4);
	for (int i = 0; i < errs.count; i++)
		CU_ASSERT(strncmp(errs.msg[i], "store.", 6) == 0);
	cJSON_Delete(root);
}

CU_MAIN("store", setup, teardown,
	{ "charges acknowledged in order, reopen continues", test_charge_reopen },
	{ "charges folded per row, a reset between them kept in order", test_charge_fold },
	{ "budget through the store, restart restores", test_budget_through_store },
	{ "key records", test_keys },
	{ "migrations", test_migrations },
	{ "tool pins", test_tool_pins },
	{ "fsync interval and pruning", test_sync_interval },
	{ "close drains the queue", test_close_drains },
	{ "a full journal: charges wait for their commit", test_journal_full },
	{ "options", test_options },
	{ "idle writer and checkpointer, raised when waited for or behind", test_writer_idle },
	{ "the fleet's kept charges", test_fleet_pending })
