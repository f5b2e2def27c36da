/* names: exposed-name construction, splitting and URI template matching. */
#include "mcp/names.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/config.h"

char *names_expose(const char *server, enum names_form form, const char *name)
{
	char *out;

	if (asprintf(&out, form == NAMES_NAME ? "%s__%s" : "%s+%s", server, name) < 0)
		return NULL;
	return out;
}

int names_split(const char *exposed, enum names_form form, char *server, const char **rest)
{
	const char *sep = form == NAMES_NAME ? strstr(exposed, "__") : strchr(exposed, '+');
	size_t n = sep ? (size_t)(sep - exposed) : 0;

	if (!sep || n == 0 || n > CONFIG_NAME_MAX)
		return -ENOENT;
	for (size_t i = 0; i < n; i++) {
		char ch = exposed[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-'))
			return -ENOENT;
	}
	memcpy(server, exposed, n);
	server[n] = '\0';
	*rest = sep + (form == NAMES_NAME ? 2 : 1);
	return **rest ? 0 : -ENOENT;
}

bool names_template_match(const char *t, const char *s)
{
	while (*t) {
		if (*t == '{') {
			const char *close = strchr(t, '}');
			if (!close)
				return false;
			bool reserved = t[1] == '+';
			t = close + 1;
			const char *stop = s;
			while (*stop && (reserved || *stop != '/'))
				stop++;
			if (stop == s)
				return false;
			/* Longest match first; backtrack for what follows the variable. */
			for (const char *q = stop; q > s; q--)
				if (names_template_match(t, q))
					return true;
			return false;
		}
		if (*t++ != *s++)
			return false;
	}
	return *s == '\0';
}
