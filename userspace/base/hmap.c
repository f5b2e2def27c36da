/* hmap: string-keyed map on the one hash table. */
#include "base/hmap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"

struct hmap {
	struct htab t;
};

struct node {
	struct htab_node hn;
	void *value;
	char key[];
};

static uint64_t node_hash(const struct htab *t, const void *key)
{
	return htab_hash_str(t, key);
}

static bool node_eq(const struct htab_node *n, const void *key)
{
	return !strcmp(htab_entry(n, struct node, hn)->key, key);
}

static const struct htab_type hmap_type = { node_hash, node_eq };

struct hmap *hmap_new(void)
{
	struct hmap *m = malloc(sizeof(*m));

	if (m && htab_init(&m->t, &hmap_type)) {
		free(m);
		m = NULL;
	}
	return m;
}

struct free_ctx { void (*free_value)(void *); };

static void free_node(struct htab_node *hn, void *arg)
{
	struct free_ctx *fc = arg;
	struct node *n = htab_entry(hn, struct node, hn);

	if (fc->free_value)
		fc->free_value(n->value);
	alloc_cache_put(n);
}

void hmap_free(struct hmap *m, void (*free_value)(void *))
{
	struct free_ctx fc = { free_value };

	if (!m)
		return;
	htab_drain(&m->t, free_node, &fc);
	htab_fini(&m->t);
	free(m);
}

int hmap_put(struct hmap *m, const char *key, void *value, void **old)
{
	uint64_t h = htab_hash_str(&m->t, key);
	struct htab_node *hn = htab_find_hashed(&m->t, key, h);
	size_t klen;
	struct node *n;

	if (hn) {
		n = htab_entry(hn, struct node, hn);
		if (old)
			*old = n->value;
		n->value = value;
		return 0;
	}
	if (old)
		*old = NULL;
	klen = strlen(key);
	n = alloc_cache_get(sizeof(*n) + klen + 1);     /* a call's pending entry comes and goes */
	n->value = value;
	memcpy(n->key, key, klen + 1);
	htab_insert_hashed(&m->t, &n->hn, h);
	return 0;
}

int hmap_put_lazy(struct hmap **m, const char *key, void *value, void **old)
{
	if (!*m && !(*m = hmap_new())) {
		if (old)
			*old = NULL;
		return -ENOMEM;
	}
	return hmap_put(*m, key, value, old);
}

void *hmap_get(const struct hmap *m, const char *key)
{
	struct htab_node *hn = m ? htab_find(&m->t, key) : NULL;

	return hn ? htab_entry(hn, struct node, hn)->value : NULL;
}

void *hmap_del(struct hmap *m, const char *key)
{
	struct htab_node *hn = m ? htab_find(&m->t, key) : NULL;
	struct node *n;
	void *v;

	if (!hn)
		return NULL;
	n = htab_entry(hn, struct node, hn);
	htab_remove(&m->t, hn);
	v = n->value;
	alloc_cache_put(n);
	return v;
}

size_t hmap_count(const struct hmap *m) { return m ? htab_count(&m->t) : 0; }

struct hmap_iter hmap_iter(const struct hmap *m)
{
	return m ? (struct hmap_iter){ htab_iter(&m->t) } : (struct hmap_iter){ { NULL, 0, NULL } };
}

int hmap_next(const struct hmap *m, struct hmap_iter *it, const char **key, void **value)
{
	struct htab_node *hn = m ? htab_next(&it->it) : NULL;
	struct node *n;

	if (!hn)
		return 0;
	n = htab_entry(hn, struct node, hn);
	if (key)
		*key = n->key;
	if (value)
		*value = n->value;
	return 1;
}
