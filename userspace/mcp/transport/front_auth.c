/* front_auth: authentication of the agent listener's requests (front_auth.h). */
#include "mcp/transport/front_auth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/ascii.h"
#include "base/clock.h"
#include "base/http_server.h"
#include "base/log.h"
#include "govern/gate.h"
#include "govern/jwt.h"
#include "govern/oauth.h"
#include "govern/oauth_jwks.h"
#include "mcp/jsonrpc.h"
#include "mcp/transport/front_conn.h"
#include "mcp/transport/front_headers.h"
#include "observe/audit.h"
#include "observe/metrics.h"

struct front_auth {
	struct oauth_jwks *jwks;            /* oauth.jwks_url's keys */
	char default_resource[512];         /* from the listener; "" until bound */
};

int front_auth_new(struct event_base *base, struct front_auth **out)
{
	struct front_auth *a = xcalloc(1, sizeof(*a));
	int rc = oauth_jwks_new(base, &a->jwks);

	if (rc) {
		free(a);
		return rc;
	}
	*out = a;
	return 0;
}

void front_auth_free(struct front_auth *a)
{
	if (!a)
		return;
	oauth_jwks_free(a->jwks);
	free(a);
}

void front_auth_configure(struct front_auth *a, struct gate *g, const char *host, int port,
			  const char *path)
{
	if (oauth_default_resource(host, port, path, a->default_resource,
				   sizeof(a->default_resource)))
		a->default_resource[0] = '\0';
	const struct oauth_config *c = g ? gate_oauth(g) : NULL;
	/* A wildcard address is no name a client uses: tokens would never be for it. */
	if (c && !c->audience && (!strcmp(host, "0.0.0.0") || !strcmp(host, "::")))
		log_warn("oauth: no audience set and the listener is on %s: tokens must name %s, "
			 "which no client does; set oauth.audience to the URL clients use", host,
			 a->default_resource);
	oauth_jwks_configure(a->jwks, c);
}

static const char *resource_of(const struct front_auth *a, const struct oauth_config *c)
{
	return c->audience ? c->audience : a->default_resource;
}

/* An HTTP-level refusal whose body is a JSON-RPC error without id (the spec's form). */
static void send_error(struct http_req *req, int status, const char *reason, int code,
		       const char *message)
{
	cJSON *e = jsonrpc_error(NULL, code, message, NULL);
	char *text = e ? jsonrpc_print(e) : NULL;

	http_req_send_text(req, status, reason, "application/json", text);
	cJSON_free(text);
	cJSON_Delete(e);
}

/* WWW-Authenticate for a refusal: with oauth, RFC 9728's resource_metadata (how a client
 * finds the authorization server) and RFC 6750's error when a token was presented. */
static void www_value(struct front_auth *a, struct gate *g, const char *error, const char *desc,
		      char *v, size_t len)
{
	const struct oauth_config *c = gate_oauth(g);
	char meta[640];
	int n = snprintf(v, len, "Bearer realm=\"mcpwarden\"");

	if (c && !oauth_metadata_url(resource_of(a, c), meta, sizeof(meta)))
		n += snprintf(v + n, len - (size_t)n, ", resource_metadata=\"%s\"", meta);
	if (error && n < (int)len)
		n += snprintf(v + n, len - (size_t)n, ", error=\"%s\"", error);
	/* desc is one of oauth.c's static texts: no quote or backslash to escape. */
	if (desc && n < (int)len)
		snprintf(v + n, len - (size_t)n, ", error_description=\"%s\"", desc);
}

static void www_authenticate(struct front_auth *a, struct gate *g, struct http_req *req,
			     const char *error, const char *desc)
{
	char v[FRONT_AUTH_WWW_SIZE];

	www_value(a, g, error, desc, v, sizeof(v));
	http_req_set_header(req, "WWW-Authenticate", v);
}

/* The key from Authorization: Bearer or X-Api-Key. */
static const char *presented_key(struct http_req *req)
{
	const char *a = front_header(req, FH_AUTHORIZATION);

	if (a && ascii_caseprefix(a, "Bearer ", 7)) {
		a += 7;
		while (*a == ' ')
			a++;
		return a;
	}
	return front_header(req, FH_X_API_KEY);
}

/* The records name the caller as the kernel does (looked up once per connection). */
static void caller_into(struct http_req *req, struct key_identity *who)
{
	const char *caller = front_conn_caller(req, NULL);

	size_t n = caller ? strnlen(caller, sizeof(who->workload) - 1) : 0;

	memcpy(who->workload, caller ? caller : "", n);   /* no printf: once a call */
	who->workload[n] = '\0';
}

