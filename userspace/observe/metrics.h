/* metrics: the daemon's counters in the Prometheus text exposition format (version 0.0.4).
 *
 * The counting hooks are called on the request path by the router: each is a few increments
 * of fixed arrays (methods, decisions and reason classes are small enums; upstream servers a
 * fixed open-addressing table), so a hook costs O(1) and never allocates. Each event-loop
 * thread counts into a block of its own (the main thread's, or one metrics_loop_attach gave
 * it), without a lock; a scrape adds the blocks up, so loops on several threads show as one
 * process. The counts survive a configuration reload, so counters never go backwards while
 * the process lives. Gauges that other modules already count (store commits, keys, eBPF
 * counters) are read when /metrics is scraped, not pushed.
 *
 * Families (docs/admin-api.md lists them with their labels):
 *   mcpwarden_requests_total{method,decision,reason}   every JSON-RPC request answered
 *   mcpwarden_upstream_errors_total{server,kind}       failures and timeouts per upstream
 *   mcpwarden_upstream_circuit_state{upstream}        0 closed, 1 open, 2 half-open
 *   mcpwarden_loop_breaks_total                        calls the loop breaker refused
 *   mcpwarden_auth_refused_total{reason="workload"}    keys used outside their workloads
 *   mcpwarden_sessions, mcpwarden_requests_in_flight   gauges
 *   mcpwarden_request_duration_seconds{part}           histogram: gateway time vs upstream time
 *   mcpwarden_tool_call_duration_seconds{server,tool}  histogram per catalogue tool (bounded)
 *   mcpwarden_logstore_{queue_depth,dropped_total,written_total,bytes}  observe/logstore.h
 *   mcpwarden_store_commits_total, mcpwarden_store_syncs_total, mcpwarden_keys
 *   mcpwarden_ebpf_*                                   when an enforcer is set
 */
#ifndef WARDEN_METRICS_H
#define WARDEN_METRICS_H

#include <stdbool.h>
#include <stdint.h>

struct evbuffer;
struct enforcer;
struct keystore;
struct store;

/* A loop thread other than the main one counts into a block of its own from attach to
 * detach; its counts stay in the process's after it (a later attach takes the block up). */
void metrics_loop_attach(void);
void metrics_loop_detach(void);

/* Monotonic nanoseconds: what the router stamps calls with for the latency split. */
uint64_t metrics_now_ns(void);

/* One answered request. method: the JSON-RPC method; decision: "allow", "deny" or "error";
 * error_code: the JSON-RPC error code of the answer (0 when it has a result); tool_error:
 * the result has isError; server: the upstream's name or NULL; gateway_ns / upstream_ns: the
 * time spent in the gateway and waiting for the upstream (0 when not forwarded). */
void metrics_decision(const char *method, const char *decision, int error_code, bool tool_error,
		      const char *server, uint64_t gateway_ns, uint64_t upstream_ns);
/* The stages of a call, each timed on its own so a user sees what the gateway costs them:
 * FRONT from the transport having the request to the call starting (HTTP checks, key
 * authentication, JSON parsing), GATE admission (permission, rate limits, budget reservation,
 * argument validation), UPSTREAM the upstream's own time, SETTLE from its answer to the
 * answer leaving (the durable charge, the record, rewriting the answer). */
enum metrics_stage {
	METRICS_STAGE_FRONT, METRICS_STAGE_GATE, METRICS_STAGE_UPSTREAM, METRICS_STAGE_SETTLE,
	METRICS_NSTAGES
};
void metrics_stage(enum metrics_stage stage, uint64_t ns);
/* A call the loop breaker refused; an upstream's circuit state (enum circuit_state). */
void metrics_loop_break(void);
/* A valid key refused because the caller is not one of its workloads. */
void metrics_auth_workload_refused(void);
void metrics_circuit_state(const char *server, int state);
/* One LLM route answer (llm/): tokens and cost per key and "provider/model" (label values
 * are config names and key ids, so they need no escaping). key NULL: authentication off. */
void metrics_llm(const char *key, const char *model, uint64_t input, uint64_t output,
		 int64_t cost_micros);
/* A tools/call the catalogue routed: server and the tool's upstream name (NULL: not routed,
 * counted under "other"), its whole latency. */
void metrics_tool_call(const char *server, const char *tool, uint64_t ns);
void metrics_request_begin(void);
void metrics_request_end(void);
void metrics_session_opened(void);
void metrics_session_closed(void);

/* Client connections, per listener: open ones (a gauge) and those refused at a cap. */
enum metrics_listener { METRICS_LISTENER_AGENT, METRICS_LISTENER_ADMIN, METRICS_NLISTENERS };
enum metrics_refusal { METRICS_REFUSED_TOTAL, METRICS_REFUSED_PEER, METRICS_NREFUSALS };
void metrics_connections(enum metrics_listener l, int delta);
void metrics_connection_refused(enum metrics_listener l, enum metrics_refusal why);
/* A request refused by the HTTP layer before it was read whole: 400 (malformed), 413 (body
 * past limits.max_body_bytes), 431 (headers past limits.max_header_bytes); others as "other". */
void metrics_http_refused(enum metrics_listener l, int status);

/* The enforcer whose counters /metrics shows (NULL: none, e.g. enforcement is off). Not owned:
 * clear it before freeing the enforcer. */
void metrics_set_enforcer(struct enforcer *e);
/* That enforcer (the admin plane's kernel view reads its maps), or NULL. Loop 0. */
struct enforcer *metrics_enforcer(void);

/* Append the whole exposition to out. st and ks may be NULL (those families are left out).
 * Returns 0 or -ENOMEM. */
int metrics_render(struct evbuffer *out, struct store *st, const struct keystore *ks);

/* Forget every count (tests). */
void metrics_reset(void);

#endif
