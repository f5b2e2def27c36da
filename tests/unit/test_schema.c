/* test_schema: tools/call argument validation against inputSchema, keyword by keyword, with
 * the exact error (path, keyword, message) a caller of the gateway receives. */
#include "govern/schema.h"
#include "base/log.h"
#include "cunit_main.h"

#include <CUnit/Basic.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct schema *compile_text(const char *text)
{
	cJSON *doc = cJSON_Parse(text);
	struct schema *s = NULL;
	char err[256];

	CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
	if (schema_compile(doc, &s, err, sizeof(err)) != 0)
		fprintf(stderr, "\ncompile failed: %s\n  schema: %s\n", err, text);
	cJSON_Delete(doc);  /* the compiled schema must not point into it (ASan checks) */
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	return s;
}

static int run(struct schema *s, const char *inst_text, struct schema_error *e)
{
	cJSON *inst = inst_text ? cJSON_Parse(inst_text) : NULL;
	int rc;

	if (inst_text)
		CU_ASSERT_PTR_NOT_NULL_FATAL(inst);
	rc = schema_validate(s, inst, e);
	cJSON_Delete(inst);
	return rc;
}

/* What an instance must be refused with; path or message NULL: not checked. */
struct invalid {
	const char *value;  /* JSON text; NULL: the arguments absent */
	const char *path, *keyword, *message;
};

/* Validates `value` against `s` (compiled from the text `schema`): it must pass when `want` is
 * NULL, else fail with the error `want` names. A failure names the schema and the value. */
static void check(struct schema *s, const char *schema, const char *value, const struct invalid *want)
{
	struct schema_error e = { .path = "" };
	int rc = run(s, value, &e);
	bool match = want ? rc == -EINVAL && (!want->path || strcmp(e.path, want->path) == 0) &&
				    strcmp(e.keyword, want->keyword) == 0 &&
				    (!want->message || strcmp(e.message, want->message) == 0)
			  : rc == 0;
	char what[512];

	if (!match && want)
		fprintf(stderr, "\nexpected %s %s: %s\n  got rc=%d %s %s: %s\n", want->path ? want->path : "*",
			want->keyword, want->message ? want->message : "*", rc, e.path, e.keyword, e.message);
	else if (!match)
		fprintf(stderr, "\nexpected valid, got %s %s: %s\n", e.path, e.keyword, e.message);
	snprintf(what, sizeof(what), "schema %s, value %s", schema, value ? value : "(absent)");
	CU_ASSERT_CASE(match, what);
}

/* One schema built by the test rather than written in the table. */
static void check_text(const char *schema, const char *value, const struct invalid *want)
{
	struct schema *s = compile_text(schema);

	check(s, schema, value, want);
	schema_free(s);
}

#define OK(schema, value) check_text(schema, value, NULL)
#define BAD(schema, value, path, keyword, message) \
	check_text(schema, value, &(const struct invalid){ value, path, keyword, message })

/* A schema and the instances it must accept and refuse: each row is compiled once, then every
 * instance is checked against it (`valid` up to its first NULL, `invalid` up to its first entry
 * without a keyword). Rows are grouped by the keywords they show. */
