/* fuzz_sse: the event-stream parser on any bytes cut into chunks anywhere (the first byte sets
 * the chunk size), as an HTTP upstream's answer arrives; then the writer's round trip: data
 * written as one event must be read back as exactly that data, line ends made LF. */
#include <errno.h>
#include <event2/buffer.h>

#include "fuzz.h"
#include "mcp/transport/sse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct seen {
	size_t events;
	char *data;       /* the last event's data */
	size_t len;
};

static int on_event(void *arg, const struct sse_event *ev)
{
	struct seen *s = arg;

	if (!ev->data || !ev->type || ev->data[ev->data_len] != '\0')
		__builtin_trap();
	s->events++;
	free(s->data);
	s->data = fuzz_strndup((const uint8_t *)ev->data, ev->data_len);
	s->len = ev->data_len;
	return s->data ? 0 : -ENOMEM;
}

/* data with CRLF and CR made LF, as the parser joins lines. */
static size_t normalise(const uint8_t *in, size_t n, char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		if (in[i] == '\r') {
			out[o++] = '\n';
			if (i + 1 < n && in[i + 1] == '\n')
				i++;
		} else {
			out[o++] = (char)in[i];
		}
	}
	return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct seen s = { 0 };
	struct sse_parser *p = NULL;
	struct evbuffer *buf = NULL;
	char *want = NULL;

	if (size < 1)
		return 0;
	size_t chunk = (size_t)data[0] % 17 + 1;

	data++;
	size--;
	/* A small bound so that the -EMSGSIZE path is reached too. */
	if (sse_parser_new(4096, on_event, &s, &p) < 0)
		return 0;
	for (size_t off = 0; off < size; off += chunk) {
		size_t n = size - off < chunk ? size - off : chunk;
		int rc = sse_parser_feed(p, (const char *)data + off, n);

		if (rc < 0 && rc != -EMSGSIZE && rc != -ENOMEM)
			__builtin_trap();
		if (rc == -EMSGSIZE)
			sse_parser_reset(p);
	}
	(void)sse_parser_last_id(p);
	(void)sse_parser_retry(p);
	sse_parser_free(p);
	p = NULL;

	/* Round trip, NUL bytes aside (the data is text). */
	if (memchr(data, '\0', size) || size > 4000)
		goto out;
	buf = evbuffer_new();
	want = malloc(size + 1);
	if (!buf || !want)
		goto out;
	size_t wlen = normalise(data, size, want);

	if (sse_write_event(buf, "7", NULL, -1, (const char *)data, size) < 0)
		goto out;
	if (sse_parser_new(0, on_event, &s, &p) < 0)
		goto out;
	size_t n = evbuffer_get_length(buf);
	const char *w = (const char *)evbuffer_pullup(buf, -1);

	s.events = 0;
	if (sse_parser_feed(p, w, n) < 0)
		goto out;
	if (s.events != 1 || s.len != wlen || memcmp(s.data, want, wlen) != 0)
		__builtin_trap();
	if (!sse_parser_last_id(p) || strcmp(sse_parser_last_id(p), "7") != 0)
		__builtin_trap();
out:
	sse_parser_free(p);
	if (buf)
		evbuffer_free(buf);
	free(want);
	free(s.data);
	return 0;
}
