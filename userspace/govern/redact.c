/* redact: the recursive copy behind log_arguments' redaction. */
#include "govern/redact.h"

#include <stdbool.h>
#include <strings.h>

static bool named(const char *key, const char *const *names, size_t n)
{
	for (size_t i = 0; key && i < n; i++)
		if (!strcasecmp(key, names[i]))
			return true;
	return false;
}

static cJSON *copy(const cJSON *v, const char *const *names, size_t n, int depth)
{
	cJSON *out, *c;

	if (depth > REDACT_MAX_DEPTH)
		return cJSON_CreateString("[too deep]");
	if (!cJSON_IsObject(v) && !cJSON_IsArray(v))
		return cJSON_Duplicate(v, false);
	out = cJSON_IsObject(v) ? cJSON_CreateObject() : cJSON_CreateArray();
	if (!out)
		return NULL;
	for (const cJSON *it = v->child; it; it = it->next) {
		bool obj = cJSON_IsObject(v);
		c = obj && named(it->string, names, n) ? cJSON_CreateString(REDACTED)
						       : copy(it, names, n, depth + 1);
		if (!c || !(obj ? cJSON_AddItemToObject(out, it->string, c)
				: cJSON_AddItemToArray(out, c))) {
			cJSON_Delete(c);
			cJSON_Delete(out);
			return NULL;
		}
	}
	return out;
}

cJSON *redact_copy(const cJSON *v, const char *const *names, size_t n)
{
	return v ? copy(v, names, n, 0) : NULL;
}
