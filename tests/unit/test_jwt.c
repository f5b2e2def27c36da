/* JWT and OAuth: strict base64url, compact JWS parsing and its refusals (none, HS256, crit,
 * sizes), JWKS parsing (skipped and malformed keys), signatures of keys made here by OpenSSL
 * (RS256, ES256, EdDSA; tampering, wrong kid, alg not the key's), and the resource server's
 * claim checks (iss, aud, exp/nbf/iat with skew, scope, team/policy mapping, long subjects). */
#include <CUnit/Basic.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>

#include "base/base64.h"
#include "base/config.h"
#include "govern/jwt.h"
#include "govern/oauth.h"
#include "cunit_main.h"

#define NOW 1800000000LL

static EVP_PKEY *rsa, *ec, *ed;

static int setup(void)
{
	rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	return rsa && ec && ed ? 0 : -1;
}

static int teardown(void)
{
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(ec);
	EVP_PKEY_free(ed);
	return 0;
}

static void b64u(const unsigned char *in, size_t len, char *out)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t o = 0;
	unsigned acc = 0;
	int bits = 0;

	for (size_t i = 0; i < len; i++) {
		acc = (acc << 8) | in[i];
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			out[o++] = a[(acc >> bits) & 63];
		}
	}
	if (bits)
		out[o++] = a[(acc << (6 - bits)) & 63];
	out[o] = '\0';
}

static void b64u_str(const char *s, char *out) { b64u((const unsigned char *)s, strlen(s), out); }

static void bn_b64u(EVP_PKEY *k, const char *param, char *out)
{
	BIGNUM *bn = NULL;
	unsigned char buf[600];

	CU_ASSERT_FATAL(EVP_PKEY_get_bn_param(k, param, &bn) == 1);
	int n = BN_bn2bin(bn, buf);
	b64u(buf, (size_t)n, out);
	BN_free(bn);
}

/* The public JWK of k with kid (and alg when not NULL), as JSON text in out. */
static void jwk_of(EVP_PKEY *k, const char *kid, const char *alg, char *out, size_t len)
{
	char a[900], b[900], al[64] = "";

	if (alg)
		snprintf(al, sizeof(al), ",\"alg\":\"%s\"", alg);
	if (k == rsa) {
		bn_b64u(k, OSSL_PKEY_PARAM_RSA_N, a);
		bn_b64u(k, OSSL_PKEY_PARAM_RSA_E, b);
		snprintf(out, len, "{\"kty\":\"RSA\",\"kid\":\"%s\",\"n\":\"%s\",\"e\":\"%s\"%s}", kid,
			 a, b, al);
	} else if (k == ec) {
		unsigned char pub[65];
		size_t pl = 0;
		CU_ASSERT_FATAL(EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, pub,
								sizeof(pub), &pl) == 1);
		CU_ASSERT_FATAL(pl == 65);
		b64u(pub + 1, 32, a);
		b64u(pub + 33, 32, b);
		snprintf(out, len, "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"%s\",\"x\":\"%s\","
			 "\"y\":\"%s\"%s}", kid, a, b, al);
	} else {
		unsigned char pub[32];
		size_t pl = sizeof(pub);
		CU_ASSERT_FATAL(EVP_PKEY_get_raw_public_key(k, pub, &pl) == 1);
		b64u(pub, pl, a);
		snprintf(out, len, "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"%s\",\"x\":\"%s\"%s}",
			 kid, a, al);
	}
}

static struct jwks *keyset(const char *text)
{
	struct jwks *ks = NULL;
	const char *why = NULL;
	int rc = jwks_parse_text(text, strlen(text), &ks, &why);

	if (rc)
		fprintf(stderr, "jwks: %s\n", why);
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	return ks;
}

/* The three test keys, kids "rs", "es", "ed". */
static struct jwks *all_keys(void)
{
	char r[2048], e[512], d[512], text[4096];

	jwk_of(rsa, "rs", "RS256", r, sizeof(r));
	jwk_of(ec, "es", NULL, e, sizeof(e));
	jwk_of(ed, "ed", "EdDSA", d, sizeof(d));
	snprintf(text, sizeof(text), "{\"keys\":[%s,%s,%s]}", r, e, d);
	return keyset(text);
}

