/* fuzz_policy: a "policies" document and catalogue entries, both from the input
 * ("<config root>\n~~\n<entries>", one entry a line: "t server/name", "r server/uri" or
 * "p server/name"; tools get the annotations "{...}" after a tab). Every policy is checked
 * against every entry, alone and paired with the others as a key and its team, and the
 * precompiled views must decide exactly as the direct check. */
#include <errno.h>

#include "base/config.h"
#include "fuzz.h"
#include "govern/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ENTRIES 32
#define MAX_POLICIES 8

static size_t parse_entries(char *text, struct policy_entry *e, cJSON **ann)
{
	size_t n = 0;

	for (char *line = strtok(text, "\n"); line && n < MAX_ENTRIES; line = strtok(NULL, "\n")) {
		char *slash, *tab;

		if (strlen(line) < 2 || line[1] != ' ' || !(slash = strchr(line + 2, '/')))
			continue;
		*slash = '\0';
		e[n].kind = line[0] == 'r' ? POLICY_RESOURCE : line[0] == 'p' ? POLICY_PROMPT
								 : POLICY_TOOL;
		e[n].server = line + 2;
		e[n].name = slash + 1;
		ann[n] = NULL;
		if ((tab = strchr(slash + 1, '\t'))) {
			*tab = '\0';
			ann[n] = cJSON_Parse(tab + 1);
		}
		e[n].annotations = ann[n];
		n++;
	}
	return n;
}

static void check_pair(const struct policy_set *ps, const char *p, const char *t,
		       const struct policy_entry *e, size_t n)
{
	struct policy_view *v = NULL;
	const char *why;

	if (policy_compile(ps, p, t, e, n, &v) < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		int rc = policy_check(ps, p, t, &e[i], &why);
		bool allowed = policy_view_allows(v, i, &why);

		if ((rc == 0) != allowed || (!allowed && !why))
			__builtin_trap();
	}
	if (policy_view_allows(v, n, NULL))
		__builtin_trap();        /* outside the view: refused */
	size_t count = 0;

	for (size_t i = policy_view_next(v, 0); i < n; i = policy_view_next(v, i + 1))
		count++;
	if (count != policy_view_count(v))
		__builtin_trap();
	policy_view_free(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_strndup(data, size);
	cJSON *root = NULL, *ann[MAX_ENTRIES] = { 0 };
	struct policy_set *ps = NULL;
	struct policy_cache *cache = NULL;
	struct policy_entry e[MAX_ENTRIES];
	struct config_errors errs = { 0 };
	size_t n = 0;

	if (!text)
		return 0;
	char *second = fuzz_split(text);

	root = cJSON_Parse(text);
	if (!root || policy_set_parse(root, &ps, &errs) < 0)
		goto out;
	n = parse_entries(second, e, ann);

	const char *names[MAX_POLICIES + 1];
	size_t np = 0;
	const cJSON *pol;

	cJSON_ArrayForEach(pol, cJSON_GetObjectItemCaseSensitive(root, "policies")) {
		if (np < MAX_POLICIES && pol->string && policy_set_has(ps, pol->string))
			names[np++] = pol->string;
	}
	names[np++] = "no-such-policy";
	if (policy_cache_new(ps, &cache) < 0)
		goto out;
	policy_cache_set_catalogue(cache, e, n);
	for (size_t i = 0; i < np; i++) {
		for (size_t j = 0; j < np; j++) {
			check_pair(ps, names[i], j == i ? NULL : names[j], e, n);
			const struct policy_view *cv;
			(void)policy_cache_get(cache, names[i], names[j], &cv);
		}
	}
out:
	policy_cache_free(cache);
	policy_set_free(ps);
	for (size_t i = 0; i < n; i++)
		cJSON_Delete(ann[i]);
	cJSON_Delete(root);
	free(text);
	return 0;
}
