/* admin: the admin plane — a separate HTTP listener with its own bearer token.
 *
 * Never on the agent-facing port, loopback by default ("admin": {"listen", "token"}). Every
 * request carries Authorization: Bearer <admin token>; the token is compared in constant time
 * (digests, so not even its length leaks) and anything else is 401. JSON API (docs/admin-api.md):
 * keys (create, list, show, update, revoke, delete), teams, usage per key and team with
 * resets, and GET /metrics (Prometheus text). A change is applied to the running keystore at
 * once, persisted through the store, and acknowledged only once the store has committed it.
 * Keys and teams from the config file are read-only here (409). Every action is an "admin"
 * record on the record stream; keys never appear in it, only ids.
 *
 * Lifetime: the admin reaches the keystore, budgets and store through the router's gate, so
 * it is freed (or detached with admin_reconfigure) before its router; requests still waiting
 * for the store then complete without an answer (their clients see the connection close).
 */
#ifndef WARDEN_ADMIN_H
#define WARDEN_ADMIN_H

#include <event2/event.h>

struct admin;
struct config;
struct router;

/* cfg->admin_host NULL: no admin plane, *out = NULL and 0. Returns 0, -ENOMEM,
 * -EADDRNOTAVAIL (cannot listen) or -EINVAL (no token). */
int admin_new(struct event_base *base, const struct config *cfg, struct router *r,
	      struct admin **out);
void admin_free(struct admin *a);
/* Reload with the admin address unchanged: the listener (and its port) stays. Call with r
 * NULL before the old router is freed (requests waiting for its store complete without an
 * answer; new ones get 503 meanwhile), then with the new config and router. A new token
 * applies from then on. Returns 0, or -ENOMEM/-EIO (then requests keep getting 503). */
int admin_reconfigure(struct admin *a, const struct config *cfg, struct router *r);
/* The bound port (the config may ask for port 0). */
int admin_port(const struct admin *a);

#endif
