/* enforcer: load, pin, attach and re-adopt the warden BPF object; feed its maps. */
#include "enforce/enforcer.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <sys/file.h>
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
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <event2/event.h>

#include "base/log.h"
#include "warden.skel.h"

#ifndef BPF_CGROUP_UNIX_CONNECT_VALUE
#define BPF_CGROUP_UNIX_CONNECT_VALUE 49	/* enum bpf_attach_type, kernel 6.7; not in 6.1 UAPI */
#endif
#define FILEID_KERNFS 0xfe

enum map_idx {
	M_CONFIG, M_ENROLLED, M_PROTECT4, M_PROTECT6, M_ALLOW4, M_ALLOW6, M_EXACT4, M_EXACT6,
	M_UNIXPATH, M_EVENTS, M_COUNTERS, M_EPOCH, M_CGCACHE, M_MAX
};

static const char *const map_names[M_MAX] = {
	WARDEN_MAP_CONFIG, WARDEN_MAP_ENROLLED, WARDEN_MAP_PROTECT4, WARDEN_MAP_PROTECT6,
	WARDEN_MAP_ALLOW4, WARDEN_MAP_ALLOW6, WARDEN_MAP_EXACT4, WARDEN_MAP_EXACT6,
	WARDEN_MAP_UNIXPATH, WARDEN_MAP_EVENTS, WARDEN_MAP_COUNTERS, WARDEN_MAP_EPOCH,
	WARDEN_MAP_CGCACHE,
};

static const char *const hook_names[WARDEN_HOOK_MAX] = {
	"connect4", "connect6", "sendmsg4", "sendmsg6", "sock_create", "connect_unix",
};

/* cgroup id -> path: open addressing, linear probing, grown at half full. Ids are never 0. */
struct cg_slot {
	uint64_t id;
	char *path;
};

struct cg_cache {
	struct cg_slot *slots;
	size_t cap, n;
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
	uint32_t next_rule_id;
	/* audit */
	struct ring_buffer *rb;
	struct event *rb_ev;
	enforcer_event_cb cb;
	void *cb_arg;
	int handled;
	struct cg_cache cg_cache;	/* cgroup id -> path */
	time_t cg_scanned_at;
};

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

static const char *errno_name(int err)
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

int enforcer_detect_cgroup_root(char *buf, size_t len)
{
	static const char *const candidates[] = { "/sys/fs/cgroup", "/sys/fs/cgroup/unified" };

	for (size_t i = 0; i < 2; i++) {
		if (fs_is(candidates[i], CGROUP2_SUPER_MAGIC)) {
			if ((size_t)snprintf(buf, len, "%s", candidates[i]) >= len)
				return -ENAMETOOLONG;
			return 0;
		}
	}
	return -EOPNOTSUPP;
}

int enforcer_cgroup_id(const char *path, uint64_t *id)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	*id = st.st_ino;	/* the kernfs node id, which is what bpf_get_current_cgroup_id returns */
	return 0;
}

/* Absolute, normalised path of a cgroup given absolute or root-relative; must be inside the
 * root. *level is its depth below the root. */
static int cgroup_abspath(const struct enforcer *e, const char *path, char *out, int *level)
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

typedef int (*walk_fn)(const char *path, const char *name, void *arg);

/* Depth-first walk of the directories below dir (not dir itself); stops when fn returns
 * non-zero and returns that. Cgroupfs is kernfs (in memory): this never waits on a disk. */
static int walk_dirs(const char *dir, int depth, walk_fn fn, void *arg)
{
	char sub[PATH_MAX];
	struct dirent *de;
	DIR *d;
	int ret = 0;

	if (depth <= 0)
		return 0;
	d = opendir(dir);
	if (!d)
		return 0;	/* gone or unreadable: nothing below it to find */
	while (ret == 0 && (de = readdir(d))) {
		if (de->d_type != DT_DIR || de->d_name[0] == '.')
			continue;
		if (path_join(sub, sizeof(sub), dir, de->d_name) < 0)
			continue;
		ret = fn(sub, de->d_name, arg);
		if (ret == 0)
			ret = walk_dirs(sub, depth - 1, fn, arg);
	}
	closedir(d);
	return ret;
}

struct find_ctx {
	const char *needle;
	size_t nlen;
	bool pod;
	char *buf;
	size_t len;
	int found;
};

static bool is_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

static int find_container(const char *path, const char *name, void *arg)
{
	struct find_ctx *c = arg;
	const char *tok = name, *dash;
	size_t tlen = strlen(name);

	/* Runtime monitor processes (crio-conmon-<id>.scope) are not the container. */
	if (strstr(name, "conmon"))
		return 0;
	if (tlen > 6 && strcmp(name + tlen - 6, ".scope") == 0)
		tlen -= 6;
	dash = memrchr(name, '-', tlen);
	if (dash) {	/* systemd: <runtime>-<id>.scope */
		tlen -= (size_t)(dash + 1 - name);
		tok = dash + 1;
	}
	if (tlen < c->nlen || !is_hex(tok, tlen) || strncmp(tok, c->needle, c->nlen) != 0)
		return 0;
	if (c->found++ == 0 && (size_t)snprintf(c->buf, c->len, "%s", path) >= c->len)
		return -ENAMETOOLONG;
	return 0;
}

static int find_pod(const char *path, const char *name, void *arg)
{
	struct find_ctx *c = arg;
	size_t n = strlen(name);
	const char *p;

	/* cgroupfs: pod<uid>; systemd: kubepods[-<qos>]-pod<uid_with_underscores>.slice */
	if (n == c->nlen + 3 && strncmp(name, "pod", 3) == 0 && strcmp(name + 3, c->needle) == 0)
		goto hit;
	if (n > 6 && strcmp(name + n - 6, ".slice") == 0 && (p = strstr(name, "-pod"))) {
		size_t ulen = (size_t)(name + n - 6 - (p + 4));

		if (ulen == c->nlen) {
			for (size_t i = 0; i < ulen; i++) {
				char want = c->needle[i] == '-' ? '_' : c->needle[i];

				if (p[4 + i] != want)
					return 0;
			}
			goto hit;
		}
	}
	return 0;
hit:
	if (c->found++ == 0 && (size_t)snprintf(c->buf, c->len, "%s", path) >= c->len)
		return -ENAMETOOLONG;
	return 0;
}

static int resolve(const char *root, struct find_ctx *c, walk_fn fn, const char *what)
{
	int ret = walk_dirs(root, 12, fn, c);

	if (ret < 0)
		return ret;
	if (c->found == 0) {
		log_error("enforcer: no cgroup under %s for %s %s", root, what, c->needle);
		return -ENOENT;
	}
	if (c->found > 1) {
		log_error("enforcer: %d cgroups under %s match %s %s; give more of it", c->found,
			  root, what, c->needle);
		return -EEXIST;
	}
	return 0;
}

int enforcer_resolve_container(const char *root, const char *id, char *buf, size_t len)
{
	struct find_ctx c = { .needle = id, .nlen = strlen(id), .buf = buf, .len = len };

	if (c.nlen < 12 || c.nlen > 64 || !is_hex(id, c.nlen)) {
		log_error("enforcer: container id '%s' must be 12 to 64 lowercase hex digits", id);
		return -EINVAL;
	}
	return resolve(root, &c, find_container, "container");
}

