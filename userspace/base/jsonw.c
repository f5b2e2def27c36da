/* jsonw: JSON text into one growable buffer, the bytes cJSON would print. */
#include "base/jsonw.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"

/* Inline: a record makes some sixty writes, each first checking for room. */
static inline __attribute__((always_inline)) void reserve(struct jsonw *w, size_t more)
{
	w->buf = xreserve(w->buf, w->len + more + 1, &w->cap, JSONW_FIRST);
}

void jsonw_reset(struct jsonw *w)
{
	w->len = 0;
	w->nholes = 0;
	if (w->buf)
		w->buf[0] = '\0';
}

void jsonw_free(struct jsonw *w)
{
	free(w->buf);
	*w = (struct jsonw){ 0 };
}

#define RAW(w, lit) jsonw_raw((w), (lit), sizeof(lit) - 1)

const unsigned char jsonw_special[256] = {
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	['"'] = 1, ['\\'] = 1,
};

const char *jsonw_plain_end_long(const char *p, const char *end)
{
#ifdef __SSE2__
	unsigned bits;

	for (; end - p >= 32; p += 32)
		if ((bits = jsonw_special16(p) | jsonw_special16(p + 16) << 16))
			return p + __builtin_ctz(bits);
	if (end - p >= 16) {
		if ((bits = jsonw_special16(p)))
			return p + __builtin_ctz(bits);
		p += 16;
	}
#endif
	while (p < end && !jsonw_special[(unsigned char)*p])
		p++;
	return p;
}

void jsonw_str(struct jsonw *w, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	size_t n = 0;

	/* Most strings need no escape: their plain run ends at the NUL, found by the same table
	 * walk, and they go in with one copy, no strlen first. */
	while (!jsonw_special[p[n]])
		n++;
	if (!p[n]) {
		reserve(w, n + 2);
		char *o = w->buf + w->len;
		*o++ = '"';
		memcpy(o, s, n);
		o[n] = '"';
		o[n + 1] = '\0';
		w->len += n + 2;
		return;
	}
	n += strlen(s + n);
	reserve(w, 2 + n * 6);  /* the worst case: every byte as \u00xx */
	char *o = w->buf + w->len;
	*o++ = '"';
	for (;;) {
		/* A run that needs no escape (most strings are one): one table load a byte, and
		 * no call (the strings of a record are short). */
		while (!jsonw_special[*p])
			*o++ = (char)*p++;
		if (!*p)
			break;
		*o++ = '\\';
		switch (*p) {
		case '"': *o++ = '"'; break;
		case '\\': *o++ = '\\'; break;
		case '\b': *o++ = 'b'; break;
		case '\f': *o++ = 'f'; break;
		case '\n': *o++ = 'n'; break;
		case '\r': *o++ = 'r'; break;
		case '\t': *o++ = 't'; break;
		default:
			*o++ = 'u';
			*o++ = '0';
			*o++ = '0';
			*o++ = hex[*p >> 4];
			*o++ = hex[*p & 15];
		}
		p++;
	}
	*o++ = '"';
	*o = '\0';
	w->len = (size_t)(o - w->buf);
}

/* "00" to "99": two digits a division (a record has a dozen numbers, most of several digits) */
static const char digit_pairs[201] =
	"00010203040506070809101112131415161718192021222324252627282930313233343536373839"
	"40414243444546474849505152535455565758596061626364656667686970717273747576777879"
	"8081828384858687888990919293949596979899";

size_t jsonw_int_text(char buf[JSONW_INT_TEXT], int64_t v)
{
	uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v, t = u;
	size_t n = (v < 0) + 1;
	char *p;

	/* its length first, so the digits go straight where they belong (no copy: a record
	 * and the envelopes write a dozen integers a call) */
	while (t >= 10) {
		t /= 10;
		n++;
	}
	p = buf + n;
	*p = '\0';
	while (u >= 100) {
		p -= 2;
		memcpy(p, digit_pairs + 2 * (u % 100), 2);
		u /= 100;
	}
	if (u >= 10) {
		p -= 2;
		memcpy(p, digit_pairs + 2 * u, 2);
	} else {
		*--p = (char)('0' + u);
	}
	if (v < 0)
		*--p = '-';
	return n;
}

/* Straight into the buffer, which is NUL-terminated by it. */
static void digits(struct jsonw *w, int64_t v)
{
	reserve(w, JSONW_INT_TEXT);
	w->len += jsonw_int_text(w->buf + w->len, v);
}

static int value(struct jsonw *w, const cJSON *v, int depth, bool as_cjson);

/* v as cJSON prints it: a record's subtrees (arguments, results, shapes) and the numbers it
 * does not print as digits (an integer of 1e15 or more, a fraction, -0). Written here when
 * every number in it is an integer below 1e15 (most arguments and every shape: the bytes are
 * cJSON's, see value()), by cJSON itself otherwise. */
