/* jwt: compact JWS parsing, JWKS and signature verification with OpenSSL 3 (jwt.h). */
#include "base/ascii.h"
#include "govern/jwt.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/params.h>

#include "base/alloc.h"
#include "base/base64.h"
#include "base/json_get.h"

struct jwk {
	char kid[JWT_KID_SIZE];
	unsigned alg;          /* the one alg the key's type allows */
	bool alg_named;        /* the JWK said so itself */
	EVP_PKEY *pkey;
};

struct jwks {
	size_t n;
	struct jwk keys[JWKS_MAX_KEYS];
};

static const struct {
	unsigned alg;
	const char *name;
} alg_names[] = {
	{ JWT_ALG_RS256, "RS256" },
	{ JWT_ALG_ES256, "ES256" },
	{ JWT_ALG_EDDSA, "EdDSA" },
};

unsigned jwt_alg_from_name(const char *name)
{
	for (size_t i = 0; name && i < sizeof(alg_names) / sizeof(alg_names[0]); i++)
		if (!strcmp(name, alg_names[i].name))
			return alg_names[i].alg;
	return 0;
}

const char *jwt_alg_name(unsigned alg)
{
	for (size_t i = 0; i < sizeof(alg_names) / sizeof(alg_names[0]); i++)
		if (alg == alg_names[i].alg)
			return alg_names[i].name;
	return "?";
}

bool jwt_looks_like(const char *text, size_t len)
{
	size_t dots = 0, part = 0;

	if (!text || len == 0 || len > JWT_MAX_LEN)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (text[i] == '.') {
			if (part == 0)
				return false;
			dots++;
			part = 0;
		} else if (base64_value((unsigned char)text[i], true) < 0) {
			return false;
		} else {
			part++;
		}
	}
	return dots == 2 && part > 0;
}

/* Decode one base64url part into a fresh buffer (NUL-terminated for JSON). */
static int decode_part(const char *in, size_t len, unsigned char **out, size_t *out_len)
{
	unsigned char *b = xmalloc(len * 3 / 4 + 1);
	int rc = base64url_decode(in, len, b, out_len);

	if (rc) {
		free(b);
		return rc;
	}
	b[*out_len] = '\0';
	*out = b;
	return 0;
}

static cJSON *decode_json(const char *in, size_t len)
{
	unsigned char *b;
	size_t n;
	cJSON *j;

	if (decode_part(in, len, &b, &n))
		return NULL;
	j = cJSON_ParseWithLength((const char *)b, n);
	free(b);
	if (j && !cJSON_IsObject(j)) {
		cJSON_Delete(j);
		j = NULL;
	}
	return j;
}

static bool printable(const char *s)
{
	return ascii_span(s, strlen(s), true);
}

void jwt_clear(struct jwt *t)
{
	cJSON_Delete(t->header);
	cJSON_Delete(t->claims);
	free(t->sig);
	memset(t, 0, sizeof(*t));
}

int jwt_parse(const char *text, size_t len, struct jwt *t, const char **why)
{
	const char *d1, *d2;

	memset(t, 0, sizeof(*t));
	*why = "malformed token";
	if (!jwt_looks_like(text, len))
		return -EINVAL;
	d1 = memchr(text, '.', len);
	d2 = memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - text));
	t->header = decode_json(text, (size_t)(d1 - text));
	if (!t->header) {
		*why = "malformed token header";
		return -EINVAL;
	}
	t->claims = decode_json(d1 + 1, (size_t)(d2 - d1 - 1));
	if (!t->claims) {
		*why = "malformed token claims";
		return -EINVAL;
	}
	if (decode_part(d2 + 1, len - (size_t)(d2 + 1 - text), &t->sig, &t->sig_len)) {
		*why = "malformed token signature";
		return -EINVAL;
	}
	t->signed_part = text;
	t->signed_len = (size_t)(d2 - text);

	const cJSON *alg = json_get(t->header, "alg");
	t->alg = cJSON_IsString(alg) ? jwt_alg_from_name(alg->valuestring) : 0;
	if (!t->alg) {
		*why = "token alg not supported (RS256, ES256, EdDSA only)";
		return -EINVAL;
	}
	/* Extensions we do not understand must not be ignored (RFC 7515 section 4.1.11). */
	if (json_get(t->header, "crit")) {
		*why = "token header has crit extensions";
		return -EINVAL;
	}
	const cJSON *kid = json_get(t->header, "kid");
	if (kid) {
		if (!cJSON_IsString(kid) || !kid->valuestring[0] ||
		    strlen(kid->valuestring) >= JWT_KID_SIZE || !printable(kid->valuestring)) {
			*why = "token kid malformed";
			return -EINVAL;
		}
		strcpy(t->kid, kid->valuestring);
	}
	*why = NULL;
	return 0;
}

/* --- keys ------------------------------------------------------------------------------ */

/* A base64url member of a JWK, decoded into a fresh buffer of at most max bytes. */
static int jwk_bytes(const cJSON *jwk, const char *name, size_t max, unsigned char **out,
		     size_t *out_len)
{
	const cJSON *v = json_get(jwk, name);
	size_t len;

	if (!cJSON_IsString(v) || !v->valuestring[0])
		return -EINVAL;
	len = strlen(v->valuestring);
	if (len > (max * 4 + 2) / 3)
		return -EINVAL;
	return decode_part(v->valuestring, len, out, out_len);
}

