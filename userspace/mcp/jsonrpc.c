/* jsonrpc: JSON-RPC 2.0 classification and builders. */
#include "mcp/jsonrpc.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/json_get.h"
#include "base/jsonw.h"

#define MAX_ID_LEN 200

bool jsonrpc_valid_id(const cJSON *id)
{
	if (cJSON_IsString(id))
		return id->valuestring && strlen(id->valuestring) <= MAX_ID_LEN;
	if (cJSON_IsNumber(id))
		return isfinite(id->valuedouble) && id->valuedouble == floor(id->valuedouble) &&
		       fabs(id->valuedouble) <= 9007199254740991.0;
	return false;
}

/* The envelope's members, each as cJSON_GetObjectItemCaseSensitive finds it (the first of
 * its name), in one walk over the members: every message of every call is classified. */
struct envelope_members {
	const cJSON *ver, *id, *method, *params, *result, *error;
};

static void first(const cJSON **slot, const cJSON *c)
{
	if (!*slot)
		*slot = c;
}

static void members(const cJSON *v, struct envelope_members *m)
{
	*m = (struct envelope_members){ 0 };
	for (const cJSON *c = v->child; c; c = c->next) {
		const char *n = c->string;

		if (!n)
			continue;
		switch (n[0]) {
		case 'i': if (!strcmp(n, "id")) first(&m->id, c); break;
		case 'j': if (!strcmp(n, "jsonrpc")) first(&m->ver, c); break;
		case 'm': if (!strcmp(n, "method")) first(&m->method, c); break;
		case 'p': if (!strcmp(n, "params")) first(&m->params, c); break;
		case 'r': if (!strcmp(n, "result")) first(&m->result, c); break;
		case 'e': if (!strcmp(n, "error")) first(&m->error, c); break;
		default: break;
		}
	}
}

int jsonrpc_classify(const cJSON *v, struct jsonrpc_msg *out, int *code, const char **why)
{
	const cJSON *ver, *id, *method, *params, *result, *error;
	struct envelope_members em;

	memset(out, 0, sizeof(*out));
	*code = JSONRPC_INVALID_REQUEST;
	if (!cJSON_IsObject(v)) {
		*why = "a JSON-RPC message must be an object";
		return -EINVAL;
	}
	members(v, &em);
	id = em.id;
	if (id && jsonrpc_valid_id(id))
		out->id = id;
	ver = em.ver;
	if (!cJSON_IsString(ver) || strcmp(ver->valuestring, "2.0") != 0) {
		*why = "\"jsonrpc\" must be \"2.0\"";
		return -EINVAL;
	}
	if (id && !out->id) {
		*why = cJSON_IsNull(id) ? "\"id\" must not be null"
					: "\"id\" must be a string or an integer";
		return -EINVAL;
	}
	method = em.method;
	result = em.result;
	error = em.error;
	if (method) {
		if (!cJSON_IsString(method) || !*method->valuestring) {
			*why = "\"method\" must be a non-empty string";
			return -EINVAL;
		}
		if (result || error) {
			*why = "a request carries no \"result\" or \"error\"";
			return -EINVAL;
		}
		params = em.params;
		if (params && !cJSON_IsObject(params)) {
			*code = JSONRPC_INVALID_PARAMS;
			*why = "\"params\" must be an object";
			return -EINVAL;
		}
		out->kind = id ? JSONRPC_REQUEST : JSONRPC_NOTIFICATION;
		out->method = method->valuestring;
		out->params = params;
		return 0;
	}
	if (!id) {
		*why = "a message needs \"method\" (request, notification) or \"id\" (response)";
		return -EINVAL;
	}
	if (!result == !error) {
		*why = "a response carries exactly one of \"result\" and \"error\"";
		return -EINVAL;
	}
	if (error) {
		const cJSON *c = json_get(error, "code");
		const cJSON *m = json_get(error, "message");
		if (!cJSON_IsObject(error) || !cJSON_IsNumber(c) || !cJSON_IsString(m)) {
			*why = "\"error\" needs an integer \"code\" and a string \"message\"";
			return -EINVAL;
		}
	}
	out->kind = JSONRPC_RESPONSE;
	out->result = result;
	out->error = error;
	return 0;
}

