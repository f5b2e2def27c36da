/* upstream_stdio: an MCP server as a child process, newline-delimited JSON-RPC over pipes.
 *
 * Spawned only from the config (argv, envp, cwd), never from request data. Non-blocking pipes
 * on the event loop; stderr lines go to the operational log tagged with the server name;
 * exit is reaped and reported through on_down. Restart policy belongs to the caller.
 *
 * Behaviour behind the transport ops (all on the thread of the transport's event base; each
 * child's end is watched by a pidfd on that base, so loops on several threads each have their
 * own children; upstream_stdio_shutdown() ends the calling thread's):
 *   start    fork+exec argv[0] (looked up in envp's PATH, else the daemon's, when it has no
 *            '/') with exactly cfg->envp (NULL: empty) in cfg->cwd, in its own process group,
 *            only fds 0-2 open, SIGTERM on the daemon's death. -ENOENT, -EACCES, -ENOEXEC ...
 *            when it cannot run; -EALREADY while a child runs. Starting again after on_down
 *            restarts it.
 *   send     -ENOTCONN without a running child; -ENOBUFS beyond 64 MiB queued.
 *   messages stdout lines of at most 16 MiB; other lines are logged and dropped.
 *   destroy  closes stdin, SIGTERMs the group after 2 s, SIGKILLs it 2 s later; reaps in
 *            the background.
 * The first upstream_stdio_new() ignores SIGPIPE if it is at its default, so a write to an
 * exited child fails with EPIPE instead of killing the daemon.
 */
#ifndef WARDEN_UPSTREAM_STDIO_H
#define WARDEN_UPSTREAM_STDIO_H

#include "mcp/transport/transport.h"

/* Create (does not spawn until transport_start). Returns 0 or -errno. */
int upstream_stdio_new(struct event_base *base, const struct upstream_config *cfg,
		       const struct transport_cb *cb, struct transport **out);

/* At process exit, after the loop has stopped and before the event base is freed: SIGKILL
 * and reap (blocking) every child still running, including those of destroyed transports in
 * their shutdown grace period, and release the events they hold. Live transports stay valid
 * but stopped (no callback fires); destroy them as usual. Never call it from a callback. */
void upstream_stdio_shutdown(void);

#endif