/* A token: header JSON and claims JSON, signed with k as alg (raw r||s for ES256). */
static char *token(EVP_PKEY *k, const char *header, const char *claims)
{
	char *t = malloc(8192), sig64[1024];
	unsigned char sig[512];
	size_t sl = sizeof(sig);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int n;

	b64u_str(header, t);
	n = (int)strlen(t);
	t[n++] = '.';
	b64u_str(claims, t + n);
	CU_ASSERT_FATAL(EVP_DigestSignInit(ctx, NULL, k == ed ? NULL : EVP_sha256(), NULL, k) == 1);
	CU_ASSERT_FATAL(EVP_DigestSign(ctx, sig, &sl, (unsigned char *)t, strlen(t)) == 1);
	EVP_MD_CTX_free(ctx);
	if (k == ec) {
		const unsigned char *p = sig;
		ECDSA_SIG *s = d2i_ECDSA_SIG(NULL, &p, (long)sl);
		CU_ASSERT_FATAL(s != NULL);
		BN_bn2binpad(ECDSA_SIG_get0_r(s), sig, 32);
		BN_bn2binpad(ECDSA_SIG_get0_s(s), sig + 32, 32);
		sl = 64;
		ECDSA_SIG_free(s);
	}
	b64u(sig, sl, sig64);
	n = (int)strlen(t);
	snprintf(t + n, 8192 - (size_t)n, ".%s", sig64);
	return t;
}

static int verify(const char *tok, const struct jwks *ks, unsigned allowed)
{
	struct jwt t;
	const char *why;
	int rc = jwt_parse(tok, strlen(tok), &t, &why);

	if (rc == 0)
		rc = jwt_verify(&t, ks, allowed, &why);
	jwt_clear(&t);
	return rc;
}

static void test_b64url(void)
{
	/* base64url unpadded (JWS), and the standard alphabet padded (MCP's header sentinel):
	 * the same strictness, one encoding per byte string. NULL out: -EINVAL. */
	static const struct { bool url; const char *in, *out; } cases[] = {
		{ true, "aGk", "hi" },
		{ true, "", "" },
		{ true, "-_-_", "\xfb\xff\xbf" },
		{ true, "aGk=", NULL },         /* no padding */
		{ true, "a+/a", NULL },         /* not base64url */
		{ true, "a", NULL },            /* no such length */
		{ true, "aGl", NULL },          /* stray bits set */
		{ false, "aGk=", "hi" },
		{ false, "aA==", "h" },
		{ false, "+/+/", "\xfb\xff\xbf" },
		{ false, "", "" },
		{ false, "aGk", NULL },         /* padding required */
		{ false, "-_-_", NULL },        /* not the standard alphabet */
		{ false, "aB==", NULL },        /* bits under the padding */
		{ false, "aGl=", NULL },
		{ false, "a===", NULL },        /* '=' only as the last two */
		{ false, "a=Gk", NULL },
		{ false, "aG k", NULL },        /* no whitespace */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		unsigned char out[16];
		size_t n = 0, len = strlen(cases[i].in);
		int rc = cases[i].url ? base64url_decode(cases[i].in, len, out, &n)
				      : base64_decode(cases[i].in, len, out, &n);

		if (!cases[i].out) {
			CU_ASSERT_EQUAL(rc, -EINVAL);
			continue;
		}
		CU_ASSERT_EQUAL(rc, 0);
		CU_ASSERT_EQUAL(n, strlen(cases[i].out));
		CU_ASSERT_EQUAL(memcmp(out, cases[i].out, n), 0);
	}
	CU_ASSERT_TRUE(jwt_looks_like("a.b.c", 5));
	CU_ASSERT_FALSE(jwt_looks_like("a.b.", 4));
	CU_ASSERT_FALSE(jwt_looks_like(".b.c", 4));
	CU_ASSERT_FALSE(jwt_looks_like("a.b.c.d", 7));
	CU_ASSERT_FALSE(jwt_looks_like("mcpw_AAAA", 9));
	CU_ASSERT_FALSE(jwt_looks_like("a b.c.d", 7));
}

