/* cgroup: paths, ids, runtimes' container and pod cgroups, an id -> path index. */
#include "enforce/cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/htab.h"
#include "base/log.h"

static bool fs_is(const char *path, unsigned long magic)
{
	struct statfs sf;

	return statfs(path, &sf) == 0 && (unsigned long)sf.f_type == magic;
}

int cgroup_detect_root(char *buf, size_t len)
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

int cgroup_id(const char *path, uint64_t *id)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	*id = st.st_ino;	/* the kernfs node id, which is what bpf_get_current_cgroup_id returns */
	return 0;
}

/* kernfs exports a node by a file handle that is its 64-bit id (FILEID_KERNFS): opening it by
 * handle answers "is this id still a cgroup" in one lookup, without walking the tree, and
 * without the race a walk has against a cgroup created meanwhile. Ids are never reused. */
#define FILEID_KERNFS 0xfe

/* The cgroup with that id, opened by handle below the mount root: a descriptor, or -errno
 * (-ESTALE: no such cgroup). A root that cannot be opened is its own error, never "gone". */
static int open_by_id(const char *root, uint64_t id, int *fd)
{
	union {
		struct file_handle fh;
		char buf[sizeof(struct file_handle) + sizeof(uint64_t)];
	} h;
	int mfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (mfd < 0)
		return -errno;
	h.fh.handle_bytes = sizeof(uint64_t);
	h.fh.handle_type = FILEID_KERNFS;
	memcpy(h.fh.f_handle, &id, sizeof(id));
	*fd = open_by_handle_at(mfd, &h.fh, O_RDONLY | O_CLOEXEC);
	if (*fd < 0)
		*fd = -errno;
	close(mfd);
	return 0;
}

int cgroup_id_alive(const char *root, uint64_t id)
{
	int fd, rc = open_by_id(root, id, &fd);

	if (rc)
		return rc;
	if (fd >= 0) {
		close(fd);
		return 1;
	}
	return fd == -ESTALE || fd == -ENOENT ? 0 : fd;
}

/* The path of a live cgroup by its id: open it by handle, then ask /proc which directory
 * that is (both in memory: kernfs and procfs). */
int cgroup_path_of(const char *root, uint64_t id, char *buf, size_t len)
{
	char link[64], full[PATH_MAX];
	size_t rl = strlen(root);
	int fd, ret = open_by_id(root, id, &fd);
	ssize_t n;

	if (ret)
		return ret;
	if (fd < 0)
		return fd == -ESTALE ? -ENOENT : fd;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, full, sizeof(full) - 1);
	ret = n < 0 ? -errno : 0;
	close(fd);
	if (n < 0)
		return ret;
	full[n] = 0;
	/* Below the mount: "/a/b"; the root itself: "/". */
	if (strncmp(full, root, rl) != 0 || (full[rl] != 0 && full[rl] != '/'))
		return -ENOENT;
	if ((size_t)snprintf(buf, len, "%s", full[rl] ? full + rl : "/") >= len)
		return -ENAMETOOLONG;
	return 0;
}

typedef int (*walk_fn)(const char *path, const char *name, void *arg);

/* Depth-first walk of the directories below dir (not dir itself); stops when fn returns
 * non-zero and returns that. Cgroupfs is kernfs (in memory): this never waits on a disk. */
int cgroup_walk(const char *dir, int depth, walk_fn fn, void *arg)
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
		if ((size_t)snprintf(sub, sizeof(sub), "%s/%s", dir, de->d_name) >= sizeof(sub))
			continue;
		ret = fn(sub, de->d_name, arg);
		if (ret == 0)
			ret = cgroup_walk(sub, depth - 1, fn, arg);
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

static int resolve(const char *root, struct find_ctx *c, walk_fn fn, const char *what,
		   bool quiet)
{
	int ret = cgroup_walk(root, 12, fn, c);

	if (ret < 0)
		return ret;
	if (c->found == 0) {
		if (!quiet)
			log_error("cgroup: no cgroup under %s for %s %s", root, what, c->needle);
		return -ENOENT;
	}
	if (c->found > 1) {
		if (!quiet)
			log_error("cgroup: %d cgroups under %s match %s %s; give more of it",
				  c->found, root, what, c->needle);
		return -EEXIST;
	}
	return 0;
}

