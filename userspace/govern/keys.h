/* keys: virtual keys, their teams, and authentication of a presented key.
 *
 * A key is a bearer secret: "mcpw_" followed by 43 base64url characters (32 random bytes). The
 * sidecar never stores or logs a key, only its SHA-256 digest ("sha256:<64 hex>" in the config
 * and the store) and its short public id. Authentication hashes the presented key, finds the
 * digest in a hash table (the digest of a secret reveals nothing about other keys, so looking it
 * up is safe) and confirms the match with CRYPTO_memcmp. Every change (add, update, disable,
 * delete, a team's policy) applies to the next request: nothing caches an authentication.
 *
 * A per-peer failure tracker slows down key guessing: after max_failures failed attempts within
 * window_ms, a peer is refused without checking its key for block_ms, doubling on each repeat up
 * to max_block_ms. It is a fixed-size table (LRU eviction), so memory is bounded.
 *
 * Any thread (each loop of workers: N): a read-write lock around every look (an
 * authentication, a listing) and every change. keys_team_policy, which returns a pointer into
 * the keystore, is for the thread that changes it (loop 0) alone.
 */
#ifndef WARDEN_KEYS_H
#define WARDEN_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

#include "govern/peer_guard.h"

struct config_errors;
struct policy_set;
struct keystore;

#define KEYS_PREFIX          "mcpw_"
#define KEYS_TOKEN_SIZE      49   /* "mcpw_" + 43 base64url characters + NUL */
#define KEYS_PRESENTED_MAX   512  /* longer presented keys are malformed */
#define KEYS_HASH_LEN        32   /* SHA-256 */
#define KEYS_HASH_TEXT_SIZE  72   /* "sha256:" + 64 hex + NUL */
#define KEYS_ID_SIZE         65   /* ids, team and policy names: [A-Za-z0-9_.-]{1,64} */
#define KEYS_NAME_SIZE       129  /* display names: 1-128 printable bytes */
#define KEYS_WORKLOADS_SIZE  512  /* workload patterns, '\n'-separated, with their NUL */
#define KEYS_WORKLOADS_MAX   16   /* patterns per key */

/* A key as configured or managed at run time. Never holds the secret. */
struct key_record {
	unsigned char hash[KEYS_HASH_LEN];
	int64_t expires;                /* unix seconds, 0 never; expired when now >= expires */
	bool disabled;
	int64_t created;                /* unix seconds, 0 unknown */
	char id[KEYS_ID_SIZE];
	char name[KEYS_NAME_SIZE];
	char team[KEYS_ID_SIZE];        /* "" when none */
	char policy[KEYS_ID_SIZE];      /* "" allowed only with a team: the team's policy alone */
	/* The workloads the key may be used from (pattern lines, below); "" anywhere. */
	char workloads[KEYS_WORKLOADS_SIZE];
};

/* Who a request comes from, copied out at authentication (so it stays valid however long the
 * request lives, whatever happens to the keystore meanwhile). */
struct key_identity {
	char id[KEYS_ID_SIZE];
	char name[KEYS_NAME_SIZE];
	char team[KEYS_ID_SIZE];
	char policy[KEYS_ID_SIZE];      /* "" none */
	char team_policy[KEYS_ID_SIZE]; /* the team's policy now; "" when no team */
	int64_t expires;
	char workloads[KEYS_WORKLOADS_SIZE]; /* as key_record.workloads */
	/* Filled by the transport, not the keystore: the caller's cgroup path as the kernel named
	 * it, "" unknown (for the records). */
	char workload[256];
};

/* *dst = *src, its strings' bytes only (a struct copy moves 1.2 KB); src NULL: all empty. */
void key_identity_copy(struct key_identity *dst, const struct key_identity *src);

/* The outcome of an authentication, for the audit record. The HTTP answer is the same 401 for
 * every failure, so a caller learns nothing about which keys exist. */
enum keys_auth {
	KEYS_AUTH_OK,
	KEYS_AUTH_MALFORMED,   /* empty, longer than KEYS_PRESENTED_MAX, or not printable ASCII */
	KEYS_AUTH_UNKNOWN,
	KEYS_AUTH_EXPIRED,
	KEYS_AUTH_DISABLED,
};


