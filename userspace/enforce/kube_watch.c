/* kube_watch: the pods of this node from the API server, LIST then WATCH, on the event loop.
 *
 *   LIST  /api/v1/pods?fieldSelector=spec.nodeName=<node>&limit=500   (pages: continue)
 *   WATCH /api/v1/pods?fieldSelector=...&watch=1&resourceVersion=<rv>&allowWatchBookmarks=true
 *
 * The watch is a never-ending chunked answer of JSON lines ({"type", "object"}), handled as
 * each line completes. A 410 Gone (the resource version is too old) or a broken stream leads
 * to a full re-list, with exponential backoff after failures; a watch the server ends on its
 * own timeout resumes from the last resource version. The service account token is read anew
 * for every request: projected tokens rotate. Every transfer runs on base/curl_loop: nothing
 * here blocks the loop (reading the token is one small read of a tmpfs file).
 */
#include "base/ascii.h"
#include "enforce/kube.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <curl/curl.h>
#include <event2/event.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/curl_loop.h"
#include "base/event_opt.h"
#include "base/json_get.h"
#include "base/list.h"
#include "base/log.h"
#include "govern/keys.h"

#define LIST_MAX_BYTES (32u << 20)	/* one page of up to PAGE_LIMIT pods */
#define LINE_MAX_BYTES (4u << 20)	/* one watch event: one pod object */
#define ERR_BODY_MAX 2048		/* kept of an error answer, for the log */
#define TOKEN_MAX 16384
#define RV_MAX 128
#define CONT_MAX 4096
#define PAGE_LIMIT 500
#define WATCH_TIMEOUT_S 300		/* the server ends a watch after this; we resume */
#define CONNECT_TIMEOUT_MS 10000
#define LIST_TIMEOUT_MS 60000
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000
#define RETRY_MS 250			/* cgroups not there yet: a new pod's cgroup is found soon */

enum phase { PH_IDLE, PH_LIST, PH_WATCH };

struct kube_watch {
	struct curl_xfer xfer;		/* CURLOPT_PRIVATE of the transfer in flight */
	struct event_base *base;
	const struct kube_config *c;
	struct kube_pods *pods;
	enum phase phase;		/* of the transfer in flight */
	enum phase next;		/* what the timer starts */
	CURL *easy;
	struct curl_slist *hdrs;
	char *buf;
	size_t len, cap;
	long status;
	bool relist;			/* a 410 arrived in the stream */
	bool overflow;			/* the answer broke a size limit */
	bool listing;			/* a paged list has begun (kube_pods_sync_begin) */
	char rv[RV_MAX];
	char *cont;			/* continue token of a paged list */
	unsigned backoff_ms;
	uint64_t started_ms;
	unsigned nevents;		/* events handled by the current watch */
	struct event *timer;
	struct event *retry;
	char errbuf[CURL_ERROR_SIZE];
};

static void on_done(struct curl_xfer *x, CURLcode res);

/* ---- scheduling ------------------------------------------------------------------------------ */

static void schedule(struct kube_watch *w, enum phase next, unsigned ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	w->next = next;
	if (event_add(w->timer, &tv) < 0)
		log_error("kubernetes: cannot arm a timer: the pod watch stops");
}

/* After a failure: wait, doubling up to BACKOFF_MAX_MS, then list again. */
static void fail_later(struct kube_watch *w)
{
	unsigned ms = w->backoff_ms;

	w->backoff_ms = w->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : w->backoff_ms * 2;
	log_info("kubernetes: listing pods again in %u ms", ms);
	schedule(w, PH_LIST, ms);
}

static void arm_retry(struct kube_watch *w)
{
	if (kube_pods_pending(w->pods) && !evtimer_pending(w->retry, NULL)) {
		struct timeval tv = { RETRY_MS / 1000, (RETRY_MS % 1000) * 1000 };

		if (evtimer_add(w->retry, &tv) < 0)
			log_error("kubernetes: cannot arm the retry timer");
	}
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
	struct kube_watch *w = arg;

	kube_pods_retry(w->pods);
	arm_retry(w);
}

