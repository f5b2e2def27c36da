/* http_reply: what every evhttp listener (the MCP front, the LLM route, the admin API) does
 * to answer: set a response header once, send a body with its Content-Type, write an answer
 * at once. */
#ifndef WARDEN_HTTP_REPLY_H
#define WARDEN_HTTP_REPLY_H

struct evhttp_connection;
struct evhttp_request;

/* Set the response header name to value, replacing one set before. */
void http_set_header(struct evhttp_request *req, const char *name, const char *value);

/* Send the reply: status, reason (NULL: evhttp's for status) and, when text is not NULL,
 * text as its body with Content-Type ctype. */
void http_send_text(struct evhttp_request *req, int status, const char *reason,
		    const char *ctype, const char *text);

/* Write what evhttp has queued on evcon (an answer just sent) at once, and let evhttp finish
 * the request as its write event would have: evhttp otherwise writes from that event, a loop
 * turn later, adding it and removing it with two epoll_ctl calls. What the socket does not
 * take now is left to the write event. evhttp may free evcon before this returns (an answer
 * that closes the connection): call it last, and never from inside evhttp's callbacks for
 * evcon (on a request, on its connection closing), which do not expect that. */
void http_reply_flush(struct evhttp_connection *evcon);

#endif
