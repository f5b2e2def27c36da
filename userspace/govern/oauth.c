/* oauth: the resource server's config and token validation (oauth.h). */
#include "base/ascii.h"
#include "govern/oauth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <openssl/evp.h>

#include "base/alloc.h"
#include "base/config.h"
#include "base/json_get.h"
#include "govern/jwt.h"

#define DEFAULT_REFRESH_MS      (15 * 60 * 1000)
#define DEFAULT_MIN_REFETCH_MS  (30 * 1000)
#define DEFAULT_SKEW_S          60

/* --- config ---------------------------------------------------------------------------- */

#define OAUTH_STR(member, flags) \
	CFG_FIELD(struct oauth_config, member, CFG_COPY, 0, 2048, CFG_NONEMPTY | (flags))

/* The section's fields: the plain ones are read and freed through this table, the others
 * (CFG_KNOWN) by oauth_config_parse and oauth_config_free themselves. */
static const struct cfg_field oauth_fields[] = {
	OAUTH_STR(issuer, CFG_REQUIRED),
	OAUTH_STR(audience, 0),
	OAUTH_STR(jwks_file, 0),
	OAUTH_STR(jwks_url, 0),
	OAUTH_STR(authorization_servers, 0),
	OAUTH_STR(subject_claim, 0),
	OAUTH_STR(team_claim, 0),
	OAUTH_STR(policy_claim, 0),
	CFG_FIELD_AS("jwks_refresh", struct oauth_config, jwks_refresh_ms, CFG_DURATION_MS,
		     10000, 86400000LL, 0),
	CFG_FIELD_AS("jwks_min_refetch", struct oauth_config, jwks_min_refetch_ms,
		     CFG_DURATION_MS, 1000, 3600000LL, 0),
	CFG_KNOWN_FIELD("clock_skew"),          /* kept in seconds */
	CFG_KNOWN_FIELD("algorithms"),
	CFG_KNOWN_FIELD("required_scopes"),
	CFG_KNOWN_FIELD("scopes_supported"),
	CFG_KNOWN_FIELD("policy_map"),
	CFG_KNOWN_FIELD("team"),
	CFG_KNOWN_FIELD("policy"),
	CFG_KNOWN_FIELD("workloads"),
	CFG_END
};

void oauth_config_free(struct oauth_config *c)
{
	if (!c)
		return;
	cfg_fields_free(oauth_fields, c);
	jwks_free(c->jwks);
	for (size_t i = 0; i < c->nrequired; i++)
		free(c->required_scopes[i]);
	for (size_t i = 0; i < c->nsupported; i++)
		free(c->scopes_supported[i]);
	free(c->policy_map_claim);
	for (size_t i = 0; i < c->nmap; i++) {
		free(c->map[i].value);
		free(c->map[i].policy);
	}
	free(c);
}

/* An optional non-empty string field, copied. */
static int opt_str(const cJSON *o, const char *key, const char *path, bool required, char **out,
		   struct config_errors *errs)
{
	const char *s = NULL;
	char p[128];
	int rc = cfg_string(o, key, path, required, &s, errs);

	if (rc)
		return rc == -ENOENT ? 0 : rc;
	snprintf(p, sizeof(p), "%s.%s", path, key);
	if (!s[0] || strlen(s) > 2048)
		return config_fail(errs, p, "must be 1-2048 characters");
	*out = xstrdup(s);
	return 0;
}

static int str_list(const cJSON *o, const char *key, char **out, size_t *n,
		    struct config_errors *errs)
{
	const cJSON *a = json_get(o, key), *v;
	char p[64];

	snprintf(p, sizeof(p), "oauth.%s", key);
	if (!a)
		return 0;
	if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) > OAUTH_SCOPES_MAX)
		return config_fail(errs, p, "must be an array of at most %d strings",
				   OAUTH_SCOPES_MAX);
	cJSON_ArrayForEach(v, a) {
		if (!cJSON_IsString(v) || !v->valuestring[0] || strlen(v->valuestring) > 256 ||
		    strpbrk(v->valuestring, " \"\\"))
			return config_fail(errs, p, "scopes are 1-256 characters without spaces, "
					   "quotes or backslashes");
		out[(*n)++] = xstrdup(v->valuestring);
	}
	return 0;
}

