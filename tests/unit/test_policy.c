/* Policy: pattern matching, precedence (deny wins, default deny, key ∩ team), annotation rules
 * with the MCP defaults, compiled views against a large catalogue, and config errors. */
#include <CUnit/Basic.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/config.h"
#include "govern/policy.h"
#include "config_errors_util.h"
#include "cunit_main.h"

static struct policy_set *set_of(const char *json)
{
	struct config_errors e = { 0 };
	struct policy_set *ps = NULL;
	cJSON *root = cJSON_Parse(json);

	CU_ASSERT_PTR_NOT_NULL_FATAL(root);
	int rc = policy_set_parse(root, &ps, &e);
	for (int i = 0; i < e.count; i++)
		fprintf(stderr, "unexpected config error: %s\n", e.msg[i]);
	CU_ASSERT_EQUAL(rc, 0);
	cJSON_Delete(root);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ps);
	return ps;
}

/* 0 allowed, -EACCES refused (why set), other negative errno. ann: JSON text or NULL. */
static int check(const struct policy_set *ps, const char *pol, const char *team,
		 enum policy_kind kind, const char *server, const char *name, const char *ann,
		 const char **why)
{
	cJSON *a = ann ? cJSON_Parse(ann) : NULL;
	struct policy_entry e = { kind, server, name, a };
	const char *w = NULL;
	int rc = policy_check(ps, pol, team, &e, &w);

	cJSON_Delete(a);
	if (why)
		*why = w;
	CU_ASSERT((rc == -EACCES) == (w != NULL));
	return rc;
}

#define TOOL(ps, pol, srv, name) check(ps, pol, NULL, POLICY_TOOL, srv, name, NULL, NULL)

/* check() on ps refuses the entry, for the reason want. */
#define REFUSED(pol, team, kind, srv, name, want) do {                                   \
	const char *why_ = NULL;                                                         \
	CU_ASSERT_EQUAL(check(ps, pol, team, kind, srv, name, NULL, &why_), -EACCES);    \
	CU_ASSERT_STRING_EQUAL(why_ ? why_ : "(allowed)", want);                         \
} while (0)

