/* provider: one request's transfer to its provider on curl_loop, the answer read whole or
 * relayed event by event. */
#include "llm/llm_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <event2/buffer.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/json_get.h"
#include "base/log.h"
#include "mcp/transport/sse.h"

static void add_usage(struct llm_req *r, const cJSON *usage)
{
	int64_t in, out;

	if (llm_usage_read(usage, &in, &out) == 0) {
		r->in_tok = in;
		r->out_tok = out;
	}
}

/* Keep what the model wrote when the policy asks for it in the record (bounded). */
static void note_content(struct llm_req *r, const cJSON *chunk)
{
	const cJSON *ch = cJSON_GetArrayItem(json_get(chunk, "choices"), 0);
	const cJSON *t = json_get(json_get(ch, "delta"), "content");
	size_t have;

	if (!r->log_content || !cJSON_IsString(t))
		return;
	if (!r->completion)
		r->completion = cJSON_CreateString("");
	have = strlen(r->completion->valuestring);
	if (have + strlen(t->valuestring) > 65536)
		return;
	char *s = xmalloc(have + strlen(t->valuestring) + 1);
	memcpy(s, r->completion->valuestring, have);
	strcpy(s + have, t->valuestring);
	cJSON_SetValuestring(r->completion, s);
	free(s);
}

/* An OpenAI chunk: pass it on as it came, but learn its usage, and drop the usage the agent
 * did not ask for (we asked for it to charge the request). */
static int openai_event(struct llm_req *r, const char *data, size_t len)
{
	cJSON *j;
	const cJSON *usage, *choices;
	int rc;

	if (len == 6 && !memcmp(data, "[DONE]", 6)) {
		r->saw_done = true;     /* sent once the charge is durable */
		return 0;
	}
	j = cJSON_ParseWithLength(data, len);
	if (!cJSON_IsObject(j)) {
		cJSON_Delete(j);
		return -EPROTO;
	}
	usage = json_get(j, "usage");
	choices = json_get(j, "choices");
	if (cJSON_IsObject(usage))
		add_usage(r, usage);
	note_content(r, j);
	const cJSON *tc, *calls = json_get(json_get(
		cJSON_GetArrayItem(choices, 0), "delta"), "tool_calls");
	cJSON_ArrayForEach(tc, calls) {
		const cJSON *id = json_get(tc, "id");
		if (cJSON_IsString(id))
			llm_note_tool_call(r, id->valuestring);
	}
	if (!r->agent_usage && cJSON_IsObject(usage)) {
		if (cJSON_IsArray(choices) && !cJSON_GetArraySize(choices)) {
			cJSON_Delete(j);
			return 0;       /* the usage-only chunk */
		}
		cJSON_DeleteItemFromObjectCaseSensitive(j, "usage");
		char *text = cJSON_PrintUnformatted(j);
		rc = llm_req_chunk(r, text, strlen(text));
		cJSON_free(text);
		cJSON_Delete(j);
		return rc;
	}
	cJSON_Delete(j);
	return llm_req_chunk(r, data, len);
}

static int on_event(void *arg, const struct sse_event *ev)
{
	struct llm_req *r = arg;

	if (!r->ttft_ns)
		r->ttft_ns = clock_mono_ns();
	if (r->prov->kind == LLM_ANTHROPIC)
		return llm_anthropic_event(r, ev->type, ev->data, ev->data_len);
	if (!ev->data_len)
		return 0;
	return openai_event(r, ev->data, ev->data_len);
}

static void begin_body(struct llm_req *r)
{
	char *ctype = NULL;

	r->body_started = true;
	if (curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &r->status) != CURLE_OK)
		r->status = 0;
	if (curl_easy_getinfo(r->easy, CURLINFO_CONTENT_TYPE, &ctype) != CURLE_OK)
		ctype = NULL;
	r->event_stream = r->stream && r->status == 200 && ctype &&
			  !strncasecmp(ctype, "text/event-stream", 17);
}

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct llm_req *r = arg;
	size_t n = size * nmemb;

	if (!r->body_started)
		begin_body(r);
	if (r->event_stream) {
		int rc = sse_parser_feed(r->sse, ptr, n);
		if (rc) {
			r->stream_err = rc;
			return CURL_WRITEFUNC_ERROR;
		}
		return n;
	}
	if (evbuffer_get_length(r->buf) + n > LLM_RESPONSE_MAX ||
	    evbuffer_add(r->buf, ptr, n)) {
		r->stream_err = -EMSGSIZE;
		return CURL_WRITEFUNC_ERROR;
	}
	return n;
}

static void on_done(struct curl_xfer *x, CURLcode res)
{
	struct llm_req *r = container_of(x, struct llm_req, xfer);

	llm_transfer_stop(r);
	llm_req_transfer_done(r, res);
}

