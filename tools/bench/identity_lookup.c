/* identity_lookup: what naming the caller and finding a redirected connection's destination
 * cost the sidecar per connection (docs/enforcement.md#caller-identity, #transparent-redirect).
 *
 * One loopback TCP connection, accepted; then, N times each (medians of 7 rounds):
 *   sock_diag     peer_socket_lookup: the client socket's cgroup id and cookie (one netlink
 *                 round trip the kernel answers from memory)
 *   cgroup path   cgroup_path_of: the id as a path (open_by_handle_at + readlink), and
 *                 peer_cgroup_path, which the daemon uses: the same behind a per-thread cache
 *   redirect map  enforcer_redirect_lookup: the cookie in warden_redirect (one bpf() call);
 *                 needs root and BPF, skipped otherwise
 *   getsockname   is the connection on the redirect listener's port?
 *   route         what is left per request once the connection's answer is kept: the
 *                 upstream whose addresses hold the original destination and whose URL path
 *                 is the request's (guard_redirect_route: memory only, one upstream here)
 *   warden_conns  peer_fast_lookup: the same answers (cgroup id, cookie, a redirect's
 *                 original destination) from the mapped array the sockops program fills:
 *                 no system call. Timed per connection over M fresh accepted connections
 *                 (median), beside sock_diag on the same connections.
 * Before warden_conns the daemon did sock_diag, getsockname and the map once per connection
 * (kept with it, now front_conn_redirect); now warden_conns (and getsockname only behind a
 * wildcard listener), sock_diag only when the slot does not match; the route per request.
 * Reported, never asserted. Run as root for the map and the path (CAP_DAC_READ_SEARCH).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "base/log.h"
#include "enforce/cgroup.h"
#include "enforce/enforcer.h"
#include "enforce/peer_cgroup.h"
#include "enforce/peer_fast.h"

#define N 20000
#define ROUNDS 7

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

struct ctx {
	int fd;
	char root[256];
	uint64_t id, cookie;
	struct enforcer *e;
	struct enforcer_upstream *u;
};

static int op_diag(struct ctx *c)
{
	return peer_socket_lookup(c->fd, &c->id, &c->cookie);
}

static int op_path(struct ctx *c)
{
	char path[4096];

	return cgroup_path_of(c->root, c->id, path, sizeof(path));
}

static int op_path_cached(struct ctx *c)
{
	char path[4096];

	return peer_cgroup_path(c->root, c->id, path, sizeof(path));
}

static int op_map(struct ctx *c)
{
	struct warden_redirect rv;

	return enforcer_redirect_lookup(c->e, c->cookie, &rv);
}

/* guard_redirect_route's loop for one upstream: its current addresses, then its path. */
static int op_route(struct ctx *c)
{
	static const uint8_t addr[16] = { 127, 0, 0, 1 };
	static const char *volatile path = "/mcp";	/* not folded away */

	if (!enforcer_upstream_has(c->u, AF_INET, addr, 80))
		return -ENOENT;
	return strcmp(path, "/mcp") ? -ENOTDIR : 0;
}

static int op_sockname(struct ctx *c)
{
	struct sockaddr_storage ss;
	socklen_t l = sizeof(ss);

	return getsockname(c->fd, (struct sockaddr *)&ss, &l) ? -errno : 0;
}

/* M fresh connections to listener l (addr), each timed once: getsockname + warden_conns
 * (what the daemon does now), warden_conns alone (the peer from accept4, our address
 * known), and sock_diag (the fallback). Medians in out[3]; out[0] = -1 when a lookup missed. */
#define M 2000
static void per_connection(int l, const struct sockaddr_in *addr, double out[3])
{
	static double t[3][M];
	int n = 0, misses = 0;

	for (int i = 0; i < M; i++) {
		struct sockaddr_storage peer, me;
		socklen_t pl = sizeof(peer), ml = sizeof(me);
		struct peer_fast_hit hit;
		uint64_t id, ck;
		int cl = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), fd;
		double t0, t1, t2, t3;

		if (cl < 0 || connect(cl, (const struct sockaddr *)addr, sizeof(*addr)) ||
		    (fd = accept4(l, (struct sockaddr *)&peer, &pl, SOCK_CLOEXEC)) < 0) {
			if (cl >= 0)
				close(cl);
			continue;
		}
		t0 = now_ns();
		if (getsockname(fd, (struct sockaddr *)&me, &ml) < 0 ||
		    peer_fast_lookup((struct sockaddr *)&peer, (struct sockaddr *)&me, &hit) < 0)
			misses++;
		t1 = now_ns();
		peer_fast_lookup((struct sockaddr *)&peer, (const struct sockaddr *)addr, &hit);
		t2 = now_ns();
		peer_socket_lookup(fd, &id, &ck);
		t3 = now_ns();
		t[0][n] = t1 - t0;
		t[1][n] = t2 - t1;
		t[2][n] = t3 - t2;
		n++;
		close(fd);
		close(cl);
	}
	for (int k = 0; k < 3; k++) {
		qsort(t[k], (size_t)n, sizeof(double), cmp_double);
		out[k] = n ? t[k][n / 2] : -1;
	}
	if (misses || !n)
		out[0] = out[1] = -1;
	if (misses)
		printf("  (warden_conns missed %d of %d connections)\n", misses, n);
}

