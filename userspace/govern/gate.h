/* gate: the governance decision pipeline of one call, in the design's order.
 *
 * key (authenticate every request: unknown, expired, disabled → 401; a peer that keeps
 * failing is held off) → permission (precompiled policy views per key policy × team policy,
 * O(1) per call) → rate (token buckets per key, key×server, key×tool) → budget (reserve the
 * call's cost before forwarding; commit on success — durably, before the client is answered —
 * or release on failure) → arguments (validated against the tool's compiled inputSchema).
 * Owns the keystore, policy set, rate limiter, budgets and the SQLite store.
 */
#ifndef WARDEN_GATE_H
#define WARDEN_GATE_H

#include <stdbool.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include <event2/event.h>

#include "govern/keys.h"

struct config;
struct config_errors;
struct catalog;
struct catalog_entry;
struct gate;
struct gate_ticket;

/* The governance sections of a configuration (keys and teams in the config, policies, rate
 * limits, costs, budgets, auth.required), parsed and checked. gate_rules_parse reads nothing
 * but cfg and touches no gate: a reload runs it on a thread of its own (100k keys take most
 * of a reload) and swaps the result in on the loop with gate_reload_rules. */
struct gate_rules;
int gate_rules_parse(const struct config *cfg, struct gate_rules **out,
		     struct config_errors *errs);
void gate_rules_free(struct gate_rules *r);
/* Validate only (--check-config, a reload's check, any thread): every governance section and
 * the store options. With rules not NULL, *rules is what was parsed (NULL on error). */
int gate_check(const struct config *cfg, struct gate_rules **rules, struct config_errors *errs);

/* Parse every governance section of cfg. base NULL: validate only; otherwise also open the
 * store and load persisted keys and spend. */
int gate_new(struct event_base *base, const struct config *cfg, struct gate **out,
	     struct config_errors *errs);
/* The same with cfg's rules parsed already (taken over, even on error; NULL: parse them). */
int gate_open(struct event_base *base, const struct config *cfg, struct gate_rules *rules,
	      struct gate **out, struct config_errors *errs);
void gate_free(struct gate *g);
/* A reload that changes only governance: swap the new rules in place (taken over; on the
 * loop, it cannot fail). Sessions, rate buckets, spend, reservations in flight and keys and
 * teams created through the admin API are kept. */
void gate_reload_rules(struct gate *g, struct gate_rules *r);
/* A full reload (upstreams or listeners changed too) keeps the gate when the store it opened
 * is the one cfg names and its `counters` section is unchanged: no SQLite is opened or read
 * on the loop, and rate buckets, spend, pins and keys made at run time live on. Call gate_reload_all between the old router's end and the
 * new one's start: it forgets the old catalogue, takes the rules (parsed off the loop, taken
 * over even on error) and sets the circuits for cfg's upstreams (0 or -ENOMEM: the rules are
 * freed and the gate is as it was). */
bool gate_keeps_store(const struct gate *g, const struct config *cfg);
/* A full reload to cfg would leave charges behind: the fleet's counters (Redis) have charges
 * queued for replay and cfg changes `counters` or store.path. Such a reload is refused (why
 * filled: what changed, how many charges, why Redis is away); the charges stay bound to the
 * Redis they were made against. false: nothing queued, or both unchanged. */
bool gate_reload_strands_charges(const struct gate *g, const struct config *cfg, char *why,
				 size_t len);
/* r NULL: the rules in force stay (going back to the configuration they are from). prev not
 * NULL: see gate_free_keep_rules. */
int gate_reload_all(struct gate *g, const struct config *cfg, struct gate_rules *r,
		    struct gate_rules **prev);
/* A full reload may have to go back to the configuration it replaces, whose keys and teams are
 * no longer in its document (config_shrink): the rules in force are handed back instead of
 * freed, as that configuration alone defines them (the keys and teams made through the admin
 * API or loaded from the store left out, the catalogue forgotten), for gate_open or
 * gate_reload_all to take again. gate_reload_all puts them in *prev (NULL when it fails);
 * gate_free_keep_rules frees the gate and returns them (NULL for a NULL gate). */