bool front_auth_is_token(const struct gate *g, const char *presented)
{
	return presented && gate_oauth(g) && jwt_looks_like(presented, strlen(presented));
}

static bool refuse(struct front_auth *a, struct gate *g, struct front_auth_refusal *no,
		   int status, const char *error, const char *why)
{
	no->status = status;
	no->www[0] = '\0';
	if (error || status == 401)
		www_value(a, g, error, why, no->www, sizeof(no->www));
	snprintf(no->message, sizeof(no->message), "invalid access token: %s",
		 why ? why : "refused");
	return false;
}

/* Only a token whose signature does not verify counts towards the peer's failures: expired
 * tokens, other audiences and a kid the issuer has just rotated in are what honest clients
 * send. */
bool front_auth_token(struct front_auth *a, struct gate *g, const char *token, const char *peer,
		      const char *caller, struct key_identity *who, struct front_auth_refusal *no)
{
	const struct oauth_config *c = gate_oauth(g);
	struct keystore *kst = gate_keystore(g);
	const struct jwks *ks;
	const char *why = NULL;
	char reason[160], tp[KEYS_ID_SIZE] = "";
	bool team = false;
	int64_t retry_ms = 0;

	memset(no, 0, sizeof(*no));
	memset(who, 0, sizeof(*who));
	/* A token guessed at is held off as a key guessed at is. */
	if (peer && keys_peer_blocked(kst, peer, (int64_t)clock_loop_ms(), &retry_ms)) {
		audit_auth("blocked", NULL, peer);
		no->status = 429;
		no->retry_after_s = (retry_ms + 999) / 1000;
		snprintf(no->message, sizeof(no->message),
			 "too many failed authentications from this address; retry later");
		return false;
	}
	oauth_jwks_configure(a->jwks, c);   /* follows a reload: a no-op for the same URL */
	ks = c->jwks ? c->jwks : oauth_jwks_current(a->jwks);
	enum oauth_result r = oauth_authenticate(c, ks, resource_of(a, c), token, strlen(token),
						 clock_real_s(), who, &why);
	if (r == OAUTH_UNKNOWN_KID)
		oauth_jwks_unknown_kid(a->jwks);   /* the issuer may have rotated its keys */
	if (peer && r == OAUTH_INVALID && !who->id[0])
		keys_peer_failure(kst, peer, (int64_t)clock_loop_ms());
	if (r == OAUTH_OK && who->team[0] && !(team = keys_team_policy_copy(kst, who->team, tp))) {
		r = OAUTH_NO_POLICY;
		why = "the token's team is not configured";
	}
	if (r == OAUTH_OK && who->policy[0] && !gate_policy_exists(g, who->policy)) {
		r = OAUTH_NO_POLICY;
		why = "the token's policy is not configured";
	}
	if (r == OAUTH_OK && !who->policy[0] && !team) {
		r = OAUTH_NO_POLICY;
		why = "no policy for this token";
	}
	if (r == OAUTH_OK) {
		memcpy(who->team_policy, tp, sizeof(who->team_policy));
		if (!who->workloads[0] || keys_workload_allows(who->workloads, caller))
			return true;
		metrics_auth_workload_refused();
		audit_auth_workload("oauth: token used outside its workloads", who->id, peer,
				    caller ? caller : "unknown");
		return refuse(a, g, no, 401, "invalid_token", "not from this workload");
	}
	snprintf(reason, sizeof(reason), "oauth: %s", why ? why : "refused");
	audit_auth(reason, who->id, peer);
	switch (r) {
	case OAUTH_INSUFFICIENT_SCOPE:
		return refuse(a, g, no, 403, "insufficient_scope", why);
	case OAUTH_NO_POLICY:
		return refuse(a, g, no, 403, NULL, why);
	case OAUTH_UNAVAILABLE:
		no->retry_after_s = 5;
		return refuse(a, g, no, 503, NULL, why);
	default:
		return refuse(a, g, no, 401, "invalid_token", why);
	}
}

/* A token refusal as the MCP endpoint answers it: a JSON-RPC error without id. */
static void send_refusal(struct http_req *req, const struct front_auth_refusal *no)
{
	char ra[32];

	if (no->www[0])
		http_req_set_header(req, "WWW-Authenticate", no->www);
	if (no->retry_after_s > 0) {
		snprintf(ra, sizeof(ra), "%lld", (long long)no->retry_after_s);
		http_req_set_header(req, "Retry-After", ra);
	}
	send_error(req, no->status, no->status == 401 ? "Unauthorized"
			: no->status == 403 ? "Forbidden" : no->status == 429 ? "Too Many Requests"
			: "Service Unavailable", -32001, no->message);
}

