/* http_reply: see http_reply.h. */
#include "base/http_reply.h"

#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/bufferevent.h>
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

void http_reply_flush(struct evhttp_connection *evcon)
{
	struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
	struct evbuffer *out = bufferevent_get_output(bev);
	evutil_socket_t fd = bufferevent_getfd(bev);

	if (fd < 0 || !(bufferevent_get_enabled(bev) & EV_WRITE))
		return;
	/* The bufferevent keeps its output's front frozen but while it writes itself. */
	evbuffer_unfreeze(out, 1);
	while (evbuffer_get_length(out) && evbuffer_write(out, fd) > 0)
		;
	evbuffer_freeze(out, 1);
	/* All out: evhttp's write callback ends the request (and the write event, still to be
	 * added in this turn's epoll change list, cancels out). Otherwise the event writes the
	 * rest, or meets the socket's error, as it would have. */
	if (!evbuffer_get_length(out))
		bufferevent_trigger(bev, EV_WRITE, 0);
}
