/* oauth_jwks: JWKS fetching on the loop (oauth_jwks.h). */
#include "govern/oauth_jwks.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/curl_loop.h"
#include "base/list.h"
#include "base/log.h"
#include "govern/jwt.h"
#include "govern/oauth.h"

#define FETCH_TIMEOUT_MS  10000
#define RETRY_MS          30000   /* after a failure, before the next scheduled refresh */

struct oauth_jwks {
	struct curl_xfer xfer;
	struct event *timer;
	char *url;
	int64_t refresh_ms, min_refetch_ms;
	int64_t last_start_ms;      /* 0 never */
	CURL *easy;
	struct curl_slist *hdrs;
	char errbuf[CURL_ERROR_SIZE];
	char *buf;
	size_t len;
	bool overflow;
	struct jwks *keys;
};

static void schedule(struct oauth_jwks *j, int64_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000) };

	if (evtimer_add(j->timer, &tv) < 0)
		log_error("oauth: cannot arm the JWKS refresh timer");
}

static size_t on_write(char *p, size_t size, size_t n, void *data)
{
	struct oauth_jwks *j = data;
	size_t add = size * n;

	if (j->len + add > JWKS_MAX_TEXT) {
		j->overflow = true;
		return 0;   /* curl ends the transfer with CURLE_WRITE_ERROR */
	}
	j->buf = xrealloc(j->buf, j->len + add + 1);
	memcpy(j->buf + j->len, p, add);
	j->len += add;
	return add;
}

static void xfer_end(struct oauth_jwks *j)
{
	curl_xfer_end(&j->easy, &j->hdrs);
	free(j->buf);
	j->buf = NULL;
	j->len = 0;
	j->overflow = false;
}

static void on_done(struct curl_xfer *x, CURLcode res)
{
	struct oauth_jwks *j = container_of(x, struct oauth_jwks, xfer);
	long status = 0;
	const char *why = NULL;
	struct jwks *ks = NULL;

	curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &status);
	if (res != CURLE_OK)
		log_warn("oauth: cannot fetch the JWKS %s: %s", j->url,
			 j->overflow ? "larger than 256 KiB"
				     : j->errbuf[0] ? j->errbuf : curl_easy_strerror(res));
	else if (status != 200)
		log_warn("oauth: the JWKS %s answered HTTP %ld", j->url, status);
	else if (jwks_parse_text(j->buf ? j->buf : "", j->len, &ks, &why))
		log_warn("oauth: the JWKS %s is unusable: %s", j->url, why);
	xfer_end(j);
	if (ks) {
		log_info("oauth: %zu key(s) from %s", jwks_count(ks), j->url);
		jwks_free(j->keys);
		j->keys = ks;
		schedule(j, j->refresh_ms);
	} else {
		schedule(j, j->refresh_ms < RETRY_MS ? j->refresh_ms : RETRY_MS);
	}
}

static void start(struct oauth_jwks *j)
{
	CURL *e;

	if (j->easy || !j->url)
		return;
	j->last_start_ms = (int64_t)clock_mono_ms();
	e = curl_easy_init();
	j->hdrs = curl_slist_append(NULL, "Accept: application/json");
	if (!e || !j->hdrs ||
	    curl_xfer_setup(e, &j->xfer, &(struct curl_xfer_opts){
				.url = j->url, .user_agent = "mcpwarden/" WARDEN_VERSION,
				.write = on_write, .data = j, .errbuf = j->errbuf,
				.headers = j->hdrs }) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)FETCH_TIMEOUT_MS) != CURLE_OK ||
	    curl_multi_add_handle(curl_loop_multi(), e) != CURLM_OK) {
		log_error("oauth: cannot start fetching the JWKS %s", j->url);
		curl_easy_cleanup(e);   /* never added: nothing to take out of the multi */
		curl_slist_free_all(j->hdrs);
		j->hdrs = NULL;
		schedule(j, RETRY_MS);
		return;
	}
	j->easy = e;
	curl_loop_pump();
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	start(arg);
}

int oauth_jwks_new(struct event_base *base, struct oauth_jwks **out)
{
	struct oauth_jwks *j = xcalloc(1, sizeof(*j));

	j->xfer.done = on_done;
	j->timer = evtimer_new(base, on_timer, j);
	if (!j->timer) {
		free(j);
		return -ENOMEM;
	}
	*out = j;
	return 0;
}

static void stop(struct oauth_jwks *j)
{
	xfer_end(j);
	evtimer_del(j->timer);
	jwks_free(j->keys);
	j->keys = NULL;
	free(j->url);
	j->url = NULL;
	j->last_start_ms = 0;
}

void oauth_jwks_free(struct oauth_jwks *j)
{
	if (!j)
		return;
	stop(j);
	event_free(j->timer);
	free(j);
}

void oauth_jwks_configure(struct oauth_jwks *j, const struct oauth_config *c)
{
	const char *url = c ? c->jwks_url : NULL;

	if (url && j->url && !strcmp(url, j->url)) {
		j->refresh_ms = c->jwks_refresh_ms;
		j->min_refetch_ms = c->jwks_min_refetch_ms;
		return;
	}
	stop(j);
	if (!url)
		return;
	j->url = xstrdup(url);
	j->refresh_ms = c->jwks_refresh_ms;
	j->min_refetch_ms = c->jwks_min_refetch_ms;
	if (!curl_loop_running(event_get_base(j->timer))) {
		log_error("oauth: no HTTP client on this loop: the JWKS %s cannot be fetched", url);
		return;
	}
	start(j);
}

const struct jwks *oauth_jwks_current(const struct oauth_jwks *j) { return j->keys; }

void oauth_jwks_unknown_kid(struct oauth_jwks *j)
{
	int64_t now = (int64_t)clock_mono_ms();

	if (!j->url || j->easy || (j->last_start_ms && now - j->last_start_ms < j->min_refetch_ms))
		return;
	evtimer_del(j->timer);
	start(j);
}