static void test_globs(void)
{
	struct policy_set *ps = set_of("{\"policies\": {"
		"\"all\": {\"tools\": {\"allow\": [\"*/*\"]}},"
		"\"fs\": {\"tools\": {\"allow\": [\"fs/*\"]}},"
		"\"dash\": {\"tools\": {\"allow\": [\"my-server/get_*\", \"a*/x\", \"git?ub/x\"]}},"
		"\"dots\": {\"tools\": {\"allow\": [\"a/v1.*\", \"b/v1?read\"]}},"
		"\"slash\": {\"tools\": {\"allow\": [\"a/ns/*\", \"*/tool\"]}},"
		"\"exact\": {\"tools\": {\"allow\": [\"fs/read_file\"]}}}}");

	CU_ASSERT_EQUAL(TOOL(ps, "all", "anything", "at.all/x"), 0);
	CU_ASSERT_EQUAL(TOOL(ps, "fs", "fs", "read"), 0);
	CU_ASSERT_EQUAL(TOOL(ps, "fs", "fs", "x.y"), 0);
	CU_ASSERT_EQUAL(TOOL(ps, "fs", "fs", "a/b"), 0);
	CU_ASSERT_EQUAL(TOOL(ps, "fs", "fs-2", "read"), -EACCES);  /* server is matched whole */
	CU_ASSERT_EQUAL(TOOL(ps, "fs", "f", "read"), -EACCES);
	CU_ASSERT_EQUAL(TOOL(ps, "dash", "my-server", "get_user"), 0);
	CU_ASSERT_EQUAL(TOOL(ps, "dash", "my-server", "put_user"), -EACCES);
	CU_ASSERT_EQUAL(TOOL(ps, "dash", "my-serve", "get_user"), -EACCES);
	CU_ASSERT_EQUAL(TOOL(ps, "dash", "a-b-c", "x"), 0);
	CU_ASSERT_EQUAL(TOOL(ps, "dash", "github", "x"), 0);
	CU_ASSERT_EQUAL(TOOL(ps, "dash", "gitthub", "x"), -EACCES);
	CU_ASSERT_EQUAL(TOOL(ps, "dots", "a", "v1.read"), 0);
	CU_ASSERT_EQUAL(TOOL(ps, "dots", "a", "v1_read"), -EACCES);  /* '.' is literal */
	CU_ASSERT_EQUAL(TOOL(ps, "dots", "b", "v1.read"), 0);
	CU_ASSERT_EQUAL(TOOL(ps, "dots", "b", "v1..read"), -EACCES); /* '?' is one character */
	CU_ASSERT_EQUAL(TOOL(ps, "slash", "a", "ns/tool"), 0);
	CU_ASSERT_EQUAL(TOOL(ps, "slash", "b", "tool"), 0);
	/* The server part ends at the first '/': "*" /"tool" does not reach into "ns/tool". */
	CU_ASSERT_EQUAL(TOOL(ps, "slash", "b", "ns/tool"), -EACCES);
	CU_ASSERT_EQUAL(TOOL(ps, "exact", "fs", "read_file"), 0);
	CU_ASSERT_EQUAL(TOOL(ps, "exact", "fs", "Read_file"), -EACCES); /* case-sensitive */
	CU_ASSERT_EQUAL(TOOL(ps, "exact", "fs", "read_file2"), -EACCES);
	CU_ASSERT_EQUAL(TOOL(ps, "exact", "fs", ""), -EACCES);
	policy_set_free(ps);

	/* Stars anywhere, several of them, empty runs, and a backslash for a literal star. */
	ps = set_of("{\"policies\": {"
		"\"multi\": {\"tools\": {\"allow\": [\"*/a*b*c\", \"s*/*x\", \"e/*\\\\*\"]}},"
		"\"q\": {\"tools\": {\"allow\": [\"?" "?/??\"]}}}}");
	CU_ASSERT_EQUAL(TOOL(ps, "multi", "z", "abc"), 0);
	CU_ASSERT_EQUAL(TOOL(ps, "multi", "z", "a-b-c"), 0);
	CU_ASSERT_EQUAL(TOOL(ps, "multi", "z", "aXbYbZc"), 0);
	CU_ASSERT_EQUAL(TOOL(ps, "multi", "z", "abcd"), -EACCES);
	CU_ASSERT_EQUAL(TOOL(ps, "multi", "z", "acb"), -EACCES);
	CU_ASSERT_EQUAL(TOOL(ps, "multi", "s", "x"), 0);
	CU_ASSERT_EQUAL(TOOL(ps, "multi", "srv-1", "a.x"), 0);
	CU_ASSERT_EQUAL(TOOL(ps, "multi", "e", "go*"), 0);    /* "\\*" is a literal star */
	CU_ASSERT_EQUAL(TOOL(ps, "multi", "e", "go"), -EACCES);
	CU_ASSERT_EQUAL(TOOL(ps, "multi", "e", "go*x"), -EACCES);
	CU_ASSERT_EQUAL(TOOL(ps, "q", "ab", "cd"), 0);
	CU_ASSERT_EQUAL(TOOL(ps, "q", "ab", "c"), -EACCES);
	CU_ASSERT_EQUAL(TOOL(ps, "q", "abc", "cd"), -EACCES);
	policy_set_free(ps);
}

/* A long, crafted name against a many-star pattern is decided (glibc's fnmatch does not
 * backtrack exponentially), and names beyond the limit are refused outright. */
static void test_glob_worst_case(void)
{
	char *name = malloc(5000);
	struct policy_set *ps = set_of("{\"policies\": {\"p\": {"
		"\"resources\": {\"allow\": [\"fs/*a*a*a*a*a*a*a*a*b\"]}}}}");

	CU_ASSERT_PTR_NOT_NULL_FATAL(name);
	memset(name, 'a', 4096);
	name[4096] = '\0';
	CU_ASSERT_EQUAL(check(ps, "p", NULL, POLICY_RESOURCE, "fs", name, NULL, NULL), -EACCES);
	name[4095] = 'b';
	CU_ASSERT_EQUAL(check(ps, "p", NULL, POLICY_RESOURCE, "fs", name, NULL, NULL), 0);
	memset(name, 'a', 4097);
	name[4096] = 'b';
	name[4097] = '\0';
	REFUSED("p", NULL, POLICY_RESOURCE, "fs", name, "name longer than 4096 bytes");
	free(name);
	policy_set_free(ps);
}

