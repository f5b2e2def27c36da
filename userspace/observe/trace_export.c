/* trace_export: the OTLP/HTTP exporter, a thread of its own with libcurl's easy interface
 * (blocking is fine off the loop). The loop hands it encoded spans through a bounded queue and
 * never waits: a full queue drops the span and counts it. The thread sends a batch when
 * batch_size spans are waiting or the oldest has waited delay_ms, retries 429/502/503/504 and
 * transport failures with exponential backoff (Retry-After honoured) within timeout_ms, and
 * flushes what is left when stopped.
 */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "base/alloc.h"
#include "base/epoch.h"
#include "base/log.h"
#include "base/thread.h"
#include "observe/trace_int.h"

#define RETRY_FIRST_MS 100
#define RETRY_MAX_MS 5000

struct exporter {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct pb **q;             /* ring of queue_size */
	size_t head, count, cap;
	bool stop;
	bool done;                 /* the thread has returned: joining it does not wait */
	struct exporter *next;     /* in `retired` */
	/* the thread's own, fixed at start */
	bool failing;              /* the last export failed: said once, not per batch */
	char why[128];
	char shown_url[512];       /* for the log: without credentials */
	char *url;
	struct curl_slist *headers;
	struct pb resource;
	bool json;                 /* http/json: the request in OTLP's JSON encoding */
	unsigned batch_size, delay_ms, timeout_ms;
};

/* Set and cleared on loop 0, loaded by every loop that ends a span; the thread has its own
 * pointer. A stopped exporter is freed only after every loop has passed a turn
 * (base/epoch.h): one may be queueing a span on it. */
static _Atomic(struct exporter *) ex;
/* Stopped and no longer reachable from a loop: flushing on their own threads, joined once
 * done (or at the end). The lock: the epoch puts them here from the last loop to pass. */
static struct exporter *retired;
static pthread_mutex_t retired_mu = PTHREAD_MUTEX_INITIALIZER;
static _Atomic bool ending;    /* exporter_stop(true) has run: nothing waits for a reap */
static _Atomic uint64_t n_exported, n_dropped, n_errors;

static void now_plus(struct timespec *ts, unsigned ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
	return size * n;
}

/* Retry-After in seconds (the HTTP-date form is not worth a parser here: backoff applies). */
static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
	size_t len = size * n;
	long *retry_ms = arg;

	if (len > 12 && !strncasecmp(p, "Retry-After:", 12)) {
		char buf[32];
		size_t k = len - 12 < sizeof(buf) - 1 ? len - 12 : sizeof(buf) - 1;
		memcpy(buf, p + 12, k);
		buf[k] = '\0';
		long s = strtol(buf, NULL, 10);
		if (s > 0)
			*retry_ms = s > 60 ? 60000 : s * 1000;
	}
	return len;
}

/* One POST: 0 accepted, -EAGAIN retryable (with *retry_ms when the server said), else failed. */
static int post(struct exporter *e, CURL *c, const struct pb *body, long timeout_ms,
		long *retry_ms)
{
	long status = 0;
	CURLcode res;

	*retry_ms = 0;
#define SET(opt, val) do { if (curl_easy_setopt(c, opt, val) != CURLE_OK) return -EINVAL; } while (0)
	SET(CURLOPT_URL, e->url);
	SET(CURLOPT_HTTPHEADER, e->headers);
	SET(CURLOPT_POSTFIELDS, (const char *)body->p);
	SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->n);
	SET(CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 1L);
	SET(CURLOPT_CONNECTTIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 1L);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_PROTOCOLS_STR, "http,https");
	SET(CURLOPT_USERAGENT, "mcpwarden/" WARDEN_VERSION);
	SET(CURLOPT_WRITEFUNCTION, discard);
	SET(CURLOPT_HEADERFUNCTION, on_header);
	SET(CURLOPT_HEADERDATA, retry_ms);
#undef SET
	res = curl_easy_perform(c);
	if (res != CURLE_OK) {
		snprintf(e->why, sizeof(e->why), "%s", curl_easy_strerror(res));
		return -EAGAIN;
	}
	if (curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK)
		return -EPROTO;
	if (status >= 200 && status < 300)
		return 0;
	snprintf(e->why, sizeof(e->why), "HTTP %ld", status);
	if (status == 429 || status == 502 || status == 503 || status == 504)
		return -EAGAIN;
	return -EPROTO;
}

/* Send one batch (freed here), retrying within the timeout; once only when stopping. 0 or the
 * error it failed with. */
