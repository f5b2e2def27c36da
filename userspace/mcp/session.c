/* session: session table, ids, version negotiation, idle expiry. */
#include "mcp/session.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/rand.h>

#include "base/clock.h"
#include "base/hmap.h"
#include "base/htab.h"
#include "base/log.h"
#include "mcp/tasks.h"

const char *const session_versions[] = { "2025-11-25", "2025-06-18", "2025-03-26", NULL };

struct session_table {
	struct hmap *by_id;
	size_t nupstreams;
	struct relay *relay;
	unsigned max;
	unsigned max_per_key;       /* 0: no cap */
	struct session_counts *counts;  /* what the caps count: own_counts, or shared */
	struct session_counts *own_counts;
	unsigned loop;              /* session_table_set_loop */
	struct htab shared;         /* client capabilities and infos, by their text */
	int idle_ms;
	struct event *sweep;
	void (*on_expire)(void *arg, struct session *s);
	void *arg;
};

bool session_version_supported(const char *v)
{
	for (const char *const *p = session_versions; *p; p++)
		if (!strcmp(*p, v))
			return true;
	return false;
}

const char *session_negotiate(const char *requested)
{
	for (const char *const *p = session_versions; *p; p++)
		if (requested && !strcmp(*p, requested))
			return *p;
	return session_versions[0];
}

/* A client's capabilities or info, held once for all the sessions that sent the same. */
struct session_shared {
	struct htab_node hn;
	struct htab *in;
	size_t refs;
	cJSON *v;
	size_t n;
	char text[];                /* v printed, the key */
};

static uint64_t shared_hash(const struct htab *t, const void *key) { return htab_bytes_hash(t, key); }

static bool shared_eq(const struct htab_node *n, const void *key)
{
	const struct session_shared *e = htab_entry(n, struct session_shared, hn);

	return htab_bytes_eq(&(struct htab_bytes){ e->text, e->n }, key);
}

static const struct htab_type shared_type = { shared_hash, shared_eq };

static void shared_put(struct session_shared *e)
{
	if (!e || --e->refs)
		return;
	htab_remove(e->in, &e->hn);
	cJSON_Delete(e->v);
	free(e);
}

/* v (NULL: {}) as a shared read-only copy: 0 or -ENOMEM. */
static int shared_get(struct session_table *t, const cJSON *v, struct session_shared **out)
{
	char *text = v ? cJSON_PrintUnformatted(v) : NULL;
	struct htab_bytes key = { text ? text : "{}", text ? strlen(text) : 2 };
	uint64_t h = htab_bytes_hash(&t->shared, &key);
	struct htab_node *n = htab_find_hashed(&t->shared, &key, h);
	struct session_shared *e = NULL;
	int rc = 0;

	if (v && !text)
		return -ENOMEM;
	if (n) {
		e = htab_entry(n, struct session_shared, hn);
		e->refs++;
		goto out;
	}
	rc = -ENOMEM;
	e = malloc(sizeof(*e) + key.n + 1);
	if (!e)
		goto out;
	e->v = v ? cJSON_Duplicate(v, 1) : cJSON_CreateObject();
	if (!e->v) {
		free(e);
		e = NULL;
		goto out;
	}
	e->in = &t->shared;
	e->refs = 1;
	e->n = key.n;
	memcpy(e->text, key.p, key.n + 1);
	htab_insert_hashed(&t->shared, &e->hn, h);
	rc = 0;
out:
	cJSON_free(text);
	*out = e;
	return rc;
}

/* --- the book of calls in flight --------------------------------------------------------- */

static uint64_t book_hash(const struct htab *t, const void *key)
{
	return htab_hash_str(t, key);
}

static bool book_eq(const struct htab_node *n, const void *key)
{
	return !strcmp(htab_entry(n, struct session_booking, node)->key, key);
}

static const struct htab_type book_type = { book_hash, book_eq };

/* The session goes: whatever is still booked is out of the book (its owner frees it). */
static void unbooked(struct htab_node *n, void *arg)
{
	(void)arg;
	htab_entry(n, struct session_booking, node)->key = NULL;
}

int session_book(struct session *s, struct session_booking *b, const char *key)
{
	uint64_t h = htab_hash_str(&s->calls, key);

	if (htab_find_hashed(&s->calls, key, h))
		return -EEXIST;
	b->key = key;
	htab_insert_hashed(&s->calls, &b->node, h);
	return 0;
}

void session_unbook(struct session *s, struct session_booking *b)
{
	if (b->key) {
		htab_remove(&s->calls, &b->node);
		b->key = NULL;
	}
}

