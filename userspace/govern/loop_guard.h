/* loop_guard: the loop breaker — the same key calling the same tool with the same arguments
 * more than max_repeats times within a window is refused (docs/tool-integrity.md#loop-breaker).
 *
 * Calls are told apart by a digest of (key, server, tool, canonical arguments): nothing of the
 * arguments is kept. Each digest remembers the times of its last max_repeats admitted calls;
 * a refused call is not counted, so an agent that stops for one window gets through again.
 * Memory is bounded: at most LOOP_GUARD_MAX_ENTRIES digests, the least recently used one is
 * forgotten first, and max_repeats is at most LOOP_GUARD_MAX_REPEATS.
 */
#ifndef WARDEN_LOOP_GUARD_H
#define WARDEN_LOOP_GUARD_H

#include <stddef.h>
#include <stdint.h>

#define LOOP_GUARD_MAX_ENTRIES 16384
#define LOOP_GUARD_MAX_REPEATS 100

struct loop_guard;

struct loop_guard *loop_guard_new(size_t max_entries);
void loop_guard_free(struct loop_guard *lg);
/* One call with this digest (64 hex digits) at now_ms. 0: admitted and counted. -EAGAIN:
 * max_repeats calls were admitted within the last window_ms; *retry_ms says when the oldest
 * of them leaves the window. */
int loop_guard_check(struct loop_guard *lg, const char *digest, unsigned max_repeats,
		     int64_t window_ms, int64_t now_ms, int64_t *retry_ms);
size_t loop_guard_count(const struct loop_guard *lg);

#endif
