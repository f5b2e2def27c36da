/* config_errors_util: what the unit tests check of a struct config_errors (base/config.h):
 * that the messages name the fields that were wrong. One definition for every parser's tests. */
#ifndef WARDEN_CONFIG_ERRORS_UTIL_H
#define WARDEN_CONFIG_ERRORS_UTIL_H

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <CUnit/Basic.h>

#include "base/config.h"

/* Is needle part of one of the messages? */
static inline bool has_error(const struct config_errors *e, const char *needle)
{
	for (int i = 0; i < e->count; i++)
		if (strstr(e->msg[i], needle))
			return true;
	return false;
}

/* Each of the NULL-terminated needles is part of some message: a missing one is a failed
 * assertion that names it (at the caller's line), and the messages reported instead are
 * printed. */
static inline void cu_assert_errors(const struct config_errors *e, const char *const *needles,
				    unsigned line, const char *file)
{
	for (; *needles; needles++) {
		if (has_error(e, *needles))
			continue;
		fprintf(stderr, "missing error \"%s\"; got:\n", *needles);
		for (int i = 0; i < e->count; i++)
			fprintf(stderr, "  %s\n", e->msg[i]);
		CU_assertImplementation(CU_FALSE, line, *needles, file, "", CU_FALSE);
	}
}

#define CU_ASSERT_ERRORS(e, ...) \
	cu_assert_errors((e), (const char *const[]){ __VA_ARGS__, NULL }, __LINE__, __FILE__)

#endif
