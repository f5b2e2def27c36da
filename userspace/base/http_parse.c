/* http_parse: the strict HTTP/1.1 parser of requests and responses (rules: the header). */
#include "base/http_parse.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "base/alloc.h"
#include "base/ascii.h"

/* RFC 9110 token characters. */
static const bool tchar[256] = {
	['0' ... '9'] = true, ['a' ... 'z'] = true, ['A' ... 'Z'] = true,
	['!'] = true, ['#'] = true, ['$'] = true, ['%'] = true, ['&'] = true, ['\''] = true,
	['*'] = true, ['+'] = true, ['-'] = true, ['.'] = true, ['^'] = true, ['_'] = true,
	['`'] = true, ['|'] = true, ['~'] = true,
};

static bool is_tchar(unsigned char c) { return tchar[c]; }

#define HTTP_EMPTY_LINES_MAX 4  /* before a request line, skipped */

static bool is_ows(char c) { return c == ' ' || c == '\t'; }

const char *http_head_get(const struct http_head *h, const char *name)
{
	size_t n = strlen(name);

	for (size_t i = 0; i < h->nheaders; i++)
		if (h->headers[i].name_len == n && ascii_caseeq(h->headers[i].name, name, n))
			return h->headers[i].value;
	return NULL;
}

void http_parser_init(struct http_parser *p, const struct http_parse_cb *cb, void *arg)
{
	memset(p, 0, sizeof(*p));
	p->cb = *cb;
	p->arg = arg;
	p->head.headers = p->hdr;
	p->head_max = HTTP_HEAD_MAX;
}

void http_parser_init_request(struct http_parser *p, const struct http_parse_cb *cb, void *arg,
			      size_t head_max)
{
	http_parser_init(p, cb, arg);
	p->request = true;
	p->head_max = head_max && head_max < HTTP_HEAD_MAX ? head_max : HTTP_HEAD_MAX;
}

void http_parser_reset(struct http_parser *p)
{
	p->state = HP_HEAD;
	p->len = 0;
	p->llen = 0;
	p->trailer_bytes = 0;
	p->left = 0;
	p->chunked = false;
	p->started = false;
	p->head_seen = false;
	p->lead_cr = false;
	p->empty_lines = 0;
	p->err = 0;
	memset(&p->head, 0, sizeof(p->head));
	p->head.headers = p->hdr;
}

void http_parser_free(struct http_parser *p)
{
	free(p->buf);
	free(p->lbuf);
	p->buf = p->lbuf = NULL;
	p->cap = p->lcap = 0;
}

static ssize_t fail(struct http_parser *p, int err)
{
	p->state = HP_FAILED;
	p->err = err;
	return err;
}

uint32_t http_list_match(const char *v, const char *const *toks, size_t n)
{
	size_t lens[32];
	uint32_t found = 0;

	n = n < 32 ? n : 32;
	for (size_t i = 0; i < n; i++)
		lens[i] = strlen(toks[i]);
	while (*v) {
		while (*v == ',' || is_ows(*v))
			v++;
		const char *s = v;
		while (*v && *v != ',' && *v != ';')
			v++;
		const char *e = v;
		while (e > s && is_ows(e[-1]))
			e--;
		for (size_t i = 0; i < n; i++)
			if ((size_t)(e - s) == lens[i] && ascii_caseeq(s, toks[i], lens[i]))
				found |= 1u << i;
		while (*v && *v != ',')
			v++;            /* the element's parameters */
	}
	return found;
}

bool http_list_has(const char *v, const char *tok)
{
	return http_list_match(v, &tok, 1) != 0;
}

static int parse_uint(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	if (!*s)
		return -EPROTO;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10)
			return -EPROTO;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return 0;
}

/* "METHOD SP target SP HTTP/1.x": the method a token, the target visible ASCII only (RFC
 * 9112 3.2 and RFC 3986: anything else is percent-encoded; a raw UTF-8 byte is a malformed
 * request, refused here rather than by whichever route reads it). Returns the line's end (its
 * NUL) or NULL. */
