/* tool_digest: a tool definition's canonical text, its digest and a readable diff. */
#include "govern/tool_digest.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>

#include "base/alloc.h"

/* The fields a definition is made of (the rest may change freely). */
static const char *const fields[] = {
	"name", "title", "description", "inputSchema", "outputSchema", "annotations", NULL
};

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

char *tool_canonical(const cJSON *tool)
{
	cJSON *o = cJSON_CreateObject();

	for (const char *const *f = fields; *f; f++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(tool, *f);
		if (v)
			cJSON_AddItemToObject(o, *f, cJSON_Duplicate(v, 1));
	}
	sort_keys(o);
	char *s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
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
	char *s = tool_canonical(tool);
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

cJSON *tool_diff(const cJSON *old_def, const cJSON *new_def)
{
	cJSON *d = cJSON_CreateObject();
	cJSON *changed = cJSON_AddArrayToObject(d, "changed");

	if (!old_def)
		cJSON_AddBoolToObject(d, "previous_unknown", 1);
	for (const char *const *f = fields; *f; f++) {
		const cJSON *a = cJSON_GetObjectItemCaseSensitive(old_def, *f);
		const cJSON *b = cJSON_GetObjectItemCaseSensitive(new_def, *f);
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
	}
	return d;
}
