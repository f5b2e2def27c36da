/* admin_logs: the logs API — /api/logs (pages, one record, stats) answered by the log
 * store's reader thread, /api/logs/stream fed by the live tail, and /api/kernel. */
#include "admin/admin_int.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <time.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/config.h"
#include "base/event_opt.h"
#include "base/json_get.h"
#include "base/log.h"
#include "base/rfc3339.h"
#include "enforce/enforcer.h"
#include "enforce/pins.h"
#include "mcp/transport/sse.h"
#include "observe/logpg.h"
#include "observe/logquery.h"
#include "observe/logstore.h"
#include "observe/logtail.h"
#include "observe/metrics.h"

#define STATS_SPAN_DEFAULT_MS (24 * 3600 * 1000LL)
#define KERNEL_DENIALS 20

/* --- answers ----------------------------------------------------------------------------- */

/* Pages are tens of KiB: without TCP_NODELAY their last segment waits for the client's
 * delayed ACK (Nagle), 40 ms on Linux. */
static void no_delay(struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
	evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
	int one = 1;

	if (fd >= 0 && setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
		log_debug("admin: TCP_NODELAY: %s", strerror(errno));
}

static void send_json(struct evhttp_request *req, int status, const cJSON *body)
{
	no_delay(req);
	admin_security_headers(req);
	admin_send_json(req, status, body);
}

/* {"error": {"message": ..., "parameter": name}}: the shape of the logs API's refusals. */
static void send_error(struct evhttp_request *req, int status, const char *param,
		       const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void send_error(struct evhttp_request *req, int status, const char *param,
		       const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	cJSON *o = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(o, "error");

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cJSON_AddStringToObject(e, "message", msg);
	if (param)
		cJSON_AddStringToObject(e, "parameter", param);
	send_json(req, status, o);
	cJSON_Delete(o);
}

static void send_query_error(struct evhttp_request *req, int err)
{
	switch (err) {
	case -ENOENT:
		send_error(req, 503, NULL, "the log store has no records yet (no logs.db)");
		break;
	case -EAGAIN:
		send_error(req, 503, NULL, "too many log queries waiting; retry");
		break;
	case -ETIMEDOUT:
		send_error(req, 503, NULL, "the query took longer than %d ms; narrow the filters",
			   LOGQ_TIME_LIMIT_MS);
		break;
	case -ECANCELED:
		send_error(req, 503, NULL, "the admin plane is stopping");
		break;
	case -ENOTCONN:
		send_error(req, 503, NULL, "the fleet's log store (logs.postgres) is unreachable; "
			   "see the daemon's log");
		break;
	default:
		send_error(req, 500, NULL, "log store: %s", strerror(-err));
	}
}

/* --- parameters ---------------------------------------------------------------------------- */

static int parse_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
	char *end;
	long long v;

	if (!*s || !isdigit((unsigned char)*s) || strlen(s) > 18)
		return -EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_time(const char *s, int64_t *ms)
{
	return parse_int(s, 1, INT64_C(253402300799999), ms) == 0 ? 0 : rfc3339_parse_ms(s, ms);
}

static bool one_of(const char *v, const char *const *set)
{
	for (; *set; set++)
		if (!strcmp(v, *set))
			return true;
	return false;
}

/* The query string's parameters into f (pointing into q); the extra names are allowed and
 * left to the caller. false after answering 400. */
static bool parse_filter(struct evhttp_request *req, struct evkeyvalq *q, struct logq_filter *f,
			 const char *const *extra, bool fleet)
{
	static const char *const decisions[] = { "allow", "deny", "error", NULL };
	static const char *const statuses[] = { "ok", "tool_error", "error", NULL };
	const char *qs = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));

	memset(f, 0, sizeof(*f));
	f->limit = LOGQ_LIMIT_DEFAULT;
	if (evhttp_parse_query_str(qs ? qs : "", q) < 0) {
		send_error(req, 400, NULL, "malformed query string");
		return false;
	}
	for (struct evkeyval *kv = q->tqh_first; kv; kv = kv->next.tqe_next) {
		const char *n = kv->key, *v = kv->value;
		int64_t x;

		if (strlen(v) > LOGQ_TEXT_MAX) {
			send_error(req, 400, n, "%s: at most %d characters", n, LOGQ_TEXT_MAX);
			return false;
		}
		if (!strcmp(n, "key")) f->key = v;
		else if (!strcmp(n, "team")) f->team = v;
		else if (!strcmp(n, "server")) f->server = v;
		else if (!strcmp(n, "tool")) f->tool = v;
		else if (!strcmp(n, "type")) f->type = v;
		else if (!strcmp(n, "sidecar")) f->sidecar = v;
		else if (!strcmp(n, "q")) f->q = v[0] ? v : NULL;
		else if (!strcmp(n, "decision")) {
			if (!one_of(v, decisions)) {
				send_error(req, 400, n, "decision: one of allow, deny, error");
				return false;
			}
			f->decision = v;
		} else if (!strcmp(n, "status")) {
			if (!one_of(v, statuses)) {
				send_error(req, 400, n, "status: one of ok, tool_error, error");
				return false;
			}
			f->status = v;
		} else if (!strcmp(n, "since") || !strcmp(n, "until")) {
			if (parse_time(v, &x)) {
				send_error(req, 400, n, "%s: an RFC 3339 time (2026-01-31T12:00:00Z) "
					   "or unix milliseconds", n);
				return false;
			}
			*(n[0] == 's' ? &f->since_ms : &f->until_ms) = x;
		} else if (!strcmp(n, "cursor")) {
			if (parse_int(v, 1, INT64_MAX, &x)) {
				send_error(req, 400, n, "cursor: the next_cursor of the previous page");
				return false;
			}
			f->cursor = x;
		} else if (!strcmp(n, "limit")) {
			if (parse_int(v, 1, INT64_MAX, &x)) {
				send_error(req, 400, n, "limit: a positive integer (at most %d are "
					   "returned)", LOGQ_LIMIT_MAX);
				return false;
			}
			f->limit = x > LOGQ_LIMIT_MAX ? LOGQ_LIMIT_MAX : (int)x;
		} else if (!extra || !one_of(n, extra)) {
			send_error(req, 400, n, "unknown parameter \"%s\"", n);
			return false;
		}
	}
	if (f->sidecar && !fleet) {
		send_error(req, 400, "sidecar", "sidecar: only with the fleet's shared store "
			   "(logs.postgres)");
		return false;
	}
	if (f->since_ms && f->until_ms && f->until_ms < f->since_ms) {
		send_error(req, 400, "until", "until is before since");
		return false;
	}
	return true;
}