struct gate_rules *gate_free_keep_rules(struct gate *g);
/* Parse and swap in one step. Nothing changes on error (-EINVAL with errs filled). */
int gate_reload(struct gate *g, const struct config *cfg, struct config_errors *errs);
bool gate_auth_required(const struct gate *g);
struct keystore *gate_keystore(struct gate *g);
struct store *gate_store(struct gate *g);
struct budget *gate_budget(struct gate *g);
/* Does the config file define this key id / team (the rest came through the admin API and
 * can be changed there)? */
bool gate_config_key(const struct gate *g, const char *id);
bool gate_config_team(const struct gate *g, const char *name);
/* Is there a policy of that name (the admin plane checks what it is given)? */
bool gate_policy_exists(const struct gate *g, const char *name);
/* The value as the caller's records may hold it: NULL unless the key's (or its team's) policy
 * has log_arguments; then a copy with the policies' redact fields replaced (caller deletes). */
cJSON *gate_logged_copy(const struct gate *g, const struct key_identity *who, const cJSON *v);
/* Whether gate_logged_copy copies anything for this caller (its records hold values). */
bool gate_logs_values(const struct gate *g, const struct key_identity *who);

enum gate_auth { GATE_AUTH_OK, GATE_AUTH_MISSING, GATE_AUTH_REFUSED, GATE_AUTH_BLOCKED };

/* presented: the key from Authorization: Bearer or X-Api-Key (NULL when none). peer: the
 * client's address, for brute-force tracking. memo: the connection's (govern/keys.h), or
 * NULL. *reason gets a static word for the record ("unknown", "expired", "disabled",
 * "malformed", "missing", "blocked"). */
enum gate_auth gate_authenticate(struct gate *g, const char *presented, const char *peer,
				 struct keys_memo *memo, struct key_identity *who, const char **reason,
				 int64_t *retry_after_ms);
/* A request with no key: the keyless workload (config "workloads") the caller belongs to, by
 * its cgroup path as the kernel named it (NULL unknown). true with who filled, else false. */
bool gate_workload_identity(struct gate *g, const char *cgroup_path, struct key_identity *who);
bool gate_has_workloads(const struct gate *g);
/* The OAuth resource server's config ("oauth", govern/oauth.h), NULL when there is none. A
 * governance reload replaces it: do not keep it past the current request. */
struct oauth_config;
const struct oauth_config *gate_oauth(const struct gate *g);

/* The catalogue was rebuilt (or the rules replaced): what the gate derives from it (policy
 * views, per-tool costs, the tools' pins) made anew and published for every loop. On the
 * catalogue's loop. */
void gate_catalog_changed(struct gate *g, const struct catalog *c);
/* May `who` see entry e in a list (NULL who: auth off, everything)? */
bool gate_visible(struct gate *g, const struct key_identity *who, const struct catalog_entry *e);

struct catalog_list;
/* The first index >= from in l (of `kind`) that who may see (l->n when none): filtered lists
 * walk only what the key may see. */
size_t gate_next_visible(struct gate *g, const struct key_identity *who, int kind,
			 const struct catalog_list *l, size_t from);

/* What a call asks to be admitted for. */
struct gate_request {
	const struct key_identity *who; /* NULL: authentication is off */
	const struct catalog_entry *e;  /* NULL: a resource outside the lists, by server/name */
	int kind;                       /* enum catalog_kind */
	const char *server, *name;
	/* The call does work upstream (tools/call, prompts/get, resources/read): it is rate
	 * limited and charged its cost (`costs` matched on server/name). Otherwise (resources/
	 * subscribe, completion/complete) only permission applies. */
	bool work;
	/* tools/call: its arguments are validated (args NULL: it sent none, checked as {}). */
	bool has_args;
	const cJSON *args;
};

/* Admit a call, in this order: permission, tool integrity (a changed tool under withhold:
 * -EPERM, -32012; under warn it passes and *reason says so for the record), arguments, loop
 * breaker (-ELOOP, -32013), budget, rate limit. A call refused at
 * one step leaves nothing spent at the later ones: a call refused for its arguments or its
 * budget spends no rate-limit token, and one refused by the rate limit reserves no money.
 * 0: admitted, *ticket to settle (may be NULL: nothing to settle). Otherwise a negative errno
 * (-EACCES not permitted, -EINVAL invalid arguments, -EDQUOT over budget, -EAGAIN rate
 * limited) and *error is the JSON-RPC error object {code, message, data} to send; *reason a
 * short text for the record. */
