/* bpf_connect: what the warden programs cost per connect.
 *
 * Loads the enforcer in a private pin dir with 10,000 protected destinations and 1,000
 * enrolled cgroups, then times a loop of UDP connect() calls (socket + connect + close; UDP so
 * no listener backlog is involved) in four phases, all in the same run:
 *   baseline     no program attached (before the enforcer is loaded)
 *   unenrolled   programs attached, caller's cgroup not enrolled
 *   protect      caller enrolled in protect mode, destination not protected (full lookups)
 *   lockdown     caller enrolled in lockdown, destination allowlisted
 * BPF run time per program run comes from the kernel's own accounting (BPF_ENABLE_STATS:
 * run_time_ns / run_cnt of the connect4 program). The program runs for every connect on the
 * host, so other processes' connects during a phase are counted too (they are unenrolled
 * runs: the cheap path). Prints ratios against the baseline; root only.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "enforcer.h"
#include "log.h"

#define NPROTECT 10000
#define NCGROUPS 1000
#define TARGET_NS 150.0

static char root[256], base_cg[512], home_cg[1024];
static int iters = 20000;

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

/* Wall-clock ns per socket+connect+close. */
static double connect_loop(uint16_t port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	double t0;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	t0 = now_ns();
	for (int i = 0; i < iters; i++) {
		int fd = socket(AF_INET, SOCK_DGRAM, 0);

		if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
			perror("bpf_connect: connect");
			exit(1);
		}
		close(fd);
	}
	return (now_ns() - t0) / iters;
}

static int prog_stats(int prog_fd, __u64 *run_ns, __u64 *cnt)
{
	struct bpf_prog_info info = { 0 };
	__u32 len = sizeof(info);

	if (bpf_obj_get_info_by_fd(prog_fd, &info, &len) < 0)
		return -errno;
	*run_ns = info.run_time_ns;
	*cnt = info.run_cnt;
	return 0;
}

struct result {
	const char *name;
	double wall, run;
};

static int phase(const char *name, int prog_fd, uint16_t port, struct result *r)
{
	__u64 ns0 = 0, c0 = 0, ns1 = 0, c1 = 0;
	int ret;

	connect_loop(port);	/* warm up */
	if (prog_fd >= 0 && (ret = prog_stats(prog_fd, &ns0, &c0)) < 0)
		return ret;
	r->name = name;
	r->wall = connect_loop(port);
	if (prog_fd >= 0 && (ret = prog_stats(prog_fd, &ns1, &c1)) < 0)
		return ret;
	r->run = c1 > c0 ? (double)(ns1 - ns0) / (double)(c1 - c0) : 0;
	return 0;
}

int main(int argc, char **argv)
{
	struct enforcer_opts o = { 0 };
	struct enforcer_status st;
	struct enforcer *e = NULL;
	struct result res[5];
	char pin[128], cg[600], spec[64], first_cg[600] = "", lock_cg[600];
	int stats_fd = -1, prog_fd = -1, udp = -1, ret = 1, made = 0;
	uint16_t port;
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t slen = sizeof(sa);

	if (argc > 1)
		iters = atoi(argv[1]) > 0 ? atoi(argv[1]) : iters;
	if (geteuid() != 0) {
		printf("bpf_connect: SKIP (needs root)\n");
		return 0;
	}
	log_set_level(LOG_WARN);
	if (enforcer_detect_cgroup_root(root, sizeof(root)) < 0) {
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

	stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
	if (stats_fd < 0) {
		fprintf(stderr, "bpf_connect: BPF_ENABLE_STATS: %s\n", strerror(errno));
		goto out;
	}
	if (phase("baseline (no program)", -1, port, &res[0]) < 0)
		goto out;

	o.pin_dir = pin;
	o.cgroup_root = root;
	if (enforcer_open(&o, &e) < 0)
		goto out;
	srand(42);
	/* host:port entries: what the daemon's upstream protection produces */
	for (int i = 0; i < NPROTECT; i++) {
		unsigned a = 0x0a000000u | ((unsigned)rand() & 0xffffff);

		snprintf(spec, sizeof(spec), "%u.%u.%u.%u:%u", a >> 24, (a >> 16) & 255,
			 (a >> 8) & 255, a & 255, 1 + rand() % 65535);
		if (enforcer_protect(e, spec) < 0)
			goto out;
	}
	for (int i = 0; i < NCGROUPS; i++, made++) {
		snprintf(cg, sizeof(cg), "%s/cg%d", base_cg, i);
		if (mkdir(cg, 0755) < 0 || enforcer_enroll(e, cg, WARDEN_MODE_PROTECT) < 0)
			goto out;
		if (i == 0)
			snprintf(first_cg, sizeof(first_cg), "%s", cg);
	}
	snprintf(spec, sizeof(spec), "127.0.0.1:%u", port);
	if (enforcer_enroll(e, lock_cg, WARDEN_MODE_LOCKDOWN) < 0 || enforcer_allow(e, spec) < 0)
		goto out;
	if (enforcer_status(e, &st) < 0)
		goto out;
	prog_fd = bpf_prog_get_fd_by_id(st.hooks[WARDEN_HOOK_CONNECT4].prog_id);
	if (prog_fd < 0)
		goto out;

	if (phase("unenrolled caller", prog_fd, port, &res[1]) < 0 || join(first_cg) < 0 ||
	    phase("protect, not protected", prog_fd, port, &res[2]) < 0 || join(lock_cg) < 0 ||
	    phase("lockdown, allowlisted", prog_fd, port, &res[3]) < 0)
		goto out;
	/* Operator CIDR rules without a port make the protect path look up twice. */
	for (int i = 0; i < NPROTECT / 4; i++) {
		unsigned a = 0x0a000000u | ((unsigned)rand() & 0xffffff);

		snprintf(spec, sizeof(spec), "%u.%u.%u.0/24", a >> 24, (a >> 16) & 255,
			 (a >> 8) & 255);
		if (enforcer_protect(e, spec) < 0)
			goto out;
	}
	if (join(first_cg) < 0 || phase("protect, +2500 any-port", prog_fd, port, &res[4]) < 0)
		goto out;
	join(home_cg);

	printf("bpf_connect: %d UDP connects per phase, %d protected host:port entries, "
	       "%d enrolled cgroups\n", iters, NPROTECT, NCGROUPS + 1);
	printf("%-26s %14s %12s %16s\n", "phase", "wall ns/op", "vs baseline", "bpf ns/run");
	for (int i = 0; i < 5; i++) {
		printf("%-26s %14.0f %11.3fx", res[i].name, res[i].wall, res[i].wall / res[0].wall);
		if (i)
			printf(" %16.1f%s", res[i].run, res[i].run > TARGET_NS ? "  (over target)" : "");
		printf("\n");
	}
	printf("target: <= %.0f ns per hook run (includes the ~2 clock reads of bpf_stats)\n",
	       TARGET_NS);
	ret = 0;
out:
	if (ret)
		fprintf(stderr, "bpf_connect: failed (%s)\n", strerror(errno));
	join(home_cg);
	if (prog_fd >= 0)
		close(prog_fd);
	enforcer_close(e);
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
