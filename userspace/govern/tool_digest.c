/* tool_digest: a tool definition's canonical text, its digest and a readable diff. */
#include "govern/tool_digest.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>

#include "base/alloc.h"
#include "base/json_get.h"

/* The fields a definition is made of (the rest may change freely); v1 stops before _meta. */
static const char *const fields[] = {
	"name", "title", "description", "inputSchema", "outputSchema", "annotations", "_meta", NULL
};
#define FIELDS_V1 6

static int by_key(const void *a, const void *b)
{
	return strcmp((*(cJSON *const *)a)->string, (*(cJSON *const *)b)->string);
}

/* Sort every object's members by key, recursively (v is a private copy). */
static void sort_keys(cJSON *v)
{
	cJSON *it;
	size_t n = 0, i = 0;

	if (!cJSON_IsObject(v) && !cJSON_IsArray(v))
		return;
	for (it = v->child; it; it = it->next, n++)
		sort_keys(it);
	if (!cJSON_IsObject(v) || n < 2)
		return;
	cJSON **a = xmalloc(n * sizeof(*a));
	for (it = v->child; it; it = it->next)
		a[i++] = it;
	qsort(a, n, sizeof(*a), by_key);
	for (i = 0; i < n; i++) {
		a[i]->prev = i ? a[i - 1] : a[n - 1];  /* cJSON: the head's prev is the tail */
		a[i]->next = i + 1 < n ? a[i + 1] : NULL;
	}
	v->child = a[0];
	free(a);
}

static char *canonical(const cJSON *tool, size_t nfields)
{
	cJSON *o = cJSON_CreateObject();

	for (const char *const *f = fields; *f && (size_t)(f - fields) < nfields; f++) {
		const cJSON *v = json_get(tool, *f);
		if (v)
			cJSON_AddItemToObject(o, *f, cJSON_Duplicate(v, 1));
	}
	sort_keys(o);
	char *s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

char *tool_canonical(const cJSON *tool)
{
	return canonical(tool, sizeof(fields) / sizeof(fields[0]));
}

int tool_digest_version(const char *d)
{
	size_t pl = strlen(TOOL_DIGEST_PREFIX);
	int v = 1;

	if (!d)
		return 0;
	if (!strncmp(d, TOOL_DIGEST_PREFIX, pl)) {
		d += pl;
		v = 2;
	}
	return strlen(d) == 64 && strspn(d, "0123456789abcdef") == 64 ? v : 0;
}

char *tool_canonical_value(const cJSON *v)
{
	cJSON *d = v ? cJSON_Duplicate(v, 1) : cJSON_CreateNull();

	sort_keys(d);
	char *s = cJSON_PrintUnformatted(d);
	cJSON_Delete(d);
	return s;
}

int tool_sha256_hex(const void *p, size_t len, char hex[TOOL_DIGEST_HEX])
{
	static const char digits[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	if (EVP_Digest(p, len, md, &n, EVP_sha256(), NULL) != 1 || n != 32)
		return -EIO;
	for (unsigned int i = 0; i < 32; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 15];
	}
	hex[64] = '\0';
	return 0;
}

int tool_digest(const cJSON *tool, char hex[TOOL_DIGEST_HEX])
{
	char *s = tool_canonical(tool), h[TOOL_DIGEST_HEX];
	int rc = tool_sha256_hex(s, strlen(s), h);

	if (rc == 0)
		snprintf(hex, TOOL_DIGEST_HEX, TOOL_DIGEST_PREFIX "%.64s", h);
	free(s);
	return rc;
}

int tool_digest_v1(const cJSON *tool, char hex[TOOL_DIGEST_HEX])
{
	char *s = canonical(tool, FIELDS_V1);
	int rc = tool_sha256_hex(s, strlen(s), hex);

	free(s);
	return rc;
}

static cJSON *cut(const cJSON *s)
{
	if (!cJSON_IsString(s))
		return cJSON_CreateNull();
	if (strlen(s->valuestring) <= TOOL_DIFF_TEXT_MAX)
		return cJSON_CreateString(s->valuestring);
	char *t = xstrndup(s->valuestring, TOOL_DIFF_TEXT_MAX);
	size_t n = strlen(t);
	/* never end inside a UTF-8 sequence */
	while (n && ((unsigned char)t[n - 1] & 0xC0) == 0x80)
		n--;
	if (n && ((unsigned char)t[n - 1] & 0xC0) == 0xC0)
		n--;
	t[n] = '\0';
	cJSON *r = cJSON_CreateString(t);
	free(t);
	return r;
}

/* A value whole when its text is short, else null (the digests still tell them apart). */
static cJSON *small(const cJSON *v)
{
	char *t = v ? cJSON_PrintUnformatted(v) : NULL;
	bool fits = t && strlen(t) <= TOOL_DIFF_TEXT_MAX;

	cJSON_free(t);
	return fits ? cJSON_Duplicate(v, 1) : cJSON_CreateNull();
}

cJSON *tool_diff(const cJSON *old_def, const cJSON *new_def)
{
	cJSON *d = cJSON_CreateObject();
	cJSON *changed = cJSON_AddArrayToObject(d, "changed");

	if (!old_def)
		cJSON_AddBoolToObject(d, "previous_unknown", 1);
	for (const char *const *f = fields; *f; f++) {
		const cJSON *a = json_get(old_def, *f);
		const cJSON *b = json_get(new_def, *f);
		if (old_def && ((!a && !b) || (a && b && cJSON_Compare(a, b, 1))))
			continue;
		if (!old_def && !b)
			continue;
		cJSON_AddItemToArray(changed, cJSON_CreateString(*f));
		if (!strcmp(*f, "description")) {
			cJSON *t = cJSON_AddObjectToObject(d, "description");
			cJSON_AddItemToObject(t, "old", cut(a));
			cJSON_AddItemToObject(t, "new", cut(b));
		}
		if (!strcmp(*f, "_meta")) {
			cJSON *t = cJSON_AddObjectToObject(d, "_meta");
			cJSON_AddItemToObject(t, "old", small(a));
			cJSON_AddItemToObject(t, "new", small(b));
		}
	}
	return d;
}
