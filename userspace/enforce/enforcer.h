/* enforcer: the kernel half's userspace. Loads the warden BPF object, pins its maps and links
 * under a bpffs directory, attaches the programs once at the cgroup v2 root, and feeds the
 * maps (enrolled cgroups, protected destinations, allowlist, sidecar endpoint).
 *
 * Fail closed: links are pinned, so enforcement outlives the daemon. A restarted daemon
 * re-opens the pins, keeps the maps (and so the policy) and swaps its freshly loaded programs
 * into the existing links atomically; it never attaches a second copy.
 *
 * Every function returns 0 or a negative errno and logs the reason for a failure that an
 * operator has to act on. Map layouts, names and the pin layout are in warden_types.h.
 */
#ifndef WARDEN_ENFORCER_H
#define WARDEN_ENFORCER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <cjson/cJSON.h>

#include "base/config.h"
#include "warden_types.h"
#include "enforce/cgroup.h"

struct event_base;
struct enforcer;
struct kube_config;

enum enforcer_open_mode {
	ENFORCER_LOAD = 0,	/* load programs; attach, or adopt existing links and swap programs */
	ENFORCER_ADOPT = 1,	/* only open existing pins (maps and links); -ENOENT if not installed.
				 * For wardenctl: inspect and edit the policy without replacing code */
};

struct enforcer_opts {
	const char *pin_dir;		/* NULL: WARDEN_PIN_DIR_DEFAULT; created (and bpffs mounted) */
	const char *cgroup_root;	/* NULL: /sys/fs/cgroup if cgroup2, else /sys/fs/cgroup/unified */
	enum enforcer_open_mode mode;
	int deny_errno;			/* 0: leave as configured in the pinned map (fresh: EPERM) */
	bool cgroup_helpers;		/* find the calling cgroup with helper calls even where the
					 * kernel allows the cheaper BTF reads (tests; old kernels
					 * get this automatically) */
};

/* Load/adopt as described above. Fails (-EPERM without privilege, -EOPNOTSUPP without
 * cgroup2 or BPF, -ENOENT in ADOPT mode with nothing installed) with a logged reason. */
int enforcer_open(const struct enforcer_opts *opts, struct enforcer **out);
/* Release this process's handles. Pins (and so enforcement) stay. NULL is a no-op. */
void enforcer_close(struct enforcer *e);
/* Detach every link and remove every pin in pin_dir (NULL: default), then the directory.
 * Enforcement stops. For uninstall and tests. Missing pins are not an error. */
int enforcer_destroy_pins(const char *pin_dir);

const char *enforcer_pin_dir(const struct enforcer *e);
const char *enforcer_cgroup_root(const struct enforcer *e);

/* ---- status ------------------------------------------------------------------------------ */
struct enforcer_hook_status {
	bool supported;		/* the kernel has this hook */
	bool attached;		/* a pinned link exists */
	uint32_t link_id;
	uint32_t prog_id;
};

struct enforcer_status {
	bool adopted;		/* links were already pinned when this enforcer opened */
	bool task_btf;		/* this enforcer's programs read the calling cgroup through BTF
				 * (false: helper calls; always false in ENFORCER_ADOPT mode) */
	int deny_errno;
	uint16_t sidecar_port;	/* host order, 0: none */
	uint32_t nenrolled;	/* entries in warden_enrolled (exempt included) */
	struct enforcer_hook_status hooks[WARDEN_HOOK_MAX];
	char unix_unsupported_reason[128];	/* empty when connect_unix is attached */
	char lsm_unsupported_reason[128];	/* empty when lsm_socket is attached */
};

int enforcer_status(struct enforcer *e, struct enforcer_status *out);
/* 0 when lsm_socket can work on this kernel, else a negative errno and why in words. */
int enforcer_probe_bpf_lsm(char *why, size_t len);
/* "connect4", ... "connect_unix", "lsm_socket"; NULL for an out-of-range hook. */
const char *enforcer_hook_name(unsigned hook);
const char *enforcer_mode_name(unsigned mode);		/* "lockdown", "protect", "exempt" */
const char *enforcer_reason_name(unsigned reason);	/* "lockdown", "protected", ... */
/* "lockdown" / "protect" -> enum warden_mode; -EINVAL otherwise. */
int enforcer_mode_parse(const char *s, enum warden_mode *out);
/* The fd of a map by name (WARDEN_MAP_*), owned by e; -ENOENT if unknown. */
int enforcer_map_fd(struct enforcer *e, const char *map_name);

/* ---- cgroups ----------------------------------------------------------------------------- */
/* Paths, ids, containers and pods: enforce/cgroup.h. */
/* The path of cgroup id under root, from a cache refreshed by a scan on a miss (at most once
 * a second); -ENOENT when unknown (e.g. the cgroup is gone). */
int enforcer_cgroup_path(struct enforcer *e, uint64_t id, char *buf, size_t len);

