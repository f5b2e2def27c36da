/* http_server_answer: the answers of base/http_server (status line and headers, whole and
 * streamed bodies) and writing them: straight to the socket, what it does not take kept for
 * the write event. */
#include "base/http_server.h"
#include "base/http_server_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <event2/event.h>

#include "base/alloc.h"
#include "base/ascii.h"
#include "base/clock.h"
#include "base/jsonw.h"
#include "base/log.h"

/* A literal appended at p, returning its end: a copy of known length (stpcpy of a literal
 * is a call). */
#define PUT(p, lit) ((char *)mempcpy((p), (lit), sizeof(lit) - 1))

#define HEAD_MAX 1024                   /* our status line and headers, but the set ones */

static void conn_want_write(struct http_conn *c);

const char *http_reason(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 406: return "Not Acceptable";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 413: return "Payload Too Large";
	case 415: return "Unsupported Media Type";
	case 417: return "Expectation Failed";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	}
	return status < 300 ? "OK" : status < 500 ? "Error" : "Server Error";
}

/* The Date header's value, printed once a second (RFC 9110 asks an origin server for it);
 * once a thread, so that loops on several threads each keep their own. */
const char *http_date_now(void)
{
	static _Thread_local char text[40];
	static _Thread_local time_t at;
	time_t now = time(NULL);

	if (now != at || !text[0]) {
		struct tm tm;

		gmtime_r(&now, &tm);
		strftime(text, sizeof(text), "%a, %d %b %Y %H:%M:%S GMT", &tm);
		at = now;
	}
	return text;
}

