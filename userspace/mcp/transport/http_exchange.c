/* http_exchange: the same exchange over base/http_client (http:// to an IP address) or libcurl
 * (https://, host names). The libcurl half is what upstream_http did inline before. */
#include "mcp/transport/http_exchange.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "base/alloc.h"
#include "base/curl_loop.h"
#include "base/http_client.h"
#include "base/list.h"
#include "base/log.h"

struct http_endpoint {
	struct http_endpoint *next;     /* in endpoints */
	size_t refs;
	char *url;
	struct http_pool *pool;         /* NULL: libcurl */
	char *target;                   /* path and query */
	char *host;                     /* Host header */
};

struct http_exchange {
	struct curl_xfer xfer;          /* CURLOPT_PRIVATE (libcurl) */
	struct http_exchange_cb cb;
	void *arg;
	struct http_request *req;       /* base/http_client */
	const struct http_head *head;   /* during the native head callback */
	CURL *easy;                     /* libcurl */
	struct curl_slist *hdrs;
	char *joined;                   /* libcurl: a body given in pieces, in one */
	bool head_seen;
	int cb_err;                     /* a callback aborted the exchange */
	char errbuf[CURL_ERROR_SIZE];
};

int http_exchange_init(struct event_base *base, void (*after_fn)(void))
{
	static _Thread_local struct curl_loop_ops ops;      /* the thread's loop keeps it */
	int rc;

	ops.after = after_fn;
	if ((rc = curl_loop_init(base, &ops)) != 0)
		return rc;
	if ((rc = http_client_init(base, after_fn)) != 0) {
		curl_loop_shutdown();
		return rc;
	}
	return 0;
}

void http_exchange_shutdown(void)
{
	http_client_shutdown();
	curl_loop_shutdown();
}

bool http_exchange_running(const struct event_base *base)
{
	return curl_loop_running(base) && http_client_running(base);
}

void http_exchange_pump(void)
{
	curl_loop_pump();
}

/* The endpoints in use, one per URL: every session's link to an upstream holds one (10,000
 * sessions, one parse and one copy of the URL, target and Host). A loop's own: a session's
 * links live on its loop. */
static _Thread_local struct http_endpoint *endpoints;

/* The endpoint for url when one is in use already. */
static struct http_endpoint *endpoint_shared(const char *url)
{
	for (struct http_endpoint *ep = endpoints; url && ep; ep = ep->next)
		if (!strcmp(ep->url, url)) {
			ep->refs++;
			return ep;
		}
	return NULL;
}

int http_endpoint_new(const char *url, const char *name, struct http_endpoint **out)
{
	struct http_endpoint *ep = endpoint_shared(url);
	CURLU *u = ep ? NULL : curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL, *query = NULL;
	unsigned char addr[16];
	bool is_ip;
	int rc = -EINVAL;

	if (ep) {
		*out = ep;
		return 0;
	}
	if (!u)
		return -ENOMEM;
	if (!url || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK) {
		log_error("upstream %s: invalid URL", name ? name : "?");
		goto out;
	}
	if (curl_url_get(u, CURLUPART_QUERY, &query, 0) != CURLUE_OK)
		query = NULL;
	if (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0) {
		log_error("upstream %s: URL scheme must be http or https", name);
		goto out;
	}
	size_t n = strlen(host);
	char bare[64] = "";
	if (n > 2 && host[0] == '[' && n - 2 < sizeof(bare))
		memcpy(bare, host + 1, n - 2);
	else if (n < sizeof(bare))
		memcpy(bare, host, n + 1);
	is_ip = inet_pton(AF_INET, bare, addr) == 1 || inet_pton(AF_INET6, bare, addr) == 1;
	if (!is_ip && !curl_loop_async_dns()) {
		log_error("upstream %s: this libcurl resolves names synchronously; "
			  "use an IP address in the URL", name);
		rc = -ENOTSUP;
		goto out;
	}
	ep = xcalloc(1, sizeof(*ep));
	ep->refs = 1;
	ep->url = xstrdup(url);
	/* credentials in the URL (Basic auth) are libcurl's business */
	char *user = NULL;
	bool creds = curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK && user;
	curl_free(user);
	if (is_ip && !creds && strcasecmp(scheme, "http") == 0 &&
	    http_pool_get(bare, (unsigned)strtoul(port, NULL, 10), &ep->pool) == 0) {
		char *p = NULL;
		size_t tl = strlen(path) + (query ? strlen(query) + 1 : 0) + 1;
		ep->target = xmalloc(tl);
		snprintf(ep->target, tl, "%s%s%s", path, query ? "?" : "", query ? query : "");
		/* the Host header as the URL spells it: the port only when the URL has one */
		if (curl_url_get(u, CURLUPART_PORT, &p, 0) == CURLUE_OK && p) {
			size_t hl = strlen(host) + strlen(p) + 2;
			ep->host = xmalloc(hl);
			snprintf(ep->host, hl, "%s:%s", host, p);
		} else {
			ep->host = xstrdup(host);
		}
		curl_free(p);
	}
	ep->next = endpoints;
	endpoints = ep;
	*out = ep;
	rc = 0;
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(path);
	curl_free(query);
	curl_url_cleanup(u);
	return rc;
}