static int read_jwks_file(struct oauth_config *c, struct config_errors *errs)
{
	FILE *f = fopen(c->jwks_file, "re");
	char *buf = xmalloc(JWKS_MAX_TEXT + 1);
	const char *why = NULL;
	size_t n = 0;
	int rc;

	if (!f) {
		rc = config_fail(errs, "oauth.jwks_file", "cannot read %s: %s", c->jwks_file,
				 strerror(errno));
		goto out;
	}
	n = fread(buf, 1, JWKS_MAX_TEXT + 1, f);
	if (ferror(f))
		rc = config_fail(errs, "oauth.jwks_file", "cannot read %s", c->jwks_file);
	else if (n > JWKS_MAX_TEXT)
		rc = config_fail(errs, "oauth.jwks_file", "%s is larger than 256 KiB", c->jwks_file);
	else if ((rc = jwks_parse_text(buf, n, &c->jwks, &why)))
		rc = config_fail(errs, "oauth.jwks_file", "%s: %s", c->jwks_file, why);
	fclose(f);
out:
	free(buf);
	return rc;
}

static bool printable_text(const char *s)
{
	return ascii_span(s, strlen(s), false);
}

/* https://, or http:// to a loopback host (a JWKS served beside the gateway). */
static bool jwks_url_ok(const char *u)
{
	if (!strncasecmp(u, "https://", 8))
		return u[8] != '\0';
	if (strncasecmp(u, "http://", 7))
		return false;
	u += 7;
	return !strncmp(u, "127.", 4) || !strncmp(u, "[::1]", 5) ||
	       (!strncasecmp(u, "localhost", 9) && (u[9] == ':' || u[9] == '/' || !u[9]));
}

static int parse_map(struct oauth_config *c, const cJSON *m,
		     bool (*policy_exists)(void *, const char *), void *arg,
		     struct config_errors *errs)
{
	static const char *const fields[] = { "claim", "values", NULL };
	const cJSON *vals, *v;
	int rc;

	if (!cJSON_IsObject(m))
		return config_fail(errs, "oauth.policy_map", "must be an object {claim, values}");
	if ((rc = cfg_known_keys(m, "oauth.policy_map", fields, errs)))
		return rc;
	if ((rc = opt_str(m, "claim", "oauth.policy_map", true, &c->policy_map_claim, errs)))
		return rc;
	vals = json_get(m, "values");
	if (!cJSON_IsObject(vals) || cJSON_GetArraySize(vals) > OAUTH_MAP_MAX)
		return config_fail(errs, "oauth.policy_map.values", "must be an object of at most "
				   "%d claim values, each naming a policy", OAUTH_MAP_MAX);
	cJSON_ArrayForEach(v, vals) {
		char p[320];
		snprintf(p, sizeof(p), "oauth.policy_map.values.%.200s", v->string);
		if (!cJSON_IsString(v) || !keys_valid_ident(v->valuestring)) {
			rc = config_fail(errs, p, "must name a policy");
			continue;
		}
		if (policy_exists && !policy_exists(arg, v->valuestring)) {
			rc = config_fail(errs, p, "no policy \"%s\"", v->valuestring);
			continue;
		}
		c->map[c->nmap].value = xstrdup(v->string);
		c->map[c->nmap++].policy = xstrdup(v->valuestring);
	}
	return rc;
}

static int parse_ident(const cJSON *o, const char *key, char out[KEYS_ID_SIZE],
		       bool (*exists)(void *, const char *), void *arg, const char *what,
		       struct config_errors *errs)
{
	const char *s;
	char p[64];
	int rc = cfg_string(o, key, "oauth", false, &s, errs);

	if (rc)
		return rc == -ENOENT ? 0 : rc;
	snprintf(p, sizeof(p), "oauth.%s", key);
	if (!keys_valid_ident(s))
		return config_fail(errs, p, "must be 1-64 characters of [A-Za-z0-9_.-]");
	if (exists && !exists(arg, s))
		return config_fail(errs, p, "no %s \"%s\"", what, s);
	snprintf(out, KEYS_ID_SIZE, "%s", s);
	return 0;
}

int oauth_config_parse(const cJSON *root,
		       bool (*policy_exists)(void *arg, const char *name),
		       bool (*team_exists)(void *arg, const char *name), void *arg,
		       struct oauth_config **out, struct config_errors *errs)
{
	const cJSON *o = json_get(root, "oauth"), *a, *v;
	struct oauth_config *c;
	int rc = 0, x;
	int64_t ms;

