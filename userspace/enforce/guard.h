/* guard: the daemon's side of kernel enforcement.
 *
 * From the config's "enforcement" section: load or re-adopt the pinned programs, apply
 * enrolments, exemptions and allowlists, make the sidecar's own endpoints reachable, protect
 * every HTTP upstream's address (resolved off the event loop, refreshed), exempt the daemon's
 * own cgroup, and turn every kernel denial into a record on stdout. When enforcement is not
 * configured or cannot run (not root, no BPF), the gateway runs on and says so loudly.
 */
#ifndef WARDEN_GUARD_H
#define WARDEN_GUARD_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "warden_types.h"

struct config;
struct config_errors;
struct guard;
struct enforcer;

/* Validate the section only (--check-config, reload checks). */
int guard_check(const struct config *cfg, struct config_errors *errs);
/* 0 with *out (NULL when enforcement is off by config), or -errno when it is configured but
 * could not start — the caller keeps serving and the failure is logged as an error. */
int guard_start(struct event_base *base, const struct config *cfg, int sidecar_port,
		struct guard **out);
/* Stops the daemon's part; the pinned programs stay attached (fail closed). */
void guard_stop(struct guard *g);
struct enforcer *guard_enforcer(struct guard *g);

/* ---- transparent redirect (docs/enforcement.md#transparent-redirect) ---------------------- */
/* Does any enrolment ask for redirect? *port: the configured listener port (0: ephemeral). */
bool guard_redirect_wanted(const struct guard *g, uint16_t *port);
/* The redirect listener is up on 127.0.0.1:port and [::1]:port: start redirecting (0: stop).
 * Call it after every guard_start: the pinned port is written only when it changes, so a
 * reload that keeps the listener never stops redirecting. */
int guard_set_redirect_port(struct guard *g, uint16_t port);
/* The upstream (index into the config's upstreams) a redirected connection was meant for:
 * the plain-HTTP upstream whose current addresses hold the original destination and whose
 * URL path is path. -ENOENT: no such upstream address; -ENOTDIR: the address is an upstream's
 * but no upstream there has this path. */
int guard_redirect_route(struct guard *g, const struct warden_redirect *rv, const char *path,
			 size_t *server);

#endif
