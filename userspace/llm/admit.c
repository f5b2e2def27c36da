/* admit: what a request must pass before it is forwarded — the key, a well-formed body
 * naming a model that exists, the key's policies, its budgets (an estimate reserved) and its
 * rate limits, in that order (counted here, or in Redis by admit_fleet.c); and the models list
 * a key may use. */
#include "llm/llm_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <event2/buffer.h>

#include "base/clock.h"
#include "base/json_get.h"
#include "govern/budget.h"
#include "govern/gate.h"
#include "govern/keys.h"
#include "govern/ratelimit.h"
#include "mcp/transport/front_auth.h"
#include "mcp/transport/front_conn.h"
#include "observe/audit.h"
#include "observe/metrics.h"

/* "provider/model", or the default provider's model. */
static int resolve_model(struct llm_req *r, const char *name, struct failure *f)
{
	const char *slash = strchr(name, '/');
	const struct llm_provider *p = NULL;
	const char *model = name;

	if (slash && (size_t)(slash - name) <= LLM_NAME_MAX) {
		char pn[LLM_NAME_MAX + 1];
		memcpy(pn, name, (size_t)(slash - name));
		pn[slash - name] = '\0';
		if ((p = llm_provider_find(r->cfg, pn)))
			model = slash + 1;
	}
	if (!p)
		p = llm_provider_find(r->cfg, r->cfg->default_provider);
	if (!p) {
		llm_set_failure(f, 400, "invalid_request_error", "model_not_found",
			    "no provider for model \"%.128s\": name it as \"provider/model\"", name);
		return -ENOENT;
	}
	r->prov = p;
	r->model = llm_model_find(p, model);
	if (!r->model) {
		llm_set_failure(f, 400, "invalid_request_error", "model_not_found",
			    "provider %s has no model \"%.128s\"", p->name, model);
		return -ENOENT;
	}
	return 0;
}

void llm_rate_failure(struct failure *f, const struct rate_refusal *rr, const char *what)
{
	llm_set_failure(f, 429, "rate_limit_error", "rate_limited",
		    "Rate limited: %s limit of %u %s per %s reached (%s); retry after %llu ms",
		    ratelimit_level_name(rr->level), rr->spec.requests, what,
		    ratelimit_per_name(rr->spec.period_ns),
		    rr->level == RATE_KEY ? "this key" : rr->level == RATE_SERVER
			? "this key and provider" : "this key and model",
		    (unsigned long long)rr->retry_after_ms);
	f->retry_after_s = (int64_t)(rr->retry_after_ms + 999) / 1000;
	if (f->retry_after_s < 1)
		f->retry_after_s = 1;
}

void llm_budget_failure(struct failure *f, const struct budget_refusal *br, int64_t now)
{
	char spent[32], limit[32], cost[32], reserved[32];

	budget_format_money(br->spent, spent, sizeof(spent));
	budget_format_money(br->limit, limit, sizeof(limit));
	budget_format_money(br->cost, cost, sizeof(cost));
	budget_format_money(br->reserved, reserved, sizeof(reserved));
	llm_set_failure(f, 429, "insufficient_quota", "over_budget",
		    "Over budget: %s (%s, %s) has %s of %s spent and %s reserved; this "
		    "request is estimated at %s", br->name, br->scope, br->period, spent,
		    limit, reserved, cost);
	if (br->resets_at > now)
		f->retry_after_s = br->resets_at - now;
}

static int admit_rate(struct llm_req *r, struct failure *f)
{
	struct rate_subject rs = llm_rate_who(r);
	struct rate_refusal rr;
	uint64_t now = clock_mono_ns();
	int rc = ratelimit_check_subject(r->l->rl_req, r->cfg->requests, &rs, r->prov->name,
					 r->model->name, now, &rr);
	const char *what = "requests";

	if (rc == 0) {
		/* tokens: admitted while a token is left; the answer's usage is taken after */
		rc = ratelimit_check_subject(r->l->rl_tok, r->cfg->tokens, &rs, r->prov->name,
					     r->model->name, now, &rr);
		what = "tokens";
	}
	if (rc == -EAGAIN)
		llm_rate_failure(f, &rr, what);
	else if (rc)
		llm_internal_failure(f, "rate limiting", rc);
	return rc;
}

