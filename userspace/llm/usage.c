/* usage: tokens to money, the estimate a request reserves, and the usage providers report. */
#include "llm/llm_int.h"

#include <errno.h>
#include <string.h>

#include "govern/budget.h"
#include "base/json_get.h"

int64_t llm_cost(int64_t tokens, int64_t price_per_million)
{
	__int128 v;

	if (tokens <= 0 || price_per_million <= 0)
		return 0;
	v = ((__int128)tokens * price_per_million + 999999) / 1000000;
	return v > BUDGET_MONEY_MAX ? BUDGET_MONEY_MAX : (int64_t)v;
}

/* Bytes of text a request sends: every string in it (messages' content, input). */
static size_t text_bytes(const cJSON *j)
{
	size_t n = 0;

	if (cJSON_IsString(j))
		return strlen(j->valuestring);
	for (const cJSON *c = j ? j->child : NULL; c; c = c->next)
		n += text_bytes(c);
	return n;
}

static int64_t number(const cJSON *obj, const char *key)
{
	const cJSON *v = json_get(obj, key);

	return cJSON_IsNumber(v) && v->valuedouble >= 1 && v->valuedouble < 1e9
		? (int64_t)v->valuedouble : 0;
}

int64_t llm_max_tokens(const struct llm_config *c, const cJSON *body)
{
	int64_t out = number(body, "max_completion_tokens");

	if (!out)
		out = number(body, "max_tokens");
	return out ? out : c->default_max_tokens;
}

int64_t llm_estimate(const struct llm_config *c, const struct llm_model *m, const cJSON *body,
		     enum llm_endpoint ep, int64_t *out_tokens)
{
	const cJSON *what = json_get(body, ep == LLM_EMBEDDINGS ? "input" : "messages");
	int64_t in = (int64_t)(text_bytes(what) + 3) / 4, out = 0, cost;

	if (ep == LLM_CHAT)
		out = llm_max_tokens(c, body);
	*out_tokens = out;
	if (!m)
		return 0;
	cost = llm_cost(in, m->in_price) + llm_cost(out, m->out_price);
	return cost > BUDGET_MONEY_MAX ? BUDGET_MONEY_MAX : cost;
}

int64_t llm_token_count(const cJSON *v)
{
	/* the bound first: a double past int64_t's range must never be converted */
	return cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble <= LLM_TOKENS_MAX
		? (int64_t)v->valuedouble : -1;
}

int llm_usage_read(const cJSON *usage, int64_t *in, int64_t *out)
{
	const cJSON *p = json_get(usage, "prompt_tokens");
	const cJSON *o = json_get(usage, "completion_tokens");
	int64_t n;

	if (!cJSON_IsNumber(p)) {
		p = json_get(usage, "input_tokens");
		o = json_get(usage, "output_tokens");
	}
	if ((n = llm_token_count(p)) < 0)
		return -ENOENT;
	*in = n;
	*out = (n = llm_token_count(o)) < 0 ? 0 : n;
	return 0;
}
