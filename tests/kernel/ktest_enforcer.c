/* Kernel enforcement, end to end on the real kernel (root): enrolled cgroups reach MCP servers
 * only through the sidecar. Every probe runs in a forked child placed in a temporary cgroup
 * under the cgroup v2 root; every refusal must show up as an audit event naming that child.
 * Everything made here (cgroups, bpffs pins, servers, processes) carries this process's pid
 * and is removed at the end, so concurrent runs do not interfere. */
#include <CUnit/Basic.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <event2/event.h>

#include "enforce/cgroup.h"
#include "enforce/enforcer.h"
#include "base/log.h"
#include "cunit_main.h"
#include "ktest_util.h"
#include "ktest_enforcer_util.h"

static struct enforcer *E;
static struct event_base *base;
static char pin_dir[128], root[256], cg_base[512], cg_lock[600], cg_lock_sub[640],
	cg_exempt[640], cg_prot[600], cg_plain[600], unix_path[108];
static int srv_up4 = -1, srv_up6 = -1, srv_udp4 = -1, srv_side4 = -1, srv_side6 = -1,
	   srv_allow = -1, srv_other = -1, srv_unix = -1;
static uint16_t port_up4, port_up6, port_udp4, port_side, port_allow, port_other;
static bool unix_supported;
static char unix_skip[160];


/* ---- servers ----------------------------------------------------------------------------- */

struct target {
	int family;		/* socket family */
	int type;
	const char *addr;
	const uint16_t *port;	/* known once the servers listen (suite_init) */
};

/* Where the probes aim: the protected upstream (TCP on both families, through a v4-mapped
 * address and the wildcard; UDP), the sidecar, the allowlisted port and an unlisted one. */
static const struct target
	up4 = { AF_INET, SOCK_STREAM, "127.0.0.1", &port_up4 },
	up6 = { AF_INET6, SOCK_STREAM, "::1", &port_up6 },
	up_mapped = { AF_INET6, SOCK_STREAM, "::ffff:127.0.0.1", &port_up4 },
	up_any = { AF_INET, SOCK_STREAM, "0.0.0.0", &port_up4 },
	udp4 = { AF_INET, SOCK_DGRAM, "127.0.0.1", &port_udp4 },
	udp_mapped = { AF_INET6, SOCK_DGRAM, "::ffff:127.0.0.1", &port_udp4 },
	side4 = { AF_INET, SOCK_STREAM, "127.0.0.1", &port_side },
	side6 = { AF_INET6, SOCK_STREAM, "::1", &port_side },
	side_mapped = { AF_INET6, SOCK_STREAM, "::ffff:127.0.0.1", &port_side },
	allow4 = { AF_INET, SOCK_STREAM, "127.0.0.1", &port_allow },
	other4 = { AF_INET, SOCK_STREAM, "127.0.0.1", &port_other },
	other_mapped = { AF_INET6, SOCK_STREAM, "::ffff:127.0.0.1", &port_other };

/* t's address and port in *ss: its length. */
static socklen_t make_addr(const struct target *t, struct sockaddr_storage *ss)
{
	return ktest_sockaddr(t->family, t->addr, *t->port, ss);
}

/* ---- cgroups and children ---------------------------------------------------------------- */

/* Run fn in a child placed in cg, named comm (ktest_util.h). */
static int run_in(const char *cg, const char *comm, probe_fn fn, const void *arg, pid_t *pid)
{
	return run_in_cgroup(cg, comm, fn, arg, 200, pid);
}

/* ---- probes (run in the child; return 0 or an errno) --------------------------------------- */

enum probe_op { P_CONNECT, P_SENDTO, P_CONNECT_SEND, P_FASTOPEN };

/* One socket to t: connect (t->type), a UDP sendto or connect+send, or a TCP Fast Open
 * sendto. 0 or the errno of the first call that failed. */
static int probe_io(const struct target *t, enum probe_op op)
{
	struct sockaddr_storage ss;
	socklen_t len = make_addr(t, &ss);
	struct sockaddr *sa = (struct sockaddr *)&ss;
	int type = op == P_CONNECT ? t->type : op == P_FASTOPEN ? SOCK_STREAM : SOCK_DGRAM;
	int fd = socket(t->family, type, 0), ret = 0;
	ssize_t r;

	if (fd < 0)
		return errno;
	switch (op) {
	case P_CONNECT: r = connect(fd, sa, len); break;
	case P_SENDTO: r = sendto(fd, "x", 1, 0, sa, len); break;
	case P_CONNECT_SEND: r = connect(fd, sa, len) < 0 ? -1 : send(fd, "x", 1, 0); break;
	default: r = sendto(fd, "x", 1, MSG_FASTOPEN, sa, len); break;
	}
	if (r < 0)
		ret = errno;
	close(fd);
	return ret;
}

static int probe_connect(const void *arg) { return probe_io(arg, P_CONNECT); }
static int probe_sendto(const void *arg) { return probe_io(arg, P_SENDTO); }
static int probe_udp_connect_send(const void *arg) { return probe_io(arg, P_CONNECT_SEND); }
static int probe_fastopen(const void *arg) { return probe_io(arg, P_FASTOPEN); }

/* io_uring IORING_OP_CONNECT with raw syscalls (no liburing). 0 or errno; ENOSYS/EPERM when
 * io_uring is unavailable, reported as 250 so the test can tell it apart. */