static int container(const char *root, const char *id, char *buf, size_t len, bool quiet)
{
	struct find_ctx c = { .needle = id, .nlen = strlen(id), .buf = buf, .len = len };

	if (c.nlen < 12 || c.nlen > 64 || !is_hex(id, c.nlen)) {
		if (!quiet)
			log_error("cgroup: container id '%s' must be 12 to 64 lowercase hex "
				  "digits", id);
		return -EINVAL;
	}
	return resolve(root, &c, find_container, "container", quiet);
}

static int pod(const char *root, const char *uid, char *buf, size_t len, bool quiet)
{
	struct find_ctx c = { .needle = uid, .nlen = strlen(uid), .pod = true, .buf = buf,
			      .len = len };

	if (c.nlen < 8 || c.nlen > 64 || strspn(uid, "0123456789abcdef-") != c.nlen) {
		if (!quiet)
			log_error("cgroup: pod uid '%s' must be a lowercase UUID", uid);
		return -EINVAL;
	}
	return resolve(root, &c, find_pod, "pod", quiet);
}

int cgroup_resolve_container(const char *root, const char *id, char *buf, size_t len)
{
	return container(root, id, buf, len, false);
}

int cgroup_resolve_pod(const char *root, const char *uid, char *buf, size_t len)
{
	return pod(root, uid, buf, len, false);
}

int cgroup_find_container(const char *root, const char *id, char *buf, size_t len)
{
	return container(root, id, buf, len, true);
}

int cgroup_find_pod(const char *root, const char *uid, char *buf, size_t len)
{
	return pod(root, uid, buf, len, true);
}

/* ---- id -> path ---------------------------------------------------------------------------- */

struct cg_entry {
	struct htab_node hn;
	uint64_t id;
	char *path;
};

struct cgroup_index {
	struct htab t;
};

static uint64_t id_hash(const struct htab *t, const void *key)
{
	return htab_hash_u64(t, *(const uint64_t *)key);
}

static bool id_eq(const struct htab_node *n, const void *key)
{
	return htab_entry(n, struct cg_entry, hn)->id == *(const uint64_t *)key;
}

static const struct htab_type id_type = { id_hash, id_eq };

int cgroup_index_new(struct cgroup_index **out)
{
	struct cgroup_index *x = xcalloc(1, sizeof(*x));
	int rc = htab_init(&x->t, &id_type);

	if (rc) {
		free(x);
		return rc;
	}
	*out = x;
	return 0;
}

static void entry_free(struct htab_node *n, void *arg)
{
	struct cg_entry *e = htab_entry(n, struct cg_entry, hn);

	free(e->path);
	free(e);
}

void cgroup_index_free(struct cgroup_index *x)
{
	if (!x)
		return;
	htab_drain(&x->t, entry_free, NULL);
	htab_fini(&x->t);
	free(x);
}

int cgroup_index_put(struct cgroup_index *x, uint64_t id, const char *path)
{
	struct htab_node *n = htab_find(&x->t, &id);
	struct cg_entry *e;

	if (n) {
		e = htab_entry(n, struct cg_entry, hn);
		free(e->path);
		e->path = xstrdup(path);
		return 0;
	}
	e = xcalloc(1, sizeof(*e));
	e->id = id;
	e->path = xstrdup(path);
	htab_insert(&x->t, &e->hn, &e->id);
	return 0;
}

const char *cgroup_index_get(const struct cgroup_index *x, uint64_t id)
{
	struct htab_node *n = x ? htab_find(&x->t, &id) : NULL;

	return n ? htab_entry(n, struct cg_entry, hn)->path : NULL;
}

static int index_one(const char *path, const char *name, void *arg)
{
	uint64_t id;

	if (cgroup_id(path, &id) == 0)
		return cgroup_index_put(arg, id, path);
	return 0;
}

int cgroup_index_scan(struct cgroup_index *x, const char *root, int depth)
{
	int rc = index_one(root, NULL, x);

	return rc ? rc : cgroup_walk(root, depth, index_one, x);
}