int enforcer_resolve_pod(const char *root, const char *uid, char *buf, size_t len)
{
	struct find_ctx c = { .needle = uid, .nlen = strlen(uid), .pod = true, .buf = buf,
			      .len = len };

	if (c.nlen < 8 || c.nlen > 64 || strspn(uid, "0123456789abcdef-") != c.nlen) {
		log_error("enforcer: pod uid '%s' must be a lowercase UUID", uid);
		return -EINVAL;
	}
	return resolve(root, &c, find_pod, "pod");
}

static struct cg_slot *cache_slot(struct cg_cache *c, uint64_t id)
{
	size_t i = (size_t)(id * 0x9e3779b97f4a7c15ULL) & (c->cap - 1);

	while (c->slots[i].id && c->slots[i].id != id)
		i = (i + 1) & (c->cap - 1);
	return &c->slots[i];
}

static const char *cache_get(struct cg_cache *c, uint64_t id)
{
	return c->cap ? cache_slot(c, id)->path : NULL;
}

static int cache_put(struct enforcer *e, uint64_t id, const char *path)
{
	struct cg_cache *c = &e->cg_cache;
	struct cg_slot *s;
	char *copy;

	if ((c->n + 1) * 2 > c->cap) {
		struct cg_cache big = { .cap = c->cap ? c->cap * 2 : 64 };

		big.slots = calloc(big.cap, sizeof(*big.slots));
		if (!big.slots)
			return -ENOMEM;
		for (size_t i = 0; i < c->cap; i++)
			if (c->slots[i].id)
				*cache_slot(&big, c->slots[i].id) = c->slots[i];
		big.n = c->n;
		free(c->slots);
		*c = big;
	}
	copy = strdup(path);
	if (!copy)
		return -ENOMEM;
	s = cache_slot(c, id);
	if (!s->id)
		c->n++;
	free(s->path);
	s->id = id;
	s->path = copy;
	return 0;
}

static void cache_free(struct cg_cache *c)
{
	for (size_t i = 0; i < c->cap; i++)
		free(c->slots[i].path);
	free(c->slots);
	memset(c, 0, sizeof(*c));
}

static int cache_scan_one(const char *path, const char *name, void *arg)
{
	struct enforcer *e = arg;
	uint64_t id = 0;

	if (enforcer_cgroup_id(path, &id) == 0 && cache_put(e, id, path) < 0)
		return -ENOMEM;
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
	const char *p = cache_get(&e->cg_cache, id);
	time_t now = time(NULL);
	int ret;

	if (!p && cgroup_path_by_handle(e, id, buf, len) == 0) {
		ret = cache_put(e, id, buf);
		return ret;
	}
	if (!p && now != e->cg_scanned_at) {
		/* A miss rescans at most once a second: a flood of events from unknown ids must not
		 * turn into a flood of directory walks. */
		e->cg_scanned_at = now;
		if (id == e->root_id)
			cache_put(e, id, e->cgroup_root);
		ret = walk_dirs(e->cgroup_root, WARDEN_MAX_LEVELS, cache_scan_one, e);
		if (ret < 0)
			return ret;
		p = cache_get(&e->cg_cache, id);
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
static int config_lock(struct enforcer *e)
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

static void config_unlock(int fd)
{
	if (fd >= 0)
		close(fd);
}

static int config_read(struct enforcer *e, struct warden_config *c)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(e->map_fds[M_CONFIG], &zero, c) < 0 ? -errno : 0;
}

static int config_write(struct enforcer *e, const struct warden_config *c)
{
	__u32 zero = 0;

	return bpf_map_update_elem(e->map_fds[M_CONFIG], &zero, c, BPF_ANY) < 0 ? -errno : 0;
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
	return bpf_map_update_elem(e->map_fds[M_EPOCH], &zero, &epoch, BPF_ANY) < 0 ? -errno : 0;
}

/* level_mask tells the programs which ancestor depths can hold an entry: recompute it from
 * the map so removals clear bits no other entry needs. Every change to warden_enrolled ends
 * here, so this is also where the cached decisions are invalidated (after the maps). */
static int level_mask_refresh(struct enforcer *e)
{
	struct warden_config cfg;
	struct warden_enroll v;
	__u64 key, next, *prev = NULL;
	__u32 mask = 0;
	int ret, fd = e->map_fds[M_ENROLLED];
	int lock = config_lock(e);

	if (lock < 0)
		return lock;
	/* The scan is inside the lock: a writer that enrolled meanwhile is seen by one of us. */
	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		if (bpf_map_lookup_elem(fd, &next, &v) == 0 && v.level < WARDEN_MAX_LEVELS)
			mask |= 1U << v.level;
		key = next;
		prev = &key;
	}
	ret = config_read(e, &cfg);
	if (ret == 0) {
		cfg.level_mask = mask;
		ret = config_write(e, &cfg);
	}
	config_unlock(lock);
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
	default: return NULL;
	}
}

static int skel_load(struct enforcer *e, bool with_unix, bool task_btf, struct warden_bpf **out)
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
static int skel_load_any(struct enforcer *e, bool with_unix, bool helpers,
			 struct warden_bpf **out)
{
	int ret = helpers ? -EPERM : skel_load(e, with_unix, true, out), ret2;