static char *request_line(struct http_parser *p, char *s)
{
	char *m = s, *t, *v;

	for (t = m; is_tchar((unsigned char)*t); t++)
		;
	if (t == m || *t != ' ')
		return NULL;
	*t++ = '\0';
	for (v = t; (unsigned char)*v > 0x20 && (unsigned char)*v < 0x7f; v++)
		;
	if (v == t || *v != ' ')
		return NULL;
	*v++ = '\0';
	if (memcmp(v, "HTTP/1.", 7) != 0 || v[7] < '0' || v[7] > '9' || v[8] != '\0')
		return NULL;
	p->head.method = m;
	p->head.target = t;
	p->head.minor = v[7] - '0';
	return v + 8;
}

/* "HTTP/1.x SSS reason". Returns the line's end (its NUL) or NULL. */
static char *status_line(struct http_parser *p, char *s, size_t n)
{
	char *e;

	if (n < 12 || memcmp(s, "HTTP/1.", 7) != 0 || s[7] < '0' || s[7] > '9' || s[8] != ' ' ||
	    s[9] < '1' || s[9] > '5' || s[10] < '0' || s[10] > '9' || s[11] < '0' || s[11] > '9' ||
	    (s[12] != ' ' && s[12] != '\0'))
		return NULL;
	p->head.minor = s[7] - '0';
	p->head.status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
	for (e = s + 12; *e; e++)
		if ((unsigned char)*e < 0x20 && *e != '\t')
			return NULL;
	return e;
}

/* Zeros after the head in p->buf: a 16-byte load from any byte of the head stays in it. */
#define HEAD_PAD 16
#define HEAD_LINES (HTTP_HEADERS_MAX + 2)       /* the start line, the headers, the blank */

/* The ends (LFs) of the n-byte head's lines into lf[] (at most max), in one pass that also
 * refuses a byte no head may hold: a control character (NUL too) but tab, CR and LF, or DEL;
 * a CR not followed by a LF, and a LF not after a CR.
 * Returns the lines, -EPROTO or -EMSGSIZE (more than max). Sixteen bytes at a time where there
 * is SSE2 (x86-64 always): s has HEAD_PAD bytes (zeros) after the head. */
static int head_lines(const char *s, size_t n, uint32_t *lf, size_t max)
{
	size_t nl = 0;
#ifdef __SSE2__
	unsigned cr_last = 0;   /* the previous block's last byte was a CR */
	const __m128i c1f = _mm_set1_epi8(0x1f), del = _mm_set1_epi8(0x7f),
		      tab = _mm_set1_epi8('\t'), cr = _mm_set1_epi8('\r'), nl_ = _mm_set1_epi8('\n');

	for (size_t i = 0; i < n; i += 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
		unsigned live = i + 16 <= n ? 0xffffu : (1u << (n - i)) - 1;
		__m128i ctl = _mm_cmpeq_epi8(_mm_min_epu8(v, c1f), v);         /* v <= 0x1f */
		__m128i crs = _mm_cmpeq_epi8(v, cr), lfs = _mm_cmpeq_epi8(v, nl_);
		__m128i ok = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, tab), crs), lfs);
		unsigned lfm = (unsigned)_mm_movemask_epi8(lfs) & live;

		if ((unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_andnot_si128(ok, ctl),
							     _mm_cmpeq_epi8(v, del))) & live)
			return -EPROTO;
		unsigned crm = (unsigned)_mm_movemask_epi8(crs) & live;
		unsigned after_cr = (crm << 1 | cr_last) & 0xffffu;
		if ((after_cr & ~lfm) | (lfm & ~after_cr))     /* CR and LF only as a pair */
			return -EPROTO;
		cr_last = crm >> 15;
		for (; lfm; lfm &= lfm - 1) {
			if (nl == max)
				return -EMSGSIZE;
			lf[nl++] = (uint32_t)(i + (size_t)__builtin_ctz(lfm));
		}
	}
	if (cr_last)
		return -EPROTO;
