/* test_loops: event loops on several threads at once, as `workers: N` will run them
 * (docs/architecture.md, "workers: N"), sharing what a process shares.
 *
 * Metrics (observe/metrics): loop threads count into blocks of their own while the main
 * thread scrapes; /metrics shows the sums, exactly, series by series.
 *
 * Stdio children (mcp/transport/upstream_stdio): each loop thread starts children on its own
 * base and sees each one's end, with its own exit status, on its own loop (a pidfd each; a
 * process-wide SIGCHLD event could serve one base only).
 *
 * The permission views (govern/policy): two loops ask one cache for the views of two policies
 * in turns, each compiled once and then shared; every answer is the policy's own.
 *
 * The store (store/store): two loops charge through the journal at once and wait for
 * commits; each completion runs on the loop that asked, every charge is in the database once
 * the store closes, and a usage reset a loop staged before a charge is applied before it.
 *
 * Each loop thread runs its own HTTP server (base/http_server) on its own event base and
 * authenticates every request against one keystore both loops share (govern/keys); a client
 * thread a loop sends it keep-alive requests over real loopback TCP, with a good key or a bad
 * one and a response header of a different length each time, and checks every answer byte
 * for byte: the status, the Date header, the header's length, the body naming the key. Each
 * loop also calls the other loop's server through its own upstream HTTP client
 * (base/http_client, as the upstream transports do) and checks those answers. What each
 * server prints its answers with, what the keystore hashes with and each client's pools must
 * be a loop's own: a buffer shared by two servers is reallocated under the other's feet
 * (AddressSanitizer sees it, or an answer comes out wrong), and ThreadSanitizer (make tsan)
 * reports any race.
 */
#include <CUnit/Basic.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/event.h>

#include "cunit_main.h"
#include "base/http_client.h"
#include "base/http_server.h"
#include "base/config.h"
#include "govern/keys.h"
#include "govern/policy.h"
#include "mcp/transport/transport.h"
#include "mcp/transport/upstream_stdio.h"
#include "observe/metrics.h"
#include "store/store.h"
#include "store_test_util.h"

#define LOOPS 2
#define REQUESTS 400            /* a client's, over one connection */
#define CALLS 200               /* a loop's own client's, to the other loop's server */
#define WAIT_MS 20000           /* the longest a loop or a client may take */
#define NOW 1800000000LL        /* wall-clock time for the keys, unix seconds */
#define GOOD_KEY "mcpw_loops_test_key_0123456789"

static struct keystore *shared_ks;
static atomic_int calls_done;   /* loops whose own client is through */

struct loop {
	int idx;
	struct event_base *base;
	struct http_server *s;
	struct event *deadline, *tick;
	int port;
	atomic_uint answered;
	/* what the client thread found */
	atomic_bool client_done;
	unsigned ok, wrong;
	char first_wrong[256];
	/* the loop's own client, calling the other loop's server */
	int other_port;
	struct http_pool *pool;
	unsigned call, call_ok, call_wrong;
	int status;
	char body[200];
	size_t body_len;
};

/* Every request: authenticate its key against the shared keystore, answer with a header of
 * the length the client asked for (X-Pad-Len) and a body that names the key. */
static void on_request(void *arg, struct http_req *r)
{
	struct loop *l = arg;
	const char *key = http_req_header(r, "X-Api-Key");
	const char *want = http_req_header(r, "X-Pad-Len");
	size_t pad = want ? strtoul(want, NULL, 10) : 0;
	struct key_identity who = { 0 };
	char body[160], padding[2001];
	enum keys_auth a;

	/* No CUnit here: its assertions are the main thread's. */
	a = keys_authenticate(shared_ks, key, key ? strlen(key) : 0, NOW, &who);
	if (pad > 2000)
		pad = 2000;
	memset(padding, 'a' + l->idx, pad);
	padding[pad] = '\0';
	http_req_set_header(r, "X-Pad", padding);
	if (a == KEYS_AUTH_OK) {
		snprintf(body, sizeof(body), "{\"loop\":%d,\"key\":\"%s\"}", l->idx, who.id);
		http_req_send_text(r, 200, NULL, "application/json", body);
	} else {
		snprintf(body, sizeof(body), "{\"loop\":%d,\"refused\":%d}", l->idx, (int)a);
		http_req_send_text(r, 401, NULL, "application/json", body);
	}
	atomic_fetch_add(&l->answered, 1);
}

