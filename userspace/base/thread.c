/* thread: named threads and the idle class (see thread.h). */
#include "base/thread.h"

#include <sched.h>

int thread_start(pthread_t *t, const char *name, void *(*fn)(void *arg), void *arg)
{
	int rc = pthread_create(t, NULL, fn, arg);

	if (rc)
		return -rc;
	/* The name is for people and tools: a thread the kernel would not name (no /proc) runs
	 * all the same, so that is no error of the caller's. The names are constants within
	 * the kernel's 15 bytes. */
	(void)pthread_setname_np(*t, name);
	return 0;
}

void thread_pace(size_t step, size_t every)
{
	if (every && step % every == every - 1)
		(void)sched_yield();    /* cannot fail on Linux; nothing to do if it did */
}

int thread_set_idle(pthread_t t, bool idle)
{
	struct sched_param sp = { .sched_priority = 0 };

	return -pthread_setschedparam(t, idle ? SCHED_IDLE : SCHED_OTHER, &sp);
}

/* The probe: idle and back on itself. A thread left idle when the way back is refused ends
 * here, so nothing else stays in the class. */
static void *probe(void *arg)
{
	bool *ok = arg;

	*ok = thread_set_idle(pthread_self(), true) == 0 &&
	      thread_set_idle(pthread_self(), false) == 0;
	return NULL;
}

bool thread_idle_reversible(void)
{
	pthread_t t;
	bool ok = false;

	if (pthread_create(&t, NULL, probe, &ok) || pthread_join(t, NULL))
		return false;
	return ok;
}

void thread_idle_setup(struct thread_idle *ti, pthread_t t, bool may)
{
	ti->thread = t;
	ti->may = may;
	ti->idle = false;
	thread_idle_lower(ti);
}

void thread_idle_lower(struct thread_idle *ti)
{
	if (ti->may && !ti->idle && thread_set_idle(ti->thread, true) == 0)
		ti->idle = true;
}

int thread_idle_raise(struct thread_idle *ti)
{
	int rc;

	if (!ti->may || !ti->idle)
		return 0;
	if ((rc = thread_set_idle(ti->thread, false))) {
		ti->may = false;
		return rc;
	}
	ti->idle = false;
	atomic_fetch_add(&ti->raised, 1);
	return 0;
}

int thread_idle_end(struct thread_idle *ti)
{
	int rc = thread_idle_raise(ti);

	ti->may = false;
	return rc;
}
