/* circuit: closed, open, half-open. */
#include "govern/circuit.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"

void circuit_init(struct circuit *c, const struct circuit_config *cfg)
{
	memset(c, 0, sizeof(*c));
	c->cfg = *cfg;
	if (c->cfg.failures > CIRCUIT_MAX_FAILURES)
		c->cfg.failures = CIRCUIT_MAX_FAILURES;
	if (c->cfg.failures)
		c->fails = xcalloc(c->cfg.failures, sizeof(*c->fails));
}

void circuit_clear(struct circuit *c)
{
	free(c->fails);
	memset(c, 0, sizeof(*c));
}

const char *circuit_state_name(enum circuit_state s)
{
	return s == CIRCUIT_OPEN ? "open" : s == CIRCUIT_HALF_OPEN ? "half_open" : "closed";
}

int circuit_allow(struct circuit *c, int64_t now_ms, bool *probe, int64_t *retry_ms)
{
	*probe = false;
	*retry_ms = 0;
	if (!c->cfg.failures || c->state == CIRCUIT_CLOSED)
		return 0;
	if (c->state == CIRCUIT_OPEN) {
		int64_t at = c->opened_ms + c->cfg.open_for_ms;
		if (now_ms < at) {
			*retry_ms = at - now_ms;
			return -EAGAIN;
		}
		c->state = CIRCUIT_HALF_OPEN;
		c->probing = false;
	}
	if (c->probing) {
		/* the probe decides; until it answers, nobody else goes */
		*retry_ms = 1000 < c->cfg.open_for_ms ? 1000 : c->cfg.open_for_ms;
		return -EAGAIN;
	}
	c->probing = true;
	*probe = true;
	return 0;
}

static void open_now(struct circuit *c, int64_t now_ms)
{
	c->state = CIRCUIT_OPEN;
	c->opened_ms = now_ms;
	c->probing = false;
}

bool circuit_result(struct circuit *c, bool failure, bool probe, int64_t now_ms)
{
	unsigned n = c->cfg.failures;

	if (!n)
		return false;
	if (c->state == CIRCUIT_HALF_OPEN && probe) {
		if (failure) {
			open_now(c, now_ms);
		} else {
			c->state = CIRCUIT_CLOSED;
			c->probing = false;
			c->nfails = c->head = 0;
		}
		return true;
	}
	if (c->state != CIRCUIT_CLOSED || !failure)
		return false;  /* late answers of calls sent before it opened change nothing */
	c->fails[c->head] = now_ms;
	c->head = (c->head + 1) % n;
	if (c->nfails < n)
		c->nfails++;
	/* full ring: head is now the oldest of the last n failures */
	if (c->nfails == n && now_ms - c->fails[c->head % n] <= c->cfg.window_ms) {
		open_now(c, now_ms);
		c->nfails = c->head = 0;
		return true;
	}
	return false;
}

void circuit_abandon(struct circuit *c)
{
	if (c->state == CIRCUIT_HALF_OPEN)
		c->probing = false;
}
