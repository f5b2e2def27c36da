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
#include <event2/event.h>

struct evhttp_request;
struct gate;
struct conn_deadline;
struct front_auth;

int front_auth_new(struct event_base *base, struct front_auth **out);
void front_auth_free(struct front_auth *a);
/* The listener as bound (the resource URI when oauth.audience is not set) and g's oauth
 * section: a jwks_url is fetched now. A governance reload that changes the section is
 * followed on the next token. */
void front_auth_configure(struct front_auth *a, struct gate *g, const char *host, int port,
			  const char *path);
/* GET /.well-known/oauth-protected-resource (and with the MCP path after it): true when req
 * was one and is answered (404 when no oauth is configured). */
bool front_auth_metadata(struct front_auth *a, struct gate *g, struct evhttp_request *req,
			 const char *path);

enum front_auth_result {
	FRONT_AUTH_REFUSED = -1, /* answered already: the request goes no further */
	FRONT_AUTH_ANONYMOUS = 0, /* authentication is off and the caller is no workload */
	FRONT_AUTH_IDENTIFIED = 1, /* *who is the caller */
};

/* Identify the caller of req (an MCP request on the agent listener). d names the caller's
 * cgroup (the connection's, looked up once). */
enum front_auth_result front_auth_identify(struct front_auth *a, struct gate *g,
					   struct conn_deadline *d,
					   struct evhttp_request *req, struct key_identity *who);

#endif
