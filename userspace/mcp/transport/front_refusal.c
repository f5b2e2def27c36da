/* front_refusal: a record for each request the front refuses itself. */
#include "mcp/transport/front_refusal.h"

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "mcp/transport/front_conn.h"

#include "govern/refusal.h"
#include "mcp/jsonrpc.h"
#include "mcp/stateless.h"
#include "mcp/transport/front_headers.h"
#include "observe/audit.h"
#include "base/json_get.h"

static _Thread_local const char *caller;   /* the request being served on this loop */

void front_refusal_caller(const char *key_id)
{
	caller = key_id;
}

/* What was refused, from the answer: its JSON-RPC code where that says it, else its status. */
static const char *reason_of(int status, int code, bool has_session)
{
	switch (code) {
	case JSONRPC_PARSE_ERROR: return "parse_error";
	case JSONRPC_METHOD_NOT_FOUND: return "method_not_found";
	case STATELESS_HEADER_MISMATCH: return "header_mismatch";
	case STATELESS_MISSING_CAPABILITY: return "missing_capability";
	case STATELESS_UNSUPPORTED_VERSION: return "unsupported_version";
	case JSONRPC_INVALID_PARAMS: return "invalid_params";
	case JSONRPC_INTERNAL_ERROR: return "internal_error";
	}
	if (code != JSONRPC_INVALID_REQUEST && code != 0 && strcmp(refusal_name(code), "unknown"))
		return refusal_name(code);
	switch (status) {
	case 403: return "forbidden";
	case 404: return has_session ? "session_not_found" : "not_found";
	case 405: return "method_not_allowed";
	case 406: return "not_acceptable";
	case 409: return "conflict";
	case 415: return "unsupported_media_type";
	}
	return status >= 500 ? "unavailable" : "invalid_request";
}

void front_refused(struct http_req *req, int status, const cJSON *response)
{
	const cJSON *err = json_get(response, "error");
	const cJSON *code = json_get(err, "code");
	const char *sid = front_header(req, FH_MCP_SESSION_ID);
	int c = cJSON_IsNumber(code) ? code->valueint : 0;
	const char *peer;

	if (c == REFUSAL_UNAUTHENTICATED ||
	    (status == 404 && c == JSONRPC_INVALID_REQUEST && !sid))   /* not the MCP path */
		return;
	peer = front_conn_peer(req);
	audit_refusal(&(struct audit_refusal){
		.session = sid, .key = caller, .reason = reason_of(status, c, sid != NULL),
		.http_status = status, .error = err, .peer = peer,
	});
}
