/* header_lines: "Name: value\r\n" lines in one buffer, from the loop's block cache (one a
 * request: base/alloc.h). */
#include "base/header_lines.h"

#include <errno.h>
#include <string.h>

#include "base/alloc.h"

char *header_lines_extend(struct header_lines *h, size_t n)
{
	size_t need = h->len + n;
	char *p;

	if (need > h->cap) {
		h->cap = need < 512 ? 512 : need * 2;
		h->p = h->p ? xrealloc(h->p, h->cap) : alloc_cache_get(h->cap);
	}
	p = h->p + h->len;
	h->len = need;
	return p;
}

int header_lines_add_n(struct header_lines *h, const char *name, size_t name_len,
		       const char *value, size_t value_len)
{
	char *p;

	if (name_len + value_len > HEADER_LINE_MAX)
		return -E2BIG;
	p = header_lines_extend(h, name_len + value_len + 4);
	memcpy(p, name, name_len);
	memcpy(p + name_len, ": ", 2);
	memcpy(p + name_len + 2, value, value_len);
	memcpy(p + name_len + 2 + value_len, "\r\n", 2);
	return 0;
}

int header_lines_add(struct header_lines *h, const char *name, const char *value)
{
	return header_lines_add_n(h, name, strlen(name), value, strlen(value));
}

void header_lines_free(struct header_lines *h)
{
	alloc_cache_put(h->p);
	*h = (struct header_lines){ 0 };
}
