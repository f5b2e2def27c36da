/* enforcement_util: the enforcement section of a config, parsed from text, for the suites
 * that test its parser (test_enforcer: the rules; test_kube: the kubernetes part). */
#ifndef WARDEN_ENFORCEMENT_UTIL_H
#define WARDEN_ENFORCEMENT_UTIL_H

#include <stdio.h>
#include <CUnit/Basic.h>
#include <cjson/cJSON.h>

#include "base/config.h"
#include "enforce/enforcer.h"

/* enforcer_config_parse() of text as the section "enforcement": its result. */
static inline int parse_enforcement(const char *text, struct enforcer_config *c,
				    struct config_errors *e)
{
	cJSON *j = cJSON_Parse(text);
	int rc;

	CU_ASSERT_PTR_NOT_NULL_FATAL(j);
	rc = enforcer_config_parse(j, "enforcement", c, e);
	cJSON_Delete(j);
	return rc;
}

/* parse_enforcement() of text that must parse: a failure prints the errors and ends the test
 * (an assertion at the caller's line). */
#define ENFORCEMENT_OK(text, c) enforcement_ok((text), (c), __LINE__, __FILE__)
static inline void enforcement_ok(const char *text, struct enforcer_config *c, unsigned line,
				  const char *file)
{
	struct config_errors e = { 0 };
	int rc = parse_enforcement(text, c, &e);

	for (int i = 0; rc != 0 && i < e.count; i++)
		fprintf(stderr, "  %s\n", e.msg[i]);
	CU_assertImplementation(rc == 0 ? CU_TRUE : CU_FALSE, line, "enforcement section parsed",
				file, "", CU_TRUE);
}

#endif