#else
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c < 0x20 && c != '\t' && c != '\r' && c != '\n') || c == 0x7f)
			return -EPROTO;
		if ((c == '\r' && s[i + 1] != '\n') || (c == '\n' && (!i || s[i - 1] != '\r')))
			return -EPROTO;
		if (c == '\n') {
			if (nl == max)
				return -EMSGSIZE;
			lf[nl++] = (uint32_t)i;
		}
	}
#endif
	return (int)nl;
}

/* The end of a header's name: its first byte that is no token character. Names are letters,
 * digits and '-' nearly always: sixteen of those at a time, then byte by byte from the first
 * other one. The line ends in a NUL before the head's padding. */
static char *name_end(char *s)
{
#ifdef __SSE2__
	const __m128i a = _mm_set1_epi8('a'), z = _mm_set1_epi8('z'), d0 = _mm_set1_epi8('0'),
		      d9 = _mm_set1_epi8('9'), dash = _mm_set1_epi8('-'), low = _mm_set1_epi8(0x20);

	for (;;) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)s);
		__m128i l = _mm_or_si128(v, low);       /* a letter's lower case; nothing else
							 * lands in a..z */
		__m128i alpha = _mm_and_si128(_mm_cmpeq_epi8(_mm_max_epu8(l, a), l),
					      _mm_cmpeq_epi8(_mm_min_epu8(l, z), l));
		__m128i digit = _mm_and_si128(_mm_cmpeq_epi8(_mm_max_epu8(v, d0), v),
					      _mm_cmpeq_epi8(_mm_min_epu8(v, d9), v));
		unsigned other = ~(unsigned)_mm_movemask_epi8(
			_mm_or_si128(_mm_or_si128(alpha, digit), _mm_cmpeq_epi8(v, dash))) & 0xffffu;

		if (other) {
			s += __builtin_ctz(other);
			break;
		}
		s += 16;
	}
#endif
	while (is_tchar((unsigned char)*s))
		s++;
	return s;
}

