/* pins: the auditor's view of an installed enforcement, from its bpffs pins alone.
 *
 * Everything here works without the daemon: the maps and links pinned under the pin
 * directory (layout in warden_types.h) are opened by path, read with the plain map syscalls
 * and decoded into the project's vocabulary. Used by wardenctl for status, map dumps, the
 * live deny stream and its self-test. Nothing here changes the policy: changes go through
 * the enforcer (ENFORCER_ADOPT), so the daemon and wardenctl keep one set of rules (level
 * mask, rule ids), and names and formats (enforcer_hook_name, enforcer_dest_format) are the
 * enforcer's too.
 *
 * The deny-event ring can be read in two ways. A *consumer* advances the ring's consumer
 * position, as the daemon does: two consumers split the events between them. A *tap* only
 * reads: it follows the producer with a private cursor and never moves the consumer
 * position, so the daemon's audit trail stays whole. A tap that falls a whole ring behind
 * the producer has missed events; it counts such gaps instead of printing torn records.
 *
 * Functions return 0 or a negative errno (-ENOENT: not installed, -EPERM/-EACCES: privilege).
 */
#ifndef WARDEN_PINS_H
#define WARDEN_PINS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "enforce/enforcer.h"
#include "warden_types.h"
#include "warden_maps.h"

/* The maps, in include/warden_maps.h's order (PINS_CONFIG, PINS_ENROLLED, ...). */
#define PINS_MAP_ENUM(ID, ...) PINS_##ID,
enum pins_map { WARDEN_MAPS(PINS_MAP_ENUM) PINS_MAP_MAX };
#undef PINS_MAP_ENUM

struct pins;

/* Open every pin under dir (NULL: WARDEN_PIN_DIR_DEFAULT). -ENOENT when the directory or
 * every map pin is missing; a partial install opens, and the accessors of a missing map
 * return -ENOENT. -EPROTO when a pinned map's key or value size, or the ABI version in the
 * pinned config, is not this build's. */
int pins_open(const char *dir, struct pins **out);
void pins_close(struct pins *p);
const char *pins_dir(const struct pins *p);

/* WARDEN_MAP_* name of m; NULL when out of range. */
const char *pins_map_name(enum pins_map m);
/* The map's fd (owned by p) or -ENOENT when its pin is missing. */
int pins_map_fd(const struct pins *p, enum pins_map m);

struct pins_map_info {
	bool present;
	uint32_t id;
	uint32_t type;		/* BPF_MAP_TYPE_* */
	uint32_t key_size;
	uint32_t value_size;
	uint32_t max_entries;
	uint32_t btf_id;
};
int pins_map_info(const struct pins *p, enum pins_map m, struct pins_map_info *out);

/* ---- links and programs ----------------------------------------------------------------- */
struct pins_link {
	bool pinned;		/* <dir>/link_<hook> exists */
	bool attached;		/* pinned and its cgroup still exists */
	uint32_t link_id;
	uint32_t attach_type;	/* BPF_CGROUP_* */
	uint64_t cgroup_id;	/* where it is attached (the cgroup v2 root) */
	uint32_t prog_id;
	char prog_name[16];
	char prog_tag[17];	/* hex */
	uint64_t run_cnt;	/* only counted while kernel.bpf_stats_enabled = 1 */
	uint64_t run_time_ns;
};
/* hook: enum warden_hook (names: enforcer_hook_name). A missing pin is not an error
 * (pinned = false). */
int pins_link(const struct pins *p, unsigned hook, struct pins_link *out);

/* ---- maps -------------------------------------------------------------------------------- */
int pins_config(const struct pins *p, struct warden_config *out);
/* The enrolment epoch (changes after every change to the enrolled cgroups). */
int pins_epoch(const struct pins *p, uint64_t *out);
/* Summed over the possible CPUs; per hook and in total. */
int pins_counters(const struct pins *p, struct warden_counters hook[WARDEN_HOOK_MAX],
		  struct warden_counters *total);
/* The same from the counters map's fd, pinned or the loader's own. */
int pins_counters_read(int fd, struct warden_counters hook[WARDEN_HOOK_MAX],
		       struct warden_counters *total);

