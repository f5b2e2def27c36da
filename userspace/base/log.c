/* log: operational messages on stderr, JSON-line records on stdout, written by a thread. */
#include "base/log.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/event.h>

#include "base/list.h"
#include "base/thread.h"

static _Atomic enum log_level g_level = LOG_INFO;       /* read by every thread */
static const char *const level_names[] = { "debug", "info", "warn", "error" };

struct line {
	struct list_head link;
	int fd;
	size_t len;
	size_t cap;             /* what text[] holds */
	char text[];
};

/* Record lines come back from the writer for the loop's thread to fill again: the writer
 * freeing them was ~3 µs a call in the proxy benchmark (free(3) of another thread's
 * kilobyte chunks goes to the arena's bins, under its lock), most of the writer's time. Kept
 * up to SPARE_MAX bytes; sized in steps of LINE_STEP so that one fits the next record. */
#define SPARE_MAX       (1u << 20)
#define LINE_STEP       1024u

/* The queue between the event loop (and worker threads) and the writer thread. */
static struct {
	pthread_mutex_t mu;
	pthread_cond_t more, room;
	struct list_head lines;
	size_t bytes;
	struct list_head spare;         /* written lines, for the loop's thread */
	size_t spare_bytes;
	bool running, stopping;
	bool gathering;         /* the writer waits for more before its next batch */
	bool urgent;            /* an operational message is queued: no gathering */
	pthread_t thread;
	struct thread_idle prio;        /* the writer's class (log_async_idle) */
	int raise_err;          /* a raise the kernel refused, for the writer to tell */
} q = { .mu = PTHREAD_MUTEX_INITIALIZER, .more = PTHREAD_COND_INITIALIZER,
	.room = PTHREAD_COND_INITIALIZER, .lines = LIST_HEAD_INIT(q.lines),
	.spare = LIST_HEAD_INIT(q.spare) };

/* Once lines are waiting, the writer gathers for this long (or until this many bytes) before
 * it writes them: one wake-up and one writev per batch instead of one per loop turn, which on
 * a busy gateway was a futex wake and two context switches every few calls. 10 ms rather than
 * 2: a wake-up costs tens of µs on a virtual machine, and a log pipeline does not notice. */
#define GATHER_NS       10000000L
#define GATHER_BYTES    (256u << 10)

/* Whether a line just queued must wake the writer; with q.mu held, after queueing. */
static bool wake_writer(bool was_idle)
{
	return was_idle || q.urgent || (q.gathering && q.bytes >= GATHER_BYTES);
}

/* An idle writer is raised while someone reads what it has (an operational message), or
 * when it has fallen behind: so a host without idle CPU time still gets its records, with no
 * more than LOG_RAISE_BYTES waiting for it (and the appenders never blocked by an idle one:
 * LOG_QUEUE_MAX is far above). With q.mu held, after queueing. */
static void keep_up(void)
{
	int rc;

	if (q.prio.idle && (q.urgent || q.bytes >= LOG_RAISE_BYTES) &&
	    (rc = thread_idle_raise(&q.prio)))
		q.raise_err = rc;
}

/* Records of a loop's thread waiting for the end of its turn (log_loop_attach): each loop
 * thread has its own (workers: N), so records of one loop leave in the order it wrote them. */
static _Thread_local struct {
	struct event *flush_ev;         /* NULL: this thread is no attached loop */
	struct list_head lines;
	size_t bytes;
	struct list_head spare;         /* taken from q.spare at each hand-over */
} staged;

static void free_lines(struct list_head *list)
{
	struct line *l, *tmp;

	list_for_each_entry_safe(l, tmp, list, link) {
		list_del(&l->link);
		free(l);
	}
}

static bool on_loop_thread(void)
{
	return staged.flush_ev != NULL;
}

/* A line for n bytes of text and its newline and NUL: on the loop's thread a spare one when
 * the first fits (one that does not is freed: the next will be made to the step). NULL when
 * out of memory. */
static struct line *line_get(size_t n)
{
	size_t cap = n + 2;
	struct line *l;

