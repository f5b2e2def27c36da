/* front_headers: the request headers the front reads, found in one pass over a request's
 * header list instead of one case-insensitive walk per lookup (a governed call looked up about
 * a dozen). Loop thread only.
 *
 * front_headers_read(req) indexes a request while it is being served; front_header() answers
 * from the index for that request, and falls back to evhttp's own lookup for any other (a
 * request finished later, in another callback, after the index was dropped). The first header
 * of a name counts, as with evhttp_find_header.
 */
#ifndef WARDEN_FRONT_HEADERS_H
#define WARDEN_FRONT_HEADERS_H

struct evhttp_request;

enum front_header {
	FH_ACCEPT, FH_AUTHORIZATION, FH_CONTENT_TYPE, FH_HOST, FH_MCP_METHOD, FH_MCP_NAME,
	FH_MCP_PROTOCOL_VERSION, FH_MCP_SESSION_ID, FH_ORIGIN, FH_TRACEPARENT, FH_TRACESTATE,
	FH_X_API_KEY,
	FH_COUNT
};

void front_headers_read(struct evhttp_request *req);
/* Drop the index (the request may be freed once it is answered). */
void front_headers_drop(void);
const char *front_header(struct evhttp_request *req, enum front_header which);

#endif
