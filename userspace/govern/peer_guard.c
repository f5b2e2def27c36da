/* peer_guard: failure counts per peer in a fixed table on the shared hash table and list. */
#include "govern/peer_guard.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/htab.h"
#include "base/list.h"

#define PEER_KEY_LEN 17        /* a tag byte, then up to 16 address bytes */

struct peer {
	struct htab_node hn;           /* in g->peers while tracked */
	struct list_head link;         /* g->lru (most recently failed first), or g->free */
	uint8_t addr[PEER_KEY_LEN];
	uint32_t failures;             /* in the current window */
	uint32_t strikes;              /* blocks so far: the next one lasts block_ms << strikes */
	int64_t window_start;
	int64_t last_failure;
	int64_t blocked_until;
};

struct peer_guard {
	struct peer_guard_limits lim;
	struct peer *slab;             /* capacity entries, allocated once */
	size_t fresh;                  /* slab[fresh..] never used: untouched, so not resident
					* until guessing peers need them (8192 entries: ~0.7 MB) */
	struct htab peers;             /* by addr; SipHash under a random seed: addresses cannot
					* be picked to collide */
	struct list_head lru, free;
	/* Every loop authenticates (workers: N): one lock around a look or a change, and the
	 * count of peers tracked read without it, so that no failing peer (the usual case)
	 * costs no lock. */
	pthread_mutex_t mu;
	_Atomic size_t tracked;
	_Atomic unsigned refs;          /* keystores sharing it (peer_guard_share) */
};

static uint64_t addr_hash(const struct htab *t, const void *key)
{
	return htab_hash_bytes(t, key, PEER_KEY_LEN);
}

static bool addr_eq(const struct htab_node *hn, const void *key)
{
	return !memcmp(htab_entry(hn, struct peer, hn)->addr, key, PEER_KEY_LEN);
}

static const struct htab_type addr_type = { addr_hash, addr_eq };

static void peer_key(const char *peer, uint8_t out[PEER_KEY_LEN])
{
	char buf[64];
	struct in6_addr a6;
	struct in_addr a4;
	size_t n;

	memset(out, 0, PEER_KEY_LEN);
	if (!peer)
		peer = "";
	/* strip [brackets] and a %zone */
	if (peer[0] == '[')
		peer++;
	n = strcspn(peer, "]%");
	if (n < sizeof(buf)) {
		memcpy(buf, peer, n);
		buf[n] = '\0';
		if (inet_pton(AF_INET, buf, &a4) == 1) {
			out[0] = 4;
			memcpy(out + 1, &a4, 4);
			return;
		}
		if (inet_pton(AF_INET6, buf, &a6) == 1) {
			if (IN6_IS_ADDR_V4MAPPED(&a6)) {
				out[0] = 4;
				memcpy(out + 1, a6.s6_addr + 12, 4);
			} else {
				/* one host usually owns a whole /64 */
				out[0] = 6;
				memcpy(out + 1, a6.s6_addr, 8);
			}
			return;
		}
	}
	/* not an address (a unix socket peer, say): its FNV-1a hash and first bytes */
	uint64_t h = 0xcbf29ce484222325ULL;

	for (const char *c = peer; *c; c++)
		h = (h ^ (unsigned char)*c) * 0x100000001b3ULL;

	out[0] = 1;
	memcpy(out + 1, &h, sizeof(h));
	memcpy(out + 9, peer, strnlen(peer, PEER_KEY_LEN - 9));
}

static struct peer *find(const struct peer_guard *g, const char *peer, uint8_t a[PEER_KEY_LEN])
{
	struct htab_node *hn;

	peer_key(peer, a);
	hn = htab_find(&g->peers, a);
	return hn ? htab_entry(hn, struct peer, hn) : NULL;
}

static void release(struct peer_guard *g, struct peer *p)
{
	htab_remove(&g->peers, &p->hn);
	atomic_store_explicit(&g->tracked, htab_count(&g->peers), memory_order_relaxed);
	list_del(&p->link);
	memset(p, 0, sizeof(*p));
	list_add(&p->link, &g->free);
}

