/* stateless: 2026-07-28 requests — validation, server/discover, one-request sessions. */
#include "mcp/stateless.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <event2/event.h>

#include "base/config.h"
#include "base/event_opt.h"
#include "base/json_get.h"
#include "base/list.h"
#include "govern/keys.h"
#include "mcp/call.h"
#include "mcp/catalog.h"
#include "mcp/jsonrpc.h"
#include "mcp/jsonrpc_splice.h"
#include "mcp/method.h"
#include "mcp/param_headers.h"
#include "mcp/reply.h"
#include "mcp/router.h"
#include "mcp/session.h"
#include "mcp/stateless_record.h"
#include "mcp/stateless_tasks.h"
#include "observe/audit.h"
#include "mcp/tasks.h"

#define META_VERSION "io.modelcontextprotocol/protocolVersion"
#define META_CAPS "io.modelcontextprotocol/clientCapabilities"
#define META_INFO "io.modelcontextprotocol/clientInfo"
#define META_LOG_LEVEL "io.modelcontextprotocol/logLevel"
#define META_SERVER_INFO "io.modelcontextprotocol/serverInfo"
#define META_SUBSCRIPTION "io.modelcontextprotocol/subscriptionId"
/* An upstream of an older revision may name the key of its request in an input_required
 * round (a 2025-11-25 request has none: the gateway makes one). */
#define META_INPUT_KEY "io.mcpwarden/inputKey"
#define INPUT_KEY_MAX 64
#define MRTR_STATE_LEN 32       /* hex: 128 random bits */
#define MRTR_WAIT_MS 60000      /* an input_required round waits this long for the retry */
#define MRTR_ROUND_MS 20        /* requests an upstream sends this close together: one round */
#define MRTR_MAX_INPUTS 16     /* a decoded Mcp-Name longer than this cannot match */

/* Per-request versions this gateway serves; the older ones go through initialize. */
static const char *const stateless_versions[] = { STATELESS_VERSION, NULL };

static bool is_stateless_version(const char *v)
{
	for (const char *const *p = stateless_versions; *p; p++)
		if (!strcmp(*p, v))
			return true;
	return false;
}

static const cJSON *meta_of(const struct jsonrpc_msg *m)
{
	return json_get(m->params, "_meta");
}

bool stateless_wanted(const struct stateless_headers *h, const struct jsonrpc_msg *m)
{
	/* initialize too: under this revision's version it is a removed method (404). */
	if (h->session)
		return false;
	if (json_get(meta_of(m), META_VERSION))
		return true;
	/* A version no older revision has (2026-07-28, or one we do not know at all): the
	 * revision's errors are the ones that explain it. */
	return h->version && !session_version_supported(h->version) &&
	       strcmp(h->version, "2024-11-05");
}

static cJSON *supported_list(void)
{
	cJSON *a = cJSON_CreateArray();

	for (const char *const *p = stateless_versions; *p; p++)
		cJSON_AddItemToArray(a, cJSON_CreateString(*p));
	return a;
}

/* Mcp-Name is the name itself, or "=?base64?<b64>?=" for values that are not plain ASCII
 * (mcp/param_headers.h); a value no header may carry never matches. */
static bool name_matches(const char *header, const char *body)
{
	return param_header_matches(header, body, strlen(body)) == 1;
}

static int refuse(cJSON **err, const struct jsonrpc_msg *m, int status, int code, cJSON *data,
		  const char *msg)
{
	*err = jsonrpc_error(m->id, code, msg, data);
	return status;
}

