/* front_reply: how the front writes to an agent — JSON answers (a refusal's HTTP status and
 * Retry-After), SSE events, and the replies calls answer through (mcp/reply.h), those of a
 * 2025-03-26 batch gathered into one JSON array. The front's own: front.c reads requests,
 * this writes what goes back. */
#ifndef WARDEN_FRONT_REPLY_H
#define WARDEN_FRONT_REPLY_H

#include <stdint.h>

#include <cjson/cJSON.h>

struct http_req;
struct reply;
struct front_batch;

/* body as JSON (NULL: none), its long Raw texts sent from where they lie. */
void front_send_json(struct http_req *req, int status, const char *reason, const cJSON *body);
/* An HTTP-level refusal whose body is a JSON-RPC error without id (the spec's form). */
void front_send_error(struct http_req *req, int status, const char *reason, int code,
		      const char *message);
/* A JSON-RPC answer: 200, or the HTTP status its refusal maps to, with Retry-After. */
void front_send_answer(struct http_req *req, const cJSON *response);
/* An SSE stream on req (200, text/event-stream), and one "message" event on it. */
void front_start_stream(struct http_req *req);
int front_write_event(struct http_req *req, const cJSON *msg);

/* The reply to req (received at rx_ns, monotonic), made req's on_gone: freed once finished,
 * or when the client leaves. */
struct reply *front_reply_new(struct http_req *req, uint64_t rx_ns);
/* A reply never handed over (the request was refused first). */
void front_reply_drop(struct http_req *req, struct reply *r);
/* What a span needs of req in a reply (mcp/reply.h): its arrival, trace context and peer. */
void front_reply_trace_view(struct http_req *req, uint64_t rx_ns, struct reply *view);

/* A batch answering req once every element is: made req's on_gone. front_batch_add puts an
 * answer in directly (taken), front_batch_reply gives an element's request its reply, and
 * front_batch_done is called once all are dispatched (the last to end sends the array). */
struct front_batch *front_batch_new(struct http_req *req);
void front_batch_add(struct front_batch *b, cJSON *response);
struct reply *front_batch_reply(struct front_batch *b, uint64_t rx_ns);
void front_batch_done(struct front_batch *b);

#endif