void llm_transfer_stop(struct llm_req *r)
{
	curl_xfer_end(&r->easy, &r->hdrs);
	free(r->payload);
	r->payload = NULL;
}

static int add_header(struct curl_slist **l, const char *name, const char *value)
{
	size_t n = strlen(name) + strlen(value) + 3;
	char *line = xmalloc(n);
	struct curl_slist *s;

	/* "Name:" with nothing after it tells curl not to send its own (Expect) */
	snprintf(line, n, *value ? "%s: %s" : "%s:", name, value);
	s = curl_slist_append(*l, line);
	explicit_bzero(line, n);        /* it may be the API key */
	free(line);
	if (!s)
		return -ENOMEM;
	*l = s;
	return 0;
}

#define SET(opt, val)                                                   \
	do {                                                            \
		if (curl_easy_setopt(e, opt, val) != CURLE_OK)          \
			goto fail;                                      \
	} while (0)

int llm_transfer_start(struct llm_req *r)
{
	const struct llm_provider *p = r->prov;
	const char *path = r->ep == LLM_EMBEDDINGS ? "/embeddings"
			 : p->kind == LLM_ANTHROPIC ? "/messages" : "/chat/completions";
	char url[2048];
	cJSON *out;
	CURL *e;
	int rc = -ENOMEM;

	if ((size_t)snprintf(url, sizeof(url), "%s%s", p->base_url, path) >= sizeof(url))
		return -ENAMETOOLONG;
	/* The body as the agent sent it, with the provider's own model name; a stream asks for
	 * usage so the request can be charged. */
	if (p->kind == LLM_ANTHROPIC && r->ep == LLM_CHAT) {
		out = llm_anthropic_request(r, r->body);
		if (!out)
			return -EINVAL;
	} else {
		out = cJSON_Duplicate(r->body, 1);
		cJSON_ReplaceItemInObjectCaseSensitive(out, "model",
						       cJSON_CreateString(r->model->name));
		if (r->stream && !r->agent_usage) {
			cJSON *so = json_get(out, "stream_options");
			if (!cJSON_IsObject(so)) {
				cJSON_DeleteItemFromObjectCaseSensitive(out, "stream_options");
				so = cJSON_AddObjectToObject(out, "stream_options");
			}
			cJSON_DeleteItemFromObjectCaseSensitive(so, "include_usage");
			cJSON_AddTrueToObject(so, "include_usage");
		}
	}
	r->payload = cJSON_PrintUnformatted(out);
	cJSON_Delete(out);
	if (add_header(&r->hdrs, "Content-Type", "application/json") ||
	    add_header(&r->hdrs, "Accept", r->stream ? "text/event-stream" : "application/json") ||
	    add_header(&r->hdrs, "Expect", ""))
		goto fail_early;
	if (p->api_key) {
		if (p->kind == LLM_ANTHROPIC) {
			if (add_header(&r->hdrs, "x-api-key", p->api_key))
				goto fail_early;
		} else {
			size_t n = strlen(p->api_key) + 8;
			char *v = xmalloc(n);
			snprintf(v, n, "Bearer %s", p->api_key);
			rc = add_header(&r->hdrs, "Authorization", v);
			explicit_bzero(v, n);
			free(v);
			if (rc)
				goto fail_early;
			rc = -ENOMEM;
		}
	}
	if (p->kind == LLM_ANTHROPIC && add_header(&r->hdrs, "anthropic-version", "2023-06-01"))
		goto fail_early;
	if (!r->buf && !(r->buf = evbuffer_new()))
		goto fail_early;
	evbuffer_drain(r->buf, evbuffer_get_length(r->buf));
	sse_parser_free(r->sse);
	r->sse = NULL;
	if (r->stream && sse_parser_new(0, on_event, r, &r->sse))
		goto fail_early;
	r->body_started = r->event_stream = r->saw_done = false;
	r->status = 0;
	r->stream_err = 0;
	r->xfer.done = on_done;
	if (!(e = curl_easy_init()))
		goto fail_early;
	if (curl_xfer_setup(e, &r->xfer, &(struct curl_xfer_opts){
				.url = url, .user_agent = "mcpwarden", .write = write_cb, .data = r,
				.errbuf = r->errbuf, .headers = r->hdrs }))
		goto fail;
	SET(CURLOPT_TIMEOUT_MS, p->timeout_ms);
	SET(CURLOPT_CONNECTTIMEOUT_MS, p->timeout_ms < 10000 ? p->timeout_ms : 10000L);
	SET(CURLOPT_POSTFIELDS, r->payload);
	SET(CURLOPT_POSTFIELDSIZE, (long)strlen(r->payload));
	if (curl_multi_add_handle(curl_loop_multi(), e) != CURLM_OK)
		goto fail;
	r->easy = e;
	r->sent = true;
	return 0;
fail:
	curl_easy_cleanup(e);
fail_early:
	llm_transfer_stop(r);
	return rc;
}
