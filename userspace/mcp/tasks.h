/* tasks: which upstream owns each task a session created (MCP 2025-11-25 tasks utility).
 *
 * A task-augmented tools/call (params.task) is governed and recorded as the call it belongs
 * to; its CreateTaskResult names a task id the upstream made. The session remembers
 * {task id -> upstream} so that tasks/get, tasks/result and tasks/cancel go to that upstream,
 * on the session's own link, and only for this session (and so its key): any other caller
 * gets the spec's -32602 for an unknown task. The table is bounded (TASKS_PER_SESSION; the
 * entry closest to expiry makes room) and each entry lives as long as the task's ttl says
 * (capped at TASKS_MAX_TTL_MS; a null ttl gets the cap).
 */
#ifndef WARDEN_TASKS_H
#define WARDEN_TASKS_H

#include <stdbool.h>
#include <stddef.h>
#include <cjson/cJSON.h>

struct hmap;

#define TASKS_PER_SESSION 256
#define TASKS_MAX_TTL_MS (24LL * 3600 * 1000)

/* Each function takes the session's table (its `tasks` member): made on first use, NULL
 * while the session created no task. */

/* Remember a task created on `server` (task: the CreateTaskResult's task object). 0, or
 * -EINVAL for a task without a string taskId, -ENOMEM. */
int tasks_remember(struct hmap **tasks, size_t server, const cJSON *task);
/* The upstream that owns task `id` for this session: 0, or -ENOENT (unknown or expired). */
int tasks_owner(struct hmap **tasks, const char *id, size_t *server);
/* The 2026-07-28 extension's state of task `id` (mcp/stateless_tasks.h): an object owned by
 * the table, made on first use and freed with the entry; NULL for an unknown or expired task
 * (or when out of memory). */
cJSON *tasks_ext(struct hmap **tasks, const char *id);
/* Keep only the tasks this session owns in a tasks/list result's "tasks" array. */
void tasks_filter_list(struct hmap **tasks, cJSON *result);

/* tasks/list across upstreams: the session's tasks are listed one upstream after the other,
 * in upstream order, each upstream's own pages in turn. The gateway's cursor names the
 * upstream and carries its cursor: "<upstream name>:<its cursor>" (empty: its first page). */

/* The lowest upstream index above `after` (any index when `first`) that owns one of the
 * session's live tasks and passes ok(arg, server): 0 and *out, or -ENOENT. */
int tasks_next_server(struct hmap **tasks, bool first, size_t after,
		      bool (*ok)(void *arg, size_t server), void *arg, size_t *out);
/* The gateway's cursor (caller frees); NULL when out of memory. */
char *tasks_cursor(const char *server_name, const char *upstream_cursor);
/* Split a gateway cursor: the upstream's name into name (size n) and *upstream pointing into
 * cursor. 0, or -EINVAL for a cursor that is not one. */
int tasks_cursor_parse(const char *cursor, char *name, size_t n, const char **upstream);
/* Free the session's table (at its end). */
void tasks_free(struct hmap **tasks);

#endif
