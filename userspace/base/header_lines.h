/* header_lines: an HTTP request's headers as "Name: value\r\n" lines in one growable buffer,
 * the form base/http_client.h takes them in. */
#ifndef WARDEN_HEADER_LINES_H
#define WARDEN_HEADER_LINES_H

#include <stddef.h>

#define HEADER_LINE_MAX 8192    /* a name and value longer than this are refused */

struct header_lines {
	char *p;                /* NULL until the first line */
	size_t len, cap;
};

/* A literal's text and length, for the _n form. */
#define HEADER_LIT(s) s, sizeof(s) - 1

/* n more bytes at the end, for the caller to fill; never fails (allocation aborts). */
char *header_lines_extend(struct header_lines *h, size_t n);

/* Append "name: value\r\n": the lengths known, or measured. 0 or -E2BIG (nothing added). */
int header_lines_add_n(struct header_lines *h, const char *name, size_t name_len,
		       const char *value, size_t value_len);
int header_lines_add(struct header_lines *h, const char *name, const char *value);

/* Empty again, the buffer kept. */
static inline void header_lines_clear(struct header_lines *h)
{
	h->len = 0;
}

void header_lines_free(struct header_lines *h);

#endif
