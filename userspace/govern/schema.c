/* schema: JSON Schema validation of tool arguments, compiled once, validated many times.
 *
 * schema_compile() deep-copies the schema and turns every subschema into a struct node with
 * its keywords decoded, property names sorted for binary search, regexes compiled and $refs
 * resolved to node pointers. Nodes are memoised by their place in the document, so a $ref to a
 * subschema compiles it once and recursive schemas become cycles of nodes, which validation
 * walks under an evaluation-depth limit. Validation never recurses deeper than the instance
 * (bounded by SCHEMA_MAX_DEPTH) plus that limit, and counts its steps so that a hostile
 * combination of schema and instance cannot spin.
 */
#include "govern/schema.h"
#include "base/log.h"

#include <ctype.h>
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <regex.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Nested node evaluations (instance levels plus $ref, allOf, ... hops): a $ref cycle that
 * does not consume the instance ends here. */
#define EVAL_MAX_DEPTH (4 * SCHEMA_MAX_DEPTH)
/* Node evaluations per schema_validate() call: bounds CPU for nested anyOf/oneOf. */
#define EVAL_MAX_STEPS (1ul << 22)
/* Object comparisons above this many members sort instead of looking up (quadratic). */
#define SMALL_OBJECT 16
/* uniqueItems above this many items hashes and sorts instead of comparing every pair. */
#define SMALL_ARRAY 16

enum {
	TY_NULL = 1 << 0,
	TY_BOOLEAN = 1 << 1,
	TY_OBJECT = 1 << 2,
	TY_ARRAY = 1 << 3,
	TY_NUMBER = 1 << 4,
	TY_STRING = 1 << 5,
	TY_INTEGER = 1 << 6,
};

static const struct {
	const char *name;
	unsigned bit;
} type_names[] = {
	{ "object", TY_OBJECT }, { "array", TY_ARRAY },     { "string", TY_STRING },
	{ "number", TY_NUMBER }, { "integer", TY_INTEGER }, { "boolean", TY_BOOLEAN },
	{ "null", TY_NULL },
};

enum node_kind { NODE_TRUE, NODE_FALSE, NODE_SCHEMA };

enum {
	NUM_MIN = 1 << 0,
	NUM_MAX = 1 << 1,
	NUM_XMIN = 1 << 2,
	NUM_XMAX = 1 << 3,
	NUM_MULT = 1 << 4,
};

struct prop {
	const char *name;
	struct node *schema;
};

struct pprop {
	regex_t re;
	const char *src;
	struct node *schema;
};

struct list {
	struct node **v;
	size_t n;
};

struct node {
	enum node_kind kind;
	unsigned types;             /* TY_* accepted; 0: no "type" keyword */
	struct node *ref;
	const cJSON *enum_v;        /* into the schema's own copy of the document */
	const cJSON *const_v;
	unsigned num;               /* NUM_* present */
	double min, max, xmin, xmax, mult;
	long long min_len, max_len; /* -1: absent (all counts below too) */
	regex_t *pattern;
	const char *pattern_src;
	struct prop *props;         /* sorted by name */
	size_t nprops;
	const char **required;
	size_t nrequired;
	struct pprop *pprops;
	size_t npprops;
	struct node *additional;    /* NULL: any additional property */
	long long min_props, max_props;
	struct list prefix;
	struct node *items;         /* for the items after prefix; NULL: anything */
	long long min_items, max_items;
	bool unique;
	struct list all_of, any_of, one_of;
	struct node *not_;
	const cJSON *src;           /* memo key */
	struct node *hnext;         /* memo hash chain */
	struct node *next;          /* every node of the schema, for schema_free() */
};

struct schema {
	cJSON *doc;                 /* owned deep copy of the compiled document */
	struct node *root;
	struct node *nodes;
};

/* ---------------------------------------------------------------------------------------- */
/* Regexes: ECMA-262 patterns translated to POSIX extended, evaluated in a UTF-8 locale so
 * that "." and bracket expressions see code points, not bytes. */

static locale_t g_utf8 = (locale_t)0;
static pthread_once_t g_utf8_once = PTHREAD_ONCE_INIT;

static void utf8_locale_init(void)
{
	g_utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
	if (!g_utf8)
		log_warn("schema: no C.UTF-8 locale; patterns match bytes, not characters");
}

static locale_t utf8_enter(void)
{
	int rc = pthread_once(&g_utf8_once, utf8_locale_init);

	if (rc != 0 || !g_utf8)
		return (locale_t)0;
	return uselocale(g_utf8);
}

static void utf8_leave(locale_t old)
{
	if (old)
		uselocale(old);
}

static bool pattern_matches(const regex_t *re, const char *s)
{
	locale_t old = utf8_enter();
	int rc = regexec(re, s, 0, NULL, 0);

	utf8_leave(old);
	return rc == 0;
}

struct sb {
	char *p;
	size_t len, cap;
	bool overflow;
};

/* Appends what fits; overflow records that something did not. */
static void sb_putn(struct sb *b, const char *s, size_t n)
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

/* Ends a truncated text with "..." at a UTF-8 character boundary (buf holds cap bytes). */
static void sb_ellipsis(struct sb *b)
{
	size_t at = b->len;

	if (b->cap < 4)
		return;
	if (at > b->cap - 4)
		at = b->cap - 4;
	while (at > 0 && ((unsigned char)b->p[at] & 0xc0) == 0x80)
		at--;
	memcpy(b->p + at, "...", 4);
	b->len = at + 3;
}

static void sb_putc(struct sb *b, char c) { sb_putn(b, &c, 1); }
static void sb_puts(struct sb *b, const char *s) { sb_putn(b, s, strlen(s)); }