static void append_out(struct http_conn *c, const void *p, size_t n)
{
	if (c->out_off && c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	c->out = xreserve(c->out, c->out_len + n, &c->out_cap, 4096);
	memcpy(c->out + c->out_len, p, n);
	c->out_len += n;
}

/* Write iov: straight to the socket when nothing waits before it, the rest kept for the
 * write event. -EPIPE once the connection has failed. */
int conn_write(struct http_conn *c, struct iovec *iov, int n)
{
	size_t total = 0;
	ssize_t w = 0;
	int i;

	if (c->dead || c->failed)
		return -EPIPE;
	for (i = 0; i < n; i++)
		total += iov[i].iov_len;
	if (c->out_len == c->out_off) {
		struct msghdr m = { .msg_iov = iov, .msg_iovlen = (size_t)n };
		do
			w = sendmsg(c->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
		while (w < 0 && errno == EINTR);
		if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
			conn_fail(c);
			return -EPIPE;
		}
		if (w < 0)
			w = 0;
	}
	if ((size_t)w == total)
		return 0;
	for (i = 0; i < n; i++) {
		size_t len = iov[i].iov_len;
		if ((size_t)w >= len) {
			w -= (ssize_t)len;
			continue;
		}
		append_out(c, (const char *)iov[i].iov_base + w, len - (size_t)w);
		w = 0;
	}
	conn_want_write(c);
	return 0;
}

/* --- writing ------------------------------------------------------------------------- */

static void on_write(evutil_socket_t fd, short what, void *arg)
{
	struct http_conn *c = arg;
	ssize_t w;

	(void)what;
	while (c->out_off < c->out_len) {
		w = send(fd, c->out + c->out_off, c->out_len - c->out_off,
			 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (w <= 0) {
			conn_close(c);
			return;
		}
		c->out_off += (size_t)w;
		/* progress: the stall deadline moves */
		c->deadline_ms = clock_loop_ms() + (uint64_t)c->s->lim.timeout_ms;
	}
	if (c->out_off < c->out_len)
		return;
	c->out_off = c->out_len = 0;
	event_del(c->wev);
	if (c->state == CONN_STREAMING || c->state == CONN_SERVING)
		c->deadline_ms = 0;
	if (c->close_after)
		conn_linger(c);
}

static void conn_want_write(struct http_conn *c)
{
	if (!c->wev) {
		c->wev = event_new(c->s->base, c->fd, EV_WRITE | EV_PERSIST, on_write, c);
		if (!c->wev) {
			conn_close(c);
			return;
		}
	}
	if (!event_pending(c->wev, EV_WRITE, NULL) && event_add(c->wev, NULL)) {
		conn_close(c);
		return;
	}
	/* An answer the client does not read must not hold the connection for ever. */
	if (c->state != CONN_CLOSING)
		c->deadline_ms = clock_loop_ms() + (uint64_t)c->s->lim.timeout_ms;
}

/* Our status line and headers for r, into buf: room for the fixed parts (HEAD_MAX), the set
 * headers, the reason and the content type. Copies, not printf: an answer leaves on every
 * call, and snprintf was 7 % of the loop's instructions. length < 0: no Content-Length (a
 * stream). */
static size_t head_print(struct http_req *r, char **buf, size_t *cap, int status,
			 const char *reason, const char *ctype, int64_t length)
{
	char *p;

	if (!reason)
		reason = http_reason(status);
	*buf = xreserve(*buf, HEAD_MAX + r->hlen + strlen(reason) + (ctype ? strlen(ctype) : 0),
			cap, 1024);
	p = PUT(*buf, "HTTP/1.1 ");
	p += jsonw_int_text(p, status);
	*p++ = ' ';
	p = stpcpy(p, reason);
	p = PUT(p, "\r\nDate: ");
	p = stpcpy(p, http_date_now());
	p = PUT(p, "\r\n");
	for (unsigned i = 0; i < r->nout; i++)
		p = mempcpy(p, r->hbuf + r->out[i].off, r->out[i].len);
	if (ctype) {
		p = PUT(p, "Content-Type: ");
		p = stpcpy(p, ctype);
		p = PUT(p, "\r\n");
	}
	if (length >= 0) {
		p = PUT(p, "Content-Length: ");
		p += jsonw_int_text(p, length);
		p = PUT(p, "\r\n");
	} else if (r->chunked) {
		p = PUT(p, "Transfer-Encoding: chunked\r\n");
	}
	if (!r->keep_alive)
		p = PUT(p, "Connection: close\r\n");
	else if (r->c->parser.head.minor == 0)
		p = PUT(p, "Connection: keep-alive\r\n");
	p = PUT(p, "\r\n");
	return (size_t)(p - *buf);
}

void http_req_send(struct http_req *r, int status, const char *reason, const char *ctype,
		   const void *body, size_t len)
{
	struct iovec iov = { (void *)body, len };

	http_req_sendv(r, status, reason, ctype, body ? &iov : NULL, body ? 1 : 0);
}

void http_req_sendv(struct http_req *r, int status, const char *reason, const char *ctype,
		    const struct iovec *body, int nbody)
{
	struct http_conn *c = r->c;
	struct iovec iov[1 + HTTP_SENDV_MAX];
	size_t n, len = 0;

	if (!c->req_live)
		return;
	if (c->state == CONN_STREAMING) {
		http_req_stream_end(r);
		return;
	}
	if (nbody < 0 || nbody > HTTP_SENDV_MAX)
		nbody = 0;      /* a caller's bug: an answer without its body, not an overflow */
	for (int i = 0; i < nbody; i++)
		len += body[i].iov_len;
	n = head_print(r, &c->s->head, &c->s->head_cap, status, reason, nbody ? ctype : NULL,
		       nbody ? (int64_t)len : 0);
	iov[0] = (struct iovec){ c->s->head, n };
	if (r->method == HTTP_HEAD)
		nbody = 0;
	for (int i = 0; i < nbody; i++)
		iov[1 + i] = body[i];
	if (conn_write(c, iov, 1 + nbody) == 0) {
		req_done(c);
	} else {                /* the connection is failing: the owner is done all the same */
		c->req_live = false;
		req_reset(&c->req);
	}
}

void http_req_stream_start(struct http_req *r, int status, const char *reason)
{
	struct http_conn *c = r->c;
	struct iovec iov;

	if (!c->req_live || c->state != CONN_SERVING)
		return;
	/* HTTP/1.0 has no chunks: the answer runs to the connection's end. */
	r->chunked = c->parser.head.minor >= 1;
	if (!r->chunked)
		r->keep_alive = false;
	c->state = CONN_STREAMING;
	iov.iov_len = head_print(r, &c->s->head, &c->s->head_cap, status, reason, NULL, -1);
	iov.iov_base = c->s->head;
	/* A failed write closes the connection on the next turn (conn_fail): the owner hears it
	 * through the request's gone hook, as from any later write of the stream. */
	(void)conn_write(c, &iov, 1);
}

int http_req_stream_write(struct http_req *r, const void *data, size_t len)
{
	struct iovec iov = { (void *)data, len };

	return http_req_stream_writev(r, &iov, 1);
}

int http_req_stream_writev(struct http_req *r, const struct iovec *data, int n)
{
	struct http_conn *c = r->c;
	char size[24];
	struct iovec iov[HTTP_SENDV_MAX + 2];
	size_t len = 0;
	int k = 0;

	if (!c->req_live || c->state != CONN_STREAMING)
		return -EPIPE;
	if (n < 0 || n > HTTP_SENDV_MAX)
		return -EINVAL;
	for (int i = 0; i < n; i++)
		len += data[i].iov_len;
	if (!len)
		return 0;       /* an empty chunk would end the answer */
	if (r->chunked)
		iov[k++] = (struct iovec){ size, (size_t)snprintf(size, sizeof(size), "%zx\r\n", len) };
	for (int i = 0; i < n; i++)
		iov[k++] = data[i];
	if (r->chunked)
		iov[k++] = (struct iovec){ "\r\n", 2 };
	return conn_write(c, iov, k);
}

void http_req_stream_end(struct http_req *r)
{
	struct http_conn *c = r->c;
	struct iovec iov = { "0\r\n\r\n", 5 };

	if (!c->req_live || c->state != CONN_STREAMING)
		return;
	if (r->chunked && conn_write(c, &iov, 1)) {
		c->req_live = false;
		req_reset(&c->req);
		return;
	}
	req_done(c);
}

void http_req_on_gone(struct http_req *r, void (*fn)(void *arg), void *arg)
{
	r->gone = fn;
	r->gone_arg = arg;
}

void http_req_set_header(struct http_req *r, const char *name, const char *value)
{
	size_t nl = strlen(name), vl = strlen(value);
	struct out_header *h = NULL;

	/* A value never breaks the head: a CR or LF in it would start a header of its own. */
	if (strpbrk(value, "\r\n") || strpbrk(name, "\r\n: ")) {
		log_warn("http: answer header %s refused: a line break in it", name);
		return;
	}
	for (unsigned i = 0; i < r->nout && !h; i++)
		if (r->out[i].name_len == nl && ascii_caseeq(r->hbuf + r->out[i].off, name, nl))
			h = &r->out[i];
	if (!h) {
		if (r->nout == OUT_HEADERS_MAX) {
			log_warn("http: more than %d answer headers: %s dropped", OUT_HEADERS_MAX,
				 name);
			return;
		}
		h = &r->out[r->nout++];
	}
	/* appended: a replaced line stays in the buffer, unused, until the request ends */
	r->hbuf = xreserve(r->hbuf, r->hlen + nl + vl + 4, &r->hcap, 256);
	h->off = (uint32_t)r->hlen;
	h->name_len = (uint32_t)nl;
	h->len = (uint32_t)(nl + vl + 4);
	memcpy(r->hbuf + r->hlen, name, nl);
	memcpy(r->hbuf + r->hlen + nl, ": ", 2);
	memcpy(r->hbuf + r->hlen + nl + 2, value, vl);
	memcpy(r->hbuf + r->hlen + nl + 2 + vl, "\r\n", 2);
	r->hlen += h->len;
}

