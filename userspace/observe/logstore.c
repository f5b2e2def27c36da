/* logstore: the bounded queue the loop appends to, and the writer thread that batches,
 * chains, retains and checkpoints. Schema and retention SQL: logstore_db.c. */
#include "observe/logstore.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "base/alloc.h"
#include "base/json_get.h"
#include "base/list.h"
#include "base/log.h"
#include "base/path.h"
#include "base/thread.h"
#include "observe/logchain.h"
#include "observe/logstore_db.h"

#define BATCH_MAX 4096          /* records in one transaction, at most */
#define GATHER_MS 500           /* a batch waits this long for more records: each commit
				 * rewrites the index pages it touches, so fewer, larger
				 * transactions cost less per record (docs/performance.md) */
#define AGE_EVERY_S 60          /* retention by age runs this often */

/* One queued record: its columns (strings in data[]) and its line. */
struct item {
	struct list_head link;
	int cls;                /* its size class, or -1: an allocation of its own */
	struct logstore_row row;
	char data[];
};

/* Items are reused, not freed: the writer hands a committed batch's items back and appends
 * take them again. An item malloc'ed on the loop and freed on the writer took glibc's main
 * arena lock against the loop's own allocations once per record, and merged chunks into the
 * arena the loop allocates from (docs/performance.md, issue 11). Sizes come
 * in classes of ITEM_CLASS_MIN << c bytes; a larger record gets an allocation of its own. At
 * most SPARE_MAX bytes of items wait for reuse: the rest are freed. */
#define ITEM_CLASSES 4
#define ITEM_CLASS_MIN 512
#define SPARE_MAX (8u << 20)

/* The appenders' own spare items (callers serialise appends: see logstore.h). */
static struct list_head app_spare[ITEM_CLASSES] = {
	LIST_HEAD_INIT(app_spare[0]), LIST_HEAD_INIT(app_spare[1]),
	LIST_HEAD_INIT(app_spare[2]), LIST_HEAD_INIT(app_spare[3]),
};

static struct {
	pthread_mutex_t mu;
	pthread_cond_t more, idle;
	struct list_head queue;
	bool running, stopping;
	bool writer_waits;      /* for records: appends wake it */
	struct thread_idle prio;        /* the writer's class: idle while it keeps up */
	bool gathering;         /* for more records: a full batch wakes it */
	unsigned flushers;      /* threads in logstore_flush: no gathering meanwhile */
	pthread_t thread;
	int64_t next_seq;       /* the id the next reserved record gets */
	struct logstore_options opt;
	logstore_note_fn note;
	struct logstore_db *db; /* writer thread only, once started */
	struct list_head spare[ITEM_CLASSES];   /* handed back by the writer, for app_spare */
	_Atomic uint64_t spare_bytes;           /* in spare[] and app_spare[] */
	_Atomic uint64_t depth, dropped, written, bytes;
} g = { .mu = PTHREAD_MUTEX_INITIALIZER, .more = PTHREAD_COND_INITIALIZER,
	.idle = PTHREAD_COND_INITIALIZER, .queue = LIST_HEAD_INIT(g.queue),
	.spare = { LIST_HEAD_INIT(g.spare[0]), LIST_HEAD_INIT(g.spare[1]),
		   LIST_HEAD_INIT(g.spare[2]), LIST_HEAD_INIT(g.spare[3]) } };

/* ---- options ---- */

/* A duration: seconds as a number, or "<n>s|m|h|d". */
static int parse_duration(const cJSON *v, int64_t *out)
{
	double n;
	char unit = 's', *end;

	if (cJSON_IsNumber(v)) {
		n = v->valuedouble;
	} else if (cJSON_IsString(v) && v->valuestring[0]) {
		n = strtod(v->valuestring, &end);
		if (end == v->valuestring || (end[0] && end[1]))
			return -EINVAL;
		if (end[0])
			unit = end[0];
	} else {
		return -EINVAL;
	}
	switch (unit) {
	case 's': break;
	case 'm': n *= 60; break;
	case 'h': n *= 3600; break;
	case 'd': n *= 86400; break;
	default: return -EINVAL;
	}
	if (!(n >= 1 && n <= 3650.0 * 86400))
		return -EINVAL;
	*out = (int64_t)n;
	return 0;
}

