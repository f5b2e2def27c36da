/* upstream: an MCP client session with one upstream server over a transport. */
#include "mcp/upstream.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include "base/config.h"
#include "base/alloc.h"
#include "base/clock.h"
#include "base/htab.h"
#include "base/json_get.h"
#include "base/list.h"
#include "mcp/jsonrpc.h"
#include "base/log.h"
#include "mcp/transport/transport.h"
#include "mcp/transport/upstream_http.h"
#include "mcp/transport/upstream_sse.h"
#include "mcp/transport/upstream_stdio.h"

#define PROTOCOL_VERSION "2025-11-25"

enum link_state { LINK_STARTING, LINK_READY, LINK_DOWN };

struct pending {
	struct htab_node hn;          /* in link->pending, by id */
	struct list_head order;       /* in send order: the newest is the likeliest context */
	struct link *link;
	uint64_t id;
	link_reply_fn fn;
	enum obj_type *call;
	cJSON *progress_token;        /* the caller's, restored on notifications/progress */
	cJSON *queued;                /* the request, while the handshake is not done */
	uint64_t deadline;            /* monotonic ms: the link's timer finds it past (on_timer) */
	int timeout_ms;
};

struct link {
	struct event_base *base;
	const struct upstream_config *cfg;
	const struct link_ops *ops;
	void *owner;
	struct transport *t;
	enum link_state state;
	uint64_t next_id;
	uint64_t init_id;
	/* One timer for every call's deadline, set lazily: a call whose deadline comes after
	 * the one the timer is set for (nearly all: the same timeout, sent later) leaves it
	 * where it is; it fires at the earliest deadline still in flight, or early (that call
	 * was answered), and then sets itself again. A timer per call cost an event_add and an
	 * event_del a call (docs/performance.md). */
	struct event timer;
	uint64_t armed;               /* when it is set to fire (monotonic ms), 0: not set */
	struct htab pending;          /* our request id -> struct pending */
	struct list_head order;       /* the same, oldest first */
	cJSON *init_result;
	unsigned inflight;
	bool closing;
};

/* The link's own ids, numbered in order: no client picks them (base/htab.h). */
static uint64_t pending_hash(const struct htab *t, const void *key)
{
	return htab_hash_words(t, key, 1);
}

static bool pending_eq(const struct htab_node *n, const void *key)
{
	return htab_entry(n, struct pending, hn)->id == *(const uint64_t *)key;
}

static const struct htab_type pending_type = { pending_hash, pending_eq };

static struct pending *pending_by_id(const struct link *l, uint64_t id)
{
	struct htab_node *n = htab_find(&l->pending, &id);

	return n ? htab_entry(n, struct pending, hn) : NULL;
}

/* The newest call in flight, or NULL. */
static struct pending *pending_newest(const struct link *l)
{
	return list_empty(&l->order) ? NULL : list_last_entry(&l->order, struct pending, order);
}

static void pending_unlink(struct link *l, struct pending *p)
{
	htab_remove(&l->pending, &p->hn);
	list_del(&p->order);
	l->inflight--;
}

static void pending_free(struct pending *p)
{
	cJSON_Delete(p->progress_token);
	cJSON_Delete(p->queued);
	alloc_cache_put(p);     /* one a call: kept for the next (base/alloc.h) */
}

/* Finish a call with `response` (taken over); p is unlinked and freed. */
static void pending_finish(struct link *l, struct pending *p, cJSON *response)
{
	link_reply_fn fn = p->fn;
	enum obj_type *call = p->call;

	pending_unlink(l, p);
	pending_free(p);
	if (fn)
		fn(call, response);
	else
		cJSON_Delete(response);
}

/* err -ESTALE: the upstream dropped the session (a new one may well work). */
static void fail_all(struct link *l, int code, const char *why, int err)
{
	while (!list_empty(&l->order)) {
		struct pending *p = list_first_entry(&l->order, struct pending, order);
		cJSON *id = cJSON_CreateNumber((double)p->id);
		cJSON *data = cJSON_CreateObject();
		cJSON_AddStringToObject(data, "server", l->cfg->name);
		cJSON_AddStringToObject(data, "reason", why);
		if (err == -ESTALE)
			cJSON_AddTrueToObject(data, "session_lost");
		cJSON *e = jsonrpc_errorf(id, code, data, "upstream %s: %s", l->cfg->name, why);
		cJSON_Delete(id);
		pending_finish(l, p, e);
	}
}

