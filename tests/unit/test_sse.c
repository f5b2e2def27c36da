/* test_sse: the text/event-stream writer and incremental parser. */
#include "mcp/transport/sse.h"
#include "cunit_main.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>
#include <event2/buffer.h>

#define MAX_EVENTS 16

struct rec {
	int n;
	char *data[MAX_EVENTS];
	size_t len[MAX_EVENTS];
	char *type[MAX_EVENTS];
	char *id[MAX_EVENTS];
	int fail_at;            /* return -ECANCELED on this event number (1-based), 0: never */
};

static int on_event(void *arg, const struct sse_event *ev)
{
	struct rec *r = arg;

	if (r->fail_at && r->n + 1 == r->fail_at)
		return -ECANCELED;
	CU_ASSERT_FATAL(r->n < MAX_EVENTS);
	CU_ASSERT(strlen(ev->data) == ev->data_len);
	r->data[r->n] = strndup(ev->data, ev->data_len);
	r->len[r->n] = ev->data_len;
	r->type[r->n] = strdup(ev->type);
	r->id[r->n] = ev->id ? strdup(ev->id) : NULL;
	r->n++;
	return 0;
}

static void rec_clear(struct rec *r)
{
	for (int i = 0; i < r->n; i++) {
		free(r->data[i]);
		free(r->type[i]);
		free(r->id[i]);
	}
	memset(r, 0, sizeof(*r));
}

static struct sse_parser *parser(struct rec *r, size_t max)
{
	struct sse_parser *p = NULL;

	CU_ASSERT_FATAL(sse_parser_new(max, on_event, r, &p) == 0);
	return p;
}

/* Parse s in one feed; returns the feed's result. */
static int parse_all(const char *s, struct rec *r, long *retry, char **last_id)
{
	struct sse_parser *p = parser(r, 0);
	int rc = sse_parser_feed(p, s, strlen(s));

	if (retry)
		*retry = sse_parser_retry(p);
	if (last_id)
		*last_id = sse_parser_last_id(p) ? strdup(sse_parser_last_id(p)) : NULL;
	sse_parser_free(p);
	return rc;
}

static void test_basic_fields(void)
{
	struct rec r = { 0 };
	long retry;
	char *last = NULL;

	CU_ASSERT(parse_all("data: hello\n\n", &r, &retry, &last) == 0);
	CU_ASSERT_EQUAL(r.n, 1);
	CU_ASSERT_STRING_EQUAL(r.data[0], "hello");
	CU_ASSERT_STRING_EQUAL(r.type[0], "message");
	CU_ASSERT_PTR_NULL(r.id[0]);
	CU_ASSERT_EQUAL(retry, -1);
	CU_ASSERT_PTR_NULL(last);
	rec_clear(&r);

	/* Typed event with id and retry; unknown fields ignored; the id persists. */
	CU_ASSERT(parse_all("event: message\nid: 42\nretry: 1500\nfoo: bar\ndata: {\"a\":1}\n\n"
			    "event: ping\ndata:x\n\n", &r, &retry, &last) == 0);
	CU_ASSERT_EQUAL(r.n, 2);
	CU_ASSERT_STRING_EQUAL(r.data[0], "{\"a\":1}");
	CU_ASSERT_STRING_EQUAL(r.id[0], "42");
	CU_ASSERT_STRING_EQUAL(r.type[1], "ping");
	CU_ASSERT_STRING_EQUAL(r.data[1], "x");     /* no space after the colon */
	CU_ASSERT_STRING_EQUAL(r.id[1], "42");
	CU_ASSERT_EQUAL(retry, 1500);
	CU_ASSERT_STRING_EQUAL(last, "42");
	free(last);
	rec_clear(&r);

	/* Only one leading space is removed; a field without colon has an empty value; a bad
	 * retry is ignored. */
	CU_ASSERT(parse_all("retry: 12x\ndata:  two\ndata\n\n", &r, &retry, NULL) == 0);
	CU_ASSERT_EQUAL(r.n, 1);
	CU_ASSERT_STRING_EQUAL(r.data[0], " two\n");
	CU_ASSERT_EQUAL(retry, -1);
	rec_clear(&r);
}

