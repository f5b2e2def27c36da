/* fuzz_http_request: the HTTP/1.1 request parser (base/http_parse in request mode, what the
 * agent listener's base/http_server reads with) on any bytes cut into chunks anywhere (the
 * first byte sets the chunk size), as an agent's request arrives: it must never read out of
 * bounds, never consume more than it was given nor stop short before a request's end, parse
 * the same bytes the same way whole or cut, and never hand over a request whose framing it
 * did not check (a body longer than its Content-Length, both Content-Length and chunked). */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "base/http_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HEAD_MAX 4096   /* what a listener with a small limits.max_header_bytes allows */

struct seen {
	size_t heads, body;
	uint64_t length;
	bool chunked;
	unsigned long sum;      /* of the body bytes and the start line, to compare the runs */
};

static int on_head(void *arg, const struct http_head *h)
{
	struct seen *s = arg;

	if (!h->method || !h->method[0] || !h->target || !h->target[0] ||
	    h->nheaders > HTTP_HEADERS_MAX || (h->chunked && h->length) || h->minor < 0 ||
	    h->minor > 9 || strchr(h->target, ' '))
		__builtin_trap();
	for (size_t i = 0; i < h->nheaders; i++)
		if (!h->headers[i].name[0] || !h->headers[i].value)
			__builtin_trap();
	(void)http_head_get(h, "host");
	for (const char *c = h->method; *c; c++)
		s->sum = s->sum * 31 + (unsigned char)*c;
	for (const char *c = h->target; *c; c++)
		s->sum = s->sum * 31 + (unsigned char)*c;
	s->heads++;
	s->length = h->length;
	s->chunked = h->chunked;
	return 0;
}

static int on_body(void *arg, const char *p, size_t n)
{
	struct seen *s = arg;

	for (size_t i = 0; i < n; i++)
		s->sum = s->sum * 31 + (unsigned char)p[i];
	s->body += n;
	if (!s->chunked && s->body > s->length)
		__builtin_trap();       /* more than Content-Length said */
	return 0;
}

static const struct http_parse_cb cb = { on_head, on_body };

/* Feed data in chunks of `chunk`; returns the total consumed or the error. */
static ssize_t run(const uint8_t *data, size_t size, size_t chunk, struct seen *s, bool *done)
{
	struct http_parser p;
	size_t total = 0;
	ssize_t rc = 0;

	http_parser_init_request(&p, &cb, s, HEAD_MAX);
	for (size_t off = 0; off < size && !http_parse_done(&p); off += chunk) {
		size_t n = size - off < chunk ? size - off : chunk;
		rc = http_parse_feed(&p, (const char *)data + off, n);
		if (rc < 0)
			break;
		if ((size_t)rc > n)
			__builtin_trap();
		total += (size_t)rc;
		if ((size_t)rc < n && !http_parse_done(&p))
			__builtin_trap();       /* stops short only at a request's end */
	}
	*done = http_parse_done(&p);
	if (*done && !s->chunked && s->body != s->length)
		__builtin_trap();               /* a whole request has all its body */
	/* the buffer is reused for the next request on the connection */
	http_parser_reset(&p);
	(void)http_parse_feed(&p, "GET / HTTP/1.1\r\n\r\n", 18);
	if (!http_parse_done(&p))
		__builtin_trap();
	http_parser_free(&p);
	return rc < 0 ? rc : (ssize_t)total;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct seen a = { 0 }, b = { 0 };
	bool da, db;

	if (size < 1)
		return 0;
	size_t chunk = (size_t)data[0] % 23 + 1;

	data++;
	size--;
	ssize_t ra = run(data, size, size ? size : 1, &a, &da);
	ssize_t rb = run(data, size, chunk, &b, &db);
	/* same verdict and same request, whole or cut */
	if ((ra < 0) != (rb < 0) || (ra >= 0 && da != db))
		__builtin_trap();
	if (ra >= 0 && (ra != rb || a.heads != b.heads || a.body != b.body || a.sum != b.sum))
		__builtin_trap();
	return 0;
}
