/* Transparent redirect on the real kernel (root, real cgroups): a TCP connect from a cgroup
 * enrolled with redirect to a redirectable protected destination (a plain-HTTP upstream) lands
 * on the redirect listener instead; the client's getpeername() shows the address it asked for;
 * the listener side finds the original destination through the client socket's cookie
 * (sock_diag) — over IPv4, IPv6 and v4-mapped. A protected destination that is not
 * redirectable (an HTTPS upstream) stays refused, and so does everything for a cgroup enrolled
 * without redirect. The daemon's guard restarting on the same pins (a reload) keeps the
 * redirect port: it never goes through 0, which would refuse redirected connects. Cgroups and
 * pins carry this pid and are removed at the end. */
#include <CUnit/Basic.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <signal.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <event2/event.h>

#include "base/alloc.h"
#include "base/log.h"
#include "enforce/cgroup.h"
#include "base/config.h"
#include "enforce/enforcer.h"
#include "enforce/guard.h"
#include "enforce/peer_cgroup.h"
#include "enforce/peer_fast.h"
#include "enforce/pins.h"
#include "cunit_main.h"
#include "ktest_util.h"

static struct enforcer *E;
static struct event_base *base;
static struct enforcer_upstream *U4, *U6;
static char pin_dir[128], root[256], cg_base[KTEST_BASE_LEN], cg_red[KTEST_CG_LEN],
	cg_plain[KTEST_CG_LEN], cg_lock[KTEST_CG_LEN], cg_free[KTEST_CG_LEN];
static int up4 = -1, up6 = -1, tls4 = -1, red4 = -1, red6 = -1;
static uint16_t port_up4, port_up6, port_tls4, port_red;

/* "a.b.c.d:port" or "[v6]:port" */
static void addr_text(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN] = "?";

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &s->sin_addr, a, sizeof(a));
		snprintf(buf, len, "%s:%u", a, ntohs(s->sin_port));
	} else {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;

		inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof(a));
		snprintf(buf, len, "[%s]:%u", a, ntohs(s6->sin6_port));
	}
}

/* In the child: connect, write what getpeername() says and a newline, hold the connection
 * until the other end closes. 0, or the errno of a failed call. */
static int probe_dial(const void *arg)
{
	struct sockaddr_storage peer;
	socklen_t pl = sizeof(peer);
	char line[128], c;
	int fd = ktest_connect(arg);

	if (fd < 0)
		return -fd;
	if (getpeername(fd, (struct sockaddr *)&peer, &pl) < 0)
		return errno;
	addr_text(&peer, line, sizeof(line) - 1);
	strcat(line, "\n");
	if (write(fd, line, strlen(line)) < 0)
		return errno;
	while (read(fd, &c, 1) > 0)
		;
	return 0;
}

static pid_t spawn_dial(const char *cg, const struct ktest_dial *d)
{
	return ktest_spawn_in(cg, NULL, probe_dial, d, 200);
}

/* Accept on lfd within 2 s; -1 when nothing came. */
static int accept_within(int lfd, int ms)
{
	struct pollfd p = { .fd = lfd, .events = POLLIN };

	if (poll(&p, 1, ms) != 1)
		return -1;
	return accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
}

static void read_line(int fd, char *buf, size_t len)
{
	size_t n = 0;
	char c;

	while (n + 1 < len && read(fd, &c, 1) == 1 && c != '\n')
		buf[n++] = c;
	buf[n] = '\0';
}

/* A client in cg dials d; it must arrive on listener lfd (the redirect listener), see
 * want_peer from getpeername, and the cookie must give back d as the original destination. */
