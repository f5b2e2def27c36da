/* stateless: the 2026-07-28 revision towards agents, on the same endpoint as the older ones.
 *
 * That revision has no initialize and no session: every POST carries its protocol version
 * (MCP-Protocol-Version header, equal to params._meta["io.modelcontextprotocol/protocolVersion"]),
 * the client's capabilities in _meta, and Mcp-Method / Mcp-Name headers that must match the
 * body, and Mcp-Param-{Name} headers for the arguments a tool declares with x-mcp-header.
 * This module says whether a POST is of that kind, validates it (the revision's
 * -32020 header mismatch, -32022 unsupported version, -32602 missing _meta keys), answers
 * server/discover, and runs every other request on a session of its own that ends with the
 * request — so keys, policy, budgets and records are exactly those of session calls (the
 * records carry no session id). Results get the revision's resultType and caching hints.
 * Requests an upstream of an older revision sends the client during such a call (sampling,
 * elicitation, roots) become input_required rounds: the agent's retry with inputResponses
 * and the requestState answers them and gets the call's outcome.
 * HTTP itself stays the front's: it gets back an HTTP status and a JSON-RPC error to send.
 */
#ifndef WARDEN_STATELESS_H
#define WARDEN_STATELESS_H

#include <stdbool.h>
#include <cjson/cJSON.h>

struct jsonrpc_msg;
struct key_identity;
struct reply;
struct router;

#define STATELESS_VERSION "2026-07-28"

/* The revision's error codes. */
enum {
	STATELESS_HEADER_MISMATCH = -32020,
	STATELESS_MISSING_CAPABILITY = -32021,
	STATELESS_UNSUPPORTED_VERSION = -32022,
};

/* The request headers that matter here (NULL when absent). */
struct stateless_headers {
	const char *session;    /* Mcp-Session-Id */
	const char *version;    /* MCP-Protocol-Version */
	const char *method;     /* Mcp-Method */
	const char *name;       /* Mcp-Name */
};

/* Is this POST for the stateless revision? No session id, and a version
 * header that no older revision knows, or a per-request version in _meta. */
bool stateless_wanted(const struct stateless_headers *h, const struct jsonrpc_msg *m);

/* Validate headers against the body. 0: go on; else the HTTP status to answer with and
 * *err the JSON-RPC error (owned) to send. */
int stateless_check(const struct stateless_headers *h, const struct jsonrpc_msg *m, cJSON **err);

/* A tools/call's Mcp-Param-{Name} headers (header(ctx, "Mcp-Param-X") looks one up) against
 * its arguments, by the x-mcp-header declarations of the tool's inputSchema in the catalogue
 * (mcp/param_headers.h). Run after stateless_check, before the gate; same return as it
 * (500 on out of memory). */
int stateless_check_params(struct router *r, const struct jsonrpc_msg *m,
			   const char *(*header)(const void *ctx, const char *name),
			   const void *ctx, cJSON **err);

/* Serve a checked request (msg taken over); the answer goes to reply. Methods the revision
 * removed or never had answer 404 with -32601: then the return is 404 and *err is set,
 * reply untouched. Otherwise 0. */
int stateless_request(struct router *r, const struct key_identity *who, cJSON *msg,
		      const struct jsonrpc_msg *m, struct reply *reply, cJSON **err);

#endif