static EVP_PKEY *pkey_fromdata(const char *type, OSSL_PARAM *params)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
	EVP_PKEY *pkey = NULL;

	if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
		pkey = NULL;
	EVP_PKEY_CTX_free(ctx);
	return pkey;
}

static EVP_PKEY *rsa_key(const cJSON *jwk)
{
	unsigned char *n = NULL, *e = NULL;
	size_t nl = 0, el = 0;
	BIGNUM *bn = NULL, *be = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY *pkey = NULL;

	if (jwk_bytes(jwk, "n", 1024, &n, &nl) || jwk_bytes(jwk, "e", 8, &e, &el))
		goto out;
	bn = BN_bin2bn(n, (int)nl, NULL);
	be = BN_bin2bn(e, (int)el, NULL);
	/* Short RSA keys are refused outright (RFC 7518 section 3.3: 2048 bits or more), and so
	 * are exponents no RSA key has (even, or 1: with e = 1 any padded digest "verifies"). */
	if (!bn || !be || BN_num_bits(bn) < 2048 || BN_num_bits(bn) > 8192 || !BN_is_odd(be) ||
	    BN_is_one(be))
		goto out;
	/* The builder turns the big-endian numbers into the native ones the parameters hold. */
	bld = OSSL_PARAM_BLD_new();
	if (bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) &&
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be))
		params = OSSL_PARAM_BLD_to_param(bld);
	pkey = pkey_fromdata("RSA", params);
out:
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(bn);
	BN_free(be);
	free(n);
	free(e);
	return pkey;
}

static EVP_PKEY *ec_key(const cJSON *jwk)
{
	unsigned char *x = NULL, *y = NULL, pub[65];
	char group[] = "prime256v1";
	size_t xl = 0, yl = 0;
	EVP_PKEY *pkey = NULL;

	if (!jwk_bytes(jwk, "x", 32, &x, &xl) && !jwk_bytes(jwk, "y", 32, &y, &yl) && xl == 32 &&
	    yl == 32) {
		pub[0] = 0x04;  /* uncompressed point; OpenSSL checks that it is on the curve */
		memcpy(pub + 1, x, 32);
		memcpy(pub + 33, y, 32);
		OSSL_PARAM params[] = {
			OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
			OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub)),
			OSSL_PARAM_construct_end(),
		};
		pkey = pkey_fromdata("EC", params);
	}
	free(x);
	free(y);
	return pkey;
}

static EVP_PKEY *ed25519_key(const cJSON *jwk)
{
	unsigned char *x = NULL;
	size_t xl = 0;
	EVP_PKEY *pkey = NULL;

	if (!jwk_bytes(jwk, "x", 32, &x, &xl) && xl == 32)
		pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, x, 32);
	free(x);
	return pkey;
}

