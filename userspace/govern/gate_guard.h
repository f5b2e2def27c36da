/* gate_guard: what the gate checks besides keys, permission, budget and rate (docs/
 * tool-integrity.md) — tool integrity (each catalogue tool judged against its pin once per
 * catalogue; a changed tool withheld from keys under `withhold`), the loop breaker (identical
 * calls per key) and the upstream circuit breakers. Owned by the gate. The loop breaker and
 * the circuits may be used from every loop (workers: N; a lock around each, none for an
 * upstream whose circuit is off); a catalogue is judged on loop 0 and its judgements read by
 * every loop; the pins have a lock of their own (a session's own tools are judged on its
 * loop).
 *
 * The guard decides; the gate builds the JSON-RPC error from a refusal's parts, so every
 * refusal of the gate has one shape.
 */
#ifndef WARDEN_GATE_GUARD_H
#define WARDEN_GATE_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

#include "govern/toolpin.h"

struct catalog;
struct catalog_entry;
struct config;
struct gate_guard;
struct key_identity;
struct policy_set;
struct store;

/* A refusal's parts: the code (govern/refusal.h), its data (owned: taken by whoever builds the
 * error) and the message. */
struct gate_guard_refusal {
	int code;
	cJSON *data;
	char message[512];
};

/* Pins in st (NULL: nothing persisted), circuits for cfg's upstreams. NULL: no memory. */
struct gate_guard *gate_guard_new(struct store *st, const struct config *cfg,
				  const struct toolpin_config *tpc);
void gate_guard_free(struct gate_guard *gd);
/* Start-up: the pins the store holds (blocking, before traffic), then the lockfile's. */
int gate_guard_load(struct gate_guard *gd, const cJSON *lock);
/* A governance reload: the new tool_pins section and lockfile content. */
void gate_guard_reconfigure(struct gate_guard *gd, const struct toolpin_config *tpc,
			    const cJSON *lock);

/* A full reload kept the gate (and so the guard) but replaced the upstreams: circuits for
 * cfg's upstreams, an upstream of the same name and circuit settings keeping its state (an open
 * circuit stays open). The old catalogue is forgotten: it is gone with its router. Only between
 * routers (no call in flight). */
void gate_guard_set_upstreams(struct gate_guard *gd, const struct config *cfg);

/* The catalogue changed (or the policies did): judge every tool against its pin. */
void gate_guard_judge(struct gate_guard *gd, const struct catalog *c,
		      const struct policy_set *ps);
/* Is tool entry e kept from who (its tool_integrity is withhold and e is not as approved)? */
bool gate_guard_withheld(struct gate_guard *gd, const struct policy_set *ps,
			 const struct key_identity *who, const struct catalog_entry *e);
/* What a call is, as the guard judges it (a gate_request's fields). */
struct gate_guard_call {
	const struct key_identity *who;  /* NULL: authentication is off */
	const struct catalog_entry *e;   /* NULL: not a listed entry */
	int kind;                        /* enum catalog_kind */
	const char *server, *name;       /* the upstream and the target's own name */
	const cJSON *args;               /* tools/call arguments, NULL: none */
};

/* A call's tool against its pin: 0 (passed; under warn *reason gets a note for the record),
 * or -EPERM with *out filled (-32012) and *reason the record's text. */
int gate_guard_integrity(struct gate_guard *gd, const struct policy_set *ps,
			 const struct gate_guard_call *rq, struct gate_guard_refusal *out,
			 char *reason, size_t reason_len);
/* The loop breaker of rq->who's policy: 0 (counted), -ELOOP with *out filled (-32013), or
 * another negative errno (not a refusal). rq->who must be set. */
int gate_guard_loop(struct gate_guard *gd, const struct policy_set *ps,
		    const struct gate_guard_call *rq, struct gate_guard_refusal *out,
		    char *reason, size_t reason_len);

/* Pins as the admin API lists them (caller frees), and an approval (toolpins_approve's
 * returns); the catalogue's tools are judged again at once. */
cJSON *gate_guard_pins(struct gate_guard *gd);
int gate_guard_approve(struct gate_guard *gd, const struct policy_set *ps, const char *server,
		       const char *tool, const char *by, void (*cb)(void *arg, int err),
		       void *arg);

/* Circuits by upstream index (see gate.h's gate_circuit_*). */
int gate_guard_circuit_allow(struct gate_guard *gd, size_t server, bool *probe,
			     int64_t *retry_ms);
void gate_guard_circuit_result(struct gate_guard *gd, size_t server, bool failure, bool probe);
void gate_guard_circuit_abandon(struct gate_guard *gd, size_t server);
const char *gate_guard_circuit_state(struct gate_guard *gd, size_t server);

#endif