static void test_multiline_and_line_ends(void)
{
	struct rec r = { 0 };

	CU_ASSERT(parse_all("data: a\ndata: b\n\ndata: c\r\ndata: d\r\n\r\ndata: e\rdata: f\r\r",
			    &r, NULL, NULL) == 0);
	CU_ASSERT_EQUAL(r.n, 3);
	CU_ASSERT_STRING_EQUAL(r.data[0], "a\nb");
	CU_ASSERT_STRING_EQUAL(r.data[1], "c\nd");
	CU_ASSERT_STRING_EQUAL(r.data[2], "e\nf");
	rec_clear(&r);

	/* A leading UTF-8 BOM is not part of the first field name. */
	CU_ASSERT(parse_all("\xEF\xBB\xBF" "data: bom\n\n", &r, NULL, NULL) == 0);
	CU_ASSERT_EQUAL(r.n, 1);
	CU_ASSERT_STRING_EQUAL(r.data[0], "bom");
	rec_clear(&r);
}

static void test_comments_priming_and_partial(void)
{
	struct rec r = { 0 };
	char *last = NULL;
	long retry;

	/* Comments (keep-alives) dispatch nothing. */
	CU_ASSERT(parse_all(": keep-alive\n\n:\n\n", &r, NULL, NULL) == 0);
	CU_ASSERT_EQUAL(r.n, 0);

	/* 2025-11-25 priming event: an id with an empty data line is dispatched with no data;
	 * an id-only event is not dispatched but still moves the last id. */
	CU_ASSERT(parse_all("id: prime-1\ndata: \n\nid: prime-2\nretry: 250\n\n", &r, &retry,
			    &last) == 0);
	CU_ASSERT_EQUAL(r.n, 1);
	CU_ASSERT_EQUAL(r.len[0], 0);
	CU_ASSERT_STRING_EQUAL(r.id[0], "prime-1");
	CU_ASSERT_STRING_EQUAL(last, "prime-2");
	CU_ASSERT_EQUAL(retry, 250);
	free(last);
	rec_clear(&r);

	/* An event cut off by the end of the stream is not dispatched; an empty id resets. */
	CU_ASSERT(parse_all("id: 1\ndata: done\n\nid:\ndata: cut", &r, NULL, &last) == 0);
	CU_ASSERT_EQUAL(r.n, 1);
	CU_ASSERT_PTR_NULL(last);
	rec_clear(&r);
}

/* The same stream fed in two pieces split at every byte, then one byte at a time, gives the
 * same events as one feed: CRLF split between CR and LF must stay one line break. */