static size_t utf8_encode(uint32_t cp, char out[4])
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | (cp >> 18));
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* Length of the UTF-8 sequence starting at s (1 for a stray byte). */
static size_t utf8_seqlen(const char *s)
{
	unsigned char c = (unsigned char)s[0];
	size_t n = c < 0xc0 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;

	for (size_t i = 1; i < n; i++)
		if (((unsigned char)s[i] & 0xc0) != 0x80)
			return 1;
	return n;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int parse_hex(const char **pp, int ndigits, uint32_t *out)
{
	uint32_t v = 0;

	for (int i = 0; i < ndigits; i++) {
		int h = hexval((*pp)[i]);
		if (h < 0)
			return -EINVAL;
		v = v << 4 | (uint32_t)h;
	}
	*pp += ndigits;
	*out = v;
	return 0;
}

enum esc_kind { ESC_CHAR, ESC_CLASS, ESC_ASSERT };

struct esc {
	enum esc_kind kind;
	uint32_t cp;    /* ESC_CHAR */
	char cls;       /* ESC_CLASS: 'd', 'w', 's'; ESC_ASSERT: 'b', 'B' */
	bool neg;       /* ESC_CLASS: \D \W \S */
};

/* Decode the escape after a backslash at *pp (ECMA-262 without the u flag, minus the parts
 * POSIX cannot express: backreferences, \p{...}, \c, NUL). */
static int parse_escape(const char **pp, bool in_class, struct esc *e, const char **why)
{
	const char *p = *pp;
	char c = *p++;

	e->kind = ESC_CHAR;
	e->neg = false;
	switch (c) {
	case '\0':
		*why = "trailing backslash";
		return -EINVAL;
	case 'd': case 'w': case 's':
	case 'D': case 'W': case 'S':
		e->kind = ESC_CLASS;
		e->cls = (char)tolower((unsigned char)c);
		e->neg = isupper((unsigned char)c);
		break;
	case 'b':
		if (in_class) {
			e->cp = 8;
			break;
		}
		/* fall through */
	case 'B':
		if (in_class) {
			*why = "\\B inside a character class";
			return -EINVAL;
		}
		e->kind = ESC_ASSERT;   /* word boundaries: a GNU extension regcomp knows */
		e->cls = c;
		break;
	case 't': e->cp = '\t'; break;
	case 'n': e->cp = '\n'; break;
	case 'v': e->cp = '\v'; break;
	case 'f': e->cp = '\f'; break;
	case 'r': e->cp = '\r'; break;
	case 'x':
		if (parse_hex(&p, 2, &e->cp) < 0) {
			*why = "bad \\x escape";
			return -EINVAL;
		}
		break;
	case 'u':
		if (*p == '{') {
			const char *q = ++p;
			uint32_t v = 0;
			while (hexval(*q) >= 0 && v <= 0x10ffff)
				v = v << 4 | (uint32_t)hexval(*q++);
			if (q == p || *q != '}' || v > 0x10ffff) {
				*why = "bad \\u{...} escape";
				return -EINVAL;
			}
			e->cp = v;
			p = q + 1;
			break;
		}
		if (parse_hex(&p, 4, &e->cp) < 0) {
			*why = "bad \\u escape";
			return -EINVAL;
		}
		if (e->cp >= 0xd800 && e->cp < 0xdc00 && p[0] == '\\' && p[1] == 'u') {
			const char *q = p + 2;
			uint32_t lo;
			if (parse_hex(&q, 4, &lo) == 0 && lo >= 0xdc00 && lo < 0xe000) {
				e->cp = 0x10000 + ((e->cp - 0xd800) << 10) + (lo - 0xdc00);
				p = q;
			}
		}
		if (e->cp >= 0xd800 && e->cp < 0xe000) {
			*why = "lone surrogate escape";
			return -EINVAL;
		}
		break;
	default:
		if (isalnum((unsigned char)c) || (unsigned char)c >= 0x80) {
			*why = "unsupported escape (backreference, \\p, \\k, \\c or \\0)";
			return -EINVAL;
		}
		e->cp = (unsigned char)c;   /* identity escape of punctuation */
		break;
	}
	if (e->kind == ESC_CHAR && e->cp == 0) {
		*why = "NUL in pattern";
		return -EINVAL;
	}
	*pp = p;
	return 0;
}

static void put_literal(struct sb *b, uint32_t cp)
{
	char u[4];
	size_t n = utf8_encode(cp, u);

	if (n == 1 && strchr(".[]()*+?{}|^$\\", u[0]))
		sb_putc(b, '\\');
	sb_putn(b, u, n);
}

static void put_class(struct sb *b, char cls, bool neg, bool bracketed)
{
	const char *body = cls == 'd' ? "0-9" : cls == 'w' ? "A-Za-z0-9_" : "[:space:]";

	if (bracketed) {
		sb_puts(b, body);
		return;
	}
	sb_puts(b, neg ? "[^" : "[");
	sb_puts(b, body);
	sb_putc(b, ']');
}

/* One member of a bracket expression: a code point, or a class escape (cls != 0). */
static int class_atom(const char **pp, uint32_t *cp, char *cls, bool *neg, const char **why)
{
	const char *p = *pp;

	*cls = 0;
	if (*p == '\\') {
		struct esc e;
		p++;
		if (parse_escape(&p, true, &e, why) < 0)
			return -EINVAL;
		if (e.kind == ESC_CLASS) {
			*cls = e.cls;
			*neg = e.neg;
		} else {
			*cp = e.cp;
		}
	} else {
		size_t n = utf8_seqlen(p);
		if (n == 1) {
			*cp = (unsigned char)*p;
		} else {
			const unsigned char *u = (const unsigned char *)p;
			*cp = n == 2 ? (uint32_t)(u[0] & 0x1f) << 6 | (u[1] & 0x3f)
			    : n == 3 ? (uint32_t)(u[0] & 0x0f) << 12 | (uint32_t)(u[1] & 0x3f) << 6 |
					       (u[2] & 0x3f)
				     : (uint32_t)(u[0] & 0x07) << 18 | (uint32_t)(u[1] & 0x3f) << 12 |
					       (uint32_t)(u[2] & 0x3f) << 6 | (u[3] & 0x3f);
		}
		p += n;
	}
	*pp = p;
	return 0;
}

/* Characters whose place inside a POSIX bracket expression is fixed. */
static bool is_bracket_special(uint32_t cp)
{
	return cp == '[' || cp == ']' || cp == '-' || cp == '^';
}

/* Translate the ECMA class at *pp (just after '[') into a POSIX bracket expression. POSIX
 * puts ']' first, '-' last and treats '\' literally, so members are sorted into place. */
static int translate_class(const char **pp, struct sb *out, const char **why)
{
	const char *p = *pp;
	char bodybuf[1024];
	struct sb body = { bodybuf, 0, sizeof(bodybuf), false };
	bool neg = false, rbr = false, hyph = false, caret = false, lbr = false;

	bodybuf[0] = '\0';
	if (*p == '^') {
		neg = true;
		p++;
	}
	if (*p == ']') {    /* ECMA [] matches nothing, [^] anything */
		if (!neg) {
			*why = "empty character class";
			return -EINVAL;
		}
		sb_putc(out, '.');
		*pp = p + 1;
		return 0;
	}
	for (;;) {
		uint32_t lo, hi;
		char cls, hcls;
		bool cneg, hneg;

		if (*p == '\0') {
			*why = "unterminated character class";
			return -EINVAL;
		}
		if (*p == ']') {
			p++;
			break;
		}
		if (class_atom(&p, &lo, &cls, &cneg, why) < 0)
			return -EINVAL;
		if (cls) {
			if (cneg) {
				*why = "\\D, \\W or \\S inside a character class";
				return -EINVAL;
			}
			put_class(&body, cls, false, true);
			continue;
		}
		if (p[0] == '-' && p[1] != ']' && p[1] != '\0') {
			p++;
			if (class_atom(&p, &hi, &hcls, &hneg, why) < 0)
				return -EINVAL;
			if (hcls || hi < lo) {
				*why = "bad range in character class";
				return -EINVAL;
			}
			if (is_bracket_special(lo) || is_bracket_special(hi)) {
				*why = "range bounded by [ ] - or ^";
				return -EINVAL;
			}
			char u[4];
			sb_putn(&body, u, utf8_encode(lo, u));
			sb_putc(&body, '-');
			sb_putn(&body, u, utf8_encode(hi, u));
			continue;
		}
		if (lo == ']')
			rbr = true;
		else if (lo == '-')
			hyph = true;
		else if (lo == '^')
			caret = true;
		else if (lo == '[')
			lbr = true;
		else {
			char u[4];
			sb_putn(&body, u, utf8_encode(lo, u));
		}
	}
	if (body.overflow) {
		*why = "character class too long";
		return -EINVAL;
	}
	if (!neg && caret && !rbr && !lbr && !hyph && body.len == 0) {
		sb_puts(out, "\\^");    /* "[^]" would be a negation */
		*pp = p;
		return 0;
	}
	sb_puts(out, neg ? "[^" : "[");
	if (rbr)
		sb_putc(out, ']');
	sb_puts(out, bodybuf);
	if (lbr)
		sb_putc(out, '[');
	if (caret && !rbr && !lbr && body.len == 0) {
		/* caret would come first: a leading '-' keeps it literal */
		sb_puts(out, hyph ? "-^" : "^");
		hyph = false;
	} else if (caret) {
		sb_putc(out, '^');
	}
	if (hyph)
		sb_putc(out, '-');
	sb_putc(out, ']');
	*pp = p;
	return 0;
}

/* {n}, {n,} or {n,m}: a quantifier; anything else is a literal brace in ECMA. */
static size_t quantifier_len(const char *p)
{
	const char *q = p + 1;

	if (!isdigit((unsigned char)*q))
		return 0;
	while (isdigit((unsigned char)*q))
		q++;
	if (*q == ',') {
		q++;
		while (isdigit((unsigned char)*q))
			q++;
	}
	return *q == '}' ? (size_t)(q - p + 1) : 0;
}

static int re_translate(const char *src, struct sb *out, const char **why)
{
	const char *p = src;

	while (*p) {
		char c = *p;
		size_t qlen;

		switch (c) {
		case '\\': {
			struct esc e;
			p++;
			if (parse_escape(&p, false, &e, why) < 0)
				return -EINVAL;
			if (e.kind == ESC_CLASS)
				put_class(out, e.cls, e.neg, false);
			else if (e.kind == ESC_ASSERT)
				sb_puts(out, e.cls == 'b' ? "\\b" : "\\B");
			else
				put_literal(out, e.cp);
			continue;
		}
		case '[':
			p++;
			if (translate_class(&p, out, why) < 0)
				return -EINVAL;
			continue;
		case '(':
			if (p[1] == '?') {
				if (p[2] == ':') {
					p += 3;
				} else if (p[2] == '<' && p[3] != '=' && p[3] != '!') {
					const char *q = strchr(p, '>');
					if (!q) {
						*why = "unterminated group name";
						return -EINVAL;
					}
					p = q + 1;
				} else {
					*why = "lookahead and lookbehind are not supported";
					return -EINVAL;
				}
			} else {
				p++;
			}
			sb_putc(out, '(');
			continue;
		case '*': case '+': case '?':
			sb_putc(out, c);
			p++;
			if (*p == '?')  /* lazy: same set of matches for a yes/no search */
				p++;
			continue;
		case '{':
			qlen = quantifier_len(p);
			if (!qlen) {
				put_literal(out, '{');
				p++;
				continue;
			}
			sb_putn(out, p, qlen);
			p += qlen;
			if (*p == '?')
				p++;
			continue;
		case '}': case ']':
			put_literal(out, (unsigned char)c);
			p++;
			continue;
		default:
			sb_putc(out, c);
			p++;
			continue;
		}
	}
	if (out->overflow) {
		*why = "pattern too long";
		return -EINVAL;
	}
	return 0;
}

/* Compile an ECMA-262 pattern; on failure *why says why (static or in whybuf). */
static int re_compile(const char *src, regex_t *re, char *whybuf, size_t whylen, const char **why)
{
	size_t cap = 8 * strlen(src) + 64;
	struct sb out = { malloc(cap), 0, cap, false };
	int rc;

	if (!out.p)
		return -ENOMEM;
	out.p[0] = '\0';
	rc = re_translate(src, &out, why);
	if (rc == 0) {
		locale_t old = utf8_enter();
		int rrc = regcomp(re, out.p, REG_EXTENDED | REG_NOSUB);
		utf8_leave(old);
		if (rrc != 0) {
			regerror(rrc, re, whybuf, whylen);
			*why = whybuf;
			rc = -EINVAL;
		}
	}
	free(out.p);
	return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* JSON values: types, equality, hashing, formatting. */

static bool is_integral(double v) { return isfinite(v) && v == trunc(v); }

static unsigned inst_types(const cJSON *v)
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

static const char *inst_type_name(const cJSON *v)
{
	unsigned t = inst_types(v);

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

static int json_equal(const cJSON *a, const cJSON *b, int depth);

/* Objects of equal size: same keys, equal values, any order. */
static int object_equal(const cJSON *a, const cJSON *b, int n, int depth)
{
	const cJSON **sa, **sb;
	int rc = 1, i = 0;

	if (n <= SMALL_OBJECT) {
		for (const cJSON *m = a->child; m; m = m->next) {
			const cJSON *o = cJSON_GetObjectItemCaseSensitive(b, m->string);
			if (!o)
				return 0;
			if ((rc = json_equal(m, o, depth - 1)) != 1)
				return rc;
		}
		for (const cJSON *m = b->child; m; m = m->next)    /* duplicate keys */
			if (!cJSON_GetObjectItemCaseSensitive(a, m->string))
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
			rc = json_equal(sa[i], sb[i], depth - 1);
	}
	free(sa);
	return rc;
}

/* Deep JSON equality: numbers by value, objects ignoring member order. Returns 1 equal, 0 not,
 * -E2BIG when a container lies more than depth levels down, -ENOMEM. */
static int json_equal(const cJSON *a, const cJSON *b, int depth)
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
			int rc = json_equal(x, y, depth - 1);
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

/* A hash consistent with json_equal(): equal values hash equal. */
static int json_hash(const cJSON *v, int depth, uint64_t *out)
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
			int rc = json_hash(c, depth - 1, &ch);
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
static void fmt_num(double v, char *buf, size_t len)
{
	if (is_integral(v) && fabs(v) < 1e15) {
		snprintf(buf, len, "%.0f", v);
		return;
	}
	snprintf(buf, len, "%.15g", v);
	if (strtod(buf, NULL) != v)
		snprintf(buf, len, "%.17g", v);
}

/* JSON-quote s into buf, truncating with "..." when it does not fit. */
static void fmt_quoted(const char *s, char *buf, size_t len)
{
	struct sb b = { buf, 0, len, false };

	buf[0] = '\0';
	sb_putc(&b, '"');
	for (; *s && !b.overflow; s++) {
		unsigned char c = (unsigned char)*s;
		char esc[8];
		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			sb_putn(&b, esc, 2);
		} else if (c < 0x20) {
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			sb_puts(&b, esc);
		} else {
			sb_putc(&b, (char)c);
		}
	}
	sb_putc(&b, '"');
	if (b.overflow)
		sb_ellipsis(&b);
}

/* A JSON value rendered compactly for a message, truncated with "...". */
static void fmt_json(const cJSON *v, char *buf, size_t len)
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

static size_t utf8_length(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += ((unsigned char)*s & 0xc0) != 0x80;
	return n;
}

/* ---------------------------------------------------------------------------------------- */
/* Compilation. */

struct cctx {
	struct schema *s;
	bool legacy;                /* draft-07 or older: siblings of $ref are ignored */
	unsigned depth;
	char *err;
	size_t errlen;
	char where[512];            /* JSON pointer of the subschema being compiled, for messages */
	size_t wlen;
	struct node **hash;
	size_t hsize, count;
};

static size_t where_push(struct cctx *c, const char *seg)
{
	size_t old = c->wlen;
	struct sb b = { c->where, c->wlen, sizeof(c->where), false };

	sb_putc(&b, '/');
	for (; *seg; seg++) {
		if (*seg == '~')
			sb_puts(&b, "~0");
		else if (*seg == '/')
			sb_puts(&b, "~1");
		else
			sb_putc(&b, *seg);
	}
	c->wlen = b.len;
	return old;
}

static size_t where_push_index(struct cctx *c, int i)
{
	char num[16];

	snprintf(num, sizeof(num), "%d", i);
	return where_push(c, num);
}

static void where_pop(struct cctx *c, size_t old)
{
	c->wlen = old;
	c->where[old] = '\0';
}

static void ignored(struct cctx *c, const char *keyword, const char *why)
{
	log_warn("schema: %s: keyword \"%s\" ignored: %s", c->where, keyword, why);
}

static int compile_fail(struct cctx *c, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int compile_fail(struct cctx *c, int rc, const char *fmt, ...)
{
	va_list ap;

	if (c->err && c->errlen) {
		va_start(ap, fmt);
		vsnprintf(c->err, c->errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

static size_t ptr_hash(const void *p, size_t size)
{
	return (size_t)mix64((uint64_t)(uintptr_t)p) & (size - 1);
}

static int memo_insert(struct cctx *c, struct node *n)
{
	if (2 * (c->count + 1) > c->hsize) {
		size_t nsize = c->hsize ? 2 * c->hsize : 64;
		struct node **nh = calloc(nsize, sizeof(*nh));
		if (!nh)
			return -ENOMEM;
		for (size_t i = 0; i < c->hsize; i++) {
			for (struct node *m = c->hash[i], *next; m; m = next) {
				next = m->hnext;
				size_t h = ptr_hash(m->src, nsize);
				m->hnext = nh[h];
				nh[h] = m;
			}
		}
		free(c->hash);
		c->hash = nh;
		c->hsize = nsize;
	}
	size_t h = ptr_hash(n->src, c->hsize);
	n->hnext = c->hash[h];
	c->hash[h] = n;
	c->count++;
	return 0;
}

static struct node *memo_find(const struct cctx *c, const cJSON *src)
{
	if (!c->hsize)
		return NULL;
	for (struct node *n = c->hash[ptr_hash(src, c->hsize)]; n; n = n->hnext)
		if (n->src == src)
			return n;
	return NULL;
}

static bool is_schema_value(const cJSON *j) { return cJSON_IsObject(j) || cJSON_IsBool(j); }

static int compile_node(struct cctx *c, const cJSON *j, struct node **out);

/* Compile the subschema under key (absent: *out stays NULL). */
static int compile_sub(struct cctx *c, const cJSON *j, const char *key, struct node **out)
{
	const cJSON *sub = cJSON_GetObjectItemCaseSensitive(j, key);
	size_t mark;
	int rc;

	if (!sub)
		return 0;
	if (!is_schema_value(sub)) {
		ignored(c, key, "not a schema (object or boolean)");
		return 0;
	}
	mark = where_push(c, key);
	rc = compile_node(c, sub, out);
	where_pop(c, mark);
	return rc;
}

/* Compile an array of subschemas under key; require_nonempty for allOf/anyOf/oneOf. */
static int compile_list(struct cctx *c, const cJSON *j, const char *key, bool require_nonempty,
			struct list *out)
{
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, key);
	int n, i = 0, rc = 0;
	size_t mark;

	if (!arr)
		return 0;
	n = cJSON_GetArraySize(arr);
	if (!cJSON_IsArray(arr) || (require_nonempty && n == 0)) {
		ignored(c, key, require_nonempty ? "not a non-empty array" : "not an array");
		return 0;
	}
	for (const cJSON *it = arr->child; it; it = it->next) {
		if (!is_schema_value(it)) {
			ignored(c, key, "an element is not a schema (object or boolean)");
			return 0;
		}
	}
	if (n == 0)
		return 0;
	out->v = calloc((size_t)n, sizeof(*out->v));
	if (!out->v)
		return -ENOMEM;
	out->n = (size_t)n;
	mark = where_push(c, key);
	for (const cJSON *it = arr->child; it && rc == 0; it = it->next, i++) {
		size_t m2 = where_push_index(c, i);
		rc = compile_node(c, it, &out->v[i]);
		where_pop(c, m2);
	}
	where_pop(c, mark);
	return rc;
}

/* A non-negative integer count (minLength, maxItems, ...); -1 when absent or malformed. */
static long long get_count(struct cctx *c, const cJSON *j, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);

	if (!v)
		return -1;
	if (!cJSON_IsNumber(v) || !is_integral(v->valuedouble) || v->valuedouble < 0) {
		ignored(c, key, "not a non-negative integer");
		return -1;
	}
	return v->valuedouble > 9e18 ? (long long)9e18 : (long long)v->valuedouble;
}

static bool get_number(struct cctx *c, const cJSON *j, const char *key, double *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);

	if (!v)
		return false;
	if (!cJSON_IsNumber(v)) {
		ignored(c, key, "not a number");
		return false;
	}
	*out = v->valuedouble;
	return true;
}

/* Resolve a same-document reference ("#", "#/$defs/a", "#/definitions/a~1b", "#/x/items/0").
 * The fragment is percent-decoded, then read as a JSON pointer (RFC 6901). */
static const cJSON *resolve_ref(const cJSON *doc, const char *ref, const char **why)
{
	const cJSON *cur = doc;
	char *buf, *p, *w;

	*why = NULL;

	if (ref[0] != '#') {
		*why = "only references inside the same schema (\"#...\") are supported";
		return NULL;
	}
	if (ref[1] == '\0')
		return doc;
	if (ref[1] != '/') {
		*why = "anchors are not supported";
		return NULL;
	}
	buf = strdup(ref + 1);
	if (!buf) {
		*why = "out of memory";
		return NULL;
	}
	for (p = w = buf; *p; p++, w++) {   /* percent-decode in place */
		if (p[0] == '%' && hexval(p[1]) >= 0 && hexval(p[2]) >= 0) {
			*w = (char)(hexval(p[1]) << 4 | hexval(p[2]));
			p += 2;
		} else {
			*w = *p;
		}
	}
	*w = '\0';
	for (char *sep = buf; cur && sep;) {
		char *tok = sep + 1, *r, *t;
		sep = strchr(tok, '/');
		if (sep)
			*sep = '\0';
		for (r = t = tok; *r; r++, t++) {   /* ~1 is '/', ~0 is '~' */
			if (*r == '~' && r[1] != '0' && r[1] != '1') {
				*why = "bad ~ escape in JSON pointer";
				free(buf);
				return NULL;
			}
			*t = *r == '~' ? (*++r == '0' ? '~' : '/') : *r;
		}
		*t = '\0';
		if (cJSON_IsObject(cur)) {
			cur = cJSON_GetObjectItemCaseSensitive(cur, tok);
		} else if (cJSON_IsArray(cur)) {
			char *e;
			long idx = strtol(tok, &e, 10);
			bool canonical = isdigit((unsigned char)tok[0]) && !*e && !(tok[0] == '0' && tok[1]);
			cur = canonical && idx < cJSON_GetArraySize(cur) ? cJSON_GetArrayItem(cur, (int)idx)
									 : NULL;
		} else {
			cur = NULL;
		}
	}
	if (!cur)
		*why = "target not found";
	free(buf);
	if (cur && !is_schema_value(cur)) {
		*why = "target is not a schema";
		return NULL;
	}
	return cur;
}

static int compile_ref(struct cctx *c, const cJSON *j, struct node *n)
{
	const cJSON *ref = cJSON_GetObjectItemCaseSensitive(j, "$ref");
	const cJSON *target;
	const char *why = NULL;
	char saved[sizeof(c->where)];
	size_t savedlen;
	int rc;

	if (!ref)
		return 0;
	if (!cJSON_IsString(ref)) {
		ignored(c, "$ref", "not a string");
		return 0;
	}
	target = resolve_ref(c->s->doc, ref->valuestring, &why);
	if (!target) {
		char msg[300];
		snprintf(msg, sizeof(msg), "cannot resolve \"%.200s\": %s", ref->valuestring,
			 why ? why : "target not found");
		ignored(c, "$ref", msg);
		return 0;
	}
	memcpy(saved, c->where, c->wlen + 1);
	savedlen = c->wlen;
	snprintf(c->where, sizeof(c->where), "%s", ref->valuestring);
	c->wlen = strlen(c->where);
	rc = compile_node(c, target, &n->ref);
	memcpy(c->where, saved, savedlen + 1);
	c->wlen = savedlen;
	return rc;
}

static unsigned type_bit(const cJSON *name)
{
	for (size_t i = 0; cJSON_IsString(name) && i < sizeof(type_names) / sizeof(type_names[0]); i++)
		if (strcmp(name->valuestring, type_names[i].name) == 0)
			return type_names[i].bit;
	return 0;
}

static void compile_type(struct cctx *c, const cJSON *j, struct node *n)
{
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "type");
	unsigned types = 0;

	if (!t)
		return;
	if (cJSON_IsArray(t)) {
		for (const cJSON *it = t->child; it; it = it->next) {
			unsigned bit = type_bit(it);
			if (!bit) {
				types = 0;
				break;
			}
			types |= bit;
		}
	} else {
		types = type_bit(t);
	}
	if (!types) {
		ignored(c, "type", "not a type name or a non-empty array of type names");
		return;
	}
	n->types = types;
}

static void compile_numeric(struct cctx *c, const cJSON *j, struct node *n)
{
	const cJSON *xmin = cJSON_GetObjectItemCaseSensitive(j, "exclusiveMinimum");
	const cJSON *xmax = cJSON_GetObjectItemCaseSensitive(j, "exclusiveMaximum");

	if (get_number(c, j, "minimum", &n->min))
		n->num |= NUM_MIN;
	if (get_number(c, j, "maximum", &n->max))
		n->num |= NUM_MAX;
	/* draft-04: a boolean turns minimum/maximum exclusive */
	if (cJSON_IsBool(xmin)) {
		if (cJSON_IsTrue(xmin) && (n->num & NUM_MIN)) {
			n->num = (n->num & ~(unsigned)NUM_MIN) | NUM_XMIN;
			n->xmin = n->min;
		}
	} else if (get_number(c, j, "exclusiveMinimum", &n->xmin)) {
		n->num |= NUM_XMIN;
	}
	if (cJSON_IsBool(xmax)) {
		if (cJSON_IsTrue(xmax) && (n->num & NUM_MAX)) {
			n->num = (n->num & ~(unsigned)NUM_MAX) | NUM_XMAX;
			n->xmax = n->max;
		}
	} else if (get_number(c, j, "exclusiveMaximum", &n->xmax)) {
		n->num |= NUM_XMAX;
	}
	if (get_number(c, j, "multipleOf", &n->mult)) {
		if (n->mult > 0 && isfinite(n->mult))
			n->num |= NUM_MULT;
		else
			ignored(c, "multipleOf", "not a positive number");
	}
}

static int compile_pattern(struct cctx *c, const cJSON *j, struct node *n)
{
	const cJSON *pat = cJSON_GetObjectItemCaseSensitive(j, "pattern");
	const char *why = NULL;
	char whybuf[128];
	int rc;

	if (!pat)
		return 0;
	if (!cJSON_IsString(pat)) {
		ignored(c, "pattern", "not a string");
		return 0;
	}
	n->pattern = malloc(sizeof(*n->pattern));
	if (!n->pattern)
		return -ENOMEM;
	rc = re_compile(pat->valuestring, n->pattern, whybuf, sizeof(whybuf), &why);
	if (rc == -ENOMEM)
		return rc;
	if (rc < 0) {
		char msg[400];
		snprintf(msg, sizeof(msg), "cannot compile \"%.200s\": %s", pat->valuestring, why);
		ignored(c, "pattern", msg);
		free(n->pattern);
		n->pattern = NULL;
		return 0;
	}
	n->pattern_src = pat->valuestring;
	return 0;
}

static int cmp_prop(const void *a, const void *b)
{
	return strcmp(((const struct prop *)a)->name, ((const struct prop *)b)->name);
}

static int compile_properties(struct cctx *c, const cJSON *j, struct node *n)
{
	const cJSON *props = cJSON_GetObjectItemCaseSensitive(j, "properties");
	size_t mark, i = 0;
	int rc = 0;

	if (!props)
		return 0;
	if (!cJSON_IsObject(props)) {
		ignored(c, "properties", "not an object");
		return 0;
	}
	n->nprops = (size_t)cJSON_GetArraySize(props);
	if (!n->nprops)
		return 0;
	n->props = calloc(n->nprops, sizeof(*n->props));
	if (!n->props)
		return -ENOMEM;
	mark = where_push(c, "properties");
	for (const cJSON *p = props->child; p && rc == 0; p = p->next, i++) {
		size_t m2 = where_push(c, p->string ? p->string : "");
		n->props[i].name = p->string ? p->string : "";
		if (is_schema_value(p))
			rc = compile_node(c, p, &n->props[i].schema);
		else    /* schema NULL: the property is declared but anything goes */
			ignored(c, "properties", "member is not a schema (object or boolean)");
		where_pop(c, m2);
	}
	where_pop(c, mark);
	if (rc == 0)
		qsort(n->props, n->nprops, sizeof(*n->props), cmp_prop);
	return rc;
}

static int compile_pattern_properties(struct cctx *c, const cJSON *j, struct node *n)
{
	const cJSON *pp = cJSON_GetObjectItemCaseSensitive(j, "patternProperties");
	size_t mark;
	int rc = 0;

	if (!pp)
		return 0;
	if (!cJSON_IsObject(pp)) {
		ignored(c, "patternProperties", "not an object");
		return 0;
	}
	n->pprops = calloc((size_t)cJSON_GetArraySize(pp) + 1, sizeof(*n->pprops));
	if (!n->pprops)
		return -ENOMEM;
	mark = where_push(c, "patternProperties");
	for (const cJSON *p = pp->child; p && rc == 0; p = p->next) {
		struct pprop *e = &n->pprops[n->npprops];
		const char *why = NULL;
		char whybuf[128];
		size_t m2 = where_push(c, p->string ? p->string : "");

		if (!is_schema_value(p)) {
			ignored(c, "patternProperties", "a member is not a schema");
		} else if ((rc = re_compile(p->string ? p->string : "", &e->re, whybuf,
					    sizeof(whybuf), &why)) == -EINVAL) {
			char msg[400];
			snprintf(msg, sizeof(msg), "cannot compile \"%.200s\": %s", p->string, why);
			ignored(c, "patternProperties", msg);
			rc = 0;
		} else if (rc == 0) {
			e->src = p->string;
			n->npprops++;   /* counted before compiling the subschema: freed on failure */
			rc = compile_node(c, p, &e->schema);
		}
		where_pop(c, m2);
	}
	where_pop(c, mark);
	return rc;
}

static int compile_required(struct cctx *c, const cJSON *j, struct node *n)
{
	const cJSON *req = cJSON_GetObjectItemCaseSensitive(j, "required");
	size_t count, i = 0;

	if (!req)
		return 0;
	if (!cJSON_IsArray(req)) {
		ignored(c, "required", "not an array");
		return 0;
	}
	for (const cJSON *it = req->child; it; it = it->next) {
		if (!cJSON_IsString(it)) {
			ignored(c, "required", "an element is not a string");
			return 0;
		}
	}
	count = (size_t)cJSON_GetArraySize(req);
	if (!count)
		return 0;
	n->required = calloc(count, sizeof(*n->required));
	if (!n->required)
		return -ENOMEM;
	for (const cJSON *it = req->child; it; it = it->next)
		n->required[i++] = it->valuestring;
	n->nrequired = count;
	return 0;
}

static int compile_items(struct cctx *c, const cJSON *j, struct node *n)
{
	const cJSON *items = cJSON_GetObjectItemCaseSensitive(j, "items");
	int rc;

	if (cJSON_IsArray(items)) {
		/* draft-07 tuple: items[] then additionalItems */
		if ((rc = compile_list(c, j, "items", false, &n->prefix)) < 0)
			return rc;
		return compile_sub(c, j, "additionalItems", &n->items);
	}
	if ((rc = compile_list(c, j, "prefixItems", false, &n->prefix)) < 0)
		return rc;
	return compile_sub(c, j, "items", &n->items);
}

static int compile_keywords(struct cctx *c, const cJSON *j, struct node *n)
{
	const cJSON *v;
	int rc;

	if ((rc = compile_ref(c, j, n)) < 0)
		return rc;
	if (n->ref && c->legacy)
		return 0;
	compile_type(c, j, n);
	if ((v = cJSON_GetObjectItemCaseSensitive(j, "enum"))) {
		if (cJSON_IsArray(v))
			n->enum_v = v;
		else
			ignored(c, "enum", "not an array");
	}
	n->const_v = cJSON_GetObjectItemCaseSensitive(j, "const");
	compile_numeric(c, j, n);
	n->min_len = get_count(c, j, "minLength");
	n->max_len = get_count(c, j, "maxLength");
	if ((rc = compile_pattern(c, j, n)) < 0)
		return rc;
	if ((rc = compile_properties(c, j, n)) < 0)
		return rc;
	if ((rc = compile_required(c, j, n)) < 0)
		return rc;
	if ((rc = compile_pattern_properties(c, j, n)) < 0)
		return rc;
	if ((rc = compile_sub(c, j, "additionalProperties", &n->additional)) < 0)
		return rc;
	n->min_props = get_count(c, j, "minProperties");
	n->max_props = get_count(c, j, "maxProperties");
	if ((rc = compile_items(c, j, n)) < 0)
		return rc;
	n->min_items = get_count(c, j, "minItems");
	n->max_items = get_count(c, j, "maxItems");
	if ((v = cJSON_GetObjectItemCaseSensitive(j, "uniqueItems"))) {
		if (cJSON_IsBool(v))
			n->unique = cJSON_IsTrue(v);
		else
			ignored(c, "uniqueItems", "not a boolean");
	}
	if ((rc = compile_list(c, j, "allOf", true, &n->all_of)) < 0)
		return rc;
	if ((rc = compile_list(c, j, "anyOf", true, &n->any_of)) < 0)
		return rc;
	if ((rc = compile_list(c, j, "oneOf", true, &n->one_of)) < 0)
		return rc;
	if ((rc = compile_sub(c, j, "not", &n->not_)) < 0)
		return rc;
	return 0;
}

static int compile_node(struct cctx *c, const cJSON *j, struct node **out)
{
	struct node *n = memo_find(c, j);
	int rc;

	if (n) {
		*out = n;
		return 0;
	}
	if (c->depth >= SCHEMA_MAX_DEPTH)
		return compile_fail(c, -EINVAL, "schema nested deeper than %d levels at %s",
				    SCHEMA_MAX_DEPTH, c->where);
	n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	n->src = j;
	n->next = c->s->nodes;
	c->s->nodes = n;
	n->min_len = n->max_len = n->min_props = n->max_props = -1;
	n->min_items = n->max_items = -1;
	if ((rc = memo_insert(c, n)) < 0)
		return rc;
	*out = n;
	if (cJSON_IsBool(j)) {
		n->kind = cJSON_IsTrue(j) ? NODE_TRUE : NODE_FALSE;
		return 0;
	}
	n->kind = NODE_SCHEMA;
	c->depth++;
	rc = compile_keywords(c, j, n);
	c->depth--;
	return rc;
}

static void node_free(struct node *n)
{
	if (n->pattern) {
		regfree(n->pattern);
		free(n->pattern);
	}
	for (size_t i = 0; i < n->npprops; i++)
		regfree(&n->pprops[i].re);
	free(n->pprops);
	free(n->props);
	free(n->required);
	free(n->prefix.v);
	free(n->all_of.v);
	free(n->any_of.v);
	free(n->one_of.v);
	free(n);
}

void schema_free(struct schema *s)
{
	if (!s)
		return;
	for (struct node *n = s->nodes, *next; n; n = next) {
		next = n->next;
		node_free(n);
	}
	cJSON_Delete(s->doc);
	free(s);
}

static bool is_legacy_dialect(const cJSON *doc)
{
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(doc, "$schema");
	static const char *const legacy[] = { "draft-03", "draft-04", "draft-06", "draft-07" };

	if (!cJSON_IsString(d))
		return false;
	for (size_t i = 0; i < sizeof(legacy) / sizeof(legacy[0]); i++)
		if (strstr(d->valuestring, legacy[i]))
			return true;
	return false;
}

int schema_compile(const cJSON *schema, struct schema **out, char *err, size_t errlen)
{
	struct cctx c = { .err = err, .errlen = errlen, .where = "#", .wlen = 1 };
	struct schema *s;
	int rc;

	if (err && errlen)
		err[0] = '\0';
	if (schema && !is_schema_value(schema))
		return compile_fail(&c, -EINVAL, "inputSchema must be an object or a boolean");
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	c.s = s;
	/* Absent or {}: any object (MCP tool arguments are always an object). */
	if (!schema || (cJSON_IsObject(schema) && !schema->child)) {
		s->doc = cJSON_CreateObject();
		if (s->doc && !cJSON_AddStringToObject(s->doc, "type", "object")) {
			cJSON_Delete(s->doc);
			s->doc = NULL;
		}
	} else {
		s->doc = cJSON_Duplicate(schema, true);
	}
	if (!s->doc) {
		rc = -ENOMEM;
		goto out;
	}
	c.legacy = is_legacy_dialect(s->doc);
	rc = compile_node(&c, s->doc, &s->root);
out:
	free(c.hash);
	if (rc < 0) {
		if (rc == -ENOMEM)
			compile_fail(&c, rc, "out of memory compiling the schema");
		schema_free(s);
		return rc;
	}
	*out = s;
	return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Validation. */

enum { V_OK = 0, V_FAIL = 1, V_FATAL = 2 };

struct seg {
	const char *key;    /* NULL: index */
	int index;
};

struct vctx {
	struct schema_error *err;   /* NULL: the caller does not want details */
	unsigned quiet;             /* inside anyOf/oneOf/not: failures are expected, not reported */
	unsigned eval;
	unsigned long steps;
	int oom;
	unsigned depth;
	struct seg path[SCHEMA_MAX_DEPTH];
};

static bool is_identifier(const char *s)
{
	if (!(isalpha((unsigned char)*s) || *s == '_'))
		return false;
	for (; *s; s++)
		if (!(isalnum((unsigned char)*s) || *s == '_'))
			return false;
	return true;
}

/* "$.user.tags[2]", "$['odd key']": dot notation where the key allows it. */
static void path_format(const struct vctx *v, char *out, size_t len)
{
	struct sb b = { out, 0, len, false };

	out[0] = '\0';
	sb_putc(&b, '$');
	for (unsigned i = 0; i < v->depth; i++) {
		const struct seg *s = &v->path[i];
		char tmp[24];
		if (!s->key) {
			snprintf(tmp, sizeof(tmp), "[%d]", s->index);
			sb_puts(&b, tmp);
		} else if (is_identifier(s->key)) {
			sb_putc(&b, '.');
			sb_puts(&b, s->key);
		} else {
			sb_puts(&b, "['");
			for (const char *k = s->key; *k; k++) {
				unsigned char c = (unsigned char)*k;
				if (c == '\'' || c == '\\') {
					sb_putc(&b, '\\');
					sb_putc(&b, (char)c);
				} else if (c < 0x20) {
					snprintf(tmp, sizeof(tmp), "\\u%04x", c);
					sb_puts(&b, tmp);
				} else {
					sb_putc(&b, (char)c);
				}
			}
			sb_puts(&b, "']");
		}
	}
	if (b.overflow)
		sb_ellipsis(&b);
}

static void record(struct vctx *v, const char *keyword, const char *fmt, va_list ap)
{
	if (!v->err)
		return;
	path_format(v, v->err->path, sizeof(v->err->path));
	snprintf(v->err->keyword, sizeof(v->err->keyword), "%s", keyword);
	vsnprintf(v->err->message, sizeof(v->err->message), fmt, ap);
}

static int fail(struct vctx *v, const char *keyword, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fatal(struct vctx *v, const char *keyword, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct vctx *v, const char *keyword, const char *fmt, ...)
{
	va_list ap;

	if (v->quiet)
		return V_FAIL;
	va_start(ap, fmt);
	record(v, keyword, fmt, ap);
	va_end(ap);
	return V_FAIL;
}

/* Limits and out-of-memory end validation even inside anyOf/oneOf/not: a hostile instance must
 * not turn "too deep" into "did not match, so the not passes". */
static int fatal(struct vctx *v, const char *keyword, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	record(v, keyword, fmt, ap);
	va_end(ap);
	return V_FATAL;
}

static int equal_fatal(struct vctx *v, int rc)
{
	if (rc == -ENOMEM) {
		v->oom = 1;
		return fatal(v, "depth", "out of memory");
	}
	return fatal(v, "depth", "value nested deeper than %d levels", SCHEMA_MAX_DEPTH);
}

static int validate(struct vctx *v, const struct node *n, const cJSON *inst);

static int push_key(struct vctx *v, const char *key)
{
	if (v->depth >= SCHEMA_MAX_DEPTH)
		return fatal(v, "depth", "value nested deeper than %d levels", SCHEMA_MAX_DEPTH);
	v->path[v->depth].key = key ? key : "";
	v->path[v->depth++].index = 0;
	return V_OK;
}

static int push_index(struct vctx *v, int i)
{
	if (v->depth >= SCHEMA_MAX_DEPTH)
		return fatal(v, "depth", "value nested deeper than %d levels", SCHEMA_MAX_DEPTH);
	v->path[v->depth].key = NULL;
	v->path[v->depth++].index = i;
	return V_OK;
}

static int validate_child_key(struct vctx *v, const struct node *n, const cJSON *m)
{
	int rc = push_key(v, m->string);

	if (rc)
		return rc;
	rc = validate(v, n, m);
	v->depth--;
	return rc;
}

static int validate_child_index(struct vctx *v, const struct node *n, const cJSON *m, int i)
{
	int rc = push_index(v, i);

	if (rc)
		return rc;
	rc = validate(v, n, m);
	v->depth--;
	return rc;
}

static const char *plural(long long n, const char *one, const char *many)
{
	return n == 1 ? one : many;
}

static void fmt_types(unsigned types, char *buf, size_t len)
{
	size_t count = 0, total = 0, n = sizeof(type_names) / sizeof(type_names[0]);
	struct sb b = { buf, 0, len, false };

	buf[0] = '\0';
	for (size_t i = 0; i < n; i++)
		total += (types & type_names[i].bit) != 0;
	for (size_t i = 0; i < n; i++) {
		if (!(types & type_names[i].bit))
			continue;
		if (count)
			sb_puts(&b, count + 1 == total ? " or " : ", ");
		sb_puts(&b, type_names[i].name);
		count++;
	}
}

static int validate_number(struct vctx *v, const struct node *n, double x)
{
	char b[40];

	if ((n->num & NUM_MIN) && !(x >= n->min)) {
		fmt_num(n->min, b, sizeof(b));
		return fail(v, "minimum", "must be >= %s", b);
	}
	if ((n->num & NUM_MAX) && !(x <= n->max)) {
		fmt_num(n->max, b, sizeof(b));
		return fail(v, "maximum", "must be <= %s", b);
	}
	if ((n->num & NUM_XMIN) && !(x > n->xmin)) {
		fmt_num(n->xmin, b, sizeof(b));
		return fail(v, "exclusiveMinimum", "must be > %s", b);
	}
	if ((n->num & NUM_XMAX) && !(x < n->xmax)) {
		fmt_num(n->xmax, b, sizeof(b));
		return fail(v, "exclusiveMaximum", "must be < %s", b);
	}
	if (n->num & NUM_MULT) {
		bool ok;
		if (is_integral(x) && is_integral(n->mult) && fabs(x) < 9007199254740992.0 &&
		    n->mult < 9007199254740992.0) {
			ok = fmod(x, n->mult) == 0;
		} else {
			/* decimal multiples (0.1, 0.01) are inexact in binary: allow rounding noise */
			double q = x / n->mult, r = nearbyint(q);
			ok = isfinite(q) && fabs(q - r) <= 1e-9 * fmax(1.0, fabs(r));
		}
		if (!ok) {
			fmt_num(n->mult, b, sizeof(b));
			return fail(v, "multipleOf", "must be a multiple of %s", b);
		}
	}
	return V_OK;
}

static int validate_string(struct vctx *v, const struct node *n, const char *s)
{
	if (n->min_len >= 0 || n->max_len >= 0) {
		long long len = (long long)utf8_length(s);
		if (n->min_len >= 0 && len < n->min_len)
			return fail(v, "minLength", "must be at least %lld %s", n->min_len,
				    plural(n->min_len, "character", "characters"));
		if (n->max_len >= 0 && len > n->max_len)
			return fail(v, "maxLength", "must be at most %lld %s", n->max_len,
				    plural(n->max_len, "character", "characters"));
	}
	if (n->pattern && !pattern_matches(n->pattern, s)) {
		char q[160];
		fmt_quoted(n->pattern_src, q, sizeof(q));
		return fail(v, "pattern", "must match pattern %s", q);
	}
	return V_OK;
}

struct hitem {
	uint64_t h;
	int index;
	const cJSON *v;
};

static int cmp_hitem(const void *a, const void *b)
{
	const struct hitem *x = a, *y = b;

	if (x->h != y->h)
		return x->h < y->h ? -1 : 1;
	return x->index - y->index;
}

/* Finds the duplicate pair with the smallest second index, so the report is deterministic. */
static int validate_unique(struct vctx *v, const cJSON *arr, int count)
{
	int budget = SCHEMA_MAX_DEPTH - (int)v->depth;
	int di = -1, dj = -1, rc;

	if (count <= SMALL_ARRAY) {
		int j = 0;
		for (const cJSON *b = arr->child; b && dj < 0; b = b->next, j++) {
			int i = 0;
			for (const cJSON *a = arr->child; a != b; a = a->next, i++) {
				if ((rc = json_equal(a, b, budget)) < 0)
					return equal_fatal(v, rc);
				if (rc == 1) {
					di = i;
					dj = j;
					break;
				}
			}
		}
	} else {
		struct hitem *h = malloc((size_t)count * sizeof(*h));
		int i = 0;
		if (!h)
			return equal_fatal(v, -ENOMEM);
		for (const cJSON *a = arr->child; a && i < count; a = a->next, i++) {
			h[i].index = i;
			h[i].v = a;
			if ((rc = json_hash(a, budget, &h[i].h)) < 0) {
				free(h);
				return equal_fatal(v, rc);
			}
		}
		qsort(h, (size_t)count, sizeof(*h), cmp_hitem);
		for (int s = 0; s < count; s++) {
			for (int t = s + 1; t < count && h[t].h == h[s].h; t++) {
				if ((rc = json_equal(h[s].v, h[t].v, budget)) < 0) {
					free(h);
					return equal_fatal(v, rc);
				}
				int lo = h[s].index < h[t].index ? h[s].index : h[t].index;
				int hi = h[s].index ^ h[t].index ^ lo;
				if (rc == 1 && (dj < 0 || hi < dj || (hi == dj && lo < di))) {
					di = lo;
					dj = hi;
				}
			}
		}
		free(h);
	}
	if (dj >= 0)
		return fail(v, "uniqueItems", "must not contain duplicates (items %d and %d are equal)",
			    di, dj);
	return V_OK;
}

static int validate_array(struct vctx *v, const struct node *n, const cJSON *arr)
{
	int count = cJSON_GetArraySize(arr), i = 0, rc;

	if (n->min_items >= 0 && count < n->min_items)
		return fail(v, "minItems", "must have at least %lld %s", n->min_items,
			    plural(n->min_items, "item", "items"));
	if (n->max_items >= 0 && count > n->max_items)
		return fail(v, "maxItems", "must have at most %lld %s", n->max_items,
			    plural(n->max_items, "item", "items"));
	for (const cJSON *it = arr->child; it; it = it->next, i++) {
		const struct node *sub = (size_t)i < n->prefix.n ? n->prefix.v[i] : n->items;
		if (!sub)
			continue;
		if (sub->kind == NODE_FALSE && sub == n->items)
			return fail(v, "items", "must have at most %zu %s", n->prefix.n,
				    plural((long long)n->prefix.n, "item", "items"));
		if ((rc = validate_child_index(v, sub, it, i)))
			return rc;
	}
	if (n->unique && count > 1)
		return validate_unique(v, arr, count);
	return V_OK;
}

static const struct prop *find_prop(const struct node *n, const char *name)
{
	size_t lo = 0, hi = n->nprops;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(name, n->props[mid].name);
		if (c == 0)
			return &n->props[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

static int validate_object(struct vctx *v, const struct node *n, const cJSON *obj)
{
	int count = cJSON_GetArraySize(obj), rc;
	char q[160];

	if (n->min_props >= 0 && count < n->min_props)
		return fail(v, "minProperties", "must have at least %lld %s", n->min_props,
			    plural(n->min_props, "property", "properties"));
	if (n->max_props >= 0 && count > n->max_props)
		return fail(v, "maxProperties", "must have at most %lld %s", n->max_props,
			    plural(n->max_props, "property", "properties"));
	for (size_t i = 0; i < n->nrequired; i++) {
		if (!cJSON_GetObjectItemCaseSensitive(obj, n->required[i])) {
			if (v->quiet)
				return V_FAIL;
			fmt_quoted(n->required[i], q, sizeof(q));
			return fail(v, "required", "missing required property %s", q);
		}
	}
	if (!n->nprops && !n->npprops && !n->additional)
		return V_OK;
	/* every member, duplicates included: a repeated key cannot smuggle an unchecked value */
	for (const cJSON *m = obj->child; m; m = m->next) {
		const char *key = m->string ? m->string : "";
		const struct prop *p = n->nprops ? find_prop(n, key) : NULL;
		bool matched = p != NULL;

		if (p && p->schema && (rc = validate_child_key(v, p->schema, m)))
			return rc;
		for (size_t i = 0; i < n->npprops; i++) {
			if (!pattern_matches(&n->pprops[i].re, key))
				continue;
			matched = true;
			if ((rc = validate_child_key(v, n->pprops[i].schema, m)))
				return rc;
		}
		if (matched || !n->additional)
			continue;
		if (n->additional->kind == NODE_FALSE) {
			if (v->quiet)
				return V_FAIL;
			if ((rc = push_key(v, key)))
				return rc;
			fmt_quoted(key, q, sizeof(q));
			rc = fail(v, "additionalProperties", "property %s is not allowed", q);
			v->depth--;
			return rc;
		}
		if ((rc = validate_child_key(v, n->additional, m)))
			return rc;
	}
	return V_OK;
}

static int validate_enum(struct vctx *v, const struct node *n, const cJSON *inst)
{
	int budget = SCHEMA_MAX_DEPTH - (int)v->depth, rc;
	char list[200];
	struct sb b = { list, 0, sizeof(list), false };

	for (const cJSON *e = n->enum_v->child; e; e = e->next) {
		if ((rc = json_equal(e, inst, budget)) < 0)
			return equal_fatal(v, rc);
		if (rc == 1)
			return V_OK;
	}
	if (v->quiet)
		return V_FAIL;
	list[0] = '\0';
	for (const cJSON *e = n->enum_v->child; e && !b.overflow; e = e->next) {
		char one[160];
		fmt_json(e, one, sizeof(one));
		if (e != n->enum_v->child)
			sb_puts(&b, ", ");
		sb_puts(&b, one);
	}
	if (b.overflow)
		sb_ellipsis(&b);
	return fail(v, "enum", "must be one of: %s", list);
}

static int validate_combinators(struct vctx *v, const struct node *n, const cJSON *inst)
{
	int rc;

	for (size_t i = 0; i < n->all_of.n; i++)
		if ((rc = validate(v, n->all_of.v[i], inst)))
			return rc;
	if (n->any_of.n) {
		bool ok = false;
		v->quiet++;
		for (size_t i = 0; i < n->any_of.n && !ok; i++) {
			rc = validate(v, n->any_of.v[i], inst);
			if (rc == V_FATAL) {
				v->quiet--;
				return rc;
			}
			ok = rc == V_OK;
		}
		v->quiet--;
		if (!ok)
			return fail(v, "anyOf", "must match at least one of the %zu schemas in anyOf",
				    n->any_of.n);
	}
	if (n->one_of.n) {
		size_t matches = 0, first = 0, second = 0;
		v->quiet++;
		for (size_t i = 0; i < n->one_of.n && matches < 2; i++) {
			rc = validate(v, n->one_of.v[i], inst);
			if (rc == V_FATAL) {
				v->quiet--;
				return rc;
			}
			if (rc == V_OK) {
				if (matches++)
					second = i;
				else
					first = i;
			}
		}
		v->quiet--;
		if (matches == 0)
			return fail(v, "oneOf", "must match exactly one of the %zu schemas in oneOf "
				    "(matches none)", n->one_of.n);
		if (matches > 1)
			return fail(v, "oneOf", "must match exactly one of the %zu schemas in oneOf "
				    "(matches %zu and %zu)", n->one_of.n, first, second);
	}
	if (n->not_) {
		v->quiet++;
		rc = validate(v, n->not_, inst);
		v->quiet--;
		if (rc == V_FATAL)
			return rc;
		if (rc == V_OK)
			return fail(v, "not", "must not match the schema in not");
	}
	return V_OK;
}

static int validate_node(struct vctx *v, const struct node *n, const cJSON *inst)
{
	unsigned t;
	int rc;

	if (n->kind == NODE_TRUE)
		return V_OK;
	if (n->kind == NODE_FALSE)
		return fail(v, "false", "no value is allowed here");
	t = inst_types(inst);
	if (n->types && !(n->types & t)) {
		char want[96];
		if (v->quiet)
			return V_FAIL;
		fmt_types(n->types, want, sizeof(want));
		return fail(v, "type", "expected %s, got %s", want, inst_type_name(inst));
	}
	if (n->enum_v && (rc = validate_enum(v, n, inst)))
		return rc;
	if (n->const_v) {
		rc = json_equal(n->const_v, inst, SCHEMA_MAX_DEPTH - (int)v->depth);
		if (rc < 0)
			return equal_fatal(v, rc);
		if (rc == 0) {
			char want[160];
			if (v->quiet)
				return V_FAIL;
			fmt_json(n->const_v, want, sizeof(want));
			return fail(v, "const", "must be equal to %s", want);
		}
	}
	if (t & TY_NUMBER)
		rc = validate_number(v, n, inst->valuedouble);
	else if (t & TY_STRING)
		rc = validate_string(v, n, inst->valuestring);
	else if (t & TY_ARRAY)
		rc = validate_array(v, n, inst);
	else if (t & TY_OBJECT)
		rc = validate_object(v, n, inst);
	else
		rc = V_OK;
	if (rc)
		return rc;
	if (n->ref && (rc = validate(v, n->ref, inst)))
		return rc;
	return validate_combinators(v, n, inst);
}

static int validate(struct vctx *v, const struct node *n, const cJSON *inst)
{
	int rc;

	if (++v->steps > EVAL_MAX_STEPS)
		return fatal(v, "depth", "validation exceeded %lu steps", EVAL_MAX_STEPS);
	if (v->eval >= EVAL_MAX_DEPTH)
		return fatal(v, "depth", "schema evaluation nested deeper than %d levels "
			     "(a $ref cycle?)", EVAL_MAX_DEPTH);
	v->eval++;
	rc = validate_node(v, n, inst);
	v->eval--;
	return rc;
}

int schema_validate(const struct schema *s, const cJSON *instance, struct schema_error *err)
{
	struct vctx v = { .err = err };
	cJSON empty = { .type = cJSON_Object };

	if (err)
		err->path[0] = err->keyword[0] = err->message[0] = '\0';
	if (validate(&v, s->root, instance ? instance : &empty) == V_OK)
		return 0;
	return v.oom ? -ENOMEM : -EINVAL;
}

cJSON *schema_error_json(const struct schema_error *err)
{
	cJSON *o = cJSON_CreateObject();

	if (!o)
		return NULL;
	if (!cJSON_AddStringToObject(o, "path", err->path) ||
	    !cJSON_AddStringToObject(o, "keyword", err->keyword) ||
	    !cJSON_AddStringToObject(o, "message", err->message)) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}
