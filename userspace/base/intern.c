/* intern: ids for names; an htab by name plus an array by id, free ids on a stack. */
#include "base/intern.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/htab.h"

struct name {
	struct htab_node hn;
	uint32_t id, refs;
	size_t len;
	char s[];
};

struct intern {
	struct htab by_name;
	struct name **by_id;    /* by_id[id]; [0] unused */
	uint32_t *free_ids;     /* released ids, reused first */
	size_t nfree, cap, next, max;
};

static bool name_eq(const struct htab_node *hn, const void *key)
{
	const struct name *nm = htab_entry(hn, struct name, hn);
	struct htab_bytes mine = { nm->s, nm->len };

	return htab_bytes_eq(&mine, key);
}

static const struct htab_type name_type = { htab_bytes_hash, name_eq };

int intern_new(size_t max, struct intern **out)
{
	struct intern *in = xcalloc(1, sizeof(*in));
	int rc = htab_init(&in->by_name, &name_type);

	*out = NULL;
	if (rc) {
		free(in);
		return rc;
	}
	in->max = max && max < UINT32_MAX - 1 ? max : UINT32_MAX - 1;
	in->next = 1;
	*out = in;
	return 0;
}

void intern_free(struct intern *in)
{
	if (!in)
		return;
	for (size_t id = 1; id < in->next; id++)
		free(in->by_id[id]);
	free(in->by_id);
	free(in->free_ids);
	htab_fini(&in->by_name);
	free(in);
}

static struct name *lookup(const struct intern *in, const char *s, size_t n, uint64_t *hash)
{
	struct htab_bytes key = { s, n };
	struct htab_node *hn;

	*hash = htab_bytes_hash(&in->by_name, &key);
	hn = htab_find_hashed(&in->by_name, &key, *hash);
	return hn ? htab_entry(hn, struct name, hn) : NULL;
}

uint32_t intern_find(const struct intern *in, const char *s, size_t n)
{
	uint64_t h;
	struct name *nm = lookup(in, s, n, &h);

	return nm ? nm->id : INTERN_NONE;
}

uint32_t intern_get(struct intern *in, const char *s, size_t n)
{
	uint64_t h;
	struct name *nm = lookup(in, s, n, &h);
	uint32_t id;

	if (nm) {
		nm->refs++;
		return nm->id;
	}
	if (htab_count(&in->by_name) >= in->max)
		return INTERN_NONE;
	if (in->nfree) {
		id = in->free_ids[--in->nfree];
	} else {
		if (in->next == in->cap || !in->cap) {
			in->cap = in->cap ? 2 * in->cap : 64;
			in->by_id = xrealloc(in->by_id, in->cap * sizeof(*in->by_id));
			in->free_ids = xrealloc(in->free_ids, in->cap * sizeof(*in->free_ids));
		}
		id = (uint32_t)in->next++;
	}
	nm = xmalloc(sizeof(*nm) + n + 1);
	nm->id = id;
	nm->refs = 1;
	nm->len = n;
	memcpy(nm->s, s, n);
	nm->s[n] = '\0';
	in->by_id[id] = nm;
	htab_insert_hashed(&in->by_name, &nm->hn, h);
	return id;
}

void intern_ref(struct intern *in, uint32_t id)
{
	if (id != INTERN_NONE && id < in->next && in->by_id[id])
		in->by_id[id]->refs++;
}

void intern_put(struct intern *in, uint32_t id)
{
	struct name *nm;

	if (id == INTERN_NONE || id >= in->next || !(nm = in->by_id[id]) || --nm->refs)
		return;
	htab_remove(&in->by_name, &nm->hn);
	in->by_id[id] = NULL;
	in->free_ids[in->nfree++] = id;
	free(nm);
}

const char *intern_str(const struct intern *in, uint32_t id, size_t *len)
{
	const struct name *nm = id && id < in->next ? in->by_id[id] : NULL;

	if (len)
		*len = nm ? nm->len : 0;
	return nm ? nm->s : NULL;
}

size_t intern_count(const struct intern *in)
{
	return htab_count(&in->by_name);
}
