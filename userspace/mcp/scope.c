/* scope: one upstream under its own names, for sessions opened through transparent redirect. */
#include "mcp/scope.h"

#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/json_get.h"

bool scope_shows(const struct session *s, const struct catalog_entry *e)
{
	return !s || s->scope == SESSION_UNSCOPED || (e && e->server == s->scope);
}

cJSON *scope_listed(const struct session *s, const struct catalog_entry *e)
{
	static const char *const field[CAT_NKINDS] = { "name", "uri", "uriTemplate", "name" };
	cJSON *o = cJSON_Duplicate(e->json, 1);

	if (o && s && s->scope != SESSION_UNSCOPED &&
	    json_get(o, field[e->kind]))
		cJSON_ReplaceItemInObjectCaseSensitive(o, field[e->kind],
						       cJSON_CreateString(e->name));
	return o;
}

char *scope_exposed(const struct catalog *cat, const struct session *s, enum catalog_kind kind,
		    const char *name)
{
	if (!s || s->scope == SESSION_UNSCOPED)
		return NULL;
	if (kind == CAT_RESOURCES || kind == CAT_TEMPLATES)
		return catalog_expose_uri(cat, s->scope, name);
	return catalog_expose_name(cat, s->scope, kind, name);
}

void scope_initialize_result(const struct catalog *cat, const struct session *s,
			     cJSON *response)
{
	cJSON *res = json_get(response, "result");
	const cJSON *info;

	if (!s || s->scope == SESSION_UNSCOPED || !cJSON_IsObject(res))
		return;
	cJSON_ReplaceItemInObjectCaseSensitive(res, "capabilities",
					       catalog_server_capabilities(cat, s->scope));
	info = catalog_server_info(cat, s->scope);
	/* Before the upstream is ready its serverInfo is unknown: the gateway's stays. */
	if (cJSON_IsObject(info))
		cJSON_ReplaceItemInObjectCaseSensitive(res, "serverInfo", cJSON_Duplicate(info, 1));
}

/* s with every occurrence of from replaced by to (caller frees). */
static char *replaced(const char *s, const char *from, const char *to)
{
	size_t nf = strlen(from), nt = strlen(to), n = 0;
	const char *p;
	char *out, *o;

	for (p = strstr(s, from); p; p = strstr(p + nf, from))
		n++;
	o = out = xmalloc(strlen(s) + n * nt + 1);
	for (p = strstr(s, from); p; p = strstr(s, from)) {
		memcpy(o, s, (size_t)(p - s));
		o += p - s;
		memcpy(o, to, nt);
		o += nt;
		s = p + nf;
	}
	strcpy(o, s);
	return out;
}

void scope_error_names(const struct catalog *cat, const struct session *s, enum catalog_kind kind,
		       const char *own, cJSON *error)
{
	char *exposed = own ? scope_exposed(cat, s, kind, own) : NULL;
	cJSON *msg = json_get(error, "message");
	cJSON *tool = json_get(json_get(error, "data"), "tool");

	if (!exposed || !exposed[0] || !strcmp(exposed, own)) {
		free(exposed);
		return;
	}
	if (cJSON_IsString(msg) && strstr(msg->valuestring, exposed)) {
		char *m = replaced(msg->valuestring, exposed, own);

		cJSON_ReplaceItemInObjectCaseSensitive(error, "message", cJSON_CreateString(m));
		free(m);
	}
	if (cJSON_IsString(tool) && !strcmp(tool->valuestring, exposed))
		cJSON_SetValuestring(tool, own);
	free(exposed);
}