static int admit_budget(struct llm_req *r, struct failure *f)
{
	struct budget_subject bs = { r->who.id, r->who.team, r->who.policy };
	struct budget_refusal br;
	int64_t now = clock_real_s();
	int rc;

	r->estimate = llm_estimate(r->cfg, r->model, r->body, r->ep, &r->est_out_tokens);
	if (r->estimate <= 0)
		return 0;
	rc = budget_reserve(gate_budget(r->l->gate), &bs, r->estimate, now, &r->resv, &br);
	if (rc == -EDQUOT)
		llm_budget_failure(f, &br, now);
	else if (rc)
		llm_internal_failure(f, "budget reservation", rc);
	return rc;
}

void llm_serve_models(struct llm_req *r)
{
	cJSON *o = cJSON_CreateObject(), *data;
	char why[256], id[LLM_NAME_MAX + LLM_MODEL_MAX + 2];

	cJSON_AddStringToObject(o, "object", "list");
	data = cJSON_AddArrayToObject(o, "data");
	for (size_t i = 0; i < r->cfg->nproviders; i++) {
		const struct llm_provider *p = &r->cfg->providers[i];
		for (size_t j = 0; j < p->nmodels; j++) {
			if (llm_policy_allows(r->cfg, r->authed ? &r->who : NULL, p->name,
					      p->models[j].name, why, sizeof(why)))
				continue;
			cJSON *m = cJSON_CreateObject();
			snprintf(id, sizeof(id), "%s/%s", p->name, p->models[j].name);
			cJSON_AddStringToObject(m, "id", id);
			cJSON_AddStringToObject(m, "object", "model");
			cJSON_AddNumberToObject(m, "created", 0);
			cJSON_AddStringToObject(m, "owned_by", p->name);
			cJSON_AddItemToArray(data, m);
		}
	}
	llm_send_json(r->req, 200, o);
	cJSON_Delete(o);
	r->req = NULL;
	llm_req_free(r);
}

/* The key from Authorization: Bearer or x-bf-vk. */
static const char *presented_key(struct http_req *req)
{
	const char *a = http_req_header(req, "Authorization");

	if (a && !strncasecmp(a, "Bearer ", 7)) {
		a += 7;
		while (*a == ' ')
			a++;
		return a;
	}
	return http_req_header(req, "x-bf-vk");
}

/* An OAuth access token (mcp/transport/front_auth.h), answered in the OpenAI error shape. */
static int authenticate_token(struct llm_req *r, const char *token, const char *peer,
			      const char *caller, struct failure *f)
{
	struct front_auth_refusal no;

	if (front_auth_token(r->l->auth, r->l->gate, token, peer, caller[0] ? caller : NULL,
			     &r->who, &no)) {
		snprintf(r->who.workload, sizeof(r->who.workload), "%s", caller);
		r->authed = true;
		return 0;
	}
	snprintf(r->who.workload, sizeof(r->who.workload), "%s", caller);
	if (no.www[0])
		http_req_set_header(r->req, "WWW-Authenticate", no.www);
	llm_set_failure(f, no.status,
			no.status == 401 ? "authentication_error" : no.status == 403
			? "permission_error" : no.status == 429 ? "rate_limit_error" : "api_error",
			no.status == 401 ? "invalid_api_key" : no.status == 403
			? "insufficient_scope" : no.status == 429 ? "auth_blocked" : "unavailable",
			"%s", no.message);
	f->retry_after_s = no.retry_after_s;
	return -EACCES;
}

