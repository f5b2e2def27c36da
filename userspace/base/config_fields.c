/* config_fields: a config section's fields read from their table (cfg_fields, base/config.h). */
#include "base/config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static const struct cfg_field *find(const struct cfg_field *f, const char *name)
{
	for (; f->name; f++)
		if (strcmp(f->name, name) == 0)
			return f;
	return NULL;
}

/* One field: 0 (read, or absent and optional), or -EINVAL with its error recorded. */
static int read_field(const cJSON *obj, const char *path, const struct cfg_field *f, char *out,
		      struct config_errors *errs)
{
	bool req = f->flags & CFG_REQUIRED;
	const char *s;
	long long x;
	int64_t ms;
	int rc;

	switch (f->type) {
	case CFG_KNOWN:
		return 0;
	case CFG_BOOL:
		rc = cfg_bool(obj, f->name, path, req, (bool *)(out + f->offset), errs);
		break;
	case CFG_STRING:
		rc = cfg_string(obj, f->name, path, req, &s, errs);
		if (rc == 0 && (f->flags & CFG_NONEMPTY) && !*s) {
			char p[256];
			snprintf(p, sizeof(p), "%s.%s", path, f->name);
			return config_fail(errs, p, "must not be empty");
		}
		if (rc == 0)
			memcpy(out + f->offset, &s, sizeof(s));
		break;
	case CFG_INT:
	case CFG_UINT:
	case CFG_I64:
	case CFG_SIZE:
		rc = cfg_int(obj, f->name, path, req, f->min, f->max, &x, errs);
		if (rc == 0 && f->type == CFG_INT)
			*(int *)(out + f->offset) = (int)x;
		else if (rc == 0 && f->type == CFG_UINT)
			*(unsigned *)(out + f->offset) = (unsigned)x;
		else if (rc == 0 && f->type == CFG_SIZE)
			*(size_t *)(out + f->offset) = (size_t)x;
		else if (rc == 0)
			*(int64_t *)(out + f->offset) = x;
		break;
	case CFG_DURATION_MS:
		rc = cfg_duration_ms(obj, f->name, path, req, f->min, f->max, &ms, errs);
		if (rc == 0)
			*(int64_t *)(out + f->offset) = ms;
		break;
	default:
		rc = -EINVAL;
	}
	return rc == -ENOENT ? 0 : rc;
}

int cfg_fields(const cJSON *obj, const char *path, const struct cfg_field *fields, void *out,
	       struct config_errors *errs)
{
	const cJSON *it;
	int rc = 0;

	if (!cJSON_IsObject(obj))
		return config_fail(errs, path, "must be an object");
	/* Unknown fields are errors, so a typo is caught rather than silently ignored. */
	cJSON_ArrayForEach(it, obj) {
		if (!find(fields, it->string)) {
			char p[256];
			snprintf(p, sizeof(p), "%s.%s", path, it->string);
			rc = config_fail(errs, p, "unknown field");
		}
	}
	for (const struct cfg_field *f = fields; f->name; f++)
		if (read_field(obj, path, f, out, errs))
			rc = -EINVAL;
	return rc;
}
