/* Sessions: ids, version negotiation, the session cap, idle expiry on the loop. */
#include <CUnit/Basic.h>
#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <event2/event.h>

#include "base/log.h"
#include "mcp/session.h"
#include "cunit_main.h"

static int expired;
static struct event_base *base;   /* the test's loop, made by table() */

static void on_expire(void *arg, struct session *s)
{
	(void)arg;
	(void)s;
	expired++;
}

/* A table on a new loop (nupstreams links per session, at most max sessions); done() ends
 * both. */
static struct session_table *table(size_t nupstreams, unsigned max, int idle_ms)
{
	struct session_table *t = NULL;

	base = event_base_new();
	CU_ASSERT_PTR_NOT_NULL_FATAL(base);
	CU_ASSERT_EQUAL_FATAL(session_table_new(base, nupstreams, max, idle_ms, NULL, on_expire,
						NULL, &t), 0);
	return t;
}

static void done(struct session_table *t)
{
	session_table_free(t);
	event_base_free(base);
	base = NULL;
}

/* A session of key (NULL or "": none) speaking the current protocol version. */
static int create(struct session_table *t, const char *key, struct session **out)
{
	return session_create(t, "2025-11-25", NULL, NULL, key, out);
}

/* Sessions whose clients sent the same capabilities (or info) share one read-only copy; each
 * still sees what its own client sent, and one ending leaves the others' intact. */
static void test_shared_caps(void)
{
	struct session_table *t = table(1, 10, 60000);
	cJSON *roots = cJSON_Parse("{\"roots\":{\"listChanged\":true}}");
	cJSON *roots2 = cJSON_Parse("{\"roots\":{\"listChanged\":true}}");
	cJSON *sampling = cJSON_Parse("{\"sampling\":{}}");
	cJSON *info = cJSON_Parse("{\"name\":\"agent\",\"version\":\"1\"}");
	struct session *a = NULL, *b = NULL, *c = NULL, *d = NULL;

	CU_ASSERT_PTR_NOT_NULL_FATAL(roots && roots2 && sampling && info);
	CU_ASSERT_EQUAL_FATAL(session_create(t, "2025-11-25", roots, info, "k", &a), 0);
	CU_ASSERT_EQUAL_FATAL(session_create(t, "2025-11-25", roots2, info, "k", &b), 0);
	CU_ASSERT_EQUAL_FATAL(session_create(t, "2025-11-25", sampling, NULL, "k", &c), 0);
	CU_ASSERT_EQUAL_FATAL(session_create(t, "2025-11-25", NULL, NULL, "k", &d), 0);
	CU_ASSERT_PTR_EQUAL(a->client_caps, b->client_caps);
	CU_ASSERT_PTR_EQUAL(a->client_info, b->client_info);
	CU_ASSERT_PTR_NOT_EQUAL(a->client_caps, c->client_caps);
	CU_ASSERT_TRUE(cJSON_Compare(a->client_caps, roots, 1));
	CU_ASSERT_TRUE(cJSON_Compare(c->client_caps, sampling, 1));
	/* None sent: an empty object, shared with the client that sent {} too. */
	CU_ASSERT_TRUE(cJSON_IsObject(d->client_caps) && !d->client_caps->child);
	CU_ASSERT_PTR_EQUAL(c->client_info, d->client_info);
	/* The copies are the table's: the client's own objects can go. */
	cJSON_Delete(roots);
	session_destroy(t, a);
	CU_ASSERT_PTR_NOT_NULL(cJSON_GetObjectItemCaseSensitive(b->client_caps, "roots"));
	CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItemCaseSensitive(b->client_info, "name")->valuestring,
			       "agent");
	session_destroy(t, b);
	CU_ASSERT_EQUAL_FATAL(session_create(t, "2025-11-25", roots2, NULL, "k", &a), 0);
	CU_ASSERT_TRUE(cJSON_Compare(a->client_caps, roots2, 1));
	cJSON_Delete(roots2);
	cJSON_Delete(sampling);
	cJSON_Delete(info);
	done(t);
}

static void test_versions(void)
{
	CU_ASSERT_STRING_EQUAL(session_negotiate("2025-06-18"), "2025-06-18");
	CU_ASSERT_STRING_EQUAL(session_negotiate("2025-03-26"), "2025-03-26");
	/* An unknown or missing version gets the newest the gateway speaks. */
	CU_ASSERT_STRING_EQUAL(session_negotiate("1999-01-01"), session_versions[0]);
	CU_ASSERT_STRING_EQUAL(session_negotiate(NULL), session_versions[0]);
	CU_ASSERT_TRUE(session_version_supported("2025-11-25"));
	CU_ASSERT_FALSE(session_version_supported("2024-11-05"));
}

