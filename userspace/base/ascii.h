/* ascii: the byte classes of tokens taken from configs and peers that later go into HTTP
 * headers, key ids and log lines, where anything else could smuggle syntax. */
#ifndef WARDEN_ASCII_H
#define WARDEN_ASCII_H

#include <stdbool.h>
#include <stddef.h>

/* Every byte of s[0..n) visible ASCII (0x21-0x7e), or with space also 0x20; true for n == 0. */
static inline bool ascii_span(const char *s, size_t n, bool space)
{
	unsigned char lo = space ? 0x20 : 0x21;

	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < lo || (unsigned char)s[i] > 0x7e)
			return false;
	return true;
}

#endif
