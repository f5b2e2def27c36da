/* jsonrpc_splice: the strict scanner behind a spliced upstream answer, and the one-pass
 * parse of an agent's tools/call (see the header). */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mcp/jsonrpc_splice.h"

#include "base/json_get.h"
#include "base/jsonw.h"

struct scan {
	const char *p, *end;
	char *o;                /* the compact copy being written; NULL: the envelope, not kept */
	bool req;               /* an agent's request (forwarded as written), not an answer
				 * (which must print back as cJSON would) */
	/* An agent's request is also parsed here, into the tree cJSON would build: each value
	 * read becomes a node added to into (NULL: no tree, an answer), named key (the member
	 * name just read, decoded; NULL in an array). */
	cJSON *into;
	char *key;
	bool key_const;         /* key is one of the protocol's names (protocol_name), not owned */
	bool nomem;
};

static void copy(struct scan *s, const char *from, size_t n)
{
	if (s->o) {
		memcpy(s->o, from, n);
		s->o += n;
	}
}

static __attribute__((noinline)) void skip_ws_run(struct scan *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
		s->p++;
}

/* Inline, for compact JSON: most calls find no white space at all. */
static inline void skip_ws(struct scan *s)
{
	if (s->p < s->end && (unsigned char)*s->p <= ' ')
		skip_ws_run(s);
}

/* After a member or element: 1 when another follows (its ',' and the white space after it
 * taken), 0 when the container ends (close taken), -1 for anything else. Copied. */
static int next_item(struct scan *s, char close)
{
	bool more;

	skip_ws(s);
	if (s->p >= s->end || (*s->p != ',' && *s->p != close))
		return -1;
	more = *s->p == ',';
	copy(s, s->p++, 1);
	if (more)
		skip_ws(s);
	return more;
}

static bool lit(struct scan *s, const char *w)
{
	size_t n = strlen(w);

	if ((size_t)(s->end - s->p) < n || memcmp(s->p, w, n) != 0)
		return false;
	copy(s, s->p, n);
	s->p += n;
	return true;
}

/* A string whose escapes cJSON prints back the same (\" \\ \b \f \n \r \t): no \u, no \/,
 * no raw control character. Copied; *k and *kn give its contents (escapes unresolved). */
static bool string(struct scan *s, const char **k, size_t *kn)
{
	const char *b = s->p;

	if (s->p >= s->end || *s->p != '"')
		return false;
	s->p++;
	while (s->p < s->end) {
		s->p = jsonw_plain_end(s->p, s->end);
		if (s->p == s->end)
			break;
		unsigned char ch = (unsigned char)*s->p;
		if (ch == '"') {
			s->p++;
			copy(s, b, (size_t)(s->p - b));
			*k = b + 1;
			*kn = (size_t)(s->p - b) - 2;
			return true;
		}
		if (ch == '\\') {
			if (s->end - s->p < 2)
				return false;
			switch (s->p[1]) {
			case '"': case '\\': case 'b': case 'f': case 'n': case 'r': case 't':
				break;
			case '/':   /* cJSON reads it as '/'; an answer would print back otherwise */
				if (s->req)
					break;
				return false;
			default:
				return false;
			}
			s->p += 2;
			continue;
		}
		return false;   /* a control byte */
	}
	return false;
}

/* A string's contents as cJSON reads them (the escapes string() lets through resolved),
 * NUL-terminated, in cJSON's allocator: NULL when out of memory. */
static char *decoded(const char *k, size_t kn)
{
	char *d = cJSON_malloc(kn + 1), *o = d;
	const char *end = k + kn;

	if (!d)
		return NULL;
	while (k < end) {
		const char *bs = memchr(k, '\\', (size_t)(end - k));
		size_t run = (size_t)((bs ? bs : end) - k);

		memcpy(o, k, run);
		o += run;
		if (!bs)
			break;
		switch (bs[1]) {
		case 'b': *o++ = '\b'; break;
		case 'f': *o++ = '\f'; break;
		case 'n': *o++ = '\n'; break;
		case 'r': *o++ = '\r'; break;
		case 't': *o++ = '\t'; break;
		default: *o++ = bs[1]; break;    /* " \\ / */
		}
		k = bs + 2;
	}
	*o = '\0';
	return d;
}

/* The tree: n (NULL: out of memory) added to the node being built, under the member name
 * read for it. False only when out of memory. */
static bool add(struct scan *s, cJSON *n)
{
	if (!n) {
		s->nomem = true;
		return false;
	}
	n->string = s->key;     /* as cJSON's parse names it, or a constant it will not free */
	if (s->key_const)
		n->type |= cJSON_StringIsConst;
	s->key = NULL;
	s->key_const = false;
	cJSON_AddItemToArray(s->into, n);       /* never fails for a fresh node */
	return true;
}

