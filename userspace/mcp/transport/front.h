/* front: the agent-facing HTTP listener — MCP Streamable HTTP at one path.
 *
 * Owns everything HTTP: listening (loopback by default), header/body limits and timeouts,
 * Origin/Host checks, credentials extraction, Accept/Content-Type checks, session header and
 * MCP-Protocol-Version validation, status codes (202/400/401/403/404/405/406/413/415), and
 * writing replies as JSON or as an SSE stream. What a message means is the router's job.
 */
#ifndef WARDEN_FRONT_H
#define WARDEN_FRONT_H

#include <cjson/cJSON.h>
#include <event2/event.h>

struct config;
struct router;
struct front;
struct front_reply;   /* the pending answer to one POSTed request */
struct front_stream;  /* a session's GET stream */

int front_new(struct event_base *base, const struct config *cfg, struct router *r,
	      struct front **out);
void front_free(struct front *f);
/* The bound port (useful when the config asked for port 0). */
int front_port(const struct front *f);
/* Reload on the same listener (same host and port): first end every GET stream (their
 * sessions belong to the router being replaced), then serve cfg with router r. */
void front_close_streams(struct front *f);
void front_reconfigure(struct front *f, const struct config *cfg, struct router *r);

/* Called when the client goes away before the reply is finished: after it, r is gone. */
void front_reply_on_gone(struct front_reply *r, void (*fn)(void *arg), void *arg);
/* A message that belongs to the request (progress, logging, a server request): switches the
 * reply to an SSE stream if it is not one yet. */
int front_reply_event(struct front_reply *r, const cJSON *msg);
/* The final response (taken over): JSON, or the last SSE event then the end of the stream.
 * r is freed. */
void front_reply_finish(struct front_reply *r, cJSON *response);

int front_stream_event(struct front_stream *st, const cJSON *msg);
/* End a GET stream from the server side (the session ended). */
void front_stream_close(struct front_stream *st);

#endif