static int send_msg(struct link *l, cJSON *msg)
{
	return transport_give(l->t, msg);
}

/* The call p is past its deadline: the upstream is told, the caller gets a timeout error. */
static void time_out(struct pending *p)
{
	struct link *l = p->link;
	cJSON *params = cJSON_CreateObject();
	char why[96];

	/* Tell the server to stop working on it; the caller gets a precise timeout error. */
	cJSON_AddNumberToObject(params, "requestId", (double)p->id);
	cJSON_AddStringToObject(params, "reason", "timed out at the gateway");
	if (l->state == LINK_READY && !p->queued)
		send_msg(l, jsonrpc_notification("notifications/cancelled", params));
	else
		cJSON_Delete(params);
	snprintf(why, sizeof(why), "did not answer within %d ms", p->timeout_ms);
	cJSON *id = cJSON_CreateNumber((double)p->id);
	cJSON *data = cJSON_CreateObject();
	cJSON_AddStringToObject(data, "server", l->cfg->name);
	cJSON_AddNumberToObject(data, "timeout_ms", p->timeout_ms);
	cJSON *err = jsonrpc_errorf(id, UPSTREAM_ERR_TIMEOUT, data, "upstream %s %s",
				    l->cfg->name, why);
	cJSON_Delete(id);
	pending_finish(l, p, err);
}

static void arm_at(struct link *l, uint64_t at)
{
	uint64_t now = clock_loop_ms(), ms = at > now ? at - now : 0;
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };

	if (evtimer_add(&l->timer, &tv) == 0)   /* the timer heap: no system call */
		l->armed = at ? at : 1;
}

/* One call past its deadline a turn: set again for the next turn first, since failing the
 * call may close the link (its caller's callback); with none past, set for the earliest. */
static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct link *l = arg;
	uint64_t now = clock_loop_ms(), first = 0;
	struct pending *p;

	l->armed = 0;
	list_for_each_entry(p, &l->order, order) {
		if (p->deadline <= now) {
			arm_at(l, now);
			time_out(p);
			return;
		}
		if (!first || p->deadline < first)
			first = p->deadline;
	}
	if (first)
		arm_at(l, first);
}

/* Our ids are integers from 1: anything else names no call of ours. */
static struct pending *find_pending(struct link *l, const cJSON *id)
{
	if (!cJSON_IsNumber(id) || id->valuedouble < 1 || id->valuedouble > 9007199254740992.0 ||
	    id->valuedouble != (double)(uint64_t)id->valuedouble)
		return NULL;
	return pending_by_id(l, (uint64_t)id->valuedouble);
}

static void go_down(struct link *l, int err, const char *why)
{
	if (l->state == LINK_DOWN)
		return;
	l->state = LINK_DOWN;
	fail_all(l, UPSTREAM_ERR_FAILED, why, err);
	if (l->ops->on_state)
		l->ops->on_state(l->owner, l, err ? err : -EPIPE, why);
}

static void flush_queued(struct link *l)
{
	struct pending *p, *next;

	list_for_each_entry_safe(p, next, &l->order, order) {
		if (p->queued) {
			cJSON *m = p->queued;
			p->queued = NULL;
			if (send_msg(l, m)) {
				cJSON *id = cJSON_CreateNumber((double)p->id);
				cJSON *e = jsonrpc_errorf(id, UPSTREAM_ERR_FAILED, NULL,
							  "upstream %s: cannot send", l->cfg->name);
				cJSON_Delete(id);
				pending_finish(l, p, e);
			}
		}
	}
}

