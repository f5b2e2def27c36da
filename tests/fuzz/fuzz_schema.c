/* fuzz_schema: a tool's inputSchema and a tools/call's arguments, both from the input
 * ("<schema>\n~~\n<instance>"): compile, then validate, as the catalogue and the hot path do. */
#include "fuzz.h"
#include "govern/schema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_strndup(data, size);
	cJSON *schema = NULL, *inst = NULL;
	struct schema *s = NULL;

	if (!text)
		return 0;
	char *second = fuzz_split(text);

	schema = cJSON_Parse(text);
	inst = cJSON_Parse(second);
	char why[256];

	if (schema_compile(schema, &s, why, sizeof(why)) < 0)
		goto out;
	/* The compiled schema holds no pointer into the document: free it first to prove it. */
	cJSON_Delete(schema);
	schema = NULL;
	struct schema_error e;

	if (schema_validate(s, inst, &e) < 0) {
		cJSON *j = schema_error_json(&e);
		cJSON_Delete(j);
	}
out:
	schema_free(s);
	cJSON_Delete(schema);
	cJSON_Delete(inst);
	free(text);
	return 0;
}