struct session_booking *session_booked(const struct session *s, const char *key)
{
	struct htab_node *n = htab_find(&s->calls, key);

	return n ? htab_entry(n, struct session_booking, node) : NULL;
}

static void session_free(struct session *s)
{
	shared_put(s->caps_ref);
	shared_put(s->info_ref);
	htab_drain(&s->calls, unbooked, NULL);
	htab_fini(&s->calls);
	hmap_free(s->relayed, free);
	hmap_free(s->subs, NULL);
	tasks_free(&s->tasks);
	free(s->links);
	free(s);
}

/* --- the caps' counts ---------------------------------------------------------------- */

struct session_counts {
	pthread_mutex_t mu;
	unsigned total;
	struct hmap *per_key;       /* key id -> open sessions, as a pointer-sized count */
};

struct session_counts *session_counts_new(void)
{
	struct session_counts *c = calloc(1, sizeof(*c));

	if (!c || !(c->per_key = hmap_new())) {
		free(c);
		return NULL;
	}
	pthread_mutex_init(&c->mu, NULL);
	return c;
}

void session_counts_free(struct session_counts *c)
{
	if (!c)
		return;
	hmap_free(c->per_key, NULL);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

/* A place for one more session of key_id ("" or NULL: none), within the caps. */
static int counts_take(struct session_table *t, const char *key_id)
{
	struct session_counts *c = t->counts;
	bool keyed = key_id && key_id[0];
	int rc = 0;

	pthread_mutex_lock(&c->mu);
	uintptr_t of_key = keyed ? (uintptr_t)hmap_get(c->per_key, key_id) : 0;
	if (c->total >= t->max)
		rc = -EBUSY;
	else if (t->max_per_key && of_key >= t->max_per_key)
		rc = -EDQUOT;
	else if (keyed && hmap_put(c->per_key, key_id, (void *)(of_key + 1), NULL))
		rc = -ENOMEM;
	else
		c->total++;
	pthread_mutex_unlock(&c->mu);
	return rc;
}

/* A session of a key ends: its key may open another. */
static void counts_give(struct session_table *t, const char *key_id)
{
	struct session_counts *c = t->counts;

	pthread_mutex_lock(&c->mu);
	c->total--;
	if (key_id[0]) {
		uintptr_t n = (uintptr_t)hmap_get(c->per_key, key_id);
		if (n <= 1)
			hmap_del(c->per_key, key_id);
		else if (hmap_put(c->per_key, key_id, (void *)(n - 1), NULL))
			log_warn("session table: cannot update the count of key %s", key_id);
	}
	pthread_mutex_unlock(&c->mu);
}

void session_table_share_counts(struct session_table *t, struct session_counts *c)
{
	t->counts = c;
}

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
	struct session_table *t = arg;
	uint64_t now = clock_loop_ms();
	struct hmap_iter it = hmap_iter(t->by_id);
	struct session *s;

	while (hmap_next(t->by_id, &it, NULL, (void **)&s)) {
		/* A session with a call in flight or an open stream is in use, not idle. */
		if (session_nbooked(s) || s->stream)
			continue;
		if (now - s->last_active_ms < (uint64_t)t->idle_ms)
			continue;
		log_info("session %.8s…: idle for %d ms, ended", s->id, t->idle_ms);
		if (t->on_expire)
			t->on_expire(t->arg, s);
		counts_give(t, s->key_id);
		hmap_del(t->by_id, s->id);
		session_free(s);
	}
}

int session_table_new(struct event_base *base, size_t nupstreams, unsigned max_sessions,
		      int idle_ms, struct relay *relay, void (*on_expire)(void *arg, struct session *s),
		      void *arg, struct session_table **out)
{
	struct session_table *t = calloc(1, sizeof(*t));
	struct timeval tv;

	if (!t)
		return -ENOMEM;
	t->by_id = hmap_new();
	t->counts = t->own_counts = session_counts_new();
	if (htab_init(&t->shared, &shared_type)) {
		session_table_free(t);
		return -ENOMEM;
	}
	t->nupstreams = nupstreams;
	t->relay = relay;
	t->max = max_sessions;
	t->idle_ms = idle_ms;
	t->on_expire = on_expire;
	t->arg = arg;
	t->sweep = event_new(base, -1, EV_PERSIST, on_sweep, t);
	if (!t->by_id || !t->counts || !t->sweep) {
		session_table_free(t);
		return -ENOMEM;
	}
	/* Sweep often enough that expiry is late by at most a tenth of the idle time. */
	int period = idle_ms / 10 < 1000 ? 1000 : (idle_ms / 10 > 30000 ? 30000 : idle_ms / 10);
	tv.tv_sec = period / 1000;
	tv.tv_usec = (period % 1000) * 1000;
	event_add(t->sweep, &tv);
	*out = t;
	return 0;
}

