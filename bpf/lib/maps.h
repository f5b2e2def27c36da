/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* maps: every map of the warden object. Layouts and names are in include/warden_types.h;
 * keys and values are BTF typed so `bpftool map dump` prints named fields. */
#ifndef WARDEN_BPF_MAPS_H
#define WARDEN_BPF_MAPS_H

#include "lib/common.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct warden_config);
} warden_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WARDEN_MAX_ENROLLED);
	__type(key, __u64);
	__type(value, struct warden_enroll);
} warden_enrolled SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, WARDEN_MAX_RULES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct warden_lpm4_key);
	__type(value, struct warden_rule);
} warden_protect4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, WARDEN_MAX_RULES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct warden_lpm6_key);
	__type(value, struct warden_rule);
} warden_protect6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, WARDEN_MAX_RULES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct warden_lpm4_key);
	__type(value, struct warden_rule);
} warden_allow4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, WARDEN_MAX_RULES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct warden_lpm6_key);
	__type(value, struct warden_rule);
} warden_allow6 SEC(".maps");

/* Host rules (full-length address, a port or any port) of both kinds: one hash lookup
 * answers the common case without walking a trie. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WARDEN_MAX_EXACT);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct warden_exact4_key);
	__type(value, struct warden_rule);
} warden_exact4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WARDEN_MAX_EXACT);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct warden_exact6_key);
	__type(value, struct warden_rule);
} warden_exact6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WARDEN_MAX_UNIXPATHS);
	__type(key, struct warden_unix_key);
	__type(value, struct warden_rule);
} warden_unixpath SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, WARDEN_EVENTS_BYTES);
} warden_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, WARDEN_HOOK_MAX);
	__type(key, __u32);
	__type(value, struct warden_counters);
} warden_counters SEC(".maps");

/* The enrolment epoch and the per-CPU cgroup decision cache (warden_types.h explains both). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} warden_epoch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, WARDEN_CGCACHE_SLOTS);
	__type(key, __u32);
	__type(value, struct warden_cgcache);
} warden_cgcache SEC(".maps");

#endif
