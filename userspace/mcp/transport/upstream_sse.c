/* upstream_sse: an MCP session over the legacy HTTP+SSE transport (2024-11-05), for servers
 * that speak nothing newer, on the same HTTP clients as upstream_http (http_exchange: the
 * project's own keep-alive client for http:// to an IP address, libcurl otherwise).
 *
 * The transport GETs the configured URL and keeps that event stream open. The server's first
 * event, `endpoint`, names the URL to POST every message to (resolved against the stream's
 * URL, and only accepted on the same origin); answers, requests and notifications all arrive
 * as `message` events on the stream. POSTs are acknowledged with 202 and carry nothing.
 * Messages sent before the endpoint is known wait (bounded). When the stream ends or fails
 * the transport is down: the link fails what is pending and the catalogue reconnects with
 * backoff (mcp/upstream.c, mcp/catalog.c). Callbacks run from a deferred event, never from
 * inside the HTTP client, so a callee may send or destroy.
 */
#include "mcp/transport/upstream_sse.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "base/config.h"
#include "base/alloc.h"
#include "base/event_opt.h"
#include "base/header_lines.h"
#include "base/json_get.h"
#include "base/list.h"
#include "base/log.h"
#include "mcp/jsonrpc.h"
#include "mcp/transport/http_exchange.h"
#include "mcp/transport/sse.h"

#define SSE_MAX_EVENT           (16u << 20)
#define SSE_MAX_WAITING         1024            /* messages queued before the endpoint */
#define SSE_ENDPOINT_MS         10000           /* the endpoint event must come this soon */
#define WHY_MAX                 160

struct xfer {
	struct list_head link;          /* in posts or waiting */
	struct sse_transport *s;
	struct http_exchange *x;        /* running; NULL before and after */
	struct header_lines hdrs;
	int status;
	char *body;                     /* POST body */
	cJSON *id;                      /* the request's id; NULL for notifications/responses */
};

enum delivery_kind { D_MESSAGE, D_SEND_ERROR, D_DOWN, D_FLUSH };

struct delivery {
	struct list_head link;
	enum delivery_kind kind;
	cJSON *msg;                     /* message, or the failed request's id */
	int err;
	char why[WHY_MAX];
};

struct sse_transport {
	struct transport t;             /* first: the transport_ops receive &t */
	struct xfer stream;             /* the GET; stream.x NULL when not running */
	struct sse_parser *parser;
	struct http_endpoint *ep;       /* the configured URL */
	char *post_url;                 /* from the endpoint event */
	struct http_endpoint *post_ep;
	struct list_head posts;         /* POSTs in flight */
	struct list_head waiting;       /* POSTs waiting for the endpoint */
	size_t nwaiting;
	struct list_head deliveries;
	struct event *deliver;          /* runs the deliveries outside the client */
	struct event *endpoint_timer;
	bool down;                      /* reported down: no more sends, no more callbacks */
	bool in_deliver, destroyed;
};

static const struct transport_ops sse_ops;

static void queue(struct sse_transport *s, enum delivery_kind kind, cJSON *msg, int err,
		  const char *why)
{
	struct delivery *d = calloc(1, sizeof(*d));

	if (!d) {
		cJSON_Delete(msg);
		return;
	}
	d->kind = kind;
	d->msg = msg;
	d->err = err;
	snprintf(d->why, sizeof(d->why), "%s", why ? why : "");
	list_add_tail(&d->link, &s->deliveries);
	event_active(s->deliver, EV_TIMEOUT, 0);
}

static void go_down(struct sse_transport *s, int err, const char *why)
{
	if (s->down)
		return;
	s->down = true;
	queue(s, D_DOWN, NULL, err, why);
}

static void xfer_stop(struct xfer *x)
{
	http_exchange_cancel(x->x);
	x->x = NULL;
}

static void xfer_free(struct xfer *x)
{
	xfer_stop(x);
	list_del(&x->link);
	header_lines_free(&x->hdrs);
	free(x->body);
	cJSON_Delete(x->id);
	free(x);
}

/* ---- the event stream ---- */

/* The endpoint must stay on the stream's origin: a server must not make the gateway POST
 * (with the upstream's configured headers) anywhere else. */
