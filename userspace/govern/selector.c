/* selector: see selector.h. */
#include "govern/selector.h"

#include <stdlib.h>
#include <string.h>

#include "base/config.h"

bool selector_name_ok(const char *s)
{
	static const char *const prefixes[] = { "key:", "team:", "policy:", NULL };

	if (strcmp(s, "default") == 0)
		return true;
	for (const char *const *p = prefixes; *p; p++)
		if (strncmp(s, *p, strlen(*p)) == 0 && s[strlen(*p)])
			return true;
	return false;
}

/* Every element begins with its name. */
static const char *name_of(const void *elem) { return *(char *const *)elem; }

static int by_name(const void *a, const void *b) { return strcmp(name_of(a), name_of(b)); }

int selector_sort(void *v, size_t n, size_t size, const char *section,
		  struct config_errors *errs)
{
	int rc = 0;

	if (n == 0)
		return 0;
	qsort(v, n, size, by_name);
	for (size_t i = 1; i < n; i++) {
		const char *prev = name_of((const char *)v + (i - 1) * size);
		const char *cur = name_of((const char *)v + i * size);

		if (strcmp(prev, cur) == 0)
			rc = config_fail(errs, section, "selector \"%s\" appears twice", cur);
	}
	return rc;
}

struct joined {
	const char *prefix, *name;
};

/* prefix and name compared as the one string they make, without making it */
static int joined_cmp(const void *key, const void *elem)
{
	const struct joined *k = key;
	const char *s = name_of(elem);
	size_t pl = strlen(k->prefix);
	int c = strncmp(k->prefix, s, pl);

	return c ? c : strcmp(k->name, s + pl);
}

const void *selector_find(const void *v, size_t n, size_t size, const char *prefix,
			  const char *name)
{
	struct joined k = { prefix, name };

	if (!v || !name || !*name)
		return NULL;
	return bsearch(&k, v, n, size, joined_cmp);
}

void selector_kinds(const void *v, size_t n, size_t size, struct selector_kinds *out)
{
	*out = (struct selector_kinds){ NULL, false, false, false };
	for (size_t i = 0; i < n; i++) {
		const void *e = (const char *)v + i * size;
		const char *s = name_of(e);

		if (strcmp(s, "default") == 0)
			out->dflt = e;
		else if (strncmp(s, "key:", 4) == 0)
			out->key = true;
		else if (strncmp(s, "team:", 5) == 0)
			out->team = true;
		else if (strncmp(s, "policy:", 7) == 0)
			out->policy = true;
	}
}

void selector_free(void *v, size_t n, size_t size)
{
	for (size_t i = 0; i < n; i++)
		free(*(char **)((char *)v + i * size));
	free(v);
}