int stateless_check(const struct stateless_headers *h, const struct jsonrpc_msg *m, cJSON **err)
{
	const cJSON *meta = meta_of(m);
	const cJSON *pv = json_get(meta, META_VERSION);
	const cJSON *caps = json_get(meta, META_CAPS);
	const char *named = NULL;
	char text[160];

	*err = NULL;
	if (m->kind != JSONRPC_REQUEST)
		return refuse(err, m, 400, JSONRPC_INVALID_REQUEST, NULL,
			      "protocol 2026-07-28 has no client notifications or responses "
			      "without a request: send requests only");
	if (!h->version)
		return refuse(err, m, 400, STATELESS_HEADER_MISMATCH, NULL,
			      "MCP-Protocol-Version header is required");
	if (!cJSON_IsString(pv) || !cJSON_IsObject(caps)) {
		snprintf(text, sizeof(text), "Invalid params: _meta must carry %s%s%s",
			 cJSON_IsString(pv) ? "" : META_VERSION,
			 !cJSON_IsString(pv) && !cJSON_IsObject(caps) ? " and " : "",
			 cJSON_IsObject(caps) ? "" : META_CAPS);
		return refuse(err, m, 400, JSONRPC_INVALID_PARAMS, NULL, text);
	}
	if (strcmp(pv->valuestring, h->version))
		return refuse(err, m, 400, STATELESS_HEADER_MISMATCH, NULL,
			      "MCP-Protocol-Version header does not match _meta protocolVersion");
	if (!is_stateless_version(h->version)) {
		cJSON *data = cJSON_CreateObject();
		cJSON_AddItemToObject(data, "supported", supported_list());
		cJSON_AddStringToObject(data, "requested", h->version);
		return refuse(err, m, 400, STATELESS_UNSUPPORTED_VERSION, data,
			      "Unsupported protocol version");
	}
	if (!h->method || strcmp(h->method, m->method))
		return refuse(err, m, 400, STATELESS_HEADER_MISMATCH, NULL,
			      h->method ? "Mcp-Method header does not match the body's method"
				        : "Mcp-Method header is required");
	if (!strcmp(m->method, "tools/call") || !strcmp(m->method, "prompts/get"))
		named = "name";
	else if (!strcmp(m->method, "resources/read"))
		named = "uri";
	else if (!strcmp(m->method, "tasks/get") || !strcmp(m->method, "tasks/update") ||
		 !strcmp(m->method, "tasks/cancel"))
		named = "taskId";       /* the tasks extension's routing header */
	if (named) {
		const cJSON *v = json_get(m->params, named);
		if (!h->name)
			return refuse(err, m, 400, STATELESS_HEADER_MISMATCH, NULL,
				      "Mcp-Name header is required for this method");
		if (cJSON_IsString(v) && !name_matches(h->name, v->valuestring))
			return refuse(err, m, 400, STATELESS_HEADER_MISMATCH, NULL,
				      "Mcp-Name header does not match the body");
	}
	return 0;
}

int stateless_check_params(struct router *r, const struct jsonrpc_msg *m,
			   const char *(*header)(const void *ctx, const char *name),
			   const void *ctx, cJSON **err)
{
	const cJSON *name = json_get(m->params, "name");
	const struct catalog_entry *e;
	char why[256];
	int rc;

	*err = NULL;
	if (strcmp(m->method, "tools/call") || !cJSON_IsString(name))
		return 0;
	/* A tool the catalogue does not know declares nothing: the gate refuses its call. */
	e = catalog_find(router_catalog(r), CAT_TOOLS, name->valuestring);
	if (!e)
		return 0;
	rc = param_headers_check(json_get(e->json, "inputSchema"),
				 json_get(m->params, "arguments"),
				 header, ctx, why, sizeof(why));
	if (rc == -ENOMEM)
		return refuse(err, m, 500, JSONRPC_INTERNAL_ERROR, NULL, "out of memory");
	if (rc)
		return refuse(err, m, 400, STATELESS_HEADER_MISMATCH, NULL, why);
	return 0;
}

/* --- server/discover --------------------------------------------------------------------- */

static cJSON *discover(struct router *r, const cJSON *id)
{
	cJSON *res = cJSON_CreateObject(), *meta = cJSON_CreateObject();
	cJSON *si = cJSON_CreateObject();

	cJSON_AddItemToObject(res, "supportedVersions", supported_list());
	cJSON *caps = catalog_capabilities(router_catalog(r));

	stasks_advertise(caps);  /* tasks are an extension in this revision */
	cJSON_AddItemToObject(res, "capabilities", caps);
	cJSON_AddStringToObject(si, "name", "mcpwarden");
	cJSON_AddStringToObject(si, "version", WARDEN_VERSION);
	cJSON_AddItemToObject(meta, META_SERVER_INFO, si);
	cJSON_AddItemToObject(res, "_meta", meta);
	cJSON_AddStringToObject(res, "resultType", "complete");
	/* The capabilities are the catalogue's, the same for every key. */
	cJSON_AddNumberToObject(res, "ttlMs", 0);
	cJSON_AddStringToObject(res, "cacheScope", "public");
	return jsonrpc_result(id, res);
}

/* --- one request on a session of its own ------------------------------------------------- */

