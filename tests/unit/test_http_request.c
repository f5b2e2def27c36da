/* test_http_request: the request mode of the HTTP/1.1 parser (base/http_parse), what the
 * agent listener's server reads with, fed crafted bytes cut anywhere: fields, framing,
 * keep-alive, Expect, limits, pipelining, and every malformed form refused. */
#include <CUnit/Basic.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cunit_main.h"
#include "base/http_parse.h"

/* =============================== the parser, request mode =============================== */

struct preq {
	int heads;
	char method[32], target[512], host[64], first[64];  /* first: the first header's name */
	int minor;
	bool keep_alive, chunked, expect_continue, expect_other;
	uint64_t length;
	size_t body_at_head;    /* body bytes already delivered when the head came */
	char body[8192];
	size_t len;
};

static int p_head(void *arg, const struct http_head *h)
{
	struct preq *g = arg;
	const char *host = http_head_get(h, "HOST");

	g->heads++;
	snprintf(g->method, sizeof(g->method), "%s", h->method ? h->method : "(null)");
	snprintf(g->target, sizeof(g->target), "%s", h->target ? h->target : "(null)");
	snprintf(g->host, sizeof(g->host), "%s", host ? host : "");
	snprintf(g->first, sizeof(g->first), "%s", h->nheaders ? h->headers[0].name : "");
	g->minor = h->minor;
	g->keep_alive = h->keep_alive;
	g->chunked = h->chunked;
	g->expect_continue = h->expect_continue;
	g->expect_other = h->expect_other;
	g->length = h->length;
	g->body_at_head = g->len;
	return 0;
}

static int p_body(void *arg, const char *p, size_t n)
{
	struct preq *g = arg;

	if (g->len + n >= sizeof(g->body))
		return -ENOBUFS;
	memcpy(g->body + g->len, p, n);
	g->len += n;
	g->body[g->len] = '\0';
	return 0;
}

static const struct http_parse_cb pcb = { p_head, p_body };

/* Feed n bytes of s at once to a new request parser; the feed's result, and whether the
 * message is done and its head was seen. */
static ssize_t preq_parse(const char *s, size_t n, size_t head_max, struct preq *g, bool *done,
			  bool *head_seen)
{
	struct http_parser p;
	ssize_t rc;

	memset(g, 0, sizeof(*g));
	http_parser_init_request(&p, &pcb, g, head_max);
	rc = http_parse_feed(&p, s, n);
	*done = http_parse_done(&p);
	*head_seen = http_parse_head_seen(&p);
	/* a failed parser says so again */
	if (rc < 0)
		CU_ASSERT_EQUAL(http_parse_feed(&p, "x", 1), rc);
	http_parser_free(&p);
	return rc;
}

static void test_parse_post_bytewise(void)
{
	static const char s[] = "POST /mcp?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n"
				"hello world";
	size_t n = sizeof(s) - 1, head_end = (size_t)(strstr(s, "\r\n\r\n") - s) + 4;
	struct http_parser p;
	struct preq g = { 0 };

	http_parser_init_request(&p, &pcb, &g, 0);
	for (size_t i = 0; i < n; i++) {
		CU_ASSERT_EQUAL_FATAL(http_parse_feed(&p, s + i, 1), 1);
		/* the head is called back with the blank line's last byte, not before */
		CU_ASSERT_EQUAL(g.heads, i + 1 < head_end ? 0 : 1);
		CU_ASSERT_EQUAL(http_parse_head_seen(&p), i + 1 >= head_end);
		CU_ASSERT_EQUAL(http_parse_done(&p), i == n - 1);
	}
	CU_ASSERT_STRING_EQUAL(g.method, "POST");
	CU_ASSERT_STRING_EQUAL(g.target, "/mcp?x=1");
	CU_ASSERT_STRING_EQUAL(g.host, "h");
	CU_ASSERT_EQUAL(g.minor, 1);
	CU_ASSERT_EQUAL(g.length, 11);
	CU_ASSERT(!g.chunked);
	CU_ASSERT(g.keep_alive);
	CU_ASSERT(!g.expect_continue && !g.expect_other);
	CU_ASSERT_EQUAL(g.body_at_head, 0);
	CU_ASSERT(g.len == 11 && !memcmp(g.body, "hello world", 11));
	/* the head stays readable after the message is done (the server serves from it) */
	CU_ASSERT_STRING_EQUAL(p.head.method, "POST");
	CU_ASSERT_STRING_EQUAL(p.head.target, "/mcp?x=1");
	CU_ASSERT_STRING_EQUAL(http_head_get(&p.head, "content-length"), "11");
	/* done: more bytes are the next message's, not taken */
	CU_ASSERT_EQUAL(http_parse_feed(&p, "GET", 3), 0);
	http_parser_free(&p);
}