static void handle_init_reply(struct link *l, cJSON *msg)
{
	cJSON *result = cJSON_DetachItemFromObjectCaseSensitive(msg, "result");
	const cJSON *err = json_get(msg, "error");
	char why[256];

	cJSON_Delete(msg);
	if (!cJSON_IsObject(result)) {
		const cJSON *m = json_get(err, "message");
		snprintf(why, sizeof(why), "initialize failed: %s",
			 cJSON_IsString(m) ? m->valuestring : "no result");
		cJSON_Delete(result);
		go_down(l, -EPROTO, why);
		return;
	}
	cJSON_Delete(l->init_result);
	l->init_result = NULL;
	if (l->ops->keep_init_result)
		l->init_result = result;
	else
		cJSON_Delete(result);
	l->state = LINK_READY;
	send_msg(l, jsonrpc_notification("notifications/initialized", NULL));
	flush_queued(l);
	if (l->ops->on_state)
		l->ops->on_state(l->owner, l, 0, "ready");
}

static void restore_progress(struct link *l, cJSON *msg, enum obj_type **call)
{
	cJSON *params = json_get(msg, "params");
	cJSON *tok = json_get(params, "progressToken");
	struct pending *p = find_pending(l, tok);

	/* Our progress tokens are our request ids: unique per link by construction. */
	if (!p || !p->progress_token)
		return;
	*call = p->call;
	cJSON_ReplaceItemInObjectCaseSensitive(params, "progressToken",
					       cJSON_Duplicate(p->progress_token, 1));
}

static enum obj_type *related_call(struct link *l, const cJSON *related)
{
	struct pending *p = related ? find_pending(l, related) : NULL;

	if (p)
		return p->call;
	/* stdio has no way to say which request a server message belongs to: the newest call
	 * in flight is the best guess, and exact when one call runs at a time. */
	p = pending_newest(l);
	return p ? p->call : NULL;
}

static void t_on_message(void *arg, cJSON *msg, const cJSON *related)
{
	struct link *l = arg;
	struct jsonrpc_msg m;
	int code;
	const char *why;

	if (jsonrpc_classify(msg, &m, &code, &why)) {
		log_warn("upstream %s: dropped an invalid message: %s", l->cfg->name, why);
		cJSON_Delete(msg);
		return;
	}
	if (m.kind == JSONRPC_RESPONSE) {
		/* Compared as doubles: an upstream's id may be negative, and a negative double
		 * does not convert to uint64_t. */
		if (l->state == LINK_STARTING && cJSON_IsNumber(m.id) &&
		    m.id->valuedouble == (double)l->init_id) {
			handle_init_reply(l, msg);
			return;
		}
		struct pending *p = find_pending(l, m.id);
		if (!p) {
			/* A late answer to a call that timed out or was cancelled. */
			log_debug("upstream %s: answer to an unknown request dropped", l->cfg->name);
			cJSON_Delete(msg);
			return;
		}
		pending_finish(l, p, msg);
		return;
	}
	if (m.kind == JSONRPC_REQUEST) {
		if (!strcmp(m.method, "ping")) {
			link_respond(l, m.id, cJSON_CreateObject(), NULL);
			cJSON_Delete(msg);
			return;
		}
		enum obj_type *call = related_call(l, related);
		if (l->ops->on_request)
			l->ops->on_request(l->owner, l, msg, call);
		else
			cJSON_Delete(msg);
		return;
	}
	enum obj_type *call = NULL;
	if (!strcmp(m.method, "notifications/progress"))
		restore_progress(l, msg, &call);
	else if (related)
		call = related_call(l, related);
	else if (!strcmp(m.method, "notifications/message") && pending_newest(l))
		call = pending_newest(l)->call;
	if (l->ops->on_notification)
		l->ops->on_notification(l->owner, l, msg, call);
	else
		cJSON_Delete(msg);
}

