/* Helpers shared by the log store's unit tests: one SQL answer read straight from a store
 * file, a statement run on it, and a logquery answer waited for on the loop. Header-only. */
#ifndef LOGS_TEST_UTIL_H
#define LOGS_TEST_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <CUnit/Basic.h>
#include <cjson/cJSON.h>
#include <sqlite3.h>

/* The first column of the first row of sql over the file at path, read-only; -1 with no row. */
static inline int64_t sqlu_int(const char *path, const char *sql)
{
	sqlite3 *h;
	sqlite3_stmt *s;
	int64_t v = -1;

	CU_ASSERT_FATAL(sqlite3_open_v2(path, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK);
	CU_ASSERT_FATAL(sqlite3_prepare_v2(h, sql, -1, &s, NULL) == SQLITE_OK);
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(h);
	return v;
}

/* Run sql on the file at path; a failure fails the test with SQLite's message. */
static inline void sqlu_exec(const char *path, const char *sql)
{
	sqlite3 *h;
	char *err = NULL;

	CU_ASSERT_FATAL(sqlite3_open(path, &h) == SQLITE_OK);
	if (sqlite3_exec(h, sql, NULL, NULL, &err) != SQLITE_OK) {
		fprintf(stderr, "%s: %s\n", sql, err);
		CU_FAIL_FATAL("SQL failed");
	}
	sqlite3_free(err);
	sqlite3_close(h);
}

/* A logquery answer: lq_on_done is the callback, lq_done the loop's stop condition. */
struct lq_result {
	bool done;
	int err;
	cJSON *res;
};

static inline void lq_on_done(void *arg, int err, cJSON *res)
{
	struct lq_result *r = arg;

	r->done = true;
	r->err = err;
	r->res = res;
}

static inline bool lq_done(void *arg)
{
	return ((struct lq_result *)arg)->done;
}

#endif
