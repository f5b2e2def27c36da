/* Helpers shared by the request-path tests (front, router, gate, catalogue, sessions): the
 * real thing on a real event loop — a config file in a temporary directory and the fault
 * fixture (tests/fixtures/fault-server.mjs) as a real stdio upstream. Header-only: every test
 * binary links only itself and libwarden. */
#ifndef LOOP_UTIL_H
#define LOOP_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <CUnit/Basic.h>
#include <event2/buffer.h>
#include <event2/event.h>

#include "base/config.h"
#include "store_test_util.h"

/* ---- running the loop ---------------------------------------------------------------------- */

static inline void lu_on_deadline(evutil_socket_t fd, short what, void *arg) { *(bool *)arg = true; }

/* Run base until pred(arg) holds or ms pass; returns whether it held. */
static inline bool lu_run_until(struct event_base *base, bool (*pred)(void *arg), void *arg,
				int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	bool expired = false;
	struct event *t = evtimer_new(base, lu_on_deadline, &expired);

	CU_ASSERT_FATAL(t != NULL);
	CU_ASSERT_FATAL(evtimer_add(t, &tv) == 0);
	while (!pred(arg) && !expired)
		CU_ASSERT_FATAL(event_base_loop(base, EVLOOP_ONCE) >= 0);
	event_free(t);
	return pred(arg);
}

static inline bool lu_never(void *arg) { return false; }

/* Let the loop run for ms (what must not happen has its chance to). */
static inline void lu_run_for(struct event_base *base, int ms)
{
	lu_run_until(base, lu_never, NULL, ms);
}

static inline bool lu_flag(void *arg) { return *(bool *)arg; }

/* ---- paths and configs --------------------------------------------------------------------- */

/* top/rel, top from MCPWARDEN_TOP (tests/run.sh) or the current directory. */
static inline void lu_path(char *buf, size_t len, const char *rel)
{
	const char *top = getenv("MCPWARDEN_TOP");

	snprintf(buf, len, "%s/%s", top && *top ? top : ".", rel);
}

/* The node that runs the fixtures: the pinned one when installed. */
static inline void lu_node(char *buf, size_t len)
{
	lu_path(buf, len, "tests/node_modules/node/bin/node");
	if (access(buf, X_OK) < 0)
		snprintf(buf, len, "node");
}

/* One element of "upstreams": the fault fixture over stdio, tagged and named `name`, with
 * extra arguments (e.g. "\"--extra-tools\", \"150\"") or "". */
static inline void lu_fault_upstream(char *buf, size_t len, const char *name, const char *extra)
{
	char node[1024], server[1024];

	lu_node(node, sizeof(node));
	lu_path(server, sizeof(server), "tests/fixtures/fault-server.mjs");
	snprintf(buf, len, "{\"name\": \"%s\", \"transport\": \"stdio\", \"command\": [\"%s\", \"%s\", "
		 "\"--tag\", \"%s\"%s%s]}", name, node, server, name, *extra ? ", " : "", extra);
}

/* A test's private directory (the config file, the store) and its config. */
struct lu_env {
	char dir[256];
	struct config *cfg;
};

/* Write the config text (printf format) to dir/config.json and load it the way the daemon
 * does; "state_dir" is set to dir by the caller's text through %s when it needs a store. */
static inline struct config *lu_config(struct lu_env *env, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static inline struct config *lu_config(struct lu_env *env, const char *fmt, ...)
{
	struct config_errors errs = { 0 };
	char path[512];
	va_list ap;
	FILE *f;

	if (!env->dir[0])
		CU_ASSERT_FATAL(tmpdir_make(env->dir, sizeof(env->dir)) == 0);
	snprintf(path, sizeof(path), "%s/config.json", env->dir);
	f = fopen(path, "w");
	CU_ASSERT_FATAL(f != NULL);
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	CU_ASSERT_FATAL(fclose(f) == 0);
	config_free(env->cfg);
	env->cfg = NULL;
	if (config_load(path, &env->cfg, &errs)) {
		for (int i = 0; i < errs.count; i++)
			fprintf(stderr, "config: %s\n", errs.msg[i]);
		CU_FAIL_FATAL("the test's config does not load");
	}
	return env->cfg;
}

static inline void lu_env_free(struct lu_env *env)
{
	config_free(env->cfg);
	env->cfg = NULL;
	if (env->dir[0])
		tmpdir_remove(env->dir);
	env->dir[0] = '\0';
}

/* Every child this process made has been reaped. */
static inline bool lu_no_children(void)
{
	int status;

	return waitpid(-1, &status, WNOHANG) == -1 && errno == ECHILD;
}

#endif