	if (on_loop_thread() && !list_empty(&staged.spare)) {
		l = list_first_entry(&staged.spare, struct line, link);
		list_del(&l->link);
		if (l->cap >= cap)
			return l;
		free(l);
	}
	cap = (cap + LINE_STEP - 1) / LINE_STEP * LINE_STEP;
	l = malloc(sizeof(*l) + cap);
	if (l)
		l->cap = cap;
	return l;
}

void log_set_level(enum log_level lvl)
{
	atomic_store_explicit(&g_level, lvl, memory_order_relaxed);
}

enum log_level log_get_level(void)
{
	return atomic_load_explicit(&g_level, memory_order_relaxed);
}

int log_level_parse(const char *s, enum log_level *out)
{
	for (unsigned i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcasecmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

void log_timestamp(char *buf, unsigned long len)
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, len - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

static void write_all(int fd, const char *p, size_t len)
{
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;  /* nowhere to report a failing log; the process goes on */
		p += n;
		len -= (size_t)n;
	}
}

/* Put one finished line (taken over) on its way to fd. */
static void emit(struct line *l)
{
	pthread_mutex_lock(&q.mu);
	if (!q.running) {
		pthread_mutex_unlock(&q.mu);
		write_all(l->fd, l->text, l->len);
		free(l);
		return;
	}
	/* Backpressure rather than loss: an audit trail must not have holes. */
	while (q.bytes > LOG_QUEUE_MAX && q.running && !q.stopping)
		pthread_cond_wait(&q.room, &q.mu);
	bool idle = list_empty(&q.lines);
	list_add_tail(&l->link, &q.lines);
	q.bytes += l->len;
	/* Operational messages (stderr) are few and read as they come: they end a gathering. */
	if (l->fd == STDERR_FILENO)
		q.urgent = true;
	keep_up();
	if (wake_writer(idle))
		pthread_cond_signal(&q.more);
	pthread_mutex_unlock(&q.mu);
}

/* The staged records to the writer's queue, in one lock round. */
static void hand_over(void)
{
	if (list_empty(&staged.lines))
		return;
	pthread_mutex_lock(&q.mu);
	if (!q.running) {
		struct line *l, *tmp;

		pthread_mutex_unlock(&q.mu);
		list_for_each_entry_safe(l, tmp, &staged.lines, link) {
			list_del(&l->link);
			write_all(l->fd, l->text, l->len);
			free(l);
		}
		staged.bytes = 0;
		return;
	}
	while (q.bytes > LOG_QUEUE_MAX && q.running && !q.stopping)
		pthread_cond_wait(&q.room, &q.mu);
	bool idle = list_empty(&q.lines);
	list_splice_tail_init(&staged.lines, &q.lines);
	q.bytes += staged.bytes;
	staged.bytes = 0;
	list_splice_tail_init(&q.spare, &staged.spare);
	q.spare_bytes = 0;
	keep_up();
	/* A writer with lines left is still at work (or gathering) and takes these with them. */
	if (wake_writer(idle))
		pthread_cond_signal(&q.more);
	pthread_mutex_unlock(&q.mu);
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
	hand_over();
}

/* A record line (taken over): staged until the end of the loop turn when written on the
 * attached loop's thread, else queued now. */
static void emit_record(struct line *l)
{
	if (!on_loop_thread()) {
		emit(l);
		return;
	}
	if (list_empty(&staged.lines))
		event_active(staged.flush_ev, EV_TIMEOUT, 1);
	list_add_tail(&l->link, &staged.lines);
	staged.bytes += l->len;
	/* Backpressure as emit's: a turn's records never grow past the queue's bound. */
	if (staged.bytes > LOG_QUEUE_MAX)
		hand_over();
}

int log_loop_attach(struct event_base *base)
{
	struct event *ev = event_new(base, -1, 0, on_flush, NULL);

	if (!ev)
		return -ENOMEM;
	list_init(&staged.lines);
	list_init(&staged.spare);
	staged.bytes = 0;
	staged.flush_ev = ev;
	return 0;
}

void log_loop_detach(void)
{
	if (!staged.flush_ev)
		return;
	hand_over();
	event_free(staged.flush_ev);
	staged.flush_ev = NULL;
	free_lines(&staged.spare);
}

static struct line *line_vformat(int fd, const char *prefix, const char *fmt, va_list ap)
{
	va_list ap2;
	size_t plen = strlen(prefix);
	int n;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return NULL;
	struct line *l = line_get(plen + (size_t)n);
	if (!l)
		return NULL;
	memcpy(l->text, prefix, plen);
	vsnprintf(l->text + plen, (size_t)n + 1, fmt, ap);
	l->text[plen + (size_t)n] = '\n';
	l->text[plen + (size_t)n + 1] = '\0';
	l->len = plen + (size_t)n + 1;
	l->fd = fd;
	return l;
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	char prefix[96], ts[40];
	va_list ap;
	struct line *l;

	if (lvl < log_get_level())
		return;
	log_timestamp(ts, sizeof(ts));
	snprintf(prefix, sizeof(prefix), "%s mcpwarden %s: ", ts, level_names[lvl]);
	va_start(ap, fmt);
	l = line_vformat(STDERR_FILENO, prefix, fmt, ap);
	va_end(ap);
	if (l)
		emit(l);
}

void log_announce(const char *fmt, ...)
{
	va_list ap;
	struct line *l;

	va_start(ap, fmt);
	l = line_vformat(STDERR_FILENO, "", fmt, ap);
	va_end(ap);
	if (l)
		emit(l);
}

/* The general way: a new object with "ts", "type" and references to obj's members. */
static char *record_line_tree(const char *ts, const char *type, cJSON *obj)
{
	cJSON *line = cJSON_CreateObject();
	char *text = NULL;

	if (!line)
		return NULL;
	if (!cJSON_AddStringToObject(line, "ts", ts) || !cJSON_AddStringToObject(line, "type", type))
		goto out;
	for (cJSON *it = obj ? obj->child : NULL; it; it = it->next)
		if (!cJSON_AddItemReferenceToObject(line, it->string, it))
			goto out;
	text = cJSON_PrintUnformatted(line);
out:
	cJSON_Delete(line);
	return text;
}

/* A type JSON needs no escape for (the records' own names). */
static bool plain_name(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == '"' || *s == '\\')
			return false;
	return true;
}