static const struct http_server_hooks hooks = { on_request, NULL, NULL, NULL };

/* A loop stops once its client thread and every loop's own client are through. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct loop *l = arg;

	(void)fd, (void)what;
	if (atomic_load(&l->client_done) && atomic_load(&calls_done) == LOOPS)
		event_base_loopbreak(l->base);
}

/* ---- a loop's own client ---- */

static void call_next(struct loop *l);

static int call_head(void *arg, const struct http_head *h)
{
	struct loop *l = arg;

	l->status = h->status;
	return 0;
}

static int call_body(void *arg, const char *p, size_t n)
{
	struct loop *l = arg;

	if (l->body_len + n >= sizeof(l->body))
		return -EMSGSIZE;
	memcpy(l->body + l->body_len, p, n);
	l->body_len += n;
	return 0;
}

static void call_done(void *arg, int err)
{
	struct loop *l = arg;
	char want[64];

	l->body[l->body_len] = '\0';
	snprintf(want, sizeof(want), "{\"loop\":%d,\"key\":\"k1\"}", 1 - l->idx);
	if (!err && l->status == 200 && !strcmp(l->body, want))
		l->call_ok++;
	else
		l->call_wrong++;
	l->call++;
	call_next(l);
}

static const struct http_request_cb call_cb = { call_head, call_body, call_done };

static void call_next(struct loop *l)
{
	static _Thread_local char headers[64];
	struct http_request_spec spec = {
		.method = "GET", .target = "/c", .host = "t", .headers = headers,
		.timeout_ms = WAIT_MS,
	};
	struct http_request *r;

	if (l->call == CALLS) {
		atomic_fetch_add(&calls_done, 1);
		return;
	}
	spec.headers_len = (size_t)snprintf(headers, sizeof(headers),
					    "X-Api-Key: %s\r\nX-Pad-Len: %u\r\n", GOOD_KEY,
					    (l->call * 53) % 1800);
	l->status = 0;
	l->body_len = 0;
	if (http_request_start(l->pool, &spec, &call_cb, l, &r) != 0) {
		l->call_wrong++;
		l->call = CALLS;
		atomic_fetch_add(&calls_done, 1);
	}
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct loop *l = arg;

	(void)fd, (void)what;
	event_base_loopbreak(l->base);
}

static void *loop_main(void *arg)
{
	struct loop *l = arg;
	struct timeval tv = { WAIT_MS / 1000, 0 }, tick = { 0, 5000 };

	evtimer_add(l->deadline, &tv);
	event_add(l->tick, &tick);
	if (http_client_init(l->base, NULL) == 0 &&
	    http_pool_get("127.0.0.1", (unsigned)l->other_port, &l->pool) == 0) {
		call_next(l);
	} else {
		l->call_wrong++;
		atomic_fetch_add(&calls_done, 1);
	}
	event_base_dispatch(l->base);
	http_client_shutdown();         /* the thread's own client, on its thread */
	return NULL;
}

/* ---- the client side: blocking, with its own reading of the answers ---- */

static bool read_answer(int fd, char *buf, size_t cap, size_t *len)
{
	size_t have = 0;
	char *end = NULL;
	long body = -1;

	for (;;) {
		struct pollfd p = { fd, POLLIN, 0 };
		ssize_t n;

		if (!end && (end = memmem(buf, have, "\r\n\r\n", 4))) {
			const char *cl = memmem(buf, (size_t)(end - buf), "Content-Length: ", 16);

			if (!cl)
				return false;
			body = strtol(cl + 16, NULL, 10);
		}
		if (end && have >= (size_t)(end + 4 - buf) + (size_t)body) {
			*len = have;
			buf[have] = '\0';
			return have == (size_t)(end + 4 - buf) + (size_t)body;
		}
		if (poll(&p, 1, WAIT_MS) != 1 || have + 1 >= cap)
			return false;
		n = read(fd, buf + have, cap - 1 - have);
		if (n <= 0)
			return false;
		have += (size_t)n;
	}
}

