/* wardenctl against the real kernel (root): the test loads enforcement through the enforcer
 * API into a private pin directory, then runs the real wardenctl binary
 * ($MCPWARDEN_BUILD/wardenctl) and checks that what it prints is what the kernel holds, that
 * its changes take effect on real connects, and that its self-test passes. Everything made
 * here (pins, cgroups, listeners, children) carries this process's pid and is removed at the
 * end, also when a test fails. */
#include <CUnit/Basic.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <dirent.h>
#include <unistd.h>
#include <cjson/cJSON.h>

#include <bpf/bpf.h>

#include "enforce/enforcer.h"
#include "enforce/pins.h"
#include "base/log.h"
#include "cunit_main.h"
#include "ktest_util.h"

static struct enforcer *E;
static char pin_dir[128], root[256], ctl[PATH_MAX];
static char cg_base[512], cg_a[600], cg_b[600], cg_kube[900], cg_ctr[1100];
static char pod_uid[40], ctr_id[65];
static const char *ctl_pin_dir = pin_dir;	/* the --pin-dir wardenctl gets */
static int srv = -1;
static uint16_t port;

/* ---- running wardenctl ------------------------------------------------------------------- */

struct run {
	int status;		/* exit status, or 128 + signal */
	char *out, *err;	/* NUL-terminated captures */
};

static void run_free(struct run *r)
{
	free(r->out);
	free(r->err);
	memset(r, 0, sizeof(*r));
}

static int append(char **buf, size_t *len, int fd)
{
	char chunk[4096];
	ssize_t n = read(fd, chunk, sizeof(chunk));
	char *nb;

	if (n <= 0)
		return (int)n;
	nb = realloc(*buf, *len + (size_t)n + 1);
	if (!nb)
		return -1;
	memcpy(nb + *len, chunk, (size_t)n);
	*len += (size_t)n;
	nb[*len] = '\0';
	*buf = nb;
	return (int)n;
}

/* Run wardenctl --pin-dir <ours> ARGS... (NULL-terminated); as uid when uid >= 0. */
static int ctl_run_as(struct run *r, int uid, const char *arg0, ...)
{
	const char *argv[32] = { ctl, "--pin-dir", ctl_pin_dir };
	int outp[2], errp[2], argc = 3, status;
	size_t olen = 0, elen = 0;
	va_list ap;
	pid_t pid;

	memset(r, 0, sizeof(*r));
	va_start(ap, arg0);
	for (const char *a = arg0; a && argc < 31; a = va_arg(ap, const char *))
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;
	if (pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		dup2(outp[1], 1);
		dup2(errp[1], 2);
		if (uid >= 0 && (setgid((gid_t)uid) < 0 || setuid((uid_t)uid) < 0))
			_exit(126);
		execv(ctl, (char *const *)argv);
		_exit(127);
	}
	close(outp[1]);
	close(errp[1]);
	r->out = calloc(1, 1);
	r->err = calloc(1, 1);
	{
		struct pollfd pf[2] = { { outp[0], POLLIN, 0 }, { errp[0], POLLIN, 0 } };
		int open_fds = 2;

		while (open_fds > 0) {
			if (poll(pf, 2, -1) < 0) {
				if (errno == EINTR)
					continue;
				break;
			}
			for (int i = 0; i < 2; i++) {
				if (pf[i].fd < 0 || !pf[i].revents)
					continue;
				if (append(i ? &r->err : &r->out, i ? &elen : &olen, pf[i].fd) <= 0) {
					close(pf[i].fd);
					pf[i].fd = -1;	/* poll skips negative fds */
					open_fds--;
				}
			}
		}
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	r->status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	if (r->status != 0 && r->err[0])
		fprintf(stderr, "  [wardenctl exit %d] %s", r->status, r->err);
	return 0;
}

#define ctl_run(r, ...) ctl_run_as(r, -1, __VA_ARGS__, NULL)

/* r ended with status, its stderr saying why (NULL: anything); r is freed. */
static void ctl_check(struct run *r, int status, const char *why)
{
	CU_ASSERT(r->status == status);
	if (why)
		CU_ASSERT(strstr(r->err, why) != NULL);
	run_free(r);
}

/* wardenctl ARGS... succeeds; wardenctl ARGS... fails (status 1) saying why on stderr. A macro,
 * so that a failure to run at all names the test's line. */
#define ctl_expect(status, why, ...)                                    \
	do {                                                            \
		struct run r_;                                          \
		CU_ASSERT_FATAL(ctl_run(&r_, __VA_ARGS__) == 0);        \
		ctl_check(&r_, status, why);                            \
	} while (0)
#define ctl_ok(...) ctl_expect(0, NULL, __VA_ARGS__)
#define ctl_refused(why, ...) ctl_expect(1, why, __VA_ARGS__)

static cJSON *parse_out(const struct run *r)
{
	cJSON *j = cJSON_Parse(r->out);

	if (!j)
		fprintf(stderr, "  not JSON: %s\n", r->out);
	return j;
}

/* ---- cgroups, listeners, children -------------------------------------------------------- */

static int connect_loopback(const void *arg)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	int fd;

	(void)arg;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return 251;
	return connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ? errno : 0;
}

