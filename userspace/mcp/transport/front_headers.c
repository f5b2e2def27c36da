/* front_headers: one pass over a request's headers for the names the front reads. */
#include "mcp/transport/front_headers.h"

#include <stddef.h>
#include <string.h>
#include <strings.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

static const char *const names[FH_COUNT] = {
#define FH_NAME(id, name) [FH_##id] = name,
	FRONT_HEADERS(FH_NAME)
#undef FH_NAME
};

static size_t name_len[FH_COUNT];

/* The request being served and its headers (one loop: one at a time). */
static struct {
	struct evhttp_request *req;
	const char *v[FH_COUNT];
} cur;

void front_headers_read(struct evhttp_request *req)
{
	const struct evkeyvalq *q = evhttp_request_get_input_headers(req);
	const struct evkeyval *h;

	if (!name_len[0])
		for (int i = 0; i < FH_COUNT; i++)
			name_len[i] = strlen(names[i]);
	memset(&cur, 0, sizeof(cur));
	cur.req = req;
	for (h = q->tqh_first; h; h = h->next.tqe_next) {
		size_t n = strlen(h->key);

		for (int i = 0; i < FH_COUNT; i++)
			if (!cur.v[i] && n == name_len[i] && !strcasecmp(h->key, names[i])) {
				cur.v[i] = h->value;
				break;
			}
	}
}

void front_headers_drop(void)
{
	cur.req = NULL;
}

const char *front_header(struct evhttp_request *req, enum front_header which)
{
	if (req == cur.req)
		return cur.v[which];
	return evhttp_find_header(evhttp_request_get_input_headers(req), names[which]);
}
