/* keys_int.h: what the keystore's files share (keys.c: the tables and their changes;
 * keys_auth.c: authentication). Not an interface. */
#ifndef WARDEN_KEYS_INT_H
#define WARDEN_KEYS_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <openssl/evp.h>

#include "base/htab.h"
#include "govern/keys.h"
#include "govern/peer_guard.h"

struct key_block;

struct team {
	struct htab_node hn;           /* in ks->teams, by name */
	char name[KEYS_ID_SIZE];
	char policy[KEYS_ID_SIZE];
	size_t nkeys;
	bool from_config;
};

/* A stored key: what authentication checks (the digest chain's node, the digest, expiry, the
 * flags) in its first 64 bytes, the strings packed right after the rest. No cache-line
 * alignment: 16 bytes a key (100k keys: 1.5 MB) for a lookup that hashes the presented key
 * with SHA-256 anyway. */
struct key {
	struct htab_node by_hash;
	unsigned char hash[KEYS_HASH_LEN];
	int64_t expires;
	bool disabled;
	bool from_config;              /* keys_mark_config */
	bool packed;                   /* in a block of ks->blocks (keys_pack), not its own */
	uint8_t name_off, policy_off;  /* into text, which starts with the id (name_off 0: the
					* name is the id) */
	uint16_t workloads_off;
	struct team *team;
	int64_t created;
	struct htab_node by_id;
	char text[];                   /* "id\0name\0policy\0workloads\0" */
};
struct keystore {
	struct key_block *blocks;      /* packed keys' memory, newest first */
	bool packing;
	struct htab by_id;             /* keys by id */
	struct htab by_hash;           /* keys by SHA-256 digest: authentication's lookup */
	struct htab teams;             /* by name */
	EVP_MD *sha256;                /* fetched once; read by every thread that hashes */
	struct peer_guard *peers;      /* brute-force hold-off */
	struct keys_workload *wl;      /* keyless workloads, in config order (first match wins) */
	size_t nwl;
	/* Every loop authenticates; the admin plane and the store's loading change keys and
	 * teams (workers: N): a read-write lock around each look and each change. */
	pthread_rwlock_t lock;
};

static inline void keys_rd(const struct keystore *ks)
{
	pthread_rwlock_rdlock((pthread_rwlock_t *)&ks->lock);
}

static inline void keys_wr(struct keystore *ks)
{
	pthread_rwlock_wrlock(&ks->lock);
}

static inline void keys_unlock(const struct keystore *ks)
{
	pthread_rwlock_unlock((pthread_rwlock_t *)&ks->lock);
}

/* Moved on by every change to any keystore, and by a new or freed one: a memo taken before
 * no longer matches (keys_authenticate_memo). Atomic: the reload thread builds keystores. */
extern _Atomic uint64_t keys_generation;

struct key *keys_find_by_hash(const struct keystore *ks, const unsigned char *d);
/* SHA-256 of len bytes of key with the keystore's digest: 0 or -EIO. */
int keys_hash_with(const struct keystore *ks, const char *key, size_t len, unsigned char *out);

#endif