/* connect(127.0.0.1:port) from a child in cg named comm; returns the child's errno (0: it
 * connected) and its pid. */
static int connect_from(const char *cg, const char *comm, pid_t *pid_out)
{
	return run_in_cgroup(cg, comm, connect_loopback, NULL, 250, pid_out);
}

static int random_hex(char *buf, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char raw[64];
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);

	if (fd < 0 || read(fd, raw, n) != (ssize_t)n) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	for (size_t i = 0; i < n; i++)
		buf[i] = hex[raw[i] & 15];
	buf[n] = '\0';
	return 0;
}

/* ---- suite ------------------------------------------------------------------------------- */

static int setup(void)
{
	struct enforcer_opts o = { .pin_dir = pin_dir };
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	char uid_us[40], dir[1000];
	int err;

	if ((err = enforcer_open(&o, &E)) < 0) {
		fprintf(stderr, "enforcer_open: %s\n", strerror(-err));
		return 1;
	}
	snprintf(cg_base, sizeof(cg_base), "%s/mcpwarden-ctltest-%d", root, (int)getpid());
	snprintf(cg_a, sizeof(cg_a), "%s/a", cg_base);
	snprintf(cg_b, sizeof(cg_b), "%s/b", cg_base);
	/* A cgroupfs-driver kubepods layout: kubepods/besteffort/pod<uid>/<container id>. */
	if (random_hex(ctr_id, 64) < 0 || random_hex(uid_us, 32) < 0)
		return 1;
	snprintf(pod_uid, sizeof(pod_uid), "%.8s-%.4s-%.4s-%.4s-%.12s", uid_us, uid_us + 8,
		 uid_us + 12, uid_us + 16, uid_us + 20);
	snprintf(cg_kube, sizeof(cg_kube), "%s/kubepods/besteffort/pod%s", cg_base, pod_uid);
	snprintf(cg_ctr, sizeof(cg_ctr), "%s/%s", cg_kube, ctr_id);
	if (mkdir(cg_base, 0755) < 0 || mkdir(cg_a, 0755) < 0 || mkdir(cg_b, 0755) < 0)
		return 1;
	snprintf(dir, sizeof(dir), "%s/kubepods", cg_base);
	if (mkdir(dir, 0755) < 0)
		return 1;
	snprintf(dir, sizeof(dir), "%s/kubepods/besteffort", cg_base);
	if (mkdir(dir, 0755) < 0 || mkdir(cg_kube, 0755) < 0 || mkdir(cg_ctr, 0755) < 0)
		return 1;
	srv = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (srv < 0 || bind(srv, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(srv, 64) < 0 ||
	    getsockname(srv, (struct sockaddr *)&sin, &len) < 0)
		return 1;
	port = ntohs(sin.sin_port);
	return 0;
}

static int teardown(void)
{
	char kubepods[1000], besteffort[1000];

	enforcer_close(E);
	E = NULL;
	if (enforcer_destroy_pins(pin_dir) < 0)
		fprintf(stderr, "cannot remove %s\n", pin_dir);
	snprintf(besteffort, sizeof(besteffort), "%s/kubepods/besteffort", cg_base);
	snprintf(kubepods, sizeof(kubepods), "%s/kubepods", cg_base);
	ktest_rmdirs(cg_ctr, cg_kube, besteffort, kubepods, cg_a, cg_b, cg_base, NULL);
	if (srv >= 0)
		close(srv);
	return 0;
}

/* ---- helpers over JSON ------------------------------------------------------------------- */

static const char *str_of(const cJSON *o, const char *k)
{
	const char *v = cJSON_GetStringValue(cJSON_GetObjectItem(o, k));

	return v ? v : "";
}

static cJSON *map_of(cJSON *maps_json, const char *name)
{
	return cJSON_GetObjectItem(cJSON_GetObjectItem(maps_json, "maps"), name);
}

/* A rule of that kind ("protect", "allow") and destination in a map dump. */
static bool has_rule(cJSON *arr, const char *kind, const char *dest)
{
	cJSON *it;

	cJSON_ArrayForEach(it, arr)
		if (strcmp(str_of(it, "dest"), dest) == 0 && strcmp(str_of(it, "kind"), kind) == 0)
			return true;
	return false;
}

/* Rules across every rule map (tries and exact maps). */
static int nrules_all(cJSON *j)
{
	static const char *const names[] = { "warden_protect4", "warden_protect6",
		"warden_allow4", "warden_allow6", "warden_exact4", "warden_exact6" };
	int n = 0;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		n += cJSON_GetArraySize(map_of(j, names[i]));
	return n;
}

static cJSON *enrolled_entry(cJSON *arr, const char *path)
{
	cJSON *it;

	cJSON_ArrayForEach(it, arr)
		if (strcmp(str_of(it, "cgroup"), path) == 0)
			return it;
	return NULL;
}


/* ---- tests ------------------------------------------------------------------------------- */

/* What the enforcer API configured is exactly what `maps --json` shows. */
static void test_maps_json(void)
{
	/* Set up, then taken down again; a NULL dest is the fixture port on 127.0.0.1. */
	static const struct { bool allow; const char *dest; } set[] = {
		{ false, NULL }, { false, "[fd00::/8]:443" }, { true, "10.96.0.10/32:53" },
		{ false, "10.1.0.0/16" }, { true, "10.1.2.3" }, { false, "[2001:db8::7]:8443" },
	};
	char prot[64];
	struct stat st;
	struct run r;
	cJSON *j, *en, *e;

	snprintf(prot, sizeof(prot), "127.0.0.1/32:%u", port);
	CU_ASSERT_FATAL(enforcer_enroll(E, cg_a, WARDEN_MODE_LOCKDOWN) == 0);
	for (size_t i = 0; i < sizeof(set) / sizeof(set[0]); i++)
		CU_ASSERT_FATAL((set[i].allow ? enforcer_allow : enforcer_protect)(E,
				set[i].dest ? set[i].dest : prot) == 0);

	CU_ASSERT_FATAL(ctl_run(&r, "maps", "--json") == 0);
	CU_ASSERT(r.status == 0);
	j = parse_out(&r);
	CU_ASSERT_FATAL(j != NULL);
	CU_ASSERT_STRING_EQUAL(str_of(j, "pin_dir"), pin_dir);
	en = map_of(j, "warden_enrolled");
	CU_ASSERT(cJSON_GetArraySize(en) == 1);
	e = enrolled_entry(en, cg_a);
	CU_ASSERT_FATAL(e != NULL);
	CU_ASSERT_STRING_EQUAL(str_of(e, "mode"), "lockdown");
	CU_ASSERT(stat(cg_a, &st) == 0 &&
		  cJSON_GetNumberValue(cJSON_GetObjectItem(e, "cgroup_id")) == (double)st.st_ino);
	CU_ASSERT(cJSON_GetNumberValue(cJSON_GetObjectItem(e, "level")) == 2);
	/* Prefixes are in the tries, hosts in the exact maps; each rule exactly once. */
	CU_ASSERT(nrules_all(j) == 6);
	CU_ASSERT(cJSON_GetArraySize(map_of(j, "warden_protect4")) == 1);
	CU_ASSERT(has_rule(map_of(j, "warden_protect4"), "protect", "10.1.0.0/16"));
	CU_ASSERT(cJSON_GetArraySize(map_of(j, "warden_protect6")) == 1);
	CU_ASSERT(has_rule(map_of(j, "warden_protect6"), "protect", "[fd00::/8]:443"));
	CU_ASSERT(cJSON_GetArraySize(map_of(j, "warden_allow4")) == 0);
	CU_ASSERT(cJSON_GetArraySize(map_of(j, "warden_allow6")) == 0);
	CU_ASSERT(cJSON_GetArraySize(map_of(j, "warden_exact4")) == 3);
	CU_ASSERT(has_rule(map_of(j, "warden_exact4"), "protect", prot));
	CU_ASSERT(has_rule(map_of(j, "warden_exact4"), "allow", "10.96.0.10/32:53"));
	CU_ASSERT(has_rule(map_of(j, "warden_exact4"), "allow", "10.1.2.3/32"));
	CU_ASSERT(cJSON_GetArraySize(map_of(j, "warden_exact6")) == 1);
	CU_ASSERT(has_rule(map_of(j, "warden_exact6"), "protect", "[2001:db8::7/128]:8443"));
	CU_ASSERT(cJSON_GetObjectItem(map_of(j, "warden_epoch"), "epoch") != NULL);
	CU_ASSERT_STRING_EQUAL(str_of(map_of(j, "warden_config"), "deny_errno"), "EPERM");
	cJSON_Delete(j);
	run_free(&r);

	/* The text table says the same. */
	CU_ASSERT_FATAL(ctl_run(&r, "maps") == 0);
	CU_ASSERT(r.status == 0);
	CU_ASSERT(strstr(r.out, cg_a) != NULL);
	CU_ASSERT(strstr(r.out, prot) != NULL);
	CU_ASSERT(strstr(r.out, "10.96.0.10/32:53") != NULL);
	CU_ASSERT(strstr(r.out, "allow    10.1.2.3/32") != NULL);
	CU_ASSERT(strstr(r.out, "10.1.0.0/16") != NULL);
	run_free(&r);

	/* status counts rules of both kinds wherever they live. */
	CU_ASSERT_FATAL(ctl_run(&r, "status", "--json") == 0);
	j = parse_out(&r);
	CU_ASSERT_FATAL(j != NULL);
	{
		cJSON *rules = cJSON_GetObjectItem(j, "rules");

		CU_ASSERT(cJSON_GetNumberValue(cJSON_GetObjectItem(rules, "protect")) == 4);
		CU_ASSERT(cJSON_GetNumberValue(cJSON_GetObjectItem(rules, "allow")) == 2);
	}
	cJSON_Delete(j);
	run_free(&r);

	CU_ASSERT(enforcer_unenroll(E, cg_a) == 0);
	for (size_t i = 0; i < sizeof(set) / sizeof(set[0]); i++)
		CU_ASSERT((set[i].allow ? enforcer_disallow : enforcer_unprotect)(E,
			  set[i].dest ? set[i].dest : prot) == 0);
}

/* enroll/protect through wardenctl refuse a real connect; unenroll/unprotect lift it. */
static void test_enroll_protect_take_effect(void)
{
	char prot[64], portarg[32];
	struct run r;
	cJSON *j;

	snprintf(prot, sizeof(prot), "127.0.0.1/32:%u", port);
	snprintf(portarg, sizeof(portarg), "127.0.0.1:%u", port);
	CU_ASSERT(connect_from(cg_b, "ctltest-pre", NULL) == 0);

	ctl_ok("enroll", cg_b, "--mode", "protect");
	CU_ASSERT_FATAL(ctl_run(&r, "protect", portarg) == 0);
	CU_ASSERT(r.status == 0);
	CU_ASSERT(strstr(r.out, prot) != NULL);	/* it reports the canonical form */
	run_free(&r);
	CU_ASSERT(connect_from(cg_b, "ctltest-prot", NULL) == EPERM);
	CU_ASSERT(connect_from(cg_a, "ctltest-free", NULL) == 0);	/* not enrolled */

	/* Relative to the cgroup root, mode change by enrolling again: lockdown refuses too. */
	ctl_ok("enroll", cg_a + strlen(root) + 1);
	CU_ASSERT(connect_from(cg_a, "ctltest-lock", NULL) == EPERM);

	CU_ASSERT_FATAL(ctl_run(&r, "maps", "--json") == 0);
	j = parse_out(&r);
	CU_ASSERT_FATAL(j != NULL);
	CU_ASSERT(cJSON_GetArraySize(map_of(j, "warden_enrolled")) == 2);
	CU_ASSERT_STRING_EQUAL(str_of(enrolled_entry(map_of(j, "warden_enrolled"), cg_b),
				      "mode"), "protect");
	CU_ASSERT_STRING_EQUAL(str_of(enrolled_entry(map_of(j, "warden_enrolled"), cg_a),
				      "mode"), "lockdown");
	CU_ASSERT(has_rule(map_of(j, "warden_exact4"), "protect", prot));
	cJSON_Delete(j);
	run_free(&r);

	/* The allowlist carves an exception out of a protected destination. */
	ctl_ok("allow", prot);
	CU_ASSERT(connect_from(cg_b, "ctltest-allow", NULL) == 0);
	CU_ASSERT(connect_from(cg_a, "ctltest-allow", NULL) == 0);
	ctl_ok("disallow", prot);

	ctl_ok("unenroll", cg_a);
	ctl_ok("unprotect", prot);
	CU_ASSERT(connect_from(cg_b, "ctltest-unprot", NULL) == 0);
	ctl_ok("unenroll", cg_b);
	/* Removing what is not there is an error, not silence. */
	ctl_refused("no such entry", "unprotect", prot);
}

/* --container and --pod find the cgroup in a kubepods layout. */
static void test_container_and_pod(void)
{
	char prefix[13];
	struct run r;
	cJSON *j, *en;

	memcpy(prefix, ctr_id, 12);
	prefix[12] = '\0';
	ctl_ok("enroll", "--container", prefix, "--mode", "protect");
	ctl_ok("exempt", "--pod", pod_uid);
	CU_ASSERT_FATAL(ctl_run(&r, "maps", "--json") == 0);
	j = parse_out(&r);
	CU_ASSERT_FATAL(j != NULL);
	en = map_of(j, "warden_enrolled");
	CU_ASSERT(cJSON_GetArraySize(en) == 2);
	CU_ASSERT_STRING_EQUAL(str_of(enrolled_entry(en, cg_ctr), "mode"), "protect");
	CU_ASSERT_STRING_EQUAL(str_of(enrolled_entry(en, cg_kube), "mode"), "exempt");
	cJSON_Delete(j);
	run_free(&r);
	ctl_ok("unenroll", "--container", ctr_id);
	ctl_ok("unenroll", "--pod", pod_uid);
	ctl_refused("no cgroup under", "enroll", "--container", "0123456789abcdef0123");
}

static bool cgroup_leftovers(void)
{
	struct dirent *de;
	DIR *d = opendir(root);
	char want[64];
	bool found = false;

	snprintf(want, sizeof(want), "mcpwarden-verify-");
	if (!d)
		return false;
	while ((de = readdir(d)))
		found |= strncmp(de->d_name, want, strlen(want)) == 0;
	closedir(d);
	return found;
}

static void test_verify(void)
{
	struct enforcer_counters before, after;
	struct run r;
	cJSON *j, *en;

	CU_ASSERT_FATAL(enforcer_counters(E, &before) == 0);
	CU_ASSERT_FATAL(ctl_run(&r, "verify") == 0);
	CU_ASSERT(r.status == 0);
	CU_ASSERT(strstr(r.out, "verify: OK") != NULL);
	CU_ASSERT(strstr(r.out, "FAIL") == NULL);
	run_free(&r);
	CU_ASSERT_FATAL(enforcer_counters(E, &after) == 0);
	CU_ASSERT(after.hook[WARDEN_HOOK_CONNECT4].denied > before.hook[WARDEN_HOOK_CONNECT4].denied);

	CU_ASSERT_FATAL(ctl_run(&r, "verify", "--mode", "lockdown", "--json") == 0);
	CU_ASSERT(r.status == 0);
	j = parse_out(&r);
	CU_ASSERT_FATAL(j != NULL);
	CU_ASSERT(cJSON_IsTrue(cJSON_GetObjectItem(j, "ok")));
	CU_ASSERT(cJSON_GetArraySize(cJSON_GetObjectItem(j, "checks")) >= 5);
	{
		/* AF_PACKET: refused where lsm_socket runs, reported open where it cannot. */
		bool packet = false;
		cJSON *c;

		cJSON_ArrayForEach(c, cJSON_GetObjectItem(j, "checks")) {
			const char *name = str_of(c, "check");

			if (strcmp(name, "refused-packet") == 0)
				packet = cJSON_IsTrue(cJSON_GetObjectItem(c, "ok"));
			else if (strcmp(name, "packet") == 0)
				packet = cJSON_IsTrue(cJSON_GetObjectItem(c, "open"));
		}
		CU_ASSERT(packet);
	}
	cJSON_Delete(j);
	run_free(&r);

	/* It left nothing behind: no enrolment, no rule, no cgroup. */
	CU_ASSERT_FATAL(ctl_run(&r, "maps", "--json") == 0);
	j = parse_out(&r);
	CU_ASSERT_FATAL(j != NULL);
	en = map_of(j, "warden_enrolled");
	CU_ASSERT(cJSON_GetArraySize(en) == 0);
	CU_ASSERT(cJSON_GetArraySize(map_of(j, "warden_protect4")) == 0);
	cJSON_Delete(j);
	run_free(&r);
	CU_ASSERT(!cgroup_leftovers());
}

static void test_status_json(void)
{
	struct enforcer_counters c;
	struct enforcer_status st;
	struct run r;
	cJSON *j, *h, *cnt;
	int i = 0;

	CU_ASSERT_FATAL(ctl_run(&r, "status", "--json") == 0);
	CU_ASSERT(r.status == 0);
	j = parse_out(&r);
	CU_ASSERT_FATAL(j != NULL);
	CU_ASSERT_FATAL(enforcer_status(E, &st) == 0);
	CU_ASSERT_FATAL(enforcer_counters(E, &c) == 0);
	CU_ASSERT(cJSON_IsTrue(cJSON_GetObjectItem(j, "loaded")));
	CU_ASSERT(cJSON_IsTrue(cJSON_GetObjectItem(j, "healthy")));
	CU_ASSERT_STRING_EQUAL(str_of(j, "pin_dir"), pin_dir);
	CU_ASSERT(cJSON_GetArraySize(cJSON_GetObjectItem(j, "hooks")) == WARDEN_HOOK_MAX);
	/* Where lsm_socket cannot attach, status says what stays open and why. */
	h = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "kernel"), "bpf_lsm");
	CU_ASSERT(cJSON_IsBool(h));
	if (!st.hooks[WARDEN_HOOK_LSM_SOCKET].attached) {
		h = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "open"), 0);
		CU_ASSERT(cJSON_IsString(h) && strstr(h->valuestring, "AF_PACKET") &&
			  strstr(h->valuestring, "not refused"));
	}
	cJSON_ArrayForEach(h, cJSON_GetObjectItem(j, "hooks")) {
		CU_ASSERT_STRING_EQUAL(str_of(h, "hook"), enforcer_hook_name((unsigned)i));
		CU_ASSERT(cJSON_IsTrue(cJSON_GetObjectItem(h, "attached")) == st.hooks[i].attached);
		if (st.hooks[i].attached) {
			CU_ASSERT(cJSON_GetNumberValue(cJSON_GetObjectItem(h, "link_id")) ==
				  st.hooks[i].link_id);
			CU_ASSERT(cJSON_GetNumberValue(cJSON_GetObjectItem(h, "prog_id")) ==
				  st.hooks[i].prog_id);
			if (i != WARDEN_HOOK_LSM_SOCKET)	/* a BPF LSM link has no cgroup */
				CU_ASSERT_STRING_EQUAL(str_of(h, "cgroup"), root);
		}
		i++;
	}
	CU_ASSERT(st.hooks[WARDEN_HOOK_CONNECT4].attached);
	/* Only our (now empty) enrolment decides allowed/denied: the counts are stable. */
	cnt = cJSON_GetObjectItem(j, "counters");
	CU_ASSERT(cJSON_GetNumberValue(cJSON_GetObjectItem(cnt, "denied")) ==
		  (double)c.total.denied);
	CU_ASSERT(cJSON_GetNumberValue(cJSON_GetObjectItem(cnt, "allowed")) ==
		  (double)c.total.allowed);
	CU_ASSERT(c.total.denied >= 2);		/* verify's refusals at least */
	CU_ASSERT(cJSON_GetObjectItem(cnt, "dropped") != NULL);
	CU_ASSERT(cJSON_IsBool(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "kernel"), "ringbuf")));
	/* This process holds the ring (its enforcer is open). */
	CU_ASSERT(cJSON_GetArraySize(cJSON_GetObjectItem(j, "event_ring_holders")) >= 1);
	cJSON_Delete(j);
	run_free(&r);

	CU_ASSERT_FATAL(ctl_run(&r, "status") == 0);
	CU_ASSERT(r.status == 0);
	CU_ASSERT(strstr(r.out, "connect4") != NULL && strstr(r.out, "attached") != NULL);
	run_free(&r);
}

