/* router: what each MCP message means and where it goes.
 *
 * Handles initialize and ping locally, answers the list methods from the catalogue (filtered
 * by the caller's policy, paginated with the gateway's own cursor), and sends calls
 * (tools/call, resources/read|subscribe|unsubscribe, prompts/get, completion/complete,
 * logging/setLevel) to the right upstream on the session's link, remapping ids, progress
 * tokens and cancellations, and relaying what the upstream sends back during a call
 * (progress, logging, sampling/elicitation/roots requests) to the right client.
 */
#ifndef WARDEN_ROUTER_H
#define WARDEN_ROUTER_H

#include <stdbool.h>
#include <cjson/cJSON.h>
#include <event2/event.h>

struct config;
struct config_errors;
struct session;
struct front_reply;
struct front_stream;
struct jsonrpc_msg;
struct catalog;
struct gate;
struct key_identity;

struct router;

/* Builds the gate too (keys, policies, budgets, store); config errors go to errs. */
int router_new(struct event_base *base, const struct config *cfg, struct router **out,
	       struct config_errors *errs);
void router_free(struct router *r);
struct catalog *router_catalog(struct router *r);
/* Ready to serve: every upstream has been initialised and listed once, or timeouts.startup_ms
 * has passed since the router started (upstreams that come later are announced with
 * list_changed). Until then an agent would see an empty or partial catalogue. */
bool router_ready(const struct router *r);
/* fn(arg) runs once when the router becomes ready (at once when it already is). */
void router_when_ready(struct router *r, void (*fn)(void *arg), void *arg);
struct gate *router_gate(struct router *r);

/* initialize: negotiates, creates the session, returns the response (owned). On failure
 * *response holds the error to send and *s is NULL. */
void router_initialize(struct router *r, const struct jsonrpc_msg *m, const char *key_id,
		       struct session **s, cJSON **response);
struct session *router_session(struct router *r, const char *id);
/* DELETE, or the session's end for any other reason. */
void router_end_session(struct router *r, struct session *s);

/* A request (msg taken over); the answer goes to reply. who: the caller's key (NULL when
 * authentication is off). */
void router_request(struct router *r, struct session *s, const struct key_identity *who,
		    cJSON *msg, const struct jsonrpc_msg *m, struct front_reply *reply);
/* Notifications and responses from the client (msg taken over): always accepted (202). */
void router_notification(struct router *r, struct session *s, cJSON *msg,
			 const struct jsonrpc_msg *m);
void router_response(struct router *r, struct session *s, cJSON *msg, const struct jsonrpc_msg *m);

void router_stream_open(struct router *r, struct session *s, struct front_stream *st);
void router_stream_closed(struct router *r, struct session *s, struct front_stream *st);

#endif