static const struct schema_case {
	const char *schema;
	const char *valid[6];
	struct invalid invalid[6];
} schema_cases[] = {
	/* type */
	{ "{\"type\":\"object\"}", { "{}" }, { { "[]", "$", "type", "expected object, got array" } } },
	{ "{\"type\":\"array\"}", { "[]" }, {} },
	{ "{\"type\":\"string\"}", { "\"\"" }, {} },
	{ "{\"type\":\"number\"}", { "1.5", "3" }, {} },
	{ "{\"type\":\"integer\"}",
	  { "3", "3.0" /* a number with no fractional part */, "-1e3" },
	  { { "3.5", "$", "type", "expected integer, got number" } } },
	{ "{\"type\":\"boolean\"}", { "false" }, { { "1", "$", "type", "expected boolean, got integer" } } },
	{ "{\"type\":\"null\"}", { "null" }, { { "false", "$", "type", "expected null, got boolean" } } },
	{ "{\"type\":[\"string\",\"null\"]}", { "null", "\"x\"" },
	  { { "1", "$", "type", "expected string or null, got integer" } } },
	{ "{\"type\":[\"object\",\"array\",\"null\"]}", {},
	  { { "\"s\"", "$", "type", "expected object, array or null, got string" } } },
	{ "{\"properties\":{\"a\":{\"type\":\"integer\"}}}", {},
	  { { "{\"a\":\"3\"}", "$.a", "type", "expected integer, got string" } } },
	/* a malformed type keyword is ignored, not fatal */
	{ "{\"type\":\"strnig\"}", { "1" }, {} },
	{ "{\"type\":[]}", { "1" }, {} },

	/* properties and required */
	{ "{\"type\":\"object\",\"properties\":{\"user\":{\"type\":\"object\","
	  "\"properties\":{\"name\":{\"type\":\"string\"},\"city\":{\"type\":\"string\"}},"
	  "\"required\":[\"name\",\"city\"]}},\"required\":[\"user\"]}",
	  { "{\"user\":{\"name\":\"a\",\"city\":\"b\"}}",
	    "{\"user\":{\"name\":\"a\",\"city\":\"b\",\"extra\":1},\"other\":[]}" },
	  { { "{}", "$", "required", "missing required property \"user\"" },
	    { "{\"user\":{\"name\":\"a\"}}", "$.user", "required", "missing required property \"city\"" },
	    { "{\"user\":{\"name\":1,\"city\":\"b\"}}", "$.user.name", "type",
	      "expected string, got integer" },
	    /* arguments absent: validated as {} */
	    { NULL, "$", "required", "missing required property \"user\"" } } },
	/* a repeated key cannot smuggle a bad value past the first copy */
	{ "{\"properties\":{\"path\":{\"pattern\":\"^/safe\"}}}", {},
	  { { "{\"path\":\"/safe/a\",\"path\":\"/etc/passwd\"}", "$.path", "pattern",
	      "must match pattern \"^/safe\"" } } },
	/* a property whose schema is malformed is declared but unconstrained */
	{ "{\"properties\":{\"a\":5},\"additionalProperties\":false}", { "{\"a\":\"x\"}" }, {} },
	/* many properties: binary search over the sorted names */
	{ "{\"properties\":{\"k\":{\"type\":\"string\"},\"b\":{\"type\":\"string\"},"
	  "\"z\":{\"type\":\"string\"},\"a\":{\"type\":\"string\"}},\"additionalProperties\":false}",
	  { "{\"z\":\"1\",\"a\":\"2\",\"k\":\"3\",\"b\":\"4\"}" }, {} },

	/* additionalProperties and patternProperties */
	{ "{\"properties\":{\"a\":{}},\"additionalProperties\":false}", { "{\"a\":1}" },
	  { { "{\"a\":1,\"extra\":2}", "$.extra", "additionalProperties",
	      "property \"extra\" is not allowed" },
	    { "{\"a b\":2}", "$['a b']", "additionalProperties", "property \"a b\" is not allowed" } } },
	{ "{\"properties\":{\"a\":{}},\"additionalProperties\":{\"type\":\"string\"}}",
	  { "{\"a\":1,\"b\":\"s\"}" },
	  { { "{\"a\":1,\"b\":2}", "$.b", "type", "expected string, got integer" } } },
	{ "{\"properties\":{\"id\":{\"type\":\"integer\"}},"
	  "\"patternProperties\":{\"^x-\":{\"type\":\"integer\"},\"n$\":{\"minimum\":0}},"
	  "\"additionalProperties\":false}",
	  { "{\"id\":1,\"x-trace\":2,\"xn\":3}" },
	  { { "{\"x-trace\":\"2\"}", "$['x-trace']", "type", "expected integer, got string" },
	    /* a key matching two patterns must satisfy both */
	    { "{\"x-n\":-1}", "$['x-n']", "minimum", "must be >= 0" },
	    { "{\"y\":1}", "$.y", "additionalProperties", "property \"y\" is not allowed" } } },
	/* patternProperties is a search, not a full match */
	{ "{\"patternProperties\":{\"[0-9]\":{\"type\":\"string\"}}}", { "{\"a1b\":\"s\",\"ab\":1}" },
	  { { "{\"a1b\":1}", "$.a1b", "type", "expected string, got integer" } } },
	/* an uncompilable pattern property is dropped: the key counts as additional */
	{ "{\"patternProperties\":{\"(x\":{}},\"additionalProperties\":false}", {},
	  { { "{\"x\":1}", "$.x", "additionalProperties", NULL } } },
	/* lookahead in a property pattern (ECMA-262) */
	{ "{\"patternProperties\":{\"^(?=x)\":{}},\"additionalProperties\":false}", { "{\"xy\":1}" }, {} },

	/* enum and const */
	{ "{\"enum\":[\"error\",\"success\",\"debug\",1,null,{\"a\":[1,2]}]}",
	  { "\"debug\"", "1.0" /* numbers by value */, "null", "{\"a\":[1,2.0]}" },
	  { { "\"info\"", "$", "enum",
	      "must be one of: \"error\", \"success\", \"debug\", 1, null, {\"a\":[1,2]}" },
	    { "{\"a\":[2,1]}", "$", "enum", NULL }, /* arrays are ordered */
	    { "true", "$", "enum", NULL } } },
	{ "{\"const\":{\"a\":1,\"b\":[true,null,\"x\"]}}", { "{\"b\":[true,null,\"x\"],\"a\":1.0}" }, {} },
	{ "{\"const\":{\"a\":1,\"b\":2}}", {},
	  { { "{\"a\":1}", "$", "const", "must be equal to {\"a\":1,\"b\":2}" },
	    { "{\"a\":1,\"c\":2}", "$", "const", NULL } } },
	{ "{\"const\":{\"a\":1}}", {}, { { "{\"a\":1,\"a\":1}", "$", "const", NULL } } },
	{ "{\"const\":null}", { "null" }, { { "0", "$", "const", "must be equal to null" } } },
	{ "{\"const\":0}", {}, { { "false", "$", "const", "must be equal to 0" } } },
	{ "{\"const\":\"a\"}", {}, { { "\"A\"", "$", "const", "must be equal to \"a\"" } } },

	/* numeric bounds */
	{ "{\"minimum\":1,\"maximum\":10}",
	  { "1", "10", "5.5", "\"0\"" /* bounds apply to numbers only */ },
	  { { "0.5", "$", "minimum", "must be >= 1" }, { "11", "$", "maximum", "must be <= 10" } } },
	{ "{\"exclusiveMinimum\":0,\"exclusiveMaximum\":1.5}", { "0.001" },
	  { { "0", "$", "exclusiveMinimum", "must be > 0" },
	    { "1.5", "$", "exclusiveMaximum", "must be < 1.5" } } },
	{ "{\"multipleOf\":3}", { "-9" }, { { "10", "$", "multipleOf", "must be a multiple of 3" } } },
	{ "{\"multipleOf\":0.1}", { "0.3" /* 0.3/0.1 is 2.9999999999999996 in binary */ },
	  { { "0.35", "$", "multipleOf", "must be a multiple of 0.1" } } },
	{ "{\"multipleOf\":0.01}", { "19.99" }, {} },
	{ "{\"multipleOf\":0.5}", { "2.5" }, {} },
	/* draft-04 boolean exclusive bounds */
	{ "{\"minimum\":1,\"exclusiveMinimum\":true}", {},
	  { { "1", "$", "exclusiveMinimum", "must be > 1" } } },
	{ "{\"minimum\":1,\"exclusiveMinimum\":false}", { "1" }, {} },
	{ "{\"maximum\":1,\"exclusiveMaximum\":true}", {},
	  { { "1", "$", "exclusiveMaximum", "must be < 1" } } },
	/* malformed bounds are ignored */
	{ "{\"minimum\":\"5\",\"multipleOf\":0}", { "1" }, {} },
	/* big and fractional bounds print readably */
	{ "{\"maximum\":0.1}", {}, { { "0.2", "$", "maximum", "must be <= 0.1" } } },
	{ "{\"minimum\":1e300}", {}, { { "1", "$", "minimum", "must be >= 1e+300" } } },

	/* string bounds, in code points */
	{ "{\"minLength\":2,\"maxLength\":5}",
	  { "\"ab\"", "\"héllo\"" /* 5 characters, 6 bytes */, "\"日本語です\"" /* 5, 15 bytes */,
	    "\"\\u00e9\\u00e9\"" /* escapes decode to 2 characters */,
	    "12345678" /* string keywords apply to strings only */ },
	  { { "\"a\"", "$", "minLength", "must be at least 2 characters" },
	    { "\"abcdef\"", "$", "maxLength", "must be at most 5 characters" } } },
	{ "{\"maxLength\":1}", { "\"😀\"" /* one code point, 4 bytes */, "\"\\ud83d\\ude00\"" },
	  { { "\"ab\"", "$", "maxLength", "must be at most 1 character" } } },
	{ "{\"maxLength\":3}", {},
	  { { "\"😀😀😀😀\"", "$", "maxLength", "must be at most 3 characters" } } },
	{ "{\"properties\":{\"user\":{\"properties\":{\"nick\":{\"maxLength\":16}}}}}", {},
	  { { "{\"user\":{\"nick\":\"abcdefghijklmnopq\"}}", "$.user.nick", "maxLength",
	      "must be at most 16 characters" } } },
	{ "{\"minLength\":-1,\"maxLength\":1.5}", { "\"abc\"" }, {} }, /* malformed: ignored */

	/* pattern (the ECMA-262 cases are pattern_cases below) */
	{ "{\"pattern\":5}", { "\"1\"" }, {} }, /* a pattern that is not a string is ignored too */
	{ "{\"pattern\":\"^a$\"}", { "5" }, {} }, /* patterns apply to strings only */

	/* items, prefixItems, minItems, maxItems */
	{ "{\"properties\":{\"user\":{\"properties\":{\"tags\":{\"type\":\"array\","
	  "\"items\":{\"type\":\"string\",\"maxLength\":3},\"minItems\":1,\"maxItems\":3}}}}}",
	  { "{\"user\":{\"tags\":[\"a\",\"bb\",\"ccc\"]}}" },
	  { { "{\"user\":{\"tags\":[\"a\",\"bb\",\"cccc\"]}}", "$.user.tags[2]", "maxLength",
	      "must be at most 3 characters" },
	    { "{\"user\":{\"tags\":[\"a\",1]}}", "$.user.tags[1]", "type", "expected string, got integer" },
	    { "{\"user\":{\"tags\":[]}}", "$.user.tags", "minItems", "must have at least 1 item" },
	    { "{\"user\":{\"tags\":[\"a\",\"b\",\"c\",\"d\"]}}", "$.user.tags", "maxItems",
	      "must have at most 3 items" } } },
	{ "{\"prefixItems\":[{\"type\":\"string\"},{\"type\":\"integer\"}],\"items\":false}",
	  { "[\"a\",1]", "[\"a\"]" },
	  { { "[1,1]", "$[0]", "type", "expected string, got integer" },
	    { "[\"a\",1,2]", "$", "items", "must have at most 2 items" } } },
	{ "{\"prefixItems\":[{\"type\":\"string\"}],\"items\":{\"type\":\"boolean\"}}",
	  { "[\"a\",true,false]" }, { { "[\"a\",true,3]", "$[2]", "type", "expected boolean, got integer" } } },
	{ "{\"$schema\":\"http://json-schema.org/draft-07/schema#\",\"items\":"
	  "[{\"type\":\"string\"}],\"additionalItems\":false}",
	  { "[\"a\"]" }, { { "[\"a\",\"b\"]", "$", "items", "must have at most 1 item" } } },
	/* nested arrays */
	{ "{\"items\":{\"items\":{\"type\":\"integer\"}}}", { "[[1,2],[3]]" },
	  { { "[[1,2],[3,4.5]]", "$[1][1]", "type", "expected integer, got number" } } },

	/* uniqueItems (big arrays, hashed: test_unique_items_big) */
	{ "{\"uniqueItems\":true}", { "[1,2,\"1\",[1],{\"a\":1},{\"a\":2},null,true,false]" },
	  { { "[1,2,1.0]", "$", "uniqueItems", "must not contain duplicates (items 0 and 2 are equal)" },
	    { "[{\"a\":1,\"b\":2},{\"b\":2,\"a\":1}]", "$", "uniqueItems", NULL },
	    { "[[1,[2]],[1,[2]]]", "$", "uniqueItems", NULL } } },
	{ "{\"uniqueItems\":false}", { "[1,1]" }, {} },

	/* minProperties, maxProperties */
	{ "{\"minProperties\":1,\"maxProperties\":2}", { "{\"a\":1}", "{\"a\":1,\"b\":2}", "[]" },
	  { { "{}", "$", "minProperties", "must have at least 1 property" },
	    { "{\"a\":1,\"b\":2,\"c\":3}", "$", "maxProperties", "must have at most 2 properties" } } },

	/* allOf, anyOf, oneOf, not */
	{ "{\"anyOf\":[{\"type\":\"string\"},{\"type\":\"integer\",\"minimum\":0}]}", { "\"s\"", "3" },
	  { { "-3", "$", "anyOf", "must match at least one of the 2 schemas in anyOf" } } },
	{ "{\"properties\":{\"v\":{\"anyOf\":[{\"type\":\"string\"},{\"type\":\"null\"}]}}}", {},
	  { { "{\"v\":1}", "$.v", "anyOf", NULL } } },
	{ "{\"oneOf\":[{\"type\":\"integer\"},{\"minimum\":10}]}", { "3", "10.5" },
	  { { "11", "$", "oneOf", "must match exactly one of the 2 schemas in oneOf (matches 0 and 1)" },
	    { "2.5", "$", "oneOf", "must match exactly one of the 2 schemas in oneOf (matches none)" } } },
	{ "{\"allOf\":[{\"type\":\"object\"},{\"properties\":{\"a\":{\"maxLength\":2}}}]}",
	  { "{\"a\":\"ab\"}" },
	  { { "{\"a\":\"abc\"}", "$.a", "maxLength", "must be at most 2 characters" },
	    { "1", "$", "type", "expected object, got integer" } } },
	{ "{\"not\":{\"type\":\"string\"}}", { "1" },
	  { { "\"s\"", "$", "not", "must not match the schema in not" } } },
	/* errors inside a failed anyOf branch do not leak into a passing result */
	{ "{\"anyOf\":[{\"required\":[\"a\"]},{\"required\":[\"b\"]}]}", { "{\"b\":1}" }, {} },
	/* malformed combinators are ignored */
	{ "{\"anyOf\":[],\"oneOf\":{},\"allOf\":[1]}", { "1" }, {} },

	/* $ref */
	{ "{\"$defs\":{\"city\":{\"type\":\"string\",\"minLength\":1}},"
	  "\"properties\":{\"home\":{\"$ref\":\"#/$defs/city\"},\"work\":{\"$ref\":\"#/$defs/city\"}}}",
	  { "{\"home\":\"Paris\",\"work\":\"Lyon\"}" },
	  { { "{\"home\":\"Paris\",\"work\":\"\"}", "$.work", "minLength", "must be at least 1 character" } } },
	{ "{\"definitions\":{\"n\":{\"type\":\"integer\"}},\"items\":{\"$ref\":\"#/definitions/n\"}}",
	  { "[1,2]" }, { { "[1,\"2\"]", "$[1]", "type", "expected integer, got string" } } },
	{ "{\"$defs\":{\"a/b\":{\"type\":\"string\"},\"c~d\":{\"type\":\"integer\"},"
	  "\"e f\":{\"type\":\"null\"}},\"prefixItems\":[{\"$ref\":\"#/$defs/a~1b\"},"
	  "{\"$ref\":\"#/$defs/c~0d\"},{\"$ref\":\"#/$defs/e%20f\"}]}",
	  { "[\"s\",1,null]" },
	  { { "[\"s\",\"1\"]", "$[1]", "type", "expected integer, got string" },
	    { "[\"s\",1,0]", "$[2]", "type", "expected null, got integer" } } },
	/* zod-to-json-schema reuses a schema by pointing at its first use */
	{ "{\"type\":\"object\",\"properties\":{\"from\":{\"type\":\"object\","
	  "\"properties\":{\"lat\":{\"type\":\"number\"}},\"required\":[\"lat\"]},"
	  "\"to\":{\"$ref\":\"#/properties/from\"}}}",
	  { "{\"from\":{\"lat\":1},\"to\":{\"lat\":2}}" },
	  { { "{\"from\":{\"lat\":1},\"to\":{}}", "$.to", "required", "missing required property \"lat\"" } } },
	/* recursion through the instance is legitimate: a tree */
	{ "{\"$defs\":{\"node\":{\"type\":\"object\",\"properties\":{\"name\":"
	  "{\"type\":\"string\"},\"kids\":{\"type\":\"array\",\"items\":"
	  "{\"$ref\":\"#/$defs/node\"}}},\"required\":[\"name\"]}},\"$ref\":\"#/$defs/node\"}",
	  { "{\"name\":\"r\",\"kids\":[{\"name\":\"a\"},{\"name\":\"b\",\"kids\":[{\"name\":\"c\"}]}]}" },
	  { { "{\"name\":\"r\",\"kids\":[{\"name\":\"a\"},{\"name\":\"b\",\"kids\":[{}]}]}",
	      "$.kids[1].kids[0]", "required", "missing required property \"name\"" } } },
	/* 2020-12: siblings of $ref apply; draft-07: they are ignored */
	{ "{\"$defs\":{\"s\":{\"type\":\"string\"}},\"$ref\":\"#/$defs/s\",\"maxLength\":1}", {},
	  { { "\"ab\"", "$", "maxLength", NULL } } },
	{ "{\"$schema\":\"http://json-schema.org/draft-07/schema#\",\"definitions\":{\"s\":"
	  "{\"type\":\"string\"}},\"$ref\":\"#/definitions/s\",\"maxLength\":1}", { "\"ab\"" }, {} },
	/* unresolvable or external references are ignored (logged), never fatal */
	{ "{\"$ref\":\"#/$defs/missing\"}", { "1" }, {} },
	{ "{\"$ref\":\"https://example.com/s.json\"}", { "1" }, {} },
	{ "{\"$ref\":\"#anchor\"}", { "1" }, {} },
	{ "{\"$ref\":\"#/$defs/a~2\",\"$defs\":{}}", { "1" }, {} },
	/* reference to an array element of the document */
	{ "{\"prefixItems\":[{\"type\":\"string\"}],\"items\":{\"$ref\":\"#/prefixItems/0\"}}",
	  { "[\"a\",\"b\"]" }, { { "[\"a\",1]", "$[1]", "type", NULL } } },
	{ "{\"$ref\":\"#/prefixItems/01\",\"prefixItems\":[false,false]}", { "1" }, {} },

	/* $ref cycles: one that never consumes the instance ends in a depth error, not a stack
	 * overflow */
	{ "{\"$defs\":{\"a\":{\"$ref\":\"#/$defs/b\"},\"b\":{\"$ref\":\"#/$defs/a\"}},"
	  "\"$ref\":\"#/$defs/a\"}", {},
	  { { "1", "$", "depth", "schema evaluation nested deeper than 256 levels (a $ref cycle?)" } } },
	{ "{\"$ref\":\"#\"}", {}, { { "{}", "$", "depth", NULL } } },
	{ "{\"allOf\":[{\"$ref\":\"#\"}]}", {}, { { "1", "$", "depth", NULL } } },
	/* inside not/anyOf the limit still fails the call: it cannot flip a "not" */
	{ "{\"not\":{\"$ref\":\"#\"}}", {}, { { "1", "$", "depth", NULL } } },
	{ "{\"anyOf\":[{\"$ref\":\"#\"},true]}", {}, { { "1", "$", "depth", NULL } } },

	/* 2020-12 if/then/else, and $ref to a plain-name $anchor: the schema the conformance
	 * suite's json-schema-2020-12 scenario lists (SEP-2106) */
	{ "{\"$schema\":\"https://json-schema.org/draft/2020-12/schema\",\"type\":\"object\","
	  "\"$defs\":{\"address\":{\"$anchor\":\"addressDef\",\"type\":\"object\","
	  "\"properties\":{\"street\":{\"type\":\"string\"},\"city\":{\"type\":\"string\"}}}},"
	  "\"properties\":{\"name\":{\"type\":\"string\"},\"address\":{\"$ref\":\"#/$defs/address\"},"
	  "\"contactMethod\":{\"type\":\"string\",\"enum\":[\"phone\",\"email\"]},"
	  "\"phone\":{\"type\":\"string\"},\"email\":{\"type\":\"string\"}},"
	  "\"allOf\":[{\"anyOf\":[{\"required\":[\"phone\"]},{\"required\":[\"email\"]}]}],"
	  "\"if\":{\"properties\":{\"contactMethod\":{\"const\":\"phone\"}},"
	  "\"required\":[\"contactMethod\"]},"
	  "\"then\":{\"required\":[\"phone\"]},\"else\":{\"required\":[\"email\"]},"
	  "\"additionalProperties\":false}",
	  { "{\"contactMethod\":\"phone\",\"phone\":\"1\"}",
	    "{\"email\":\"a@b\",\"name\":\"n\",\"address\":{\"city\":\"c\"}}",
	    "{\"contactMethod\":\"email\",\"email\":\"a@b\",\"phone\":\"1\"}" },
	  { /* if holds: then applies */
	    { "{\"contactMethod\":\"phone\",\"email\":\"a@b\"}", "$", "required",
	      "missing required property \"phone\"" },
	    /* if fails: else applies */
	    { "{\"contactMethod\":\"email\",\"phone\":\"1\"}", "$", "required",
	      "missing required property \"email\"" },
	    { "{}", "$", "anyOf", NULL },
	    { "{\"email\":\"a@b\",\"address\":{\"city\":7}}", "$.address.city", "type", NULL } } },
	/* then/else without if mean nothing; if alone constrains nothing */
	{ "{\"then\":false,\"else\":false}", { "1" }, {} },
	{ "{\"if\":{\"type\":\"string\"}}", { "1" }, {} },
	{ "{\"if\":{\"type\":\"string\"},\"then\":{\"maxLength\":1}}", {},
	  { { "\"ab\"", "$", "maxLength", NULL } } },
	/* $ref by anchor, in $defs or anywhere in the document */
	{ "{\"$defs\":{\"s\":{\"$anchor\":\"str\",\"type\":\"string\"}},\"$ref\":\"#str\"}", { "\"a\"" },
	  { { "1", "$", "type", NULL } } },
	{ "{\"properties\":{\"a\":{\"$ref\":\"#n\"}},\"$defs\":{\"x\":{\"items\":"
	  "[{\"$anchor\":\"n\",\"type\":\"null\"}]}}}", {}, { { "{\"a\":1}", "$.a", "type", NULL } } },

	/* unknown keywords are annotations */
	{ "{\"$schema\":\"https://json-schema.org/draft/2020-12/schema\","
	  "\"$id\":\"urn:x\",\"title\":\"T\",\"description\":\"D\",\"default\":{},"
	  "\"examples\":[1],\"$comment\":\"c\",\"x-vendor\":{\"type\":\"string\"},"
	  "\"type\":\"object\",\"properties\":{\"u\":{\"type\":\"string\",\"format\":\"uri\","
	  "\"contentMediaType\":\"text/plain\",\"readOnly\":true,\"deprecated\":true}}}",
	  { "{\"u\":\"not a uri\"}" }, { { "{\"u\":1}", "$.u", "type", NULL } } },

	/* boolean schemas */
	{ "true", { "1", "[]" }, {} },
	{ "false", {}, { { "{}", "$", "false", "no value is allowed here" } } },
	{ "{\"properties\":{\"a\":true,\"b\":false}}", { "{\"a\":[1]}" },
	  { { "{\"b\":1}", "$.b", "false", "no value is allowed here" } } },
	{ "{\"items\":true}", { "[1,\"a\"]" }, {} },
	{ "{\"items\":false}", {}, { { "[1]", "$", "items", "must have at most 0 items" } } },
	{ "{\"not\":true}", {}, { { "1", "$", "not", NULL } } },

	/* error paths: names that are not identifiers are quoted */
	{ "{\"additionalProperties\":{\"type\":\"integer\"}}", {},
	  { { "{\"it's\":\"x\"}", "$['it\\'s']", "type", NULL },
	    { "{\"a\\nb\":\"x\"}", "$['a\\u000ab']", "type", NULL },
	    { "{\"9lives\":\"x\"}", "$['9lives']", "type", NULL },
	    { "{\"\":\"x\"}", "$['']", "type", NULL },
	    { "{\"_ok9\":\"x\"}", "$._ok9", "type", NULL } } },

	/* a missing or empty schema accepts any object */
	{ "{}", { "{\"a\":1}" }, { { "\"a\"", "$", "type", "expected object, got string" } } },

	/* The inputSchemas @modelcontextprotocol/server-everything (tests/node_modules) lists,
	 * copied verbatim from its tools/list reply: get-sum, echo, annotated-message,
	 * get-resource-links */
	{ "{\"$schema\":\"http://json-schema.org/draft-07/schema#\",\"type\":\"object\","
	  "\"properties\":{\"a\":{\"type\":\"number\",\"description\":\"First number\"},"
	  "\"b\":{\"type\":\"number\",\"description\":\"Second number\"}},\"required\":[\"a\",\"b\"]}",
	  { "{\"a\":1,\"b\":2.5}" },
	  { { "{\"a\":1}", "$", "required", "missing required property \"b\"" },
	    { "{\"a\":\"1\",\"b\":2}", "$.a", "type", "expected number, got string" },
	    { NULL, "$", "required", "missing required property \"a\"" } } },
	{ "{\"$schema\":\"http://json-schema.org/draft-07/schema#\",\"type\":\"object\","
	  "\"properties\":{\"message\":{\"type\":\"string\",\"description\":\"Message to echo\"}},"
	  "\"required\":[\"message\"]}",
	  { "{\"message\":\"hello\"}" },
	  { { "{\"message\":null}", "$.message", "type", "expected string, got null" },
	    { "{}", "$", "required", "missing required property \"message\"" } } },
	{ "{\"$schema\":\"http://json-schema.org/draft-07/schema#\","
	  "\"type\":\"object\",\"properties\":{\"messageType\":{\"type\":\"string\",\"enum\":"
	  "[\"error\",\"success\",\"debug\"],\"description\":\"Type of message to demonstrate "
	  "different annotation patterns\"},\"includeImage\":{\"default\":false,\"description\":"
	  "\"Whether to include an example image\",\"type\":\"boolean\"}},\"required\":[\"messageType\"]}",
	  { "{\"messageType\":\"debug\",\"includeImage\":true}" },
	  { { "{\"messageType\":\"info\"}", "$.messageType", "enum",
	      "must be one of: \"error\", \"success\", \"debug\"" },
	    { "{\"messageType\":\"error\",\"includeImage\":\"yes\"}", "$.includeImage", "type",
	      "expected boolean, got string" } } },
	{ "{\"$schema\":\"http://json-schema.org/draft-07/schema#\",\"type\":\"object\","
	  "\"properties\":{\"count\":{\"default\":3,\"description\":\"Number of resource links to "
	  "return (1-10)\",\"type\":\"number\",\"minimum\":1,\"maximum\":10}}}",
	  { "{}", "{\"count\":10}" },
	  { { "{\"count\":11}", "$.count", "maximum", "must be <= 10" },
	    { "{\"count\":0}", "$.count", "minimum", "must be >= 1" } } },

	/* nested arrays of objects, from @modelcontextprotocol/server-memory (create_entities) and
	 * server-filesystem (edit_file) */
	{ "{\"$schema\":\"http://json-schema.org/draft-07/schema#\","
	  "\"type\":\"object\",\"properties\":{\"entities\":{\"type\":\"array\",\"items\":"
	  "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"description\":"
	  "\"The name of the entity\"},\"entityType\":{\"type\":\"string\",\"description\":"
	  "\"The type of the entity\"},\"observations\":{\"type\":\"array\",\"items\":"
	  "{\"type\":\"string\"},\"description\":\"An array of observation contents associated "
	  "with the entity\"}},\"required\":[\"name\",\"entityType\",\"observations\"]}}},"
	  "\"required\":[\"entities\"]}",
	  { "{\"entities\":[{\"name\":\"a\",\"entityType\":\"person\",\"observations\":[\"likes tea\"]}]}" },
	  { { "{\"entities\":[{\"name\":\"a\",\"entityType\":\"person\",\"observations\":[]},"
	      "{\"name\":\"b\",\"entityType\":\"x\",\"observations\":[\"o\",7]}]}",
	      "$.entities[1].observations[1]", "type", "expected string, got integer" },
	    { "{\"entities\":[{\"name\":\"a\",\"observations\":[]}]}", "$.entities[0]", "required",
	      "missing required property \"entityType\"" } } },
	{ "{\"$schema\":\"http://json-schema.org/draft-07/schema#\","
	  "\"type\":\"object\",\"properties\":{\"path\":{\"type\":\"string\"},\"edits\":"
	  "{\"type\":\"array\",\"items\":{\"type\":\"object\",\"properties\":{\"oldText\":"
	  "{\"type\":\"string\",\"description\":\"Text to search for - must match exactly\"},"
	  "\"newText\":{\"type\":\"string\",\"description\":\"Text to replace with\"}},"
	  "\"required\":[\"oldText\",\"newText\"]}},\"dryRun\":{\"default\":false,"
	  "\"description\":\"Preview changes using git-style diff format\",\"type\":\"boolean\"}},"
	  "\"required\":[\"path\",\"edits\"]}",
	  { "{\"path\":\"/tmp/x\",\"edits\":[{\"oldText\":\"a\",\"newText\":\"b\"}],\"dryRun\":true}" },
	  { { "{\"path\":\"/tmp/x\",\"edits\":{\"oldText\":\"a\",\"newText\":\"b\"}}", "$.edits", "type",
	      "expected array, got object" } } },
};