void http_endpoint_free(struct http_endpoint *ep)
{
	if (!ep || --ep->refs)
		return;
	for (struct http_endpoint **pp = &endpoints; *pp; pp = &(*pp)->next)
		if (*pp == ep) {
			*pp = ep->next;
			break;
		}
	free(ep->url);
	free(ep->target);
	free(ep->host);
	free(ep);
}

bool http_endpoint_native(const struct http_endpoint *ep)
{
	return ep && ep->pool;
}

/* ---- the end of an exchange, either way ---- */

static void finish(struct http_exchange *x, int err, const char *why, const char *detail)
{
	struct http_exchange_cb cb = x->cb;
	void *arg = x->arg;

	curl_xfer_end(&x->easy, &x->hdrs);
	free(x->joined);
	alloc_cache_put(x);     /* one a call: kept for the next (base/alloc.h) */
	if (cb.done)
		cb.done(arg, err, why, detail);
}

static const char *why_of(int err)
{
	switch (err) {
	case -ECONNREFUSED: return "cannot connect to upstream";
	case -ETIMEDOUT: return "upstream did not answer in time";
	case -EHOSTUNREACH: return "cannot resolve upstream host";
	case -ECONNRESET: return "upstream closed the connection";
	case -EAGAIN: return "too many connections to upstream";
	default: return "HTTP transfer to upstream failed";
	}
}

/* ---- base/http_client ---- */

static int n_head(void *arg, const struct http_head *h)
{
	struct http_exchange *x = arg;
	int rc;

	x->head = h;
	x->head_seen = true;
	rc = x->cb.head ? x->cb.head(x->arg, x, h->status) : 0;
	x->head = NULL;
	return x->cb_err = rc;
}

static int n_body(void *arg, const char *p, size_t n)
{
	struct http_exchange *x = arg;

	return x->cb_err = x->cb.body ? x->cb.body(x->arg, p, n) : 0;
}

static void n_done(void *arg, int err)
{
	struct http_exchange *x = arg;
	const char *detail = err == -EPROTO ? "malformed HTTP answer" :
			     err == -EMSGSIZE ? "HTTP answer head over its limits" :
			     err ? strerror(-err) : "";

	x->req = NULL;
	if (err && x->cb_err)
		finish(x, x->cb_err, "", "aborted by the transport");
	else
		finish(x, err, err ? why_of(err) : "", detail);
}

static const struct http_request_cb native_cb = { n_head, n_body, n_done };

/* ---- libcurl ---- */

static void c_head(struct http_exchange *x)
{
	long status = 0;

	x->head_seen = true;
	if (curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK)
		status = 0;
	if (x->cb.head)
		x->cb_err = x->cb.head(x->arg, x, (int)status);
}

static size_t c_write(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct http_exchange *x = arg;
	size_t n = size * nmemb;

	if (!x->head_seen)
		c_head(x);
	if (!x->cb_err && x->cb.body)
		x->cb_err = x->cb.body(x->arg, ptr, n);
	return x->cb_err ? 0 : n;
}

static int curl_errno(CURLcode res)
{
	switch (res) {
	case CURLE_COULDNT_CONNECT: return -ECONNREFUSED;
	case CURLE_OPERATION_TIMEDOUT: return -ETIMEDOUT;
	case CURLE_COULDNT_RESOLVE_HOST: return -EHOSTUNREACH;
	case CURLE_GOT_NOTHING:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_PARTIAL_FILE: return -ECONNRESET;
	default: return -EPROTO;
	}
}

static void c_done(struct curl_xfer *xf, CURLcode res)
{
	struct http_exchange *x = container_of(xf, struct http_exchange, xfer);
	long status = 0;
	char detail[CURL_ERROR_SIZE];

	if (res == CURLE_OK && !x->head_seen &&
	    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK && status)
		c_head(x);              /* no body at all (202, 405, ...) */
	if (x->cb_err) {
		finish(x, x->cb_err, "", "aborted by the transport");
		return;
	}
	if (res == CURLE_OK) {
		finish(x, 0, "", "");
		return;
	}
	snprintf(detail, sizeof(detail), "%s", x->errbuf[0] ? x->errbuf : curl_easy_strerror(res));
	int err = curl_errno(res);
	finish(x, err, why_of(err), detail);
}