	*out = NULL;
	if (!o)
		return 0;
	if (!cJSON_IsObject(o))
		return config_fail(errs, "oauth", "must be an object");
	c = xcalloc(1, sizeof(*c));
	c->algorithms = JWT_ALG_ALL;
	c->clock_skew_s = DEFAULT_SKEW_S;
	c->jwks_refresh_ms = DEFAULT_REFRESH_MS;
	c->jwks_min_refetch_ms = DEFAULT_MIN_REFETCH_MS;
	c->subject_claim = xstrdup("sub");
#define TRY(e) do { if ((x = (e))) rc = x; } while (0)
	TRY(cfg_fields(o, "oauth", oauth_fields, c, errs));
	if (!c->jwks_file == !c->jwks_url)
		TRY(config_fail(errs, "oauth", "needs exactly one of jwks_file and jwks_url"));
	if (c->jwks_url && !jwks_url_ok(c->jwks_url))
		TRY(config_fail(errs, "oauth.jwks_url", "must be https:// (http:// only to a "
				"loopback address)"));
	/* It goes into WWW-Authenticate as a quoted string: nothing that would need escaping. */
	if (c->audience && ((strncasecmp(c->audience, "https://", 8) &&
			     strncasecmp(c->audience, "http://", 7)) ||
			    strcspn(c->audience, " \"\\\x7f") != strlen(c->audience) ||
			    !printable_text(c->audience)))
		TRY(config_fail(errs, "oauth.audience", "must be this gateway's resource URI "
				"(http:// or https://, no spaces, quotes or backslashes)"));
	if ((x = cfg_duration_ms(o, "clock_skew", "oauth", false, 0, 600000LL, &ms, errs)) == 0)
		c->clock_skew_s = ms / 1000;
	else if (x != -ENOENT)
		rc = x;
	if ((a = json_get(o, "algorithms"))) {
		c->algorithms = 0;
		if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) == 0)
			TRY(config_fail(errs, "oauth.algorithms", "must be a non-empty array of "
					"\"RS256\", \"ES256\", \"EdDSA\""));
		else
			cJSON_ArrayForEach(v, a) {
				unsigned alg = cJSON_IsString(v) ? jwt_alg_from_name(v->valuestring) : 0;
				if (!alg)
					TRY(config_fail(errs, "oauth.algorithms", "only \"RS256\", "
							"\"ES256\" and \"EdDSA\" (got %.64s)",
							cJSON_IsString(v) ? v->valuestring : "a non-string"));
				c->algorithms |= alg;
			}
	}
	TRY(str_list(o, "required_scopes", c->required_scopes, &c->nrequired, errs));
	TRY(str_list(o, "scopes_supported", c->scopes_supported, &c->nsupported, errs));
	if ((a = json_get(o, "policy_map")))
		TRY(parse_map(c, a, policy_exists, arg, errs));
	TRY(parse_ident(o, "team", c->team, team_exists, arg, "team", errs));
	TRY(parse_ident(o, "policy", c->policy, policy_exists, arg, "policy", errs));
	if (!c->team[0] && !c->policy[0] && !c->team_claim && !c->policy_claim && !c->nmap)
		TRY(config_fail(errs, "oauth", "no way to give a token a policy: set policy or "
				"team, or team_claim, policy_claim or policy_map"));
	if ((a = json_get(o, "workloads"))) {
		const char *why = NULL;
		if (keys_workloads_from_json(a, keys_config_pod_watch(root), c->workloads, &why))
			TRY(config_fail(errs, "oauth.workloads", "%s", why ? why : "invalid"));
	}
	if (rc == 0 && c->jwks_file)
		TRY(read_jwks_file(c, errs));
#undef TRY
	if (rc) {
		oauth_config_free(c);
		return rc;
	}
	*out = c;
	return 0;
}

/* --- resource and metadata --------------------------------------------------------------- */

int oauth_default_resource(const char *host, int port, const char *path, char *out, size_t len)
{
	bool v6 = strchr(host, ':') != NULL;
	int n = snprintf(out, len, "http://%s%s%s:%d%s", v6 ? "[" : "", host, v6 ? "]" : "", port,
			 path);

	return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}

int oauth_metadata_url(const char *resource, char *out, size_t len)
{
	const char *p = strstr(resource, "://"), *path;
	int n;

	if (!p)
		return -EINVAL;
	path = strchr(p + 3, '/');
	if (!path)
		path = "";
	if (!strcmp(path, "/"))
		path = "";
	n = snprintf(out, len, "%.*s/.well-known/oauth-protected-resource%s",
		     (int)(path[0] ? path - resource : (ptrdiff_t)strlen(resource)), resource, path);
	return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}

