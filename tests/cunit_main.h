/* cunit_main: the one way a test binary runs its CUnit suite — verbose, and exit status 1
 * when any test, assertion or suite set-up failed. */
#ifndef WARDEN_CUNIT_MAIN_H
#define WARDEN_CUNIT_MAIN_H

#include <CUnit/Basic.h>

struct cu_case {
	const char *name;
	CU_TestFunc fn;
};

static inline int cu_run_suite(const char *suite, CU_InitializeFunc init, CU_CleanupFunc clean,
			       const struct cu_case *cases)
{
	unsigned failed;
	CU_pSuite s;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	s = CU_add_suite(suite, init, clean);
	for (; s && cases->name; cases++)
		CU_add_test(s, cases->name, cases->fn);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed() +
		 CU_get_number_of_suites_failed();
	CU_cleanup_registry();
	return failed || !s ? 1 : 0;
}

#endif
