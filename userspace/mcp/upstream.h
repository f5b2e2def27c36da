/* upstream: one MCP client session ("link") with one upstream server, over a transport.
 *
 * A link performs the initialize handshake with the capabilities it is given, numbers its own
 * requests (upstream ids never collide with downstream ones), remaps progress tokens, times
 * requests out (sending notifications/cancelled), answers the upstream's pings, and fails every
 * request in flight with an error naming the server when the transport goes down. Requests
 * made before the handshake completes are queued. The owner routes what the server sends on
 * its own: server-to-client requests and notifications arrive with the context (`ctx`) of
 * the request they relate to when that can be known.
 */
#ifndef WARDEN_UPSTREAM_H
#define WARDEN_UPSTREAM_H

#include <stdbool.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include <event2/event.h>

#include "base/obj_type.h"

struct upstream_config;
struct link;

/* Error codes for failures the gateway reports on an upstream's behalf (docs/policy.md). */
#define UPSTREAM_ERR_FAILED  (-32010)
#define UPSTREAM_ERR_TIMEOUT (-32011)

/* The final answer to link_call: a whole JSON-RPC response (result or error) whose id is the
 * upstream's; owned by the callee. Called exactly once unless the call is cancelled. */
typedef void (*link_reply_fn)(enum obj_type *ctx, cJSON *response);

struct link_ops {
	/* A request from the server (sampling/createMessage, elicitation/create, roots/list).
	 * Answer it with link_respond(). `ctx` is the related link_call context or NULL. */
	void (*on_request)(void *owner, struct link *l, cJSON *msg, enum obj_type *ctx);
	/* A notification (progress tokens already restored to the caller's). */
	void (*on_notification)(void *owner, struct link *l, cJSON *msg, enum obj_type *ctx);
	/* The handshake completed (ready) — or the link went down (err < 0). */
	void (*on_state)(void *owner, struct link *l, int err, const char *why);
	/* Keep the initialize result for link_init_result (the catalogue's control links read
	 * the server's capabilities from it). A session's links do not: ~0.5 KB each, unread. */
	bool keep_init_result;
};

/* Create and start a link: spawns/connects the transport and sends initialize with
 * `client_caps` (copied). Returns 0 or -errno. */
int link_open(struct event_base *base, const struct upstream_config *cfg, const cJSON *client_caps,
	      const struct link_ops *ops, void *owner, struct link **out);
/* Stop it: pending calls are failed first (their reply fns run), then the transport is
 * destroyed (DELETE / stdin close). */
void link_close(struct link *l);

/* Send a request; the reply arrives through fn(ctx, response). params taken over.
 * timeout_ms <= 0 uses the config's request timeout. *handle identifies it for cancel. */
int link_call(struct link *l, const char *method, cJSON *params, int timeout_ms,
	      link_reply_fn fn, enum obj_type *ctx, uint64_t *handle);
/* Forget a call (its fn will not run) and tell the server with notifications/cancelled. */
void link_cancel(struct link *l, uint64_t handle, const char *reason);
/* Send a notification to the server. params taken over. */
int link_notify(struct link *l, const char *method, cJSON *params);
/* Answer a server request: exactly one of result / error (taken over). */
int link_respond(struct link *l, const cJSON *server_id, cJSON *result, cJSON *error);

/* Hand the link to another owner (mcp/links.c pools idle links of 2026-07-28 requests). */
void link_rebind(struct link *l, const struct link_ops *ops, void *owner);
bool link_ready(const struct link *l);
bool link_down(const struct link *l);
const char *link_server(const struct link *l);
/* The initialize result (protocolVersion, capabilities, serverInfo); NULL before ready, or
 * when the link's ops do not keep it. */
const cJSON *link_init_result(const struct link *l);
/* Number of calls in flight. */
unsigned link_inflight(const struct link *l);
/* Each call in flight, oldest first: fn(arg, its context). */
void link_foreach_call(const struct link *l, void (*fn)(void *arg, enum obj_type *ctx), void *arg);

#endif
