/* circuit: an upstream's circuit breaker (docs/tool-integrity.md#circuit-breaker).
 *
 *   closed ──N failures within window──► open ──open_for passed──► half-open
 *     ▲                                   ▲                          │ one probe call
 *     └───────────── probe succeeded ─────┴──── probe failed ────────┘
 *
 * Closed lets every call through and remembers the times of the last N failures (transport
 * errors, timeouts, HTTP 5xx: the caller decides what a failure is). Open refuses at once and
 * says when it will try again. Half-open lets exactly one call through; its outcome closes or
 * reopens the circuit. Time is passed in (monotonic milliseconds), so the state machine is
 * tested without waiting. Memory: N timestamps.
 */
#ifndef WARDEN_CIRCUIT_H
#define WARDEN_CIRCUIT_H

#include <stdbool.h>
#include <stdint.h>

#define CIRCUIT_MAX_FAILURES 1000

enum circuit_state { CIRCUIT_CLOSED, CIRCUIT_OPEN, CIRCUIT_HALF_OPEN };

struct circuit_config {
	unsigned failures;      /* 0: no breaker */
	int64_t window_ms;
	int64_t open_for_ms;
};

struct circuit {
	struct circuit_config cfg;
	enum circuit_state state;
	int64_t *fails;         /* ring of the last cfg.failures failure times */
	unsigned nfails, head;
	int64_t opened_ms;
	bool probing;           /* half-open: the probe is out */
};

void circuit_init(struct circuit *c, const struct circuit_config *cfg);
void circuit_clear(struct circuit *c);
/* May a call go now? 0: yes (*probe set when it is the half-open probe, whose outcome must be
 * reported). -EAGAIN: open (or the probe is out); *retry_ms says when it tries again. */
int circuit_allow(struct circuit *c, int64_t now_ms, bool *probe, int64_t *retry_ms);
/* A call's outcome. Returns true when the state changed. */
bool circuit_result(struct circuit *c, bool failure, bool probe, int64_t now_ms);
/* A probe that ended without an outcome (cancelled): the next call may probe. */
void circuit_abandon(struct circuit *c);
const char *circuit_state_name(enum circuit_state s);

#endif