/* cJSON prints every number with "%1.15g" and reads it back with sscanf to check it. A
 * record's top-level numbers are counts and durations: those that are integers cJSON would
 * print as plain digits (below 1e15, not -0) are lent a raw text of those digits for the
 * print, and given back after (restore_ints). Same bytes, no floating-point round trip. */
#define INT_TEXT 24
static int lend_ints(cJSON *obj, char (*buf)[INT_TEXT], cJSON **items, int max)
{
	int n = 0;

	for (cJSON *it = obj->child; it && n < max; it = it->next) {
		double d = it->valuedouble;

		if (it->type != cJSON_Number || !(d > -1e15 && d < 1e15) || d != (double)(int64_t)d ||
		    (d == 0 && signbit(d)))
			continue;
		snprintf(buf[n], INT_TEXT, "%lld", (long long)d);
		it->type = cJSON_Raw;
		it->valuestring = buf[n];
		items[n++] = it;
	}
	return n;
}

static void restore_ints(cJSON **items, int n)
{
	for (int i = 0; i < n; i++) {
		items[i]->type = cJSON_Number;
		items[i]->valuestring = NULL;
	}
}

size_t log_record_stamp(char ts[LOG_STAMP_LEN + 1], int64_t *ts_ms)
{
	/* The date and time to the second, formatted once a second per thread. */
	static __thread time_t sec = -1;
	static __thread char head[24];
	struct timespec now;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &now);
	if (now.tv_sec != sec) {
		gmtime_r(&now.tv_sec, &tm);
		if (strftime(head, sizeof(head), "%Y-%m-%dT%H:%M:%S", &tm) != 19)
			memcpy(head, "0000-00-00T00:00:00", 20);   /* a year past 9999 */
		sec = now.tv_sec;
	}
	long ms = now.tv_nsec / 1000000;
	memcpy(ts, head, 19);
	ts[19] = '.';
	ts[20] = (char)('0' + ms / 100);
	ts[21] = (char)('0' + ms / 10 % 10);
	ts[22] = (char)('0' + ms % 10);
	ts[23] = 'Z';
	ts[24] = '\0';
	if (ts_ms)
		*ts_ms = (int64_t)now.tv_sec * 1000 + ms;
	return LOG_STAMP_LEN;
}

