/* sse: Server-Sent Events (text/event-stream), both directions.
 *
 * The writer formats one event into an evbuffer (the downstream front streams JSON-RPC messages
 * this way). The parser is incremental: feed it byte chunks cut anywhere and it calls back once
 * per complete event (the HTTP upstream reads POST answers and the GET stream this way). Parsing
 * follows the WHATWG "event stream interpretation" rules: LF, CRLF and CR line ends, ':' comments,
 * one optional space after the colon, several data lines joined by LF, id and retry fields. An
 * event with an empty "data:" line (the 2025-11-25 priming event) is dispatched with data_len 0;
 * one with no data line at all is not, but its id and retry still take effect.
 */
#ifndef WARDEN_SSE_H
#define WARDEN_SSE_H

#include <stddef.h>

struct evbuffer;

/* Default bound on one event (its data plus the line being read). */
#define SSE_MAX_EVENT_DEFAULT (16u << 20)

/* Append one event to out: "id:", "event:" and "retry:" lines when given (id/event NULL and
 * retry_ms < 0 mean absent), then data split on LF, CRLF or CR into one "data:" line each, then
 * the blank line that ends the event. data NULL writes no data line (an id-only event such as a
 * priming event); data "" writes one empty data line. Returns 0, -EINVAL if id or event contains
 * CR, LF or NUL (it would break the framing; nothing is written), or -ENOMEM. */
int sse_write_event(struct evbuffer *out, const char *id, const char *event, long retry_ms,
		    const char *data, size_t len);
/* Append a comment line (": text"), e.g. a keep-alive. Same errors as sse_write_event. */
int sse_write_comment(struct evbuffer *out, const char *text);

/* One dispatched event; the pointers are valid only during the callback. */
struct sse_event {
	const char *data;       /* the data lines joined by LF, NUL-terminated */
	size_t data_len;
	const char *type;       /* "event:" value, "message" when absent */
	const char *id;         /* the stream's last event id at dispatch; NULL if never set */
};

/* Return 0 to go on; a negative errno stops parsing and is returned by sse_parser_feed. */
typedef int (*sse_event_fn)(void *arg, const struct sse_event *ev);

struct sse_parser;

/* max_event: bound on the bytes of one event (0: SSE_MAX_EVENT_DEFAULT). */
int sse_parser_new(size_t max_event, sse_event_fn cb, void *arg, struct sse_parser **out);
void sse_parser_free(struct sse_parser *p);
/* Feed bytes. Returns 0; -EMSGSIZE when an event exceeds max_event; or the callback's error.
 * After an error the parser stays failed (every later feed returns the same error) until
 * sse_parser_reset. */
int sse_parser_feed(struct sse_parser *p, const char *buf, size_t len);
/* Start a new stream (a reconnection): drop any partial event and the error state, keep the
 * last event id and the retry value, as EventSource does. */
void sse_parser_reset(struct sse_parser *p);
/* The last event id seen (the value for Last-Event-ID), NULL if none yet. */
const char *sse_parser_last_id(const struct sse_parser *p);
/* The last "retry:" value in milliseconds, -1 if none. */
long sse_parser_retry(const struct sse_parser *p);

#endif