	e->task_btf = ret == 0;
	if (ret == 0)
		return 0;
	ret2 = skel_load(e, with_unix, false, out);
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
	} else if ((ret = enforcer_detect_cgroup_root(e->cgroup_root, sizeof(e->cgroup_root))) < 0) {
		log_error("enforcer: no cgroup v2 hierarchy at /sys/fs/cgroup or "
			  "/sys/fs/cgroup/unified");
		goto out;
	}
	e->root_fd = open(e->cgroup_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (e->root_fd < 0) {
		ret = -errno;
		goto out;
	}
	ret = enforcer_cgroup_id(e->cgroup_root, &e->root_id);
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
	} else {
		ret = ensure_pin_dir(e->pin_dir);
		if (ret < 0)
			goto out;
		ret = probe_unix_connect(e->unix_reason, sizeof(e->unix_reason));
		ret = skel_load_any(e, ret == 0, opts->cgroup_helpers, &e->skel);
		if (ret < 0 && !e->unix_reason[0]) {
			/* The kernel has the hook but refused our program (kfuncs, verifier):
			 * enforce everything else rather than nothing. */
			snprintf(e->unix_reason, sizeof(e->unix_reason),
				 "connect_unix program failed to load: %s", strerror(-ret));
			log_warn("enforcer: %s; continuing without it", e->unix_reason);
			ret = skel_load_any(e, false, opts->cgroup_helpers, &e->skel);
		}
		if (ret < 0) {
			log_error("enforcer: loading the BPF programs failed: %s%s", strerror(-ret),
				  ret == -EPERM ? " (needs root: CAP_BPF, CAP_NET_ADMIN, "
				  "CAP_SYS_ADMIN)" : "");
			goto out;
		}
		e->map_fds[M_CONFIG] = bpf_map__fd(e->skel->maps.warden_config);
		e->map_fds[M_ENROLLED] = bpf_map__fd(e->skel->maps.warden_enrolled);
		e->map_fds[M_PROTECT4] = bpf_map__fd(e->skel->maps.warden_protect4);
		e->map_fds[M_PROTECT6] = bpf_map__fd(e->skel->maps.warden_protect6);
		e->map_fds[M_ALLOW4] = bpf_map__fd(e->skel->maps.warden_allow4);
		e->map_fds[M_ALLOW6] = bpf_map__fd(e->skel->maps.warden_allow6);
		e->map_fds[M_EXACT4] = bpf_map__fd(e->skel->maps.warden_exact4);
		e->map_fds[M_EXACT6] = bpf_map__fd(e->skel->maps.warden_exact6);
		e->map_fds[M_UNIXPATH] = bpf_map__fd(e->skel->maps.warden_unixpath);
		e->map_fds[M_EVENTS] = bpf_map__fd(e->skel->maps.warden_events);
		e->map_fds[M_COUNTERS] = bpf_map__fd(e->skel->maps.warden_counters);
		e->map_fds[M_EPOCH] = bpf_map__fd(e->skel->maps.warden_epoch);
		e->map_fds[M_CGCACHE] = bpf_map__fd(e->skel->maps.warden_cgcache);
		lock = config_lock(e);
		ret = lock < 0 ? lock : config_read(e, &cfg);
		if (ret < 0) {
			config_unlock(lock);
			goto out;
		}
		if (cfg.abi_version == 0) {
			cfg.abi_version = WARDEN_ABI_VERSION;
			cfg.deny_errno = EPERM;
		} else if (cfg.abi_version != WARDEN_ABI_VERSION) {
			log_error("enforcer: %s holds ABI version %u maps, this build uses %u; "
				  "remove it (wardenctl uninstall) first", e->pin_dir,
				  cfg.abi_version, WARDEN_ABI_VERSION);
			config_unlock(lock);
			ret = -EPROTO;
			goto out;
		}
		if (!e->unix_reason[0])
			cfg.flags |= WARDEN_CFG_F_UNIX_HOOK;
		else
			cfg.flags &= (__u16)~WARDEN_CFG_F_UNIX_HOOK;
		ret = config_write(e, &cfg);
		config_unlock(lock);
		if (ret < 0)
			goto out;
		for (unsigned h = 0; h < WARDEN_HOOK_MAX; h++) {
			if (h == WARDEN_HOOK_CONNECT_UNIX && e->unix_reason[0])
				continue;
			ret = hook_attach(e, h);
			if (ret < 0)
				goto out;
			e->hook_supported[h] = true;
		}
		if (e->unix_reason[0])
			log_warn("enforcer: unix sockets are not enforced: %s", e->unix_reason);
		if (opts->deny_errno) {
			ret = enforcer_set_errno(e, opts->deny_errno);
			if (ret < 0)
				goto out;
		}
		ret = level_mask_refresh(e);
		if (ret < 0)
			goto out;
	}
	rule_ids_scan(e, e->map_fds[M_PROTECT4], sizeof(struct warden_lpm4_key));
	rule_ids_scan(e, e->map_fds[M_PROTECT6], sizeof(struct warden_lpm6_key));
	rule_ids_scan(e, e->map_fds[M_ALLOW4], sizeof(struct warden_lpm4_key));
	rule_ids_scan(e, e->map_fds[M_ALLOW6], sizeof(struct warden_lpm6_key));
	rule_ids_scan(e, e->map_fds[M_EXACT4], sizeof(struct warden_exact4_key));
	rule_ids_scan(e, e->map_fds[M_EXACT6], sizeof(struct warden_exact6_key));
	rule_ids_scan(e, e->map_fds[M_UNIXPATH], sizeof(struct warden_unix_key));
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
	cache_free(&e->cg_cache);
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
	ret = config_read(e, &cfg);
	if (ret < 0)
		return ret;
	out->adopted = e->adopted;
	out->task_btf = e->task_btf;
	out->deny_errno = cfg.deny_errno ? (int)cfg.deny_errno : EPERM;
	out->sidecar_port = ntohs(cfg.sidecar_port);
	while (bpf_map_get_next_key(e->map_fds[M_ENROLLED], prev, &next) == 0) {
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
	return 0;
}

/* ---- policy ------------------------------------------------------------------------------ */

int enforcer_enroll(struct enforcer *e, const char *path, enum warden_mode mode)
{
	char abs[PATH_MAX];
	struct warden_enroll v = { .mode = mode };
	uint64_t id = 0;
	int level, ret;

	if (mode != WARDEN_MODE_LOCKDOWN && mode != WARDEN_MODE_PROTECT &&
	    mode != WARDEN_MODE_EXEMPT)
		return -EINVAL;
	ret = cgroup_abspath(e, path, abs, &level);
	if (ret < 0) {
		if (ret != -EINVAL)
			log_error("enforcer: cgroup %s: %s", path, strerror(-ret));
		return ret;
	}
	if (level == 0) {
		log_error("enforcer: refusing to enroll the cgroup v2 root %s: that would enforce "
			  "on every process of the host; enroll the agent containers' cgroups",
			  abs);
		return -EINVAL;
	}
	if (level >= WARDEN_MAX_LEVELS) {
		log_error("enforcer: %s is deeper than %d levels", abs, WARDEN_MAX_LEVELS - 1);
		return -EINVAL;
	}
	ret = enforcer_cgroup_id(abs, &id);
	if (ret < 0)
		return ret;
	v.level = (__u32)level;
	if (bpf_map_update_elem(e->map_fds[M_ENROLLED], &id, &v, BPF_ANY) < 0) {
		ret = -errno;
		log_error("enforcer: enrolling %s: %s", abs, strerror(-ret));
		return ret;
	}
	ret = cache_put(e, id, abs);
	if (ret < 0)
		return ret;
	/* After the entry: the programs only look at depths in the mask. */
	ret = level_mask_refresh(e);
	if (ret == 0)
		log_info("enforcer: %s %s (cgroup id %llu)", enforcer_mode_name(mode), abs,
			 (unsigned long long)id);
	return ret;
}

int enforcer_exempt(struct enforcer *e, const char *path)
{
	return enforcer_enroll(e, path, WARDEN_MODE_EXEMPT);
}

int enforcer_unenroll_id(struct enforcer *e, uint64_t id)
{
	if (bpf_map_delete_elem(e->map_fds[M_ENROLLED], &id) < 0)
		return -errno;
	return level_mask_refresh(e);
}

int enforcer_unenroll(struct enforcer *e, const char *path)
{
	char abs[PATH_MAX];
	uint64_t id = 0;
	int level, ret;

	ret = cgroup_abspath(e, path, abs, &level);
	if (ret < 0)
		return ret;
	ret = enforcer_cgroup_id(abs, &id);
	if (ret < 0)
		return ret;
	return enforcer_unenroll_id(e, id);
}

static int parse_port(const char *s, uint16_t *out)
{
	char *end;
	unsigned long v;

	if (!*s || strspn(s, "0123456789") != strlen(s))
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || v == 0 || v > 65535)
		return -EINVAL;
	*out = (uint16_t)v;
	return 0;
}