static void expect_parse_error(const char *header, const char *claims, const char *sig)
{
	char h[512], c[512], t[1200];
	struct jwt j;
	const char *why = NULL;

	b64u_str(header, h);
	b64u_str(claims, c);
	snprintf(t, sizeof(t), "%s.%s.%s", h, c, sig);
	CU_ASSERT_EQUAL(jwt_parse(t, strlen(t), &j, &why), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(why);
	jwt_clear(&j);
}

static void test_parse_refusals(void)
{
	expect_parse_error("{\"alg\":\"none\"}", "{}", "AA");
	expect_parse_error("{\"alg\":\"HS256\"}", "{}", "AA");
	expect_parse_error("{\"alg\":\"RS384\"}", "{}", "AA");
	expect_parse_error("{}", "{}", "AA");
	expect_parse_error("{\"alg\":\"ES256\",\"crit\":[\"b64\"]}", "{}", "AA");
	expect_parse_error("{\"alg\":\"ES256\",\"kid\":7}", "{}", "AA");
	expect_parse_error("{\"alg\":\"ES256\",\"kid\":\"\"}", "{}", "AA");
	expect_parse_error("[\"alg\"]", "{}", "AA");
	expect_parse_error("{\"alg\":\"ES256\"}", "[]", "AA");
	expect_parse_error("{\"alg\":\"ES256\"}", "not json", "AA");
	expect_parse_error("{\"alg\":\"ES256\"}", "{}", "A");   /* signature length */

	/* Too long for a token. */
	char *big = malloc(JWT_MAX_LEN + 16);
	struct jwt j;
	const char *why;
	memset(big, 'A', JWT_MAX_LEN + 8);
	big[10] = big[20] = '.';
	CU_ASSERT_EQUAL(jwt_parse(big, JWT_MAX_LEN + 8, &j, &why), -EINVAL);
	jwt_clear(&j);
	free(big);
}

static void test_jwks(void)
{
	struct jwks *ks = NULL;
	const char *why = NULL;
	char e[512], text[2048];

#define BAD(s) do { CU_ASSERT_EQUAL(jwks_parse_text(s, strlen(s), &ks, &why), -EINVAL); \
		CU_ASSERT_PTR_NULL(ks); } while (0)
	BAD("[]");
	BAD("{\"keys\":{}}");
	BAD("{\"keys\":[]}");
	BAD("{\"keys\":[{\"kty\":\"oct\",\"k\":\"AAAA\"}]}");           /* symmetric: skipped */
	BAD("{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AAAA\",\"y\":\"AAAA\"}]}");
	BAD("{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"AAAA\"}]}");
	BAD("{\"keys\":[{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}");   /* 17 bits */
	BAD("{\"keys\":[{\"n\":\"AQAB\"}]}");
	/* A 2048-bit modulus with e = 1. */
	{
		char n[400], text2[600];
		unsigned char m[256];
		memset(m, 0xc5, sizeof(m));
		b64u(m, sizeof(m), n);
		snprintf(text2, sizeof(text2), "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"AQ\"}]}", n);
		BAD(text2);
	}
	/* A point not on the curve. */
	BAD("{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\","
	    "\"x\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE\","
	    "\"y\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE\"}]}");
#undef BAD
	/* Encryption keys and other algs are skipped, the signing key kept. */
	jwk_of(ec, "es", NULL, e, sizeof(e));
	snprintf(text, sizeof(text), "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"A\"},"
		 "{\"kty\":\"RSA\",\"use\":\"enc\",\"n\":\"A\",\"e\":\"A\"},%s]}", e);
	ks = keyset(text);
	CU_ASSERT_EQUAL(jwks_count(ks), 1);
	CU_ASSERT_TRUE(jwks_has_kid(ks, "es"));
	CU_ASSERT_FALSE(jwks_has_kid(ks, "rs"));
	jwks_free(ks);
}

