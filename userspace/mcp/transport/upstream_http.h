/* upstream_http: one MCP session with an upstream over Streamable HTTP, on the daemon's event
 * loop (mcp/transport/http_exchange: the project's keep-alive HTTP/1.1 client for http:// to an
 * IP address, libcurl for https:// and host names).
 *
 * POSTs every message (Accept: application/json, text/event-stream), reads JSON or SSE answers
 * (priming events, retry, reconnect with GET + Last-Event-ID), keeps the Mcp-Session-Id and
 * MCP-Protocol-Version, opens the GET stream after initialisation, reports 404 as a lost
 * session, sends DELETE on destroy. Connections are pooled per upstream address and reused.
 */
#ifndef WARDEN_UPSTREAM_HTTP_H
#define WARDEN_UPSTREAM_HTTP_H

#include "mcp/transport/transport.h"

/* The HTTP clients (own and curl multi) of the calling thread's loop, bound to base; call once
 * a loop thread at its start, and _shutdown on that thread at its end. */
int upstream_http_init(struct event_base *base);
void upstream_http_shutdown(void);

int upstream_http_new(struct event_base *base, const struct upstream_config *cfg,
		      const struct transport_cb *cb, struct transport **out);

/* The session id the upstream assigned in its initialize answer, and the protocol version it
 * negotiated; NULL before that, after the session expired, or for a non-HTTP transport. For
 * diagnostics and tests; a string is valid until the event loop next runs. */
const char *upstream_http_session_id(const struct transport *t);
const char *upstream_http_protocol_version(const struct transport *t);

#endif
