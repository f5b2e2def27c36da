/* upstream_http: an MCP session over Streamable HTTP on the loop, each HTTP exchange run by
 * mcp/transport/http_exchange (the project's own keep-alive client for http://, libcurl for
 * https://).
 *
 * Each transport_send() is one "call": a POST, possibly followed by GETs with Last-Event-ID when
 * an SSE answer ends before the response (SEP-1699 polling). The standalone GET stream and the
 * DELETE at destroy are calls too. Exchange callbacks only parse and queue; the transport
 * callbacks run from a queue drained after each batch of them, so a callee may send or destroy
 * from inside its callback without re-entering the HTTP client.
 */
#include "base/ascii.h"
#include "mcp/transport/upstream_http.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/config.h"
#include "base/event_opt.h"
#include "base/header_lines.h"
#include "base/json_get.h"
#include "base/jsonw.h"
#include "base/list.h"
#include "mcp/jsonrpc.h"
#include "mcp/jsonrpc_splice.h"
#include "base/log.h"
#include "mcp/transport/http_exchange.h"
#include "mcp/transport/sse.h"
#include "observe/trace.h"

#define HTTP_MAX_BODY           (16u << 20)     /* one JSON answer or one SSE event */
#define HTTP_ERR_SNIPPET        4096            /* body kept from an error answer */
#define BODY_PRESIZE_MAX        (1u << 20)      /* room made ahead for an announced answer */
#define BODY_HOLES              ((HTTP_BODY_PIECES - 1) / 2)    /* Raw texts sent in place */
#define DELETE_TIMEOUT_MS       2000
#define POLL_DEFAULT_MS         1000            /* SSE reconnect delay when no retry: given */
#define POLL_MIN_MS             20
#define STREAM_BACKOFF_MIN_MS   500
#define STREAM_BACKOFF_MAX_MS   30000
#define WHY_MAX                 160

enum call_kind { CALL_POST, CALL_STREAM, CALL_DELETE };
enum body_mode { BODY_UNKNOWN, BODY_SSE, BODY_JSON, BODY_SNIPPET };

struct http_transport;

struct call {
	struct list_head link;          /* in the transport's calls, or the orphans */
	struct http_transport *h;       /* NULL for an orphan (the DELETE after destroy) */
	enum call_kind kind;
	struct http_exchange *x;        /* the current HTTP exchange, NULL between them */
	struct header_lines hdrs;       /* its request headers */
	char *body;                     /* POST body */
	size_t body_len;
	/* A body sent in pieces (http_give): its print with holes (base/jsonw.h), and the
	 * message whose Raw texts fill them, kept until the call ends */
	cJSON *msg;
	int npieces;                    /* in piece[], 0: the body alone */
	cJSON *id;                      /* request id; NULL for notifications and responses */
	bool initialize;                /* an initialize request: its answer sets the session */
	bool splice;                    /* a tools/call: its answer may keep its result as text */
	bool initialized;               /* notifications/initialized: opens the GET stream */
	bool had_session;               /* the current HTTP request carried Mcp-Session-Id */
	unsigned session_gen;           /* ... of this generation of the transport's session */
	bool answered;                  /* the response to id has arrived */
	bool resuming;                  /* the current transfer is a GET + Last-Event-ID */
	bool delivered;                 /* the current stream carried at least one message */
	enum body_mode mode;
	long status;
	struct sse_parser *sse;         /* lives across reconnections: keeps last id and retry */
	struct evbuffer *buf;           /* JSON body, or the start of an error body */
	int err;                        /* set by a callback that aborted the transfer */
	uint64_t deadline;              /* monotonic ms; 0: none */
	struct event *timer;            /* reconnect delay */
	unsigned backoff_ms;
	/* Last, and only their first bytes cleared (call_new): most of the struct, and most
	 * calls never write them. */
	char why[WHY_MAX];
	char traceparent[TRACE_PARENT_LEN + 1], tracestate[TRACE_STATE_MAX + 1];  /* or "" */
	struct iovec piece[2 * BODY_HOLES + 1];
};

struct http_transport {
	struct transport t;             /* first: the transport_ops receive &t */
	struct list_head link;          /* in g.transports */
	struct list_head calls;
	struct call *stream;            /* the standalone GET stream, also in calls */
	struct http_endpoint *ep;       /* the configured URL */
	char *session_id;
	char *protocol_version;
	size_t session_id_len, protocol_version_len;    /* sent with every request */
	unsigned session_gen;           /* bumped whenever the session is dropped */
};