/* Whether answer i is the one asked for; a note of what differs otherwise. */
static bool check_answer(const struct loop *l, unsigned i, const char *a, char *why, size_t n)
{
	bool good = i % 3 != 2;
	size_t pad = (i * 37) % 1500;
	char want[160], line[32];
	const char *p, *body;

	snprintf(line, sizeof(line), "HTTP/1.1 %d ", good ? 200 : 401);
	if (strncmp(a, line, strlen(line)) != 0) {
		snprintf(why, n, "request %u: status line %.40s", i, a);
		return false;
	}
	if (!strstr(a, "\r\nDate: ")) {
		snprintf(why, n, "request %u: no Date header", i);
		return false;
	}
	p = strstr(a, "\r\nX-Pad: ");
	if (!p || strspn(p + 9, (char[]){ (char)('a' + l->idx), '\0' }) != pad || p[9 + pad] != '\r') {
		snprintf(why, n, "request %u: X-Pad is not %zu times '%c'", i, pad, 'a' + l->idx);
		return false;
	}
	if (good)
		snprintf(want, sizeof(want), "{\"loop\":%d,\"key\":\"k1\"}", l->idx);
	else
		snprintf(want, sizeof(want), "{\"loop\":%d,\"refused\":%d}", l->idx,
			 (int)KEYS_AUTH_UNKNOWN);
	body = strstr(a, "\r\n\r\n");
	if (!body || strcmp(body + 4, want) != 0) {
		snprintf(why, n, "request %u: body %.80s", i, body ? body + 4 : "(none)");
		return false;
	}
	return true;
}

static void *client_main(void *arg)
{
	struct loop *l = arg;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)l->port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	static _Thread_local char buf[1 << 14];
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		snprintf(l->first_wrong, sizeof(l->first_wrong), "connect: %s", strerror(errno));
		goto out;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	for (unsigned i = 0; i < REQUESTS; i++) {
		char req[256], why[256];
		size_t len;
		int n = snprintf(req, sizeof(req),
				 "GET /k HTTP/1.1\r\nHost: t\r\nX-Api-Key: %s\r\nX-Pad-Len: %u\r\n\r\n",
				 i % 3 != 2 ? GOOD_KEY : "mcpw_not_a_key_we_know",
				 (i * 37) % 1500);

		if (write(fd, req, (size_t)n) != n || !read_answer(fd, buf, sizeof(buf), &len)) {
			snprintf(l->first_wrong, sizeof(l->first_wrong), "request %u: no answer", i);
			break;
		}
		if (check_answer(l, i, buf, why, sizeof(why))) {
			l->ok++;
		} else if (!l->wrong++) {
			memcpy(l->first_wrong, why, sizeof(why));
		}
	}
out:
	if (fd >= 0)
		close(fd);
	atomic_store(&l->client_done, true);
	return NULL;
}

static void test_loops_side_by_side(void)
{
	struct loop loops[LOOPS];
	pthread_t lt[LOOPS], ct[LOOPS];
	struct key_record k = { 0 };

	CU_ASSERT_FATAL(keys_new(NULL, &shared_ks) == 0);
	snprintf(k.id, sizeof(k.id), "k1");
	snprintf(k.name, sizeof(k.name), "loops");
	snprintf(k.policy, sizeof(k.policy), "p");
	CU_ASSERT_FATAL(keys_hash(GOOD_KEY, strlen(GOOD_KEY), k.hash) == 0);
	CU_ASSERT_FATAL(keys_add(shared_ks, &k) == 0);

	for (int i = 0; i < LOOPS; i++) {
		struct loop *l = &loops[i];

		memset(l, 0, sizeof(*l));
		l->idx = i;
		l->base = event_base_new();
		CU_ASSERT_FATAL(l->base != NULL);
		l->deadline = evtimer_new(l->base, on_deadline, l);
		l->tick = event_new(l->base, -1, EV_PERSIST, on_tick, l);
		CU_ASSERT_FATAL(l->deadline != NULL && l->tick != NULL);
		CU_ASSERT_FATAL(http_server_new(l->base, &hooks, l, &l->s) == 0);
		CU_ASSERT_FATAL(http_server_bind(l->s, "loop", "127.0.0.1", 0, &l->port, NULL) == 0);
	}
	atomic_store(&calls_done, 0);
	for (int i = 0; i < LOOPS; i++)
		loops[i].other_port = loops[(i + 1) % LOOPS].port;
	for (int i = 0; i < LOOPS; i++)
		CU_ASSERT_FATAL(pthread_create(&lt[i], NULL, loop_main, &loops[i]) == 0);
	for (int i = 0; i < LOOPS; i++)
		CU_ASSERT_FATAL(pthread_create(&ct[i], NULL, client_main, &loops[i]) == 0);
	for (int i = 0; i < LOOPS; i++) {
		CU_ASSERT_FATAL(pthread_join(ct[i], NULL) == 0);
		CU_ASSERT_FATAL(pthread_join(lt[i], NULL) == 0);
	}
	for (int i = 0; i < LOOPS; i++) {
		struct loop *l = &loops[i];

		if (l->wrong || l->ok != REQUESTS || l->call_ok != CALLS)
			fprintf(stderr, "loop %d: %u right, %u wrong (first: %s); its own client: "
				"%u right, %u wrong\n", i, l->ok, l->wrong, l->first_wrong,
				l->call_ok, l->call_wrong);
		CU_ASSERT_EQUAL(l->ok, REQUESTS);
		CU_ASSERT_EQUAL(l->wrong, 0);
		CU_ASSERT_EQUAL(l->call_ok, CALLS);
		CU_ASSERT_EQUAL(l->call_wrong, 0);
		/* its client thread's, and the other loop's client's */
		CU_ASSERT_EQUAL(atomic_load(&l->answered), REQUESTS + CALLS);
		http_server_free(l->s);
		event_free(l->deadline);
		event_free(l->tick);
		event_base_free(l->base);
	}
	keys_free(shared_ks);
	shared_ks = NULL;
}