/* --- queries in flight --------------------------------------------------------------------- */

struct logreq {
	struct list_head link;          /* in a->log_reqs */
	struct admin *a;
	struct evhttp_request *req;     /* NULL once the client is gone */
	struct evhttp_connection *evcon;
	bool one;                       /* /api/logs/<id>: -ENOENT is 404 */
	cJSON *kernel;                  /* /api/kernel: the answer waiting for its denials */
};

static void free_detached(struct evhttp_request *req)
{
	if (!evhttp_request_get_connection(req))
		evhttp_request_free(req);
}

static void logreq_closed(struct evhttp_connection *evcon, void *arg)
{
	struct logreq *r = arg;

	free_detached(r->req);
	r->req = NULL;
}

static struct logreq *logreq_new(struct ctx *c)
{
	struct logreq *r = xcalloc(1, sizeof(*r));

	r->a = c->a;
	r->req = c->req;
	r->evcon = evhttp_request_get_connection(c->req);
	evhttp_connection_set_closecb(r->evcon, logreq_closed, r);
	list_add_tail(&r->link, &c->a->log_reqs);
	return r;
}

static void logreq_done(void *arg, int err, cJSON *result)
{
	struct logreq *r = arg;

	list_del(&r->link);
	if (r->req) {
		evhttp_connection_set_closecb(r->evcon, NULL, NULL);
		if (r->kernel) {
			cJSON *d = cJSON_DetachItemFromObjectCaseSensitive(result, "records");
			if (!d) {
				d = cJSON_CreateArray();
				cJSON_AddStringToObject(r->kernel, "denials_error", err == -ENOENT
							? "no logs.db yet" : strerror(-err));
			}
			cJSON_AddItemToObject(r->kernel, "recent_denials", d);
			send_json(r->req, 200, r->kernel);
		} else if (err == -ENOENT && r->one) {
			send_error(r->req, 404, NULL, "no such record");
		} else if (err) {
			send_query_error(r->req, err);
		} else {
			send_json(r->req, 200, result);
		}
	}
	cJSON_Delete(r->kernel);
	cJSON_Delete(result);
	free(r);
}

