/* http_parse: a strict, incremental HTTP/1.1 response parser (RFC 9112), for base/http_client.
 *
 * Feed it the bytes of a connection cut anywhere; it calls back once when the status line and
 * headers are in, then with each piece of the body, de-chunked. It stops at the end of one
 * response and says how much it consumed: what follows is the next response, which a client
 * that sends one request at a time never expects (the connection is then not reused).
 * Strict: CRLF line ends only, no obs-fold, header names are tokens, values have no control
 * characters, one Content-Length (or identical repeats), Transfer-Encoding only "chunked" and
 * never with Content-Length (no request smuggling through us), bounded head and chunk lines.
 * 1xx interim answers are skipped; 204 and 304 have no body; without a length or chunking the
 * body runs to the connection's end (http_parse_eof).
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
};

/* What the head callback sees; valid during the callback only. */
struct http_head {
	int status;             /* 200..599 */
	int minor;              /* HTTP/1.<minor> */
	bool keep_alive;        /* the connection may carry another request afterwards */
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
	struct http_parse_cb cb;
	void *arg;
	struct http_head head;
	struct http_header hdr[HTTP_HEADERS_MAX];
	char *buf;              /* the head being read (kept for reuse), or a chunk/trailer line */
	size_t len, cap;
	size_t trailer_bytes;
	uint64_t left;          /* of Content-Length or of the current chunk */
	bool chunked;
	bool started;           /* a byte of a response arrived since init or reset */
	int err;                /* once failed */
};

/* Ready the parser for the first response. The callbacks receive arg. */
void http_parser_init(struct http_parser *p, const struct http_parse_cb *cb, void *arg);
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