static int resolve_endpoint(struct sse_transport *s, const char *rel, char **out)
{
	CURLU *u = curl_url(), *base = curl_url();
	char *a = NULL, *b = NULL, *url = NULL;
	int rc = -EPROTO;

	if (!u || !base)
		goto out;
	if (curl_url_set(u, CURLUPART_URL, s->t.cfg->url, 0) != CURLUE_OK ||
	    curl_url_set(base, CURLUPART_URL, s->t.cfg->url, 0) != CURLUE_OK ||
	    curl_url_set(u, CURLUPART_URL, rel, 0) != CURLUE_OK)
		goto out;
	for (CURLUPart p = CURLUPART_SCHEME; p <= CURLUPART_PORT; p++) {
		if (p == CURLUPART_USER || p == CURLUPART_PASSWORD || p == CURLUPART_OPTIONS)
			continue;
		curl_url_get(u, p, &a, CURLU_DEFAULT_PORT);
		curl_url_get(base, p, &b, CURLU_DEFAULT_PORT);
		bool same = (!a && !b) || (a && b && !strcasecmp(a, b));
		curl_free(a);
		curl_free(b);
		a = b = NULL;
		if (!same)
			goto out;
	}
	if (curl_url_get(u, CURLUPART_URL, &url, 0) != CURLUE_OK)
		goto out;
	*out = strdup(url);
	rc = *out ? 0 : -ENOMEM;
out:
	curl_free(url);
	curl_url_cleanup(u);
	curl_url_cleanup(base);
	return rc;
}

static int on_event(void *arg, const struct sse_event *ev)
{
	struct sse_transport *s = arg;

	if (!strcmp(ev->type, "endpoint")) {
		char *url = NULL;
		if (s->post_url)
			return 0;       /* one endpoint per stream */
		if (resolve_endpoint(s, ev->data, &url)) {
			go_down(s, -EPROTO, "the SSE endpoint event names another origin or no URL");
			return -EPROTO;
		}
		if (http_endpoint_new(url, s->t.cfg->name, &s->post_ep) != 0) {
			free(url);
			go_down(s, -EPROTO, "the SSE endpoint event names an unusable URL");
			return -EPROTO;
		}
		s->post_url = url;
		evtimer_del(s->endpoint_timer);
		queue(s, D_FLUSH, NULL, 0, NULL);
		return 0;
	}
	if (strcmp(ev->type, "message") || !ev->data_len)
		return 0;
	cJSON *msg = cJSON_ParseWithLength(ev->data, ev->data_len);
	if (!msg) {
		go_down(s, -EPROTO, "non-JSON message on the SSE stream");
		return -EPROTO;
	}
	queue(s, D_MESSAGE, msg, 0, NULL);
	return 0;
}

static int stream_head(void *arg, struct http_exchange *x, int status)
{
	struct sse_transport *s = arg;

	if (status != 200) {
		char why[64];
		snprintf(why, sizeof(why), "the SSE stream answered HTTP %d", status);
		go_down(s, -EPROTO, why);
		return -EPROTO;
	}
	return 0;
}

static int stream_body(void *arg, const char *ptr, size_t n)
{
	struct sse_transport *s = arg;

	if (sse_parser_feed(s->parser, ptr, n)) {
		go_down(s, -EPROTO, "bad event on the SSE stream");
		return -EPROTO;
	}
	return 0;
}

static void stream_done(void *arg, int err, const char *reason, const char *detail)
{
	struct sse_transport *s = arg;
	char why[WHY_MAX];

	s->stream.x = NULL;             /* freed by http_exchange when this returns */
	snprintf(why, sizeof(why), "the SSE stream ended (%.100s)",
		 !err ? "closed by the server" : detail);
	go_down(s, err == -ETIMEDOUT ? -ETIMEDOUT : -ECONNRESET, why);
}

static const struct http_exchange_cb stream_cb = { stream_head, stream_body, stream_done };

static void on_endpoint_timeout(evutil_socket_t fd, short what, void *arg)
{
	go_down(arg, -ETIMEDOUT, "no endpoint event on the SSE stream");
}

static int add_headers(struct xfer *x, const struct upstream_config *cfg, const char *accept,
		       bool json)
{
	int rc = 0;

	header_lines_clear(&x->hdrs);
	if (accept)
		rc = header_lines_add(&x->hdrs, "Accept", accept);
	if (!rc && json)
		rc = header_lines_add(&x->hdrs, "Content-Type", "application/json");
	for (size_t i = 0; !rc && i < cfg->nheaders; i++)
		rc = header_lines_add(&x->hdrs, cfg->headers[i].name, cfg->headers[i].value);
	return rc;
}