int logstore_options_parse(const cJSON *root, const char *state_dir,
			   struct logstore_options *out, struct config_errors *errs)
{
	struct section {
		bool enabled;
		const char *path;
		int64_t max_bytes;
		unsigned queue, checkpoint_every;
		const char *writer_priority;
	};
	static const struct cfg_field fields[] = {
		CFG_FIELD(struct section, enabled, CFG_BOOL, 0, 0, 0),
		CFG_FIELD(struct section, path, CFG_STRING, 0, 0, CFG_NONEMPTY),
		CFG_KNOWN_FIELD("max_age"),
		CFG_KNOWN_FIELD("postgres"),     /* observe/logpg.c */
		CFG_FIELD(struct section, max_bytes, CFG_I64, 65536, 1LL << 50, 0),
		CFG_FIELD(struct section, queue, CFG_UINT, 16, 1 << 24, 0),
		CFG_FIELD(struct section, checkpoint_every, CFG_UINT, 1, UINT32_MAX, 0),
		CFG_FIELD(struct section, writer_priority, CFG_STRING, 0, 0, 0),
		CFG_END,
	};
	const cJSON *sec = root ? json_get(root, "logs") : NULL;
	const cJSON *age;
	struct section s = {
		.enabled = state_dir && *state_dir, .max_bytes = LOGSTORE_MAX_BYTES_DEFAULT,
		.queue = LOGSTORE_QUEUE_DEFAULT, .checkpoint_every = LOGSTORE_CHECKPOINT_EVERY_DEFAULT,
		.writer_priority = "idle",
	};
	int rc = 0;

	memset(out, 0, sizeof(*out));
	out->max_age_s = LOGSTORE_MAX_AGE_S_DEFAULT;
	if (sec) {
		if (!cJSON_IsObject(sec))
			return config_fail(errs, "logs", "expected {\"enabled\": true, \"path\": ..., "
					   "\"max_age\": \"7d\", \"max_bytes\": ..., \"queue\": ...}");
		rc = cfg_fields(sec, "logs", fields, &s, errs);
		if ((age = json_get(sec, "max_age")) &&
		    parse_duration(age, &out->max_age_s))
			rc = config_fail(errs, "logs.max_age", "must be seconds (a number) or "
					 "\"<n>s\", \"<n>m\", \"<n>h\", \"<n>d\", from 1 s to 10 years");
		if (strcmp(s.writer_priority, "idle") && strcmp(s.writer_priority, "normal"))
			rc = config_fail(errs, "logs.writer_priority", "must be \"idle\" or \"normal\"");
	}
	if (rc)
		return rc;
	out->enabled = s.enabled;
	out->max_bytes = s.max_bytes;
	out->queue = s.queue;
	out->checkpoint_every = s.checkpoint_every;
	out->writer_idle = !strcmp(s.writer_priority, "idle");
	out->path = s.path ? strdup(s.path) : path_in_dir(state_dir, "logs.db");
	return out->path ? 0 : -ENOMEM;
}

void logstore_options_clear(struct logstore_options *o)
{
	free(o->path);
	o->path = NULL;
}

/* ---- the loop's side ---- */

bool logstore_running(void)
{
	pthread_mutex_lock(&g.mu);
	bool r = g.running;
	pthread_mutex_unlock(&g.mu);
	return r;
}

int64_t logstore_reserve(void)
{
	int64_t seq = 0;

	pthread_mutex_lock(&g.mu);
	/* While stopping, only the writer's own notes (retention, the last checkpoint). */
	if (g.running && (!g.stopping || pthread_equal(pthread_self(), g.thread))) {
		if (atomic_load(&g.depth) < g.opt.queue)
			seq = g.next_seq++;
		else
			atomic_fetch_add(&g.dropped, 1);
	}
	pthread_mutex_unlock(&g.mu);
	return seq;
}

/* The text columns, in the order of struct logstore_row's text[]. */
static const char *const text_cols[LOGSTORE_NTEXT] = {
	[LS_KEY] = "key", [LS_TEAM] = "team", [LS_SESSION] = "session", [LS_METHOD] = "method",
	[LS_SERVER] = "server", [LS_TARGET] = "target", [LS_DECISION] = "decision",
	[LS_REASON] = "reason", [LS_STATUS] = "status", [LS_ERROR_MESSAGE] = "error_message",
	[LS_TRACE_ID] = "trace_id",
};
static const char *const int_cols[LOGSTORE_NINT] = {
	[LS_ERROR_CODE] = "error_code", [LS_LATENCY_US] = "latency_us",
	[LS_UPSTREAM_US] = "upstream_us", [LS_COST_MICROS] = "cost_micros",
	[LS_RESULT_BYTES] = "result_bytes",
};