/* ---- metrics ---- */

#define COUNTS 20000            /* a counting thread's calls */

static void *count_main(void *arg)
{
	int idx = (int)(intptr_t)arg;
	char own[32], key[16];

	snprintf(own, sizeof(own), "only-%d", idx);
	snprintf(key, sizeof(key), "key-%d", idx);
	metrics_loop_attach();
	for (int i = 0; i < COUNTS; i++) {
		metrics_decision("tools/call", "allow", 0, false, "srv", 5000, 20000);
		metrics_tool_call("srv", "shared", 30000);
		metrics_tool_call("srv", own, 30000);
		if (i % 100 == 0) {
			metrics_decision("tools/call", "error", -32603, false, "srv", 100, 0);
			metrics_llm("key-x", "openai/gpt", 3, 4, 5);
			metrics_llm(key, "openai/gpt", 1, 1, 0);
		}
	}
	metrics_session_opened();
	metrics_session_opened();
	metrics_session_closed();
	metrics_loop_detach();
	return NULL;
}

static char *scrape(void)
{
	struct evbuffer *b = evbuffer_new();
	size_t n;
	char *text;

	CU_ASSERT_FATAL(b != NULL);
	CU_ASSERT_EQUAL(metrics_render(b, NULL, NULL), 0);
	n = evbuffer_get_length(b);
	text = malloc(n + 1);
	CU_ASSERT_FATAL(text != NULL);
	evbuffer_remove(b, text, n);
	text[n] = '\0';
	evbuffer_free(b);
	return text;
}

/* The value of the sample whose line starts with name (labels included), or -1. */
static long long sample(const char *text, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (!strncmp(p, name, n) && p[n] == ' ')
			return strtoll(p + n + 1, NULL, 10);
	return -1;
}