enum delivery_kind { D_MESSAGE, D_SEND_ERROR, D_DOWN };

struct delivery {
	struct list_head link;          /* in g.queue */
	struct http_transport *h;
	enum delivery_kind kind;
	cJSON *msg;
	cJSON *id;                      /* related (messages) or the failed request's id */
	int err;
	char why[WHY_MAX];
};

/* A loop's transports and deliveries: one set a loop thread (upstream_http_init). */
static _Thread_local struct {
	bool draining;
	struct list_head transports;
	struct list_head orphans;       /* DELETEs that outlive their transport */
	struct list_head queue;         /* deliveries to the transports' callbacks, in order */
} g;

static const struct transport_ops http_ops;

/* ---- small helpers ---- */

/* Mcp-Session-Id and protocol versions must be visible ASCII (0x21-0x7E): anything else could
 * smuggle header syntax into our later requests. */
static bool visible_ascii(const char *s, size_t n)
{
	return n > 0 && ascii_span(s, n, false);
}

static const char *name_of(const struct http_transport *h)
{
	return h->t.cfg && h->t.cfg->name ? h->t.cfg->name : "?";
}

/* ---- the delivery queue ---- */

static struct delivery *queue(struct http_transport *h, enum delivery_kind kind)
{
	struct delivery *d = xcalloc(1, sizeof(*d));

	d->h = h;
	d->kind = kind;
	list_add_tail(&d->link, &g.queue);
	return d;
}

static void delivery_free(struct delivery *d)
{
	cJSON_Delete(d->msg);
	cJSON_Delete(d->id);
	alloc_cache_put(d);     /* one a call: kept for the next (base/alloc.h) */
}

/* A failure to report: a request that failed (id), or the transport going down (no id). */
static void queue_failure(struct http_transport *h, enum delivery_kind kind, const cJSON *id,
			  int err, const char *why)
{
	struct delivery *d = queue(h, kind);

	d->id = id ? cJSON_Duplicate(id, true) : NULL;
	d->err = err;
	snprintf(d->why, sizeof(d->why), "%s", why);
}

static void purge(struct http_transport *h)
{
	struct delivery *d, *tmp;

	list_for_each_entry_safe(d, tmp, &g.queue, link) {
		if (d->h == h) {
			list_del(&d->link);
			delivery_free(d);
		}
	}
}

/* Run the transport callbacks, in order. A callee may send (new transfers start on the next
 * loop turn) or destroy its transport (purge drops what is still queued for it). */
static void drain(void)
{
	struct delivery *d;

	if (g.draining)
		return;
	g.draining = true;
	while (!list_empty(&g.queue)) {
		d = list_first_entry(&g.queue, struct delivery, link);
		struct transport_cb cb = d->h->t.cb;

		list_del(&d->link);
		switch (d->kind) {
		case D_MESSAGE:
			if (cb.on_message) {
				cJSON *msg = d->msg;
				d->msg = NULL;
				cb.on_message(cb.arg, msg, d->id);
			}
			break;
		case D_SEND_ERROR:
			if (cb.on_send_error)
				cb.on_send_error(cb.arg, d->id, d->err, d->why);
			break;
		case D_DOWN:
			if (cb.on_down)
				cb.on_down(cb.arg, d->err, d->why);
			break;
		}
		delivery_free(d);
	}
	g.draining = false;
}

/* ---- calls ---- */

static struct call *call_new(struct http_transport *h, enum call_kind kind)
{
	struct call *c = alloc_cache_get(sizeof(*c));

	memset(c, 0, offsetof(struct call, why));
	c->why[0] = c->traceparent[0] = c->tracestate[0] = '\0';
	c->h = h;
	c->kind = kind;
	list_add(&c->link, h ? &h->calls : &g.orphans);
	return c;
}

/* Stop the current transfer, if any; the call itself stays. */
static void call_stop(struct call *c)
{
	http_exchange_cancel(c->x);
	c->x = NULL;
	header_lines_clear(&c->hdrs);
	if (c->buf)
		evbuffer_drain(c->buf, evbuffer_get_length(c->buf));
	c->mode = BODY_UNKNOWN;
	c->status = 0;
	c->err = 0;
	c->why[0] = '\0';
}

static void call_free(struct call *c)
{
	call_stop(c);
	list_del(&c->link);
	if (c->h && c->h->stream == c)
		c->h->stream = NULL;
	event_free_opt(c->timer);
	evbuffer_free(c->buf);
	header_lines_free(&c->hdrs);
	sse_parser_free(c->sse);
	cJSON_Delete(c->id);
	alloc_cache_put(c->body);
	cJSON_Delete(c->msg);
	alloc_cache_put(c);
}

