/* test_upstream_stdio: real children on a real event loop. The MCP reference server
 * (server-everything) over stdio for the protocol, small sh children for exits, framing, stderr,
 * signals, descriptors and the environment. Every test reaps what it started and frees its loop;
 * check_no_children() proves nothing was left unreaped. */
#include "mcp/transport/upstream_stdio.h"

#include "base/config.h"
#include "base/log.h"
#include "cunit_main.h"
#include "loop_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CUnit/Basic.h>
#include <event2/event.h>

extern char **environ;

/* ---- what the transport told us ---- */

struct rec {
	cJSON *msgs;                    /* every message, in order */
	int downs;
	int down_err;
	char down_why[128];
	int down_seq;                   /* event number of the last on_down */
	int send_errors;
	cJSON *send_error_ids;
	int send_error_err;
	int send_error_seq;             /* event number of the first on_send_error */
	int seq;
	/* behaviours */
	struct transport **destroy_on_down;
	struct transport **destroy_on_message;
};

static void on_message(void *arg, cJSON *msg, const cJSON *related)
{
	struct rec *r = arg;

	CU_ASSERT(related == NULL);
	r->seq++;
	cJSON_AddItemToArray(r->msgs, msg);
	if (r->destroy_on_message && *r->destroy_on_message) {
		transport_destroy(*r->destroy_on_message);
		*r->destroy_on_message = NULL;
	}
}

static void on_send_error(void *arg, const cJSON *id, int err, const char *why)
{
	struct rec *r = arg;

	r->seq++;
	if (!r->send_errors)
		r->send_error_seq = r->seq;
	r->send_errors++;
	r->send_error_err = err;
	cJSON_AddItemToArray(r->send_error_ids, cJSON_Duplicate(id, 1));
	CU_ASSERT(why && *why);
}

static void on_down(void *arg, int err, const char *why)
{
	struct rec *r = arg;

	r->seq++;
	r->down_seq = r->seq;
	r->downs++;
	r->down_err = err;
	snprintf(r->down_why, sizeof(r->down_why), "%s", why);
	if (r->destroy_on_down && *r->destroy_on_down) {
		transport_destroy(*r->destroy_on_down);
		*r->destroy_on_down = NULL;
	}
}

static void rec_init(struct rec *r, struct transport_cb *cb)
{
	memset(r, 0, sizeof(*r));
	r->msgs = cJSON_CreateArray();
	r->send_error_ids = cJSON_CreateArray();
	CU_ASSERT_FATAL(r->msgs && r->send_error_ids);
	*cb = (struct transport_cb){ on_message, on_send_error, on_down, r };
}

static void rec_free(struct rec *r)
{
	cJSON_Delete(r->msgs);
	cJSON_Delete(r->send_error_ids);
}

static int nmsgs(const struct rec *r) { return cJSON_GetArraySize(r->msgs); }

static const char *method_of(const struct rec *r, int i)
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(r->msgs, i), "method");

	return cJSON_IsString(m) ? m->valuestring : "";
}

/* The response to request `id`, or NULL. */
static const cJSON *response(const struct rec *r, int id)
{
	const cJSON *m;

	cJSON_ArrayForEach(m, r->msgs) {
		const cJSON *mid = cJSON_GetObjectItemCaseSensitive(m, "id");

		if (cJSON_IsNumber(mid) && mid->valueint == id &&
		    !cJSON_GetObjectItemCaseSensitive(m, "method"))
			return m;
	}
	return NULL;
}

/* ---- the loop ---- */

static struct event_base *base;

struct waiter {
	const struct rec *r;
	int n;
};

static bool have_msgs(void *arg)
{
	const struct waiter *w = arg;

	return nmsgs(w->r) >= w->n;
}

static bool have_downs(void *arg)
{
	const struct waiter *w = arg;

	return w->r->downs >= w->n;
}

static bool have_response(void *arg)
{
	const struct waiter *w = arg;

	return response(w->r, w->n) != NULL;
}

/* Run the loop until pred holds; false on timeout. */
static bool run_until(bool (*pred)(void *), const struct waiter *w, int ms)
{
	return lu_run_until(base, pred, (void *)w, ms);
}

/* Nothing but the deadline's own timer is left: the transports hold no event. */
static bool idle(void *arg)
{
	return event_base_get_num_events(arg, EVENT_BASE_COUNT_ADDED) <= 1;
}