/* Every request is authenticated; refusals are 401 (429 for a peer being held off) and
 * recorded with the key id when there is one, never the key. */
static bool authenticate(struct front_auth *a, struct gate *g, struct http_req *req,
			 struct key_identity *who)
{
	const char *peer = front_conn_peer(req);
	const char *reason;
	int64_t retry_ms;

	/* No key at all, from a keyless workload the kernel names: governed as that workload. */
	const char *presented = presented_key(req);
	if ((!presented || !*presented) && gate_has_workloads(g) &&
	    gate_workload_identity(g, front_conn_caller(req, NULL), who))
		return true;
	if (front_auth_is_token(g, presented)) {
		struct front_auth_refusal no;

		if (front_auth_token(a, g, presented, peer, front_conn_caller(req, NULL), who,
				     &no))
			return true;
		send_refusal(req, &no);
		return false;
	}
	enum gate_auth r = gate_authenticate(g, presented, peer, front_conn_auth_memo(req), who,
					     &reason, &retry_ms);
	if (r == GATE_AUTH_OK && who->workloads[0]) {
		/* A key bound to workloads: the kernel names the caller, the key alone is not
		 * enough. The same 401 as any refusal; the record says why and who called. */
		const char *caller = front_conn_caller(req, NULL);

		if (keys_workload_allows(who->workloads, caller))
			return true;
		metrics_auth_workload_refused();
		audit_auth_workload("key used outside its workload", who->id, peer,
				    caller ? caller : "unknown");
		www_authenticate(a, g, req, NULL, NULL);
		send_error(req, 401, "Unauthorized", -32001,
			   "this key may not be used from this workload");
		return false;
	}
	if (r == GATE_AUTH_OK)
		return true;
	audit_auth(reason, who->id, peer);
	if (r == GATE_AUTH_BLOCKED) {
		char ra[32];
		snprintf(ra, sizeof(ra), "%lld", (long long)((retry_ms + 999) / 1000));
		http_req_set_header(req, "Retry-After", ra);
		send_error(req, 429, "Too Many Requests", -32001,
			   "too many failed authentications from this address; retry later");
		return false;
	}
	www_authenticate(a, g, req, r == GATE_AUTH_MISSING ? NULL : "invalid_token", NULL);
	send_error(req, 401, "Unauthorized", -32001,
		   r == GATE_AUTH_MISSING ? "authentication required: send Authorization: Bearer <key>"
					  : "invalid key");
	return false;
}

enum front_auth_result front_auth_identify(struct front_auth *a, struct gate *g,
					   struct http_req *req, struct key_identity *who)
{
	const char *k = presented_key(req);

	/* An access token is checked even where keys are optional: a client that sends one
	 * means to be governed by it. */
	if (gate_auth_required(g) || front_auth_is_token(g, k)) {
		if (!authenticate(a, g, req, who))
			return FRONT_AUTH_REFUSED;
		caller_into(req, who);
		return FRONT_AUTH_IDENTIFIED;
	}
	if (gate_has_workloads(g)) {
		/* Keys are optional here, but a keyless workload is still governed as itself. */
		if ((!k || !*k) && gate_workload_identity(g, front_conn_caller(req, NULL), who)) {
			caller_into(req, who);
			return FRONT_AUTH_IDENTIFIED;
		}
	}
	return FRONT_AUTH_ANONYMOUS;
}

bool front_auth_metadata(struct front_auth *a, struct gate *g, struct http_req *req,
			 const char *path)
{
	static const char wk[] = "/.well-known/oauth-protected-resource";
	const struct oauth_config *c;
	const char *resource;

	if (!path || strncmp(path, wk, sizeof(wk) - 1))
		return false;
	c = g ? gate_oauth(g) : NULL;
	if (!c) {
		send_error(req, 404, "Not Found", -32600, "no OAuth resource server here");
		return true;
	}
	/* The root form and the path-inserted form (RFC 9728 section 3.1) of this resource. */
	resource = resource_of(a, c);
	const char *rp = strstr(resource, "://");
	rp = rp ? strchr(rp + 3, '/') : NULL;
	const char *tail = path + sizeof(wk) - 1;
	if (*tail && (!rp || strcmp(tail, rp))) {
		send_error(req, 404, "Not Found", -32600, "no such protected resource");
		return true;
	}
	cJSON *m = oauth_metadata(c, resource);
	char *text = cJSON_PrintUnformatted(m);

	http_req_set_header(req, "Cache-Control", "max-age=300");
	http_req_send_text(req, 200, "OK", "application/json", text);
	cJSON_free(text);
	cJSON_Delete(m);
	return true;
}