static void session_clear(struct http_transport *h)
{
	free(h->session_id);
	free(h->protocol_version);
	h->session_id = h->protocol_version = NULL;
	h->session_id_len = h->protocol_version_len = 0;
	h->session_gen++;
}

/* ---- exchange callbacks: parse and queue only, never call back into the client or caller ---- */

static int take_message(struct call *c, cJSON *msg)
{
	struct http_transport *h = c->h;
	const cJSON *id = json_get(msg, "id"), *res = json_get(msg, "result");
	bool response = res || json_get(msg, "error");
	struct delivery *d;

	if (!cJSON_IsObject(msg)) {
		cJSON_Delete(msg);
		return -EPROTO;
	}
	if (c->id && id && response && cJSON_Compare(id, c->id, true)) {
		c->answered = true;
		const char *v = c->initialize ? cJSON_GetStringValue(json_get(res, "protocolVersion"))
					      : NULL;
		size_t n = v ? strlen(v) : 0;
		char *dup;
		if (v && visible_ascii(v, n) && (dup = strdup(v))) {
			free(h->protocol_version);
			h->protocol_version = dup;
			h->protocol_version_len = n;
		}
	}
	d = queue(h, D_MESSAGE);
	d->msg = msg;
	/* The request a server's request or notification came with (a response names its own) */
	if (c->id && c->kind == CALL_POST && !response)
		d->id = cJSON_Duplicate(c->id, true);
	c->delivered = true;
	return 0;
}

/* One JSON text from the upstream: a message, or (2025-03-26 servers) a batch of them. */
static int take_json(struct call *c, const char *text, size_t len)
{
	cJSON *j = NULL, *it;
	int rc = 0;

	if (c->splice && (j = jsonrpc_splice_response(text, len)))
		return take_message(c, j);
	if (!(j = cJSON_ParseWithLength(text, len)))
		return -EPROTO;
	if (!cJSON_IsArray(j))
		return take_message(c, j);
	while (rc == 0 && (it = cJSON_DetachItemFromArray(j, 0)))
		rc = take_message(c, it);
	cJSON_Delete(j);
	return rc;
}

static int on_sse_event(void *arg, const struct sse_event *ev)
{
	struct call *c = arg;

	if (ev->data_len == 0)          /* priming event: only its id matters */
		return 0;
	return take_json(c, ev->data, ev->data_len);
}

/* The status line and headers are complete: learn status, body kind and session id. */
static int on_head(void *arg, struct http_exchange *x, int status)
{
	struct call *c = arg;
	const char *ctype = http_exchange_header(x, "Content-Type"), *sid;

	c->status = status;
	if (c->status < 200 || c->status > 299)
		c->mode = BODY_SNIPPET;
	else if (ctype && ascii_caseprefix(ctype, "text/event-stream", 17))
		c->mode = BODY_SSE;
	else
		c->mode = BODY_JSON;
	if (c->mode == BODY_SSE && c->sse)
		sse_parser_reset(c->sse);
	if (c->mode == BODY_JSON) {
		/* One piece of memory for an answer of announced length (the parser checked the
		 * number): it arrives in reads of 16 KiB, and take_json then reads it in place,
		 * where evbuffer_pullup copied it whole once more. Larger ones grow as they come. */
		const char *cl = http_exchange_header(x, "Content-Length");
		size_t len = 0;

		/* digits only (the parser checked them); no strtoull, whose code is cold here */
		for (; cl && *cl >= '0' && *cl <= '9' && len <= BODY_PRESIZE_MAX; cl++)
			len = len * 10 + (size_t)(*cl - '0');
		if (len > 0 && len <= BODY_PRESIZE_MAX && evbuffer_expand(c->buf, len) != 0) {
			c->err = -ENOMEM;
			snprintf(c->why, sizeof(c->why), "out of memory");
			return c->err;
		}
	}
	if (c->initialize && c->h && c->mode != BODY_SNIPPET &&
	    (sid = http_exchange_header(x, "Mcp-Session-Id"))) {
		size_t n = strlen(sid);
		if (visible_ascii(sid, n)) {
			char *dup = strdup(sid);
			if (dup) {
				free(c->h->session_id);
				c->h->session_id = dup;
				c->h->session_id_len = n;
			}
		} else {
			log_warn("upstream %s: ignoring an Mcp-Session-Id with invalid characters",
				 name_of(c->h));
		}
	}
	return 0;
}

