/* enforcer: load, pin, attach and re-adopt the warden BPF object; status; cgroup paths. */
#include "enforce/enforce_int.h"

#include "base/log.h"
#include "enforce/cgroup.h"
#include "warden.skel.h"
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* ---- small helpers ----------------------------------------------------------------------- */

static int libbpf_log(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char buf[512];
	size_t n;

	if (level == LIBBPF_DEBUG || (level == LIBBPF_INFO && log_get_level() > LOG_DEBUG))
		return 0;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	n = strlen(buf);
	if (n && buf[n - 1] == '\n')
		buf[n - 1] = '\0';
	/* libbpf prefixes its own messages with "libbpf: ". */
	if (level == LIBBPF_WARN)
		log_warn("%s", buf);
	else
		log_debug("%s", buf);
	return 0;
}

static int path_join(char *buf, size_t len, const char *a, const char *b)
{
	int n = snprintf(buf, len, "%s/%s", a, b);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static bool fs_is(const char *path, unsigned long magic)
{
	struct statfs st;

	return statfs(path, &st) == 0 && (unsigned long)st.f_type == magic;
}

const char *enforcer_hook_name(unsigned hook)
{
	return hook < WARDEN_HOOK_MAX ? hook_names[hook] : NULL;
}

const char *enforcer_mode_name(unsigned mode)
{
	switch (mode) {
	case WARDEN_MODE_LOCKDOWN: return "lockdown";
	case WARDEN_MODE_PROTECT: return "protect";
	case WARDEN_MODE_EXEMPT: return "exempt";
	default: return "none";
	}
}

const char *enforcer_reason_name(unsigned reason)
{
	switch (reason) {
	case WARDEN_REASON_LOCKDOWN: return "lockdown";
	case WARDEN_REASON_PROTECTED: return "protected";
	case WARDEN_REASON_RAW_SOCKET: return "raw_socket";
	case WARDEN_REASON_PING_SOCKET: return "ping_socket";
	case WARDEN_REASON_UNIX_PATH: return "unix_path";
	case WARDEN_REASON_SOCKET_FAMILY: return "socket_family";
	default: return "none";
	}
}

int enforcer_mode_parse(const char *s, enum warden_mode *out)
{
	if (strcmp(s, "lockdown") == 0)
		*out = WARDEN_MODE_LOCKDOWN;
	else if (strcmp(s, "protect") == 0)
		*out = WARDEN_MODE_PROTECT;
	else
		return -EINVAL;
	return 0;
}

static const struct { const char *name; int err; } errnos[] = {
	{ "EPERM", EPERM }, { "EACCES", EACCES }, { "ECONNREFUSED", ECONNREFUSED },
	{ "ENETUNREACH", ENETUNREACH }, { "EHOSTUNREACH", EHOSTUNREACH },
};

int enforcer_errno_parse(const char *name, int *out)
{
	for (size_t i = 0; i < sizeof(errnos) / sizeof(errnos[0]); i++) {
		if (strcmp(name, errnos[i].name) == 0) {
			*out = errnos[i].err;
			return 0;
		}
	}
	return -EINVAL;
}

const char *enforcer_errno_name(int err)
{
	for (size_t i = 0; i < sizeof(errnos) / sizeof(errnos[0]); i++)
		if (errnos[i].err == err)
			return errnos[i].name;
	return NULL;
}

const char *enforcer_pin_dir(const struct enforcer *e) { return e->pin_dir; }
const char *enforcer_cgroup_root(const struct enforcer *e) { return e->cgroup_root; }

int enforcer_map_fd(struct enforcer *e, const char *map_name)
{
	for (int i = 0; i < M_MAX; i++)
		if (strcmp(map_names[i], map_name) == 0)
			return e->map_fds[i];
	return -ENOENT;
}

/* ---- cgroups ----------------------------------------------------------------------------- */

/* Absolute, normalised path of a cgroup given absolute or root-relative; must be inside the
 * root. *level is its depth below the root. */
int enforcer_cgroup_abspath(const struct enforcer *e, const char *path, char *out, int *level)
{
	char joined[PATH_MAX], real[PATH_MAX];
	size_t rl = strlen(e->cgroup_root);
	int lvl = 0;

	if (!path || !*path)
		return -EINVAL;
	if (path[0] == '/') {
		if ((size_t)snprintf(joined, sizeof(joined), "%s", path) >= sizeof(joined))
			return -ENAMETOOLONG;
	} else if (path_join(joined, sizeof(joined), e->cgroup_root, path) < 0) {
		return -ENAMETOOLONG;
	}
	if (!realpath(joined, real))
		return -errno;
	if (strncmp(real, e->cgroup_root, rl) != 0 || (real[rl] != '/' && real[rl] != '\0')) {
		log_error("enforcer: %s is not under the cgroup v2 root %s", path, e->cgroup_root);
		return -EINVAL;
	}
	for (const char *p = real + rl; *p; p++)
		if (*p == '/')
			lvl++;
	strcpy(out, real);
	*level = lvl;
	return 0;
}

/* Fast path: the cgroup id is a kernfs file handle, so open_by_handle_at() on the cgroup2
 * mount opens the directory and /proc/self/fd names it. Needs CAP_DAC_READ_SEARCH. */
static int cgroup_path_by_handle(struct enforcer *e, uint64_t id, char *buf, size_t len)
{
	union {
		struct file_handle fh;
		char space[sizeof(struct file_handle) + sizeof(uint64_t)];
	} h;
	char link[64];
	ssize_t n;
	int fd, ret = 0;

	h.fh.handle_bytes = sizeof(uint64_t);
	h.fh.handle_type = FILEID_KERNFS;
	memcpy(h.fh.f_handle, &id, sizeof(id));
	fd = open_by_handle_at(e->root_fd, &h.fh, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, buf, len - 1);
	if (n < 0) {
		ret = -errno;
		goto out;
	}
	buf[n] = '\0';
out:
	close(fd);
	return ret;
}

int enforcer_cgroup_path(struct enforcer *e, uint64_t id, char *buf, size_t len)
{
	const char *p = cgroup_index_get(e->cg_cache, id);
	time_t now = time(NULL);
	int ret;

	if (!p && cgroup_path_by_handle(e, id, buf, len) == 0) {
		return cgroup_index_put(e->cg_cache, id, buf);
	}
	if (!p && now != e->cg_scanned_at) {
		/* A miss rescans at most once a second: a flood of events from unknown ids must not
		 * turn into a flood of directory walks. */
		e->cg_scanned_at = now;
		ret = cgroup_index_scan(e->cg_cache, e->cgroup_root, WARDEN_MAX_LEVELS);
		if (ret < 0)
			return ret;
		p = cgroup_index_get(e->cg_cache, id);
	}
	if (!p)
		return -ENOENT;
	if ((size_t)snprintf(buf, len, "%s", p) >= len)
		return -ENAMETOOLONG;
	return 0;
}

/* ---- config map -------------------------------------------------------------------------- */

/* The daemon and wardenctl both edit warden_config by read-modify-write (flags, level mask,
 * sidecar port, errno). Unserialised, one writer could drop the other's level bit and the
 * programs would skip a cgroup depth: one flock on the pin directory orders them. Held for
 * microseconds; closing the fd releases it. */
int enforcer_config_lock(struct enforcer *e)
{
	int fd = open(e->pin_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	while (flock(fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			int ret = -errno;
			close(fd);
			return ret;
		}
	}
	return fd;
}

void enforcer_config_unlock(int fd)
{
	if (fd >= 0)
		close(fd);
}

int enforcer_config_read(struct enforcer *e, struct warden_config *c)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(e->map_fds[WARDEN_M_CONFIG], &zero, c) < 0 ? -errno : 0;
}

int enforcer_config_write(struct enforcer *e, const struct warden_config *c)
{
	__u32 zero = 0;

	return bpf_map_update_elem(e->map_fds[WARDEN_M_CONFIG], &zero, c, BPF_ANY) < 0 ? -errno : 0;
}

int enforcer_config_edit(struct enforcer *e, bool (*edit)(struct warden_config *c, uintptr_t arg),
			 uintptr_t arg)
{
	struct warden_config cfg;
	int lock = enforcer_config_lock(e), ret;

	if (lock < 0)
		return lock;
	ret = enforcer_config_read(e, &cfg);
	if (ret == 0 && edit(&cfg, arg))
		ret = enforcer_config_write(e, &cfg);
	enforcer_config_unlock(lock);
	return ret;
}

/* A new enrolment epoch: every decision the programs cached before it stops matching. A
 * random value rather than a counter, so two writers (the daemon and wardenctl) can never
 * bring back an epoch some cached decision still carries. */
static int epoch_bump(struct enforcer *e)
{
	__u64 epoch;
	__u32 zero = 0;

	if (getrandom(&epoch, sizeof(epoch), GRND_NONBLOCK) != sizeof(epoch)) {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);	/* early boot only: still fresh */
		epoch = ((__u64)ts.tv_sec * 1000000000ULL + (__u64)ts.tv_nsec) ^
			((__u64)getpid() << 40);
	}
	return bpf_map_update_elem(e->map_fds[WARDEN_M_EPOCH], &zero, &epoch, BPF_ANY) < 0 ? -errno : 0;
}

