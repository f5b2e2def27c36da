/* session: Mcp-Session-Id lifecycle, protocol-version negotiation and per-session state.
 *
 * A session is created by initialize: its id carries 256 random bits (hex), it remembers the
 * negotiated protocol version, the client's capabilities and the key that created it, and
 * holds its own links to upstreams that are not shared. It ends on DELETE, when idle past
 * session_idle_ms, or at shutdown; an ended id answers 404.
 */
#ifndef WARDEN_SESSION_H
#define WARDEN_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include <event2/event.h>

#include "base/htab.h"

struct link;
struct hmap;
struct own_tools;
struct relay;
struct stream;
struct session;

#define SESSION_ID_LEN 64

/* A session's own link to one upstream, and the owner its callbacks get: which session and
 * which upstream, and the relay that routes what the upstream sends (mcp/relay.h). */
struct session_link {
	struct relay *relay;
	struct session *s;
	size_t server;
	struct link *link;            /* NULL until first used; replaced when it went down */
	struct own_tools *own;        /* the tools it lists to this session alone, or NULL
				       * (mcp/session_view.h) */
	bool child;                   /* link is a stdio child of this session's own: counted in
				       * links_children() */
	bool pooled;                  /* link came from the pool of idle links (mcp/links.h) */
};

/* A call's place in its session's book of calls in flight (embedded in struct call,
 * mcp/call.h), under the key of the client's request id: hashed once, when booked; it leaves
 * by its node (no lookup, no copy of the key). */
struct session_booking {
	struct htab_node node;
	const char *key;              /* NULL: not in a book */
};

struct session {
	char id[SESSION_ID_LEN + 1];
	char version[16];             /* negotiated protocol version */
	/* Read-only: shared, by content, with every session whose client sent the same (most
	 * clients of a deployment send identical ones). */
	const cJSON *client_caps;
	const cJSON *client_info;
	struct session_shared *caps_ref, *info_ref;
	char key_id[64];              /* the key that initialised it; "" when auth is off */
	uint64_t last_active_ms;
	struct session_link *links;   /* one per upstream */
	size_t nlinks;
	struct stream *stream;        /* the GET stream, when open (implemented by the transport) */
	struct htab calls;            /* its calls in flight: struct session_booking by key */
	/* NULL until first used (hmap_put_lazy): most sessions never use them. */
	struct hmap *relayed;         /* gateway id for a relayed server request -> relay state */
	struct hmap *subs;            /* exposed resource URIs this session subscribed to */
	struct hmap *tasks;           /* task id -> owning upstream, or NULL (mcp/tasks.h) */
	uint64_t next_relay_id;
	bool initialized;             /* notifications/initialized received */
	bool stateless;               /* one 2026-07-28 request's (mcp/stateless.h) */
	bool pool_skip;               /* a pooled link was lost: open new links, take none */
	bool task_holder;             /* a 2026-07-28 identity's tasks: kept across requests */
	bool ending;                  /* done: the router ends it from its reap event */
	/* Transparent redirect (docs/enforcement.md): a session opened by an agent that
	 * believes it talks to one upstream sees only that upstream, under its own names. */
	size_t scope;                 /* that upstream's index; SESSION_UNSCOPED otherwise */
	char redirected_from[64];     /* the address the agent connected to; "" when not */
};

#define SESSION_UNSCOPED ((size_t)-1)

struct session_table;

/* on_expire runs for a session that idled out, before it is freed. relay: given to every
 * session's link owners. */
int session_table_new(struct event_base *base, size_t nupstreams, unsigned max_sessions,
		      int idle_ms, struct relay *relay, void (*on_expire)(void *arg, struct session *s),
		      void *arg, struct session_table **out);
void session_table_free(struct session_table *t);

/* Supported protocol versions, newest first; negotiation per the spec: the requested one if
 * supported, else the newest. */
extern const char *const session_versions[];
bool session_version_supported(const char *v);
const char *session_negotiate(const char *requested);

/* At most max_per_key open sessions per key id (0: no cap); session_create then fails with
 * -EDQUOT. Sessions without a key (no-auth mode) are not counted. */
void session_table_set_key_cap(struct session_table *t, unsigned max_per_key);
/* What the caps count (max_sessions, max_per_key): a table's own by default; with workers: N
 * one shared by every loop's table, so that the caps are the process's. One lock around a
 * count's change (a session's start and end). */
struct session_counts;
struct session_counts *session_counts_new(void);      /* NULL: no memory */
void session_counts_free(struct session_counts *c);
/* t's sessions count in c (which outlives t) from now on: before its first session. */
void session_table_share_counts(struct session_table *t, struct session_counts *c);
/* The loop whose sessions these are (workers: N; 0 the first): its index is the last two
 * hex digits of every id made here, so that any loop can tell whose a session is. */
#define SESSION_LOOPS_MAX 64
void session_table_set_loop(struct session_table *t, unsigned loop);
/* The loop a session id names (its last two hex digits), or -1 for an id no table made. */
int session_id_loop(const char *id);
/* -EBUSY when max_sessions are open, -EDQUOT when the key has max_per_key. */
int session_create(struct session_table *t, const char *version, const cJSON *caps,
		   const cJSON *info, const char *key_id, struct session **out);
struct session *session_find(struct session_table *t, const char *id);
void session_touch(struct session *s);
/* Remove from the table and free. Links must already be closed by the caller. */
void session_destroy(struct session_table *t, struct session *s);
size_t session_count(const struct session_table *t);
/* Iterate: call fn for each session (fn may not destroy). */
void session_foreach(struct session_table *t, void (*fn)(void *arg, struct session *s), void *arg);

/* Book b under key (a string that lives as long as the booking): -EEXIST when a call holds
 * that key already. */
int session_book(struct session *s, struct session_booking *b, const char *key);
/* Out of s's book, when in it. */
void session_unbook(struct session *s, struct session_booking *b);
struct session_booking *session_booked(const struct session *s, const char *key);
static inline size_t session_nbooked(const struct session *s) { return htab_count(&s->calls); }

#endif
