/* route: a request's life on the LLM route — dispatch, the provider's answer, settling, the
 * answer or error the agent gets, the record; and the route's own lifetime. */
#include "llm/llm_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <event2/buffer.h>
#include <event2/event.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/config.h"
#include "base/hmap.h"
#include "base/json_get.h"
#include "base/json_keys.h"
#include "base/log.h"
#include "govern/budget.h"
#include "govern/fleet.h"
#include "govern/gate.h"
#include "govern/ratelimit.h"
#include "mcp/transport/sse.h"
#include "observe/audit.h"
#include "observe/metrics.h"


static const char *endpoint_name(enum llm_endpoint ep)
{
	return ep == LLM_CHAT ? "chat.completions" : ep == LLM_EMBEDDINGS ? "embeddings"
	     : ep == LLM_TOOL_EXECUTE ? "mcp.tool.execute" : "models";
}

void llm_send_json(struct http_req *req, int status, const cJSON *body)
{
	char *text = cJSON_PrintUnformatted(body);

	http_req_send_text(req, status, NULL, "application/json", text);
	cJSON_free(text);
}

static cJSON *error_body(const struct failure *f)
{
	cJSON *o = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(o, "error");

	cJSON_AddStringToObject(e, "message", f->message);
	cJSON_AddStringToObject(e, "type", f->type);
	if (f->code)
		cJSON_AddStringToObject(e, "code", f->code);
	else
		cJSON_AddNullToObject(e, "code");
	cJSON_AddNullToObject(e, "param");
	return o;
}

void llm_set_failure(struct failure *f, int status, const char *type, const char *code,
			const char *fmt, ...)
{
	va_list ap;

	f->status = status;
	f->type = type;
	f->code = code;
	f->retry_after_s = 0;
	va_start(ap, fmt);
	vsnprintf(f->message, sizeof(f->message), fmt, ap);
	va_end(ap);
}

int llm_internal_failure(struct failure *f, const char *what, int rc)
{
	llm_set_failure(f, 500, "server_error", "internal", "%s failed: %s", what, strerror(-rc));
	return rc;
}

int llm_refuse_repeated(const cJSON *body, struct failure *f)
{
	const char *dup = json_repeated_key(body);

	if (!dup)
		return 0;
	llm_set_failure(f, 400, "invalid_request_error", "repeated_member",
			"the member name \"%.64s\" appears twice in one object: parsers disagree on "
			"which one counts, so none is taken", dup);
	return -EINVAL;
}

/* ---- the request's life ---- */

void llm_req_free(struct llm_req *r)
{
	if (r->exec)
		llm_tool_gone(r);
	llm_transfer_stop(r);
	llm_admission_cancel(r);
	if (r->req)     /* never answered (the route is being freed): forget it */
		http_req_on_gone(r->req, NULL, NULL);
	if (r->resv && r->l)
		budget_release(gate_budget(r->l->gate), r->resv);
	if (r->fresv && r->l)
		fleet_release(gate_fleet(r->l->gate), r->fresv);
	if (r->link.next)
		list_del(&r->link);
	if (r->buf)
		evbuffer_free(r->buf);
	sse_parser_free(r->sse);
	cJSON_Delete(r->body);
	cJSON_Delete(r->completion);
	cJSON_Delete(r->answer);
	cJSON_Delete(r->tool_calls);
	free(r->tool);
	free(r->tool_call_id);
	free(r->stream_id);
	llm_config_put(r->cfg);
	free(r);
}

