/* jwt: JSON Web Tokens signed with public keys, verified with OpenSSL 3.
 *
 * A compact JWS (RFC 7515: base64url(header) "." base64url(claims) "." base64url(signature))
 * is split and decoded with size limits, and its signature checked against a JSON Web Key Set
 * (RFC 7517). Only asymmetric algorithms exist here: RS256 (RSA >= 2048 bits), ES256 (P-256;
 * the JWS signature is raw r||s, converted to DER for OpenSSL) and EdDSA (Ed25519). "none",
 * HS* and every other alg are refused, and a header's alg must fit the key's type (and the
 * key's own "alg" when it names one), so a public key can never be used as an HMAC secret.
 * What the claims mean (issuer, audience, times, scopes) is the caller's (govern/oauth.h).
 *
 * Pure functions and immutable key sets: safe on any thread.
 */
#ifndef WARDEN_JWT_H
#define WARDEN_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <cjson/cJSON.h>

#define JWT_MAX_LEN      8192  /* a longer token is malformed */
#define JWT_KID_SIZE     129   /* key ids: 1-128 printable bytes */
#define JWKS_MAX_KEYS    64    /* keys in a set */
#define JWKS_MAX_TEXT    (256 * 1024) /* a JWKS document's size */

/* Algorithms, as a bit set (allowed sets are ORed). */
enum jwt_alg {
	JWT_ALG_RS256 = 1 << 0,
	JWT_ALG_ES256 = 1 << 1,
	JWT_ALG_EDDSA = 1 << 2,
};
#define JWT_ALG_ALL (JWT_ALG_RS256 | JWT_ALG_ES256 | JWT_ALG_EDDSA)

/* "RS256", "ES256", "EdDSA" -> the bit; 0 for anything else (including "none" and HS*). */
unsigned jwt_alg_from_name(const char *name);
const char *jwt_alg_name(unsigned alg);

/* Does text look like a compact JWS (exactly three non-empty dot-separated parts of base64url
 * characters)? A virtual key never does. */
bool jwt_looks_like(const char *text, size_t len);

/* A token split and decoded; claims and header are parsed JSON objects. */
struct jwt {
	cJSON *header;
	cJSON *claims;
	unsigned alg;                /* one JWT_ALG_* */
	char kid[JWT_KID_SIZE];      /* "" when the header names none */
	const char *signed_part;     /* header "." payload, inside the caller's text */
	size_t signed_len;
	unsigned char *sig;
	size_t sig_len;
};

/* Split and decode text (len bytes, not NUL-terminated; it must outlive t). 0, or -EINVAL with
 * *why a static text (malformed, unsupported alg, "crit" present, ...). t needs jwt_clear
 * either way. */
int jwt_parse(const char *text, size_t len, struct jwt *t, const char **why);
void jwt_clear(struct jwt *t);

/* A set of public keys. */
struct jwks;
/* {"keys": [JWK...]}: keys of kty RSA, EC (crv P-256) and OKP (crv Ed25519) with "use" absent
 * or "sig" are kept; others (encryption keys, other curves, symmetric keys) are skipped. 0, or
 * -EINVAL with *why: not a JWKS, a usable-looking key that is malformed, too many keys, or no
 * usable key at all. */
int jwks_parse(const cJSON *doc, struct jwks **out, const char **why);
/* The same from text (a file's or an HTTP body's, at most JWKS_MAX_TEXT bytes). */
int jwks_parse_text(const char *text, size_t len, struct jwks **out, const char **why);
void jwks_free(struct jwks *ks);
size_t jwks_count(const struct jwks *ks);
/* Is there a key with this kid? */
bool jwks_has_kid(const struct jwks *ks, const char *kid);

/* Check t's signature with ks: the key named by t's kid (or, with no kid, any key of the
 * alg's type). t->alg must be in allowed. 0; -ENOKEY no key fits (unknown kid); -EBADMSG the
 * signature does not verify; -EPERM alg not allowed or not the key's. *why says which. */
int jwt_verify(const struct jwt *t, const struct jwks *ks, unsigned allowed, const char **why);

#endif
