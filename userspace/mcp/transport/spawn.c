/* spawn: fork and exec a configured program with three pipes. */
#include "mcp/transport/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/log.h"

/* Only absolute directories: a relative one would depend on our cwd. This is a few stat
 * calls, at start-up or on a restart. */
int spawn_resolve(const char *prog, char *const *envp, char **out)
{
	const char *path = NULL, *p, *end;
	char buf[PATH_MAX];
	int r = -ENOENT;

	if (strchr(prog, '/')) {
		*out = xstrdup(prog);
		return 0;
	}
	for (char *const *e = envp; e && *e; e++) {
		if (strncmp(*e, "PATH=", 5) == 0) {
			path = *e + 5;
			break;
		}
	}
	if (!path)
		path = getenv("PATH");
	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	for (p = path; *p; p = *end ? end + 1 : end) {
		struct stat sb;
		int n;

		end = strchrnul(p, ':');
		if (*p != '/')
			continue;
		n = snprintf(buf, sizeof(buf), "%.*s/%s", (int)(end - p), p, prog);
		if (n < 0 || (size_t)n >= sizeof(buf) || stat(buf, &sb) < 0 || !S_ISREG(sb.st_mode))
			continue;
		if (access(buf, X_OK) < 0) {
			r = -EACCES;
			continue;
		}
		*out = xstrdup(buf);
		return 0;
	}
	return r;
}

/* Keep a descriptor clear of 0..2 so the child's dup2s onto 0, 1, 2 cannot clobber it (the
 * daemon may run with a standard descriptor closed). */
static int fd_above_stdio(int *fd)
{
	int nfd;

	if (*fd > 2)
		return 0;
	nfd = fcntl(*fd, F_DUPFD_CLOEXEC, 3);
	if (nfd < 0)
		return -errno;
	close(*fd);
	*fd = nfd;
	return 0;
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

struct spawn_args {
	const char *path;
	char *const *argv;
	char *const *envp;
	const char *cwd;
	int in, out, err;       /* child ends, all > 2 */
	int status;             /* close-on-exec pipe reporting a failed exec, > 2 */
	pid_t parent;
	int maxfd;              /* for the close loop when close_range is missing */
};

/* Runs in the forked child: async-signal-safe calls only. Every failure is reported through
 * the status pipe; results that cannot matter (resetting a signal that cannot be reset) are
 * deliberately ignored. */
static void __attribute__((noreturn)) child_exec(const struct spawn_args *a)
{
	static char *const empty_env[] = { NULL };
	struct sigaction sa;
	sigset_t none;
	int e;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	for (int sig = 1; sig < NSIG; sig++)
		(void)sigaction(sig, &sa, NULL);
	if (setpgid(0, 0) < 0)
		goto fail;
	/* Die with the daemon, so a killed daemon leaves no upstreams behind. It fires when the
	 * forking thread ends: that is the loop thread, which lives as long as the daemon. */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0)
		goto fail;
	if (getppid() != a->parent)
		_exit(127);     /* the daemon died before prctl took effect */
	if (dup2(a->in, 0) < 0 || dup2(a->out, 1) < 0 || dup2(a->err, 2) < 0)
		goto fail;
	if (a->cwd && chdir(a->cwd) < 0)
		goto fail;
	/* O_CLOEXEC covers our own descriptors; this covers any a library opened without it.
	 * The status pipe stays open until exec, which closes it. */
	if ((a->status > 3 && close_range(3, (unsigned)a->status - 1, 0) < 0) ||
	    close_range((unsigned)a->status + 1, ~0U, 0) < 0) {
		for (int fd = 3; fd < a->maxfd; fd++)
			if (fd != a->status)
				(void)close(fd);
	}
	sigemptyset(&none);
	if (sigprocmask(SIG_SETMASK, &none, NULL) < 0)
		goto fail;
	execve(a->path, a->argv, a->envp ? a->envp : empty_env);
fail:
	e = errno;
	(void)!write(a->status, &e, sizeof(e));
	_exit(127);
}