struct sl_reply {
	struct reply base;
	struct reply *inner;          /* the front's */
	struct router *r;
	struct event_base *r_base;
	struct session *s;
	enum mcp_method method;
	bool logs;                    /* the request asked for log messages (_meta logLevel) */
	void (*gone)(void *arg);
	void *gone_arg;
	/* input_required: the upstream asked the client something; the agent answers by
	 * retrying with inputResponses and this requestState. Meanwhile inner is NULL and the
	 * call and its upstream request stay open (at most MRTR_WAIT_MS). */
	cJSON *id;                    /* the current agent request's id */
	uint64_t req_ns;              /* ... and its arrival, for its record's latency */
	char state[MRTR_STATE_LEN + 1];
	struct list_head waiting;     /* in mrtr_waiting while inner is NULL */
	struct event *expiry;
	struct event *round;          /* gathers the requests of one round */
	cJSON *asked;                 /* this round's inputRequests so far */
	cJSON *keys;                  /* the round's keys: the gateway's id of each request */
	bool keep;                    /* s is the identity's task holder: it outlives the request */
	/* The tasks extension (mcp/stateless_tasks.h): a tools/call sent upstream as a task, and
	 * the task a tasks/get or tasks/cancel names; who starts the watch of a created task. */
	bool as_task;
	char gid[48];                 /* on the holder: the id the request runs under */
	cJSON *caps;                  /* on the holder: this request's client capabilities */
	char task_id[256];
	bool has_who;
	struct key_identity who;
	cJSON *answered;              /* base.answered: an answer the call did not give */
	char answered_why[64];
};

static struct list_head mrtr_waiting = { &mrtr_waiting, &mrtr_waiting };

static void sl_inner_gone(void *arg);

static void sl_free(struct sl_reply *sr)
{
	list_del(&sr->waiting);
	event_free_opt(sr->expiry);
	event_free_opt(sr->round);
	cJSON_Delete(sr->asked);
	cJSON_Delete(sr->keys);
	cJSON_Delete(sr->id);
	cJSON_Delete(sr->caps);
	cJSON_Delete(sr->answered);
	free(sr);
}

/* End the request's call; its finish frees sr. A one-request session ends with it; on the
 * task holder, which outlives it, the call alone is cancelled. Not from inside the call's
 * own callbacks (a timer's). */
static void end_request(struct sl_reply *sr)
{
	cJSON *msg, *params;
	struct jsonrpc_msg m;
	int code;
	const char *why;

	if (!sr->keep) {
		router_end_later(sr->r, sr->s);
		return;
	}
	msg = cJSON_CreateObject();
	cJSON_AddStringToObject(msg, "jsonrpc", "2.0");
	cJSON_AddStringToObject(msg, "method", "notifications/cancelled");
	params = cJSON_AddObjectToObject(msg, "params");
	cJSON_AddStringToObject(params, "requestId", sr->gid);
	if (jsonrpc_classify(msg, &m, &code, &why)) {
		cJSON_Delete(msg);
		return;
	}
	router_notification(sr->r, sr->s, msg, &m);
}

static void on_mrtr_expiry(evutil_socket_t fd, short what, void *arg)
{
	end_request(arg);
}

/* The upstream relies on a capability the agent did not declare for this request: the
 * revision's MissingRequiredClientCapability (-32021, HTTP 400), naming it. The call is
 * cancelled with the session; its finish frees sr. */
static int missing_capability(struct sl_reply *sr, const char *need)
{
	cJSON *data = cJSON_CreateObject();
	cJSON *req = cJSON_AddObjectToObject(data, "requiredCapabilities");
	cJSON *answer;

	cJSON_AddObjectToObject(req, need);
	answer = jsonrpc_errorf(sr->id, STATELESS_MISSING_CAPABILITY, data,
				"Missing required client capability: %s (the server needs it for "
				"this request)", need);
	/* the call's record, when it ends, is this answer's (reply.h answered) */
	cJSON_Delete(sr->answered);
	sr->answered = cJSON_Duplicate(answer, 1);
	sr->base.answered = sr->answered;
	snprintf(sr->answered_why, sizeof(sr->answered_why), "missing client capability: %s", need);
	sr->base.answered_why = sr->answered_why;
	reply_finish(sr->inner, answer);
	sr->inner = NULL;
	if (!sr->keep) {
		router_end_later(sr->r, sr->s);
	} else {
		/* on the holder: the call is cancelled from a timer, outside its callbacks */
		static const struct timeval now = { 0, 0 };
		evtimer_add(sr->expiry, &now);
	}
	return -EOPNOTSUPP;
}

/* A key the upstream named: short, plain, and not of the gateway's own form. */
static const char *named_key(const cJSON *params, const cJSON *asked)
{
	const cJSON *k = json_get(json_get(params, "_meta"), META_INPUT_KEY);
	size_t n;

	if (!cJSON_IsString(k) || !(n = strlen(k->valuestring)) || n > INPUT_KEY_MAX ||
	    !strncmp(k->valuestring, "mcpwarden-", 10) ||
	    json_get(asked, k->valuestring))
		return NULL;
	for (const char *c = k->valuestring; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		      (*c >= '0' && *c <= '9') || *c == '_' || *c == '-' || *c == '.'))
			return NULL;
	return k->valuestring;
}