static void submit_failed(struct logreq *r, int rc)
{
	logreq_done(r, rc, NULL);
}

/* The reader is missing only after a reload failed to start it. */
static bool have_reader(struct ctx *c)
{
	if (c->a->logs)
		return true;
	send_error(c->req, 503, NULL, "the log reader is not running (see the daemon's log)");
	return false;
}

static int64_t clock_real_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- handlers --------------------------------------------------------------------------------- */

void admin_logs_list(struct ctx *c, const char *unused)
{
	struct evkeyvalq q;
	struct logq_filter f;

	TAILQ_INIT(&q);
	if (have_reader(c) && parse_filter(c->req, &q, &f, NULL, logquery_fleet(c->a->logs))) {
		struct logreq *r = logreq_new(c);
		int rc = logquery_page(c->a->logs, &f, logreq_done, r);
		if (rc)
			submit_failed(r, rc);
	}
	evhttp_clear_headers(&q);
}

void admin_logs_show(struct ctx *c, const char *id)
{
	int64_t v;
	struct logreq *r;
	int rc;

	if (!have_reader(c))
		return;
	if (parse_int(id, 1, INT64_MAX, &v)) {
		send_error(c->req, 404, NULL, "no such record: ids are positive integers");
		return;
	}
	r = logreq_new(c);
	r->one = true;
	rc = logquery_get(c->a->logs, v, logreq_done, r);
	if (rc)
		submit_failed(r, rc);
}

void admin_logs_stats(struct ctx *c, const char *unused)
{
	static const char *const extra[] = { "group_by", "bucket", NULL };
	static const char *const groups[] = { "key", "team", "tool", "server", NULL };
	struct evkeyvalq q;
	struct logq_filter f;
	const char *g, *b;
	int64_t bucket = 3600, now = clock_real_ms();
	enum logq_group by = LOGQ_BY_TOOL;

	TAILQ_INIT(&q);
	if (!have_reader(c) || !parse_filter(c->req, &q, &f, extra, logquery_fleet(c->a->logs)))
		goto out;
	g = evhttp_find_header(&q, "group_by");
	b = evhttp_find_header(&q, "bucket");
	if (g) {
		size_t k = 0;
		while (groups[k] && strcmp(groups[k], g))
			k++;
		if (!groups[k]) {
			send_error(c->req, 400, "group_by", "group_by: one of key, team, tool, server");
			goto out;
		}
		by = (enum logq_group)k;
	}
	if (b && parse_int(b, 1, 366 * 86400, &bucket)) {
		send_error(c->req, 400, "bucket", "bucket: seconds, 1 to 31622400");
		goto out;
	}
	if (f.cursor || f.limit != LOGQ_LIMIT_DEFAULT) {
		send_error(c->req, 400, f.cursor ? "cursor" : "limit", "stats take no %s",
			   f.cursor ? "cursor" : "limit");
		goto out;
	}
	if (!f.until_ms)
		f.until_ms = now;
	if (!f.since_ms)
		f.since_ms = f.until_ms > STATS_SPAN_DEFAULT_MS ? f.until_ms - STATS_SPAN_DEFAULT_MS
								 : 1;
	if (f.until_ms < f.since_ms) {
		send_error(c->req, 400, "since", "since is after until");
		goto out;
	}
	if ((f.until_ms - f.since_ms) / (bucket * 1000) >= LOGQ_MAX_BUCKETS) {
		send_error(c->req, 400, "bucket", "at most %d buckets between since and until: "
			   "widen the bucket", LOGQ_MAX_BUCKETS);
		goto out;
	}
	struct logreq *r = logreq_new(c);
	int rc = logquery_stats(c->a->logs, &f, by, bucket * 1000, logreq_done, r);
	if (rc)
		submit_failed(r, rc);
out:
	evhttp_clear_headers(&q);
}