static int parse_head(struct http_parser *p, char *s, size_t n)
{
	char *line, *colon, *v, *e;
	const char *te = NULL, *conn = NULL, *expect = NULL;
	bool have_len = false;
	uint64_t len = 0;
	uint32_t lf[HEAD_LINES];
	int nl = head_lines(s, n, lf, HEAD_LINES);

	if (nl < 0)
		return nl;
	/* the head ends at its first blank line (feed_head): the last line, and the only one */
	if (nl < 2 || !lf[0] || lf[nl - 1] + 1 != n || lf[nl - 2] + 2 != lf[nl - 1])
		return -EPROTO;
	/* Each line ends in CRLF (no CR alone, every LF after a CR): both become NULs. */
	e = s + lf[0] - 1;
	e[0] = e[1] = '\0';
	if (!(p->request ? request_line(p, s) : status_line(p, s, (size_t)(e - s))))
		return -EPROTO;
	p->head.nheaders = 0;
	for (int i = 1; i < nl - 1; i++) {
		line = s + lf[i - 1] + 1;
		e = s + lf[i] - 1;
		e[0] = e[1] = '\0';
		if (is_ows(*line))
			return -EPROTO;                 /* obs-fold */
		colon = name_end(line);
		if (*colon != ':' || colon == line)
			return -EPROTO;
		size_t name_len = (size_t)(colon - line);
		*colon = '\0';
		for (v = colon + 1; is_ows(*v); v++)
			;
		while (e > v && is_ows(e[-1]))
			*--e = '\0';
		if (p->head.nheaders == HTTP_HEADERS_MAX)
			return -EMSGSIZE;
		p->hdr[p->head.nheaders++] = (struct http_header){ line, v, name_len };
		/* the few names that frame the message: the length first, then the name */
		if (name_len == 14 && ascii_caseeq(line, "Content-Length", 14)) {
			uint64_t l;
			if (parse_uint(v, &l) != 0 || (have_len && l != len))
				return -EPROTO;
			have_len = true;
			len = l;
		} else if (name_len == 17 && ascii_caseeq(line, "Transfer-Encoding", 17)) {
			if (te)
				return -EPROTO;
			te = v;
		} else if (name_len == 10 && ascii_caseeq(line, "Connection", 10)) {
			conn = v;
		} else if (name_len == 6 && p->request && ascii_caseeq(line, "Expect", 6)) {
			expect = v;
		}
	}
	p->head.keep_alive = p->head.minor >= 1 && !(conn && http_list_has(conn, "close"));
	if (te) {
		if (have_len || !ascii_caseeq_str(te, "chunked"))
			return -EPROTO;
		p->chunked = true;
	}
	if (p->request) {
		/* HTTP/1.0 keeps a connection only when it asks to. */
		if (p->head.minor == 0)
			p->head.keep_alive = conn && http_list_has(conn, "keep-alive");
		p->head.length = len;
		p->head.chunked = p->chunked;
		p->head.expect_continue = expect && ascii_caseeq_str(expect, "100-continue");
		p->head.expect_other = expect && !p->head.expect_continue;
		p->state = p->chunked ? HP_CHUNK_SIZE : len ? HP_BODY_LENGTH : HP_DONE;
		p->left = len;
	} else if (p->head.status < 200 || p->head.status == 204 || p->head.status == 304) {
		if (have_len && len)
			return -EPROTO;
		p->chunked = false;
		p->state = HP_DONE;
	} else if (p->chunked) {
		p->state = HP_CHUNK_SIZE;
	} else if (have_len) {
		p->left = len;
		p->state = len ? HP_BODY_LENGTH : HP_DONE;
	} else {
		p->head.keep_alive = false;
		p->state = HP_BODY_CLOSE;
	}
	return 0;
}

static void reserve(struct http_parser *p, size_t need)
{
	p->buf = xreserve(p->buf, need, &p->cap, 1024);
}

/* Byte k of the head being read: buffered ones first, then those of d. */
static char head_at(const struct http_parser *p, const char *d, size_t k)
{
	return k < p->len ? p->buf[k] : d[k - p->len];
}

/* Empty lines before a request line are skipped (RFC 9112, 2.2: some clients send a CRLF
 * after a POST's body); more than a few are not a client's slip. Returns bytes consumed. */
static ssize_t skip_empty_lines(struct http_parser *p, const char *d, size_t n)
{
	size_t i = 0;

	for (; i < n; i++) {
		if (!p->lead_cr && d[i] == '\r') {
			p->lead_cr = true;
			continue;
		}
		if (!p->lead_cr)
			break;
		if (d[i] != '\n' || ++p->empty_lines > HTTP_EMPTY_LINES_MAX)
			return fail(p, -EPROTO);
		p->lead_cr = false;
	}
	return (ssize_t)i;
}

#ifdef __SSE2__
/* Which of the 16 bytes at p are c. */
static __m128i bytes_eq(const char *p, char c)
{
	return _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(const void *)p), _mm_set1_epi8(c));
}
#endif

/* One past the first CRLF CRLF in d[0, n), or 0: sixteen places at a time where there is
 * SSE2. A head that comes whole in one read (nearly every one) is found in one pass, not a
 * memchr a line; head_lines then checks every CR and LF in it. */