/* A string node owning v (cJSON_CreateString would copy it). */
static bool add_string(struct scan *s, char *v)
{
	cJSON *n = v ? cJSON_CreateNull() : NULL;

	if (!n) {
		cJSON_free(v);
		s->nomem = true;
		return false;
	}
	n->type = cJSON_String;
	n->valuestring = v;
	return add(s, n);
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* An integer cJSON prints back the same: -?(0|[1-9][0-9]{0,max-1}), not -0. */
static bool integer(struct scan *s, int max, long long *v)
{
	const char *b = s->p;
	int n = 0;
	bool neg = false;
	long long x = 0;

	if (s->p < s->end && *s->p == '-') {
		neg = true;
		s->p++;
	}
	if (s->p >= s->end || !is_digit(*s->p))
		return false;
	if (*s->p == '0') {
		s->p++;
		if (neg)
			return false;
	} else {
		while (s->p < s->end && is_digit(*s->p) && n < max) {
			x = x * 10 + (*s->p - '0');
			s->p++;
			n++;
		}
	}
	if (s->p < s->end && (is_digit(*s->p) || *s->p == '.' || *s->p == 'e' ||
			      *s->p == 'E' || *s->p == '+' || *s->p == '-'))
		return false;
	copy(s, b, (size_t)(s->p - b));
	if (v)
		*v = neg ? -x : x;
	return true;
}

/* A number in a request: JSON's grammar with at most 15 significant digits and a 3-digit
 * exponent, which every reader turns into the double cJSON read (so the gateway judged the
 * value the upstream gets); longer ones take the full print (cJSON's exact digits). */
static bool number(struct scan *s)
{
	const char *b = s->p;
	int digits = 0, n;

	if (s->p < s->end && *s->p == '-')
		s->p++;
	if (s->p >= s->end || !is_digit(*s->p))
		return false;
	if (*s->p == '0')
		s->p++;
	else
		for (; s->p < s->end && is_digit(*s->p); s->p++)
			digits++;
	if (s->p < s->end && *s->p == '.') {
		s->p++;
		for (n = 0; s->p < s->end && is_digit(*s->p); s->p++, n++)
			digits++;
		if (!n)
			return false;
	}
	if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
		s->p++;
		if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
			s->p++;
		for (n = 0; s->p < s->end && is_digit(*s->p); s->p++)
			if (++n > 3)
				return false;
		if (!n)
			return false;
	}
	if (digits > 15 || (s->p < s->end && (is_digit(*s->p) || *s->p == '.' ||
					      *s->p == 'e' || *s->p == 'E' ||
					      *s->p == '+' || *s->p == '-')))
		return false;
	copy(s, b, (size_t)(s->p - b));
	return true;
}

static bool value(struct scan *s, int depth, bool top);

/* The member names of the protocol's own that nearly every request has, as constants: a node
 * named by one takes it with cJSON_StringIsConst (cJSON neither frees nor writes it), rather
 * than a copy to make and free. A name written with an escape is never one of them. */
static const char *protocol_name(const char *k, size_t kn)
{
	const char *c;

	switch (kn) {
	case 2: c = "id"; break;
	case 4: c = "name"; break;
	case 5: c = "_meta"; break;
	case 6: c = k[0] == 'm' ? "method" : "params"; break;
	case 7: c = "jsonrpc"; break;
	case 9: c = "arguments"; break;
	case 13: c = "progressToken"; break;
	default: return NULL;
	}
	return memcmp(k, c, kn) ? NULL : c;
}

/* An object member's name and its ':', the white space after both stepped over. Copied. */
static bool member_name(struct scan *s, const char **k, size_t *kn)
{
	if (!string(s, k, kn))
		return false;
	if (s->into) {
		const char *c = protocol_name(*k, *kn);

		if (!s->key_const)
			cJSON_free(s->key);     /* NULL: every value read takes its name */
		s->key_const = c != NULL;
		if (c) {
			s->key = (char *)(uintptr_t)c;  /* cJSON's type; the flag keeps it read-only */
		} else if (!(s->key = decoded(*k, *kn))) {
			s->nomem = true;
			return false;
		}
	}
	skip_ws(s);
	if (s->p >= s->end || *s->p != ':')
		return false;
	copy(s, s->p++, 1);
	skip_ws(s);
	return true;
}

static bool is_key(const char *k, size_t n, const char *w)
{
	return n == strlen(w) && memcmp(k, w, n) == 0;
}

