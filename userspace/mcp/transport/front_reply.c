/* front_reply: how the front writes to an agent (front_reply.h). */
#include "mcp/transport/front_reply.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <event2/buffer.h>

#include "base/alloc.h"
#include "base/http_server.h"
#include "base/json_get.h"
#include "base/jsonw.h"
#include "base/list.h"
#include "govern/refusal.h"
#include "mcp/jsonrpc.h"
#include "mcp/reply.h"
#include "mcp/stateless.h"
#include "mcp/transport/front_headers.h"
#include "mcp/transport/front_refusal.h"
#include "mcp/transport/sse.h"
#include "observe/trace.h"

struct front_batch;

struct front_reply {
	struct reply base;               /* the interface the router answers through */
	struct http_req *req;
	bool streaming;
	void (*gone)(void *arg);
	void *gone_arg;
	struct front_batch *batch;       /* a request inside a 2025-03-26 batch */
	struct list_head in_batch;       /* in batch->children */
};

/* A 2025-03-26 JSON-RPC batch: answered as one JSON array once every request is done. */
struct front_batch {
	struct http_req *req;
	cJSON *responses;
	struct list_head children;      /* requests still in progress */
	unsigned pending;               /* children + 1 while the batch is being dispatched */
};

/* --- small HTTP helpers --------------------------------------------------------------- */

/* A JSON body, printed around its long Raw texts (a tool's answer kept as the upstream wrote
 * it: mcp/jsonrpc_splice.h), which go to the socket from where they lie: no copy of an answer
 * into the agent's (issue 9). */
#define SEND_HOLES ((HTTP_SENDV_MAX - 1) / 2)

void front_send_json(struct http_req *req, int status, const char *reason, const cJSON *body)
{
	struct jsonw_hole holes[SEND_HOLES];
	struct jsonw w = { .buf = alloc_cache_get(JSONW_FIRST), .cap = JSONW_FIRST,
			  .holes = holes, .max_holes = SEND_HOLES };
	struct iovec iov[2 * SEND_HOLES + 1];

	if (body && jsonrpc_write(&w, body) == 0)
		http_req_sendv(req, status, reason, "application/json", iov, jsonw_iov(&w, iov));
	else
		http_req_send(req, status, reason, NULL, NULL, 0);
	alloc_cache_put(w.buf);
}

/* An HTTP-level refusal whose body is a JSON-RPC error without id (the spec's form). */
void front_send_error(struct http_req *req, int status, const char *reason, int code,
		       const char *message)
{
	cJSON *e = jsonrpc_error(NULL, code, message, NULL);

	front_refused(req, status, e);
	front_send_json(req, status, reason, e);
	cJSON_Delete(e);
}

/* --- replies -------------------------------------------------------------------------- */

/* A client went away while its request was unanswered: forget it, and tell the router. */
static void reply_closed(void *arg)
{
	struct front_reply *r = arg;

	if (r->gone)
		r->gone(r->gone_arg);
	alloc_cache_put(r);
}

static void reply_set_gone(struct reply *base, void (*fn)(void *arg), void *arg)
{
	struct front_reply *r = container_of(base, struct front_reply, base);

	r->gone = fn;
	r->gone_arg = arg;
}

/* Whether any of n pieces holds a line break (an SSE data line must not). */
static bool breaks_line(const struct iovec *iov, int n)
{
	for (int i = 0; i < n; i++)
		if (memchr(iov[i].iov_base, '\n', iov[i].iov_len) ||
		    memchr(iov[i].iov_base, '\r', iov[i].iov_len))
			return true;
	return false;
}

/* An SSE "message" event carrying msg. Its print is one line (compact JSON escapes its
 * breaks), so the event is that line between "event: message\ndata: " and a blank line,
 * written as pieces with the long Raw texts from where they lie, as send_json does; a print
 * with a break in it (a Raw text may hold one) goes through sse_write_event's data lines. */
#define EVENT_HOLES ((HTTP_SENDV_MAX - 3) / 2)