cJSON *oauth_metadata(const struct oauth_config *c, const char *resource)
{
	cJSON *m = cJSON_CreateObject(), *a;

	cJSON_AddStringToObject(m, "resource", resource);
	a = cJSON_AddArrayToObject(m, "authorization_servers");
	cJSON_AddItemToArray(a, cJSON_CreateString(c->authorization_servers
						    ? c->authorization_servers : c->issuer));
	a = cJSON_AddArrayToObject(m, "scopes_supported");
	for (size_t i = 0; i < (c->nsupported ? c->nsupported : c->nrequired); i++)
		cJSON_AddItemToArray(a, cJSON_CreateString(c->nsupported ? c->scopes_supported[i]
							   : c->required_scopes[i]));
	a = cJSON_AddArrayToObject(m, "bearer_methods_supported");
	cJSON_AddItemToArray(a, cJSON_CreateString("header"));
	a = cJSON_AddArrayToObject(m, "resource_signing_alg_values_supported");
	for (unsigned alg = 1; alg & JWT_ALG_ALL; alg <<= 1)
		if (c->algorithms & alg)
			cJSON_AddItemToArray(a, cJSON_CreateString(jwt_alg_name(alg)));
	return m;
}

/* --- validation ------------------------------------------------------------------------ */

/* Is word one of the space-separated words of list? */
static bool has_word(const char *list, const char *word)
{
	size_t n = strlen(word);

	for (const char *p = list; (p = strstr(p, word)); p += n)
		if ((p == list || p[-1] == ' ') && (p[n] == ' ' || !p[n]))
			return true;
	return false;
}

/* Does the claim hold value: a string (a space-separated list when it is "scope"), or an
 * array of strings? */
static bool claim_has(const cJSON *claim, const char *value, bool spaced)
{
	const cJSON *v;

	if (cJSON_IsString(claim))
		return spaced ? has_word(claim->valuestring, value)
			      : !strcmp(claim->valuestring, value);
	if (!cJSON_IsArray(claim))
		return false;
	cJSON_ArrayForEach(v, claim)
		if (cJSON_IsString(v) && !strcmp(v->valuestring, value))
			return true;
	return false;
}

static bool scope_has(const cJSON *claims, const char *scope)
{
	return claim_has(json_get(claims, "scope"), scope, true) ||
	       claim_has(json_get(claims, "scp"), scope, true);
}

/* A NumericDate claim: 1 present (*out), 0 absent, -1 malformed. */
static int numeric_date(const cJSON *claims, const char *name, int64_t *out)
{
	const cJSON *v = json_get(claims, name);

	if (!v)
		return 0;
	if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble < 1e13))
		return -1;
	*out = (int64_t)v->valuedouble;
	return 1;
}

/* The subject as an identity: "oauth:<sub>" when sub is a short identifier, else
 * "oauth:" and 24 hex digits of its SHA-256 (stable, and no subject can pose as another). */
static int subject_identity(const char *sub, struct key_identity *who)
{
	unsigned char md[32];
	unsigned int mdlen = 0;

	if (strlen(sub) <= KEYS_ID_SIZE - 1 - strlen(OAUTH_ID_PREFIX) && keys_valid_ident(sub)) {
		snprintf(who->id, sizeof(who->id), OAUTH_ID_PREFIX "%s", sub);
	} else {
		if (!EVP_Digest(sub, strlen(sub), md, &mdlen, EVP_sha256(), NULL))
			return -EIO;
		int n = snprintf(who->id, sizeof(who->id), OAUTH_ID_PREFIX "~");
		for (int i = 0; i < 12; i++)
			n += snprintf(who->id + n, sizeof(who->id) - (size_t)n, "%02x", md[i]);
	}
	/* The display name is the subject itself, cut to what a name holds, printable only. */
	size_t i = 0;
	for (; sub[i] && i < sizeof(who->name) - 1; i++)
		who->name[i] = (unsigned char)sub[i] < 0x20 || sub[i] == 0x7f ? '?' : sub[i];
	who->name[i] = '\0';
	return 0;
}

static bool ident_claim(const cJSON *claims, const char *name, char out[KEYS_ID_SIZE])
{
	const cJSON *v = json_get(claims, name);

	if (!cJSON_IsString(v) || !keys_valid_ident(v->valuestring))
		return false;
	snprintf(out, KEYS_ID_SIZE, "%s", v->valuestring);
	return true;
}

