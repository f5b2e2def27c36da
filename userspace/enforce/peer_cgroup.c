/* peer_cgroup: the cgroup of the local process at the other end of an accepted connection. */
#include "enforce/peer_cgroup.h"

#include "base/clock.h"
#include "base/log.h"
#include "enforce/cgroup.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdatomic.h>
#include <limits.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

/* Older uapi headers lack it; the kernel has reported it since 5.7. */
#ifndef INET_DIAG_CGROUP_ID
#define INET_DIAG_CGROUP_ID 21
#endif

/* Fill one end of the diag tuple; v4-mapped v6 addresses are the v4 socket they stand for. */
static int tuple_end(const struct sockaddr_storage *ss, int *family, __be16 *port, __be32 addr[4])
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)ss;

		*family = AF_INET;
		*port = s->sin_port;
		addr[0] = s->sin_addr.s_addr;
		return 0;
	}
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)ss;

		*port = s->sin6_port;
		if (IN6_IS_ADDR_V4MAPPED(&s->sin6_addr)) {
			*family = AF_INET;
			memcpy(&addr[0], &s->sin6_addr.s6_addr[12], 4);
		} else {
			*family = AF_INET6;
			memcpy(addr, &s->sin6_addr, 16);
		}
		return 0;
	}
	return -EAFNOSUPPORT;
}

/* The cgroup id attribute and the socket cookie of one inet_diag answer. */
static int parse_answer(const struct nlmsghdr *nh, size_t len, uint64_t *id, uint64_t *cookie)
{
	for (; NLMSG_OK(nh, len); nh = NLMSG_NEXT(nh, len)) {
		if (nh->nlmsg_type == NLMSG_ERROR) {
			const struct nlmsgerr *e = NLMSG_DATA(nh);

			if (nh->nlmsg_len < NLMSG_LENGTH(sizeof(*e)))
				return -EBADMSG;
			return e->error ? e->error : -ENOENT;
		}
		if (nh->nlmsg_type != SOCK_DIAG_BY_FAMILY)
			continue;
		if (nh->nlmsg_len < NLMSG_LENGTH(sizeof(struct inet_diag_msg)))
			return -EBADMSG;
		const struct inet_diag_msg *m = NLMSG_DATA(nh);
		unsigned alen = nh->nlmsg_len - NLMSG_LENGTH(sizeof(*m));
		const struct rtattr *a = (const struct rtattr *)(m + 1);

		*cookie = (uint64_t)m->id.idiag_cookie[0] | (uint64_t)m->id.idiag_cookie[1] << 32;

		for (; RTA_OK(a, alen); a = RTA_NEXT(a, alen)) {
			if (a->rta_type == INET_DIAG_CGROUP_ID && RTA_PAYLOAD(a) >= sizeof(*id)) {
				memcpy(id, RTA_DATA(a), sizeof(*id));
				return 0;
			}
		}
		return -EOPNOTSUPP;
	}
	return -EBADMSG;
}

static _Thread_local int diag_sock = -1;
static _Thread_local uint32_t diag_seq;

/* Recently named cgroups: a workload opens many connections from the same few cgroups, and
 * naming one costs an open_by_handle_at and a readlink. Ids are never reused; a renamed
 * cgroup is named afresh once its entry is older than PATH_TTL_MS. */
#define PATH_SLOTS 16
#define PATH_TTL_MS 2000
struct path_slot {
	uint64_t id;
	uint64_t at_ms;
	char path[256];
};
static _Thread_local struct path_slot path_cache[PATH_SLOTS];

bool peer_force_walk;

/* Without CAP_DAC_READ_SEARCH the kernel refuses open_by_handle_at (EPERM). A cgroup v2 id
 * is its directory's inode number, so the tree is walked instead into an index id -> path,
 * rebuilt on a miss at most once per WALK_EVERY_MS and bounded to WALK_MAX_DIRS directories:
 * cgroupfs is kernfs (in memory), a bounded walk four times a second at worst costs the loop a few
 * milliseconds, and a workload's cgroups are found by the first walk after they appear. An
 * entry is checked against the directory's inode before it is believed (a cgroup may be
 * renamed; an id is never reused). */
#define WALK_MAX_DIRS 4096
#define WALK_DEPTH 16
#define WALK_EVERY_MS 250
static _Thread_local struct cgroup_index *walk_index;
static _Thread_local uint64_t walk_at_ms;
static _Thread_local bool walk_ever;
static atomic_bool no_fhandle_said;    /* said once, whichever loop saw it */