/* Workload binding (keys_workload.c). A pattern is one of
 *   "cgroup:<glob>"                 an fnmatch(3) glob of the caller's cgroup path below the
 *                                   cgroup2 root (a star also crosses '/');
 *   "pod:<ns glob>/<name glob>"     the pod the caller's cgroup lies in, by namespace and name;
 *   "pod:<ns glob>/<k>=<v>[,...]"   the same pod by labels: every pair must be on it.
 * Pods are those the pod watch (enforce/kube.h) knows, found through keys_set_pod_lookup at
 * request time: a pod deleted stops matching at once. keys_valid_workload checks one;
 * keys_workload_allows says whether a caller (its cgroup path, NULL when the kernel could not
 * name it) matches one of the '\n'-separated patterns ("" allows everyone). */
bool keys_valid_workload(const char *pattern);
/* A JSON array of patterns (config keys[].workloads, the admin API's "workloads") joined into
 * out (KEYS_WORKLOADS_SIZE bytes). pods: "pod:" patterns are accepted (the pod watch is
 * configured or running); refused otherwise, since they could match nothing. 0, or -EINVAL
 * with *why saying what is wrong. */
int keys_workloads_from_json(const cJSON *a, bool pods, char out[KEYS_WORKLOADS_SIZE],
			     const char **why);
/* The '\n'-separated patterns as a JSON array (NULL: out of memory). */
cJSON *keys_workloads_to_json(const char *workloads);
bool keys_workload_allows(const char *workloads, const char *cgroup_path);

/* The pod a cgroup lies in, as the pod watch knows it. */
#define KEYS_POD_LABELS_SIZE 2048
struct keys_pod {
	char ns[64];
	char name[254];
	char labels[KEYS_POD_LABELS_SIZE]; /* "key=value" lines, '\n'-separated */
};
/* true with *out when cgroup_path (below the cgroup2 root) lies in a known pod. */
typedef bool (*keys_pod_of_fn)(void *arg, const char *cgroup_path, struct keys_pod *out);
/* Process-wide (the event loop's): the pod watch registers itself while it runs, and
 * unregisters when it stops; with none, "pod:" patterns match nothing. */
void keys_set_pod_lookup(keys_pod_of_fn fn, void *arg);
/* Unregister, if arg is still the one registered (a reload may have started a new watch). */
void keys_clear_pod_lookup(void *arg);
bool keys_pod_lookup_running(void);
/* Does this config run the pod watch (enforcement on, with a "kubernetes" section)? What
 * config parsing asks before it accepts "pod:" patterns. */
bool keys_config_pod_watch(const cJSON *root);

/* Keyless workloads (config "workloads"): a request with no key from a caller whose cgroup
 * matches pattern is governed as the workload, under the identity id "wl:<name>" (budgets,
 * rate limits and records keyed by it as by a key id). First match in config order wins. */
#define KEYS_WORKLOAD_ID_PREFIX     "wl:"
#define KEYS_WORKLOADS_ENTRIES_MAX  256
struct keys_workload {
	char name[KEYS_ID_SIZE - 3];    /* so that "wl:" + name fits an id */
	char policy[KEYS_ID_SIZE];      /* "" only with a team */
	char team[KEYS_ID_SIZE];
	char pattern[KEYS_WORKLOADS_SIZE / 2]; /* "cgroup:<glob>" or a "pod:" pattern */
};
/* 0, -EINVAL (bad name or pattern, unknown team, neither policy nor team), -EEXIST (the name
 * is taken), -ENOSPC or -ENOMEM. */
int keys_workload_add(struct keystore *ks, const struct keys_workload *w);
size_t keys_workload_count(const struct keystore *ks);
/* The i-th keyless workload in config order (i < keys_workload_count). */
const struct keys_workload *keys_workload_at(const struct keystore *ks, size_t i);
/* who filled for the first workload matching cgroup_path (NULL: unknown caller): 0, or
 * -ENOENT when none does. */
int keys_workload_identity(const struct keystore *ks, const char *cgroup_path,
			   struct key_identity *who);

/* Identifiers (ids, team and policy names) and display names as the keystore accepts them. */
bool keys_valid_ident(const char *s);
bool keys_valid_name(const char *s);

