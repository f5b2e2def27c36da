/* curl_loop: curl multi on libevent. */
#include "base/curl_loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/event_opt.h"
#include "base/list.h"
#include "base/log.h"

struct sock {
	struct list_head link;
	struct event *ev;
};

/* A loop's multi handle: one a loop thread (curl_global_init counts its users). */
static _Thread_local struct {
	struct event_base *base;
	CURLM *multi;
	struct event *timer;
	bool async_dns;
	struct list_head socks;
	const struct curl_loop_ops *ops;
} g;

void curl_loop_pump(void)
{
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(g.multi, &left))) {
		char *priv = NULL;
		if (m->msg != CURLMSG_DONE)
			continue;
		if (curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv) == CURLE_OK && priv) {
			struct curl_xfer *x = (struct curl_xfer *)(void *)priv;
			x->done(x, m->data.result);
		}
	}
	if (g.ops && g.ops->after)
		g.ops->after();
}

static void socket_action(evutil_socket_t fd, int action)
{
	int running;
	CURLMcode mc = curl_multi_socket_action(g.multi, fd, action, &running);

	if (mc != CURLM_OK)
		log_error("curl: curl_multi_socket_action: %s", curl_multi_strerror(mc));
	curl_loop_pump();
}

static void sock_ready(evutil_socket_t fd, short what, void *arg)
{
	socket_action(fd, (what & EV_READ ? CURL_CSELECT_IN : 0) |
			  (what & EV_WRITE ? CURL_CSELECT_OUT : 0));
}

static void curl_timeout(evutil_socket_t fd, short what, void *arg)
{
	socket_action(CURL_SOCKET_TIMEOUT, 0);
}

static void sock_free(struct sock *sk)
{
	list_del(&sk->link);
	event_free(sk->ev);
	free(sk);
}

static int on_socket(CURL *e, curl_socket_t s, int what, void *userp, void *sockp)
{
	struct sock *sk = sockp;
	short kind;

	if (what == CURL_POLL_REMOVE) {
		if (sk)
			sock_free(sk);
		return 0;
	}
	kind = EV_PERSIST | (what & CURL_POLL_IN ? EV_READ : 0) |
	       (what & CURL_POLL_OUT ? EV_WRITE : 0);
	if (sk) {
		event_del(sk->ev);
		if (event_assign(sk->ev, g.base, s, kind, sock_ready, NULL) != 0)
			return -1;
	} else {
		sk = xcalloc(1, sizeof(*sk));
		if (!(sk->ev = event_new(g.base, s, kind, sock_ready, NULL))) {
			free(sk);
			return -1;
		}
		list_add(&sk->link, &g.socks);
		if (curl_multi_assign(g.multi, s, sk) != CURLM_OK)
			return -1;
	}
	return event_add(sk->ev, NULL) == 0 ? 0 : -1;
}

static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
	struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };

	if (timeout_ms < 0)
		return event_del(g.timer) == 0 ? 0 : -1;
	return evtimer_add(g.timer, &tv) == 0 ? 0 : -1;
}

int curl_loop_init(struct event_base *base, const struct curl_loop_ops *ops)
{
	const curl_version_info_data *v;
	int rc = -ENOMEM;

	if (g.multi)
		return g.base == base ? 0 : -EBUSY;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return -ENOMEM;
	v = curl_version_info(CURLVERSION_NOW);
	g.async_dns = v && (v->features & CURL_VERSION_ASYNCHDNS);
	if (g.async_dns)
		log_debug("curl: libcurl %s with an asynchronous resolver", v->version);
	else
		log_warn("curl: libcurl %s resolves names synchronously: HTTP upstream and API "
			 "server URLs must use IP addresses", v ? v->version : "?");
	g.base = base;
	g.ops = ops;
	list_init(&g.socks);
	if (!(g.timer = evtimer_new(base, curl_timeout, NULL)) || !(g.multi = curl_multi_init()))
		goto fail;
	/* Keep-alive connections outlive their transfers: a cache sized for the concurrency a
	 * gateway sees, not libcurl's default (4 per easy handle in use), which closes and reopens
	 * upstream connections as the number of calls in flight moves. */
	if (curl_multi_setopt(g.multi, CURLMOPT_SOCKETFUNCTION, on_socket) != CURLM_OK ||
	    curl_multi_setopt(g.multi, CURLMOPT_TIMERFUNCTION, on_timer) != CURLM_OK ||
	    curl_multi_setopt(g.multi, CURLMOPT_MAXCONNECTS, 512L) != CURLM_OK) {
		rc = -EINVAL;
		goto fail;
	}
	return 0;
fail:
	if (g.multi)
		curl_multi_cleanup(g.multi);
	event_free_opt(g.timer);
	curl_global_cleanup();
	memset(&g, 0, sizeof(g));
	return rc;
}

void curl_loop_shutdown(void)
{
	if (!g.multi)
		return;
	curl_multi_cleanup(g.multi);
	/* Sockets of cached connections curl did not report. */
	while (!list_empty(&g.socks))
		sock_free(list_first_entry(&g.socks, struct sock, link));
	event_free(g.timer);
	curl_global_cleanup();
	memset(&g, 0, sizeof(g));
}

bool curl_loop_running(const struct event_base *base) { return g.multi && g.base == base; }
CURLM *curl_loop_multi(void) { return g.multi; }
struct event_base *curl_loop_base(void) { return g.base; }
bool curl_loop_async_dns(void) { return g.async_dns; }

CURLcode curl_xfer_setup(CURL *e, struct curl_xfer *x, const struct curl_xfer_opts *o)
{
	CURLcode rc;

	o->errbuf[0] = '\0';
	if ((rc = curl_easy_setopt(e, CURLOPT_URL, o->url)) ||
	    (rc = curl_easy_setopt(e, CURLOPT_PRIVATE, x)) ||
	    (rc = curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, o->write)) ||
	    (rc = curl_easy_setopt(e, CURLOPT_WRITEDATA, o->data)) ||
	    (rc = curl_easy_setopt(e, CURLOPT_ERRORBUFFER, o->errbuf)) ||
	    (rc = curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L)) ||
	    (rc = curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https")) ||
	    (rc = curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L)) ||
	    (rc = curl_easy_setopt(e, CURLOPT_USERAGENT, o->user_agent)) ||
	    (rc = curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L)) ||
	    (rc = curl_easy_setopt(e, CURLOPT_HTTPHEADER, o->headers)))
		return rc;
	return CURLE_OK;
}

void curl_xfer_end(CURL **e, struct curl_slist **headers)
{
	if (*e) {
		CURLMcode mc = curl_multi_remove_handle(g.multi, *e);

		if (mc != CURLM_OK)
			log_error("curl_multi_remove_handle: %s", curl_multi_strerror(mc));
		curl_easy_cleanup(*e);
		*e = NULL;
	}
	curl_slist_free_all(*headers);
	*headers = NULL;
}
