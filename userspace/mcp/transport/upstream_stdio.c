/* upstream_stdio: an MCP server as a child process speaking newline-delimited JSON-RPC.
 *
 * start() forks and execs the child from the config alone, in its own process group, with three
 * non-blocking pipes watched by plain events on the loop, and its end by a pidfd on the same
 * loop (no SIGCHLD handler: loops on several threads each watch their own children, and
 * other modules' children are left alone). "Down" is reported once, after the child is reaped
 * (so its status is known) and what it wrote before exiting has been delivered. Stopping
 * follows the spec: close stdin, wait, SIGTERM the group, wait, SIGKILL the group; a destroyed
 * transport lives on, silent, in its thread's registry until its child is reaped. Everything
 * of a transport runs on its loop's thread.
 */
#include "mcp/transport/upstream_stdio.h"

#include "base/config.h"
#include "base/json_get.h"
#include "base/list.h"
#include "mcp/jsonrpc.h"
#include "base/log.h"
#include "mcp/transport/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

/* A message line may legitimately be large (a tool result carrying a base64 image or a whole
 * file), but a child that never writes a newline must not grow our memory without bound. */
#define STDIO_MAX_LINE      ((size_t)16 << 20)
/* stderr is free-form logging: keep a line's head, drop the rest. */
#define STDIO_MAX_ERR_LINE  ((size_t)4096)
/* Queued but unwritten input per child; beyond it send() refuses with -ENOBUFS. */
#define STDIO_MAX_QUEUED    ((size_t)64 << 20)
/* How much of a bad line a warning shows. */
#define STDIO_EXCERPT       200
/* Read at most this much per readiness event, so one chatty child cannot starve the loop. */
#define STDIO_READ_BUDGET   ((size_t)256 << 10)
#define STDIO_READ_CHUNK    ((size_t)64 << 10)
/* Shutdown order from the spec: close stdin, wait, SIGTERM, wait, SIGKILL. */
#define STDIO_GRACE_MS      2000
#define STDIO_TERM_MS       2000

enum st_state {
	ST_IDLE,      /* no child: never started, or reaped and reported */
	ST_RUNNING,   /* child alive, stdin open */
	ST_STOPPING,  /* stdin closed (destroy, EOF or write error); waiting for the exit */
	ST_REAPING,   /* reaped; delivering its last output before reporting down */
};

enum kill_phase { KILL_TERM, KILL_KILL, KILL_DONE };

/* A request queued for the child's stdin, remembered until its last byte is written so a
 * failed write can name exactly the requests that never reached the child. */
struct pending {
	cJSON *id;
	uint64_t end;           /* offset just past its newline in the stdin stream */
	struct list_head link;  /* in st->pend, oldest first */
};

/* One of the child's output pipes, split into lines. */
struct linebuf {
	int fd;
	struct event *ev;
	struct evbuffer *buf;
	size_t scanned;         /* leading bytes of buf known to hold no '\n' */
	size_t max;             /* longest line accepted */
	bool discarding;        /* dropping the rest of an over-long line */
	bool complete;          /* the line lb_next() returned ends in buf (newline or EOF) */
};

struct stdio_transport {
	struct transport t;     /* first: the ops get us back from it */
	char name[CONFIG_NAME_MAX + 1]; /* a copy: cfg may be gone while a destroyed child exits */
	enum st_state state;
	pid_t pid;              /* > 0 while we have a child we have not reaped */
	int in_fd;
	struct event *in_ev;
	struct evbuffer *obuf;
	uint64_t queued;        /* bytes ever queued for stdin */
	uint64_t written;       /* bytes ever written to stdin */
	struct list_head pend;  /* written to stdin in this order */
	struct linebuf out, err;
	struct event *kill_ev;
	struct event *exit_ev;  /* the pidfd readable: the child has exited */
	int pidfd;
	enum kill_phase kill_phase;
	unsigned busy;          /* our entry points on the stack: free only when 0 */
	bool dead;              /* destroy() called: no more callbacks */
	struct list_head child; /* in its thread's registry while we have a child */
};

/* The registry: every transport of this thread's loop whose child is not yet reaped, for the
 * shutdown (upstream_stdio_shutdown, on the same thread). */
static _Thread_local struct list_head children;

