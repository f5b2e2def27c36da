/* The one hash table, the one list and interned names: intrusive nodes, typed keys, removal
 * while iterating, ids that live as long as their references; hmap made on first use. */
#include <CUnit/Basic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/hmap.h"
#include "base/htab.h"
#include "base/intern.h"
#include "base/list.h"
#include "cunit_main.h"

struct item {
	struct htab_node hn;
	struct list_head link;
	uint64_t id;
	char name[16];
};

static uint64_t id_hash(const struct htab *t, const void *key)
{
	return htab_hash_u64(t, *(const uint64_t *)key);
}

static bool id_eq(const struct htab_node *n, const void *key)
{
	return htab_entry(n, struct item, hn)->id == *(const uint64_t *)key;
}

static const struct htab_type id_type = { id_hash, id_eq };

static uint64_t name_hash(const struct htab *t, const void *key) { return htab_hash_str(t, key); }

static bool name_eq(const struct htab_node *n, const void *key)
{
	return !strcmp(htab_entry(n, struct item, hn)->name, key);
}

static const struct htab_type name_type = { name_hash, name_eq };

static void free_item(struct htab_node *n, void *arg)
{
	(*(int *)arg)++;
	free(htab_entry(n, struct item, hn));
}

static void test_integer_keys(void)
{
	struct htab t;
	int freed = 0;

	CU_ASSERT_EQUAL_FATAL(htab_init(&t, &id_type), 0);
	for (uint64_t i = 0; i < 5000; i++) {
		struct item *it = calloc(1, sizeof(*it));
		it->id = i * 7919;
		htab_insert(&t, &it->hn, &it->id);
	}
	CU_ASSERT_EQUAL(htab_count(&t), 5000);
	CU_ASSERT(t.nbuckets >= 4096);  /* grew with the load */
	for (uint64_t i = 0; i < 5000; i++) {
		uint64_t k = i * 7919;
		struct htab_node *n = htab_find(&t, &k);
		CU_ASSERT_PTR_NOT_NULL_FATAL(n);
		CU_ASSERT_EQUAL(htab_entry(n, struct item, hn)->id, k);
	}
	uint64_t absent = 3;
	CU_ASSERT_PTR_NULL(htab_find(&t, &absent));

	/* Remove every odd id while iterating: the iterator survives removing the node it gave. */
	struct htab_iter it = htab_iter(&t);
	size_t seen = 0;
	for (struct htab_node *n; (n = htab_next(&it)); seen++) {
		struct item *e = htab_entry(n, struct item, hn);
		if (e->id % 2) {
			htab_remove(&t, n);
			free(e);
		}
	}
	CU_ASSERT_EQUAL(seen, 5000);
	CU_ASSERT_EQUAL(htab_count(&t), 2500);
	htab_drain(&t, free_item, &freed);
	CU_ASSERT_EQUAL(freed, 2500);
	CU_ASSERT_EQUAL(htab_count(&t), 0);
	htab_fini(&t);
}

/* A big table fills to a load of 2 before it doubles (half the array at 100k keys); every
 * node is still found. */
static void test_big_table_load(void)
{
	enum { N = 100000 };
	struct item *items = calloc(N, sizeof(*items));
	struct htab t;

	CU_ASSERT_PTR_NOT_NULL_FATAL(items);
	CU_ASSERT_EQUAL_FATAL(htab_init(&t, &id_type), 0);
	for (uint64_t i = 0; i < N; i++) {
		items[i].id = i * 2654435761u;
		htab_insert(&t, &items[i].hn, &items[i].id);
	}
	CU_ASSERT_EQUAL(t.nbuckets, 65536);
	for (uint64_t i = 0; i < N; i += 7)
		CU_ASSERT_PTR_EQUAL(htab_find(&t, &items[i].id), &items[i].hn);
	htab_fini(&t);
	free(items);
}

/* A table holds no bucket array while empty: not before the first insert, and not once the
 * last node went (even while iterating over it), and it works again after. */
static void test_empty_holds_nothing(void)
{
	struct item items[40];
	struct htab t;

	CU_ASSERT_EQUAL_FATAL(htab_init(&t, &id_type), 0);
	CU_ASSERT_PTR_NULL(t.buckets);
	for (int round = 0; round < 2; round++) {
		for (uint64_t i = 0; i < 40; i++) {
			items[i].id = i;
			htab_insert(&t, &items[i].hn, &items[i].id);
		}
		CU_ASSERT_PTR_NOT_NULL(t.buckets);
		struct htab_iter it = htab_iter(&t);
		size_t seen = 0;
		for (struct htab_node *n; (n = htab_next(&it)); seen++)
			htab_remove(&t, n);
		CU_ASSERT_EQUAL(seen, 40);
		CU_ASSERT_EQUAL(htab_count(&t), 0);
		CU_ASSERT_PTR_NULL(t.buckets);
		CU_ASSERT_EQUAL(t.nbuckets, 0);
		uint64_t k = 1;
		CU_ASSERT_PTR_NULL(htab_find(&t, &k));
		htab_remove(&t, &items[1].hn);  /* not in it: no effect */
	}
	htab_fini(&t);
}