/* ---- policy ------------------------------------------------------------------------------ */
/* path: absolute cgroupfs path, or relative to the cgroup root. Enrolling the root itself is
 * refused (-EINVAL): it would enforce on the whole host. Re-enrolling changes the mode. */
int enforcer_enroll(struct enforcer *e, const char *path, enum warden_mode mode);
/* The same with WARDEN_ENROLL_F_* flags (WARDEN_ENROLL_F_REDIRECT: transparent redirect of
 * this cgroup's connects to redirectable upstreams; not for exempt entries). */
int enforcer_enroll_ex(struct enforcer *e, const char *path, enum warden_mode mode,
		       unsigned flags);
/* The mode stored for cgroup id (enrolled or exempt); -ENOENT when it has no entry. */
int enforcer_enrolled_mode(struct enforcer *e, uint64_t id, enum warden_mode *out);
/* Remove the entry (enrolled or exempt) for path; -ENOENT if there is none. */
int enforcer_unenroll(struct enforcer *e, const char *path);
/* The sidecar's own cgroup: never enforced, even below an enrolled ancestor. */
int enforcer_exempt(struct enforcer *e, const char *path);
/* Same as above, by cgroup id (for a cgroup that is already gone, e.g. from wardenctl). */
int enforcer_unenroll_id(struct enforcer *e, uint64_t id);
/* Remove the entries of cgroups that no longer exist (a removed container or pod). They can
 * never match again (cgroup ids are not reused) but would fill the map. Entries whose cgroup
 * the kernel cannot check are kept. *removed (may be NULL): how many went; ids[] (may be
 * NULL) receives up to nids of them, for the log. */
int enforcer_prune(struct enforcer *e, size_t *removed, uint64_t *ids, size_t nids);

/* A destination spec: "a.b.c.d[/len][:port]", "v6addr[/len]", "[v6addr[/len]]:port".
 * No port means any port. v4-mapped v6 specs are stored as v4. */
struct enforcer_dest {
	int family;		/* AF_INET or AF_INET6 */
	uint8_t addr[16];	/* network order; v4 in the first 4 bytes */
	uint8_t prefixlen;	/* of the address: 0..32 or 0..128 */
	uint16_t port;		/* host order; 0 = any */
};
int enforcer_dest_parse(const char *spec, struct enforcer_dest *out);
/* Canonical text of a destination ("10.0.0.0/8:443", "[::1/128]:80", "10.1.2.3/32"). */
int enforcer_dest_format(const struct enforcer_dest *d, char *buf, size_t len);

/* Protected destinations (denied in protect mode) and the allowlist (the only non-sidecar
 * destinations in lockdown; exceptions to protected ranges in protect mode). Adding an
 * existing entry keeps its rule id; removing a missing one is -ENOENT. */
int enforcer_protect(struct enforcer *e, const char *spec);
int enforcer_unprotect(struct enforcer *e, const char *spec);
int enforcer_allow(struct enforcer *e, const char *spec);
int enforcer_disallow(struct enforcer *e, const char *spec);
int enforcer_protect_dest(struct enforcer *e, const struct enforcer_dest *d, uint32_t *rule_id);
int enforcer_unprotect_dest(struct enforcer *e, const struct enforcer_dest *d);
/* Unix socket paths refused to enrolled cgroups in both modes (needs connect_unix). */
int enforcer_protect_unix(struct enforcer *e, const char *path);
int enforcer_unprotect_unix(struct enforcer *e, const char *path);

/* The sidecar endpoints 127.0.0.1:port, ::1:port and ::ffff:127.0.0.1:port (0: none). */
int enforcer_set_sidecar(struct enforcer *e, uint16_t port);
/* ---- transparent redirect (enforce/redirect.c) ------------------------------------------- */
/* The redirect listener, 127.0.0.1:port and ::1:port (0: nothing is redirected). */
int enforcer_set_redirect(struct enforcer *e, uint16_t port);
/* Mark the protected destination d (which must exist) as redirectable: a plain-HTTP MCP
 * upstream. WARDEN_RULE_F_* flags are added, never removed. */
int enforcer_rule_set_flags(struct enforcer *e, const struct enforcer_dest *d, uint32_t flags);
/* Where the redirected socket with this cookie was going; -ENOENT when it was not
 * redirected (or the LRU dropped it). */
int enforcer_redirect_lookup(struct enforcer *e, uint64_t cookie, struct warden_redirect *out);
/* The original destination as a sockaddr (v4-mapped when the client asked for that). */
int enforcer_redirect_sockaddr(const struct warden_redirect *r, struct sockaddr_storage *ss,
			       socklen_t *len);

/* Errno a refused connect/sendmsg returns: EPERM (default) or e.g. ECONNREFUSED. */
int enforcer_set_errno(struct enforcer *e, int err);
int enforcer_errno_parse(const char *name, int *out);	/* "EPERM", "ECONNREFUSED", ... */

