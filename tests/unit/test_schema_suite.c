/* The official JSON-Schema-Test-Suite (npm json-schema-test-suite, draft 4 — the newest draft
 * that package ships) against the validator, for every keyword it supports.
 *
 * Draft-4 schemas carry no $schema, so each gets "$schema": draft-04: the validator then reads
 * them with the draft-07-and-older rules (boolean exclusiveMinimum/Maximum, items arrays,
 * additionalItems, $ref siblings ignored). Files of keywords the validator does not enforce
 * are skipped and listed; the handful of cases it is known to get differently are listed with
 * the reason, and asserted to still differ, so the list cannot go stale. */
#include <CUnit/Basic.h>
#include <dirent.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "govern/schema.h"
#include "cunit_main.h"

/* Keywords the validator ignores (docs/schema.md), and remote references it never fetches. */
static const char *const skipped_files[] = {
	"dependencies.json",   /* dependencies: not enforced */
	"refRemote.json",      /* $ref to other documents over the network: never fetched */
	"format.json",         /* optional/: format is an annotation, not enforced */
	NULL,
};

/* "file: group: test" of the cases the validator decides differently, on purpose. */
static const struct {
	const char *id;
	const char *why;
} known[] = {
	{ "ref.json: remote ref, containing refs itself: remote ref invalid",
	  "$ref to the draft-04 meta-schema URL is outside the document: ignored, not fetched" },
	{ "definitions.json: invalid definition: invalid definition schema",
	  "the same: validating against the meta-schema needs the remote $ref" },
	{ "zeroTerminatedFloats.json: some languages do not distinguish between different types of "
	  "numeric value: a float is not an integer even without fractional part",
	  "draft 4 only: from draft 6 on, 1.0 is an integer (and the JSON parser keeps no 1.0)" },
	{ NULL, NULL },
};

static char suite_dir[PATH_MAX];
static unsigned ran, passed, known_seen;

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
		buf = malloc((size_t)n + 1);
		if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
			free(buf);
			buf = NULL;
		} else if (buf) {
			buf[n] = '\0';
		}
	}
	fclose(f);
	return buf;
}

static const char *known_reason(const char *id)
{
	for (size_t i = 0; known[i].id; i++)
		if (!strcmp(known[i].id, id))
			return known[i].why;
	return NULL;
}

static bool is_skipped(const char *name)
{
	for (const char *const *s = skipped_files; *s; s++)
		if (!strcmp(*s, name))
			return true;
	return false;
}

static void run_group(const char *file, cJSON *group)
{
	cJSON *schema = cJSON_GetObjectItemCaseSensitive(group, "schema");
	const char *gdesc = cJSON_GetObjectItemCaseSensitive(group, "description")->valuestring;
	struct schema *s = NULL;
	char why[256], id[512];
	cJSON *t;

	if (cJSON_IsObject(schema) && !cJSON_GetObjectItemCaseSensitive(schema, "$schema"))
		cJSON_AddStringToObject(schema, "$schema", "http://json-schema.org/draft-04/schema#");
	if (schema_compile(schema, &s, why, sizeof(why))) {
		fprintf(stderr, "  %s: %s: does not compile: %s\n", file, gdesc, why);
		CU_FAIL("a suite schema does not compile");
		return;
	}
	cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(group, "tests")) {
		const char *tdesc = cJSON_GetObjectItemCaseSensitive(t, "description")->valuestring;
		bool want = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(t, "valid"));
		struct schema_error e;
		bool got = schema_validate(s, cJSON_GetObjectItemCaseSensitive(t, "data"), &e) == 0;
		const char *reason;

		snprintf(id, sizeof(id), "%s: %s: %s", file, gdesc, tdesc);
		reason = known_reason(id);
		ran++;
		if (reason) {
			known_seen++;
			if (got == want)
				fprintf(stderr, "  known difference no longer differs: %s\n", id);
			CU_ASSERT_NOT_EQUAL(got, want);
			continue;
		}
		if (got != want)
			fprintf(stderr, "  FAIL %s: expected %s, got %s (%s at %s)\n", id,
				want ? "valid" : "invalid", got ? "valid" : "invalid",
				got ? "-" : e.message, got ? "-" : e.path);
		CU_ASSERT_EQUAL(got, want);
		passed += got == want;
	}
	schema_free(s);
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void run_dir(const char *dir)
{
	DIR *d = opendir(dir);
	char *names[64];
	size_t n = 0;
	struct dirent *de;

	CU_ASSERT_PTR_NOT_NULL_FATAL(d);
	while ((de = readdir(d)) && n < 64)
		if (strstr(de->d_name, ".json"))
			names[n++] = strdup(de->d_name);
	closedir(d);
	qsort(names, n, sizeof(names[0]), cmp_names);
	CU_ASSERT(n >= 2);
	for (size_t i = 0; i < n; i++) {
		char path[PATH_MAX + 256], *text;
		cJSON *doc, *g;

		if (is_skipped(names[i])) {
			printf("  skipped %s (keyword not enforced; docs/schema.md)\n", names[i]);
			free(names[i]);
			continue;
		}
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		text = slurp(path);
		doc = text ? cJSON_Parse(text) : NULL;
		CU_ASSERT_PTR_NOT_NULL(doc);
		cJSON_ArrayForEach(g, doc)
			run_group(names[i], g);
		cJSON_Delete(doc);
		free(text);
		free(names[i]);
	}
}

static void test_suite(void)
{
	char opt[PATH_MAX + 16];

	run_dir(suite_dir);
	snprintf(opt, sizeof(opt), "%s/optional", suite_dir);
	run_dir(opt);
	printf("  %u cases: %u as the suite says, %u known differences\n", ran, passed, known_seen);
	CU_ASSERT(ran > 230);  /* the suite is there, whole */
	CU_ASSERT_EQUAL(known_seen, sizeof(known) / sizeof(known[0]) - 1);
}

static int suite_init(void)
{
	const char *top = getenv("MCPWARDEN_TOP");

	snprintf(suite_dir, sizeof(suite_dir), "%s/tests/node_modules/json-schema-test-suite/tests/draft4",
		 top ? top : ".");
	log_set_level(LOG_ERROR);  /* ignored keywords warn by design */
	return 0;
}

CU_MAIN("schema_suite", suite_init, NULL,
	{ "JSON-Schema-Test-Suite draft 4 (and optional/), every enforced keyword", test_suite })