/* limits NULL: defaults. Returns 0, -ENOMEM, -EINVAL (a zero limit) or -EIO (no randomness). */
int keys_new(const struct peer_guard_limits *limits, struct keystore **out);
void keys_free(struct keystore *ks);
/* to shares what from knows of failing peers (a reload replaces the keystore, not what
 * guessing peers have earned): one tracker for both, freed with the last. to must not be in
 * use yet (a reload's new keystore). */
void keys_take_peers(struct keystore *to, struct keystore *from);

/* A fresh key: "mcpw_" + base64url(32 bytes from RAND_bytes). len >= KEYS_TOKEN_SIZE.
 * Returns 0, -ENOSPC or -EIO. The caller shows it once and keeps only keys_hash() of it. */
int keys_generate(char *out, size_t len);
/* A fresh public id "k_" + 8 hex digits; len >= 11. Returns 0, -ENOSPC or -EIO. */
int keys_generate_id(char *out, size_t len);
/* SHA-256 of a presented key. Returns 0 or -EIO. */
int keys_hash(const char *key, size_t len, unsigned char out[KEYS_HASH_LEN]);
/* "sha256:<64 lowercase hex>" <-> digest. keys_hash_parse returns 0 or -EINVAL. */
void keys_hash_format(const unsigned char hash[KEYS_HASH_LEN], char out[KEYS_HASH_TEXT_SIZE]);
int keys_hash_parse(const char *text, unsigned char out[KEYS_HASH_LEN]);

/* Teams. keys_team_set adds a team or changes its policy (effective on the next request).
 * Returns 0, -EINVAL (bad name or empty policy) or -ENOMEM. keys_team_delete returns 0,
 * -ENOENT, or -EBUSY while a key belongs to the team. */
int keys_team_set(struct keystore *ks, const char *name, const char *policy);
int keys_team_delete(struct keystore *ks, const char *name);
/* The team's policy, or NULL when there is no such team: on the thread that changes the
 * keystore (loop 0). Any other thread copies it: true with out filled, false when there is no
 * such team. */
const char *keys_team_policy(const struct keystore *ks, const char *name);
bool keys_team_policy_copy(const struct keystore *ks, const char *name, char out[KEYS_ID_SIZE]);

/* Keys, by id. keys_add: 0, -EINVAL (a field out of range, no policy and no team), -ENOENT
 * (no such team), -EEXIST (the id or the hash is already used) or -ENOMEM. keys_update
 * replaces every field of the key with that id (a new hash rotates the secret): 0, -EINVAL,
 * -ENOENT (no such key or team) or -EEXIST (the hash belongs to another key). */
int keys_add(struct keystore *ks, const struct key_record *k);
int keys_update(struct keystore *ks, const struct key_record *k);
int keys_set_disabled(struct keystore *ks, const char *id, bool disabled);
int keys_delete(struct keystore *ks, const char *id);
int keys_get(const struct keystore *ks, const char *id, struct key_record *out);
size_t keys_count(const struct keystore *ks);
/* Call fn for every key (in no particular order; a copy) under the read lock, so fn may look
 * but not change this keystore; a non-zero return stops the walk and is returned. The admin
 * plane lists keys with it. */
int keys_foreach(const struct keystore *ks, int (*fn)(void *arg, const struct key_record *k),
		 void *arg);
/* The same for teams: name, policy and how many keys belong to it. */
int keys_team_foreach(const struct keystore *ks,
		      int (*fn)(void *arg, const char *name, const char *policy, size_t nkeys),
		      void *arg);
/* A reload: what the admin API made in from (the keys and teams not from the config) added
 * to to, teams first; what to defines itself wins, and a key whose team went away is left
 * out (both logged). */
void keys_carry_runtime(struct keystore *to, const struct keystore *from);
/* RFC 3339 date-time ("2027-01-31T00:00:00Z", fraction and numeric offset allowed) -> unix
 * seconds, as the config's "expires" reads it. Returns 0 or -EINVAL. */
int keys_parse_time(const char *s, int64_t *out);

/* Authenticate a presented key (not NUL-terminated: len bytes) at wall-clock time now (unix
 * seconds). who is filled for OK, EXPIRED and DISABLED (the audit record names the key id) and
 * zeroed otherwise. Fails closed: an internal error reads as UNKNOWN. */
