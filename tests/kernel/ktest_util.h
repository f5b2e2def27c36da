/* ktest_util: what the kernel suites share — writing cgroupfs files and running a probe in a
 * child placed in a cgroup. Header-only: each suite is one binary. */
#ifndef WARDEN_KTEST_UTIL_H
#define WARDEN_KTEST_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/log.h"
#include "enforce/cgroup.h"
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
 * the SKIP line. */
#define KTEST_MAIN(binary, suite, init, clean, ...)                                   \
	int main(void)                                                                \
	{                                                                             \
		static const struct cu_case cu_cases_[] = { __VA_ARGS__, { NULL, NULL } }; \
		char root_[256];                                                      \
                                                                                      \
		if (!ktest_can_run(binary, root_, sizeof(root_)))                     \
			return 0;                                                     \
		log_set_level(LOG_WARN);                                              \
		return cu_run_suite(suite, init, clean, cu_cases_);                   \
	}

typedef int (*probe_fn)(const void *arg);

/* Run fn in a child placed in cg, named comm; returns what fn returned (& 0xff: an errno, 0
 * for success), join_fail when the child could not join cg, -1 when it did not exit; and the
 * child's pid in *pid. */
static inline int run_in_cgroup(const char *cg, const char *comm, probe_fn fn, const void *arg,
				int join_fail, pid_t *pid)
{
	int status;
	pid_t p = fork();

	if (p < 0)
		return -errno;
	if (p == 0) {
		prctl(PR_SET_NAME, comm);
		if (join_cgroup(cg) < 0)
			_exit(join_fail);
		_exit(fn(arg) & 0xff);
	}
	if (pid)
		*pid = p;
	while (waitpid(p, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

#endif