void llm_record(struct llm_req *r, int status, const struct failure *f)
{
	char model[LLM_NAME_MAX + LLM_MODEL_MAX + 2] = "";
	const cJSON *msgs = r->log_content && r->body
		? json_get(r->body, r->ep == LLM_EMBEDDINGS ? "input"
										: "messages") : NULL;
	struct audit_llm a = {
		.key = r->authed ? r->who.id : NULL, .team = r->authed ? r->who.team : NULL,
		.policy = r->authed ? r->who.policy : NULL,
		.workload = r->authed && r->who.workload[0] ? r->who.workload : NULL,
		.endpoint = endpoint_name(r->ep),
		.provider = r->prov ? r->prov->name : NULL,
		.model = r->model ? r->model->name : NULL,
		.stream = r->stream, .status = status,
		.error = f ? f->message : NULL, .error_code = f ? f->code : NULL,
		.input_tokens = r->in_tok, .output_tokens = r->out_tok,
		.cost_micros = r->charged,
		.latency_ms = (clock_mono_ns() - r->rx_ns) / 1000000,
		.ttft_ms = r->ttft_ns ? (int64_t)((r->ttft_ns - r->rx_ns) / 1000000) : -1,
		.fallback_from = r->failed ? r->failed->name : NULL,
		.prompt = msgs, .completion = r->log_content ? r->completion : NULL,
		.tool_calls = r->tool_calls, .tool = r->tool, .tool_call_id = r->tool_call_id,
		.session = r->session[0] ? r->session : NULL,
	};
	audit_llm(&a);
	if (r->prov && r->model) {
		snprintf(model, sizeof(model), "%s/%s", r->prov->name, r->model->name);
		metrics_llm(a.key, model, r->in_tok > 0 ? (uint64_t)r->in_tok : 0,
			    r->out_tok > 0 ? (uint64_t)r->out_tok : 0, r->charged);
	}
}

/* Refuse or fail: the reservation is released, the agent told in OpenAI's error shape (as an
 * event when its stream has started), the request recorded. */
void llm_fail(struct llm_req *r, const struct failure *f)
{
	if (r->resv) {
		budget_release(gate_budget(r->l->gate), r->resv);
		r->resv = NULL;
	}
	if (r->fresv) {
		fleet_release(gate_fleet(r->l->gate), r->fresv);
		r->fresv = NULL;
	}
	/* a stream that started was 200 to the agent; one it left never reached it */
	llm_record(r, r->streaming && r->req ? 200 : f->status, f);
	if (r->req) {
		cJSON *e = error_body(f);
		if (r->streaming) {
			char *text = cJSON_PrintUnformatted(e);
			llm_req_chunk(r, text, strlen(text));
			cJSON_free(text);
			http_req_stream_end(r->req);
		} else {
			if (f->retry_after_s > 0) {
				char ra[32];
				snprintf(ra, sizeof(ra), "%lld", (long long)f->retry_after_s);
				http_req_set_header(r->req, "Retry-After", ra);
			}
			llm_send_json(r->req, f->status, e);
		}
		cJSON_Delete(e);
		r->req = NULL;
	}
	llm_req_free(r);
}

/* The charge is durable (or nothing had to be): the agent gets the rest of its answer. */
static void deliver(struct llm_req *r, int err)
{
	if (err) {
		struct failure f;
		llm_set_failure(&f, 500, "server_error", "charge_failed",
			    "the request's charge could not be recorded: %s", strerror(-err));
		llm_fail(r, &f);
		return;
	}
	llm_record(r, 200, NULL);
	if (r->req) {
		if (r->streaming) {
			if (r->saw_done)
				llm_req_chunk(r, "[DONE]", 6);
			http_req_stream_end(r->req);
		} else {
			llm_send_json(r->req, 200, r->answer);
		}
		r->req = NULL;
	}
	llm_req_free(r);
}

static void on_durable(void *arg, int err)
{
	struct llm_req *r = arg;

	r->settling = false;
	if (!r->l) {            /* the route ended meanwhile and answered already */
		llm_req_free(r);
		return;
	}
	deliver(r, err);
}

static int64_t usage_cost(const struct llm_req *r)
{
	return r->in_tok >= 0 ? llm_cost(r->in_tok, r->model->in_price) +
				llm_cost(r->out_tok, r->model->out_price)
			      : r->estimate;
}

/* Charge the usage the provider reported (the estimate when it reported none), then answer
 * once the charge is durable, as a tools/call is. With the fleet's counters, the tokens are
 * sent to Redis before the charge, on the same connection: once Redis has the charge (or the
 * debit, when there is no charge) the next request of the key, on any sidecar, sees both. */
