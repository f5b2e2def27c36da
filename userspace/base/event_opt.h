/* event_opt: libevent's event_free() for an event that may not have been created.
 *
 * event_free(NULL) dereferences its argument; destructors that run after a failed or partial
 * construction call this instead of testing each event first. Header only.
 */
#ifndef WARDEN_EVENT_OPT_H
#define WARDEN_EVENT_OPT_H

#include <event2/event.h>

static inline void event_free_opt(struct event *ev)
{
	if (ev)
		event_free(ev);
}

#endif
