/* epoch: deferred frees, each waiting for one posted callback a loop. */
#include "base/epoch.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <event2/event.h>

#include "base/alloc.h"
#include "base/list.h"
#include "base/log.h"

/* A deferred free: the loops that have not passed yet, a bit a slot. */
struct pending {
	struct list_head link;          /* in reg.pending */
	void (*fn)(void *arg);
	void *arg;
	uint64_t waiting;               /* under reg.mu */
};

static struct {
	pthread_mutex_t mu;
	struct event_base *base[EPOCH_LOOPS_MAX];
	uint64_t used;                  /* slots attached */
	struct list_head pending;
} reg = { PTHREAD_MUTEX_INITIALIZER, { 0 }, 0, LIST_HEAD_INIT(reg.pending) };

static _Thread_local int my_slot = -1;

/* reg.mu held: slot has passed p; true when that was the last (p is off the list). */
static bool passed(struct pending *p, int slot)
{
	p->waiting &= ~(1ull << slot);
	if (p->waiting)
		return false;
	list_del(&p->link);
	return true;
}

static void run(struct pending *p)
{
	p->fn(p->arg);
	free(p);
}

/* On a loop, between two callbacks: nothing it read before the pointer changed is held. */
static void on_pass(evutil_socket_t fd, short what, void *arg)
{
	struct pending *p = arg;
	bool done = false;

	(void)fd, (void)what;
	pthread_mutex_lock(&reg.mu);
	/* A thread that detached and still runs its base: its pass was counted then (and p
	 * may be gone), so p is not touched. */
	if (my_slot >= 0)
		done = passed(p, my_slot);
	pthread_mutex_unlock(&reg.mu);
	if (done)
		run(p);
}

int epoch_loop_attach(struct event_base *base)
{
	int rc = -ENOSPC;

	pthread_mutex_lock(&reg.mu);
	if (my_slot >= 0) {
		rc = -EEXIST;
		goto out;
	}
	for (int i = 0; i < EPOCH_LOOPS_MAX; i++) {
		if (reg.used & (1ull << i))
			continue;
		reg.base[i] = base;
		reg.used |= 1ull << i;
		my_slot = i;
		rc = 0;
		break;
	}
out:
	pthread_mutex_unlock(&reg.mu);
	return rc;
}

void epoch_loop_detach(void)
{
	struct list_head done;
	struct pending *p, *tmp;

	if (my_slot < 0)
		return;
	list_init(&done);
	pthread_mutex_lock(&reg.mu);
	/* Stopped: it holds nothing, which is a pass of everything still waiting for it. */
	list_for_each_entry_safe(p, tmp, &reg.pending, link)
		if ((p->waiting & (1ull << my_slot)) && passed(p, my_slot))
			list_add_tail(&p->link, &done);
	reg.used &= ~(1ull << my_slot);
	reg.base[my_slot] = NULL;
	my_slot = -1;
	pthread_mutex_unlock(&reg.mu);
	list_for_each_entry_safe(p, tmp, &done, link)
		run(p);
}

void epoch_defer(void (*fn)(void *arg), void *arg)
{
	struct pending *p;

	pthread_mutex_lock(&reg.mu);
	if (!reg.used) {
		pthread_mutex_unlock(&reg.mu);
		fn(arg);
		return;
	}
	p = xmalloc(sizeof(*p));
	*p = (struct pending){ .fn = fn, .arg = arg, .waiting = reg.used };
	list_add_tail(&p->link, &reg.pending);
	/* Under reg.mu: no pass is counted before every loop has been asked. */
	for (int i = 0; i < EPOCH_LOOPS_MAX; i++)
		if ((reg.used & (1ull << i)) &&
		    event_base_once(reg.base[i], -1, EV_TIMEOUT, on_pass, p, NULL) < 0)
			/* Never passed: kept rather than freed under a reader. */
			log_error("epoch: cannot reach loop %d: a replaced structure stays allocated",
				  i);
	pthread_mutex_unlock(&reg.mu);
}