void session_table_free(struct session_table *t)
{
	if (!t)
		return;
	if (t->sweep)
		event_free(t->sweep);
	if (t->by_id && t->counts != t->own_counts) {  /* shared: what is left is given back */
		struct hmap_iter it = hmap_iter(t->by_id);
		struct session *s;
		while (hmap_next(t->by_id, &it, NULL, (void **)&s))
			counts_give(t, s->key_id);
	}
	hmap_free(t->by_id, (void (*)(void *))session_free);
	session_counts_free(t->own_counts);
	htab_fini(&t->shared);  /* empty: the sessions held every entry */
	free(t);
}

int session_create(struct session_table *t, const char *version, const cJSON *caps,
		   const cJSON *info, const char *key_id, struct session **out)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char rnd[SESSION_ID_LEN / 2];
	struct session *s;
	int rc = counts_take(t, key_id);

	if (rc)
		return rc;
	s = calloc(1, sizeof(*s));
	if (!s) {
		counts_give(t, key_id ? key_id : "");
		return -ENOMEM;
	}
	if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
		counts_give(t, key_id ? key_id : "");
		free(s);
		return -EIO;
	}
	/* whose: session_id_loop; last, so that an id's first characters (the records' and
	 * the logs' part of it) stay random */
	rnd[sizeof(rnd) - 1] = (unsigned char)t->loop;
	for (size_t i = 0; i < sizeof(rnd); i++) {
		s->id[2 * i] = hex[rnd[i] >> 4];
		s->id[2 * i + 1] = hex[rnd[i] & 15];
	}
	s->scope = SESSION_UNSCOPED;
	snprintf(s->version, sizeof(s->version), "%s", version);
	snprintf(s->key_id, sizeof(s->key_id), "%s", key_id ? key_id : "");
	if (shared_get(t, caps, &s->caps_ref) == 0 && shared_get(t, info, &s->info_ref) == 0) {
		s->client_caps = s->caps_ref->v;
		s->client_info = s->info_ref->v;
	}
	s->links = calloc(t->nupstreams ? t->nupstreams : 1, sizeof(*s->links));
	s->nlinks = t->nupstreams;
	for (size_t i = 0; s->links && i < s->nlinks; i++)
		s->links[i] = (struct session_link){ t->relay, s, i, NULL, NULL, false, false };
	s->next_relay_id = 1;
	s->last_active_ms = clock_loop_ms();
	if (!s->client_caps || !s->client_info || !s->links || htab_init(&s->calls, &book_type) ||
	    hmap_put(t->by_id, s->id, s, NULL)) {
		counts_give(t, s->key_id);
		session_free(s);
		return -ENOMEM;
	}
	*out = s;
	return 0;
}

void session_table_set_key_cap(struct session_table *t, unsigned max_per_key)
{
	t->max_per_key = max_per_key;
}

void session_table_set_loop(struct session_table *t, unsigned loop)
{
	t->loop = loop < SESSION_LOOPS_MAX ? loop : 0;
}

static int hex_value(char ch)
{
	return ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

int session_id_loop(const char *id)
{
	if (!id || strnlen(id, SESSION_ID_LEN + 1) != SESSION_ID_LEN)
		return -1;
	int hi = hex_value(id[SESSION_ID_LEN - 2]), lo = hex_value(id[SESSION_ID_LEN - 1]);

	return hi < 0 || lo < 0 || hi * 16 + lo >= SESSION_LOOPS_MAX ? -1 : hi * 16 + lo;
}

struct session *session_find(struct session_table *t, const char *id)
{
	return id ? hmap_get(t->by_id, id) : NULL;
}

void session_touch(struct session *s)
{
	s->last_active_ms = clock_loop_ms();
}

void session_destroy(struct session_table *t, struct session *s)
{
	counts_give(t, s->key_id);
	hmap_del(t->by_id, s->id);
	session_free(s);
}

size_t session_count(const struct session_table *t)
{
	return hmap_count(t->by_id);
}

void session_foreach(struct session_table *t, void (*fn)(void *arg, struct session *s), void *arg)
{
	struct hmap_iter it = hmap_iter(t->by_id);
	struct session *s;

	while (hmap_next(t->by_id, &it, NULL, (void **)&s))
		fn(arg, s);
}