/* --- the live tail ------------------------------------------------------------------------------ */

struct logstream {
	struct list_head link;          /* in a->streams */
	struct admin *a;
	struct evhttp_request *req;
	struct evhttp_connection *evcon;
	struct logtail_sub *sub;        /* NULL: the fleet's tail (admin->follow) feeds it */
	char *key, *team, *server, *tool, *decision, *status, *type, *q, *sidecar;
};

static void stream_free(struct logstream *s)
{
	logtail_unsubscribe(s->sub);
	list_del(&s->link);
	if (--s->a->nstreams == 0) {
		/* Nobody watches: the next tail starts at the heads of that moment. */
		cJSON_Delete(s->a->follow_heads);
		s->a->follow_heads = NULL;
	}
	free(s->key);
	free(s->team);
	free(s->server);
	free(s->tool);
	free(s->decision);
	free(s->status);
	free(s->type);
	free(s->q);
	free(s->sidecar);
	free(s);
}

static void stream_closed(struct evhttp_connection *evcon, void *arg)
{
	struct logstream *s = arg;

	free_detached(s->req);
	stream_free(s);
}

/* A client that cannot keep up, or the admin plane going away: the connection goes. */
static void stream_cut(struct logstream *s)
{
	struct evhttp_connection *evcon = s->evcon;

	evhttp_connection_set_closecb(evcon, NULL, NULL);
	stream_free(s);
	evhttp_connection_free(evcon);
}

static bool field_is(const cJSON *rec, const char *name, const char *want)
{
	const cJSON *v;

	if (!want)
		return true;
	v = json_get(rec, name);
	return cJSON_IsString(v) && !strcmp(v->valuestring, want);
}

static bool field_has(const cJSON *rec, const char *name, const char *text)
{
	const cJSON *v = json_get(rec, name);

	return cJSON_IsString(v) && strcasestr(v->valuestring, text);
}

static bool stream_wants(const struct logstream *s, const cJSON *rec)
{
	return field_is(rec, "key", s->key) && field_is(rec, "team", s->team) &&
	       field_is(rec, "server", s->server) && field_is(rec, "target", s->tool) &&
	       field_is(rec, "decision", s->decision) && field_is(rec, "status", s->status) &&
	       field_is(rec, "type", s->type) && field_is(rec, "sidecar", s->sidecar) &&
	       (!s->q || field_has(rec, "target", s->q) || field_has(rec, "reason", s->q) ||
		field_has(rec, "error_message", s->q));
}

static size_t unsent(const struct logstream *s)
{
	struct bufferevent *bev = evhttp_connection_get_bufferevent(s->evcon);

	return bev ? evbuffer_get_length(bufferevent_get_output(bev)) : 0;
}

static void stream_send(struct logstream *s, const char *text, size_t len, bool comment)
{
	struct evbuffer *buf;

	if (unsent(s) > ADMIN_STREAM_BUF_MAX) {
		log_warn("admin: a live tail client fell %u KiB behind: cut",
			 ADMIN_STREAM_BUF_MAX >> 10);
		stream_cut(s);
		return;
	}
	buf = evbuffer_new();
	if (!buf)
		return;
	if ((comment ? sse_write_comment(buf, text)
		     : sse_write_event(buf, NULL, NULL, -1, text, len)) == 0)
		evhttp_send_reply_chunk(s->req, buf);
	evbuffer_free(buf);
}