static void test_signatures(void)
{
	struct jwks *ks = all_keys();
	const char *claims = "{\"sub\":\"x\"}";
	char *rs = token(rsa, "{\"alg\":\"RS256\",\"kid\":\"rs\"}", claims);
	char *es = token(ec, "{\"alg\":\"ES256\",\"kid\":\"es\"}", claims);
	char *edt = token(ed, "{\"alg\":\"EdDSA\",\"kid\":\"ed\"}", claims);
	char *nokid = token(ec, "{\"alg\":\"ES256\"}", claims);
	char *unknown = token(ec, "{\"alg\":\"ES256\",\"kid\":\"zz\"}", claims);
	/* Signed by the EC key but claiming the RSA key's kid: the alg is not that key's. */
	char *mismatch = token(ec, "{\"alg\":\"ES256\",\"kid\":\"rs\"}", claims);
	/* Signed by the Ed25519 key under the EC key's kid and alg: a bad signature. */
	char *wrongkey = token(ed, "{\"alg\":\"EdDSA\",\"kid\":\"es\"}", claims);

	CU_ASSERT_EQUAL(verify(rs, ks, JWT_ALG_ALL), 0);
	CU_ASSERT_EQUAL(verify(es, ks, JWT_ALG_ALL), 0);
	CU_ASSERT_EQUAL(verify(edt, ks, JWT_ALG_ALL), 0);
	CU_ASSERT_EQUAL(verify(nokid, ks, JWT_ALG_ALL), 0);
	CU_ASSERT_EQUAL(verify(unknown, ks, JWT_ALG_ALL), -ENOKEY);
	CU_ASSERT_EQUAL(verify(mismatch, ks, JWT_ALG_ALL), -EPERM);
	CU_ASSERT_EQUAL(verify(wrongkey, ks, JWT_ALG_ALL), -EPERM);
	CU_ASSERT_EQUAL(verify(rs, ks, JWT_ALG_ES256 | JWT_ALG_EDDSA), -EPERM);

	/* Any change to what was signed breaks it: other claims under the same signature, or
	 * another signature. */
	for (char **t = (char *[]){ rs, es, edt, NULL }; *t; t++) {
		char *d2 = strrchr(*t, '.');
		char *hdr = *t == rs ? "{\"alg\":\"RS256\",\"kid\":\"rs\"}"
			  : *t == es ? "{\"alg\":\"ES256\",\"kid\":\"es\"}"
			  : "{\"alg\":\"EdDSA\",\"kid\":\"ed\"}";
		char *other = token(*t == rs ? rsa : *t == es ? ec : ed, hdr, "{\"sub\":\"y\"}");
		char *od2 = strrchr(other, '.'), swapped[8192];
		snprintf(swapped, sizeof(swapped), "%.*s%s", (int)(od2 - other), other, d2);
		CU_ASSERT_EQUAL(verify(swapped, ks, JWT_ALG_ALL), -EBADMSG);
		d2[3] = d2[3] == 'A' ? 'B' : 'A';
		CU_ASSERT_EQUAL(verify(*t, ks, JWT_ALG_ALL), -EBADMSG);
		free(other);
	}
	free(rs); free(es); free(edt); free(nokid); free(unknown); free(mismatch); free(wrongkey);
	jwks_free(ks);
}

static struct oauth_config *oauth(const char *section)
{
	char text[2048];
	struct oauth_config *c = NULL;
	struct config_errors errs = { 0 };
	cJSON *root;

	snprintf(text, sizeof(text), "{\"oauth\":%s}", section);
	root = cJSON_Parse(text);
	CU_ASSERT_PTR_NOT_NULL_FATAL(root);
	int rc = oauth_config_parse(root, NULL, NULL, NULL, &c, &errs);
	for (int i = 0; i < errs.count; i++)
		fprintf(stderr, "%s\n", errs.msg[i]);
	cJSON_Delete(root);
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	return c;
}

