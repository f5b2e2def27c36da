/* The loop's held clock (base/clock.h): one read a callback for deadlines and idle times,
 * the clock itself elsewhere, never going back. */
#include <CUnit/Basic.h>
#include <pthread.h>
#include <time.h>

#include "base/clock.h"
#include "cunit_main.h"

static void sleep_ms(long ms)
{
	struct timespec ts = { 0, ms * 1000000L };

	nanosleep(&ts, NULL);
}

/* Outside a hold, the loop's clock is the clock. */
static void test_unheld(void)
{
	uint64_t a = clock_loop_ns();

	sleep_ms(2);
	CU_ASSERT(clock_loop_ns() >= a + 2000000);
	CU_ASSERT(clock_loop_ms() >= a / 1000000 + 2);
}

/* Held: the first read is taken when it is made (not at the hold), then kept; released, the
 * clock moves again. */
static void test_held(void)
{
	bool took = clock_hold();
	uint64_t before, first, after;

	CU_ASSERT(took);
	sleep_ms(2);
	before = clock_mono_ns();
	first = clock_loop_ns();
	CU_ASSERT(first >= before);
	sleep_ms(2);
	CU_ASSERT_EQUAL(clock_loop_ns(), first);
	CU_ASSERT_EQUAL(clock_loop_ms(), first / 1000000);
	clock_release(took);
	after = clock_loop_ns();
	CU_ASSERT(after >= first + 2000000);
}

/* A hold inside a hold keeps the outer one's time, and its release leaves the outer hold. */
static void test_nested(void)
{
	bool outer = clock_hold(), inner;
	uint64_t t = clock_loop_ns();

	sleep_ms(2);
	inner = clock_hold();
	CU_ASSERT(outer && !inner);
	CU_ASSERT_EQUAL(clock_loop_ns(), t);
	clock_release(inner);
	sleep_ms(1);
	CU_ASSERT_EQUAL(clock_loop_ns(), t);
	clock_release(outer);
	CU_ASSERT(clock_loop_ns() > t);
}

static void *other_thread(void *arg)
{
	uint64_t *out = arg;

	out[0] = clock_loop_ns();
	sleep_ms(2);
	out[1] = clock_loop_ns();
	return NULL;
}

/* A hold is the holding thread's: another thread reads the clock meanwhile. */
static void test_other_thread(void)
{
	bool took = clock_hold();
	uint64_t t = clock_loop_ns(), seen[2] = { 0, 0 };
	pthread_t th;

	CU_ASSERT_FATAL(pthread_create(&th, NULL, other_thread, seen) == 0);
	CU_ASSERT(pthread_join(th, NULL) == 0);
	CU_ASSERT(seen[0] >= t && seen[1] >= seen[0] + 2000000);
	CU_ASSERT_EQUAL(clock_loop_ns(), t);
	clock_release(took);
}

CU_MAIN("clock", NULL, NULL,
	{ "outside a hold, the clock", test_unheld },
	{ "held: read once, kept until released", test_held },
	{ "a nested hold keeps the outer time", test_nested },
	{ "a hold is its thread's", test_other_thread })