/* ---- the token --------------------------------------------------------------------------- */

/* The bearer token, read now (it rotates). Printable ASCII only; trailing whitespace cut. */
static int read_token(const char *path, char *tok, size_t len)
{
	struct stat st;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_size <= 0 || (size_t)st.st_size >= len) {
		rc = -EINVAL;
		goto out;
	}
	n = read(fd, tok, len - 1);
	if (n < 0) {
		rc = -errno;
		goto out;
	}
	while (n > 0 && (tok[n - 1] == '\n' || tok[n - 1] == '\r' || tok[n - 1] == ' ' ||
			 tok[n - 1] == '\t'))
		n--;
	tok[n] = '\0';
	if (n == 0 || !ascii_span(tok, (size_t)n, false))
		rc = -EINVAL;
out:
	close(fd);
	return rc;
}

/* ---- transfers ------------------------------------------------------------------------------ */

static void xfer_free(struct kube_watch *w)
{
	curl_xfer_end(&w->easy, &w->hdrs);
	if (w->cap > (1u << 20)) {	/* a big list page: do not keep its memory */
		free(w->buf);
		w->buf = NULL;
		w->cap = 0;
	}
	w->len = 0;
	w->status = 0;
	w->relist = false;
	w->overflow = false;
	w->phase = PH_IDLE;
}

static bool buf_add(struct kube_watch *w, const char *p, size_t n, size_t max)
{
	if (w->len + n + 1 > max)
		return false;
	if (w->len + n + 1 > w->cap) {
		size_t cap = w->cap ? w->cap : 16384;

		while (cap < w->len + n + 1)
			cap *= 2;
		w->buf = xrealloc(w->buf, cap);
		w->cap = cap;
	}
	memcpy(w->buf + w->len, p, n);
	w->len += n;
	w->buf[w->len] = '\0';
	return true;
}

/* A resource version as the API gives it: an opaque short token, kept only if plain. */
static bool rv_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	return n > 0 && n < RV_MAX && strspn(s, "0123456789abcdefghijklmnopqrstuvwxyz"
					     "ABCDEFGHIJKLMNOPQRSTUVWXYZ._-") == n;
}

static void take_rv(struct kube_watch *w, const cJSON *obj)
{
	const cJSON *meta = json_get(obj, "metadata");
	const cJSON *rv = json_get(meta, "resourceVersion");

	if (cJSON_IsString(rv) && rv_ok(rv->valuestring))
		snprintf(w->rv, sizeof(w->rv), "%s", rv->valuestring);
}

/* One line of the watch stream. */
static void watch_event(struct kube_watch *w, const char *line, size_t n)
{
	cJSON *ev = cJSON_ParseWithLength(line, n);
	const cJSON *type = json_get(ev, "type");
	const cJSON *obj = json_get(ev, "object");
	const char *t = cJSON_IsString(type) ? type->valuestring : NULL;

	if (!cJSON_IsObject(ev) || !t || !cJSON_IsObject(obj)) {
		log_warn("kubernetes: a watch event that is not {\"type\", \"object\"} (%zu bytes): "
			 "ignored", n);
		goto out;
	}
	w->nevents++;
	if (!strcmp(t, "ERROR")) {
		const cJSON *code = json_get(obj, "code");
		const cJSON *msg = json_get(obj, "message");

		log_info("kubernetes: the watch ended with an error (%d: %.200s): re-listing",
			 cJSON_IsNumber(code) ? code->valueint : 0,
			 cJSON_IsString(msg) ? msg->valuestring : "");
		w->relist = true;
		goto out;
	}
	if (!strcmp(t, "ADDED") || !strcmp(t, "MODIFIED"))
		kube_pods_apply(w->pods, obj);
	else if (!strcmp(t, "DELETED"))
		kube_pods_delete(w->pods, obj);
	else if (strcmp(t, "BOOKMARK"))
		log_warn("kubernetes: unknown watch event type \"%.32s\": ignored", t);
	take_rv(w, obj);
out:
	cJSON_Delete(ev);
}

