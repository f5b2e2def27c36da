/* base64: strict RFC 4648 decoding, for the two places a peer's text is Base64. */
#include "base/base64.h"

#include <errno.h>
#include <stdint.h>

int base64_value(unsigned char c, bool url)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == (url ? '-' : '+'))
		return 62;
	if (c == (url ? '_' : '/'))
		return 63;
	return -1;
}

/* Digits to bytes; the bits left over past the last whole byte must be zero. */
static int decode_digits(const char *in, size_t n, bool url, unsigned char *out, size_t *o)
{
	uint32_t acc = 0;
	int bits = 0;

	for (size_t i = 0; i < n; i++) {
		int v = base64_value((unsigned char)in[i], url);
		if (v < 0)
			return -EINVAL;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[(*o)++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	return acc ? -EINVAL : 0;
}

int base64_decode(const char *in, size_t n, unsigned char *out, size_t *out_len)
{
	size_t digits = n, o = 0;
	int rc;

	if (n % 4)
		return -EINVAL;
	/* '=' only as the last one or two characters */
	while (digits > 0 && n - digits < 2 && in[digits - 1] == '=')
		digits--;
	if (digits % 4 == 1)
		return -EINVAL;
	if ((rc = decode_digits(in, digits, false, out, &o)))
		return rc;
	*out_len = o;
	return 0;
}

int base64url_decode(const char *in, size_t n, unsigned char *out, size_t *out_len)
{
	size_t o = 0;
	int rc;

	if (n % 4 == 1)
		return -EINVAL;
	if ((rc = decode_digits(in, n, true, out, &o)))
		return rc;
	*out_len = o;
	return 0;
}