static void check_redirected(const char *cg, const struct ktest_dial *d, int lfd, const char *want_peer,
			     bool v4mapped)
{
	struct warden_redirect rv;
	uint64_t cgid = 0, cookie = 0, want_cg = 0;
	char line[128];
	pid_t p = spawn_dial(cg, d);
	int fd;

	CU_ASSERT_FATAL(p > 0);
	fd = accept_within(lfd, 2000);
	CU_ASSERT(fd >= 0);
	if (fd < 0) {
		kill(p, SIGKILL);
		printf("\n    child exit: %d\n", ktest_reap(p));
		return;
	}
	read_line(fd, line, sizeof(line));
	CU_ASSERT_STRING_EQUAL(line, want_peer);
	CU_ASSERT_EQUAL(peer_socket_lookup(fd, &cgid, &cookie), 0);
	CU_ASSERT_EQUAL(cgroup_id(cg, &want_cg), 0);
	CU_ASSERT_EQUAL(cgid, want_cg);
	CU_ASSERT(cookie != 0);
	CU_ASSERT_EQUAL_FATAL(enforcer_redirect_lookup(E, cookie, &rv), 0);
	CU_ASSERT_EQUAL(rv.cgroup_id, want_cg);
	/* The same answers from warden_conns, with no system call: the caller, the client
	 * socket, and where the connect was going. */
	{
		struct sockaddr_storage peer, me;
		socklen_t pl = sizeof(peer), ml = sizeof(me);
		struct peer_fast_hit hit;
		struct peer_fast_stats before, after;

		peer_fast_stats(&before);
		CU_ASSERT_EQUAL_FATAL(getpeername(fd, (struct sockaddr *)&peer, &pl), 0);
		CU_ASSERT_EQUAL_FATAL(getsockname(fd, (struct sockaddr *)&me, &ml), 0);
		CU_ASSERT_EQUAL_FATAL(peer_fast_lookup((struct sockaddr *)&peer,
						       (struct sockaddr *)&me, &hit), 0);
		peer_fast_stats(&after);
		CU_ASSERT_EQUAL(after.hits, before.hits + 1);
		CU_ASSERT_EQUAL(hit.cgroup_id, want_cg);
		CU_ASSERT_EQUAL(hit.cookie, cookie);
		CU_ASSERT_TRUE(hit.redirected);
		CU_ASSERT_EQUAL(memcmp(&hit.orig, &rv, sizeof(rv)), 0);
	}
	CU_ASSERT_EQUAL(ntohs(rv.port), d->port);
	CU_ASSERT_EQUAL(!!(rv.flags & WARDEN_EV_F_V4MAPPED), v4mapped);
	{
		struct sockaddr_storage orig;
		socklen_t ol;
		char text[128];

		CU_ASSERT_EQUAL(enforcer_redirect_sockaddr(&rv, &orig, &ol), 0);
		addr_text(&orig, text, sizeof(text));
		CU_ASSERT_STRING_EQUAL(text, want_peer);
	}
	close(fd);
	CU_ASSERT_EQUAL(ktest_reap(p), 0);
}

/* Nothing may have reached the real upstream listeners. */
static void check_upstreams_untouched(void)
{
	CU_ASSERT_EQUAL(accept_within(up4, 0), -1);
	CU_ASSERT_EQUAL(accept_within(up6, 0), -1);
	CU_ASSERT_EQUAL(accept_within(tls4, 0), -1);
}

/* A client in cg_red dialing addr:port (family) arrives on listener lfd and sees addr:port
 * from getpeername; the upstreams see nothing. */
static void redirected(int family, const char *addr, uint16_t port, int lfd, bool v4mapped)
{
	struct ktest_dial d = { family, addr, port };
	char want[64];

	if (family == AF_INET)
		snprintf(want, sizeof(want), "%s:%u", addr, port);
	else
		snprintf(want, sizeof(want), "[%s]:%u", addr, port);
	check_redirected(cg_red, &d, lfd, want, v4mapped);
	check_upstreams_untouched();
}

static void test_ipv4(void)
{
	redirected(AF_INET, "127.0.0.1", port_up4, red4, false);
}

static void test_ipv6(void)
{
	redirected(AF_INET6, "::1", port_up6, red6, false);
}

static void test_v4_mapped(void)
{
	redirected(AF_INET6, "::ffff:127.0.0.1", port_up4, red4, true);
}

/* Lockdown refuses everything but the sidecar and the allowlist; with redirect, a
 * redirectable upstream goes to the listener and anything else is still refused. */
static void test_lockdown(void)
{
	struct ktest_dial d = { AF_INET, "127.0.0.1", port_up4 };
	struct ktest_dial tls = { AF_INET, "127.0.0.1", port_tls4 };
	char want[64];

	snprintf(want, sizeof(want), "127.0.0.1:%u", port_up4);
	check_redirected(cg_lock, &d, red4, want, false);
	CU_ASSERT_EQUAL(run_in_cgroup(cg_lock, "kred-lock", probe_dial, &tls, 200, NULL), EPERM);
	check_upstreams_untouched();
}

