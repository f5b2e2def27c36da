/* method: the MCP methods the gateway serves, as one table (types only; the table itself
 * and its handlers are the router's, mcp/router.c).
 *
 * A request is looked up once by name; from then on it travels as an enum with flags that
 * say what the request path does with it, so no later stage compares method names.
 */
#ifndef WARDEN_METHOD_H
#define WARDEN_METHOD_H

#include <cjson/cJSON.h>

#include "mcp/catalog.h"

struct call;

enum mcp_method {
	MCP_PING,
	MCP_TOOLS_LIST,
	MCP_RESOURCES_LIST,
	MCP_TEMPLATES_LIST,
	MCP_PROMPTS_LIST,
	MCP_TOOLS_CALL,
	MCP_PROMPTS_GET,
	MCP_RESOURCES_READ,
	MCP_RESOURCES_SUBSCRIBE,
	MCP_RESOURCES_UNSUBSCRIBE,
	MCP_COMPLETE,
	MCP_SET_LEVEL,
	MCP_TASKS_GET,
	MCP_TASKS_RESULT,
	MCP_TASKS_CANCEL,
	MCP_TASKS_LIST,
	MCP_NMETHODS,
	MCP_UNKNOWN = MCP_NMETHODS,
};

enum method_flags {
	METHOD_LOCAL     = 1 << 0, /* answered by the gateway itself (ping, the lists) */
	METHOD_GOVERNED  = 1 << 1, /* the gate admits it: permission for the caller's key */
	METHOD_WORK      = 1 << 2, /* does work upstream: rate limited and charged its cost */
	METHOD_FORWARDED = 1 << 3, /* sent to one upstream on the session's link */
	METHOD_FANOUT    = 1 << 4, /* sent to every upstream that supports it (logging/setLevel) */
};

struct method {
	const char *name;
	enum mcp_method id;
	unsigned flags;
	enum catalog_kind kind;    /* the catalogue it names entries of (lists, calls) */
	/* Resolve what the request names: fill the call's target, upstream and the params to
	 * send (params taken over), or answer it (local methods, refusals). */
	void (*route)(struct call *c, cJSON *params);
	/* Optional: the gate admitted the call, just before it is forwarded. */
	void (*admitted)(struct call *c);
};

#endif