/* The upstream's params as the agent sees them: without the gateway's own _meta key. */
static cJSON *agent_params(const cJSON *params)
{
	cJSON *out = cJSON_Duplicate(params, 1);
	cJSON *meta = json_get(out, "_meta");

	cJSON_DeleteItemFromObjectCaseSensitive(meta, META_INPUT_KEY);
	if (cJSON_IsObject(meta) && !meta->child)
		cJSON_DeleteItemFromObjectCaseSensitive(out, "_meta");
	return out;
}

/* Turn the upstream's request into an input_required answer to the agent's request. The key
 * of the input request is the one the upstream named (META_INPUT_KEY), else the gateway's id
 * for the relayed request; keys maps it back to that id for the agent's inputResponses. */
static void on_round(evutil_socket_t fd, short what, void *arg);

static int input_required(struct sl_reply *sr, const cJSON *msg)
{
	static const struct timeval tv_round = { 0, MRTR_ROUND_MS * 1000 };
	const cJSON *id = json_get(msg, "id");
	const cJSON *method = json_get(msg, "method");
	const cJSON *params = json_get(msg, "params");
	const char *need = !cJSON_IsString(method) ? NULL
		: !strcmp(method->valuestring, "sampling/createMessage") ? "sampling"
		: !strcmp(method->valuestring, "elicitation/create") ? "elicitation"
		: !strcmp(method->valuestring, "roots/list") ? "roots" : NULL;
	const char *key;
	cJSON *one;

	/* On the task holder only a tools/call that creates a task has rounds of its own: the
	 * input its tool gathers before the task exists (tasks extension, docs/protocol.md). The
	 * holder's caps are its first request's: this request's own say what the agent can do. */
	if (!need || !cJSON_IsString(id) || !sr->inner || (sr->keep && !sr->as_task))
		return -ENOTSUP;
	if (!sr->expiry && !(sr->expiry = evtimer_new(sr->r_base, on_mrtr_expiry, sr)))
		return -ENOMEM;
	if (!json_get(sr->keep ? sr->caps : sr->s->client_caps, need))
		return missing_capability(sr, need);
	if (!sr->round && !(sr->round = evtimer_new(sr->r_base, on_round, sr)))
		return -ENOMEM;
	if (!sr->asked) {
		cJSON_Delete(sr->keys);
		sr->asked = cJSON_CreateObject();
		sr->keys = cJSON_CreateObject();
		if (!sr->asked || !sr->keys)
			return -ENOMEM;
		/* An upstream that asks several things at once sends them back to back: they go
		 * to the agent together, in one round. */
		evtimer_add(sr->round, &tv_round);
	}
	if (cJSON_GetArraySize(sr->asked) >= MRTR_MAX_INPUTS)
		return -ENOBUFS;
	key = named_key(params, sr->asked);
	if (!key)
		key = id->valuestring;
	one = cJSON_AddObjectToObject(sr->asked, key);
	if (!one || !cJSON_AddStringToObject(sr->keys, key, id->valuestring))
		return -ENOMEM;
	cJSON_AddStringToObject(one, "method", method->valuestring);
	if (params)
		cJSON_AddItemToObject(one, "params", agent_params(params));
	return 0;
}

/* The call this request runs (it answers to sr's reply), or NULL once it is gone. */
static const struct call *call_of(const struct sl_reply *sr)
{
	struct htab_iter it = htab_iter(&sr->s->calls);

	for (struct htab_node *n; (n = htab_next(&it)); )
		if (call_of_book(n)->reply == &sr->base)
			return call_of_book(n);
	return NULL;
}

/* An input_required answer is the answer to a request of its own: on record as one (the
 * call's record, with input_rounds, comes with its final answer). The reason names the
 * round and what the agent was asked. */
static void round_record(const struct sl_reply *sr, const cJSON *asked, const cJSON *resp)
{
	const struct call *c = call_of(sr);
	const struct catalog *cat = router_catalog(sr->r);
	const cJSON *one;
	char reason[256];
	int n;

	if (!c)
		return;         /* nothing asks without a call: no record to make of it */
	n = snprintf(reason, sizeof(reason), "input required (round %u):", sr->base.rounds + 1);
	cJSON_ArrayForEach(one, asked) {
		const cJSON *method = json_get(one, "method");
		if (cJSON_IsString(method) && n > 0 && (size_t)n < sizeof(reason))
			n += snprintf(reason + n, sizeof(reason) - n, "%s %s",
				      one == asked->child ? "" : ",", method->valuestring);
	}
	stateless_record(c->has_who ? &c->who : NULL, &(struct audit_decision){
		.method = c->method->name,
		.server = c->server < catalog_nservers(cat)
			  ? catalog_server_config(cat, c->server)->name : NULL,
		.target = c->target,
		.decision = decision_name(DECISION_ALLOW),
		.reason = reason,
		.response = resp,
		.args_shape = c->args_shape,
	}, sr->req_ns);
}

