/* workers: the loops beside the first, their threads, and their pause and stop (see
 * workers.h). */
#include "workers.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/event.h>

#include "base/alloc.h"
#include "base/config.h"
#include "base/epoch.h"
#include "base/event_opt.h"
#include "base/log.h"
#include "base/thread.h"
#include "govern/gate.h"
#include "mcp/router.h"
#include "mcp/transport/front.h"
#include "mcp/transport/upstream_http.h"
#include "mcp/transport/upstream_stdio.h"
#include "observe/audit.h"
#include "observe/metrics.h"
#include "store/store.h"

struct worker {
	struct workers *w;
	pthread_t thread;
	bool thread_up;
	int rc;                         /* its start's outcome, once reported */
	struct event_base *base;
	struct event *pause_ev;         /* the first loop asks it to pause (or to stop) */
	struct store *store;            /* attached to, or NULL */
	struct router *half;
	struct front *front;
};

struct workers {
	const struct config *cfg;
	struct gate *gate;
	struct router *first;
	struct front_group *g;
	int port;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned n;                     /* loops beside the first */
	unsigned reported;              /* under mu: loops whose start is done, well or not */
	unsigned paused;                /* under mu: loops waiting in on_pause */
	unsigned long turn;             /* under mu: raised by each resume */
	bool stopping;                  /* under mu: the resume ends them */
	struct worker *ws;
};

static void on_pause(evutil_socket_t fd, short what, void *arg)
{
	struct worker *k = arg;
	struct workers *w = k->w;
	bool stop;

	(void)fd;
	(void)what;
	pthread_mutex_lock(&w->mu);
	unsigned long turn = w->turn;
	w->paused++;
	pthread_cond_broadcast(&w->cv);
	while (w->turn == turn)
		pthread_cond_wait(&w->cv, &w->mu);
	stop = w->stopping;
	pthread_mutex_unlock(&w->mu);
	/* No callback of this loop runs after this one: the others may free their fronts. */
	if (stop)
		event_base_loopbreak(k->base);
}

/* On the loop's thread: what a loop of the daemon has, then its half and front. */
static int setup(struct worker *k)
{
	struct workers *w = k->w;
	int rc;

	metrics_loop_attach();
	if (!(k->base = event_loop_new()) ||
	    !(k->pause_ev = event_new(k->base, -1, 0, on_pause, k)))
		return -ENOMEM;
	if ((rc = log_loop_attach(k->base)) != 0 || (rc = epoch_loop_attach(k->base)) != 0 ||
	    (rc = upstream_http_init(k->base)) != 0)
		return rc;
	if ((k->store = gate_store(w->gate)) && (rc = store_loop_attach(k->store, k->base)) != 0) {
		k->store = NULL;
		return rc;
	}
	if ((rc = router_new_loop(w->first, k->base, &k->half)) != 0 ||
	    (rc = front_new_loop(k->base, w->cfg, w->gate, k->half, w->port, &k->front)) != 0)
		return rc;
	return front_join(k->front, w->g);
}

/* On the loop's thread, after its last callback: the reverse of setup. */
static void teardown(struct worker *k)
{
	front_free(k->front);           /* its connections close */
	router_free(k->half);           /* its sessions end, their calls settle */
	store_loop_detach(k->store);    /* the store's answers to what it queued */
	upstream_stdio_shutdown();
	upstream_http_shutdown();
	event_free_opt(k->pause_ev);
	epoch_loop_detach();
	log_loop_detach();
	audit_thread_end();
	metrics_loop_detach();
	if (k->base)
		event_base_free(k->base);
}

static void *worker_main(void *arg)
{
	struct worker *k = arg;
	struct workers *w = k->w;
	int rc = setup(k);

	pthread_mutex_lock(&w->mu);
	k->rc = rc;
	w->reported++;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	if (rc == 0 && event_base_dispatch(k->base) < 0)
		log_error("workers: loop %u ended on an error", router_loop(k->half));
	teardown(k);
	return NULL;
}

static void workers_free(struct workers *w)
{
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	free(w->ws);
	free(w);
}

/* Wait until every loop that serves is in on_pause (loops that could not start have
 * ended on their own). */
static void pause_all(struct workers *w)
{
	unsigned serving = 0;

	pthread_mutex_lock(&w->mu);
	w->paused = 0;
	for (unsigned i = 0; i < w->n; i++)
		if (w->ws[i].thread_up && w->ws[i].rc == 0) {
			event_active(w->ws[i].pause_ev, EV_TIMEOUT, 1);
			serving++;
		}
	while (w->paused < serving)
		pthread_cond_wait(&w->cv, &w->mu);
	pthread_mutex_unlock(&w->mu);
}

static void resume_all(struct workers *w, bool stop)
{
	pthread_mutex_lock(&w->mu);
	w->stopping = stop;
	w->turn++;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

void workers_pause(struct workers *w)
{
	if (w)
		pause_all(w);
}

void workers_resume(struct workers *w)
{
	if (w)
		resume_all(w, false);
}

void workers_stop(struct workers *w)
{
	if (!w)
		return;
	pause_all(w);
	resume_all(w, true);
	for (unsigned i = 0; i < w->n; i++)
		if (w->ws[i].thread_up)
			pthread_join(w->ws[i].thread, NULL);
	workers_free(w);
}

int workers_start(const struct config *cfg, struct gate *gate, struct router *first,
		  struct front_group *g, int port, struct workers **out)
{
	struct workers *w;
	unsigned started = 0;
	int rc = 0;

	*out = NULL;
	if (cfg->workers < 2)
		return 0;
	w = xcalloc(1, sizeof(*w));
	w->cfg = cfg;
	w->gate = gate;
	w->first = first;
	w->g = g;
	w->port = port;
	w->n = cfg->workers - 1;
	w->ws = xcalloc(w->n, sizeof(*w->ws));
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	for (unsigned i = 0; i < w->n; i++) {
		struct worker *k = &w->ws[i];
		char name[16];

		k->w = w;
		snprintf(name, sizeof(name), THREAD_NAME_PREFIX "loop%u", (i + 1) % 100u);
		if ((rc = thread_start(&k->thread, name, worker_main, k)) != 0)
			break;
		k->thread_up = true;
		started++;
	}
	pthread_mutex_lock(&w->mu);
	while (w->reported < started)
		pthread_cond_wait(&w->cv, &w->mu);
	for (unsigned i = 0; i < w->n && !rc; i++)
		if (w->ws[i].thread_up)
			rc = w->ws[i].rc;
	pthread_mutex_unlock(&w->mu);
	if (rc) {
		log_error("workers: cannot start %u loops beside the first: %s", w->n,
			  strerror(-rc));
		workers_stop(w);
		return rc;
	}
	log_info("workers: %u loops serve port %d", cfg->workers, port);
	*out = w;
	return 0;
}