static void test_every_chunk_boundary(void)
{
	static const char s[] = "\xEF\xBB\xBF: c\r\nid: 7\r\nevent: message\r\ndata: {\"x\":\r\n"
				"data: 1}\r\n\r\nretry: 99\rdata: two\r\rdata:three\n\n"
				"id: p\ndata: \n\ndata: \xE2\x82\xAC\r\n\r\n";
	size_t n = strlen(s);
	struct rec ref = { 0 }, r = { 0 };

	CU_ASSERT_FATAL(parse_all(s, &ref, NULL, NULL) == 0);
	CU_ASSERT_EQUAL_FATAL(ref.n, 5);
	CU_ASSERT_STRING_EQUAL(ref.data[0], "{\"x\":\n1}");
	CU_ASSERT_STRING_EQUAL(ref.id[0], "7");
	CU_ASSERT_STRING_EQUAL(ref.data[1], "two");
	CU_ASSERT_STRING_EQUAL(ref.data[2], "three");
	CU_ASSERT_EQUAL(ref.len[3], 0);
	CU_ASSERT_STRING_EQUAL(ref.id[3], "p");
	CU_ASSERT_STRING_EQUAL(ref.data[4], "\xE2\x82\xAC");

	for (size_t k = 0; k <= n + 1; k++) {
		struct sse_parser *p = parser(&r, 0);
		if (k <= n) {
			CU_ASSERT(sse_parser_feed(p, s, k) == 0);
			CU_ASSERT(sse_parser_feed(p, s + k, n - k) == 0);
		} else {
			for (size_t i = 0; i < n; i++)
				CU_ASSERT(sse_parser_feed(p, s + i, 1) == 0);
		}
		CU_ASSERT_EQUAL(r.n, ref.n);
		for (int e = 0; e < r.n && e < ref.n; e++) {
			CU_ASSERT(r.len[e] == ref.len[e] && memcmp(r.data[e], ref.data[e],
								  r.len[e]) == 0);
			CU_ASSERT_STRING_EQUAL(r.type[e], ref.type[e]);
			CU_ASSERT((r.id[e] == NULL) == (ref.id[e] == NULL));
			if (r.id[e] && ref.id[e])
				CU_ASSERT_STRING_EQUAL(r.id[e], ref.id[e]);
		}
		CU_ASSERT_EQUAL(sse_parser_retry(p), 99);
		sse_parser_free(p);
		rec_clear(&r);
	}
	rec_clear(&ref);
}

static void test_oversized_event(void)
{
	struct rec r = { 0 };
	struct sse_parser *p = parser(&r, 64);
	char big[200];

	memset(big, 'a', sizeof(big));
	CU_ASSERT(sse_parser_feed(p, "id: keep\ndata: small\n\n", 22) == 0);
	CU_ASSERT_EQUAL(r.n, 1);
	/* One long line, fed in pieces: refused as soon as it passes the bound. */
	CU_ASSERT(sse_parser_feed(p, "data: ", 6) == 0);
	CU_ASSERT(sse_parser_feed(p, big, 50) == 0);
	CU_ASSERT(sse_parser_feed(p, big, 50) == -EMSGSIZE);
	/* The error is sticky: the rest of this stream is not trusted. */
	CU_ASSERT(sse_parser_feed(p, "\n\ndata: ok\n\n", 12) == -EMSGSIZE);
	CU_ASSERT_EQUAL(r.n, 1);
	/* A new stream (reconnection) works again and keeps the last id. */
	sse_parser_reset(p);
	CU_ASSERT_STRING_EQUAL(sse_parser_last_id(p), "keep");
	CU_ASSERT(sse_parser_feed(p, "data: ok\n\n", 10) == 0);
	CU_ASSERT_EQUAL(r.n, 2);
	/* Many short data lines add up to the same bound. */
	for (int i = 0; i < 20; i++) {
		int rc = sse_parser_feed(p, "data: 0123456789\n", 17);
		CU_ASSERT(rc == 0 || rc == -EMSGSIZE);
		if (rc)
			break;
	}
	CU_ASSERT(sse_parser_feed(p, "\n", 1) == -EMSGSIZE);
	CU_ASSERT_EQUAL(r.n, 2);
	sse_parser_free(p);
	rec_clear(&r);
}

static void test_callback_error_stops(void)
{
	struct rec r = { .fail_at = 2 };
	struct sse_parser *p = parser(&r, 0);

	CU_ASSERT(sse_parser_feed(p, "data: 1\n\ndata: 2\n\ndata: 3\n\n", 27) == -ECANCELED);
	CU_ASSERT_EQUAL(r.n, 1);
	sse_parser_free(p);
	rec_clear(&r);
}

static char *drain(struct evbuffer *b)
{
	size_t n = evbuffer_get_length(b);
	char *s = malloc(n + 1);

	CU_ASSERT_FATAL(s != NULL);
	evbuffer_remove(b, s, n);
	s[n] = '\0';
	return s;
}