/* Run until the transports hold no event (every child reaped); false on timeout. */
static bool run_idle(int ms)
{
	return lu_run_until(base, idle, base, ms);
}

static void check_no_children(void)
{
	int status;

	/* Every child this process made has been reaped, by the transport or the test. */
	CU_ASSERT(waitpid(-1, &status, WNOHANG) == -1 && errno == ECHILD);
}

static void test_begin(void)
{
	base = event_base_new();
	CU_ASSERT_FATAL(base != NULL);
}

static void test_end(void)
{
	CU_ASSERT(run_idle(10000));
	upstream_stdio_shutdown();
	CU_ASSERT(event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED) == 0);
	event_base_free(base);
	base = NULL;
	check_no_children();
}

/* ---- configs ---- */

static char path_env[4096];
static char *env_path_only[] = { path_env, NULL };

struct sh_cfg {
	char *argv[6];
	struct upstream_config cfg;
};

/* sh -c script [args...]: the child gets only PATH. */
static void sh_cfg(struct sh_cfg *c, const char *name, const char *script, const char *arg)
{
	memset(c, 0, sizeof(*c));
	c->argv[0] = "sh";
	c->argv[1] = "-c";
	c->argv[2] = (char *)script;
	c->argv[3] = "sh";
	c->argv[4] = (char *)arg;
	c->cfg.name = (char *)name;
	c->cfg.kind = UPSTREAM_STDIO;
	c->cfg.argv = c->argv;
	c->cfg.envp = env_path_only;
}

static struct transport *start(const struct upstream_config *cfg, const struct transport_cb *cb)
{
	struct transport *t = NULL;

	CU_ASSERT_FATAL(upstream_stdio_new(base, cfg, cb, &t) == 0);
	CU_ASSERT_FATAL(transport_start(t) == 0);
	return t;
}

static int send_text(struct transport *t, const char *json)
{
	cJSON *m = cJSON_Parse(json);
	int r;

	CU_ASSERT_FATAL(m != NULL);
	r = transport_send(t, m);
	cJSON_Delete(m);
	return r;
}

/* The child announces its pid as {"method":"pid","params":{"pid":N}}: wait for it. */
#define SAY_PID "printf '{\"jsonrpc\":\"2.0\",\"method\":\"pid\",\"params\":{\"pid\":%d}}\\n' $$; "

static pid_t wait_pid_msg(struct rec *r)
{
	struct waiter w = { r, 1 };
	const cJSON *pid;

	CU_ASSERT_FATAL(run_until(have_msgs, &w, 10000));
	CU_ASSERT_STRING_EQUAL_FATAL(method_of(r, 0), "pid");
	pid = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(r->msgs, 0), "params"), "pid");
	CU_ASSERT_FATAL(cJSON_IsNumber(pid) && pid->valueint > 1);
	return (pid_t)pid->valueint;
}

/* One shell child on a new loop (test_begin), its messages and going down recorded in r. */
struct child {
	struct sh_cfg c;
	struct transport_cb cb;
	struct rec r;
	struct transport *t;
	pid_t pid;
};

/* Start script (which begins with SAY_PID) and wait until it says its pid. */
static void child_begin(struct child *ch, const char *name, const char *script)
{
	test_begin();
	rec_init(&ch->r, &ch->cb);
	sh_cfg(&ch->c, name, script, NULL);
	ch->t = start(&ch->c.cfg, &ch->cb);
	ch->pid = wait_pid_msg(&ch->r);
}

static bool process_gone(pid_t pid) { return kill(pid, 0) < 0 && errno == ESRCH; }

/* Live (not zombie) processes in group pgid. Orphaned members are reaped by init in its own
 * time, so zombies do not count. */
static int group_alive(pid_t pgid)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	int n = 0;

	CU_ASSERT_FATAL(d != NULL);
	while ((de = readdir(d))) {
		char path[300], buf[512], *p, state;
		int ppid, pgrp;
		ssize_t len;
		int fd;

		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		len = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (len <= 0)
			continue;
		buf[len] = '\0';
		p = strrchr(buf, ')');  /* comm may hold spaces and parentheses */
		if (p && sscanf(p + 1, " %c %d %d", &state, &ppid, &pgrp) == 3 && pgrp == pgid &&
		    state != 'Z' && state != 'X')
			n++;
	}
	closedir(d);
	return n;
}

