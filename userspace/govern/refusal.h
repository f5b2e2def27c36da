/* refusal: the JSON-RPC error codes mcpwarden answers with when it refuses a request.
 *
 * One table so every module uses the same numbers; docs/policy.md documents each code and the
 * members of its error "data" object. The project-specific codes sit in the JSON-RPC
 * "server error" range (-32000 to -32099); -32602 is the standard "invalid params".
 */
#ifndef WARDEN_REFUSAL_H
#define WARDEN_REFUSAL_H

enum refusal_code {
	REFUSAL_UNAUTHENTICATED   = -32001, /* only where HTTP 401 cannot be used */
	REFUSAL_NOT_PERMITTED     = -32003, /* data {rule, tool} */
	REFUSAL_RATE_LIMITED      = -32004, /* data {retry_after_ms, limit} */
	REFUSAL_OVER_BUDGET       = -32005, /* data {budget, spent, limit, reset} */
	REFUSAL_TOO_MANY_SESSIONS = -32006, /* data {retry_after_ms, limit}; HTTP 429 */
	REFUSAL_STORE_UNAVAILABLE = -32007, /* data {reason, errno, retry_after_ms} */
	REFUSAL_TOO_MANY_PENDING  = -32008, /* data {retry_after_ms, limit}; HTTP 429 */
	REFUSAL_TOO_MANY_CHILDREN = -32009, /* data {retry_after_ms, limit, children}; HTTP 503 */
	REFUSAL_UPSTREAM_FAILURE  = -32010, /* data {server, reason} */
	REFUSAL_UPSTREAM_TIMEOUT  = -32011, /* data {server, reason} */
	REFUSAL_TOOL_CHANGED      = -32012, /* data {tool, server, state, approved_digest,
					     * current_digest} */
	REFUSAL_LOOP_DETECTED     = -32013, /* data {tool, max_repeats, window_ms, retry_after_ms} */
	REFUSAL_CIRCUIT_OPEN      = -32014, /* data {server, state, retry_after_ms} */
	REFUSAL_INVALID_ARGUMENTS = -32602, /* data {path, keyword, message} */
};

/* Machine-readable name of a code ("not_permitted"), for audit records and metrics labels;
 * "unknown" for anything else. */
static inline const char *refusal_name(int code)
{
	switch (code) {
	case REFUSAL_UNAUTHENTICATED:   return "unauthenticated";
	case REFUSAL_NOT_PERMITTED:     return "not_permitted";
	case REFUSAL_RATE_LIMITED:      return "rate_limited";
	case REFUSAL_OVER_BUDGET:       return "over_budget";
	case REFUSAL_TOO_MANY_SESSIONS: return "too_many_sessions";
	case REFUSAL_STORE_UNAVAILABLE: return "store_unavailable";
	case REFUSAL_TOO_MANY_PENDING:  return "too_many_pending";
	case REFUSAL_TOO_MANY_CHILDREN: return "too_many_children";
	case REFUSAL_UPSTREAM_FAILURE:  return "upstream_failure";
	case REFUSAL_UPSTREAM_TIMEOUT:  return "upstream_timeout";
	case REFUSAL_INVALID_ARGUMENTS: return "invalid_arguments";
	case REFUSAL_TOOL_CHANGED:      return "tool_changed";
	case REFUSAL_LOOP_DETECTED:     return "loop_detected";
	case REFUSAL_CIRCUIT_OPEN:      return "circuit_open";
	}
	return "unknown";
}

#endif
