/* spawn: start a program as a child in its own process group, talking over three pipes.
 *
 * Two steps, so a caller can allocate everything it needs (events on our ends of the pipes)
 * before the child exists and nothing can fail after it does: spawn_pipes() makes the pipes,
 * spawn_run() forks and waits until the exec succeeded or failed (the short wait posix_spawn
 * makes). The child gets default signal dispositions, an empty mask, only its three standard
 * descriptors, and dies with the daemon (PR_SET_PDEATHSIG). Programs come from the config
 * only, never from request data.
 */
#ifndef WARDEN_SPAWN_H
#define WARDEN_SPAWN_H

#include <sys/types.h>

struct spawn {
	int in, out, err;   /* our ends, non-blocking and close-on-exec: the child's stdin,
			     * stdout, stderr; -1 when not open (take them by setting -1) */
	int child[3];       /* the child's ends, kept clear of 0..2 */
	int status[2];      /* close-on-exec pipe that carries a failed exec's errno */
};

void spawn_init(struct spawn *sp);
/* argv[0] without a '/' is looked up in envp's PATH (else the daemon's, else a default),
 * absolute directories only, the way execvp would. *path is allocated. */
int spawn_resolve(const char *prog, char *const *envp, char **path);
int spawn_pipes(struct spawn *sp);
/* Fork and exec; 0 with *pid and *pidfd (a pidfd of the child, readable once it has exited:
 * the caller's to close) once the exec succeeded, else a negative errno (the child, if any,
 * is reaped). The child's ends are closed either way. */
int spawn_run(struct spawn *sp, const char *path, char *const *argv, char *const *envp,
	      const char *cwd, pid_t *pid, int *pidfd);
/* Close every descriptor still open. */
void spawn_close(struct spawn *sp);

#endif
