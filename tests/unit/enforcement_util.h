/* enforcement_util: the enforcement section of a config, parsed from text, for the suites
 * that test its parser (test_enforcer: the rules; test_kube: the kubernetes part). */
#ifndef WARDEN_ENFORCEMENT_UTIL_H
#define WARDEN_ENFORCEMENT_UTIL_H

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

#endif