cJSON *jsonrpc_id_dup(const cJSON *id)
{
	char buf[32];

	/* cJSON 1.7 prints a number with 15 significant digits whenever that passes a relative
	 * round-trip check, so 9007199254740991 would come back as ...990: integers beyond int
	 * range are written out exactly as raw text instead. */
	if (cJSON_IsNumber(id) && jsonrpc_valid_id(id) && fabs(id->valuedouble) > INT_MAX) {
		snprintf(buf, sizeof(buf), "%.0f", id->valuedouble);
		return cJSON_CreateRaw(buf);
	}
	/* The value alone, not the member name a parsed id carries (one allocation less). */
	if (cJSON_IsNumber(id))
		return cJSON_CreateNumber(id->valuedouble);
	if (cJSON_IsString(id))
		return cJSON_CreateString(id->valuestring);
	return cJSON_Duplicate(id, 1);
}

void jsonrpc_set_id(cJSON *msg, const cJSON *id)
{
	cJSON *old = cJSON_GetObjectItemCaseSensitive(msg, "id");

	if (old && cJSON_IsNumber(old) && cJSON_IsNumber(id) && jsonrpc_valid_id(id) &&
	    fabs(id->valuedouble) <= INT_MAX) {
		cJSON_SetNumberValue(old, id->valuedouble);
		return;
	}
	cJSON_ReplaceItemInObjectCaseSensitive(msg, "id", jsonrpc_id_dup(id));
}

/* A message is built on every call: its members are named by constants
 * (cJSON_AddItemToObjectCS, no copy of the name) and its "2.0" is a reference. */
static bool add(cJSON *obj, const char *const_name, cJSON *item)
{
	if (!item)
		return false;
	cJSON_AddItemToObjectCS(obj, const_name, item);
	return true;
}

static cJSON *envelope(const cJSON *id)
{
	cJSON *m = cJSON_CreateObject();

	if (!m)
		return NULL;
	if (!add(m, "jsonrpc", cJSON_CreateStringReference("2.0")) ||
	    !add(m, "id", id ? jsonrpc_id_dup(id) : cJSON_CreateNull())) {
		cJSON_Delete(m);
		return NULL;
	}
	return m;
}

cJSON *jsonrpc_result(const cJSON *id, cJSON *result)
{
	cJSON *m = envelope(id);

	if (!m || !result || !add(m, "result", result)) {
		cJSON_Delete(m);
		cJSON_Delete(result);
		return NULL;
	}
	return m;
}

cJSON *jsonrpc_error(const cJSON *id, int code, const char *message, cJSON *data)
{
	cJSON *m = envelope(id), *e = cJSON_CreateObject();

	if (!m || !e || !add(e, "code", cJSON_CreateNumber(code)) ||
	    !add(e, "message", cJSON_CreateString(message))) {
		cJSON_Delete(data);
		goto fail;
	}
	if (data && !add(e, "data", data)) {
		cJSON_Delete(data);
		goto fail;
	}
	add(m, "error", e);
	return m;
fail:
	cJSON_Delete(e);
	cJSON_Delete(m);
	return NULL;
}

cJSON *jsonrpc_errorf(const cJSON *id, int code, cJSON *data, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return jsonrpc_error(id, code, buf, data);
}

cJSON *jsonrpc_request(const cJSON *id, const char *method, cJSON *params)
{
	cJSON *m = envelope(id);

	if (!m || !add(m, "method", cJSON_CreateString(method)) ||
	    (params && !add(m, "params", params))) {
		cJSON_Delete(params);
		cJSON_Delete(m);
		return NULL;
	}
	return m;
}