/* An HTTPS upstream's address is protected but not redirectable: the sidecar cannot speak
 * TLS as that server, so the connect stays refused. */
static void test_https_refused(void)
{
	struct ktest_dial d = { AF_INET, "127.0.0.1", port_tls4 };

	CU_ASSERT_EQUAL(run_in_cgroup(cg_red, "kred-tls", probe_dial, &d, 200, NULL), EPERM);
	CU_ASSERT_EQUAL(accept_within(red4, 100), -1);
	check_upstreams_untouched();
}

/* Enrolled without redirect: today's behaviour, refused. */
static void test_redirect_off(void)
{
	struct ktest_dial d4 = { AF_INET, "127.0.0.1", port_up4 }, d6 = { AF_INET6, "::1", port_up6 };

	CU_ASSERT_EQUAL(run_in_cgroup(cg_plain, "kred-plain", probe_dial, &d4, 200, NULL), EPERM);
	CU_ASSERT_EQUAL(run_in_cgroup(cg_plain, "kred-plain", probe_dial, &d6, 200, NULL), EPERM);
	CU_ASSERT_EQUAL(accept_within(red4, 100), -1);
	CU_ASSERT_EQUAL(accept_within(red6, 0), -1);
	check_upstreams_untouched();
}

/* UDP is never redirected (the listener is TCP): refused as before. */
static void test_udp_refused(void)
{
	struct sockaddr_storage ss;
	socklen_t len = ktest_sockaddr(AF_INET, "127.0.0.1", port_up4, &ss);
	pid_t p = fork();

	if (p == 0) {
		int fd;

		if (join_cgroup(cg_red) < 0)
			_exit(200);
		fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		_exit(connect(fd, (struct sockaddr *)&ss, len) < 0 ? errno : 0);
	}
	CU_ASSERT_FATAL(p > 0);
	CU_ASSERT_EQUAL(ktest_reap(p), EPERM);
}

/* A process that is not enrolled reaches the upstream itself, and its getpeername is
 * untouched. */
static void test_unenrolled_untouched(void)
{
	struct ktest_dial d = { AF_INET, "127.0.0.1", port_up4 };
	char want[64], line[128];
	pid_t p = spawn_dial(cg_free, &d);
	int fd;

	CU_ASSERT_FATAL(p > 0);
	fd = accept_within(up4, 2000);
	CU_ASSERT_FATAL(fd >= 0);
	read_line(fd, line, sizeof(line));
	snprintf(want, sizeof(want), "127.0.0.1:%u", port_up4);
	CU_ASSERT_STRING_EQUAL(line, want);
	close(fd);
	CU_ASSERT_EQUAL(ktest_reap(p), 0);
}

static void test_counters(void)
{
	struct enforcer_counters c;

	/* connects above: v4 (twice: ipv4 and lockdown) and v4-mapped through connect4/6 */
	ktest_check_counters(E, &c, (const struct ktest_count[]){
		KTEST_AT_LEAST(WARDEN_HOOK_CONNECT4, redirected, 2),
		KTEST_AT_LEAST(WARDEN_HOOK_CONNECT6, redirected, 2),
		KTEST_AT_LEAST(WARDEN_HOOK_GETPEERNAME4, redirected, 2),
		KTEST_AT_LEAST(WARDEN_HOOK_GETPEERNAME6, redirected, 2), { 0 } });
}

/* wardenctl maps --json: the redirect table names the connections above, their cgroup and
 * original destination; enrolments and rules show their redirect flag. */