/* Find our event among JSON lines. */
static cJSON *find_event_line(const char *out, pid_t pid)
{
	const char *line = out;

	while (line && *line) {
		const char *nl = strchr(line, '\n');
		size_t n = nl ? (size_t)(nl - line) : strlen(line);
		char *copy = strndup(line, n);
		cJSON *j = copy ? cJSON_Parse(copy) : NULL;

		free(copy);
		if (j && cJSON_GetNumberValue(cJSON_GetObjectItem(j, "pid")) == pid)
			return j;
		cJSON_Delete(j);
		line = nl ? nl + 1 : NULL;
	}
	return NULL;
}

static void check_event(cJSON *ev, pid_t pid)
{
	CU_ASSERT_FATAL(ev != NULL);
	CU_ASSERT_STRING_EQUAL(str_of(ev, "type"), "ebpf_deny");
	CU_ASSERT(cJSON_GetNumberValue(cJSON_GetObjectItem(ev, "pid")) == pid);
	CU_ASSERT_STRING_EQUAL(str_of(ev, "comm"), "ctltest-evt");
	CU_ASSERT_STRING_EQUAL(str_of(ev, "hook"), "connect4");
	CU_ASSERT_STRING_EQUAL(str_of(ev, "dst"), "127.0.0.1");
	CU_ASSERT(cJSON_GetNumberValue(cJSON_GetObjectItem(ev, "dport")) == port);
	CU_ASSERT_STRING_EQUAL(str_of(ev, "reason"), "protected");
	CU_ASSERT_STRING_EQUAL(str_of(ev, "cgroup"), cg_b);
}

