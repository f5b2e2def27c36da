/* schema_int: what the parts of the schema module share (compiler, validator, JSON values);
 * not an interface for anything outside govern/schema*.c — schema.h is that. */
#ifndef WARDEN_SCHEMA_INT_H
#define WARDEN_SCHEMA_INT_H

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/htab.h"
#include "base/list.h"
#include "govern/schema.h"

struct schema_regex;

/* Nested node evaluations (instance levels plus $ref, allOf, ... hops): a $ref cycle that
 * does not consume the instance ends here. */
#define EVAL_MAX_DEPTH (4 * SCHEMA_MAX_DEPTH)
/* Node evaluations per schema_validate() call: bounds CPU for nested anyOf/oneOf. */
#define EVAL_MAX_STEPS (1ul << 22)
/* Object comparisons above this many members sort instead of looking up (quadratic). */
#define SMALL_OBJECT 16
/* uniqueItems above this many items hashes and sorts instead of comparing every pair. */
#define SMALL_ARRAY 16

/* The types "type" names, in the order messages list them: their bits (TY_*) and names
 * (type_names) both come from this one list. */
#define SCHEMA_TYPES(X)                                                                    \
	X(OBJECT, "object") X(ARRAY, "array") X(STRING, "string") X(NUMBER, "number")       \
	X(INTEGER, "integer") X(BOOLEAN, "boolean") X(NULL, "null")

/* (the first argument only ever pasted: NULL stays a name) */
#define TY_INDEX(id, name) TY_INDEX_##id,
enum { SCHEMA_TYPES(TY_INDEX) };
#undef TY_INDEX
#define TY_BIT(id, name) TY_##id = 1u << TY_INDEX_##id,
enum { SCHEMA_TYPES(TY_BIT) };
#undef TY_BIT

static const struct {
	const char *name;
	unsigned bit;
} type_names[] = {
#define TY_NAME(id, name) { name, TY_##id },
	SCHEMA_TYPES(TY_NAME)
#undef TY_NAME
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
	struct schema_regex *re;
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
	struct schema_regex *pattern;
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
	struct node *if_, *then_, *else_;   /* then_/else_ only with if_ */
	const cJSON *src;           /* memo key */
	struct htab_node memo;      /* in the compiler's memo, by src */
	struct list_head all;       /* in schema->nodes, for schema_free() */
};

struct schema {
	cJSON *doc;                 /* owned deep copy of the compiled document */
	struct node *root;
	struct list_head nodes;     /* every node, whatever the cycles between them */
};

/* A bounded string builder for messages and paths. */
struct sb {
	char *p;
	size_t len, cap;
	bool overflow;
};

/* Appends what fits; overflow records that something did not. */
void schema_sb_putn(struct sb *b, const char *s, size_t n);
/* s between two quote characters; the quote and backslash escaped, controls as \u00XX. */
void schema_sb_quote(struct sb *b, const char *s, char quote);

/* Ends a truncated text with "..." at a UTF-8 character boundary (buf holds cap bytes). */
static inline void sb_ellipsis(struct sb *b)
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

static inline void sb_putc(struct sb *b, char c) { schema_sb_putn(b, &c, 1); }
static inline void sb_puts(struct sb *b, const char *s) { schema_sb_putn(b, s, strlen(s)); }

static inline bool is_integral(double v) { return isfinite(v) && v == trunc(v); }

/* JSON values (schema_value.c): the instance's type bits and name, JSON equality (1 and 1.0
 * are equal, member order does not matter), a hash consistent with it, and compact renderings
 * for messages. Equality and hashing return < 0 on depth or memory limits. */
unsigned schema_inst_types(const cJSON *v);
const char *schema_inst_type_name(const cJSON *v);
int schema_json_equal(const cJSON *a, const cJSON *b, int depth);
int schema_json_hash(const cJSON *v, int depth, uint64_t *out);
void schema_fmt_num(double v, char *buf, size_t len);
void schema_fmt_quoted(const char *s, char *buf, size_t len);
void schema_fmt_json(const cJSON *v, char *buf, size_t len);
size_t schema_utf8_length(const char *s);

#endif
