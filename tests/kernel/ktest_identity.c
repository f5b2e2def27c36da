/* Caller identity from the kernel (root, real cgroups): a connection accepted from a process
 * in cgroup A is attributed to A by peer_cgroup_id — over IPv4, IPv6 and v4-mapped loopback —
 * and one from a sibling cgroup B to B; the id names the cgroup's path (cgroup_path_of). The
 * cgroups made here carry this pid and are removed at the end. */
#include <CUnit/Basic.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "enforce/cgroup.h"
#include "enforce/peer_cgroup.h"
#include "cunit_main.h"
#include "ktest_util.h"

static char root[256], cg_base[512], cg_a[600], cg_b[600];

/* A listener on addr (AF_INET or AF_INET6 text), port 0; its port in *port. */
static int listen_on(int family, const char *addr, uint16_t *port)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t sl;
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0), off = 0;

	if (fd < 0)
		return -1;
	if (family == AF_INET6) {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;

		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
		s->sin6_family = AF_INET6;
		inet_pton(AF_INET6, addr, &s->sin6_addr);
		sl = sizeof(*s);
	} else {
		struct sockaddr_in *s = (struct sockaddr_in *)&ss;

		s->sin_family = AF_INET;
		inet_pton(AF_INET, addr, &s->sin_addr);
		sl = sizeof(*s);
	}
	if (bind(fd, (struct sockaddr *)&ss, sl) || listen(fd, 4) ||
	    getsockname(fd, (struct sockaddr *)&ss, &sl)) {
		close(fd);
		return -1;
	}
	*port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
					       : ((struct sockaddr_in *)&ss)->sin_port);
	return fd;
}

/* In a child placed in cg: connect to addr:port and hold the connection until the parent
 * closes its end. */
static pid_t client_in(const char *cg, int family, const char *addr, uint16_t port)
{
	pid_t p = fork();

	if (p != 0)
		return p;
	struct sockaddr_storage ss = { 0 };
	socklen_t sl;
	char c;
	int fd;

	if (join_cgroup(cg) < 0)
		_exit(2);
	fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (family == AF_INET6) {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;

		s->sin6_family = AF_INET6;
		s->sin6_port = htons(port);
		inet_pton(AF_INET6, addr, &s->sin6_addr);
		sl = sizeof(*s);
	} else {
		struct sockaddr_in *s = (struct sockaddr_in *)&ss;

		s->sin_family = AF_INET;
		s->sin_port = htons(port);
		inet_pton(AF_INET, addr, &s->sin_addr);
		sl = sizeof(*s);
	}
	if (fd < 0 || connect(fd, (struct sockaddr *)&ss, sl))
		_exit(3);
	while (read(fd, &c, 1) > 0)
		;
	_exit(0);
}

