/* front_headers: the request headers the front reads, found in one pass over a request's
 * header list instead of one case-insensitive walk per lookup (a governed call looked up about
 * a dozen). Each loop thread keeps its own index.
 *
 * front_headers_read(req) indexes a request while it is being served; front_header() answers
 * from the index for that request, and falls back to the server's own lookup for any other (a
 * request finished later, in another callback, after the index was dropped). The first header
 * of a name counts, as with http_req_header.
 */
#ifndef WARDEN_FRONT_HEADERS_H
#define WARDEN_FRONT_HEADERS_H

struct http_req;

/* Each header read: its enum name and its name on the wire. */
#define FRONT_HEADERS(X) \
	X(ACCEPT, "Accept") X(AUTHORIZATION, "Authorization") X(CONTENT_TYPE, "Content-Type") \
	X(HOST, "Host") X(MCP_METHOD, "Mcp-Method") X(MCP_NAME, "Mcp-Name") \
	X(MCP_PROTOCOL_VERSION, "MCP-Protocol-Version") X(MCP_SESSION_ID, "Mcp-Session-Id") \
	X(ORIGIN, "Origin") X(TRACEPARENT, "traceparent") X(TRACESTATE, "tracestate") \
	X(X_API_KEY, "X-Api-Key")

enum front_header {
#define FH_ENUM(id, name) FH_##id,
	FRONT_HEADERS(FH_ENUM)
#undef FH_ENUM
	FH_COUNT
};

void front_headers_read(struct http_req *req);
/* Drop the index (the request may be freed once it is answered). */
void front_headers_drop(void);
const char *front_header(struct http_req *req, enum front_header which);

#endif