int gate_admit(struct gate *g, const struct gate_request *rq, struct gate_ticket **ticket,
	       cJSON **error, char *reason, size_t reason_len);
/* Completion of an admission that waited for the fleet's counters in Redis: rc, t, error and
 * reason as gate_admit returns them (error and t are the callee's to free or settle). */
typedef void (*gate_admit_fn)(void *arg, int rc, struct gate_ticket *t, cJSON *error,
			      const char *reason);
/* gate_admit, where budgets and rate limits may live in Redis ("counters": docs/counters.md):
 * -EINPROGRESS when cb(arg, ...) follows later on the loop (never from here; the caller must
 * stay able to receive it, or free what it gets); anything else is gate_admit's answer and cb
 * is not called. cb NULL: the counters are never waited for (gate_admit). */
int gate_admit_async(struct gate *g, const struct gate_request *rq, gate_admit_fn cb, void *arg,
		     struct gate_ticket **ticket, cJSON **error, char *reason, size_t reason_len);
/* Can governed calls be admitted (false when Redis is unreachable under fail_closed; why says
 * so for /readyz)? Always true with the SQLite counters. */
bool gate_counters_ready(const struct gate *g, char *why, size_t len);
/* The fleet's counters, NULL with the SQLite backend (metrics, admin). */
struct fleet *gate_fleet(struct gate *g);
/* The LLM route's admission against the fleet's counters (gate_fleet non-NULL): reserve cost
 * in every budget that applies to who and take a token from every bucket of rs[0..nrs)
 * (govern/fleet.h). Returns 1: nothing to count (cb not called); 0: cb follows, possibly from
 * here, and *nbudgets says how many budgets the reservation holds; or a negative errno. */
struct fleet_rates;
struct fleet_outcome;
int gate_fleet_reserve_llm(struct gate *g, const struct key_identity *who, int64_t cost,
			   const struct fleet_rates *rs, size_t nrs, const char *provider,
			   const char *model, size_t *nbudgets,
			   void (*cb)(void *arg, struct fleet_outcome *o), void *arg);
/* tools/call, once admitted: the arguments against the tool's inputSchema (when its server
 * validates). 0, or -EINVAL with *error the -32602 error object naming the failing path and
 * *reason the record's text. args NULL: the call sent none (checked as {}). */
int gate_check_arguments(struct gate *g, const struct catalog_entry *e, const cJSON *args,
			 cJSON **error, char *reason, size_t reason_len);
/* Settle a ticket: success commits the reserved cost (charge_failures commits failures too),
 * otherwise it is released. Returns 0 when cb(arg, err) will follow once the charge is
 * durable, 1 when nothing had to be persisted (cb not called), < 0 when the charge could not
 * be queued (the caller must not acknowledge silently). The ticket is consumed. */
int gate_settle(struct gate *g, struct gate_ticket *t, bool success,
		void (*cb)(void *arg, int err), void *arg);
/* Tool integrity (govern/toolpin.h): every pin and tool seen, for the admin API (caller
 * frees), and an approval of the definition last listed (toolpins_approve's returns; the
 * catalogue's tools are judged again at once: the caller announces list_changed). */
cJSON *gate_tool_pins(struct gate *g);
int gate_tool_approve(struct gate *g, const char *server, const char *tool, const char *by,
		      void (*cb)(void *arg, int err), void *arg);

/* Upstream circuit breakers (govern/circuit.h), by upstream index. allow: 0 or -EAGAIN
 * (open; *retry_ms); *probe: this call is the half-open probe, its outcome must be reported
 * (or abandoned). result: failure is a transport error, timeout or HTTP 5xx. */
int gate_circuit_allow(struct gate *g, size_t server, bool *probe, int64_t *retry_ms);
void gate_circuit_result(struct gate *g, size_t server, bool failure, bool probe);
void gate_circuit_abandon(struct gate *g, size_t server);
const char *gate_circuit_state(const struct gate *g, size_t server);

/* The cost the ticket reserved, in micro-units (for records). */
int64_t gate_ticket_cost(const struct gate_ticket *t);

#endif