static void test_precedence(void)
{
	struct policy_set *ps = set_of("{\"policies\": {"
		"\"none\": {},"
		"\"mixed\": {\"tools\": {\"allow\": [\"*/*\"], \"deny\": [\"fs/delete_*\", \"shell/*\"]},"
		"            \"prompts\": {\"allow\": [\"fs/summary\"]}},"
		"\"denyall\": {\"tools\": {\"allow\": [\"fs/read\"], \"deny\": [\"*/*\"]}}}}");

	/* Nothing is allowed by default. */
	REFUSED("none", NULL, POLICY_TOOL, "fs", "read",
		"policy \"none\": no allow rule for tools matches");
	CU_ASSERT_EQUAL(check(ps, "none", NULL, POLICY_PROMPT, "fs", "p", NULL, NULL), -EACCES);
	/* Deny wins over a broader allow. */
	CU_ASSERT_EQUAL(TOOL(ps, "mixed", "fs", "read"), 0);
	REFUSED("mixed", NULL, POLICY_TOOL, "fs", "delete_all",
		"policy \"mixed\": deny tools fs/delete_*");
	REFUSED("mixed", NULL, POLICY_TOOL, "shell", "ls", "policy \"mixed\": deny tools shell/*");
	/* Deny wins over a narrower allow too. */
	REFUSED("denyall", NULL, POLICY_TOOL, "fs", "read", "policy \"denyall\": deny tools */*");
	/* Each kind has its own rules: allowing tools allows no resource or prompt. */
	REFUSED("mixed", NULL, POLICY_RESOURCE, "fs", "file:///x",
		"policy \"mixed\": no allow rule for resources matches");
	CU_ASSERT_EQUAL(check(ps, "mixed", NULL, POLICY_PROMPT, "fs", "summary", NULL, NULL), 0);
	CU_ASSERT_EQUAL(check(ps, "mixed", NULL, POLICY_PROMPT, "fs", "other", NULL, NULL),
			-EACCES);
	policy_set_free(ps);
}

static void test_team_intersection(void)
{
	struct policy_set *ps = set_of("{\"policies\": {"
		"\"key-fs\": {\"tools\": {\"allow\": [\"fs/*\"], \"deny\": [\"fs/secret\"]}},"
		"\"team\": {\"tools\": {\"allow\": [\"fs/read\", \"fs/secret\", \"git/*\"]}}}}");

	CU_ASSERT_EQUAL(check(ps, "key-fs", "team", POLICY_TOOL, "fs", "read", NULL, NULL), 0);
	/* The key allows it, the team does not. */
	REFUSED("key-fs", "team", POLICY_TOOL, "fs", "write",
		"policy \"team\": no allow rule for tools matches");
	/* The team allows it, the key does not. */
	REFUSED("key-fs", "team", POLICY_TOOL, "git", "log",
		"policy \"key-fs\": no allow rule for tools matches");
	/* Either side's deny refuses. */
	REFUSED("key-fs", "team", POLICY_TOOL, "fs", "secret",
		"policy \"key-fs\": deny tools fs/secret");
	/* One side alone governs when the other is empty. */
	CU_ASSERT_EQUAL(check(ps, NULL, "team", POLICY_TOOL, "git", "log", NULL, NULL), 0);
	CU_ASSERT_EQUAL(check(ps, "", "team", POLICY_TOOL, "fs", "secret", NULL, NULL), 0);
	CU_ASSERT_EQUAL(check(ps, "key-fs", "", POLICY_TOOL, "fs", "write", NULL, NULL), 0);
	/* Neither side, or a policy that does not exist: refused as errors, never allowed. */
	CU_ASSERT_EQUAL(check(ps, NULL, NULL, POLICY_TOOL, "fs", "read", NULL, NULL), -EINVAL);
	CU_ASSERT_EQUAL(check(ps, "", "", POLICY_TOOL, "fs", "read", NULL, NULL), -EINVAL);
	CU_ASSERT_EQUAL(check(ps, "nope", NULL, POLICY_TOOL, "fs", "read", NULL, NULL), -ENOENT);
	CU_ASSERT_EQUAL(check(ps, "key-fs", "nope", POLICY_TOOL, "fs", "read", NULL, NULL),
			-ENOENT);
	CU_ASSERT_TRUE(policy_set_has(ps, "team"));
	CU_ASSERT_FALSE(policy_set_has(ps, "nope"));
	CU_ASSERT_FALSE(policy_set_has(ps, NULL));
	policy_set_free(ps);
}

#define ANN(pol, ann) check(ps, pol, NULL, POLICY_TOOL, "s", "t", ann, NULL)

