/* llm_int: what the route's files share (config, one request, the provider transfer). */
#ifndef WARDEN_LLM_INT_H
#define WARDEN_LLM_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <curl/curl.h>
#include <cjson/cJSON.h>

#include "base/curl_loop.h"
#include "base/http_server.h"
#include "base/list.h"
#include "govern/keys.h"
#include "govern/ratelimit.h"
#include "llm/llm.h"

#define LLM_NAME_MAX 32                 /* provider names: [a-z0-9_-]{1,32} */
#define LLM_MODEL_MAX 128               /* model names */
#define LLM_KEY_MAX 4096                /* a provider API key */
#define LLM_RESPONSE_MAX (16u << 20)    /* a provider's whole (non-streamed) answer */
#define LLM_DEFAULT_MAX_TOKENS 4096
#define LLM_DEFAULT_TIMEOUT_MS 120000

enum llm_kind { LLM_OPENAI, LLM_ANTHROPIC };
enum llm_endpoint { LLM_CHAT, LLM_EMBEDDINGS, LLM_MODELS, LLM_TOOL_EXECUTE };

struct llm_model {
	char *name;
	int64_t in_price, out_price;    /* micro-units per million tokens */
};

struct llm_provider {
	char *name;
	enum llm_kind kind;
	char *base_url;                 /* without the trailing slash */
	char *api_key;                  /* the secret: only ever in this provider's header */
	long timeout_ms;
	char *fallback;                 /* another provider's name, or NULL */
	struct llm_model *models;
	size_t nmodels;
};

enum llm_glob_kind { LLM_GLOB_PROVIDERS, LLM_GLOB_MODELS };

struct llm_policy {
	char *name;
	/* Glob lists (NULL-terminated) indexed by what they match, enum llm_glob_kind. */
	char **allow[2], **deny[2];
	bool log_arguments;             /* prompts and completions in the record */
};

struct ratelimit_config;

struct llm_config {
	int refs;
	struct llm_provider *providers;
	size_t nproviders;
	char *default_provider;         /* NULL: models must be named "provider/model" */
	int64_t default_max_tokens;     /* the output estimate when a request sets none */
	struct ratelimit_config *requests, *tokens;
	struct llm_policy *policies;    /* those with an "llm" member */
	size_t npolicies;
};

int llm_config_parse(const cJSON *root, struct llm_config **out, struct config_errors *errs);
void llm_config_get(struct llm_config *c);
void llm_config_put(struct llm_config *c);
const struct llm_provider *llm_provider_find(const struct llm_config *c, const char *name);
const struct llm_model *llm_model_find(const struct llm_provider *p, const char *name);
/* May who use provider p's model m? 0, or -EACCES with *why a static text or the rule. */
int llm_policy_allows(const struct llm_config *c, const struct key_identity *who,
		      const char *provider, const char *model, char *why, size_t len);
/* Does either of who's policies ask for prompts and completions in the record? */
bool llm_policy_logs(const struct llm_config *c, const struct key_identity *who);

/* ---- usage and money (usage.c) ---- */

/* tokens x price per million, rounded up, in micro-units. */
int64_t llm_cost(int64_t tokens, int64_t price_per_million);
/* The price reserved before the call: an estimate of the prompt's tokens from the size of
 * its text (4 bytes a token, rounded up) at the input price, plus max_tokens (or
 * max_completion_tokens, or the default) at the output price. */
/* The completion tokens a chat request asks for at most: max_completion_tokens, else
 * max_tokens (each only when a whole number from 1 to 1e9), else the configured default. */
int64_t llm_max_tokens(const struct llm_config *c, const cJSON *body);
/* A provider's token count: 0..LLM_TOKENS_MAX, or -1 when v is anything else. */
#define LLM_TOKENS_MAX 1e12
int64_t llm_token_count(const cJSON *v);
int64_t llm_estimate(const struct llm_config *c, const struct llm_model *m, const cJSON *body,
		     enum llm_endpoint ep, int64_t *out_tokens);