static struct list_head *registry(void)
{
	if (!children.next)
		list_init(&children);
	return &children;
}

static void st_free(struct stdio_transport *st);

/* ---- small helpers ---- */

/* Child output reaches the operator's terminal and log files: replace control bytes so a
 * child cannot forge log lines or send escape sequences. */
static void excerpt(char *dst, size_t dstsz, const char *s, size_t len)
{
	size_t n = len < dstsz - 1 ? len : dstsz - 1;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		dst[i] = (c < 0x20 || c == 0x7f) ? '.' : (char)c;
	}
	dst[n] = '\0';
}

static void st_release(struct stdio_transport *st)
{
	if (--st->busy == 0 && st->dead && st->pid == 0)
		st_free(st);
}

static void signal_group(struct stdio_transport *st, int sig)
{
	/* The group id is the child's pid; it cannot be reused while the child is unreaped. A
	 * child that left its group is still reached directly. */
	if (kill(-st->pid, sig) == 0)
		return;
	if (errno == ESRCH && kill(st->pid, sig) == 0)
		return;
	if (errno != ESRCH)
		log_warn("upstream %s: signal %d to pid %d: %s", st->name, sig, (int)st->pid,
			 strerror(errno));
}

/* ---- the registry and the children's ends ---- */

static void child_poll(struct stdio_transport *st);

static void on_exit_ready(evutil_socket_t fd, short what, void *arg)
{
	child_poll(arg);
}

/* Watch pidfd for the child's end (exit_ev was made before the child existed, so this cannot
 * fail for want of memory). */
static int registry_add(struct stdio_transport *st, int pidfd)
{
	st->pidfd = pidfd;
	list_add(&st->child, registry());
	if (event_assign(st->exit_ev, st->t.base, pidfd, EV_READ, on_exit_ready, st) < 0 ||
	    event_add(st->exit_ev, NULL) < 0)
		return -EINVAL;
	return 0;
}

/* The child is reaped (or given up): no more watching. */
static void registry_remove(struct stdio_transport *st)
{
	if (list_linked(&st->child))
		list_del(&st->child);
	if (st->exit_ev)
		event_del(st->exit_ev);
	if (st->pidfd >= 0)
		close(st->pidfd);
	st->pidfd = -1;
}

/* ---- pending requests ---- */

static void pending_free_all(struct stdio_transport *st)
{
	struct pending *p, *next;

	list_for_each_entry_safe(p, next, &st->pend, link) {
		list_del(&p->link);
		cJSON_Delete(p->id);
		free(p);
	}
}

/* Forget requests whose last byte the child's stdin has taken. */
static void pending_prune(struct stdio_transport *st)
{
	struct pending *p, *next;

	list_for_each_entry_safe(p, next, &st->pend, link) {
		if (p->end > st->written)
			break;
		list_del(&p->link);
		cJSON_Delete(p->id);
		free(p);
	}
}

/* Every request not completely written never reached the child: tell the owner. Stops early
 * if the owner destroys the transport from the callback. */
static void pending_fail(struct stdio_transport *st, int err, const char *why)
{
	struct pending *p;

	pending_prune(st);
	while (!st->dead && !list_empty(&st->pend)) {
		p = list_first_entry(&st->pend, struct pending, link);
		list_del(&p->link);
		if (st->t.cb.on_send_error)
			st->t.cb.on_send_error(st->t.cb.arg, p->id, err, why);
		cJSON_Delete(p->id);
		free(p);
	}
}

/* ---- line splitting ---- */

enum { LINE_NONE, LINE_OK, LINE_LONG };

/* The next line at the front of lb->buf: its length without the '\n' in *len. LINE_LONG: the
 * line exceeds lb->max (*len is what is buffered of it). At EOF a last unterminated line
 * counts. Over-long lines already being dropped are skipped here. */