/* The integer columns, in one walk over obj's fields (a name's first field counts, as with
 * cJSON_GetObjectItemCaseSensitive). */
static void int_fields(const cJSON *obj, struct logstore_row *row)
{
	bool seen[LOGSTORE_NINT] = { 0 };

	for (const cJSON *c = obj->child; c; c = c->next) {
		if (!c->string)
			continue;
		for (int i = 0; i < LOGSTORE_NINT; i++) {
			if (seen[i] || c->string[0] != int_cols[i][0] || strcmp(c->string, int_cols[i]))
				continue;
			seen[i] = true;
			/* in int64_t's range before the conversion: an upstream's error code
			 * is written as it came */
			if ((row->has_int[i] = cJSON_IsNumber(c) && c->valuedouble > -9.2e18 &&
					       c->valuedouble < 9.2e18))
				row->ints[i] = (int64_t)c->valuedouble;
		}
	}
}

/* A batch this deep ends the gathering: a full transaction, or half the queue (a small queue
 * must not fill while the writer waits for more). */
static uint64_t batch_full(void)
{
	uint64_t half = g.opt.queue / 2 ? g.opt.queue / 2 : 1;

	return half < BATCH_MAX ? half : BATCH_MAX;
}

/* ---- the writer's priority (observe/logstore.h; g.mu held: base/thread.h) ---- */

/* The backlog at which an idle writer is raised: a quarter of the queue, and at least a full
 * batch (what the writer gathers before it writes anyway). */
static uint64_t raise_at(void)
{
	uint64_t quarter = g.opt.queue / 4;

	return quarter > batch_full() ? quarter : batch_full();
}

/* Out of the idle class: from an appender when the backlog has grown, or from a thread that
 * waits for the writer (flush, stop). */
static void writer_raise(void)
{
	int rc = g.stopping ? thread_idle_end(&g.prio) : thread_idle_raise(&g.prio);

	if (rc)
		log_error("logs: the writer could not leave the idle class: %s", strerror(-rc));
}

static size_t class_size(int c)
{
	return (size_t)ITEM_CLASS_MIN << c;
}

/* An item of at least size bytes: a spare one of its class, else a new one. */
static struct item *item_get(size_t size)
{
	struct item *it;
	int c = 0;

	while (c < ITEM_CLASSES && class_size(c) < size)
		c++;
	if (c == ITEM_CLASSES) {
		it = xmalloc(size);     /* out of memory ends the process: alloc.h */
		it->cls = -1;
		return it;
	}
	if (!list_empty(&app_spare[c])) {
		it = list_first_entry(&app_spare[c], struct item, link);
		list_del(&it->link);
		atomic_fetch_sub(&g.spare_bytes, class_size(c));
		return it;
	}
	it = xmalloc(class_size(c));
	it->cls = c;
	return it;
}

/* Free the writer's spares (at stop). The appenders' own stay theirs: a late append from
 * another thread may still be taking one, and the next start reuses them. */
static void free_spares(void)
{
	struct list_head lists[ITEM_CLASSES];
	struct item *it, *tmp;

	pthread_mutex_lock(&g.mu);
	for (int c = 0; c < ITEM_CLASSES; c++) {
		list_init(&lists[c]);
		list_splice_tail_init(&g.spare[c], &lists[c]);
	}
	pthread_mutex_unlock(&g.mu);
	for (int c = 0; c < ITEM_CLASSES; c++)
		list_for_each_entry_safe(it, tmp, &lists[c], link) {
			list_del(&it->link);
			atomic_fetch_sub(&g.spare_bytes, class_size(c));
			free(it);
		}
}

