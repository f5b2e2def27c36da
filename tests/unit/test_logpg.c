/* test_logpg: the "logs.postgres" options (observe/logpg.h): defaults, every field, and the
 * errors that name the field. The shipping itself runs against a real PostgreSQL in
 * tests/integration/fleet-logs.test.mjs. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <CUnit/Basic.h>

#include "observe/logpg.h"
#include "config_errors_util.h"
#include "cunit_main.h"

static int parse(const char *json, struct logpg_options *o, struct config_errors *e)
{
	cJSON *root = cJSON_Parse(json);
	int rc;

	CU_ASSERT_PTR_NOT_NULL_FATAL(root);
	memset(e, 0, sizeof(*e));
	rc = logpg_options_parse(root, o, e);
	cJSON_Delete(root);
	return rc;
}

static void test_absent_and_defaults(void)
{
	struct logpg_options o;
	struct config_errors e;

	CU_ASSERT_EQUAL(parse("{}", &o, &e), 0);
	CU_ASSERT_FALSE(o.enabled);
	CU_ASSERT_EQUAL(parse("{\"logs\": {\"max_age\": \"1d\"}}", &o, &e), 0);
	CU_ASSERT_FALSE(o.enabled);

	setenv("MCPWARDEN_SIDECAR", "pod-7", 1);
	CU_ASSERT_EQUAL_FATAL(parse("{\"logs\": {\"postgres\": {\"conninfo\": \"host=db\"}}}", &o,
				    &e), 0);
	CU_ASSERT_TRUE(o.enabled);
	CU_ASSERT_STRING_EQUAL(o.conninfo, "host=db");
	CU_ASSERT_STRING_EQUAL(o.sidecar, "pod-7");
	CU_ASSERT_STRING_EQUAL(o.prefix, "mcpwarden_");
	CU_ASSERT_PTR_NULL(o.password);
	CU_ASSERT_EQUAL(o.max_age_s, LOGPG_MAX_AGE_S_DEFAULT);
	CU_ASSERT_EQUAL(o.batch, LOGPG_BATCH_DEFAULT);
	CU_ASSERT_EQUAL(o.poll_ms, LOGPG_POLL_MS_DEFAULT);
	CU_ASSERT_EQUAL(o.ahead, LOGPG_AHEAD_DEFAULT);
	logpg_options_clear(&o);
	unsetenv("MCPWARDEN_SIDECAR");
}

static void test_every_field(void)
{
	struct logpg_options o;
	struct config_errors e;

	setenv("TEST_LOGPG_PW", "s3cret", 1);
	CU_ASSERT_EQUAL_FATAL(parse("{\"logs\": {\"postgres\": {\"conninfo\": \"postgresql://w@db/l\","
				    " \"password\": {\"env\": \"TEST_LOGPG_PW\"}, \"sidecar\": \"a-1\","
				    " \"table_prefix\": \"fleet_\", \"max_age_days\": 7, \"batch\": 250,"
				    " \"poll\": \"1s\", \"partitions_ahead\": 5}}}", &o, &e), 0);
	CU_ASSERT_STRING_EQUAL(o.password, "s3cret");
	CU_ASSERT_STRING_EQUAL(o.sidecar, "a-1");
	CU_ASSERT_STRING_EQUAL(o.prefix, "fleet_");
	CU_ASSERT_EQUAL(o.max_age_s, 7 * 86400);
	CU_ASSERT_EQUAL(o.batch, 250);
	CU_ASSERT_EQUAL(o.poll_ms, 1000);
	CU_ASSERT_EQUAL(o.ahead, 5);
	logpg_options_clear(&o);
	unsetenv("TEST_LOGPG_PW");

	/* password_file: kept as a path, read at connect (not here: no disk at parse). */
	CU_ASSERT_EQUAL_FATAL(parse("{\"logs\": {\"postgres\": {\"conninfo\": \"host=db\","
				    " \"password_file\": \"/nonexistent/pw\"}}}", &o, &e), 0);
	CU_ASSERT_STRING_EQUAL(o.password_file, "/nonexistent/pw");
	char err[256];
	CU_ASSERT_PTR_NULL(logpg_connect(&o, 0, err, sizeof(err)));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "cannot read password_file /nonexistent/pw"));
	logpg_options_clear(&o);

	CU_ASSERT_EQUAL(parse("{\"logs\": {\"postgres\": {\"enabled\": false, \"conninfo\": \"x\"}}}",
			      &o, &e), 0);
	CU_ASSERT_FALSE(o.enabled);
	logpg_options_clear(&o);
}

static void test_errors_name_the_field(void)
{
	struct logpg_options o;
	struct config_errors e;

	CU_ASSERT_EQUAL(parse("{\"logs\": {\"postgres\": {\"sidecar\": \"\", \"table_prefix\":"
			      " \"Bad-Prefix; DROP\", \"batch\": 5000, \"max_age_days\": 0,"
			      " \"poll\": \"1ms\", \"typo\": 1}}}", &o, &e), -EINVAL);
	CU_ASSERT_ERRORS(&e, "logs.postgres.conninfo", "logs.postgres.sidecar",
			 "logs.postgres.table_prefix", "logs.postgres.batch",
			 "logs.postgres.max_age_days", "logs.postgres.poll", "logs.postgres.typo");
	CU_ASSERT_PTR_NULL(o.conninfo);

	CU_ASSERT_EQUAL(parse("{\"logs\": {\"postgres\": {\"conninfo\": \"x\", \"password\": \"a\","
			      " \"password_file\": \"/f\"}}}", &o, &e), -EINVAL);
	CU_ASSERT_ERRORS(&e, "logs.postgres.password_file");
	CU_ASSERT_EQUAL(parse("{\"logs\": {\"postgres\": \"host=db\"}}", &o, &e), -EINVAL);
	CU_ASSERT_ERRORS(&e, "logs.postgres");
	CU_ASSERT_EQUAL(parse("{\"logs\": {\"postgres\": {\"conninfo\": \"x\", \"table_prefix\":"
			      " \"9x\"}}}", &o, &e), -EINVAL);
	CU_ASSERT_ERRORS(&e, "logs.postgres.table_prefix");
}

CU_MAIN("logpg", NULL, NULL,
	{ "absent: off; defaults, the sidecar from the environment", test_absent_and_defaults },
	{ "every field; password_file read at connect", test_every_field },
	{ "errors name the field", test_errors_name_the_field })