/* An object or array; top: the result itself, whose "isError" and "task" matter. */
static bool container(struct scan *s, int depth, bool top)
{
	bool obj = *s->p == '{';
	char close = obj ? '}' : ']';
	cJSON *parent = s->into, *n;
	int more;

	if (depth >= JSONRPC_SPLICE_MAX_DEPTH)
		return false;
	if (parent) {
		if (!add(s, n = obj ? cJSON_CreateObject() : cJSON_CreateArray()))
			return false;
		s->into = n;    /* its members, until it closes (a refusal drops the tree) */
	}
	copy(s, s->p++, 1);
	skip_ws(s);
	if (s->p < s->end && *s->p == close) {
		copy(s, s->p++, 1);
		s->into = parent;
		return true;
	}
	do {
		if (obj) {
			const char *k;
			size_t kn;
			if (!member_name(s, &k, &kn))
				return false;
			if (!s->req && (is_key(k, kn, "uri") || (top && is_key(k, kn, "task"))))
				return false;
			if (!s->req && top && is_key(k, kn, "isError")) {
				if (!lit(s, "false"))
					return false;
			} else if (!value(s, depth + 1, false)) {
				return false;
			}
		} else if (!value(s, depth + 1, false)) {
			return false;
		}
		more = next_item(s, close);
	} while (more > 0);
	s->into = parent;
	return more == 0;
}

/* A request's number as cJSON reads it: strtod of its text (this process keeps the C
 * locale, so '.' is the decimal point cJSON puts in), stored with cJSON's int saturation. */
static bool add_number(struct scan *s, const char *b, size_t n)
{
	char text[32];  /* number() took at most 15 digits, a sign, '.', 'e', a sign, 3 digits */
	size_t i = n && b[0] == '-';
	long long x = 0;

	/* An integer (nearly every id): at most 15 digits, exact in a double, so the value is
	 * strtod's without its code (a few hundred instructions and cold cache lines a call). */
	while (i < n && is_digit(b[i]))
		x = x * 10 + (b[i++] - '0');
	if (i == n && n > (size_t)(b[0] == '-'))
		return add(s, cJSON_CreateNumber(b[0] == '-' ? (x ? (double)-x : -0.0) : (double)x));
	if (n >= sizeof(text))
		return false;   /* cannot be: refused all the same, to the full parse */
	memcpy(text, b, n);
	text[n] = '\0';
	return add(s, cJSON_CreateNumber(strtod(text, NULL)));
}

/* cJSON's parse also sets valueint to 1 for true (cJSON_CreateTrue does not). */
static bool add_true(struct scan *s)
{
	cJSON *n = cJSON_CreateTrue();

	if (n)
		n->valueint = 1;
	return add(s, n);
}

static bool value(struct scan *s, int depth, bool top)
{
	const char *k, *b = s->p;
	size_t kn;

	if (s->p >= s->end)
		return false;
	switch (*s->p) {
	case '{': case '[': return container(s, depth, top);
	case '"':
		if (!string(s, &k, &kn))
			return false;
		return !s->into || add_string(s, decoded(k, kn));
	case 't': return lit(s, "true") && (!s->into || add_true(s));
	case 'f': return lit(s, "false") && (!s->into || add(s, cJSON_CreateFalse()));
	case 'n': return lit(s, "null") && (!s->into || add(s, cJSON_CreateNull()));
	/* 9 digits: always within int, which cJSON prints with %d */
	default:
		if (!s->req)
			return integer(s, 9, NULL);
		return number(s) && (!s->into || add_number(s, b, (size_t)(s->p - b)));
	}
}

/* One member of a message's envelope other than "jsonrpc", its value checked (false:
 * refused, the full parse decides). */
typedef bool envelope_member(struct scan *s, const char *k, size_t kn, void *arg);

/* A whole message: one object, "jsonrpc":"2.0" once, each other member handed to member,
 * nothing after it. The envelope is not copied; a member's value may be (its own s->o). */
static bool envelope(struct scan *s, envelope_member *member, void *arg)
{
	const char *k;
	size_t kn;
	bool have_ver = false;
	int more;

	skip_ws(s);
	if (s->p >= s->end || *s->p != '{')
		return false;
	s->p++;
	skip_ws(s);
	do {
		s->o = NULL;
		if (!member_name(s, &k, &kn))
			return false;
		if (is_key(k, kn, "jsonrpc") && !have_ver) {
			/* a reference to the constant: every request has it, nothing writes it */
			if (!lit(s, "\"2.0\"") || (s->into && !add(s, cJSON_CreateStringReference("2.0"))))
				return false;
			have_ver = true;
		} else if (!member(s, k, kn, arg)) {
			return false;
		}
		s->o = NULL;
		more = next_item(s, '}');
	} while (more > 0);
	skip_ws(s);
	return more == 0 && s->p == s->end && have_ver;
}

