/* anthropic: chat completions to and from Anthropic's Messages API. */
#include "llm/llm_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "base/json_get.h"
#include "base/jsonfmt.h"

/* A message's content as text: a string, or the text parts of an array. */
static char *content_text(const cJSON *c)
{
	size_t n = 0;
	char *s;

	if (cJSON_IsString(c))
		return xstrdup(c->valuestring);
	const cJSON *part;
	cJSON_ArrayForEach(part, c) {
		const cJSON *t = json_get(part, "text");
		if (cJSON_IsString(t))
			n += strlen(t->valuestring) + 1;
	}
	s = xcalloc(1, n + 1);
	cJSON_ArrayForEach(part, c) {
		const cJSON *t = json_get(part, "text");
		if (!cJSON_IsString(t))
			continue;
		if (*s)
			strcat(s, "\n");
		strcat(s, t->valuestring);
	}
	return s;
}

/* OpenAI tools -> Anthropic tools; tool_choice likewise. */
static void add_tools(cJSON *out, const cJSON *body)
{
	const cJSON *tools = json_get(body, "tools"), *t;
	const cJSON *choice = json_get(body, "tool_choice");
	cJSON *at;

	if (!cJSON_GetArraySize(tools))
		return;
	at = cJSON_AddArrayToObject(out, "tools");
	cJSON_ArrayForEach(t, tools) {
		const cJSON *fn = json_get(t, "function");
		const cJSON *name = json_get(fn, "name");
		const cJSON *desc = json_get(fn, "description");
		const cJSON *params = json_get(fn, "parameters");
		if (!cJSON_IsString(name))
			continue;
		cJSON *x = cJSON_CreateObject();
		cJSON_AddStringToObject(x, "name", name->valuestring);
		if (cJSON_IsString(desc))
			cJSON_AddStringToObject(x, "description", desc->valuestring);
		if (cJSON_IsObject(params))
			cJSON_AddItemToObject(x, "input_schema", cJSON_Duplicate(params, 1));
		else
			cJSON_AddItemToObject(x, "input_schema",
					      cJSON_Parse("{\"type\":\"object\",\"properties\":{}}"));
		cJSON_AddItemToArray(at, x);
	}
	if (cJSON_IsString(choice)) {
		cJSON *c = cJSON_AddObjectToObject(out, "tool_choice");
		cJSON_AddStringToObject(c, "type", !strcmp(choice->valuestring, "required") ? "any"
						   : !strcmp(choice->valuestring, "none") ? "none" : "auto");
	} else if (cJSON_IsObject(choice)) {
		const cJSON *n = json_get(json_get(choice, "function"), "name");
		if (cJSON_IsString(n)) {
			cJSON *c = cJSON_AddObjectToObject(out, "tool_choice");
			cJSON_AddStringToObject(c, "type", "tool");
			cJSON_AddStringToObject(c, "name", n->valuestring);
		}
	}
}

/* An assistant message that called tools: its text, then one tool_use block per call. */
static cJSON *assistant_blocks(const char *text, const cJSON *calls)
{
	cJSON *content = cJSON_CreateArray();
	const cJSON *c;

	if (*text) {
		cJSON *t = cJSON_CreateObject();
		cJSON_AddStringToObject(t, "type", "text");
		cJSON_AddStringToObject(t, "text", text);
		cJSON_AddItemToArray(content, t);
	}
	cJSON_ArrayForEach(c, calls) {
		const cJSON *id = json_get(c, "id");
		const cJSON *fn = json_get(c, "function");
		const cJSON *name = json_get(fn, "name");
		const cJSON *args = json_get(fn, "arguments");
		cJSON *input = cJSON_IsString(args) ? cJSON_Parse(args->valuestring) : NULL;
		cJSON *u = cJSON_CreateObject();
		cJSON_AddStringToObject(u, "type", "tool_use");
		cJSON_AddStringToObject(u, "id", cJSON_IsString(id) ? id->valuestring : "");
		cJSON_AddStringToObject(u, "name", cJSON_IsString(name) ? name->valuestring : "");
		if (!cJSON_IsObject(input)) {
			cJSON_Delete(input);
			input = cJSON_CreateObject();
		}
		cJSON_AddItemToObject(u, "input", input);
		cJSON_AddItemToArray(content, u);
	}
	return content;
}

