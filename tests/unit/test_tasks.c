/* The session's task table (mcp/tasks.h): ownership, expiry by ttl, the bound, tasks/list
 * filtering. */
#include <CUnit/Basic.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <event2/event.h>

#include "base/log.h"
#include "mcp/session.h"
#include "mcp/tasks.h"
#include "cunit_main.h"

static cJSON *task(const char *id, double ttl)
{
	cJSON *t = cJSON_CreateObject();

	cJSON_AddStringToObject(t, "taskId", id);
	if (ttl >= 0)
		cJSON_AddNumberToObject(t, "ttl", ttl);
	else
		cJSON_AddNullToObject(t, "ttl");
	return t;
}

static int remember(struct session *s, size_t server, const char *id, double ttl)
{
	cJSON *t = task(id, ttl);
	int rc = tasks_remember(&s->tasks, server, t);

	cJSON_Delete(t);
	return rc;
}

static struct session_table *tab;
static struct event_base *base;

static struct session *open_session(void)
{
	struct session *s = NULL;

	base = event_base_new();
	CU_ASSERT_PTR_NOT_NULL_FATAL(base);
	CU_ASSERT_EQUAL_FATAL(session_table_new(base, 2, 10, 60000, NULL, NULL, NULL, &tab), 0);
	CU_ASSERT_EQUAL_FATAL(session_create(tab, "2025-11-25", NULL, NULL, "k", &s), 0);
	return s;
}

static void close_session(struct session *s)
{
	session_destroy(tab, s);  /* frees its task table (ASan checks) */
	session_table_free(tab);
	event_base_free(base);
}

static void test_owner_and_expiry(void)
{
	struct session *s = open_session();
	struct session *other = NULL;
	size_t server = 99;
	cJSON *bad = cJSON_CreateObject();

	CU_ASSERT_EQUAL(tasks_owner(&s->tasks, "t1", &server), -ENOENT);  /* nothing yet */
	CU_ASSERT_EQUAL(remember(s, 1, "t1", 60000), 0);
	CU_ASSERT_EQUAL(remember(s, 0, "t0", -1), 0);       /* null ttl: the cap */
	CU_ASSERT_EQUAL(remember(s, 0, "short", 30), 0);
	CU_ASSERT_EQUAL(tasks_owner(&s->tasks, "t1", &server), 0);
	CU_ASSERT_EQUAL(server, 1);
	CU_ASSERT_EQUAL(tasks_owner(&s->tasks, "t0", &server), 0);
	CU_ASSERT_EQUAL(server, 0);
	CU_ASSERT_EQUAL(tasks_remember(&s->tasks, 0, bad), -EINVAL);  /* no taskId */
	cJSON_Delete(bad);

	/* another session of the same key knows none of them */
	CU_ASSERT_EQUAL_FATAL(session_create(tab, "2025-11-25", NULL, NULL, "k", &other), 0);
	CU_ASSERT_EQUAL(tasks_owner(&other->tasks, "t1", &server), -ENOENT);
	session_destroy(tab, other);

	/* the ttl ends it */
	nanosleep(&(struct timespec){ 0, 60 * 1000000L }, NULL);
	CU_ASSERT_EQUAL(tasks_owner(&s->tasks, "short", &server), -ENOENT);
	CU_ASSERT_EQUAL(tasks_owner(&s->tasks, "t1", &server), 0);
	close_session(s);
}

static void test_bound(void)
{
	struct session *s = open_session();
	char id[32];
	size_t server, known = 0;

	/* "first" expires soonest: it is the one that makes room */
	CU_ASSERT_EQUAL(remember(s, 0, "first", 100000), 0);
	for (int i = 1; i < TASKS_PER_SESSION; i++) {
		snprintf(id, sizeof(id), "t%d", i);
		CU_ASSERT_EQUAL(remember(s, 0, id, 200000), 0);
	}
	CU_ASSERT_EQUAL(tasks_owner(&s->tasks, "first", &server), 0);
	CU_ASSERT_EQUAL(remember(s, 1, "new", 200000), 0);
	CU_ASSERT_EQUAL(tasks_owner(&s->tasks, "first", &server), -ENOENT);
	CU_ASSERT_EQUAL(tasks_owner(&s->tasks, "new", &server), 0);
	CU_ASSERT_EQUAL(server, 1);
	for (int i = 1; i < TASKS_PER_SESSION; i++) {
		snprintf(id, sizeof(id), "t%d", i);
		known += tasks_owner(&s->tasks, id, &server) == 0;
	}
	CU_ASSERT_EQUAL(known, TASKS_PER_SESSION - 1);
	close_session(s);
}

