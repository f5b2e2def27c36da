/* schema_value: JSON values as JSON Schema sees them: types, equality, hashing, rendering. */
#include "govern/schema_int.h"

#include <string.h>
#if defined(__SSE2__) && defined(__x86_64__)     /* _mm_cvtsi128_si64 */
#include <emmintrin.h>
#endif

#include "base/alloc.h"
#include "base/json_get.h"
#include "base/log.h"
#include "govern/schema_regex.h"

void schema_sb_putn(struct sb *b, const char *s, size_t n)
{
	if (b->overflow || !b->cap)
		return;
	if (b->len + n >= b->cap) {
		n = b->cap - 1 - b->len;
		b->overflow = true;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

unsigned schema_inst_types(const cJSON *v)
{
	if (cJSON_IsNull(v))
		return TY_NULL;
	if (cJSON_IsBool(v))
		return TY_BOOLEAN;
	if (cJSON_IsObject(v))
		return TY_OBJECT;
	if (cJSON_IsArray(v))
		return TY_ARRAY;
	if (cJSON_IsString(v))
		return TY_STRING;
	if (cJSON_IsNumber(v))
		return is_integral(v->valuedouble) ? TY_NUMBER | TY_INTEGER : TY_NUMBER;
	return 0;
}

const char *schema_inst_type_name(const cJSON *v)
{
	unsigned t = schema_inst_types(v);

	if (t & TY_INTEGER)
		return "integer";
	for (size_t i = 0; i < sizeof(type_names) / sizeof(type_names[0]); i++)
		if (t & type_names[i].bit)
			return type_names[i].name;
	return "unknown";
}

static int cmp_member_key(const void *a, const void *b)
{
	const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;

	return strcmp(x->string ? x->string : "", y->string ? y->string : "");
}


/* Objects of equal size: same keys, equal values, any order. */
static int object_equal(const cJSON *a, const cJSON *b, int n, int depth)
{
	const cJSON **sa, **sb;
	int rc = 1, i = 0;

	if (n <= SMALL_OBJECT) {
		for (const cJSON *m = a->child; m; m = m->next) {
			const cJSON *o = json_get(b, m->string);
			if (!o)
				return 0;
			if ((rc = schema_json_equal(m, o, depth - 1)) != 1)
				return rc;
		}
		for (const cJSON *m = b->child; m; m = m->next)    /* duplicate keys */
			if (!json_get(a, m->string))
				return 0;
		return 1;
	}
	sa = malloc(2 * (size_t)n * sizeof(*sa));
	if (!sa)
		return -ENOMEM;
	sb = sa + n;
	for (const cJSON *m = a->child; m && i < n; m = m->next)
		sa[i++] = m;
	i = 0;
	for (const cJSON *m = b->child; m && i < n; m = m->next)
		sb[i++] = m;
	qsort(sa, (size_t)n, sizeof(*sa), cmp_member_key);
	qsort(sb, (size_t)n, sizeof(*sb), cmp_member_key);
	for (i = 0; i < n && rc == 1; i++) {
		if (cmp_member_key(&sa[i], &sb[i]) != 0)
			rc = 0;
		else
			rc = schema_json_equal(sa[i], sb[i], depth - 1);
	}
	free(sa);
	return rc;
}

/* Deep JSON equality: numbers by value, objects ignoring member order. Returns 1 equal, 0 not,
 * -E2BIG when a container lies more than depth levels down, -ENOMEM. */
int schema_json_equal(const cJSON *a, const cJSON *b, int depth)
{
	int na, nb;

	if ((a->type & 0xff) != (b->type & 0xff))
		return 0;
	switch (a->type & 0xff) {
	case cJSON_Number:
		return a->valuedouble == b->valuedouble;
	case cJSON_String:
	case cJSON_Raw:
		return strcmp(a->valuestring ? a->valuestring : "", b->valuestring ? b->valuestring : "") == 0;
	case cJSON_Array:
	case cJSON_Object:
		if (depth <= 0)
			return -E2BIG;
		na = cJSON_GetArraySize(a);
		nb = cJSON_GetArraySize(b);
		if (na != nb)
			return 0;
		if (cJSON_IsObject(a))
			return object_equal(a, b, na, depth);
		for (const cJSON *x = a->child, *y = b->child; x && y; x = x->next, y = y->next) {
			int rc = schema_json_equal(x, y, depth - 1);
			if (rc != 1)
				return rc;
		}
		return 1;
	default:
		return 1;   /* null, true, false */
	}
}

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint64_t hash_bytes(const char *s, uint64_t h)
{
	for (; s && *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
	return mix64(h);
}

/* A hash consistent with schema_json_equal(): equal values hash equal. */
int schema_json_hash(const cJSON *v, int depth, uint64_t *out)
{
	uint64_t h = (uint64_t)(v->type & 0xff);

	switch (v->type & 0xff) {
	case cJSON_Number: {
		double d = v->valuedouble == 0 ? 0.0 : v->valuedouble; /* -0 == 0 */
		uint64_t bits;
		memcpy(&bits, &d, sizeof(bits));
		h = mix64(h ^ bits);
		break;
	}
	case cJSON_String:
	case cJSON_Raw:
		h = hash_bytes(v->valuestring, h ^ 0xcbf29ce484222325ull);
		break;
	case cJSON_Array:
	case cJSON_Object:
		if (depth <= 0)
			return -E2BIG;
		for (const cJSON *c = v->child; c; c = c->next) {
			uint64_t ch;
			int rc = schema_json_hash(c, depth - 1, &ch);
			if (rc < 0)
				return rc;
			if (cJSON_IsArray(v))
				h = mix64(h * 31 + ch);
			else    /* order-insensitive: a sum of per-member hashes */
				h += mix64(hash_bytes(c->string, 0xcbf29ce484222325ull) ^ ch);
		}
		h = mix64(h);
		break;
	default:
		h = mix64(h);
		break;
	}
	*out = h;
	return 0;
}

/* Shortest "%g" rendering that reads back as the same double. */
void schema_fmt_num(double v, char *buf, size_t len)
{
	if (is_integral(v) && fabs(v) < 1e15) {
		snprintf(buf, len, "%.0f", v);
		return;
	}
	snprintf(buf, len, "%.15g", v);
	if (strtod(buf, NULL) != v)
		snprintf(buf, len, "%.17g", v);
}

void schema_sb_quote(struct sb *b, const char *s, char quote)
{
	sb_putc(b, quote);
	for (; *s && !b->overflow; s++) {
		unsigned char c = (unsigned char)*s;
		char esc[8] = { '\\', (char)c };

		if (c == (unsigned char)quote || c == '\\') {
			schema_sb_putn(b, esc, 2);
		} else if (c < 0x20) {
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			sb_puts(b, esc);
		} else {
			sb_putc(b, (char)c);
		}
	}
	sb_putc(b, quote);
}

/* JSON-quote s into buf, truncating with "..." when it does not fit. */
void schema_fmt_quoted(const char *s, char *buf, size_t len)
{
	struct sb b = { buf, 0, len, false };

	buf[0] = '\0';
	schema_sb_quote(&b, s, '"');
	if (b.overflow)
		sb_ellipsis(&b);
}

/* A JSON value rendered compactly for a message, truncated with "...". */
void schema_fmt_json(const cJSON *v, char *buf, size_t len)
{
	char *text = cJSON_PrintUnformatted(v);
	struct sb b = { buf, 0, len, false };

	if (!text) {
		snprintf(buf, len, "(value)");
		return;
	}
	buf[0] = '\0';
	sb_puts(&b, text);
	if (b.overflow)
		sb_ellipsis(&b);
	cJSON_free(text);
}

/* Every byte but UTF-8's continuation bytes (10xxxxxx), sixteen a step where there is SSE2:
 * a maxLength on a tool's text argument of kilobytes cost ten instructions a byte, as much as
 * all the rest of the call. */
size_t schema_utf8_length(const char *s)
{
	size_t len = strlen(s), n = len, i = 0;
#if defined(__SSE2__) && defined(__x86_64__)
	const __m128i lead = _mm_set1_epi8(-64), zero = _mm_setzero_si128();

	while (len - i >= 16) {
		/* each lane counts the continuation bytes (signed, 0x80..0xbf are below lead: the
		 * compare gives -1) of up to 255 steps, then the lanes are summed */
		size_t steps = (len - i) / 16 < 255 ? (len - i) / 16 : 255;
		__m128i acc = zero;

		for (size_t k = 0; k < steps; k++, i += 16)
			acc = _mm_sub_epi8(acc, _mm_cmplt_epi8(
				_mm_loadu_si128((const __m128i *)(const void *)(s + i)), lead));
		acc = _mm_sad_epu8(acc, zero);
		n -= (size_t)_mm_cvtsi128_si64(acc) +
		     (size_t)_mm_cvtsi128_si64(_mm_unpackhi_epi64(acc, acc));
	}
#endif
	for (; i < len; i++)
		n -= ((unsigned char)s[i] & 0xc0) == 0x80;
	return n;
}