static void settle(struct llm_req *r)
{
	int64_t cost = usage_cost(r);
	struct fleet *fl = r->authed ? gate_fleet(r->l->gate) : NULL;
	int64_t n = r->authed && r->in_tok >= 0 ? r->in_tok + r->out_tok - 1 : 0;
	int rc = 1;

	r->charged = r->resv || (r->fresv && r->fresv_charges) || !r->authed ? cost : 0;
	if (n > 0 && fl) {
		rc = llm_fleet_debit(r, n, r->fresv_charges ? NULL : on_durable);
	} else if (n > 0) {
		struct rate_limits lim;
		struct rate_subject rs = llm_rate_who(r);
		ratelimit_config_resolve(r->cfg->tokens, &rs, &lim);
		/* one was taken at admission */
		ratelimit_debit(r->l->rl_tok, &lim, r->who.id, r->prov->name, r->model->name,
				n > UINT32_MAX ? UINT32_MAX : (uint32_t)n, clock_mono_ns());
	}
	if (r->resv) {
		struct budget_resv *resv = r->resv;
		r->resv = NULL;
		rc = budget_commit_amount(gate_budget(r->l->gate), resv, cost, on_durable, r);
	} else if (r->fresv && r->fresv_charges) {
		struct fleet_resv *resv = r->fresv;
		r->fresv = NULL;
		rc = fleet_commit(fl, resv, cost, on_durable, r);
	} else if (r->fresv) {
		/* tokens only: nothing to charge (a local admission's allowance stays spent); the
		 * debit's answer, when one was asked for, is what the agent waits for */
		struct fleet_resv *resv = r->fresv;
		r->fresv = NULL;
		if (fleet_commit(fl, resv, 0, NULL, NULL) < 0)
			log_warn("llm: a reservation could not be settled");
	}
	if (rc == 0) {
		r->settling = true;
		return;
	}
	deliver(r, rc < 0 ? rc : 0);
}

void llm_note_tool_call(struct llm_req *r, const char *id)
{
	if (!r->tool_calls)
		r->tool_calls = cJSON_CreateArray();
	if (cJSON_GetArraySize(r->tool_calls) < LLM_TOOL_CALLS_MAX && strlen(id) <= 256)
		cJSON_AddItemToArray(r->tool_calls, cJSON_CreateString(id));
}

static void client_gone(void *arg)
{
	struct llm_req *r = arg;
	struct failure f;

	r->req = NULL;
	if (r->settling)
		return;         /* answered into the void once durable */
	llm_transfer_stop(r);
	llm_set_failure(&f, 499, "client_closed", "client_closed",
		    "the client closed the connection before the answer was complete");
	/* What a provider did for a request it received is paid for: its usage when known,
	 * else the estimate. */
	if (r->sent && r->resv) {
		struct budget_resv *resv = r->resv;
		r->resv = NULL;
		r->charged = usage_cost(r);
		if (budget_commit_amount(gate_budget(r->l->gate), resv, r->charged, NULL, NULL) < 0)
			log_error("llm: a cancelled request's charge could not be queued");
	} else if (r->sent && r->fresv) {
		struct fleet_resv *resv = r->fresv;
		r->fresv = NULL;
		r->charged = r->fresv_charges ? usage_cost(r) : 0;
		if (fleet_commit(gate_fleet(r->l->gate), resv, r->charged, NULL, NULL) < 0)
			log_error("llm: a cancelled request's charge could not be kept for Redis");
	}
	llm_fail(r, &f);
}

/* ---- the provider's answer ---- */

int llm_req_chunk(struct llm_req *r, const char *data, size_t len)
{
	struct evbuffer *buf;
	int rc;

	if (!r->req)
		return -EPIPE;
	if (!r->streaming) {
		http_req_set_header(r->req, "Content-Type", "text/event-stream");
		http_req_set_header(r->req, "Cache-Control", "no-cache");
		http_req_stream_start(r->req, 200, "OK");
		r->streaming = true;
	}
	if (!(buf = evbuffer_new()))
		return -ENOMEM;
	rc = sse_write_event(buf, NULL, NULL, -1, data, len);
	if (rc == 0)
		rc = http_req_stream_write(r->req, evbuffer_pullup(buf, -1),
					   evbuffer_get_length(buf));
	evbuffer_free(buf);
	return rc;
}