/* The whole group died: poll briefly, a SIGKILLed process takes a moment to exit. */
static bool group_gone(pid_t pgid)
{
	for (int i = 0; i < 500 && group_alive(pgid); i++)
		usleep(10000);
	return group_alive(pgid) == 0;
}

/* ---- stderr capture (the operational log) ---- */

struct capture {
	int fd, saved;
};

static void capture_begin(struct capture *c)
{
	fflush(stderr);
	c->fd = memfd_create("stderr", MFD_CLOEXEC);
	c->saved = fcntl(2, F_DUPFD_CLOEXEC, 3);
	CU_ASSERT_FATAL(c->fd >= 0 && c->saved >= 0);
	CU_ASSERT_FATAL(dup2(c->fd, 2) == 2);
}

static char *capture_end(struct capture *c)
{
	off_t len;
	char *s;

	fflush(stderr);
	CU_ASSERT_FATAL(dup2(c->saved, 2) == 2);
	close(c->saved);
	len = lseek(c->fd, 0, SEEK_END);
	CU_ASSERT_FATAL(len >= 0);
	s = calloc(1, (size_t)len + 1);
	CU_ASSERT_FATAL(s != NULL);
	CU_ASSERT_FATAL(pread(c->fd, s, (size_t)len, 0) == len);
	close(c->fd);
	return s;
}

/* ---- the MCP reference server ---- */

static void test_everything_session(void)
{
	const char *top = getenv("MCPWARDEN_TOP");
	char node[4096], server[4096];
	char *argv[] = { node, server, "stdio", NULL };
	struct upstream_config cfg = {
		.name = "everything", .kind = UPSTREAM_STDIO, .argv = argv, .envp = env_path_only,
	};
	struct transport_cb cb;
	struct transport *t;
	struct rec r;
	struct waiter w = { &r, 1 };
	const cJSON *res, *tools, *tool, *content;
	bool has_echo = false;

	if (!top) {
		CU_FAIL("MCPWARDEN_TOP is not set: run through tests/run.sh");
		return;
	}
	snprintf(node, sizeof(node), "%s/tests/node_modules/node/bin/node", top);
	if (access(node, X_OK) < 0)
		snprintf(node, sizeof(node), "node");
	snprintf(server, sizeof(server), "%s/tests/node_modules/.bin/mcp-server-everything", top);
	if (access(server, R_OK) < 0) {
		CU_FAIL("server-everything is not installed: run scripts/deps.sh");
		return;
	}
	test_begin();
	rec_init(&r, &cb);
	t = start(&cfg, &cb);

	CU_ASSERT(send_text(t, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":"
			    "{\"protocolVersion\":\"2025-11-25\",\"capabilities\":{},"
			    "\"clientInfo\":{\"name\":\"mcpwarden-test\",\"version\":\"0\"}}}") == 0);
	/* The server may send notifications (tools/list_changed) before answering. */
	CU_ASSERT_FATAL(run_until(have_response, &w, 30000));
	res = cJSON_GetObjectItemCaseSensitive(response(&r, 1), "result");
	CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(
		cJSON_GetObjectItemCaseSensitive(res, "protocolVersion")), "2025-11-25");
	CU_ASSERT(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(res, "serverInfo")));

	CU_ASSERT(send_text(t, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}") == 0);
	CU_ASSERT(send_text(t, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\"}") == 0);
	w.n = 2;
	CU_ASSERT_FATAL(run_until(have_response, &w, 30000));
	tools = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(response(&r, 2), "result"), "tools");
	CU_ASSERT(cJSON_GetArraySize(tools) > 0);
	cJSON_ArrayForEach(tool, tools) {
		if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(tool, "name")) ?: "",
			   "echo") == 0)
			has_echo = true;
	}
	CU_ASSERT(has_echo);

	CU_ASSERT(send_text(t, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":"
			    "{\"name\":\"echo\",\"arguments\":{\"message\":\"hello\\nfrom warden\"}}}")
		  == 0);
	w.n = 3;
	CU_ASSERT_FATAL(run_until(have_response, &w, 30000));
	content = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(response(&r, 3), "result"), "content");
	CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
		cJSON_GetArrayItem(content, 0), "text")), "Echo: hello\nfrom warden");
	CU_ASSERT(r.downs == 0 && r.send_errors == 0);

	transport_destroy(t);
	test_end();
	CU_ASSERT(r.downs == 0);        /* nothing after destroy */
	rec_free(&r);
}

/* ---- exits ---- */

