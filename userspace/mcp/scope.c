/* scope: one upstream under its own names, for sessions opened through transparent redirect. */
#include "mcp/scope.h"

#include "base/alloc.h"

bool scope_shows(const struct session *s, const struct catalog_entry *e)
{
	return !s || s->scope == SESSION_UNSCOPED || (e && e->server == s->scope);
}

cJSON *scope_listed(const struct session *s, const struct catalog_entry *e)
{
	static const char *const field[CAT_NKINDS] = { "name", "uri", "uriTemplate", "name" };
	cJSON *o = cJSON_Duplicate(e->json, 1);

	if (o && s && s->scope != SESSION_UNSCOPED &&
	    cJSON_GetObjectItemCaseSensitive(o, field[e->kind]))
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