static void test_wardenctl_maps(void)
{
	const char *build = getenv("MCPWARDEN_BUILD");
	char cmd[512], want[64], *text = xcalloc(1, 1 << 20);
	size_t n = 0, r;
	bool found = false, red_enrolled = false, rule = false;
	const cJSON *it;
	cJSON *j;
	FILE *f;

	snprintf(cmd, sizeof(cmd), "%s/wardenctl maps --pin-dir %s --json",
		 build ? build : "build/test", pin_dir);
	f = popen(cmd, "r");
	CU_ASSERT_FATAL(f != NULL);
	while ((r = fread(text + n, 1, (1 << 20) - 1 - n, f)) > 0)
		n += r;
	CU_ASSERT_EQUAL(pclose(f), 0);
	j = cJSON_Parse(text);
	free(text);
	CU_ASSERT_FATAL(j != NULL);
	snprintf(want, sizeof(want), "127.0.0.1:%u", port_up4);
	const cJSON *maps = cJSON_GetObjectItem(j, "maps");
	cJSON_ArrayForEach(it, cJSON_GetObjectItem(maps, WARDEN_MAP_REDIRECT)) {
		const cJSON *d = cJSON_GetObjectItem(it, "original_destination");
		const cJSON *cg = cJSON_GetObjectItem(it, "cgroup");

		if (cJSON_IsString(d) && !strcmp(d->valuestring, want) && cJSON_IsString(cg) &&
		    strstr(cg->valuestring, "/red"))
			found = true;
	}
	cJSON_ArrayForEach(it, cJSON_GetObjectItem(maps, WARDEN_MAP_ENROLLED))
		if (cJSON_IsTrue(cJSON_GetObjectItem(it, "redirect")))
			red_enrolled = true;
	cJSON_ArrayForEach(it, cJSON_GetObjectItem(maps, "warden_exact4"))
		if (cJSON_IsTrue(cJSON_GetObjectItem(it, "redirect")))
			rule = true;
	CU_ASSERT(found);
	CU_ASSERT(red_enrolled);
	CU_ASSERT(rule);
	CU_ASSERT_EQUAL(cJSON_GetNumberValue(cJSON_GetObjectItem(
		cJSON_GetObjectItem(maps, WARDEN_MAP_CONFIG), "redirect_port")), port_red);
	cJSON_Delete(j);
}

static uint16_t pinned_redirect_port(void)
{
	struct warden_config c = { 0 };
	struct pins *p;

	if (pins_open(pin_dir, &p) < 0)
		return 0xffff;
	if (pins_config(p, &c) < 0)
		c.redirect_port = 0xffff;
	pins_close(p);
	return ntohs(c.redirect_port);
}

/* What a reload does to the guard (userspace/main.c): stop it, start one for the new config on
 * the same pins, set the port of the listener that stayed. The pinned port must read the
 * listener's all along, which the programs use for every connect meanwhile. */
static void test_reload_keeps_port(void)
{
	char text[2048];
	struct config *cfg = NULL;
	struct config_errors errs = { 0 };
	struct guard *g = NULL;

	snprintf(text, sizeof(text), "{\"listen\": \"127.0.0.1:0\", \"auth\": {\"required\": false}, "
		 "\"upstreams\": [], \"enforcement\": {\"pin_dir\": \"%s\", \"cgroup_root\": \"%s\", "
		 "\"enroll\": [{\"cgroup\": \"%s\", \"mode\": \"protect\", \"redirect\": true}]}}",
		 pin_dir, root, cg_red);
	CU_ASSERT_EQUAL_FATAL(config_parse(text, "ktest", &cfg, &errs), 0);
	CU_ASSERT_EQUAL(pinned_redirect_port(), port_red);
	for (int round = 0; round < 3; round++) {
		CU_ASSERT_EQUAL_FATAL(guard_start(base, cfg, 1, &g), 0);
		CU_ASSERT_PTR_NOT_NULL_FATAL(g);
		/* Between the guard's start and the caller setting the port: still the listener's. */
		CU_ASSERT_EQUAL(pinned_redirect_port(), port_red);
		CU_ASSERT_EQUAL(guard_set_redirect_port(g, port_red), 0);
		CU_ASSERT_EQUAL(pinned_redirect_port(), port_red);
		guard_stop(g);
		CU_ASSERT_EQUAL(pinned_redirect_port(), port_red);
	}
	/* Nothing asks for redirect any more: the caller clears it, and redirect stops. */
	CU_ASSERT_EQUAL_FATAL(guard_start(base, cfg, 1, &g), 0);
	CU_ASSERT_EQUAL(guard_set_redirect_port(g, 0), 0);
	CU_ASSERT_EQUAL(pinned_redirect_port(), 0);
	CU_ASSERT_EQUAL(guard_set_redirect_port(g, port_red), 0);
	guard_stop(g);
	config_free(cfg);
	test_ipv4();	/* and redirect still works */
}