int llm_authenticate(struct llm_req *r, struct failure *f)
{
	const char *peer;
	const char *reason;
	int64_t retry_ms;
	enum gate_auth a;
	const char *presented = presented_key(r->req);
	bool token = r->l->auth && front_auth_is_token(r->l->gate, presented);

	/* An access token is checked even where keys are optional (as on the MCP endpoint). */
	if (!gate_auth_required(r->l->gate) && !token)
		return 0;
	peer = front_conn_peer(r->req);
	char caller[sizeof(r->who.workload)];
	memcpy(caller, r->who.workload, sizeof(caller));
	if (token)
		return authenticate_token(r, presented, peer, caller, f);
	a = gate_authenticate(r->l->gate, presented, peer, front_conn_auth_memo(r->req), &r->who,
			      &reason, &retry_ms);
	memcpy(r->who.workload, caller, sizeof(caller));
	if (a == GATE_AUTH_OK && !keys_workload_allows(r->who.workloads, caller[0] ? caller : NULL)) {
		/* A key bound to workloads, from elsewhere: as on the MCP endpoint. */
		metrics_auth_workload_refused();
		audit_auth_workload("key used outside its workload", r->who.id, peer,
				    caller[0] ? caller : "unknown");
		http_req_set_header(r->req, "WWW-Authenticate", "Bearer realm=\"mcpwarden\"");
		llm_set_failure(f, 401, "authentication_error", "invalid_api_key",
				"this key may not be used from this workload");
		return -EACCES;
	}
	if (a == GATE_AUTH_OK) {
		r->authed = true;
		return 0;
	}
	audit_auth(reason, r->who.id, peer);
	if (a == GATE_AUTH_BLOCKED) {
		llm_set_failure(f, 429, "rate_limit_error", "auth_blocked",
			    "too many failed authentications from this address; retry later");
		f->retry_after_s = (retry_ms + 999) / 1000;
		return -EACCES;
	}
	http_req_set_header(r->req, "WWW-Authenticate", "Bearer realm=\"mcpwarden\"");
	llm_set_failure(f, 401, "authentication_error", "invalid_api_key",
		    a == GATE_AUTH_MISSING ? "authentication required: send Authorization: Bearer "
					     "<virtual key> or x-bf-vk" : "invalid key");
	return -EACCES;
}

int llm_parse_body(struct llm_req *r, struct failure *f)
{
	size_t len;
	const char *body = http_req_body(r->req, &len);
	const cJSON *model, *so;
	char why[256];

	r->body = cJSON_ParseWithLength(body, len);
	if (!cJSON_IsObject(r->body)) {
		llm_set_failure(f, 400, "invalid_request_error", "invalid_json",
			    "the body must be a JSON object");
		return -EINVAL;
	}
	if (llm_refuse_repeated(r->body, f))
		return -EINVAL;
	model = json_get(r->body, "model");
	if (!cJSON_IsString(model) || !*model->valuestring) {
		llm_set_failure(f, 400, "invalid_request_error", "missing_model",
			    "\"model\" is required: \"provider/model\" or a model of the default "
			    "provider");
		return -EINVAL;
	}
	if (r->ep == LLM_CHAT &&
	    !cJSON_IsArray(json_get(r->body, "messages"))) {
		llm_set_failure(f, 400, "invalid_request_error", "missing_messages",
			    "\"messages\" must be an array");
		return -EINVAL;
	}
	if (r->ep == LLM_EMBEDDINGS && !json_get(r->body, "input")) {
		llm_set_failure(f, 400, "invalid_request_error", "missing_input", "\"input\" is required");
		return -EINVAL;
	}
	if (resolve_model(r, model->valuestring, f))
		return -ENOENT;
	if (r->ep == LLM_CHAT)
		r->stream = cJSON_IsTrue(json_get(r->body, "stream"));
	so = json_get(r->body, "stream_options");
	r->agent_usage = cJSON_IsTrue(json_get(so, "include_usage"));
	if (llm_policy_allows(r->cfg, r->authed ? &r->who : NULL, r->prov->name, r->model->name,
			      why, sizeof(why))) {
		llm_set_failure(f, 403, "permission_error", "model_not_allowed",
			    "model %s/%s is not allowed for this key: %s", r->prov->name,
			    r->model->name, why);
		return -EACCES;
	}
	r->log_content = llm_policy_logs(r->cfg, r->authed ? &r->who : NULL);
	if (r->ep == LLM_CHAT)
		return llm_tools_offer(r, f);
	return 0;
}

/* Budget first, then rate limits: a request refused for its budget spends no rate token,
 * one refused by a rate limit keeps no money reserved (the gate's order for tool calls).
 * With the fleet's counters in Redis, both in one script (admit_fleet.c). */
int llm_admit(struct llm_req *r, struct failure *f)
{
	int rc;

	if (gate_fleet(r->l->gate))
		return llm_admit_fleet(r, f);
	rc = admit_budget(r, f);

	if (rc == 0 && (rc = admit_rate(r, f)) != 0 && r->resv) {
		budget_release(gate_budget(r->l->gate), r->resv);
		r->resv = NULL;
	}
	return rc;
}
