/* epoch: freeing what other event loops may still be reading (workers: N).
 *
 * A loop reads a shared structure through a pointer it loads inside a callback and keeps
 * nothing of it past that callback. Whoever replaces the structure publishes the new pointer
 * and hands the old one to epoch_defer, which frees it once every attached loop has come back
 * to its event loop since (each runs a callback posted to it: whatever it was doing when the
 * pointer changed is over by then; an idle loop runs it at once). No lock and no counter on
 * the readers' side: the cost is the writer's, a posted callback a loop.
 *
 * Loops attach on their own thread before they read, and detach once they have stopped
 * running, before their base is freed (the callbacks posted to it are then never run: the
 * detach counts as their pass). Callbacks are posted across threads: libevent's locking must
 * be on (evthread_use_pthreads, as main does) before the bases are made.
 */
#ifndef WARDEN_EPOCH_H
#define WARDEN_EPOCH_H

struct event_base;

#define EPOCH_LOOPS_MAX 64

/* The calling thread's loop, run on base. 0, -ENOSPC past EPOCH_LOOPS_MAX, or -EEXIST when
 * this thread is attached already. */
int epoch_loop_attach(struct event_base *base);
/* The calling thread's loop, stopped: no longer waited for. Nothing if it is not attached. */
void epoch_loop_detach(void);

/* fn(arg) once every loop attached now has passed a turn: on the thread of the last to pass
 * (a loop thread, or one detaching), or here and now when no loop is attached. Any thread. */
void epoch_defer(void (*fn)(void *arg), void *arg);

#endif