static void on_round(evutil_socket_t fd, short what, void *arg)
{
	struct sl_reply *sr = arg;
	unsigned char rnd[MRTR_STATE_LEN / 2];
	struct timeval tv = { MRTR_WAIT_MS / 1000, (MRTR_WAIT_MS % 1000) * 1000 };
	cJSON *res, *answer;

	if (!sr->inner || !sr->asked || RAND_bytes(rnd, sizeof(rnd)) != 1) {
		end_request(sr);
		return;
	}
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(sr->state + 2 * i, 3, "%02x", rnd[i]);
	res = cJSON_CreateObject();
	cJSON_AddStringToObject(res, "resultType", "input_required");
	cJSON_AddItemToObject(res, "inputRequests", sr->asked);
	sr->asked = NULL;
	cJSON_AddStringToObject(res, "requestState", sr->state);
	answer = jsonrpc_result(sr->id, res);
	round_record(sr, json_get(res, "inputRequests"), answer);
	reply_finish(sr->inner, answer);
	sr->inner = NULL;
	sr->base.rounds++;
	list_add(&sr->waiting, &mrtr_waiting);
	evtimer_add(sr->expiry, &tv);
}

/* The agent's retry: its inputResponses go to the relayed requests, and the call's answer
 * (or its next input_required) to this request. */
static int mrtr_resume(const struct key_identity *who, const struct jsonrpc_msg *m,
		       struct reply *reply, cJSON **err)
{
	const cJSON *st = json_get(m->params, "requestState");
	const cJSON *resp = json_get(m->params, "inputResponses");
	struct sl_reply *sr = NULL, *it;
	const cJSON *r;

	list_for_each_entry(it, &mrtr_waiting, waiting)
		if (strlen(st->valuestring) == MRTR_STATE_LEN &&
		    !CRYPTO_memcmp(it->state, st->valuestring, MRTR_STATE_LEN))
			sr = it;
	if (!sr || strcmp(sr->s->key_id, who ? who->id : "")) {
		*err = jsonrpc_error(m->id, JSONRPC_INVALID_PARAMS,
				     "requestState is unknown, expired or not this key's", NULL);
		return 400;
	}
	list_del(&sr->waiting);
	evtimer_del(sr->expiry);
	cJSON_Delete(sr->id);
	sr->id = cJSON_Duplicate(m->id, 1);
	sr->req_ns = reply->received_ns;
	sr->inner = reply;
	reply_on_gone(reply, sl_inner_gone, sr);
	cJSON_ArrayForEach(r, resp) {
		const cJSON *gid = json_get(sr->keys, r->string);
		cJSON *msg;
		struct jsonrpc_msg rm;
		int code;
		const char *why;
		if (!cJSON_IsString(gid))
			continue;       /* nothing this round asked */
		msg = cJSON_CreateObject();
		cJSON_AddStringToObject(msg, "jsonrpc", "2.0");
		cJSON_AddStringToObject(msg, "id", gid->valuestring);
		cJSON_AddItemToObject(msg, "result", cJSON_Duplicate(r, 1));
		if (jsonrpc_classify(msg, &rm, &code, &why)) {
			cJSON_Delete(msg);
			continue;
		}
		router_response(sr->r, sr->s, msg, &rm);
	}
	return 0;
}

static int sl_event(struct reply *base, const cJSON *msg)
{
	struct sl_reply *sr = container_of(base, struct sl_reply, base);
	const cJSON *method = json_get(msg, "method");

	/* The revision forbids server requests on a response stream: they become
	 * input_required results (multi-round-trip requests). */
	if (json_get(msg, "id"))
		return input_required(sr, msg);
	if (!sr->inner)
		return 0;       /* between rounds: nobody to tell */
	if (cJSON_IsString(method) && !strcmp(method->valuestring, "notifications/message") &&
	    !sr->logs)
		return 0;
	return reply_event(sr->inner, msg);
}

/* Results of the revision say what they are, and how long lists and reads may be cached:
 * not at all, and per caller (every key has its own view of the catalogue). */
static void decorate(struct sl_reply *sr, cJSON *response)
{
	cJSON *res;

	/* a result kept as text (jsonrpc_splice.h) is decorated as a tree */
	if (jsonrpc_unsplice(response) < 0)
		return;
	res = json_get(response, "result");
	if (!cJSON_IsObject(res))
		return;
	if (!cJSON_HasObjectItem(res, "resultType"))
		cJSON_AddStringToObject(res, "resultType", "complete");
	switch (sr->method) {
	case MCP_TOOLS_LIST: case MCP_RESOURCES_LIST: case MCP_TEMPLATES_LIST:
	case MCP_PROMPTS_LIST: case MCP_RESOURCES_READ:
		if (!cJSON_HasObjectItem(res, "ttlMs"))
			cJSON_AddNumberToObject(res, "ttlMs", 0);
		if (!cJSON_HasObjectItem(res, "cacheScope"))
			cJSON_AddStringToObject(res, "cacheScope", "private");
		break;
	default:
		break;
	}
}