static void test_exit_status_and_restart(void)
{
	struct sh_cfg c;
	struct transport_cb cb;
	struct transport *t = NULL;
	struct rec r;
	struct waiter w = { &r, 1 };

	test_begin();
	rec_init(&r, &cb);
	sh_cfg(&c, "exit3", "exit 3", NULL);
	CU_ASSERT_FATAL(upstream_stdio_new(base, &c.cfg, &cb, &t) == 0);
	CU_ASSERT(send_text(t, "{\"jsonrpc\":\"2.0\",\"method\":\"x\"}") == -ENOTCONN);
	CU_ASSERT_FATAL(transport_start(t) == 0);
	CU_ASSERT(transport_start(t) == -EALREADY);
	CU_ASSERT_FATAL(run_until(have_downs, &w, 10000));
	CU_ASSERT_EQUAL(r.down_err, -ECHILD);
	CU_ASSERT_STRING_EQUAL(r.down_why, "exited with status 3");
	CU_ASSERT(send_text(t, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\"}") == -ENOTCONN);
	CU_ASSERT(r.send_errors == 0);

	/* Restart policy is the caller's: the same transport starts again. */
	CU_ASSERT_FATAL(transport_start(t) == 0);
	w.n = 2;
	CU_ASSERT_FATAL(run_until(have_downs, &w, 10000));
	CU_ASSERT_STRING_EQUAL(r.down_why, "exited with status 3");
	transport_destroy(t);
	test_end();
	CU_ASSERT_EQUAL(r.downs, 2);
	rec_free(&r);
}

/* Run script as a child until it goes down once, then tear everything down: what it did is in
 * *r (the caller frees it). */
static void run_script_to_down(const char *name, const char *script, int ms, struct rec *r)
{
	struct sh_cfg c;
	struct transport_cb cb;
	struct transport *t;
	struct waiter w = { r, 1 };

	test_begin();
	rec_init(r, &cb);
	sh_cfg(&c, name, script, NULL);
	t = start(&c.cfg, &cb);
	CU_ASSERT_FATAL(run_until(have_downs, &w, ms));
	transport_destroy(t);
	test_end();
}

static void test_killed_by_signal(void)
{
	struct rec r;

	run_script_to_down("selfkill", "kill -9 $$", 10000, &r);
	CU_ASSERT_STRING_EQUAL(r.down_why, "killed by signal 9");
	rec_free(&r);
}

/* Two transports' children, each watched by its own pidfd; a child the transports do not own is
 * left for its owner to reap. */
static void test_two_children_and_a_foreign_one(void)
{
	struct sh_cfg c1, c2;
	struct transport_cb cb1, cb2;
	struct transport *t1, *t2;
	struct rec r1, r2;
	struct waiter w1 = { &r1, 1 }, w2 = { &r2, 1 };
	char *fargv[] = { "sh", "-c", "exit 5", NULL };
	pid_t foreign;
	int status;

	test_begin();
	rec_init(&r1, &cb1);
	rec_init(&r2, &cb2);
	sh_cfg(&c1, "one", "exit 1", NULL);
	sh_cfg(&c2, "two", "sleep 0.2; exit 2", NULL);
	CU_ASSERT_FATAL(posix_spawnp(&foreign, "sh", NULL, NULL, fargv, environ) == 0);
	t1 = start(&c1.cfg, &cb1);
	t2 = start(&c2.cfg, &cb2);
	CU_ASSERT_FATAL(run_until(have_downs, &w1, 10000));
	CU_ASSERT_FATAL(run_until(have_downs, &w2, 10000));
	CU_ASSERT_STRING_EQUAL(r1.down_why, "exited with status 1");
	CU_ASSERT_STRING_EQUAL(r2.down_why, "exited with status 2");
	CU_ASSERT_FATAL(waitpid(foreign, &status, 0) == foreign);
	CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 5);
	transport_destroy(t1);
	transport_destroy(t2);
	test_end();
	rec_free(&r1);
	rec_free(&r2);
}

/* ---- framing ---- */