static void test_annotations(void)
{
	struct policy_set *ps = set_of("{\"policies\": {"
		"\"ro\": {\"tools\": {\"allow\": [\"*/*\"]}, \"resources\": {\"allow\": [\"*/*\"]},"
		"        \"annotations\": {\"require\": {\"readOnlyHint\": true}}},"
		"\"nodestroy\": {\"tools\": {\"allow\": [\"*/*\"]},"
		"        \"annotations\": {\"deny\": {\"destructiveHint\": true}}},"
		"\"closed\": {\"tools\": {\"allow\": [\"*/*\"]},"
		"        \"annotations\": {\"deny\": {\"openWorldHint\": true}}},"
		"\"retry\": {\"tools\": {\"allow\": [\"*/*\"]},"
		"        \"annotations\": {\"require\": {\"idempotentHint\": true}}},"
		"\"writers\": {\"tools\": {\"allow\": [\"*/*\"]},"
		"        \"annotations\": {\"require\": {\"readOnlyHint\": false}}}}}");

	/* readOnlyHint defaults to false: a tool without annotations is not read-only. */
	REFUSED("ro", NULL, POLICY_TOOL, "s", "t",
		"policy \"ro\": annotation readOnlyHint=true required");
	CU_ASSERT_EQUAL(ANN("ro", "{}"), -EACCES);
	CU_ASSERT_EQUAL(ANN("ro", "{\"readOnlyHint\": true}"), 0);
	CU_ASSERT_EQUAL(ANN("ro", "{\"readOnlyHint\": false}"), -EACCES);
	CU_ASSERT_EQUAL(ANN("ro", "{\"readOnlyHint\": \"yes\"}"), -EACCES); /* not a boolean */
	CU_ASSERT_EQUAL(ANN("ro", "{\"readOnlyHint\": 1}"), -EACCES);
	CU_ASSERT_EQUAL(ANN("ro", "[true]"), -EACCES);
	/* Annotation rules are for tools only. */
	CU_ASSERT_EQUAL(check(ps, "ro", NULL, POLICY_RESOURCE, "s", "mem://x", NULL, NULL), 0);

	/* destructiveHint defaults to true, and means nothing for a read-only tool. */
	REFUSED("nodestroy", NULL, POLICY_TOOL, "s", "t",
		"policy \"nodestroy\": annotation destructiveHint=true denied");
	CU_ASSERT_EQUAL(ANN("nodestroy", "{\"readOnlyHint\": false}"), -EACCES);
	CU_ASSERT_EQUAL(ANN("nodestroy", "{\"destructiveHint\": false}"), 0);
	CU_ASSERT_EQUAL(ANN("nodestroy", "{\"readOnlyHint\": true}"), 0);
	CU_ASSERT_EQUAL(ANN("nodestroy", "{\"readOnlyHint\": true, \"destructiveHint\": true}"), 0);
	CU_ASSERT_EQUAL(ANN("nodestroy", "{\"destructiveHint\": null}"), -EACCES);

	/* openWorldHint defaults to true. */
	CU_ASSERT_EQUAL(ANN("closed", NULL), -EACCES);
	CU_ASSERT_EQUAL(ANN("closed", "{\"openWorldHint\": false}"), 0);
	CU_ASSERT_EQUAL(ANN("closed", "{\"readOnlyHint\": true}"), -EACCES);

	/* idempotentHint defaults to false; a read-only tool is idempotent. */
	CU_ASSERT_EQUAL(ANN("retry", NULL), -EACCES);
	CU_ASSERT_EQUAL(ANN("retry", "{\"idempotentHint\": true}"), 0);
	CU_ASSERT_EQUAL(ANN("retry", "{\"readOnlyHint\": true}"), 0);

	/* Requiring false is a rule too. */
	CU_ASSERT_EQUAL(ANN("writers", NULL), 0);
	CU_ASSERT_EQUAL(ANN("writers", "{\"readOnlyHint\": true}"), -EACCES);
	policy_set_free(ps);
}

