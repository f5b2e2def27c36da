/* links: which upstream link carries a session's requests to an upstream.
 *
 * A server configured as one shared stdio child is reached through the catalogue's link for
 * every session; any other (HTTP, or stdio with per_session) gets a link of the session's
 * own, opened on first use with the client's capabilities — so server→client requests and
 * per-session state stay the client's — and replaced, outside its own callbacks, when it
 * went down.
 *
 * A 2026-07-28 request runs on a session of its own that ends with it. Its links to HTTP
 * upstreams are not closed then but kept idle in a small pool (LINKS_POOL_MAX, each at most
 * LINKS_POOL_IDLE_MS) and handed to the next such request to the same upstream whose client
 * declared the same capabilities (an upstream session is initialized with them, and nothing
 * else of the agent: no identity, no subscription, no log level in that revision). A link on
 * which the request created a task, or with a call still in flight, is closed instead. A
 * pooled link whose upstream dropped its session fails its next call like any link would and
 * is replaced on the next use; the transport itself re-initializes on 404.
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

#define LINKS_POOL_MAX 8
#define LINKS_POOL_IDLE_MS 30000

struct link_pool;

struct links {
	struct event_base *base;
	struct catalog *cat;
	const struct link_ops *ops;   /* callbacks of a session's own links; owner: session_link */
	unsigned max_children;        /* limits.max_stdio_children (0: no cap) */
	struct link_pool *pool;       /* idle links of 2026-07-28 requests; NULL: none kept */
	/* A router half on another loop than the catalogue's (mcp/router.h): the shared stdio
	 * children, the catalogue's links, are out of its reach (-EXDEV). */
	bool remote;
};

/* The pool (links_pool_new at the router's start; NULL on failure: then no link is kept). */
struct link_pool *links_pool_new(struct event_base *base);
/* Close its idle links and free it (the router ends). */
void links_pool_free(struct link_pool *p);
/* Idle links in the pool now (tests, metrics). */
size_t links_pool_idle(const struct link_pool *p);

/* One stdio child for every session (the catalogue's link): no session has a link of its own. */
bool links_shared(const struct links *ls, size_t server);
/* The link to use, opening the session's own when needed; NULL with *err (-ENOTCONN: the
 * shared child is restarting; -EXDEV: the shared child is another loop's; -EUSERS: a
 * per_session stdio child would pass max_children; else the open's errno). */
struct link *links_get(const struct links *ls, struct session *s, size_t server, int *err);
/* The link in use for server, without opening one (NULL when there is none, or it is down). */
struct link *links_current(const struct links *ls, struct session *s, size_t server);
/* Close the session's own links (their pending calls are failed first); a 2026-07-28
 * request's idle HTTP links go to the pool instead. */
void links_close_session(const struct links *ls, struct session *s);
/* Stdio children the sessions' own links hold now, across every router of the process (a
 * reload's old sessions included). Read from any thread. */
unsigned links_children(void);
/* How many children one new session may spawn: its per_session stdio servers. */
size_t links_children_per_session(const struct links *ls);

#endif