/* Switch to the provider's fallback, when it has one the key may use with a model of the
 * same name. Returns true when the request is on its way again. */
static bool try_fallback(struct llm_req *r)
{
	const struct llm_provider *fb;
	const struct llm_model *m;
	char why[256];

	if (r->failed || r->streaming || !r->prov->fallback ||
	    !(fb = llm_provider_find(r->cfg, r->prov->fallback)) ||
	    !(m = llm_model_find(fb, r->model->name)) ||
	    llm_policy_allows(r->cfg, r->authed ? &r->who : NULL, fb->name, m->name, why,
			      sizeof(why)))
		return false;
	log_info("llm: provider %s failed; trying %s for %s", r->prov->name, fb->name, m->name);
	r->failed = r->prov;
	r->prov = fb;
	r->model = m;
	r->in_tok = r->out_tok = -1;
	r->ttft_ns = 0;
	return llm_transfer_start(r) == 0;
}

/* The provider's own error message, when its answer has one (never its headers). */
static void provider_message(struct llm_req *r, char *out, size_t len)
{
	size_t n = evbuffer_get_length(r->buf);
	cJSON *j = n ? cJSON_ParseWithLength((const char *)evbuffer_pullup(r->buf, -1), n) : NULL;
	const cJSON *e = json_get(j, "error");
	const cJSON *m = json_get(e, "message");

	snprintf(out, len, "%s", cJSON_IsString(m) ? m->valuestring : "");
	cJSON_Delete(j);
}

static bool take_answer(struct llm_req *r, struct failure *f)
{
	size_t n = evbuffer_get_length(r->buf);
	cJSON *j = cJSON_ParseWithLength((const char *)evbuffer_pullup(r->buf, -1), n);

	if (!cJSON_IsObject(j)) {
		cJSON_Delete(j);
		llm_set_failure(f, 502, "api_error", "bad_provider_response",
			    "provider %s answered something that is not JSON", r->prov->name);
		return false;
	}
	if (r->prov->kind == LLM_ANTHROPIC && r->ep == LLM_CHAT) {
		cJSON *t = llm_anthropic_response(r, j);
		cJSON_Delete(j);
		if (!t) {
			llm_set_failure(f, 502, "api_error", "bad_provider_response",
				    "provider %s answered an unexpected Messages object",
				    r->prov->name);
			return false;
		}
		j = t;
	}
	llm_usage_read(json_get(j, "usage"), &r->in_tok, &r->out_tok);
	if (r->log_content && r->ep == LLM_CHAT) {
		const cJSON *ch = cJSON_GetArrayItem(json_get(j, "choices"), 0);
		const cJSON *c = json_get(json_get(ch, "message"), "content");
		if (cJSON_IsString(c))
			r->completion = cJSON_CreateString(c->valuestring);
	}
	const cJSON *tc, *calls = json_get(json_get(
		cJSON_GetArrayItem(json_get(j, "choices"), 0), "message"),
		"tool_calls");
	cJSON_ArrayForEach(tc, calls) {
		const cJSON *id = json_get(tc, "id");
		if (cJSON_IsString(id))
			llm_note_tool_call(r, id->valuestring);
	}
	r->answer = j;
	return true;
}

