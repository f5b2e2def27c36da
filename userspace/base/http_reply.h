/* http_reply: what the admin listener's evhttp does to answer: set a response header once,
 * send a body with its Content-Type. (The agent listener has a server of its own:
 * base/http_server.) */
#ifndef WARDEN_HTTP_REPLY_H
#define WARDEN_HTTP_REPLY_H

struct evhttp_request;

/* Set the response header name to value, replacing one set before. */
void http_set_header(struct evhttp_request *req, const char *name, const char *value);

/* Send the reply: status, reason (NULL: evhttp's for status) and, when text is not NULL,
 * text as its body with Content-Type ctype. */
void http_send_text(struct evhttp_request *req, int status, const char *reason,
		    const char *ctype, const char *text);

#endif