/* Queue one record: its columns and its line, copied into one reused item. */
static void append(int64_t seq, int64_t ts_ms, const char *type, const char *const *txt,
		   const int64_t *ints, const bool *has_int, const char *line, size_t line_len)
{
	size_t need = strlen(type) + 1 + line_len + 1, len[LOGSTORE_NTEXT];
	struct item *it;
	char *p;

	for (int i = 0; i < LOGSTORE_NTEXT; i++) {
		len[i] = txt[i] ? strlen(txt[i]) + 1 : 0;
		need += len[i];
	}
	it = item_get(sizeof(*it) + need);
	memset(&it->row, 0, sizeof(it->row));
	it->row.id = seq;
	it->row.ts = ts_ms;
	p = it->data;
	it->row.type = p;
	p = stpcpy(p, type) + 1;
	for (int i = 0; i < LOGSTORE_NTEXT; i++) {
		if (!txt[i])
			continue;
		it->row.text[i] = p;
		it->row.text_len[i] = (uint32_t)(len[i] - 1);
		memcpy(p, txt[i], len[i]);
		p += len[i];
	}
	memcpy(it->row.ints, ints, sizeof(it->row.ints));
	memcpy(it->row.has_int, has_int, sizeof(it->row.has_int));
	it->row.record = p;
	it->row.record_len = line_len;
	memcpy(p, line, line_len + 1);

	pthread_mutex_lock(&g.mu);
	list_add_tail(&it->link, &g.queue);
	for (int c = 0; c < ITEM_CLASSES; c++)
		list_splice_tail_init(&g.spare[c], &app_spare[c]);
	uint64_t depth = atomic_fetch_add(&g.depth, 1) + 1;
	if (g.writer_waits || (g.gathering && depth >= batch_full()))
		pthread_cond_signal(&g.more);
	if (g.prio.idle && depth >= raise_at())
		writer_raise();
	pthread_mutex_unlock(&g.mu);
}

void logstore_append(int64_t seq, int64_t ts_ms, const char *type, const cJSON *obj,
		     const char *line)
{
	const char *txt[LOGSTORE_NTEXT];
	struct logstore_row ints = { 0 };

	if (seq <= 0)
		return;
	logchain_text_columns(obj, text_cols, LOGSTORE_NTEXT, txt);
	int_fields(obj, &ints);
	append(seq, ts_ms, type, txt, ints.ints, ints.has_int, line, strlen(line));
}

void logstore_append_cols(int64_t seq, int64_t ts_ms, const char *type,
			  const struct logstore_cols *cols, const char *line, size_t line_len)
{
	if (seq > 0)
		append(seq, ts_ms, type, cols->text, cols->ints, cols->has_int, line, line_len);
}

void logstore_flush(void)
{
	pthread_mutex_lock(&g.mu);
	/* depth falls only once a batch is committed (or failed). */
	g.flushers++;
	writer_raise();
	while (g.running && atomic_load(&g.depth) > 0) {
		pthread_cond_signal(&g.more);
		pthread_cond_wait(&g.idle, &g.mu);
	}
	g.flushers--;
	pthread_mutex_unlock(&g.mu);
}

void logstore_get_stats(struct logstore_stats *out)
{
	out->queue_depth = atomic_load(&g.depth);
	out->dropped = atomic_load(&g.dropped);
	out->written = atomic_load(&g.written);
	out->bytes = atomic_load(&g.bytes);
	out->writer_raised = atomic_load(&g.prio.raised);
	pthread_mutex_lock(&g.mu);
	out->writer_idle = g.prio.idle;
	out->running = g.running;
	pthread_mutex_unlock(&g.mu);
}

/* ---- the writer thread ---- */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sample_bytes(void)
{
	char wal[4096];
	struct stat sb;
	uint64_t n = 0;

	if (stat(g.opt.path, &sb) == 0)
		n += (uint64_t)sb.st_size;
	snprintf(wal, sizeof(wal), "%s-wal", g.opt.path);
	if (stat(wal, &sb) == 0)
		n += (uint64_t)sb.st_size;
	atomic_store(&g.bytes, n);
}

static void hex(const uint8_t *h, char out[2 * LOGCHAIN_HASH_LEN + 1])
{
	for (int i = 0; i < LOGCHAIN_HASH_LEN; i++)
		snprintf(out + 2 * i, 3, "%02x", h[i]);
}

/* The outside copy of the chain's head (a record too: it is stored after the head it names). */
static void note_checkpoint(void)
{
	struct logstore_chain c;
	char head[2 * LOGCHAIN_HASH_LEN + 1];
	cJSON *o;

	logstore_db_chain(g.db, &c);
	if (c.last_id < c.first_id || !g.note || !(o = cJSON_CreateObject()))
		return;
	hex(c.head, head);
	/* "seq" is the checkpoint record's own id once stored: the head's is "head_seq". */
	if (cJSON_AddStringToObject(o, "head", head) &&
	    cJSON_AddNumberToObject(o, "head_seq", (double)c.last_id) &&
	    cJSON_AddNumberToObject(o, "count", (double)(c.last_id - c.first_id + 1)))
		g.note("checkpoint", o);
	cJSON_Delete(o);
}