static void test_ids_and_cap(void)
{
	struct session_table *t = table(2, 2, 60000);
	struct session *a = NULL, *b = NULL, *c = NULL;

	CU_ASSERT_EQUAL(create(t, "k1", &a), 0);
	CU_ASSERT_EQUAL(create(t, "k1", &b), 0);
	CU_ASSERT_EQUAL(strlen(a->id), SESSION_ID_LEN);
	for (size_t i = 0; i < SESSION_ID_LEN; i++)
		CU_ASSERT_TRUE(isxdigit((unsigned char)a->id[i]) && !isupper((unsigned char)a->id[i]));
	CU_ASSERT_STRING_NOT_EQUAL(a->id, b->id);
	CU_ASSERT_EQUAL(a->nlinks, 2);  /* one link owner per upstream */
	CU_ASSERT_PTR_EQUAL(a->links[1].s, a);
	CU_ASSERT_EQUAL(a->links[1].server, 1);
	/* max_sessions reached: refused, not evicted. */
	CU_ASSERT_EQUAL(create(t, "k1", &c), -EBUSY);
	CU_ASSERT_PTR_EQUAL(session_find(t, a->id), a);
	CU_ASSERT_PTR_NULL(session_find(t, "nope"));
	session_destroy(t, a);
	CU_ASSERT_EQUAL(session_count(t), 1);
	CU_ASSERT_EQUAL(create(t, "k1", &c), 0);
	done(t);
}

static void test_key_cap(void)
{
	struct session_table *t = table(0, 10, 60000);
	struct session *a = NULL, *b = NULL, *c = NULL, *n1 = NULL, *n2 = NULL;

	session_table_set_key_cap(t, 2);
	CU_ASSERT_EQUAL(create(t, "k1", &a), 0);
	CU_ASSERT_EQUAL(create(t, "k1", &b), 0);
	/* k1 is at its cap; another key and sessions without a key are not. */
	CU_ASSERT_EQUAL(create(t, "k1", &c), -EDQUOT);
	CU_ASSERT_EQUAL(create(t, "k2", &c), 0);
	CU_ASSERT_EQUAL(create(t, NULL, &n1), 0);
	CU_ASSERT_EQUAL(create(t, "", &n2), 0);
	CU_ASSERT_EQUAL(create(t, NULL, &n2), 0);
	/* One ends: room for one more, not two. */
	session_destroy(t, a);
	CU_ASSERT_EQUAL(create(t, "k1", &a), 0);
	CU_ASSERT_EQUAL(create(t, "k1", &c), -EDQUOT);
	session_destroy(t, a);
	session_destroy(t, b);
	CU_ASSERT_EQUAL(create(t, "k1", &a), 0);
	CU_ASSERT_EQUAL(create(t, "k1", &b), 0);
	done(t);
}

static void test_idle_expiry(void)
{
	/* idle_ms 1 s: the sweep runs every second. */
	struct session_table *t = table(0, 10, 1000);
	struct session *idle = NULL, *busy = NULL;
	struct timeval tv = { 2, 500000 };

	expired = 0;
	CU_ASSERT_EQUAL(create(t, "", &idle), 0);
	CU_ASSERT_EQUAL(create(t, "", &busy), 0);
	char busy_id[SESSION_ID_LEN + 1], idle_id[SESSION_ID_LEN + 1];
	strcpy(busy_id, busy->id);
	strcpy(idle_id, idle->id);
	/* A session with an open stream is in use, not idle. */
	busy->stream = (struct stream *)1;
	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
	CU_ASSERT_EQUAL(expired, 1);
	CU_ASSERT_PTR_NULL(session_find(t, idle_id));
	CU_ASSERT_PTR_NOT_NULL(session_find(t, busy_id));
	busy->stream = NULL;
	done(t);
}

CU_MAIN("session", cu_quiet, NULL,
	{ "version negotiation", test_versions },
	{ "ids, link owners, the session cap", test_ids_and_cap },
	{ "sessions per key", test_key_cap },
	{ "capabilities shared by content", test_shared_caps },
	{ "idle expiry spares sessions in use", test_idle_expiry })