char *log_record_line(const char *type, cJSON *obj, int64_t *ts_ms)
{
	char ints[16][INT_TEXT];
	cJSON *lent[16];
	int nlent;
	char ts[LOG_STAMP_LEN + 1];

	log_record_stamp(ts, ts_ms);
	if ((obj && !cJSON_IsObject(obj)) || !plain_name(type))
		return record_line_tree(ts, type, obj);
	/* The same text without a second tree: the stamp, then obj printed as it is, its opening
	 * brace dropped (one reference and one key copy per member saved on every call). */
	nlent = obj ? lend_ints(obj, ints, lent, 16) : 0;
	char *body = obj ? cJSON_PrintUnformatted(obj) : NULL;
	restore_ints(lent, nlent);
	if (obj && !body)
		return NULL;
	const char *rest = body && body[1] != '}' ? body + 1 : NULL;
	size_t len = strlen(ts) + strlen(type) + (rest ? strlen(rest) + 1 : 1) + 24;
	char *text = cJSON_malloc(len);
	if (text)
		snprintf(text, len, "{\"ts\":\"%s\",\"type\":\"%s\"%s%s", ts, type,
			 rest ? "," : "}", rest ? rest : "");
	cJSON_free(body);
	return text;
}

void log_record_text(const char *text)
{
	size_t n = strlen(text);
	struct line *l = line_get(n);

	if (!l)
		return;
	memcpy(l->text, text, n);
	l->text[n] = '\n';
	l->text[n + 1] = '\0';
	l->len = n + 1;
	l->fd = STDOUT_FILENO;
	emit_record(l);
}

void log_record(const char *type, cJSON *obj)
{
	char *text = log_record_line(type, obj, NULL);

	if (!text)
		return;
	log_record_text(text);
	cJSON_free(text);
}

/* Write a batch with as few system calls as the lines allow: one writev per run of lines
 * bound for the same fd (up to IOV_BATCH lines), then move them to done. */
#define IOV_BATCH 64

static void write_batch(struct list_head *batch, struct list_head *done_lines)
{
	struct iovec iov[IOV_BATCH];
	struct line *l, *tmp, *first;

	while (!list_empty(batch)) {
		int n = 0, fd;

		first = list_first_entry(batch, struct line, link);
		fd = first->fd;
		list_for_each_entry(l, batch, link) {
			if (l->fd != fd || n == IOV_BATCH)
				break;
			iov[n].iov_base = l->text;
			iov[n++].iov_len = l->len;
		}
		ssize_t w = writev(fd, iov, n);
		while (w < 0 && errno == EINTR)
			w = writev(fd, iov, n);
		/* After a short write (a full pipe) the rest goes line by line; after an error
		 * there is nowhere to report it, and the lines go (as write_all does). */
		size_t done = w > 0 ? (size_t)w : 0;
		int i = 0;
		list_for_each_entry_safe(l, tmp, batch, link) {
			if (i++ == n)
				break;
			if (w >= 0 && done >= l->len) {
				done -= l->len;
			} else if (w >= 0) {
				write_all(fd, l->text + done, l->len - done);
				done = 0;
			}
			list_del(&l->link);
			list_add_tail(&l->link, done_lines);
		}
	}
}

/* Written lines back for reuse, up to SPARE_MAX waiting; with q.mu held. */
static void give_back(struct list_head *done_lines)
{
	struct line *l, *tmp;

	list_for_each_entry_safe(l, tmp, done_lines, link) {
		list_del(&l->link);
		if (q.running && !q.stopping && q.spare_bytes + l->cap <= SPARE_MAX) {
			list_add_tail(&l->link, &q.spare);
			q.spare_bytes += l->cap;
		} else {
			free(l);
		}
	}
}

