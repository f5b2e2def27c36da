/* bpf_connect: what the warden programs cost per connect, path by path.
 *
 * Loads the enforcer in a private pin dir with 10,000 protected host:port entries and 1,000
 * enrolled protect-mode cgroups (plus one lockdown cgroup), then times loops of UDP connect()
 * (socket + connect + close; UDP so no listener backlog is involved), all in the same run:
 *
 *   baseline            no program attached (before anything is loaded): the wall-clock base
 *   unenrolled          caller's cgroup not enrolled (every other process on the host)
 *   lockdown allowed    lockdown, destination an allowlisted host:port
 *   lockdown denied     lockdown, destination neither sidecar nor allowlisted (event written)
 *   protect denied      protect, destination a protected host:port (event written)
 *   protect allowed     protect, destination not protected: 10,000 host:port rules
 *   protect +prefixes   the same after adding 2,500 any-port /24 prefix rules (trie walk)
 *
 * BPF run time per program run is the kernel's own accounting (BPF_ENABLE_STATS:
 * run_time_ns / run_cnt of the connect4 program). The accounting itself costs two clock reads
 * per run, so a "floor" program that only returns 1 stays attached beside warden's for the
 * whole run: each phase reports it from the same loop, and warden minus floor is what the
 * policy costs. Phases run in interleaved rounds and report medians, because the machine is
 * shared: a burst of other work then hits every phase alike. The programs run for every
 * connect on the host, so other processes' connects during a phase are counted too (they are
 * unenrolled runs: the cheap path). Root only; prints ratios against the baseline.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "enforce/enforcer.h"
#include "base/log.h"

#define NPROTECT	10000
#define NPREFIX		(NPROTECT / 4)
#define NCGROUPS	1000
#define ROUNDS		7
#define TARGET_NS	150.0

enum phase_id {
	P_BASELINE, P_UNENROLLED, P_LOCK_ALLOW, P_LOCK_DENY, P_PROT_DENY, P_PROT_ALLOW,
	P_PROT_PREFIX, P_MAX
};

static const char *const phase_names[P_MAX] = {
	"baseline (no program)", "unenrolled caller", "lockdown, allowed host:port",
	"lockdown, denied", "protect, denied host:port", "protect, allowed (10k hosts)",
	"protect, allowed (+2.5k /24)",
};

struct sample {
	double wall, run, floor;	/* ns per connect; ns per warden run; ns per floor run */
};

static char root[256], base_cg[512], home_cg[1024], prot_cg[600], lock_cg[600];
static int iters = 4000;	/* per phase per round */
static struct enforcer *E;
static int warden_fd = -1, floor_fd = -1;

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int join(const char *cg)
{
	char p[700];
	int fd, ret = 0;

	snprintf(p, sizeof(p), "%s/cgroup.procs", cg);
	fd = open(p, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, "0", 1) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

/* Our own cgroup v2 directory ("0::<path>" in /proc/self/cgroup), to return to at the end. */
static int home_cgroup(void)
{
	char line[512];
	FILE *f = fopen("/proc/self/cgroup", "re");
	int ret = -ENOENT;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "0::", 3) == 0) {
			line[strcspn(line, "\n")] = '\0';
			snprintf(home_cg, sizeof(home_cg), "%s%s", root,
				 strcmp(line + 3, "/") == 0 ? "" : line + 3);
			ret = 0;
		}
	}
	fclose(f);
	return ret;
}

/* Wall-clock ns per socket+connect+close to ip:port. A refused connect (EPERM) is the point
 * of the deny phases; their events are drained as the daemon would, so the ring never fills
 * (a full ring would time the cheaper "event dropped" path instead). */
static int connect_loop(uint32_t ip, uint16_t port, bool refused, double *ns)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	double t0;

	sa.sin_addr.s_addr = htonl(ip);
	t0 = now_ns();
	for (int i = 0; i < iters; i++) {
		int fd = socket(AF_INET, SOCK_DGRAM, 0), r;

		if (fd < 0)
			return -errno;
		r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
		close(fd);
		if (refused ? (r == 0 || errno != EPERM) : r < 0) {
			fprintf(stderr, "bpf_connect: connect to %s:%u %s\n", inet_ntoa(sa.sin_addr),
				port, r == 0 ? "was allowed, expected EPERM" : strerror(errno));
			return -EPROTO;
		}
		if (refused && (i & 255) == 255 && enforcer_events_poll(E) < 0)
			return -EIO;
	}
	*ns = (now_ns() - t0) / iters;
	return refused && enforcer_events_poll(E) < 0 ? -EIO : 0;
}

static int prog_stats(int prog_fd, __u64 *run_ns, __u64 *cnt)
{
	struct bpf_prog_info info = { 0 };
	__u32 len = sizeof(info);

	*run_ns = *cnt = 0;
	if (prog_fd < 0)
		return 0;
	if (bpf_obj_get_info_by_fd(prog_fd, &info, &len) < 0)
		return -errno;
	*run_ns = info.run_time_ns;
	*cnt = info.run_cnt;
	return 0;
}

