/* thread: start a named thread, and move a background thread in or out of the kernel's idle
 * class. The name shows in top -H, ps -L, perf and /proc/PID/task/TID/comm, so an operator
 * (and the proxy benchmark) sees which part of the daemon uses the CPU: the event loop keeps
 * the process's name, each worker has its own. */
#ifndef WARDEN_THREAD_H
#define WARDEN_THREAD_H

#include <pthread.h>
#include <stdbool.h>

/* At most 15 bytes; all start with this. */
#define THREAD_NAME_PREFIX "mcpw-"

/* Start fn(arg) on a new joinable thread named name: 0, or a negative errno when it did not
 * start. A name the kernel refuses leaves the thread running under the process's name. */
int thread_start(pthread_t *t, const char *name, void *(*fn)(void *arg), void *arg);

/* Put t into the idle class (SCHED_IDLE: it runs on CPU time no other thread of the host
 * wants), or back into the normal one. 0, or a negative errno. Any thread may go idle;
 * leaving the class takes CAP_SYS_NICE or an RLIMIT_NICE of 20 (sched(7)). */
int thread_set_idle(pthread_t t, bool idle);

/* Whether this process may take a thread out of the idle class again: tried on a throw-away
 * thread, so that the answer is the kernel's own (capabilities, RLIMIT_NICE, seccomp).
 * Blocking (a thread's start and end): start-up only. */
bool thread_idle_reversible(void);

#endif