/* The tasks extension's shapes of what the holder's upstream answered (stateless_tasks.h). */
static void task_shapes(struct sl_reply *sr, cJSON *response)
{
	cJSON *res;
	const cJSON *id;
	size_t server;

	if (jsonrpc_unsplice(response) < 0)
		return;
	res = json_get(response, "result");
	switch (sr->method) {
	case MCP_TOOLS_CALL:
		if (sr->as_task && cJSON_IsObject(res) && !stasks_created(res) &&
		    cJSON_IsString(id = json_get(res, "taskId")))
			stasks_watch(sr->r, sr->s, sr->has_who ? &sr->who : NULL, id->valuestring);
		break;
	case MCP_TASKS_GET:
		if (cJSON_IsObject(res))
			stasks_detailed(res, tasks_ext(&sr->s->tasks, sr->task_id));
		break;
	case MCP_TASKS_CANCEL:
		stasks_cancelled(response, !tasks_owner(&sr->s->tasks, sr->task_id, &server));
		break;
	default:
		break;
	}
}

static void sl_finish(struct reply *base, cJSON *response)
{
	struct sl_reply *sr = container_of(base, struct sl_reply, base);

	if (sr->inner) {
		if (sr->keep && response)
			task_shapes(sr, response);
		decorate(sr, response);
		if (sr->keep && response)  /* it ran under the holder's own id */
			cJSON_ReplaceItemInObjectCaseSensitive(response, "id",
							       cJSON_Duplicate(sr->id, 1));
		reply_finish(sr->inner, response);
	} else {
		cJSON_Delete(response);  /* ended between rounds: the retry learns it is gone */
	}
	if (!sr->keep)
		router_end_later(sr->r, sr->s);
	sl_free(sr);
}

static void sl_set_gone(struct reply *base, void (*fn)(void *arg), void *arg)
{
	struct sl_reply *sr = container_of(base, struct sl_reply, base);

	sr->gone = fn;
	sr->gone_arg = arg;
}

static void sl_inner_gone(void *arg)
{
	struct sl_reply *sr = arg;

	if (sr->gone)
		sr->gone(sr->gone_arg);
	if (!sr->keep)
		router_end_later(sr->r, sr->s);
	sl_free(sr);
}

static const struct reply_ops sl_ops = {
	.event = sl_event, .finish = sl_finish, .on_gone = sl_set_gone,
};

/* --- subscriptions/listen: the revision's standing channel ------------------------------ */

struct sl_listen {
	struct stream base;           /* the session's stream: the router's list_changed */
	struct reply *inner;          /* the front's, streaming until the client leaves */
	struct router *r;
	struct session *s;
	cJSON *id;                    /* the listen request's id: the subscription id */
	bool tools, prompts, resources;
};

static cJSON *subscription_meta(const cJSON *id)
{
	cJSON *meta = cJSON_CreateObject();

	cJSON_AddItemToObject(meta, META_SUBSCRIPTION, cJSON_Duplicate(id, 1));
	return meta;
}

/* Only what the client asked for, tagged with its subscription. */
static int listen_event(struct stream *base, const cJSON *msg)
{
	struct sl_listen *l = container_of(base, struct sl_listen, base);
	const cJSON *method = json_get(msg, "method");
	const char *name = cJSON_IsString(method) ? method->valuestring : "";
	cJSON *out, *params;
	int rc;

	if (!((l->tools && !strcmp(name, "notifications/tools/list_changed")) ||
	      (l->prompts && !strcmp(name, "notifications/prompts/list_changed")) ||
	      (l->resources && !strcmp(name, "notifications/resources/list_changed"))))
		return 0;
	out = cJSON_Duplicate(msg, 1);
	if (!out)
		return -ENOMEM;
	params = json_get(out, "params");
	if (!params)
		params = cJSON_AddObjectToObject(out, "params");
	cJSON_DeleteItemFromObjectCaseSensitive(params, "_meta");
	cJSON_AddItemToObject(params, "_meta", subscription_meta(l->id));
	rc = reply_event(l->inner, out);
	cJSON_Delete(out);
	return rc;
}

/* The session ends under the stream (shutdown, reload, idle): the subscription ends
 * gracefully with its result. */
