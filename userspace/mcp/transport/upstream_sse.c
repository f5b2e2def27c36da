/* upstream_sse: an MCP session over the legacy HTTP+SSE transport (2024-11-05), for servers
 * that speak nothing newer, on the same curl multi as upstream_http (base/curl_loop).
 *
 * The transport GETs the configured URL and keeps that event stream open. The server's first
 * event, `endpoint`, names the URL to POST every message to (resolved against the stream's
 * URL, and only accepted on the same origin); answers, requests and notifications all arrive
 * as `message` events on the stream. POSTs are acknowledged with 202 and carry nothing.
 * Messages sent before the endpoint is known wait (bounded). When the stream ends or fails
 * the transport is down: the link fails what is pending and the catalogue reconnects with
 * backoff (mcp/upstream.c, mcp/catalog.c). Callbacks run from a deferred event, never from
 * inside curl, so a callee may send or destroy.
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
#include "base/curl_loop.h"
#include "base/list.h"
#include "base/log.h"
#include "mcp/jsonrpc.h"
#include "mcp/transport/sse.h"

#define SSE_MAX_EVENT           (16u << 20)
#define SSE_MAX_WAITING         1024            /* messages queued before the endpoint */
#define SSE_ENDPOINT_MS         10000           /* the endpoint event must come this soon */
#define WHY_MAX                 160

struct xfer {
	struct curl_xfer xfer;          /* CURLOPT_PRIVATE */
	struct list_head link;          /* in posts or waiting */
	struct sse_transport *s;
	CURL *easy;
	struct curl_slist *hdrs;
	char *body;                     /* POST body */
	cJSON *id;                      /* the request's id; NULL for notifications/responses */
	char errbuf[CURL_ERROR_SIZE];
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
	struct xfer stream;             /* the GET; stream.easy NULL when not running */
	struct sse_parser *parser;
	char *post_url;                 /* from the endpoint event */
	struct list_head posts;         /* POSTs in flight */
	struct list_head waiting;       /* POSTs waiting for the endpoint */
	size_t nwaiting;
	struct list_head deliveries;
	struct event *deliver;          /* runs the deliveries outside curl */
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
	curl_xfer_end(&x->easy, &x->hdrs);
}

static void xfer_free(struct xfer *x)
{
	xfer_stop(x);
	list_del(&x->link);
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

static size_t stream_write(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct sse_transport *s = arg;
	long status = 0;

	curl_easy_getinfo(s->stream.easy, CURLINFO_RESPONSE_CODE, &status);
	if (status != 200) {
		char why[64];
		snprintf(why, sizeof(why), "the SSE stream answered HTTP %ld", status);
		go_down(s, -EPROTO, why);
		return 0;
	}
	if (sse_parser_feed(s->parser, ptr, size * nmemb)) {
		go_down(s, -EPROTO, "bad event on the SSE stream");
		return 0;
	}
	return size * nmemb;
}

static void stream_done(struct curl_xfer *x, CURLcode res)
{
	struct sse_transport *s = container_of(x, struct sse_transport, stream.xfer);
	char why[WHY_MAX];

	snprintf(why, sizeof(why), "the SSE stream ended (%.100s)",
		 res == CURLE_OK ? "closed by the server"
				 : s->stream.errbuf[0] ? s->stream.errbuf : curl_easy_strerror(res));
	go_down(s, res == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -ECONNRESET, why);
	/* The handle goes when the deliveries run (not inside curl's own processing). */
}

static void on_endpoint_timeout(evutil_socket_t fd, short what, void *arg)
{
	go_down(arg, -ETIMEDOUT, "no endpoint event on the SSE stream");
}

static int add_headers(struct xfer *x, const struct upstream_config *cfg, const char *accept,
		       bool json)
{
	char line[8192];
	struct curl_slist *n;

	if (accept) {
		snprintf(line, sizeof(line), "Accept: %s", accept);
		if (!(n = curl_slist_append(x->hdrs, line)))
			return -ENOMEM;
		x->hdrs = n;
	}
	if (json) {
		if (!(n = curl_slist_append(x->hdrs, "Content-Type: application/json")))
			return -ENOMEM;
		x->hdrs = n;
		if (!(n = curl_slist_append(x->hdrs, "Expect:")))
			return -ENOMEM;
		x->hdrs = n;
	}
	for (size_t i = 0; i < cfg->nheaders; i++) {
		if ((size_t)snprintf(line, sizeof(line), "%s: %s", cfg->headers[i].name,
				     cfg->headers[i].value) >= sizeof(line))
			return -E2BIG;
		if (!(n = curl_slist_append(x->hdrs, line)))
			return -ENOMEM;
		x->hdrs = n;
	}
	return 0;
}

#define SET(opt, val) do {                                              \
	if (curl_easy_setopt(e, opt, val) != CURLE_OK)                  \
		goto fail;                                              \
} while (0)

