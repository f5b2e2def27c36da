/* redirect_in: the agent listener's second door, for transparent redirect
 * (docs/enforcement.md#transparent-redirect). The kernel sends an enrolled agent's connect to
 * a plain-HTTP MCP upstream here (127.0.0.1:P and [::1]:P, bound on the front's own
 * base/http_server); on a connection's first request this finds, from the kernel, where the
 * agent was going (warden_conns, else the client socket's cookie from front_conn's sock_diag
 * lookup, then warden_redirect) and keeps it with the connection (front_conn_redirect); on
 * every request, which upstream that is (the guard, in memory: address, port and the URL path
 * the agent used). The front then serves the request as for any client, with the session
 * scoped to that upstream (mcp/scope.h).
 */
#ifndef WARDEN_REDIRECT_IN_H
#define WARDEN_REDIRECT_IN_H

#include <stddef.h>
#include <stdint.h>

struct http_server;
struct http_req;
struct guard;
struct session;

struct redirect_in;

struct redirect_route {
	size_t server;		/* the upstream (index into the config's upstreams) */
	char from[64];		/* the original destination, "10.0.0.5:8080" / "[2001:db8::5]:80" */
};

/* Bind http to 127.0.0.1:port and [::1]:port (port 0: a free one, the same on both). */
int redirect_in_new(struct http_server *http, uint16_t port, struct redirect_in **out);
/* Unbinds (the connections are the server's). NULL is a no-op. */
void redirect_in_free(struct redirect_in *ri);
uint16_t redirect_in_port(const struct redirect_in *ri);
/* The guard that knows the upstreams' addresses (replaced on a reload; NULL: none). */
void redirect_in_set_guard(struct redirect_in *ri, struct guard *g);
/* 0: req did not come through the redirect listener. 1: it did, *out says for which upstream.
 * <0: it did but cannot be served (the reply has been sent: a JSON-RPC error saying why). */
int redirect_in_route(struct redirect_in *ri, struct http_req *req, const char *path,
		      struct redirect_route *out);
/* A session initialised through the redirect: scope it. */
void redirect_in_scope(const struct redirect_route *rr, struct session *s);
/* May a request routed as rr (NULL: not redirected) use session s? A redirected connection
 * uses only sessions scoped to its upstream; others do not use scoped sessions. */
int redirect_in_session_ok(const struct redirect_route *rr, const struct session *s);

#endif