/* "Name: value\r\n" lines into a curl list. */
static int curl_headers(struct http_exchange *x, const char *h, size_t n)
{
	const char *end = h + n;

	/* no "Expect: 100-continue" round trip for bodies above 1 KiB */
	if (!(x->hdrs = curl_slist_append(x->hdrs, "Expect:")))
		return -ENOMEM;
	while (h && h < end) {
		const char *e = memmem(h, (size_t)(end - h), "\r\n", 2);
		char line[8192];
		size_t l = e ? (size_t)(e - h) : (size_t)(end - h);
		struct curl_slist *s;
		if (l >= sizeof(line))
			return -E2BIG;
		memcpy(line, h, l);
		line[l] = '\0';
		if (!(s = curl_slist_append(x->hdrs, line)))
			return -ENOMEM;
		x->hdrs = s;
		h += l + 2;
	}
	return 0;
}

#define SET(opt, val) do {                                              \
	if (curl_easy_setopt(e, opt, val) != CURLE_OK)                  \
		goto out;                                               \
} while (0)

static int curl_start(const struct http_endpoint *ep, const struct http_exchange_req *r,
		      struct http_exchange *x)
{
	CURL *e = curl_easy_init();
	int rc;

	if (!e)
		return -ENOMEM;
	if ((rc = curl_headers(x, r->headers, r->headers ? r->headers_len : 0)) != 0)
		goto out;
	rc = -EINVAL;
	if (curl_xfer_setup(e, &x->xfer, &(struct curl_xfer_opts){
				.url = ep->url, .user_agent = "mcpwarden", .write = c_write,
				.data = x, .errbuf = x->errbuf, .headers = x->hdrs }))
		goto out;
	if (r->connect_ms > 0)
		SET(CURLOPT_CONNECTTIMEOUT_MS, r->connect_ms);
	if (r->timeout_ms > 0)
		SET(CURLOPT_TIMEOUT_MS, r->timeout_ms);
	if (strcmp(r->method, "POST") == 0) {
		const char *body = r->body ? r->body : "";
		size_t len = r->body_len;

		if (r->body_iov) {      /* libcurl posts one buffer: the pieces joined */
			char *p;

			len = 0;
			for (int i = 0; i < r->body_iovcnt; i++)
				len += r->body_iov[i].iov_len;
			body = p = x->joined = xmalloc(len + 1);
			for (int i = 0; i < r->body_iovcnt; i++)
				p = mempcpy(p, r->body_iov[i].iov_base, r->body_iov[i].iov_len);
		}
		SET(CURLOPT_POSTFIELDS, body);
		SET(CURLOPT_POSTFIELDSIZE, (long)len);
	} else if (strcmp(r->method, "GET") != 0) {
		SET(CURLOPT_CUSTOMREQUEST, r->method);
	}
	rc = -ENOMEM;
	if (curl_multi_add_handle(curl_loop_multi(), e) != CURLM_OK)
		goto out;
	x->easy = e;
	return 0;
out:
	if (rc == -EINVAL)
		log_error("upstream http: curl_easy_setopt failed");
	curl_easy_cleanup(e);
	return rc;
}

/* ---- public ---- */

int http_exchange_start(const struct http_endpoint *ep, const struct http_exchange_req *r,
			const struct http_exchange_cb *cb, void *arg, struct http_exchange **out)
{
	/* errbuf (most of it) is libcurl's to fill: only its first byte cleared */
	struct http_exchange *x = alloc_cache_get(sizeof(*x));
	int rc;

	memset(x, 0, offsetof(struct http_exchange, errbuf));
	x->errbuf[0] = '\0';
	x->xfer.done = c_done;
	x->cb = *cb;
	x->arg = arg;
	if (ep->pool) {
		struct http_request_spec s = {
			.method = r->method, .target = ep->target, .host = ep->host,
			.headers = r->headers, .headers_len = r->headers_len,
			.body = r->body, .body_len = r->body_len,
			.body_iov = r->body_iov, .body_iovcnt = r->body_iovcnt,
			.has_body = strcmp(r->method, "POST") == 0,
			.timeout_ms = r->timeout_ms, .connect_ms = r->connect_ms,
		};
		rc = http_request_start(ep->pool, &s, &native_cb, x, &x->req);
	} else {
		rc = curl_start(ep, r, x);
	}
	if (rc != 0)
		goto fail;
	*out = x;
	return 0;
fail:
	http_exchange_cancel(x);
	return rc;
}

void http_exchange_cancel(struct http_exchange *x)
{
	if (!x)
		return;
	http_request_cancel(x->req);
	curl_xfer_end(&x->easy, &x->hdrs);
	free(x->joined);
	alloc_cache_put(x);
}

const char *http_exchange_header(struct http_exchange *x, const char *name)
{
	struct curl_header *h = NULL;

	if (x->head)
		return http_head_get(x->head, name);
	if (x->easy && curl_easy_header(x->easy, name, 0, CURLH_HEADER, -1, &h) == CURLHE_OK)
		return h->value;
	if (x->easy && !strcasecmp(name, "Content-Type")) {
		char *ct = NULL;
		return curl_easy_getinfo(x->easy, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK ? ct : NULL;
	}
	return NULL;
}
