/* cunit_main: the one way a test binary runs its CUnit suite — verbose, and exit status 1
 * when any test, assertion or suite set-up failed. */
#ifndef WARDEN_CUNIT_MAIN_H
#define WARDEN_CUNIT_MAIN_H

#include <CUnit/Basic.h>

#include "base/alloc.h"
#include "base/log.h"

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

/* Set-ups several suites share (CU_MAIN's init): cu_quiet where the code under test warns by
 * design (only errors logged, the output kept readable), cu_alloc where it needs the
 * out-of-memory policy in force (alloc_init, base/alloc.h). */
static inline int cu_quiet(void)
{
	log_set_level(LOG_ERROR);
	return 0;
}

static inline int cu_alloc(void)
{
	alloc_init();
	return 0;
}

/* The whole main() of a test binary: its suite's name, set-up and clean-up (or NULL) and its
 * cases, each `{ "what it shows", test_fn }`, in the order they run. */
#define CU_MAIN(suite, init, clean, ...)                                              \
	int main(void)                                                                \
	{                                                                             \
		static const struct cu_case cu_cases_[] = { __VA_ARGS__, { NULL, NULL } }; \
		return cu_run_suite(suite, init, clean, cu_cases_);                   \
	}

/* One row of a table-driven test: a failure names the row (`what`), not the loop's
 * expression, so it still says which case broke. */
#define CU_ASSERT_CASE(value, what) \
	CU_assertImplementation((value) ? CU_TRUE : CU_FALSE, __LINE__, (what), __FILE__, "", CU_FALSE)

#endif