static void listen_end(struct stream *base)
{
	struct sl_listen *l = container_of(base, struct sl_listen, base);
	cJSON *res = cJSON_CreateObject();

	cJSON_AddItemToObject(res, "_meta", subscription_meta(l->id));
	cJSON_AddStringToObject(res, "resultType", "complete");
	reply_finish(l->inner, jsonrpc_result(l->id, res));
	cJSON_Delete(l->id);
	free(l);
}

static void listen_gone(void *arg)
{
	struct sl_listen *l = arg;

	router_stream_closed(l->r, l->s, &l->base);
	router_end_later(l->r, l->s);
	cJSON_Delete(l->id);
	free(l);
}

static const struct stream_ops listen_ops = { listen_event, listen_end };

static bool wants(const cJSON *filter, const char *name)
{
	return cJSON_IsTrue(json_get(filter, name));
}

static int listen_open(struct router *r, const struct key_identity *who, struct session *s,
		       const struct jsonrpc_msg *m, struct reply *reply, cJSON **err)
{
	const cJSON *filter = json_get(m->params, "notifications");
	struct sl_listen *l;
	cJSON *ack, *agreed, *params;

	if (!cJSON_IsObject(filter)) {
		*err = jsonrpc_error(m->id, JSONRPC_INVALID_PARAMS,
				     "subscriptions/listen needs params.notifications", NULL);
		return 400;
	}
	l = calloc(1, sizeof(*l));
	if (!l) {
		*err = jsonrpc_error(m->id, JSONRPC_INTERNAL_ERROR, "out of memory", NULL);
		return 500;
	}
	l->base.ops = &listen_ops;
	l->inner = reply;
	l->r = r;
	l->s = s;
	l->id = cJSON_Duplicate(m->id, 1);
	l->tools = wants(filter, "toolsListChanged");
	l->prompts = wants(filter, "promptsListChanged");
	l->resources = wants(filter, "resourcesListChanged");
	/* resourceSubscriptions (resource updates) are not relayed yet: not agreed to. */
	params = cJSON_CreateObject();
	agreed = cJSON_AddObjectToObject(params, "notifications");
	if (l->tools)
		cJSON_AddTrueToObject(agreed, "toolsListChanged");
	if (l->prompts)
		cJSON_AddTrueToObject(agreed, "promptsListChanged");
	if (l->resources)
		cJSON_AddTrueToObject(agreed, "resourcesListChanged");
	cJSON_AddItemToObject(params, "_meta", subscription_meta(l->id));
	ack = jsonrpc_notification("notifications/subscriptions/acknowledged", params);
	reply_on_gone(reply, listen_gone, l);
	router_stream_open(r, s, &l->base);
	reply_event(reply, ack);
	cJSON_Delete(ack);
	(void)who;
	return 0;
}

/* The tasks extension's gate before anything runs: the methods it removed, and the ones that
 * need it negotiated (-32021). A tools/call is decided by its tool (stasks_prepare_call). */
static int missing_extension(const struct jsonrpc_msg *m, const char *what, cJSON **err)
{
	cJSON *data = cJSON_CreateObject();

	cJSON_AddObjectToObject(cJSON_AddObjectToObject(cJSON_AddObjectToObject(data,
		"requiredCapabilities"), "extensions"), STASKS_EXTENSION);
	*err = jsonrpc_errorf(m->id, STATELESS_MISSING_CAPABILITY, data,
			      "Missing required client capability: %s needs the %s extension",
			      what, STASKS_EXTENSION);
	return 400;
}

static int task_gate(const struct jsonrpc_msg *m, enum mcp_method id, bool ext, bool update,
		     cJSON **err)
{
	if (id == MCP_TASKS_RESULT || id == MCP_TASKS_LIST) {
		*err = jsonrpc_errorf(m->id, JSONRPC_METHOD_NOT_FOUND, NULL, "Method not found: %s "
				      "(the tasks extension inlines results in tasks/get and has no "
				      "list)", m->method);
		return 404;
	}
	if ((update || id == MCP_TASKS_GET || id == MCP_TASKS_CANCEL) && !ext)
		return missing_extension(m, m->method, err);
	return 0;
}