int enforcer_dest_parse(const char *spec, struct enforcer_dest *out)
{
	char buf[INET6_ADDRSTRLEN + 16], *addr = buf, *port = NULL, *slash;
	const char *colon;
	struct enforcer_dest d = { 0 };
	int maxlen;

	if (!spec || strlen(spec) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, spec);
	if (buf[0] == '[') {		/* [v6[/len]]:port */
		char *close = strchr(buf, ']');

		if (!close || close[1] != ':')
			return -EINVAL;
		*close = '\0';
		addr = buf + 1;
		port = close + 2;
	} else if ((colon = strchr(buf, ':')) && !strchr(colon + 1, ':')) {	/* v4:port */
		port = (char *)colon + 1;
		*(char *)colon = '\0';
	}
	if (port && parse_port(port, &d.port) < 0)
		return -EINVAL;
	slash = strchr(addr, '/');
	if (slash)
		*slash++ = '\0';
	if (inet_pton(AF_INET, addr, d.addr) == 1) {
		d.family = AF_INET;
		maxlen = 32;
	} else if (inet_pton(AF_INET6, addr, d.addr) == 1) {
		d.family = AF_INET6;
		maxlen = 128;
	} else {
		return -EINVAL;
	}
	d.prefixlen = (uint8_t)maxlen;
	if (slash) {
		char *end;
		long v;

		if (!*slash || strspn(slash, "0123456789") != strlen(slash))
			return -EINVAL;
		v = strtol(slash, &end, 10);
		if (v < 0 || v > maxlen)
			return -EINVAL;
		d.prefixlen = (uint8_t)v;
	}
	/* ::ffff:a.b.c.d/len (len >= 96) is the v4 a.b.c.d/(len-96): the programs judge
	 * v4-mapped destinations as v4. */
	if (d.family == AF_INET6 && d.prefixlen >= 96 &&
	    memcmp(d.addr, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0) {
		memmove(d.addr, d.addr + 12, 4);
		memset(d.addr + 4, 0, 12);
		d.family = AF_INET;
		d.prefixlen = (uint8_t)(d.prefixlen - 96);
	}
	/* Clear host bits so equal networks make equal keys. */
	for (int bit = d.prefixlen; bit < (d.family == AF_INET ? 32 : 128); bit++)
		d.addr[bit / 8] &= (uint8_t)~(0x80 >> (bit % 8));
	*out = d;
	return 0;
}

int enforcer_dest_format(const struct enforcer_dest *d, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];
	int n;

	if (!inet_ntop(d->family, d->addr, a, sizeof(a)))
		return -EINVAL;
	if (d->family == AF_INET6 && d->port)
		n = snprintf(buf, len, "[%s/%u]:%u", a, d->prefixlen, d->port);
	else if (d->port)
		n = snprintf(buf, len, "%s/%u:%u", a, d->prefixlen, d->port);
	else
		n = snprintf(buf, len, "%s/%u", a, d->prefixlen);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

typedef union {
	struct warden_lpm4_key k4;
	struct warden_lpm6_key k6;
	struct warden_exact4_key x4;
	struct warden_exact6_key x6;
} rule_key;

/* A host (full-length address) rule lives in the exact hash map, a prefix in the trie: the
 * programs look a host:port up with one hash lookup and walk a trie only for prefixes. */
static bool dest_is_host(const struct enforcer_dest *d)
{
	return d->prefixlen == (d->family == AF_INET ? 32 : 128);
}

/* Build the map key of d; *fd is the map (exact, or the protect or allow trie) for it. */
static void dest_key(struct enforcer *e, const struct enforcer_dest *d, bool protect,
		     rule_key *key, int *fd)
{
	__u8 kind = protect ? WARDEN_KIND_PROTECT : WARDEN_KIND_ALLOW;

	memset(key, 0, sizeof(*key));
	if (d->family == AF_INET && dest_is_host(d)) {
		memcpy(key->x4.addr, d->addr, 4);
		key->x4.port = htons(d->port);
		key->x4.kind = kind;
		*fd = e->map_fds[M_EXACT4];
	} else if (dest_is_host(d)) {
		memcpy(key->x6.addr, d->addr, 16);
		key->x6.port = htons(d->port);
		key->x6.kind = kind;
		*fd = e->map_fds[M_EXACT6];
	} else if (d->family == AF_INET) {
		key->k4.prefixlen = 16u + d->prefixlen;
		key->k4.port = htons(d->port);
		memcpy(key->k4.addr, d->addr, 4);
		*fd = e->map_fds[protect ? M_PROTECT4 : M_ALLOW4];
	} else {
		key->k6.prefixlen = 16u + d->prefixlen;
		key->k6.port = htons(d->port);
		memcpy(key->k6.addr, d->addr, 16);
		*fd = e->map_fds[protect ? M_PROTECT6 : M_ALLOW6];
	}
}

/* Tell the programs which kind of entry a map may now hold: before the entry exists. */
static int rule_kind_mark(struct enforcer *e, const struct enforcer_dest *d, bool protect)
{
	static const __u16 bits[2][2][2] = {	/* [protect][host][port] */
		{ { WARDEN_CFG_F_ALLOW_ANY, WARDEN_CFG_F_ALLOW_PORT },
		  { WARDEN_CFG_F_XALLOW_ANY, WARDEN_CFG_F_XALLOW_PORT } },
		{ { WARDEN_CFG_F_PROTECT_ANY, WARDEN_CFG_F_PROTECT_PORT },
		  { WARDEN_CFG_F_XPROTECT_ANY, WARDEN_CFG_F_XPROTECT_PORT } },
	};
	__u16 bit = bits[protect][dest_is_host(d)][d->port != 0];
	struct warden_config cfg;
	int lock = config_lock(e), ret;

	if (lock < 0)
		return lock;
	ret = config_read(e, &cfg);
	if (ret == 0 && !(cfg.flags & bit)) {
		cfg.flags |= bit;
		ret = config_write(e, &cfg);
	}
	config_unlock(lock);
	return ret;
}

/* Insert d unless that exact key exists; *created says which. (A userspace lookup on an LPM
 * trie is a longest-prefix match too, so "exists" is asked through BPF_NOEXIST.) */
static int rule_add_ex(struct enforcer *e, const struct enforcer_dest *d, bool protect,
		       uint32_t *rule_id, bool *created)
{
	struct warden_rule r = { .id = e->next_rule_id };
	rule_key key;
	int fd, ret;

	ret = rule_kind_mark(e, d, protect);
	if (ret < 0)
		return ret;
	dest_key(e, d, protect, &key, &fd);
	*created = bpf_map_update_elem(fd, &key, &r, BPF_NOEXIST) == 0;
	if (*created) {
		e->next_rule_id++;
	} else if (errno != EEXIST) {
		return -errno;
	} else if (bpf_map_lookup_elem(fd, &key, &r) < 0) {	/* the exact entry: longest */
		return -errno;
	}
	if (rule_id)
		*rule_id = r.id;
	return 0;
}

static int rule_add(struct enforcer *e, const struct enforcer_dest *d, bool protect,
		    uint32_t *rule_id)
{
	bool created;

	return rule_add_ex(e, d, protect, rule_id, &created);
}

static int rule_del(struct enforcer *e, const struct enforcer_dest *d, bool protect)
{
	rule_key key;
	int fd;

	dest_key(e, d, protect, &key, &fd);
	return bpf_map_delete_elem(fd, &key) < 0 ? -errno : 0;
}

static int rule_spec(struct enforcer *e, const char *spec, bool protect, bool add)
{
	struct enforcer_dest d;
	int ret = enforcer_dest_parse(spec, &d);

	if (ret < 0) {
		log_error("enforcer: '%s' is not cidr[:port] (a.b.c.d/len:port or [v6/len]:port)",
			  spec ? spec : "(null)");
		return ret;
	}
	ret = add ? rule_add(e, &d, protect, NULL) : rule_del(e, &d, protect);
	if (ret < 0 && !(ret == -ENOENT && !add))
		log_error("enforcer: %s %s: %s", add ? (protect ? "protect" : "allow") :
			  (protect ? "unprotect" : "disallow"), spec, strerror(-ret));
	return ret;
}

int enforcer_protect(struct enforcer *e, const char *spec)
{
	return rule_spec(e, spec, true, true);
}

int enforcer_unprotect(struct enforcer *e, const char *spec)
{
	return rule_spec(e, spec, true, false);
}

int enforcer_allow(struct enforcer *e, const char *spec)
{
	return rule_spec(e, spec, false, true);
}

int enforcer_disallow(struct enforcer *e, const char *spec)
{
	return rule_spec(e, spec, false, false);
}

int enforcer_protect_dest(struct enforcer *e, const struct enforcer_dest *d, uint32_t *rule_id)
{
	return rule_add(e, d, true, rule_id);
}

int enforcer_unprotect_dest(struct enforcer *e, const struct enforcer_dest *d)
{
	return rule_del(e, d, true);
}

static int unix_key(const char *path, struct warden_unix_key *k)
{
	size_t n = path ? strlen(path) : 0;

	if (n == 0 || n >= sizeof(k->path))
		return -EINVAL;
	memset(k, 0, sizeof(*k));
	memcpy(k->path, path, n);
	return 0;
}

int enforcer_protect_unix(struct enforcer *e, const char *path)
{
	struct warden_unix_key k;
	struct warden_rule r = { 0 };
	int ret = unix_key(path, &k);

	if (ret < 0)
		return ret;
	if (!e->hook_supported[WARDEN_HOOK_CONNECT_UNIX])
		log_warn("enforcer: protecting %s has no effect: %s", path, e->unix_reason);
	if (bpf_map_lookup_elem(e->map_fds[M_UNIXPATH], &k, &r) == 0)
		return 0;
	r.id = e->next_rule_id++;
	return bpf_map_update_elem(e->map_fds[M_UNIXPATH], &k, &r, BPF_ANY) < 0 ? -errno : 0;
}

int enforcer_unprotect_unix(struct enforcer *e, const char *path)
{
	struct warden_unix_key k;
	int ret = unix_key(path, &k);

	if (ret < 0)
		return ret;
	return bpf_map_delete_elem(e->map_fds[M_UNIXPATH], &k) < 0 ? -errno : 0;
}

int enforcer_set_sidecar(struct enforcer *e, uint16_t port)
{
	struct warden_config cfg;
	int lock = config_lock(e), ret;

	if (lock < 0)
		return lock;
	ret = config_read(e, &cfg);
	if (ret == 0) {
		cfg.sidecar_port = htons(port);
		ret = config_write(e, &cfg);
	}
	config_unlock(lock);
	return ret;
}

int enforcer_set_errno(struct enforcer *e, int err)
{
	struct warden_config cfg;
	int ret;

	if (!errno_name(err)) {
		log_error("enforcer: deny errno %d is not one of EPERM, EACCES, ECONNREFUSED, "
			  "ENETUNREACH, EHOSTUNREACH", err);
		return -EINVAL;
	}
	int lock = config_lock(e);
	if (lock < 0)
		return lock;
	ret = config_read(e, &cfg);
	if (ret == 0) {
		cfg.deny_errno = (__u32)err;
		ret = config_write(e, &cfg);
	}
	config_unlock(lock);
	return ret;
}

/* ---- audit ------------------------------------------------------------------------------- */

int enforcer_counters(struct enforcer *e, struct enforcer_counters *out)
{
	int ncpu = libbpf_num_possible_cpus();
	struct warden_counters *v;
	int ret = 0;

	if (ncpu <= 0)
		return ncpu < 0 ? ncpu : -EINVAL;
	v = calloc((size_t)ncpu, sizeof(*v));
	if (!v)
		return -ENOMEM;
	memset(out, 0, sizeof(*out));
	for (__u32 h = 0; h < WARDEN_HOOK_MAX; h++) {
		if (bpf_map_lookup_elem(e->map_fds[M_COUNTERS], &h, v) < 0) {
			ret = -errno;
			goto out;
		}
		for (int c = 0; c < ncpu; c++) {
			out->hook[h].allowed += v[c].allowed;
			out->hook[h].denied += v[c].denied;
			out->hook[h].events_dropped += v[c].events_dropped;
			out->hook[h].unenrolled += v[c].unenrolled;
		}
		out->total.allowed += out->hook[h].allowed;
		out->total.denied += out->hook[h].denied;
		out->total.events_dropped += out->hook[h].events_dropped;
		out->total.unenrolled += out->hook[h].unenrolled;
	}
out:
	free(v);
	return ret;
}

static int rb_sample(void *ctx, void *data, size_t size)
{
	struct enforcer *e = ctx;
	struct warden_event ev;

	if (size < sizeof(ev))
		return 0;	/* not ours (older layout): skip, never crash */
	memcpy(&ev, data, sizeof(ev));	/* the ring slot is released when we return */
	e->handled++;
	if (e->cb)
		e->cb(&ev, e->cb_arg);
	return 0;
}

static void rb_ready(evutil_socket_t fd, short what, void *arg)
{
	struct enforcer *e = arg;
	int ret = ring_buffer__consume(e->rb);

	if (ret < 0)
		log_warn("enforcer: reading deny events: %s", strerror(-ret));
}

static int rb_open(struct enforcer *e)
{
	if (e->rb)
		return 0;
	e->rb = ring_buffer__new(e->map_fds[M_EVENTS], rb_sample, e, NULL);
	return e->rb ? 0 : -errno;
}

int enforcer_events_attach(struct enforcer *e, struct event_base *base, enforcer_event_cb cb,
			   void *arg)
{
	int ret;

	if (e->rb_ev)
		return -EBUSY;
	ret = rb_open(e);
	if (ret < 0)
		return ret;
	/* The ring buffer's epoll fd becomes readable when events are there: one read event on
	 * our loop, consumed without blocking. */
	e->rb_ev = event_new(base, ring_buffer__epoll_fd(e->rb), EV_READ | EV_PERSIST, rb_ready, e);
	if (!e->rb_ev)
		return -ENOMEM;
	if (event_add(e->rb_ev, NULL) < 0) {
		event_free(e->rb_ev);
		e->rb_ev = NULL;
		return -EIO;
	}
	e->cb = cb;
	e->cb_arg = arg;
	return 0;
}

void enforcer_events_detach(struct enforcer *e)
{
	if (e->rb_ev)
		event_free(e->rb_ev);
	e->rb_ev = NULL;
	ring_buffer__free(e->rb);
	e->rb = NULL;
	e->cb = NULL;
}

int enforcer_events_poll(struct enforcer *e)
{
	int ret = rb_open(e);

	if (ret < 0)
		return ret;
	e->handled = 0;
	ret = ring_buffer__consume(e->rb);
	return ret < 0 ? ret : e->handled;
}

static const char *proto_name(unsigned p)
{
	switch (p) {
	case 6: return "tcp";
	case 17: return "udp";
	case 1: return "icmp";
	case 58: return "icmpv6";
	case 255: return "raw";
	case 262: return "mptcp";
	default: return NULL;
	}
}

cJSON *enforcer_event_json(struct enforcer *e, const struct warden_event *ev)
{
	char path[PATH_MAX], addr[INET6_ADDRSTRLEN], ts[40], comm[WARDEN_COMM_LEN + 1];
	struct timespec boot, real;
	cJSON *o = cJSON_CreateObject();
	const char *pn;
	int64_t delta_ns;

	if (!o)
		return NULL;
	/* The event carries boot time: place it on the wall clock relative to now. */
	clock_gettime(CLOCK_BOOTTIME, &boot);
	clock_gettime(CLOCK_REALTIME, &real);
	delta_ns = ((int64_t)boot.tv_sec * 1000000000 + boot.tv_nsec) - (int64_t)ev->ts_boot_ns;
	{
		int64_t wall = (int64_t)real.tv_sec * 1000000000 + real.tv_nsec - delta_ns;
		time_t secs = (time_t)(wall / 1000000000);
		struct tm tm;
		size_t n;

		gmtime_r(&secs, &tm);
		n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
		snprintf(ts + n, sizeof(ts) - n, ".%03dZ", (int)((wall / 1000000) % 1000));
	}
	cJSON_AddStringToObject(o, "time", ts);
	cJSON_AddStringToObject(o, "decision", "deny");
	cJSON_AddStringToObject(o, "hook", enforcer_hook_name(ev->hook) ?
				enforcer_hook_name(ev->hook) : "unknown");
	cJSON_AddStringToObject(o, "reason", enforcer_reason_name(ev->reason));
	cJSON_AddStringToObject(o, "mode", enforcer_mode_name(ev->mode));
	if (ev->rule_id)
		cJSON_AddNumberToObject(o, "rule_id", ev->rule_id);
	cJSON_AddNumberToObject(o, "cgroup_id", (double)ev->cgroup_id);
	if (enforcer_cgroup_path(e, ev->cgroup_id, path, sizeof(path)) == 0)
		cJSON_AddStringToObject(o, "cgroup", path);
	cJSON_AddNumberToObject(o, "enrolled_cgroup_id", (double)ev->enrolled_id);
	if (ev->enrolled_id != ev->cgroup_id &&
	    enforcer_cgroup_path(e, ev->enrolled_id, path, sizeof(path)) == 0)
		cJSON_AddStringToObject(o, "enrolled_cgroup", path);
	cJSON_AddNumberToObject(o, "pid", ev->tgid);
	cJSON_AddNumberToObject(o, "tid", ev->pid);
	cJSON_AddNumberToObject(o, "uid", ev->uid);
	cJSON_AddNumberToObject(o, "gid", ev->gid);
	memcpy(comm, ev->comm, WARDEN_COMM_LEN);
	comm[WARDEN_COMM_LEN] = '\0';
	cJSON_AddStringToObject(o, "comm", comm);
	cJSON_AddStringToObject(o, "family", ev->family == 2 ? "inet" : ev->family == 10 ?
				"inet6" : ev->family == 1 ? "unix" : "other");
	pn = ev->sock_type == 3 ? "raw" : proto_name(ev->protocol);
	if (pn)
		cJSON_AddStringToObject(o, "protocol", pn);
	else
		cJSON_AddNumberToObject(o, "protocol", ev->protocol);
	if ((ev->family == AF_INET || ev->family == AF_INET6) &&
	    ev->hook != WARDEN_HOOK_SOCK_CREATE &&
	    inet_ntop(ev->family, ev->daddr, addr, sizeof(addr))) {
		cJSON_AddStringToObject(o, "dst", addr);
		cJSON_AddNumberToObject(o, "dport", ev->dport);
		if (ev->flags & WARDEN_EV_F_V4MAPPED)
			cJSON_AddBoolToObject(o, "v4mapped", 1);
	}
	if (ev->family == AF_UNIX) {
		char p[WARDEN_UNIX_PATH_LEN + 2];

		/* Abstract names start with NUL: shown as "@name", the ss(8) convention. */
		if (ev->path[0])
			snprintf(p, sizeof(p), "%.*s", WARDEN_UNIX_PATH_LEN, ev->path);
		else
			snprintf(p, sizeof(p), "@%.*s", WARDEN_UNIX_PATH_LEN - 1, ev->path + 1);
		cJSON_AddStringToObject(o, "path", p);
	}
	return o;
}

/* ---- config ------------------------------------------------------------------------------ */

static void targets_free(struct enforcer_target *t, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(t[i].cgroup);
		free(t[i].container);
		free(t[i].pod);
	}
	free(t);
}