static size_t blank_line_end(const char *d, size_t n)
{
	size_t i = 0;
#ifdef __SSE2__
	for (; i + 19 <= n; i += 16) {
		__m128i crlf = _mm_and_si128(bytes_eq(d + i, '\r'), bytes_eq(d + i + 1, '\n'));
		__m128i again = _mm_and_si128(bytes_eq(d + i + 2, '\r'), bytes_eq(d + i + 3, '\n'));
		unsigned m = (unsigned)_mm_movemask_epi8(_mm_and_si128(crlf, again));

		if (m)
			return i + (size_t)__builtin_ctz(m) + 4;
	}
#endif
	for (; i + 4 <= n; i++)
		if (d[i] == '\r' && d[i + 1] == '\n' && d[i + 2] == '\r' && d[i + 3] == '\n')
			return i + 4;
	return 0;
}

/* Take head bytes until the blank line; returns bytes consumed or an error. Only the head is
 * copied: the search runs in the caller's bytes, whatever follows it stays there. */
static ssize_t feed_head(struct http_parser *p, const char *d, size_t n)
{
	size_t take = n, head_len = 0;
	const char *q = d, *end;
	int rc;

	if (p->request && !p->len && (p->lead_cr || d[0] == '\r'))
		return skip_empty_lines(p, d, n);
	if (p->len + take > p->head_max)
		take = p->head_max - p->len;
	end = d + take;
	if (!p->len)
		head_len = blank_line_end(d, take);
	/* Else find the blank line a line at a time. A LF not after a CR is refused at once
	 * rather than waiting for a blank line that may never come. */
	while (!head_len && q < end && (q = memchr(q, '\n', (size_t)(end - q)))) {
		size_t j = p->len + (size_t)(q - d);

		if (j == 0 || head_at(p, d, j - 1) != '\r')
			return fail(p, -EPROTO);
		if (j >= 3 && head_at(p, d, j - 2) == '\n' && head_at(p, d, j - 3) == '\r') {
			head_len = j + 1;
			break;
		}
		q++;
	}
	if (!head_len) {
		reserve(p, p->len + take + 1);
		memcpy(p->buf + p->len, d, take);
		p->len += take;
		return p->len >= p->head_max ? fail(p, -EMSGSIZE) : (ssize_t)take;
	}
	size_t used = head_len - p->len;
	reserve(p, head_len + HEAD_PAD);
	memcpy(p->buf + p->len, d, used);
	memset(p->buf + head_len, 0, HEAD_PAD);
	p->len = 0;
	if ((rc = parse_head(p, p->buf, head_len)) != 0)
		return fail(p, rc);
	if (!p->request && p->head.status < 200) {             /* interim: skip, the real answer follows */
		if (p->head.status == 101)
			return fail(p, -EPROTO);
		p->state = HP_HEAD;
		return (ssize_t)used;
	}
	p->head_seen = true;
	if (p->cb.head && (rc = p->cb.head(p->arg, &p->head)) != 0)
		return fail(p, rc);
	return (ssize_t)used;
}

/* Take bytes of a CRLF-terminated line (a chunk's size, a trailer) into lbuf, apart from the
 * head (a request's is read while it is served); *line set when complete (NUL-terminated). */
static ssize_t feed_line(struct http_parser *p, const char *d, size_t n, size_t max,
			 char **line)
{
	size_t i;

	*line = NULL;
	for (i = 0; i < n; i++) {
		char c = d[i];
		if (p->llen && p->lbuf[p->llen - 1] == '\r') {
			if (c != '\n')
				return fail(p, -EPROTO);
			p->lbuf[p->llen - 1] = '\0';
			p->llen = 0;
			*line = p->lbuf;
			return (ssize_t)i + 1;
		}
		if (c == '\n' || c == '\0')
			return fail(p, -EPROTO);
		if (p->llen >= max)
			return fail(p, -EMSGSIZE);
		p->lbuf = xreserve(p->lbuf, p->llen + 2, &p->lcap, 160);
		p->lbuf[p->llen++] = c;
	}
	return (ssize_t)n;
}

