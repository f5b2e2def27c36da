/* http_server: HTTP/1.1 on the event loop, for a listener that speaks JSON over it (the agent
 * listener: MCP Streamable HTTP and the LLM route).
 *
 * Owns the listening sockets and the connections: it reads a request whole (base/http_parse,
 * strict), hands it to the request hook, and writes the answer straight to the socket when
 * the answer is given (one writev; only what the socket does not take waits for a write
 * event). One request at a time per connection: a pipelined one waits in the input until the
 * one before is answered. A connection's read interest stays registered for its whole life,
 * so a request costs no epoll_ctl, and a client that leaves while its request is served is
 * seen at once (the request's gone hook).
 *
 * Limits: the head within max_header bytes (431), the body within max_body (413, said before
 * the body is read when Content-Length says so), a whole request within timeout_ms of its
 * first byte and an idle connection closed after timeout_ms; an answer the client does not
 * read closes the connection after timeout_ms without progress. What the server refuses
 * itself (400 malformed, 413, 431, 417, 501 an unknown method) is answered with a JSON-RPC
 * error body and the connection closed.
 *
 * Loop thread only; a connection moves to another loop's server only through
 * http_req_handoff.
 */
#ifndef WARDEN_HTTP_SERVER_H
#define WARDEN_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

struct event_base;
struct http_server;
struct http_listener;
struct http_conn;
struct http_req;

enum http_method {
	HTTP_GET = 1 << 0,
	HTTP_POST = 1 << 1,
	HTTP_HEAD = 1 << 2,
	HTTP_PUT = 1 << 3,
	HTTP_DELETE = 1 << 4,
	HTTP_OPTIONS = 1 << 5,
	HTTP_PATCH = 1 << 6,
};

struct http_server_limits {
	size_t max_body;        /* bytes of a request body */
	size_t max_header;      /* bytes of a request's start line and headers */
	int timeout_ms;         /* a whole request, an idle connection, a stalled answer */
};

struct http_server_hooks {
	/* A whole request: answer it now or later (http_req_send, http_req_stream_*). */
	void (*request)(void *arg, struct http_req *req);
	/* A connection was accepted: 0 to serve it; otherwise it is closed at once (the hook
	 * may have written a refusal with http_conn_refuse). May be NULL. */
	int (*accept)(void *arg, struct http_conn *c);
	/* A connection accept admitted is closing: let go of what accept attached. May be NULL. */
	void (*close)(void *arg, struct http_conn *c);
	/* The server refused a request itself with this status (for metrics). May be NULL. */
	void (*refused)(void *arg, int status);
};

int http_server_new(struct event_base *base, const struct http_server_hooks *hooks, void *arg,
		    struct http_server **out);
/* Closes every connection (gone hooks run for requests being served) and listener. */
void http_server_free(struct http_server *s);
/* For the requests that start from now on. */
void http_server_set_limits(struct http_server *s, const struct http_server_limits *l);

/* Listen on host:port (host resolved synchronously: call at start-up or reload only; the
 * first address it resolves to). *bound: the port bound (port 0 asks for a free one). 0 or
 * -errno, logged with what. */
int http_server_bind(struct http_server *s, const char *what, const char *host, int port,
		     int *bound, struct http_listener **out);
/* The same with SO_REUSEPORT: the servers of other loops bind the same address and port
 * (workers: N) and the kernel spreads the connections among them. Only processes of the
 * same effective user may bind it too (the kernel's rule). */
int http_server_bind_shared(struct http_server *s, const char *what, const char *host,
			    int port, int *bound, struct http_listener **out);
/* Serve connections accepted on fd, a listening socket the caller made (a unix socket);
 * the server owns fd from then on, also on failure. */
int http_server_adopt(struct http_server *s, int fd, struct http_listener **out);
/* Stop listening (connections it accepted go on). NULL is a no-op. */
void http_server_unbind(struct http_server *s, struct http_listener *l);
int http_listener_fd(const struct http_listener *l);
/* The address it is bound to (family AF_UNSPEC when unknown). */
const struct sockaddr_storage *http_listener_addr(const struct http_listener *l);

/* --- a connection -------------------------------------------------------------------- */