/* A map left NULL until its first put reads as empty; the put makes it. */
static void test_hmap_lazy(void)
{
	struct hmap *m = NULL;
	struct hmap_iter it = hmap_iter(m);
	const char *k;
	void *v, *old = (void *)1;

	CU_ASSERT_PTR_NULL(hmap_get(m, "a"));
	CU_ASSERT_PTR_NULL(hmap_del(m, "a"));
	CU_ASSERT_EQUAL(hmap_count(m), 0);
	CU_ASSERT_FALSE(hmap_next(m, &it, &k, &v));
	hmap_free(m, NULL);
	CU_ASSERT_EQUAL(hmap_put_lazy(&m, "a", (void *)7, &old), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	CU_ASSERT_PTR_NULL(old);
	struct hmap *same = m;
	CU_ASSERT_EQUAL(hmap_put_lazy(&m, "a", (void *)8, &old), 0);
	CU_ASSERT_PTR_EQUAL(m, same);
	CU_ASSERT_PTR_EQUAL(old, (void *)7);
	CU_ASSERT_EQUAL(hmap_count(m), 1);
	it = hmap_iter(m);
	CU_ASSERT_TRUE(hmap_next(m, &it, &k, &v));
	CU_ASSERT_STRING_EQUAL(k, "a");
	CU_ASSERT_PTR_EQUAL(v, (void *)8);
	CU_ASSERT_FALSE(hmap_next(m, &it, &k, &v));
	hmap_free(m, NULL);
}

static void test_string_keys_and_seed(void)
{
	struct htab a, b;
	struct item x = { .name = "tools/call" };

	CU_ASSERT_EQUAL_FATAL(htab_init(&a, &name_type), 0);
	CU_ASSERT_EQUAL_FATAL(htab_init(&b, &name_type), 0);
	/* Per-table seeds: an attacker cannot precompute colliding names. */
	CU_ASSERT_NOT_EQUAL(htab_hash_str(&a, "x"), htab_hash_str(&b, "x"));
	htab_insert(&a, &x.hn, x.name);
	CU_ASSERT_PTR_EQUAL(htab_find(&a, "tools/call"), &x.hn);
	CU_ASSERT_PTR_NULL(htab_find(&a, "tools/cal"));
	htab_remove(&a, &x.hn);
	CU_ASSERT_PTR_NULL(htab_find(&a, "tools/call"));
	htab_fini(&a);
	htab_fini(&b);
}

static void test_list(void)
{
	struct list_head q = LIST_HEAD_INIT(q);
	struct item items[4], *pos, *tmp;
	int order[4], n = 0;

	CU_ASSERT_TRUE(list_empty(&q));
	for (int i = 0; i < 4; i++) {
		items[i].id = (uint64_t)i;
		list_add_tail(&items[i].link, &q);
	}
	list_move(&items[3].link, &q);  /* to the front */
	list_for_each_entry(pos, &q, link)
		order[n++] = (int)pos->id;
	CU_ASSERT_EQUAL(n, 4);
	CU_ASSERT(order[0] == 3 && order[1] == 0 && order[2] == 1 && order[3] == 2);
	list_for_each_entry_safe(pos, tmp, &q, link)
		if (pos->id % 2 == 0)
			list_del(&pos->link);
	CU_ASSERT_FALSE(list_linked(&items[0].link));
	CU_ASSERT_TRUE(list_linked(&items[1].link));
	CU_ASSERT_PTR_EQUAL(list_first_entry(&q, struct item, link), &items[3]);
	CU_ASSERT_PTR_EQUAL(list_last_entry(&q, struct item, link), &items[1]);
	list_del(&items[0].link);  /* twice is harmless */

	/* A consumer takes the whole queue at once, behind what it already holds. */
	struct list_head batch = LIST_HEAD_INIT(batch);
	list_add_tail(&items[0].link, &batch);
	list_splice_tail_init(&q, &batch);
	CU_ASSERT_TRUE(list_empty(&q));
	n = 0;
	list_for_each_entry(pos, &batch, link)
		order[n++] = (int)pos->id;
	CU_ASSERT_EQUAL(n, 3);
	CU_ASSERT(order[0] == 0 && order[1] == 3 && order[2] == 1);
	list_splice_tail_init(&q, &batch);  /* an empty list moves nothing */
	CU_ASSERT_PTR_EQUAL(list_last_entry(&batch, struct item, link), &items[1]);
	list_for_each_entry_safe(pos, tmp, &batch, link)
		list_del(&pos->link);
	CU_ASSERT_TRUE(list_empty(&batch));
}

/* Ids are stable while referenced, shared by equal names, freed with the last reference and
 * then reused; a full table says so instead of growing. */
static void test_intern(void)
{
	struct intern *in;
	uint32_t a, b, c, d;
	size_t len;

	CU_ASSERT_FATAL(intern_new(2, &in) == 0);
	a = intern_get(in, "key-a", 5);
	b = intern_get(in, "team\0x", 6);            /* bytes, not C strings */
	CU_ASSERT(a != INTERN_NONE && b != INTERN_NONE && a != b);
	CU_ASSERT_EQUAL(intern_get(in, "key-a", 5), a);
	CU_ASSERT_EQUAL(intern_find(in, "key-a", 5), a);
	CU_ASSERT_EQUAL(intern_find(in, "team", 4), INTERN_NONE);
	CU_ASSERT_STRING_EQUAL(intern_str(in, a, &len), "key-a");
	CU_ASSERT_EQUAL(len, 5);
	CU_ASSERT_EQUAL(intern_get(in, "third", 5), INTERN_NONE);   /* max 2 */
	intern_put(in, a);                          /* one of two references */
	CU_ASSERT_EQUAL(intern_find(in, "key-a", 5), a);
	intern_put(in, a);
	CU_ASSERT_EQUAL(intern_find(in, "key-a", 5), INTERN_NONE);
	CU_ASSERT_PTR_NULL(intern_str(in, a, NULL));
	CU_ASSERT_EQUAL(intern_count(in), 1);
	c = intern_get(in, "third", 5);             /* room again, and the freed id comes back */
	CU_ASSERT_EQUAL(c, a);
	intern_ref(in, c);
	intern_put(in, c);
	CU_ASSERT_STRING_EQUAL(intern_str(in, c, NULL), "third");
	intern_put(in, INTERN_NONE);                /* no-ops */
	intern_put(in, 999);
	for (int i = 0; i < 3; i++)
		intern_put(in, b);
	d = intern_get(in, "x", 1);
	CU_ASSERT_EQUAL(d, b);
	intern_free(in);                            /* with c and d still referenced */
}

/* The memo of recent lookups never answers for another name: names that share a pair of
 * slots (same first and last 8 bytes and length), a name released and its id reused for another, and
 * every prefix of a name, each get their own id or none. */
static void test_intern_memo(void)
{
	static const char x[] = "key-0000-xxxxxxxx-0000-end", y[] = "key-0000-yyyyyyyy-0000-end",
			  z[] = "key-0000-zzzzzzzz-0000-end";
	struct intern *in;
	uint32_t a, b, c, e;

	CU_ASSERT_FATAL(intern_new(0, &in) == 0);
	a = intern_get(in, x, sizeof(x) - 1);
	CU_ASSERT_EQUAL(intern_find(in, y, sizeof(y) - 1), INTERN_NONE);
	b = intern_get(in, y, sizeof(y) - 1);
	CU_ASSERT(a != INTERN_NONE && b != INTERN_NONE && a != b);
	e = intern_get(in, z, sizeof(z) - 1);
	CU_ASSERT(e != INTERN_NONE && e != a && e != b);
	for (int i = 0; i < 3; i++) {               /* three names for a pair of slots */
		CU_ASSERT_EQUAL(intern_find(in, x, sizeof(x) - 1), a);
		CU_ASSERT_EQUAL(intern_find(in, y, sizeof(y) - 1), b);
		CU_ASSERT_EQUAL(intern_find(in, z, sizeof(z) - 1), e);
		CU_ASSERT_EQUAL(intern_find(in, y, sizeof(y) - 1), b);
	}
	for (size_t n = 0; n < sizeof(x) - 1; n++)
		CU_ASSERT_EQUAL(intern_find(in, x, n), INTERN_NONE);
	intern_put(in, a);                          /* released while remembered */
	CU_ASSERT_EQUAL(intern_find(in, x, sizeof(x) - 1), INTERN_NONE);
	c = intern_get(in, "another", 7);           /* takes a's id */
	CU_ASSERT_EQUAL(c, a);
	CU_ASSERT_EQUAL(intern_find(in, x, sizeof(x) - 1), INTERN_NONE);
	CU_ASSERT_EQUAL(intern_find(in, "another", 7), c);
	CU_ASSERT_EQUAL(intern_get(in, y, sizeof(y) - 1), b);  /* a second reference */
	intern_put(in, b);
	CU_ASSERT_EQUAL(intern_find(in, y, sizeof(y) - 1), b);
	intern_free(in);
}

CU_MAIN("htab", NULL, NULL,
	{ "integer keys, growth, removal while iterating", test_integer_keys },
	{ "no bucket array while empty", test_empty_holds_nothing },
	{ "big tables fill to a load of 2", test_big_table_load },
	{ "string keys, per-table seeds", test_string_keys_and_seed },
	{ "hmap: NULL until the first put", test_hmap_lazy },
	{ "intrusive list", test_list },
	{ "interned names", test_intern },
	{ "interned names: the memo never answers for another", test_intern_memo })