static void test_config_errors(void)
{
	static const struct { const char *section, *want; } cases[] = {
		{ "{\"jwks_url\":\"https://i/k\",\"policy\":\"p\"}", "oauth.issuer" },
		{ "{\"issuer\":\"i\",\"policy\":\"p\"}", "exactly one of jwks_file and jwks_url" },
		{ "{\"issuer\":\"i\",\"jwks_url\":\"http://idp.example/k\",\"policy\":\"p\"}",
		  "oauth.jwks_url" },
		{ "{\"issuer\":\"i\",\"jwks_url\":\"https://i/k\"}", "no way to give a token a policy" },
		{ "{\"issuer\":\"i\",\"jwks_url\":\"https://i/k\",\"policy\":\"p\",\"algorithms\":"
		  "[\"HS256\"]}", "oauth.algorithms" },
		{ "{\"issuer\":\"i\",\"jwks_url\":\"https://i/k\",\"policy\":\"p\",\"audince\":\"x\"}",
		  "audince" },
		{ "{\"issuer\":\"i\",\"jwks_file\":\"/nonexistent/jwks.json\",\"policy\":\"p\"}",
		  "oauth.jwks_file" },
		{ "{\"issuer\":\"i\",\"jwks_url\":\"https://i/k\",\"policy\":\"p\",\"audience\":"
		  "\"https://gw/\\\"x\"}", "oauth.audience" },
		{ "{\"issuer\":\"i\",\"jwks_url\":\"https://i/k\",\"policy_map\":{\"claim\":\"groups\","
		  "\"values\":{\"admins\":\"bad policy\"}}}", "oauth.policy_map.values.admins" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[1024];
		struct oauth_config *c = NULL;
		struct config_errors errs = { 0 };
		snprintf(text, sizeof(text), "{\"oauth\":%s}", cases[i].section);
		cJSON *root = cJSON_Parse(text);
		CU_ASSERT_EQUAL(oauth_config_parse(root, NULL, NULL, NULL, &c, &errs), -EINVAL);
		CU_ASSERT_PTR_NULL(c);
		bool found = false;
		for (int e = 0; e < errs.count; e++)
			found |= strstr(errs.msg[e], cases[i].want) != NULL;
		if (!found)
			fprintf(stderr, "case %zu: no error mentions %s\n", i, cases[i].want);
		CU_ASSERT_TRUE(found);
		cJSON_Delete(root);
	}
}

static enum oauth_result auth(const struct oauth_config *c, const struct jwks *ks,
			      const char *claims, struct key_identity *who)
{
	char *t = token(ec, "{\"alg\":\"ES256\",\"kid\":\"es\"}", claims);
	const char *why = NULL;
	enum oauth_result r = oauth_authenticate(c, ks, "https://gw/mcp", t, strlen(t), NOW, who,
						 &why);
	free(t);
	return r;
}

static void test_claims(void)
{
	struct jwks *ks = all_keys();
	struct oauth_config *c = oauth("{\"issuer\":\"https://idp\",\"jwks_url\":\"https://idp/k\","
		"\"clock_skew\":\"30s\",\"required_scopes\":[\"mcp\"],\"team_claim\":\"team\","
		"\"policy_map\":{\"claim\":\"groups\",\"values\":{\"admins\":\"p-admin\","
		"\"devs\":\"p-dev\"}},\"policy\":\"p-default\"}");
	struct key_identity who;
	char cl[1024];
#define CLAIMS(extra) (snprintf(cl, sizeof(cl), "{\"iss\":\"https://idp\",\"aud\":" \
		"[\"other\",\"https://gw/mcp\"],\"sub\":\"alice\",\"exp\":%lld,\"scope\":\"a mcp\"%s}", \
		NOW + 100, extra), cl)

	CU_ASSERT_EQUAL(auth(c, ks, CLAIMS(""), &who), OAUTH_OK);
	CU_ASSERT_STRING_EQUAL(who.id, "oauth:alice");
	CU_ASSERT_STRING_EQUAL(who.name, "alice");
	CU_ASSERT_STRING_EQUAL(who.policy, "p-default");
	CU_ASSERT_STRING_EQUAL(who.team, "");
	CU_ASSERT_EQUAL(who.expires, NOW + 100);
	CU_ASSERT_EQUAL(auth(c, ks, CLAIMS(",\"team\":\"blue\",\"groups\":[\"x\",\"devs\"]"), &who),
			OAUTH_OK);
	CU_ASSERT_STRING_EQUAL(who.team, "blue");
	CU_ASSERT_STRING_EQUAL(who.policy, "p-dev");
	CU_ASSERT_EQUAL(auth(c, ks, CLAIMS(",\"team\":\"no spaces allowed\""), &who),
			OAUTH_NO_POLICY);
	/* Without the ES256 key: not loaded / an unknown kid. */
	CU_ASSERT_EQUAL(auth(c, NULL, CLAIMS(""), &who), OAUTH_UNAVAILABLE);

	snprintf(cl, sizeof(cl), "{\"iss\":\"https://idp\",\"aud\":\"https://gw/mcp\",\"sub\":\"a\","
		 "\"exp\":%lld,\"scp\":[\"mcp\"]}", NOW - 29);     /* within the skew */
	CU_ASSERT_EQUAL(auth(c, ks, cl, &who), OAUTH_OK);
	snprintf(cl, sizeof(cl), "{\"iss\":\"https://idp\",\"aud\":\"https://gw/mcp\",\"sub\":\"a\","
		 "\"exp\":%lld,\"scp\":[\"mcp\"]}", NOW - 30);
	CU_ASSERT_EQUAL(auth(c, ks, cl, &who), OAUTH_INVALID);
	CU_ASSERT_STRING_EQUAL(who.id, "oauth:a");     /* the record names the subject */
	CU_ASSERT_EQUAL(auth(c, ks, CLAIMS(",\"nbf\":1900000000"), &who), OAUTH_INVALID);
	CU_ASSERT_EQUAL(auth(c, ks, CLAIMS(",\"iat\":1900000000"), &who), OAUTH_INVALID);
	CU_ASSERT_EQUAL(auth(c, ks, CLAIMS(",\"nbf\":\"soon\""), &who), OAUTH_INVALID);
	snprintf(cl, sizeof(cl), "{\"iss\":\"https://idp/\",\"aud\":\"https://gw/mcp\",\"sub\":\"a\","
		 "\"exp\":%lld,\"scope\":\"mcp\"}", NOW + 10);    /* issuer compared exactly */
	CU_ASSERT_EQUAL(auth(c, ks, cl, &who), OAUTH_INVALID);
	CU_ASSERT_STRING_EQUAL(who.id, "");
	snprintf(cl, sizeof(cl), "{\"iss\":\"https://idp\",\"aud\":\"https://gw/mcp/\",\"sub\":\"a\","
		 "\"exp\":%lld,\"scope\":\"mcp\"}", NOW + 10);
	CU_ASSERT_EQUAL(auth(c, ks, cl, &who), OAUTH_INVALID);
	snprintf(cl, sizeof(cl), "{\"iss\":\"https://idp\",\"aud\":\"https://gw/mcp\",\"sub\":\"a\","
		 "\"scope\":\"mcp\"}");                           /* no exp */
	CU_ASSERT_EQUAL(auth(c, ks, cl, &who), OAUTH_INVALID);
	snprintf(cl, sizeof(cl), "{\"iss\":\"https://idp\",\"aud\":\"https://gw/mcp\",\"sub\":\"a\","
		 "\"exp\":%lld,\"scope\":\"mcpx amcp\"}", NOW + 10);
	CU_ASSERT_EQUAL(auth(c, ks, cl, &who), OAUTH_INSUFFICIENT_SCOPE);
	snprintf(cl, sizeof(cl), "{\"iss\":\"https://idp\",\"aud\":\"https://gw/mcp\",\"exp\":%lld,"
		 "\"scope\":\"mcp\"}", NOW + 10);                  /* no subject */
	CU_ASSERT_EQUAL(auth(c, ks, cl, &who), OAUTH_INVALID);
	/* A subject that is no identifier: a digest of it, the name keeps it. */
	snprintf(cl, sizeof(cl), "{\"iss\":\"https://idp\",\"aud\":\"https://gw/mcp\",\"sub\":"
		 "\"user@example.com\",\"exp\":%lld,\"scope\":\"mcp\"}", NOW + 10);
	CU_ASSERT_EQUAL(auth(c, ks, cl, &who), OAUTH_OK);
	CU_ASSERT_EQUAL(strncmp(who.id, "oauth:~", 7), 0);
	CU_ASSERT_EQUAL(strlen(who.id), 7 + 24);
	CU_ASSERT_STRING_EQUAL(who.name, "user@example.com");
