/* fuzz_trace: what tracing reads from outside (docs/tracing.md): "<traceparent>\n~~\n<text>".
 * The first part is an agent's traceparent header: a value that parses formats back to the
 * same context. The second is a JSON-RPC request whose params._meta feeds an HTTP upstream's
 * headers (no control character may come out), and also a configuration whose `tracing`
 * section is parsed. */
#include <stdbool.h>

#include "base/config.h"
#include "observe/trace.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every byte of s printable ASCII; or, for a header line, tabs and UTF-8 (obs-text) too, but
 * never another control character. Written here, not taken from the code under test. */
static bool clean(const char *s, bool header)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p == 0x7f || (*p < 0x20 && !(header && *p == '\t')) || (!header && *p > 0x7e))
			return false;
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_strndup(data, size), *rest;
	char tp[TRACE_PARENT_LEN + 1], ts[TRACE_STATE_MAX + 1];
	struct trace_ctx c, again;
	struct config *cfg = NULL;
	struct config_errors errs = { 0 };
	struct trace_config tc;
	cJSON *msg;

	if (!text)
		return 0;
	rest = fuzz_split(text);
	if (trace_parent_parse(text, &c) == 0) {
		trace_parent_format(&c, tp);
		if (trace_parent_parse(tp, &again) || memcmp(&c, &again, sizeof(c)))
			__builtin_trap();
	}
	(void)trace_state_valid(text);
	if ((msg = cJSON_Parse(rest))) {
		trace_meta_headers(cJSON_GetObjectItem(msg, "params"), tp, ts);
		if (!clean(tp, false) || !clean(ts, false) || (tp[0] && trace_parent_parse(tp, &c)))
			__builtin_trap();
		cJSON_Delete(msg);
	}
	if (config_parse(rest, "fuzz", &cfg, &errs) == 0) {
		if (trace_config_parse(cfg, &tc, &errs, NULL) == 0 && tc.enabled && !tc.url)
			__builtin_trap();
		for (char **h = tc.headers; h && *h; h++)
			if (!clean(*h, true))
				__builtin_trap();
		trace_config_free(&tc);
		config_free(cfg);
	}
	free(text);
	return 0;
}