static void test_resources(void)
{
	struct policy_set *ps = set_of("{\"policies\": {"
		"\"data\": {\"resources\": {\"allow\": [\"fs/file:///data/*\", \"mem/demo://r?\"]},"
		"           \"prompts\": {\"allow\": [\"fs/sum*\"]}}}}");

#define RES(srv, uri) check(ps, "data", NULL, POLICY_RESOURCE, srv, uri, NULL, NULL)
	CU_ASSERT_EQUAL(RES("fs", "file:///data/x/y.txt"), 0);
	CU_ASSERT_EQUAL(RES("fs", "file:///etc/passwd"), -EACCES);
	CU_ASSERT_EQUAL(RES("mem", "demo://r1"), 0);
	CU_ASSERT_EQUAL(RES("mem", "demo://r12"), -EACCES);
	CU_ASSERT_EQUAL(RES("fs", "file:///data/..."), 0);
	CU_ASSERT_EQUAL(RES("fs", "file:///data/..x"), 0);
	/* A glob over a path must not be escaped with dot-dot segments, however spelt. */
	REFUSED("data", NULL, POLICY_RESOURCE, "fs", "file:///data/../etc/passwd",
		"resource URI has a dot-dot path segment");
	CU_ASSERT_EQUAL(RES("fs", "file:///data/%2e%2E/etc/passwd"), -EACCES);
	CU_ASSERT_EQUAL(RES("fs", "file:///data/.%2e/etc/passwd"), -EACCES);
	CU_ASSERT_EQUAL(RES("fs", "file:///data/x/.."), -EACCES);
	CU_ASSERT_EQUAL(RES("fs", "file:///data\\..\\etc"), -EACCES);
	CU_ASSERT_EQUAL(RES("fs", "file:///data/x/..?q"), -EACCES);
#undef RES
	CU_ASSERT_EQUAL(check(ps, "data", NULL, POLICY_PROMPT, "fs", "summarise", NULL, NULL), 0);
	CU_ASSERT_EQUAL(check(ps, "data", NULL, POLICY_TOOL, "fs", "summarise", NULL, NULL),
			-EACCES);
	policy_set_free(ps);
}

static void test_bad_entries(void)
{
	const char *why;
	struct policy_set *ps = set_of("{\"policies\": {\"all\": {\"tools\": {\"allow\": [\"*/*\"]}}}}");
	struct policy_entry e[3] = {
		{ POLICY_TOOL, NULL, "x", NULL },
		{ (enum policy_kind)7, "s", "x", NULL },
		{ POLICY_TOOL, "s", "x", NULL },
	};
	struct policy_view *v;

	CU_ASSERT_EQUAL(policy_check(ps, "all", NULL, &e[0], &why), -EACCES);
	CU_ASSERT_STRING_EQUAL(why, "not a valid catalogue entry");
	CU_ASSERT_EQUAL(policy_check(ps, "all", NULL, &e[1], &why), -EACCES);
	CU_ASSERT_EQUAL(policy_check(ps, "all", NULL, NULL, &why), -EACCES);
	CU_ASSERT_EQUAL_FATAL(policy_compile(ps, "all", NULL, e, 3, &v), 0);
	CU_ASSERT_FALSE(policy_view_allows(v, 0, NULL));
	CU_ASSERT_FALSE(policy_view_allows(v, 1, NULL));
	CU_ASSERT_TRUE(policy_view_allows(v, 2, &why));
	CU_ASSERT_PTR_NULL(why);
	CU_ASSERT_FALSE(policy_view_allows(v, 3, &why));  /* outside the view */
	CU_ASSERT_PTR_NOT_NULL(why);
	CU_ASSERT_FALSE(policy_view_allows(v, (size_t)-1, NULL));
	policy_view_free(v);
	CU_ASSERT_EQUAL(policy_compile(ps, "nope", NULL, e, 3, &v), -ENOENT);
	CU_ASSERT_PTR_NULL(v);
	policy_set_free(ps);
}

/* Compile views over a 10,000-entry catalogue and check each against a direct evaluation. */
#define NSERVERS 100
#define NTOOLS 100
#define NENTRIES (NSERVERS * NTOOLS)

