/* front_auth: authentication of the agent listener's requests (front_auth.h). */
#include "mcp/transport/front_auth.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "base/http_reply.h"
#include "govern/gate.h"
#include "mcp/jsonrpc.h"
#include "mcp/transport/conn_deadline.h"
#include "observe/audit.h"
#include "observe/metrics.h"

static const char *header(struct evhttp_request *req, const char *name)
{
	return evhttp_find_header(evhttp_request_get_input_headers(req), name);
}

/* An HTTP-level refusal whose body is a JSON-RPC error without id (the spec's form). */
static void send_error(struct evhttp_request *req, int status, const char *reason, int code,
		       const char *message)
{
	cJSON *e = jsonrpc_error(NULL, code, message, NULL);
	char *text = e ? jsonrpc_print(e) : NULL;

	http_send_text(req, status, reason, "application/json", text);
	cJSON_free(text);
	cJSON_Delete(e);
}

/* The key from Authorization: Bearer or X-Api-Key. */
static const char *presented_key(struct evhttp_request *req)
{
	const char *a = header(req, "Authorization");

	if (a && !strncasecmp(a, "Bearer ", 7)) {
		a += 7;
		while (*a == ' ')
			a++;
		return a;
	}
	return header(req, "X-Api-Key");
}

/* The records name the caller as the kernel does (looked up once per connection). */
static void caller_into(struct conn_deadline *d, struct evhttp_request *req,
			struct key_identity *who)
{
	const char *caller = conn_deadline_caller(d, req, NULL);

	who->workload[0] = '\0';
	if (caller)
		snprintf(who->workload, sizeof(who->workload), "%s", caller);
}

/* Every request is authenticated; refusals are 401 (429 for a peer being held off) and
 * recorded with the key id when there is one, never the key. */
static bool authenticate(struct gate *g, struct conn_deadline *d, struct evhttp_request *req,
			 struct key_identity *who)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	char *peer = NULL;
	ev_uint16_t port = 0;
	const char *reason;
	int64_t retry_ms;

	evhttp_connection_get_peer(evcon, &peer, &port);
	/* No key at all, from a keyless workload the kernel names: governed as that workload. */
	const char *presented = presented_key(req);
	if ((!presented || !*presented) && gate_has_workloads(g) &&
	    gate_workload_identity(g, conn_deadline_caller(d, req, NULL), who))
		return true;
	enum gate_auth r = gate_authenticate(g, presented, peer, who, &reason, &retry_ms);
	if (r == GATE_AUTH_OK && who->workloads[0]) {
		/* A key bound to workloads: the kernel names the caller, the key alone is not
		 * enough. The same 401 as any refusal; the record says why and who called. */
		const char *caller = conn_deadline_caller(d, req, NULL);

		if (keys_workload_allows(who->workloads, caller))
			return true;
		metrics_auth_workload_refused();
		audit_auth_workload("key used outside its workload", who->id, peer,
				    caller ? caller : "unknown");
		http_set_header(req, "WWW-Authenticate", "Bearer realm=\"mcpwarden\"");
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
		http_set_header(req, "Retry-After", ra);
		send_error(req, 429, "Too Many Requests", -32001,
			   "too many failed authentications from this address; retry later");
		return false;
	}
	http_set_header(req, "WWW-Authenticate", "Bearer realm=\"mcpwarden\"");
	send_error(req, 401, "Unauthorized", -32001,
		   r == GATE_AUTH_MISSING ? "authentication required: send Authorization: Bearer <key>"
					  : "invalid key");
	return false;
}

enum front_auth_result front_auth_identify(struct gate *g, struct conn_deadline *d,
					   struct evhttp_request *req, struct key_identity *who)
{
	if (gate_auth_required(g)) {
		if (!authenticate(g, d, req, who))
			return FRONT_AUTH_REFUSED;
		caller_into(d, req, who);
		return FRONT_AUTH_IDENTIFIED;
	}
	if (gate_has_workloads(g)) {
		/* Keys are optional here, but a keyless workload is still governed as itself. */
		const char *k = presented_key(req);
		if ((!k || !*k) && gate_workload_identity(g, conn_deadline_caller(d, req, NULL), who)) {
			caller_into(d, req, who);
			return FRONT_AUTH_IDENTIFIED;
		}
	}
	return FRONT_AUTH_ANONYMOUS;
}
