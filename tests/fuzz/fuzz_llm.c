/* fuzz_llm: what the LLM route reads from outside, on any JSON text: the "providers", "llm"
 * and policies' "llm" sections, a chat request translated for Anthropic's Messages API, a
 * Messages answer and each streamed Messages event translated back, and the usage and
 * estimate of a request. */
#include <cjson/cJSON.h>

#include "base/config.h"
#include "llm/llm_int.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const events[] = { "message_start", "content_block_start",
					       "content_block_delta", "message_delta",
					       "message_stop", "error", "ping" };
	struct config_errors errs = { 0 };
	struct llm_config *c = NULL, fallback = { .refs = 1, .default_max_tokens = 16 };
	struct llm_model model = { .name = (char *)"m", .in_price = 150000, .out_price = 600000 };
	struct llm_req r = { 0 };
	cJSON *j;
	int64_t in, out;

	j = cJSON_ParseWithLength((const char *)data, size);
	if (!j)
		return 0;
	if (llm_config_parse(j, &c, &errs) == 0) {
		if (!c)
			__builtin_trap();
	} else if (errs.count < 0 || errs.count > CONFIG_MAX_ERRORS) {
		__builtin_trap();
	}
	r.cfg = c ? c : &fallback;
	r.model = &model;
	r.in_tok = r.out_tok = -1;
	r.tool_index = -1;
	r.log_content = true;
	cJSON_Delete(llm_anthropic_request(&r, j));
	r.stream = true;
	cJSON_Delete(llm_anthropic_request(&r, j));
	cJSON_Delete(llm_anthropic_response(&r, j));
	(void)llm_estimate(r.cfg, &model, j, LLM_CHAT, &out);
	(void)llm_estimate(r.cfg, &model, j, LLM_EMBEDDINGS, &out);
	(void)llm_usage_read(cJSON_GetObjectItemCaseSensitive(j, "usage"), &in, &out);
	for (size_t i = 0; i < sizeof(events) / sizeof(*events); i++)
		(void)llm_anthropic_event(&r, events[i], (const char *)data, size);
	free(r.stream_id);
	cJSON_Delete(r.completion);
	cJSON_Delete(r.tool_calls);
	llm_config_put(c);
	cJSON_Delete(j);
	return 0;
}