static int lb_next(struct linebuf *lb, bool eof, size_t *len)
{
	for (;;) {
		size_t have = evbuffer_get_length(lb->buf);
		struct evbuffer_ptr p;

		p.pos = -1;
		if (lb->scanned < have &&
		    evbuffer_ptr_set(lb->buf, &p, lb->scanned, EVBUFFER_PTR_SET) == 0)
			p = evbuffer_search(lb->buf, "\n", 1, &p);
		if (p.pos >= 0) {
			size_t pos = (size_t)p.pos;

			lb->scanned = 0;
			if (lb->discarding) {
				evbuffer_drain(lb->buf, pos + 1);
				lb->discarding = false;
				continue;
			}
			lb->complete = true;
			*len = pos;
			return pos > lb->max ? LINE_LONG : LINE_OK;
		}
		/* Remember how far we looked, so a long line arriving in pieces is scanned once. */
		lb->scanned = have;
		if (lb->discarding) {
			evbuffer_drain(lb->buf, have);
			lb->scanned = 0;
			if (eof)
				lb->discarding = false;
			return LINE_NONE;
		}
		if (have > lb->max || (eof && have > 0)) {
			lb->complete = eof;
			*len = have;
			return have > lb->max ? LINE_LONG : LINE_OK;
		}
		return LINE_NONE;
	}
}

/* Drop the line lb_next() returned (and its newline); drop its tail too if it is not all here. */
static void lb_consume(struct linebuf *lb, size_t len)
{
	size_t have = evbuffer_get_length(lb->buf);

	evbuffer_drain(lb->buf, len + 1 < have ? len + 1 : have);
	lb->scanned = 0;
	lb->discarding = !lb->complete;
}

/* Read what the pipe holds, up to budget bytes. Returns true when the pipe is finished (EOF or
 * a read error), false when it is merely empty for now. */
static bool lb_fill(struct stdio_transport *st, struct linebuf *lb, size_t budget)
{
	size_t got = 0;

	while (got < budget) {
		struct evbuffer_iovec v;
		ssize_t n;

		if (evbuffer_reserve_space(lb->buf, (ev_ssize_t)STDIO_READ_CHUNK, &v, 1) < 1) {
			log_error("upstream %s: out of memory reading the child's output", st->name);
			return true;
		}
		n = read(lb->fd, v.iov_base, v.iov_len);
		if (n > 0) {
			v.iov_len = (size_t)n;
			if (evbuffer_commit_space(lb->buf, &v, 1) < 0)
				return true;
			got += (size_t)n;
			continue;
		}
		if (n == 0)
			return true;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN)
			return false;
		log_warn("upstream %s: reading the child's output: %s", st->name, strerror(errno));
		return true;
	}
	return false;
}

/* A pipe end is done with: no longer watched, closed, what it buffered dropped. */
static void pipe_close(struct event **ev, int *fd, struct evbuffer *buf)
{
	if (*ev) {
		event_free(*ev);
		*ev = NULL;
	}
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
	evbuffer_drain(buf, evbuffer_get_length(buf));
}

static void lb_close(struct linebuf *lb)
{
	pipe_close(&lb->ev, &lb->fd, lb->buf);
	lb->scanned = 0;
	lb->discarding = false;
}

/* ---- messages from the child ---- */

/* One line, one JSON text: cJSON stops after the first value, so anything but whitespace after
 * it means the line was not valid JSON. */
static cJSON *parse_line(const char *s, size_t len)
{
	const char *end = NULL;
	cJSON *j = cJSON_ParseWithLengthOpts(s, len, &end, 0);

	if (!j)
		return NULL;
	for (; end < s + len; end++) {
		if (*end != ' ' && *end != '\t' && *end != '\r' && *end != '\n') {
			cJSON_Delete(j);
			return NULL;
		}
	}
	return j;
}

static void deliver_one(struct stdio_transport *st, cJSON *msg)
{
	if (!cJSON_IsObject(msg)) {
		log_warn("upstream %s: dropping a line that is not a JSON-RPC message", st->name);
		cJSON_Delete(msg);
		return;
	}
	if (st->t.cb.on_message)
		st->t.cb.on_message(st->t.cb.arg, msg, NULL);
	else
		cJSON_Delete(msg);
}

/* Hand a parsed line to the owner. An array is a JSON-RPC batch (2025-03-26 peers may send
 * them): its messages are delivered one by one. */
static void deliver(struct stdio_transport *st, cJSON *msg)
{
	cJSON *item;

	if (!cJSON_IsArray(msg)) {
		deliver_one(st, msg);
		return;
	}
	while (!st->dead && (item = cJSON_DetachItemFromArray(msg, 0)))
		deliver_one(st, item);
	cJSON_Delete(msg);
}