static void note_anchor(const struct logstore_retained *r)
{
	char prev[2 * LOGCHAIN_HASH_LEN + 1];
	cJSON *o;

	if (!g.note || !(o = cJSON_CreateObject()))
		return;
	hex(r->prev_hash, prev);
	if (cJSON_AddNumberToObject(o, "first_seq", (double)r->first_id) &&
	    cJSON_AddStringToObject(o, "prev_hash", prev) &&
	    cJSON_AddNumberToObject(o, "deleted", (double)r->deleted) &&
	    cJSON_AddNumberToObject(o, "targets_dropped", (double)r->targets) &&
	    cJSON_AddNumberToObject(o, "blocks_dropped", (double)r->blocks) &&
	    cJSON_AddStringToObject(o, "reason", r->by_size ? "max_bytes" : "max_age"))
		g.note("audit_anchor", o);
	cJSON_Delete(o);
}

static void retain(int64_t *last_age_check)
{
	struct logstore_retained r;
	int64_t now = now_ms();
	bool by_age = now - *last_age_check >= AGE_EVERY_S * 1000;

	if (by_age)
		*last_age_check = now;
	/* Each chunk its own transaction: records keep being stored in between. */
	for (int rounds = 0; rounds < 64; rounds++) {
		int rc = logstore_db_retain(g.db, by_age ? now - g.opt.max_age_s * 1000 : INT64_MIN,
					    g.opt.max_bytes, &r);
		if (rc < 0) {
			log_error("logs: retention failed: %s", strerror(-rc));
			return;
		}
		if (rc == 0)
			return;
		note_anchor(&r);
	}
}

