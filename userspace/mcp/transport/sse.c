/* sse: text/event-stream writer and incremental parser. */
#include "mcp/transport/sse.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

/* ---- writer ---- */

static bool has_line_break(const char *s)
{
	return s && strpbrk(s, "\r\n") != NULL;
}

static int add(struct evbuffer *out, const void *p, size_t n)
{
	return n && evbuffer_add(out, p, n) != 0 ? -ENOMEM : 0;
}

static int add_field(struct evbuffer *out, const char *name, const char *v, size_t n)
{
	int rc;

	if ((rc = add(out, name, strlen(name))) != 0)
		return rc;
	if (n && ((rc = add(out, " ", 1)) != 0 || (rc = add(out, v, n)) != 0))
		return rc;
	return add(out, "\n", 1);
}

int sse_write_event(struct evbuffer *out, const char *id, const char *event, long retry_ms,
		    const char *data, size_t len)
{
	char num[32];
	int rc;

	if (has_line_break(id) || has_line_break(event))
		return -EINVAL;
	if (id && (rc = add_field(out, "id:", id, strlen(id))) != 0)
		return rc;
	if (event && (rc = add_field(out, "event:", event, strlen(event))) != 0)
		return rc;
	if (retry_ms >= 0) {
		int n = snprintf(num, sizeof(num), "%ld", retry_ms);
		if ((rc = add_field(out, "retry:", num, (size_t)n)) != 0)
			return rc;
	}
	if (data) {
		/* One data line per source line; CRLF counts as one break. A trailing break
		 * yields a final empty data line, so a reader gets the text back (CRs as LF). */
		size_t i = 0;
		for (;;) {
			size_t j = i;
			while (j < len && data[j] != '\n' && data[j] != '\r')
				j++;
			if ((rc = add_field(out, "data:", data + i, j - i)) != 0)
				return rc;
			if (j == len)
				break;
			i = j + 1;
			if (data[j] == '\r' && i < len && data[i] == '\n')
				i++;
		}
	}
	return add(out, "\n", 1);
}

int sse_write_comment(struct evbuffer *out, const char *text)
{
	int rc;

	if (has_line_break(text))
		return -EINVAL;
	if ((rc = add_field(out, ":", text, text ? strlen(text) : 0)) != 0)
		return rc;
	return 0;
}

/* ---- parser ---- */

struct sbuf {
	char *p;
	size_t len, cap;
};

struct sse_parser {
	sse_event_fn cb;
	void *arg;
	size_t max;
	struct sbuf line;       /* the line being read (may span feeds) */
	struct sbuf data;       /* data lines of the current event, each followed by LF */
	struct sbuf type;       /* event type of the current event */
	struct sbuf last_id;    /* persists across events and reconnections */
	long retry;
	int err;                /* sticky error */
	bool cr;                /* previous byte was CR: an LF right after it is the same break */
	bool first_line;        /* a UTF-8 BOM may start the stream */
};

static int sbuf_set(struct sbuf *b, const char *p, size_t n, bool append)
{
	size_t need = (append ? b->len : 0) + n + 1;

	if (need > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < need)
			cap *= 2;
		char *q = realloc(b->p, cap);
		if (!q)
			return -ENOMEM;
		b->p = q;
		b->cap = cap;
	}
	if (!append)
		b->len = 0;
	if (n)
		memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

static void sbuf_free(struct sbuf *b)
{
	free(b->p);
	*b = (struct sbuf){ 0 };
}

int sse_parser_new(size_t max_event, sse_event_fn cb, void *arg, struct sse_parser **out)
{
	struct sse_parser *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	p->cb = cb;
	p->arg = arg;
	p->max = max_event ? max_event : SSE_MAX_EVENT_DEFAULT;
	p->retry = -1;
	p->first_line = true;
	*out = p;
	return 0;
}

void sse_parser_free(struct sse_parser *p)
{
	if (!p)
		return;
	sbuf_free(&p->line);
	sbuf_free(&p->data);
	sbuf_free(&p->type);
	sbuf_free(&p->last_id);
	free(p);
}