struct walk_ctx {
	struct cgroup_index *x;
	size_t rootlen;
	unsigned dirs;
};

static int walk_one(const char *path, const char *name, void *arg)
{
	struct walk_ctx *w = arg;
	struct stat st;

	(void)name;
	if (++w->dirs > WALK_MAX_DIRS)
		return 1;
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return cgroup_index_put(w->x, st.st_ino, path + w->rootlen);
	return 0;
}

/* 0 with the path, -ENOENT when the walk does not find it (or may not walk again yet). */
static int path_by_walk(const char *root, uint64_t id, char *buf, size_t len, uint64_t now)
{
	char full[PATH_MAX];
	const char *p = cgroup_index_get(walk_index, id);
	struct stat st;

	if (p && (size_t)snprintf(full, sizeof(full), "%s%s", root, p) < sizeof(full) &&
	    stat(full, &st) == 0 && st.st_ino == id)
		goto found;
	if (walk_ever && now - walk_at_ms < WALK_EVERY_MS)
		return -ENOENT;
	{
		struct walk_ctx w = { .rootlen = strlen(root) };
		int rc = cgroup_index_new(&w.x);

		if (rc)
			return rc;
		if (stat(root, &st) == 0)
			rc = cgroup_index_put(w.x, st.st_ino, "/");
		if (rc == 0)
			rc = cgroup_walk(root, WALK_DEPTH, walk_one, &w);
		if (rc < 0) {
			cgroup_index_free(w.x);
			return rc;
		}
		if (w.dirs > WALK_MAX_DIRS)
			log_warn("identity: more than %d cgroups: callers below them are not named "
				 "without CAP_DAC_READ_SEARCH", WALK_MAX_DIRS);
		cgroup_index_free(walk_index);
		walk_index = w.x;
		walk_at_ms = now;
		walk_ever = true;
	}
	p = cgroup_index_get(walk_index, id);
	if (!p)
		return -ENOENT;
found:
	if ((size_t)snprintf(buf, len, "%s", p) >= len)
		return -ENAMETOOLONG;
	return 0;
}

int peer_cgroup_path(const char *root, uint64_t id, char *buf, size_t len)
{
	struct path_slot *s = &path_cache[(id ^ (id >> 16)) % PATH_SLOTS];
	uint64_t now = clock_mono_ms();
	int ret;

	if (id && s->id == id && now - s->at_ms < PATH_TTL_MS) {
		if ((size_t)snprintf(buf, len, "%s", s->path) >= len)
			return -ENAMETOOLONG;
		return 0;
	}
	ret = peer_force_walk ? -EPERM : cgroup_path_of(root, id, buf, len);
	if (ret == -EPERM) {
		if (!atomic_exchange(&no_fhandle_said, true))
			log_info("identity: no CAP_DAC_READ_SEARCH (open_by_handle_at refused): "
				 "callers are named by walking the cgroup tree");
		ret = path_by_walk(root, id, buf, len, now);
	}
	if (ret == 0 && strlen(buf) < sizeof(s->path)) {
		s->id = id;
		s->at_ms = now;
		snprintf(s->path, sizeof(s->path), "%s", buf);
	}
	return ret;
}

int peer_cgroup_id(int fd, uint64_t *id)
{
	return peer_socket_lookup(fd, id, NULL);
}

