/* schema_validate: an instance checked against compiled nodes, bounded in depth and steps. */
#include "govern/schema_int.h"

#include "base/alloc.h"
#include "base/json_get.h"
#include "base/log.h"
#include "govern/schema_regex.h"

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
			sb_putc(&b, '[');
			schema_sb_quote(&b, s->key, '\'');
			sb_putc(&b, ']');
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

/* A count keyword pair (minLength/maxLength, minItems/maxItems, ...): its names and words. */
struct count_words {
	const char *min_kw, *max_kw, *verb, *one, *many;
};

static const struct count_words length_words = {
	"minLength", "maxLength", "be", "character", "characters"
};
static const struct count_words items_words = { "minItems", "maxItems", "have", "item", "items" };
static const struct count_words props_words = {
	"minProperties", "maxProperties", "have", "property", "properties"
};

/* count against the bounds min and max (-1: none). */
static int check_count(struct vctx *v, long long count, long long min, long long max,
		       const struct count_words *w)
{
	if (min >= 0 && count < min)
		return fail(v, w->min_kw, "must %s at least %lld %s", w->verb, min,
			    plural(min, w->one, w->many));
	if (max >= 0 && count > max)
		return fail(v, w->max_kw, "must %s at most %lld %s", w->verb, max,
			    plural(max, w->one, w->many));
	return V_OK;
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
		schema_fmt_num(n->min, b, sizeof(b));
		return fail(v, "minimum", "must be >= %s", b);
	}
	if ((n->num & NUM_MAX) && !(x <= n->max)) {
		schema_fmt_num(n->max, b, sizeof(b));
		return fail(v, "maximum", "must be <= %s", b);
	}
	if ((n->num & NUM_XMIN) && !(x > n->xmin)) {
		schema_fmt_num(n->xmin, b, sizeof(b));
		return fail(v, "exclusiveMinimum", "must be > %s", b);
	}
	if ((n->num & NUM_XMAX) && !(x < n->xmax)) {
		schema_fmt_num(n->xmax, b, sizeof(b));
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
			schema_fmt_num(n->mult, b, sizeof(b));
			return fail(v, "multipleOf", "must be a multiple of %s", b);
		}
	}
	return V_OK;
}

static int validate_string(struct vctx *v, const struct node *n, const char *s)
{
	int rc;

	if ((n->min_len >= 0 || n->max_len >= 0) &&
	    (rc = check_count(v, (long long)schema_utf8_length(s), n->min_len, n->max_len,
			      &length_words)))
		return rc;
	if (n->pattern && !schema_regex_search(n->pattern, s)) {
		char q[160];
		schema_fmt_quoted(n->pattern_src, q, sizeof(q));
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
				if ((rc = schema_json_equal(a, b, budget)) < 0)
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
			if ((rc = schema_json_hash(a, budget, &h[i].h)) < 0) {
				free(h);
				return equal_fatal(v, rc);
			}
		}
		qsort(h, (size_t)count, sizeof(*h), cmp_hitem);
		for (int s = 0; s < count; s++) {
			for (int t = s + 1; t < count && h[t].h == h[s].h; t++) {
				if ((rc = schema_json_equal(h[s].v, h[t].v, budget)) < 0) {
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

	if ((rc = check_count(v, count, n->min_items, n->max_items, &items_words)))
		return rc;
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

	if ((rc = check_count(v, count, n->min_props, n->max_props, &props_words)))
		return rc;
	for (size_t i = 0; i < n->nrequired; i++) {
		if (!json_get(obj, n->required[i])) {
			if (v->quiet)
				return V_FAIL;
			schema_fmt_quoted(n->required[i], q, sizeof(q));
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
			if (!schema_regex_search(n->pprops[i].re, key))
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
			schema_fmt_quoted(key, q, sizeof(q));
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
		if ((rc = schema_json_equal(e, inst, budget)) < 0)
			return equal_fatal(v, rc);
		if (rc == 1)
			return V_OK;
	}
	if (v->quiet)
		return V_FAIL;
	list[0] = '\0';
	for (const cJSON *e = n->enum_v->child; e && !b.overflow; e = e->next) {
		char one[160];
		schema_fmt_json(e, one, sizeof(one));
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
	if (n->if_) {
		const struct node *branch;
		v->quiet++;
		rc = validate(v, n->if_, inst);
		v->quiet--;
		if (rc == V_FATAL)
			return rc;
		/* The failure is the branch's own (its keyword and path). */
		branch = rc == V_OK ? n->then_ : n->else_;
		if (branch && (rc = validate(v, branch, inst)))
			return rc;
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
	t = schema_inst_types(inst);
	if (n->types && !(n->types & t)) {
		char want[96];
		if (v->quiet)
			return V_FAIL;
		fmt_types(n->types, want, sizeof(want));
		return fail(v, "type", "expected %s, got %s", want, schema_inst_type_name(inst));
	}
	if (n->enum_v && (rc = validate_enum(v, n, inst)))
		return rc;
	if (n->const_v) {
		rc = schema_json_equal(n->const_v, inst, SCHEMA_MAX_DEPTH - (int)v->depth);
		if (rc < 0)
			return equal_fatal(v, rc);
		if (rc == 0) {
			char want[160];
			if (v->quiet)
				return V_FAIL;
			schema_fmt_json(n->const_v, want, sizeof(want));
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
