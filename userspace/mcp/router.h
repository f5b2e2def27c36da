/* router: the MCP server the agents talk to — sessions, the method table, and what each
 * method names.
 *
 * The transport hands it each message of a session (it has authenticated the caller). A
 * request is looked up once in the method table and becomes a call (mcp/call.h): local
 * methods (initialize, ping, the lists — filtered by the caller's policy and paginated with
 * the gateway's own cursor) are answered here; the rest are routed to the upstream that owns
 * the named tool, prompt, resource or task (mcp/tasks.h; a tool's MCP Apps UI resource is
 * judged as that tool), pass the gate, and go out on the session's link (mcp/links.h). What upstreams send back towards clients is the relay's (mcp/relay.h).
 * Answers leave through the reply interface the transport implements (mcp/reply.h).
 */
#ifndef WARDEN_ROUTER_H
#define WARDEN_ROUTER_H

#include <stdbool.h>
#include <cjson/cJSON.h>
#include <event2/event.h>

struct config;
struct session;
struct reply;
struct stream;
struct jsonrpc_msg;
struct catalog;
struct gate;
struct key_identity;
struct method;

struct router;

/* gate: borrowed; it must outlive the router (calls settle their charges through it). The
 * router is in two parts (workers: N): a core on base, the first loop (the catalogue, its
 * shared stdio children, the readiness), and a half per loop (its sessions, their links, the
 * calls on them); router_new makes the core and the first loop's half. */
int router_new(struct event_base *base, const struct config *cfg, struct gate *gate,
	       struct router **out);
/* Another loop's half, sharing first's core: sessions made through it live on base, and
 * hear of a list's change there. A shared stdio child serves the first loop's sessions only
 * (a call from another loop to one is refused). Called on base's thread, with the other
 * loop's attachments made (upstream_http_init, the store's, the epochs'). */
int router_new_loop(struct router *first, struct event_base *base, struct router **out);
/* A half; the first one (router_new's) also ends the core: after every other loop's. */
void router_free(struct router *r);
/* The half's loop: 0 for router_new's, then 1, 2, ... in the order they were made (at most
 * SESSION_LOOPS_MAX: router_new_loop's -ENOSPC); the ids of its sessions say it
 * (mcp/session.h, session_id_loop). */
unsigned router_loop(const struct router *r);
struct catalog *router_catalog(struct router *r);
struct event_base *router_event_base(struct router *r);
struct gate *router_gate(struct router *r);
/* Something changed what keys see of a list (an approved tool): the gate recompiles and
 * every session is told with notifications/<kind>/list_changed. kind: enum catalog_kind. */
void router_lists_changed(struct router *r, int kind);
/* Ready to serve: every upstream has been initialised and listed once, or timeouts.startup_ms
 * has passed since the router started (upstreams that come later are announced with
 * list_changed). Until then an agent would see an empty or partial catalogue. */
bool router_ready(const struct router *r);
/* fn(arg) runs once when the router becomes ready (at once when it already is). */
void router_when_ready(struct router *r, void (*fn)(void *arg), void *arg);

/* The method table entry for a request's method (an "unknown" entry answers -32601). */
const struct method *router_method(const char *name);

/* initialize: negotiates, creates the session, returns the response (owned). On failure
 * *response holds the error to send and *s is NULL. */
void router_initialize(struct router *r, const struct jsonrpc_msg *m, const char *key_id,
		       struct session **s, cJSON **response);
struct session *router_session(struct router *r, const char *id);
/* DELETE, or the session's end for any other reason. */
void router_end_session(struct router *r, struct session *s);

/* A request (msg taken over; m its jsonrpc_classify, whose id and params are msg's members);
 * the answer goes to reply. who: the caller's key (NULL when authentication is off). */
void router_request(struct router *r, struct session *s, const struct key_identity *who,
		    cJSON *msg, const struct jsonrpc_msg *m, struct reply *reply);
/* Notifications and responses from the client (msg taken over): always accepted (202). */
void router_notification(struct router *r, struct session *s, cJSON *msg,
			 const struct jsonrpc_msg *m);
void router_response(struct router *r, struct session *s, cJSON *msg, const struct jsonrpc_msg *m);

/* 2026-07-28 (mcp/stateless.h): a session for one request, ended by router_end_later once
 * its answer is out (outside the callbacks that answered it). Its records carry no session
 * id. Errors as session_create's. */
int router_open_stateless(struct router *r, const char *version, const cJSON *caps,
			  const cJSON *info, const char *key_id, struct session **out);
void router_end_later(struct router *r, struct session *s);
/* 2026-07-28 tasks: the session that keeps key_id's tasks across its requests (opened with
 * caps when it has none; it idles out like any session). 0, or router_open_stateless's errno. */
int router_task_holder(struct router *r, const cJSON *caps, const char *key_id,
		       struct session **out);
void router_stream_open(struct router *r, struct session *s, struct stream *st);
void router_stream_closed(struct router *r, struct session *s, struct stream *st);

#endif