static void test_compile_large(void)
{
	static const char *const anns[] = {
		NULL, "{\"readOnlyHint\": true}", "{\"destructiveHint\": false}",
		"{\"openWorldHint\": false, \"idempotentHint\": true}", "{}",
	};
	static char names[NENTRIES][2][32];
	struct policy_entry *entries = calloc(NENTRIES, sizeof(*entries));
	cJSON *ann[5];
	char *text;
	size_t cap = 1 << 16, len = 0;
	const int npol = 40;
	struct policy_set *ps;

	CU_ASSERT_PTR_NOT_NULL_FATAL(entries);
	for (int i = 0; i < 5; i++)
		ann[i] = anns[i] ? cJSON_Parse(anns[i]) : NULL;
	for (int s = 0; s < NSERVERS; s++) {
		for (int t = 0; t < NTOOLS; t++) {
			size_t i = (size_t)s * NTOOLS + (size_t)t;

			snprintf(names[i][0], sizeof(names[i][0]), "srv-%d", s);
			snprintf(names[i][1], sizeof(names[i][1]), t % 2 ? "get_%d" : "set.%d", t);
			entries[i] = (struct policy_entry){
				t % 7 == 0 ? POLICY_PROMPT : POLICY_TOOL, names[i][0], names[i][1],
				ann[t % 5]
			};
		}
	}
	/* Policies mixing server globs, name globs, denies and annotation rules. */
	text = malloc(cap);
	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	len += (size_t)snprintf(text + len, cap - len, "{\"policies\": {");
	for (int p = 0; p < npol; p++) {
		len += (size_t)snprintf(text + len, cap - len,
			"%s\"p%d\": {\"tools\": {\"allow\": [\"srv-%d*/*\", \"*/get_%d?\"],"
			" \"deny\": [\"srv-%d/set.*\"]}, \"prompts\": {\"allow\": [\"*/set.%d*\"]}%s}",
			p ? "," : "", p, p % 10, p, (p + 3) % NSERVERS, p % 10,
			p % 3 == 0 ? ", \"annotations\": {\"deny\": {\"destructiveHint\": true}}"
			: p % 3 == 1 ? ", \"annotations\": {\"require\": {\"readOnlyHint\": true}}"
			: "");
	}
	len += (size_t)snprintf(text + len, cap - len, "}}");
	CU_ASSERT_FATAL(len < cap);
	ps = set_of(text);
	free(text);

	size_t total_allowed = 0;
	for (int p = 0; p < npol; p++) {
		char pol[16], team[16];
		struct policy_view *v;

		snprintf(pol, sizeof(pol), "p%d", p);
		snprintf(team, sizeof(team), "p%d", (p * 7 + 1) % npol);
		CU_ASSERT_EQUAL_FATAL(policy_compile(ps, pol, team, entries, NENTRIES, &v), 0);
		size_t allowed = 0, walked = 0, mismatches = 0;
		for (size_t i = 0; i < NENTRIES; i++) {
			const char *w1, *w2;
			bool a = policy_view_allows(v, i, &w1);
			int rc = policy_check(ps, pol, team, &entries[i], &w2);

			if (a != (rc == 0) || (!a && (!w1 || !w2 || strcmp(w1, w2))))
				mismatches++;
			allowed += a;
		}
		CU_ASSERT_EQUAL(mismatches, 0);
		CU_ASSERT_EQUAL(allowed, policy_view_count(v));
		for (size_t i = policy_view_next(v, 0); i < NENTRIES; i = policy_view_next(v, i + 1)) {
			CU_ASSERT_TRUE(policy_view_allows(v, i, NULL));
			walked++;
		}
		CU_ASSERT_EQUAL(walked, allowed);
		total_allowed += allowed;
		policy_view_free(v);
	}
	/* The policies are neither all-allow nor all-deny. */
	CU_ASSERT_TRUE(total_allowed > 0);
	CU_ASSERT_TRUE(total_allowed < (size_t)npol * NENTRIES / 2);

	/* Spot checks of known answers: p1 requires read-only tools from srv-1*. */
	const char *why;
	struct policy_view *v;
	CU_ASSERT_EQUAL_FATAL(policy_compile(ps, "p1", NULL, entries, NENTRIES, &v), 0);
	CU_ASSERT_TRUE(policy_view_allows(v, 1 * NTOOLS + 1, NULL));   /* srv-1/get_1, read-only */
	CU_ASSERT_FALSE(policy_view_allows(v, 1 * NTOOLS + 3, &why));  /* srv-1/get_3, no hints */
	CU_ASSERT_STRING_EQUAL(why, "policy \"p1\": annotation readOnlyHint=true required");
	CU_ASSERT_FALSE(policy_view_allows(v, 2 * NTOOLS + 1, &why));  /* srv-2 */
	CU_ASSERT_STRING_EQUAL(why, "policy \"p1\": no allow rule for tools matches");
	CU_ASSERT_TRUE(policy_view_allows(v, 10 * NTOOLS + 11, NULL)); /* srv-10: "srv-1*" */
	CU_ASSERT_FALSE(policy_view_allows(v, 4 * NTOOLS + 2, &why));  /* srv-4/set.2 */
	CU_ASSERT_STRING_EQUAL(why, "policy \"p1\": deny tools srv-4/set.*");
	policy_view_free(v);

	/* The cache: many keys sharing few pairs cost one view per pair. */
	struct policy_cache *c;
	CU_ASSERT_EQUAL_FATAL(policy_cache_new(ps, &c), 0);
	policy_cache_set_catalogue(c, entries, NENTRIES);
	const struct policy_view *first = NULL, *cv;
	for (int k = 0; k < 5000; k++) {
		char pol[16], team[16];

		/* every (p0..p9) x (p20, p21, none) pair occurs */
		snprintf(pol, sizeof(pol), "p%d", k % 10);
		snprintf(team, sizeof(team), "p%d", 20 + (k / 10) % 2);
		CU_ASSERT_EQUAL_FATAL(policy_cache_get(c, pol, (k / 20) % 2 ? NULL : team, &cv), 0);
		if (k == 0)
			first = cv;
	}
	CU_ASSERT_EQUAL(policy_cache_views(c), 10 * 3);
	CU_ASSERT_EQUAL(policy_cache_get(c, "p0", "p20", &cv), 0);
	CU_ASSERT_PTR_EQUAL(cv, first);
	/* The pair found last answers again at once, and only for itself. */
	const struct policy_view *p20 = cv, *p21, *alone;
	CU_ASSERT_EQUAL(policy_cache_get(c, "p0", "p20", &cv), 0);
	CU_ASSERT_PTR_EQUAL(cv, p20);
	CU_ASSERT_EQUAL(policy_cache_get(c, "p0", "p21", &p21), 0);
	CU_ASSERT_EQUAL(policy_cache_get(c, "p0", NULL, &alone), 0);
	CU_ASSERT(p21 != p20 && alone != p20 && alone != p21);
	CU_ASSERT_EQUAL(policy_cache_get(c, "p1", NULL, &cv), 0);
	CU_ASSERT(cv != alone);
	CU_ASSERT_EQUAL(policy_cache_get(c, "p0", "p21", &cv), 0);
	CU_ASSERT_PTR_EQUAL(cv, p21);
	/* A key naming a missing policy gets a view that refuses everything, with the reason. */
	CU_ASSERT_EQUAL(policy_cache_get(c, "p0", "gone", &cv), 0);
	CU_ASSERT_EQUAL(policy_view_count(cv), 0);
	CU_ASSERT_FALSE(policy_view_allows(cv, 0, &why));
	CU_ASSERT_STRING_EQUAL(why, "policy \"gone\" is not defined");
	CU_ASSERT_EQUAL(policy_view_next(cv, 0), NENTRIES);
	CU_ASSERT_EQUAL(policy_cache_get(c, NULL, "", &cv), -EINVAL);
	/* A new catalogue drops every view, the one found last too; they are rebuilt against
	 * it on demand. */
	CU_ASSERT_EQUAL(policy_cache_get(c, "p0", NULL, &cv), 0);
	policy_cache_set_catalogue(c, entries, 10);
	CU_ASSERT_EQUAL(policy_cache_views(c), 0);
	CU_ASSERT_EQUAL(policy_cache_get(c, "p0", NULL, &cv), 0);
	CU_ASSERT_EQUAL(policy_cache_views(c), 1);
	CU_ASSERT_TRUE(policy_view_allows(cv, 1, NULL));      /* srv-0/get_1, read-only */
	CU_ASSERT_FALSE(policy_view_allows(cv, 3, NULL));     /* srv-0/get_3, destructive */
	CU_ASSERT_FALSE(policy_view_allows(cv, 11, NULL));    /* outside the new catalogue */
	policy_cache_free(c);

	policy_set_free(ps);
	for (int i = 0; i < 5; i++)
		cJSON_Delete(ann[i]);
	free(entries);
}