struct response_env {
	long long id;
	bool have_id;
	char *buf;              /* the result's compact copy; its end at res_end */
	const char *res_end;
};

static bool response_member(struct scan *s, const char *k, size_t kn, void *arg)
{
	struct response_env *e = arg;

	if (is_key(k, kn, "id") && !e->have_id) {
		/* 15 digits: exact as a double, as cJSON keeps it */
		e->have_id = integer(s, 15, &e->id);
		return e->have_id;
	}
	if (!is_key(k, kn, "result") || e->buf || s->p >= s->end || *s->p != '{' ||
	    !(e->buf = cJSON_malloc((size_t)(s->end - s->p) + 1)))
		return false;
	s->o = e->buf;
	if (!container(s, 0, true))
		return false;
	e->res_end = s->o;
	return true;
}

cJSON *jsonrpc_splice_response(const char *text, size_t len)
{
	struct scan s = { .p = text, .end = text + len };
	struct response_env e = { 0 };
	cJSON *msg = NULL, *raw = NULL;

	if (!envelope(&s, response_member, &e) || !e.have_id || !e.res_end)
		goto refuse;
	*(char *)e.res_end = '\0';
	if (!(msg = cJSON_CreateObject()) || !(raw = cJSON_CreateRaw("")))
		goto refuse;
	cJSON_free(raw->valuestring);
	raw->valuestring = e.buf;
	e.buf = NULL;
	if (!cJSON_AddItemToObjectCS(msg, "jsonrpc", cJSON_CreateStringReference("2.0")) ||
	    !cJSON_AddItemToObjectCS(msg, "id", cJSON_CreateNumber((double)e.id)) ||
	    !cJSON_AddItemToObjectCS(msg, "result", raw))
		goto refuse;  /* the last fails only with a NULL item: raw is still ours then */
	return msg;
refuse:
	cJSON_free(e.buf);
	cJSON_Delete(raw);
	cJSON_Delete(msg);
	return NULL;
}

int jsonrpc_spliced(const cJSON *resp)
{
	return cJSON_IsRaw(json_get(resp, "result"));
}

int jsonrpc_unsplice(cJSON *resp)
{
	cJSON *res = json_get(resp, "result"), *tree;

	if (!cJSON_IsRaw(res))
		return 0;
	if (!(tree = cJSON_Parse(res->valuestring)))
		return -ENOMEM;     /* the scanner accepted it: only memory can fail */
	/* by name: the replacement takes the key ("via pointer" would leave it unnamed) */
	if (!cJSON_ReplaceItemInObjectCaseSensitive(resp, "result", tree)) {
		cJSON_Delete(tree);
		return -ENOMEM;
	}
	return 0;
}

/* --- the agent's tools/call request, forwarded as written -------------------------------- */

/* A value of the envelope, checked and skipped (not kept). */
static bool skip_value(struct scan *s)
{
	char *o = s->o;
	bool ok;

	s->o = NULL;
	ok = value(s, 0, false);
	s->o = o;
	return ok;
}

/* params: exactly "name" (a string) and maybe "arguments", once each, copied compact; the
 * name's value located in the copy. */
static bool params_text(struct scan *s, struct jsonrpc_request_text *t)
{
	const char *k;
	size_t kn;
	bool have_name = false;
	cJSON *parent = s->into, *params = NULL;
	int more;

	if (s->p >= s->end || *s->p != '{')
		return false;
	if (parent) {
		if (!add(s, params = cJSON_CreateObject()))
			return false;
		s->into = params;
	}
	copy(s, s->p++, 1);
	skip_ws(s);
	do {
		if (!member_name(s, &k, &kn))
			return false;
		if (is_key(k, kn, "name") && !have_name) {
			char *at = s->o;
			if (!string(s, &k, &kn) || (s->into && !add_string(s, decoded(k, kn))))
				return false;
			t->name_at = (size_t)(at - t->text);
			t->name_len = (size_t)(s->o - at);
			have_name = true;
		} else if (is_key(k, kn, "arguments") && !t->has_args) {
			if (!value(s, 1, false))
				return false;
			t->has_args = true;
		} else {
			return false;   /* _meta, task, anything else: the gateway may change it */
		}
		more = next_item(s, '}');
	} while (more > 0);
	s->into = parent;
	return more == 0 && have_name;
}

struct request_env {
	struct jsonrpc_request_text *t;
	bool have_id, have_method;
	int err;                /* -ENOMEM, else refused as -EINVAL */
};

