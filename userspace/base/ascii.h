/* ascii: the byte classes of tokens taken from configs and peers that later go into HTTP
 * headers, key ids and log lines, where anything else could smuggle syntax; and the
 * case-insensitive comparisons of HTTP's names and tokens, which are ASCII. */
#ifndef WARDEN_ASCII_H
#define WARDEN_ASCII_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Every byte of s[0..n) visible ASCII (0x21-0x7e), or with space also 0x20; true for n == 0. */
static inline bool ascii_span(const char *s, size_t n, bool space)
{
	unsigned char lo = space ? 0x20 : 0x21;

	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < lo || (unsigned char)s[i] > 0x7e)
			return false;
	return true;
}

/* x and y equal but for the case of an ASCII letter. */
static inline bool ascii_same_ci(unsigned char x, unsigned char y)
{
	if (x == y)
		return true;
	x |= 0x20;
	return x == (y | 0x20) && x >= 'a' && x <= 'z';
}

/* 8 bytes each, equal but for the case of ASCII letters: the bytes that differ may differ
 * only in the case bit (0x20), and there x must be a letter. The letter test runs on all
 * eight bytes at once; no subtraction borrows across bytes (each byte minuend >= 0x80,
 * subtrahend <= 0x7f). */
static inline bool ascii_caseeq8(uint64_t x, uint64_t y)
{
	const uint64_t H = 0x8080808080808080ull, K = 0x2020202020202020ull;
	uint64_t d = x ^ y, lx = x | K;

	if (!d)
		return true;
	if (d & ~K)
		return false;
	uint64_t ge_a = (lx | H) - 0x6161616161616161ull;               /* >= 'a' */
	uint64_t le_z = (H | 0x7a7a7a7a7a7a7a7aull) - (lx & ~H);        /* <= 'z' */
	uint64_t letter = ge_a & le_z & ~x & H;                         /* and ASCII */
	return ((d << 2) & ~letter) == 0;
}

/* a[0..n) and b[0..n) equal but for ASCII case: strncasecmp without the locale or the call
 * (header names are compared several times a request). Both must have n bytes to read
 * (eight at a time); a string that may end sooner goes to ascii_caseprefix. */
static inline bool ascii_caseeq(const char *a, const char *b, size_t n)
{
	uint64_t x, y;
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		memcpy(&x, a + i, 8);
		memcpy(&y, b + i, 8);
		if (!ascii_caseeq8(x, y))
			return false;
	}
	if (i < n && n >= 8) {          /* the last eight, overlapping what was compared */
		memcpy(&x, a + n - 8, 8);
		memcpy(&y, b + n - 8, 8);
		return ascii_caseeq8(x, y);
	}
	for (; i < n; i++)
		if (!ascii_same_ci((unsigned char)a[i], (unsigned char)b[i]))
			return false;
	return true;
}

/* NUL-terminated s begins with lit[0..n) but for ASCII case (lit has no NUL there): one byte
 * at a time, so nothing past the end of a shorter s is read. */
static inline bool ascii_caseprefix(const char *s, const char *lit, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!ascii_same_ci((unsigned char)s[i], (unsigned char)lit[i]))
			return false;
	return true;
}

/* NUL-terminated a and b equal but for ASCII case (strcasecmp(a, b) == 0). */
static inline bool ascii_caseeq_str(const char *a, const char *b)
{
	for (;; a++, b++) {
		if (!ascii_same_ci((unsigned char)*a, (unsigned char)*b))
			return false;
		if (!*a)
			return true;
	}
}

#endif