void spawn_init(struct spawn *sp)
{
	sp->in = sp->out = sp->err = -1;
	sp->child[0] = sp->child[1] = sp->child[2] = -1;
	sp->status[0] = sp->status[1] = -1;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

void spawn_close(struct spawn *sp)
{
	close_fd(&sp->in);
	close_fd(&sp->out);
	close_fd(&sp->err);
	for (int i = 0; i < 3; i++)
		close_fd(&sp->child[i]);
	close_fd(&sp->status[0]);
	close_fd(&sp->status[1]);
}

/* A pipe: one end ours (non-blocking), one the child's (clear of 0..2). */
static int pipe_pair(int *ours, int *theirs, bool child_reads)
{
	int p[2], r;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	*ours = child_reads ? p[1] : p[0];
	*theirs = child_reads ? p[0] : p[1];
	if ((r = fd_above_stdio(theirs)) < 0 || (r = set_nonblock(*ours)) < 0)
		return r;
	return 0;
}

int spawn_pipes(struct spawn *sp)
{
	int r;

	if ((r = pipe_pair(&sp->in, &sp->child[0], true)) < 0 ||
	    (r = pipe_pair(&sp->out, &sp->child[1], false)) < 0 ||
	    (r = pipe_pair(&sp->err, &sp->child[2], false)) < 0)
		return r;
	if (pipe2(sp->status, O_CLOEXEC) < 0)
		return -errno;
	return fd_above_stdio(&sp->status[1]);
}

int spawn_run(struct spawn *sp, const char *path, char *const *argv, char *const *envp,
	      const char *cwd, pid_t *pidp, int *pidfdp)
{
	struct spawn_args a = {
		.path = path, .argv = argv, .envp = envp, .cwd = cwd,
		.in = sp->child[0], .out = sp->child[1], .err = sp->child[2], .status = sp->status[1],
		.parent = getpid(), .maxfd = 65536,
	};
	struct rlimit rl;
	sigset_t all, old;
	ssize_t n;
	pid_t pid;
	int r, e = 0;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur < (rlim_t)a.maxfd)
		a.maxfd = (int)rl.rlim_cur;
	/* Block every signal across fork: no handler of ours (libevent's) may run in the child
	 * before it has reset them all. */
	sigfillset(&all);
	if ((r = -pthread_sigmask(SIG_SETMASK, &all, &old)) < 0)
		goto out;
	pid = fork();
	if (pid == 0)
		child_exec(&a);
	e = errno;
	r = -pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (pid < 0) {
		r = -e;
		goto out;
	}
	if (r < 0) {
		/* The child runs, but our signals stay blocked: say so, and go on. */
		log_error("spawn %s: restoring the signal mask: %s", path, strerror(-r));
	}
	close_fd(&sp->status[1]);
	/* Wait for exec: the pipe closes on success or carries errno. It also means the child
	 * is in its own group when we return. */
	do
		n = read(sp->status[0], &e, sizeof(e));
	while (n < 0 && errno == EINTR);
	if (n != 0) {
		r = n == (ssize_t)sizeof(e) ? -e : -EIO;
		goto reap;
	}
	/* Its end is watched through a pidfd on the loop that started it: no SIGCHLD handler,
	 * so loops on several threads each watch their own children. */
	*pidfdp = (int)syscall(SYS_pidfd_open, pid, 0);
	if (*pidfdp < 0) {
		r = -errno;
		log_error("spawn %s: pidfd_open: %s; stopping it", path, strerror(-r));
		kill(-pid, SIGKILL);
		kill(pid, SIGKILL);
		goto reap;
	}
	*pidp = pid;
	r = 0;
	goto out;
reap:
	/* It exits at once (127, or killed): reap it here, nobody else knows it. */
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
out:
	for (int i = 0; i < 3; i++)
		close_fd(&sp->child[i]);
	close_fd(&sp->status[0]);
	close_fd(&sp->status[1]);
	return r;
}
