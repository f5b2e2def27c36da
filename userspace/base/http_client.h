/* http_client: a small HTTP/1.1 client on the daemon's libevent loop, for plain http://
 * upstreams (https:// stays on libcurl: TLS is not ours to write; docs/architecture.md).
 *
 * One pool of keep-alive connections per upstream address (an IP literal and a port: names are
 * resolved by libcurl's threaded resolver, never here, so no lookup blocks the loop). A
 * connection is a state machine (one enum, one transition function): non-blocking connect with
 * TCP_NODELAY, the request written with one gathered sendmsg, the answer read into the
 * connection's reused buffer and parsed by base/http_parse. The socket's read event stays
 * registered for the connection's whole life, pooled or busy: a server that closes a pooled
 * connection is seen at once (EOF on the idle read) and no epoll_ctl is made per request.
 *
 * Retry rule: a request that fails on a REUSED connection before any byte of the answer came
 * back (the server closed it while our request was on the way: its keep-alive timeout) is sent
 * once more on a fresh connection. Never otherwise: not after an answer began, not on a fresh
 * connection, not twice, so a tools/call that may have run is not run again by us. (A server
 * that read the request and then died without a byte could see it twice; that is the same
 * rule as libcurl's and browsers'.)
 *
 * Callbacks run from the loop, never from inside http_request_start. After every batch of
 * callbacks, the `after` hook given to http_client_init runs (the transports drain their
 * queues there).
 */
#ifndef WARDEN_HTTP_CLIENT_H
#define WARDEN_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/uio.h>
#include <event2/event.h>

#include "base/http_parse.h"

#define HTTP_POOL_IDLE_MAX      64              /* idle connections kept per pool */
#define HTTP_POOL_CONN_MAX      16384           /* open per pool (GET streams hold one each) */
#define HTTP_IDLE_EXPIRY_MS     60000           /* an idle connection is closed after this */
#define HTTP_READ_BUF           16384

/* For the calling thread's loop: each loop thread has its own client and pools. 0, or -EBUSY
 * when this thread runs it on another base already. after may be NULL. */
int http_client_init(struct event_base *base, void (*after)(void));
/* Close every connection; requests still running get no callback. */
void http_client_shutdown(void);
bool http_client_running(const struct event_base *base);

struct http_pool;
/* The pool for ip (IPv4 or IPv6 literal, no brackets) and port, made on first use; pools live
 * until shutdown. -EINVAL if ip is not a literal. */
int http_pool_get(const char *ip, unsigned port, struct http_pool **out);

struct http_request_cb {
	/* Status and headers are in. 0 to go on, or a negative errno to abort (done gets it). */
	int (*head)(void *arg, const struct http_head *h);
	/* A piece of the body (de-chunked). 0, or a negative errno to abort. */
	int (*body)(void *arg, const char *p, size_t n);
	/* The end: err 0 when the whole answer arrived; -ECONNREFUSED, -ETIMEDOUT, -ECONNRESET
	 * (closed before the answer's end), -EPROTO (malformed answer), -EMSGSIZE (a limit) or
	 * the head/body callback's error. The request is freed when done returns. */
	void (*done)(void *arg, int err);
};

#define HTTP_BODY_PIECES 9

struct http_request_spec {
	const char *method;             /* "GET", "POST", "DELETE" */
	const char *target;             /* origin-form: "/mcp?x=1" */
	const char *host;               /* the Host header's value */
	const char *headers;            /* "Name: value\r\n" lines, or NULL */
	size_t headers_len;
	const char *body;               /* kept by the caller until done or cancel */
	size_t body_len;
	/* Or the body in pieces, in order, instead (a print around text kept elsewhere:
	 * base/jsonw.h's holes): at most HTTP_BODY_PIECES; the array and what it points to
	 * kept by the caller as body is. */
	const struct iovec *body_iov;
	int body_iovcnt;
	bool has_body;                  /* send Content-Length (also for an empty body) */
	long timeout_ms;                /* the whole exchange, connect included; 0: none */
	long connect_ms;                /* the connect alone; 0: none */
};

struct http_request;
/* Start a request; its callbacks come later from the loop. -ENOMEM never (alloc.h);
 * -EAGAIN when the pool has HTTP_POOL_CONN_MAX connections open. */
int http_request_start(struct http_pool *pool, const struct http_request_spec *spec,
		       const struct http_request_cb *cb, void *arg, struct http_request **out);
/* Drop a request that is not done (not from inside its own callbacks): no callback follows.
 * Its connection is closed (an answer half-read cannot be resumed). */
void http_request_cancel(struct http_request *r);

/* For tests and diagnostics: connections open and idle in a pool, connections ever made. */
struct http_pool_stats {
	size_t open, idle;
	unsigned long connects, retries;
};
void http_pool_stats(const struct http_pool *pool, struct http_pool_stats *out);

#endif