static int xfer_start(struct xfer *x, const struct upstream_config *cfg,
		      const struct http_endpoint *ep, const struct http_exchange_cb *cb, void *arg,
		      long timeout_ms)
{
	struct http_exchange_req r = {
		.method = x->body ? "POST" : "GET", .headers = x->hdrs.p, .headers_len = x->hdrs.len,
		.body = x->body, .body_len = x->body ? strlen(x->body) : 0,
		.timeout_ms = timeout_ms, .connect_ms = cfg->connect_timeout_ms,
	};

	return http_exchange_start(ep, &r, cb, arg, &x->x);
}

/* ---- POSTs ---- */

static int post_head(void *arg, struct http_exchange *hx, int status)
{
	((struct xfer *)arg)->status = status;
	return 0;
}

static int discard(void *arg, const char *ptr, size_t n)
{
	return 0;       /* a 202 has nothing to say; an error body is not read */
}

static void post_done(void *arg, int err, const char *reason, const char *detail)
{
	struct xfer *x = arg;
	struct sse_transport *s = x->s;
	char why[WHY_MAX];

	x->x = NULL;                    /* freed by http_exchange when this returns */
	if (!err && x->status >= 200 && x->status < 300) {
		x->body[0] = '\0';      /* done: freed with the next deliveries */
	} else if (x->id) {
		if (err)
			snprintf(why, sizeof(why), "POST to the upstream failed: %.100s", detail);
		else
			snprintf(why, sizeof(why), "the upstream answered the POST with HTTP %d",
				 x->status);
		queue(s, D_SEND_ERROR, x->id, err == -ETIMEDOUT ? -ETIMEDOUT
					   : err ? -ECONNREFUSED : -EPROTO, why);
		x->id = NULL;
		x->body[0] = '\0';
	} else {
		x->body[0] = '\0';
	}
	event_active(s->deliver, EV_TIMEOUT, 0);  /* reap finished POSTs there */
}

static const struct http_exchange_cb post_cb = { post_head, discard, post_done };

static int post_start(struct sse_transport *s, struct xfer *x)
{
	int rc = add_headers(x, s->t.cfg, "application/json, text/event-stream", true);

	return rc ? rc : xfer_start(x, s->t.cfg, s->post_ep, &post_cb, x,
				    s->t.cfg->request_timeout_ms);
}

/* ---- deliveries: everything the callbacks hear, outside the HTTP client ---- */

static void transport_free(struct sse_transport *s);

static void flush_waiting(struct sse_transport *s)
{
	while (!list_empty(&s->waiting)) {
		struct xfer *x = list_first_entry(&s->waiting, struct xfer, link);
		list_del(&x->link);
		s->nwaiting--;
		list_add_tail(&x->link, &s->posts);
		if (post_start(s, x)) {
			if (x->id) {
				queue(s, D_SEND_ERROR, x->id, -ENOMEM, "cannot start the POST");
				x->id = NULL;
			}
			xfer_free(x);
		}
	}
}

static void on_deliver(evutil_socket_t fd, short what, void *arg)
{
	struct sse_transport *s = arg;
	struct xfer *x, *tmp;

	/* POSTs that finished (their body emptied by post_done). */
	list_for_each_entry_safe(x, tmp, &s->posts, link)
		if (x->body && !x->body[0])
			xfer_free(x);
	if (s->down && s->stream.x)
		xfer_stop(&s->stream);
	s->in_deliver = true;
	while (!list_empty(&s->deliveries) && !s->destroyed) {
		struct delivery *d = list_first_entry(&s->deliveries, struct delivery, link);
		list_del(&d->link);
		switch (d->kind) {
		case D_MESSAGE:
			s->t.cb.on_message(s->t.cb.arg, d->msg, NULL);
			d->msg = NULL;
			break;
		case D_SEND_ERROR:
			s->t.cb.on_send_error(s->t.cb.arg, d->msg, d->err, d->why);
			break;
		case D_DOWN:
			log_warn("upstream %s: %s", s->t.cfg->name, d->why);
			s->t.cb.on_down(s->t.cb.arg, d->err, d->why);
			break;
		case D_FLUSH:
			if (!s->down)
				flush_waiting(s);
			break;
		}
		cJSON_Delete(d->msg);
		free(d);
	}
	s->in_deliver = false;
	if (s->destroyed)
		transport_free(s);
	else
		http_exchange_pump();
}

