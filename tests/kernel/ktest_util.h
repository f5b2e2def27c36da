/* ktest_util: what the kernel suites share — their main(), making, writing and removing
 * cgroupfs files, running a probe in a child placed in a cgroup (waited for or not), loopback
 * listeners and connections, the enforcer's counters. Header-only: each suite is one binary. */
#ifndef WARDEN_KTEST_UTIL_H
#define WARDEN_KTEST_UTIL_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/log.h"
#include "enforce/cgroup.h"
#include "enforce/enforcer.h"
#include "cunit_main.h"

static inline int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), ret = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, text, strlen(text)) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

/* Remove the directories named, NULL-terminated, in order (children first): a teardown's
 * cgroups. A cgroup whose last process has just exited can be EBUSY for a moment: up to 1 s. */
static inline void ktest_rmdirs(const char *dir, ...)
{
	va_list ap;

	va_start(ap, dir);
	for (; dir; dir = va_arg(ap, const char *))
		for (int i = 0; i < 100 && rmdir(dir) < 0 && errno == EBUSY; i++)
			usleep(10000);
	va_end(ap);
}

enum { KTEST_BASE_LEN = 512, KTEST_CG_LEN = 600 };

/* A suite's cgroups: base (KTEST_BASE_LEN) = <root>/<tag>-<pid>, then under it each
 * (buffer of KTEST_CG_LEN, name) pair given, NULL-ended; made in that order. 0, or -1 after
 * perror (what was made is for the teardown's ktest_rmdirs). */
static inline int ktest_mkcgroups(const char *root, const char *tag, char *base, ...)
{
	va_list ap;
	char *dir;
	int ret = 0;

	snprintf(base, KTEST_BASE_LEN, "%s/%s-%d", root, tag, (int)getpid());
	if (mkdir(base, 0755) < 0)
		ret = -1;
	va_start(ap, base);
	while (!ret && (dir = va_arg(ap, char *))) {
		snprintf(dir, KTEST_CG_LEN, "%s/%s", base, va_arg(ap, const char *));
		if (mkdir(dir, 0755) < 0)
			ret = -1;
	}
	va_end(ap);
	if (ret)
		perror("mkdir cgroup");
	return ret;
}

/* Move the calling process into cgroup directory cg. */
static inline int join_cgroup(const char *cg)
{
	char p[700];

	snprintf(p, sizeof(p), "%s/cgroup.procs", cg);
	return write_file(p, "0");
}

/* 1 when a kernel suite can run here: root and a cgroup v2 hierarchy (its path in root);
 * otherwise 0, after printing SKIP and why. */
static inline int ktest_can_run(const char *suite, char *root, size_t len)
{
	if (geteuid() != 0) {
		printf("SKIP %s: needs root (BPF programs, cgroups)\n", suite);
		return 0;
	}
	if (cgroup_detect_root(root, len) < 0) {
		printf("SKIP %s: no cgroup v2 hierarchy mounted\n", suite);
		return 0;
	}
	return 1;
}

/* The whole main() of a kernel suite that needs nothing but root and cgroup v2 (SKIP
 * otherwise): CU_MAIN after ktest_can_run(), logging warnings and worse. binary names it in
 * the SKIP line. A failed init is followed by clean (CUnit would not run it), so that a
 * half-made set-up leaves no cgroup or pin behind: clean must take any state. */
#define KTEST_MAIN(binary, suite, init, clean, ...)                                   \
	static int ktest_init_(void)                                                  \
	{                                                                             \
		if (init() == 0)                                                      \
			return 0;                                                     \
		clean();                                                              \
		return -1;                                                            \
	}                                                                             \
	int main(void)                                                                \
	{                                                                             \
		static const struct cu_case cu_cases_[] = { __VA_ARGS__, { NULL, NULL } }; \
		char root_[256];                                                      \
                                                                                      \
		if (!ktest_can_run(binary, root_, sizeof(root_)))                     \
			return 0;                                                     \
		log_set_level(LOG_WARN);                                              \
		return cu_run_suite(suite, ktest_init_, clean, cu_cases_);            \
	}

typedef int (*probe_fn)(const void *arg);

/* The exit status of child p once it has exited; -1 when it was killed or cannot be waited
 * for. */