static void *writer(void *arg)
{
	struct list_head batch = LIST_HEAD_INIT(batch);
	struct logstore_row *rows[BATCH_MAX];
	uint64_t since_ckpt = 0;
	int64_t last_age = 0;
	bool final_done = false;

	(void)arg;
	if (g.opt.writer_idle) {
		bool may = thread_idle_reversible();

		pthread_mutex_lock(&g.mu);
		thread_idle_setup(&g.prio, pthread_self(), may && !g.stopping);
		pthread_mutex_unlock(&g.mu);
		if (!may)
			log_info("logs: the writer runs at normal priority: raising it from the idle "
				 "class when it falls behind needs CAP_SYS_NICE or an RLIMIT_NICE of 20");
	}
	retain(&last_age);
	sample_bytes();
	pthread_mutex_lock(&g.mu);
	for (;;) {
		while (list_empty(&g.queue) && !g.stopping) {
			struct timespec until;
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_sec += AGE_EVERY_S;
			g.writer_waits = true;
			int w = pthread_cond_timedwait(&g.more, &g.mu, &until);
			g.writer_waits = false;
			if (w == ETIMEDOUT)
				break;
		}
		if (list_empty(&g.queue) && g.stopping) {
			if (final_done)
				break;
			/* The clean exit's checkpoint, stored like the others before the end. */
			final_done = true;
			pthread_mutex_unlock(&g.mu);
			note_checkpoint();
			pthread_mutex_lock(&g.mu);
			continue;
		}
		if (!g.stopping && atomic_load(&g.depth) < batch_full() && !list_empty(&g.queue)) {
			/* Gather up to GATHER_MS for more, until a batch is full. */
			struct timespec until;
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_nsec += GATHER_MS * 1000000L;
			until.tv_sec += until.tv_nsec / 1000000000L;
			until.tv_nsec %= 1000000000L;
			g.gathering = true;
			while (!g.stopping && !g.flushers && atomic_load(&g.depth) < batch_full() &&
			       pthread_cond_timedwait(&g.more, &g.mu, &until) != ETIMEDOUT)
				;
			g.gathering = false;
		}
		/* The whole queue at once, and what is beyond a batch put back after: the lock is
		 * held for constant time, whatever the depth (an idle writer preempted while it
		 * holds it would stall the appenders). The rest is cut off unwalked: a writer
		 * behind a deep queue walked all of it for each batch, a cache miss an item. */
		size_t n = 0;
		struct list_head rest = LIST_HEAD_INIT(rest), *last = &batch;
		struct item *it, *tmp;
		list_splice_tail_init(&g.queue, &batch);
		pthread_mutex_unlock(&g.mu);
		list_for_each_entry(it, &batch, link) {
			rows[n++] = &it->row;
			last = &it->link;
			if (n == BATCH_MAX)
				break;
		}
		list_cut_after(&batch, last, &rest);
		if (!list_empty(&rest)) {
			pthread_mutex_lock(&g.mu);
			list_splice_tail_init(&g.queue, &rest);
			list_splice_tail_init(&rest, &g.queue);
			pthread_mutex_unlock(&g.mu);
		}

		if (n) {
			int rc = logstore_db_insert(g.db, rows, n);
			if (rc) {
				log_error("logs: %zu records not stored: %s", n, strerror(-rc));
				atomic_fetch_add(&g.dropped, n);
			} else {
				atomic_fetch_add(&g.written, n);
			}
		}
		bool ckpt = false;
		for (size_t i = 0; i < n; i++)
			if (strcmp(rows[i]->type, "checkpoint") && ++since_ckpt >= g.opt.checkpoint_every)
				ckpt = true;
		/* The items back to the appenders, sorted by class (outside the lock). */
		struct list_head back[ITEM_CLASSES];
		for (int c = 0; c < ITEM_CLASSES; c++)
			list_init(&back[c]);
		list_for_each_entry_safe(it, tmp, &batch, link) {
			list_del(&it->link);
			if (it->cls >= 0 &&
			    atomic_load(&g.spare_bytes) + class_size(it->cls) <= SPARE_MAX) {
				atomic_fetch_add(&g.spare_bytes, class_size(it->cls));
				list_add_tail(&it->link, &back[it->cls]);
			} else {
				free(it);
			}
		}
		pthread_mutex_lock(&g.mu);
		for (int c = 0; c < ITEM_CLASSES; c++)
			list_splice_tail_init(&back[c], &g.spare[c]);
		pthread_mutex_unlock(&g.mu);
		retain(&last_age);
		sample_bytes();
		if (ckpt) {
			since_ckpt = 0;
			note_checkpoint();
		}

		pthread_mutex_lock(&g.mu);
		atomic_fetch_sub(&g.depth, n);
		pthread_cond_broadcast(&g.idle);
		if (!g.stopping && !g.flushers && atomic_load(&g.depth) < batch_full())
			thread_idle_lower(&g.prio);
	}
	pthread_mutex_unlock(&g.mu);
	return NULL;
}

int logstore_start(const struct logstore_options *o, logstore_note_fn note)
{
	struct logstore_chain c;
	int rc;

	if (!o->enabled || g.running)
		return 0;
	g.opt = *o;
	g.opt.path = strdup(o->path);
	if (!g.opt.path)
		return -ENOMEM;
	g.note = note;
	rc = path_make_parents(g.opt.path);
	if (rc == 0)
		rc = logstore_db_open(g.opt.path, g.opt.max_bytes, &g.db);
	if (rc)
		goto fail;
	logstore_db_chain(g.db, &c);
	g.next_seq = c.last_id + 1;
	atomic_store(&g.depth, 0);
	g.prio.may = g.prio.idle = false;
	g.stopping = false;
	g.running = true;
	rc = thread_start(&g.thread, THREAD_NAME_PREFIX "logstore", writer, NULL);
	if (rc) {
		g.running = false;
		goto fail;
	}
	return 0;
fail:
	logstore_db_close(g.db);
	g.db = NULL;
	logstore_options_clear(&g.opt);
	return rc;
}

void logstore_stop(void)
{
	if (!g.running)
		return;
	pthread_mutex_lock(&g.mu);
	g.stopping = true;
	writer_raise();
	pthread_cond_signal(&g.more);
	pthread_mutex_unlock(&g.mu);
	pthread_join(g.thread, NULL);
	pthread_mutex_lock(&g.mu);
	g.running = false;
	g.stopping = false;
	pthread_cond_broadcast(&g.idle);
	pthread_mutex_unlock(&g.mu);
	logstore_db_close(g.db);
	g.db = NULL;
	logstore_options_clear(&g.opt);
	free_spares();
}