static void test_garbage_lines_and_framing(void)
{
	/* Bad lines, a scalar, a batch, an over-long (17 MB) line, and a last message without
	 * its newline: only the messages come through, in order, before the exit. */
	const char *script =
		"echo 'not json'; echo; echo '{\"jsonrpc\":\"2.0\",\"method\":\"no\"} trailing';"
		"echo 42; echo '{\"jsonrpc\":\"2.0\",\"method\":\"a\"}';"
		"printf '\\033[2J{broken\\n';"
		"echo '[{\"jsonrpc\":\"2.0\",\"method\":\"b\"},7,{\"jsonrpc\":\"2.0\",\"method\":\"c\"}]';"
		"head -c 17000000 /dev/zero | tr '\\000' x; echo;"
		"echo '{\"jsonrpc\":\"2.0\",\"method\":\"d\"}';"
		"printf '{\"jsonrpc\":\"2.0\",\"method\":\"e\"}'";
	struct rec r;

	run_script_to_down("garbage", script, 20000, &r);
	CU_ASSERT_STRING_EQUAL(r.down_why, "exited with status 0");
	CU_ASSERT_EQUAL_FATAL(nmsgs(&r), 5);
	CU_ASSERT_STRING_EQUAL(method_of(&r, 0), "a");
	CU_ASSERT_STRING_EQUAL(method_of(&r, 1), "b");
	CU_ASSERT_STRING_EQUAL(method_of(&r, 2), "c");
	CU_ASSERT_STRING_EQUAL(method_of(&r, 3), "d");
	CU_ASSERT_STRING_EQUAL(method_of(&r, 4), "e");
	CU_ASSERT(r.down_seq > 5);      /* the last output came before the down */
	rec_free(&r);
}

static void test_stderr_is_logged(void)
{
	struct sh_cfg c;
	struct transport_cb cb;
	struct transport *t;
	struct rec r;
	struct waiter w = { &r, 1 };
	struct capture cap;
	char *log;

	test_begin();
	rec_init(&r, &cb);
	sh_cfg(&c, "noisy",
	       "echo 'hello from the child' >&2; printf '\\033[31mred\\n' >&2;"
	       "head -c 10000 /dev/zero | tr '\\000' y >&2; echo >&2; printf 'last words' >&2", NULL);
	capture_begin(&cap);
	t = start(&c.cfg, &cb);
	run_until(have_downs, &w, 10000);
	log = capture_end(&cap);
	CU_ASSERT(r.downs == 1);
	CU_ASSERT(strstr(log, "upstream noisy: hello from the child\n") != NULL);
	CU_ASSERT(strstr(log, "upstream noisy: .[31mred\n") != NULL);   /* escapes defused */
	CU_ASSERT(strstr(log, "yyyy [truncated]\n") != NULL);
	CU_ASSERT(strstr(log, "upstream noisy: last words\n") != NULL);
	CU_ASSERT(strchr(log, '\033') == NULL);
	CU_ASSERT(nmsgs(&r) == 0);
	free(log);
	transport_destroy(t);
	test_end();
	rec_free(&r);
}

/* ---- what the child gets ---- */

static void test_child_gets_only_the_config(void)
{
	const char *script = "printf '{\"jsonrpc\":\"2.0\",\"method\":\"env\",\"params\":{\"pid\":%d,"
			     "\"cwd\":\"%s\",\"foo\":\"%s\",\"secret\":\"%s\",\"arg\":\"%s\"}}\\n'"
			     " $$ \"$PWD\" \"$FOO\" \"$WARDEN_TEST_SECRET\" \"$1\"; read x";
	char dir[] = "/tmp/warden-stdio-XXXXXX";
	char *env[] = { path_env, "FOO=bar", NULL };
	char fdpath[64];
	struct sh_cfg c;
	struct transport_cb cb;
	struct transport *t;
	struct rec r;
	struct waiter w = { &r, 1 };
	const cJSON *p;
	struct dirent *de;
	DIR *d;
	int leak, nfds = 0, others = 0;
	pid_t pid;

	test_begin();
	rec_init(&r, &cb);
	CU_ASSERT_FATAL(mkdtemp(dir) != NULL);
	/* A descriptor opened without O_CLOEXEC must not reach the child either. */
	leak = open("/dev/null", O_RDONLY);
	CU_ASSERT_FATAL(leak >= 0);
	CU_ASSERT_FATAL(setenv("WARDEN_TEST_SECRET", "must-not-leak", 1) == 0);
	sh_cfg(&c, "env", script, "an argument");
	c.cfg.envp = env;
	c.cfg.cwd = dir;
	t = start(&c.cfg, &cb);
	CU_ASSERT_FATAL(run_until(have_msgs, &w, 10000));
	p = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(r.msgs, 0), "params");
	pid = (pid_t)cJSON_GetObjectItemCaseSensitive(p, "pid")->valueint;
	CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "cwd")), dir);
	CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "foo")), "bar");
	CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "secret")), "");
	CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "arg")),
			       "an argument");

	/* The child (blocked in read) holds exactly stdin, stdout and stderr. */
	snprintf(fdpath, sizeof(fdpath), "/proc/%d/fd", (int)pid);
	d = opendir(fdpath);
	CU_ASSERT_FATAL(d != NULL);
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		nfds++;
		if (strcmp(de->d_name, "0") && strcmp(de->d_name, "1") && strcmp(de->d_name, "2"))
			others++;
	}
	closedir(d);
	CU_ASSERT_EQUAL(nfds, 3);
	CU_ASSERT_EQUAL(others, 0);
	/* Its own process group, so it is signalled as a whole. */
	CU_ASSERT_EQUAL(getpgid(pid), pid);

	/* Closing stdin is enough for a child that reads it: no callback after destroy. */
	transport_destroy(t);
	test_end();
	CU_ASSERT(process_gone(pid));
	CU_ASSERT(r.downs == 0 && nmsgs(&r) == 1);
	close(leak);
	unsetenv("WARDEN_TEST_SECRET");
	CU_ASSERT(rmdir(dir) == 0);
	rec_free(&r);
}

