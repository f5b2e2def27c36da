/* schema_regex: JSON Schema "pattern" and "patternProperties" on PCRE2.
 *
 * JSON Schema patterns are ECMA-262 regular expressions, matched as a search (unanchored)
 * over code points. PCRE2 is compiled with the options that give ECMA-262 meaning where the
 * two differ (docs/schema.md lists what remains): UTF-8 code points, \uXXXX and \u{...}
 * escapes, `$` only at the very end, a back-reference to an unset group matching empty.
 * Matching is bounded (match and depth limits), so a hostile pattern from an upstream cannot
 * hang the event loop: a match that hits a limit counts as no match.
 */
#ifndef WARDEN_SCHEMA_REGEX_H
#define WARDEN_SCHEMA_REGEX_H

#include <stdbool.h>
#include <stddef.h>

struct schema_regex;

/* 0, -EINVAL (why says what is wrong, with its offset) or -ENOMEM. */
int schema_regex_compile(const char *pattern, struct schema_regex **out, char *why, size_t whylen);
/* Does s (NUL-terminated UTF-8) contain a match? Safe from any thread. */
bool schema_regex_search(const struct schema_regex *re, const char *s);
void schema_regex_free(struct schema_regex *re);

#endif