static void on_record(const char *line, size_t len, const cJSON *rec, void *arg)
{
	struct logstream *s = arg;

	if (stream_wants(s, rec))
		stream_send(s, line, len, false);
}

static void on_heartbeat(evutil_socket_t fd, short what, void *arg)
{
	struct admin *a = arg;
	struct logstream *s, *tmp;

	list_for_each_entry_safe(s, tmp, &a->streams, link)
		stream_send(s, "heartbeat", 0, true);
}

static char *dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

/* The fleet's live tail: with the shared store, the tail is every sidecar's records, read
 * from it (logquery_follow) every ADMIN_FOLLOW_MS while someone watches, one poll at a time. */
static void follow_arm(struct admin *a, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	if (a->follow && !a->following && a->nstreams && !evtimer_pending(a->follow, NULL) &&
	    evtimer_add(a->follow, &tv))
		log_error("admin: cannot arm the fleet's live tail");
}

static void on_follow(void *arg, int err, cJSON *result)
{
	struct admin *a = arg;
	const cJSON *rec;

	a->following = false;
	if (!err && a->nstreams) {
		cJSON_Delete(a->follow_heads);
		a->follow_heads = cJSON_DetachItemFromObjectCaseSensitive(result, "heads");
		cJSON_ArrayForEach(rec, json_get(result, "records")) {
			struct logstream *s, *tmp;
			char *line = cJSON_PrintUnformatted(rec);

			list_for_each_entry_safe(s, tmp, &a->streams, link)
				on_record(line, strlen(line), rec, s);
			cJSON_free(line);
		}
	} else if (err && err != -ECANCELED) {
		log_debug("admin: the fleet's live tail: %s", strerror(-err));
	}
	cJSON_Delete(result);
	/* Never a query from here: logquery_free runs this callback (-ECANCELED). */
	follow_arm(a, ADMIN_FOLLOW_MS);
}

static void on_follow_tick(evutil_socket_t fd, short what, void *arg)
{
	struct admin *a = arg;
	char *heads;

	(void)fd;
	(void)what;
	if (!a->nstreams || !a->logs || !logquery_fleet(a->logs))
		return;
	heads = a->follow_heads ? cJSON_PrintUnformatted(a->follow_heads) : NULL;
	a->following = logquery_follow(a->logs, heads, on_follow, a) == 0;
	cJSON_free(heads);
	follow_arm(a, ADMIN_FOLLOW_MS);         /* not submitted (queue full): the next tick */
}

void admin_logs_stream(struct ctx *c, const char *unused)
{
	struct evkeyvalq q;
	struct logq_filter f;
	struct logstream *s;
	struct evbuffer *buf;

	/* The live tail is this sidecar's own records (observe/logtail.h), or with the shared
	 * store the fleet's (follow_arm). */
	bool fleet = c->a->logs && logquery_fleet(c->a->logs);
	if (!parse_filter(c->req, &q, &f, NULL, fleet))
		goto out;
	if (f.since_ms || f.until_ms || f.cursor || f.limit != LOGQ_LIMIT_DEFAULT) {
		send_error(c->req, 400, f.since_ms ? "since" : f.until_ms ? "until" :
			   f.cursor ? "cursor" : "limit", "the live tail starts now: no since, "
			   "until, cursor or limit (page back with /api/logs)");
		goto out;
	}
	if (c->a->nstreams >= ADMIN_MAX_STREAMS) {
		http_set_header(c->req, "Retry-After", "10");
		send_error(c->req, 503, NULL, "too many live tail clients (%d)", ADMIN_MAX_STREAMS);
		goto out;
	}
	s = xcalloc(1, sizeof(*s));
	if (!fleet && logtail_subscribe(on_record, s, &s->sub)) {
		free(s);
		send_error(c->req, 503, NULL, "too many live tail subscribers");
		goto out;
	}
	s->a = c->a;
	s->req = c->req;
	s->evcon = evhttp_request_get_connection(c->req);
	s->key = dup_or_null(f.key);
	s->team = dup_or_null(f.team);
	s->server = dup_or_null(f.server);
	s->tool = dup_or_null(f.tool);
	s->decision = dup_or_null(f.decision);
	s->status = dup_or_null(f.status);
	s->type = dup_or_null(f.type);
	s->q = dup_or_null(f.q);
	s->sidecar = dup_or_null(f.sidecar);
	list_add_tail(&s->link, &c->a->streams);
	c->a->nstreams++;
	if (fleet)
		follow_arm(c->a, 0);    /* the first poll only learns where "now" is */
	evhttp_connection_set_closecb(s->evcon, stream_closed, s);
	no_delay(c->req);               /* a record goes out as it is written */
	admin_security_headers(c->req);
	http_set_header(c->req, "Content-Type", "text/event-stream");
	http_set_header(c->req, "Cache-Control", "no-store, no-transform");
	evhttp_send_reply_start(c->req, 200, "OK");
	buf = evbuffer_new();
	if (buf && sse_write_comment(buf, "live tail open") == 0)
		evhttp_send_reply_chunk(c->req, buf);
	if (buf)
		evbuffer_free(buf);
out:
	evhttp_clear_headers(&q);
}