static void test_metrics_add_up(void)
{
	pthread_t t[LOOPS];
	char *text;

	metrics_reset();
	metrics_decision("tools/call", "allow", 0, false, "srv", 5000, 20000);  /* the main loop's */
	metrics_circuit_state("srv", 1);
	for (int i = 0; i < LOOPS; i++)
		CU_ASSERT_FATAL(pthread_create(&t[i], NULL, count_main, (void *)(intptr_t)i) == 0);
	for (int i = 0; i < 50; i++)    /* scrapes while the loops count: never a torn read */
		free(scrape());
	for (int i = 0; i < LOOPS; i++)
		CU_ASSERT_FATAL(pthread_join(t[i], NULL) == 0);

	text = scrape();
	CU_ASSERT_EQUAL(sample(text, "mcpwarden_requests_total{method=\"tools/call\","
			       "decision=\"allow\",reason=\"ok\"}"), LOOPS * COUNTS + 1);
	CU_ASSERT_EQUAL(sample(text, "mcpwarden_requests_total{method=\"tools/call\","
			       "decision=\"error\",reason=\"internal\"}"), LOOPS * COUNTS / 100);
	CU_ASSERT_EQUAL(sample(text, "mcpwarden_request_duration_seconds_count{part=\"gateway\"}"),
			LOOPS * (COUNTS + COUNTS / 100) + 1);
	CU_ASSERT_EQUAL(sample(text, "mcpwarden_tool_call_duration_seconds_count{server=\"srv\","
			       "tool=\"shared\"}"), LOOPS * COUNTS);
	CU_ASSERT_EQUAL(sample(text, "mcpwarden_tool_call_duration_seconds_count{server=\"srv\","
			       "tool=\"only-0\"}"), COUNTS);
	CU_ASSERT_EQUAL(sample(text, "mcpwarden_tool_call_duration_seconds_count{server=\"srv\","
			       "tool=\"only-1\"}"), COUNTS);
	CU_ASSERT_EQUAL(sample(text, "mcpwarden_llm_input_tokens_total{key=\"key-x\","
			       "model=\"openai/gpt\"}"), 3 * LOOPS * COUNTS / 100);
	CU_ASSERT_EQUAL(sample(text, "mcpwarden_llm_requests_total{key=\"key-1\","
			       "model=\"openai/gpt\"}"), COUNTS / 100);
	CU_ASSERT_EQUAL(sample(text, "mcpwarden_sessions"), LOOPS);
	CU_ASSERT_EQUAL(sample(text, "mcpwarden_upstream_circuit_state{upstream=\"srv\"}"), 1);
	free(text);

	/* A loop that stopped left its counts; the next one counts on from them. */
	CU_ASSERT_FATAL(pthread_create(&t[0], NULL, count_main, (void *)(intptr_t)0) == 0);
	CU_ASSERT_FATAL(pthread_join(t[0], NULL) == 0);
	text = scrape();
	CU_ASSERT_EQUAL(sample(text, "mcpwarden_tool_call_duration_seconds_count{server=\"srv\","
			       "tool=\"only-0\"}"), 2 * COUNTS);
	CU_ASSERT_EQUAL(sample(text, "mcpwarden_sessions"), LOOPS + 1);
	free(text);
	metrics_reset();
}

/* ---- stdio children ---- */

#define CHILDREN 5              /* a loop's, one after the other */

struct child_loop {
	int idx;
	struct event_base *base;
	struct upstream_config cfg;
	char *argv[6];
	char script[64];
	struct transport *t;
	int started, downs, right;
	char first_wrong[96];
};

static char *const env_path[] = { "PATH=/usr/bin:/bin", NULL };

static void child_start(struct child_loop *c);

static void child_down(void *arg, int err, const char *why)
{
	struct child_loop *c = arg;
	char want[64];

	/* Loop idx's child number n exits with status 10 * idx + n. */
	snprintf(want, sizeof(want), "exited with status %d", 10 * c->idx + c->downs);
	if (err == -ECHILD && !strcmp(why, want))
		c->right++;
	else if (!c->first_wrong[0])
		snprintf(c->first_wrong, sizeof(c->first_wrong), "%d %s", err, why);
	c->downs++;
	if (c->downs < CHILDREN)
		child_start(c);
	else
		event_base_loopbreak(c->base);
}

static void child_message(void *arg, cJSON *msg, const cJSON *related)
{
	(void)arg, (void)related;
	cJSON_Delete(msg);
}

static void child_start(struct child_loop *c)
{
	snprintf(c->script, sizeof(c->script), "exit %d", 10 * c->idx + c->downs);
	if (transport_start(c->t) == 0)
		c->started++;
	else
		event_base_loopbreak(c->base);
}

static void *child_loop_main(void *arg)
{
	struct child_loop *c = arg;
	struct transport_cb cb = { child_message, NULL, child_down, c };
	struct timeval tv = { WAIT_MS / 1000, 0 };

	c->base = event_base_new();
	if (!c->base)
		return NULL;
	c->argv[0] = "sh";
	c->argv[1] = "-c";
	c->argv[2] = c->script;
	c->cfg.name = c->idx ? "child-b" : "child-a";
	c->cfg.kind = UPSTREAM_STDIO;
	c->cfg.argv = c->argv;
	c->cfg.envp = (char **)env_path;
	if (upstream_stdio_new(c->base, &c->cfg, &cb, &c->t) == 0) {
		child_start(c);
		event_base_loopexit(c->base, &tv);
		event_base_dispatch(c->base);
		transport_destroy(c->t);
	}
	upstream_stdio_shutdown();      /* this thread's children */
	event_base_free(c->base);
	return NULL;
}

