/* upstream_sse: one MCP session with an upstream over the legacy HTTP+SSE transport
 * (2024-11-05): a GET event stream whose `endpoint` event names the POST URL; everything the
 * server says arrives on the stream. Runs on the HTTP clients that upstream_http_init set up.
 * A lost stream reports the transport down (the link fails what is pending; the catalogue
 * reconnects with backoff).
 */
#ifndef WARDEN_UPSTREAM_SSE_H
#define WARDEN_UPSTREAM_SSE_H

#include "mcp/transport/transport.h"

int upstream_sse_new(struct event_base *base, const struct upstream_config *cfg,
		     const struct transport_cb *cb, struct transport **out);

#endif
