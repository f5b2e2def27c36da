/* trace_json: OTLP's JSON encoding (http/json) of an export request, made on the exporter's
 * thread from the Span messages the loop encoded as protobuf: the loop's cost is the same
 * whichever protocol is configured. The protobuf is our own (observe/trace.c), read back field
 * by field; the mapping is OTLP's (opentelemetry-proto's JSON rules): trace and span ids as
 * lowercase hex, 64-bit integers as decimal strings, enums as numbers, lowerCamelCase names.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

#include "base/alloc.h"
#include "observe/trace_int.h"

/* A read cursor over one message. */
struct rd {
	const uint8_t *p, *end;
};

static int rd_varint(struct rd *r, uint64_t *v)
{
	*v = 0;
	for (int shift = 0; shift < 64; shift += 7) {
		if (r->p >= r->end)
			return -EINVAL;
		uint8_t b = *r->p++;
		*v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			return 0;
	}
	return -EINVAL;
}

/* One field of a message: its number, and its value (v for scalars, sub for length-delimited;
 * sub.p is NULL for a scalar). */
struct field {
	unsigned n;
	uint64_t v;
	struct rd sub;
};

/* The next field into *fl. 1 when one was read, 0 at the end, -EINVAL when the bytes are not
 * protobuf. */
static int rd_field(struct rd *r, struct field *fl)
{
	uint64_t key, len, *v = &fl->v;
	int n = 0;

	if (r->p >= r->end)
		return 0;
	if (rd_varint(r, &key) || key >> 3 == 0 || key >> 3 > UINT32_MAX)
		return -EINVAL;
	fl->n = (unsigned)(key >> 3);
	*v = 0;
	fl->sub = (struct rd){ NULL, NULL };
	switch (key & 7) {
	case PB_VARINT:
		return rd_varint(r, v) ? -EINVAL : 1;
	case PB_FIXED64:
		n = 8;
		break;
	case PB_FIXED32:
		n = 4;
		break;
	case PB_LEN:
		if (rd_varint(r, &len) || len > (uint64_t)(r->end - r->p))
			return -EINVAL;
		fl->sub = (struct rd){ r->p, r->p + len };
		r->p += len;
		return 1;
	default:
		return -EINVAL;
	}
	if (r->end - r->p < n)
		return -EINVAL;
	for (int i = 0; i < n; i++)
		*v |= (uint64_t)r->p[i] << (8 * i);
	r->p += n;
	return 1;
}

/* Strings are added with their length (protobuf strings are not NUL-terminated). */
static cJSON *add_str(cJSON *o, const char *name, struct rd s)
{
	size_t n = (size_t)(s.end - s.p);
	char *buf = xmalloc(n + 1);
	cJSON *item;

	memcpy(buf, s.p, n);
	buf[n] = '\0';
	item = cJSON_AddStringToObject(o, name, buf);
	free(buf);
	return item;
}

static cJSON *add_hex(cJSON *o, const char *name, struct rd s)
{
	static const char digits[] = "0123456789abcdef";
	char buf[2 * 16 + 1];
	size_t n = (size_t)(s.end - s.p);

	if (n > 16)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		buf[2 * i] = digits[s.p[i] >> 4];
		buf[2 * i + 1] = digits[s.p[i] & 15];
	}
	buf[2 * n] = '\0';
	return cJSON_AddStringToObject(o, name, buf);
}

static cJSON *add_u64(cJSON *o, const char *name, uint64_t v)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	return cJSON_AddStringToObject(o, name, buf);
}

/* A KeyValue { key = 1; AnyValue value = 2 }, AnyValue { string = 1; int = 3 }, appended to
 * arr. 0 or -EINVAL. */
static int key_value(struct rd r, cJSON *arr)
{
	cJSON *kv = cJSON_CreateObject(), *val = NULL;
	struct field fl, any;
	int rc;

	if (!kv || !cJSON_AddItemToArray(arr, kv))
		return -ENOMEM;
	while ((rc = rd_field(&r, &fl)) == 1) {
		if (fl.n == OTLP_KV_KEY && fl.sub.p) {
			if (!add_str(kv, "key", fl.sub))
				return -ENOMEM;
		} else if (fl.n == OTLP_KV_VALUE && fl.sub.p) {
			if (!(val = cJSON_AddObjectToObject(kv, "value")))
				return -ENOMEM;
			while ((rc = rd_field(&fl.sub, &any)) == 1) {
				if (any.n == OTLP_ANY_STRING && any.sub.p &&
				    !add_str(val, "stringValue", any.sub))
					return -ENOMEM;
				/* int64 as a decimal string, negative numbers included */
				if (any.n == OTLP_ANY_INT && !any.sub.p) {
					char buf[24];
					snprintf(buf, sizeof(buf), "%" PRId64, (int64_t)any.v);
					if (!cJSON_AddStringToObject(val, "intValue", buf))
						return -ENOMEM;
				}
			}
			if (rc)
				return rc;
		}
	}
	return rc;
}