static void test_children_on_their_loops(void)
{
	struct child_loop c[LOOPS];
	pthread_t t[LOOPS];

	memset(c, 0, sizeof(c));
	for (int i = 0; i < LOOPS; i++) {
		c[i].idx = i;
		CU_ASSERT_FATAL(pthread_create(&t[i], NULL, child_loop_main, &c[i]) == 0);
	}
	for (int i = 0; i < LOOPS; i++) {
		CU_ASSERT_FATAL(pthread_join(t[i], NULL) == 0);
		if (c[i].right != CHILDREN)
			fprintf(stderr, "loop %d: %d started, %d down, %d right; first wrong: %s\n", i,
				c[i].started, c[i].downs, c[i].right, c[i].first_wrong);
		CU_ASSERT_EQUAL(c[i].started, CHILDREN);
		CU_ASSERT_EQUAL(c[i].right, CHILDREN);
	}
}

/* ---- permission views ---- */

#define LOOKS 20000

static struct policy_cache *shared_pc;

struct look {
	int idx, wrong, errors;
};

/* Policy "only-a" allows tool a, "only-b" tool b: each view must say so, whichever loop
 * compiled it and whatever the other loop asked last. */
static void *look_main(void *arg)
{
	struct look *l = arg;
	static const char *const pol[2] = { "only-a", "only-b" };

	for (int i = 0; i < LOOKS; i++) {
		const struct policy_view *v = NULL;
		int p = (i + l->idx) & 1;      /* the loops out of step */

		if (policy_cache_get(shared_pc, pol[p], NULL, &v)) {
			l->errors++;
			continue;
		}
		l->wrong += policy_view_allows(v, 0, NULL) != (p == 0) ||
			    policy_view_allows(v, 1, NULL) != (p == 1);
	}
	return NULL;
}

static void test_views_from_two_loops(void)
{
	const char *text = "{\"policies\":{\"only-a\":{\"tools\":{\"allow\":[\"s/a\"]}},"
			   "\"only-b\":{\"tools\":{\"allow\":[\"s/b\"]}}}}";
	const struct policy_entry entries[2] = { { POLICY_TOOL, "s", "a", NULL },
						 { POLICY_TOOL, "s", "b", NULL } };
	struct config_errors errs = { 0 };
	struct policy_set *ps = NULL;
	struct look l[LOOPS] = { { 0 } };
	pthread_t t[LOOPS];
	cJSON *root = cJSON_Parse(text);

	CU_ASSERT_FATAL(root != NULL);
	CU_ASSERT_FATAL(policy_set_parse(root, &ps, &errs) == 0);
	CU_ASSERT_FATAL(policy_cache_new(ps, &shared_pc) == 0);
	policy_cache_set_catalogue(shared_pc, entries, 2);
	for (int i = 0; i < LOOPS; i++) {
		l[i].idx = i;
		CU_ASSERT_FATAL(pthread_create(&t[i], NULL, look_main, &l[i]) == 0);
	}
	for (int i = 0; i < LOOPS; i++) {
		CU_ASSERT_FATAL(pthread_join(t[i], NULL) == 0);
		CU_ASSERT_EQUAL(l[i].errors, 0);
		CU_ASSERT_EQUAL(l[i].wrong, 0);
	}
	CU_ASSERT_EQUAL(policy_cache_views(shared_pc), 2);      /* each compiled once */
	policy_cache_free(shared_pc);
	policy_set_free(ps);
	cJSON_Delete(root);
}

/* ---- the store ---- */

#define TURNS 40                /* a loop's turns of charging */
#define CHARGES 50              /* its charges a turn, then one flush it waits for */
#define DAY0 1800000000LL       /* the spend rows' start */

struct store_loop_test {
	int idx;
	struct store *st;
	struct event_base *base;
	pthread_t self;
	struct event *turn;
	int turns, journaled, waited, flushed, wrong_thread, errors;
	char scope[16];
};

static void store_flushed(void *arg, int err)
{
	struct store_loop_test *l = arg;

	l->flushed++;
	l->errors += err != 0;
	l->wrong_thread += !pthread_equal(pthread_self(), l->self);
	if (l->flushed == TURNS + 1)
		event_base_loopbreak(l->base);
}

static void store_charged(void *arg, int err)
{
	struct store_loop_test *l = arg;

	l->errors += err != 0;
	l->wrong_thread += !pthread_equal(pthread_self(), l->self);
}