static void test_writer(void)
{
	struct evbuffer *b = evbuffer_new();
	char *s;

	CU_ASSERT_FATAL(b != NULL);
	CU_ASSERT(sse_write_event(b, "e1", "message", 2000, "{\"a\":1}", 7) == 0);
	s = drain(b);
	CU_ASSERT_STRING_EQUAL(s, "id: e1\nevent: message\nretry: 2000\ndata: {\"a\":1}\n\n");
	free(s);

	/* Data with LF, CRLF, CR and a trailing LF: one data line each. */
	CU_ASSERT(sse_write_event(b, NULL, NULL, -1, "a\nb\r\nc\rd\n", 9) == 0);
	s = drain(b);
	CU_ASSERT_STRING_EQUAL(s, "data: a\ndata: b\ndata: c\ndata: d\ndata:\n\n");
	free(s);

	/* Priming event: id, empty data. Id-only event: no data line. */
	CU_ASSERT(sse_write_event(b, "p", NULL, -1, "", 0) == 0);
	CU_ASSERT(sse_write_event(b, "q", NULL, 100, NULL, 0) == 0);
	CU_ASSERT(sse_write_comment(b, "keep-alive") == 0);
	s = drain(b);
	CU_ASSERT_STRING_EQUAL(s, "id: p\ndata:\n\nid: q\nretry: 100\n\n: keep-alive\n");
	free(s);

	/* An id or type that would break the framing is refused, nothing written. */
	CU_ASSERT(sse_write_event(b, "a\nb", NULL, -1, "x", 1) == -EINVAL);
	CU_ASSERT(sse_write_event(b, NULL, "t\r", -1, "x", 1) == -EINVAL);
	CU_ASSERT(sse_write_comment(b, "x\ny") == -EINVAL);
	CU_ASSERT_EQUAL(evbuffer_get_length(b), 0);
	evbuffer_free(b);
}

/* What the writer produces, the parser reads back (line breaks normalised to LF). */
static void test_round_trip(void)
{
	static const char *const datas[] = { "", "x", "line1\nline2", "a\r\nb", "end\n", "\n\n",
					     ": not a comment", "data: nested" };
	struct evbuffer *b = evbuffer_new();
	struct rec r = { 0 };
	struct sse_parser *p = parser(&r, 0);
	size_t nd = sizeof(datas) / sizeof(datas[0]);

	CU_ASSERT_FATAL(b != NULL);
	for (size_t i = 0; i < nd; i++)
		CU_ASSERT(sse_write_event(b, "id-1", NULL, -1, datas[i], strlen(datas[i])) == 0);
	char *s = drain(b);
	CU_ASSERT(sse_parser_feed(p, s, strlen(s)) == 0);
	free(s);
	CU_ASSERT_EQUAL_FATAL(r.n, (int)nd);
	CU_ASSERT_STRING_EQUAL(r.data[0], "");
	CU_ASSERT_STRING_EQUAL(r.data[1], "x");
	CU_ASSERT_STRING_EQUAL(r.data[2], "line1\nline2");
	CU_ASSERT_STRING_EQUAL(r.data[3], "a\nb");
	CU_ASSERT_STRING_EQUAL(r.data[4], "end\n");
	CU_ASSERT_STRING_EQUAL(r.data[5], "\n\n");
	CU_ASSERT_STRING_EQUAL(r.data[6], ": not a comment");
	CU_ASSERT_STRING_EQUAL(r.data[7], "data: nested");
	CU_ASSERT_STRING_EQUAL(r.id[7], "id-1");
	sse_parser_free(p);
	rec_clear(&r);
	evbuffer_free(b);
}

CU_MAIN("sse", NULL, NULL,
	{ "basic fields", test_basic_fields },
	{ "multi-line data, LF/CRLF/CR", test_multiline_and_line_ends },
	{ "comments, priming events, partial events", test_comments_priming_and_partial },
	{ "chunk boundary at every byte", test_every_chunk_boundary },
	{ "oversized events", test_oversized_event },
	{ "callback error stops parsing", test_callback_error_stops },
	{ "writer", test_writer },
	{ "writer/parser round trip", test_round_trip })