void llm_req_transfer_done(struct llm_req *r, CURLcode res)
{
	struct failure f;
	char msg[256];

	if (!r->req) {          /* the client left: client_gone settled it */
		llm_req_free(r);
		return;
	}
	if (res == CURLE_OK && r->status >= 200 && r->status < 300) {
		if (!r->stream) {
			if (!take_answer(r, &f))
				goto failed;
			settle(r);
			return;
		}
		if (!r->event_stream) {
			llm_set_failure(&f, 502, "api_error", "bad_provider_response",
				    "provider %s did not answer with an event stream", r->prov->name);
			goto failed;
		}
		settle(r);
		return;
	}
	if (r->stream_err == -EPROTO || r->stream_err == -EMSGSIZE) {
		llm_set_failure(&f, 502, "api_error", "bad_provider_response",
			    "provider %s answered garbage (%s)", r->prov->name,
			    r->stream_err == -EPROTO ? "an event that is not a JSON object"
						     : "too large");
		goto failed;
	}
	if (r->stream_err == -EPIPE) {
		llm_set_failure(&f, 499, "client_closed", "client_closed", "the client went away");
		goto failed;
	}
	if (res == CURLE_OPERATION_TIMEDOUT) {
		if (try_fallback(r))
			return;
		llm_set_failure(&f, 504, "timeout", "provider_timeout",
			    "provider %s did not answer within %ld ms", r->prov->name,
			    r->prov->timeout_ms);
		goto failed;
	}
	if (res != CURLE_OK) {
		if (try_fallback(r))
			return;
		llm_set_failure(&f, 502, "api_error", "provider_unreachable",
			    "provider %s failed: %s", r->prov->name,
			    r->errbuf[0] ? r->errbuf : curl_easy_strerror(res));
		goto failed;
	}
	provider_message(r, msg, sizeof(msg));
	if (r->status >= 500 || r->status < 200) {
		if (try_fallback(r))
			return;
		llm_set_failure(&f, 502, "api_error", "provider_error", "provider %s answered HTTP %ld%s%s",
			    r->prov->name, r->status, *msg ? ": " : "", msg);
		goto failed;
	}
	/* 4xx: the request's own fault, as the provider said it; but a refused provider key is
	 * the gateway's configuration, not the agent's request. */
	bool ours = r->status == 401 || r->status == 403;
	llm_set_failure(&f, ours ? 502 : (int)r->status,
		    ours ? "api_error" : r->status == 429 ? "rate_limit_error" : "invalid_request_error",
		    "provider_refused",
		    "provider %s refused the request (HTTP %ld)%s%s", r->prov->name, r->status,
		    *msg ? ": " : "", msg);
	goto failed;
failed:
	llm_fail(r, &f);
}

bool llm_owns_path(const char *path)
{
	return path && !strncmp(path, "/v1/", 4);
}

void llm_set_auth(struct llm *l, struct front_auth *a) { l->auth = a; }

void llm_handle(struct llm *l, struct http_req *req, uint64_t rx_ns, const char *caller)
{
	const char *path = http_req_path(req) ? http_req_path(req) : "";
	enum http_method cmd = http_req_method(req);
	struct llm_req *r = xcalloc(1, sizeof(*r));
	struct failure f;
	int rc;

	r->l = l;
	r->cfg = l->cfg;
	llm_config_get(r->cfg);
	r->req = req;
	if (caller)
		snprintf(r->who.workload, sizeof(r->who.workload), "%s", caller);
	r->rx_ns = rx_ns;
	r->in_tok = r->out_tok = -1;
	r->charged = -1;
	r->tool_index = -1;
	list_add(&r->link, &l->reqs);
	http_req_on_gone(req, client_gone, r);
	if (!strcmp(path, "/v1/chat/completions") && cmd == HTTP_POST) {
		r->ep = LLM_CHAT;
	} else if (!strcmp(path, "/v1/embeddings") && cmd == HTTP_POST) {
		r->ep = LLM_EMBEDDINGS;
	} else if (!strcmp(path, "/v1/models") && cmd == HTTP_GET) {
		r->ep = LLM_MODELS;
	} else if (!strcmp(path, "/v1/mcp/tool/execute") && cmd == HTTP_POST) {
		r->ep = LLM_TOOL_EXECUTE;
	} else {
		r->ep = LLM_MODELS;
		llm_set_failure(&f, 404, "invalid_request_error", "unknown_url",
			    "no route %s %s: POST /v1/chat/completions, POST /v1/embeddings, "
			    "GET /v1/models, POST /v1/mcp/tool/execute",
			    cmd == HTTP_GET ? "GET" : cmd == HTTP_POST ? "POST" : "for",
			    path);
		goto refuse;
	}
	if (llm_authenticate(r, &f))
		goto refuse;
	if (r->ep == LLM_MODELS) {
		llm_serve_models(r);
		return;
	}
	if (r->ep == LLM_TOOL_EXECUTE) {
		size_t len;
		const char *body = http_req_body(req, &len);
		r->body = cJSON_ParseWithLength(body, len);
		if (!cJSON_IsObject(r->body)) {
			llm_set_failure(&f, 400, "invalid_request_error", "invalid_json",
					"the body must be a JSON object: an OpenAI tool call");
			goto refuse;
		}
		if (llm_refuse_repeated(r->body, &f))
			goto refuse;
		llm_tool_execute(r);    /* may answer, and free r, at once */
		return;
	}
	if (llm_parse_body(r, &f))
		goto refuse;
	if (r->authed && (rc = llm_admit(r, &f))) {
		if (rc != -EINPROGRESS)
			goto refuse;
		return;         /* a client that leaves meanwhile ends it (client_gone) */
	}
	llm_forward(r);
	return;
refuse:
	llm_fail(r, &f);
}

