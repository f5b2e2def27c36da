/* redact: a copy of a JSON value with the values of named fields replaced by "[redacted]",
 * for the argument and result values a policy lets the records hold (docs/policy.md). */
#ifndef WARDEN_REDACT_H
#define WARDEN_REDACT_H

#include <stddef.h>
#include <cjson/cJSON.h>

#define REDACTED "[redacted]"
#define REDACT_MAX_DEPTH 64     /* deeper values are cut off, as "[too deep]" */

/* A deep copy of v where every object member, at any depth, whose name matches one of
 * names[0..n-1] (ASCII case-insensitive) has the value "[redacted]". NULL on out of memory. */
cJSON *redact_copy(const cJSON *v, const char *const *names, size_t n);

#endif
