/* thread: named threads (see thread.h). */
#include "base/thread.h"

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