int http_conn_fd(const struct http_conn *c);
/* The peer's address as accept reported it (a unix socket's has family AF_UNIX). */
const struct sockaddr *http_conn_peer(const struct http_conn *c, socklen_t *len);
/* The peer's address as text ("127.0.0.1", "::1"; "" on a unix socket) and port. */
const char *http_conn_peer_text(const struct http_conn *c, uint16_t *port);
struct http_listener *http_conn_listener(const struct http_conn *c);
/* The address of the listener that accepted it (family AF_UNSPEC when unknown); it stays with
 * a connection handed to another loop, whose listener is NULL. */
const struct sockaddr_storage *http_conn_local(const struct http_conn *c);
/* In the accept hook: the connection was admitted by another loop's server and handed over
 * (http_req_handoff), not accepted here. */
bool http_conn_handed(const struct http_conn *c);
/* What the accept hook attached. */
void http_conn_set_data(struct http_conn *c, void *data);
void *http_conn_data(const struct http_conn *c);
/* From the accept hook: write a fixed answer (the socket is new and empty: it does not
 * block) before the connection is closed. */
void http_conn_refuse(struct http_conn *c, const char *bytes, size_t len);

/* --- a request ----------------------------------------------------------------------- */

/* A method the server does not know it answers itself (501): hooks never see one. */
enum http_method http_req_method(const struct http_req *r);
const char *http_req_target(const struct http_req *r);   /* as sent: "/mcp?x=1" */
/* The target's path, without query ("/mcp"); NULL when the target is not a path. */
const char *http_req_path(const struct http_req *r);
/* The first header called name (case-insensitive), or NULL. */
const char *http_req_header(const struct http_req *r, const char *name);
size_t http_req_nheaders(const struct http_req *r);
/* Header i's name and value; returns the name's length. */
size_t http_req_header_at(const struct http_req *r, size_t i, const char **name,
			  const char **value);
/* The body, NUL-terminated (not counted in *len). Valid until the answer ends. */
const char *http_req_body(const struct http_req *r, size_t *len);
struct http_conn *http_req_conn(const struct http_req *r);

/* From the request hook, before anything of an answer (workers: N): the connection moves to
 * server `to`, another loop's, with this request and whatever was read after it. Once the
 * hook has returned, this server lets go of it (its close hook runs) and `to` takes it on its
 * own loop: its accept hook admits it as a new connection (a refusal closes it), then its
 * request hook serves the same request, and the connection stays there. r is not this
 * server's any more. 0, or -EBUSY (an answer was started, or the connection is failing:
 * nothing moved). */
int http_req_handoff(struct http_req *r, struct http_server *to);

/* An answer's header (replacing one of the same name set before). Before the answer starts. */
void http_req_set_header(struct http_req *r, const char *name, const char *value);
/* The whole answer: status, reason (NULL: the standard one), body (NULL: none). The request
 * is done: r must not be used again. */
void http_req_send(struct http_req *r, int status, const char *reason, const char *ctype,
		   const void *body, size_t len);
/* The same with the body in nbody pieces (at most HTTP_SENDV_MAX; none: no body), written
 * with the head in one system call: a body printed around text kept elsewhere (jsonw's
 * holes) leaves without being copied together first. What the socket does not take at once
 * is copied before this returns. */
#define HTTP_SENDV_MAX 9
void http_req_sendv(struct http_req *r, int status, const char *reason, const char *ctype,
		    const struct iovec *body, int nbody);
/* The same with a NUL-terminated text (NULL: no body). */
static inline void http_req_send_text(struct http_req *r, int status, const char *reason,
				      const char *ctype, const char *text)
{
	http_req_send(r, status, reason, ctype, text, text ? __builtin_strlen(text) : 0);
}
/* An answer in pieces (chunked; close-delimited to an HTTP/1.0 client): start, write, end.
 * write returns 0 or -EPIPE once the client has gone. end finishes the request. */
void http_req_stream_start(struct http_req *r, int status, const char *reason);
int http_req_stream_write(struct http_req *r, const void *data, size_t len);
/* The same with the piece in nbody parts (at most HTTP_SENDV_MAX): one chunk, one sendmsg;
 * -EINVAL for more. */
int http_req_stream_writev(struct http_req *r, const struct iovec *data, int nbody);
void http_req_stream_end(struct http_req *r);
/* Called once if the client goes away before the answer ends; r is freed right after. */
void http_req_on_gone(struct http_req *r, void (*fn)(void *arg), void *arg);

#endif