static void strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void enforcer_config_free(struct enforcer_config *c)
{
	if (!c)
		return;
	free(c->pin_dir);
	free(c->cgroup_root);
	targets_free(c->enroll, c->nenroll);
	targets_free(c->exempt, c->nexempt);
	strv_free(c->allow, c->nallow);
	strv_free(c->protect, c->nprotect);
	strv_free(c->protect_unix, c->nprotect_unix);
	memset(c, 0, sizeof(*c));
}

static int dup_str(const char *s, char **out)
{
	*out = strdup(s);
	return *out ? 0 : -ENOMEM;
}

/* An enroll/exempt entry: {"cgroup"|"container"|"pod": "...", "mode": ...}; exempt entries
 * may also be a plain cgroup path string. */
static int parse_target(const cJSON *it, const char *path, bool with_mode,
			struct enforcer_target *t, struct config_errors *errs)
{
	static const char *const keys_mode[] = { "cgroup", "container", "pod", "mode", NULL };
	static const char *const keys[] = { "cgroup", "container", "pod", NULL };
	const char *names[3] = { "cgroup", "container", "pod" };
	char **slots[3] = { &t->cgroup, &t->container, &t->pod };
	const char *s, *mode;
	int set = 0, ret;

	t->mode = with_mode ? WARDEN_MODE_LOCKDOWN : WARDEN_MODE_EXEMPT;
	if (cJSON_IsString(it))
		return dup_str(it->valuestring, &t->cgroup);
	if (!cJSON_IsObject(it))
		return config_fail(errs, path, "must be an object with \"cgroup\", \"container\" "
				   "or \"pod\"");
	ret = cfg_known_keys(it, path, with_mode ? keys_mode : keys, errs);
	if (ret < 0)
		return ret;
	for (int i = 0; i < 3; i++) {
		ret = cfg_string(it, names[i], path, false, &s, errs);
		if (ret == -ENOENT)
			continue;
		if (ret < 0)
			return ret;
		if (set++) {
			return config_fail(errs, path, "give exactly one of \"cgroup\", "
					   "\"container\", \"pod\"");
		}
		ret = dup_str(s, slots[i]);
		if (ret < 0)
			return ret;
	}
	if (!set)
		return config_fail(errs, path, "needs one of \"cgroup\", \"container\", \"pod\"");
	if (t->cgroup && strcmp(t->cgroup, "/") == 0)
		return config_fail(errs, path, "the cgroup v2 root cannot be enrolled: it would "
				   "enforce on the whole host");
	if (t->container && (strlen(t->container) < 12 ||
			     !is_hex(t->container, strlen(t->container))))
		return config_fail(errs, path, "container: 12 to 64 lowercase hex digits");
	if (with_mode) {
		char sub[320];
		enum warden_mode m;

		ret = cfg_string(it, "mode", path, false, &mode, errs);
		if (ret == 0 && enforcer_mode_parse(mode, &m) < 0) {
			snprintf(sub, sizeof(sub), "%s.mode", path);
			return config_fail(errs, sub, "must be \"lockdown\" or \"protect\"");
		}
		if (ret == 0)
			t->mode = m;
		else if (ret != -ENOENT)
			return ret;
	}
	return 0;
}