/* A turn: CHARGES charges of 1 to the loop's key and the team both loops share, then a flush
 * that completes once they are committed. The last turn resets the key's day first and
 * charges it 7 after the reset: the reset must reach the database before that charge. */
static void store_turn(evutil_socket_t fd, short what, void *arg)
{
	struct store_loop_test *l = arg;
	struct store_spend items[2] = {
		{ .scope = l->scope, .period = "day", .start = DAY0, .amount = 1 },
		{ .scope = "team:shared", .period = "month", .start = DAY0, .amount = 1 },
	};
	int rc;

	(void)fd, (void)what;
	if (l->turns == TURNS) {
		l->errors += store_spend_reset(l->st, items, 1, NULL, NULL) != 0;
		items[0].amount = 7;
		rc = store_charge(l->st, items, 1, store_charged, l);
		l->journaled += rc == 1;
		l->waited += rc == 0;
		l->errors += rc < 0;
		l->errors += store_flush(l->st, store_flushed, l) != 0;
		return;
	}
	for (int i = 0; i < CHARGES; i++) {
		rc = store_charge(l->st, items, 2, store_charged, l);
		l->journaled += rc == 1;
		l->waited += rc == 0;
		l->errors += rc < 0;
	}
	l->errors += store_flush(l->st, store_flushed, l) != 0;
	l->turns++;
	event_active(l->turn, EV_TIMEOUT, 1);
}

static void store_loop_run(struct store_loop_test *l)
{
	struct timeval tv = { WAIT_MS / 1000, 0 };

	l->self = pthread_self();
	snprintf(l->scope, sizeof(l->scope), "key:k%d", l->idx);
	l->turn = event_new(l->base, -1, 0, store_turn, l);
	if (!l->turn)
		return;
	event_active(l->turn, EV_TIMEOUT, 1);
	event_base_loopexit(l->base, &tv);
	event_base_dispatch(l->base);
	event_free(l->turn);
}

static pthread_barrier_t store_go;

static void *store_loop_main(void *arg)
{
	struct store_loop_test *l = arg;
	int rc = store_loop_attach(l->st, l->base);

	pthread_barrier_wait(&store_go);
	if (rc == 0)
		store_loop_run(l);
	else
		l->errors++;
	return NULL;
}

static int spend_sum(void *arg, const struct store_spend *row)
{
	int64_t *sum = arg;

	if (row->start == DAY0)
		sum[!strcmp(row->scope, "key:k0") ? 0 : !strcmp(row->scope, "key:k1") ? 1 : 2] +=
			row->amount;
	return 0;
}

static char store_dir[PATH_MAX], store_path[PATH_MAX + 32];

static void test_store_from_two_loops(void)
{
	const char *dir = store_dir, *path = store_path;
	struct store_loop_test l[2];
	struct store_options o = { .path = (char *)path, .fsync_interval_ms = 1000 };
	struct store *st = NULL;
	int64_t sum[3] = { 0 };
	pthread_t t;

	CU_ASSERT_FATAL(tmpdir_setup(store_dir, sizeof(store_dir), store_path, sizeof(store_path),
				     "warden.db") == 0);
	memset(l, 0, sizeof(l));
	for (int i = 0; i < 2; i++) {
		l[i].idx = i;
		l[i].base = event_base_new();
		CU_ASSERT_FATAL(l[i].base != NULL);
	}
	/* Loop 0 is this thread, which opens the store; loop 1 attaches on its own. */
	CU_ASSERT_FATAL(store_open(&o, l[0].base, &st) == 0);
	l[0].st = l[1].st = st;
	CU_ASSERT_FATAL(pthread_barrier_init(&store_go, NULL, 2) == 0);
	CU_ASSERT_FATAL(pthread_create(&t, NULL, store_loop_main, &l[1]) == 0);
	pthread_barrier_wait(&store_go);
	store_loop_run(&l[0]);
	CU_ASSERT_FATAL(pthread_join(t, NULL) == 0);
	pthread_barrier_destroy(&store_go);
	store_close(st);

	for (int i = 0; i < 2; i++) {
		CU_ASSERT_EQUAL(l[i].flushed, TURNS + 1);
		CU_ASSERT_EQUAL(l[i].errors, 0);
		CU_ASSERT_EQUAL(l[i].wrong_thread, 0);
		/* The journal took them all (8192 slots; the writer keeps up). */
		CU_ASSERT_EQUAL(l[i].journaled, TURNS * CHARGES + 1);
	}
	/* Every charge is in the database, the reset before the charge after it. */
	CU_ASSERT_FATAL(store_open(&o, l[0].base, &st) == 0);
	CU_ASSERT_EQUAL(store_load_spend(st, spend_sum, sum), 0);
	store_close(st);
	CU_ASSERT_EQUAL(sum[0], 7);
	CU_ASSERT_EQUAL(sum[1], 7);
	CU_ASSERT_EQUAL(sum[2], 2 * TURNS * CHARGES);
	for (int i = 0; i < 2; i++)
		event_base_free(l[i].base);
	tmpdir_remove(dir);
}