static int setup(void)
{
	struct enforcer_opts o = { 0 };
	struct enforcer_dest tls = { 0 };
	int ret;

	snprintf(pin_dir, sizeof(pin_dir), "/sys/fs/bpf/mcpwarden-kred-%d", getpid());
	if (cgroup_detect_root(root, sizeof(root)) < 0 ||
	    ktest_mkcgroups(root, "mcpwarden-kred", cg_base, cg_red, "red", cg_plain, "plain",
			    cg_lock, "lock", cg_free, "free", NULL) < 0)
		return -1;
	base = event_base_new();
	if (!base)
		return -1;
	o.pin_dir = pin_dir;
	o.cgroup_root = root;
	if ((ret = enforcer_open(&o, &E)) < 0) {
		fprintf(stderr, "enforcer_open: %s\n", strerror(-ret));
		return -1;
	}
	if ((ret = peer_fast_open(pin_dir)) < 0) {
		fprintf(stderr, "peer_fast_open: %s\n", strerror(-ret));
		return -1;
	}
	up4 = ktest_listen(AF_INET, SOCK_STREAM, "127.0.0.1", 0, &port_up4);
	up6 = ktest_listen(AF_INET6, SOCK_STREAM, "::1", 0, &port_up6);
	tls4 = ktest_listen(AF_INET, SOCK_STREAM, "127.0.0.1", 0, &port_tls4);
	if (up4 < 0 || up6 < 0 || tls4 < 0 || ktest_listen_both(&red4, &red6, &port_red) < 0)
		return -1;
	/* The plain-HTTP upstreams the way the daemon protects them; the HTTPS one without the
	 * redirect flag. */
	tls.family = AF_INET;
	tls.prefixlen = 32;
	tls.port = port_tls4;
	inet_pton(AF_INET, "127.0.0.1", tls.addr);
	if (enforcer_upstream_protect_ex(E, base, "127.0.0.1", port_up4, WARDEN_RULE_F_REDIRECT,
					 60000, &U4) < 0 ||
	    enforcer_upstream_protect_ex(E, base, "::1", port_up6, WARDEN_RULE_F_REDIRECT, 60000,
					 &U6) < 0 ||
	    enforcer_protect_dest(E, &tls, NULL) < 0)
		return -1;
	if (enforcer_set_redirect(E, port_red) < 0 ||
	    enforcer_enroll_ex(E, cg_red, WARDEN_MODE_PROTECT, WARDEN_ENROLL_F_REDIRECT) < 0 ||
	    enforcer_enroll_ex(E, cg_lock, WARDEN_MODE_LOCKDOWN, WARDEN_ENROLL_F_REDIRECT) < 0 ||
	    enforcer_enroll(E, cg_plain, WARDEN_MODE_PROTECT) < 0)
		return -1;
	return 0;
}

static int teardown(void)
{
	enforcer_upstream_free(U4, false);
	enforcer_upstream_free(U6, false);
	peer_fast_close();
	enforcer_close(E);
	enforcer_destroy_pins(pin_dir);
	if (base)
		event_base_free(base);
	for (int *fd = (int[]){ up4, up6, tls4, red4, red6, -2 }; *fd != -2; fd++)
		if (*fd >= 0)
			close(*fd);
	ktest_rmdirs(cg_red, cg_plain, cg_lock, cg_free, cg_base, NULL);
	return 0;
}

KTEST_MAIN("ktest_redirect", "transparent redirect (real kernel)", setup, teardown,
	{ "IPv4 connect redirected, getpeername shows the original", test_ipv4 },
	{ "IPv6 connect redirected, getpeername shows the original", test_ipv6 },
	{ "v4-mapped connect redirected, getpeername shows the original", test_v4_mapped },
	{ "lockdown with redirect: the upstream redirected, the rest refused", test_lockdown },
	{ "an HTTPS (not redirectable) destination stays refused", test_https_refused },
	{ "a cgroup without redirect is refused as before", test_redirect_off },
	{ "UDP is not redirected", test_udp_refused },
	{ "an unenrolled process is untouched", test_unenrolled_untouched },
	{ "redirect counters", test_counters },
	{ "wardenctl maps shows the redirect table", test_wardenctl_maps },
	{ "a reload keeps the redirect port (never 0 meanwhile)", test_reload_keeps_port })