static int on_body(void *arg, const char *ptr, size_t n)
{
	struct call *c = arg;
	size_t room;
	int rc;

	switch (c->mode) {
	case BODY_SSE:
		if (!c->sse && sse_parser_new(HTTP_MAX_BODY, on_sse_event, c, &c->sse) != 0) {
			c->err = -ENOMEM;
			snprintf(c->why, sizeof(c->why), "out of memory");
			return c->err;
		}
		if ((rc = sse_parser_feed(c->sse, ptr, n)) != 0) {
			c->err = rc == -EMSGSIZE ? -EMSGSIZE : rc == -ENOMEM ? -ENOMEM : -EPROTO;
			snprintf(c->why, sizeof(c->why), "%s",
				 rc == -EMSGSIZE ? "event from upstream larger than 16 MiB" :
				 rc == -ENOMEM ? "out of memory" :
				 "non-JSON message from upstream");
			return c->err;
		}
		return 0;
	case BODY_JSON:
		if (evbuffer_get_length(c->buf) + n > HTTP_MAX_BODY) {
			c->err = -EMSGSIZE;
			snprintf(c->why, sizeof(c->why), "answer from upstream larger than 16 MiB");
			return c->err;
		}
		if (evbuffer_add(c->buf, ptr, n) != 0) {
			c->err = -ENOMEM;
			snprintf(c->why, sizeof(c->why), "out of memory");
			return c->err;
		}
		return 0;
	default:
		room = HTTP_ERR_SNIPPET - evbuffer_get_length(c->buf);
		if (room && evbuffer_add(c->buf, ptr, n < room ? n : room) != 0)
			return -ENOMEM;
		return 0;
	}
}

/* ---- starting transfers ---- */

#define LIT HEADER_LIT

/* A message POST's Accept, and with Content-Type in one copy (every call sends them). */
static const char post_accept[] = "application/json, text/event-stream";
static const char post_fixed[] = "Accept: application/json, text/event-stream\r\n"
				 "Content-Type: application/json\r\n";

/* Headers for one transfer of c on behalf of h (c->h, or the transport a DELETE outlives):
 * accept NULL for none, the session's headers with the lengths noted when they were set. */
static int build_headers(struct call *c, const struct http_transport *h, const char *accept)
{
	const struct upstream_config *cfg = h->t.cfg;
	struct header_lines *hs = &c->hdrs;
	bool post = c->body && !c->resuming;
	const char *last;
	int rc = 0;

	header_lines_clear(hs);
	if (post && accept == post_accept) {
		memcpy(header_lines_extend(hs, sizeof(post_fixed) - 1), post_fixed,
		       sizeof(post_fixed) - 1);
	} else {
		if (accept && (rc = header_lines_add(hs, "Accept", accept)) != 0)
			return rc;
		if (post && (rc = header_lines_add_n(hs, LIT("Content-Type"),
					       LIT("application/json"))) != 0)
			return rc;
	}
	for (size_t i = 0; i < cfg->nheaders; i++)
		if ((rc = header_lines_add(hs, cfg->headers[i].name, cfg->headers[i].value)) != 0)
			return rc;
	c->had_session = h->session_id != NULL;
	c->session_gen = h->session_gen;
	if (h->session_id && (rc = header_lines_add_n(hs, LIT("Mcp-Session-Id"), h->session_id,
						h->session_id_len)) != 0)
		return rc;
	if (h->protocol_version &&
	    (rc = header_lines_add_n(hs, LIT("MCP-Protocol-Version"), h->protocol_version,
			       h->protocol_version_len)) != 0)
		return rc;
	if (c->resuming && c->sse && (last = sse_parser_last_id(c->sse)) &&
	    (rc = header_lines_add(hs, "Last-Event-ID", last)) != 0)
		return rc;
	if (c->traceparent[0] && (rc = header_lines_add(hs, "traceparent", c->traceparent)) == 0)
		rc = c->tracestate[0] ? header_lines_add(hs, "tracestate", c->tracestate) : 0;
	return rc;
}

static void on_done(void *arg, int err, const char *why, const char *detail);

static const struct http_exchange_cb exchange_cb = { on_head, on_body, on_done };

