/* schema_compile: a JSON Schema document compiled into nodes, once per tool.
 *
 * schema_compile() deep-copies the schema and turns every subschema into a struct node with
 * its keywords decoded, property names sorted for binary search, regexes compiled and $refs
 * resolved to node pointers. Nodes are memoised by their place in the document, so a $ref to a
 * subschema compiles it once and recursive schemas become cycles of nodes, which validation
 * walks under an evaluation-depth limit. Validation never recurses deeper than the instance
 * (bounded by SCHEMA_MAX_DEPTH) plus that limit, and counts its steps so that a hostile
 * combination of schema and instance cannot spin.
 */


#include "govern/schema_int.h"

#include "base/alloc.h"
#include "base/hex.h"
#include "base/htab.h"
#include "base/json_get.h"
#include "base/log.h"
#include "govern/schema_regex.h"

struct cctx {
	struct schema *s;
	bool legacy;                /* draft-07 or older: siblings of $ref are ignored */
	unsigned depth;
	char *err;
	size_t errlen;
	char where[512];            /* JSON pointer of the subschema being compiled, for messages */
	size_t wlen;
	struct htab memo;           /* document position -> node */
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

/* The keyword key of j when it has the type is_type tests; NULL when it is absent, or of
 * another type (ignored, reported as `not`). */
static const cJSON *keyword(struct cctx *c, const cJSON *j, const char *key,
			    cJSON_bool (*is_type)(const cJSON *), const char *not)
{
	const cJSON *v = json_get(j, key);

	if (v && !is_type(v)) {
		ignored(c, key, not);
		return NULL;
	}
	return v;
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

/* Nodes memoised by their place in the document: a $ref compiles its target once. */
static uint64_t memo_hash(const struct htab *t, const void *key)
{
	return htab_hash_u64(t, (uint64_t)(uintptr_t)key);
}

static bool memo_eq(const struct htab_node *hn, const void *key)
{
	return htab_entry(hn, struct node, memo)->src == key;
}

static const struct htab_type memo_type = { memo_hash, memo_eq };

static void memo_insert(struct cctx *c, struct node *n)
{
	htab_insert(&c->memo, &n->memo, n->src);
}

static struct node *memo_find(const struct cctx *c, const cJSON *src)
{
	struct htab_node *hn = htab_find(&c->memo, src);

	return hn ? htab_entry(hn, struct node, memo) : NULL;
}

static bool is_schema_value(const cJSON *j) { return cJSON_IsObject(j) || cJSON_IsBool(j); }

static int compile_node(struct cctx *c, const cJSON *j, struct node **out);

/* Compile the subschema under key (absent: *out stays NULL). */
static int compile_sub(struct cctx *c, const cJSON *j, const char *key, struct node **out)
{
	const cJSON *sub = json_get(j, key);
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
	const cJSON *arr = json_get(j, key);
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
	const cJSON *v = json_get(j, key);

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
	const cJSON *v = json_get(j, key);

	if (!v)
		return false;
	if (!cJSON_IsNumber(v)) {
		ignored(c, key, "not a number");
		return false;
	}
	*out = v->valuedouble;
	return true;
}

/* The subschema whose "$anchor" is name (2020-12 plain-name fragment "#name"), first in
 * document order; embedded resources ($id) are not told apart. */
static const cJSON *find_anchor(const cJSON *j, const char *name, int depth)
{
	const cJSON *a = json_get(j, "$anchor"), *e, *hit;

	if (depth > SCHEMA_MAX_DEPTH || !(cJSON_IsObject(j) || cJSON_IsArray(j)))
		return NULL;
	if (cJSON_IsObject(j) && cJSON_IsString(a) && !strcmp(a->valuestring, name))
		return j;
	cJSON_ArrayForEach(e, j)
		if ((hit = find_anchor(e, name, depth + 1)))
			return hit;
	return NULL;
}

/* Resolve a same-document reference ("#", "#/$defs/a", "#/definitions/a~1b", "#/x/items/0",
 * or a plain-name anchor "#a").
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
		cur = find_anchor(doc, ref + 1, 0);
		if (!cur)
			*why = "no $anchor of that name";
		return cur;
	}
	buf = strdup(ref + 1);
	if (!buf) {
		*why = "out of memory";
		return NULL;
	}
	for (p = w = buf; *p; p++, w++) {   /* percent-decode in place */
		if (p[0] == '%' && hex_digit(p[1]) >= 0 && hex_digit(p[2]) >= 0) {
			*w = (char)(hex_digit(p[1]) << 4 | hex_digit(p[2]));
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
			cur = json_get(cur, tok);
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
	const cJSON *ref = keyword(c, j, "$ref", cJSON_IsString, "not a string");
	const cJSON *target;
	const char *why = NULL;
	char saved[sizeof(c->where)];
	size_t savedlen;
	int rc;

	if (!ref)
		return 0;
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
	const cJSON *t = json_get(j, "type");
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

/* One bound and its exclusive form: key ("minimum") sets bit and *val; xkey is a number
 * (draft-06+: its own bound, xbit and *xval) or, in draft-04, a boolean that turns the
 * inclusive bound exclusive. */
static void compile_bound(struct cctx *c, const cJSON *j, struct node *n, const char *key,
			  unsigned bit, double *val, const char *xkey, unsigned xbit, double *xval)
{
	const cJSON *x = json_get(j, xkey);

	if (get_number(c, j, key, val))
		n->num |= bit;
	if (cJSON_IsBool(x)) {
		if (cJSON_IsTrue(x) && (n->num & bit)) {
			n->num = (n->num & ~bit) | xbit;
			*xval = *val;
		}
	} else if (get_number(c, j, xkey, xval)) {
		n->num |= xbit;
	}
}

static void compile_numeric(struct cctx *c, const cJSON *j, struct node *n)
{
	compile_bound(c, j, n, "minimum", NUM_MIN, &n->min, "exclusiveMinimum", NUM_XMIN, &n->xmin);
	compile_bound(c, j, n, "maximum", NUM_MAX, &n->max, "exclusiveMaximum", NUM_XMAX, &n->xmax);
	if (get_number(c, j, "multipleOf", &n->mult)) {
		if (n->mult > 0 && isfinite(n->mult))
			n->num |= NUM_MULT;
		else
			ignored(c, "multipleOf", "not a positive number");
	}
}

static int compile_pattern(struct cctx *c, const cJSON *j, struct node *n)
{
	const cJSON *pat = keyword(c, j, "pattern", cJSON_IsString, "not a string");
	char whybuf[200];
	int rc;

	if (!pat)
		return 0;
	rc = schema_regex_compile(pat->valuestring, &n->pattern, whybuf, sizeof(whybuf));
	if (rc == -ENOMEM)
		return rc;
	if (rc < 0) {
		char msg[480];
		snprintf(msg, sizeof(msg), "cannot compile \"%.200s\": %s", pat->valuestring, whybuf);
		ignored(c, "pattern", msg);
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
	const cJSON *props = keyword(c, j, "properties", cJSON_IsObject, "not an object");
	size_t mark, i = 0;
	int rc = 0;

	if (!props)
		return 0;
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
	const cJSON *pp = keyword(c, j, "patternProperties", cJSON_IsObject, "not an object");
	size_t mark;
	int rc = 0;

	if (!pp)
		return 0;
	n->pprops = calloc((size_t)cJSON_GetArraySize(pp) + 1, sizeof(*n->pprops));
	if (!n->pprops)
		return -ENOMEM;
	mark = where_push(c, "patternProperties");
	for (const cJSON *p = pp->child; p && rc == 0; p = p->next) {
		struct pprop *e = &n->pprops[n->npprops];
		char whybuf[200];
		size_t m2 = where_push(c, p->string ? p->string : "");

		if (!is_schema_value(p)) {
			ignored(c, "patternProperties", "a member is not a schema");
		} else if ((rc = schema_regex_compile(p->string ? p->string : "", &e->re, whybuf,
						      sizeof(whybuf))) == -EINVAL) {
			char msg[480];
			snprintf(msg, sizeof(msg), "cannot compile \"%.200s\": %s", p->string, whybuf);
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
	const cJSON *req = keyword(c, j, "required", cJSON_IsArray, "not an array");
	size_t count, i = 0;

	if (!req)
		return 0;
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
	const cJSON *items = json_get(j, "items");
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
	int rc;

	if ((rc = compile_ref(c, j, n)) < 0)
		return rc;
	if (n->ref && c->legacy)
		return 0;
	compile_type(c, j, n);
	n->enum_v = keyword(c, j, "enum", cJSON_IsArray, "not an array");
	n->const_v = json_get(j, "const");
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
	n->unique = cJSON_IsTrue(keyword(c, j, "uniqueItems", cJSON_IsBool, "not a boolean"));
	if ((rc = compile_list(c, j, "allOf", true, &n->all_of)) < 0)
		return rc;
	if ((rc = compile_list(c, j, "anyOf", true, &n->any_of)) < 0)
		return rc;
	if ((rc = compile_list(c, j, "oneOf", true, &n->one_of)) < 0)
		return rc;
	if ((rc = compile_sub(c, j, "not", &n->not_)) < 0)
		return rc;
	/* then and else mean nothing without if. */
	if ((rc = compile_sub(c, j, "if", &n->if_)) < 0)
		return rc;
	if (n->if_ && (rc = compile_sub(c, j, "then", &n->then_)) < 0)
		return rc;
	if (n->if_ && (rc = compile_sub(c, j, "else", &n->else_)) < 0)
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
	n = xcalloc(1, sizeof(*n));
	n->src = j;
	list_add(&n->all, &c->s->nodes);
	n->min_len = n->max_len = n->min_props = n->max_props = -1;
	n->min_items = n->max_items = -1;
	memo_insert(c, n);
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
	schema_regex_free(n->pattern);
	for (size_t i = 0; i < n->npprops; i++)
		schema_regex_free(n->pprops[i].re);
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
	struct node *n, *next;

	if (!s)
		return;
	list_for_each_entry_safe(n, next, &s->nodes, all)
		node_free(n);
	cJSON_Delete(s->doc);
	free(s);
}

static bool is_legacy_dialect(const cJSON *doc)
{
	const cJSON *d = json_get(doc, "$schema");
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
	s = xcalloc(1, sizeof(*s));
	list_init(&s->nodes);
	c.s = s;
	rc = htab_init(&c.memo, &memo_type);
	if (rc)
		goto out;
	/* Absent or {}: any object (MCP tool arguments are always an object). */
	if (!schema || (cJSON_IsObject(schema) && !schema->child)) {
		s->doc = cJSON_CreateObject();
		cJSON_AddStringToObject(s->doc, "type", "object");
	} else {
		s->doc = cJSON_Duplicate(schema, true);
	}
	c.legacy = is_legacy_dialect(s->doc);
	rc = compile_node(&c, s->doc, &s->root);
out:
	htab_fini(&c.memo);
	if (rc < 0) {
		if (rc == -ENOMEM)
			compile_fail(&c, rc, "out of memory compiling the schema");
		schema_free(s);
		return rc;
	}
	*out = s;
	return 0;
}
