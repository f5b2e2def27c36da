/* verify: prove end to end that an enrolled cgroup is refused; uninstall. */
#include "wardenctl.h"

/* ---- verify ------------------------------------------------------------------------------ */

struct verify {
	const struct args *a;
	struct enforcer *e;
	struct pins *p;
	struct pins_ring *ring;
	enum warden_mode mode;
	char cgroup[PATH_MAX];
	bool cgroup_made, enrolled, protected_added;
	char dest[64];
	int listen_fd;
	uint16_t port;
	pid_t child;
	bool lsm_attached;	/* lsm_socket: the child also tries an AF_PACKET socket */
	int failures, open;
	cJSON *checks;		/* --json */
};

static void check(struct verify *v, bool ok, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void check(struct verify *v, bool ok, const char *name, const char *fmt, ...)
{
	char detail[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	v->failures += !ok;
	if (v->checks) {
		cJSON *c = cJSON_CreateObject();

		cJSON_AddStringToObject(c, "check", name);
		cJSON_AddBoolToObject(c, "ok", ok);
		cJSON_AddStringToObject(c, "detail", detail);
		cJSON_AddItemToArray(v->checks, c);
	} else {
		printf("verify: %-4s %s: %s\n", ok ? "ok" : "FAIL", name, detail);
	}
}

/* A gap the installed hooks leave: not a failure (the kernel decides), but said. */
static void note_open(struct verify *v, const char *name, const char *detail)
{
	v->open++;
	if (v->checks) {
		cJSON *c = cJSON_CreateObject();

		cJSON_AddStringToObject(c, "check", name);
		cJSON_AddBoolToObject(c, "ok", 1);
		cJSON_AddBoolToObject(c, "open", 1);
		cJSON_AddStringToObject(c, "detail", detail);
		cJSON_AddItemToArray(v->checks, c);
	} else {
		printf("verify: OPEN %s: %s\n", name, detail);
	}
}

/* What the child reports back through the pipe. */
struct child_report {
	int join_err;		/* joining the cgroup */
	int v4_err;		/* connect(127.0.0.1:port) */
	int mapped_err;		/* connect(::ffff:127.0.0.1:port); EAFNOSUPPORT: no IPv6 */
	int packet_err;		/* socket(AF_PACKET, SOCK_RAW), when lsm_socket is attached */
};

static int try_connect(int family, uint16_t port)
{
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0), err = 0;

	if (fd < 0)
		return errno;
	if (family == AF_INET) {
		struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };

		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		err = connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ? errno : 0;
	} else {
		struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6, .sin6_port = htons(port) };

		inet_pton(AF_INET6, "::ffff:127.0.0.1", &sin6.sin6_addr);
		err = connect(fd, (struct sockaddr *)&sin6, sizeof(sin6)) < 0 ? errno : 0;
	}
	close(fd);
	return err;
}

static void verify_child(const char *cgroup, uint16_t port, bool packet, int wfd)
{
	struct child_report r = { 0 };
	char procs[PATH_MAX + 16];
	int fd;
	ssize_t w;

	prctl(PR_SET_NAME, "wardenctl-vrfy");
	snprintf(procs, sizeof(procs), "%s/cgroup.procs", cgroup);
	fd = open(procs, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, "0", 1) != 1)
		r.join_err = errno ? errno : EIO;
	if (fd >= 0)
		close(fd);
	if (!r.join_err) {
		r.v4_err = try_connect(AF_INET, port);
		r.mapped_err = try_connect(AF_INET6, port);
		if (packet) {
			fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
			r.packet_err = fd < 0 ? errno : 0;
			if (fd >= 0)
				close(fd);
		}
	}
	w = write(wfd, &r, sizeof(r));
	_exit(w == (ssize_t)sizeof(r) ? 0 : 1);
}

struct find_ctx {
	pid_t pid;
	uint16_t port;
	bool found;
	struct warden_event ev;
};

static int find_event(const struct warden_event *ev, void *arg)
{
	struct find_ctx *f = arg;

	if ((pid_t)ev->tgid == f->pid && ev->hook == WARDEN_HOOK_CONNECT4 && ev->dport == f->port) {
		f->ev = *ev;
		f->found = true;
		return 1;
	}
	return 0;
}

