/* tasks: the session's table of the tasks it created, and who owns them. */
#include "mcp/tasks.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/hmap.h"
#include "base/json_get.h"

struct task_ref {
	size_t server;
	uint64_t expires_ms;  /* monotonic */
	cJSON *ext;           /* the 2026-07-28 extension's state, or NULL (tasks_ext) */
};

static void ref_free(void *p)
{
	struct task_ref *ref = p;

	if (ref)
		cJSON_Delete(ref->ext);
	free(ref);
}

/* Drop expired entries; when still full, the one closest to expiry makes room. */
static void make_room(struct hmap *t)
{
	uint64_t now = clock_loop_ms(), soonest = UINT64_MAX;
	char victim[512] = "";
	const char *key;
	struct hmap_iter it = hmap_iter(t);
	struct task_ref *ref;

	while (hmap_next(t, &it, &key, (void **)&ref)) {
		if (ref->expires_ms <= now) {
			ref_free(hmap_del(t, key));  /* deleting the current key is allowed */
			continue;
		}
		if (ref->expires_ms < soonest) {
			soonest = ref->expires_ms;
			snprintf(victim, sizeof(victim), "%s", key);
		}
	}
	if (victim[0] && hmap_count(t) >= TASKS_PER_SESSION)
		ref_free(hmap_del(t, victim));
}

int tasks_remember(struct hmap **tasks, size_t server, const cJSON *task)
{
	const cJSON *id = json_get(task, "taskId");
	const cJSON *ttl = json_get(task, "ttl");
	int64_t ms = TASKS_MAX_TTL_MS;
	struct task_ref *ref, *old = NULL;

	if (!cJSON_IsString(id) || !id->valuestring[0] || strlen(id->valuestring) >= 512)
		return -EINVAL;
	if (!*tasks && !(*tasks = hmap_new()))
		return -ENOMEM;
	if (cJSON_IsNumber(ttl) && ttl->valuedouble >= 0 && ttl->valuedouble < (double)ms)
		ms = (int64_t)ttl->valuedouble;
	if (hmap_count(*tasks) >= TASKS_PER_SESSION)
		make_room(*tasks);
	ref = malloc(sizeof(*ref));
	if (!ref)
		return -ENOMEM;
	ref->server = server;
	ref->expires_ms = clock_loop_ms() + (uint64_t)ms;
	ref->ext = NULL;
	if (hmap_put(*tasks, id->valuestring, ref, (void **)&old)) {
		free(ref);
		return -ENOMEM;
	}
	ref_free(old);
	return 0;
}

int tasks_owner(struct hmap **tasks, const char *id, size_t *server)
{
	struct task_ref *ref = *tasks ? hmap_get(*tasks, id) : NULL;

	if (!ref)
		return -ENOENT;
	if (ref->expires_ms <= clock_loop_ms()) {
		ref_free(hmap_del(*tasks, id));
		return -ENOENT;
	}
	*server = ref->server;
	return 0;
}

cJSON *tasks_ext(struct hmap **tasks, const char *id)
{
	struct task_ref *ref;
	size_t server;

	if (tasks_owner(tasks, id, &server))
		return NULL;
	ref = hmap_get(*tasks, id);
	if (!ref->ext)
		ref->ext = cJSON_CreateObject();
	return ref->ext;
}

void tasks_filter_list(struct hmap **tasks, cJSON *result)
{
	cJSON *arr = json_get(result, "tasks");
	cJSON *it = cJSON_IsArray(arr) ? arr->child : NULL;

	while (it) {
		cJSON *next = it->next;
		const cJSON *id = json_get(it, "taskId");
		size_t server;
		if (!cJSON_IsString(id) || tasks_owner(tasks, id->valuestring, &server))
			cJSON_Delete(cJSON_DetachItemViaPointer(arr, it));
		it = next;
	}
}

int tasks_next_server(struct hmap **tasks, bool first, size_t after,
		      bool (*ok)(void *arg, size_t server), void *arg, size_t *out)
{
	uint64_t now = clock_loop_ms();
	bool found = false;
	const char *key;
	struct task_ref *ref;
	struct hmap_iter it;

	if (!*tasks)
		return -ENOENT;
	it = hmap_iter(*tasks);
	while (hmap_next(*tasks, &it, &key, (void **)&ref)) {
		if (ref->expires_ms <= now || (!first && ref->server <= after) ||
		    (found && ref->server >= *out) || !ok(arg, ref->server))
			continue;
		*out = ref->server;
		found = true;
	}
	return found ? 0 : -ENOENT;
}

char *tasks_cursor(const char *server_name, const char *upstream_cursor)
{
	size_t n = strlen(server_name) + strlen(upstream_cursor) + 2;
	char *c = malloc(n);

	if (c)
		snprintf(c, n, "%s:%s", server_name, upstream_cursor);
	return c;
}

int tasks_cursor_parse(const char *cursor, char *name, size_t n, const char **upstream)
{
	const char *colon = strchr(cursor, ':');

	if (!colon || colon == cursor || (size_t)(colon - cursor) >= n)
		return -EINVAL;
	memcpy(name, cursor, (size_t)(colon - cursor));
	name[colon - cursor] = '\0';
	*upstream = colon + 1;
	return 0;
}

void tasks_free(struct hmap **tasks)
{
	if (*tasks)
		hmap_free(*tasks, ref_free);
	*tasks = NULL;
}