int peer_guard_new(const struct peer_guard_limits *lim, struct peer_guard **out)
{
	struct peer_guard *g;
	int rc;

	if (!lim->max_failures || lim->window_ms <= 0 || lim->block_ms <= 0 ||
	    lim->max_block_ms < lim->block_ms || !lim->capacity || lim->capacity > (1u << 24))
		return -EINVAL;
	g = xcalloc(1, sizeof(*g));
	/* The one step that can fail (no randomness for the seed), and it holds nothing then. */
	if ((rc = htab_init(&g->peers, &addr_type)) != 0) {
		free(g);
		return rc;
	}
	g->lim = *lim;
	atomic_init(&g->refs, 1);
	pthread_mutex_init(&g->mu, NULL);
	g->slab = xcalloc(lim->capacity, sizeof(*g->slab));
	list_init(&g->lru);
	list_init(&g->free);
	*out = g;
	return 0;
}

struct peer_guard *peer_guard_share(struct peer_guard *g)
{
	atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
	return g;
}

void peer_guard_free(struct peer_guard *g)
{
	if (!g || atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) != 1)
		return;
	htab_fini(&g->peers);
	pthread_mutex_destroy(&g->mu);
	free(g->slab);
	free(g);
}

bool peer_guard_blocked(struct peer_guard *g, const char *peer, int64_t now_ms,
			int64_t *retry_after_ms)
{
	uint8_t a[PEER_KEY_LEN];
	struct peer *p;

	*retry_after_ms = 0;
	/* No address has failed lately (the usual case): nothing to parse or look up. */
	if (!atomic_load_explicit(&g->tracked, memory_order_relaxed))
		return false;
	pthread_mutex_lock(&g->mu);
	p = find(g, peer, a);
	if (p && p->blocked_until > now_ms)
		*retry_after_ms = p->blocked_until - now_ms;
	pthread_mutex_unlock(&g->mu);
	return *retry_after_ms > 0;
}

static void failure_locked(struct peer_guard *g, const char *peer, int64_t now_ms)
{
	uint8_t a[PEER_KEY_LEN];
	struct peer *p = find(g, peer, a);

	if (!p) {
		/* A never used entry, a released one, or (full) the one of the peer whose last
		 * failure is oldest, forgotten. */
		if (g->fresh < g->lim.capacity && list_empty(&g->free)) {
			p = &g->slab[g->fresh++];
		} else {
			if (list_empty(&g->free))
				release(g, list_last_entry(&g->lru, struct peer, link));
			p = list_first_entry(&g->free, struct peer, link);
			list_del(&p->link);
		}
		memcpy(p->addr, a, PEER_KEY_LEN);
		p->window_start = now_ms;
		htab_insert(&g->peers, &p->hn, p->addr);
		atomic_store_explicit(&g->tracked, htab_count(&g->peers), memory_order_relaxed);
	} else {
		list_del(&p->link);
	}
	list_add(&p->link, &g->lru);

	int64_t quiet_since = p->last_failure > p->blocked_until ? p->last_failure
								   : p->blocked_until;
	if (p->strikes && now_ms - quiet_since > g->lim.max_block_ms)
		p->strikes = 0;
	if (now_ms - p->window_start >= g->lim.window_ms) {
		p->window_start = now_ms;
		p->failures = 0;
	}
	p->failures++;
	p->last_failure = now_ms;
	if (p->failures >= g->lim.max_failures) {
		int64_t block = g->lim.block_ms;

		for (uint32_t s = 0; s < p->strikes && block < g->lim.max_block_ms; s++)
			block *= 2;
		if (block > g->lim.max_block_ms)
			block = g->lim.max_block_ms;
		p->blocked_until = now_ms + block;
		p->strikes++;
		p->failures = 0;
		p->window_start = now_ms;
	}
}

void peer_guard_failure(struct peer_guard *g, const char *peer, int64_t now_ms)
{
	pthread_mutex_lock(&g->mu);
	failure_locked(g, peer, now_ms);
	pthread_mutex_unlock(&g->mu);
}

void peer_guard_success(struct peer_guard *g, const char *peer, int64_t now_ms)
{
	uint8_t a[PEER_KEY_LEN];
	struct peer *p;

	(void)now_ms;
	if (!atomic_load_explicit(&g->tracked, memory_order_relaxed))
		return;
	pthread_mutex_lock(&g->mu);
	if ((p = find(g, peer, a))) {
		p->failures = 0;
		if (!p->strikes)
			release(g, p);
	}
	pthread_mutex_unlock(&g->mu);
}
