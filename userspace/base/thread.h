/* thread: start a named thread. The name shows in top -H, ps -L, perf and
 * /proc/PID/task/TID/comm, so an operator (and the proxy benchmark) sees which part of the
 * daemon uses the CPU: the event loop keeps the process's name, each worker has its own. */
#ifndef WARDEN_THREAD_H
#define WARDEN_THREAD_H

#include <pthread.h>

/* At most 15 bytes; all start with this. */
#define THREAD_NAME_PREFIX "mcpw-"

/* Start fn(arg) on a new joinable thread named name: 0, or a negative errno when it did not
 * start. A name the kernel refuses leaves the thread running under the process's name. */
int thread_start(pthread_t *t, const char *name, void *(*fn)(void *arg), void *arg);

#endif