/* Median over ROUNDS of the mean ns per call; -1 when the call fails. */
static double measure(struct ctx *c, int (*op)(struct ctx *))
{
	double r[ROUNDS];

	if (op(c) < 0)
		return -1;
	for (int k = 0; k < ROUNDS; k++) {
		double t0 = now_ns();

		for (int i = 0; i < N; i++)
			op(c);
		r[k] = (now_ns() - t0) / N;
	}
	qsort(r, ROUNDS, sizeof(r[0]), cmp_double);
	return r[ROUNDS / 2];
}

static void row(const char *name, double ns, const char *why)
{
	if (ns < 0)
		printf("  %-14s   skipped (%s)\n", name, why);
	else
		printf("  %-14s %8.0f ns\n", name, ns);
}

int main(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	struct ctx c = { 0 };
	char pin[64];
	int l, cl;
	double diag, path, cpath, map = -1, sn, route = -1, pc[3] = { -1, -1, -1 };

	log_set_level(LOG_ERROR);
	/* The programs first: warden_conns records connections established after it. */
	snprintf(pin, sizeof(pin), "/sys/fs/bpf/mcpwarden-bench-%d", getpid());
	if (geteuid() == 0 && enforcer_open(&(struct enforcer_opts){ .pin_dir = pin }, &c.e) < 0)
		c.e = NULL;
	if (c.e && peer_fast_open(pin) < 0)
		fprintf(stderr, "identity_lookup: warden_conns not mapped\n");
	l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cl = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0 || cl < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 1) ||
	    getsockname(l, (struct sockaddr *)&a, &al) ||
	    connect(cl, (struct sockaddr *)&a, sizeof(a)) ||
	    (c.fd = accept4(l, NULL, NULL, SOCK_CLOEXEC)) < 0) {
		perror("identity_lookup: loopback connection");
		return 1;
	}
	if (cgroup_detect_root(c.root, sizeof(c.root)) < 0)
		c.root[0] = '\0';
	printf("identity lookup per connection (median of %d rounds of %d)\n", ROUNDS, N);
	diag = measure(&c, op_diag);
	path = c.root[0] ? measure(&c, op_path) : -1;
	cpath = c.root[0] ? measure(&c, op_path_cached) : -1;
	sn = measure(&c, op_sockname);
	if (c.e) {
		struct warden_redirect rv = { .family = AF_INET, .port = htons(80) };
		__u64 key = c.cookie;

		/* What connect4 leaves for this socket. */
		if (bpf_map_update_elem(enforcer_map_fd(c.e, WARDEN_MAP_REDIRECT), &key, &rv,
					BPF_ANY) == 0)
			map = measure(&c, op_map);
		/* A literal address: protected at once, no resolver (so no event base). */
		if (enforcer_upstream_protect_ex(c.e, NULL, "127.0.0.1", 80, WARDEN_RULE_F_REDIRECT,
						 60000, &c.u) == 0) {
			route = measure(&c, op_route);
			enforcer_upstream_free(c.u, true);
		}
		if (peer_fast_ready())
			per_connection(l, &a, pc);
		peer_fast_close();
		enforcer_close(c.e);
		enforcer_destroy_pins(pin);
	}
	row("sock_diag", diag, "failed");
	row("cgroup path", path, "no cgroup v2, or not root");
	row("  cached", cpath, "no cgroup v2, or not root");
	row("redirect map", map, "needs root and BPF");
	row("getsockname", sn, "failed");
	row("route", route, "needs root and BPF");
	printf("per fresh connection (median of %d accepts):\n", M);
	row("warden_conns", pc[1], "needs root and BPF, or missed");
	row("  + getsockname", pc[0], "needs root and BPF, or missed");
	row("sock_diag", pc[2], "needs root and BPF");
	if (diag >= 0 && cpath >= 0)
		printf("  identity (sock_diag + cached path), once per connection: %.0f ns\n",
		       diag + cpath);
	if (diag >= 0 && map >= 0)
		printf("  redirect, once per connection (sock_diag + getsockname + map): %.0f ns\n",
		       diag + sn + map);
	if (route >= 0)
		printf("  redirect, per request (route; no system call): %.0f ns\n", route);
	if (pc[1] >= 0 && cpath >= 0) {
		printf("  identity and redirect from warden_conns, once per connection, our address "
		       "known (+ cached path): %.0f ns\n", pc[1] + cpath);
		printf("  the same with getsockname for our address (+ cached path): %.0f ns\n",
		       pc[0] + cpath);
	}
	close(c.fd);
	close(cl);
	close(l);
	return 0;
}
