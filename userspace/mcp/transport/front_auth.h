/* front_auth: who an agent's request comes from, for the front (mcp/transport/front.h).
 *
 * The credential a request presents (Authorization: Bearer or X-Api-Key), checked with the
 * gate: a virtual key (and, when the key is bound to workloads, the caller's cgroup as the
 * kernel names it), or no key at all from a keyless workload. Refusals are answered here (401,
 * 429 for a peer being held off) with a JSON-RPC error body, and recorded with the key id when
 * there is one, never the credential.
 *
 * With an "oauth" section (govern/oauth.h), a bearer token that is a JWT is an OAuth access
 * token: validated against the issuer's keys (a jwks_file's, or a jwks_url's fetched on the
 * loop by the state here), the subject governed as "oauth:<sub>". Refusals carry
 * WWW-Authenticate with RFC 6750's error and RFC 9728's resource_metadata, and the listener
 * serves that metadata at /.well-known/oauth-protected-resource.
 */
#ifndef WARDEN_FRONT_AUTH_H
#define WARDEN_FRONT_AUTH_H

#include "govern/keys.h"

#include <stdbool.h>
#include <stdint.h>
#include <event2/event.h>

struct http_req;
struct gate;
struct front_auth;

int front_auth_new(struct event_base *base, struct front_auth **out);
void front_auth_free(struct front_auth *a);
/* The listener as bound (the resource URI when oauth.audience is not set) and g's oauth
 * section: a jwks_url is fetched now. A governance reload that changes the section is
 * followed on the next token. */
void front_auth_configure(struct front_auth *a, struct gate *g, const char *host, int port,
			  const char *path);
/* An OAuth access token, for any route of the agent listener (the MCP endpoint, the LLM
 * route): is presented one (oauth configured and a JWT's shape)? front_auth_token checks it:
 * true with *who filled (its team's policy too), or false with *no saying how to answer (401
 * invalid_token, 403 insufficient_scope or no policy, 429 a peer held off, 503 the issuer's
 * keys not fetched yet) — the refusal is recorded already. caller: the caller's cgroup path
 * (NULL unknown), peer its address. */
#define FRONT_AUTH_WWW_SIZE 1024
struct front_auth_refusal {
	int status;
	char www[FRONT_AUTH_WWW_SIZE];  /* the WWW-Authenticate value, "" none */
	char message[192];
	int64_t retry_after_s;          /* > 0: send Retry-After */
};
bool front_auth_is_token(const struct gate *g, const char *presented);
bool front_auth_token(struct front_auth *a, struct gate *g, const char *token, const char *peer,
		      const char *caller, struct key_identity *who, struct front_auth_refusal *no);

/* GET /.well-known/oauth-protected-resource (and with the MCP path after it): true when req
 * was one and is answered (404 when no oauth is configured). */
bool front_auth_metadata(struct front_auth *a, struct gate *g, struct http_req *req,
			 const char *path);

enum front_auth_result {
	FRONT_AUTH_REFUSED = -1, /* answered already: the request goes no further */
	FRONT_AUTH_ANONYMOUS = 0, /* authentication is off and the caller is no workload */
	FRONT_AUTH_IDENTIFIED = 1, /* *who is the caller */
};

/* Identify the caller of req (an MCP request on the agent listener); the kernel names the
 * caller's cgroup (mcp/transport/front_conn.h, looked up once per connection). */
enum front_auth_result front_auth_identify(struct front_auth *a, struct gate *g,
					   struct http_req *req, struct key_identity *who);

#endif
