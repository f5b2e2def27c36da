/* upstream_stdio: an MCP server as a child process, newline-delimited JSON-RPC over pipes.
 *
 * Spawned only from the config (argv, envp, cwd), never from request data. Non-blocking pipes
 * on the event loop; stderr lines go to the operational log tagged with the server name;
 * exit is reaped and reported through on_down. Restart policy belongs to the caller.
 */
#ifndef WARDEN_UPSTREAM_STDIO_H
#define WARDEN_UPSTREAM_STDIO_H

#include "transport.h"

/* Create (does not spawn until transport_start). Returns 0 or -errno. */
int upstream_stdio_new(struct event_base *base, const struct upstream_config *cfg,
		       const struct transport_cb *cb, struct transport **out);

#endif