/* level_mask tells the programs which ancestor depths can hold an entry: recompute it from
 * the map so removals clear bits no other entry needs. Every change to warden_enrolled ends
 * here, so this is also where the cached decisions are invalidated (after the maps). */
int enforcer_level_mask_refresh(struct enforcer *e)
{
	struct warden_config cfg;
	struct warden_enroll v;
	__u64 key, next, *prev = NULL;
	__u32 mask = 0;
	int ret, fd = e->map_fds[WARDEN_M_ENROLLED];
	int lock = enforcer_config_lock(e);

	if (lock < 0)
		return lock;
	/* The scan is inside the lock: a writer that enrolled meanwhile is seen by one of us. */
	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		if (bpf_map_lookup_elem(fd, &next, &v) == 0 && v.level < WARDEN_MAX_LEVELS)
			mask |= 1U << v.level;
		key = next;
		prev = &key;
	}
	ret = enforcer_config_read(e, &cfg);
	if (ret == 0) {
		cfg.level_mask = mask;
		ret = enforcer_config_write(e, &cfg);
	}
	enforcer_config_unlock(lock);
	/* Even when the mask could not be written: the entry itself changed. */
	if (epoch_bump(e) < 0 && ret == 0)
		ret = -errno;
	return ret;
}

/* ---- open / close ------------------------------------------------------------------------ */