/* ---- audit ------------------------------------------------------------------------------- */
struct enforcer_counters {
	struct warden_counters hook[WARDEN_HOOK_MAX];	/* summed over CPUs */
	struct warden_counters total;
};
int enforcer_counters(struct enforcer *e, struct enforcer_counters *out);

/* Called on the event loop for every deny event, already copied out of the ring. */
typedef void (*enforcer_event_cb)(const struct warden_event *ev, void *arg);
/* Consume the ring buffer on base: its epoll fd becomes one libevent read event, so nothing
 * runs on another thread. One consumer per enforcer; -EBUSY if already attached. */
int enforcer_events_attach(struct enforcer *e, struct event_base *base, enforcer_event_cb cb,
			   void *arg);
void enforcer_events_detach(struct enforcer *e);
/* Drain what is in the ring now (without waiting); returns events handled or -errno. */
int enforcer_events_poll(struct enforcer *e);
/* The audit record of an event (type "ebpf_deny" fields: time, cgroup id and path, pid, tgid,
 * uid, comm, hook, family, protocol, destination, port, mode, reason, rule). Caller frees. */
cJSON *enforcer_event_json(struct enforcer *e, const struct warden_event *ev);

/* ---- config ------------------------------------------------------------------------------ */
struct enforcer_target {
	char *cgroup;		/* exactly one of these three is set */
	char *container;
	char *pod;
	enum warden_mode mode;	/* lockdown unless the entry says "protect" */
	bool redirect;		/* "redirect" (enroll only); meaningful when redirect_set */
	bool redirect_set;	/* else the section's "redirect" applies */
};

struct enforcer_config {
	bool enabled;
	char *pin_dir;		/* NULL: default */
	char *cgroup_root;	/* NULL: auto */
	int deny_errno;		/* EPERM unless "errno" says otherwise */
	struct enforcer_target *enroll;
	size_t nenroll;
	struct enforcer_target *exempt;
	size_t nexempt;
	char **allow;		/* validated destination specs */
	size_t nallow;
	char **protect;
	size_t nprotect;
	char **protect_unix;
	size_t nprotect_unix;
	struct kube_config *kube;	/* "kubernetes": the pod watch (enforce/kube.h); NULL: off */
	bool redirect;		/* "redirect": enrolments redirect unless they say otherwise
				 * (default false) */
	uint16_t redirect_port;	/* "redirect_port": the redirect listener (0: ephemeral) */
};

/* Parse the "enforcement" section (section may be NULL: disabled). Errors name the field path
 * under `path` ("enforcement.enroll[1].mode: ..."). Returns 0 or -EINVAL/-ENOMEM. */
int enforcer_config_parse(const cJSON *section, const char *path, struct enforcer_config *out,
			  struct config_errors *errs);
void enforcer_config_free(struct enforcer_config *c);
/* Does enrolment t ask for transparent redirect (its own "redirect", else the section's)? */
bool enforcer_target_redirects(const struct enforcer_config *c, const struct enforcer_target *t);
/* Resolve targets and fill the maps from a parsed config: enrolments, exemptions, allowlist,
 * protected destinations, errno. Idempotent. Stops at the first failure (logged). */
int enforcer_apply_config(struct enforcer *e, const struct enforcer_config *c);

/* ---- upstream addresses (resolved off the event loop) ------------------------------------ */
/* Keeps host:port protected: getaddrinfo runs on a worker thread, the result is applied on
 * base's loop, and the name is re-resolved every refresh_ms (addresses that disappear are
 * unprotected, new ones protected). port 0: any port. A literal address needs no thread. */
struct enforcer_upstream;
int enforcer_upstream_protect(struct enforcer *e, struct event_base *base, const char *host,
			      uint16_t port, int refresh_ms, struct enforcer_upstream **out);
/* The same, with WARDEN_RULE_F_* flags on every address's rule (WARDEN_RULE_F_REDIRECT for a
 * plain-HTTP upstream). */
int enforcer_upstream_protect_ex(struct enforcer *e, struct event_base *base, const char *host,
				 uint16_t port, uint32_t rule_flags, int refresh_ms,
				 struct enforcer_upstream **out);
/* Is addr (network order, 4 or 16 bytes by family) one of u's current addresses, at port
 * (host order)? For routing a redirected connection to its upstream. */
bool enforcer_upstream_has(const struct enforcer_upstream *u, int family, const uint8_t *addr,
			   uint16_t port);
/* Stops refreshing (joins a resolution in flight) and, when unprotect is true, removes the
 * addresses it added. */
void enforcer_upstream_free(struct enforcer_upstream *u, bool unprotect);
/* Number of addresses currently protected for u (tests, status). */
size_t enforcer_upstream_count(const struct enforcer_upstream *u);

#endif