static enum oauth_result map_claims(const struct oauth_config *c, const cJSON *claims,
				    struct key_identity *who, const char **why)
{
	memcpy(who->team, c->team, sizeof(who->team));
	memcpy(who->policy, c->policy, sizeof(who->policy));
	if (c->team_claim && json_get(claims, c->team_claim) &&
	    !ident_claim(claims, c->team_claim, who->team)) {
		*why = "the token's team claim is not a team name";
		return OAUTH_NO_POLICY;
	}
	if (c->policy_claim && json_get(claims, c->policy_claim)) {
		if (!ident_claim(claims, c->policy_claim, who->policy)) {
			*why = "the token's policy claim is not a policy name";
			return OAUTH_NO_POLICY;
		}
		return OAUTH_OK;
	}
	if (c->nmap) {
		const cJSON *v = json_get(claims, c->policy_map_claim);
		bool spaced = !strcmp(c->policy_map_claim, "scope") ||
			      !strcmp(c->policy_map_claim, "scp");
		for (size_t i = 0; v && i < c->nmap; i++)
			if (claim_has(v, c->map[i].value, spaced)) {
				snprintf(who->policy, sizeof(who->policy), "%s", c->map[i].policy);
				break;
			}
	}
	return OAUTH_OK;
}

enum oauth_result oauth_authenticate(const struct oauth_config *c, const struct jwks *ks,
				     const char *resource, const char *token, size_t len,
				     int64_t now, struct key_identity *who, const char **why)
{
	struct jwt t;
	enum oauth_result r = OAUTH_INVALID;
	int64_t exp = 0, nbf = 0, iat = 0;
	const cJSON *v;
	int rc;

	memset(who, 0, sizeof(*who));
	if (jwt_parse(token, len, &t, why))
		goto out;
	if (!ks) {
		*why = "the issuer's keys are not loaded yet";
		r = OAUTH_UNAVAILABLE;
		goto out;
	}
	rc = jwt_verify(&t, ks, c->algorithms, why);
	if (rc == -ENOKEY && t.kid[0])
		r = OAUTH_UNKNOWN_KID;
	if (rc)
		goto out;
	/* Signed by the issuer's key: now what it says. */
	v = json_get(t.claims, "iss");
	if (!cJSON_IsString(v) || strcmp(v->valuestring, c->issuer)) {
		*why = "wrong issuer";
		goto out;
	}
	if (!claim_has(json_get(t.claims, "aud"), resource, false)) {
		*why = "the token is not for this resource (aud)";
		goto out;
	}
	/* The issuer's token for us: from here on a refusal names its subject in the record. */
	v = json_get(t.claims, c->subject_claim);
	if (!cJSON_IsString(v) || !v->valuestring[0] || strlen(v->valuestring) > 1024) {
		*why = "the token names no subject";
		goto out;
	}
	if (subject_identity(v->valuestring, who)) {
		*why = "internal error";
		goto out;
	}
	if (numeric_date(t.claims, "exp", &exp) != 1) {
		*why = "the token has no valid exp";
		goto out;
	}
	if (now >= exp + c->clock_skew_s) {
		*why = "the token has expired";
		goto out;
	}
	rc = numeric_date(t.claims, "nbf", &nbf);
	if (rc < 0 || (rc == 1 && now + c->clock_skew_s < nbf)) {
		*why = "the token is not valid yet (nbf)";
		goto out;
	}
	rc = numeric_date(t.claims, "iat", &iat);
	if (rc < 0 || (rc == 1 && iat > now + c->clock_skew_s)) {
		*why = "the token was issued in the future (iat)";
		goto out;
	}
	for (size_t i = 0; i < c->nrequired; i++)
		if (!scope_has(t.claims, c->required_scopes[i])) {
			*why = "a required scope is missing";
			r = OAUTH_INSUFFICIENT_SCOPE;
			goto out;
		}
	r = map_claims(c, t.claims, who, why);
	if (r == OAUTH_OK) {
		memcpy(who->workloads, c->workloads, sizeof(who->workloads));
		who->expires = exp;
		*why = NULL;
	}
out:
	jwt_clear(&t);
	if (r != OAUTH_OK) {
		char keep[KEYS_ID_SIZE];
		/* A refusal after the signature names the subject for the record. */
		memcpy(keep, who->id, sizeof(keep));
		memset(who, 0, sizeof(*who));
		memcpy(who->id, keep, sizeof(keep));
	}
	return r;
}
