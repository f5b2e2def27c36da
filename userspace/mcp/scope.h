/* scope: what a session opened through transparent redirect sees — one upstream, under that
 * upstream's own names (no "<server>__" or "<server>+" prefix), as if the agent talked to the
 * server it was configured with (docs/enforcement.md#transparent-redirect). Policy still
 * judges the catalogue entry, so the workload's rules apply as "server/tool". A session that
 * is not scoped (s->scope == SESSION_UNSCOPED) sees everything exactly as before.
 */
#ifndef WARDEN_SCOPE_H
#define WARDEN_SCOPE_H

#include <stdbool.h>
#include <cjson/cJSON.h>

#include "mcp/catalog.h"
#include "mcp/session.h"

/* Is entry e shown to session s (its upstream is s's scope, or s is not scoped)? */
bool scope_shows(const struct session *s, const struct catalog_entry *e);
/* e's object as s lists it: a copy, renamed to the upstream's own name for a scoped
 * session. NULL only on allocation failure (alloc.h: aborts). */
cJSON *scope_listed(const struct session *s, const struct catalog_entry *e);
/* The exposed form of a name (tool, prompt) or URI (resource) a scoped session sent, for the
 * catalogue lookups (caller frees); NULL when s is not scoped (use the name as it is). */
char *scope_exposed(const struct catalog *cat, const struct session *s, enum catalog_kind kind,
		    const char *name);
/* A scoped session's initialize answer speaks as its upstream, as a transparent proxy would:
 * result.capabilities become that upstream's (catalog_server_capabilities) and
 * result.serverInfo its own. Nothing changes for an unscoped session or an error answer. */
void scope_initialize_result(const struct catalog *cat, const struct session *s,
			     cJSON *response);
/* An error sent to a scoped session about its target own (the name or URI the session sent):
 * the gateway's exposed form of it ("alpha__tool") becomes own again, in error.message and
 * error.data.tool, so the agent reads the names its server uses. No-op when unscoped. */
void scope_error_names(const struct catalog *cat, const struct session *s, enum catalog_kind kind,
		       const char *own, cJSON *error);

#endif