static void test_parse_chunked_request(void)
{
	static const char s[] = "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
				"5\r\nhello\r\n6;ext=1\r\n world\r\nA\r\n, and more\r\n0\r\n"
				"X-Trailer: t\r\n\r\n";
	static const char want[] = "hello world, and more";
	size_t n = sizeof(s) - 1;

	/* cut in two at every byte */
	for (size_t cut = 0; cut <= n; cut++) {
		struct http_parser p;
		struct preq g = { 0 };

		http_parser_init_request(&p, &pcb, &g, 0);
		ssize_t a = http_parse_feed(&p, s, cut);
		ssize_t b = http_parse_feed(&p, s + cut, n - cut);
		CU_ASSERT_CASE(a == (ssize_t)cut && b == (ssize_t)(n - cut), "chunked: every byte taken");
		CU_ASSERT_CASE(http_parse_done(&p), "chunked: done at the last CRLF");
		CU_ASSERT_CASE(g.heads == 1 && g.chunked && g.length == 0, "chunked: the head says so");
		CU_ASSERT_CASE(g.len == sizeof(want) - 1 && !memcmp(g.body, want, g.len),
			       "chunked: the body de-chunked");
		http_parser_free(&p);
	}
	/* and byte by byte: not done before the trailer's blank line */
	struct http_parser p;
	struct preq g = { 0 };
	http_parser_init_request(&p, &pcb, &g, 0);
	for (size_t i = 0; i < n; i++) {
		CU_ASSERT_EQUAL_FATAL(http_parse_feed(&p, s + i, 1), 1);
		CU_ASSERT_EQUAL(http_parse_done(&p), i == n - 1);
	}
	CU_ASSERT_STRING_EQUAL(g.body, want);
	http_parser_free(&p);
}