static void expect_errors(const char *json, const char *const *needles)
{
	struct config_errors e = { 0 };
	struct policy_set *ps = NULL;
	cJSON *root = cJSON_Parse(json);

	CU_ASSERT_PTR_NOT_NULL_FATAL(root);
	CU_ASSERT_EQUAL(policy_set_parse(root, &ps, &e), -EINVAL);
	CU_ASSERT_PTR_NULL(ps);
	cu_assert_errors(&e, needles, __LINE__, __FILE__);
	cJSON_Delete(root);
}

static void test_config_errors(void)
{
	expect_errors("{\"policies\": []}",
		      (const char *[]){ "policies: must be an object", NULL });
	expect_errors("{\"policies\": {\"ro\": {"
		"\"tools\": {\"allow\": [\"fs/read\", \"*\", 3, \"/x\", \"fs/\", \"GitHub/x\"],"
		"            \"deny\": \"fs/x\", \"alow\": []},"
		"\"tols\": {},"
		"\"prompts\": [],"
		"\"annotations\": {\"require\": {\"readOnly\": true, \"destructiveHint\": \"no\"},"
		"                  \"forbid\": {}}},"
		"\"bad name!\": {},"
		"\"ok\": {\"annotations\": {\"require\": {\"readOnlyHint\": true},"
		"                          \"deny\": {\"readOnlyHint\": true}}}}}",
		(const char *[]){
			"policies.ro.tools.allow[1]: \"*\": must be \"<server>/<name>\"",
			"policies.ro.tools.allow[2]: must be a string",
			"policies.ro.tools.allow[3]: \"/x\": must be",
			"policies.ro.tools.allow[4]: \"fs/\": must be",
			"policies.ro.tools.allow[5]: \"GitHub/x\": the server part can never match",
			"policies.ro.tools.deny: must be an array",
			"policies.ro.tools.alow: unknown field",
			"policies.ro.tols: unknown field",
			"policies.ro.prompts: must be an object",
			"policies.ro.annotations.require.readOnly: unknown annotation",
			"policies.ro.annotations.require.destructiveHint: must be true or false",
			"policies.ro.annotations.forbid: unknown field",
			"policies.bad name!: policy names are",
			"policies.ok.annotations.deny.readOnlyHint: contradicts require.readOnlyHint",
			NULL });
	expect_errors("{\"policies\": {\"a\": {}, \"a\": {}}}",
		      (const char *[]){ "policies.a: defined twice", NULL });
	expect_errors("{\"policies\": {\"a\": 5}}",
		      (const char *[]){ "policies.a: must be an object", NULL });

	/* No "policies" at all: an empty set, which allows nothing. */
	struct policy_set *ps = set_of("{}");
	CU_ASSERT_FALSE(policy_set_has(ps, "x"));
	CU_ASSERT_EQUAL(TOOL(ps, "x", "s", "t"), -ENOENT);
	policy_set_free(ps);
}