static int parse_targets(const cJSON *sec, const char *key, const char *path, bool with_mode,
			 struct enforcer_target **out, size_t *n, struct config_errors *errs)
{
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(sec, key);
	char sub[256];
	int ret = 0, i = 0;
	const cJSON *it;

	if (!arr)
		return 0;
	snprintf(sub, sizeof(sub), "%s.%s", path, key);
	if (!cJSON_IsArray(arr))
		return config_fail(errs, sub, "must be an array");
	*out = calloc((size_t)cJSON_GetArraySize(arr) + 1, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	cJSON_ArrayForEach(it, arr) {
		char ipath[280];
		int r;

		snprintf(ipath, sizeof(ipath), "%s[%d]", sub, i++);
		r = parse_target(it, ipath, with_mode, &(*out)[*n], errs);
		(*n)++;		/* counted even when partial, so free releases it */
		if (r == -ENOMEM)
			return r;
		if (r < 0)
			ret = r;
	}
	return ret;
}

/* A string array whose items all pass check (or NULL: any string). */
static int parse_strings(const cJSON *sec, const char *key, const char *path,
			 int (*check)(const char *s), const char *what, char ***out, size_t *n,
			 struct config_errors *errs)
{
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(sec, key);
	char sub[256];
	const cJSON *it;
	int ret = 0, i = 0;

