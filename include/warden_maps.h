/* warden_maps: every map of the warden object, declared once.
 *
 * X(ID, name, shape, map type, key type, value type, max entries, flags) — shape is KV (typed
 * key and value, so `bpftool map dump` prints named fields) or RING (a ring buffer: no key or
 * value). The BPF side turns each line into a map definition (bpf/lib/maps.h), the loader
 * into its map table (userspace/enforce/enforce_int.h), the pin reader into the layouts it
 * checks before it trusts a pin (userspace/enforce/pins.c). Map names are "warden_<name>"
 * (BPF object names are at most 15 characters). Types only, no functions.
 */
#ifndef WARDEN_MAPS_H
#define WARDEN_MAPS_H

#include <linux/bpf.h>

#include "warden_types.h"

/* The rule maps come in pairs, one per address family: <ID>4 keyed by struct
 * warden_<key>4_key, <ID>6 by struct warden_<key>6_key. */
#define WARDEN_RULE_MAPS(X, ID, name, type, key, max)                                        \
	X(ID##4, name##4, KV, type, struct warden_##key##4_key, struct warden_rule, max,       \
	  BPF_F_NO_PREALLOC)                                                                   \
	X(ID##6, name##6, KV, type, struct warden_##key##6_key, struct warden_rule, max,       \
	  BPF_F_NO_PREALLOC)

#define WARDEN_MAPS(X) \
	X(CONFIG,   config,   KV,   BPF_MAP_TYPE_ARRAY,        __u32, struct warden_config, 1, 0) \
	X(ENROLLED, enrolled, KV,   BPF_MAP_TYPE_HASH,         __u64, struct warden_enroll,       \
	  WARDEN_MAX_ENROLLED, 0)                                                                 \
	WARDEN_RULE_MAPS(X, PROTECT, protect, BPF_MAP_TYPE_LPM_TRIE, lpm, WARDEN_MAX_RULES)     \
	WARDEN_RULE_MAPS(X, ALLOW,   allow,   BPF_MAP_TYPE_LPM_TRIE, lpm, WARDEN_MAX_RULES)     \
	/* Host rules (a full-length address, one port or any) of both kinds: one hash lookup */ \
	/* answers the common case without walking a trie. */                                    \
	WARDEN_RULE_MAPS(X, EXACT,   exact,   BPF_MAP_TYPE_HASH,     exact, WARDEN_MAX_EXACT)   \
	X(UNIXPATH, unixpath, KV,   BPF_MAP_TYPE_HASH,         struct warden_unix_key,            \
	  struct warden_rule, WARDEN_MAX_UNIXPATHS, 0)                                            \
	X(EVENTS,   events,   RING, BPF_MAP_TYPE_RINGBUF,      void, void, WARDEN_EVENTS_BYTES, 0) \
	X(COUNTERS, counters, KV,   BPF_MAP_TYPE_PERCPU_ARRAY, __u32, struct warden_counters,     \
	  WARDEN_HOOK_MAX, 0)                                                                     \
	/* The enrolment epoch and the per-CPU cgroup decision cache (warden_types.h). */        \
	X(EPOCH,    epoch,    KV,   BPF_MAP_TYPE_ARRAY,        __u32, __u64, 1, 0)                \
	X(CGCACHE,  cgcache,  KV,   BPF_MAP_TYPE_PERCPU_ARRAY, __u32, struct warden_cgcache,      \
	  WARDEN_CGCACHE_SLOTS, 0)                                                                \
	/* Redirected sockets: cookie -> original destination (warden_types.h). */               \
	X(REDIRECT, redirect, KV,   BPF_MAP_TYPE_LRU_HASH,     __u64, struct warden_redirect,     \
	  WARDEN_MAX_REDIRECTS, 0)                                                                \
	/* Who opened each connection, by client port; mapped read-only by the daemon. */        \
	X(CONNS,    conns,    KV,   BPF_MAP_TYPE_ARRAY,        __u32, struct warden_conn,         \
	  WARDEN_CONN_SLOTS, BPF_F_MMAPABLE)

#define WARDEN_MAP_ENUM(ID, ...) WARDEN_M_##ID,
enum warden_map { WARDEN_MAPS(WARDEN_MAP_ENUM) WARDEN_M_MAX };
#undef WARDEN_MAP_ENUM

#define WARDEN_MAP_NAME(name) "warden_" #name

/* Key and value sizes as userspace checks them (0: not checked, the ring buffer). */
#define WARDEN_MAP_SIZEOF_KV(t) sizeof(t)
#define WARDEN_MAP_SIZEOF_RING(t) 0

#endif