/* What one line of a child's output (len bytes; r as lb_next says) yields: a message to
 * deliver once the line is consumed, or NULL. */
typedef cJSON *line_fn(struct stdio_transport *st, struct linebuf *lb, size_t len, int r);

/* Every complete line lb holds (with eof, the rest too) to fn, then consumed. */
static void lb_each(struct stdio_transport *st, struct linebuf *lb, bool eof, line_fn *fn)
{
	size_t len;
	int r;

	while ((r = lb_next(lb, eof, &len)) != LINE_NONE) {
		cJSON *msg = fn(st, lb, len, r);

		lb_consume(lb, len);
		if (msg)
			deliver(st, msg);
	}
}

/* A stdout line is a message; a destroyed transport only discards. */
static cJSON *out_line(struct stdio_transport *st, struct linebuf *lb, size_t len, int r)
{
	char ex[STDIO_EXCERPT + 1];
	const char *line;
	cJSON *msg = NULL;

	if (st->dead)
		return NULL;
	if (r == LINE_LONG) {
		log_warn("upstream %s: dropping a message line longer than %zu bytes "
			 "(protocol error)", st->name, lb->max);
		return NULL;
	}
	if (len == 0)           /* a blank line carries nothing */
		return NULL;
	line = (const char *)evbuffer_pullup(lb->buf, (ev_ssize_t)len);
	if (line)
		msg = parse_line(line, len);
	if (!msg && line) {
		excerpt(ex, sizeof(ex), line, len);
		log_warn("upstream %s: dropping a line that is not JSON: %s%s", st->name, ex,
			 len > STDIO_EXCERPT ? "..." : "");
	}
	return msg;
}

/* stderr is the child's log: each line goes to ours, tagged, bounded and made printable. */
static cJSON *err_line(struct stdio_transport *st, struct linebuf *lb, size_t len, int r)
{
	char ex[STDIO_MAX_ERR_LINE + 1];
	size_t n = len < STDIO_MAX_ERR_LINE ? len : STDIO_MAX_ERR_LINE;
	const char *line = n ? (const char *)evbuffer_pullup(lb->buf, (ev_ssize_t)n) : "";

	if (line) {
		excerpt(ex, sizeof(ex), line, n);
		log_info("upstream %s: %s%s", st->name, ex, r == LINE_LONG ? " [truncated]" : "");
	}
	return NULL;
}

/* ---- stopping and reaping ---- */

static void close_stdin(struct stdio_transport *st)
{
	pipe_close(&st->in_ev, &st->in_fd, st->obuf);
}

/* Begin the spec's shutdown: close stdin (a well-behaved server exits on EOF), then after a
 * grace period SIGTERM, then SIGKILL. The reap reports the end. */
static void child_stop(struct stdio_transport *st)
{
	struct timeval tv = { STDIO_GRACE_MS / 1000, (STDIO_GRACE_MS % 1000) * 1000 };

	if (st->state != ST_RUNNING)
		return;
	st->state = ST_STOPPING;
	close_stdin(st);
	st->kill_phase = KILL_TERM;
	if (evtimer_add(st->kill_ev, &tv) < 0) {
		log_error("upstream %s: cannot arm the stop timer; killing pid %d now", st->name,
			  (int)st->pid);
		signal_group(st, SIGKILL);
	}
}

static void on_kill_timer(evutil_socket_t fd, short what, void *arg)
{
	struct stdio_transport *st = arg;
	struct timeval tv = { STDIO_TERM_MS / 1000, (STDIO_TERM_MS % 1000) * 1000 };

	if (st->kill_phase == KILL_TERM) {
		log_info("upstream %s: pid %d still running after stdin closed; sending SIGTERM",
			 st->name, (int)st->pid);
		signal_group(st, SIGTERM);
		st->kill_phase = KILL_KILL;
		if (evtimer_add(st->kill_ev, &tv) == 0)
			return;
	}
	if (st->kill_phase != KILL_DONE) {
		log_warn("upstream %s: pid %d ignored SIGTERM; sending SIGKILL", st->name,
			 (int)st->pid);
		signal_group(st, SIGKILL);
		st->kill_phase = KILL_DONE;
	}
}