static void verify_cleanup(struct verify *v)
{
	int err;

	if (v->protected_added && (err = enforcer_unprotect(v->e, v->dest)) < 0)
		ctl_errmsg("verify: cleanup: removing %s: %s", v->dest, strerror(-err));
	if (v->enrolled && (err = enforcer_unenroll(v->e, v->cgroup)) < 0)
		ctl_errmsg("verify: cleanup: unenrolling %s: %s", v->cgroup, strerror(-err));
	if (v->cgroup_made) {
		/* The child has been reaped; the kernel may take a moment to let the cgroup go. */
		for (int i = 0; i < 100 && rmdir(v->cgroup) < 0 && errno == EBUSY; i++)
			usleep(10000);
		if (access(v->cgroup, F_OK) == 0)
			ctl_errmsg("verify: cleanup: cannot remove %s: %s", v->cgroup, strerror(errno));
	}
	if (v->listen_fd >= 0)
		close(v->listen_fd);
}

static int verify_run(struct verify *v)
{
	struct warden_counters hook[WARDEN_HOOK_MAX], tot, hook2[WARDEN_HOOK_MAX];
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t slen = sizeof(sin);
	struct warden_config cfg;
	struct child_report rep = { 0 };
	struct find_ctx fc = { 0 };
	int pipefd[2] = { -1, -1 }, status, err, expect;
	ssize_t got;

	err = pins_config(v->p, &cfg);
	if (err < 0) {
		check(v, false, "config", "reading %s: %s", WARDEN_MAP_CONFIG, strerror(-err));
		return -1;
	}
	expect = cfg.deny_errno ? (int)cfg.deny_errno : EPERM;
	{
		struct pins_link l;
		struct pins_features f;

		if (pins_link(v->p, WARDEN_HOOK_LSM_SOCKET, &l) == 0 && l.attached)
			v->lsm_attached = true;
		else {
			char why[300];

			pins_features(&f);
			snprintf(why, sizeof(why), "AF_PACKET, AF_XDP and AF_VSOCK sockets are not "
				 "refused: %s", f.bpf_lsm ? "lsm_socket is not attached (the "
				 "daemon's log says why)" : f.bpf_lsm_why);
			note_open(v, "packet", why);
		}
		if (pins_link(v->p, WARDEN_HOOK_CONNECT_UNIX, &l) < 0 || !l.attached)
			note_open(v, "unix", "protected unix socket paths are not enforced: "
				  "connect_unix is not attached (kernel 6.7+)");
	}

	/* A temporary listener on an ephemeral loopback port: the destination to refuse. */
	v->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (v->listen_fd < 0 || bind(v->listen_fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    listen(v->listen_fd, 8) < 0 ||
	    getsockname(v->listen_fd, (struct sockaddr *)&sin, &slen) < 0) {
		check(v, false, "listener", "127.0.0.1: %s", strerror(errno));
		return -1;
	}
	v->port = ntohs(sin.sin_port);
	snprintf(v->dest, sizeof(v->dest), "127.0.0.1/32:%u", v->port);
	err = try_connect(AF_INET, v->port);
	check(v, err == 0, "control", "connect to 127.0.0.1:%u from wardenctl's own cgroup: %s%s",
	      v->port, err ? strerror(err) : "allowed",
	      err ? " (is wardenctl itself in an enforced cgroup? run verify from the host)" : "");
	if (err)
		return -1;

	/* The temporary cgroup, enrolled, with the listener protected (protect mode). */
	snprintf(v->cgroup, sizeof(v->cgroup), "%s/mcpwarden-verify-%d",
		 enforcer_cgroup_root(v->e), (int)getpid());
	if (mkdir(v->cgroup, 0755) < 0) {
		check(v, false, "cgroup", "mkdir %s: %s", v->cgroup, strerror(errno));
		return -1;
	}
	v->cgroup_made = true;
	err = enforcer_enroll(v->e, v->cgroup, v->mode);
	check(v, err == 0, "enroll", "%s in %s mode%s%s", v->cgroup, enforcer_mode_name(v->mode),
	      err ? ": " : "", err ? strerror(-err) : "");
	if (err)
		return -1;
	v->enrolled = true;
	if (v->mode == WARDEN_MODE_PROTECT) {
		err = enforcer_protect(v->e, v->dest);
		check(v, err == 0, "protect", "%s (the temporary listener)%s%s", v->dest,
		      err ? ": " : "", err ? strerror(-err) : "");
		if (err)
			return -1;
		v->protected_added = true;
	}

	err = pins_ring_open(v->p, PINS_RING_TAP, &v->ring);
	if (err < 0) {
		check(v, false, "events", "opening the event ring: %s", strerror(-err));
		return -1;
	}
	pins_ring_skip(v->ring);
	if ((err = pins_counters(v->p, hook, &tot)) < 0) {
		check(v, false, "counters", "%s", strerror(-err));
		return -1;
	}

	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		check(v, false, "child", "pipe: %s", strerror(errno));
		return -1;
	}
	fflush(NULL);
	v->child = fork();
	if (v->child < 0) {
		check(v, false, "child", "fork: %s", strerror(errno));
		close(pipefd[0]);
		close(pipefd[1]);
		return -1;
	}
	if (v->child == 0) {
		close(pipefd[0]);
		verify_child(v->cgroup, v->port, v->lsm_attached, pipefd[1]);
	}
	close(pipefd[1]);
	got = read(pipefd[0], &rep, sizeof(rep));
	close(pipefd[0]);
	while (waitpid(v->child, &status, 0) < 0 && errno == EINTR)
		;
	if (got != (ssize_t)sizeof(rep)) {
		check(v, false, "child", "the test process (pid %d) did not report", (int)v->child);
		return -1;
	}
	if (rep.join_err) {
		check(v, false, "child", "joining %s: %s", v->cgroup, strerror(rep.join_err));
		return -1;
	}
	check(v, rep.v4_err == expect, "refused",
	      "connect to 127.0.0.1:%u from the enrolled cgroup (pid %d): %s%s%s", v->port,
	      (int)v->child, rep.v4_err ? ctl_errno_label(rep.v4_err) : "ALLOWED",
	      rep.v4_err == expect ? "" : ", expected ", rep.v4_err == expect ? "" :
	      ctl_errno_label(expect));
	if (rep.mapped_err == EAFNOSUPPORT)
		check(v, true, "refused-v4mapped", "skipped: no IPv6 in this network namespace");
	else
		check(v, rep.mapped_err == expect, "refused-v4mapped",
		      "connect to [::ffff:127.0.0.1]:%u: %s%s%s", v->port,
		      rep.mapped_err ? ctl_errno_label(rep.mapped_err) : "ALLOWED",
		      rep.mapped_err == expect ? "" : ", expected ",
		      rep.mapped_err == expect ? "" : ctl_errno_label(expect));
	/* lsm_socket refuses with EPERM whatever deny_errno says (socket(), not connect()). */
	if (v->lsm_attached)
		check(v, rep.packet_err == EPERM, "refused-packet",
		      "socket(AF_PACKET, SOCK_RAW) from the enrolled cgroup: %s%s",
		      rep.packet_err ? ctl_errno_label(rep.packet_err) : "ALLOWED",
		      rep.packet_err == EPERM ? "" : ", expected EPERM");

	if ((err = pins_counters(v->p, hook2, &tot)) < 0) {
		check(v, false, "counters", "%s", strerror(-err));
		return -1;
	}
	check(v, hook2[WARDEN_HOOK_CONNECT4].denied > hook[WARDEN_HOOK_CONNECT4].denied,
	      "counted", "%s connect4 denied %" PRIu64 " -> %" PRIu64, WARDEN_MAP_COUNTERS,
	      (uint64_t)hook[WARDEN_HOOK_CONNECT4].denied,
	      (uint64_t)hook2[WARDEN_HOOK_CONNECT4].denied);
	fc.pid = v->child;
	fc.port = v->port;
	err = pins_ring_read(v->ring, find_event, &fc);
	if (err < 0) {
		check(v, false, "event", "reading the event ring: %s", strerror(-err));
	} else if (fc.found) {
		char comm[WARDEN_COMM_LEN + 1];

		memcpy(comm, fc.ev.comm, WARDEN_COMM_LEN);
		comm[WARDEN_COMM_LEN] = '\0';
		check(v, fc.ev.reason == (v->mode == WARDEN_MODE_PROTECT ? WARDEN_REASON_PROTECTED
						     : WARDEN_REASON_LOCKDOWN),
		      "event", "deny event: pid %u comm %s hook %s dst 127.0.0.1:%u reason %s",
		      fc.ev.tgid, comm, enforcer_hook_name(fc.ev.hook), fc.ev.dport,
		      enforcer_reason_name(fc.ev.reason));
	} else if (hook2[WARDEN_HOOK_CONNECT4].events_dropped >
		   hook[WARDEN_HOOK_CONNECT4].events_dropped) {
		check(v, false, "event", "the deny event was dropped: the ring %s is full (is "
		      "the daemon consuming it?)", WARDEN_MAP_EVENTS);
	} else {
		check(v, false, "event", "no deny event for pid %d in %s", (int)v->child,
		      WARDEN_MAP_EVENTS);
	}
	return 0;
}

