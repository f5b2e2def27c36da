/* fuzz_config: the daemon's configuration loader on any text, as a file or a SIGHUP reload
 * would give it: parse and validate, and on success config_shrink (twice) as a gate build does. */
#include "base/config.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_strndup(data, size);
	struct config *c = NULL;
	struct config_errors errs = { 0 };

	if (!text)
		return 0;
	if (config_parse(text, "fuzz", &c, &errs) == 0) {
		if (!c)
			__builtin_trap();
		config_shrink(c);
		if (!c->shrunk)
			__builtin_trap();
		config_shrink(c);
		config_free(c);
	} else if (errs.count < 0 || errs.count > CONFIG_MAX_ERRORS) {
		__builtin_trap();
	}
	free(text);
	return 0;
}