static int export_batch(struct exporter *e, CURL *c, struct pb **spans, size_t n)
{
	struct pb body = { 0 };
	uint64_t deadline = mono_ms() + e->timeout_ms;
	long backoff = RETRY_FIRST_MS, retry_ms;
	int rc;

	/* A span that does not decode is a bug in trace.c: the batch is dropped and counted. */
	if (e->json) {
		rc = otlp_json_request(&body, &e->resource, spans, n);
		if (rc)
			snprintf(e->why, sizeof(e->why), "a span could not be encoded as JSON");
	} else {
		otlp_request(&body, &e->resource, spans, n);
		rc = 0;
	}
	while (rc == 0 || rc == -EAGAIN) {
		uint64_t now = mono_ms();
		rc = post(e, c, &body, now < deadline ? (long)(deadline - now) : 0, &retry_ms);
		if (rc != -EAGAIN)
			break;
		long wait = retry_ms ? retry_ms : backoff;
		backoff = backoff * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : backoff * 2;
		bool again = false;
		pthread_mutex_lock(&e->mu);
		if (!e->stop && mono_ms() + (uint64_t)wait < deadline) {
			struct timespec ts;
			now_plus(&ts, (unsigned)wait);
			while (!e->stop && pthread_cond_timedwait(&e->cv, &e->mu, &ts) == 0)
				;
			again = !e->stop;   /* stopping: the one attempt was made */
		}
		pthread_mutex_unlock(&e->mu);
		if (!again)
			break;
	}
	if (rc == 0) {
		atomic_fetch_add(&n_exported, n);
		if (e->failing)
			log_info("tracing: exports to %s succeed again", e->shown_url);
	} else {
		atomic_fetch_add(&n_errors, 1);
		atomic_fetch_add(&n_dropped, n);
		if (!e->failing)  /* the collector's URL, never the headers (they hold secrets) */
			log_warn("tracing: export to %s failed (%s): spans are dropped and counted "
				 "until it succeeds", e->shown_url, e->why);
	}
	e->failing = rc != 0;
	pb_free(&body);
	for (size_t i = 0; i < n; i++) {
		pb_free(spans[i]);
		free(spans[i]);
	}
	return rc;
}

/* Stopping after a failed export: what is left would wait as long again; drop it, counted. */
static void drop_queued(struct exporter *e)
{
	if (e->count)
		atomic_fetch_add(&n_dropped, e->count);
	while (e->count) {
		pb_free(e->q[e->head]);
		free(e->q[e->head]);
		e->head = (e->head + 1) % e->cap;
		e->count--;
	}
}

static void *run(void *arg)
{
	struct exporter *e = arg;
	struct pb **batch = xcalloc(e->batch_size, sizeof(*batch));
	CURL *c = curl_easy_init();
	struct timespec due;

	pthread_mutex_lock(&e->mu);
	now_plus(&due, e->delay_ms);
	for (;;) {
		while (!e->stop && e->count < e->batch_size) {
			if (pthread_cond_timedwait(&e->cv, &e->mu, &due) == ETIMEDOUT)
				break;
		}
		if (!e->count) {
			if (e->stop)
				break;
			now_plus(&due, e->delay_ms);
			continue;
		}
		size_t n = e->count < e->batch_size ? e->count : e->batch_size;
		for (size_t i = 0; i < n; i++) {
			batch[i] = e->q[e->head];
			e->head = (e->head + 1) % e->cap;
		}
		e->count -= n;
		pthread_mutex_unlock(&e->mu);
		int rc = -ENOMEM;
		if (c) {
			rc = export_batch(e, c, batch, n);
		} else {  /* no curl handle: nothing can be sent */
			atomic_fetch_add(&n_errors, 1);
			atomic_fetch_add(&n_dropped, n);
			for (size_t i = 0; i < n; i++) {
				pb_free(batch[i]);
				free(batch[i]);
			}
		}
		pthread_mutex_lock(&e->mu);
		if (rc && e->stop)
			drop_queued(e);
		now_plus(&due, e->delay_ms);
	}
	e->done = true;
	pthread_mutex_unlock(&e->mu);
	curl_easy_cleanup(c);
	free(batch);
	return NULL;
}

static void exporter_free(struct exporter *e)
{
	drop_queued(e);
	free(e->q);
	free(e->url);
	curl_slist_free_all(e->headers);
	pb_free(&e->resource);
	pthread_cond_destroy(&e->cv);
	pthread_mutex_destroy(&e->mu);
	free(e);
	curl_global_cleanup();
}

static void reap(bool wait);