static int xfer_start(struct xfer *x, const struct upstream_config *cfg, const char *url,
		      curl_write_callback write_fn, void *write_arg, long timeout_ms)
{
	CURL *e = curl_easy_init();

	if (!e)
		return -ENOMEM;
	if (curl_xfer_setup(e, &x->xfer, &(struct curl_xfer_opts){
				.url = url, .user_agent = "mcpwarden", .write = write_fn,
				.data = write_arg, .errbuf = x->errbuf, .headers = x->hdrs }))
		goto fail;
	if (cfg->connect_timeout_ms > 0)
		SET(CURLOPT_CONNECTTIMEOUT_MS, (long)cfg->connect_timeout_ms);
	if (timeout_ms > 0)
		SET(CURLOPT_TIMEOUT_MS, timeout_ms);
	if (x->body) {
		SET(CURLOPT_POSTFIELDS, x->body);
		SET(CURLOPT_POSTFIELDSIZE, (long)strlen(x->body));
	}
	if (curl_multi_add_handle(curl_loop_multi(), e) != CURLM_OK)
		goto fail;
	x->easy = e;
	return 0;
fail:
	curl_easy_cleanup(e);
	return -EINVAL;
}

/* ---- POSTs ---- */

static size_t discard(char *ptr, size_t size, size_t nmemb, void *arg)
{
	return size * nmemb;   /* a 202 has nothing to say; an error body is not read */
}

static void post_done(struct curl_xfer *cx, CURLcode res)
{
	struct xfer *x = container_of(cx, struct xfer, xfer);
	struct sse_transport *s = x->s;
	long status = 0;
	char why[WHY_MAX];

	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
	if (res == CURLE_OK && status >= 200 && status < 300) {
		x->body[0] = '\0';      /* done: freed with the next deliveries */
	} else if (x->id) {
		if (res != CURLE_OK)
			snprintf(why, sizeof(why), "POST to the upstream failed: %.100s",
				 x->errbuf[0] ? x->errbuf : curl_easy_strerror(res));
		else
			snprintf(why, sizeof(why), "the upstream answered the POST with HTTP %ld",
				 status);
		queue(s, D_SEND_ERROR, x->id, res == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT
					   : res != CURLE_OK ? -ECONNREFUSED : -EPROTO, why);
		x->id = NULL;
		x->body[0] = '\0';
	} else {
		x->body[0] = '\0';
	}
	event_active(s->deliver, EV_TIMEOUT, 0);  /* reap finished POSTs there */
}

static int post_start(struct sse_transport *s, struct xfer *x)
{
	int rc = add_headers(x, s->t.cfg, "application/json, text/event-stream", true);

	if (rc == 0)
		rc = xfer_start(x, s->t.cfg, s->post_url, discard, x, s->t.cfg->request_timeout_ms);
	return rc;
}

/* ---- deliveries: everything the callbacks hear, outside curl ---- */

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
	if (s->down && s->stream.easy)
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
		curl_loop_pump();
}

/* ---- the transport ---- */

static int sse_start(struct transport *t)
{
	struct sse_transport *s = (struct sse_transport *)t;
	struct timeval tv = { SSE_ENDPOINT_MS / 1000, (SSE_ENDPOINT_MS % 1000) * 1000 };
	int rc = add_headers(&s->stream, t->cfg, "text/event-stream", false);

	if (rc == 0)
		rc = xfer_start(&s->stream, t->cfg, t->cfg->url, stream_write, s, 0);
	if (rc == 0)
		rc = evtimer_add(s->endpoint_timer, &tv) ? -ENOMEM : 0;
	if (rc == 0)
		curl_loop_pump();
	return rc;
}

static int sse_send(struct transport *t, const cJSON *msg)
{
	struct sse_transport *s = (struct sse_transport *)t;
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(msg, "id");
	struct xfer *x;

	if (s->down)
		return -ENOTCONN;
	if (!s->post_url && s->nwaiting >= SSE_MAX_WAITING)
		return -ENOBUFS;
	x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	x->xfer.done = post_done;
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
	curl_loop_pump();
	return 0;
}

static void transport_free(struct sse_transport *s)
{
	xfer_stop(&s->stream);
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
	if (s->deliver)
		event_free(s->deliver);
	if (s->endpoint_timer)
		event_free(s->endpoint_timer);
	sse_parser_free(s->parser);
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

static const struct transport_ops sse_ops = { sse_start, sse_send, sse_destroy };

int upstream_sse_new(struct event_base *base, const struct upstream_config *cfg,
		     const struct transport_cb *cb, struct transport **out)
{
	struct sse_transport *s;

	if (!base || !cfg || !cb || !out || cfg->kind != UPSTREAM_SSE || !cfg->url ||
	    !curl_loop_multi())
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->t = (struct transport){ &sse_ops, cfg, base, *cb };
	s->stream.xfer.done = stream_done;
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
	*out = &s->t;
	return 0;
}
