/* http_reply: see http_reply.h. */
#include "base/http_reply.h"

#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

void http_set_header(struct evhttp_request *req, const char *name, const char *value)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);

	evhttp_remove_header(h, name);
	evhttp_add_header(h, name, value);
}

void http_send_text(struct evhttp_request *req, int status, const char *reason,
		    const char *ctype, const char *text)
{
	struct evbuffer *buf = evbuffer_new();

	if (buf && text) {
		http_set_header(req, "Content-Type", ctype);
		evbuffer_add(buf, text, strlen(text));
	}
	evhttp_send_reply(req, status, reason, buf);
	if (buf)
		evbuffer_free(buf);
}
