/* test_epoch: what loops may still be reading is freed only after each has passed a turn
 * (base/epoch.h). A loop caught inside a callback that holds the old structure keeps it
 * alive until that callback returns; two loops reading a pointer the main thread keeps
 * replacing never read a freed structure (AddressSanitizer would say so; ThreadSanitizer, in
 * make tsan, checks the hand-over); a detach counts as a pass. */
#include <CUnit/Basic.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "cunit_main.h"
#include "base/epoch.h"

#define LOOPS 2
#define SWAPS 2000
#define MAGIC 0x5eed

struct box {
	int magic;
	int value;
};

static _Atomic(struct box *) cur;
static atomic_int freed;

static void box_free(void *arg)
{
	struct box *b = arg;

	b->magic = 0;           /* a reader that still saw it would notice, ASan or not */
	free(b);
	atomic_fetch_add(&freed, 1);
}

static struct box *box_new(int value)
{
	struct box *b = malloc(sizeof(*b));

	b->magic = MAGIC;
	b->value = value;
	return b;
}

/* ---- a loop caught holding the old box ---- */

static atomic_int phase;        /* 1: the loop holds the box; 2: the main thread deferred */

static void hold(evutil_socket_t fd, short what, void *arg)
{
	struct box **seen = arg;

	(void)fd, (void)what;
	*seen = atomic_load(&cur);
	atomic_store(&phase, 1);
	while (atomic_load(&phase) != 2)
		usleep(1000);
	usleep(20000);          /* the defer has been made: nothing may free the box yet */
	if ((*seen)->magic != MAGIC)
		*seen = NULL;
}

static void *holder_main(void *arg)
{
	struct event_base *base = event_base_new();
	struct timeval tv = { 5, 0 };

	if (!base || epoch_loop_attach(base))
		return NULL;
	event_base_once(base, -1, EV_TIMEOUT, hold, arg, NULL);
	event_base_loopexit(base, &tv);
	while (atomic_load(&freed) == 0 && !event_base_got_exit(base))
		event_base_loop(base, EVLOOP_ONCE);
	epoch_loop_detach();
	event_base_free(base);
	return NULL;
}

static void test_waits_for_a_holder(void)
{
	struct box *seen = (struct box *)1;
	pthread_t t;

	atomic_store(&freed, 0);
	atomic_store(&phase, 0);
	atomic_store(&cur, box_new(1));
	CU_ASSERT_FATAL(pthread_create(&t, NULL, holder_main, &seen) == 0);
	while (atomic_load(&phase) != 1)
		usleep(1000);
	epoch_defer(box_free, atomic_exchange(&cur, box_new(2)));
	CU_ASSERT_EQUAL(atomic_load(&freed), 0);        /* the loop is inside its callback */
	atomic_store(&phase, 2);
	CU_ASSERT_FATAL(pthread_join(t, NULL) == 0);
	CU_ASSERT_PTR_NOT_NULL(seen);                   /* still whole when it looked again */
	CU_ASSERT_EQUAL(atomic_load(&freed), 1);        /* freed once it came back */
	/* No loop attached: at once. */
	epoch_defer(box_free, atomic_exchange(&cur, NULL));
	CU_ASSERT_EQUAL(atomic_load(&freed), 2);
}

/* ---- loops reading while the main thread replaces ---- */

static atomic_bool stop;

struct reader {
	struct event_base *base;
	struct event *ev;
	long reads, bad;
};

static void read_once(evutil_socket_t fd, short what, void *arg)
{
	struct reader *r = arg;
	struct box *b = atomic_load(&cur);

	(void)fd, (void)what;
	if (b) {
		r->bad += b->magic != MAGIC || b->value < 0;
		r->reads++;
	}
	if (atomic_load(&stop))
		event_base_loopbreak(r->base);
	else
		event_active(r->ev, EV_TIMEOUT, 1);
}

static pthread_barrier_t go;

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	int rc;

	r->base = event_base_new();
	rc = r->base ? epoch_loop_attach(r->base) : -1;
	pthread_barrier_wait(&go);
	if (rc == 0 && (r->ev = event_new(r->base, -1, 0, read_once, r))) {
		event_active(r->ev, EV_TIMEOUT, 1);
		event_base_dispatch(r->base);
		event_free(r->ev);
	}
	epoch_loop_detach();    /* stopped: whatever still waits for it is freed */
	event_base_free(r->base);
	return NULL;
}

static void test_readers_never_see_a_freed_box(void)
{
	struct reader r[LOOPS] = { { 0 } };
	pthread_t t[LOOPS];

	atomic_store(&freed, 0);
	atomic_store(&stop, false);
	atomic_store(&cur, box_new(0));
	CU_ASSERT_FATAL(pthread_barrier_init(&go, NULL, LOOPS + 1) == 0);
	for (int i = 0; i < LOOPS; i++)
		CU_ASSERT_FATAL(pthread_create(&t[i], NULL, reader_main, &r[i]) == 0);
	pthread_barrier_wait(&go);
	for (int i = 1; i <= SWAPS; i++)
		epoch_defer(box_free, atomic_exchange(&cur, box_new(i)));
	atomic_store(&stop, true);
	for (int i = 0; i < LOOPS; i++) {
		CU_ASSERT_FATAL(pthread_join(t[i], NULL) == 0);
		CU_ASSERT(r[i].reads > 0);
		CU_ASSERT_EQUAL(r[i].bad, 0);
	}
	pthread_barrier_destroy(&go);
	CU_ASSERT_EQUAL(atomic_load(&freed), SWAPS);    /* every one, the last by a detach */
	box_free(atomic_exchange(&cur, NULL));
	/* A thread attaches once. */
	struct event_base *b = event_base_new();
	CU_ASSERT_EQUAL(epoch_loop_attach(b), 0);
	CU_ASSERT_EQUAL(epoch_loop_attach(b), -EEXIST);
	epoch_loop_detach();
	event_base_free(b);
}

/* Callbacks are posted to other threads' bases, as in the daemon (main.c). */
static int setup(void)
{
	return evthread_use_pthreads();
}

CU_MAIN("epoch", setup, NULL,
	{ "a loop inside a callback keeps the old structure alive", test_waits_for_a_holder },
	{ "loops reading while it is replaced never see a freed one",
	  test_readers_never_see_a_freed_box })
