/* json_keys: repeated member names, found by comparing neighbours once the names are sorted
 * (no hash an agent could flood), or pairwise in the small objects that most are. */
#include "base/json_keys.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"

#define PAIRWISE_MAX 8

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static const char *repeated_in(const cJSON *obj)
{
	const char *found = NULL, **names;
	size_t n = 0, i = 0;

	for (const cJSON *m = obj->child; m; m = m->next)
		n++;
	if (n <= PAIRWISE_MAX) {
		for (const cJSON *a = obj->child; a; a = a->next)
			for (const cJSON *b = a->next; b; b = b->next)
				if (a->string[0] == b->string[0] && !strcmp(a->string, b->string))
					return a->string;
		return NULL;
	}
	names = xmalloc(n * sizeof(*names));
	for (const cJSON *m = obj->child; m; m = m->next)
		names[i++] = m->string;
	qsort(names, n, sizeof(*names), name_cmp);
	for (i = 1; i < n && !found; i++)
		if (!strcmp(names[i - 1], names[i]))
			found = names[i];
	free(names);
	return found;
}

/* The type tests inline: this walks every node of every request, and most are leaves. */
static bool is_object(const cJSON *v)
{
	return (v->type & 0xff) == cJSON_Object;
}

static bool is_container(const cJSON *v)
{
	return is_object(v) || (v->type & 0xff) == cJSON_Array;
}

static const char *repeated_below(const cJSON *v)
{
	const char *dup;

	if (is_object(v) && (dup = repeated_in(v)))
		return dup;
	for (const cJSON *c = v->child; c; c = c->next)
		if (is_container(c) && (dup = repeated_below(c)))
			return dup;
	return NULL;
}

const char *json_repeated_key(const cJSON *v)
{
	return v && is_container(v) ? repeated_below(v) : NULL;
}