/* ---- the transport ---- */

static int sse_start(struct transport *t)
{
	struct sse_transport *s = (struct sse_transport *)t;
	struct timeval tv = { SSE_ENDPOINT_MS / 1000, (SSE_ENDPOINT_MS % 1000) * 1000 };
	int rc;

	rc = add_headers(&s->stream, t->cfg, "text/event-stream", false);
	if (rc == 0)
		rc = xfer_start(&s->stream, t->cfg, s->ep, &stream_cb, s, 0);
	if (rc == 0)
		rc = evtimer_add(s->endpoint_timer, &tv) ? -ENOMEM : 0;
	if (rc == 0)
		http_exchange_pump();
	return rc;
}

static int sse_send(struct transport *t, const cJSON *msg)
{
	struct sse_transport *s = (struct sse_transport *)t;
	const cJSON *id = json_get(msg, "id");
	struct xfer *x;

	if (s->down)
		return -ENOTCONN;
	if (!s->post_url && s->nwaiting >= SSE_MAX_WAITING)
		return -ENOBUFS;
	x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	x->s = s;
	x->body = jsonrpc_print((cJSON *)msg);
	if (!x->body) {
		free(x);
		return -ENOMEM;
	}
	/* The print is cJSON's allocation; keep one owner (free). */
	char *copy = strdup(x->body);
	cJSON_free(x->body);
	x->body = copy;
	if (!x->body) {
		free(x);
		return -ENOMEM;
	}
	if (id && cJSON_HasObjectItem(msg, "method"))
		x->id = cJSON_Duplicate(id, 1);
	if (!s->post_url) {
		list_add_tail(&x->link, &s->waiting);
		s->nwaiting++;
		return 0;
	}
	list_add_tail(&x->link, &s->posts);
	if (post_start(s, x)) {
		xfer_free(x);
		return -ENOMEM;
	}
	http_exchange_pump();
	return 0;
}

static void transport_free(struct sse_transport *s)
{
	xfer_stop(&s->stream);
	header_lines_free(&s->stream.hdrs);
	while (!list_empty(&s->posts))
		xfer_free(list_first_entry(&s->posts, struct xfer, link));
	while (!list_empty(&s->waiting))
		xfer_free(list_first_entry(&s->waiting, struct xfer, link));
	while (!list_empty(&s->deliveries)) {
		struct delivery *d = list_first_entry(&s->deliveries, struct delivery, link);
		list_del(&d->link);
		cJSON_Delete(d->msg);
		free(d);
	}
	event_free_opt(s->deliver);
	event_free_opt(s->endpoint_timer);
	sse_parser_free(s->parser);
	http_endpoint_free(s->ep);
	http_endpoint_free(s->post_ep);
	free(s->post_url);
	free(s);
}

static void sse_destroy(struct transport *t)
{
	struct sse_transport *s = (struct sse_transport *)t;

	if (s->in_deliver) {
		s->destroyed = true;    /* freed when the deliveries return */
		xfer_stop(&s->stream);
		return;
	}
	transport_free(s);
}

static const struct transport_ops sse_ops = {
	.start = sse_start, .send = sse_send, .destroy = sse_destroy,
};

int upstream_sse_new(struct event_base *base, const struct upstream_config *cfg,
		     const struct transport_cb *cb, struct transport **out)
{
	struct sse_transport *s;

	if (!base || !cfg || !cb || !out || cfg->kind != UPSTREAM_SSE || !cfg->url ||
	    !http_exchange_running(base))
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->t = (struct transport){ &sse_ops, cfg, base, *cb };
	s->stream.s = s;
	list_init(&s->stream.link);
	list_init(&s->posts);
	list_init(&s->waiting);
	list_init(&s->deliveries);
	s->deliver = event_new(base, -1, 0, on_deliver, s);
	s->endpoint_timer = evtimer_new(base, on_endpoint_timeout, s);
	if (!s->deliver || !s->endpoint_timer ||
	    sse_parser_new(SSE_MAX_EVENT, on_event, s, &s->parser)) {
		transport_free(s);
		return -ENOMEM;
	}
	int rc = http_endpoint_new(cfg->url, cfg->name, &s->ep);
	if (rc != 0) {
		transport_free(s);
		return rc;
	}
	*out = &s->t;
	return 0;
}