/* usage {prompt_tokens, completion_tokens} (or Anthropic's input/output_tokens): 0 when
 * present. */
int llm_usage_read(const cJSON *usage, int64_t *in, int64_t *out);

/* ---- one request ---- */

struct budget_resv;
struct fleet_resv;
struct llm_admission;
struct sse_parser;
struct router;
struct gate;
struct ratelimit;
struct hmap;

struct llm {
	struct event_base *base;
	struct gate *gate;
	struct router *router;                 /* MCP tools for the model (mcp_tools.c) */
	struct llm_config *cfg;
	struct ratelimit *rl_req, *rl_tok;     /* requests, and tokens, per key/provider/model */
	struct list_head reqs;                 /* in flight */
	struct hmap *sessions;                 /* key id -> its MCP session id (tool calls) */
	struct front_auth *auth;               /* OAuth access tokens (the front's), or NULL */
};

/* What the agent is told when a request fails, and what the record says. */
struct failure {
	int status;
	const char *type, *code;
	char message[512];
	int64_t retry_after_s;          /* > 0: Retry-After */
};

#define LLM_TOOL_CALLS_MAX 16           /* tool call ids a chat record names */
struct llm_exec;

struct llm_req {
	struct curl_xfer xfer;
	struct llm *l;
	struct llm_config *cfg;         /* a reference: a reload does not pull it away */
	struct list_head link;          /* in l->reqs */
	struct http_req *req;           /* NULL once answered, or once the client went away */
	enum llm_endpoint ep;
	bool authed;
	struct key_identity who;        /* who.workload: the caller, set before authentication */
	const struct llm_provider *prov;
	const struct llm_model *model;
	const struct llm_provider *failed;      /* the provider a fallback replaced */
	cJSON *body;                    /* the agent's request, model rewritten */
	bool stream, agent_usage;       /* stream: true; the agent asked for include_usage */
	bool log_content;
	struct budget_resv *resv;
	struct fleet_resv *fresv;       /* the reservation in the fleet's counters (Redis) */
	bool fresv_charges;             /* it holds budgets: the request has a cost to charge */
	struct llm_admission *admission;        /* waiting for Redis */
	int64_t estimate;               /* reserved, micro-units */
	int64_t est_out_tokens;
	bool sent;                      /* a transfer reached the provider */
	/* the transfer */
	CURL *easy;
	struct curl_slist *hdrs;
	char *payload;
	char errbuf[CURL_ERROR_SIZE];
	struct evbuffer *buf;           /* the answer (whole, or an error page) */
	long status;
	bool body_started;              /* first byte seen: status and type known */
	bool event_stream;              /* the provider answers with SSE */
	bool streaming;                 /* the agent's chunked reply has started */
	struct sse_parser *sse;
	bool saw_done;
	int stream_err;                 /* an SSE event could not be handled */
	char *stream_id;                /* anthropic: the message id for every chunk */
	int tool_index;                 /* anthropic stream: the tool call being streamed (-1) */
	int64_t in_tok, out_tok;        /* < 0: unknown */
	cJSON *completion;              /* log_content: the text streamed so far */
	uint64_t rx_ns, ttft_ns;
	bool settling;                  /* waiting for the charge to be durable */
	int64_t charged;                /* < 0: nothing */
	cJSON *answer;                  /* non-stream: what the agent gets once durable */
	cJSON *tool_calls;              /* ids of the tool calls the model made (record) */
	struct llm_exec *exec;          /* /v1/mcp/tool/execute in progress */
	char *tool, *tool_call_id;      /* /v1/mcp/tool/execute: what it runs */
	char session[72];               /* and in which MCP session */
};

/* admit.c: 0 or a negative errno with *f filled (the request is then refused with it).
 * llm_admit: also -EINPROGRESS, the fleet's counters in Redis are asked: llm_forward(r) or
 * llm_fail(r) follows later on the loop (admit_fleet.c). */