/* A loop that ends (a full reload stops them all): what it queued is answered on its thread
 * before store_loop_detach returns, and its place is the next loop's. */
struct ending_loop {
	struct store *st;
	pthread_t self;
	int attach_rc, charge_rc[3], flush_rc;
	int flushed, wrong_thread;
};

static void ending_flushed(void *arg, int err)
{
	struct ending_loop *e = arg;

	e->flushed += err == 0 ? 1 : 100;
	e->wrong_thread += !pthread_equal(pthread_self(), e->self);
}

static void *ending_loop_main(void *arg)
{
	struct ending_loop *e = arg;
	struct event_base *base = event_base_new();
	struct store_spend item = { .scope = "key:ending", .period = "day", .start = DAY0,
				    .amount = 1 };

	e->self = pthread_self();
	if (!base) {
		e->attach_rc = -ENOMEM;
		return NULL;
	}
	/* Its base never runs: detaching alone must hand over what it staged and answer it. */
	if ((e->attach_rc = store_loop_attach(e->st, base)) == 0) {
		for (int i = 0; i < 3; i++)
			e->charge_rc[i] = store_charge(e->st, &item, 1, NULL, NULL);
		e->flush_rc = store_flush(e->st, ending_flushed, e);
		store_loop_detach(e->st);
	}
	event_base_free(base);
	return NULL;
}

static void test_loops_end_and_come_back(void)
{
	enum { ROUNDS = STORE_LOOPS_MAX + 6 };
	struct store_options o = { .path = store_path, .fsync_interval_ms = 1000 };
	struct event_base *base = event_base_new();
	struct store *st = NULL;
	int64_t sum[3] = { 0 };
	int bad = 0;

	CU_ASSERT_FATAL(base != NULL);
	CU_ASSERT_FATAL(tmpdir_setup(store_dir, sizeof(store_dir), store_path, sizeof(store_path),
				     "warden.db") == 0);
	CU_ASSERT_FATAL(store_open(&o, base, &st) == 0);
	/* More loops one after the other than the store has places: each leaves its own. */
	for (int r = 0; r < ROUNDS; r++) {
		struct ending_loop e = { .st = st };
		pthread_t t;

		CU_ASSERT_FATAL(pthread_create(&t, NULL, ending_loop_main, &e) == 0);
		CU_ASSERT_FATAL(pthread_join(t, NULL) == 0);
		bad += e.attach_rc != 0 || e.flush_rc != 0 || e.flushed != 1 || e.wrong_thread;
		for (int i = 0; i < 3; i++)
			bad += e.charge_rc[i] < 0;
	}
	CU_ASSERT_EQUAL(bad, 0);
	store_close(st);
	CU_ASSERT_FATAL(store_open(&o, base, &st) == 0);
	CU_ASSERT_EQUAL(store_load_spend(st, spend_sum, sum), 0);
	store_close(st);
	CU_ASSERT_EQUAL(sum[2], 3 * ROUNDS);    /* every loop's charges are in the database */
	event_base_free(base);
	tmpdir_remove(store_dir);
}

CU_MAIN("loops", cu_quiet, NULL,
	{ "two loops answer and authenticate side by side", test_loops_side_by_side },
	{ "loops count on their own, and a scrape adds them up", test_metrics_add_up },
	{ "each loop starts its own stdio children and sees them end", test_children_on_their_loops },
	{ "two loops charge through one store, each answered on its own", test_store_from_two_loops },
	{ "a loop that ends is answered first, and its place is the next one's",
	  test_loops_end_and_come_back },
	{ "two loops share one cache of permission views", test_views_from_two_loops })
