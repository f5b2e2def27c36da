/* config_fields: a config section's fields read from their table (cfg_fields, base/config.h). */
#include "base/config.h"

#include "base/alloc.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct cfg_field *find(const struct cfg_field *f, const char *name)
{
	for (; f->name; f++)
		if (strcmp(f->name, name) == 0)
			return f;
	return NULL;
}

/* CFG_NONEMPTY and the longest accepted (max) of a string field. */
static int check_length(const char *path, const struct cfg_field *f, const char *s,
			struct config_errors *errs)
{
	size_t n = strlen(s);
	char p[256];

	snprintf(p, sizeof(p), "%s.%s", path, f->name);
	if (f->max > 0 && (n > (size_t)f->max || (!n && (f->flags & CFG_NONEMPTY))))
		return config_fail(errs, p, "must be %d-%lld characters",
				   !!(f->flags & CFG_NONEMPTY), f->max);
	if (!n && (f->flags & CFG_NONEMPTY))
		return config_fail(errs, p, "must not be empty");
	return 0;
}

/* A borrowed string stored as it is; an owned one copied over the value already there. */
static void store_string(const struct cfg_field *f, char *member, const char *s)
{
	char *copy;

	if (f->type == CFG_STRING) {
		memcpy(member, &s, sizeof(s));
		return;
	}
	memcpy(&copy, member, sizeof(copy));
	free(copy);
	copy = xstrdup(s);
	memcpy(member, &copy, sizeof(copy));
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
	case CFG_COPY:
		rc = cfg_string(obj, f->name, path, req, &s, errs);
		if (rc == 0 && (rc = check_length(path, f, s, errs)) == 0)
			store_string(f, out + f->offset, s);
		break;
	case CFG_SECRET: {
		char *v = NULL;

		rc = cfg_secret(obj, f->name, path, req, &v, errs);
		if (rc == 0 && (rc = check_length(path, f, v, errs)) == 0)
			store_string(f, out + f->offset, v);
		free(v);
		break;
	}
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

void cfg_fields_free(const struct cfg_field *fields, void *st)
{
	for (const struct cfg_field *f = fields; f->name; f++) {
		char **member = (char **)((char *)st + f->offset);

		if (f->type == CFG_SECRET)
			free_secret(*member);
		else if (f->type == CFG_COPY)
			free(*member);
		else
			continue;
		*member = NULL;
	}
}