static int chunk_size(struct http_parser *p, const char *line)
{
	uint64_t v = 0;
	const char *s = line;

	for (; *s; s++) {
		int d = *s >= '0' && *s <= '9' ? *s - '0' : *s >= 'a' && *s <= 'f' ? *s - 'a' + 10 :
			*s >= 'A' && *s <= 'F' ? *s - 'A' + 10 : -1;
		if (d < 0)
			break;
		if (v >> 56)
			return -EMSGSIZE;
		v = v << 4 | (uint64_t)d;
	}
	if (s == line)
		return -EPROTO;
	while (is_ows(*s))
		s++;
	if (*s && *s != ';')                    /* extensions are ignored, nothing else allowed */
		return -EPROTO;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 && *s != '\t')
			return -EPROTO;
	p->left = v;
	p->state = v ? HP_CHUNK_DATA : HP_TRAILER;
	return 0;
}

static ssize_t emit(struct http_parser *p, const char *d, size_t n)
{
	int rc = p->cb.body && n ? p->cb.body(p->arg, d, n) : 0;

	return rc ? fail(p, rc) : (ssize_t)n;
}

/* Body bytes counted by p->left (a Content-Length body, a chunk's data): then on to next. */
static ssize_t take_counted(struct http_parser *p, const char *d, size_t n,
			    enum http_parse_state next)
{
	size_t take = p->left < n ? (size_t)p->left : n;
	ssize_t used = emit(p, d, take);

	if (used >= 0 && (p->left -= take) == 0)
		p->state = next;
	return used;
}

/* One step: consume some bytes in the current state. */
static ssize_t step(struct http_parser *p, const char *d, size_t n)
{
	ssize_t used;
	char *line;
	int rc;

	switch (p->state) {
	case HP_HEAD:
		return feed_head(p, d, n);
	case HP_BODY_LENGTH:
		return take_counted(p, d, n, HP_DONE);
	case HP_BODY_CLOSE:
		return emit(p, d, n);
	case HP_CHUNK_SIZE:
		if ((used = feed_line(p, d, n, HTTP_CHUNK_LINE_MAX, &line)) < 0 || !line)
			return used;
		return (rc = chunk_size(p, line)) ? fail(p, rc) : used;
	case HP_CHUNK_DATA:
		return take_counted(p, d, n, HP_CHUNK_CR);
	case HP_CHUNK_CR:
		if (d[0] != '\r')
			return fail(p, -EPROTO);
		p->state = HP_CHUNK_LF;
		return 1;
	case HP_CHUNK_LF:
		if (d[0] != '\n')
			return fail(p, -EPROTO);
		p->state = HP_CHUNK_SIZE;
		return 1;
	case HP_TRAILER:
		if ((used = feed_line(p, d, n, HTTP_HEAD_MAX, &line)) < 0)
			return used;
		if ((p->trailer_bytes += (size_t)used) > HTTP_HEAD_MAX)
			return fail(p, -EMSGSIZE);
		if (line && !*line)
			p->state = HP_DONE;
		else if (line && (is_ows(*line) || !strchr(line, ':')))
			return fail(p, -EPROTO);
		return used;
	case HP_DONE:
		return 0;
	case HP_FAILED:
	default:
		return p->err ? p->err : -EPROTO;
	}
}

ssize_t http_parse_feed(struct http_parser *p, const char *data, size_t len)
{
	size_t off = 0;

	if (p->state == HP_FAILED)
		return p->err;
	if (len)
		p->started = true;
	while (off < len && p->state != HP_DONE) {
		ssize_t used = step(p, data + off, len - off);
		if (used < 0)
			return used;
		off += (size_t)used;
	}
	return (ssize_t)off;
}

int http_parse_eof(struct http_parser *p)
{
	if (p->state == HP_FAILED)
		return p->err;
	if (p->state == HP_BODY_CLOSE) {
		p->state = HP_DONE;
		return 0;
	}
	return p->state == HP_DONE ? 0 : -ECONNRESET;
}
