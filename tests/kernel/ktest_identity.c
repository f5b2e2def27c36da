/* Caller identity from the kernel (root, real cgroups): a connection accepted from a process
 * in cgroup A (enrolled) is attributed to A by peer_cgroup_id — over IPv4, IPv6 and v4-mapped
 * loopback — and one from a sibling cgroup B (not enrolled) to B; the id names the cgroup's
 * path (cgroup_path_of). The fast path (peer_fast: warden_conns, filled by the sockops
 * program) gives the same answers with no system call, and a slot that does not describe the
 * accepted connection exactly (another namespace, another address or port, being written) is
 * not believed. The cgroups and pins made here carry this pid and are removed at the end. */
#include <CUnit/Basic.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "base/log.h"
#include "enforce/cgroup.h"
#include "enforce/enforcer.h"
#include "enforce/peer_cgroup.h"
#include "enforce/peer_fast.h"
#include "cunit_main.h"
#include "ktest_util.h"

static char root[256], cg_base[KTEST_BASE_LEN], cg_a[KTEST_CG_LEN], cg_b[KTEST_CG_LEN], pin_dir[128];
static struct enforcer *E;

/* A listener on addr (AF_INET or AF_INET6 text; v6 dual-stack), port 0; its port in *port. */
static int listen_on(int family, const char *addr, uint16_t *port)
{
	return ktest_listen_dual(family, SOCK_STREAM, addr, 0, 1, port);
}

/* In the child: connect to d and hold the connection until the other end closes. */
static int hold_connection(const void *arg)
{
	int fd = ktest_connect(arg);
	char c;

	if (fd < 0)
		return 3;
	while (read(fd, &c, 1) > 0)
		;
	return 0;
}

/* In a child placed in cg: connect to addr:port and hold the connection until the parent
 * closes its end. */
static pid_t client_in(const char *cg, int family, const char *addr, uint16_t port)
{
	const struct ktest_dial d = { family, addr, port };

	return ktest_spawn_in(cg, NULL, hold_connection, &d, 2);
}

/* The fast path for an accepted connection, as the daemon takes it: the peer from accept,
 * our own address from the socket. Counts a hit or a fallback. */
static int fast_lookup(int fd, const struct sockaddr_storage *peer, struct peer_fast_hit *hit)
{
	struct sockaddr_storage me;
	socklen_t ml = sizeof(me);

	if (getsockname(fd, (struct sockaddr *)&me, &ml) < 0)
		return -errno;
	return peer_fast_lookup((const struct sockaddr *)peer, (struct sockaddr *)&me, hit);
}

/* Accept one connection from a client in cg and check the kernel names cg as its caller,
 * through sock_diag and through warden_conns alike. */
static void check_caller(int lfamily, const char *laddr, int cfamily, const char *caddr,
			 const char *cg)
{
	uint16_t port = 0;
	uint64_t want, got = 0, cookie = 0;
	char path[512];
	struct sockaddr_storage peer;
	socklen_t pl = sizeof(peer);
	struct peer_fast_hit hit = { 0 };
	struct peer_fast_stats before, after;
	int lfd = listen_on(lfamily, laddr, &port), fd;
	pid_t p;

	CU_ASSERT_FATAL(lfd >= 0);
	p = client_in(cg, cfamily, caddr, port);
	CU_ASSERT_FATAL(p > 0);
	fd = accept4(lfd, (struct sockaddr *)&peer, &pl, SOCK_CLOEXEC);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(cgroup_id(cg, &want), 0);
	CU_ASSERT_EQUAL(peer_cgroup_id(fd, &got), 0);
	CU_ASSERT_EQUAL(got, want);
	CU_ASSERT_EQUAL(peer_socket_lookup(fd, &got, &cookie), 0);
	peer_fast_stats(&before);
	CU_ASSERT_EQUAL(fast_lookup(fd, &peer, &hit), 0);
	peer_fast_stats(&after);
	CU_ASSERT_EQUAL(after.hits, before.hits + 1);
	CU_ASSERT_EQUAL(hit.cgroup_id, want);
	CU_ASSERT_EQUAL(hit.cookie, cookie);
	CU_ASSERT_FALSE(hit.redirected);
	CU_ASSERT_EQUAL(cgroup_path_of(root, got, path, sizeof(path)), 0);
	CU_ASSERT_STRING_EQUAL(path, cg + strlen(root));
	CU_ASSERT_EQUAL(peer_cgroup_path(root, got, path, sizeof(path)), 0);
	CU_ASSERT_STRING_EQUAL(path, cg + strlen(root));
	close(fd);
	close(lfd);
	CU_ASSERT_EQUAL(ktest_reap(p), 0);
}

/* A slot that is not exactly the accepted connection is not believed: written over (as root
 * can) with another namespace, another client address, another destination port, or left
 * mid-write (seq odd), the lookup falls back; the true record, put back, is believed again. */