static void test_spawn_failures(void)
{
	char dir[] = "/tmp/warden-stdio-XXXXXX", script[64];
	char *argv_missing[] = { "/nonexistent/warden-server", NULL };
	char *argv_unknown[] = { "warden-no-such-program", NULL };
	char *argv_script[] = { script, NULL };
	char *argv_sh[] = { "sh", "-c", "exit 0", NULL };
	const struct {
		char **argv;
		char *cwd;
		int err;	/* what transport_start() says */
	} cases[] = {
		{ argv_missing, NULL, -ENOENT },
		{ argv_unknown, NULL, -ENOENT },
		/* Found and executable, but execve refuses it: reported from the child. */
		{ argv_script, NULL, -ENOEXEC },
		{ argv_sh, "/nonexistent/dir", -ENOENT },
	};
	struct upstream_config cfg = { .name = "bad", .kind = UPSTREAM_STDIO,
				       .envp = env_path_only };
	struct transport_cb cb;
	struct transport *t;
	struct rec r;
	int fd;

	test_begin();
	rec_init(&r, &cb);
	CU_ASSERT_FATAL(mkdtemp(dir) != NULL);
	snprintf(script, sizeof(script), "%s/noshebang", dir);
	fd = open(script, O_WRONLY | O_CREAT | O_CLOEXEC, 0755);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT(write(fd, "echo hi\n", 8) == 8);
	close(fd);

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cfg.argv = cases[i].argv;
		cfg.cwd = cases[i].cwd;
		CU_ASSERT_FATAL(upstream_stdio_new(base, &cfg, &cb, &t) == 0);
		CU_ASSERT(transport_start(t) == cases[i].err);
		/* A child that never started takes nothing. */
		CU_ASSERT(send_text(t, "{\"jsonrpc\":\"2.0\",\"method\":\"x\"}") == -ENOTCONN);
		transport_destroy(t);
	}

	cfg.cwd = NULL;
	cfg.argv = NULL;
	CU_ASSERT(upstream_stdio_new(base, &cfg, &cb, &t) == -EINVAL);

	CU_ASSERT(event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED) == 0);
	CU_ASSERT(r.downs == 0 && r.send_errors == 0 && nmsgs(&r) == 0);
	test_end();
	CU_ASSERT(unlink(script) == 0 && rmdir(dir) == 0);
	rec_free(&r);
}

/* ---- stopping ---- */

static void test_destroy_escalates_to_sigkill(void)
{
	struct child ch;

	/* Ignores stdin's EOF and SIGTERM (sleep inherits the ignored disposition). */
	child_begin(&ch, "stubborn", SAY_PID "trap '' TERM; sleep 60");
	CU_ASSERT(group_alive(ch.pid) >= 1);
	transport_destroy(ch.t);
	CU_ASSERT(!process_gone(ch.pid));  /* destroy does not wait */
	CU_ASSERT(run_idle(15000));
	CU_ASSERT(process_gone(ch.pid));
	CU_ASSERT(group_gone(ch.pid));     /* its sleep too */
	test_end();
	CU_ASSERT(ch.r.downs == 0 && nmsgs(&ch.r) == 1);
	rec_free(&ch.r);
}

