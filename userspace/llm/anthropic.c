/* anthropic: chat completions to and from Anthropic's Messages API. */
#include "llm/llm_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"

/* A message's content as text: a string, or the text parts of an array. */
static char *content_text(const cJSON *c)
{
	size_t n = 0;
	char *s;

	if (cJSON_IsString(c))
		return xstrdup(c->valuestring);
	const cJSON *part;
	cJSON_ArrayForEach(part, c) {
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(part, "text");
		if (cJSON_IsString(t))
			n += strlen(t->valuestring) + 1;
	}
	s = xcalloc(1, n + 1);
	cJSON_ArrayForEach(part, c) {
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(part, "text");
		if (!cJSON_IsString(t))
			continue;
		if (*s)
			strcat(s, "\n");
		strcat(s, t->valuestring);
	}
	return s;
}

cJSON *llm_anthropic_request(const struct llm_req *r, const cJSON *body)
{
	const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(body, "messages"), *m, *v;
	cJSON *out = cJSON_CreateObject(), *am = NULL;
	char *system = NULL;
	int64_t max = 0;

	cJSON_AddStringToObject(out, "model", r->model->name);
	if (!(v = cJSON_GetObjectItemCaseSensitive(body, "max_completion_tokens")))
		v = cJSON_GetObjectItemCaseSensitive(body, "max_tokens");
	if (cJSON_IsNumber(v) && v->valuedouble >= 1)
		max = (int64_t)v->valuedouble;
	cJSON_AddNumberToObject(out, "max_tokens", (double)(max ? max : r->cfg->default_max_tokens));
	am = cJSON_AddArrayToObject(out, "messages");
	cJSON_ArrayForEach(m, msgs) {
		const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
		char *text = content_text(cJSON_GetObjectItemCaseSensitive(m, "content"));
		if (!cJSON_IsString(role)) {
			free(text);
			cJSON_Delete(out);
			return NULL;
		}
		if (!strcmp(role->valuestring, "system") || !strcmp(role->valuestring, "developer")) {
			size_t n = (system ? strlen(system) + 1 : 0) + strlen(text) + 1;
			char *s = xmalloc(n);
			snprintf(s, n, "%s%s%s", system ? system : "", system ? "\n" : "", text);
			free(system);
			system = s;
		} else {
			cJSON *x = cJSON_CreateObject();
			cJSON_AddStringToObject(x, "role", strcmp(role->valuestring, "assistant")
								   ? "user" : "assistant");
			cJSON_AddStringToObject(x, "content", text);
			cJSON_AddItemToArray(am, x);
		}
		free(text);
	}
	if (system)
		cJSON_AddStringToObject(out, "system", system);
	free(system);
	if (cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(body, "temperature")))
		cJSON_AddNumberToObject(out, "temperature", v->valuedouble);
	if (cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(body, "top_p")))
		cJSON_AddNumberToObject(out, "top_p", v->valuedouble);
	v = cJSON_GetObjectItemCaseSensitive(body, "stop");
	if (cJSON_IsString(v)) {
		cJSON *a = cJSON_AddArrayToObject(out, "stop_sequences");
		cJSON_AddItemToArray(a, cJSON_CreateString(v->valuestring));
	} else if (cJSON_IsArray(v)) {
		cJSON_AddItemToObject(out, "stop_sequences", cJSON_Duplicate(v, 1));
	}
	if (r->stream)
		cJSON_AddTrueToObject(out, "stream");
	return out;
}

static const char *finish_reason(const cJSON *stop)
{
	const char *s = cJSON_IsString(stop) ? stop->valuestring : "";

	if (!strcmp(s, "max_tokens"))
		return "length";
	if (!strcmp(s, "tool_use"))
		return "tool_calls";
	return "stop";
}

static cJSON *usage_object(int64_t in, int64_t out)
{
	cJSON *u = cJSON_CreateObject();

	cJSON_AddNumberToObject(u, "prompt_tokens", (double)in);
	cJSON_AddNumberToObject(u, "completion_tokens", (double)out);
	cJSON_AddNumberToObject(u, "total_tokens", (double)(in + out));
	return u;
}

cJSON *llm_anthropic_response(const struct llm_req *r, const cJSON *msg)
{
	const cJSON *content = cJSON_GetObjectItemCaseSensitive(msg, "content");
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(msg, "id");
	int64_t in = 0, out = 0;
	cJSON *o, *ch, *m;
	char *text;

	if (!cJSON_IsArray(content))
		return NULL;
	text = content_text(content);
	llm_usage_read(cJSON_GetObjectItemCaseSensitive(msg, "usage"), &in, &out);
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "id", cJSON_IsString(id) ? id->valuestring : "");
	cJSON_AddStringToObject(o, "object", "chat.completion");
	cJSON_AddNumberToObject(o, "created", (double)time(NULL));
	cJSON_AddStringToObject(o, "model", r->model->name);
	ch = cJSON_CreateObject();
	cJSON_AddNumberToObject(ch, "index", 0);
	m = cJSON_AddObjectToObject(ch, "message");
	cJSON_AddStringToObject(m, "role", "assistant");
	cJSON_AddStringToObject(m, "content", text);
	cJSON_AddStringToObject(ch, "finish_reason",
				finish_reason(cJSON_GetObjectItemCaseSensitive(msg, "stop_reason")));
	cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "choices"), ch);
	cJSON_AddItemToObject(o, "usage", usage_object(in, out));
	free(text);
	return o;
}

