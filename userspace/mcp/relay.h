/* relay: what upstreams send towards clients, routed to the right one.
 *
 * During a call an upstream may send progress, log messages and resource updates, and ask the
 * client something (sampling/createMessage, elicitation/create, roots/list). Each goes to the
 * client of the call it belongs to — on that call's reply while it runs, else on the session's
 * stream — under the gateway's own request ids, and the client's answer goes back to the link
 * that asked. Nothing here decides policy; it only keeps one agent's traffic away from another.
 */
#ifndef WARDEN_RELAY_H
#define WARDEN_RELAY_H

#include <cjson/cJSON.h>

#include "base/obj_type.h"

struct catalog;
struct jsonrpc_msg;
struct link;
struct link_ops;
struct links;
struct session;
struct session_table;

struct relay {
	struct catalog *cat;
	struct session_table *sessions;
	struct links *links;
};

/* Callbacks of a session's own links (their owner is the session's struct session_link). */
extern const struct link_ops relay_link_ops;

/* What a shared stdio child sends during a call (the catalogue owns its link). */
void relay_shared_request(struct relay *rl, struct link *l, cJSON *msg, enum obj_type *ctx);
void relay_shared_notification(struct relay *rl, struct link *l, cJSON *msg, enum obj_type *ctx);

/* The client answered a request relayed to it (msg taken over). */
void relay_response(struct relay *rl, struct session *s, cJSON *msg, const struct jsonrpc_msg *m);
/* The session ends: requests relayed to it and unanswered are refused to their upstream. */
void relay_session_end(struct relay *rl, struct session *s);

#endif
