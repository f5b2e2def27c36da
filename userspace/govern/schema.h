/* schema: validation of tools/call arguments against a tool's inputSchema (JSON Schema).
 *
 * Compile once per tool when the catalogue loads, validate many times on the hot path:
 *
 *	struct schema *s;
 *	char why[256];
 *	if (schema_compile(tool_input_schema, &s, why, sizeof(why)) < 0)
 *		... refuse calls to this tool, log why ...
 *	struct schema_error e;
 *	if (schema_validate(s, arguments, &e) < 0)
 *		... JSON-RPC -32602 with data schema_error_json(&e) ...
 *	schema_free(s);
 *
 * The dialect is JSON Schema 2020-12 with the draft-07 forms older servers still emit (items as
 * an array, additionalItems, definitions, boolean exclusiveMinimum/Maximum, $ref siblings ignored
 * when $schema names draft-07 or older). Enforced keywords: type, enum, const, minimum, maximum,
 * exclusiveMinimum, exclusiveMaximum, multipleOf, minLength, maxLength, pattern, properties,
 * required, additionalProperties, patternProperties, minProperties, maxProperties, prefixItems,
 * items, minItems, maxItems, uniqueItems, allOf, anyOf, oneOf, not, if/then/else, $ref (JSON
 * pointers inside the document: "#", "#/$defs/x", "#/definitions/x", "#/properties/a/items",
 * ..., and plain-name anchors "#name" declared with $anchor) and boolean schemas. Every other keyword (format, title, description, default, ...) is ignored, never
 * fatal; so is a known keyword whose value is malformed, a pattern the regex engine cannot
 * compile, or a $ref that does not resolve: each is logged once (warn) at compile time.
 * docs/schema.md is the operator's description of the same.
 *
 * Ownership: schema_compile() deep-copies the schema; the compiled object holds no pointer into
 * the caller's cJSON, which may be freed right after. A compiled schema is immutable: any number
 * of threads may validate against it concurrently.
 */
#ifndef WARDEN_SCHEMA_H
#define WARDEN_SCHEMA_H

#include <stddef.h>
#include <cjson/cJSON.h>

/* Deepest nesting accepted, both of the schema (subschemas inside subschemas) and of the
 * instance being validated (objects and arrays inside each other). Deeper is an error. */
#define SCHEMA_MAX_DEPTH 64

struct schema;

/* The first validation failure, in a deterministic order.
 *   path     where the failing value is, JSONPath-like: "$", "$.user.tags[2]", "$['a b']"
 *   keyword  the rule that failed: "type", "required", "maxLength", ... ("depth" for nesting
 *            limits, "false" for a false schema)
 *   message  short human text: "expected integer, got string" */
struct schema_error {
	char path[256];
	char keyword[32];
	char message[256];
};

/* Compile a tool's inputSchema. NULL or {} compiles to "any object". Returns 0, -EINVAL when
 * the schema is not an object or boolean or nests deeper than SCHEMA_MAX_DEPTH (err says why,
 * err may be NULL), -ENOMEM. *out is set only on success. */
int schema_compile(const cJSON *schema, struct schema **out, char *err, size_t errlen);

/* Validate an instance (the tools/call arguments; NULL means absent and validates {}).
 * Returns 0 when valid, -EINVAL with err filled (err may be NULL) when not. Never modifies the
 * instance. Allocates only scratch space for uniqueItems over more than 16 items or for comparing
 * objects of more than 16 members (then -ENOMEM is possible), and to render enum/const values in
 * an error message. */
int schema_validate(const struct schema *s, const cJSON *instance, struct schema_error *err);

void schema_free(struct schema *s);

/* The error as the JSON-RPC error data object {"path", "keyword", "message"}; NULL on OOM.
 * The caller owns the result. */
cJSON *schema_error_json(const struct schema_error *err);

#endif