/* --- the kernel view -------------------------------------------------------------------------- */

static void add_rules(cJSON *arr, struct pins *p)
{
	for (enum pins_map m = PINS_PROTECT4; m <= PINS_EXACT6; m++) {
		struct pins_rule *r = NULL;
		size_t n = 0;

		if (pins_rules(p, m, &r, &n) < 0)
			continue;
		for (size_t i = 0; i < n; i++) {
			char d[128];
			if (r[i].kind != WARDEN_KIND_PROTECT ||
			    enforcer_dest_format(&r[i].dest, d, sizeof(d)) < 0)
				continue;
			cJSON *e = cJSON_CreateObject();
			cJSON_AddStringToObject(e, "dest", d);
			cJSON_AddNumberToObject(e, "rule_id", r[i].rule.id);
			cJSON_AddItemToArray(arr, e);
		}
		free(r);
	}
}

void admin_kernel_get(struct ctx *c, const char *unused)
{
	struct enforcer *e = metrics_enforcer();
	struct enforcer_status st;
	struct pins_enrolled *en = NULL;
	struct pins *p = NULL;
	size_t nen = 0;
	cJSON *o = cJSON_CreateObject(), *arr;

	if (!e) {
		cJSON_AddFalseToObject(o, "enforcement");
		send_json(c->req, 200, o);
		cJSON_Delete(o);
		return;
	}
	cJSON_AddTrueToObject(o, "enforcement");
	if (enforcer_status(e, &st) == 0) {
		cJSON_AddStringToObject(o, "deny_errno", strerrorname_np(st.deny_errno) ?
					strerrorname_np(st.deny_errno) : "?");
		cJSON_AddNumberToObject(o, "sidecar_port", st.sidecar_port);
		arr = cJSON_AddArrayToObject(o, "hooks");
		for (unsigned h = 0; h < WARDEN_HOOK_MAX; h++)
			if (st.hooks[h].attached)
				cJSON_AddItemToArray(arr, cJSON_CreateString(enforcer_hook_name(h)));
	}
	arr = cJSON_AddArrayToObject(o, "enrolled");
	cJSON *prot = cJSON_AddArrayToObject(o, "protected");
	/* The maps are read through their pins: a few bpf() calls, no disk. */
	if (pins_open(enforcer_pin_dir(e), &p) == 0) {
		if (pins_enrolled(p, &en, &nen) == 0) {
			for (size_t i = 0; i < nen; i++) {
				char path[512];
				cJSON *x = cJSON_CreateObject();
				cJSON_AddNumberToObject(x, "cgroup_id", (double)en[i].cgroup_id);
				if (enforcer_cgroup_path(e, en[i].cgroup_id, path, sizeof(path)) == 0)
					cJSON_AddStringToObject(x, "cgroup", path);
				else
					cJSON_AddNullToObject(x, "cgroup");
				cJSON_AddStringToObject(x, "mode", enforcer_mode_name(en[i].e.mode));
				cJSON_AddItemToArray(arr, x);
			}
			free(en);
		}
		add_rules(prot, p);
		pins_close(p);
	}
	struct logq_filter f = { .type = "kernel_deny", .limit = KERNEL_DENIALS };
	struct logreq *r = logreq_new(c);
	r->kernel = o;
	int rc = c->a->logs ? logquery_page(c->a->logs, &f, logreq_done, r) : -ECANCELED;
	if (rc)
		submit_failed(r, rc);
}