/* A child that closes its stdout can no longer answer: the transport goes down, stops the
 * child (it ignores stdin's EOF, so SIGTERM) and reports the exit. */
static void test_stdout_closed_means_down(void)
{
	struct child ch;
	struct waiter w = { &ch.r, 1 };

	child_begin(&ch, "mute", SAY_PID "exec sleep 60 >&-");
	CU_ASSERT_FATAL(run_until(have_downs, &w, 15000));
	CU_ASSERT_STRING_EQUAL(ch.r.down_why, "killed by signal 15");
	CU_ASSERT(process_gone(ch.pid));
	CU_ASSERT(send_text(ch.t, "{\"jsonrpc\":\"2.0\",\"method\":\"x\"}") == -ENOTCONN);
	transport_destroy(ch.t);
	test_end();
	rec_free(&ch.r);
}

/* Requests stuck in the queue when the child dies are reported; notifications are not; the
 * queue is bounded. */
static void test_send_errors_and_backpressure(void)
{
	struct child ch;
	struct waiter w = { &ch.r, 1 };
	struct transport *t;
	cJSON *big;
	char *filler;
	int i, n = 0, rc = 0;

	child_begin(&ch, "deaf", SAY_PID "exec sleep 60");      /* never reads stdin */
	t = ch.t;

	filler = malloc(1 << 20);
	CU_ASSERT_FATAL(filler != NULL);
	memset(filler, 'z', (1 << 20) - 1);
	filler[(1 << 20) - 1] = '\0';
	big = cJSON_CreateObject();
	cJSON_AddStringToObject(big, "jsonrpc", "2.0");
	cJSON_AddStringToObject(big, "method", "notifications/filler");
	cJSON_AddStringToObject(cJSON_AddObjectToObject(big, "params"), "data", filler);
	free(filler);

	CU_ASSERT(transport_send(t, big) == 0);         /* more than a pipe holds */
	CU_ASSERT(send_text(t, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/list\"}") == 0);
	CU_ASSERT(send_text(t, "{\"jsonrpc\":\"2.0\",\"id\":8,\"result\":{}}") == 0);
	for (i = 0; i < 100 && (rc = transport_send(t, big)) == 0; i++)
		n++;
	CU_ASSERT_EQUAL(rc, -ENOBUFS);
	CU_ASSERT(n >= 60 && n < 64);   /* 64 MiB of 1 MiB messages, minus what went first */
	cJSON_Delete(big);

	CU_ASSERT_FATAL(kill(ch.pid, SIGKILL) == 0);
	CU_ASSERT_FATAL(run_until(have_downs, &w, 10000));
	CU_ASSERT_STRING_EQUAL(ch.r.down_why, "killed by signal 9");
	/* Only the request, once, and before the down. */
	CU_ASSERT_EQUAL(ch.r.send_errors, 1);
	CU_ASSERT_EQUAL(cJSON_GetArrayItem(ch.r.send_error_ids, 0)->valueint, 7);
	CU_ASSERT(ch.r.send_error_err == -EPIPE || ch.r.send_error_err == -ECHILD);
	CU_ASSERT(ch.r.send_error_seq < ch.r.down_seq);
	transport_destroy(t);
	test_end();
	rec_free(&ch.r);
}

/* The owner may destroy the transport from any callback. */
static void test_destroy_from_callbacks(void)
{
	struct sh_cfg c1, c2;
	struct transport_cb cb1, cb2;
	struct transport *t1, *t2;
	struct rec r1, r2;
	struct waiter w = { &r1, 1 };

	test_begin();
	rec_init(&r1, &cb1);
	rec_init(&r2, &cb2);
	sh_cfg(&c1, "down", "exit 0", NULL);
	t1 = start(&c1.cfg, &cb1);
	r1.destroy_on_down = &t1;
	CU_ASSERT_FATAL(run_until(have_downs, &w, 10000));
	CU_ASSERT(t1 == NULL);

	/* Two messages in one read: destroyed on the first, the second is not delivered. */
	sh_cfg(&c2, "msg", "echo '{\"method\":\"m1\"}'; echo '{\"method\":\"m2\"}'; exec cat", NULL);
	t2 = start(&c2.cfg, &cb2);
	r2.destroy_on_message = &t2;
	w.r = &r2;
	CU_ASSERT_FATAL(run_until(have_msgs, &w, 10000));
	CU_ASSERT(t2 == NULL);
	test_end();
	CU_ASSERT_EQUAL(nmsgs(&r2), 1);
	CU_ASSERT_EQUAL(r2.downs, 0);
	rec_free(&r1);
	rec_free(&r2);
}

