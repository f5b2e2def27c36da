/* enforce_int: what the parts of the enforcer share — its state, the map table, and the
 * few steps one part does for another. enforcer.h is the interface; this is not one. */
#ifndef WARDEN_ENFORCE_INT_H
#define WARDEN_ENFORCE_INT_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <bpf/libbpf.h>
#include <event2/event.h>

#include "enforce/cgroup.h"
#include "enforce/enforcer.h"
#include "warden_maps.h"

#ifndef BPF_CGROUP_UNIX_CONNECT_VALUE
#define BPF_CGROUP_UNIX_CONNECT_VALUE 49	/* enum bpf_attach_type, kernel 6.7; not in 6.1 UAPI */
#endif
#define FILEID_KERNFS 0xfe

/* The maps, by enum warden_map (include/warden_maps.h). */
#define M_MAX WARDEN_M_MAX
#define ENFORCE_MAP_NAME(ID, name, ...) [WARDEN_M_##ID] = WARDEN_MAP_NAME(name),
static const char *const map_names[WARDEN_M_MAX] = { WARDEN_MAPS(ENFORCE_MAP_NAME) };
#undef ENFORCE_MAP_NAME

static const char *const hook_names[WARDEN_HOOK_MAX] = {
	"connect4", "connect6", "sendmsg4", "sendmsg6", "sock_create", "connect_unix",
	"lsm_socket", "getpeername4", "getpeername6", "sockops",
};

struct enforcer {
	char pin_dir[PATH_MAX];
	char cgroup_root[PATH_MAX];
	int root_fd;
	uint64_t root_id;
	struct warden_bpf *skel;	/* NULL in ENFORCER_ADOPT mode */
	int map_fds[M_MAX];
	bool own_map_fds;		/* opened from pins (ADOPT), closed by enforcer_close */
	struct bpf_link *links[WARDEN_HOOK_MAX];
	bool hook_supported[WARDEN_HOOK_MAX];
	bool adopted;
	bool task_btf;			/* programs loaded with warden_task_btf */
	char unix_reason[128];
	char lsm_reason[128];		/* why lsm_socket is not attached; empty when it is */
	char sockops_reason[128];	/* why sockops is not attached (callers are then found
					 * with sock_diag only); empty when it is */
	uint32_t next_rule_id;
	/* audit */
	struct ring_buffer *rb;
	struct event *rb_ev;
	enforcer_event_cb cb;
	void *cb_arg;
	int handled;
	struct cgroup_index *cg_cache;	/* cgroup id -> path, filled as events name cgroups */
	time_t cg_scanned_at;
};

/* The config map (warden_config) is written by the daemon and by wardenctl: every writer
 * holds the pin directory's flock around read-modify-write (enforcer.c). */
int enforcer_config_lock(struct enforcer *e);
void enforcer_config_unlock(int fd);
int enforcer_config_read(struct enforcer *e, struct warden_config *c);
int enforcer_config_write(struct enforcer *e, const struct warden_config *c);
/* Read-modify-write under the lock: edit changes *c and says whether to write it back. */
int enforcer_config_edit(struct enforcer *e, bool (*edit)(struct warden_config *c, uintptr_t arg),
			 uintptr_t arg);
int enforcer_level_mask_refresh(struct enforcer *e);
/* An absolute path under the cgroup root, and its depth below the root (enforcer.c). */
int enforcer_cgroup_abspath(const struct enforcer *e, const char *path, char *out, int *level);
const char *enforcer_errno_name(int err);
/* rules.c: add a rule; *created says whether it is new (the resolver refreshes hostnames'
 * rules and removes only what it added). */
int enforcer_rule_add_ex(struct enforcer *e, const struct enforcer_dest *d, bool protect,
			 uint32_t *rule_id, bool *created);

#endif
