/* transport: the one small interface behind which both upstream transports sit.
 *
 * A transport carries JSON-RPC messages to and from one upstream MCP server: a child process on
 * stdio (upstream_stdio) or one MCP session over Streamable HTTP (upstream_http). It knows
 * framing, processes, HTTP and sessions on the wire; it knows nothing of ids, catalogues or
 * policy (upstream.c, the MCP client on top, owns those). Everything runs on the daemon's
 * event loop and never blocks.
 */
#ifndef WARDEN_TRANSPORT_H
#define WARDEN_TRANSPORT_H

#include <stdint.h>
#include <cjson/cJSON.h>
#include <event2/event.h>

struct upstream_config;
struct transport;

struct transport_cb {
	/* A message from the upstream (response, request or notification). `related` is the id
	 * of the request whose HTTP response stream carried a request or notification, NULL when
	 * unknown (stdio, the GET stream) and for a response (it names its own). The callee owns
	 * msg. */
	void (*on_message)(void *arg, cJSON *msg, const cJSON *related);
	/* A request sent with transport_send() could not be delivered or answered (connect
	 * refused, HTTP error status, timeout, child gone). `id` is the request's id; err a
	 * negative errno (-ETIMEDOUT, -ECONNREFUSED, -EPROTO, ...); why a short text for the
	 * JSON-RPC error the caller builds. Never called for notifications or responses. */
	void (*on_send_error)(void *arg, const cJSON *id, int err, const char *why);
	/* The transport went down: the child exited (err -ECHILD, why "exited with status 1"),
	 * or the HTTP session ended (err -ESTALE on 404: the session must be re-initialised).
	 * Requests still in flight get no further callback: the caller fails them. */
	void (*on_down)(void *arg, int err, const char *why);
	void *arg;
};

struct transport_ops {
	/* Begin: spawn the child (stdio) or nothing yet (http connects on first send). */
	int (*start)(struct transport *t);
	/* Queue one message. Does not take ownership of msg. For http: an `initialize` request's
	 * answer sets the session id; sending notifications/initialized opens the GET stream. */
	int (*send)(struct transport *t, const cJSON *msg);
	/* Optional: send, and take msg (freed now or once sent): the http transport then sends
	 * a long Raw text in it (a tools/call's arguments as the agent wrote them,
	 * mcp/jsonrpc_splice.h) from where it lies instead of printing it into a copy. */
	int (*give)(struct transport *t, cJSON *msg);
	/* Optional: send the request {"jsonrpc":"2.0","id":id,"method":method,"params":params}
	 * (params NULL: none) and take params, its envelope written around params' print with
	 * no tree built for it (issue 9: one a call). Without it the caller builds the tree and
	 * gives it. */
	int (*request)(struct transport *t, uint64_t id, const char *method, cJSON *params);
	/* Stop and free: close stdin / DELETE the session, then reap or abandon in the
	 * background. No callback fires after destroy returns. */
	void (*destroy)(struct transport *t);
};

struct transport {
	const struct transport_ops *ops;
	const struct upstream_config *cfg;
	struct event_base *base;
	struct transport_cb cb;
};

static inline int transport_start(struct transport *t) { return t->ops->start(t); }
static inline int transport_send(struct transport *t, const cJSON *msg)
{
	return t->ops->send(t, msg);
}
/* Send msg and free it (now, or once sent where the transport can keep it). */
static inline int transport_give(struct transport *t, cJSON *msg)
{
	int rc;

	if (t->ops->give)
		return t->ops->give(t, msg);
	rc = t->ops->send(t, msg);
	cJSON_Delete(msg);
	return rc;
}
static inline void transport_destroy(struct transport *t)
{
	if (t)
		t->ops->destroy(t);
}

#endif