/* log_arguments: values only where a policy (the key's or its team's) opts in, with both
 * policies' redact names replaced at any depth, whatever their case. */
static void test_logged_values(void)
{
	struct policy_set *ps = set_of(
		"{\"policies\": {"
		"  \"quiet\": {\"tools\": {\"allow\": [\"*/*\"]}},"
		"  \"loud\": {\"tools\": {\"allow\": [\"*/*\"]}, \"log_arguments\": true,"
		"            \"redact\": [\"password\"]},"
		"  \"team\": {\"tools\": {\"allow\": [\"*/*\"]}, \"redact\": [\"Token\"]}}}");
	cJSON *v = cJSON_Parse("{\"user\": \"ann\", \"PassWord\": \"s3cret\", \"nested\": "
			       "[{\"token\": \"t\", \"x\": 1}], \"n\": 2}");
	bool in;

	CU_ASSERT_PTR_NULL(policy_logged_copy(ps, "quiet", "team", v, &in));
	CU_ASSERT(!in);
	cJSON *c = policy_logged_copy(ps, "loud", NULL, v, &in);
	char *t = cJSON_PrintUnformatted(c);
	CU_ASSERT(in);
	CU_ASSERT_STRING_EQUAL(t, "{\"user\":\"ann\",\"PassWord\":\"[redacted]\","
			       "\"nested\":[{\"token\":\"t\",\"x\":1}],\"n\":2}");
	cJSON_free(t);
	cJSON_Delete(c);
	c = policy_logged_copy(ps, "loud", "team", v, &in);
	t = cJSON_PrintUnformatted(c);
	CU_ASSERT_STRING_EQUAL(t, "{\"user\":\"ann\",\"PassWord\":\"[redacted]\","
			       "\"nested\":[{\"token\":\"[redacted]\",\"x\":1}],\"n\":2}");
	cJSON_free(t);
	cJSON_Delete(c);
	cJSON_Delete(v);
	policy_set_free(ps);

	struct config_errors e = { 0 };
	cJSON *root = cJSON_Parse("{\"policies\": {\"p\": {\"log_arguments\": 1, "
				  "\"redact\": [\"\"]}}}");
	CU_ASSERT_EQUAL(policy_set_parse(root, &ps, &e), -EINVAL);
	CU_ASSERT_EQUAL(e.count, 2);
	cJSON_Delete(root);
}

CU_MAIN("policy", NULL, NULL,
	{ "glob patterns", test_globs },
	{ "glob worst case and length limit", test_glob_worst_case },
	{ "deny wins, default deny, kinds apart", test_precedence },
	{ "key policy and team policy intersect", test_team_intersection },
	{ "annotation rules with MCP defaults", test_annotations },
	{ "resources and dot-dot URIs", test_resources },
	{ "bad catalogue entries are refused", test_bad_entries },
	{ "compile 10,000 entries, many policies, cache", test_compile_large },
	{ "config errors name field paths", test_config_errors },
	{ "log_arguments and redact", test_logged_values })
