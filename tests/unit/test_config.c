/* Config validation: every error names its field path; defaults; secrets from the environment. */
#include <CUnit/Basic.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/config.h"
#include "config_errors_util.h"
#include "cunit_main.h"

/* text is a valid config: parsed (the test frees it) */
static struct config *parse_ok(const char *text)
{
	struct config *c = NULL;
	struct config_errors e = { 0 };

	CU_ASSERT_EQUAL_FATAL(config_parse(text, "t", &c, &e), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	return c;
}

/* text is refused as a whole, its errors in *e */
static void parse_bad(const char *text, struct config_errors *e)
{
	struct config *c = NULL;

	memset(e, 0, sizeof(*e));
	CU_ASSERT_EQUAL(config_parse(text, "t", &c, e), -EINVAL);
	CU_ASSERT_PTR_NULL(c);
}

static void test_defaults(void)
{
	struct config *c = parse_ok("{}");

	CU_ASSERT_STRING_EQUAL(c->listen_host, "127.0.0.1");
	CU_ASSERT_EQUAL(c->listen_port, 8080);
	CU_ASSERT_STRING_EQUAL(c->mcp_path, "/mcp");
	CU_ASSERT_TRUE(c->auth_required);
	CU_ASSERT_EQUAL(c->prefix, PREFIX_AUTO);
	CU_ASSERT_EQUAL(c->nupstreams, 0);
	CU_ASSERT_EQUAL(c->max_connections, 4096);
	CU_ASSERT_EQUAL(c->max_connections_per_peer, 256);
	config_free(c);
}

/* The keys and teams sections leave the parse tree once a gate has them; governance moved to
 * another config says so (a shrunk config is never parsed for keys again: test_gate). */
static void test_shrink(void)
{
	struct config *c = parse_ok("{\"teams\":[{\"name\":\"ml\",\"policy\":\"ro\"}],"
				    "\"keys\":[{\"id\":\"k0\",\"policy\":\"ro\",\"hash\":"
				    "\"sha256:0000000000000000000000000000000000000000000000000000"
				    "000000000000\"}],\"policies\":{\"ro\":{}}}");
	struct config *d = parse_ok("{}");

	CU_ASSERT_FALSE(c->shrunk);
	config_shrink(c);
	CU_ASSERT_TRUE(c->shrunk);
	CU_ASSERT_PTR_NULL(cJSON_GetObjectItemCaseSensitive(c->raw, "keys"));
	CU_ASSERT_PTR_NULL(cJSON_GetObjectItemCaseSensitive(c->raw, "teams"));
	CU_ASSERT_PTR_NOT_NULL(cJSON_GetObjectItemCaseSensitive(c->raw, "policies"));
	config_shrink(c);       /* twice: nothing more to do */
	config_shrink(NULL);
	CU_ASSERT_FALSE(d->shrunk);
	config_take_governance(d, c);
	CU_ASSERT_TRUE(d->shrunk);
	CU_ASSERT_PTR_NOT_NULL(cJSON_GetObjectItemCaseSensitive(d->raw, "policies"));
	CU_ASSERT_PTR_NULL(cJSON_GetObjectItemCaseSensitive(c->raw, "policies"));
	config_free(c);
	config_free(d);
}

static void test_connection_caps(void)
{
	struct config *c = parse_ok("{\"limits\": {\"max_connections\": 100,"
				    " \"max_connections_per_peer\": 10}}");
	struct config_errors e;

	CU_ASSERT_EQUAL(c->max_connections, 100);
	CU_ASSERT_EQUAL(c->max_connections_per_peer, 10);
	config_free(c);
	parse_bad("{\"limits\": {\"max_connections_per_peer\": 0}}", &e);
	CU_ASSERT_ERRORS(&e, "limits.max_connections_per_peer: must be between");
}

static void test_full(void)
{
	struct config *c;
	const char *text =
		"{\"listen\": \"[::1]:0\", \"prefix\": \"never\", \"auth\": {\"required\": false},"
		" \"timeouts\": {\"request_ms\": 1500},"
		" \"upstreams\": ["
		"  {\"name\": \"mem\", \"transport\": \"stdio\", \"command\": [\"node\", \"x.js\"],"
		"   \"env\": {\"A\": \"1\", \"TOKEN\": {\"env\": \"WARDEN_TEST_SECRET\"}}, \"inherit_env\": []},"
		"  {\"name\": \"remote-1\", \"transport\": \"http\", \"url\": \"http://127.0.0.1:9/mcp\","
		"   \"headers\": {\"Authorization\": {\"env\": \"WARDEN_TEST_SECRET\"}}, \"request_timeout_ms\": 99},"
		"  {\"name\": \"legacy\", \"transport\": \"sse\", \"url\": \"http://127.0.0.1:9/sse\"}]}";

	setenv("WARDEN_TEST_SECRET", "s3cret", 1);
	c = parse_ok(text);
	CU_ASSERT_STRING_EQUAL(c->listen_host, "::1");
	CU_ASSERT_EQUAL(c->listen_port, 0);
	CU_ASSERT_FALSE(c->auth_required);
	CU_ASSERT_EQUAL(c->prefix, PREFIX_NEVER);
	CU_ASSERT_EQUAL_FATAL(c->nupstreams, 3);
	CU_ASSERT_EQUAL(config_upstream(c, "legacy")->kind, UPSTREAM_SSE);
	CU_ASSERT_STRING_EQUAL(config_upstream(c, "legacy")->url, "http://127.0.0.1:9/sse");
	const struct upstream_config *m = config_upstream(c, "mem");
	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	CU_ASSERT_EQUAL(m->kind, UPSTREAM_STDIO);
	CU_ASSERT_STRING_EQUAL(m->argv[1], "x.js");
	CU_ASSERT_PTR_NULL(m->argv[2]);
	/* Only what the config names reaches the child: no inherited PATH here. */
	CU_ASSERT_STRING_EQUAL(m->envp[0], "A=1");
	CU_ASSERT_STRING_EQUAL(m->envp[1], "TOKEN=s3cret");
	CU_ASSERT_PTR_NULL(m->envp[2]);
	CU_ASSERT_EQUAL(m->request_timeout_ms, 1500);
	const struct upstream_config *r = config_upstream(c, "remote-1");
	CU_ASSERT_EQUAL(r->kind, UPSTREAM_HTTP);
	CU_ASSERT_EQUAL(r->request_timeout_ms, 99);
	CU_ASSERT_EQUAL(r->nheaders, 1);
	CU_ASSERT_STRING_EQUAL(r->headers[0].value, "s3cret");
	config_free(c);
}

static void test_errors_name_paths(void)
{
	struct config_errors e;
	const char *text =
		"{\"listen\": \"localhost\", \"prefx\": 1, \"prefix\": \"sometimes\","
		" \"limits\": {\"max_body_bytes\": 5},"
		" \"upstreams\": ["
		"  {\"name\": \"Bad_Name\", \"transport\": \"stdio\", \"command\": []},"
		"  {\"name\": \"a\", \"transport\": \"http\", \"url\": \"ftp://x\", \"headers\": {\"X\": {\"env\": \"WARDEN_UNSET_VAR\"}}},"
		"  {\"name\": \"a\", \"transport\": \"carrier-pigeon\"}]}";

	unsetenv("WARDEN_UNSET_VAR");
	parse_bad(text, &e);
	CU_ASSERT_ERRORS(&e,
			 "listen: expected \"host:port\"",
			 "prefx: unknown field",
			 "prefix: must be",
			 "limits.max_body_bytes: must be between",
			 "upstreams[0].name: must match",
			 "upstreams[0].command: stdio upstreams need",
			 "upstreams[1].url: must be an http",
			 "upstreams[1].headers.X: environment variable WARDEN_UNSET_VAR",
			 "upstreams[2].transport: must be \"stdio\", \"http\" or \"sse\"");
}

static void test_bad_json(void)
{
	struct config *c = NULL;
	struct config_errors e;

	parse_bad("{\n \"listen\": ,\n}", &e);
	CU_ASSERT_ERRORS(&e, "not valid JSON (line 2");
	parse_bad("[1]", &e);
	CU_ASSERT_ERRORS(&e, "must be a JSON object");
	memset(&e, 0, sizeof(e));
	CU_ASSERT_NOT_EQUAL(config_load("/nonexistent/mcpwarden.json", &c, &e), 0);
	CU_ASSERT_ERRORS(&e, "cannot open");
}

static void test_duplicate_upstream(void)
{
	struct config_errors e;

	parse_bad("{\"upstreams\": ["
		  "{\"name\": \"x\", \"transport\": \"http\", \"url\": \"http://a/\"},"
		  "{\"name\": \"x\", \"transport\": \"http\", \"url\": \"http://b/\"}]}", &e);
	CU_ASSERT_ERRORS(&e, "upstreams[1].name: duplicate upstream name \"x\"");
}

/* A section read from its field table: defaults kept for absent fields, every problem named
 * by its path, nothing outside the table accepted. */
struct sample {
	bool on;
	const char *name;
	int n;
	unsigned u;
	int64_t big, ms;
};

static const struct cfg_field sample_fields[] = {
	CFG_FIELD(struct sample, on, CFG_BOOL, 0, 0, 0),
	CFG_FIELD(struct sample, name, CFG_STRING, 0, 0, CFG_REQUIRED | CFG_NONEMPTY),
	CFG_FIELD(struct sample, n, CFG_INT, -5, 5, 0),
	CFG_FIELD(struct sample, u, CFG_UINT, 1, UINT32_MAX, 0),
	CFG_FIELD(struct sample, big, CFG_I64, 0, 1LL << 50, 0),
	CFG_FIELD(struct sample, ms, CFG_DURATION_MS, 10, 60000, 0),
	CFG_KNOWN_FIELD("_comment"),
	CFG_END,
};

/* The section text read at "sec" into out by fields; the document is gone when it returns
 * (what out keeps must be its own or the test's). */
static int read_fields(const char *text, const struct cfg_field *fields, void *out,
		       struct config_errors *e)
{
	cJSON *j = cJSON_Parse(text);
	int rc;