struct pins_enrolled {
	uint64_t cgroup_id;
	struct warden_enroll e;
};
/* Every entry of warden_enrolled (exempt included), sorted by cgroup id; free(*out). */
int pins_enrolled(const struct pins *p, struct pins_enrolled **out, size_t *n);

/* A decoded rule: the destination (print it with enforcer_dest_format), what it does and its
 * rule id. */
struct pins_rule {
	struct enforcer_dest dest;
	enum warden_rule_kind kind;	/* protect or allow */
	struct warden_rule rule;
};
/* m: a trie (PINS_PROTECT4, PINS_PROTECT6, PINS_ALLOW4, PINS_ALLOW6: prefixes) or an exact
 * map (PINS_EXACT4, PINS_EXACT6: hosts, both kinds). Sorted by address, prefix, port, kind;
 * free(*out). Every rule is in exactly one of these maps. */
int pins_rules(const struct pins *p, enum pins_map m, struct pins_rule **out, size_t *n);

/* warden_redirect: a redirected socket's cookie and where it was going. */
struct pins_redirect {
	uint64_t cookie;
	struct warden_redirect r;
};
/* Every entry (the LRU's current content), sorted by cookie (connect order); free(*out). */
int pins_redirects(const struct pins *p, struct pins_redirect **out, size_t *n);

struct pins_unixpath {
	char path[WARDEN_UNIX_PATH_LEN + 1];	/* abstract names start with '@' here */
	struct warden_rule rule;
};
int pins_unixpaths(const struct pins *p, struct pins_unixpath **out, size_t *n);

/* ---- kernel features ------------------------------------------------------------------- */
struct pins_features {
	char kernel[65];		/* uname -r */
	bool ringbuf;			/* BPF_MAP_TYPE_RINGBUF loads */
	bool unix_connect;		/* the kernel has BPF_CGROUP_UNIX_CONNECT (6.7+) */
	bool bpf_lsm;			/* lsm_socket can work here (enforcer_probe_bpf_lsm) */
	char bpf_lsm_why[128];		/* why not, when it cannot */
	int bpf_stats;			/* kernel.bpf_stats_enabled: 0, 1, or -1 unknown */
	char cgroup_root[64];		/* cgroup v2 root, empty when there is none */
};
int pins_features(struct pins_features *out);

/* ---- the deny-event ring ----------------------------------------------------------------- */
enum pins_ring_mode {
	PINS_RING_TAP,		/* read only; the daemon still receives every event */
	PINS_RING_CONSUME,	/* advance the consumer position (no daemon running) */
};

struct pins_ring;
/* Starts at the ring's consumer position: events no consumer has taken yet come first. */
int pins_ring_open(const struct pins *p, enum pins_ring_mode mode, struct pins_ring **out);
/* Skip to the producer position: only events committed after this call are read. */
void pins_ring_skip(struct pins_ring *r);
/* Calls cb for each committed event from the cursor on, until the ring is drained or cb
 * returns non-zero. Returns the number of events delivered or a negative errno. */
typedef int (*pins_ring_cb)(const struct warden_event *ev, void *arg);
int pins_ring_read(struct pins_ring *r, pins_ring_cb cb, void *arg);
/* Wait up to timeout_ms (-1: forever) for new data; 1 when there may be some, 0 on timeout,
 * -EINTR on a signal. Wakeups are edge triggered, so a tap also rechecks periodically. */
int pins_ring_wait(struct pins_ring *r, int timeout_ms);
/* How often the tap fell a whole ring behind and skipped ahead (events were missed). */
uint64_t pins_ring_gaps(const struct pins_ring *r);
void pins_ring_close(struct pins_ring *r);

/* Other processes that hold map m open (e.g. the daemon, for PINS_EVENTS), found from
 * /proc/<pid>/fdinfo. Fills up to max pids; *n is the number found (may exceed max). */
int pins_map_holders(const struct pins *p, enum pins_map m, pid_t *pids, size_t max, size_t *n);

#endif