static int probe_uring_connect(const void *arg)
{
	const struct target *t = arg;
	struct io_uring_params p = { 0 };
	struct sockaddr_storage ss;
	socklen_t len = make_addr(t, &ss);
	int ring, fd, ret;

	ring = (int)syscall(__NR_io_uring_setup, 4, &p);
	if (ring < 0)
		return 250;
	size_t sq_sz = p.sq_off.array + p.sq_entries * sizeof(unsigned);
	size_t cq_sz = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
	char *sq = mmap(NULL, sq_sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring,
			IORING_OFF_SQ_RING);
	char *cq = mmap(NULL, cq_sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring,
			IORING_OFF_CQ_RING);
	struct io_uring_sqe *sqes = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe),
					 PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring,
					 IORING_OFF_SQES);
	if (sq == MAP_FAILED || cq == MAP_FAILED || sqes == MAP_FAILED)
		return 250;
	fd = socket(t->family, SOCK_STREAM, 0);
	if (fd < 0)
		return errno;
	unsigned *tail = (unsigned *)(sq + p.sq_off.tail);
	unsigned mask = *(unsigned *)(sq + p.sq_off.ring_mask);
	unsigned *array = (unsigned *)(sq + p.sq_off.array);
	unsigned idx = *tail & mask;

	memset(&sqes[idx], 0, sizeof(sqes[idx]));
	sqes[idx].opcode = IORING_OP_CONNECT;
	sqes[idx].fd = fd;
	sqes[idx].addr = (unsigned long)&ss;
	sqes[idx].off = len;
	array[idx] = idx;
	__atomic_store_n(tail, *tail + 1, __ATOMIC_RELEASE);
	if (syscall(__NR_io_uring_enter, ring, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0)
		return 250;
	unsigned head = __atomic_load_n((unsigned *)(cq + p.cq_off.head), __ATOMIC_ACQUIRE);
	unsigned cmask = *(unsigned *)(cq + p.cq_off.ring_mask);
	struct io_uring_cqe *cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);

	ret = cqes[head & cmask].res;
	close(fd);
	close(ring);
	return ret < 0 ? -ret : 0;
}

static int probe_raw_socket(const void *arg)
{
	int fd = socket(AF_INET, SOCK_RAW, IPPROTO_UDP);

	if (fd < 0)
		return errno;
	close(fd);
	return 0;
}

/* Ping sockets need ping_group_range to include us: set it in a private netns so the host's
 * setting is untouched and the probe means something. */
static int probe_ping_socket(const void *arg)
{
	int fd;

	if (unshare(CLONE_NEWNET) < 0)
		return 251;
	if (write_file("/proc/sys/net/ipv4/ping_group_range", "0 0") < 0)
		return 251;
	fd = socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP);
	if (fd < 0)
		return errno;
	close(fd);
	return 0;
}

/* Escape attempt: make a child cgroup of our own and move into it before connecting. */
static int probe_escape_connect(const void *arg)
{
	if (join_cgroup(cg_lock_sub) < 0)
		return 252;
	return probe_connect(arg);
}

struct unix_target {
	const char *path;
	bool junk;	/* "path\0junk" with the full sockaddr length */
};

static int probe_unix(const void *arg)
{
	const struct unix_target *t = arg;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	socklen_t len;
	int fd = socket(AF_UNIX, SOCK_STREAM, 0), ret = 0;

	if (fd < 0)
		return errno;
	strncpy(sa.sun_path, t->path, sizeof(sa.sun_path) - 1);
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(t->path) + 1);
	if (t->junk) {
		size_t n = strlen(t->path) + 1;

		memcpy(sa.sun_path + n, "junk", 4);
		len = sizeof(sa);
	}
	if (connect(fd, (struct sockaddr *)&sa, len) < 0)
		ret = errno;
	close(fd);
	return ret;
}

/* ---- event checks ------------------------------------------------------------------------ */

/* The refusal was audited with the right process, cgroup, hook and destination. */
static void check_event(pid_t pid, const char *cg, const char *comm, unsigned hook,
			unsigned reason, const char *dst, uint16_t dport)
{
	const struct warden_event *ev = wait_event(base, pid);
	uint64_t id = 0;
	cJSON *j;

	CU_ASSERT_PTR_NOT_NULL_FATAL(ev);
	CU_ASSERT_EQUAL(cgroup_id(cg, &id), 0);
	CU_ASSERT_EQUAL(ev->cgroup_id, id);
	CU_ASSERT_EQUAL(ev->tgid, (uint32_t)pid);
	CU_ASSERT_STRING_EQUAL(ev->comm, comm);
	CU_ASSERT_EQUAL(ev->hook, hook);
	CU_ASSERT_EQUAL(ev->reason, reason);
	CU_ASSERT_EQUAL(ev->uid, getuid());
	j = enforcer_event_json(E, ev);
	CU_ASSERT_PTR_NOT_NULL_FATAL(j);
	CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(cJSON_GetObjectItem(j, "cgroup")), cg);
	CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(cJSON_GetObjectItem(j, "comm")), comm);
	CU_ASSERT_EQUAL(cJSON_GetNumberValue(cJSON_GetObjectItem(j, "pid")), pid);
	if (dst) {
		CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(cJSON_GetObjectItem(j, "dst")), dst);
		CU_ASSERT_EQUAL(cJSON_GetNumberValue(cJSON_GetObjectItem(j, "dport")), dport);
	}
	cJSON_Delete(j);
}

/* Run in cg, expect EPERM and an audit event from cgroup ev_cg. */
#define REFUSED_EV(cg, ev_cg, comm, fn, arg, hook, reason, dst, dport) do {		\
	pid_t pid_ = 0;									\
	int r_ = run_in(cg, comm, fn, arg, &pid_);					\
	CU_ASSERT_EQUAL(r_, EPERM);							\
	if (r_ == EPERM)								\
		check_event(pid_, ev_cg, comm, hook, reason, dst, dport);		\
} while (0)
#define REFUSED(cg, ...) REFUSED_EV(cg, cg, __VA_ARGS__)

#define ALLOWED(cg, comm, fn, arg) CU_ASSERT_EQUAL(run_in(cg, comm, fn, arg, NULL), 0)

/* ---- tests ------------------------------------------------------------------------------- */