	if (!arr)
		return 0;
	snprintf(sub, sizeof(sub), "%s.%s", path, key);
	if (!cJSON_IsArray(arr))
		return config_fail(errs, sub, "must be an array of %s", what);
	*out = calloc((size_t)cJSON_GetArraySize(arr) + 1, sizeof(char *));
	if (!*out)
		return -ENOMEM;
	cJSON_ArrayForEach(it, arr) {
		char ipath[280];

		snprintf(ipath, sizeof(ipath), "%s[%d]", sub, i++);
		if (!cJSON_IsString(it) || (check && check(it->valuestring) < 0)) {
			ret = config_fail(errs, ipath, "must be %s", what);
			continue;
		}
		if (dup_str(it->valuestring, &(*out)[(*n)++]) < 0)
			return -ENOMEM;
	}
	return ret;
}

static int check_dest(const char *s)
{
	struct enforcer_dest d;

	return enforcer_dest_parse(s, &d);
}

static int check_unix(const char *s)
{
	return strlen(s) > 0 && strlen(s) < WARDEN_UNIX_PATH_LEN ? 0 : -EINVAL;
}

int enforcer_config_parse(const cJSON *sec, const char *path, struct enforcer_config *out,
			  struct config_errors *errs)
{
	static const char *const keys[] = { "enabled", "pin_dir", "cgroup_root", "errno",
		"enroll", "exempt", "allow", "protect", "protect_unix", NULL };
	const char *s;
	int ret, bad = 0;

