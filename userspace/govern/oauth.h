/* oauth: the gateway as an OAuth 2.1 resource server (MCP authorization, 2025-11-25).
 *
 * An agent may present, instead of a virtual key, an access token its identity provider issued
 * for this gateway: a JWT (govern/jwt.h) checked against the issuer's JWKS. The token must be
 * signed by one of the issuer's keys with an allowed alg, name the configured issuer ("iss"),
 * this gateway's resource URI among its audiences ("aud", RFC 8707), be within exp/nbf/iat
 * (with a clock skew), name a subject and hold every required scope. The subject becomes the
 * caller's identity "oauth:<sub>", governed like a key: its team and policy come from claims
 * (team_claim, policy_claim, policy_map) or the configured defaults, and budgets, rate limits
 * and records key on that identity. Refusals follow RFC 6750: 401 invalid_token, 403
 * insufficient_scope, each with the RFC 9728 resource_metadata URL.
 *
 * The config (section "oauth") is parsed where reading may block (start-up, the reload
 * thread): a jwks_file is read then. A jwks_url is fetched on the loop (govern/oauth_jwks.h).
 * Immutable once parsed: safe to read from any thread.
 */
#ifndef WARDEN_OAUTH_H
#define WARDEN_OAUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

#include "govern/keys.h"

struct config;
struct config_errors;
struct jwks;

#define OAUTH_ID_PREFIX      "oauth:"
#define OAUTH_SCOPES_MAX     16
#define OAUTH_MAP_MAX        64

struct oauth_policy_map_entry {
	char *value;   /* a claim value (a scope, a group) */
	char *policy;
};

struct oauth_config {
	char *issuer;
	char *audience;            /* NULL: derived from the listener (oauth_default_resource) */
	char *jwks_file;           /* exactly one of jwks_file and jwks_url */
	char *jwks_url;
	struct jwks *jwks;         /* jwks_file's keys, read at parse time */
	int64_t jwks_refresh_ms;   /* jwks_url: refetched this often */
	int64_t jwks_min_refetch_ms; /* and at most this often on an unknown kid */
	unsigned algorithms;       /* JWT_ALG_* bits */
	int64_t clock_skew_s;
	char *required_scopes[OAUTH_SCOPES_MAX];
	size_t nrequired;
	char *scopes_supported[OAUTH_SCOPES_MAX]; /* for the metadata; default the required */
	size_t nsupported;
	char *authorization_servers; /* for the metadata; default the issuer */
	char *subject_claim;       /* default "sub" */
	char *team_claim;          /* NULL: no team from the token */
	char *policy_claim;        /* NULL: no policy named by the token */
	char *policy_map_claim;    /* NULL: no map; e.g. "groups" or "scope" */
	struct oauth_policy_map_entry map[OAUTH_MAP_MAX];
	size_t nmap;
	char team[KEYS_ID_SIZE];   /* defaults when the claims give none ("" none) */
	char policy[KEYS_ID_SIZE];
	char workloads[KEYS_WORKLOADS_SIZE]; /* as a key's: where tokens may be used from */
};

/* Read the "oauth" section of root into *out (NULL when there is none). policy_exists, when
 * not NULL, checks that named policies exist (arg passed along); team_exists the same for
 * teams. 0, or -EINVAL with every problem in errs, each naming its field path. */
int oauth_config_parse(const cJSON *root,
		       bool (*policy_exists)(void *arg, const char *name),
		       bool (*team_exists)(void *arg, const char *name), void *arg,
		       struct oauth_config **out, struct config_errors *errs);
void oauth_config_free(struct oauth_config *c);

/* The resource URI when none is configured: "http://<host>:<port><path>" (IPv6 in brackets).
 * Returns 0 or -ENOSPC. */
int oauth_default_resource(const char *host, int port, const char *path, char *out, size_t len);
/* The RFC 9728 metadata URL of a resource URI: its origin, "/.well-known/oauth-protected-
 * resource", then its path. Returns 0 or -EINVAL / -ENOSPC. */
int oauth_metadata_url(const char *resource, char *out, size_t len);
/* The RFC 9728 metadata document (caller deletes). */
cJSON *oauth_metadata(const struct oauth_config *c, const char *resource);

enum oauth_result {
	OAUTH_OK,
	OAUTH_INVALID,            /* 401 invalid_token */
	OAUTH_UNKNOWN_KID,        /* 401 invalid_token; the caller may refresh the JWKS */
	OAUTH_INSUFFICIENT_SCOPE, /* 403 insufficient_scope */
	OAUTH_NO_POLICY,          /* 403: the claims give no policy, or an unknown team/policy */
	OAUTH_UNAVAILABLE,        /* 503: the issuer's keys are not loaded yet */
};

/* Validate token (len bytes) against c with keys ks (NULL: not loaded) for resource at wall
 * time now (unix seconds), and fill who (id, name, team, policy; team_policy and workload are
 * the caller's). *why: a static text for the record and the error description. */
enum oauth_result oauth_authenticate(const struct oauth_config *c, const struct jwks *ks,
				     const char *resource, const char *token, size_t len,
				     int64_t now, struct key_identity *who, const char **why);

#endif
