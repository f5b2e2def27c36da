/* stateless_record: the decision records of what the gateway answers a 2026-07-28 request
 * outside a call's own record (docs/audit.md): a tasks/update, which it answers itself, and
 * each input_required answer of a call that asks the agent for input (the call's record
 * comes with its final answer). Every answered request is on record once.
 */
#ifndef WARDEN_STATELESS_RECORD_H
#define WARDEN_STATELESS_RECORD_H

#include <stdint.h>

struct audit_decision;
struct key_identity;

/* Write d (method, server, target, decision, reason, response, args_shape as it has them)
 * for who (NULL: authentication off), with its latency from received_ns (the request's
 * arrival, monotonic; 0: unknown) and nothing charged. */
void stateless_record(const struct key_identity *who, const struct audit_decision *d,
		      uint64_t received_ns);

#endif