enum keys_auth keys_authenticate(struct keystore *ks, const char *presented, size_t len,
				 int64_t now, struct key_identity *who);
/* A connection's memory of the key it last authenticated with, so that its next request that
 * presents the same key skips the SHA-256 and the table (docs/security.md#per-connection-memo).
 * It keeps no key: a SipHash of the presented bytes under the keystore's secret seed, and
 * which key they matched. Any change to any keystore (a key added, updated, disabled or
 * deleted, a team changed, a reload) forgets every memo; expiry and the disabled flag are
 * checked on every use. Zero it to start; it owns nothing. */
struct keys_memo {
	uint64_t gen;                  /* 0: empty */
	const struct keystore *ks;
	const void *key;               /* the matched key, valid while gen is current */
	uint64_t tag;
	size_t len;
};
/* keys_authenticate through a memo (NULL: none). Only an OK is remembered. */
enum keys_auth keys_authenticate_memo(struct keystore *ks, struct keys_memo *m,
				      const char *presented, size_t len, int64_t now,
				      struct key_identity *who);
/* The same from a digest (admin paths that hold a hash, tests). */
enum keys_auth keys_authenticate_hash(const struct keystore *ks,
				      const unsigned char hash[KEYS_HASH_LEN], int64_t now,
				      struct key_identity *who);
/* "ok", "malformed", "unknown", "expired", "disabled". */
const char *keys_auth_name(enum keys_auth r);

/* Brute-force tracker; peer is the client's address as text (IPv4, IPv6; an IPv6 peer counts
 * as its /64, a v4-mapped address as IPv4; anything else as an opaque string). now_ms is a
 * monotonic clock. Call keys_peer_blocked before authenticating; when it returns true refuse
 * without checking the key and tell the client *retry_after_ms. Report each failed
 * authentication with keys_peer_failure and each success with keys_peer_success (which clears
 * the failure count, not the escalation: that decays after max_block_ms of quiet). */
bool keys_peer_blocked(struct keystore *ks, const char *peer, int64_t now_ms,
		       int64_t *retry_after_ms);
void keys_peer_failure(struct keystore *ks, const char *peer, int64_t now_ms);
void keys_peer_success(struct keystore *ks, const char *peer, int64_t now_ms);

/* Keys added while packing is on are laid out in blocks the keystore allocates in bulk and frees
 * with itself, not one allocation each: keys_config_parse packs its "keys" section, so 100k
 * keys do not sit between the nodes of the parse tree they were read from, and freeing that
 * tree gives whole pages back (a reload's RSS returns to its level). A packed key deleted or
 * replaced keeps its space until the keystore goes; only a config's keys are packed. */
void keys_pack(struct keystore *ks, bool on);

/* Which keys and teams the config defines (the rest came through the admin API or the store):
 * keys_mark_config marks every key and team ks holds now (call it right after
 * keys_config_parse); a key or team added later is unmarked. A bit in each record, not a set
 * of ids beside them (100k keys). */
void keys_mark_config(struct keystore *ks);
/* Delete every key and team keys_mark_config did not mark (made through the admin API or
 * loaded from the store): what is left is what the config defines, as keys_config_parse read
 * it (a full reload keeps that to go back to: see gate_reload_all). */
void keys_keep_config(struct keystore *ks);
bool keys_from_config(const struct keystore *ks, const char *id);
bool keys_team_from_config(const struct keystore *ks, const char *name);

/* Read the "teams" and "keys" sections of the config into ks (normally empty):
 *   "teams": [{"name", "policy"}]
 *   "keys":  [{"id", "name", "team", "hash": "sha256:...", "created", "expires" (RFC 3339),
 *              "disabled", "policy"}]
 * A key without an id gets "k_" + the first 8 hex digits of its hash (stable across restarts).
 * ps, when given, is used to check that every named policy exists. Returns 0, or -EINVAL with
 * every problem in errs, each naming its field path ("keys[2].hash: ..."); then ks holds an
 * unspecified subset and should be discarded. */
int keys_config_parse(const cJSON *root, const struct policy_set *ps, struct keystore *ks,
		      struct config_errors *errs);

#endif
