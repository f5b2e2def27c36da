/* rfc3339: reading the RFC 3339 date-times that configs, the admin API and wardenctl accept. */
#ifndef WARDEN_RFC3339_H
#define WARDEN_RFC3339_H

#include <stdint.h>

/* YYYY-MM-DD(T|t| )HH:MM:SS[.fraction](Z|z|+HH:MM|-HH:MM), from 1970 on, as milliseconds
 * since the epoch (digits of the fraction past the third are dropped). 0 or -EINVAL. */
int rfc3339_parse_ms(const char *s, int64_t *ms);

#endif