static void test_schema_cases(void)
{
	for (size_t i = 0; i < sizeof(schema_cases) / sizeof(schema_cases[0]); i++) {
		const struct schema_case *c = &schema_cases[i];
		struct schema *s = compile_text(c->schema);

		for (size_t j = 0; j < sizeof(c->valid) / sizeof(c->valid[0]) && c->valid[j]; j++)
			check(s, c->schema, c->valid[j], NULL);
		for (size_t j = 0; j < sizeof(c->invalid) / sizeof(c->invalid[0]) && c->invalid[j].keyword; j++)
			check(s, c->schema, c->invalid[j].value, &c->invalid[j]);
		schema_free(s);
	}
}

/* const objects bigger than the small-object path: sorted comparison, any order */
static void test_const_big_objects(void)
{
	char a[1024] = "{\"const\":{", b[1024] = "{";
	for (int i = 0; i < 40; i++) {
		char m[32];
		snprintf(m, sizeof(m), "%s\"k%d\":%d", i ? "," : "", i, i);
		strcat(a, m);
		snprintf(m, sizeof(m), "%s\"k%d\":%d", i ? "," : "", 39 - i, 39 - i);
		strcat(b, m);
	}
	strcat(a, "}}");
	strcat(b, "}");
	OK(a, b);
	b[strlen(b) - 2] = '7';     /* ..."k0":0} becomes ..."k0":7} */
	BAD(a, b, "$", "const", NULL);
}

