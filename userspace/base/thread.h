/* thread: start a named thread, and move a background thread in or out of the kernel's idle
 * class. The name shows in top -H, ps -L, perf and /proc/PID/task/TID/comm, so an operator
 * (and the proxy benchmark) sees which part of the daemon uses the CPU: the event loop keeps
 * the process's name, each worker has its own. */
#ifndef WARDEN_THREAD_H
#define WARDEN_THREAD_H

#include <pthread.h>
#include <stdatomic.h>
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

/* For a long computation on a background thread, called once a step: every `every` steps
 * it gives the CPU back (sched_yield). A thread the kernel picked keeps its CPU until the
 * next tick (4 ms at HZ=250) unless a task wakes on that CPU, even while the event loop
 * waits there runnable (after its own wake-up of a peer preempted it): a kernel without
 * preemption (PREEMPT_NONE, this host's and a common default) picks again only then, and
 * picks the loop, so a batch of milliseconds showed as the loop's stalls in the proxy
 * benchmark's p99 (docs/performance.md). A system call every `every` steps. */
void thread_pace(size_t step, size_t every);

/* A background thread that does its work in the idle class while it keeps up: it lowers
 * itself once it has caught up, and whoever sees it fall behind, or waits for it, raises it
 * to normal priority. So the work is done in CPU time the request path does not want, and a
 * host with none to spare still gets it done. Every call below with the owner's lock held,
 * so that the thread's class and `idle` agree. */
struct thread_idle {
	pthread_t thread;
	bool may;                       /* it may go idle: wanted, and the class can be left */
	bool idle;                      /* in the idle class now */
	_Atomic unsigned long raised;   /* times raised (read without the lock) */
};

/* Thread t may go idle when may (wanted, and thread_idle_reversible() said so, asked before
 * the lock was taken); then it goes. */
void thread_idle_setup(struct thread_idle *ti, pthread_t t, bool may);
/* Once it has caught up (the thread itself, usually). */
void thread_idle_lower(struct thread_idle *ti);
/* Any thread: out of the idle class. 0, or a negative errno when the kernel refused (the
 * right went since the probe): the thread then stays idle, and is never lowered or raised
 * again. The caller logs that. */
int thread_idle_raise(struct thread_idle *ti);
/* For good, e.g. when the owner stops: raised, and not lowered again. As thread_idle_raise. */
int thread_idle_end(struct thread_idle *ti);

#endif