static void test_parse_head_fields(void)
{
	struct preq g;
	bool done, seen;
	const char *s;

	/* a GET without a body is done with its head */
	s = "GET /sse HTTP/1.1\r\nHost:   spaced.example   \r\nAccept: text/event-stream\r\n\r\n";
	CU_ASSERT_EQUAL(preq_parse(s, strlen(s), 0, &g, &done, &seen), (ssize_t)strlen(s));
	CU_ASSERT(done && seen);
	CU_ASSERT_EQUAL(g.heads, 1);
	CU_ASSERT_STRING_EQUAL(g.method, "GET");
	CU_ASSERT_STRING_EQUAL(g.target, "/sse");
	CU_ASSERT_STRING_EQUAL(g.host, "spaced.example");      /* trimmed */
	CU_ASSERT_EQUAL(g.length, 0);
	CU_ASSERT(!g.chunked);
	CU_ASSERT_EQUAL(g.len, 0);
	/* so is one with Content-Length: 0 */
	s = "DELETE /mcp HTTP/1.1\r\nContent-Length: 0\r\n\r\n";
	CU_ASSERT_EQUAL(preq_parse(s, strlen(s), 0, &g, &done, &seen), (ssize_t)strlen(s));
	CU_ASSERT(done);
	CU_ASSERT_STRING_EQUAL(g.method, "DELETE");
	/* an absolute-form target and an extension method are captured as sent */
	s = "PROPFIND http://h:8080/a/b?c=d HTTP/1.0\r\n\r\n";
	CU_ASSERT_EQUAL(preq_parse(s, strlen(s), 0, &g, &done, &seen), (ssize_t)strlen(s));
	CU_ASSERT(done);
	CU_ASSERT_STRING_EQUAL(g.method, "PROPFIND");
	CU_ASSERT_STRING_EQUAL(g.target, "http://h:8080/a/b?c=d");
	CU_ASSERT_EQUAL(g.minor, 0);
	/* a POST waits for its body: not done at the end of its head */
	s = "POST /mcp HTTP/1.1\r\nContent-Length: 2\r\n\r\n";
	CU_ASSERT_EQUAL(preq_parse(s, strlen(s), 0, &g, &done, &seen), (ssize_t)strlen(s));
	CU_ASSERT(!done && seen);
	CU_ASSERT_EQUAL(g.length, 2);
	/* repeated identical Content-Length is one */
	s = "POST /mcp HTTP/1.1\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\n{}";
	CU_ASSERT_EQUAL(preq_parse(s, strlen(s), 0, &g, &done, &seen), (ssize_t)strlen(s));
	CU_ASSERT(done);
	CU_ASSERT_STRING_EQUAL(g.body, "{}");
}

