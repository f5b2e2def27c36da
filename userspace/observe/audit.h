/* audit: the records an auditor reads (docs/audit.md), one JSON line each on stdout.
 *
 * The shape of each record lives here, in one place, so the documentation and the code have
 * a single thing to agree on. Records name keys by id, never the key, and tool arguments by
 * shape, not by value unless a policy opts in (log_arguments, with redaction).
 *
 * Every record leaves through one function (audit_emit): the stdout line, and the same line
 * stored in the log store (observe/logstore.h) with its sequence number "seq" — a record
 * without "seq" on stdout was not stored (store off, or its queue full).
 */
#ifndef WARDEN_AUDIT_H
#define WARDEN_AUDIT_H

#include <stdbool.h>
#include <stdint.h>
#include <cjson/cJSON.h>

/* One per call, allowed or refused, once its outcome is known. */
struct audit_decision {
	const char *session;        /* the full session id; recorded as its first 8 characters */
	const char *key, *team;     /* NULL when authentication is off; team NULL or "" if none */
	const char *policy;         /* the caller's own policy, NULL or "" if none */
	const char *workload;       /* the caller's cgroup path (kernel-named), NULL unknown */
	const char *redirected_from; /* transparent redirect: the address the agent connected to
				      * ("10.0.0.5:8080"), NULL when it called the gateway itself */
	const char *method;
	const char *server;         /* NULL when the call never had one */
	const char *target;         /* tool, prompt or URI as the agent named it, or NULL */
	const char *decision;       /* "allow", "deny" or "error" */
	const char *reason;         /* NULL for a plain allow */
	const cJSON *response;      /* the answer the agent got (status and error code), or NULL */
	int64_t cost_micros;        /* < 0: nothing was charged */
	const char *args_shape;     /* tools/call: keys and types of the arguments (compact JSON
				     * text), or NULL */
	uint64_t latency_us;        /* recorded as latency_us and latency_ms */
	bool went_upstream;
	uint64_t upstream_us;       /* the part spent waiting for the upstream */
	const char *trace_id;       /* 32 lowercase hex digits when the call had a trace, or NULL */
	unsigned input_rounds;      /* input_required answers before the last (2026-07-28) */
	/* Values, only where the key's policy has log_arguments (redacted already: see
	 * policy_redact); NULL otherwise. */
	const cJSON *arguments, *result;
};

/* Any thread: each writes the record in a buffer of its own, and records leave numbered in
 * the order they are emitted. A thread that wrote decisions frees its buffer with
 * audit_thread_end before it ends (the main thread need not). */
void audit_decision(const struct audit_decision *d);
void audit_thread_end(void);
/* A request the gateway refused itself before any call was made of it (a body that is not
 * JSON-RPC, a header that does not match, an unknown session, a refused Origin, ...): a
 * decision record "deny" with the HTTP status and the JSON-RPC error the client got, so that
 * such failures are found where the calls are (docs/audit.md#refused-requests). */
struct audit_refusal {
	const char *session;        /* as the client named it, or NULL; first 8 characters kept */
	const char *key;            /* the caller's key id once identified, or NULL */
	const char *reason;         /* what was refused: "parse_error", "header_mismatch", ... */
	int http_status;
	const cJSON *error;         /* the answer's error object ({code, message}), or NULL */
	const char *peer;           /* the client's address, or NULL */
};
void audit_refusal(const struct audit_refusal *r);
/* One per LLM route request (llm/), answered or refused (docs/audit.md#llm). */
struct audit_llm {
	const char *key, *team;     /* NULL when authentication is off or failed */
	const char *policy;         /* the caller's own policy, NULL or "" if none */
	const char *workload;       /* the caller's cgroup path (kernel-named), NULL unknown */
	const char *endpoint;       /* "chat.completions", "embeddings", "models" */
	const char *provider, *model;   /* NULL when the request never named a usable one */
	bool stream;
	int status;                 /* the HTTP status the agent got */
	const char *error;          /* NULL, or the OpenAI error message it got */
	const char *error_code;     /* NULL, or its code ("over_budget", ...) */
	int64_t input_tokens, output_tokens;    /* < 0: unknown */
	int64_t cost_micros;        /* < 0: nothing was charged */
	uint64_t latency_ms;
	int64_t ttft_ms;            /* streaming: first chunk from the provider; < 0 none */
	const char *fallback_from;  /* the provider that failed first, or NULL */
	const cJSON *prompt, *completion;   /* only when the policy opts in, else NULL */
	const cJSON *tool_calls;    /* ids of the tool calls the model made, or NULL */
	/* mcp.tool.execute: the tool, the model's tool call id and the MCP session the call ran
	 * in (its decision record has the same session) */
	const char *tool, *tool_call_id, *session;
};
void audit_llm(const struct audit_llm *r);
/* A refused authentication: reason as gate_authenticate words it, the key id when the key
 * was recognised (expired, disabled, another session's), the client's address. */
void audit_auth(const char *reason, const char *key, const char *peer);
/* The same for a valid key used from a caller outside its workloads: workload is the caller's
 * cgroup path as the kernel named it, or "unknown". */
void audit_auth_workload(const char *reason, const char *key, const char *peer,
			 const char *workload);
/* A connection the kernel refused (the enforcer's event, already decoded). */
void audit_kernel_deny(cJSON *event);
/* An enrolment decision of the node agent's pod watch (enforce/kube_pods.c): action, pod,
 * container, cgroup, mode, reason. */
void audit_enforcement(cJSON *action);
/* An upstream lists a tool whose definition differs from the one approved (old_digest NULL:
 * a new tool waiting for approval); diff from tool_diff(). */
void audit_tool_change(const char *server, const char *tool, const char *old_digest,
		       const char *new_digest, const cJSON *diff);
/* A tool definition pinned: how is "first_use", "approved" or "lockfile", by who did it. */
void audit_tool_pin(const char *server, const char *tool, const char *digest, const char *by,
		    const char *how);
/* The loop breaker refused a call (docs/tool-integrity.md#loop-breaker). */
void audit_loop_break(const char *key, const char *server, const char *tool, unsigned repeats,
		      int64_t window_ms, int64_t retry_ms);
/* An upstream's circuit changed state: from, to ("closed", "open", "half_open"). */
void audit_circuit(const char *server, const char *from, const char *to, int64_t retry_ms);
/* An action on the admin plane (built by the admin module: docs/admin-api.md#records). */
void audit_admin(cJSON *action);
/* A record of any other type (the log store's checkpoint and audit_anchor notes): a
 * logstore_note_fn. */
void audit_note(const char *type, cJSON *obj);

#endif