cJSON *llm_anthropic_request(const struct llm_req *r, const cJSON *body)
{
	const cJSON *msgs = json_get(body, "messages"), *m, *v;
	cJSON *out = cJSON_CreateObject(), *am = NULL;
	char *system = NULL;

	cJSON_AddStringToObject(out, "model", r->model->name);
	/* The Messages API requires it: what the reservation was made for. */
	cJSON_AddNumberToObject(out, "max_tokens", (double)llm_max_tokens(r->cfg, body));
	am = cJSON_AddArrayToObject(out, "messages");
	cJSON_ArrayForEach(m, msgs) {
		const cJSON *role = json_get(m, "role");
		char *text = content_text(json_get(m, "content"));
		if (!cJSON_IsString(role)) {
			free(text);
			free(system);
			cJSON_Delete(out);
			return NULL;
		}
		if (!strcmp(role->valuestring, "system") || !strcmp(role->valuestring, "developer")) {
			size_t n = (system ? strlen(system) + 1 : 0) + strlen(text) + 1;
			char *s = xmalloc(n);
			snprintf(s, n, "%s%s%s", system ? system : "", system ? "\n" : "", text);
			free(system);
			system = s;
		} else if (!strcmp(role->valuestring, "tool")) {
			/* a tool result goes back as a user turn; consecutive ones share it */
			const cJSON *id = json_get(m, "tool_call_id");
			cJSON *last = cJSON_GetArrayItem(am, cJSON_GetArraySize(am) - 1);
			cJSON *lc = json_get(last, "content");
			cJSON *res = cJSON_CreateObject();
			cJSON_AddStringToObject(res, "type", "tool_result");
			cJSON_AddStringToObject(res, "tool_use_id", cJSON_IsString(id) ? id->valuestring : "");
			cJSON_AddStringToObject(res, "content", text);
			const char *first = cJSON_GetStringValue(json_get(
				cJSON_GetArrayItem(lc, 0), "type"));
			if (!cJSON_IsArray(lc) || !first || strcmp(first, "tool_result")) {
				cJSON *x = cJSON_CreateObject();
				cJSON_AddStringToObject(x, "role", "user");
				lc = cJSON_AddArrayToObject(x, "content");
				cJSON_AddItemToArray(am, x);
			}
			cJSON_AddItemToArray(lc, res);
		} else {
			const cJSON *calls = json_get(m, "tool_calls");
			bool assistant = !strcmp(role->valuestring, "assistant");
			cJSON *x = cJSON_CreateObject();
			cJSON_AddStringToObject(x, "role", assistant ? "assistant" : "user");
			if (assistant && cJSON_GetArraySize(calls))
				cJSON_AddItemToObject(x, "content", assistant_blocks(text, calls));
			else
				cJSON_AddStringToObject(x, "content", text);
			cJSON_AddItemToArray(am, x);
		}
		free(text);
	}
	if (system)
		cJSON_AddStringToObject(out, "system", system);
	free(system);
	if (cJSON_IsNumber(v = json_get(body, "temperature")))
		cJSON_AddNumberToObject(out, "temperature", v->valuedouble);
	if (cJSON_IsNumber(v = json_get(body, "top_p")))
		cJSON_AddNumberToObject(out, "top_p", v->valuedouble);
	v = json_get(body, "stop");
	if (cJSON_IsString(v)) {
		cJSON *a = cJSON_AddArrayToObject(out, "stop_sequences");
		cJSON_AddItemToArray(a, cJSON_CreateString(v->valuestring));
	} else if (cJSON_IsArray(v)) {
		cJSON_AddItemToObject(out, "stop_sequences", cJSON_Duplicate(v, 1));
	}
	add_tools(out, body);
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
	const cJSON *content = json_get(msg, "content");
	const cJSON *id = json_get(msg, "id");
	int64_t in = 0, out = 0;
	cJSON *o, *ch, *m;
	char *text;

	if (!cJSON_IsArray(content))
		return NULL;
	text = content_text(content);
	llm_usage_read(json_get(msg, "usage"), &in, &out);
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "id", cJSON_IsString(id) ? id->valuestring : "");
	cJSON_AddStringToObject(o, "object", "chat.completion");
	cJSON_AddNumberToObject(o, "created", (double)time(NULL));
	cJSON_AddStringToObject(o, "model", r->model->name);
	ch = cJSON_CreateObject();
	cJSON_AddNumberToObject(ch, "index", 0);
	m = cJSON_AddObjectToObject(ch, "message");
	cJSON_AddStringToObject(m, "role", "assistant");
	jsonfmt_add_or_null(m, "content", text);
	const cJSON *b;
	cJSON *calls = NULL;
	cJSON_ArrayForEach(b, content) {
		const cJSON *type = json_get(b, "type");
		if (!cJSON_IsString(type) || strcmp(type->valuestring, "tool_use"))
			continue;
		const cJSON *bid = json_get(b, "id");
		const cJSON *name = json_get(b, "name");
		char *args = cJSON_PrintUnformatted(json_get(b, "input"));
		cJSON *c = cJSON_CreateObject(), *fn;
		if (!calls)
			calls = cJSON_AddArrayToObject(m, "tool_calls");
		cJSON_AddStringToObject(c, "id", cJSON_IsString(bid) ? bid->valuestring : "");
		cJSON_AddStringToObject(c, "type", "function");
		fn = cJSON_AddObjectToObject(c, "function");
		cJSON_AddStringToObject(fn, "name", cJSON_IsString(name) ? name->valuestring : "");
		cJSON_AddStringToObject(fn, "arguments", args ? args : "{}");
		cJSON_free(args);
		cJSON_AddItemToArray(calls, c);
	}
	cJSON_AddStringToObject(ch, "finish_reason",
				finish_reason(json_get(msg, "stop_reason")));
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
		const cJSON *m = json_get(j, "message");
		const cJSON *id = json_get(m, "id");
		const cJSON *u = json_get(json_get(m, "usage"), "input_tokens");
		free(r->stream_id);
		r->stream_id = xstrdup(cJSON_IsString(id) ? id->valuestring : "");
		if (llm_token_count(u) >= 0) {
			r->in_tok = llm_token_count(u);
			r->out_tok = 0;
		}
		d = cJSON_CreateObject();
		cJSON_AddStringToObject(d, "role", "assistant");
		cJSON_AddStringToObject(d, "content", "");
		rc = emit(r, d, NULL, false);
	} else if (!strcmp(type, "content_block_start")) {
		const cJSON *b = json_get(j, "content_block");
		const cJSON *bt = json_get(b, "type");
		if (cJSON_IsString(bt) && !strcmp(bt->valuestring, "tool_use")) {
			const cJSON *id = json_get(b, "id");
			const cJSON *name = json_get(b, "name");
			cJSON *tc = cJSON_CreateObject(), *fn;
			r->tool_index++;
			cJSON_AddNumberToObject(tc, "index", r->tool_index);
			cJSON_AddStringToObject(tc, "id", cJSON_IsString(id) ? id->valuestring : "");
			cJSON_AddStringToObject(tc, "type", "function");
			fn = cJSON_AddObjectToObject(tc, "function");
			cJSON_AddStringToObject(fn, "name", cJSON_IsString(name) ? name->valuestring : "");
			cJSON_AddStringToObject(fn, "arguments", "");
			if (cJSON_IsString(id))
				llm_note_tool_call(r, id->valuestring);
			d = cJSON_CreateObject();
			cJSON_AddItemToArray(cJSON_AddArrayToObject(d, "tool_calls"), tc);
			rc = emit(r, d, NULL, false);
		}
	} else if (!strcmp(type, "content_block_delta") &&
		   cJSON_IsString(json_get(json_get(j, "delta"), "partial_json"))) {
		const cJSON *pj = json_get(json_get(j, "delta"), "partial_json");
		cJSON *tc = cJSON_CreateObject();
		cJSON_AddNumberToObject(tc, "index", r->tool_index < 0 ? 0 : r->tool_index);
		cJSON_AddStringToObject(cJSON_AddObjectToObject(tc, "function"), "arguments",
					pj->valuestring);
		d = cJSON_CreateObject();
		cJSON_AddItemToArray(cJSON_AddArrayToObject(d, "tool_calls"), tc);
		rc = emit(r, d, NULL, false);
	} else if (!strcmp(type, "content_block_delta")) {
		const cJSON *t = json_get(json_get(j, "delta"), "text");
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
		const cJSON *u = json_get(json_get(j, "usage"), "output_tokens");
		if (llm_token_count(u) >= 0) {
			r->out_tok = llm_token_count(u);
			if (r->in_tok < 0)
				r->in_tok = 0;
		}
		rc = emit(r, cJSON_CreateObject(), finish_reason(json_get(
				 json_get(j, "delta"), "stop_reason")), false);
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