/* KeyValues (field `field` of r) into o's "attributes". */
static int attributes(struct rd r, unsigned field, cJSON *o)
{
	cJSON *arr = cJSON_AddArrayToObject(o, "attributes");
	struct field fl;
	int rc;

	if (!arr)
		return -ENOMEM;
	while ((rc = rd_field(&r, &fl)) == 1)
		if (fl.n == field && fl.sub.p && (rc = key_value(fl.sub, arr)))
			return rc;
	return rc;
}

static int status(struct rd r, cJSON *span)
{
	cJSON *st = cJSON_AddObjectToObject(span, "status");
	struct field fl;
	int rc;

	if (!st)
		return -ENOMEM;
	while ((rc = rd_field(&r, &fl)) == 1) {
		if (fl.n == OTLP_STATUS_MESSAGE && fl.sub.p && !add_str(st, "message", fl.sub))
			return -ENOMEM;
		if (fl.n == OTLP_STATUS_CODE && !fl.sub.p &&
		    !cJSON_AddNumberToObject(st, "code", (double)fl.v))
			return -ENOMEM;
	}
	return rc;
}

static int span(struct rd r, cJSON *spans)
{
	cJSON *o = cJSON_CreateObject(), *attrs = NULL, *ok = o;
	struct field fl;
	int rc = 0;

	if (!o || !cJSON_AddItemToArray(spans, o))
		return -ENOMEM;
	while (ok && (rc = rd_field(&r, &fl)) == 1) {
		const struct rd sub = fl.sub;

		switch (fl.n) {
		case OTLP_SPAN_TRACE_ID: ok = sub.p ? add_hex(o, "traceId", sub) : NULL; break;
		case OTLP_SPAN_SPAN_ID: ok = sub.p ? add_hex(o, "spanId", sub) : NULL; break;
		case OTLP_SPAN_TRACE_STATE: ok = sub.p ? add_str(o, "traceState", sub) : NULL; break;
		case OTLP_SPAN_PARENT_SPAN_ID: ok = sub.p ? add_hex(o, "parentSpanId", sub) : NULL; break;
		case OTLP_SPAN_NAME: ok = sub.p ? add_str(o, "name", sub) : NULL; break;
		case OTLP_SPAN_KIND: ok = cJSON_AddNumberToObject(o, "kind", (double)fl.v); break;
		case OTLP_SPAN_START: ok = add_u64(o, "startTimeUnixNano", fl.v); break;
		case OTLP_SPAN_END: ok = add_u64(o, "endTimeUnixNano", fl.v); break;
		case OTLP_SPAN_FLAGS: ok = cJSON_AddNumberToObject(o, "flags", (double)fl.v); break;
		case OTLP_SPAN_ATTRIBUTES:
			if (!sub.p)
				return -EINVAL;
			if (!attrs && !(attrs = cJSON_AddArrayToObject(o, "attributes")))
				return -ENOMEM;
			if ((rc = key_value(sub, attrs)))
				return rc;
			break;
		case OTLP_SPAN_STATUS:
			if (!sub.p)
				return -EINVAL;
			if ((rc = status(sub, o)))
				return rc;
			break;
		default:
			break;      /* nothing else is written (observe/trace.c) */
		}
	}
	return ok ? rc : -EINVAL;
}

int otlp_json_request(struct pb *out, const struct pb *resource, struct pb *const *spans,
		      size_t n)
{
	cJSON *req = cJSON_CreateObject(), *rs, *res, *ss, *scope, *list;
	char *text = NULL;
	int rc = -ENOMEM;

	if (!req)
		return -ENOMEM;
	if (!(rs = cJSON_CreateObject()) ||
	    !cJSON_AddItemToArray(cJSON_AddArrayToObject(req, "resourceSpans"), rs) ||
	    !(res = cJSON_AddObjectToObject(rs, "resource")))
		goto out;
	if ((rc = attributes((struct rd){ resource->p, resource->p + resource->n },
			     OTLP_RES_ATTRIBUTES, res)))
		goto out;
	rc = -ENOMEM;
	if (!(ss = cJSON_CreateObject()) ||
	    !cJSON_AddItemToArray(cJSON_AddArrayToObject(rs, "scopeSpans"), ss) ||
	    !(scope = cJSON_AddObjectToObject(ss, "scope")) ||
	    !cJSON_AddStringToObject(scope, "name", "mcpwarden") ||
	    !cJSON_AddStringToObject(scope, "version", WARDEN_VERSION) ||
	    !(list = cJSON_AddArrayToObject(ss, "spans")))
		goto out;
	for (size_t i = 0; i < n; i++)
		if ((rc = span((struct rd){ spans[i]->p, spans[i]->p + spans[i]->n }, list)))
			goto out;
	rc = -ENOMEM;
	if (!(text = cJSON_PrintUnformatted(req)))
		goto out;
	pb_raw(out, text, strlen(text));
	rc = 0;
out:
	cJSON_free(text);
	cJSON_Delete(req);
	return rc;
}