static const char *str_member(const cJSON *o, const char *name)
{
	const cJSON *v = json_get(o, name);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* One JWK into k. 1 kept, 0 skipped (not a signing key we know), -EINVAL malformed. */
static int jwk_parse(const cJSON *jwk, struct jwk *k, const char **why)
{
	const char *kty = str_member(jwk, "kty"), *crv = str_member(jwk, "crv");
	const char *use = str_member(jwk, "use"), *alg = str_member(jwk, "alg");
	const char *kid = str_member(jwk, "kid");

	if (!cJSON_IsObject(jwk) || !kty) {
		*why = "a key without kty";
		return -EINVAL;
	}
	if (use && strcmp(use, "sig"))
		return 0;
	if (!strcmp(kty, "RSA"))
		k->alg = JWT_ALG_RS256;
	else if (!strcmp(kty, "EC") && crv && !strcmp(crv, "P-256"))
		k->alg = JWT_ALG_ES256;
	else if (!strcmp(kty, "OKP") && crv && !strcmp(crv, "Ed25519"))
		k->alg = JWT_ALG_EDDSA;
	else
		return 0;
	if (alg) {
		/* A key that names another alg (RS384, say) is not for us: skip it. */
		if (jwt_alg_from_name(alg) != k->alg)
			return 0;
		k->alg_named = true;
	}
	if (kid) {
		if (!kid[0] || strlen(kid) >= JWT_KID_SIZE || !printable(kid)) {
			*why = "a key's kid is empty, too long or not printable";
			return -EINVAL;
		}
		strcpy(k->kid, kid);
	}
	k->pkey = k->alg == JWT_ALG_RS256 ? rsa_key(jwk)
		: k->alg == JWT_ALG_ES256 ? ec_key(jwk) : ed25519_key(jwk);
	if (!k->pkey) {
		*why = k->alg == JWT_ALG_RS256 ? "an RSA key is malformed or shorter than 2048 bits"
			: k->alg == JWT_ALG_ES256 ? "a P-256 key is malformed or not on the curve"
			: "an Ed25519 key is malformed";
		return -EINVAL;
	}
	return 1;
}

void jwks_free(struct jwks *ks)
{
	if (!ks)
		return;
	for (size_t i = 0; i < ks->n; i++)
		EVP_PKEY_free(ks->keys[i].pkey);
	free(ks);
}

int jwks_parse(const cJSON *doc, struct jwks **out, const char **why)
{
	const cJSON *keys = json_get(doc, "keys"), *jwk;
	struct jwks *ks;

	*out = NULL;
	if (!cJSON_IsObject(doc) || !cJSON_IsArray(keys)) {
		*why = "not a JWKS: an object with a \"keys\" array";
		return -EINVAL;
	}
	if (cJSON_GetArraySize(keys) > JWKS_MAX_KEYS) {
		*why = "too many keys (64 at most)";
		return -EINVAL;
	}
	ks = xcalloc(1, sizeof(*ks));
	cJSON_ArrayForEach(jwk, keys) {
		int rc = jwk_parse(jwk, &ks->keys[ks->n], why);
		if (rc < 0) {
			jwks_free(ks);
			return rc;
		}
		if (rc > 0)
			ks->n++;
		else
			memset(&ks->keys[ks->n], 0, sizeof(ks->keys[ks->n]));
	}
	if (ks->n == 0) {
		jwks_free(ks);
		*why = "no signing key of a supported type (RSA, EC P-256, OKP Ed25519)";
		return -EINVAL;
	}
	*out = ks;
	return 0;
}

int jwks_parse_text(const char *text, size_t len, struct jwks **out, const char **why)
{
	cJSON *doc;
	int rc;

	*out = NULL;
	if (len > JWKS_MAX_TEXT) {
		*why = "the JWKS is larger than 256 KiB";
		return -EINVAL;
	}
	doc = cJSON_ParseWithLength(text, len);
	if (!doc) {
		*why = "the JWKS is not JSON";
		return -EINVAL;
	}
	rc = jwks_parse(doc, out, why);
	cJSON_Delete(doc);
	return rc;
}

size_t jwks_count(const struct jwks *ks) { return ks ? ks->n : 0; }

bool jwks_has_kid(const struct jwks *ks, const char *kid)
{
	for (size_t i = 0; ks && i < ks->n; i++)
		if (!strcmp(ks->keys[i].kid, kid))
			return true;
	return false;
}

/* --- verification ---------------------------------------------------------------------- */

/* JWS ES256 signatures are r||s, 32 bytes each; OpenSSL wants DER. */
static int es256_der(const unsigned char *sig, size_t len, unsigned char **der, size_t *der_len)
{
	ECDSA_SIG *s;
	BIGNUM *r, *sv;
	int n;

	if (len != 64)
		return -EBADMSG;
	s = ECDSA_SIG_new();
	r = BN_bin2bn(sig, 32, NULL);
	sv = BN_bin2bn(sig + 32, 32, NULL);
	if (!s || !r || !sv || !ECDSA_SIG_set0(s, r, sv)) {
		BN_free(r);
		BN_free(sv);
		ECDSA_SIG_free(s);
		return -ENOMEM;
	}
	*der = NULL;
	n = i2d_ECDSA_SIG(s, der);
	ECDSA_SIG_free(s);
	if (n <= 0)
		return -ENOMEM;
	*der_len = (size_t)n;
	return 0;
}

static bool verify_with(const struct jwt *t, EVP_PKEY *pkey)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	const unsigned char *sig = t->sig;
	unsigned char *der = NULL;
	size_t sig_len = t->sig_len;
	bool ok = false;

	if (!ctx)
		return false;
	if (t->alg == JWT_ALG_ES256) {
		if (es256_der(t->sig, t->sig_len, &der, &sig_len))
			goto out;
		sig = der;
	}
	if (EVP_DigestVerifyInit(ctx, NULL, t->alg == JWT_ALG_EDDSA ? NULL : EVP_sha256(), NULL,
				 pkey) <= 0)
		goto out;
	ok = EVP_DigestVerify(ctx, sig, sig_len, (const unsigned char *)t->signed_part,
			      t->signed_len) == 1;
out:
	OPENSSL_free(der);
	EVP_MD_CTX_free(ctx);
	return ok;
}

int jwt_verify(const struct jwt *t, const struct jwks *ks, unsigned allowed, const char **why)
{
	bool tried = false, kid_seen = false;

	if (!(t->alg & allowed)) {
		*why = "token alg not allowed";
		return -EPERM;
	}
	for (size_t i = 0; ks && i < ks->n; i++) {
		const struct jwk *k = &ks->keys[i];

		if (t->kid[0] && strcmp(t->kid, k->kid))
			continue;
		kid_seen = true;
		if (k->alg != t->alg)
			continue;
		tried = true;
		if (verify_with(t, k->pkey)) {
			*why = NULL;
			return 0;
		}
	}
	if (kid_seen && !tried) {
		*why = "token alg does not match its key";
		return -EPERM;
	}
	if (!tried) {
		*why = t->kid[0] ? "unknown kid" : "no key for the token's alg";
		return -ENOKEY;
	}
	*why = "bad signature";
	return -EBADMSG;
}