/* Does the kernel know BPF_CGROUP_UNIX_CONNECT? Load the smallest program with that expected
 * attach type: old kernels refuse it with EINVAL. */
static int probe_unix_connect(char *why, size_t len)
{
	const struct bpf_insn insns[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 1 },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	LIBBPF_OPTS(bpf_prog_load_opts, o, .expected_attach_type = BPF_CGROUP_UNIX_CONNECT_VALUE);
	int fd = bpf_prog_load(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, "warden_probe", "GPL", insns, 2, &o);

	if (fd < 0) {
		int err = -errno;

		snprintf(why, len, "kernel has no cgroup connect_unix hook (needs 6.7+): %s",
			 strerror(-err));
		return err;
	}
	close(fd);
	return 0;
}

/* Can lsm_socket work here? The kernel's list of active LSMs must name "bpf" (where
 * securityfs is mounted; elsewhere attaching is the test), and the smallest LSM program on
 * socket_create must load: kernels without CONFIG_BPF_LSM have no such attach point, and
 * some refuse trampoline programs altogether. Probing keeps the full load from failing. */
int enforcer_probe_bpf_lsm(char *why, size_t len)
{
	const struct bpf_insn insns[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 0 },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	LIBBPF_OPTS(bpf_prog_load_opts, o, .expected_attach_type = BPF_LSM_MAC);
	FILE *f = fopen("/sys/kernel/security/lsm", "re");
	bool listed = f == NULL;
	char lsms[512];
	int fd, id;

	if (f) {
		size_t n = fread(lsms, 1, sizeof(lsms) - 1, f);

		fclose(f);
		lsms[n] = '\0';
		for (char *save = NULL, *tok = strtok_r(lsms, ",\n", &save); tok && !listed;
		     tok = strtok_r(NULL, ",\n", &save))
			listed = strcmp(tok, "bpf") == 0;
	}
	if (!listed) {
		snprintf(why, len, "the kernel has no active BPF LSM (\"bpf\" is not in "
			 "/sys/kernel/security/lsm: boot with lsm=...,bpf)");
		return -EOPNOTSUPP;
	}
	id = libbpf_find_vmlinux_btf_id("socket_create", BPF_LSM_MAC);
	if (id < 0) {
		snprintf(why, len, "the kernel has no BPF LSM hooks (CONFIG_BPF_LSM): %s",
			 strerror(-id));
		return id;
	}
	o.attach_btf_id = (__u32)id;
	fd = bpf_prog_load(BPF_PROG_TYPE_LSM, "warden_probe", "GPL", insns, 2, &o);
	if (fd < 0) {
		int err = -errno;

		snprintf(why, len, "the kernel refuses BPF LSM programs: %s", strerror(-err));
		return err;
	}
	close(fd);
	return 0;
}