static void *writer(void *arg)
{
	struct list_head batch = LIST_HEAD_INIT(batch), done_lines = LIST_HEAD_INIT(done_lines);

	(void)arg;
	pthread_mutex_lock(&q.mu);
	for (;;) {
		while (list_empty(&q.lines) && !q.stopping)
			pthread_cond_wait(&q.more, &q.mu);
		if (!q.stopping && !q.urgent && q.bytes < GATHER_BYTES) {
			struct timespec until;

			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_nsec += GATHER_NS;
			until.tv_sec += until.tv_nsec / 1000000000L;
			until.tv_nsec %= 1000000000L;
			q.gathering = true;
			while (!q.stopping && !q.urgent && q.bytes < GATHER_BYTES &&
			       pthread_cond_timedwait(&q.more, &q.mu, &until) != ETIMEDOUT)
				;
			q.gathering = false;
		}
		q.urgent = false;
		/* The whole queue at once: one lock round per batch, not per line. */
		list_splice_tail_init(&q.lines, &batch);
		q.bytes = 0;
		pthread_cond_broadcast(&q.room);
		if (list_empty(&batch) && q.stopping)
			break;
		pthread_mutex_unlock(&q.mu);
		write_batch(&batch, &done_lines);
		pthread_mutex_lock(&q.mu);
		give_back(&done_lines);
		if (q.raise_err) {
			int err = q.raise_err;

			q.raise_err = 0;
			pthread_mutex_unlock(&q.mu);
			log_error("the record writer could not leave the idle class: %s",
				  strerror(-err));
			pthread_mutex_lock(&q.mu);
		}
		/* Caught up (what waits is less than a batch): back to the idle time. */
		if (!q.stopping && !q.urgent && q.bytes < GATHER_BYTES)
			thread_idle_lower(&q.prio);
	}
	pthread_mutex_unlock(&q.mu);
	return NULL;
}

int log_async_start(void)
{
	int rc;

	pthread_mutex_lock(&q.mu);
	if (q.running) {
		pthread_mutex_unlock(&q.mu);
		return 0;
	}
	q.stopping = false;
	q.prio.may = q.prio.idle = false;
	rc = thread_start(&q.thread, THREAD_NAME_PREFIX "records", writer, NULL);
	if (rc == 0)
		q.running = true;
	pthread_mutex_unlock(&q.mu);
	return rc;
}

void log_async_stop(void)
{
	pthread_mutex_lock(&q.mu);
	if (!q.running) {
		pthread_mutex_unlock(&q.mu);
		return;
	}
	q.stopping = true;
	/* Drained at full speed: the process waits for it. */
	int rc = thread_idle_end(&q.prio);
	pthread_cond_broadcast(&q.more);
	pthread_cond_broadcast(&q.room);
	pthread_mutex_unlock(&q.mu);
	if (rc)
		log_error("the record writer could not leave the idle class: %s", strerror(-rc));
	pthread_join(q.thread, NULL);  /* the writer drains the queue before it ends */
	pthread_mutex_lock(&q.mu);
	q.running = false;
	free_lines(&q.spare);
	q.spare_bytes = 0;
	pthread_mutex_unlock(&q.mu);
}

void log_async_idle(bool idle)
{
	bool may = idle && thread_idle_reversible();

	pthread_mutex_lock(&q.mu);
	bool running = q.running && !q.stopping;
	if (running)
		thread_idle_setup(&q.prio, q.thread, may);
	pthread_mutex_unlock(&q.mu);
	if (running && idle && !may)
		log_info("the record writer runs at normal priority: raising it from the idle class "
			 "when it falls behind needs CAP_SYS_NICE or an RLIMIT_NICE of 20");
}

void log_async_get_stats(struct log_async_stats *out)
{
	pthread_mutex_lock(&q.mu);
	out->running = q.running;
	out->idle = q.prio.idle;
	out->queued = q.bytes;
	pthread_mutex_unlock(&q.mu);
	out->raised = atomic_load(&q.prio.raised);
}
