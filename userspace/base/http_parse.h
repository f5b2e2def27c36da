/* http_parse: a strict, incremental HTTP/1.1 parser (RFC 9112): of responses for
 * base/http_client, of requests for base/http_server.
 *
 * Feed it the bytes of a connection cut anywhere; it calls back once when the start line and
 * headers are in, then with each piece of the body, de-chunked. It stops at the end of one
 * message and says how much it consumed: what follows is the next one (a pipelined request;
 * a response a client that sends one request at a time never expects).
 * Strict: CRLF line ends only, no obs-fold, header names are tokens, values have no control
 * characters, one Content-Length (or identical repeats), Transfer-Encoding only "chunked" and
 * never with Content-Length (no request smuggling through us), bounded head and chunk lines.
 * 1xx interim answers are skipped; 204 and 304 have no body; without a length or chunking the
 * body runs to the connection's end (http_parse_eof). A request without either has no body;
 * its method is a token and its target has no space or control character. Up to four empty
 * lines before a request line are skipped (RFC 9112, 2.2).
 */
#ifndef WARDEN_HTTP_PARSE_H
#define WARDEN_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define HTTP_HEAD_MAX           (64u << 10)     /* status line + headers, and trailers */
#define HTTP_HEADERS_MAX        100
#define HTTP_CHUNK_LINE_MAX     128             /* chunk size line with extensions */

struct http_header {
	const char *name;       /* NUL-terminated, as received */
	const char *value;      /* NUL-terminated, surrounding whitespace trimmed */
	size_t name_len;        /* lookups compare lengths first */
};

/* What the head callback sees. A response's is valid during the callback only; a request's
 * until the parser is reset (the server reads it while the request is served). */
struct http_head {
	int status;             /* a response's: 200..599 */
	const char *method;     /* a request's, as sent ("POST") */
	const char *target;     /* a request's, as sent ("/mcp?x=1") */
	uint64_t length;        /* a request's Content-Length (0 without) */
	bool chunked;           /* a request's body is chunked */
	bool expect_continue;   /* a request's "Expect: 100-continue" */
	bool expect_other;      /* a request's Expect with anything else */
	int minor;              /* HTTP/1.<minor> */
	bool keep_alive;        /* the connection may carry another message afterwards */
	const struct http_header *headers;
	size_t nheaders;
};

/* Case-insensitive lookup of the first header called name, or NULL. */
const char *http_head_get(const struct http_head *h, const char *name);

struct http_parse_cb {
	/* 0 to go on; a negative errno stops parsing and is returned by http_parse_feed. */
	int (*head)(void *arg, const struct http_head *h);
	int (*body)(void *arg, const char *p, size_t n);
};

enum http_parse_state {
	HP_HEAD,                /* status line and headers */
	HP_BODY_LENGTH,         /* Content-Length bytes left */
	HP_CHUNK_SIZE,          /* the chunk size line */
	HP_CHUNK_DATA,
	HP_CHUNK_CR, HP_CHUNK_LF,       /* the CRLF after a chunk's data */
	HP_TRAILER,             /* trailer lines after the last chunk, up to an empty one */
	HP_BODY_CLOSE,          /* the body runs to the connection's end */
	HP_DONE,
	HP_FAILED,
};

struct http_parser {
	enum http_parse_state state;
	bool request;           /* parses requests (http_parser_init_request) */
	size_t head_max;        /* start line + headers, at most (HTTP_HEAD_MAX by default) */
	struct http_parse_cb cb;
	void *arg;
	struct http_head head;
	struct http_header hdr[HTTP_HEADERS_MAX];
	char *buf;              /* the head (kept for reuse) */
	size_t len, cap;
	char *lbuf;             /* a chunk size or trailer line being read (kept for reuse) */
	size_t llen, lcap;
	size_t trailer_bytes;
	uint64_t left;          /* of Content-Length or of the current chunk */
	bool chunked;
	bool started;           /* a byte of a message arrived since init or reset */
	bool head_seen;         /* the current message's head was parsed */
	bool lead_cr;           /* a request: the CR of an empty line before it */
	uint8_t empty_lines;    /* a request: empty lines skipped before it */
	int err;                /* once failed */
};

/* Does the comma-separated header value v list tok (case-insensitive; an element's parameters,
 * after ';', are not compared): Connection's "close", Accept's "application/json". */
bool http_list_has(const char *v, const char *tok);
/* Which of n (at most 32) tokens v lists, in one pass over v: bit i for toks[i]. */
uint32_t http_list_match(const char *v, const char *const *toks, size_t n);

/* Ready the parser for the first response. The callbacks receive arg. */
void http_parser_init(struct http_parser *p, const struct http_parse_cb *cb, void *arg);
/* The same for requests, whose start line and headers may take head_max bytes
 * (<= HTTP_HEAD_MAX; 0: HTTP_HEAD_MAX): past it, or past HTTP_HEADERS_MAX headers, -EMSGSIZE
 * while the head is read. */
void http_parser_init_request(struct http_parser *p, const struct http_parse_cb *cb, void *arg,
			      size_t head_max);
/* Has the current message's head been parsed (an error before it is the head's)? */
static inline bool http_parse_head_seen(const struct http_parser *p) { return p->head_seen; }
/* Ready it for the next response on the same connection, keeping its buffer. */
void http_parser_reset(struct http_parser *p);
void http_parser_free(struct http_parser *p);

/* Bytes consumed (up to the response's end, so < len only once done), or a negative errno:
 * -EPROTO for a malformed response, -EMSGSIZE over a limit, or a callback's error. A failed
 * parser returns its error again. */
ssize_t http_parse_feed(struct http_parser *p, const char *data, size_t len);
/* The connection ended: 0 if that completes the response (a close-delimited body), -ECONNRESET
 * if the response had not begun or is cut short. */
int http_parse_eof(struct http_parser *p);
static inline bool http_parse_done(const struct http_parser *p) { return p->state == HP_DONE; }
/* Has any byte of a response arrived since the last init or reset? */
static inline bool http_parse_started(const struct http_parser *p) { return p->started; }

#endif