	CU_ASSERT_PTR_NOT_NULL_FATAL(j);
	memset(e, 0, sizeof(*e));
	rc = cfg_fields(j, "sec", fields, out, e);
	cJSON_Delete(j);
	return rc;
}

static int read_sample(const char *text, struct sample *s, struct config_errors *e)
{
	*s = (struct sample){ .n = 3, .u = 7, .big = 9, .ms = 100 };
	return read_fields(text, sample_fields, s, e);
}

static void test_fields(void)
{
	struct config_errors e;
	struct sample s;

	CU_ASSERT_EQUAL(read_sample("{\"name\": \"a\", \"_comment\": 1}", &s, &e), 0);
	CU_ASSERT_EQUAL(e.count, 0);
	CU_ASSERT(!s.on && s.n == 3 && s.u == 7 && s.big == 9 && s.ms == 100);
	CU_ASSERT_EQUAL(read_sample("{\"name\": \"a\", \"on\": true, \"n\": -5, \"u\": 4294967295,"
				    " \"big\": 1125899906842624, \"ms\": \"5s\"}", &s, &e), 0);
	CU_ASSERT(s.on && s.n == -5 && s.u == UINT32_MAX && s.big == 1LL << 50 && s.ms == 5000);

	CU_ASSERT_EQUAL(read_sample("{\"on\": 1, \"n\": 6, \"u\": 4294967296, \"ms\": \"1h\","
				    " \"nmae\": \"a\"}", &s, &e), -EINVAL);
	CU_ASSERT_ERRORS(&e, "sec.nmae: unknown field", "sec.name: required field is missing",
			 "sec.on:", "sec.n: must be between -5 and 5", "sec.u: must be between 1 and",
			 "sec.ms:");
	CU_ASSERT_EQUAL(e.count, 6);
	CU_ASSERT_EQUAL(read_sample("{\"name\": \"\"}", &s, &e), -EINVAL);
	CU_ASSERT_ERRORS(&e, "sec.name: must not be empty");
	CU_ASSERT_EQUAL(read_sample("[]", &s, &e), -EINVAL);
	CU_ASSERT_ERRORS(&e, "sec: must be an object");
}

/* Fields whose strings the struct owns: copies (CFG_COPY) and secrets (CFG_SECRET). */
struct owned {
	char *label, *token, *other;
	int n;
};

static const struct cfg_field owned_fields[] = {
	CFG_FIELD(struct owned, label, CFG_COPY, 0, 8, CFG_NONEMPTY),
	CFG_FIELD(struct owned, token, CFG_SECRET, 0, 0, 0),
	CFG_FIELD(struct owned, other, CFG_COPY, 0, 0, 0),
	CFG_FIELD(struct owned, n, CFG_INT, 0, 9, 0),
	CFG_END,
};

/* A copied string outlives the document and replaces (frees) the default the caller copied in;
 * its bounds are checked; cfg_fields_free frees and clears every owned string. ASan (the test
 * build) reports a leak, a double free or a read of the freed document. */
static void test_fields_copy(void)
{
	struct config_errors e;
	struct owned o = { .label = strdup("default") };

	CU_ASSERT_PTR_NOT_NULL_FATAL(o.label);
	CU_ASSERT_EQUAL(read_fields("{}", owned_fields, &o, &e), 0);
	CU_ASSERT_STRING_EQUAL(o.label, "default");     /* absent: the default stays */
	CU_ASSERT_PTR_NULL(o.other);
	CU_ASSERT_EQUAL(read_fields("{\"label\": \"abc\", \"other\": \"x y\"}", owned_fields, &o,
				    &e), 0);
	CU_ASSERT_STRING_EQUAL(o.label, "abc");
	CU_ASSERT_STRING_EQUAL(o.other, "x y");
	/* read again over values already there: replaced, the old copies freed */
	CU_ASSERT_EQUAL(read_fields("{\"other\": \"z\"}", owned_fields, &o, &e), 0);
	CU_ASSERT_STRING_EQUAL(o.other, "z");
	CU_ASSERT_STRING_EQUAL(o.label, "abc");

	CU_ASSERT_EQUAL(read_fields("{\"label\": \"123456789\"}", owned_fields, &o, &e), -EINVAL);
	CU_ASSERT_ERRORS(&e, "sec.label: must be 1-8 characters");
	CU_ASSERT_EQUAL(read_fields("{\"label\": \"\"}", owned_fields, &o, &e), -EINVAL);
	CU_ASSERT_ERRORS(&e, "sec.label: must be 1-8 characters");
	CU_ASSERT_STRING_EQUAL(o.label, "abc");         /* a refused value is not stored */
	CU_ASSERT_EQUAL(read_fields("{\"other\": 3}", owned_fields, &o, &e), -EINVAL);
	CU_ASSERT_ERRORS(&e, "sec.other:");
	CU_ASSERT_STRING_EQUAL(o.other, "z");

	cfg_fields_free(owned_fields, &o);
	CU_ASSERT_PTR_NULL(o.label);
	CU_ASSERT_PTR_NULL(o.token);
	CU_ASSERT_PTR_NULL(o.other);
	cfg_fields_free(owned_fields, &o);              /* cleared: a second free is harmless */
}

/* A secret is a string or {"env": "NAME"} read from the environment when the section is read;
 * an unset variable or another shape is an error at its field. */
static void test_fields_secret(void)
{
	struct config_errors e;
	struct owned o = { 0 };

	CU_ASSERT_EQUAL(read_fields("{\"token\": \"literal-secret\"}", owned_fields, &o, &e), 0);
	CU_ASSERT_STRING_EQUAL(o.token, "literal-secret");
	CU_ASSERT_EQUAL_FATAL(setenv("MCPWARDEN_TEST_CFG_TOKEN", "from-the-env", 1), 0);
	CU_ASSERT_EQUAL(read_fields("{\"token\": {\"env\": \"MCPWARDEN_TEST_CFG_TOKEN\"}}",
				    owned_fields, &o, &e), 0);
	CU_ASSERT_STRING_EQUAL(o.token, "from-the-env"); /* the literal one freed, replaced */
	CU_ASSERT_EQUAL(unsetenv("MCPWARDEN_TEST_CFG_TOKEN"), 0);
	CU_ASSERT_STRING_EQUAL(o.token, "from-the-env"); /* a copy, not the environment's */
	CU_ASSERT_EQUAL(read_fields("{\"token\": {\"env\": \"MCPWARDEN_TEST_CFG_TOKEN\"}}",
				    owned_fields, &o, &e), -EINVAL);
	CU_ASSERT_ERRORS(&e, "sec.token: environment variable MCPWARDEN_TEST_CFG_TOKEN is not set");
	CU_ASSERT_EQUAL(read_fields("{\"token\": {\"file\": \"/etc/hostname\"}}", owned_fields, &o,
				    &e), -EINVAL);
	CU_ASSERT_ERRORS(&e, "sec.token: must be a string or {\"env\": \"NAME\"}");
	CU_ASSERT_EQUAL(read_fields("{\"token\": {\"env\": \"X\", \"other\": 1}}", owned_fields,
				    &o, &e), -EINVAL);
	CU_ASSERT_ERRORS(&e, "sec.token: must be a string or {\"env\": \"NAME\"}");
	CU_ASSERT_STRING_EQUAL(o.token, "from-the-env");
	cfg_fields_free(owned_fields, &o);
	CU_ASSERT_PTR_NULL(o.token);
}

/* A section refused half-way still owns what it read before and after the bad field: the
 * destructor frees exactly those (no leak, no free of a member never set). */
static void test_fields_free_half_filled(void)
{
	struct config_errors e;
	struct owned o = { 0 };

	CU_ASSERT_EQUAL(read_fields("{\"label\": \"ok\", \"token\": \"t\", \"n\": 10}",
				    owned_fields, &o, &e), -EINVAL);
	CU_ASSERT_ERRORS(&e, "sec.n: must be between 0 and 9");
	CU_ASSERT_STRING_EQUAL(o.label, "ok");
	CU_ASSERT_STRING_EQUAL(o.token, "t");
	CU_ASSERT_PTR_NULL(o.other);
	cfg_fields_free(owned_fields, &o);
	CU_ASSERT_PTR_NULL(o.label);
	CU_ASSERT_PTR_NULL(o.token);

	struct owned none = { 0 };

	cfg_fields_free(owned_fields, &none);           /* nothing read: nothing freed */
	CU_ASSERT_PTR_NULL(none.label);
}

CU_MAIN("config", NULL, NULL,
	{ "defaults", test_defaults },
	{ "full config", test_full },
	{ "connection caps", test_connection_caps },
	{ "keys and teams dropped once a gate has them", test_shrink },
	{ "errors name field paths", test_errors_name_paths },
	{ "bad JSON and missing file", test_bad_json },
	{ "duplicate upstream names", test_duplicate_upstream },
	{ "a section read from its field table", test_fields },
	{ "field tables: copied strings, replaced defaults, their bounds", test_fields_copy },
	{ "field tables: secrets from the document or the environment", test_fields_secret },
	{ "field tables: a half-filled struct freed", test_fields_free_half_filled })
