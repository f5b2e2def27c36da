/* param_headers: header value encoding and the Mcp-Param-{Name} check (SEP-2243). */
#include "mcp/param_headers.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base64.h"
#include "base/json_get.h"

#define SENTINEL_HEAD "=?base64?"
#define SENTINEL_TAIL "?="

int param_header_decode(const char *value, char **out, size_t *len)
{
	size_t n = strlen(value), hl = strlen(SENTINEL_HEAD), tl = strlen(SENTINEL_TAIL);
	char *buf;

	*out = NULL;
	*len = 0;
	if (n >= hl + tl && !strncmp(value, SENTINEL_HEAD, hl) &&
	    !strcmp(value + n - tl, SENTINEL_TAIL)) {
		buf = malloc((n - hl - tl) / 4 * 3 + 1);
		if (!buf)
			return -ENOMEM;
		if (base64_decode(value + hl, n - hl - tl, (unsigned char *)buf, len)) {
			free(buf);
			return -EINVAL;
		}
		buf[*len] = '\0';
		*out = buf;
		return 0;
	}
	/* RFC 9110 field values: visible ASCII, space and tab (obs-text is not for MCP). */
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)value[i];
		if ((c < 0x20 && c != '\t') || c > 0x7e)
			return -EINVAL;
	}
	buf = malloc(n + 1);
	if (!buf)
		return -ENOMEM;
	memcpy(buf, value, n + 1);
	*out = buf;
	*len = n;
	return 0;
}

int param_header_matches(const char *value, const char *s, size_t len)
{
	char *d;
	size_t n;
	int rc = param_header_decode(value, &d, &n);

	if (rc)
		return rc;
	rc = n == len && !memcmp(d, s, n) ? 1 : 0;
	free(d);
	return rc;
}

/* --- x-mcp-header declarations ----------------------------------------------------------- */

/* RFC 9110 tchar. */
static bool token(const char *s)
{
	size_t n = strlen(s);

	if (!n || n > PARAM_HEADER_NAME_MAX)
		return false;
	for (const char *c = s; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		      (*c >= '0' && *c <= '9') || strchr("!#$%&'*+-.^_`|~", *c)))
			return false;
	return true;
}

/* One or more decimal digits at *p, stepped over. */
static bool digits(const char **p)
{
	const char *q = *p;

	while (*q >= '0' && *q <= '9')
		q++;
	if (q == *p)
		return false;
	*p = q;
	return true;
}

/* A number as a client writes one: [-+]digits[.digits][e[-+]digits], nothing else (strtod
 * alone would take hex, inf, nan and leading spaces). */
static bool decimal(const char *s, double *out)
{
	const char *p = s;
	char *end;

	if (*p == '-' || *p == '+')
		p++;
	if (!digits(&p))
		return false;
	if (*p == '.') {
		p++;
		if (!digits(&p))
			return false;
	}
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '-' || *p == '+')
			p++;
		if (!digits(&p))
			return false;
	}
	if (*p)
		return false;
	*out = strtod(s, &end);
	return *end == '\0' && isfinite(*out);
}

struct walk {
	param_header_fn get;
	const void *ctx;
	char *why;
	size_t whylen;
	int seen;               /* declarations looked at */
	char path[256];         /* "arguments.a.b" of the current property */
};

/* Does the decoded header text d (n bytes) say the body value v of this type? */
static bool same_value(const char *type, const cJSON *v, const char *d, size_t n)
{
	double x;

	if (!strcmp(type, "string"))
		return cJSON_IsString(v) && strlen(v->valuestring) == n && !memcmp(v->valuestring, d, n);
	if (strlen(d) != n)
		return false;   /* a NUL inside a number or boolean */
	if (!strcmp(type, "integer"))
		return cJSON_IsNumber(v) && decimal(d, &x) && x == v->valuedouble;
	return cJSON_IsBool(v) && !strcmp(d, cJSON_IsTrue(v) ? "true" : "false");
}

static int check_one(struct walk *w, const char *name, const char *type, const cJSON *v)
{
	char hname[sizeof("Mcp-Param-") + PARAM_HEADER_NAME_MAX];
	const char *h;
	char *d;
	size_t n;
	int rc;

	snprintf(hname, sizeof(hname), "Mcp-Param-%s", name);
	h = w->get(w->ctx, hname);
	if (!h) {
		if (!v || cJSON_IsNull(v))
			return 0;       /* no value, no header */
		snprintf(w->why, w->whylen, "Header mismatch: %s header is required (%s has a value)",
			 hname, w->path);
		return -EINVAL;
	}
	if (!v || cJSON_IsNull(v)) {
		snprintf(w->why, w->whylen, "Header mismatch: %s header is sent but %s has no value",
			 hname, w->path);
		return -EINVAL;
	}
	rc = param_header_decode(h, &d, &n);
	if (rc == -ENOMEM)
		return rc;
	if (rc) {
		snprintf(w->why, w->whylen, "Header mismatch: %s header value is not valid "
			 "(characters a header may not carry, or bad Base64)", hname);
		return -EINVAL;
	}
	rc = same_value(type, v, d, n) ? 0 : -EINVAL;
	free(d);
	if (rc)
		snprintf(w->why, w->whylen, "Header mismatch: %s header does not match %s",
			 hname, w->path);
	return rc;
}

static int walk_properties(struct walk *w, const cJSON *schema, const cJSON *args, int depth)
{
	const cJSON *props = json_get(schema, "properties");
	const cJSON *p;
	size_t base = strlen(w->path);
	int rc = 0;

	if (!cJSON_IsObject(props) || depth > PARAM_HEADERS_DEPTH)
		return 0;
	cJSON_ArrayForEach(p, props) {
		const cJSON *name = json_get(p, "x-mcp-header");
		const cJSON *type = json_get(p, "type");
		const cJSON *v = cJSON_IsObject(args)
			? json_get(args, p->string) : NULL;
		if (!cJSON_IsObject(p))
			continue;
		snprintf(w->path + base, sizeof(w->path) - base, ".%s", p->string);
		if (cJSON_IsString(name) && token(name->valuestring) && cJSON_IsString(type) &&
		    (!strcmp(type->valuestring, "string") || !strcmp(type->valuestring, "integer") ||
		     !strcmp(type->valuestring, "boolean"))) {
			if (++w->seen > PARAM_HEADERS_MAX)
				break;
			rc = check_one(w, name->valuestring, type->valuestring, v);
		} else {
			rc = walk_properties(w, p, v, depth + 1);
		}
		if (rc)
			break;
	}
	w->path[base] = '\0';
	return rc;
}

int param_headers_check(const cJSON *input_schema, const cJSON *arguments, param_header_fn get,
			const void *ctx, char *why, size_t whylen)
{
	struct walk w = { get, ctx, why, whylen, 0, "arguments" };

	if (whylen)
		why[0] = '\0';
	if (!cJSON_IsObject(input_schema))
		return 0;
	return walk_properties(&w, input_schema, arguments, 1);
}
