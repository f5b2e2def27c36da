/* fuzz_http: the HTTP/1.1 response parser on any bytes cut into chunks anywhere (the first byte
 * sets the chunk size), as an upstream's answer arrives: it must never read out of bounds,
 * never consume more than it was given, and parse the same bytes the same way whole or cut. */
#include <errno.h>

#include "fuzz.h"
#include "base/http_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct seen {
	size_t heads, body;
	int status;
	unsigned long sum;      /* of the body bytes, to compare the two runs */
};

static int on_head(void *arg, const struct http_head *h)
{
	struct seen *s = arg;

	if (h->status < 200 || h->status > 599 || h->nheaders > HTTP_HEADERS_MAX)
		__builtin_trap();
	for (size_t i = 0; i < h->nheaders; i++)
		if (!h->headers[i].name[0] || !h->headers[i].value)
			__builtin_trap();
	(void)http_head_get(h, "content-type");
	s->heads++;
	s->status = h->status;
	return 0;
}

static int on_body(void *arg, const char *p, size_t n)
{
	struct seen *s = arg;

	for (size_t i = 0; i < n; i++)
		s->sum = s->sum * 31 + (unsigned char)p[i];
	s->body += n;
	return 0;
}

static const struct http_parse_cb cb = { on_head, on_body };

/* Feed data in chunks of `chunk`; returns the total consumed or the error. */
static ssize_t run(const uint8_t *data, size_t size, size_t chunk, struct seen *s, int *eof)
{
	struct http_parser p;
	size_t total = 0;
	ssize_t rc = 0;

	http_parser_init(&p, &cb, s);
	for (size_t off = 0; off < size && !http_parse_done(&p); off += chunk) {
		size_t n = size - off < chunk ? size - off : chunk;
		rc = http_parse_feed(&p, (const char *)data + off, n);
		if (rc < 0)
			break;
		if ((size_t)rc > n)
			__builtin_trap();
		total += (size_t)rc;
		if ((size_t)rc < n && !http_parse_done(&p))
			__builtin_trap();       /* stops short only at an answer's end */
	}
	*eof = rc < 0 ? (int)rc : http_parse_eof(&p);
	/* the buffer is reused for the next answer on the connection */
	http_parser_reset(&p);
	(void)http_parse_feed(&p, "HTTP/1.1 204 No Content\r\n\r\n", 27);
	if (!http_parse_done(&p))
		__builtin_trap();
	http_parser_free(&p);
	return rc < 0 ? rc : (ssize_t)total;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct seen a = { 0 }, b = { 0 };
	int ea, eb;

	if (size < 1)
		return 0;
	size_t chunk = (size_t)data[0] % 23 + 1;

	data++;
	size--;
	ssize_t ra = run(data, size, size ? size : 1, &a, &ea);
	ssize_t rb = run(data, size, chunk, &b, &eb);
	/* same verdict and same answer, whole or cut */
	if ((ra < 0) != (rb < 0) || (ra >= 0 && ea != eb))
		__builtin_trap();
	if (ra >= 0 && (ra != rb || a.heads != b.heads || a.status != b.status ||
			a.body != b.body || a.sum != b.sum))
		__builtin_trap();
	return 0;
}