static void t_on_send_error(void *arg, const cJSON *id, int err, const char *why)
{
	struct link *l = arg;
	struct pending *p;

	if (l->state == LINK_STARTING && cJSON_IsNumber(id) &&
	    id->valuedouble == (double)l->init_id) {
		char buf[256];
		snprintf(buf, sizeof(buf), "initialize failed: %s", why);
		go_down(l, err, buf);
		return;
	}
	p = find_pending(l, id);
	if (!p)
		return;
	cJSON *data = cJSON_CreateObject();
	cJSON_AddStringToObject(data, "server", l->cfg->name);
	cJSON_AddStringToObject(data, "reason", why);
	cJSON *e = jsonrpc_errorf(id, err == -ETIMEDOUT ? UPSTREAM_ERR_TIMEOUT : UPSTREAM_ERR_FAILED,
				  data, "upstream %s: %s", l->cfg->name, why);
	pending_finish(l, p, e);
}

static void t_on_down(void *arg, int err, const char *why)
{
	go_down(arg, err, why);
}

static int send_initialize(struct link *l, const cJSON *client_caps)
{
	cJSON *params = cJSON_CreateObject(), *info = cJSON_CreateObject();
	cJSON *id;

	if (!params || !info) {
		cJSON_Delete(params);
		cJSON_Delete(info);
		return -ENOMEM;
	}
	cJSON_AddStringToObject(params, "protocolVersion", PROTOCOL_VERSION);
	cJSON_AddItemToObject(params, "capabilities",
			      client_caps ? cJSON_Duplicate(client_caps, 1) : cJSON_CreateObject());
	cJSON_AddStringToObject(info, "name", "mcpwarden");
	cJSON_AddStringToObject(info, "version", WARDEN_VERSION);
	cJSON_AddItemToObject(params, "clientInfo", info);
	l->init_id = l->next_id++;
	id = cJSON_CreateNumber((double)l->init_id);
	cJSON *req = jsonrpc_request(id, "initialize", params);
	cJSON_Delete(id);
	if (!req)
		return -ENOMEM;
	return send_msg(l, req);
}

int link_open(struct event_base *base, const struct upstream_config *cfg, const cJSON *client_caps,
	      const struct link_ops *ops, void *owner, struct link **out)
{
	struct link *l = calloc(1, sizeof(*l));
	struct transport_cb cb = { t_on_message, t_on_send_error, t_on_down, l };
	int rc;

	if (!l)
		return -ENOMEM;
	l->base = base;
	l->cfg = cfg;
	l->ops = ops;
	l->owner = owner;
	l->next_id = 1;
	l->state = LINK_STARTING;
	list_init(&l->order);
	evtimer_assign(&l->timer, base, on_timer, l);
	rc = htab_init(&l->pending, &pending_type);
	if (rc) {
		free(l);
		return rc;
	}
	rc = cfg->kind == UPSTREAM_STDIO ? upstream_stdio_new(base, cfg, &cb, &l->t)
	   : cfg->kind == UPSTREAM_SSE ? upstream_sse_new(base, cfg, &cb, &l->t)
					 : upstream_http_new(base, cfg, &cb, &l->t);
	if (rc)
		goto fail;
	rc = transport_start(l->t);
	if (rc)
		goto fail;
	rc = send_initialize(l, client_caps);
	if (rc)
		goto fail;
	*out = l;
	return 0;
fail:
	event_del(&l->timer);   /* set by the initialize's call */
	transport_destroy(l->t);
	htab_fini(&l->pending);
	free(l);
	return rc;
}

void link_close(struct link *l)
{
	if (!l)
		return;
	l->closing = true;
	/* Fail what is in flight before the transport goes, so no callback sees a dead link. */
	fail_all(l, UPSTREAM_ERR_FAILED, "session closed", 0);
	event_del(&l->timer);
	transport_destroy(l->t);
	htab_fini(&l->pending);
	cJSON_Delete(l->init_result);
	free(l);
}

