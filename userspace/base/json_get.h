/* json_get: an object's member by name, the lookup a call makes a few dozen times.
 *
 * The same answer as cJSON_GetObjectItemCaseSensitive (the first member of that name; none
 * past a member without a name), inline, and with the names' first bytes compared before
 * strcmp: the members of one object rarely share a first byte, so passing one costs a load
 * and a compare instead of a call. */
#ifndef WARDEN_JSON_GET_H
#define WARDEN_JSON_GET_H

#include <string.h>
#include <cjson/cJSON.h>

static inline cJSON *json_get(const cJSON *o, const char *name)
{
	cJSON *m;

	if (!o || !name)
		return NULL;
	for (m = o->child; m && m->string; m = m->next)
		if (m->string[0] == name[0] && strcmp(m->string, name) == 0)
			return m;
	return NULL;
}

#endif
