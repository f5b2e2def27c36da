/* front_headers: one pass over a request's headers for the names the front reads. */
#include "mcp/transport/front_headers.h"

#include <stddef.h>
#include <string.h>

#include "base/ascii.h"
#include "base/http_server.h"

static const char *const names[FH_COUNT] = {
#define FH_NAME(id, name) [FH_##id] = name,
	FRONT_HEADERS(FH_NAME)
#undef FH_NAME
};

static const size_t name_len[FH_COUNT] = {
#define FH_LEN(id, name) [FH_##id] = sizeof(name) - 1,
	FRONT_HEADERS(FH_LEN)
#undef FH_LEN
};

/* The request being served and its headers: one at a time on a loop, one a thread. */
static _Thread_local struct {
	struct http_req *req;
	const char *v[FH_COUNT];
} cur;

void front_headers_read(struct http_req *req)
{
	size_t nh = http_req_nheaders(req);

	memset(&cur, 0, sizeof(cur));
	cur.req = req;
	for (size_t k = 0; k < nh; k++) {
		const char *key, *value;
		size_t n;

		n = http_req_header_at(req, k, &key, &value);
		for (int i = 0; i < FH_COUNT; i++)
			if (!cur.v[i] && n == name_len[i] && ascii_caseeq(key, names[i], n)) {
				cur.v[i] = value;
				break;
			}
	}
}

void front_headers_drop(void)
{
	cur.req = NULL;
}

const char *front_header(struct http_req *req, enum front_header which)
{
	if (req == cur.req)
		return cur.v[which];
	return http_req_header(req, names[which]);
}
