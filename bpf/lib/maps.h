/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* maps: every map of the warden object, made from the one declaration in
 * include/warden_maps.h; keys and values are BTF typed so `bpftool map dump` prints named
 * fields. */
#ifndef WARDEN_BPF_MAPS_H
#define WARDEN_BPF_MAPS_H

#include "lib/common.h"
#include "warden_maps.h"

#define WARDEN_BPF_MAP_KV(name, type_, key_, value_, max_, flags_)                           \
	struct {                                                                              \
		__uint(type, type_);                                                          \
		__uint(max_entries, max_);                                                    \
		__uint(map_flags, flags_);                                                    \
		__type(key, key_);                                                            \
		__type(value, value_);                                                        \
	} warden_##name SEC(".maps");

#define WARDEN_BPF_MAP_RING(name, type_, key_, value_, max_, flags_)                         \
	struct {                                                                              \
		__uint(type, type_);                                                          \
		__uint(max_entries, max_);                                                    \
	} warden_##name SEC(".maps");

#define WARDEN_BPF_MAP(ID, name, shape, type_, key_, value_, max_, flags_)                   \
	WARDEN_BPF_MAP_##shape(name, type_, key_, value_, max_, flags_)

WARDEN_MAPS(WARDEN_BPF_MAP)

#endif