static void test_refused_protect(void)
{
	/* Each refused to the target's port, audited with the hook and the destination. */
	const struct {
		const char *comm;
		probe_fn fn;
		const struct target *t;
		unsigned hook;
		const char *dst;
	} cases[] = {
		{ "wk-connect4", probe_connect, &up4, WARDEN_HOOK_CONNECT4, "127.0.0.1" },
		{ "wk-connect6", probe_connect, &up6, WARDEN_HOOK_CONNECT6, "::1" },
		{ "wk-mapped", probe_connect, &up_mapped, WARDEN_HOOK_CONNECT6, "127.0.0.1" },
		{ "wk-any", probe_connect, &up_any, WARDEN_HOOK_CONNECT4, "0.0.0.0" },
		{ "wk-udp4", probe_sendto, &udp4, WARDEN_HOOK_SENDMSG4, "127.0.0.1" },
		/* A v6 socket sending to a v4-mapped address runs sendmsg4. */
		{ "wk-udpmapped", probe_sendto, &udp_mapped, WARDEN_HOOK_SENDMSG4, "127.0.0.1" },
		{ "wk-udpconn", probe_udp_connect_send, &udp4, WARDEN_HOOK_CONNECT4, "127.0.0.1" },
		{ "wk-tfo", probe_fastopen, &up4, WARDEN_HOOK_CONNECT4, "127.0.0.1" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		REFUSED(cg_prot, cases[i].comm, cases[i].fn, cases[i].t, cases[i].hook,
			WARDEN_REASON_PROTECTED, cases[i].dst, *cases[i].t->port);
}

static void test_refused_io_uring(void)
{
	int r = run_in(cg_plain, "wk-uring-ok", probe_uring_connect, &up4, NULL);

	if (r == 250) {
		printf("\n  SKIP io_uring connect: io_uring unavailable (io_uring_setup failed; "
		       "kernel.io_uring_disabled?)\n");
		return;
	}
	CU_ASSERT_EQUAL(r, 0);	/* the probe itself works outside enrolled cgroups */
	REFUSED(cg_prot, "wk-uring", probe_uring_connect, &up4, WARDEN_HOOK_CONNECT4,
		WARDEN_REASON_PROTECTED, "127.0.0.1", port_up4);
}

static void test_refused_sockets(void)
{
	int r;

	ALLOWED(cg_plain, "wk-raw-ok", probe_raw_socket, NULL);
	REFUSED(cg_prot, "wk-raw", probe_raw_socket, NULL, WARDEN_HOOK_SOCK_CREATE,
		WARDEN_REASON_RAW_SOCKET, NULL, 0);
	r = run_in(cg_plain, "wk-ping-ok", probe_ping_socket, NULL, NULL);
	if (r == 251) {
		printf("\n  SKIP ping socket: cannot set ping_group_range in a private netns\n");
		return;
	}
	CU_ASSERT_EQUAL(r, 0);
	REFUSED(cg_lock, "wk-ping", probe_ping_socket, NULL, WARDEN_HOOK_SOCK_CREATE,
		WARDEN_REASON_PING_SOCKET, NULL, 0);
}

static void test_refused_after_escape(void)
{
	/* The event names the child cgroup the process moved into, and the enrolled parent. */
	REFUSED_EV(cg_lock, cg_lock_sub, "wk-escape", probe_escape_connect, &up4,
		   WARDEN_HOOK_CONNECT4, WARDEN_REASON_LOCKDOWN, "127.0.0.1", port_up4);
	{
		uint64_t lock_id = 0;

		CU_ASSERT(cgroup_id(cg_lock, &lock_id) == 0);
		CU_ASSERT(nevents > 0 && events[nevents - 1].enrolled_id == lock_id);
	}
}

/* Nesting cgroups deeper than the levels the fast walk covers does not escape: a task 33
 * levels down in a lockdown cgroup is still refused. */
static void test_refused_when_nested_deep(void)
{
	char path[640];
	size_t len;
	int depth = 0;

	snprintf(path, sizeof(path), "%s", cg_lock);
	len = strlen(path);
	while (depth < 31 && len + 4 < sizeof(path)) {
		len += (size_t)snprintf(path + len, sizeof(path) - len, "/n%d", depth % 10);
		if (mkdir(path, 0755) < 0)
			break;
		depth++;
	}
	CU_ASSERT_EQUAL(depth, 31);
	if (depth == 31)
		REFUSED(path, "wk-deep", probe_connect, &other4, WARDEN_HOOK_CONNECT4,
			WARDEN_REASON_LOCKDOWN, "127.0.0.1", port_other);
	for (; depth > 0; depth--) {
		rmdir(path);
		*strrchr(path, '/') = '\0';
	}
}

static void test_unix(void)
{
	struct unix_target t = { unix_path, false }, junk = { unix_path, true };

	if (!unix_supported) {
		printf("\n  SKIP unix socket: %s\n", unix_skip);
		return;
	}
	ALLOWED(cg_plain, "wk-unix-ok", probe_unix, &t);
	REFUSED(cg_prot, "wk-unix", probe_unix, &t, WARDEN_HOOK_CONNECT_UNIX,
		WARDEN_REASON_UNIX_PATH, NULL, 0);
	REFUSED(cg_lock, "wk-unixjunk", probe_unix, &junk, WARDEN_HOOK_CONNECT_UNIX,
		WARDEN_REASON_UNIX_PATH, NULL, 0);
}

static void test_allowed(void)
{
	/* The sidecar endpoints, from both modes. */
	ALLOWED(cg_lock, "wk-side4", probe_connect, &side4);
	ALLOWED(cg_lock, "wk-side6", probe_connect, &side6);
	ALLOWED(cg_lock, "wk-sidemap", probe_connect, &side_mapped);
	ALLOWED(cg_prot, "wk-side4p", probe_connect, &side4);
	/* The allowlist in lockdown; anything unprotected in protect mode. */
	ALLOWED(cg_lock, "wk-allow", probe_connect, &allow4);
	ALLOWED(cg_prot, "wk-other", probe_connect, &other4);
	/* Lockdown refuses what is neither sidecar nor allowlisted. */
	REFUSED(cg_lock, "wk-lockdown", probe_connect, &other4, WARDEN_HOOK_CONNECT4,
		WARDEN_REASON_LOCKDOWN, "127.0.0.1", port_other);
	/* Unenrolled and exempt cgroups reach the protected upstream. */
	ALLOWED(cg_plain, "wk-plain", probe_connect, &up4);
	ALLOWED(cg_exempt, "wk-exempt", probe_connect, &up4);
}

/* ---- host rules (exact maps) and prefix rules (tries) together -------------------------- */

/* Add a rule through the dest API to learn its id (what an event must name). */
static uint32_t rule(bool protect, const char *spec)
{
	struct enforcer_dest d;
	uint32_t id = 0;

	CU_ASSERT_FATAL(enforcer_dest_parse(spec, &d) == 0);
	if (protect) {
		CU_ASSERT_FATAL(enforcer_protect_dest(E, &d, &id) == 0);
	} else {
		CU_ASSERT_FATAL(enforcer_allow(E, spec) == 0);
	}
	return id;
}

/* Refused from cg with an event naming rule_id (0: a lockdown default) and cg as the
 * deciding enrolled cgroup (the tests enrol the cgroups they run in). */
static void refused_by(const char *cg, const char *comm, const struct target *t, unsigned hook,
		       unsigned reason, uint32_t rule_id)
{
	pid_t pid = 0;
	int r = run_in(cg, comm, probe_connect, t, &pid);
	const struct warden_event *ev;
	uint64_t id = 0;

	CU_ASSERT_EQUAL(r, EPERM);
	if (r != EPERM)
		return;
	ev = wait_event(base, pid);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ev);
	CU_ASSERT_EQUAL(ev->hook, hook);
	CU_ASSERT_EQUAL(ev->reason, reason);
	CU_ASSERT_EQUAL(ev->rule_id, rule_id);
	CU_ASSERT(cgroup_id(cg, &id) == 0 && ev->enrolled_id == id && ev->cgroup_id == id);
}

/* Host rules live in the exact maps and prefixes in the tries; the programs must combine them
 * exactly as one longest-prefix policy did: in protect mode any allow rule (host or prefix)
 * carves an exception out of any protect rule, and the event names the most specific protect
 * rule (port-specific before any-port, host before prefix); in lockdown only allow rules
 * matter, wherever they live. */
static void test_exact_and_prefix(void)
{
	char spec[64], pfx_port[64], host_port[64];
	uint32_t pfx_id, host_id, any_id;
	uint16_t port6 = 0;
	int srv6;

	snprintf(pfx_port, sizeof(pfx_port), "127.0.0.0/8:%u", port_other);
	snprintf(host_port, sizeof(host_port), "127.0.0.1:%u", port_other);

	/* Protect mode, a protected prefix:port; a host allow inside it is an exception. */
	pfx_id = rule(true, pfx_port);
	refused_by(cg_prot, "wk-pfx", &other4, WARDEN_HOOK_CONNECT4, WARDEN_REASON_PROTECTED,
		   pfx_id);
	refused_by(cg_prot, "wk-pfxmap", &other_mapped, WARDEN_HOOK_CONNECT6,
		   WARDEN_REASON_PROTECTED, pfx_id);
	rule(false, host_port);
	ALLOWED(cg_prot, "wk-hostallow", probe_connect, &other4);
	ALLOWED(cg_prot, "wk-hostallowm", probe_connect, &other_mapped);
	CU_ASSERT(enforcer_disallow(E, host_port) == 0);
	/* A protected host inside the protected prefix: the event names the host rule. */
	host_id = rule(true, host_port);
	CU_ASSERT(host_id != pfx_id);
	refused_by(cg_prot, "wk-both", &other4, WARDEN_HOOK_CONNECT4, WARDEN_REASON_PROTECTED,
		   host_id);
	CU_ASSERT(enforcer_unprotect(E, host_port) == 0);
	refused_by(cg_prot, "wk-pfxagain", &other4, WARDEN_HOOK_CONNECT4, WARDEN_REASON_PROTECTED,
		   pfx_id);
	/* Lockdown ignores protect rules: an allowed prefix:port lets the host through. */
	rule(false, pfx_port);
	ALLOWED(cg_lock, "wk-lockpfx", probe_connect, &other4);
	ALLOWED(cg_prot, "wk-protpfx", probe_connect, &other4);	/* allow beats protect */
	refused_by(cg_lock, "wk-lockother", &up4, WARDEN_HOOK_CONNECT4, WARDEN_REASON_LOCKDOWN, 0);
	CU_ASSERT(enforcer_disallow(E, pfx_port) == 0);
	CU_ASSERT(enforcer_unprotect(E, pfx_port) == 0);
	ALLOWED(cg_prot, "wk-clean", probe_connect, &other4);
	refused_by(cg_lock, "wk-lockclean", &other4, WARDEN_HOOK_CONNECT4, WARDEN_REASON_LOCKDOWN,
		   0);

	/* Any-port rules: a protected /24 and an allowed host (any port) inside it. */
	pfx_id = rule(true, "127.0.0.0/24");
	refused_by(cg_prot, "wk-pfxany", &other4, WARDEN_HOOK_CONNECT4, WARDEN_REASON_PROTECTED,
		   pfx_id);
	rule(false, "127.0.0.1");
	ALLOWED(cg_prot, "wk-hostany", probe_connect, &other4);
	ALLOWED(cg_lock, "wk-lockhostany", probe_connect, &up4);
	CU_ASSERT(enforcer_disallow(E, "127.0.0.1") == 0);
	/* A protected host (any port) beats the prefix in the event; a port-specific protected
	 * prefix beats both (port first, then length). */
	any_id = rule(true, "127.0.0.1");
	refused_by(cg_prot, "wk-hostanyp", &other4, WARDEN_HOOK_CONNECT4, WARDEN_REASON_PROTECTED,
		   any_id);
	snprintf(spec, sizeof(spec), "127.0.0.0/16:%u", port_other);
	host_id = rule(true, spec);
	refused_by(cg_prot, "wk-portfirst", &other4, WARDEN_HOOK_CONNECT4, WARDEN_REASON_PROTECTED,
		   host_id);
	/* An allowed prefix:port is an exception to the protected host (any port); other ports
	 * of that host stay refused (port_up4 by its own host:port rule from setup: the most
	 * specific one). */
	rule(false, pfx_port);
	ALLOWED(cg_prot, "wk-pfxexc", probe_connect, &other4);
	snprintf(host_port, sizeof(host_port), "127.0.0.1:%u", port_up4);
	refused_by(cg_prot, "wk-pfxexc2", &up4, WARDEN_HOOK_CONNECT4, WARDEN_REASON_PROTECTED,
		   rule(true, host_port));	/* re-adding keeps the id */
	CU_ASSERT(enforcer_disallow(E, pfx_port) == 0);
	CU_ASSERT(enforcer_unprotect(E, spec) == 0);
	CU_ASSERT(enforcer_unprotect(E, "127.0.0.1") == 0);
	CU_ASSERT(enforcer_unprotect(E, "127.0.0.0/24") == 0);
	ALLOWED(cg_prot, "wk-clean2", probe_connect, &other4);

	/* IPv6: a protected prefix:port, a host allow inside it. */
	srv6 = ktest_listen(AF_INET6, SOCK_STREAM, "::1", 0, &port6);
	CU_ASSERT_FATAL(srv6 >= 0);
	{
		struct target t6 = { AF_INET6, SOCK_STREAM, "::1", &port6 };

		snprintf(spec, sizeof(spec), "[::/120]:%u", port6);
		pfx_id = rule(true, spec);
		refused_by(cg_prot, "wk-pfx6", &t6, WARDEN_HOOK_CONNECT6,
			   WARDEN_REASON_PROTECTED, pfx_id);
		snprintf(host_port, sizeof(host_port), "[::1]:%u", port6);
		rule(false, host_port);
		ALLOWED(cg_prot, "wk-host6", probe_connect, &t6);
		ALLOWED(cg_lock, "wk-lockhost6", probe_connect, &t6);
		CU_ASSERT(enforcer_disallow(E, host_port) == 0);
		refused_by(cg_lock, "wk-lock6", &t6, WARDEN_HOOK_CONNECT6, WARDEN_REASON_LOCKDOWN,
			   0);
		CU_ASSERT(enforcer_unprotect(E, spec) == 0);
		ALLOWED(cg_prot, "wk-clean6", probe_connect, &t6);
	}
	close(srv6);
}

/* Enrolment changes take effect at once for a cgroup whose decisions the programs have
 * cached (per-CPU cache keyed by cgroup and epoch). */
static void test_cached_decisions_follow_changes(void)
{
	char spec[64];
	uint32_t up_id;

	snprintf(spec, sizeof(spec), "127.0.0.1:%u", port_up4);
	up_id = rule(true, spec);	/* exists since setup: its id */
	/* Several runs so that both CPUs have a cached "not enrolled" for cg_plain. */
	for (int i = 0; i < 4; i++)
		ALLOWED(cg_plain, "wk-cache-free", probe_connect, &up4);
	CU_ASSERT_FATAL(enforcer_enroll(E, cg_plain, WARDEN_MODE_PROTECT) == 0);
	for (int i = 0; i < 4; i++) {
		refused_by(cg_plain, "wk-cache-prot", &up4, WARDEN_HOOK_CONNECT4,
			   WARDEN_REASON_PROTECTED, up_id);
		ALLOWED(cg_plain, "wk-cache-oth", probe_connect, &other4);
	}
	CU_ASSERT_FATAL(enforcer_enroll(E, cg_plain, WARDEN_MODE_LOCKDOWN) == 0);
	for (int i = 0; i < 4; i++)
		refused_by(cg_plain, "wk-cache-lock", &other4, WARDEN_HOOK_CONNECT4,
			   WARDEN_REASON_LOCKDOWN, 0);
	CU_ASSERT_FATAL(enforcer_exempt(E, cg_plain) == 0);
	for (int i = 0; i < 4; i++)
		ALLOWED(cg_plain, "wk-cache-ex", probe_connect, &up4);
	CU_ASSERT_FATAL(enforcer_enroll(E, cg_plain, WARDEN_MODE_PROTECT) == 0);
	refused_by(cg_plain, "wk-cache-back", &up4, WARDEN_HOOK_CONNECT4, WARDEN_REASON_PROTECTED,
		   up_id);
	CU_ASSERT_FATAL(enforcer_unenroll(E, cg_plain) == 0);
	for (int i = 0; i < 4; i++)
		ALLOWED(cg_plain, "wk-cache-gone", probe_connect, &up4);
}

/* The same decisions with the calling cgroup found through helper calls (what kernels that
 * refuse BTF access to the current task get), from a second enforcer in its own pin dir:
 * both are attached at the root, the first one does not enrol cg_plain. */
static void test_helper_cgroup_lookups(void)
{
	struct enforcer_opts o = { .cgroup_root = root, .cgroup_helpers = true };
	struct enforcer_status st;
	struct enforcer *e2 = NULL;
	char dir[160], spec[64], sub[700];

	CU_ASSERT(enforcer_status(E, &st) == 0);
	printf("\n  cgroup lookups of the main enforcer: %s\n",
	       st.task_btf ? "BTF (fast path)" : "helper calls (kernel refused BTF)");
	snprintf(dir, sizeof(dir), "%s-helpers", pin_dir);
	snprintf(sub, sizeof(sub), "%s/sub", cg_plain);
	o.pin_dir = dir;
	CU_ASSERT_FATAL(enforcer_open(&o, &e2) == 0);
	CU_ASSERT(enforcer_status(e2, &st) == 0 && !st.task_btf);
	/* Its events (filled by helper calls on this path) land in the same list. */
	CU_ASSERT_FATAL(enforcer_events_attach(e2, base, on_event, NULL) == 0);
	CU_ASSERT_FATAL(mkdir(sub, 0755) == 0);
	snprintf(spec, sizeof(spec), "127.0.0.1:%u", port_up4);
	CU_ASSERT(enforcer_protect(e2, spec) == 0);
	for (int i = 0; i < 4; i++)
		ALLOWED(sub, "wk-h-free", probe_connect, &up4);
	CU_ASSERT(enforcer_enroll(e2, cg_plain, WARDEN_MODE_PROTECT) == 0);
	for (int i = 0; i < 4; i++) {
		REFUSED(sub, "wk-h-prot", probe_connect, &up4, WARDEN_HOOK_CONNECT4,
			WARDEN_REASON_PROTECTED, "127.0.0.1", port_up4);
		ALLOWED(sub, "wk-h-other", probe_connect, &other4);
	}
	CU_ASSERT(enforcer_enroll(e2, cg_plain, WARDEN_MODE_LOCKDOWN) == 0);
	REFUSED(sub, "wk-h-lock", probe_connect, &other4, WARDEN_HOOK_CONNECT4,
		WARDEN_REASON_LOCKDOWN, "127.0.0.1", port_other);
	CU_ASSERT(enforcer_exempt(e2, sub) == 0);
	ALLOWED(sub, "wk-h-exempt", probe_connect, &other4);
	CU_ASSERT_EQUAL(run_in(cg_plain, "wk-h-parent", probe_connect, &other4, NULL), EPERM);
	CU_ASSERT(enforcer_unenroll(e2, sub) == 0);
	CU_ASSERT(enforcer_unenroll(e2, cg_plain) == 0);
	ALLOWED(sub, "wk-h-gone", probe_connect, &up4);
	enforcer_close(e2);
	CU_ASSERT(enforcer_destroy_pins(dir) == 0);
	rmdir(sub);
}

static void test_errno_configurable(void)
{
	CU_ASSERT_EQUAL_FATAL(enforcer_set_errno(E, ECONNREFUSED), 0);
	CU_ASSERT_EQUAL(run_in(cg_prot, "wk-refused", probe_connect, &up4, NULL), ECONNREFUSED);
	CU_ASSERT_EQUAL_FATAL(enforcer_set_errno(E, EPERM), 0);
	CU_ASSERT_EQUAL(run_in(cg_prot, "wk-eperm", probe_connect, &up4, NULL), EPERM);
	CU_ASSERT_EQUAL(enforcer_set_errno(E, 12345), -EINVAL);
}

static void test_root_refused(void)
{
	CU_ASSERT_EQUAL(enforcer_enroll(E, root, WARDEN_MODE_LOCKDOWN), -EINVAL);
	CU_ASSERT_EQUAL(enforcer_enroll(E, "/", WARDEN_MODE_LOCKDOWN), -EINVAL);
	CU_ASSERT_EQUAL(enforcer_enroll(E, "/tmp", WARDEN_MODE_LOCKDOWN), -EINVAL);
}

/* A removed container's cgroup: its enrolment goes, every other one stays (and still works). */
static void test_prune_gone(void)
{
	struct enforcer_status before, after;
	char gone[600];
	uint64_t id = 0, ids[4] = { 0 };
	size_t n = 99;

	snprintf(gone, sizeof(gone), "%s/removed-container", cg_base);
	CU_ASSERT_EQUAL_FATAL(mkdir(gone, 0755), 0);
	CU_ASSERT_EQUAL_FATAL(cgroup_id(gone, &id), 0);
	CU_ASSERT_EQUAL(cgroup_id_alive(root, id), 1);
	CU_ASSERT_EQUAL_FATAL(enforcer_enroll(E, gone, WARDEN_MODE_PROTECT), 0);
	CU_ASSERT_EQUAL(enforcer_prune(E, &n, ids, 4), 0);
	CU_ASSERT_EQUAL(n, 0);			/* alive: kept */
	CU_ASSERT_EQUAL_FATAL(enforcer_status(E, &before), 0);
	CU_ASSERT_EQUAL(rmdir(gone), 0);
	CU_ASSERT_EQUAL(cgroup_id_alive(root, id), 0);
	CU_ASSERT_EQUAL(enforcer_prune(E, &n, ids, 4), 0);
	CU_ASSERT_EQUAL(n, 1);
	CU_ASSERT_EQUAL(ids[0], id);
	CU_ASSERT_EQUAL_FATAL(enforcer_status(E, &after), 0);
	CU_ASSERT_EQUAL(after.nenrolled, before.nenrolled - 1);
	CU_ASSERT_EQUAL(enforcer_unenroll_id(E, id), -ENOENT);
	CU_ASSERT_EQUAL(run_in(cg_prot, "wk-after-prune", probe_connect, &up4, NULL), EPERM);
}

static void test_counters(void)
{
	struct enforcer_counters c;

	ktest_check_counters(E, &c, (const struct ktest_count[]){
		KTEST_AT_LEAST(WARDEN_HOOK_CONNECT4, denied, 3),
		KTEST_AT_LEAST(WARDEN_HOOK_CONNECT4, allowed, 2),
		KTEST_AT_LEAST(WARDEN_HOOK_SOCK_CREATE, denied, 1), { 0 } });
	CU_ASSERT_EQUAL(c.total.events_dropped, 0);
}

/* Links that belong to the enforcer e: cgroup links whose program uses e's enrolled map. */
static int count_cgroup_link(const struct bpf_link_info *li, void *arg)
{
	int *per_type = arg;

	if (li->cgroup.attach_type >= 64)
		return 0;
	per_type[li->cgroup.attach_type]++;
	return 1;
}

/* The cgroup links using the enforcer's map, and how many of each attach type in per_type. */
static int count_links(struct enforcer *e, int per_type[64])
{
	memset(per_type, 0, 64 * sizeof(int));
	return ktest_count_links(e, BPF_LINK_TYPE_CGROUP, count_cgroup_link, per_type);
}

/* kill -9 of the process holding the enforcer: still refused; re-open adopts; exactly one
 * attachment per hook; destroying the pins ends enforcement. */
static void test_kill9_and_readopt(void)
{
	char dir2[160], cg_k[600], c = 0;
	struct enforcer_opts o = { 0 };
	struct enforcer_status st;
	struct enforcer *e2 = NULL;
	int fds[2], per_type[64], status, expect;
	pid_t holder;

	snprintf(dir2, sizeof(dir2), "%s-k", pin_dir);
	snprintf(cg_k, sizeof(cg_k), "%s/killed", cg_base);
	CU_ASSERT_EQUAL_FATAL(mkdir(cg_k, 0755), 0);
	CU_ASSERT_EQUAL_FATAL(pipe(fds), 0);
	holder = fork();
	CU_ASSERT_FATAL(holder >= 0);
	if (holder == 0) {
		struct enforcer_opts ho = { .pin_dir = dir2, .cgroup_root = root };
		struct enforcer *h = NULL;
		char port[64];

		snprintf(port, sizeof(port), "127.0.0.1:%u", port_up4);
		if (enforcer_open(&ho, &h) < 0 || enforcer_enroll(h, cg_k, WARDEN_MODE_PROTECT) < 0 ||
		    enforcer_protect(h, port) < 0)
			_exit(1);
		if (write(fds[1], "r", 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	close(fds[1]);
	CU_ASSERT_EQUAL(read(fds[0], &c, 1), 1);
	close(fds[0]);
	kill(holder, SIGKILL);
	waitpid(holder, &status, 0);
	CU_ASSERT_EQUAL_FATAL(c, 'r');

	CU_ASSERT_EQUAL(run_in(cg_k, "wk-afterkill", probe_connect, &up4, NULL), EPERM);

	o.pin_dir = dir2;
	o.cgroup_root = root;
	CU_ASSERT_EQUAL_FATAL(enforcer_open(&o, &e2), 0);
	CU_ASSERT_EQUAL(enforcer_status(e2, &st), 0);
	CU_ASSERT_TRUE(st.adopted);
	CU_ASSERT_EQUAL(st.nenrolled, 1);
	/* cgroup links only: lsm_socket is a tracing link (tests/kernel/ktest_lsm.c); the
	 * getpeername4/6 and sockops programs read no enrolment, so count_links does not see
	 * them */
	expect = WARDEN_HOOK_MAX - 4 - !st.hooks[WARDEN_HOOK_CONNECT_UNIX].attached;
	CU_ASSERT_EQUAL(count_links(e2, per_type), expect);
	CU_ASSERT_EQUAL(per_type[BPF_CGROUP_INET4_CONNECT], 1);
	CU_ASSERT_EQUAL(per_type[BPF_CGROUP_INET6_CONNECT], 1);
	CU_ASSERT_EQUAL(per_type[BPF_CGROUP_UDP4_SENDMSG], 1);
	CU_ASSERT_EQUAL(per_type[BPF_CGROUP_UDP6_SENDMSG], 1);
	CU_ASSERT_EQUAL(per_type[BPF_CGROUP_INET_SOCK_CREATE], 1);
	/* The policy survived in the pinned maps and the swapped programs enforce it. */
	CU_ASSERT_EQUAL(run_in(cg_k, "wk-readopt", probe_connect, &up4, NULL), EPERM);
	enforcer_close(e2);
	/* Opening again still does not add attachments. */
	e2 = NULL;
	CU_ASSERT_EQUAL_FATAL(enforcer_open(&o, &e2), 0);
	CU_ASSERT_EQUAL(count_links(e2, per_type), expect);
	enforcer_close(e2);
	CU_ASSERT_EQUAL(run_in(cg_k, "wk-afterclose", probe_connect, &up4, NULL), EPERM);

	CU_ASSERT_EQUAL(enforcer_destroy_pins(dir2), 0);
	CU_ASSERT_EQUAL(run_in(cg_k, "wk-uninstalled", probe_connect, &up4, NULL), 0);
	CU_ASSERT_EQUAL(rmdir(cg_k), 0);
}

static void test_adopt_mode(void)
{
	struct enforcer_opts o = { .pin_dir = pin_dir, .cgroup_root = root,
				   .mode = ENFORCER_ADOPT };
	struct enforcer_opts none = { .pin_dir = "/sys/fs/bpf/mcpwarden-absent-test",
				      .cgroup_root = root, .mode = ENFORCER_ADOPT };
	struct enforcer_status st;
	struct enforcer *a = NULL;

	CU_ASSERT_EQUAL(enforcer_open(&none, &a), -ENOENT);
	CU_ASSERT_EQUAL_FATAL(enforcer_open(&o, &a), 0);
	CU_ASSERT_EQUAL(enforcer_status(a, &st), 0);
	CU_ASSERT_EQUAL(st.sidecar_port, port_side);
	CU_ASSERT_TRUE(st.hooks[WARDEN_HOOK_CONNECT4].attached);
	CU_ASSERT_TRUE(st.nenrolled >= 3);
	enforcer_close(a);
}

/* A hostname upstream is resolved off the loop and its addresses protected; freeing it with
 * unprotect removes only what it added. */
static void test_upstream_resolver(void)
{
	struct enforcer_upstream *u = NULL;

	CU_ASSERT_EQUAL(run_in(cg_prot, "wk-before", probe_connect, &other4, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(enforcer_upstream_protect(E, base, "localhost", port_other, 60000,
							&u), 0);
	for (int i = 0; i < 300 && enforcer_upstream_count(u) == 0; i++) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		usleep(10000);
	}
	CU_ASSERT_TRUE(enforcer_upstream_count(u) >= 1);
	REFUSED(cg_prot, "wk-resolved", probe_connect, &other4, WARDEN_HOOK_CONNECT4,
		WARDEN_REASON_PROTECTED, "127.0.0.1", port_other);
	enforcer_upstream_free(u, true);
	CU_ASSERT_EQUAL(run_in(cg_prot, "wk-after", probe_connect, &other4, NULL), 0);
}

/* ---- setup ------------------------------------------------------------------------------- */

static int setup(void)
{
	struct enforcer_status st;
	char spec[64];
	int ret;

	snprintf(pin_dir, sizeof(pin_dir), "/sys/fs/bpf/mcpwarden-test-%d", getpid());
	if (cgroup_detect_root(root, sizeof(root)) < 0)
		return -1;
	snprintf(cg_base, sizeof(cg_base), "%s/mcpwarden-ktest-%d", root, getpid());
	snprintf(cg_lock, sizeof(cg_lock), "%s/lockdown", cg_base);
	snprintf(cg_lock_sub, sizeof(cg_lock_sub), "%s/lockdown/sub", cg_base);
	snprintf(cg_exempt, sizeof(cg_exempt), "%s/lockdown/sidecar", cg_base);
	snprintf(cg_prot, sizeof(cg_prot), "%s/protect", cg_base);
	snprintf(cg_plain, sizeof(cg_plain), "%s/plain", cg_base);
	snprintf(unix_path, sizeof(unix_path), "/tmp/mcpwarden-ktest-%d.sock", getpid());
	if (mkdir(cg_base, 0755) < 0 || mkdir(cg_lock, 0755) < 0 || mkdir(cg_lock_sub, 0755) < 0 ||
	    mkdir(cg_exempt, 0755) < 0 || mkdir(cg_prot, 0755) < 0 || mkdir(cg_plain, 0755) < 0)
		return -1;
	srv_up4 = ktest_listen(AF_INET, SOCK_STREAM, "127.0.0.1", 0, &port_up4);
	srv_up6 = ktest_listen(AF_INET6, SOCK_STREAM, "::1", 0, &port_up6);
	srv_udp4 = ktest_listen(AF_INET, SOCK_DGRAM, "127.0.0.1", 0, &port_udp4);
	srv_allow = ktest_listen(AF_INET, SOCK_STREAM, "127.0.0.1", 0, &port_allow);
	srv_other = ktest_listen(AF_INET, SOCK_STREAM, "127.0.0.1", 0, &port_other);
	if (srv_up4 < 0 || srv_up6 < 0 || srv_udp4 < 0 || srv_allow < 0 || srv_other < 0 ||
	    ktest_listen_both(&srv_side4, &srv_side6, &port_side) < 0)
		return -1;
	srv_unix = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	{
		struct sockaddr_un sa = { .sun_family = AF_UNIX };

		strcpy(sa.sun_path, unix_path);
		if (srv_unix < 0 || bind(srv_unix, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
		    listen(srv_unix, 16) < 0)
			return -1;
	}

	if (ktest_open_enforcer(pin_dir, root, &E) < 0)
		return -1;
	base = event_base_new();
	if (!base || enforcer_events_attach(E, base, on_event, NULL) < 0)
		return -1;
	if (enforcer_status(E, &st) < 0)
		return -1;
	unix_supported = st.hooks[WARDEN_HOOK_CONNECT_UNIX].attached;
	snprintf(unix_skip, sizeof(unix_skip), "%s", st.unix_unsupported_reason);

	snprintf(spec, sizeof(spec), "127.0.0.1:%u", port_up4);
	ret = enforcer_protect(E, spec);
	snprintf(spec, sizeof(spec), "[::1]:%u", port_up6);
	ret = ret ?: enforcer_protect(E, spec);
	snprintf(spec, sizeof(spec), "127.0.0.1/32:%u", port_udp4);
	ret = ret ?: enforcer_protect(E, spec);
	snprintf(spec, sizeof(spec), "127.0.0.1:%u", port_allow);
	ret = ret ?: enforcer_allow(E, spec);
	ret = ret ?: enforcer_set_sidecar(E, port_side);
	ret = ret ?: enforcer_enroll(E, cg_lock, WARDEN_MODE_LOCKDOWN);
	ret = ret ?: enforcer_enroll(E, cg_prot, WARDEN_MODE_PROTECT);
	ret = ret ?: enforcer_exempt(E, cg_exempt);
	if (ret == 0 && unix_supported)
		ret = enforcer_protect_unix(E, unix_path);
	return ret < 0 ? -1 : 0;
}

static int teardown(void)
{
	int fds[] = { srv_up4, srv_up6, srv_udp4, srv_side4, srv_side6, srv_allow, srv_other,
		      srv_unix };

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (fds[i] >= 0)
			close(fds[i]);
	unlink(unix_path);
	enforcer_close(E);      /* NULL when setup failed before it: a no-op */
	if (base)
		event_base_free(base);
	enforcer_destroy_pins(pin_dir);
	ktest_rmdirs(cg_lock_sub, cg_exempt, cg_lock, cg_prot, cg_plain, cg_base, NULL);
	return 0;
}

KTEST_MAIN("ktest_enforcer", "enforcer (real kernel)", setup, teardown,
	{ "refused in protect mode: v4, v6, v4-mapped, 0.0.0.0, UDP, TFO", test_refused_protect },
	{ "refused: io_uring connect", test_refused_io_uring },
	{ "refused: raw and ping sockets", test_refused_sockets },
	{ "refused after moving into a child cgroup", test_refused_after_escape },
	{ "refused when nested deeper than the fast walk", test_refused_when_nested_deep },
	{ "unix socket to a protected path", test_unix },
	{ "allowed: sidecar, allowlist, unenrolled, exempt", test_allowed },
	{ "host rules and prefix rules combine as one policy", test_exact_and_prefix },
	{ "cached decisions follow enrolment changes", test_cached_decisions_follow_changes },
	{ "cgroup lookups through helper calls (older kernels)", test_helper_cgroup_lookups },
	{ "deny errno is configurable", test_errno_configurable },
	{ "enrolling the root is refused", test_root_refused },
	{ "enrolments of removed cgroups are pruned", test_prune_gone },
	{ "counters", test_counters },
	{ "adopt-only open", test_adopt_mode },
	{ "upstream hostnames resolved off the loop", test_upstream_resolver },
	{ "kill -9 keeps enforcing; re-open adopts; one link per hook", test_kill9_and_readopt })
