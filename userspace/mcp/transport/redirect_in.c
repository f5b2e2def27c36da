/* redirect_in: requests that reached the gateway through transparent redirect. */
#include "mcp/transport/redirect_in.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <event2/bufferevent.h>
#include <event2/http.h>

#include "base/alloc.h"
#include "base/http_reply.h"
#include "base/log.h"
#include "enforce/enforcer.h"
#include "enforce/guard.h"
#include "mcp/jsonrpc.h"
#include "mcp/session.h"
#include "mcp/transport/conn_deadline.h"

struct redirect_in {
	struct evhttp *http;
	struct evhttp_bound_socket *b4, *b6;
	uint16_t port;
	struct guard *g;
};

static struct evhttp_bound_socket *bind_one(struct evhttp *http, const char *addr, uint16_t port,
					    uint16_t *bound)
{
	struct evhttp_bound_socket *b = evhttp_bind_socket_with_handle(http, addr, port);
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (!b)
		return NULL;
	if (getsockname(evhttp_bound_socket_get_fd(b), (struct sockaddr *)&ss, &len) == 0)
		*bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
						       : ((struct sockaddr_in *)&ss)->sin_port);
	return b;
}

int redirect_in_new(struct evhttp *http, uint16_t port, struct redirect_in **out)
{
	struct redirect_in *ri = xcalloc(1, sizeof(*ri));

	ri->http = http;
	/* An ephemeral port free on 127.0.0.1 may be taken on ::1: try a few. */
	for (int tries = 0; tries < (port ? 1 : 20) && !ri->b6; tries++) {
		uint16_t p = 0;

		ri->b4 = bind_one(http, "127.0.0.1", port, &p);
		if (!ri->b4)
			break;
		ri->b6 = bind_one(http, "::1", p, &p);
		if (!ri->b6) {
			evhttp_del_accept_socket(http, ri->b4);
			ri->b4 = NULL;
		}
		ri->port = p;
	}
	if (!ri->b4 || !ri->b6) {
		log_error("redirect listener: cannot bind 127.0.0.1:%u and [::1]:%u: %s", port,
			  port, strerror(errno ? errno : EADDRINUSE));
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
	evhttp_del_accept_socket(ri->http, ri->b4);
	evhttp_del_accept_socket(ri->http, ri->b6);
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

static int refuse(struct evhttp_request *req, int status, const char *reason, const char *msg)
{
	cJSON *e = jsonrpc_error(NULL, JSONRPC_INVALID_REQUEST, msg, NULL);
	char *text = jsonrpc_print(e);

	http_send_text(req, status, reason, "application/json", text);
	cJSON_free(text);
	cJSON_Delete(e);
	return -EPERM;
}

/* Where req's connection came from: looked up on its first request and kept with the
 * connection, so the requests after it make no system call. The kernel's word only: the
 * caller lookup's warden_conns slot (conn_deadline_origin: no system call), else getsockname,
 * the client socket's cookie from conn_deadline's one sock_diag lookup, then warden_redirect.
 * A connection conn_deadline does not track (none should) is looked up every time. */
static enum conn_redirect_state conn_state(struct redirect_in *ri, struct conn_deadline *cd,
					   struct evhttp_request *req, struct warden_redirect *rv)
{
	struct conn_redirect *cr = conn_deadline_redirect(cd, req), local = { 0 };
	const struct conn_origin *o;
	struct bufferevent *bev;
	struct sockaddr_storage me;
	socklen_t ml = sizeof(me);
	int fd;

	if (!cr)
		cr = &local;
	if (cr->state == CONN_REDIRECT_UNKNOWN && (o = conn_deadline_origin(cd, req)) && o->fast) {
		if (o->local_port != ri->port)
			cr->state = CONN_REDIRECT_NO;
		else if (o->redirected && ri->g) {
			cr->state = CONN_REDIRECT_YES;
			cr->rv = o->orig;
		} else
			cr->state = CONN_REDIRECT_LOST;	/* connected here directly */
	}
	if (cr->state == CONN_REDIRECT_UNKNOWN) {
		bev = evhttp_connection_get_bufferevent(evhttp_request_get_connection(req));
		fd = bev ? bufferevent_getfd(bev) : -1;
		if (fd < 0 || getsockname(fd, (struct sockaddr *)&me, &ml) < 0)
			return CONN_REDIRECT_NO;	/* not kept: asked again next time */
		if (ntohs(me.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&me)->sin6_port
						   : ((struct sockaddr_in *)&me)->sin_port) != ri->port)
			cr->state = CONN_REDIRECT_NO;
		else if (ri->g && enforcer_redirect_lookup(guard_enforcer(ri->g),
							   conn_deadline_cookie(cd, req), &cr->rv) == 0)
			cr->state = CONN_REDIRECT_YES;
		else
			cr->state = CONN_REDIRECT_LOST;
	}
	*rv = cr->rv;
	return cr->state;
}

int redirect_in_route(struct redirect_in *ri, struct conn_deadline *cd,
		      struct evhttp_request *req, const char *path, struct redirect_route *out)
{
	struct warden_redirect rv;
	enum conn_redirect_state st;
	int rc;

	if (!ri)
		return 0;
	st = conn_state(ri, cd, req, &rv);
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
