/* config_fields: a config section read from a table of its fields.
 *
 * A module that owns a section (store, logs, tool_pins, tracing, llm, ...) describes each field
 * once — its name, its type, its bounds, where it goes in the module's struct — and
 * cfg_fields() rejects unknown fields, checks and converts every one, and records each problem
 * at its field path ("logs.queue: must be between 16 and 16777216 (got 3)") with the cfg_*
 * helpers of base/config.h. The defaults are the struct's values before the call: a field that
 * is absent is left as it was.
 */
#ifndef WARDEN_BASE_CONFIG_FIELDS_H
#define WARDEN_BASE_CONFIG_FIELDS_H

#include <stddef.h>
#include <cjson/cJSON.h>

#include "base/config.h"

enum cfg_type {
	CFG_KNOWN,              /* accepted, read by the caller itself (or a "_comment") */
	CFG_BOOL,               /* bool */
	CFG_STRING,             /* const char *, borrowed from the document */
	CFG_INT,                /* int, within [min, max] (which must fit an int) */
	CFG_UINT,               /* unsigned, within [min, max] (which must fit) */
	CFG_I64,                /* int64_t, within [min, max] */
	CFG_DURATION_MS,        /* int64_t milliseconds ("250ms", "5s", "1h" or a number) */
};

enum {
	CFG_REQUIRED = 1 << 0,  /* missing is an error */
	CFG_NONEMPTY = 1 << 1,  /* strings: "" is an error */
};

struct cfg_field {
	const char *name;
	enum cfg_type type;
	size_t offset;          /* of the member in the caller's struct (unused for CFG_KNOWN) */
	long long min, max;     /* numbers */
	unsigned flags;
};

/* A field named as its member of struct st; one accepted but read by the caller; the end. */
#define CFG_FIELD(st, member, type, min, max, flags) \
	{ #member, type, offsetof(st, member), min, max, flags }
#define CFG_KNOWN_FIELD(name) { name, CFG_KNOWN, 0, 0, 0, 0 }
#define CFG_END { NULL, CFG_KNOWN, 0, 0, 0, 0 }

/* Read the fields of obj (at path, e.g. "logs") into out; the table ends with { NULL }. 0, or
 * -EINVAL with every problem in errs (out may then hold some of the values read). */
int cfg_fields(const cJSON *obj, const char *path, const struct cfg_field *fields, void *out,
	       struct config_errors *errs);

#endif
