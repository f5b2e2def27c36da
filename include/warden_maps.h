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

#define WARDEN_MAPS(X) \
	X(CONFIG,   config,   KV,   BPF_MAP_TYPE_ARRAY,        __u32, struct warden_config, 1, 0) \
	X(ENROLLED, enrolled, KV,   BPF_MAP_TYPE_HASH,         __u64, struct warden_enroll,       \
	  WARDEN_MAX_ENROLLED, 0)                                                                 \
	X(PROTECT4, protect4, KV,   BPF_MAP_TYPE_LPM_TRIE,     struct warden_lpm4_key,            \
	  struct warden_rule, WARDEN_MAX_RULES, BPF_F_NO_PREALLOC)                                \
	X(PROTECT6, protect6, KV,   BPF_MAP_TYPE_LPM_TRIE,     struct warden_lpm6_key,            \
	  struct warden_rule, WARDEN_MAX_RULES, BPF_F_NO_PREALLOC)                                \
	X(ALLOW4,   allow4,   KV,   BPF_MAP_TYPE_LPM_TRIE,     struct warden_lpm4_key,            \
	  struct warden_rule, WARDEN_MAX_RULES, BPF_F_NO_PREALLOC)                                \
	X(ALLOW6,   allow6,   KV,   BPF_MAP_TYPE_LPM_TRIE,     struct warden_lpm6_key,            \
	  struct warden_rule, WARDEN_MAX_RULES, BPF_F_NO_PREALLOC)                                \
	/* Host rules (a full-length address, one port or any) of both kinds: one hash lookup */ \
	/* answers the common case without walking a trie. */                                    \
	X(EXACT4,   exact4,   KV,   BPF_MAP_TYPE_HASH,         struct warden_exact4_key,          \
	  struct warden_rule, WARDEN_MAX_EXACT, BPF_F_NO_PREALLOC)                                \
	X(EXACT6,   exact6,   KV,   BPF_MAP_TYPE_HASH,         struct warden_exact6_key,          \
	  struct warden_rule, WARDEN_MAX_EXACT, BPF_F_NO_PREALLOC)                                \
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
