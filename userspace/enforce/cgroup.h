/* cgroup: the cgroup v2 tree as the kernel half sees it, shared by the daemon and wardenctl.
 *
 * A cgroup is named by its path and identified by its id (the kernfs node id: the directory's
 * inode number, which is what the BPF programs read). Containers and pods are found by the
 * names container runtimes give their cgroups: containerd/CRI (cri-containerd-<id>.scope),
 * CRI-O (crio-<id>.scope), Docker (docker-<id>.scope, or <id> under cgroupfs), podman
 * (libpod-<id>[.scope]); pods as pod<uid> (cgroupfs) or kubepods-...-pod<uid_>.slice (systemd).
 * cgroupfs is in-memory kernfs: walking it never waits on a disk.
 */
#ifndef WARDEN_CGROUP_H
#define WARDEN_CGROUP_H

#include <stddef.h>
#include <stdint.h>

/* The cgroup v2 mount: /sys/fs/cgroup, or /sys/fs/cgroup/unified on hybrid hosts.
 * -EOPNOTSUPP when there is none. */
int cgroup_detect_root(char *buf, size_t len);
int cgroup_id(const char *path, uint64_t *id);
/* Does the cgroup with this id still exist under the cgroup2 mount root? 1 yes, 0 gone, or
 * -errno when the kernel cannot tell (no file-handle support, no privilege): callers keep. */
int cgroup_id_alive(const char *root, uint64_t id);
/* The path below root ("/a/b", "/" for root itself) of the live cgroup with this id.
 * -ENOENT when there is none (any more), -ENAMETOOLONG, or another -errno. */
int cgroup_path_of(const char *root, uint64_t id, char *buf, size_t len);
/* Depth-first over the directories below dir (not dir itself), at most depth levels; stops
 * when fn returns non-zero and returns that. */
int cgroup_walk(const char *dir, int depth,
		int (*fn)(const char *path, const char *name, void *arg), void *arg);
/* The one cgroup under root of a container (12 to 64 hex digits of its id) or a pod (its
 * UID). -ENOENT none, -EEXIST several (give more of the id), -EINVAL malformed. */
int cgroup_resolve_container(const char *root, const char *id, char *buf, size_t len);
int cgroup_resolve_pod(const char *root, const char *uid, char *buf, size_t len);
/* The same without logging: for callers that expect a miss and try again (the pod watch). */
int cgroup_find_container(const char *root, const char *id, char *buf, size_t len);
int cgroup_find_pod(const char *root, const char *uid, char *buf, size_t len);

/* An index id -> path, filled one entry at a time or by walking a tree. */
struct cgroup_index;

int cgroup_index_new(struct cgroup_index **out);
void cgroup_index_free(struct cgroup_index *x);
int cgroup_index_put(struct cgroup_index *x, uint64_t id, const char *path);
const char *cgroup_index_get(const struct cgroup_index *x, uint64_t id);
/* Add root and every cgroup below it, depth levels deep. */
int cgroup_index_scan(struct cgroup_index *x, const char *root, int depth);

#endif
