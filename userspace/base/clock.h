/* clock: the daemon's two clocks, one place.
 *
 * Durations, deadlines and latencies use the monotonic clock (never steps with NTP); calendar
 * periods and records use the real time. Header only: a call is a vDSO clock_gettime.
 */
#ifndef WARDEN_CLOCK_H
#define WARDEN_CLOCK_H

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

/* Seconds since the epoch. */
static inline int64_t clock_real_s(void)
{
	return (int64_t)time(NULL);
}

#endif