int peer_socket_lookup(int fd, uint64_t *id, uint64_t *cookie)
{
	uint64_t ck = 0;
	struct sockaddr_storage me, peer;
	socklen_t ml = sizeof(me), pl = sizeof(peer);
	struct {
		struct nlmsghdr nh;
		struct inet_diag_req_v2 r;
	} req;
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	long buf[1024];	/* 8 KiB, aligned for the netlink headers */
	int pf, mf, nl, ret;
	ssize_t n;

	if (getsockname(fd, (struct sockaddr *)&me, &ml) || getpeername(fd, (struct sockaddr *)&peer, &pl))
		return -errno;
	memset(&req, 0, sizeof(req));
	/* The client's socket: its local end is our peer, its remote end is us. */
	ret = tuple_end(&peer, &pf, &req.r.id.idiag_sport, req.r.id.idiag_src);
	if (ret == 0)
		ret = tuple_end(&me, &mf, &req.r.id.idiag_dport, req.r.id.idiag_dst);
	if (ret < 0)
		return ret;
	if (pf != mf)
		return -ENOENT;
	req.nh.nlmsg_len = sizeof(req);
	req.nh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	req.nh.nlmsg_flags = NLM_F_REQUEST;	/* no NLM_F_DUMP: one exact lookup */
	req.nh.nlmsg_seq = 1;
	req.r.sdiag_family = (__u8)pf;
	req.r.sdiag_protocol = IPPROTO_TCP;
	req.r.idiag_states = ~0U;
	req.r.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
	req.r.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;

	/* One netlink socket per thread, kept: opening and closing one per lookup cost more
	 * than the lookup (tools/bench/identity_lookup). */
	if (diag_sock < 0) {
		diag_sock = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
		if (diag_sock < 0)
			return -errno;
	}
	nl = diag_sock;
	req.nh.nlmsg_seq = ++diag_seq;
	if (sendto(nl, &req, sizeof(req), 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0) {
		ret = -errno;
		goto out;
	}
	/* The kernel answers before sendto returns: the receive never waits. An answer left
	 * from an earlier lookup (each is read whole, so none should be) is skipped by its
	 * sequence number. */
	for (int tries = 0;; tries++) {
		struct nlmsghdr first;

		do
			n = recv(nl, buf, sizeof(buf), MSG_DONTWAIT);
		while (n < 0 && errno == EINTR);
		if (n < 0) {
			ret = -errno;
			goto out;
		}
		if ((size_t)n < sizeof(first) || tries == 4) {
			ret = -EBADMSG;
			goto out;
		}
		memcpy(&first, buf, sizeof(first));
		if (first.nlmsg_seq == diag_seq)
			break;
	}
	ret = parse_answer((const struct nlmsghdr *)buf, (size_t)n, id, &ck);
	if (ret == 0 && cookie)
		*cookie = ck;
	return ret;
out:
	/* A socket that failed is not trusted again. */
	close(diag_sock);
	diag_sock = -1;
	return ret;
}

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77	/* Linux 6.5 */
#endif

/* "0::/path" out of /proc/<pid>/cgroup (the v2 line; v1 lines are "N:ctrl:/path"). */
static int read_proc_cgroup(pid_t pid, char *buf, size_t len)
{
	char file[64], text[4096];
	ssize_t n;
	int fd, rc = -ENOENT;

	snprintf(file, sizeof(file), "/proc/%d/cgroup", (int)pid);
	fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ENOENT : -errno;
	n = read(fd, text, sizeof(text) - 1);
	if (n < 0)
		rc = -errno;
	close(fd);
	if (n <= 0)
		return rc;
	text[n] = '\0';
	for (char *line = text; line && *line;) {
		char *nl = strchr(line, '\n');

		if (nl)
			*nl = '\0';
		if (strncmp(line, "0::/", 4) == 0) {
			if ((size_t)snprintf(buf, len, "%s", line + 3) >= len)
				return -ENAMETOOLONG;
			return 0;
		}
		line = nl ? nl + 1 : NULL;
	}
	return -ENOENT;
}

int peer_unix_cgroup(int fd, const char *root, uint64_t *id, char *buf, size_t len)
{
	struct sockaddr_storage me;
	socklen_t ml = sizeof(me), cl = sizeof(struct ucred), pl = sizeof(int);
	struct ucred cred;
	char full[PATH_MAX];
	struct stat st;
	int pidfd = -1, rc;

	if (getsockname(fd, (struct sockaddr *)&me, &ml) < 0)
		return -errno;
	if (me.ss_family != AF_UNIX)
		return -EAFNOSUPPORT;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0)
		return -errno;
	if (cred.pid <= 0)
		return -ENOENT;
	/* Pin the process: without it a pid that exited and was reused between connect and this
	 * read would name a stranger. Kernels before 6.5 lack it: the window is then only
	 * between connect and the first request, and the pid must be reused within it. */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &pl) < 0)
		pidfd = -1;
	rc = read_proc_cgroup(cred.pid, buf, len);
	if (rc == 0 && pidfd >= 0 && syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) < 0)
		rc = -ESRCH;	/* exited meanwhile: what was read may be another process's */
	if (pidfd >= 0)
		close(pidfd);
	if (rc)
		return rc;
	if ((size_t)snprintf(full, sizeof(full), "%s%s", root, strcmp(buf, "/") ? buf : "") >=
	    sizeof(full))
		return -ENAMETOOLONG;
	if (stat(full, &st) < 0)
		return -errno;
	*id = st.st_ino;
	return 0;
}