int link_call(struct link *l, const char *method, cJSON *params, int timeout_ms,
	      link_reply_fn fn, enum obj_type *call, uint64_t *handle)
{
	struct pending *p;
	cJSON *id, *req, *meta, *tok;
	int rc = 0;

	if (l->state == LINK_DOWN) {
		cJSON_Delete(params);
		return -ENOTCONN;
	}
	p = xcalloc(1, sizeof(*p));
	p->link = l;
	p->id = l->next_id++;
	p->fn = fn;
	p->call = call;
	p->timeout_ms = timeout_ms > 0 ? timeout_ms : l->cfg->request_timeout_ms;
	meta = json_get(params, "_meta");
	tok = json_get(meta, "progressToken");
	if (tok) {
		/* Downstream tokens are only unique per client: ours are our request ids. */
		p->progress_token = cJSON_Duplicate(tok, 1);
		cJSON_ReplaceItemInObjectCaseSensitive(meta, "progressToken",
						       cJSON_CreateNumber((double)p->id));
	}
	p->deadline = clock_loop_ms() + (uint64_t)p->timeout_ms;
	if (!l->armed || p->deadline < l->armed) {
		arm_at(l, p->deadline);
		if (!l->armed) {
			cJSON_Delete(params);
			pending_free(p);
			return -ENOMEM;
		}
	}
	htab_insert(&l->pending, &p->hn, &p->id);
	list_add_tail(&p->order, &l->order);
	l->inflight++;
	if (handle)
		*handle = p->id;
	if (l->state == LINK_READY && l->t->ops->request) {
		rc = l->t->ops->request(l->t, p->id, method, params);   /* no tree: issue 9 */
	} else {
		id = cJSON_CreateNumber((double)p->id);
		req = jsonrpc_request(id, method, params);
		cJSON_Delete(id);
		if (!req)
			rc = -ENOMEM;
		else if (l->state == LINK_STARTING)
			p->queued = req;        /* sent once the handshake is done */
		else
			rc = send_msg(l, req);
	}
	if (rc) {
		pending_unlink(l, p);
		pending_free(p);
	}
	return rc;
}

void link_cancel(struct link *l, uint64_t handle, const char *reason)
{
	struct pending *p = pending_by_id(l, handle);

	if (!p)
		return;
	bool sent = !p->queued;
	pending_unlink(l, p);
	pending_free(p);
	if (sent && l->state == LINK_READY) {
		cJSON *params = cJSON_CreateObject();
		cJSON_AddNumberToObject(params, "requestId", (double)handle);
		if (reason)
			cJSON_AddStringToObject(params, "reason", reason);
		send_msg(l, jsonrpc_notification("notifications/cancelled", params));
	}
}

int link_notify(struct link *l, const char *method, cJSON *params)
{
	cJSON *n;

	if (l->state != LINK_READY) {
		cJSON_Delete(params);
		return -ENOTCONN;
	}
	n = jsonrpc_notification(method, params);
	return n ? send_msg(l, n) : -ENOMEM;
}

int link_respond(struct link *l, const cJSON *server_id, cJSON *result, cJSON *error)
{
	cJSON *m = cJSON_CreateObject();

	if (!m || l->state == LINK_DOWN) {
		cJSON_Delete(m);
		cJSON_Delete(result);
		cJSON_Delete(error);
		return m ? -ENOTCONN : -ENOMEM;
	}
	cJSON_AddStringToObject(m, "jsonrpc", "2.0");
	cJSON_AddItemToObject(m, "id", jsonrpc_id_dup(server_id));
	if (error) {
		cJSON_AddItemToObject(m, "error", error);
		cJSON_Delete(result);
	} else {
		cJSON_AddItemToObject(m, "result", result ? result : cJSON_CreateObject());
	}
	return send_msg(l, m);
}

void link_rebind(struct link *l, const struct link_ops *ops, void *owner)
{
	l->ops = ops;
	l->owner = owner;
}

bool link_ready(const struct link *l) { return l->state == LINK_READY; }
bool link_down(const struct link *l) { return l->state == LINK_DOWN; }
const char *link_server(const struct link *l) { return l->cfg->name; }
const cJSON *link_init_result(const struct link *l) { return l->init_result; }
unsigned link_inflight(const struct link *l) { return l->inflight; }

void link_foreach_call(const struct link *l, void (*fn)(void *arg, enum obj_type *call), void *arg)
{
	const struct pending *p;

	list_for_each_entry(p, &l->order, order)
		fn(arg, p->call);
}