void sse_parser_reset(struct sse_parser *p)
{
	p->line.len = p->data.len = p->type.len = 0;
	p->err = 0;
	p->cr = false;
	p->first_line = true;
}

const char *sse_parser_last_id(const struct sse_parser *p)
{
	return p->last_id.len ? p->last_id.p : NULL;
}

long sse_parser_retry(const struct sse_parser *p)
{
	return p->retry;
}

static int dispatch(struct sse_parser *p)
{
	struct sse_event ev;
	int rc;

	/* No data line at all: nothing to dispatch (id and retry already took effect). */
	if (p->data.len == 0) {
		p->type.len = 0;
		return 0;
	}
	p->data.p[--p->data.len] = '\0';       /* drop the LF after the last data line */
	ev.data = p->data.p;
	ev.data_len = p->data.len;
	ev.type = p->type.len ? p->type.p : "message";
	ev.id = sse_parser_last_id(p);
	rc = p->cb(p->arg, &ev);
	p->data.len = p->type.len = 0;
	return rc;
}

static bool field_is(const char *f, size_t n, const char *name)
{
	return n == strlen(name) && memcmp(f, name, n) == 0;
}

static int process_line(struct sse_parser *p)
{
	const char *l = p->line.p ? p->line.p : "";
	size_t n = p->line.len;
	const char *v = "";
	size_t flen = n, vlen = 0;
	const char *colon;

	if (p->first_line) {
		p->first_line = false;
		if (n >= 3 && memcmp(l, "\xEF\xBB\xBF", 3) == 0) {
			l += 3;
			n -= 3;
			flen = n;
		}
	}
	if (n == 0)
		return dispatch(p);
	if (l[0] == ':')
		return 0;
	colon = memchr(l, ':', n);
	if (colon) {
		flen = (size_t)(colon - l);
		v = colon + 1;
		vlen = n - flen - 1;
		if (vlen && *v == ' ') {
			v++;
			vlen--;
		}
	}
	if (field_is(l, flen, "data")) {
		if (p->data.len + vlen + 1 > p->max)
			return -EMSGSIZE;
		int rc = sbuf_set(&p->data, v, vlen, true);
		return rc ? rc : sbuf_set(&p->data, "\n", 1, true);
	}
	if (field_is(l, flen, "event"))
		return sbuf_set(&p->type, v, vlen, false);
	if (field_is(l, flen, "id")) {
		if (memchr(v, '\0', vlen))      /* the spec ignores ids containing NUL */
			return 0;
		return sbuf_set(&p->last_id, v, vlen, false);
	}
	if (field_is(l, flen, "retry")) {
		long ms = 0;
		if (vlen == 0)
			return 0;
		for (size_t i = 0; i < vlen; i++) {
			if (v[i] < '0' || v[i] > '9')
				return 0;
			if (ms < 100000000)     /* clamp absurd values instead of overflowing */
				ms = ms * 10 + (v[i] - '0');
		}
		p->retry = ms;
		return 0;
	}
	return 0;       /* unknown fields are ignored */
}

int sse_parser_feed(struct sse_parser *p, const char *buf, size_t len)
{
	size_t i = 0;
	int rc;

	if (p->err)
		return p->err;
	while (i < len) {
		size_t j;

		if (p->cr) {
			p->cr = false;
			if (buf[i] == '\n') {
				i++;
				continue;
			}
		}
		for (j = i; j < len && buf[j] != '\n' && buf[j] != '\r'; j++)
			;
		if (p->line.len + (j - i) + p->data.len > p->max) {
			rc = -EMSGSIZE;
			goto fail;
		}
		if ((rc = sbuf_set(&p->line, buf + i, j - i, true)) != 0)
			goto fail;
		if (j == len)
			break;
		p->cr = buf[j] == '\r';
		i = j + 1;
		rc = process_line(p);
		p->line.len = 0;
		if (rc)
			goto fail;
	}
	return 0;
fail:
	p->err = rc;
	p->line.len = p->data.len = p->type.len = 0;
	return rc;
}
