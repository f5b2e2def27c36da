/* clock: the daemon's two clocks, one place.
 *
 * Durations, deadlines and latencies use the monotonic clock (never steps with NTP); calendar
 * periods and records use the real time. A read is a vDSO clock_gettime.
 */
#ifndef WARDEN_CLOCK_H
#define WARDEN_CLOCK_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

static inline uint64_t clock_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t clock_mono_ms(void)
{
	return clock_mono_ns() / 1000000;
}

/* The loop's clock (issue 9): deadlines, idle times and rate-limit refills read it, a dozen
 * times a call, where a clock read costs ~26 ns on a VM. Inside a loop callback that holds it
 * (clock_hold: the front's and the upstream client's reads) the first read is kept for the
 * rest of the callback, so a deadline set there is early, and one checked there late, by at
 * most the time the callback has run. Outside a hold, and on other threads, it is the clock.
 * Latencies and stage times read clock_mono_ns itself. Nested holds keep the outer one, so
 * what the loop reads never goes back. */
#define CLOCK_HELD_UNREAD 1     /* held, not read yet (no monotonic time is this small) */
extern _Thread_local uint64_t clock_held_ns;

static inline uint64_t clock_loop_ns(void)
{
	uint64_t h = clock_held_ns, now;

	if (h > CLOCK_HELD_UNREAD)
		return h;
	now = clock_mono_ns();
	if (h)
		clock_held_ns = now;
	return now;
}

static inline uint64_t clock_loop_ms(void)
{
	return clock_loop_ns() / 1000000;
}

/* Hold the loop's clock for the callback that calls it: true when this took the hold, to be
 * given to clock_release at the callback's end; false inside another hold. */
static inline bool clock_hold(void)
{
	if (clock_held_ns)
		return false;
	clock_held_ns = CLOCK_HELD_UNREAD;
	return true;
}

static inline void clock_release(bool took)
{
	if (took)
		clock_held_ns = 0;
}

/* Seconds since the epoch. */
static inline int64_t clock_real_s(void)
{
	return (int64_t)time(NULL);
}

#endif
