/* jsonfmt: a JSON string member written printf-style (or left out when absent), for the messages the daemon answers
 * with (the admin API's {"error": ...}, the gate's JSON-RPC refusals). Messages are cut at
 * JSONFMT_MAX bytes: they are for people, and a bound keeps a hostile name from growing them.
 */
#ifndef WARDEN_JSONFMT_H
#define WARDEN_JSONFMT_H

#include <stdarg.h>
#include <cjson/cJSON.h>

#define JSONFMT_MAX 512

/* Add to obj the member name, a string formatted from fmt and ap. cJSON allocates through
 * base/alloc.h, so this cannot fail for want of memory. */
void jsonfmt_add_v(cJSON *obj, const char *name, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

/* Add the string member name when there is one (s not NULL): records and requests leave out
 * what they do not know rather than writing null. */
void jsonfmt_add_opt(cJSON *obj, const char *name, const char *s);

/* Add the member name: s, or null when s is empty (an API's "none" for a field it always has). */
void jsonfmt_add_or_null(cJSON *obj, const char *name, const char *s);

#endif