/* At exit, children still running (destroyed and in their grace period, or never destroyed)
 * are killed and reaped synchronously, and the base can be freed. */
static void test_shutdown_reaps_everything(void)
{
	struct sh_cfg c1, c2;
	struct transport_cb cb1, cb2;
	struct transport *t1, *t2;
	struct rec r1, r2;
	pid_t p1, p2;

	test_begin();
	rec_init(&r1, &cb1);
	rec_init(&r2, &cb2);
	sh_cfg(&c1, "stubborn", SAY_PID "trap '' TERM; exec sleep 60", NULL);
	sh_cfg(&c2, "live", SAY_PID "exec sleep 60", NULL);
	t1 = start(&c1.cfg, &cb1);
	t2 = start(&c2.cfg, &cb2);
	p1 = wait_pid_msg(&r1);
	p2 = wait_pid_msg(&r2);
	transport_destroy(t1);
	upstream_stdio_shutdown();
	CU_ASSERT(process_gone(p1) && group_gone(p1));
	CU_ASSERT(process_gone(p2) && group_gone(p2));
	CU_ASSERT(send_text(t2, "{\"jsonrpc\":\"2.0\",\"method\":\"x\"}") == -ENOTCONN);
	transport_destroy(t2);
	CU_ASSERT(event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED) == 0);
	test_end();
	CU_ASSERT(r1.downs == 0 && r2.downs == 0);
	rec_free(&r1);
	rec_free(&r2);
}

/* A killed daemon leaves no upstream behind: the child gets SIGTERM when its parent dies. */
static void test_children_die_with_the_daemon(void)
{
	int fds[2];
	pid_t helper, pid = 0;
	int status;

	CU_ASSERT_FATAL(pipe2(fds, O_CLOEXEC) == 0);
	helper = fork();
	CU_ASSERT_FATAL(helper >= 0);
	if (helper == 0) {
		/* A stand-in daemon: start a child, tell the test its pid, wait to be killed. */
		struct child ch;

		close(fds[0]);
		child_begin(&ch, "orphan", SAY_PID "exec sleep 60");
		pid = ch.pid;
		if (write(fds[1], &pid, sizeof(pid)) != (ssize_t)sizeof(pid))
			_exit(1);
		for (;;)
			pause();
	}
	close(fds[1]);
	CU_ASSERT(read(fds[0], &pid, sizeof(pid)) == (ssize_t)sizeof(pid));
	close(fds[0]);
	CU_ASSERT(kill(helper, SIGKILL) == 0);
	CU_ASSERT(waitpid(helper, &status, 0) == helper);
	CU_ASSERT_FATAL(pid > 1);
	CU_ASSERT(group_gone(pid));
	check_no_children();
}

static int suite_init(void)
{
	const char *path = getenv("PATH");

	snprintf(path_env, sizeof(path_env), "PATH=%s", path ? path : "/usr/bin:/bin");
	return 0;
}

CU_MAIN("upstream_stdio", suite_init, NULL,
	{ "server-everything: initialize, tools/list, echo", test_everything_session },
	{ "exit status, -ENOTCONN, restart", test_exit_status_and_restart },
	{ "killed by a signal", test_killed_by_signal },
	{ "two children watched, foreign children untouched", test_two_children_and_a_foreign_one },
	{ "garbage and over-long lines dropped, messages kept", test_garbage_lines_and_framing },
	{ "stderr goes to the log, bounded and defused", test_stderr_is_logged },
	{ "child gets only argv/envp/cwd and fds 0-2", test_child_gets_only_the_config },
	{ "spawn failures", test_spawn_failures },
	{ "destroy: SIGTERM ignored, SIGKILL, reaped", test_destroy_escalates_to_sigkill },
	{ "stdout closed: down, child stopped", test_stdout_closed_means_down },
	{ "send errors for queued requests, -ENOBUFS", test_send_errors_and_backpressure },
	{ "destroy from callbacks", test_destroy_from_callbacks },
	{ "shutdown kills and reaps", test_shutdown_reaps_everything },
	{ "children die with the daemon", test_children_die_with_the_daemon })