static int ensure_pin_dir(const char *dir)
{
	char parent[PATH_MAX];
	char *slash;

	if ((size_t)snprintf(parent, sizeof(parent), "%s", dir) >= sizeof(parent))
		return -ENAMETOOLONG;
	slash = strrchr(parent, '/');
	if (!slash || slash == parent) {
		log_error("enforcer: pin dir %s must be a directory below a bpffs mount", dir);
		return -EINVAL;
	}
	*slash = '\0';
	if (!fs_is(parent, BPF_FS_MAGIC)) {
		if (strcmp(parent, "/sys/fs/bpf") != 0) {
			log_error("enforcer: %s is not a bpffs mount", parent);
			return -EOPNOTSUPP;
		}
		/* Hosts that never mounted bpffs: mount it root-only (never into agent containers). */
		if (mount("bpf", parent, "bpf", 0, "mode=0700") < 0) {
			int err = -errno;

			log_error("enforcer: mounting bpffs at %s: %s", parent, strerror(-err));
			return err;
		}
		log_info("enforcer: mounted bpffs at %s", parent);
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static struct bpf_program *hook_prog(struct warden_bpf *s, unsigned hook)
{
	switch (hook) {
	case WARDEN_HOOK_CONNECT4: return s->progs.warden_connect4;
	case WARDEN_HOOK_CONNECT6: return s->progs.warden_connect6;
	case WARDEN_HOOK_SENDMSG4: return s->progs.warden_sendmsg4;
	case WARDEN_HOOK_SENDMSG6: return s->progs.warden_sendmsg6;
	case WARDEN_HOOK_SOCK_CREATE: return s->progs.warden_sock_create;
	case WARDEN_HOOK_CONNECT_UNIX: return s->progs.warden_connect_unix;
	case WARDEN_HOOK_LSM_SOCKET: return s->progs.warden_lsm_socket;
	case WARDEN_HOOK_GETPEERNAME4: return s->progs.warden_getpeername4;
	case WARDEN_HOOK_GETPEERNAME6: return s->progs.warden_getpeername6;
	case WARDEN_HOOK_SOCKOPS: return s->progs.warden_sockops;
	default: return NULL;
	}
}

static int skel_load(struct enforcer *e, bool with_unix, bool with_lsm, bool task_btf,
		     struct warden_bpf **out)
{
	struct warden_bpf *s = warden_bpf__open();
	struct bpf_map *m;
	char pin[PATH_MAX];
	int ret;

	if (!s)
		return -errno;
	s->rodata->warden_task_btf = task_btf;
	bpf_object__for_each_map(m, s->obj) {
		if (bpf_map__is_internal(m))
			continue;	/* .rodata: this load's constants, not state to keep */
		ret = path_join(pin, sizeof(pin), e->pin_dir, bpf_map__name(m));
		if (ret < 0)
			goto out;
		/* Reuse the pinned map when present (policy survives restarts), else pin it. */
		ret = bpf_map__set_pin_path(m, pin);
		if (ret < 0)
			goto out;
	}
	if (with_unix)
		ret = bpf_program__set_expected_attach_type(s->progs.warden_connect_unix,
				(enum bpf_attach_type)BPF_CGROUP_UNIX_CONNECT_VALUE);
	else
		ret = bpf_program__set_autoload(s->progs.warden_connect_unix, false);
	if (ret == 0 && !with_lsm)
		ret = bpf_program__set_autoload(s->progs.warden_lsm_socket, false);
	if (ret == 0 && e->sockops_reason[0])
		ret = bpf_program__set_autoload(s->progs.warden_sockops, false);
	if (ret < 0)
		goto out;
	ret = warden_bpf__load(s);
out:
	if (ret < 0) {
		warden_bpf__destroy(s);
		return ret;
	}
	*out = s;
	return 0;
}

/* Load with the cheaper cgroup lookup (the task's cgroup read through BTF) and fall back to
 * helper calls where the kernel does not allow it for cgroup programs: same policy, slower. */
static int skel_load_any(struct enforcer *e, bool with_unix, bool with_lsm, bool helpers,
			 struct warden_bpf **out)
{
	int ret = helpers ? -EPERM : skel_load(e, with_unix, with_lsm, true, out), ret2;

	e->task_btf = ret == 0;
	if (ret == 0)
		return 0;
	ret2 = skel_load(e, with_unix, with_lsm, false, out);
	if (ret2 == 0 && !helpers)
		log_info("enforcer: the kernel refused BTF access to the current task (%s); "
			 "cgroup lookups use helper calls", strerror(-ret));
	return ret2;
}

/* Attach hook's program at the root through a pinned link, or adopt the pinned link and swap
 * the program in: exactly one attachment per hook, whatever happened before. */
static int hook_attach(struct enforcer *e, unsigned hook)
{
	struct bpf_program *prog = hook_prog(e->skel, hook);
	struct bpf_link *link;
	char pin[PATH_MAX], name[64];
	int ret;

	snprintf(name, sizeof(name), WARDEN_LINK_PREFIX "%s", hook_names[hook]);
	ret = path_join(pin, sizeof(pin), e->pin_dir, name);
	if (ret < 0)
		return ret;
	/* Test for the pin first: libbpf warns about every link it cannot open. */
	link = access(pin, F_OK) == 0 ? bpf_link__open(pin) : NULL;
	if (link) {
		ret = bpf_link__update_program(link, prog);
		if (ret == 0) {
			e->links[hook] = link;
			e->adopted = true;
			return 0;
		}
		/* ENOLINK: the link is defunct (its cgroup went away); replace it. */
		log_warn("enforcer: pinned link %s unusable (%s); attaching afresh", pin,
			 strerror(-ret));
		bpf_link__unpin(link);
		bpf_link__destroy(link);
	} else if (access(pin, F_OK) == 0) {
		ret = -errno;
		log_error("enforcer: opening %s: %s", pin, strerror(-ret));
		return ret;
	}
	link = bpf_program__attach_cgroup(prog, e->root_fd);
	if (!link) {
		ret = -errno;
		log_error("enforcer: attaching %s at %s: %s", hook_names[hook], e->cgroup_root,
			  strerror(-ret));
		return ret;
	}
	ret = bpf_link__pin(link, pin);
	if (ret < 0) {
		log_error("enforcer: pinning %s: %s", pin, strerror(-ret));
		bpf_link__destroy(link);	/* unpinned: detaches */
		return ret;
	}
	e->links[hook] = link;
	return 0;
}

/* The LSM hook's link is not a cgroup link: the kernel cannot swap its program. A new link
 * is attached before the pinned one goes, so some program is always attached (for a moment
 * both are, each enforcing the same maps). */
static int lsm_attach(struct enforcer *e)
{
	const unsigned hook = WARDEN_HOOK_LSM_SOCKET;
	struct bpf_link *link, *old = NULL;
	char pin[PATH_MAX];
	int ret;

	ret = path_join(pin, sizeof(pin), e->pin_dir, WARDEN_LINK_PREFIX "lsm_socket");
	if (ret < 0)
		return ret;
	link = bpf_program__attach_lsm(hook_prog(e->skel, hook));
	if (!link)
		return -errno;
	if (access(pin, F_OK) == 0) {
		old = bpf_link__open(pin);	/* NULL: not a link; replaced all the same */
		if (unlink(pin) < 0) {
			ret = -errno;
			log_error("enforcer: removing %s: %s", pin, strerror(-ret));
			goto out;
		}
		if (old)
			e->adopted = true;
	}
	ret = bpf_link__pin(link, pin);
	if (ret < 0) {
		log_error("enforcer: pinning %s: %s", pin, strerror(-ret));
		if (old && bpf_obj_pin(bpf_link__fd(old), pin) < 0)
			log_error("enforcer: re-pinning the previous %s: %s", pin, strerror(errno));
		goto out;
	}
	e->links[hook] = link;
	link = NULL;
out:
	bpf_link__destroy(link);	/* unpinned: detaches */
	bpf_link__destroy(old);		/* unpinned now: the previous program detaches */
	return ret;
}

static int adopt_maps(struct enforcer *e)
{
	char pin[PATH_MAX];
	int ret;

	for (int i = 0; i < M_MAX; i++) {
		ret = path_join(pin, sizeof(pin), e->pin_dir, map_names[i]);
		if (ret < 0)
			return ret;
		e->map_fds[i] = bpf_obj_get(pin);
		if (e->map_fds[i] < 0) {
			ret = -errno;
			log_error("enforcer: %s: %s%s", pin, strerror(-ret),
				  ret == -ENOENT ? " (enforcement not installed?)" : "");
			return ret;
		}
	}
	for (unsigned h = 0; h < WARDEN_HOOK_MAX; h++) {
		char name[64];

		snprintf(name, sizeof(name), WARDEN_LINK_PREFIX "%s", hook_names[h]);
		if (path_join(pin, sizeof(pin), e->pin_dir, name) == 0 && access(pin, F_OK) == 0)
			e->links[h] = bpf_link__open(pin);	/* NULL: that hook is not attached */
		e->hook_supported[h] = e->links[h] != NULL;
	}
	return 0;
}

/* A pin directory written by a build with another map layout cannot be reused: libbpf would
 * refuse some pinned maps (or worse, silently add new ones beside stale ones). Check the
 * ABI version in the pinned config map before loading or adopting anything. */
static int abi_check_pins(const char *pin_dir)
{
	struct bpf_map_info info;
	struct warden_config cfg;
	__u32 len = sizeof(info), zero = 0;
	char pin[PATH_MAX];
	int fd, ret;

	ret = path_join(pin, sizeof(pin), pin_dir, WARDEN_MAP_CONFIG);
	if (ret < 0)
		return ret;
	fd = bpf_obj_get(pin);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;	/* nothing installed: nothing to check */
	memset(&info, 0, sizeof(info));
	memset(&cfg, 0, sizeof(cfg));
	if (bpf_obj_get_info_by_fd(fd, &info, &len) < 0) {
		ret = -errno;
		goto out;
	}
	if (info.value_size == sizeof(cfg) && bpf_map_lookup_elem(fd, &zero, &cfg) < 0) {
		ret = -errno;
		goto out;
	}
	if (info.value_size != sizeof(cfg) ||
	    (cfg.abi_version != 0 && cfg.abi_version != WARDEN_ABI_VERSION)) {
		log_error("enforcer: %s holds maps of another version (ABI %u, this build uses %u); "
			  "upgrade: run 'wardenctl uninstall --yes' (enforcement stops), then "
			  "start mcpwarden again, which installs and re-fills the maps from its "
			  "config", pin_dir, cfg.abi_version, WARDEN_ABI_VERSION);
		ret = -EPROTO;
	}
out:
	close(fd);
	return ret;
}

/* The highest rule id in a map, so new rules never reuse an id an auditor already saw. */
static void rule_ids_scan(struct enforcer *e, int fd, size_t key_size)
{
	unsigned char key[sizeof(struct warden_unix_key)], next[sizeof(struct warden_unix_key)];
	struct warden_rule r;
	void *prev = NULL;

	if (key_size > sizeof(key))
		return;
	while (bpf_map_get_next_key(fd, prev, next) == 0) {
		if (bpf_map_lookup_elem(fd, next, &r) == 0 && r.id >= e->next_rule_id)
			e->next_rule_id = r.id + 1;
		memcpy(key, next, key_size);
		prev = key;
	}
}

int enforcer_open(const struct enforcer_opts *opts, struct enforcer **out)
{
	const struct enforcer_opts defaults = { 0 };
	struct enforcer *e = calloc(1, sizeof(*e));
	struct warden_config cfg;
	int ret, lock;

	if (!e)
		return -ENOMEM;
	if (!opts)
		opts = &defaults;
	libbpf_set_print(libbpf_log);
	e->root_fd = -1;
	e->next_rule_id = 1;
	if ((ret = cgroup_index_new(&e->cg_cache)))
		goto out;
	for (int i = 0; i < M_MAX; i++)
		e->map_fds[i] = -1;
	if ((size_t)snprintf(e->pin_dir, sizeof(e->pin_dir), "%s",
			     opts->pin_dir ? opts->pin_dir : WARDEN_PIN_DIR_DEFAULT) >=
	    sizeof(e->pin_dir)) {
		ret = -ENAMETOOLONG;
		goto out;
	}
	if (opts->cgroup_root) {
		if (!fs_is(opts->cgroup_root, CGROUP2_SUPER_MAGIC)) {
			log_error("enforcer: %s is not a cgroup2 mount", opts->cgroup_root);
			ret = -EOPNOTSUPP;
			goto out;
		}
		snprintf(e->cgroup_root, sizeof(e->cgroup_root), "%s", opts->cgroup_root);
	} else if ((ret = cgroup_detect_root(e->cgroup_root, sizeof(e->cgroup_root))) < 0) {
		log_error("enforcer: no cgroup v2 hierarchy at /sys/fs/cgroup or "
			  "/sys/fs/cgroup/unified");
		goto out;
	}
	e->root_fd = open(e->cgroup_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (e->root_fd < 0) {
		ret = -errno;
		goto out;
	}
	ret = cgroup_id(e->cgroup_root, &e->root_id);
	if (ret < 0)
		goto out;

	ret = abi_check_pins(e->pin_dir);
	if (ret < 0)
		goto out;
	if (opts->mode == ENFORCER_ADOPT) {
		e->own_map_fds = true;
		ret = adopt_maps(e);
		if (ret < 0)
			goto out;
		e->adopted = true;
		if (!e->links[WARDEN_HOOK_CONNECT_UNIX])
			snprintf(e->unix_reason, sizeof(e->unix_reason), "connect_unix not attached");
		if (!e->links[WARDEN_HOOK_LSM_SOCKET])
			snprintf(e->lsm_reason, sizeof(e->lsm_reason), "lsm_socket not attached");
		if (!e->links[WARDEN_HOOK_SOCKOPS])
			snprintf(e->sockops_reason, sizeof(e->sockops_reason),
				 "sockops not attached");
	} else {
		ret = ensure_pin_dir(e->pin_dir);
		if (ret < 0)
			goto out;
		ret = probe_unix_connect(e->unix_reason, sizeof(e->unix_reason));
		if (enforcer_probe_bpf_lsm(e->lsm_reason, sizeof(e->lsm_reason)) < 0)
			log_warn("enforcer: %s", e->lsm_reason);
		ret = skel_load_any(e, ret == 0, !e->lsm_reason[0], opts->cgroup_helpers,
				    &e->skel);
		if (ret < 0 && !e->lsm_reason[0]) {
			/* A kernel without CONFIG_BPF_LSM has no socket_create attach point:
			 * the cgroup hooks still enforce. */
			snprintf(e->lsm_reason, sizeof(e->lsm_reason),
				 "lsm_socket program failed to load: %s", strerror(-ret));
			log_warn("enforcer: %s; continuing without it", e->lsm_reason);
			ret = skel_load_any(e, !e->unix_reason[0], false, opts->cgroup_helpers,
					    &e->skel);
		}
		if (ret < 0 && !e->sockops_reason[0]) {
			/* sockops reads the socket's cgroup through BTF (kernels that refuse
			 * that, or lack its helpers): callers are then found with sock_diag. */
			snprintf(e->sockops_reason, sizeof(e->sockops_reason),
				 "sockops program failed to load: %s", strerror(-ret));
			log_warn("enforcer: %s; caller identity uses sock_diag only",
				 e->sockops_reason);
			ret = skel_load_any(e, !e->unix_reason[0], !e->lsm_reason[0],
					    opts->cgroup_helpers, &e->skel);
		}
		if (ret < 0 && !e->unix_reason[0]) {
			/* The kernel has the hook but refused our program (kfuncs, verifier):
			 * enforce everything else rather than nothing. */
			snprintf(e->unix_reason, sizeof(e->unix_reason),
				 "connect_unix program failed to load: %s", strerror(-ret));
			log_warn("enforcer: %s; continuing without it", e->unix_reason);
			ret = skel_load_any(e, false, !e->lsm_reason[0], opts->cgroup_helpers,
					    &e->skel);
		}
		if (ret < 0) {
			log_error("enforcer: loading the BPF programs failed: %s%s", strerror(-ret),
				  ret == -EPERM ? " (needs root: CAP_BPF, CAP_NET_ADMIN, "
				  "CAP_SYS_ADMIN)" : "");
			goto out;
		}
#define SKEL_MAP_FD(ID, name, ...) \
		e->map_fds[WARDEN_M_##ID] = bpf_map__fd(e->skel->maps.warden_##name);
		WARDEN_MAPS(SKEL_MAP_FD)
#undef SKEL_MAP_FD
		lock = enforcer_config_lock(e);
		ret = lock < 0 ? lock : enforcer_config_read(e, &cfg);
		if (ret < 0) {
			enforcer_config_unlock(lock);
			goto out;
		}
		if (cfg.abi_version == 0) {
			cfg.abi_version = WARDEN_ABI_VERSION;
			cfg.deny_errno = EPERM;
		} else if (cfg.abi_version != WARDEN_ABI_VERSION) {
			log_error("enforcer: %s holds ABI version %u maps, this build uses %u; "
				  "remove it (wardenctl uninstall) first", e->pin_dir,
				  cfg.abi_version, WARDEN_ABI_VERSION);
			enforcer_config_unlock(lock);
			ret = -EPROTO;
			goto out;
		}
		if (!e->unix_reason[0])
			cfg.flags |= WARDEN_CFG_F_UNIX_HOOK;
		else
			cfg.flags &= (__u16)~WARDEN_CFG_F_UNIX_HOOK;
		ret = enforcer_config_write(e, &cfg);
		enforcer_config_unlock(lock);
		if (ret < 0)
			goto out;
		for (unsigned h = 0; h < WARDEN_HOOK_MAX; h++) {
			if (h == WARDEN_HOOK_CONNECT_UNIX && e->unix_reason[0])
				continue;
			if (h == WARDEN_HOOK_SOCKOPS && e->sockops_reason[0])
				continue;
			if (h == WARDEN_HOOK_LSM_SOCKET) {
				if (e->lsm_reason[0])
					continue;
				ret = lsm_attach(e);
				if (ret < 0) {
					snprintf(e->lsm_reason, sizeof(e->lsm_reason),
						 "attaching lsm_socket: %s", strerror(-ret));
					continue;
				}
				e->hook_supported[h] = true;
				continue;
			}
			ret = hook_attach(e, h);
			if (ret < 0)
				goto out;
			e->hook_supported[h] = true;
		}
		if (e->unix_reason[0])
			log_warn("enforcer: unix sockets are not enforced: %s", e->unix_reason);
		if (e->lsm_reason[0])
			log_warn("enforcer: AF_PACKET, AF_XDP and AF_VSOCK sockets are not refused: "
				 "%s", e->lsm_reason);
		if (opts->deny_errno) {
			ret = enforcer_set_errno(e, opts->deny_errno);
			if (ret < 0)
				goto out;
		}
		ret = enforcer_level_mask_refresh(e);
		if (ret < 0)
			goto out;
	}
	rule_ids_scan(e, e->map_fds[WARDEN_M_PROTECT4], sizeof(struct warden_lpm4_key));
	rule_ids_scan(e, e->map_fds[WARDEN_M_PROTECT6], sizeof(struct warden_lpm6_key));
	rule_ids_scan(e, e->map_fds[WARDEN_M_ALLOW4], sizeof(struct warden_lpm4_key));
	rule_ids_scan(e, e->map_fds[WARDEN_M_ALLOW6], sizeof(struct warden_lpm6_key));
	rule_ids_scan(e, e->map_fds[WARDEN_M_EXACT4], sizeof(struct warden_exact4_key));
	rule_ids_scan(e, e->map_fds[WARDEN_M_EXACT6], sizeof(struct warden_exact6_key));
	rule_ids_scan(e, e->map_fds[WARDEN_M_UNIXPATH], sizeof(struct warden_unix_key));
	log_info("enforcer: %s %s (cgroup root %s)",
		 e->adopted ? "adopted" : "attached", e->pin_dir, e->cgroup_root);
	*out = e;
	return 0;
out:
	enforcer_close(e);
	return ret;
}

void enforcer_close(struct enforcer *e)
{
	if (!e)
		return;
	enforcer_events_detach(e);
	/* Destroying a link object only closes our fd: the pin keeps the attachment. */
	for (unsigned h = 0; h < WARDEN_HOOK_MAX; h++)
		bpf_link__destroy(e->links[h]);
	if (e->own_map_fds)
		for (int i = 0; i < M_MAX; i++)
			if (e->map_fds[i] >= 0)
				close(e->map_fds[i]);
	warden_bpf__destroy(e->skel);
	if (e->root_fd >= 0)
		close(e->root_fd);
	cgroup_index_free(e->cg_cache);
	free(e);
}

int enforcer_destroy_pins(const char *pin_dir)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d;
	int ret = 0;

	if (!pin_dir)
		pin_dir = WARDEN_PIN_DIR_DEFAULT;
	d = opendir(pin_dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	/* Unpinning the last reference to a link detaches it; maps go with their last user. */
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		if (path_join(path, sizeof(path), pin_dir, de->d_name) < 0)
			continue;
		if (unlink(path) < 0 && errno != ENOENT && ret == 0)
			ret = -errno;
	}
	closedir(d);
	if (rmdir(pin_dir) < 0 && errno != ENOENT && ret == 0)
		ret = -errno;
	return ret;
}

/* ---- status ------------------------------------------------------------------------------ */

int enforcer_status(struct enforcer *e, struct enforcer_status *out)
{
	struct warden_config cfg;
	__u64 key, next, *prev = NULL;
	int ret;

	memset(out, 0, sizeof(*out));
	ret = enforcer_config_read(e, &cfg);
	if (ret < 0)
		return ret;
	out->adopted = e->adopted;
	out->task_btf = e->task_btf;
	out->deny_errno = cfg.deny_errno ? (int)cfg.deny_errno : EPERM;
	out->sidecar_port = ntohs(cfg.sidecar_port);
	while (bpf_map_get_next_key(e->map_fds[WARDEN_M_ENROLLED], prev, &next) == 0) {
		out->nenrolled++;
		key = next;
		prev = &key;
	}
	for (unsigned h = 0; h < WARDEN_HOOK_MAX; h++) {
		struct bpf_link_info info;
		__u32 len = sizeof(info);

		out->hooks[h].supported = e->hook_supported[h];
		if (!e->links[h])
			continue;
		memset(&info, 0, sizeof(info));
		if (bpf_obj_get_info_by_fd(bpf_link__fd(e->links[h]), &info, &len) < 0)
			continue;
		out->hooks[h].attached = true;
		out->hooks[h].link_id = info.id;
		out->hooks[h].prog_id = info.prog_id;
	}
	snprintf(out->unix_unsupported_reason, sizeof(out->unix_unsupported_reason), "%s",
		 e->unix_reason);
	snprintf(out->lsm_unsupported_reason, sizeof(out->lsm_unsupported_reason), "%s",
		 e->lsm_reason);
	return 0;
}