static void test_filter_list(void)
{
	struct session *s = open_session();
	cJSON *res = cJSON_Parse("{\"tasks\":[{\"taskId\":\"mine\"},{\"taskId\":\"theirs\"},"
				 "{\"taskId\":\"mine2\"},{\"no\":1}],\"nextCursor\":\"c\"}");

	CU_ASSERT_EQUAL(remember(s, 0, "mine", 60000), 0);
	CU_ASSERT_EQUAL(remember(s, 0, "mine2", 60000), 0);
	tasks_filter_list(&s->tasks, res);
	char *out = cJSON_PrintUnformatted(res);
	CU_ASSERT_STRING_EQUAL(out, "{\"tasks\":[{\"taskId\":\"mine\"},{\"taskId\":\"mine2\"}],"
			       "\"nextCursor\":\"c\"}");
	free(out);
	cJSON_Delete(res);
	close_session(s);
}

static bool not_two(void *arg, size_t server)
{
	(void)arg;
	return server != 2;
}

/* tasks/list across upstreams: the next upstream with one of the session's tasks, in order,
 * skipping those that cannot list; and the gateway's cursor round trip. */
static void test_list_across(void)
{
	struct session *s = open_session();
	size_t server = 99;
	char name[16];
	const char *up;
	char *c;

	CU_ASSERT_EQUAL(tasks_next_server(&s->tasks, true, 0, not_two, NULL, &server), -ENOENT);
	CU_ASSERT_EQUAL(remember(s, 3, "c", 60000), 0);
	CU_ASSERT_EQUAL(remember(s, 1, "a", 60000), 0);
	CU_ASSERT_EQUAL(remember(s, 2, "b", 60000), 0);
	CU_ASSERT_EQUAL(remember(s, 0, "gone", 1), 0);
	nanosleep(&(struct timespec){ 0, 5000000 }, NULL);
	CU_ASSERT_EQUAL(tasks_next_server(&s->tasks, true, 0, not_two, NULL, &server), 0);
	CU_ASSERT_EQUAL(server, 1);     /* 0's only task expired */
	CU_ASSERT_EQUAL(tasks_next_server(&s->tasks, false, 1, not_two, NULL, &server), 0);
	CU_ASSERT_EQUAL(server, 3);     /* 2 cannot list */
	CU_ASSERT_EQUAL(tasks_next_server(&s->tasks, false, 3, not_two, NULL, &server), -ENOENT);

	c = tasks_cursor("up-1", "p:2");
	CU_ASSERT_STRING_EQUAL(c, "up-1:p:2");
	CU_ASSERT_EQUAL(tasks_cursor_parse(c, name, sizeof(name), &up), 0);
	CU_ASSERT_STRING_EQUAL(name, "up-1");
	CU_ASSERT_STRING_EQUAL(up, "p:2");
	free(c);
	CU_ASSERT_EQUAL(tasks_cursor_parse("up:", name, sizeof(name), &up), 0);
	CU_ASSERT_STRING_EQUAL(up, "");
	CU_ASSERT_EQUAL(tasks_cursor_parse("nocolon", name, sizeof(name), &up), -EINVAL);
	CU_ASSERT_EQUAL(tasks_cursor_parse(":x", name, sizeof(name), &up), -EINVAL);
	CU_ASSERT_EQUAL(tasks_cursor_parse("a-name-longer-than-16:x", name, sizeof(name), &up),
			-EINVAL);
	close_session(s);
}

CU_MAIN("tasks", cu_quiet, NULL,
	{ "owner, other sessions, expiry by ttl", test_owner_and_expiry },
	{ "at most TASKS_PER_SESSION: the soonest to expire makes room", test_bound },
	{ "tasks/list keeps the session's own", test_filter_list },
	{ "tasks/list across upstreams: order and cursor", test_list_across })