static inline int ktest_reap(pid_t p)
{
	int status;

	while (waitpid(p, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* A child placed in cg, named comm (NULL: keeps the test's name), that exits with what fn
 * returned (& 0xff: an errno, 0 for success), or join_fail when it could not join cg. Its
 * pid, or -errno. */
static inline pid_t ktest_spawn_in(const char *cg, const char *comm, probe_fn fn, const void *arg,
				   int join_fail)
{
	pid_t p = fork();

	if (p < 0)
		return -errno;
	if (p == 0) {
		if (comm)
			prctl(PR_SET_NAME, comm);
		if (join_cgroup(cg) < 0)
			_exit(join_fail);
		_exit(fn(arg) & 0xff);
	}
	return p;
}

/* ktest_spawn_in, waited for: what fn returned, join_fail, -1 when the child did not exit,
 * or -errno; and the child's pid in *pid. */
static inline int run_in_cgroup(const char *cg, const char *comm, probe_fn fn, const void *arg,
				int join_fail, pid_t *pid)
{
	pid_t p = ktest_spawn_in(cg, comm, fn, arg, join_fail);

	if (p < 0)
		return p;
	if (pid)
		*pid = p;
	return ktest_reap(p);
}

/* The numeric address addr (family's form) and port in *ss: its length. */
static inline socklen_t ktest_sockaddr(int family, const char *addr, uint16_t port,
				       struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *s = (struct sockaddr_in *)ss;

		s->sin_family = AF_INET;
		s->sin_port = htons(port);
		inet_pton(AF_INET, addr, &s->sin_addr);
		return sizeof(*s);
	}
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	s6->sin6_family = AF_INET6;
	s6->sin6_port = htons(port);
	inet_pton(AF_INET6, addr, &s6->sin6_addr);
	return sizeof(*s6);
}

/* Where a probe connects: a family, a numeric address in its form, a port. */
struct ktest_dial {
	int family;
	const char *addr;
	uint16_t port;
};

/* A TCP connection to d: its fd, or -errno. */
static inline int ktest_connect(const struct ktest_dial *d)
{
	struct sockaddr_storage ss;
	socklen_t len = ktest_sockaddr(d->family, d->addr, d->port, &ss);
	int fd = socket(d->family, SOCK_STREAM | SOCK_CLOEXEC, 0), err;

	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&ss, len) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

/* A socket of type bound to addr:port (0: a free one; AF_INET6: v6 only unless dual, which
 * takes v4-mapped callers too), listening when a stream; its fd and its port in *out, or
 * -errno. */
static inline int ktest_listen_dual(int family, int type, const char *addr, uint16_t port, int dual,
				    uint16_t *out)
{
	struct sockaddr_storage ss;
	socklen_t len = ktest_sockaddr(family, addr, port, &ss);
	int fd = socket(family, type | SOCK_CLOEXEC, 0), one = 1, v6only = !dual;

	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only));
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 ||
	    (type == SOCK_STREAM && listen(fd, 64) < 0) ||
	    getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	*out = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
				       : ((struct sockaddr_in6 *)&ss)->sin6_port);
	return fd;
}

/* ktest_listen_dual, v6 only: the listener most tests want. */
static inline int ktest_listen(int family, int type, const char *addr, uint16_t port, uint16_t *out)
{
	return ktest_listen_dual(family, type, addr, port, 0, out);
}

/* Listeners on the same free port on 127.0.0.1 (*fd4) and ::1 (*fd6), as the daemon's sidecar
 * and redirect listeners: the port in *port; 0, or -errno (-EADDRINUSE after 50 tries). */
static inline int ktest_listen_both(int *fd4, int *fd6, uint16_t *port)
{
	for (int tries = 0; tries < 50; tries++) {
		*fd4 = ktest_listen(AF_INET, SOCK_STREAM, "127.0.0.1", 0, port);
		if (*fd4 < 0)
			return *fd4;
		*fd6 = ktest_listen(AF_INET6, SOCK_STREAM, "::1", *port, port);
		if (*fd6 >= 0)
			return 0;
		close(*fd4);
		*fd4 = -1;
	}
	return -EADDRINUSE;
}

/* One counter an enforcer must have reached: field (of struct warden_counters) of hook
 * (WARDEN_HOOK_*) at least min. A table of them ends with { 0 }. */
struct ktest_count {
	const char *what;	/* the row, named in a failure */
	unsigned hook;
	size_t field;		/* offsetof(struct warden_counters, field) */
	__u64 min;
};
#define KTEST_AT_LEAST(hook, field, min) \
	{ #hook "." #field " >= " #min, hook, offsetof(struct warden_counters, field), min }

/* e's counters in *c, each row of want checked against them (one assertion a row). */
static inline void ktest_check_counters(struct enforcer *e, struct enforcer_counters *c,
					const struct ktest_count *want)
{
	CU_ASSERT_EQUAL_FATAL(enforcer_counters(e, c), 0);
	for (; want->what; want++) {
		__u64 v;

		memcpy(&v, (const char *)&c->hook[want->hook] + want->field, sizeof(v));
		CU_ASSERT_CASE(v >= want->min, want->what);
	}
}

#endif