int llm_authenticate(struct llm_req *r, struct failure *f);
int llm_parse_body(struct llm_req *r, struct failure *f);
int llm_admit(struct llm_req *r, struct failure *f);
struct budget_refusal;
struct rate_refusal;
/* The agent's 429 for a budget refusal, and for a rate refusal of what ("requests",
 * "tokens"). */
void llm_budget_failure(struct failure *f, const struct budget_refusal *br, int64_t now);
void llm_rate_failure(struct failure *f, const struct rate_refusal *rr, const char *what);

/* admit_fleet.c: the budgets and rate limits of llm_admit in the fleet's counters (gate_fleet
 * non-NULL). */
int llm_admit_fleet(struct llm_req *r, struct failure *f);
/* The request is freed while its admission waits for Redis: the reservation, when one comes,
 * is released. */
void llm_admission_cancel(struct llm_req *r);
/* Take the answer's tokens (n more than the one admission took) from the key's token buckets
 * in Redis. Returns 0 when done(r, 0) follows (done non-NULL), 1 otherwise. */
int llm_fleet_debit(struct llm_req *r, int64_t n, void (*done)(void *arg, int err));
/* GET /v1/models: answers and frees r. */
void llm_serve_models(struct llm_req *r);

static inline struct rate_subject llm_rate_who(const struct llm_req *r)
{
	return (struct rate_subject){ r->who.id, r->who.team, r->who.policy };
}

/* route.c, for the other files of the route */
void llm_send_json(struct http_req *req, int status, const cJSON *body);
__attribute__((format(printf, 5, 6)))
void llm_set_failure(struct failure *f, int status, const char *type, const char *code,
		     const char *fmt, ...);
/* Ours, not the client's nor the provider's: 500 "<what> failed: <strerror(-rc)>". Returns rc. */
int llm_internal_failure(struct failure *f, const char *what, int rc);
/* A client's JSON with a member name twice in one object (base/json_keys.h): 400
 * repeated_member naming it, -EINVAL; else 0. */
int llm_refuse_repeated(const cJSON *body, struct failure *f);
void llm_record(struct llm_req *r, int status, const struct failure *f);
/* Answer f, release, record, free. */
void llm_fail(struct llm_req *r, const struct failure *f);
void llm_req_free(struct llm_req *r);
/* Note a tool call id of the model's answer for the record. */
void llm_note_tool_call(struct llm_req *r, const char *id);

/* mcp_tools.c: the key's MCP tools offered to the model (the request's "mcp_tools": true or
 * an x-mcp-tools header), and POST /v1/mcp/tool/execute. */
int llm_tools_offer(struct llm_req *r, struct failure *f);
void llm_tool_execute(struct llm_req *r);
/* The client left during an execution: tell the router, end the session. */
void llm_tool_gone(struct llm_req *r);

/* provider.c: start the transfer for r->prov/r->model (0 or a negative errno), and stop it. */
int llm_transfer_start(struct llm_req *r);
void llm_transfer_stop(struct llm_req *r);
/* route.c: an admitted request goes to its provider (or fails with 502). */
void llm_forward(struct llm_req *r);
/* route.c: the transfer ended (res from curl). */
void llm_req_transfer_done(struct llm_req *r, CURLcode res);
/* route.c: forward one OpenAI-shaped chunk to the agent (streaming). Returns 0 or -EPIPE. */
int llm_req_chunk(struct llm_req *r, const char *data, size_t len);

/* anthropic.c: translation to and from the Messages API. */
cJSON *llm_anthropic_request(const struct llm_req *r, const cJSON *body);
cJSON *llm_anthropic_response(const struct llm_req *r, const cJSON *msg);
/* One SSE event of a streamed Messages answer: emits chat.completion.chunk data through
 * llm_req_chunk and notes usage. Returns 0 or a negative errno. */
int llm_anthropic_event(struct llm_req *r, const char *type, const char *data, size_t len);

#endif