/* Start one HTTP exchange for c: POST (body), GET (stream or resume) or DELETE. */
static int call_start(struct call *c, const struct http_endpoint *ep, long timeout_ms,
		      long connect_ms)
{
	bool post = c->kind != CALL_DELETE && c->body && !c->resuming;
	struct http_exchange_req r = {
		.method = c->kind == CALL_DELETE ? "DELETE" : post ? "POST" : "GET",
		.headers = c->hdrs.p, .headers_len = c->hdrs.len,
		.body = post ? c->body : NULL, .body_len = post ? c->body_len : 0,
		.body_iov = post && c->npieces ? c->piece : NULL, .body_iovcnt = c->npieces,
		.timeout_ms = timeout_ms, .connect_ms = connect_ms,
	};

	if (!c->buf && !(c->buf = evbuffer_new()))
		return -ENOMEM;
	c->mode = BODY_UNKNOWN;
	c->delivered = false;
	return http_exchange_start(ep, &r, &exchange_cb, c, &c->x);
}

static long remaining_ms(const struct call *c)
{
	uint64_t now = clock_loop_ms();

	if (!c->deadline)
		return 0;
	return c->deadline > now ? (long)(c->deadline - now) : 1;
}

/* (Re)start a message call: the POST, or a resume GET with Last-Event-ID. */
static int post_start(struct call *c)
{
	const struct upstream_config *cfg = c->h->t.cfg;
	int rc;

	rc = build_headers(c, c->h, c->resuming ? "text/event-stream" : post_accept);
	if (rc == 0)
		rc = call_start(c, c->h->ep, remaining_ms(c), cfg->connect_timeout_ms);
	return rc;
}

static int stream_start(struct call *c)
{
	const struct upstream_config *cfg = c->h->t.cfg;
	int rc = build_headers(c, c->h, "text/event-stream");

	return rc ? rc : call_start(c, c->h->ep, 0, cfg->connect_timeout_ms);
}

static void timer_fired(evutil_socket_t fd, short what, void *arg);

static int call_arm(struct call *c, long delay_ms)
{
	struct timeval tv = { delay_ms / 1000, (delay_ms % 1000) * 1000 };

	if (!c->timer && !(c->timer = evtimer_new(c->h->t.base, timer_fired, c)))
		return -ENOMEM;
	return evtimer_add(c->timer, &tv) == 0 ? 0 : -ENOMEM;
}

static void open_stream(struct http_transport *h)
{
	struct call *c;
	int rc;

	if (h->stream)
		return;
	c = call_new(h, CALL_STREAM);
	h->stream = c;
	c->backoff_ms = STREAM_BACKOFF_MIN_MS;
	if ((rc = stream_start(c)) != 0) {
		log_error("upstream %s: cannot open the GET stream: %s", name_of(h), strerror(-rc));
		call_free(c);
	}
}

/* ---- finished transfers ---- */

/* A lost session: 404 to a request that carried the session id (the spec). The SDK's example
 * servers, server-everything among them, answer 400 with a JSON-RPC error about the session
 * instead; treat that as lost too, so such upstreams get re-initialised rather than failing
 * forever. */
static bool session_lost(struct call *c)
{
	bool lost = false;

	/* only the session this request carried: not one opened since by a new initialize */
	if (!c->had_session || !c->h->session_id || c->session_gen != c->h->session_gen)
		return false;
	if (c->status == 404)
		return true;
	if (c->status == 400 && evbuffer_get_length(c->buf)) {
		size_t n = evbuffer_get_length(c->buf);
		cJSON *j = cJSON_ParseWithLength((const char *)evbuffer_pullup(c->buf, -1), n);
		const cJSON *m = json_get(json_get(j, "error"), "message");
		lost = cJSON_IsString(m) && strcasestr(m->valuestring, "session") != NULL;
		cJSON_Delete(j);
	}
	return lost;
}

static void expire_session(struct http_transport *h)
{
	log_warn("upstream %s: session expired", name_of(h));
	session_clear(h);
	while (!list_empty(&h->calls))
		call_free(list_first_entry(&h->calls, struct call, link));
	queue_failure(h, D_DOWN, NULL, -ESTALE, "session expired");
}

static void fail_call(struct call *c, int err, const char *why)
{
	if (c->id)
		queue_failure(c->h, D_SEND_ERROR, c->id, err, why);
	else
		log_warn("upstream %s: message not delivered: %s", name_of(c->h), why);
	call_free(c);
}

/* The SSE answer to a request ended before the response: wait `retry` and poll with GET +
 * Last-Event-ID (2025-11-25), within the request's deadline. Returns false if it cannot. */
