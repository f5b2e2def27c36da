/* links: which upstream link carries a session's requests to an upstream.
 *
 * A server configured as one shared stdio child is reached through the catalogue's link for
 * every session; any other (HTTP, or stdio with per_session) gets a link of the session's
 * own, opened on first use with the client's capabilities — so server→client requests and
 * per-session state stay the client's — and replaced, outside its own callbacks, when it
 * went down.
 */
#ifndef WARDEN_LINKS_H
#define WARDEN_LINKS_H

#include <stdbool.h>
#include <stddef.h>
#include <event2/event.h>

struct catalog;
struct link;
struct link_ops;
struct session;

struct links {
	struct event_base *base;
	struct catalog *cat;
	const struct link_ops *ops;   /* callbacks of a session's own links; owner: session_link */
	unsigned max_children;        /* limits.max_stdio_children (0: no cap) */
};

/* One stdio child for every session (the catalogue's link): no session has a link of its own. */
bool links_shared(const struct links *ls, size_t server);
/* The link to use, opening the session's own when needed; NULL with *err (-ENOTCONN: the
 * shared child is restarting; -EUSERS: a per_session stdio child would pass
 * max_children; else the open's errno). */
struct link *links_get(const struct links *ls, struct session *s, size_t server, int *err);
/* The link in use for server, without opening one (NULL when there is none, or it is down). */
struct link *links_current(const struct links *ls, struct session *s, size_t server);
/* Close the session's own links (their pending calls are failed first). */
void links_close_session(struct session *s);
/* Stdio children the sessions' own links hold now, across every router of the process (a
 * reload's old sessions included). Loop thread. */
unsigned links_children(void);
/* How many children one new session may spawn: its per_session stdio servers. */
size_t links_children_per_session(const struct links *ls);

#endif