static double per_run(__u64 ns0, __u64 c0, __u64 ns1, __u64 c1)
{
	return c1 > c0 ? (double)(ns1 - ns0) / (double)(c1 - c0) : 0;
}

/* One round of one phase, run from cgroup cg. */
static int phase(const char *cg, uint32_t ip, uint16_t port, bool refused, struct sample *s)
{
	__u64 wn0, wc0, wn1, wc1, fn0, fc0, fn1, fc1;
	double ignored;
	int ret;

	if ((ret = join(cg)) < 0)
		return ret;
	if ((ret = connect_loop(ip, port, refused, &ignored)) < 0)	/* warm up */
		return ret;
	if ((ret = prog_stats(warden_fd, &wn0, &wc0)) < 0 ||
	    (ret = prog_stats(floor_fd, &fn0, &fc0)) < 0 ||
	    (ret = connect_loop(ip, port, refused, &s->wall)) < 0 ||
	    (ret = prog_stats(warden_fd, &wn1, &wc1)) < 0 ||
	    (ret = prog_stats(floor_fd, &fn1, &fc1)) < 0)
		return ret;
	s->run = per_run(wn0, wc0, wn1, wc1);
	s->floor = per_run(fn0, fc0, fn1, fc1);
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(const struct sample *s, size_t off)
{
	double v[ROUNDS];

	for (int i = 0; i < ROUNDS; i++)
		v[i] = *(const double *)((const char *)&s[i] + off);
	qsort(v, ROUNDS, sizeof(v[0]), cmp_double);
	return v[ROUNDS / 2];
}

/* The floor: a connect4 program that returns 1, attached at the root beside warden's through
 * an unpinned link (it goes away with this process). */
static int floor_attach(int root_fd, int *link_fd)
{
	const struct bpf_insn insns[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 1 },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	LIBBPF_OPTS(bpf_prog_load_opts, o, .expected_attach_type = BPF_CGROUP_INET4_CONNECT);

	floor_fd = bpf_prog_load(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, "bench_floor", "GPL", insns, 2,
				 &o);
	if (floor_fd < 0)
		return -errno;
	*link_fd = bpf_link_create(floor_fd, root_fd, BPF_CGROUP_INET4_CONNECT, NULL);
	return *link_fd < 0 ? -errno : 0;
}

static int random_host_port(char *spec, size_t len)
{
	unsigned a = 0x0a000000u | ((unsigned)rand() & 0xffffff);

	return snprintf(spec, len, "%u.%u.%u.%u:%u", a >> 24, (a >> 16) & 255, (a >> 8) & 255,
			a & 255, 1 + rand() % 65535) < 0 ? -EINVAL : 0;
}

int main(int argc, char **argv)
{
	struct enforcer_opts o = { 0 };
	struct enforcer_status st;
	static struct sample res[P_MAX][ROUNDS];
	char pin[128], cg[600], spec[64];
	int stats_fd = -1, udp = -1, root_fd = -1, link_fd = -1, ret = 1, made = 0, err = 0;
	uint16_t port, deny_port = 9;	/* discard: nothing listens, nothing is sent */
	const uint32_t lo = INADDR_LOOPBACK, prot_ip = 0x0a000001;	/* 10.0.0.1, protected */
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t slen = sizeof(sa);

	if (argc > 1)
		iters = atoi(argv[1]) > 0 ? atoi(argv[1]) : iters;
	if (geteuid() != 0) {
		printf("bpf_connect: SKIP (needs root)\n");
		return 0;
	}
	log_set_level(LOG_WARN);
	if (cgroup_detect_root(root, sizeof(root)) < 0) {
		printf("bpf_connect: SKIP (no cgroup v2)\n");
		return 0;
	}
	if (home_cgroup() < 0) {
		printf("bpf_connect: SKIP (not in the cgroup v2 hierarchy)\n");
		return 0;
	}
	snprintf(pin, sizeof(pin), "/sys/fs/bpf/mcpwarden-bench-%d", getpid());
	snprintf(base_cg, sizeof(base_cg), "%s/mcpwarden-bench-%d", root, getpid());
	snprintf(lock_cg, sizeof(lock_cg), "%s/lockdown", base_cg);
	snprintf(prot_cg, sizeof(prot_cg), "%s/cg0", base_cg);
	if (mkdir(base_cg, 0755) < 0 || mkdir(lock_cg, 0755) < 0) {
		perror("bpf_connect: mkdir");
		goto out;
	}
	/* A UDP socket to connect to (connect on UDP needs no peer, but keep it real). */
	udp = socket(AF_INET, SOCK_DGRAM, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (udp < 0 || bind(udp, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    getsockname(udp, (struct sockaddr *)&sa, &slen) < 0)
		goto out;
	port = ntohs(sa.sin_port);
	if (port == deny_port)
		deny_port = 7;

	stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
	if (stats_fd < 0) {
		fprintf(stderr, "bpf_connect: BPF_ENABLE_STATS: %s\n", strerror(errno));
		goto out;
	}
	for (int r = 0; r < ROUNDS && !err; r++)
		err = phase(home_cg, lo, port, false, &res[P_BASELINE][r]);
	if (err)
		goto out;

	o.pin_dir = pin;
	o.cgroup_root = root;
	if (enforcer_open(&o, &E) < 0)
		goto out;
	srand(42);
	/* host:port entries: what the daemon's upstream protection produces */
	for (int i = 0; i < NPROTECT - 1; i++)
		if (random_host_port(spec, sizeof(spec)) < 0 || enforcer_protect(E, spec) < 0)
			goto out;
	snprintf(spec, sizeof(spec), "10.0.0.1:%u", port);
	if (enforcer_protect(E, spec) < 0)
		goto out;
	for (int i = 0; i < NCGROUPS; i++, made++) {
		snprintf(cg, sizeof(cg), "%s/cg%d", base_cg, i);
		if (mkdir(cg, 0755) < 0 || enforcer_enroll(E, cg, WARDEN_MODE_PROTECT) < 0)
			goto out;
	}
	snprintf(spec, sizeof(spec), "127.0.0.1:%u", port);
	if (enforcer_enroll(E, lock_cg, WARDEN_MODE_LOCKDOWN) < 0 || enforcer_allow(E, spec) < 0)
		goto out;
	if (enforcer_status(E, &st) < 0)
		goto out;
	warden_fd = bpf_prog_get_fd_by_id(st.hooks[WARDEN_HOOK_CONNECT4].prog_id);
	root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (warden_fd < 0 || root_fd < 0 || floor_attach(root_fd, &link_fd) < 0) {
		fprintf(stderr, "bpf_connect: program fds / floor program: %s\n", strerror(errno));
		goto out;
	}

	for (int r = 0; r < ROUNDS && !err; r++) {
		err = phase(home_cg, lo, port, false, &res[P_UNENROLLED][r]) ?:
		      phase(lock_cg, lo, port, false, &res[P_LOCK_ALLOW][r]) ?:
		      phase(lock_cg, lo, deny_port, true, &res[P_LOCK_DENY][r]) ?:
		      phase(prot_cg, prot_ip, port, true, &res[P_PROT_DENY][r]) ?:
		      phase(prot_cg, lo, port, false, &res[P_PROT_ALLOW][r]);
	}
	/* Operator CIDR rules without a port: prefixes, so the trie is walked for them. */
	for (int i = 0; i < NPREFIX && !err; i++) {
		unsigned a = 0x0a000000u | ((unsigned)rand() & 0xffff00);

		snprintf(spec, sizeof(spec), "%u.%u.%u.0/24", a >> 24, (a >> 16) & 255,
			 (a >> 8) & 255);
		err = enforcer_protect(E, spec);
	}
	for (int r = 0; r < ROUNDS && !err; r++)
		err = phase(prot_cg, lo, port, false, &res[P_PROT_PREFIX][r]);
	if (err) {
		fprintf(stderr, "bpf_connect: %s\n", strerror(-err));
		goto out;
	}
	join(home_cg);

	double base_wall = median(res[P_BASELINE], offsetof(struct sample, wall));

	printf("bpf_connect: %d UDP connects per phase x %d rounds (medians), %d protected "
	       "host:port entries, %d enrolled cgroups\n", iters, ROUNDS, NPROTECT, NCGROUPS + 1);
	printf("%-30s %10s %9s %11s %11s %11s\n", "phase", "wall ns/op", "vs base",
	       "bpf ns/run", "floor ns", "over floor");
	for (int p = 0; p < P_MAX; p++) {
		double wall = median(res[p], offsetof(struct sample, wall));
		double run = median(res[p], offsetof(struct sample, run));
		double fl = median(res[p], offsetof(struct sample, floor));

		printf("%-30s %10.0f %8.3fx", phase_names[p], wall, wall / base_wall);
		if (p != P_BASELINE)
			printf(" %11.1f %11.1f %11.1f%s", run, fl, run - fl,
			       run > TARGET_NS ? "  (over target)" : "");
		printf("\n");
	}
	printf("target: <= %.0f ns per warden run (bpf ns/run, which includes the accounting's "
	       "own cost: see floor ns, a program that only returns 1)\n", TARGET_NS);
	ret = 0;
out:
	if (ret)
		fprintf(stderr, "bpf_connect: failed (%s)\n", strerror(errno));
	join(home_cg);
	if (link_fd >= 0)
		close(link_fd);	/* detaches the floor program */
	if (floor_fd >= 0)
		close(floor_fd);
	if (warden_fd >= 0)
		close(warden_fd);
	if (root_fd >= 0)
		close(root_fd);
	enforcer_close(E);
	enforcer_destroy_pins(pin);
	if (stats_fd >= 0)
		close(stats_fd);
	if (udp >= 0)
		close(udp);
	for (int i = 0; i < made + 1 && i < NCGROUPS; i++) {
		snprintf(cg, sizeof(cg), "%s/cg%d", base_cg, i);
		rmdir(cg);
	}
	rmdir(lock_cg);
	rmdir(base_cg);
	return ret;
}