static bool schedule_resume(struct call *c)
{
	long delay = c->sse ? sse_parser_retry(c->sse) : -1;

	if (!c->sse || !sse_parser_last_id(c->sse))
		return false;
	if (delay < 0)
		delay = POLL_DEFAULT_MS;
	if (delay < POLL_MIN_MS)
		delay = POLL_MIN_MS;
	if (c->deadline && clock_loop_ms() + (uint64_t)delay >= c->deadline) {
		fail_call(c, -ETIMEDOUT, "upstream did not answer in time");
		return true;
	}
	call_stop(c);
	c->resuming = true;
	if (call_arm(c, delay) != 0)
		fail_call(c, -ENOMEM, "out of memory");
	return true;
}

static void post_done(struct call *c, int err, const char *reason)
{
	char why[WHY_MAX];

	/* Once the response is in, whatever the stream does next is no concern of the caller. */
	if (c->answered)
		goto done;
	if (c->err) {
		fail_call(c, c->err, c->why);
		return;
	}
	if (err) {
		if (err == -ECONNRESET && c->mode == BODY_SSE && schedule_resume(c))
			return;
		fail_call(c, err, reason);
		return;
	}
	if (session_lost(c)) {
		expire_session(c->h);
		return;
	}
	if (c->status < 200 || c->status > 299) {
		snprintf(why, sizeof(why), "HTTP %ld from upstream", c->status);
		fail_call(c, -EPROTO, why);
		return;
	}
	if (!c->id) {
		if (c->initialized)
			open_stream(c->h);
		goto done;
	}
	if (c->mode == BODY_JSON && evbuffer_get_length(c->buf)) {
		size_t n = evbuffer_get_length(c->buf);
		int rc = take_json(c, (const char *)evbuffer_pullup(c->buf, -1), n);
		if (rc) {
			fail_call(c, rc == -ENOMEM ? rc : -EPROTO, rc == -ENOMEM ? "out of memory" :
				  "non-JSON answer from upstream");
			return;
		}
	}
	if (c->answered)
		goto done;
	if (c->mode == BODY_SSE && schedule_resume(c))
		return;
	if (c->mode == BODY_SSE)
		snprintf(why, sizeof(why), "upstream ended the stream without a response");
	else
		snprintf(why, sizeof(why), "HTTP %ld from upstream without a response", c->status);
	fail_call(c, -EPROTO, why);
	return;
done:
	call_free(c);
}

static void stream_done(struct call *c, int err, const char *detail)
{
	struct http_transport *h = c->h;
	long delay;

	if (err == 0 && c->status == 405) {
		log_info("upstream %s: no GET stream offered (405)", name_of(h));
		call_free(c);
		return;
	}
	if (err == 0 && session_lost(c)) {
		expire_session(h);
		return;
	}
	if (err == 0 && c->status >= 400 && c->status < 500) {
		log_warn("upstream %s: GET stream refused: HTTP %ld", name_of(h), c->status);
		call_free(c);
		return;
	}
	if (c->err)
		log_warn("upstream %s: GET stream dropped: %s", name_of(h), c->why);
	else if (err)
		log_info("upstream %s: GET stream ended: %s", name_of(h), detail);
	/* Reconnect with backoff while the session lives; a stream that carried messages was
	 * healthy, so start the backoff again. Honour the server's retry as a floor. */
	if (c->delivered)
		c->backoff_ms = STREAM_BACKOFF_MIN_MS;
	delay = c->backoff_ms;
	if (c->sse && sse_parser_retry(c->sse) > delay)
		delay = sse_parser_retry(c->sse);
	c->backoff_ms = c->backoff_ms * 2 > STREAM_BACKOFF_MAX_MS ? STREAM_BACKOFF_MAX_MS :
			c->backoff_ms * 2;
	call_stop(c);
	c->resuming = c->sse && sse_parser_last_id(c->sse);
	if (call_arm(c, delay) != 0) {
		log_error("upstream %s: out of memory: GET stream not reconnected", name_of(h));
		call_free(c);
	}
}

static void on_done(void *arg, int err, const char *why, const char *detail)
{
	struct call *c = arg;

	c->x = NULL;                    /* freed by http_exchange when this returns */
	if (c->mode == BODY_UNKNOWN && !err)
		c->mode = BODY_SNIPPET; /* no status at all */
	if (!c->h) {                    /* the DELETE of a destroyed transport */
		if (err || c->status >= 300)
			log_debug("upstream http: session DELETE: %s", err ? detail : "HTTP error");
		call_free(c);
		return;
	}
	if (err && !c->err && c->kind != CALL_STREAM)
		log_warn("upstream %s: %s: %s", name_of(c->h), why, detail);
	if (c->kind == CALL_STREAM)
		stream_done(c, err, detail);
	else
		post_done(c, err, why);
}