static size_t write_cb(char *p, size_t size, size_t nmemb, void *arg)
{
	struct kube_watch *w = arg;
	size_t n = size * nmemb;
	char *nl;

	if (!w->status)
		curl_easy_getinfo(w->easy, CURLINFO_RESPONSE_CODE, &w->status);
	if (w->status != 200) {	/* keep the start of an error answer for the log */
		if (w->len < ERR_BODY_MAX)
			buf_add(w, p, n < ERR_BODY_MAX - w->len ? n : ERR_BODY_MAX - w->len,
				ERR_BODY_MAX + 1);
		return n;
	}
	if (w->phase == PH_LIST) {
		if (!buf_add(w, p, n, LIST_MAX_BYTES)) {
			w->overflow = true;
			return 0;	/* aborts the transfer */
		}
		return n;
	}
	if (!buf_add(w, p, n, LINE_MAX_BYTES + n)) {
		w->overflow = true;
		return 0;
	}
	while ((nl = memchr(w->buf, '\n', w->len))) {
		size_t line = (size_t)(nl - w->buf);

		if (line > 0)
			watch_event(w, w->buf, line);
		memmove(w->buf, nl + 1, w->len - line - 1);
		w->len -= line + 1;
		w->buf[w->len] = '\0';
		if (w->relist)
			return 0;
	}
	if (w->len > LINE_MAX_BYTES) {
		w->overflow = true;
		return 0;
	}
	arm_retry(w);
	return n;
}

static int start(struct kube_watch *w, enum phase ph)
{
	char url[8192], tok[TOKEN_MAX], hdr[TOKEN_MAX + 32];
	char *cont = NULL;
	CURL *e;
	int rc, n;

	rc = read_token(w->c->token_file, tok, sizeof(tok));
	if (rc) {
		log_error("kubernetes: cannot read the service account token %s: %s",
			  w->c->token_file, strerror(-rc));
		return rc;
	}
	e = w->easy = curl_easy_init();
	if (!e) {
		rc = -ENOMEM;
		goto out;
	}
	if (ph == PH_LIST && w->cont && !(cont = curl_easy_escape(e, w->cont, 0))) {
		rc = -ENOMEM;
		goto out;
	}
	if (ph == PH_LIST)
		n = snprintf(url, sizeof(url), "%s/api/v1/pods?fieldSelector=spec.nodeName%%3D%s"
			     "&limit=%d%s%s", w->c->api_server, w->c->node_name, PAGE_LIMIT,
			     cont ? "&continue=" : "", cont ? cont : "");
	else
		n = snprintf(url, sizeof(url), "%s/api/v1/pods?fieldSelector=spec.nodeName%%3D%s"
			     "&watch=1&allowWatchBookmarks=true&timeoutSeconds=%d"
			     "&resourceVersion=%s", w->c->api_server, w->c->node_name,
			     WATCH_TIMEOUT_S, w->rv);
	curl_free(cont);
	if (n < 0 || (size_t)n >= sizeof(url)) {
		rc = -ENAMETOOLONG;
		goto out;
	}
	snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s", tok);
	w->hdrs = curl_slist_append(NULL, hdr);
	explicit_bzero(hdr, sizeof(hdr));
	if (!w->hdrs || !curl_slist_append(w->hdrs, "Accept: application/json")) {
		rc = -ENOMEM;
		goto out;
	}
	rc = -EINVAL;
	if (curl_xfer_setup(e, &w->xfer, &(struct curl_xfer_opts){
				.url = url, .user_agent = "mcpwarden-node/" WARDEN_VERSION,
				.write = write_cb, .data = w, .errbuf = w->errbuf,
				.headers = w->hdrs }))
		goto out;
#define SET(opt, val) do { if (curl_easy_setopt(e, opt, val) != CURLE_OK) goto out; } while (0)
	SET(CURLOPT_CONNECTTIMEOUT_MS, (long)CONNECT_TIMEOUT_MS);
	if (!strncasecmp(w->c->api_server, "https:", 6)) {
		/* Only the cluster's CA: not the host's bundle. */
		SET(CURLOPT_CAINFO, w->c->ca_file);
		SET(CURLOPT_CAPATH, NULL);
	}
	if (ph == PH_LIST) {
		SET(CURLOPT_TIMEOUT_MS, (long)LIST_TIMEOUT_MS);
	} else {	/* a silent stream longer than the server's own timeout is dead */
		SET(CURLOPT_LOW_SPEED_LIMIT, 1L);
		SET(CURLOPT_LOW_SPEED_TIME, (long)WATCH_TIMEOUT_S + 60);
	}
#undef SET
	w->phase = ph;
	w->nevents = 0;
	w->started_ms = clock_mono_ms();
	if (curl_multi_add_handle(curl_loop_multi(), e) != CURLM_OK) {
		rc = -EIO;
		goto out;
	}
	rc = 0;
	log_debug("kubernetes: %s pods of node %s", ph == PH_LIST ? "listing" : "watching",
		  w->c->node_name);
out:
	explicit_bzero(tok, sizeof(tok));
	if (rc) {
		log_error("kubernetes: cannot start a request to %s: %s", w->c->api_server,
			  strerror(-rc));
		xfer_free(w);
	}
	return rc;
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct kube_watch *w = arg;

	if (start(w, w->next))
		fail_later(w);
}

