/* http_exchange: one HTTP request and its answer for an upstream transport, on the loop.
 *
 * An endpoint is a URL parsed once. For http:// with an IP address (what a local MCP server
 * and a sidecar use) the exchange runs on the project's own client, base/http_client: pooled
 * keep-alive connections with no per-request epoll_ctl or liveness poll (docs/performance.md).
 * For https:// (TLS) and for host names (libcurl's threaded resolver keeps DNS off the loop)
 * it runs on libcurl (base/curl_loop). The callbacks are the same either way, and come from the
 * loop, never from inside http_exchange_start; after each batch the `after` hook runs.
 */
#ifndef WARDEN_HTTP_EXCHANGE_H
#define WARDEN_HTTP_EXCHANGE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/uio.h>
#include <event2/event.h>

#include "base/http_client.h"     /* HTTP_BODY_PIECES */

/* Both clients, bound to base; after (may be NULL) runs after every batch of callbacks.
 * 0, or -EBUSY when already running on another base. */
int http_exchange_init(struct event_base *base, void (*after)(void));
void http_exchange_shutdown(void);
bool http_exchange_running(const struct event_base *base);
/* Finish what libcurl completed, then `after` (call after starting or stopping exchanges
 * outside their own callbacks). */
void http_exchange_pump(void);

struct http_endpoint;
/* Parse url: http or https with a host. -EINVAL for anything else; -ENOTSUP for a host name
 * when libcurl resolves names synchronously (it would block the loop). `name` is for logs.
 * Endpoints are shared: the same url gives the same one, counted (a loop thread's own). */
int http_endpoint_new(const char *url, const char *name, struct http_endpoint **out);
/* Drop one reference. Exchanges already started do not need the endpoint. NULL is fine. */
void http_endpoint_free(struct http_endpoint *ep);
/* Does the endpoint use base/http_client (rather than libcurl)? */
bool http_endpoint_native(const struct http_endpoint *ep);

struct http_exchange;

struct http_exchange_cb {
	/* The status and headers are in (for a body-less answer, just before done). 0 to go on,
	 * a negative errno to abort. */
	int (*head)(void *arg, struct http_exchange *x, int status);
	/* A piece of the body. 0, or a negative errno to abort. */
	int (*body)(void *arg, const char *p, size_t n);
	/* The end: err 0 when the answer is complete, else a negative errno (-ECONNREFUSED,
	 * -ETIMEDOUT, -EHOSTUNREACH, -ECONNRESET, -EPROTO, -EAGAIN, or a callback's error) with a
	 * short reason that names no address (it may reach the agent) and detail for the log.
	 * The exchange is freed when done returns: forget it first. */
	void (*done)(void *arg, int err, const char *why, const char *detail);
};

/* A header of the answer, case-insensitive; only during the head callback. NULL if absent. */
const char *http_exchange_header(struct http_exchange *x, const char *name);

struct http_exchange_req {
	const char *method;             /* "POST", "GET", "DELETE" */
	const char *headers;            /* "Name: value\r\n" lines, or NULL */
	size_t headers_len;
	const char *body;               /* POST: kept by the caller until done or cancel */
	size_t body_len;
	/* Or the body in pieces (base/http_client.h): at most HTTP_BODY_PIECES, kept so too.
	 * libcurl's exchanges (https) post them joined. */
	const struct iovec *body_iov;
	int body_iovcnt;
	long timeout_ms;                /* whole exchange; 0: none */
	long connect_ms;                /* 0: none */
};

int http_exchange_start(const struct http_endpoint *ep, const struct http_exchange_req *req,
			const struct http_exchange_cb *cb, void *arg, struct http_exchange **out);
/* Stop an exchange that is not done; no callback follows. NULL is fine. */
void http_exchange_cancel(struct http_exchange *x);

#endif