	memset(out, 0, sizeof(*out));
	out->deny_errno = EPERM;
	if (!sec || cJSON_IsNull(sec))
		return 0;
	if (!cJSON_IsObject(sec))
		return config_fail(errs, path, "must be an object");
	out->enabled = true;
	if (cfg_known_keys(sec, path, keys, errs) < 0)
		bad = 1;
	ret = cfg_bool(sec, "enabled", path, false, &out->enabled, errs);
	bad |= ret < 0 && ret != -ENOENT;
	ret = cfg_string(sec, "pin_dir", path, false, &s, errs);
	if (ret == 0) {
		if (s[0] != '/' || strlen(s) >= PATH_MAX) {
			char sub[256];

			snprintf(sub, sizeof(sub), "%s.pin_dir", path);
			ret = config_fail(errs, sub, "must be an absolute path on bpffs");
		} else if (dup_str(s, &out->pin_dir) < 0) {
			ret = -ENOMEM;
			goto out;
		}
	}
	bad |= ret < 0 && ret != -ENOENT;
	/* "cgroup_root": "auto" or a path */
	ret = cfg_string(sec, "cgroup_root", path, false, &s, errs);
	if (ret == 0 && strcmp(s, "auto") != 0 && dup_str(s, &out->cgroup_root) < 0) {
		ret = -ENOMEM;
		goto out;
	}
	bad |= ret < 0 && ret != -ENOENT;
	ret = cfg_string(sec, "errno", path, false, &s, errs);
	if (ret == 0 && enforcer_errno_parse(s, &out->deny_errno) < 0) {
		char sub[256];

		snprintf(sub, sizeof(sub), "%s.errno", path);
		ret = config_fail(errs, sub, "must be one of EPERM, EACCES, ECONNREFUSED, "
				  "ENETUNREACH, EHOSTUNREACH");
	}
	bad |= ret < 0 && ret != -ENOENT;
#define STEP(call) do { ret = (call); if (ret == -ENOMEM) goto out; bad |= ret < 0; } while (0)
	STEP(parse_targets(sec, "enroll", path, true, &out->enroll, &out->nenroll, errs));
	STEP(parse_targets(sec, "exempt", path, false, &out->exempt, &out->nexempt, errs));
	STEP(parse_strings(sec, "allow", path, check_dest, "\"cidr[:port]\" strings", &out->allow,
			   &out->nallow, errs));
	STEP(parse_strings(sec, "protect", path, check_dest, "\"cidr[:port]\" strings",
			   &out->protect, &out->nprotect, errs));
	STEP(parse_strings(sec, "protect_unix", path, check_unix, "unix socket paths",
			   &out->protect_unix, &out->nprotect_unix, errs));
#undef STEP
	ret = bad ? -EINVAL : 0;
out:
	if (ret < 0)
		enforcer_config_free(out);
	return ret;
}

static int target_path(struct enforcer *e, const struct enforcer_target *t, char *buf,
		       size_t len)
{
	if (t->container)
		return enforcer_resolve_container(e->cgroup_root, t->container, buf, len);
	if (t->pod)
		return enforcer_resolve_pod(e->cgroup_root, t->pod, buf, len);
	return (size_t)snprintf(buf, len, "%s", t->cgroup) >= len ? -ENAMETOOLONG : 0;
}

int enforcer_apply_config(struct enforcer *e, const struct enforcer_config *c)
{
	char path[PATH_MAX];
	int ret;

	ret = enforcer_set_errno(e, c->deny_errno ? c->deny_errno : EPERM);
	/* Exemptions first: an agent pod is never enforced on its sidecar container. */
	for (size_t i = 0; ret == 0 && i < c->nexempt; i++) {
		ret = target_path(e, &c->exempt[i], path, sizeof(path));
		if (ret == 0)
			ret = enforcer_exempt(e, path);
	}
	for (size_t i = 0; ret == 0 && i < c->nallow; i++)
		ret = enforcer_allow(e, c->allow[i]);
	for (size_t i = 0; ret == 0 && i < c->nprotect; i++)
		ret = enforcer_protect(e, c->protect[i]);
	for (size_t i = 0; ret == 0 && i < c->nprotect_unix; i++)
		ret = enforcer_protect_unix(e, c->protect_unix[i]);
	for (size_t i = 0; ret == 0 && i < c->nenroll; i++) {
		ret = target_path(e, &c->enroll[i], path, sizeof(path));
		if (ret == 0)
			ret = enforcer_enroll(e, path, c->enroll[i].mode);
	}
	return ret;
}

/* ---- upstream addresses ------------------------------------------------------------------ */

#define UPSTREAM_MAX_ADDRS 32

struct enforcer_upstream {
	struct enforcer *e;
	char *host;
	uint16_t port;
	int refresh_ms;
	struct event *timer;
	struct event *done_ev;
	int pipe[2];		/* worker -> loop: "resolution finished" */
	pthread_t thread;
	bool running;
	/* filled by the worker, read on the loop after the pipe fires */
	int gai_err;
	size_t nresolved;
	struct enforcer_dest resolved[UPSTREAM_MAX_ADDRS];
	/* what we protected (and added: present before means someone else owns it) */
	size_t nprotected;
	struct enforcer_dest protected_[UPSTREAM_MAX_ADDRS];
	bool added[UPSTREAM_MAX_ADDRS];
};

static void *resolve_thread(void *arg)
{
	struct enforcer_upstream *u = arg;
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	struct addrinfo *res = NULL;
	char one = 1;

	u->nresolved = 0;
	u->gai_err = getaddrinfo(u->host, NULL, &hints, &res);
	for (struct addrinfo *ai = res; ai && u->nresolved < UPSTREAM_MAX_ADDRS; ai = ai->ai_next) {
		struct enforcer_dest *d = &u->resolved[u->nresolved];

		memset(d, 0, sizeof(*d));
		d->family = ai->ai_family;
		d->port = u->port;
		if (ai->ai_family == AF_INET) {
			memcpy(d->addr, &((struct sockaddr_in *)ai->ai_addr)->sin_addr, 4);
			d->prefixlen = 32;
		} else if (ai->ai_family == AF_INET6) {
			memcpy(d->addr, &((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr, 16);
			d->prefixlen = 128;
		} else {
			continue;
		}
		u->nresolved++;
	}
	if (res)
		freeaddrinfo(res);
	/* A full pipe cannot happen (one byte per resolution); nothing else to do on error. */
	if (write(u->pipe[1], &one, 1) < 0)
		u->gai_err = EAI_SYSTEM;
	return NULL;
}

static bool dest_eq(const struct enforcer_dest *a, const struct enforcer_dest *b)
{
	return a->family == b->family && a->prefixlen == b->prefixlen && a->port == b->port &&
	       memcmp(a->addr, b->addr, 16) == 0;
}

/* On the loop: make the protected set equal to the resolved set. */
static void upstream_apply(struct enforcer_upstream *u, const struct enforcer_dest *ds, size_t n)
{
	struct enforcer_dest keep[UPSTREAM_MAX_ADDRS];
	bool keep_added[UPSTREAM_MAX_ADDRS];
	size_t nkeep = 0;

	for (size_t i = 0; i < n && nkeep < UPSTREAM_MAX_ADDRS; i++) {
		bool dup = false, was = false, added = false;

		for (size_t j = 0; j < nkeep; j++)
			dup |= dest_eq(&keep[j], &ds[i]);
		if (dup)
			continue;
		for (size_t j = 0; j < u->nprotected; j++) {
			if (dest_eq(&u->protected_[j], &ds[i])) {
				was = true;
				added = u->added[j];
			}
		}
		if (!was) {
			if (rule_add_ex(u->e, &ds[i], true, NULL, &added) < 0) {
				log_warn("enforcer: could not protect an address of %s", u->host);
				continue;
			}
		}
		keep[nkeep] = ds[i];
		keep_added[nkeep++] = added;
	}
	for (size_t j = 0; j < u->nprotected; j++) {
		bool still = false;

		for (size_t i = 0; i < nkeep; i++)
			still |= dest_eq(&keep[i], &u->protected_[j]);
		if (!still && u->added[j])
			enforcer_unprotect_dest(u->e, &u->protected_[j]);
	}
	memcpy(u->protected_, keep, nkeep * sizeof(keep[0]));
	memcpy(u->added, keep_added, nkeep * sizeof(keep_added[0]));
	u->nprotected = nkeep;
}

static void upstream_done(evutil_socket_t fd, short what, void *arg)
{
	struct enforcer_upstream *u = arg;
	struct timeval tv = { u->refresh_ms / 1000, (u->refresh_ms % 1000) * 1000 };
	char b;

	if (read(fd, &b, 1) < 0)
		return;
	pthread_join(u->thread, NULL);
	u->running = false;
	if (u->gai_err) {
		/* Keep what was protected: a DNS hiccup must not open the door. */
		log_warn("enforcer: resolving upstream %s: %s", u->host, gai_strerror(u->gai_err));
	} else {
		upstream_apply(u, u->resolved, u->nresolved);
	}
	if (u->refresh_ms > 0)
		evtimer_add(u->timer, &tv);
}

static void upstream_tick(evutil_socket_t fd, short what, void *arg)
{
	struct enforcer_upstream *u = arg;
	int ret;

	if (u->running)
		return;
	ret = pthread_create(&u->thread, NULL, resolve_thread, u);
	if (ret != 0) {
		struct timeval tv = { 1, 0 };

		log_warn("enforcer: resolver thread: %s", strerror(ret));
		evtimer_add(u->timer, &tv);
		return;
	}
	u->running = true;
}

int enforcer_upstream_protect(struct enforcer *e, struct event_base *base, const char *host,
			      uint16_t port, int refresh_ms, struct enforcer_upstream **out)
{
	struct enforcer_upstream *u = calloc(1, sizeof(*u));
	struct enforcer_dest lit;
	int ret = 0;

	if (!u)
		return -ENOMEM;
	u->e = e;
	u->port = port;
	u->refresh_ms = refresh_ms;
	u->pipe[0] = u->pipe[1] = -1;
	u->host = strdup(host);
	if (!u->host) {
		ret = -ENOMEM;
		goto out;
	}
	/* A literal address: protect it now, no resolver needed. */
	if (enforcer_dest_parse(host, &lit) == 0 && !strchr(host, '/') &&
	    (lit.family == AF_INET6 || !strchr(host, ':'))) {
		lit.port = port;
		upstream_apply(u, &lit, 1);
		*out = u;
		return 0;
	}
	if (pipe2(u->pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		ret = -errno;
		goto out;
	}
	u->timer = evtimer_new(base, upstream_tick, u);
	u->done_ev = event_new(base, u->pipe[0], EV_READ | EV_PERSIST, upstream_done, u);
	if (!u->timer || !u->done_ev || event_add(u->done_ev, NULL) < 0) {
		ret = -ENOMEM;
		goto out;
	}
	event_active(u->timer, EV_TIMEOUT, 0);	/* first resolution right away */
	*out = u;
	return 0;
out:
	enforcer_upstream_free(u, false);
	return ret;
}

void enforcer_upstream_free(struct enforcer_upstream *u, bool unprotect)
{
	if (!u)
		return;
	if (u->running)
		pthread_join(u->thread, NULL);	/* bounded by the resolver's own timeouts */
	if (unprotect)
		upstream_apply(u, NULL, 0);
	if (u->timer)
		event_free(u->timer);
	if (u->done_ev)
		event_free(u->done_ev);
	if (u->pipe[0] >= 0)
		close(u->pipe[0]);
	if (u->pipe[1] >= 0)
		close(u->pipe[1]);
	free(u->host);
	free(u);
}

size_t enforcer_upstream_count(const struct enforcer_upstream *u)
{
	return u->nprotected;
}
