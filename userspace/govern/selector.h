/* selector: whom a budget or a rate limit applies to, as the config names it: "default",
 * "key:<id>", "team:<name>" or "policy:<name>". The budgets and rate_limits sections each keep
 * their settings per selector in an array sorted by name; these functions work on any such
 * array whose elements begin with the name (struct { char *name; ... }).
 */
#ifndef WARDEN_SELECTOR_H
#define WARDEN_SELECTOR_H

#include <stdbool.h>
#include <stddef.h>

struct config_errors;

/* "default", or one of the prefixes followed by at least one character. */
bool selector_name_ok(const char *s);

/* Sort the n elements of v (size bytes each) by name. Each name used twice is an error of the
 * config section `section`. Returns 0 or -EINVAL. */
int selector_sort(void *v, size_t n, size_t size, const char *section,
		  struct config_errors *errs);

/* The element of the sorted v named prefix followed by name; NULL when there is none or name
 * is NULL or empty (keys use "" for no team or no policy). */
const void *selector_find(const void *v, size_t n, size_t size, const char *prefix,
			  const char *name);

/* What a sorted array names, found once after selector_sort: a lookup of a kind that the
 * config never names is skipped, and "default" is at hand. Most configs name "default" and
 * a few keys, so a call's lookups (a rate limit's four, a budget's three) were bsearches that
 * found nothing. */
struct selector_kinds {
	const void *dflt;       /* the "default" element, or NULL */
	bool key, team, policy; /* some "key:", "team:", "policy:" element */
};
void selector_kinds(const void *v, size_t n, size_t size, struct selector_kinds *out);

/* Free the names of the n elements of v, then v. */
void selector_free(void *v, size_t n, size_t size);

#endif
