/* redirect_in: requests that reached the gateway through transparent redirect. */
#include "mcp/transport/redirect_in.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "base/alloc.h"
#include "base/http_server.h"
#include "base/log.h"
#include "enforce/enforcer.h"
#include "enforce/guard.h"
#include "mcp/jsonrpc.h"
#include "mcp/session.h"
#include "mcp/transport/front_conn.h"

struct redirect_in {
	struct http_server *http;
	struct http_listener *l4, *l6;
	uint16_t port;
	struct guard *g;
};

int redirect_in_new(struct http_server *http, uint16_t port, struct redirect_in **out)
{
	struct redirect_in *ri = xcalloc(1, sizeof(*ri));

	ri->http = http;
	/* An ephemeral port free on 127.0.0.1 may be taken on ::1: try a few. */
	for (int tries = 0; tries < (port ? 1 : 20) && !ri->l6; tries++) {
		int p = 0;

		if (http_server_bind(http, "redirect listener", "127.0.0.1", port, &p, &ri->l4))
			break;
		if (http_server_bind(http, "redirect listener", "::1", p, &p, &ri->l6)) {
			http_server_unbind(http, ri->l4);
			ri->l4 = NULL;
		}
		ri->port = (uint16_t)p;
	}
	if (!ri->l4 || !ri->l6) {
		log_error("redirect listener: cannot bind 127.0.0.1:%u and [::1]:%u", port, port);
		free(ri);
		return -EADDRINUSE;
	}
	log_info("redirect listener on 127.0.0.1:%u and [::1]:%u", ri->port, ri->port);
	*out = ri;
	return 0;
}

void redirect_in_free(struct redirect_in *ri)
{
	if (!ri)
		return;
	http_server_unbind(ri->http, ri->l4);
	http_server_unbind(ri->http, ri->l6);
	free(ri);
}

uint16_t redirect_in_port(const struct redirect_in *ri) { return ri->port; }
void redirect_in_set_guard(struct redirect_in *ri, struct guard *g) { ri->g = g; }

static void addr_text(const struct warden_redirect *rv, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	char a[INET6_ADDRSTRLEN] = "?";

	if (enforcer_redirect_sockaddr(rv, &ss, &sl) < 0) {
		snprintf(buf, len, "?");
	} else if (ss.ss_family == AF_INET) {
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, a, sizeof(a));
		snprintf(buf, len, "%s:%u", a, ntohs(rv->port));
	} else {
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, a, sizeof(a));
		snprintf(buf, len, "[%s]:%u", a, ntohs(rv->port));
	}
}

static int refuse(struct http_req *req, int status, const char *reason, const char *msg)
{
	cJSON *e = jsonrpc_error(NULL, JSONRPC_INVALID_REQUEST, msg, NULL);
	char *text = jsonrpc_print(e);

	http_req_send_text(req, status, reason, "application/json", text);
	cJSON_free(text);
	cJSON_Delete(e);
	return -EPERM;
}

/* Where req's connection came from: looked up on its first request and kept with the
 * connection, so the requests after it make no system call. Which listener accepted it says
 * whether it came through the redirect one; then the kernel's word only: the caller lookup's
 * warden_conns slot (front_conn_origin: no system call), else the client socket's cookie
 * from front_conn's one sock_diag lookup, then warden_redirect. */
static enum conn_redirect_state conn_state(struct redirect_in *ri, struct http_req *req,
					   struct warden_redirect *rv)
{
	struct conn_redirect *cr = front_conn_redirect(req), local = { 0 };
	struct http_listener *l = http_conn_listener(http_req_conn(req));
	const struct conn_origin *o;

	if (!cr)
		cr = &local;
	if (cr->state == CONN_REDIRECT_UNKNOWN && l != ri->l4 && l != ri->l6)
		cr->state = CONN_REDIRECT_NO;
	if (cr->state == CONN_REDIRECT_UNKNOWN && (o = front_conn_origin(req)) && o->fast) {
		if (o->redirected && ri->g) {
			cr->state = CONN_REDIRECT_YES;
			cr->rv = o->orig;
		} else
			cr->state = CONN_REDIRECT_LOST;	/* connected here directly */
	}
	if (cr->state == CONN_REDIRECT_UNKNOWN) {
		if (ri->g && enforcer_redirect_lookup(guard_enforcer(ri->g), front_conn_cookie(req),
						      &cr->rv) == 0)
			cr->state = CONN_REDIRECT_YES;
		else
			cr->state = CONN_REDIRECT_LOST;
	}
	*rv = cr->rv;
	return cr->state;
}

int redirect_in_route(struct redirect_in *ri, struct http_req *req, const char *path,
		      struct redirect_route *out)
{
	struct warden_redirect rv;
	enum conn_redirect_state st;
	int rc;

	if (!ri)
		return 0;
	st = conn_state(ri, req, &rv);
	if (st == CONN_REDIRECT_NO)
		return 0;
	/* A reload leaves no guard for a moment; the route is asked of the current one. */
	if (st != CONN_REDIRECT_YES || !ri->g)
		return refuse(req, 421, "Misdirected Request", "this is the transparent-redirect "
			      "listener: only connections the kernel redirected are served here");
	addr_text(&rv, out->from, sizeof(out->from));
	/* Memory only: the upstreams' current addresses (re-resolved) and URL paths. */
	rc = guard_redirect_route(ri->g, &rv, path, &out->server);
	if (rc == -ENOTDIR)
		return refuse(req, 404, "Not Found", "no MCP endpoint here");
	if (rc < 0)
		return refuse(req, 421, "Misdirected Request",
			      "the original destination is no longer a protected MCP upstream");
	return 1;
}

void redirect_in_scope(const struct redirect_route *rr, struct session *s)
{
	if (!rr || !s)
		return;
	s->scope = rr->server;
	snprintf(s->redirected_from, sizeof(s->redirected_from), "%s", rr->from);
}

int redirect_in_session_ok(const struct redirect_route *rr, const struct session *s)
{
	if (!rr)
		return s->scope == SESSION_UNSCOPED;
	return s->scope == rr->server;
}