cJSON *jsonrpc_notification(const char *method, cJSON *params)
{
	cJSON *m = cJSON_CreateObject();

	if (!m || !cJSON_AddStringToObject(m, "jsonrpc", "2.0") ||
	    !cJSON_AddStringToObject(m, "method", method) ||
	    (params && !cJSON_AddItemToObject(m, "params", params))) {
		cJSON_Delete(params);
		cJSON_Delete(m);
		return NULL;
	}
	return m;
}

char *jsonrpc_print(cJSON *msg)
{
	/* from the loop's cache: one for the upstream and one for the agent every call */
	struct jsonw w = { .buf = alloc_cache_get(JSONW_FIRST), .cap = JSONW_FIRST };

	if (jsonw_value(&w, msg)) {
		jsonw_free(&w);
		return NULL;
	}
	return w.buf;
}

/* An integer jsonw_value writes as its digits. */
static bool digits_id(const cJSON *id)
{
	double d = id->valuedouble;

	return (id->type & 0xff) == cJSON_Number && d > -1e15 && d < 1e15 &&
	       d == (double)(int64_t)d && !(d == 0 && signbit(d));
}

int jsonrpc_write(struct jsonw *w, const cJSON *msg)
{
	const cJSON *ver = msg->child, *id = ver ? ver->next : NULL, *res = id ? id->next : NULL;
	char n[JSONW_INT_TEXT];
	int rc;

	/* the shape jsonrpc_result and jsonrpc_splice_response build, members in that order */
	if ((msg->type & 0xff) != cJSON_Object || !res || res->next ||
	    (ver->type & 0xff) != cJSON_String || strcmp(ver->string, "jsonrpc") ||
	    strcmp(ver->valuestring, "2.0") || strcmp(id->string, "id") || !digits_id(id) ||
	    strcmp(res->string, "result"))
		return jsonw_value(w, msg);
	jsonw_raw(w, "{\"jsonrpc\":\"2.0\",\"id\":", 22);
	jsonw_raw(w, n, jsonw_int_text(n, (int64_t)id->valuedouble));
	jsonw_raw(w, ",\"result\":", 10);
	if ((rc = jsonw_value(w, res)) != 0)
		return rc;
	jsonw_raw(w, "}", 1);
	return 0;
}

void jsonrpc_id_key(const cJSON *id, char *buf, size_t len)
{
	double d = cJSON_IsNumber(id) ? id->valuedouble : 0;

	/* Made for every call: integer ids (nearly all) without printf's floating point. */
	if (cJSON_IsNumber(id) && len >= JSONW_INT_TEXT + 2 && fabs(d) <= 9007199254740991.0 &&
	    d == (double)(int64_t)d && !(d == 0 && signbit(d))) {
		buf[0] = 'n';
		buf[1] = ':';
		jsonw_int_text(buf + 2, (int64_t)d);
	} else if (cJSON_IsString(id)) {
		snprintf(buf, len, "s:%s", id->valuestring);
	} else if (cJSON_IsNumber(id)) {
		snprintf(buf, len, "n:%.0f", d);
	} else {
		snprintf(buf, len, "-");
	}
}

cJSON *jsonrpc_list_params(const char *cursor)
{
	cJSON *params = cJSON_CreateObject();

	if (cursor)
		cJSON_AddStringToObject(params, "cursor", cursor);
	return params;
}

int jsonrpc_list_page(const cJSON *resp, const char *field, cJSON *acc, int *pages,
		      int max_pages, char **cursor, const char **why)
{
	const cJSON *result = json_get(resp, "result");
	const cJSON *items = json_get(result, field);
	const cJSON *next = json_get(result, "nextCursor");
	const cJSON *it;

	*cursor = NULL;
	if (!cJSON_IsArray(items)) {
		const cJSON *m = json_get(json_get(resp, "error"), "message");

		*why = cJSON_IsString(m) ? m->valuestring : "malformed result";
		return -EPROTO;
	}
	cJSON_ArrayForEach(it, items)
		cJSON_AddItemToArray(acc, cJSON_Duplicate(it, 1));
	if (!cJSON_IsString(next) || !*next->valuestring || ++*pages >= max_pages)
		return 0;
	*cursor = xstrdup(next->valuestring);
	return 1;
}
