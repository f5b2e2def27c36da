/* Two writers of the enforcement config (the daemon and wardenctl in real life) must never lose
 * each other's changes: a lost level bit would make the programs skip a cgroup depth where an
 * agent is enrolled. Writers serialise on a flock of the pin directory; this checks that a
 * writer really waits for it and that both changes survive. Real kernel, real pins. */
#include <CUnit/Basic.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <unistd.h>

#include "enforce/enforcer.h"
#include "enforce/pins.h"
#include "cunit_main.h"

static char pin_dir[128], root[PATH_MAX], top[PATH_MAX + 64], shallow[PATH_MAX + 80],
	deep[PATH_MAX + 80];
static const char *skip;

/* In a child: on a byte from go_fd, enrol path through its own enforcer (as wardenctl would),
 * then say so. Forked before the parent takes the lock: a child forked while the lock is held
 * would inherit the locked file description and hold the lock itself. */
static pid_t enrol_in_child(const char *path, int go_fd, int done_fd)
{
	pid_t pid = fork();

	if (pid == 0) {
		struct enforcer_opts o = { .pin_dir = pin_dir, .mode = ENFORCER_ADOPT };
		struct enforcer *e;
		char c;
		int rc = read(go_fd, &c, 1) != 1 || enforcer_open(&o, &e) ||
			 enforcer_enroll(e, path, WARDEN_MODE_PROTECT);
		if (write(done_fd, rc ? "F" : "D", 1) != 1)
			rc = 1;
		_exit(rc);
	}
	return pid;
}

static bool readable_within(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, ms) == 1;
}

static void test_writers_take_turns(void)
{
	struct enforcer_opts o = { .pin_dir = pin_dir, .mode = ENFORCER_LOAD };
	struct enforcer *e = NULL;
	struct warden_config cfg;
	struct pins *p;
	int done[2], go[2], lock, status;
	char c = 0;

	if (skip) {
		printf("\n  SKIP: %s\n", skip);
		return;
	}
	CU_ASSERT_EQUAL_FATAL(enforcer_open(&o, &e), 0);
	CU_ASSERT_EQUAL_FATAL(enforcer_enroll(e, deep, WARDEN_MODE_PROTECT), 0);
	CU_ASSERT_EQUAL_FATAL(pipe(done), 0);
	CU_ASSERT_EQUAL_FATAL(pipe(go), 0);
	pid_t child = enrol_in_child(shallow, go[0], done[1]);

	/* Another writer is in the middle of a read-modify-write: hold the lock it would hold. */
	lock = open(pin_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CU_ASSERT_FATAL(lock >= 0 && flock(lock, LOCK_EX) == 0);
	CU_ASSERT_EQUAL(write(go[1], "g", 1), 1);
	CU_ASSERT_FALSE(readable_within(done[0], 400));  /* it waits for its turn */
	close(lock);                                     /* our turn is over */
	CU_ASSERT_TRUE(readable_within(done[0], 5000));
	CU_ASSERT_EQUAL(read(done[0], &c, 1), 1);
	CU_ASSERT_EQUAL(c, 'D');
	waitpid(child, &status, 0);
	CU_ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	/* Both writers' depths are in the mask the programs read. */
	CU_ASSERT_EQUAL_FATAL(pins_open(pin_dir, &p), 0);
	CU_ASSERT_EQUAL(pins_config(p, &cfg), 0);
	pins_close(p);
	CU_ASSERT_EQUAL(__builtin_popcount(cfg.level_mask), 2);
	close(done[0]);
	close(done[1]);
	close(go[0]);
	close(go[1]);
	enforcer_close(e);
}

static int setup(void)
{
	if (geteuid() != 0) {
		skip = "needs root (BPF, cgroups)";
		return 0;
	}
	if (cgroup_detect_root(root, sizeof(root))) {
		skip = "no cgroup v2 hierarchy";
		return 0;
	}
	snprintf(pin_dir, sizeof(pin_dir), "/sys/fs/bpf/mcpwarden-locktest-%d", (int)getpid());
	snprintf(top, sizeof(top), "%s/mcpwarden-locktest-%d", root, (int)getpid());
	snprintf(shallow, sizeof(shallow), "%s/a", top);
	snprintf(deep, sizeof(deep), "%s/x", top);
	if (mkdir(top, 0755) || mkdir(shallow, 0755) || mkdir(deep, 0755))
		return -1;
	strcat(deep, "/y");
	if (mkdir(deep, 0755))
		return -1;
	return 0;
}

static int teardown(void)
{
	if (skip)
		return 0;
	enforcer_destroy_pins(pin_dir);
	rmdir(deep);
	deep[strlen(deep) - 2] = '\0';
	rmdir(deep);
	rmdir(shallow);
	rmdir(top);
	return 0;
}

CU_MAIN("config lock", setup, teardown,
	{ "writers of the config take turns", test_writers_take_turns })