int front_write_event(struct http_req *req, const cJSON *msg)
{
	static const char head[] = "event: message\ndata: ";
	struct jsonw_hole holes[EVENT_HOLES];
	struct jsonw w = { .buf = alloc_cache_get(JSONW_FIRST), .cap = JSONW_FIRST,
			   .holes = holes, .max_holes = EVENT_HOLES };
	struct iovec iov[2 * EVENT_HOLES + 3];
	struct evbuffer *text = NULL, *event = NULL;
	int n, rc = -ENOMEM;

	if (jsonrpc_write(&w, msg))
		goto out;
	n = jsonw_iov(&w, iov + 1);
	if (!breaks_line(iov + 1, n)) {
		iov[0] = (struct iovec){ (void *)head, sizeof(head) - 1 };
		iov[n + 1] = (struct iovec){ "\n\n", 2 };
		rc = http_req_stream_writev(req, iov, n + 2);
		goto out;
	}
	if (!(text = evbuffer_new()) || !(event = evbuffer_new()))
		goto out;
	for (int i = 0; i < n; i++)
		if (evbuffer_add(text, iov[1 + i].iov_base, iov[1 + i].iov_len))
			goto out;
	rc = sse_write_event(event, NULL, "message", -1, (const char *)evbuffer_pullup(text, -1),
			     evbuffer_get_length(text));
	if (rc == 0)
		rc = http_req_stream_write(req, evbuffer_pullup(event, -1),
					   evbuffer_get_length(event));
out:
	alloc_cache_put(w.buf);
	if (text)
		evbuffer_free(text);
	if (event)
		evbuffer_free(event);
	return rc;
}

void front_start_stream(struct http_req *req)
{
	http_req_set_header(req, "Content-Type", "text/event-stream");
	http_req_set_header(req, "Cache-Control", "no-cache, no-transform");
	http_req_stream_start(req, 200, "OK");
}


static void batch_child_finish(struct front_reply *r, cJSON *response)
{
	struct front_batch *b = r->batch;

	list_del(&r->in_batch);
	if (response)
		cJSON_AddItemToArray(b->responses, response);
	alloc_cache_put(r);
	front_batch_done(b);
}

static int reply_write_event(struct reply *base, const cJSON *msg)
{
	struct front_reply *r = container_of(base, struct front_reply, base);

	/* A batch is answered as one JSON array: nothing can be streamed before it. */
	if (r->batch)
		return -ENOTSUP;
	if (!r->streaming) {
		front_start_stream(r->req);
		r->streaming = true;
	}
	return front_write_event(r->req, msg);
}

/* A JSON answer: refusals that say when to retry carry Retry-After; a key at its session cap
 * is told as HTTP clients expect an overload (429). */
void front_send_answer(struct http_req *req, const cJSON *response)
{
	const cJSON *e = json_get(response, "error");
	const cJSON *code = json_get(e, "code");
	const cJSON *ra = json_get(json_get(e, "data"), "retry_after_ms");
	bool sessions = cJSON_IsNumber(code) && (code->valueint == REFUSAL_TOO_MANY_SESSIONS ||
						 code->valueint == REFUSAL_TOO_MANY_PENDING);

	if (cJSON_IsNumber(code) && (code->valueint == REFUSAL_RATE_LIMITED || sessions) &&
	    cJSON_IsNumber(ra)) {
		char buf[32];
		snprintf(buf, sizeof(buf), "%lld", ((long long)ra->valuedouble + 999) / 1000);
		http_req_set_header(req, "Retry-After", buf);
	}
	bool children = cJSON_IsNumber(code) && code->valueint == REFUSAL_TOO_MANY_CHILDREN;
	if (children && cJSON_IsNumber(ra)) {
		char buf[32];
		snprintf(buf, sizeof(buf), "%lld", ((long long)ra->valuedouble + 999) / 1000);
		http_req_set_header(req, "Retry-After", buf);
	}
	if (sessions)
		front_send_json(req, 429, "Too Many Requests", response);
	else if (children)
		front_send_json(req, 503, "Service Unavailable", response);
	else if (cJSON_IsNumber(code) && code->valueint == STATELESS_MISSING_CAPABILITY)
		front_send_json(req, 400, "Bad Request", response);   /* the revision says so */
	else
		front_send_json(req, 200, "OK", response);
}

/* The final answer written, then after(arg, response) (NULL: nothing) while both are still
 * there: the answer leaves before the work the agent need not wait for (mcp/reply.h). */