int stateless_request(struct router *r, const struct key_identity *who, cJSON *msg,
		      const struct jsonrpc_msg *m, struct reply *reply, cJSON **err)
{
	const cJSON *meta = meta_of(m);
	const struct method *me = router_method(m->method);
	struct session *s = NULL;
	struct sl_reply *sr;
	cJSON *caps, *params = json_get(msg, "params");
	const cJSON *tid = json_get(m->params, "taskId");
	bool listen, keep, as_task = false;
	bool ext = stasks_declared(json_get(meta, META_CAPS));
	bool update = !strcmp(m->method, "tasks/update");
	int rc;

	*err = NULL;
	if (!strcmp(m->method, "server/discover")) {
		reply_finish(reply, discover(r, m->id));
		cJSON_Delete(msg);
		return 0;
	}
	listen = !strcmp(m->method, "subscriptions/listen");
	/* Gone in this revision: ping, logging/setLevel, resources/(un)subscribe. */
	if (!listen && !update && (me->id == MCP_UNKNOWN || me->id == MCP_PING ||
	    me->id == MCP_SET_LEVEL || me->id == MCP_RESOURCES_SUBSCRIBE ||
	    me->id == MCP_RESOURCES_UNSUBSCRIBE)) {
		*err = jsonrpc_errorf(m->id, JSONRPC_METHOD_NOT_FOUND, NULL,
				      "Method not found: %s", m->method);
		cJSON_Delete(msg);
		return 404;
	}
	if (cJSON_IsString(json_get(m->params, "requestState"))) {
		int st = mrtr_resume(who, m, reply, err);
		cJSON_Delete(msg);
		return st;
	}
	rc = task_gate(m, me->id, ext, update, err);
	if (!rc && me->id == MCP_TOOLS_CALL && params &&
	    stasks_prepare_call(r, params, ext, &as_task) == -ENOTSUP)
		rc = missing_extension(m, "this tool (it runs only as a task)", err);
	if (rc) {
		cJSON_Delete(msg);
		return rc;
	}
	caps = cJSON_Duplicate(json_get(meta, META_CAPS), 1);
	/* Requests that create or reach a task run on the identity's task holder, which keeps
	 * the tasks (and the upstream sessions they live in) across requests. */
	keep = as_task || update || me->id == MCP_TASKS_GET || me->id == MCP_TASKS_CANCEL;
	if (keep)
		rc = router_task_holder(r, caps, who ? who->id : "", &s);
	else
		rc = router_open_stateless(r, STATELESS_VERSION, caps,
					   json_get(meta, META_INFO),
					   who ? who->id : "", &s);
	cJSON_Delete(caps);
	if (rc) {
		*err = jsonrpc_error(m->id, JSONRPC_INTERNAL_ERROR,
				     rc == -EDQUOT ? "too many requests in flight for this key "
						     "(limits.max_sessions_per_key)"
						   : "too many requests in flight", NULL);
		cJSON_Delete(msg);
		return rc == -EDQUOT ? 429 : 503;
	}
	if (update) {
		rc = stasks_update(r, s, who, m, reply, err);
		cJSON_Delete(msg);
		return rc;
	}
	if (listen) {
		rc = listen_open(r, who, s, m, reply, err);
		if (rc)
			router_end_later(r, s);
		cJSON_Delete(msg);
		return rc;
	}
	sr = calloc(1, sizeof(*sr));
	if (!sr) {
		router_end_later(r, s);
		*err = jsonrpc_error(m->id, JSONRPC_INTERNAL_ERROR, "out of memory", NULL);
		cJSON_Delete(msg);
		return 500;
	}
	sr->base.ops = &sl_ops;
	sr->base.received_ns = reply->received_ns;
	sr->req_ns = reply->received_ns;
	sr->inner = reply;
	sr->r = r;
	sr->s = s;
	sr->method = me->id;
	sr->logs = cJSON_IsString(json_get(meta, META_LOG_LEVEL));
	sr->id = cJSON_Duplicate(m->id, 1);
	sr->r_base = router_event_base(r);
	sr->keep = keep;
	sr->as_task = as_task;
	if (cJSON_IsString(tid))
		snprintf(sr->task_id, sizeof(sr->task_id), "%s", tid->valuestring);
	if (who && keep) {
		sr->who = *who;
		sr->has_who = true;
	}
	if (keep)
		sr->caps = cJSON_Duplicate(json_get(meta, META_CAPS), 1);
	list_init(&sr->waiting);
	reply_on_gone(reply, sl_inner_gone, sr);
	if (keep) {
		/* Agents of this revision reuse ids freely: on the holder, which runs several of
		 * the identity's requests at once, each runs under an id of the gateway's. */
		static _Atomic unsigned long long next_id;
		struct jsonrpc_msg hm = *m;
		cJSON *gid;
		snprintf(sr->gid, sizeof(sr->gid), "mcpwarden-task-%llu",
			 atomic_fetch_add_explicit(&next_id, 1, memory_order_relaxed) + 1);
		gid = cJSON_CreateString(sr->gid);
		/* in msg, in the id's place: router_request takes the id from msg (sr->id has
		 * the agent's) */
		if (cJSON_ReplaceItemInObjectCaseSensitive(msg, "id", gid))
			hm.id = gid;
		else
			cJSON_Delete(gid);      /* not reached: a request has an id */
		router_request(r, s, who, msg, &hm, &sr->base);
		return 0;
	}
	router_request(r, s, who, msg, m, &sr->base);
	return 0;
}