static void test_parse_keep_alive_and_expect(void)
{
	static const struct {
		const char *req;
		bool keep_alive, cont, other;
	} t[] = {
		{ "GET / HTTP/1.0\r\n\r\n", false, false, false },
		{ "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true, false, false },
		{ "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true, false, false },
		{ "GET / HTTP/1.0\r\nConnection: close\r\n\r\n", false, false, false },
		{ "GET / HTTP/1.1\r\n\r\n", true, false, false },
		{ "GET / HTTP/1.1\r\nConnection: close\r\n\r\n", false, false, false },
		{ "GET / HTTP/1.1\r\nConnection: keep-alive, Close\r\n\r\n", false, false, false },
		{ "GET / HTTP/1.1\r\nConnection: closed\r\n\r\n", true, false, false },
		{ "POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n", true, true,
		  false },
		{ "POST / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 2\r\n\r\n", true, true,
		  false },
		{ "POST / HTTP/1.1\r\nExpect: tea\r\nContent-Length: 2\r\n\r\n", true, false, true },
		{ "POST / HTTP/1.1\r\nExpect: 100-continue-ish\r\nContent-Length: 2\r\n\r\n", true,
		  false, true },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct preq g;
		bool done, seen;
		ssize_t rc = preq_parse(t[i].req, strlen(t[i].req), 0, &g, &done, &seen);

		CU_ASSERT_CASE(rc == (ssize_t)strlen(t[i].req) && g.heads == 1, t[i].req);
		CU_ASSERT_CASE(g.keep_alive == t[i].keep_alive, t[i].req);
		CU_ASSERT_CASE(g.expect_continue == t[i].cont, t[i].req);
		CU_ASSERT_CASE(g.expect_other == t[i].other, t[i].req);
	}
}

/* A control character anywhere in a header value is refused, whichever sixteen-byte piece of
 * the head it falls in, and so is a CR without its LF (at the value's end: "\r\r\n"); a tab
 * is a value's own; bytes past ASCII pass (obs-text). */
static void test_parse_control_anywhere(void)
{
	static const char bad[] = { 0x01, 0x0b, 0x1f, 0x7f, 0x00, 0x0c, '\r' };
	char req[256];

	for (size_t pos = 0; pos < 64; pos++) {
		for (size_t b = 0; b < sizeof(bad) + 2; b++) {
			char c = b < sizeof(bad) ? bad[b] : b == sizeof(bad) ? '\t' : (char)0xe9;
			char value[65];
			struct preq g;
			bool done, seen;

			memset(value, 'v', 64);
			value[64] = '\0';
			int n = snprintf(req, sizeof(req), "GET /%zu HTTP/1.1\r\nX-Long: %s\r\n\r\n",
					 pos, value);
			char *v = strstr(req, "X-Long: ") + 8;
			v[pos] = c;
			ssize_t rc = preq_parse(req, (size_t)n, 0, &g, &done, &seen);
			if (b < sizeof(bad))
				CU_ASSERT_CASE(rc == -EPROTO && g.heads == 0, "a control character");
			else
				CU_ASSERT_CASE(rc == n && done && g.heads == 1, "a tab or obs-text");
		}
	}
}

/* Every byte at every place of a header name longer than two 16-byte steps of the head's
 * control-character check: a token character is part of the name, ':' ends it (not as its
 * first byte), anything else refuses the request. The name starts at each offset of the
 * head, so that those steps fall differently against it and the head's end. */
static void test_parse_name_bytes(void)
{
	static const char tchar_punct[] = "!#$%&'*+-.^_`|~";
	char req[256], name[41];

	for (size_t pad = 0; pad < 16; pad++) {
		for (size_t pos = 0; pos < 40; pos++) {
			for (int c = 0; c < 256; c++) {
				struct preq g;
				bool done, seen;
				bool tchar = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
					     (c >= '0' && c <= '9') || (c && strchr(tchar_punct, c));

				if (c == '\r' || c == '\n')
					continue;       /* a line's end: not a name's byte */
				memset(name, 'n', 40);
				name[40] = '\0';
				name[pos] = (char)c;
				int n = snprintf(req, sizeof(req), "GET /%.*s HTTP/1.1\r\n", (int)pad,
						 "pppppppppppppppp");
				memcpy(req + n, name, 40);      /* as written: a NUL too */
				memcpy(req + n + 40, ": v\r\n\r\n", 7);
				n += 47;
				ssize_t rc = preq_parse(req, (size_t)n, 0, &g, &done, &seen);

				if (tchar) {
					CU_ASSERT_CASE(rc == n && g.heads == 1 && !strcmp(g.first, name),
						       "a token character");
				} else if (c == ':' && pos > 0) {
					CU_ASSERT_CASE(rc == n && g.heads == 1 && strlen(g.first) == pos &&
						       !strncmp(g.first, name, pos), "':' ends the name");
				} else {
					CU_ASSERT_CASE(rc == -EPROTO && g.heads == 0, "not a token");
				}
			}
		}
	}
}

/* Comma-separated header values: Connection's tokens, Accept's media ranges with parameters. */
static void test_list_has(void)
{
	CU_ASSERT(http_list_has("application/json, text/event-stream", "text/event-stream"));
	CU_ASSERT(http_list_has("text/event-stream;q=0.9,application/json", "text/event-stream"));
	CU_ASSERT(http_list_has("  APPLICATION/JSON ; q=1", "application/json"));
	CU_ASSERT(http_list_has("text/html, */*;q=0.8", "*/*"));
	CU_ASSERT(http_list_has("keep-alive, Upgrade", "upgrade"));
	CU_ASSERT(!http_list_has("application/jsonx", "application/json"));
	CU_ASSERT(!http_list_has("xapplication/json", "application/json"));
	CU_ASSERT(!http_list_has("text/html;x=application/json", "application/json"));
	CU_ASSERT(!http_list_has("", "close"));
	CU_ASSERT(!http_list_has(",,", "close"));

	/* several tokens in one pass: a bit for each listed, whatever the order */
	static const char *const types[] = { "*/*", "application/json", "text/event-stream" };
	CU_ASSERT_EQUAL(http_list_match("application/json, text/event-stream", types, 3), 6);
	CU_ASSERT_EQUAL(http_list_match("TEXT/EVENT-STREAM;q=1 ,application/json", types, 3), 6);
	CU_ASSERT_EQUAL(http_list_match("text/html, */*;q=0.8", types, 3), 1);
	CU_ASSERT_EQUAL(http_list_match("application/json", types, 3), 2);
	CU_ASSERT_EQUAL(http_list_match("*/*, application/json, text/event-stream", types, 3), 7);
	CU_ASSERT_EQUAL(http_list_match("application/jsonx, text/event-streams", types, 3), 0);
	CU_ASSERT_EQUAL(http_list_match("", types, 3), 0);
}

/* One malformed head: -EPROTO, and no head called back. */
#define BAD(s) { s, sizeof(s) - 1 }

/* RFC 9112, 2.2: a few empty lines before a request line are skipped (a client's CRLF after
 * a POST body, then its next request), whole or cut anywhere; past four, or a CR that is
 * not an empty line's, the request is malformed. */
static void test_parse_empty_lines(void)
{
	static const char ok[] = "\r\n\r\n\r\n\r\nPOST /e HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi";
	static const struct {
		const char *req;
		size_t len;
	} bad[] = {
		BAD("\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n\r\n"),  /* five */
		BAD("\r\r\nGET / HTTP/1.1\r\n\r\n"),
		BAD("\rGET / HTTP/1.1\r\n\r\n"),
		BAD("\nGET / HTTP/1.1\r\n\r\n"),                     /* a bare LF, as anywhere */
	};
	size_t n = sizeof(ok) - 1;
	struct preq g;
	bool done, seen;

	CU_ASSERT_EQUAL(preq_parse(ok, n, 0, &g, &done, &seen), (ssize_t)n);
	CU_ASSERT(done && g.heads == 1 && !strcmp(g.target, "/e") && !strcmp(g.body, "hi"));
	for (size_t cut = 1; cut < n; cut++) {
		struct http_parser p;
		ssize_t a, b;

		memset(&g, 0, sizeof(g));
		http_parser_init_request(&p, &pcb, &g, 0);
		a = http_parse_feed(&p, ok, cut);
		b = a == (ssize_t)cut ? http_parse_feed(&p, ok + cut, n - cut) : -1;
		CU_ASSERT_FATAL(a == (ssize_t)cut && b == (ssize_t)(n - cut));
		CU_ASSERT(http_parse_done(&p) && g.heads == 1 && !strcmp(g.body, "hi"));
		http_parser_free(&p);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CU_ASSERT_CASE(preq_parse(bad[i].req, bad[i].len, 0, &g, &done, &seen) == -EPROTO,
			       bad[i].req);
		CU_ASSERT_CASE(!seen && g.heads == 0, bad[i].req);
	}
}

static void test_parse_bad_request_lines(void)
{
	static const struct {
		const char *req;
		size_t len;
	} t[] = {
		BAD("GET /\r\n\r\n"),                           /* no version */
		BAD("GET\r\n\r\n"),
		BAD("GET /a b HTTP/1.1\r\n\r\n"),               /* a space in the target */
		BAD("GET  / HTTP/1.1\r\n\r\n"),                 /* an empty target */
		BAD(" GET / HTTP/1.1\r\n\r\n"),                 /* no method */
		BAD("GET / http/1.1\r\n\r\n"),                  /* lowercase version */
		BAD("GET / HTTP/2.0\r\n\r\n"),
		BAD("GET / HTTP/1.10\r\n\r\n"),
		BAD("GET / HTTP/1.1 \r\n\r\n"),
		BAD("GET /a\x01z HTTP/1.1\r\n\r\n"),            /* control characters */
		BAD("GET /a\x7f HTTP/1.1\r\n\r\n"),
		BAD("GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n"),      /* past ASCII: percent-encode it */
		BAD("GET /\xff HTTP/1.1\r\n\r\n"),
		BAD("GET /mcp\x80?a=b HTTP/1.1\r\n\r\n"),
		BAD("GET /a\tb HTTP/1.1\r\n\r\n"),
		BAD("GE\x01T / HTTP/1.1\r\n\r\n"),
		BAD("G:T / HTTP/1.1\r\n\r\n"),                  /* the method is not a token */
		BAD("GET / HTTP/1.1\n\n"),                      /* bare LF */
		BAD("GET / HTTP/1.1\r\nHost: h\n\r\n"),
		BAD("GET / HTTP/1.1\r\nX: a\nY: b\r\n\r\n"),      /* ... in a head that ends well */
		BAD("GET / HTTP/1.1\nX: a\r\n\r\n"),
		BAD("GET / HTTP/1.1\r\nX: a\r\nY: b\n\r\n\r\n"),
		BAD("GET / HTTP/1.1\r\nX: a\rb\r\n\r\n"),       /* a CR without its LF */
		BAD("GET / HTTP/1.1\r\n\rX: a\r\n\r\n"),       /* ... at a line's start */
		BAD("GET / HTTP/1.1\r\nX: a\r\n\r\r\n\r\n"),   /* ... the only byte of a line */
		BAD("GET / HTTP/1.1\r\nX: a\r\r\n\r\n"),       /* ... before a CRLF */
		BAD("GET / HTTP/1.1\r\r\n\r\n"),               /* ... ending the request line */
		BAD("GET /\r HTTP/1.1\r\n\r\n"),               /* ... in the request line */
		BAD("GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n"),     /* control character in a value */
		BAD("GET / HTTP/1.1\r\nX: a\0b\r\n\r\n"),       /* NUL */
		BAD("GET / HTTP/1.1\r\n folded\r\n\r\n"),       /* obs-fold */
		BAD("GET / HTTP/1.1\r\nBad Header: x\r\n\r\n"), /* the name is not a token */
		BAD("GET / HTTP/1.1\r\nNoColon\r\n\r\n"),
		BAD("GET / HTTP/1.1\r\n: empty-name\r\n\r\n"),
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct preq g;
		bool done, seen;
		ssize_t rc = preq_parse(t[i].req, t[i].len, 0, &g, &done, &seen);

		CU_ASSERT_CASE(rc == -EPROTO, t[i].req);
		CU_ASSERT_CASE(!seen && !done && g.heads == 0, t[i].req);
	}
}

static void test_parse_framing_conflicts(void)
{
	static const struct {
		const char *req;
		size_t len;
	} head[] = {
		/* Content-Length and Transfer-Encoding together: no smuggling through us */
		BAD("POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
		BAD("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"),
		BAD("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n"),
		BAD("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
		BAD("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"),
		BAD("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"),
		BAD("POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n"),
		BAD("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"),
		BAD("POST / HTTP/1.1\r\nContent-Length: 0x5\r\n\r\n"),
		BAD("POST / HTTP/1.1\r\nContent-Length: 1,1\r\n\r\n"),
		BAD("POST / HTTP/1.1\r\nContent-Length:\r\n\r\n"),
		BAD("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n"),
	}, body[] = {
		/* the head is fine, the chunked body is not */
		BAD("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
		BAD("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX"),
		BAD("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3 x\r\nabc\r\n"),
		BAD("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n"),
	};

	for (size_t i = 0; i < sizeof(head) / sizeof(head[0]); i++) {
		struct preq g;
		bool done, seen;

		CU_ASSERT_CASE(preq_parse(head[i].req, head[i].len, 0, &g, &done, &seen) == -EPROTO,
			       head[i].req);
		CU_ASSERT_CASE(!seen && g.heads == 0, head[i].req);
	}
	for (size_t i = 0; i < sizeof(body) / sizeof(body[0]); i++) {
		struct preq g;
		bool done, seen;

		CU_ASSERT_CASE(preq_parse(body[i].req, body[i].len, 0, &g, &done, &seen) == -EPROTO,
			       body[i].req);
		CU_ASSERT_CASE(seen && g.heads == 1 && !done, body[i].req);
	}
}

static void test_parse_head_max(void)
{
	char s[HTTP_HEAD_MAX + 512], v[HTTP_HEAD_MAX + 256];
	struct preq g;
	bool done, seen;
	int n;

	/* "GET / HTTP/1.1\r\n" + "X: <v>\r\n" + "\r\n" = 23 + |v| bytes: exactly 64 fits in 64 */
	memset(v, 'v', 41);
	v[41] = '\0';
	n = snprintf(s, sizeof(s), "GET / HTTP/1.1\r\nX: %s\r\n\r\n", v);
	CU_ASSERT_EQUAL_FATAL(n, 64);
	CU_ASSERT_EQUAL(preq_parse(s, (size_t)n, 64, &g, &done, &seen), 64);
	CU_ASSERT(done && seen);
	/* one more byte is too many, at once or byte by byte; the head was never seen */
	v[41] = 'v';
	v[42] = '\0';
	n = snprintf(s, sizeof(s), "GET / HTTP/1.1\r\nX: %s\r\n\r\n", v);
	CU_ASSERT_EQUAL(preq_parse(s, (size_t)n, 64, &g, &done, &seen), -EMSGSIZE);
	CU_ASSERT(!seen && !done && g.heads == 0);
	{
		struct http_parser p;
		ssize_t rc = 0;
		size_t i;

		memset(&g, 0, sizeof(g));
		http_parser_init_request(&p, &pcb, &g, 64);
		for (i = 0; i < (size_t)n && (rc = http_parse_feed(&p, s + i, 1)) == 1; i++)
			;
		CU_ASSERT_EQUAL(rc, -EMSGSIZE);
		CU_ASSERT_EQUAL(i, 63);                 /* refused at the 64th byte */
		CU_ASSERT(!http_parse_head_seen(&p));
		http_parser_free(&p);
	}
	/* head_max 0 is the default (64 KiB): a 10 KiB header goes */
	memset(v, 'v', 10240);
	v[10240] = '\0';
	n = snprintf(s, sizeof(s), "GET / HTTP/1.1\r\nX: %s\r\n\r\n", v);
	CU_ASSERT_EQUAL(preq_parse(s, (size_t)n, 0, &g, &done, &seen), n);
	CU_ASSERT(done);
	/* and a head_max above HTTP_HEAD_MAX is held to it */
	memset(v, 'v', HTTP_HEAD_MAX);
	v[HTTP_HEAD_MAX] = '\0';
	n = snprintf(s, sizeof(s), "GET / HTTP/1.1\r\nX: %s\r\n\r\n", v);
	CU_ASSERT_EQUAL(preq_parse(s, (size_t)n, 1u << 20, &g, &done, &seen), -EMSGSIZE);
	CU_ASSERT(!seen);
	/* HTTP_HEADERS_MAX headers go, one more is too many */
	for (int k = HTTP_HEADERS_MAX; k <= HTTP_HEADERS_MAX + 1; k++) {
		size_t off = (size_t)snprintf(s, sizeof(s), "GET / HTTP/1.1\r\n");
		for (int j = 0; j < k; j++)
			off += (size_t)snprintf(s + off, sizeof(s) - off, "H%d: x\r\n", j);
		off += (size_t)snprintf(s + off, sizeof(s) - off, "\r\n");
		ssize_t rc = preq_parse(s, off, 0, &g, &done, &seen);
		if (k == HTTP_HEADERS_MAX) {
			CU_ASSERT(rc == (ssize_t)off && done);
		} else {
			CU_ASSERT_EQUAL(rc, -EMSGSIZE);
			CU_ASSERT(!seen);
		}
	}
	/* a chunk size line past its bound is too large too, but after the head */
	memset(v, '0', 200);
	v[200] = '\0';
	n = snprintf(s, sizeof(s), "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n%s1\r\n", v);
	CU_ASSERT_EQUAL(preq_parse(s, (size_t)n, 0, &g, &done, &seen), -EMSGSIZE);
	CU_ASSERT(seen && g.heads == 1);
}

static void test_parse_pipelined(void)
{
	static const char *firsts[] = {
		"POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
		"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n2\r\nbc\r\n0\r\nT: 1\r\n\r\n",
	};
	static const char second[] = "GET /b HTTP/1.1\r\nHost: h\r\n\r\n";

	for (size_t i = 0; i < sizeof(firsts) / sizeof(firsts[0]); i++) {
		char buf[512];
		size_t first = strlen(firsts[i]);
		int n = snprintf(buf, sizeof(buf), "%s%s", firsts[i], second);
		struct http_parser p;
		struct preq g = { 0 };

		http_parser_init_request(&p, &pcb, &g, 0);
		/* the first consumes exactly its bytes */
		CU_ASSERT_CASE(http_parse_feed(&p, buf, (size_t)n) == (ssize_t)first, firsts[i]);
		CU_ASSERT_CASE(http_parse_done(&p) && g.heads == 1, firsts[i]);
		CU_ASSERT_CASE(!strcmp(g.target, "/a") && !strcmp(g.body, "abc"), firsts[i]);
		/* the rest is the next request, whole */
		http_parser_reset(&p);
		memset(&g, 0, sizeof(g));
		CU_ASSERT_CASE(http_parse_feed(&p, buf + first, (size_t)n - first) ==
				       (ssize_t)(sizeof(second) - 1), firsts[i]);
		CU_ASSERT_CASE(http_parse_done(&p) && g.heads == 1 && g.len == 0, firsts[i]);
		CU_ASSERT_CASE(!strcmp(g.method, "GET") && !strcmp(g.target, "/b") &&
				       !strcmp(g.host, "h"), firsts[i]);
		/* reset between requests: nothing of the next one started */
		http_parser_reset(&p);
		CU_ASSERT(!http_parse_started(&p) && !http_parse_head_seen(&p));
		http_parser_free(&p);
	}
	/* a request cut by the connection's end is cut short */
	struct http_parser p;
	struct preq g = { 0 };
	http_parser_init_request(&p, &pcb, &g, 0);
	static const char cut[] = "POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\na";
	CU_ASSERT_EQUAL(http_parse_feed(&p, cut, sizeof(cut) - 1), (ssize_t)sizeof(cut) - 1);
	CU_ASSERT(!http_parse_done(&p));
	CU_ASSERT(http_parse_started(&p));
	CU_ASSERT_EQUAL(http_parse_eof(&p), -ECONNRESET);
	http_parser_free(&p);
}

CU_MAIN("http_request", NULL, NULL,
	{ "parse: a POST fed byte by byte", test_parse_post_bytewise },
	{ "parse: a chunked request body, cut anywhere", test_parse_chunked_request },
	{ "parse: method, target, version; GET done at its head", test_parse_head_fields },
	{ "parse: keep-alive by version and Connection; Expect", test_parse_keep_alive_and_expect },
	{ "parse: malformed request lines and headers are -EPROTO", test_parse_bad_request_lines },
	{ "parse: conflicting or bad framing is -EPROTO", test_parse_framing_conflicts },
	{ "parse: head_max and the header count are -EMSGSIZE", test_parse_head_max },
	{ "parse: pipelined requests, each takes its own bytes", test_parse_pipelined },
	{ "parse: empty lines before a request line", test_parse_empty_lines },
	{ "parse: a control character anywhere in a value", test_parse_control_anywhere },
	{ "parse: every byte at every place of a header name", test_parse_name_bytes },
	{ "header lists: tokens and media ranges", test_list_has })