static void timer_fired(evutil_socket_t fd, short what, void *arg)
{
	struct call *c = arg;
	int rc = c->kind == CALL_STREAM ? stream_start(c) : post_start(c);

	if (rc != 0) {
		if (c->kind == CALL_STREAM) {
			log_error("upstream %s: cannot reopen the GET stream: %s", name_of(c->h),
				  strerror(-rc));
			call_free(c);
		} else {
			fail_call(c, rc, "cannot reconnect to upstream");
		}
	}
	http_exchange_pump();
}

/* ---- public ---- */

int upstream_http_init(struct event_base *base)
{
	int rc = http_exchange_init(base, drain);

	if (rc == 0 && !g.queue.next) {
		list_init(&g.transports);
		list_init(&g.orphans);
		list_init(&g.queue);
	}
	return rc;
}

static void transport_free(struct http_transport *h)
{
	purge(h);
	while (!list_empty(&h->calls))
		call_free(list_first_entry(&h->calls, struct call, link));
	list_del(&h->link);
	session_clear(h);
	http_endpoint_free(h->ep);
	free(h);
}

void upstream_http_shutdown(void)
{
	if (!g.queue.next)
		return;
	while (!list_empty(&g.transports)) {
		struct http_transport *h = list_first_entry(&g.transports, struct http_transport, link);
		log_warn("upstream %s: transport not destroyed before shutdown", name_of(h));
		transport_free(h);
	}
	while (!list_empty(&g.orphans))
		call_free(list_first_entry(&g.orphans, struct call, link));
	while (!list_empty(&g.queue)) {
		struct delivery *d = list_first_entry(&g.queue, struct delivery, link);
		list_del(&d->link);
		delivery_free(d);
	}
	http_exchange_shutdown();
	memset(&g, 0, sizeof(g));
}

static int http_start(struct transport *t)
{
	return 0;       /* nothing to do until the first send */
}

/* What a POST sends: a message (msg), or one of the link's requests given as its parts
 * (method set: http_request). own, taken: msg or params, whose long Raw texts (a tools/call's
 * arguments as the agent wrote them: mcp/jsonrpc_splice.h) are sent from where they lie. */
struct outgoing {
	const cJSON *msg;
	uint64_t id;
	const char *method;
	const cJSON *params;
	cJSON *own;
};

/* The body of c: the request's envelope around its params' print, or msg printed. With
 * own, the call keeps it while its holes are sent. */
static int print_body(struct call *c, const struct outgoing *o)
{
	struct jsonw_hole holes[BODY_HOLES];
	struct jsonw w = { .buf = alloc_cache_get(JSONW_FIRST), .cap = JSONW_FIRST,
			   .holes = holes, .max_holes = o->own ? BODY_HOLES : 0 };
	char id[JSONW_INT_TEXT];
	int rc = 0;

	if (o->method) {        /* as cJSON prints jsonrpc_request's tree */
		jsonw_raw(&w, "{\"jsonrpc\":\"2.0\",\"id\":", 22);
		jsonw_raw(&w, id, jsonw_int_text(id, (int64_t)o->id));
		jsonw_raw(&w, ",\"method\":", 10);
		jsonw_str(&w, o->method);
		if (o->params) {
			jsonw_raw(&w, ",\"params\":", 10);
			rc = jsonw_value(&w, o->params);
		}
		jsonw_raw(&w, "}", 1);
	} else {
		rc = jsonw_value(&w, o->msg);
	}
	if (rc) {
		alloc_cache_put(w.buf);
		return -ENOMEM;
	}
	c->body = w.buf;
	c->body_len = w.len;
	if (w.nholes) {
		c->npieces = jsonw_iov(&w, c->piece);
		c->msg = o->own;
	}
	return 0;
}

