/* call: the life of one downstream request, as one state enum and one transition function
 * (the way curl's multi.c moves an easy handle through its states).
 *
 *   RECEIVED ──route──► ROUTED ──gate──► ADMITTED ──link_call──► SENT ──answer──► SETTLING ──► DONE
 *       │                  │                │                      │                 │
 *       └── local answer, refusal, failure, cancellation, session end: straight to DONE ──┘
 *
 * Every event a call can meet (the upstream's answer, a timeout — which the link delivers as
 * an answer —, the charge becoming durable, the client's cancellation, the session ending,
 * the client going away) enters through call_event(), so each is handled in one place for
 * every state. The call's decision record is written once, when it is decided.
 */
#ifndef WARDEN_CALL_H
#define WARDEN_CALL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

#include "base/obj_type.h"
#include "govern/keys.h"
#include "mcp/jsonrpc_splice.h"
#include "mcp/method.h"
#include "mcp/session.h"

struct catalog;
struct catalog_entry;
struct gate;
struct gate_ticket;
struct link;
struct links;
struct reply;
struct session;
struct span;

enum call_state {
	CALL_RECEIVED,   /* the method is known and the id is in the session's books */
	CALL_ROUTED,     /* the target is resolved: catalogue entry, upstream, params to send */
	CALL_ADMITTING,  /* the gate waits for the fleet's counters (Redis: govern/fleet.h) */
	CALL_ADMITTED,   /* the gate said yes: permission, rate, budget reserved, arguments */
	CALL_SENT,       /* on the upstream link, waiting for its answer */
	CALL_SETTLING,   /* answered; its charge is being made durable before the client hears */
	CALL_DONE,       /* answered (or the client left): freed on the way out */
};

enum call_event {
	CALL_EV_START,        /* run from RECEIVED as far as possible */
	CALL_EV_ANSWER,       /* the upstream's response (or the link's error for it) */
	CALL_EV_CHARGED,      /* the store committed the charge (err in the event's code) */
	CALL_EV_CANCEL,       /* the client sent notifications/cancelled */
	CALL_EV_SESSION_END,  /* DELETE, idle expiry, reload, shutdown */
	CALL_EV_CLIENT_GONE,  /* the connection closed: the call runs on, its answer is dropped */
	CALL_EV_RESUME,       /* what a parked call waited for is there: route it again */
};

enum decision { DECISION_ALLOW, DECISION_DENY, DECISION_ERROR };

/* What calls borrow from the router that runs them. */
struct event;

struct call_env {
	struct gate *gate;
	struct catalog *cat;
	struct links *links;
	unsigned max_pending;         /* limits.max_pending_per_session (0: no cap) */
};

struct call {
	enum obj_type obj_type;       /* OBJ_TYPE_CALL: links hand calls back as contexts */
	enum call_state state;
	const struct method *method;
	const char *asked;            /* the method as the client named it; during routing only */
	const struct call_env *env;
	struct session *s;            /* NULL once out of the session's books */
	struct reply *reply;          /* NULL once the client left */
	cJSON *down_id;               /* the client's request id */
	bool has_who;                 /* who (below) holds the caller */

	/* Set by the method's route() */
	enum catalog_kind kind;       /* what the target is, for the gate */
	size_t server;                /* SIZE_MAX until known */
	const struct catalog_entry *entry;  /* valid during routing and admission only; NULL
					     * for a resource outside the lists */
	char *upname;                 /* the upstream's own name or URI of the target */
	const char *up_method;        /* sent upstream (NULL: nothing to forward) */
	cJSON *up_params;             /* owned until sent */
	struct jsonrpc_request_text up_text;  /* tools/call: the agent's params as written, sent
					       * instead of a print of up_params where the route
					       * changed only the name (or text NULL) */
	cJSON *retry_params;          /* a copy, to send once more on a new upstream session when
				       * a pooled one turns out lost (mcp/links.h); or NULL */
	struct event *retry_ev;       /* sends it, outside the lost link's callback */
	char *target;                 /* tool / prompt / URI, for the record */
	char *note;                   /* admitted with a remark for the record, or NULL */
	char *args_shape;             /* tools/call: the arguments' types, never their values, as
				       * compact JSON (alloc_cache_put) */
	cJSON *logged_args;           /* tools/call: the values, where the policy logs them
				       * (redacted: gate_logged_copy), else NULL */

