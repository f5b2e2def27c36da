/* reply: how an answer gets back to the agent — the interface every downstream transport
 * implements (today the HTTP front). Types only.
 *
 * The request path runs one way: transport → session → gate → router → upstream. Nothing
 * below the transport knows it; what comes back travels through these two interfaces:
 *   - a reply: the pending answer to one request. Messages that belong to the request
 *     (progress, logging, a server's request to the client) go out as events before the
 *     final answer; finish() ends it.
 *   - a stream: a session's standing channel for messages that belong to no request (the
 *     GET stream of Streamable HTTP): list_changed, resource updates, server requests.
 */
#ifndef WARDEN_REPLY_H
#define WARDEN_REPLY_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

struct jsonrpc_request_text;
struct reply;
struct stream;

struct reply_ops {
	/* A message that belongs to the request; 0 or a negative errno (e.g. -ENOTSUP inside a
	 * 2025-03-26 batch, which can only answer as a whole). */
	int (*event)(struct reply *r, const cJSON *msg);
	/* The final answer (taken over; NULL: nothing to say, e.g. 202). r is gone after. */
	void (*finish)(struct reply *r, cJSON *response);
	/* fn(arg) runs if the client goes away before finish(); r is gone after it. */
	void (*on_gone)(struct reply *r, void (*fn)(void *arg), void *arg);
	/* Optional: finish, and then after(arg, response) once the answer has left, before
	 * response and r are freed: work the agent need not wait for (the call's record). */
	void (*finish_then)(struct reply *r, cJSON *response,
			    void (*after)(void *arg, const cJSON *response), void *arg);
};

struct reply {
	const struct reply_ops *ops;
	uint64_t received_ns;   /* the request arrived (monotonic); 0: unknown */
	/* Set only while tracing is on (observe/trace.h), and read when the call starts: the
	 * agent's W3C trace context headers (NULL: none) and its address (NULL: unknown). */
	const char *traceparent, *tracestate;
	const char *peer;
	uint16_t peer_port;
	/* A tools/call's params as the agent wrote them, kept by the front's one-pass parse
	 * (mcp/jsonrpc_splice.h), while the request is handed over only (one message, not a
	 * batch's element; NULL: none): the call takes the text when it starts. */
	struct jsonrpc_request_text *kept;
	/* Answers this request gave before its final one: the input_required rounds of a
	 * 2026-07-28 request (mcp/stateless.c counts them; the call's record reports them). */
	unsigned rounds;
	/* The answer this reply gave the agent itself, ending the request before its call
	 * ended (a 2026-07-28 upstream needs a capability the agent did not declare: -32021),
	 * and why: the call's record, made when it is cut short, reports these instead of the
	 * session's end. Owned by the reply; NULL: none. */
	const cJSON *answered;
	const char *answered_why;
};

struct stream_ops {
	int (*event)(struct stream *st, const cJSON *msg);
	/* Optional: the session ends while the stream is open (a 2026-07-28
	 * subscriptions/listen stream answers then); st is gone after. */
	void (*end)(struct stream *st);
};

struct stream {
	const struct stream_ops *ops;
};

static inline int reply_event(struct reply *r, const cJSON *msg) { return r->ops->event(r, msg); }
static inline void reply_finish(struct reply *r, cJSON *response) { r->ops->finish(r, response); }
/* finish, with after(arg, response) once the answer has left, or before it where the
 * transport cannot tell (no finish_then). */
static inline void reply_finish_then(struct reply *r, cJSON *response,
				     void (*after)(void *arg, const cJSON *response), void *arg)
{
	if (r->ops->finish_then) {
		r->ops->finish_then(r, response, after, arg);
	} else {
		after(arg, response);
		r->ops->finish(r, response);
	}
}
static inline void reply_on_gone(struct reply *r, void (*fn)(void *arg), void *arg)
{
	r->ops->on_gone(r, fn, arg);
}
static inline int stream_event(struct stream *st, const cJSON *msg) { return st->ops->event(st, msg); }

#endif