static void reply_write_final_then(struct reply *base, cJSON *response,
				   void (*after)(void *arg, const cJSON *response), void *arg)
{
	struct front_reply *r = container_of(base, struct front_reply, base);

	if (r->batch) {         /* the batch answers as a whole, later */
		if (after)
			after(arg, response);
		batch_child_finish(r, response);
		return;
	}
	http_req_on_gone(r->req, NULL, NULL);
	if (r->streaming) {
		if (response)
			front_write_event(r->req, response);
		http_req_stream_end(r->req);
	} else if (response) {
		front_send_answer(r->req, response);
	} else {
		http_req_send(r->req, 202, "Accepted", NULL, NULL, 0);
	}
	if (after)
		after(arg, response);
	cJSON_Delete(response);
	alloc_cache_put(r);
}

static void reply_write_final(struct reply *base, cJSON *response)
{
	reply_write_final_then(base, response, NULL, NULL);
}

static const struct reply_ops front_reply_ops = {
	.event = reply_write_event, .finish = reply_write_final, .on_gone = reply_set_gone,
	.finish_then = reply_write_final_then,
};

void front_reply_trace_view(struct http_req *req, uint64_t rx_ns, struct reply *base)
{
	uint16_t port = 0;

	base->received_ns = rx_ns;
	if (!trace_enabled())
		return;
	base->traceparent = front_header(req, FH_TRACEPARENT);
	base->tracestate = front_header(req, FH_TRACESTATE);
	base->peer = http_conn_peer_text(http_req_conn(req), &port);
	if (!*base->peer)
		base->peer = NULL;
	base->peer_port = port;
}

/* One a request: from the loop's kept blocks, and freed back to them (base/alloc.h). */
static struct front_reply *reply_alloc(struct http_req *req, uint64_t rx_ns)
{
	struct front_reply *r = xcalloc(1, sizeof(*r));

	r->base.ops = &front_reply_ops;
	r->req = req;
	front_reply_trace_view(req, rx_ns, &r->base);
	return r;
}

struct reply *front_reply_new(struct http_req *req, uint64_t rx_ns)
{
	struct front_reply *r = reply_alloc(req, rx_ns);

	http_req_on_gone(req, reply_closed, r);
	return &r->base;
}

void front_reply_drop(struct http_req *req, struct reply *base)
{
	http_req_on_gone(req, NULL, NULL);
	alloc_cache_put(container_of(base, struct front_reply, base));
}

/* --- a 2025-03-26 batch -------------------------------------------------------------------- */

static void batch_closed(void *arg)
{
	struct front_batch *b = arg;
	struct front_reply *r, *tmp;

	/* The client left: every request still running is told, then forgotten. */
	list_for_each_entry_safe(r, tmp, &b->children, in_batch) {
		list_del(&r->in_batch);
		if (r->gone)
			r->gone(r->gone_arg);
		alloc_cache_put(r);
	}
	cJSON_Delete(b->responses);
	free(b);
}

struct front_batch *front_batch_new(struct http_req *req)
{
	struct front_batch *b = xcalloc(1, sizeof(*b));

	b->responses = cJSON_CreateArray();
	list_init(&b->children);
	b->req = req;
	b->pending = 1;
	http_req_on_gone(req, batch_closed, b);
	return b;
}

void front_batch_add(struct front_batch *b, cJSON *response)
{
	cJSON_AddItemToArray(b->responses, response);
}

struct reply *front_batch_reply(struct front_batch *b, uint64_t rx_ns)
{
	struct front_reply *r = reply_alloc(b->req, rx_ns);

	r->batch = b;
	list_add(&r->in_batch, &b->children);
	b->pending++;
	return &r->base;
}

void front_batch_done(struct front_batch *b)
{
	if (--b->pending)
		return;
	http_req_on_gone(b->req, NULL, NULL);
	if (cJSON_GetArraySize(b->responses))
		front_send_json(b->req, 200, "OK", b->responses);
	else
		http_req_send(b->req, 202, "Accepted", NULL, NULL, 0); /* only notifications/responses */
	cJSON_Delete(b->responses);
	free(b);
}