	struct gate_ticket *ticket;   /* admitted with a cost: settled once answered */
	cJSON *resp;                  /* the answer, once decided (written in DONE) */
	bool record_late;             /* an allowed call's record waits until its answer has
				       * left (finish): the agent does not wait for it */
	int64_t late_cost;            /* ... with the cost charged (-1: none), the ticket gone */
	struct link *link;
	uint64_t handle;
	unsigned fanout;              /* METHOD_FANOUT: answers still expected */
	bool ui_tool;                 /* resources/read of a tool's MCP Apps UI: judged as that
				       * tool (kind, entry, upname), permission only */
	bool parked;                  /* SENT without an upstream request: its route waits for
				       * the session's own lists (mcp/session_view.h) */
	bool circuit_out;             /* let through by its upstream's circuit: outcome owed */
	bool circuit_probe;           /* ... as the half-open probe */
	bool orphan;                  /* its session ended while ADMITTING: freed when the
				       * gate answers */
	struct session_booking book;  /* in s's book of calls, under key */

	/* Monotonic stamps, for the record's latency split and the stage metrics. */
	uint64_t rx_ns;               /* the transport had the request (0: unknown) */
	uint64_t t0_ns;               /* parsed and authenticated: the call starts */
	uint64_t gate_ns;             /* time spent in admission (gate and arguments) */
	uint64_t fwd_ns;              /* sent upstream; 0: never */
	uint64_t ans_ns;              /* the upstream's answer arrived; 0: none */

	/* Tracing on only (mcp/call_trace.h): the request's span, and the upstream request's. */
	struct span *span;
	struct span *client_span;

	/* Last, and not cleared with the rest (call_alloc): two thirds of the struct, written
	 * where they are set (zeroing and copying them whole cost a call 45 cache lines). */
	char key[256];                /* the id's key in s's book (book) */
	struct key_identity who;      /* its strings only: key_identity_copy */
};

/* The call a session's booking belongs to (mcp/session.h), and the call of a node of the
 * session's book (iterating s->calls). */
static inline struct call *call_of_booking(struct session_booking *b)
{
	return container_of(b, struct call, book);
}

static inline struct call *call_of_book(struct htab_node *n)
{
	return call_of_booking(htab_entry(n, struct session_booking, node));
}

static inline struct call *obj_call(enum obj_type *t)
{
	return obj_type(t) == OBJ_TYPE_CALL ? (struct call *)t : NULL;
}

/* initialize, which the router answers without a call: its SERVER span, attributed as a
 * call's (the agent's trace context from reply's headers or params._meta), then ended with
 * the answer and the session it made (NULL: refused). NULL, and a no-op, while tracing is
 * off. reply: the transport's view of the request (traceparent, peer, arrival), not used to
 * answer. */
struct span *call_trace_initialize(const cJSON *id, const cJSON *params,
				   const struct reply *reply, const struct key_identity *who);
void call_trace_initialized(struct span *sp, const struct session *s, const cJSON *response);

/* Free the calls this thread kept for reuse (they are kept across routers: a reload's new
 * router takes them up); a router being freed drops them. */
void call_spares_drop(void);
/* A request: m from the method table (asked: the name the client sent), id and params taken
 * over (the request's own nodes, detached: no copy). who: the caller, NULL when auth is off.
 * The call registers itself in s->calls and runs; its answer goes to reply. */
void call_start(const struct call_env *env, struct session *s, const struct key_identity *who,
		const struct method *m, const char *asked, cJSON *id, cJSON *params,
		struct reply *reply);
/* Feed an event to the call (see enum call_event); msg taken over where there is one. */
void call_event(struct call *c, enum call_event ev, cJSON *msg, int err);

/* For route(): not now — the session's own lists are still being fetched. The call waits in
 * SENT (a session end or cancellation answers it) until CALL_EV_RESUME routes it again with
 * params (taken over). */
void call_park(struct call *c, cJSON *params);
/* For route(): answer now with a result (taken over) — a local method. */
void call_answer(struct call *c, cJSON *result);
/* For route() and failures: answer with a JSON-RPC error and record it. reason NULL: an
 * error (not a refusal); data taken over. */
void call_fail(struct call *c, int code, const char *reason, cJSON *data, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

const char *decision_name(enum decision d);

#endif