int cmd_verify(struct args *a)
{
	struct verify v = { .a = a, .listen_fd = -1, .mode = WARDEN_MODE_PROTECT };
	sigset_t block, old;
	int rc;

	if (a->mode && enforcer_mode_parse(a->mode, &v.mode) < 0) {
		ctl_errmsg("verify: --mode must be lockdown or protect, not '%s'", a->mode);
		return EXIT_USAGE;
	}
	rc = ctl_open_enforcer(a, &v.e);
	if (rc != EXIT_OK)
		return rc;
	rc = ctl_open_pins(a, &v.p);
	if (rc != EXIT_OK)
		goto out;
	if (a->json)
		v.checks = cJSON_CreateArray();
	/* The temporary enrolment must never outlive us: no signal interrupts until cleanup. */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	sigprocmask(SIG_BLOCK, &block, &old);
	verify_run(&v);
	verify_cleanup(&v);
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (v.checks) {
		cJSON *o = cJSON_CreateObject();

		cJSON_AddBoolToObject(o, "ok", v.failures == 0);
		cJSON_AddNumberToObject(o, "open", v.open);
		cJSON_AddStringToObject(o, "mode", enforcer_mode_name(v.mode));
		cJSON_AddItemToObject(o, "checks", v.checks);
		ctl_print_json(o);
		cJSON_Delete(o);
	} else if (v.failures) {
		printf("verify: FAILED: %d check%s failed; enforcement is NOT working as "
		       "configured\n", v.failures, v.failures == 1 ? "" : "s");
	} else {
		printf("verify: OK: an enrolled cgroup is refused; temporary cgroup and rules "
		       "removed%s\n", v.open ? " (see OPEN above for what stays open)" : "");
	}
	rc = v.failures ? EXIT_FAIL : EXIT_OK;
out:
	pins_ring_close(v.ring);
	pins_close(v.p);
	enforcer_close(v.e);
	return rc;
}