static bool request_member(struct scan *s, const char *k, size_t kn, void *arg)
{
	struct request_env *e = arg;
	struct jsonrpc_request_text *t = e->t;

	if (is_key(k, kn, "id") && !e->have_id) {
		e->have_id = skip_value(s);
		return e->have_id;
	}
	if (is_key(k, kn, "method") && !e->have_method) {
		e->have_method = string(s, &k, &kn) &&
				 (!s->into || add_string(s, decoded(k, kn)));
		return e->have_method;
	}
	if (!is_key(k, kn, "params") || t->text)
		return false;
	/* the compact copy is never longer than what is left of the text: the slack lets a
	 * longer upstream name be put in without a new buffer */
	t->cap = (size_t)(s->end - s->p) + 1;
	if (!(t->text = cJSON_malloc(t->cap))) {
		e->err = -ENOMEM;
		return false;
	}
	s->o = t->text;
	if (!params_text(s, t))
		return false;
	t->len = (size_t)(s->o - t->text);
	t->text[t->len] = '\0';
	return true;
}

int jsonrpc_splice_request(const char *text, size_t len, struct jsonrpc_request_text *t,
			   cJSON **tree)
{
	struct scan s = { .p = text, .end = text + len, .req = true };
	struct request_env e = { t, false, false, -EINVAL };

	memset(t, 0, sizeof(*t));
	if (tree && !(s.into = *tree = cJSON_CreateObject()))
		return -ENOMEM;
	if (envelope(&s, request_member, &e) && e.have_id && e.have_method && t->text)
		return 0;
	jsonrpc_request_text_free(t);
	if (!s.key_const)
		cJSON_free(s.key);
	if (tree) {
		cJSON_Delete(*tree);
		*tree = NULL;
	}
	return s.nomem ? -ENOMEM : e.err;
}

void jsonrpc_request_text_free(struct jsonrpc_request_text *t)
{
	cJSON_free(t->text);
	memset(t, 0, sizeof(*t));
}

/* A JSON string's escaped length (without its quotes), as escape_into writes it. */
static size_t escaped_len(const char *v)
{
	size_t n = 0;

	for (; *v; v++)
		n += *v == '"' || *v == '\\' ? 2 : (unsigned char)*v < 0x20 ? 6 : 1;
	return n;
}

static void escape_into(char *o, const char *v)
{
	static const char hex[] = "0123456789abcdef";

	*o++ = '"';
	for (; *v; v++) {
		unsigned char ch = (unsigned char)*v;
		if (ch == '"' || ch == '\\') {
			*o++ = '\\';
			*o++ = (char)ch;
		} else if (ch < 0x20) {
			memcpy(o, "\\u00", 4);
			o[4] = hex[ch >> 4];
			o[5] = hex[ch & 15];
			o += 6;
		} else {
			*o++ = (char)ch;
		}
	}
	*o = '"';
}

cJSON *jsonrpc_splice_params(struct jsonrpc_request_text *t, const cJSON *params)
{
	const cJSON *it, *name = NULL;
	size_t members = 0, nlen, need;
	char *buf;
	cJSON *raw;

	if (!t->text || !cJSON_IsObject(params))
		goto tree;
	/* the routed tree must still be the text's shape: only the name may have changed */
	cJSON_ArrayForEach(it, params) {
		members++;
		if (!it->string)
			goto tree;
		if (!strcmp(it->string, "name") && cJSON_IsString(it) && !name)
			name = it;
		else if (strcmp(it->string, "arguments") || !t->has_args)
			goto tree;
	}
	if (!name || members != 1 + (size_t)t->has_args)
		goto tree;
	nlen = escaped_len(name->valuestring) + 2;
	need = t->len - t->name_len + nlen + 1;
	buf = t->text;
	if (need > t->cap) {
		if (!(buf = cJSON_malloc(need)))
			goto tree;
		memcpy(buf, t->text, t->name_at);
	}
	/* the rest after the name moves (memmove: in place, it may overlap) */
	memmove(buf + t->name_at + nlen, t->text + t->name_at + t->name_len,
		t->len - t->name_at - t->name_len + 1);
	escape_into(buf + t->name_at, name->valuestring);
	if (buf == t->text)
		t->text = NULL;
	jsonrpc_request_text_free(t);
	/* a Raw node owning buf (cJSON_CreateRaw would copy it) */
	if (!(raw = cJSON_CreateNull())) {
		cJSON_free(buf);
		return NULL;
	}
	raw->type = cJSON_Raw;
	raw->valuestring = buf;
	return raw;
tree:
	jsonrpc_request_text_free(t);
	return NULL;
}
