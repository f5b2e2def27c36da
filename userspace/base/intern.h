/* intern: names as small integer ids (string interning, reference counted).
 *
 * Counters are keyed by fixed-size tuples of ids instead of formatted strings: a name is
 * hashed once to find its id, the counter tables then hash and compare a few integers, and
 * every counter that names the same key, server or tool shares one copy of the name. Ids are
 * dense (reused after release) and never 0, so 0 can mean "no name"; a name lives while
 * anything holds a reference to it, so names that come from clients (resource URIs) do not
 * accumulate after the counters that used them are gone.
 */
#ifndef WARDEN_INTERN_H
#define WARDEN_INTERN_H

#include <stddef.h>
#include <stdint.h>

#define INTERN_NONE 0u

struct intern;

/* At most max names (0: no limit but 2^32 - 2). 0 or -ENOMEM / -EIO. */
int intern_new(size_t max, struct intern **out);
void intern_free(struct intern *in);    /* whatever references are still held */

/* The id of s[0..n), taking a reference (created at 1); INTERN_NONE when the table is full. */
uint32_t intern_get(struct intern *in, const char *s, size_t n);
/* The id of s[0..n) if interned, without a reference; INTERN_NONE otherwise. */
uint32_t intern_find(const struct intern *in, const char *s, size_t n);
/* Another reference to a live id. */
void intern_ref(struct intern *in, uint32_t id);
/* Drop a reference taken by intern_get or intern_ref; the name goes with the last one. */
void intern_put(struct intern *in, uint32_t id);
/* The name (NUL-terminated) of a live id, and its length when len is not NULL. */
const char *intern_str(const struct intern *in, uint32_t id, size_t *len);
size_t intern_count(const struct intern *in);

#endif
