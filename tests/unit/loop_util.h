/* Helpers shared by the request-path tests (front, router, gate, catalogue, sessions): the
 * real thing on a real event loop — a config file in a temporary directory, the fault fixture
 * (tests/fixtures/fault-server.mjs) as a real stdio upstream, and a small HTTP/1.1 client on a
 * real socket to 127.0.0.1. Header-only: every test binary links only itself and libwarden. */
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

/* Run the registered tests verbosely; the exit status main returns (0: all passed). */
static inline int lu_run_tests(void)
{
	unsigned failed;

	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	return failed ? 1 : 0;
}

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

/* ---- an HTTP/1.1 client on a real socket ------------------------------------------------------ */

struct http_resp {
	int status;
	char head[8192];   /* the status line and headers as received */
	char *body;        /* de-chunked, NUL-terminated (owned) */
	size_t body_len;
};

struct hc {
	int fd;
	struct event *ev;
	struct evbuffer *in;
	bool eof;
};

static inline void hc_on_read(evutil_socket_t fd, short what, void *arg)
{
	struct hc *c = arg;
	int n = evbuffer_read(c->in, fd, 65536);

	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		c->eof = true;
		event_del(c->ev);
	}
}

/* Connect to 127.0.0.1:port (the listener on the same loop accepts once the loop runs). */
static inline struct hc *hc_open(struct event_base *base, int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct hc *c = calloc(1, sizeof(*c));

	CU_ASSERT_FATAL(c != NULL);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CU_ASSERT_FATAL(c->fd >= 0);
	CU_ASSERT_FATAL(connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	CU_ASSERT_FATAL(fcntl(c->fd, F_SETFL, O_NONBLOCK) == 0);
	c->in = evbuffer_new();
	c->ev = event_new(base, c->fd, EV_READ | EV_PERSIST, hc_on_read, c);
	CU_ASSERT_FATAL(c->in && c->ev && event_add(c->ev, NULL) == 0);
	return c;
}

static inline void hc_close(struct hc *c)
{
	if (!c)
		return;
	event_free(c->ev);
	evbuffer_free(c->in);
	close(c->fd);
	free(c);
}

/* Send raw bytes (a request is small: the socket buffer takes it whole). */
static inline void hc_send_raw(struct hc *c, const char *data, size_t len)
{
	while (len) {
		ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
		CU_ASSERT_FATAL(n > 0);
		data += n;
		len -= (size_t)n;
	}
}

/* method path, the headers ("Name: value\r\n" each, may be ""), and body (NULL: none). */
static inline void hc_send(struct hc *c, const char *method, const char *path, const char *headers,
			   const char *body)
{
	char head[8192];
	int n = snprintf(head, sizeof(head), "%s %s HTTP/1.1\r\n%s", method, path, headers);

	if (body)
		n += snprintf(head + n, sizeof(head) - (size_t)n, "Content-Length: %zu\r\n",
			      strlen(body));
	n += snprintf(head + n, sizeof(head) - (size_t)n, "\r\n");
	CU_ASSERT_FATAL(n < (int)sizeof(head));
	hc_send_raw(c, head, (size_t)n);
	if (body)
		hc_send_raw(c, body, strlen(body));
}

/* A header's value in a head block (case-insensitive name), copied into buf; NULL if absent. */
static inline const char *http_header(const char *head, const char *name, char *buf, size_t len)
{
	size_t n = strlen(name);

	for (const char *p = strstr(head, "\r\n"); p && p[2]; p = strstr(p + 2, "\r\n")) {
		const char *l = p + 2;
		if (!strncasecmp(l, name, n) && l[n] == ':') {
			const char *v = l + n + 1, *e = strstr(v, "\r\n");
			while (*v == ' ')
				v++;
			snprintf(buf, len, "%.*s", (int)(e ? e - v : (long)strlen(v)), v);
			return buf;
		}
	}
	return NULL;
}

static inline const char *resp_header(const struct http_resp *r, const char *name)
{
	static char buf[1024];

	return http_header(r->head, name, buf, sizeof(buf));
}

/* Parse one whole response at the front of c->in into r (and drain it): 1 done, 0 not yet. */
static inline int hc_parse(struct hc *c, struct http_resp *r, bool take)
{
	struct evbuffer_ptr eoh = evbuffer_search(c->in, "\r\n\r\n", 4, NULL);
	size_t hlen, avail = evbuffer_get_length(c->in);
	char cl[32], te[32];
	const char *data;

	if (eoh.pos < 0)
		return 0;
	hlen = (size_t)eoh.pos + 4;
	data = (const char *)evbuffer_pullup(c->in, -1);
	CU_ASSERT_FATAL(hlen < sizeof(r->head));
	memcpy(r->head, data, hlen);
	r->head[hlen] = '\0';
	r->status = atoi(r->head + 9);
	if (http_header(r->head, "Transfer-Encoding", te, sizeof(te)) && !strcasecmp(te, "chunked")) {
		size_t pos = hlen, out = 0;
		char *body = malloc(avail + 1);
		CU_ASSERT_FATAL(body != NULL);
		for (;;) {
			const char *nl = memmem(data + pos, avail - pos, "\r\n", 2);
			if (!nl) {
				free(body);
				return 0;
			}
			size_t sz = strtoul(data + pos, NULL, 16);
			pos = (size_t)(nl - data) + 2;
			if (avail - pos < sz + 2) {
				free(body);
				return 0;
			}
			memcpy(body + out, data + pos, sz);
			out += sz;
			pos += sz + 2;
			if (!sz)
				break;
		}
		body[out] = '\0';
		if (take) {
			r->body = body;
			r->body_len = out;
			evbuffer_drain(c->in, pos);
		} else {
			free(body);
		}
		return 1;
	}
	size_t blen = http_header(r->head, "Content-Length", cl, sizeof(cl)) ? strtoul(cl, NULL, 10)
		: (c->eof ? avail - hlen : (size_t)-1);
	if (blen == (size_t)-1 || avail - hlen < blen)
		return 0;
	if (take) {
		r->body = malloc(blen + 1);
		CU_ASSERT_FATAL(r->body != NULL);
		memcpy(r->body, data + hlen, blen);
		r->body[blen] = '\0';
		r->body_len = blen;
		evbuffer_drain(c->in, hlen + blen);
	}
	return 1;
}

struct hc_wait {
	struct hc *c;
	struct http_resp *r;
	const char *needle;
};

static inline bool hc_complete(void *arg)
{
	struct hc_wait *w = arg;

	return hc_parse(w->c, w->r, false) || w->c->eof;
}

/* Wait for the next whole response; false on timeout or when the server closed first. */
static inline bool hc_response(struct event_base *base, struct hc *c, struct http_resp *r, int ms)
{
	struct hc_wait w = { c, r, NULL };

	memset(r, 0, sizeof(*r));
	if (!lu_run_until(base, hc_complete, &w, ms))
		return false;
	return hc_parse(c, r, true) == 1;
}

static inline bool hc_has(void *arg)
{
	struct hc_wait *w = arg;
	struct evbuffer_ptr p = evbuffer_search(w->c->in, w->needle, strlen(w->needle), NULL);

	return p.pos >= 0 || w->c->eof;
}

/* Wait until what was received so far (raw, e.g. an open event stream) contains needle. */
static inline bool hc_wait_for(struct event_base *base, struct hc *c, const char *needle, int ms)
{
	struct hc_wait w = { c, NULL, needle };

	lu_run_until(base, hc_has, &w, ms);
	return evbuffer_search(c->in, needle, strlen(needle), NULL).pos >= 0;
}

static inline bool hc_closed(void *arg) { return ((struct hc *)arg)->eof; }

/* Wait until the server closed the connection. */
static inline bool hc_wait_eof(struct event_base *base, struct hc *c, int ms)
{
	return lu_run_until(base, hc_closed, c, ms);
}

static inline void resp_free(struct http_resp *r)
{
	free(r->body);
	r->body = NULL;
}

/* The body parsed as JSON (caller deletes); NULL when it is not JSON. */
static inline cJSON *resp_json(const struct http_resp *r)
{
	return r->body ? cJSON_Parse(r->body) : NULL;
}

#endif