/* ---- answers ----------------------------------------------------------------------------- */

/* One page of the list. 1: more pages follow; 0: the list is complete; -EINVAL: malformed. */
static int list_page(struct kube_watch *w)
{
	cJSON *doc = cJSON_ParseWithLength(w->buf ? w->buf : "", w->len);
	const cJSON *kind = json_get(doc, "kind");
	const cJSON *meta = json_get(doc, "metadata");
	const cJSON *items = json_get(doc, "items");
	const cJSON *rv = json_get(meta, "resourceVersion");
	const cJSON *cont = json_get(meta, "continue");
	const cJSON *it;
	int rc = -EINVAL, n = 0;

	if (!cJSON_IsObject(doc) || (kind && (!cJSON_IsString(kind) ||
					      strcmp(kind->valuestring, "PodList"))) ||
	    !cJSON_IsObject(meta) || !(cJSON_IsArray(items) || cJSON_IsNull(items)) ||
	    !cJSON_IsString(rv) || !rv_ok(rv->valuestring) ||
	    (cont && !cJSON_IsString(cont)) ||
	    (cJSON_IsString(cont) && strlen(cont->valuestring) > CONT_MAX)) {
		log_error("kubernetes: the pod list is not a PodList with metadata.resourceVersion "
			  "and items (%zu bytes): ignored", w->len);
		goto out;
	}
	if (!w->listing) {
		kube_pods_sync_begin(w->pods);
		w->listing = true;
	}
	cJSON_ArrayForEach(it, items) {
		kube_pods_apply(w->pods, it);
		n++;
	}
	free(w->cont);
	w->cont = NULL;
	snprintf(w->rv, sizeof(w->rv), "%s", rv->valuestring);
	if (cJSON_IsString(cont) && *cont->valuestring) {
		w->cont = xstrdup(cont->valuestring);
		rc = 1;
	} else {
		rc = 0;
	}
	log_info("kubernetes: listed %d pod(s) of node %s%s (resource version %s), %zu enforced",
		 n, w->c->node_name, rc ? ", more follow" : "", w->rv, kube_pods_count(w->pods));
out:
	cJSON_Delete(doc);
	return rc;
}

static void fail_log(struct kube_watch *w, CURLcode res, const char *what)
{
	if (w->overflow)
		log_error("kubernetes: %s: the answer is larger than allowed: dropped", what);
	else if (res != CURLE_OK)
		log_warn("kubernetes: %s: %s", what, w->errbuf[0] ? w->errbuf
								  : curl_easy_strerror(res));
	else
		log_warn("kubernetes: %s: HTTP %ld%s%.300s", what, w->status,
			 w->status == 401 || w->status == 403 ? " (token or RBAC: list/watch pods) "
							      : " ",
			 w->buf && w->len ? w->buf : "");
}

