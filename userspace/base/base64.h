/* base64: strict RFC 4648 decoders. Each accepts one encoding per byte string (the bits
 * under the padding or past the last byte are zero), nothing else: no whitespace, no
 * mixed alphabets. OpenSSL's EVP_DecodeBlock is laxer (it skips whitespace). */
#ifndef WARDEN_BASE64_H
#define WARDEN_BASE64_H

#include <stdbool.h>
#include <stddef.h>

/* The value of one digit, 0..63, or -1: the standard alphabet (+/) or base64url's (-_). */
int base64_value(unsigned char c, bool url);

/* The standard alphabet, padded to a multiple of 4 (the header sentinel of MCP 2026-07-28).
 * out holds at least n / 4 * 3 bytes. 0 or -EINVAL. */
int base64_decode(const char *in, size_t n, unsigned char *out, size_t *out_len);

/* base64url without padding (JWS, RFC 7515). out holds at least n * 3 / 4 bytes. */
int base64url_decode(const char *in, size_t n, unsigned char *out, size_t *out_len);

#endif