/* Release everything tied to the child: pipes, events, queued input. */
static void child_close(struct stdio_transport *st)
{
	close_stdin(st);
	lb_close(&st->out);
	lb_close(&st->err);
	if (st->kill_ev) {
		event_free(st->kill_ev);
		st->kill_ev = NULL;
	}
	if (st->exit_ev && st->pidfd < 0) {     /* still watched while the child is unreaped */
		event_free(st->exit_ev);
		st->exit_ev = NULL;
	}
}

static void child_reaped(struct stdio_transport *st, int status)
{
	char why[64];

	if (status < 0)
		snprintf(why, sizeof(why), "exited (status unknown)");
	else if (WIFEXITED(status))
		snprintf(why, sizeof(why), "exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(why, sizeof(why), "killed by signal %d", WTERMSIG(status));
	else
		snprintf(why, sizeof(why), "ended with wait status %#x", (unsigned)status);
	log_msg(st->dead ? LOG_DEBUG : LOG_INFO, "upstream %s: pid %d %s", st->name, (int)st->pid,
		why);

	st->busy++;
	registry_remove(st);
	st->pid = 0;
	st->state = ST_REAPING;
	/* The pipes still hold what the child wrote before it exited: deliver it first, so the
	 * owner sees its last answers before it hears that the child is gone. */
	if (st->out.fd >= 0) {
		bool eof = lb_fill(st, &st->out, STDIO_MAX_LINE);
		lb_each(st, &st->out, eof, out_line);
	}
	if (st->err.fd >= 0)
		lb_each(st, &st->err, lb_fill(st, &st->err, STDIO_READ_BUDGET), err_line);
	child_close(st);
	if (!st->dead)
		pending_fail(st, -ECHILD, why);
	st->state = ST_IDLE;        /* the owner may start again from on_down */
	if (!st->dead && st->t.cb.on_down)
		st->t.cb.on_down(st->t.cb.arg, -ECHILD, why);
	st_release(st);
}

static void child_poll(struct stdio_transport *st)
{
	siginfo_t si;
	int status = -1;
	pid_t r;

	memset(&si, 0, sizeof(si));
	do
		r = waitid(P_PID, (id_t)st->pid, &si, WEXITED | WNOHANG | WNOWAIT);
	while (r < 0 && errno == EINTR);
	if (r < 0) {
		/* ECHILD: someone else reaped it (a waitpid(-1) elsewhere, SIGCHLD ignored). */
		log_warn("upstream %s: pid %d: %s", st->name, (int)st->pid, strerror(errno));
		child_reaped(st, -1);
		return;
	}
	if (si.si_pid == 0)
		return;
	/* The leader is a zombie, so its group id is still reserved: this reaches exactly the
	 * helpers it left behind, which would otherwise keep our pipes open. */
	signal_group(st, SIGKILL);
	do
		r = waitpid(st->pid, &status, WNOHANG);
	while (r < 0 && errno == EINTR);
	if (r <= 0)
		status = -1;
	child_reaped(st, status);
}

/* ---- I/O events ---- */

static void on_stdout(evutil_socket_t fd, short what, void *arg)
{
	struct stdio_transport *st = arg;
	bool eof;

	st->busy++;
	eof = lb_fill(st, &st->out, STDIO_READ_BUDGET);
	lb_each(st, &st->out, eof, out_line);
	if (eof) {
		lb_close(&st->out);
		/* Nothing more can arrive: the transport is going down. The reap reports it with
		 * the exit status; stop the child in case it lingers. */
		if (st->state == ST_RUNNING) {
			log_debug("upstream %s: pid %d closed its stdout", st->name, (int)st->pid);
			child_stop(st);
			pending_fail(st, -EPIPE, "upstream closed its output");
		}
	}
	st_release(st);
}

static void on_stderr(evutil_socket_t fd, short what, void *arg)
{
	struct stdio_transport *st = arg;
	bool eof = lb_fill(st, &st->err, STDIO_READ_BUDGET);

	lb_each(st, &st->err, eof, err_line);
	if (eof)
		lb_close(&st->err);
}

static void on_stdin(evutil_socket_t fd, short what, void *arg)
{
	struct stdio_transport *st = arg;
	char why[96];
	int n, e;

	n = evbuffer_write(st->obuf, st->in_fd);
	if (n >= 0) {
		st->written += (uint64_t)n;
		pending_prune(st);
		if (evbuffer_get_length(st->obuf) == 0)
			event_del(st->in_ev);
		return;
	}
	e = errno;
	if (e == EAGAIN || e == EINTR)
		return;
	st->busy++;
	log_warn("upstream %s: writing to pid %d: %s", st->name, (int)st->pid, strerror(e));
	snprintf(why, sizeof(why), "upstream stdin: %s", strerror(e));
	child_stop(st);
	pending_fail(st, -e, why);
	st_release(st);
}

static int child_spawn(struct stdio_transport *st)
{
	const struct upstream_config *cfg = st->t.cfg;
	struct event_base *base = st->t.base;
	struct spawn sp;
	char *path = NULL;
	pid_t pid;
	int r, pidfd = -1;

	spawn_init(&sp);
	r = spawn_resolve(cfg->argv[0], cfg->envp, &path);
	if (r < 0) {
		log_error("upstream %s: cannot run %s: %s", st->name, cfg->argv[0], strerror(-r));
		goto out;
	}
	if ((r = spawn_pipes(&sp)) < 0)
		goto out;
	/* Allocate everything before the child exists, so nothing can fail after it does. */
	st->in_ev = event_new(base, sp.in, EV_WRITE | EV_PERSIST, on_stdin, st);
	st->out.ev = event_new(base, sp.out, EV_READ | EV_PERSIST, on_stdout, st);
	st->err.ev = event_new(base, sp.err, EV_READ | EV_PERSIST, on_stderr, st);
	st->kill_ev = evtimer_new(base, on_kill_timer, st);
	st->exit_ev = event_new(base, -1, 0, on_exit_ready, st);
	if (!st->in_ev || !st->out.ev || !st->err.ev || !st->kill_ev || !st->exit_ev) {
		r = -ENOMEM;
		goto out;
	}
	r = spawn_run(&sp, path, cfg->argv, cfg->envp, cfg->cwd, &pid, &pidfd);
	if (r < 0) {
		log_error("upstream %s: cannot start %s: %s", st->name, path, strerror(-r));
		goto out;
	}
	st->in_fd = sp.in;
	st->out.fd = sp.out;
	st->err.fd = sp.err;
	sp.in = sp.out = sp.err = -1;
	st->pid = pid;
	st->state = ST_RUNNING;
	st->queued = st->written = 0;
	if (registry_add(st, pidfd) < 0 || event_add(st->out.ev, NULL) < 0 ||
	    event_add(st->err.ev, NULL) < 0) {
		/* Cannot watch the child: stop it; its reap reports down as usual. */
		log_error("upstream %s: cannot watch pid %d; stopping it", st->name, (int)pid);
		child_stop(st);
	}
	log_info("upstream %s: started %s as pid %d", st->name, path, (int)pid);
	r = 0;
out:
	spawn_close(&sp);
	if (r < 0) {
		/* The events were made for descriptors now closed. */
		child_close(st);
	}
	free(path);
	return r;
}

/* ---- the transport ops ---- */

static int stdio_start(struct transport *t)
{
	struct stdio_transport *st = (struct stdio_transport *)t;

	if (st->dead)
		return -EINVAL;
	if (st->state == ST_RUNNING || st->state == ST_STOPPING)
		return -EALREADY;
	if (st->state == ST_REAPING)
		return -EBUSY;
	return child_spawn(st);
}

static bool is_request(const cJSON *msg)
{
	const cJSON *id = json_get(msg, "id");

	return cJSON_IsString(json_get(msg, "method")) && id &&
	       !cJSON_IsNull(id);
}

static int stdio_send(struct transport *t, const cJSON *msg)
{
	struct stdio_transport *st = (struct stdio_transport *)t;
	struct pending *p = NULL;
	char *text = NULL;
	size_t len;
	int r = 0;

	if (st->state != ST_RUNNING || st->dead)
		return -ENOTCONN;
	if (!msg)
		return -EINVAL;
	text = jsonrpc_print((cJSON *)msg);
	if (!text)
		return -ENOMEM;
	len = strlen(text);
	/* One message per line: cJSON escapes control characters in strings, so a raw newline
	 * would be a bug; refuse it rather than desynchronise the stream. */
	if (memchr(text, '\n', len)) {
		r = -EINVAL;
		goto out;
	}
	if (evbuffer_get_length(st->obuf) + len + 1 > STDIO_MAX_QUEUED) {
		r = -ENOBUFS;
		goto out;
	}
	if (is_request(msg)) {
		p = calloc(1, sizeof(*p));
		if (!p || !(p->id = cJSON_Duplicate(json_get(msg, "id"), 1))) {
			r = -ENOMEM;
			goto out;
		}
	}
	/* Arm the writer and reserve the space first, so the message and its newline go in
	 * whole, or not at all. */
	if ((!event_pending(st->in_ev, EV_WRITE, NULL) && event_add(st->in_ev, NULL) < 0) ||
	    evbuffer_expand(st->obuf, len + 1) < 0 || evbuffer_add(st->obuf, text, len) < 0 ||
	    evbuffer_add(st->obuf, "\n", 1) < 0) {
		r = -ENOMEM;
		goto out;
	}
	st->queued += len + 1;
	if (p) {
		p->end = st->queued;
		list_add_tail(&p->link, &st->pend);
		p = NULL;
	}
out:
	if (p) {
		cJSON_Delete(p->id);
		free(p);
	}
	cJSON_free(text);
	return r;
}

static void st_free(struct stdio_transport *st)
{
	child_close(st);
	pending_free_all(st);
	evbuffer_free(st->obuf);
	evbuffer_free(st->out.buf);
	evbuffer_free(st->err.buf);
	free(st);
}

static void stdio_destroy(struct transport *t)
{
	struct stdio_transport *st = (struct stdio_transport *)t;

	st->dead = true;
	st->t.cfg = NULL;       /* the config may be freed while the child exits */
	pending_free_all(st);
	if (st->pid > 0) {
		child_stop(st); /* freed by its reap, or by upstream_stdio_shutdown() */
		return;
	}
	if (st->busy == 0)
		st_free(st);
}

static const struct transport_ops stdio_ops = {
	.start = stdio_start,
	.send = stdio_send,
	.destroy = stdio_destroy,
};

int upstream_stdio_new(struct event_base *base, const struct upstream_config *cfg,
		       const struct transport_cb *cb, struct transport **out)
{
	struct stdio_transport *st;
	struct sigaction sa;

	if (!base || !cfg || !cb || !out || cfg->kind != UPSTREAM_STDIO || !cfg->argv ||
	    !cfg->argv[0])
		return -EINVAL;
	/* Writing to a child that has exited must cost an EPIPE, not the daemon. */
	if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
		sa.sa_handler = SIG_IGN;
		if (sigaction(SIGPIPE, &sa, NULL) < 0)
			return -errno;
	}
	st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->t.ops = &stdio_ops;
	st->t.cfg = cfg;
	st->t.base = base;
	st->t.cb = *cb;
	snprintf(st->name, sizeof(st->name), "%s", cfg->name ? cfg->name : "(unnamed)");
	st->in_fd = st->out.fd = st->err.fd = st->pidfd = -1;
	list_init(&st->pend);
	list_init(&st->child);
	st->out.max = STDIO_MAX_LINE;
	st->err.max = STDIO_MAX_ERR_LINE;
	st->obuf = evbuffer_new();
	st->out.buf = evbuffer_new();
	st->err.buf = evbuffer_new();
	if (!st->obuf || !st->out.buf || !st->err.buf) {
		if (st->obuf)
			evbuffer_free(st->obuf);
		if (st->out.buf)
			evbuffer_free(st->out.buf);
		if (st->err.buf)
			evbuffer_free(st->err.buf);
		free(st);
		return -ENOMEM;
	}
	*out = &st->t;
	return 0;
}

void upstream_stdio_shutdown(void)
{
	struct stdio_transport *st;

	while (!list_empty(registry())) {
		st = list_first_entry(registry(), struct stdio_transport, child);
		int status;

		signal_group(st, SIGKILL);
		while (waitpid(st->pid, &status, 0) < 0 && errno == EINTR)
			;
		log_debug("upstream %s: pid %d killed at shutdown", st->name, (int)st->pid);
		registry_remove(st);
		st->pid = 0;
		child_close(st);
		st->state = ST_IDLE;
		pending_free_all(st);
		if (st->dead && st->busy == 0)
			st_free(st);
	}
}
