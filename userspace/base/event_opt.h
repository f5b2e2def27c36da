/* event_opt: libevent's event_free() for an event that may not have been created, and the
 * daemon's loops' base. Header only.
 */
#ifndef WARDEN_EVENT_OPT_H
#define WARDEN_EVENT_OPT_H

#include <event2/event.h>

/* event_free(NULL) dereferences its argument; destructors that run after a failed or partial
 * construction call this instead of testing each event first. */
static inline void event_free_opt(struct event *ev)
{
	if (ev)
		event_free(ev);
}

/* A loop of the daemon's (main.c, workers.c), with epoll's change list: a turn's changes to
 * one descriptor's events go to the kernel as one epoll_ctl when the turn ends. evhttp makes
 * several per request (it stops reading a connection once a request is in, reads again and
 * writes with the answer, stops writing once it is out: docs/performance.md). This is safe as
 * long as no descriptor on the loop is a dup() of another, and each one's events are deleted
 * through libevent before it is closed (a front connection's descriptor is its
 * bufferevent's: conn_deadline.c). NULL when out of memory. */
static inline struct event_base *event_loop_new(void)
{
	struct event_config *ec = event_config_new();
	struct event_base *b = NULL;

	if (ec && event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST) == 0)
		b = event_base_new_with_config(ec);
	if (ec)
		event_config_free(ec);
	return b;
}

#endif