#undef CLAIMS
	oauth_config_free(c);
	jwks_free(ks);
}

static void test_metadata(void)
{
	char out[256];

	CU_ASSERT_EQUAL(oauth_metadata_url("https://gw.example/mcp", out, sizeof(out)), 0);
	CU_ASSERT_STRING_EQUAL(out, "https://gw.example/.well-known/oauth-protected-resource/mcp");
	CU_ASSERT_EQUAL(oauth_metadata_url("https://gw.example", out, sizeof(out)), 0);
	CU_ASSERT_STRING_EQUAL(out, "https://gw.example/.well-known/oauth-protected-resource");
	CU_ASSERT_EQUAL(oauth_default_resource("::1", 8080, "/mcp", out, sizeof(out)), 0);
	CU_ASSERT_STRING_EQUAL(out, "http://[::1]:8080/mcp");
}

CU_MAIN("jwt", setup, teardown,
	{ "base64url, strict", test_b64url },
	{ "parse refusals: none, HS256, crit, sizes", test_parse_refusals },
	{ "JWKS: kept, skipped and malformed keys", test_jwks },
	{ "signatures: RS256, ES256, EdDSA, tampering, kid, alg", test_signatures },
	{ "oauth config errors name their field", test_config_errors },
	{ "oauth claims: iss, aud, times, scope, team and policy", test_claims },
	{ "oauth metadata and resource URLs", test_metadata })