/* POST o; o->own is freed now or when the call ends. */
static int send_call(struct http_transport *h, struct outgoing *o)
{
	struct transport *t = &h->t;
	const cJSON *id = o->method ? NULL : json_get(o->msg, "id");
	const char *method = o->method ? o->method
				       : cJSON_GetStringValue(json_get(o->msg, "method"));
	bool request = o->method || (method && id && !cJSON_IsNull(id));
	struct call *c = NULL;
	int rc = -EINVAL;

	if (!o->method && !cJSON_IsObject(o->msg))
		goto fail;
	c = call_new(h, CALL_POST);
	if ((rc = print_body(c, o)) != 0)
		goto fail;
	if (c->msg)
		o->own = NULL;  /* the call's now */
	rc = -ENOMEM;
	if (request) {
		if (!(c->id = id ? cJSON_Duplicate(id, true) : cJSON_CreateNumber((double)o->id)))
			goto fail;
		c->initialize = strcmp(method, "initialize") == 0;
		c->splice = strcmp(method, "tools/call") == 0;
		if (trace_enabled())  /* mcp/call_trace.c put the call's context in _meta */
			trace_meta_headers(o->method ? o->params : json_get(o->msg, "params"),
					   c->traceparent, c->tracestate);
	} else {
		c->initialized = method && strcmp(method, "notifications/initialized") == 0;
	}
	if (t->cfg->request_timeout_ms > 0)
		c->deadline = clock_loop_ms() + (uint64_t)t->cfg->request_timeout_ms;
	if (c->initialize) {
		/* A new session: forget the old one (and its stream) so no stale id is sent. */
		if (h->stream)
			call_free(h->stream);
		session_clear(h);
	}
	if ((rc = post_start(c)) != 0)
		goto fail;
	cJSON_Delete(o->own);   /* sent from its print alone */
	return 0;
fail:
	if (c)
		call_free(c);   /* and own with it, if it held it */
	cJSON_Delete(o->own);
	return rc;
}

static int http_send(struct transport *t, const cJSON *msg)
{
	return send_call((struct http_transport *)t, &(struct outgoing){ .msg = msg });
}

static int http_give(struct transport *t, cJSON *msg)
{
	return send_call((struct http_transport *)t, &(struct outgoing){ .msg = msg, .own = msg });
}

static int http_request(struct transport *t, uint64_t id, const char *method, cJSON *params)
{
	return send_call((struct http_transport *)t, &(struct outgoing){
		.id = id, .method = method, .params = params, .own = params });
}

/* DELETE the session, best effort: an orphan call that outlives the transport, with a short
 * timeout, and whose outcome no one waits for. */
static void delete_session(struct http_transport *h)
{
	struct call *c = call_new(NULL, CALL_DELETE);
	const struct upstream_config *cfg = h->t.cfg;
	int rc = build_headers(c, h, NULL);

	if (rc == 0) {
		long connect_ms = cfg->connect_timeout_ms;
		if (connect_ms <= 0 || connect_ms > DELETE_TIMEOUT_MS)
			connect_ms = DELETE_TIMEOUT_MS;
		rc = call_start(c, h->ep, DELETE_TIMEOUT_MS, connect_ms);
	}
	if (rc != 0) {
		log_debug("upstream %s: session not deleted: %s", name_of(h), strerror(-rc));
		call_free(c);
	}
}

static void http_destroy(struct transport *t)
{
	struct http_transport *h = (struct http_transport *)t;

	purge(h);
	while (!list_empty(&h->calls))
		call_free(list_first_entry(&h->calls, struct call, link));
	if (h->session_id)
		delete_session(h);
	transport_free(h);
}

static const struct transport_ops http_ops = {
	.start = http_start,
	.send = http_send,
	.give = http_give,
	.request = http_request,
	.destroy = http_destroy,
};

int upstream_http_new(struct event_base *base, const struct upstream_config *cfg,
		      const struct transport_cb *cb, struct transport **out)
{
	struct http_transport *h;
	int rc;

	if (!http_exchange_running(base)) {
		log_error("upstream http: upstream_http_init was not called for this event base");
		return -EINVAL;
	}
	for (size_t i = 0; i < cfg->nheaders; i++) {
		const struct config_header *ch = &cfg->headers[i];
		if (!ch->name || !ch->value || !*ch->name || strpbrk(ch->name, ":\r\n \t") ||
		    strpbrk(ch->value, "\r\n")) {
			log_error("upstream %s: invalid header %zu", cfg->name, i);
			return -EINVAL;
		}
	}
	h = xcalloc(1, sizeof(*h));
	/* http(s) with a host; a name only with an asynchronous resolver (never block the loop) */
	if ((rc = http_endpoint_new(cfg->url, cfg->name, &h->ep)) != 0) {
		free(h);
		return rc;
	}
	list_init(&h->calls);
	h->t.ops = &http_ops;
	h->t.cfg = cfg;
	h->t.base = base;
	h->t.cb = *cb;
	list_add(&h->link, &g.transports);
	*out = &h->t;
	return 0;
}

const char *upstream_http_session_id(const struct transport *t)
{
	return t && t->ops == &http_ops ? ((const struct http_transport *)t)->session_id : NULL;
}

const char *upstream_http_protocol_version(const struct transport *t)
{
	return t && t->ops == &http_ops ? ((const struct http_transport *)t)->protocol_version :
	       NULL;
}
