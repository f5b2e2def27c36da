/* logtail: fan-out of records to live subscribers. */
#include "observe/logtail.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/doorbell.h"
#include "base/list.h"

/* Records from other threads waiting for the loop, at most: past it the tail misses them
 * (they are on stdout and in the store all the same). */
#define LOGTAIL_QUEUE_MAX 1024

struct logtail_sub {
	struct list_head link;
	logtail_fn fn;
	void *arg;
	bool gone;                      /* unsubscribed during a publish: freed after it */
};

struct queued {
	struct list_head link;
	char line[];
};

static struct list_head subs = LIST_HEAD_INIT(subs);
static atomic_size_t nsubs;        /* written on the loop, read by any thread */
static int publishing;             /* depth: a callback may emit a record itself */

/* Other threads' records (the log store's checkpoints and anchors), handed to the loop. */
static struct {
	pthread_t loop;
	bool loop_known;                /* set before any other thread starts, never cleared */
	bool armed;                     /* under mu: the doorbell may be rung */
	pthread_mutex_t mu;
	struct list_head queue;
	size_t queued;
	struct doorbell bell;
} x = { .mu = PTHREAD_MUTEX_INITIALIZER, .queue = LIST_HEAD_INIT(x.queue) };

static void publish_now(const char *line);

static void drain(void *arg)
{
	struct list_head batch = LIST_HEAD_INIT(batch);
	struct queued *q, *tmp;

	(void)arg;
	pthread_mutex_lock(&x.mu);
	list_splice_tail_init(&x.queue, &batch);
	x.queued = 0;
	pthread_mutex_unlock(&x.mu);
	list_for_each_entry_safe(q, tmp, &batch, link) {
		list_del(&q->link);
		publish_now(q->line);
		free(q);
	}
}

int logtail_init(struct event_base *base)
{
	int rc = doorbell_init(&x.bell, base, "logtail", drain, NULL);

	if (rc) {
		doorbell_fini(&x.bell);
		return rc;
	}
	x.loop = pthread_self();
	x.loop_known = true;
	pthread_mutex_lock(&x.mu);
	x.armed = true;
	pthread_mutex_unlock(&x.mu);
	return 0;
}

void logtail_fini(void)
{
	struct queued *q, *tmp;

	pthread_mutex_lock(&x.mu);
	if (!x.armed) {
		pthread_mutex_unlock(&x.mu);
		return;
	}
	x.armed = false;
	list_for_each_entry_safe(q, tmp, &x.queue, link) {
		list_del(&q->link);
		free(q);
	}
	x.queued = 0;
	pthread_mutex_unlock(&x.mu);
	doorbell_fini(&x.bell);
}

int logtail_subscribe(logtail_fn fn, void *arg, struct logtail_sub **out)
{
	struct logtail_sub *s;

	*out = NULL;
	if (atomic_load(&nsubs) >= LOGTAIL_MAX_SUBSCRIBERS)
		return -EBUSY;
	s = xcalloc(1, sizeof(*s));
	s->fn = fn;
	s->arg = arg;
	list_add_tail(&s->link, &subs);
	atomic_fetch_add(&nsubs, 1);
	*out = s;
	return 0;
}

void logtail_unsubscribe(struct logtail_sub *s)
{
	if (!s || s->gone)
		return;
	atomic_fetch_sub(&nsubs, 1);
	if (publishing) {
		s->gone = true;         /* the publish loop still walks it */
		return;
	}
	list_del(&s->link);
	free(s);
}

size_t logtail_subscribers(void)
{
	return atomic_load(&nsubs);
}

/* Another thread's record: a copy queued for the loop, which publishes it on the next turn. */
static void publish_later(const char *line)
{
	size_t len = strlen(line);
	struct queued *q;

	pthread_mutex_lock(&x.mu);
	if (x.armed && x.queued < LOGTAIL_QUEUE_MAX) {
		q = xmalloc(sizeof(*q) + len + 1);
		memcpy(q->line, line, len + 1);
		list_add_tail(&q->link, &x.queue);
		if (x.queued++ == 0)
			doorbell_ring(&x.bell);  /* under mu: logtail_fini cannot close it meanwhile */
	}
	pthread_mutex_unlock(&x.mu);
}

static void publish_now(const char *line)
{
	struct logtail_sub *s, *tmp;
	cJSON *rec;
	size_t len;

	if (!atomic_load(&nsubs))
		return;
	len = strlen(line);
	rec = cJSON_ParseWithLength(line, len);
	if (!rec)
		return;
	publishing++;
	list_for_each_entry(s, &subs, link)
		if (!s->gone)
			s->fn(line, len, rec, s->arg);
	publishing--;
	if (!publishing)
		list_for_each_entry_safe(s, tmp, &subs, link)
			if (s->gone) {
				list_del(&s->link);
				free(s);
			}
	cJSON_Delete(rec);
}

void logtail_publish(const char *line)
{
	if (!line || !atomic_load(&nsubs))
		return;
	/* x.loop is set before any other thread starts (logtail_init, then the store). */
	if (x.loop_known && !pthread_equal(pthread_self(), x.loop))
		publish_later(line);
	else
		publish_now(line);
}