static void list_done(struct kube_watch *w, CURLcode res)
{
	int rc;

	if (res != CURLE_OK || w->status != 200 || w->overflow) {
		bool expired = res == CURLE_OK && w->status == 410;

		fail_log(w, res, "listing pods");
		/* An expired continue token: start the list over. */
		free(w->cont);
		w->cont = NULL;
		w->listing = false;
		xfer_free(w);
		if (expired)
			schedule(w, PH_LIST, 0);
		else
			fail_later(w);
		return;
	}
	rc = list_page(w);
	xfer_free(w);
	if (rc < 0) {
		w->listing = false;
		fail_later(w);
		return;
	}
	if (rc > 0) {
		schedule(w, PH_LIST, 0);
		return;
	}
	kube_pods_sync_end(w->pods);
	w->listing = false;
	w->backoff_ms = BACKOFF_MIN_MS;
	arm_retry(w);
	schedule(w, PH_WATCH, 0);
}

static void watch_done(struct kube_watch *w, CURLcode res)
{
	bool gone = w->relist || (res == CURLE_OK && w->status == 410);
	bool brief = clock_mono_ms() - w->started_ms < 1000 && w->nevents == 0;

	if (gone) {
		if (!w->relist)	/* an ERROR event said so already */
			log_info("kubernetes: resource version %s is too old (410 Gone): re-listing",
				 w->rv);
		xfer_free(w);
		schedule(w, PH_LIST, brief ? w->backoff_ms : 0);
		if (brief)
			w->backoff_ms = w->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
									 : w->backoff_ms * 2;
		return;
	}
	if (res == CURLE_OK && w->status == 200 && !w->overflow && !brief) {
		log_debug("kubernetes: the watch ended (server timeout): resuming from %s", w->rv);
		xfer_free(w);
		schedule(w, PH_WATCH, 0);
		return;
	}
	fail_log(w, res, "watching pods");
	xfer_free(w);
	fail_later(w);
}

static void on_done(struct curl_xfer *x, CURLcode res)
{
	struct kube_watch *w = container_of(x, struct kube_watch, xfer);

	if (!w->status && w->easy)
		curl_easy_getinfo(w->easy, CURLINFO_RESPONSE_CODE, &w->status);
	if (w->phase == PH_LIST)
		list_done(w, res);
	else
		watch_done(w, res);
}

/* ---- public -------------------------------------------------------------------------------- */

int kube_watch_start(struct event_base *base, struct enforcer *e, const struct kube_config *c,
		     struct kube_watch **out)
{
	struct kube_watch *w;
	int rc;

	*out = NULL;
	if (!curl_loop_running(base)) {
		log_error("kubernetes: the HTTP loop is not running on this event base");
		return -EINVAL;
	}
	w = xcalloc(1, sizeof(*w));
	w->xfer.done = on_done;
	w->base = base;
	w->c = c;
	w->backoff_ms = BACKOFF_MIN_MS;
	rc = kube_pods_new(e, c, &w->pods);
	if (rc)
		goto fail;
	/* "pod:" workload patterns ask this table, from the next request on. */
	keys_set_pod_lookup(kube_pods_of_cgroup, w->pods);
	w->timer = evtimer_new(base, on_timer, w);
	w->retry = evtimer_new(base, on_retry, w);
	if (!w->timer || !w->retry) {
		rc = -ENOMEM;
		goto fail;
	}
	if (!strncasecmp(c->api_server, "http:", 5))
		log_warn("kubernetes: the API server %s is plain http: the token travels in clear "
			 "(tests only)", c->api_server);
	log_info("kubernetes: watching the pods of node %s at %s: annotation %s, sidecar "
		 "container %s", c->node_name, c->api_server, c->annotation, c->sidecar_container);
	schedule(w, PH_LIST, 0);
	*out = w;
	return 0;
fail:
	kube_watch_stop(w);
	return rc;
}

void kube_watch_stop(struct kube_watch *w)
{
	if (!w)
		return;
	xfer_free(w);
	event_free_opt(w->timer);
	event_free_opt(w->retry);
	keys_clear_pod_lookup(w->pods);
	kube_pods_free(w->pods);
	free(w->cont);
	free(w->buf);
	free(w);
}