int exporter_start(const struct trace_config *tc)
{
	struct exporter *e = xcalloc(1, sizeof(*e));
	struct curl_slist *h;
	pthread_condattr_t ca;
	int rc = -ENOMEM;

	reap(false);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		free(e);
		return -ENOMEM;
	}
	pthread_mutex_init(&e->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&e->cv, &ca);
	pthread_condattr_destroy(&ca);
	e->cap = tc->queue_size;
	e->q = xcalloc(e->cap, sizeof(*e->q));
	e->url = xstrdup(tc->url);
	trace_url_for_log(tc->url, e->shown_url, sizeof(e->shown_url));
	e->batch_size = tc->batch_size;
	e->delay_ms = tc->delay_ms;
	e->timeout_ms = tc->timeout_ms;
	otlp_resource(&e->resource, tc->service_name);
	e->json = tc->json;
	if (!(h = curl_slist_append(NULL, tc->json ? "Content-Type: application/json"
				    : "Content-Type: application/x-protobuf")))
		goto fail;
	e->headers = h;
	if (!(h = curl_slist_append(e->headers, "Expect:")))
		goto fail;
	e->headers = h;
	for (char **l = tc->headers; l && *l; l++) {
		if (!(h = curl_slist_append(e->headers, *l)))
			goto fail;
		e->headers = h;
	}
	rc = thread_start(&e->thread, THREAD_NAME_PREFIX "otlp", run, e);
	if (rc)
		goto fail;
	atomic_store(&ending, false);
	atomic_store(&ex, e);
	return 0;
fail:
	exporter_free(e);
	return rc;
}

bool exporter_submit(struct pb *span)
{
	struct exporter *e = atomic_load_explicit(&ex, memory_order_acquire);
	bool ok = false, wake = false;

	if (!e) {
		atomic_fetch_add(&n_dropped, 1);
		return false;
	}
	pthread_mutex_lock(&e->mu);
	if (e->count < e->cap) {
		e->q[(e->head + e->count) % e->cap] = span;
		e->count++;
		ok = true;
		wake = e->count == e->batch_size;
	}
	pthread_mutex_unlock(&e->mu);
	if (wake)
		pthread_cond_signal(&e->cv);
	if (!ok)
		atomic_fetch_add(&n_dropped, 1);
	return ok;
}

static void join_free(struct exporter *e)
{
	pthread_join(e->thread, NULL);
	exporter_free(e);
}

/* Join the retired exporters whose thread is done; every one of them when wait. The joins
 * happen outside the lock: a thread still flushing is waited for by its reaper only. */
static void reap(bool wait)
{
	struct exporter *done = NULL, **pp = &retired;

	pthread_mutex_lock(&retired_mu);
	while (*pp) {
		struct exporter *e = *pp;
		pthread_mutex_lock(&e->mu);
		bool over = e->done;
		pthread_mutex_unlock(&e->mu);
		if (!over && !wait) {
			pp = &e->next;
			continue;
		}
		*pp = e->next;
		e->next = done;
		done = e;
	}
	pthread_mutex_unlock(&retired_mu);
	while (done) {
		struct exporter *e = done;
		done = e->next;
		join_free(e);
	}
}

/* Every loop has passed a turn since e was unpublished: no loop can reach it. */
static void retire(void *arg)
{
	struct exporter *e = arg;

	if (atomic_load(&ending)) {   /* the last reap has run (a loop detaching at the end) */
		join_free(e);
		return;
	}
	pthread_mutex_lock(&retired_mu);
	e->next = retired;
	retired = e;
	pthread_mutex_unlock(&retired_mu);
}

void exporter_stop(bool wait)
{
	struct exporter *e = atomic_exchange(&ex, NULL);

	if (wait)
		atomic_store(&ending, true);
	if (e) {
		pthread_mutex_lock(&e->mu);
		e->stop = true;
		pthread_mutex_unlock(&e->mu);
		pthread_cond_broadcast(&e->cv);
		/* At the end every loop has stopped running: nothing reads it any more. */
		if (wait)
			retire(e);
		else
			epoch_defer(retire, e);
	}
	reap(wait);
}

void exporter_counters(struct trace_counters *out)
{
	struct exporter *e = atomic_load_explicit(&ex, memory_order_acquire);

	out->exported = atomic_load(&n_exported);
	out->dropped = atomic_load(&n_dropped);
	out->export_errors = atomic_load(&n_errors);
	out->queued = 0;
	if (e) {
		pthread_mutex_lock(&e->mu);
		out->queued = e->count;
		pthread_mutex_unlock(&e->mu);
	}
}
