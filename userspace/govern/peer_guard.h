/* peer_guard: the per-peer failure tracker that slows down key guessing.
 *
 * After max_failures failed authentications within window_ms a peer is refused without its
 * key being looked at for block_ms, doubling on each repeat up to max_block_ms. An IPv6 peer
 * counts by its /64. At most `capacity` peers are tracked, in a table allocated once: when it
 * is full the peer whose last failure is oldest is forgotten, so a flood of addresses costs no
 * memory. Times are monotonic milliseconds. Any thread (each loop of workers: N): one lock
 * around a look or a change; while no peer is tracked, none is taken.
 */
#ifndef WARDEN_PEER_GUARD_H
#define WARDEN_PEER_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct peer_guard;

struct peer_guard_limits {
	unsigned max_failures;  /* failures within window_ms that block a peer (default 10) */
	int64_t window_ms;      /* default 60 s */
	int64_t block_ms;       /* first block (default 30 s), doubled on each further block */
	int64_t max_block_ms;   /* cap of the block; also the quiet time that forgets (15 min) */
	size_t capacity;        /* peers tracked at once (default 8192) */
};


/* 0, -EINVAL (a zero limit), -ENOMEM or -EIO (no randomness for the table's seed). */
int peer_guard_new(const struct peer_guard_limits *lim, struct peer_guard **out);
/* One more holder of g (a reload's new keystore keeps the old one's): freed when the last
 * holder frees it. */
struct peer_guard *peer_guard_share(struct peer_guard *g);
void peer_guard_free(struct peer_guard *g);
bool peer_guard_blocked(struct peer_guard *g, const char *peer, int64_t now_ms,
			int64_t *retry_after_ms);
void peer_guard_failure(struct peer_guard *g, const char *peer, int64_t now_ms);
/* A success clears the failure count; a peer with no strikes is forgotten. */
void peer_guard_success(struct peer_guard *g, const char *peer, int64_t now_ms);

#endif