/* "pattern", with ECMA-262 semantics: a row is the pattern (as the schema's string holds it)
 * and a string value; whether it matches, and for a mismatch the message when the row gives
 * one (the error is always at "$", keyword "pattern"). */
static const struct pattern_case {
	const char *pattern, *value;
	bool matches;
	const char *message;
} pattern_cases[] = {
	{ "^[a-z]+$", "abc", true, NULL },
	{ "^[a-z]+$", "abC", false, "must match pattern \"^[a-z]+$\"" },
	{ "b", "abc", true, NULL }, /* unanchored: a search */
	{ "^\\d{3}-\\d{4}$", "555-1234", true, NULL },
	{ "^\\d{3}-\\d{4}$", "555-12a4", false, "must match pattern \"^\\\\d{3}-\\\\d{4}$\"" },
	{ "^\\w+$", "snake_case_9", true, NULL },
	{ "^\\w+$", "kebab-case", false, NULL },
	{ "^\\S+\\s\\S+$", "two\twords", true, NULL },
	{ "^\\D+$", "abc", true, NULL },
	{ "^\\D+$", "a1c", false, NULL },
	{ "^\\W$", "-", true, NULL },
	/* escapes inside a class, ']' and '-' placement, escaped specials */
	{ "^[\\d\\-.]+$", "1.2-3", true, NULL },
	{ "^[\\w\\]]+$", "a]b", true, NULL },
	{ "^[\\^]$", "^", true, NULL },
	{ "^[\\^]$", "a", false, NULL },
	{ "^[^\\s/]+$", "file.txt", true, NULL },
	{ "^[^\\s/]+$", "a/b", false, NULL },
	{ "^a\\.b\\/c\\\\$", "a.b/c\\", true, NULL },
	{ "^a\\.b$", "axb", false, NULL },
	/* non-capturing and named groups, lazy quantifiers, literal braces */
	{ "^(?:ab)+$", "abab", true, NULL },
	{ "^(?<year>\\d{4})-\\d{2}$", "2025-01", true, NULL },
	{ "^a.*?b$", "axxb", true, NULL },
	{ "^\\{[a-z]+}$", "{id}", true, NULL },
	{ "^x{$", "x{", true, NULL },
	/* code points, not bytes: "." is one character */
	{ "^.{2}$", "éü", true, NULL },
	{ "^[^é]$", "e", true, NULL },
	{ "^[^é]$", "é", false, NULL },
	{ "^\\u00e9\\x41$", "éA", true, NULL },
	{ "^\\ud83d\\ude00$", "😀", true, NULL },
	/* ECMA-262 constructs POSIX lacked: lookaround, back-references, property classes */
	{ "^(?!admin).*$", "admin", false, NULL },
	{ "^(?!admin).*$", "guest", true, NULL },
	{ "(a)\\1", "ab", false, NULL },
	{ "(a)\\1", "aa", true, NULL },
	{ "\\p{L}", "1", false, NULL },
	{ "^\\p{L}+$", "été", true, NULL },
	{ "^[\\D]$", "1", false, NULL },
	{ "^\\u{1F600}$", "😀", true, NULL },
	/* $ is the very end, as in ECMA-262 (not before a final newline) */
	{ "^a$", "a\n", false, NULL },
	/* patterns that do not compile make the keyword ignored, never fatal */
	{ "[z-a]", "1", true, NULL },
	{ "(", "1", true, NULL },
	/* a catastrophic pattern is bounded: no match, and the validator returns */
	{ "^(a+)+$", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab", false, NULL },
};

static void test_pattern(void)
{
	for (size_t i = 0; i < sizeof(pattern_cases) / sizeof(pattern_cases[0]); i++) {
		const struct pattern_case *c = &pattern_cases[i];
		cJSON *schema = cJSON_CreateObject(), *value = cJSON_CreateString(c->value);
		char *schema_text = NULL, *value_text = NULL;

		CU_ASSERT_FATAL(schema && value && cJSON_AddStringToObject(schema, "pattern", c->pattern));
		schema_text = cJSON_PrintUnformatted(schema);
		value_text = cJSON_PrintUnformatted(value);
		CU_ASSERT_FATAL(schema_text && value_text);
		check_text(schema_text, value_text, c->matches ? NULL :
			   &(const struct invalid){ value_text, "$", "pattern", c->message });
		cJSON_free(schema_text);
		cJSON_free(value_text);
		cJSON_Delete(schema);
		cJSON_Delete(value);
	}
}

/* big arrays take the hashing path; the report names the first duplicate pair */
static void test_unique_items_big(void)
{
	const char *u = "{\"uniqueItems\":true}";
	char big[4096] = "[";
	for (int i = 0; i < 200; i++) {
		char m[48];
		snprintf(m, sizeof(m), "%s{\"k\":%d,\"v\":[%d]}", i ? "," : "", i, i);
		strcat(big, m);
	}
	strcat(big, "]");
	OK(u, big);
	char dup[4200];
	snprintf(dup, sizeof(dup), "%.*s,{\"v\":[150],\"k\":150},{\"v\":[7],\"k\":7}]",
		 (int)strlen(big) - 1, big);
	BAD(u, dup, "$", "uniqueItems", "must not contain duplicates (items 150 and 200 are equal)");
	char dup2[4200];
	snprintf(dup2, sizeof(dup2), "%.*s,-0,0]", (int)strlen(big) - 1, big);
	BAD(u, dup2, "$", "uniqueItems", "must not contain duplicates (items 200 and 201 are equal)");
}

/* a path too long for the buffer is truncated with "..." */
static void test_path_truncated(void)
{
	char key[400], schema[600], inst[600];
	memset(key, 'k', sizeof(key) - 1);
	key[sizeof(key) - 1] = '\0';
	snprintf(schema, sizeof(schema), "{\"additionalProperties\":false}");
	snprintf(inst, sizeof(inst), "{\"%s\":1}", key);
	struct schema *s = compile_text(schema);
	struct schema_error e;
	CU_ASSERT_EQUAL(run(s, inst, &e), -EINVAL);
	CU_ASSERT_EQUAL(strlen(e.path), sizeof(e.path) - 1);
	CU_ASSERT_STRING_EQUAL(e.path + sizeof(e.path) - 4, "...");
	CU_ASSERT_STRING_EQUAL(e.keyword, "additionalProperties");
	CU_ASSERT(strncmp(e.message, "property \"kkk", 13) == 0);
	CU_ASSERT(strlen(e.message) < sizeof(e.message));
	schema_free(s);
}

/* "[[[...1...]]]" nested n deep */
static char *nested_arrays(int n)
{
	char *t = malloc((size_t)2 * n + 2);

	memset(t, '[', (size_t)n);
	t[n] = '1';
	memset(t + n + 1, ']', (size_t)n);
	t[2 * n + 1] = '\0';
	return t;
}

static void test_hostile_depth(void)
{
	char *deep = nested_arrays(100), *ok = nested_arrays(SCHEMA_MAX_DEPTH);
	char path[512] = "$";

	/* the instance limit: the validator stops at SCHEMA_MAX_DEPTH levels */
	for (int i = 0; i < SCHEMA_MAX_DEPTH; i++)
		strcat(path, "[0]");
	BAD("{\"items\":{\"$ref\":\"#\"}}", deep, path, "depth", "value nested deeper than 64 levels");
	OK("{\"items\":{\"$ref\":\"#\"}}", ok);
	/* a schema that does not descend does not care */
	OK("{\"type\":\"array\"}", deep);
	/* neither does a "not" or an enum get fooled by depth */
	BAD("{\"not\":{\"items\":{\"$ref\":\"#/not\"}}}", deep, path, "depth", NULL);
	/* const, enum and uniqueItems compare only as deep as the shallower value... */
	BAD("{\"const\":[[1]]}", deep, "$", "const", "must be equal to [[1]]");
	OK("{\"uniqueItems\":true}", "[1,[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
	   "[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]");
	/* ...and stop at the limit when both are deep */
	char *schema_text = malloc(strlen(deep) + 32), *pair = malloc(2 * strlen(deep) + 32);
	snprintf(schema_text, strlen(deep) + 32, "{\"const\":%s}", deep);
	BAD(schema_text, deep, "$", "depth", "value nested deeper than 64 levels");
	snprintf(schema_text, strlen(deep) + 32, "{\"enum\":[2,%s]}", deep);
	BAD(schema_text, deep, "$", "depth", "value nested deeper than 64 levels");
	snprintf(pair, 2 * strlen(deep) + 32, "[%s,%s]", deep, deep);
	BAD("{\"uniqueItems\":true}", pair, "$", "depth", NULL);
	snprintf(pair, 2 * strlen(deep) + 32, "[%s,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]", deep);
	BAD("{\"uniqueItems\":true}", pair, "$", "depth", NULL);      /* the hashing path */
	free(schema_text);
	free(pair);
	free(deep);
	free(ok);

	/* the schema limit: compile refuses a schema nested deeper than SCHEMA_MAX_DEPTH */
	char schema[4096] = "", tail[4096] = "";
	for (int i = 0; i < 100; i++) {
		strcat(schema, "{\"items\":");
		strcat(tail, "}");
	}
	strcat(schema, "true");
	strcat(schema, tail);
	cJSON *doc = cJSON_Parse(schema);
	struct schema *s = NULL;
	char err[256];
	CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
	CU_ASSERT_EQUAL(schema_compile(doc, &s, err, sizeof(err)), -EINVAL);
	CU_ASSERT_PTR_NULL(s);
	CU_ASSERT(strncmp(err, "schema nested deeper than 64 levels at #/items/items/", 53) == 0);
	cJSON_Delete(doc);

	/* exponential anyOf fan-out is cut by the step budget */
	char *wide = nested_arrays(40);
	wide[40] = '"';
	char *quoted = malloc(strlen(wide) + 3);
	snprintf(quoted, strlen(wide) + 3, "%.*s\"x\"%s", 40, wide, wide + 41);
	BAD("{\"type\":\"array\",\"anyOf\":[{\"items\":{\"$ref\":\"#\"}},{\"items\":{\"$ref\":\"#\"}}]}",
	    quoted, NULL, "depth", "validation exceeded 4194304 steps");
	free(wide);
	free(quoted);
}

static void test_missing_schema(void)
{
	struct schema *s = NULL;
	struct schema_error e;
	char err[128];

	CU_ASSERT_EQUAL_FATAL(schema_compile(NULL, &s, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(run(s, "{\"anything\":[1]}", &e), 0);
	CU_ASSERT_EQUAL(run(s, NULL, &e), 0);
	CU_ASSERT_EQUAL(run(s, "[1]", &e), -EINVAL);
	CU_ASSERT_STRING_EQUAL(e.keyword, "type");
	CU_ASSERT_STRING_EQUAL(e.message, "expected object, got array");
	CU_ASSERT_EQUAL(run(s, "[1]", NULL), -EINVAL);  /* err is optional */
	schema_free(s);

	cJSON *str = cJSON_CreateString("object");
	s = NULL;
	CU_ASSERT_EQUAL(schema_compile(str, &s, err, sizeof(err)), -EINVAL);
	CU_ASSERT_PTR_NULL(s);
	CU_ASSERT_STRING_EQUAL(err, "inputSchema must be an object or a boolean");
	CU_ASSERT_EQUAL(schema_compile(str, &s, NULL, 0), -EINVAL);
	cJSON_Delete(str);
	schema_free(NULL);
}

static void test_error_json(void)
{
	struct schema *s = compile_text("{\"properties\":{\"a\":{\"type\":\"string\"}}}");
	struct schema_error e;
	cJSON *j;

	CU_ASSERT_EQUAL(run(s, "{\"a\":1}", &e), -EINVAL);
	j = schema_error_json(&e);
	CU_ASSERT_PTR_NOT_NULL_FATAL(j);
	CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(j, "path")->valuestring, "$.a");
	CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(j, "keyword")->valuestring, "type");
	CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(j, "message")->valuestring,
			       "expected string, got integer");
	cJSON_Delete(j);
	schema_free(s);
}

