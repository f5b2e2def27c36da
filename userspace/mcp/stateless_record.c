/* stateless_record: decision records of 2026-07-28 answers no call records. */
#include "mcp/stateless_record.h"

#include "base/clock.h"
#include "govern/keys.h"
#include "observe/audit.h"

void stateless_record(const struct key_identity *who, const struct audit_decision *d,
		      uint64_t received_ns)
{
	struct audit_decision r = *d;
	uint64_t now = clock_mono_ns();

	r.key = who ? who->id : NULL;
	r.team = who ? who->team : NULL;
	r.policy = who ? who->policy : NULL;
	r.workload = who && who->workload[0] ? who->workload : NULL;
	r.cost_micros = -1;
	r.latency_us = received_ns && now > received_ns ? (now - received_ns) / 1000 : 0;
	audit_decision(&r);
}