static void test_forged_slot_falls_back(void)
{
	uint16_t port = 0;
	struct sockaddr_storage peer;
	socklen_t pl = sizeof(peer);
	struct peer_fast_hit hit;
	struct peer_fast_stats before, after;
	struct warden_conn real, forged;
	int lfd = listen_on(AF_INET, "127.0.0.1", &port), fd, mfd;
	uint32_t slot;
	pid_t p;

	CU_ASSERT_FATAL(lfd >= 0);
	mfd = enforcer_map_fd(E, WARDEN_MAP_CONNS);
	CU_ASSERT_FATAL(mfd >= 0);
	p = client_in(cg_b, AF_INET, "127.0.0.1", port);
	CU_ASSERT_FATAL(p > 0);
	fd = accept4(lfd, (struct sockaddr *)&peer, &pl, SOCK_CLOEXEC);
	CU_ASSERT_FATAL(fd >= 0);
	slot = ntohs(((struct sockaddr_in *)&peer)->sin_port);
	CU_ASSERT_EQUAL_FATAL(bpf_map_lookup_elem(mfd, &slot, &real), 0);
	CU_ASSERT_EQUAL(fast_lookup(fd, &peer, &hit), 0);

	peer_fast_stats(&before);
	forged = real;
	forged.netns_cookie ^= 1;	/* the same tuple in another namespace */
	forged.cgroup_id = 1;
	CU_ASSERT_EQUAL(bpf_map_update_elem(mfd, &slot, &forged, BPF_ANY), 0);
	CU_ASSERT_EQUAL(fast_lookup(fd, &peer, &hit), -ENOENT);
	forged = real;
	forged.saddr[3] ^= 2;		/* another client address */
	CU_ASSERT_EQUAL(bpf_map_update_elem(mfd, &slot, &forged, BPF_ANY), 0);
	CU_ASSERT_EQUAL(fast_lookup(fd, &peer, &hit), -ENOENT);
	forged = real;
	forged.dport ^= htons(1);	/* the same client, to another port */
	CU_ASSERT_EQUAL(bpf_map_update_elem(mfd, &slot, &forged, BPF_ANY), 0);
	CU_ASSERT_EQUAL(fast_lookup(fd, &peer, &hit), -ENOENT);
	forged = real;
	forged.seq |= 1;		/* a writer holds it */
	CU_ASSERT_EQUAL(bpf_map_update_elem(mfd, &slot, &forged, BPF_ANY), 0);
	CU_ASSERT_EQUAL(fast_lookup(fd, &peer, &hit), -ENOENT);
	memset(&forged, 0, sizeof(forged));	/* never written */
	CU_ASSERT_EQUAL(bpf_map_update_elem(mfd, &slot, &forged, BPF_ANY), 0);
	CU_ASSERT_EQUAL(fast_lookup(fd, &peer, &hit), -ENOENT);
	peer_fast_stats(&after);
	CU_ASSERT_EQUAL(after.fallbacks, before.fallbacks + 5);
	CU_ASSERT_EQUAL(after.hits, before.hits);

	CU_ASSERT_EQUAL(bpf_map_update_elem(mfd, &slot, &real, BPF_ANY), 0);
	CU_ASSERT_EQUAL(fast_lookup(fd, &peer, &hit), 0);
	CU_ASSERT_EQUAL(hit.cgroup_id, real.cgroup_id);
	close(fd);
	close(lfd);
	CU_ASSERT_EQUAL(ktest_reap(p), 0);
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
	peer_fast_close();
	enforcer_close(E);
	E = NULL;
	enforcer_destroy_pins(pin_dir);
	ktest_rmdirs(cg_a, cg_b, cg_base, NULL);
	return 0;
}

/* The programs on private pins, cgroup A enrolled (protect, no rules: nothing refused):
 * identity must not depend on enrolment. */
static int suite_init(void)
{
	struct enforcer_opts o = { 0 };
	int ret;

	log_set_level(LOG_ERROR);
	snprintf(pin_dir, sizeof(pin_dir), "/sys/fs/bpf/mcpwarden-kid-%d", getpid());
	if (cgroup_detect_root(root, sizeof(root)) < 0 ||
	    ktest_mkcgroups(root, "mcpwarden-kid", cg_base, cg_a, "a", cg_b, "b", NULL) < 0)
		return -1;
	o.pin_dir = pin_dir;
	o.cgroup_root = root;
	if ((ret = enforcer_open(&o, &E)) < 0 ||
	    (ret = enforcer_enroll(E, cg_a, WARDEN_MODE_PROTECT)) < 0 ||
	    (ret = peer_fast_open(pin_dir)) < 0) {
		fprintf(stderr, "ktest_identity setup: %s\n", strerror(-ret));
		return -1;
	}
	return 0;
}

KTEST_MAIN("ktest_identity", "caller identity from the kernel (real cgroups)", suite_init, teardown,
	{ "IPv4 loopback caller attributed to its cgroup", test_ipv4_loopback },
	{ "IPv6 loopback caller attributed to its cgroup", test_ipv6_loopback },
	{ "v4-mapped caller on a dual-stack listener", test_v4_mapped },
	{ "a slot that is not the accepted connection falls back", test_forged_slot_falls_back },
	{ "a unix socket has no inet identity", test_unix_not_supported },
	{ "an id that is no cgroup has no path", test_path_of_unknown_id },
	{ "without CAP_DAC_READ_SEARCH callers are named by a walk", test_named_by_walk })