/* One compiled schema, many validations, as on the hot path. */
static void test_reuse(void)
{
	struct schema *s = compile_text("{\"type\":\"object\",\"properties\":{\"q\":{\"type\":\"string\","
					 "\"pattern\":\"^[a-z ]+$\",\"maxLength\":32}},\"required\":[\"q\"]}");
	struct schema_error e;

	for (int i = 0; i < 1000; i++) {
		CU_ASSERT_EQUAL(run(s, "{\"q\":\"hello world\"}", &e), 0);
		CU_ASSERT_EQUAL(run(s, "{\"q\":\"Hello\"}", &e), -EINVAL);
	}
	CU_ASSERT_STRING_EQUAL(e.keyword, "pattern");
	schema_free(s);
}

/* compile-time warnings about ignored keywords are expected here: cu_quiet keeps the output
 * readable */
/* minLength and maxLength count code points: strings of every length to 80 and a few of
 * thousands (past the count's 255 steps of 16 bytes), of one- to four-byte characters (the
 * highest of each size too) mixed from each starting offset, so that the count's steps end
 * inside a character and on either side of it. */
static void test_length_code_points(void)
{
	static const char *const chars[] = { "a", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
					     "\x7f", "\xdf\xbf", "\xef\xbf\xbf", "\xf4\x8f\xbf\xbf" };
	static const int big[] = { 1021, 1500, 4100 };
	char *text = malloc(4100 * 4 + 1), schema[96];
	struct schema_error e;

	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	for (int first = 0; first < 8; first++) {
		for (int k = 0; k <= 80 + 3; k++) {
			int n = k <= 80 ? k : big[k - 81];
			size_t len = 0;
			for (int i = 0; i < n; i++) {
				const char *c = chars[(first + i * (i % 3 + 1)) % 8];
				memcpy(text + len, c, strlen(c));
				len += strlen(c);
			}
			text[len] = '\0';
			cJSON *inst = cJSON_CreateString(text);
			CU_ASSERT_PTR_NOT_NULL_FATAL(inst);
			for (int d = -1; d <= 1; d++) {
				if (n + d < 0)
					continue;
				snprintf(schema, sizeof(schema), "{\"minLength\":%d}", n + d);
				struct schema *min = compile_text(schema);
				snprintf(schema, sizeof(schema), "{\"maxLength\":%d}", n + d);
				struct schema *max = compile_text(schema);
				CU_ASSERT_EQUAL(schema_validate(min, inst, &e), d <= 0 ? 0 : -EINVAL);
				CU_ASSERT_EQUAL(schema_validate(max, inst, &e), d >= 0 ? 0 : -EINVAL);
				schema_free(min);
				schema_free(max);
			}
			cJSON_Delete(inst);
		}
	}
	free(text);
}

CU_MAIN("schema", cu_quiet, NULL,
	{ "minLength and maxLength in code points", test_length_code_points },
	{ "schemas and the instances each accepts and refuses", test_schema_cases },
	{ "const: big objects", test_const_big_objects },
	{ "pattern (ECMA-262)", test_pattern },
	{ "uniqueItems: big arrays", test_unique_items_big },
	{ "error path truncated", test_path_truncated },
	{ "hostile depth", test_hostile_depth },
	{ "missing schema", test_missing_schema },
	{ "error as JSON", test_error_json },
	{ "compile once, validate many", test_reuse })