void llm_forward(struct llm_req *r)
{
	struct failure f;
	int rc = llm_transfer_start(r);

	if (rc) {
		llm_set_failure(&f, 502, "api_error", "provider_unreachable",
			    "the request to provider %s could not start: %s", r->prov->name,
			    strerror(-rc));
		llm_fail(r, &f);
		return;
	}
	curl_loop_pump();
}

/* ---- the route ---- */

int llm_prepare(struct config *cfg, struct config_errors *errs)
{
	struct llm_config *c = NULL;
	int rc = llm_config_parse(cfg->raw, &c, errs);

	if (rc)
		return rc;
	if (cfg->llm_free)
		cfg->llm_free(cfg->llm);
	cfg->llm = c;
	cfg->llm_free = (void (*)(void *))llm_config_put;
	return 0;
}

static struct llm_config *adopt(struct config *cfg)
{
	struct llm_config *c = cfg->llm;

	cfg->llm = NULL;
	cfg->llm_free = NULL;
	return c;
}

int llm_new(struct event_base *base, struct config *cfg, struct gate *gate,
	    struct router *router, struct llm **out)
{
	struct config_errors errs = { 0 };
	struct llm *l;
	int rc;

	if (!cfg->llm && (rc = llm_prepare(cfg, &errs))) {
		for (int i = 0; i < errs.count; i++)
			log_error("%s", errs.msg[i]);
		return rc;
	}
	l = xcalloc(1, sizeof(*l));
	l->base = base;
	l->gate = gate;
	l->router = router;
	l->sessions = hmap_new();
	list_init(&l->reqs);
	if ((rc = ratelimit_new(0, &l->rl_req)) || (rc = ratelimit_new(0, &l->rl_tok))) {
		ratelimit_free(l->rl_req);
		hmap_free(l->sessions, NULL);
		free(l);
		return rc;
	}
	l->cfg = adopt(cfg);
	*out = l;
	return 0;
}

void llm_reload(struct llm *l, struct config *cfg)
{
	if (!cfg->llm)
		return;
	llm_config_put(l->cfg);
	l->cfg = adopt(cfg);
}

void llm_free(struct llm *l)
{
	struct failure f;

	if (!l)
		return;
	llm_set_failure(&f, 503, "server_error", "shutting_down",
		    "the gateway is reloading or stopping: retry");
	while (!list_empty(&l->reqs)) {
		struct llm_req *r = list_first_entry(&l->reqs, struct llm_req, link);
		if (r->settling) {
			/* its charge is queued and drains as the store closes: answer now */
			list_del(&r->link);
			r->link.next = NULL;
			llm_record(r, 200, NULL);
			if (r->req) {
				if (r->streaming)
					http_req_stream_end(r->req);
				else
					llm_send_json(r->req, 200, r->answer);
				r->req = NULL;
			}
			r->l = NULL;
			continue;
		}
		llm_fail(r, &f);
	}
	llm_config_put(l->cfg);
	ratelimit_free(l->rl_req);
	ratelimit_free(l->rl_tok);
	hmap_free(l->sessions, free);
	free(l);
}
