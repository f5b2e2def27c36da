/* stateless_tasks: the tasks extension (SEP-2663, "io.modelcontextprotocol/tasks") for
 * 2026-07-28 agents, over upstreams that speak the 2025-11-25 tasks utilities.
 *
 * The extension is negotiated per request (the agent lists it under
 * _meta clientCapabilities.extensions). With it, a tools/call of a tool that supports tasks
 * (execution.taskSupport optional or required, on an upstream that runs tools as tasks) goes
 * upstream task-augmented and its CreateTaskResult comes back flat (resultType "task", the
 * task's fields at the top, ttl/pollInterval renamed ttlMs/pollIntervalMs). Without it, a
 * tool that requires a task is refused with -32021 and the others run as plain calls; an
 * agent's own v1 `task` param is ignored. tasks/get, tasks/update and tasks/cancel need the
 * extension (-32021); tasks/result and tasks/list are gone (404, -32601).
 *
 * The extension inlines what 2025-11-25 keeps behind tasks/result: when the gateway relays a
 * task's creation it asks the upstream for tasks/result itself (a "watch", governed and
 * recorded as that method is) and keeps what arrives on that stream in the task's state
 * (mcp/tasks.h tasks_ext): the requests the upstream makes of the client (they become the
 * task's inputRequests, answered by tasks/update) and the outcome (the result, or the
 * JSON-RPC error, inlined by tasks/get once the task is terminal). A tool error is a
 * completed task whose result has isError; "failed" carries the error.
 *
 * The wire-shape functions take and give JSON only (unit-tested by table); the rest runs on
 * the identity's task holder (router_task_holder).
 */
#ifndef WARDEN_STATELESS_TASKS_H
#define WARDEN_STATELESS_TASKS_H

#include <stdbool.h>
#include <cjson/cJSON.h>

struct jsonrpc_msg;
struct key_identity;
struct reply;
struct router;
struct session;

#define STASKS_EXTENSION "io.modelcontextprotocol/tasks"
#define STASKS_TTL_MS 3600000      /* the ttl the gateway asks of upstreams for a task */

/* --- wire shapes ------------------------------------------------------------------------ */

/* The client capabilities (of one request) list the extension. */
bool stasks_declared(const cJSON *caps);
/* server/discover's capabilities: the extension instead of the v1 `tasks` slot, when any
 * upstream runs tools as tasks (had_tasks: the catalogue's capabilities had that slot). */
void stasks_advertise(cJSON *caps);
/* A tools/call result: a 2025-11-25 CreateTaskResult ({task:{...}}) becomes the flat
 * CreateTaskResult in place. 0, or -ENOENT for a plain tool result (left as it is). The
 * task's id is then result.taskId. */
int stasks_created(cJSON *result);
/* A tasks/get result in place: the renamed fields, and from the task's state (ext, may be
 * NULL) the inputRequests still pending, or the inlined result / error once terminal. */
void stasks_detailed(cJSON *result, const cJSON *ext);
/* A tasks/cancel response in place: the empty ack. An upstream's -32602 for a task the caller
 * owns (one already terminal) is the same ack; other errors stay. */
void stasks_cancelled(cJSON *response, bool owned);
/* Keep a request the upstream made of the client during the task (its id is the gateway's). */
int stasks_keep_request(cJSON *ext, const cJSON *request);
/* Keep the watch's answer (a JSON-RPC response): the task's outcome. */
void stasks_keep_outcome(cJSON *ext, const cJSON *response);
/* tasks/update: the JSON-RPC responses (an array, caller frees) that answer the pending
 * requests the agent's inputResponses name; those leave the pending set. Keys it does not
 * know are ignored. NULL when out of memory. */
cJSON *stasks_answers(cJSON *ext, const cJSON *input_responses);

/* --- requests --------------------------------------------------------------------------- */

/* A tools/call (params in place): the agent's `task` param is dropped; *as_task says whether
 * it goes upstream as a task (then it has one). 0, or -ENOTSUP when the tool requires a task
 * and the request did not negotiate the extension (ext). */
int stasks_prepare_call(struct router *r, cJSON *params, bool ext, bool *as_task);
/* The gateway's own tasks/result for a task just created on the holder s. */
void stasks_watch(struct router *r, struct session *s, const struct key_identity *who,
		  const char *task_id);
/* tasks/update on the holder s of who (NULL: authentication off): answers the upstream's
 * pending requests; the ack goes to reply, and its decision record out. 0, or the HTTP status
 * and *err (the front records those). */
int stasks_update(struct router *r, struct session *s, const struct key_identity *who,
		  const struct jsonrpc_msg *m, struct reply *reply, cJSON **err);

#endif