/* --- life ----------------------------------------------------------------------------------------- */

/* Where the log store writes: its own reading of the "logs" section (path, or state_dir), or
 * "postgres:<conninfo> <prefix>" when the fleet's shared store is configured (*pg filled). */
static char *logs_path(const struct config *cfg, struct logpg_options *pg)
{
	struct logstore_options lo;
	char *p;

	if (logpg_options_parse(cfg->raw, pg, NULL) == 0 && pg->enabled) {
		size_t n = strlen(pg->conninfo) + strlen(pg->prefix) + sizeof("postgres: ");
		p = xmalloc(n);
		snprintf(p, n, "postgres:%s %s", pg->conninfo, pg->prefix);
		return p;
	}

	if (logstore_options_parse(cfg->raw, cfg->state_dir, &lo, NULL) == 0 && lo.path) {
		p = xstrdup(lo.path);
		logstore_options_clear(&lo);
		return p;
	}
	logstore_options_clear(&lo);
	size_t n = strlen(cfg->state_dir ? cfg->state_dir : ".") + sizeof("/logs.db");

	p = xmalloc(n);
	snprintf(p, n, "%s/logs.db", cfg->state_dir ? cfg->state_dir : ".");
	return p;
}

int admin_logs_init(struct admin *a, const struct config *cfg)
{
	int rc;

	list_init(&a->streams);
	list_init(&a->log_reqs);
	struct logpg_options pg;
	a->logs_path = logs_path(cfg, &pg);
	rc = pg.enabled ? logquery_new_pg(a->base, &pg, &a->logs)
			: logquery_new(a->base, a->logs_path, &a->logs);
	logpg_options_clear(&pg);
	if (rc)
		return rc;
	a->follow = evtimer_new(a->base, on_follow_tick, a);
	a->heartbeat = event_new(a->base, -1, EV_PERSIST, on_heartbeat, a);
	if (!a->follow || !a->heartbeat ||
	    event_add(a->heartbeat, &(struct timeval){ ADMIN_STREAM_HEARTBEAT_S, 0 }))
		return -ENOMEM;
	return 0;
}

int admin_logs_reconfigure(struct admin *a, const struct config *cfg)
{
	struct logpg_options pg;
	char *path = logs_path(cfg, &pg);
	int rc;

	if (!strcmp(path, a->logs_path)) {
		free(path);
		logpg_options_clear(&pg);
		return 0;
	}
	logquery_free(a->logs);         /* queries in flight are answered 503 */
	a->logs = NULL;
	free(a->logs_path);
	a->logs_path = path;
	/* Another store: the live tails opened on the old one end (their clients reconnect). */
	struct logstream *s, *tmp;
	list_for_each_entry_safe(s, tmp, &a->streams, link)
		stream_cut(s);
	rc = pg.enabled ? logquery_new_pg(a->base, &pg, &a->logs)
			: logquery_new(a->base, a->logs_path, &a->logs);
	logpg_options_clear(&pg);
	return rc;
}

void admin_logs_free(struct admin *a)
{
	struct logstream *s, *tmp;

	if (!a->logs_path)
		return;                 /* never initialised */
	logquery_free(a->logs);
	a->logs = NULL;
	list_for_each_entry_safe(s, tmp, &a->streams, link)
		stream_cut(s);
	event_free_opt(a->heartbeat);
	event_free_opt(a->follow);
	cJSON_Delete(a->follow_heads);
	free(a->logs_path);
	a->logs_path = NULL;
}
