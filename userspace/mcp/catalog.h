/* catalog: the aggregated tools, resources, templates and prompts of every upstream.
 *
 * Each upstream gets a catalogue link at start-up (all in parallel); once initialised, all
 * pages of each list it supports are fetched and cached; a server is ready only after its
 * lists succeeded. A server that is down is retried with backoff and does not hold up the
 * others. notifications/<kind>/list_changed refreshes that list and is then announced to
 * downstream sessions through the on_change hook.
 *
 * Exposed names: "<server>__<tool>" / "<server>__<prompt>" and resource URIs
 * "<server>+<uri>" when prefixing is on (prefix "always", or "auto" with more than one
 * upstream); with "never" a name offered by two servers keeps the first (config order) and
 * the clash is logged as a configuration error. Lookups are hash-based.
 */
#ifndef WARDEN_CATALOG_H
#define WARDEN_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <cjson/cJSON.h>
#include <event2/event.h>

#include "base/obj_type.h"

struct config;
struct upstream_config;
struct link;
struct link_ops;

enum catalog_kind { CAT_TOOLS, CAT_RESOURCES, CAT_TEMPLATES, CAT_PROMPTS, CAT_NKINDS };

/* index of an entry listed to one session only (mcp/session_view.h): it is in no compiled
 * policy view, so the gate judges it by name. */
#define CATALOG_OWN ((size_t)-1)

struct catalog_entry {
	enum catalog_kind kind;
	size_t server;          /* index into the config's upstreams */
	size_t index;           /* position in its kind's list (stable until the next rebuild);
				 * CATALOG_OWN for a session's own entry */
	unsigned long generation;  /* its list's (0: a session's own): what the gate derived
				    * from the catalogue is used for it only when of the same */
	const char *name;       /* the upstream's own name (or URI / URI template) */
	const char *exposed;    /* what agents see */
	cJSON *json;            /* the exposed object (name/uri rewritten), owned */
	void *schema;           /* compiled inputSchema (tools), owned by catalog */
};

struct catalog_hooks {
	/* A list changed (after the refresh is complete): tell downstream sessions. */
	void (*on_change)(void *arg, enum catalog_kind kind);
	/* A server became ready (initialised and listed); see catalog_all_ready. */
	void (*on_ready)(void *arg, size_t server);
	/* Something on a shared link (one stdio child for all sessions) that belongs to a
	 * downstream call: route it. msg is owned by the callee. */
	void (*on_call_request)(void *arg, struct link *l, cJSON *msg, enum obj_type *ctx);
	void (*on_call_notification)(void *arg, struct link *l, cJSON *msg, enum obj_type *ctx);
	void *arg;
};

struct catalog;

int catalog_new(struct event_base *base, const struct config *cfg,
		const struct catalog_hooks *hooks, struct catalog **out);
void catalog_free(struct catalog *c);
/* Free n entries built for a catalogue or a session's own view (their names, JSON and schema)
 * and the array. */
void catalog_entries_free(struct catalog_entry *e, size_t n);

bool catalog_prefixing(const struct catalog *c);
size_t catalog_nservers(const struct catalog *c);
const struct upstream_config *catalog_server_config(const struct catalog *c, size_t server);
bool catalog_server_ready(const struct catalog *c, size_t server);
/* Every upstream has been ready at least once since start. */
bool catalog_all_ready(const struct catalog *c);
/* The link that calls for `server` must use when it is shared (a single stdio child); NULL
 * when every session opens its own. */
struct link *catalog_shared_link(const struct catalog *c, size_t server);
/* The server's initialize result capabilities (NULL before ready, or while its link is
 * restarting). Any loop: what it returns stays whole until the caller's callback returns
 * (a copy published by the catalogue's loop, replaced through the epochs). */
const cJSON *catalog_server_caps(const struct catalog *c, size_t server);
/* MCP Apps: the ui:// resource a tool's definition names (_meta.ui.resourceUri, or the
 * older flat _meta["ui/resourceUri"]), or NULL. */
const char *catalog_tool_ui(const cJSON *tool);
/* Rewrite those in a tool definition of `server` to the URIs agents see (prefixing on). */
void catalog_expose_tool_ui(const struct catalog *c, size_t server, cJSON *tool);
/* The server declares the tasks capability for `what`: "tools/call" (tasks.requests.tools.call),
 * "list" or "cancel" (tasks.list, tasks.cancel). */
bool catalog_server_tasks(const struct catalog *c, size_t server, const char *what);
/* Merge the ready servers' capabilities into the gateway's own (listChanged always on). */
cJSON *catalog_capabilities(const struct catalog *c);
/* One server's capabilities in the same shape, as a session scoped to it (transparent
 * redirect) is offered them: only the lists it declares, its subscribe, logging, completions
 * and tasks; listChanged on (the gateway announces what policy changes). */
cJSON *catalog_server_capabilities(const struct catalog *c, size_t server);
/* The server's own serverInfo from its initialize result (NULL before ready); as above. */
const cJSON *catalog_server_info(const struct catalog *c, size_t server);
/* A server's catalogue changed (list_changed seen on any link of it): refresh that kind.
 * Any loop: from another than the catalogue's, the fetch starts on the catalogue's loop. */
void catalog_refresh(struct catalog *c, size_t server, enum catalog_kind kind);

/* One kind's list as one refresh made it: never changed once published. The catalogue's loop
 * replaces it whole and frees the one replaced once every loop has passed a turn
 * (base/epoch.h), so any loop may read it: taken once in a callback (its count and its
 * entries agree), nothing of it kept past the callback. Never NULL (empty before the first
 * list). */
struct catalog_list {
	unsigned long generation;       /* the catalogue's when it was made; its entries' */
	size_t n;
	const struct catalog_entry *e;  /* e[i].index == i */
};
const struct catalog_list *catalog_list(const struct catalog *c, enum catalog_kind kind);
const struct catalog_entry *catalog_list_at(const struct catalog_list *l, size_t i);
/* Lookup by exposed name (tools, prompts) or exposed URI (resources). */
const struct catalog_entry *catalog_list_find(const struct catalog_list *l, const char *exposed);
/* The same in the list in force now. */
const struct catalog_entry *catalog_find(const struct catalog *c, enum catalog_kind kind,
					 const char *exposed);
/* Route an exposed resource URI: sets *server and *uri (the upstream's URI; points into
 * `exposed` or catalog storage). -ENOENT when no upstream claims it. */
int catalog_route_uri(const struct catalog *c, const char *exposed, size_t *server,
		      const char **uri);
/* What the catalogue's own link declares to every upstream (sampling, elicitation): servers
 * list the tools that need them. A client declaring more (roots) gets its own view of the
 * servers that are not shared (mcp/session_view.h). */
extern const char *const catalog_declared_caps[];
/* The exposed form of a tool or prompt name from `server` (caller frees; NULL: no memory). */
char *catalog_expose_name(const struct catalog *c, size_t server, enum catalog_kind kind,
			  const char *name);
/* The exposed form of an upstream URI from `server` (caller frees). */
char *catalog_expose_uri(const struct catalog *c, size_t server, const char *uri);
/* Route an exposed prompt/tool name whether or not it is listed (used for completion refs). */
int catalog_route_name(const struct catalog *c, enum catalog_kind kind, const char *exposed,
		       size_t *server, const char **name);
/* notifications/<kind>/list_changed → its kind (tools, resources, prompts), or -1. */
int catalog_kind_of_list_changed(const char *method);
/* Bumped on every rebuild: policy views compiled against an older generation are stale. */
unsigned long catalog_generation(const struct catalog *c);

#endif