/* ---- uninstall --------------------------------------------------------------------------- */

int cmd_uninstall(struct args *a)
{
	struct holders h = { .n = 0 };
	struct pins *p = NULL;
	int err;

	if (!a->yes) {
		ctl_errmsg("uninstall stops enforcement for every enrolled cgroup: add --yes to confirm");
		return EXIT_USAGE;
	}
	/* A pin directory of another ABI cannot be decoded but can be removed: that is the
	 * remedy for it. */
	err = pins_open(a->pin_dir, &p);
	if (err < 0 && err != -EPROTO)
		return ctl_pins_error(a->pin_dir, err);
	if (p && pins_map_holders(p, PINS_CONFIG, h.pid, 8, &h.n) < 0)
		h.n = 0;
	pins_close(p);
	err = enforcer_destroy_pins(a->pin_dir);
	if (err < 0) {
		ctl_errmsg("removing the pins under %s: %s", a->pin_dir, strerror(-err));
		return EXIT_FAIL;
	}
	printf("removed the pins under %s\n", a->pin_dir);
	if (!h.n) {
		printf("enforcement is detached\n");
		return EXIT_OK;
	}
	/* Links live while any fd refers to them: a running daemon keeps enforcing. */
	printf("still held open by");
	for (size_t i = 0; i < h.n && i < 8; i++) {
		char comm[32];

		ctl_holder_comm(h.pid[i], comm, sizeof(comm));
		printf("%s %s (pid %d)", i ? "," : "", comm, (int)h.pid[i]);
	}
	printf(": its programs stay attached until it exits (stop mcpwarden first to end "
	       "enforcement now)\n");
	return EXIT_OK;
}
