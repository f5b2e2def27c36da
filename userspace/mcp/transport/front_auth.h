/* front_auth: who an agent's request comes from, for the front (mcp/transport/front.h).
 *
 * The credential a request presents (Authorization: Bearer or X-Api-Key), checked with the
 * gate: a virtual key (and, when the key is bound to workloads, the caller's cgroup as the
 * kernel names it), or no key at all from a keyless workload. Refusals are answered here (401,
 * 429 for a peer being held off) with a JSON-RPC error body, and recorded with the key id when
 * there is one, never the credential.
 */
#ifndef WARDEN_FRONT_AUTH_H
#define WARDEN_FRONT_AUTH_H

#include "govern/keys.h"

struct evhttp_request;
struct gate;
struct conn_deadline;

enum front_auth_result {
	FRONT_AUTH_REFUSED = -1, /* answered already: the request goes no further */
	FRONT_AUTH_ANONYMOUS = 0, /* authentication is off and the caller is no workload */
	FRONT_AUTH_IDENTIFIED = 1, /* *who is the caller */
};

/* Identify the caller of req (an MCP request on the agent listener). d names the caller's
 * cgroup (the connection's, looked up once). */
enum front_auth_result front_auth_identify(struct gate *g, struct conn_deadline *d,
					   struct evhttp_request *req, struct key_identity *who);

#endif