static void test_events(void)
{
	char prot[64], ports[16], pidbuf[32];
	struct run r;
	pid_t pid, bg;
	int pfd[2], status;
	char *bg_out = NULL;
	size_t bg_len = 0;
	cJSON *ev;

	snprintf(prot, sizeof(prot), "127.0.0.1/32:%u", port);
	CU_ASSERT_FATAL(enforcer_enroll(E, cg_b, WARDEN_MODE_PROTECT) == 0);
	CU_ASSERT_FATAL(enforcer_protect(E, prot) == 0);

	/* What is waiting in the ring, read as a tap (this process holds the ring). */
	CU_ASSERT(connect_from(cg_b, "ctltest-evt", &pid) == EPERM);
	CU_ASSERT_FATAL(ctl_run(&r, "events", "--json") == 0);
	CU_ASSERT(r.status == 0);
	ev = find_event_line(r.out, pid);
	check_event(ev, pid);
	cJSON_Delete(ev);
	run_free(&r);
	/* A tap took nothing: the same event is still there; the text line names it too. */
	CU_ASSERT_FATAL(ctl_run(&r, "events") == 0);
	CU_ASSERT(r.status == 0);
	snprintf(pidbuf, sizeof(pidbuf), "pid=%d ", (int)pid);
	snprintf(ports, sizeof(ports), ":%u ", port);
	CU_ASSERT(strstr(r.out, pidbuf) != NULL);
	CU_ASSERT(strstr(r.out, "deny connect4 dst=127.0.0.1") != NULL);
	CU_ASSERT(strstr(r.out, ports) != NULL);
	CU_ASSERT(strstr(r.out, "comm=ctltest-evt") != NULL);
	run_free(&r);

	/* Drain, then follow: a bounded live wait gets exactly the next deny. */
	ctl_ok("events", "--consume");
	CU_ASSERT_FATAL(pipe2(pfd, O_CLOEXEC) == 0);
	bg = fork();
	CU_ASSERT_FATAL(bg >= 0);
	if (bg == 0) {
		dup2(pfd[1], 1);
		execl(ctl, ctl, "--pin-dir", pin_dir, "events", "--follow", "--json", "--count",
		      "1", "--timeout", "20", (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	usleep(200000);
	CU_ASSERT(connect_from(cg_b, "ctltest-evt", &pid) == EPERM);
	while (append(&bg_out, &bg_len, pfd[0]) > 0)
		;
	close(pfd[0]);
	waitpid(bg, &status, 0);
	CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CU_ASSERT_FATAL(bg_out != NULL);
	CU_ASSERT(strchr(bg_out, '\n') == bg_out + bg_len - 1);	/* exactly one line */
	ev = find_event_line(bg_out, pid);
	check_event(ev, pid);
	cJSON_Delete(ev);
	free(bg_out);

	/* Nothing new: --count with --timeout ends, and says the count was not reached. */
	CU_ASSERT_FATAL(ctl_run(&r, "events", "--consume") == 0);
	run_free(&r);
	CU_ASSERT_FATAL(ctl_run(&r, "events", "--json", "--count", "1", "--timeout", "0.3") == 0);
	CU_ASSERT(r.status == 1);
	CU_ASSERT(r.out[0] == '\0');
	CU_ASSERT(strstr(r.err, "0 of 1 events") != NULL);
	run_free(&r);

	CU_ASSERT(enforcer_unprotect(E, prot) == 0);
	CU_ASSERT(enforcer_unenroll(E, cg_b) == 0);
}

static void test_errors_and_help(void)
{
	char missing[200];
	struct run r;
	int err;
	const char *sections[] = { "NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "OPTIONS",
				   "EXIT STATUS", "EXAMPLES" };

	/* No pins: a clear message and its own exit status. */
	snprintf(missing, sizeof(missing), "%s-none", pin_dir);
	ctl_pin_dir = missing;
	err = ctl_run(&r, "status");
	ctl_pin_dir = pin_dir;
	CU_ASSERT_FATAL(err == 0);
	CU_ASSERT(r.status == 3);
	CU_ASSERT(strstr(r.err, "enforcement is not loaded (no pins under") != NULL);
	run_free(&r);

	/* Not root. */
	CU_ASSERT_FATAL(ctl_run_as(&r, 65534, "status", NULL) == 0);
	CU_ASSERT(r.status == 4);
	CU_ASSERT(strstr(r.err, "root") != NULL);
	run_free(&r);

	CU_ASSERT_FATAL(ctl_run(&r, "frobnicate") == 0);
	CU_ASSERT(r.status == 2);
	run_free(&r);
	CU_ASSERT_FATAL(ctl_run(&r, "protect", "300.1.2.3") == 0);
	CU_ASSERT(r.status == 2);
	CU_ASSERT(strstr(r.err, "not a destination") != NULL);
	run_free(&r);
	CU_ASSERT_FATAL(ctl_run(&r, "status", "--count", "3") == 0);
	CU_ASSERT(r.status == 2);
	run_free(&r);
	/* The cgroup v2 root is never enrolled. */
	CU_ASSERT_FATAL(ctl_run(&r, "enroll", root) == 0);
	CU_ASSERT(r.status == 1);
	run_free(&r);
	ctl_refused("admin API", "keys", "list");

	CU_ASSERT_FATAL(ctl_run(&r, "--help") == 0);
	CU_ASSERT(r.status == 0);
	for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++)
		CU_ASSERT(strstr(r.out, sections[i]) != NULL);
	run_free(&r);
	CU_ASSERT_FATAL(ctl_run(&r, "enroll", "--help") == 0);
	CU_ASSERT(r.status == 0);
	CU_ASSERT(strstr(r.out, "SYNOPSIS") && strstr(r.out, "--container"));
	run_free(&r);
}

/* Pins left by a build with another map layout (an older ABI) are refused by the daemon, the
 * pins reader and wardenctl with the upgrade path, and `uninstall --yes` removes them. */
static void test_abi_mismatch(void)
{
	struct enforcer_opts o = { .cgroup_root = root };
	struct warden_config cfg;
	struct enforcer *e = NULL;
	struct pins *p = NULL;
	char dir[160];
	__u32 zero = 0;
	int fd;

	snprintf(dir, sizeof(dir), "%s-abi", pin_dir);
	o.pin_dir = dir;
	CU_ASSERT_FATAL(enforcer_open(&o, &e) == 0);
	fd = enforcer_map_fd(e, WARDEN_MAP_CONFIG);
	CU_ASSERT_FATAL(fd >= 0 && bpf_map_lookup_elem(fd, &zero, &cfg) == 0);
	cfg.abi_version = WARDEN_ABI_VERSION - 1;	/* what an older daemon left */
	CU_ASSERT_FATAL(bpf_map_update_elem(fd, &zero, &cfg, BPF_ANY) == 0);
	enforcer_close(e);
	e = NULL;

	CU_ASSERT(enforcer_open(&o, &e) == -EPROTO);
	o.mode = ENFORCER_ADOPT;
	CU_ASSERT(enforcer_open(&o, &e) == -EPROTO);
	CU_ASSERT(pins_open(dir, &p) == -EPROTO);
	ctl_pin_dir = dir;
	ctl_refused("uninstall --yes", "maps");
	ctl_ok("uninstall", "--yes");
	ctl_pin_dir = pin_dir;
	/* The documented upgrade: after uninstall a fresh install works. */
	o.mode = ENFORCER_LOAD;
	CU_ASSERT(enforcer_open(&o, &e) == 0);
	enforcer_close(e);
	CU_ASSERT(enforcer_destroy_pins(dir) == 0);
}

/* Last: uninstall wants --yes, removes the pins, and says who still holds the programs. */
static void test_uninstall(void)
{
	char pid[32];
	struct run r;

	CU_ASSERT_FATAL(ctl_run(&r, "uninstall") == 0);
	CU_ASSERT(r.status == 2);
	run_free(&r);
	CU_ASSERT(access(pin_dir, F_OK) == 0);
	CU_ASSERT_FATAL(ctl_run(&r, "uninstall", "--yes") == 0);
	CU_ASSERT(r.status == 0);
	snprintf(pid, sizeof(pid), "(pid %d)", (int)getpid());
	CU_ASSERT(strstr(r.out, pid) != NULL);	/* this process's enforcer holds them */
	run_free(&r);
	CU_ASSERT(access(pin_dir, F_OK) < 0 && errno == ENOENT);
	CU_ASSERT_FATAL(ctl_run(&r, "status") == 0);
	CU_ASSERT(r.status == 3);
	run_free(&r);
}

static const struct cu_case cases[] = {
	{ "maps --json shows exactly what was configured", test_maps_json },
	{ "enroll/protect/allow through wardenctl take effect", test_enroll_protect_take_effect },
	{ "--container and --pod resolve kubepods cgroups", test_container_and_pod },
	{ "verify passes and leaves nothing behind", test_verify },
	{ "status --json reports links and counters", test_status_json },
	{ "events: tap, consume, bounded follow", test_events },
	{ "errors and help", test_errors_and_help },
	{ "pins of another ABI: refused, upgrade by uninstall", test_abi_mismatch },
	{ "uninstall", test_uninstall },
	{ NULL, NULL },
};

/* 1 when the suite can run here; 0 after printing SKIP and why (no root, no cgroup v2, BPF not
 * loadable: no CAP_BPF in a container, no bpffs); -1 when wardenctl is not built. */
static int preflight(void)
{
	const char *build = getenv("MCPWARDEN_BUILD");
	struct enforcer *probe = NULL;
	struct enforcer_opts o = { 0 };
	int err;

	if (!ktest_can_run("ktest_wardenctl", root, sizeof(root)))
		return 0;
	snprintf(ctl, sizeof(ctl), "%s/wardenctl", build ? build : "build/test");
	if (access(ctl, X_OK) < 0) {
		printf("ktest_wardenctl: %s: %s (build it: make MODE=test all)\n", ctl,
		       strerror(errno));
		return -1;
	}
	snprintf(pin_dir, sizeof(pin_dir), "/sys/fs/bpf/mcpwarden-ctltest-%d", (int)getpid());
	log_set_level(LOG_WARN);
	o.pin_dir = pin_dir;
	err = enforcer_open(&o, &probe);
	enforcer_close(probe);
	if (err == -EPERM || err == -EOPNOTSUPP || err == -ENOSYS) {
		printf("SKIP ktest_wardenctl: cannot load BPF enforcement: %s\n", strerror(-err));
		enforcer_destroy_pins(pin_dir);
		return 0;
	}
	return 1;
}

int main(void)
{
	int rc = preflight();

	if (rc <= 0)
		return rc < 0;
	rc = cu_run_suite("wardenctl (real kernel)", setup, teardown, cases);
	if (enforcer_destroy_pins(pin_dir) < 0)
		fprintf(stderr, "ktest_wardenctl: cannot remove %s\n", pin_dir);
	return rc;
}
