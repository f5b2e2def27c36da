/* jsonw: JSON text written straight into one growable buffer, byte for byte as cJSON prints
 * it (cJSON_PrintUnformatted), for the records made on every call: no tree, no allocation
 * once the buffer has grown to a record's size.
 *
 * The caller opens and closes the object with jsonw_raw (and writes its first member so);
 * the jsonw_member_* helpers each write one further member, comma first.
 */
#ifndef WARDEN_JSONW_H
#define WARDEN_JSONW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include <cjson/cJSON.h>

#include "base/alloc.h"

/* A cJSON_Raw node's text left out of the buffer by jsonw_value: it belongs at offset at,
 * and is sent from where it lies (issue 9: a tool's answer, kept as the upstream's text by
 * mcp/jsonrpc_splice, is not copied once more into the agent's answer). */
struct jsonw_hole {
	size_t at;
	const char *text;
	size_t len;
};

struct jsonw {
	char *buf;              /* NUL-terminated after every write */
	size_t len, cap;
	struct jsonw_hole *holes;       /* NULL: every Raw text is copied in */
	unsigned nholes, max_holes;
};

#define JSONW_FIRST 512         /* the buffer's first size: a record fits */
#define JSONW_HOLE_MIN 256      /* a shorter Raw text is copied: one more iovec costs more */

void jsonw_reset(struct jsonw *w);
void jsonw_free(struct jsonw *w);

/* n bytes as they are. Inline: most are a literal's few bytes (a brace, a colon, a member's
 * name), which the compiler then copies without a call. */
static inline void jsonw_raw(struct jsonw *w, const char *s, size_t n)
{
	w->buf = xreserve(w->buf, w->len + n + 1, &w->cap, JSONW_FIRST);
	memcpy(w->buf + w->len, s, n);
	w->len += n;
	w->buf[w->len] = '\0';
}

/* A JSON string (quoted, escaped as cJSON escapes it). */
void jsonw_str(struct jsonw *w, const char *s);
/* A value for the records: n as plain digits (as cJSON prints an integral double) below 1e15,
 * as cJSON prints it above. */
void jsonw_int(struct jsonw *w, int64_t n);
/* v as cJSON prints it; a number that is an integer below 1e15 as plain digits (as the
 * records' top-level numbers are printed: base/log.c). */
void jsonw_tree(struct jsonw *w, const cJSON *v);

/* The members: ,"name":value. Plain names only (the records' own, which need no escape).
 * Inline: a literal name's length is folded and its bytes copied without a call. */
static inline void jsonw_name(struct jsonw *w, const char *name)
{
	size_t k = strlen(name);
	char *o;

	w->buf = xreserve(w->buf, w->len + k + 5, &w->cap, JSONW_FIRST);
	o = w->buf + w->len;
	o[0] = ',';
	o[1] = '"';
	memcpy(o + 2, name, k);
	o[k + 2] = '"';
	o[k + 3] = ':';
	o[k + 4] = '\0';
	w->len += k + 4;
}

/* ,"name":"s" */
static inline void jsonw_member_str(struct jsonw *w, const char *name, const char *s)
{
	jsonw_name(w, name);
	jsonw_str(w, s);
}

/* ,"name":n (jsonw_int) */
static inline void jsonw_member_int(struct jsonw *w, const char *name, int64_t n)
{
	jsonw_name(w, name);
	jsonw_int(w, n);
}

/* ,"name":true|false */
static inline void jsonw_member_bool(struct jsonw *w, const char *name, bool b)
{
	jsonw_name(w, name);
	if (b)
		jsonw_raw(w, "true", 4);
	else
		jsonw_raw(w, "false", 5);
}

/* ,"name":<v> (jsonw_tree) */
static inline void jsonw_member_tree(struct jsonw *w, const char *name, const cJSON *v)
{
	jsonw_name(w, name);
	jsonw_tree(w, v);
}

/* 1 for the bytes a JSON string cannot hold as they are: the controls (NUL too, so that a
 * scan of a C string stops at its end), '"' and '\\'. For scanners: one load a byte. */
extern const unsigned char jsonw_special[256];

#ifdef __SSE2__
/* A bit for each of the 16 bytes at p that jsonw_special marks. */
static inline unsigned jsonw_special16(const char *p)
{
	__m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
	__m128i ctl = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v);    /* <= 0x1f */

	return (unsigned)_mm_movemask_epi8(_mm_or_si128(ctl, _mm_or_si128(
		_mm_cmpeq_epi8(v, _mm_set1_epi8('"')), _mm_cmpeq_epi8(v, _mm_set1_epi8('\\')))));
}
#endif

/* jsonw_plain_end past the first 16 bytes: out of line, so that a short string's check stays
 * a few instructions where it is used. */
const char *jsonw_plain_end_long(const char *p, const char *end);

/* The first byte in [p, end) that jsonw_special marks, or end: where a JSON string's plain
 * run stops. With SSE2 (x86-64 always) 16 bytes at once, then 32 a branch: a tool's answer
 * may carry kilobytes of text in one string, and the byte-by-byte walk costs four
 * instructions a byte. Reads nothing at or past end. */
static inline const char *jsonw_plain_end(const char *p, const char *end)
{
#ifdef __SSE2__
	if (end - p >= 16) {
		unsigned bits = jsonw_special16(p);

		return bits ? p + __builtin_ctz(bits) : jsonw_plain_end_long(p + 16, end);
	}
#endif
	while (p < end && !jsonw_special[(unsigned char)*p])
		p++;
	return p;
}

/* v in decimal, NUL-terminated, without printf; returns its length. */
#define JSONW_INT_TEXT 21
size_t jsonw_int_text(char buf[JSONW_INT_TEXT], int64_t v);

/* v as compact JSON, the bytes cJSON_PrintUnformatted gives, except that every number is
 * written so that it reads back bit for bit: integers below 1e15 as digits, others in 15
 * significant digits where that round-trips exactly, else 17 (cJSON checks its 15 digits
 * within an epsilon only). NaN and infinities as null, as cJSON does. -EINVAL (nothing
 * written) for a node of no JSON type.
 * With w->holes, a Raw text of JSONW_HOLE_MIN bytes or more is not copied while there is a
 * hole free: it is noted there instead (the text then goes between buf[0, at) and buf[at,
 * ...), in the holes' order; v must outlive them). */
int jsonw_value(struct jsonw *w, const cJSON *v);
/* w's text with its holes' texts in place, as pieces in order: at most 2 * nholes + 1, and
 * at least one (maybe empty). Returns how many. */
int jsonw_iov(const struct jsonw *w, struct iovec *iov);

#endif
