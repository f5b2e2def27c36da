/* session_view: the tools one session sees of the servers that serve it alone.
 *
 * A server may offer a tool only to clients that declared a capability (server-everything
 * lists get-roots-list only to clients with roots). The catalogue lists every server once,
 * through a link that declares sampling and elicitation (catalog_declared_caps). A client
 * that declares more (roots) gets, for every server that is not shared (HTTP, or stdio with
 * per_session), its own link opened at initialize with its own capabilities, and that link's
 * tools/list decides what the session sees of the server: catalogue entries it does not list
 * are hidden from the session, and tools only it lists are the session's own entries
 * (CATALOG_OWN: judged by the gate by name, schema-checked like any other). Until its own
 * lists are in, the session's tools/list — and a tools/call of a name nobody lists yet —
 * waits (call_park). A tools/list_changed on the session's own link lists it again and tells
 * the session.
 */
#ifndef WARDEN_SESSION_VIEW_H
#define WARDEN_SESSION_VIEW_H

#include <stdbool.h>
#include <stddef.h>

struct catalog;
struct catalog_entry;
struct links;
struct session;
struct session_link;

/* At initialize: open the session's own links and list them, when its client declares a
 * capability the catalogue's links do not. */
void view_open(const struct links *ls, struct session *s);
/* The session ends (before its links close): forget fetches in flight, free the lists. */
void view_close(struct session *s);
/* Some own list is still being fetched. */
bool view_pending(const struct session *s);
/* A catalogue entry this session is not offered (its server lists to it alone, without it). */
bool view_hides(const struct session *s, const struct catalog_entry *e);
/* The session's own entries (tools the catalogue does not list), across servers: i < count.
 * An own entry the catalogue came to list since is shown as the catalogue's. */
size_t view_count(const struct session *s);
const struct catalog_entry *view_at(const struct session *s, size_t i);
const struct catalog_entry *view_find(const struct session *s, const char *exposed);
/* notifications/tools/list_changed on the session's own link to sl's server. */
void view_refresh(struct session_link *sl);

#endif