static int reap(pid_t p)
{
	int st;

	while (waitpid(p, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Accept one connection from a client in cg and check the kernel names cg as its caller. */
static void check_caller(int lfamily, const char *laddr, int cfamily, const char *caddr,
			 const char *cg)
{
	uint16_t port = 0;
	uint64_t want, got = 0;
	char path[512];
	int lfd = listen_on(lfamily, laddr, &port), fd;
	pid_t p;

	CU_ASSERT_FATAL(lfd >= 0);
	p = client_in(cg, cfamily, caddr, port);
	CU_ASSERT_FATAL(p > 0);
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(cgroup_id(cg, &want), 0);
	CU_ASSERT_EQUAL(peer_cgroup_id(fd, &got), 0);
	CU_ASSERT_EQUAL(got, want);
	CU_ASSERT_EQUAL(cgroup_path_of(root, got, path, sizeof(path)), 0);
	CU_ASSERT_STRING_EQUAL(path, cg + strlen(root));
	CU_ASSERT_EQUAL(peer_cgroup_path(root, got, path, sizeof(path)), 0);
	CU_ASSERT_STRING_EQUAL(path, cg + strlen(root));
	close(fd);
	close(lfd);
	CU_ASSERT_EQUAL(reap(p), 0);
}

static void test_ipv4_loopback(void)
{
	check_caller(AF_INET, "127.0.0.1", AF_INET, "127.0.0.1", cg_a);
	check_caller(AF_INET, "127.0.0.1", AF_INET, "127.0.0.1", cg_b);
}

static void test_ipv6_loopback(void)
{
	check_caller(AF_INET6, "::1", AF_INET6, "::1", cg_a);
	check_caller(AF_INET6, "::1", AF_INET6, "::1", cg_b);
}

/* A dual-stack listener sees a v4 client as ::ffff:127.0.0.1: still found. */
static void test_v4_mapped(void)
{
	check_caller(AF_INET6, "::", AF_INET, "127.0.0.1", cg_a);
}

/* Only inet connections are looked up: a unix socket pair has no identity here. */
static void test_unix_not_supported(void)
{
	uint64_t got = 0;
	int sv[2];

	CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	CU_ASSERT_EQUAL(peer_cgroup_id(sv[0], &got), -EAFNOSUPPORT);
	close(sv[0]);
	close(sv[1]);
}

static void test_path_of_unknown_id(void)
{
	char path[64];

	CU_ASSERT_EQUAL(cgroup_path_of(root, 0x7fffffffffffULL, path, sizeof(path)), -ENOENT);
}

/* Without CAP_DAC_READ_SEARCH callers are named by walking the tree: the same paths, a
 * cgroup made after the last walk is found by the next one (at most every 250 ms), and an
 * id that is no cgroup stays unnamed. */
static void test_named_by_walk(void)
{
	char cg_c[700], path[512];
	uint64_t a, c;

	peer_force_walk = true;
	CU_ASSERT_EQUAL(cgroup_id(cg_a, &a), 0);
	CU_ASSERT_EQUAL(peer_cgroup_path(root, a, path, sizeof(path)), 0);
	CU_ASSERT_STRING_EQUAL(path, cg_a + strlen(root));
	snprintf(cg_c, sizeof(cg_c), "%s/c", cg_base);
	CU_ASSERT_FATAL(mkdir(cg_c, 0755) == 0);
	CU_ASSERT_EQUAL(cgroup_id(cg_c, &c), 0);
	usleep(300 * 1000);
	CU_ASSERT_EQUAL(peer_cgroup_path(root, c, path, sizeof(path)), 0);
	CU_ASSERT_STRING_EQUAL(path, cg_c + strlen(root));
	usleep(300 * 1000);
	CU_ASSERT_EQUAL(peer_cgroup_path(root, 0x7fffffffffffULL, path, sizeof(path)), -ENOENT);
	/* Just walked: a miss now does not walk again. */
	CU_ASSERT_EQUAL(peer_cgroup_path(root, 0x7ffffffffffeULL, path, sizeof(path)), -ENOENT);
	rmdir(cg_c);
	/* A real caller, named by the walk. */
	check_caller(AF_INET, "127.0.0.1", AF_INET, "127.0.0.1", cg_b);
	peer_force_walk = false;
}

static int teardown(void)
{
	rmdir(cg_a);
	rmdir(cg_b);
	rmdir(cg_base);
	return 0;
}

static int suite_init(void) { return 0; }

int main(void)
{
	if (!ktest_can_run("ktest_identity", root, sizeof(root)))
		return 0;
	log_set_level(LOG_ERROR);
	snprintf(cg_base, sizeof(cg_base), "%s/mcpwarden-kid-%d", root, getpid());
	snprintf(cg_a, sizeof(cg_a), "%s/a", cg_base);
	snprintf(cg_b, sizeof(cg_b), "%s/b", cg_base);
	if (mkdir(cg_base, 0755) < 0 || mkdir(cg_a, 0755) < 0 || mkdir(cg_b, 0755) < 0) {
		perror("mkdir cgroup");
		teardown();
		return 1;
	}

	static const struct cu_case cases[] = {
		{ "IPv4 loopback caller attributed to its cgroup", test_ipv4_loopback },
		{ "IPv6 loopback caller attributed to its cgroup", test_ipv6_loopback },
		{ "v4-mapped caller on a dual-stack listener", test_v4_mapped },
		{ "a unix socket has no inet identity", test_unix_not_supported },
		{ "an id that is no cgroup has no path", test_path_of_unknown_id },
		{ "without CAP_DAC_READ_SEARCH callers are named by a walk", test_named_by_walk },
		{ NULL, NULL },
	};

	return cu_run_suite("caller identity from the kernel (real cgroups)", suite_init, teardown,
			    cases);
}