static void tree(struct jsonw *w, const cJSON *v)
{
	size_t start = w->len;
	int rc = value(w, v, 0, true);

	if (rc == 0)
		return;
	w->len = start;
	if (w->buf)
		w->buf[start] = '\0';
	for (;;) {
		size_t room = w->cap - w->len;

		/* a node of no JSON type: cJSON cannot print it either, whatever the room */
		if (rc == -EINVAL || room >= INT32_MAX) {
			RAW(w, "null");
			return;
		}
		if (room > 64 &&
		    cJSON_PrintPreallocated((cJSON *)v, w->buf + w->len, (int)room, 0)) {
			w->len += strlen(w->buf + w->len);
			return;
		}
		reserve(w, w->cap ? w->cap : 512);      /* double it, and try again */
		w->buf[w->len] = '\0';
	}
}

static bool plain_int(double d)
{
	return d > -1e15 && d < 1e15 && d == (double)(int64_t)d && !(d == 0 && signbit(d));
}

void jsonw_int(struct jsonw *w, int64_t v)
{
	if (v > -1000000000000000LL && v < 1000000000000000LL) {
		digits(w, v);
		return;
	}
	cJSON num = { .type = cJSON_Number, .valuedouble = (double)v,
		      .valueint = v > INT32_MAX ? INT32_MAX : v < INT32_MIN ? INT32_MIN : (int)v };
	tree(w, &num);
}

void jsonw_tree(struct jsonw *w, const cJSON *v)
{
	if (cJSON_IsNumber(v) && plain_int(v->valuedouble))
		digits(w, (int64_t)v->valuedouble);
	else
		tree(w, v);
}

/* A number that reads back as itself (see jsonw_value). */
static void exact_number(struct jsonw *w, double d)
{
	char buf[40];
	int n;

	if (isnan(d) || isinf(d)) {
		RAW(w, "null");
		return;
	}
	if (plain_int(d)) {
		digits(w, (int64_t)d);
		return;
	}
	n = snprintf(buf, sizeof(buf), "%1.15g", d);
	if (strtod(buf, NULL) != d)
		n = snprintf(buf, sizeof(buf), "%1.17g", d);
	jsonw_raw(w, buf, (size_t)n);
}

/* as_cjson: the bytes cJSON prints, or -EAGAIN for a number cJSON prints its own way (other
 * than an integer below 1e15, which it prints as these digits): its 15 significant digits
 * are compared within an epsilon, and -0 is "0". */
static int value(struct jsonw *w, const cJSON *v, int depth, bool as_cjson)
{
	if (depth > 1000)       /* deeper than cJSON parses (CJSON_NESTING_LIMIT) */
		return -ELOOP;
	switch (v->type & 0xff) {
	case cJSON_False: RAW(w, "false"); return 0;
	case cJSON_True: RAW(w, "true"); return 0;
	case cJSON_NULL: RAW(w, "null"); return 0;
	case cJSON_Number:
		if (as_cjson && !plain_int(v->valuedouble))
			return -EAGAIN;
		exact_number(w, v->valuedouble);
		return 0;
	case cJSON_String:
		jsonw_str(w, v->valuestring ? v->valuestring : "");
		return 0;
	case cJSON_Raw: {
		size_t n;

		if (!v->valuestring)
			return -EINVAL;
		n = strlen(v->valuestring);
		if (!as_cjson && n >= JSONW_HOLE_MIN && w->nholes < w->max_holes) {
			w->holes[w->nholes++] = (struct jsonw_hole){ w->len, v->valuestring, n };
			return 0;
		}
		jsonw_raw(w, v->valuestring, n);
		return 0;
	}
	case cJSON_Array:
	case cJSON_Object: {
		bool obj = (v->type & 0xff) == cJSON_Object;

		jsonw_raw(w, obj ? "{" : "[", 1);
		for (const cJSON *c = v->child; c; c = c->next) {
			if (c != v->child)
				RAW(w, ",");
			if (obj) {
				jsonw_str(w, c->string ? c->string : "");   /* as cJSON prints it */
				RAW(w, ":");
			}
			int rc = value(w, c, depth + 1, as_cjson);
			if (rc)
				return rc;
		}
		jsonw_raw(w, obj ? "}" : "]", 1);
		return 0;
	}
	}
	return -EINVAL;
}

int jsonw_value(struct jsonw *w, const cJSON *v)
{
	size_t start = w->len;
	unsigned holes = w->nholes;
	int rc = v ? value(w, v, 0, false) : -EINVAL;

	if (rc) {
		w->len = start;
		w->nholes = holes;
		if (w->buf)
			w->buf[start] = '\0';
	}
	return rc;
}

int jsonw_iov(const struct jsonw *w, struct iovec *iov)
{
	size_t from = 0;
	int n = 0;

	for (unsigned i = 0; i < w->nholes; i++) {
		const struct jsonw_hole *h = &w->holes[i];

		if (h->at > from)
			iov[n++] = (struct iovec){ w->buf + from, h->at - from };
		iov[n++] = (struct iovec){ (void *)h->text, h->len };
		from = h->at;
	}
	if (w->len > from || !n)
		iov[n++] = (struct iovec){ w->buf ? w->buf + from : NULL, w->len - from };
	return n;
}
