/* intern: ids for names; an htab by name plus an array by id, free ids on a stack, and a
 * memo of the ids last looked up. */
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

/* The memo: a call looks up the same few names (its key, server and tool) as the calls before
 * it, so a pair of slots chosen by a cheap mix of a name's ends and length remembers the ids
 * found there, the newer first. A hit is checked against the name itself, so a stale or
 * colliding slot is only a miss: the table's keyed hash (htab.h) still decides, and a client
 * who picks names that share a pair gains nothing but the miss. */
#define MEMO_BITS 6

struct intern {
	struct htab by_name;
	struct name **by_id;    /* by_id[id]; [0] unused */
	uint32_t *free_ids;     /* released ids, reused first */
	uint32_t *memo;         /* 1 << MEMO_BITS ids or 0: a cache, filled by lookups too */
	size_t nfree, cap, next, max;
};

static size_t memo_slot(const char *s, size_t n)
{
	uint64_t a = 0, b = 0;

	memcpy(&a, s, n < 8 ? n : 8);
	if (n > 8)
		memcpy(&b, s + n - 8, 8);
	a ^= (b << 1 | b >> 63) ^ (uint64_t)n << 56;
	a ^= a >> 33;                           /* murmur3's finaliser */
	a *= 0xff51afd7ed558ccdull;
	a ^= a >> 33;
	a *= 0xc4ceb9fe1a85ec53ull;
	a ^= a >> 33;
	return (size_t)(a >> (64 - MEMO_BITS)) & ~(size_t)1;    /* the pair's first slot */
}

static struct name *memo_get(const struct intern *in, size_t slot, const char *s, size_t n)
{
	for (size_t i = slot; i < slot + 2; i++) {
		uint32_t id = in->memo[i];
		struct name *nm = id ? in->by_id[id] : NULL;    /* NULL once released */

		if (nm && nm->len == n && !memcmp(nm->s, s, n))
			return nm;
	}
	return NULL;
}

static void memo_put(const struct intern *in, size_t slot, uint32_t id)
{
	if (in->memo[slot] != id)
		in->memo[slot + 1] = in->memo[slot];
	in->memo[slot] = id;
}

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
	in->memo = xcalloc((size_t)1 << MEMO_BITS, sizeof(*in->memo));
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
	free(in->memo);
	htab_fini(&in->by_name);
	free(in);
}

/* The name s[0..n), or NULL; *slot is its memo slot. Found in the table, it is remembered
 * there. *hash is set only when the table was asked (for an insert after a miss). */
static struct name *lookup(const struct intern *in, const char *s, size_t n, size_t *slot,
			   uint64_t *hash)
{
	struct htab_bytes key = { s, n };
	struct htab_node *hn;
	struct name *nm;

	*slot = memo_slot(s, n);
	if ((nm = memo_get(in, *slot, s, n)))
		return nm;
	*hash = htab_bytes_hash(&in->by_name, &key);
	hn = htab_find_hashed(&in->by_name, &key, *hash);
	if (!hn)
		return NULL;
	nm = htab_entry(hn, struct name, hn);
	memo_put(in, *slot, nm->id);
	return nm;
}

uint32_t intern_find(const struct intern *in, const char *s, size_t n)
{
	uint64_t h = 0;
	size_t slot;
	struct name *nm = lookup(in, s, n, &slot, &h);

	return nm ? nm->id : INTERN_NONE;
}

uint32_t intern_get(struct intern *in, const char *s, size_t n)
{
	uint64_t h = 0;
	size_t slot;
	struct name *nm = lookup(in, s, n, &slot, &h);
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
	memo_put(in, slot, id);
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