/* One chat.completion.chunk with a delta (and a finish reason), or the usage-only chunk. */
static int emit(struct llm_req *r, cJSON *delta, const char *finish, bool usage)
{
	cJSON *o = cJSON_CreateObject(), *choices;
	char *text;
	int rc;

	cJSON_AddStringToObject(o, "id", r->stream_id ? r->stream_id : "");
	cJSON_AddStringToObject(o, "object", "chat.completion.chunk");
	cJSON_AddNumberToObject(o, "created", (double)time(NULL));
	cJSON_AddStringToObject(o, "model", r->model->name);
	choices = cJSON_AddArrayToObject(o, "choices");
	if (delta) {
		cJSON *ch = cJSON_CreateObject();
		cJSON_AddNumberToObject(ch, "index", 0);
		cJSON_AddItemToObject(ch, "delta", delta);
		if (finish)
			cJSON_AddStringToObject(ch, "finish_reason", finish);
		else
			cJSON_AddNullToObject(ch, "finish_reason");
		cJSON_AddItemToArray(choices, ch);
	}
	if (usage)
		cJSON_AddItemToObject(o, "usage", usage_object(r->in_tok < 0 ? 0 : r->in_tok,
							       r->out_tok < 0 ? 0 : r->out_tok));
	text = cJSON_PrintUnformatted(o);
	rc = llm_req_chunk(r, text, strlen(text));
	cJSON_free(text);
	cJSON_Delete(o);
	return rc;
}

int llm_anthropic_event(struct llm_req *r, const char *type, const char *data, size_t len)
{
	cJSON *j = cJSON_ParseWithLength(data, len), *d;
	int rc = 0;

	if (!cJSON_IsObject(j)) {
		cJSON_Delete(j);
		return -EPROTO;
	}
	if (!strcmp(type, "message_start")) {
		const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "message");
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(m, "id");
		const cJSON *u = cJSON_GetObjectItemCaseSensitive(
			cJSON_GetObjectItemCaseSensitive(m, "usage"), "input_tokens");
		free(r->stream_id);
		r->stream_id = xstrdup(cJSON_IsString(id) ? id->valuestring : "");
		if (cJSON_IsNumber(u) && u->valuedouble >= 0) {
			r->in_tok = (int64_t)u->valuedouble;
			r->out_tok = 0;
		}
		d = cJSON_CreateObject();
		cJSON_AddStringToObject(d, "role", "assistant");
		cJSON_AddStringToObject(d, "content", "");
		rc = emit(r, d, NULL, false);
	} else if (!strcmp(type, "content_block_delta")) {
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(
			cJSON_GetObjectItemCaseSensitive(j, "delta"), "text");
		if (cJSON_IsString(t)) {
			d = cJSON_CreateObject();
			cJSON_AddStringToObject(d, "content", t->valuestring);
			if (r->log_content) {
				size_t have = r->completion ? strlen(r->completion->valuestring) : 0;
				if (have + strlen(t->valuestring) <= 65536) {
					char *s = xmalloc(have + strlen(t->valuestring) + 1);
					sprintf(s, "%s%s", have ? r->completion->valuestring : "",
						t->valuestring);
					cJSON_Delete(r->completion);
					r->completion = cJSON_CreateString(s);
					free(s);
				}
			}
			rc = emit(r, d, NULL, false);
		}
	} else if (!strcmp(type, "message_delta")) {
		const cJSON *u = cJSON_GetObjectItemCaseSensitive(
			cJSON_GetObjectItemCaseSensitive(j, "usage"), "output_tokens");
		if (cJSON_IsNumber(u) && u->valuedouble >= 0) {
			r->out_tok = (int64_t)u->valuedouble;
			if (r->in_tok < 0)
				r->in_tok = 0;
		}
		rc = emit(r, cJSON_CreateObject(), finish_reason(cJSON_GetObjectItemCaseSensitive(
				 cJSON_GetObjectItemCaseSensitive(j, "delta"), "stop_reason")), false);
	} else if (!strcmp(type, "message_stop")) {
		if (r->agent_usage)
			rc = emit(r, NULL, NULL, true);
		r->saw_done = true;
	} else if (!strcmp(type, "error")) {
		rc = -EPROTO;
	}
	cJSON_Delete(j);
	return rc;
}
