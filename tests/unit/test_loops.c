/* test_loops: event loops on several threads at once, as `workers: N` will run them
 * (docs/architecture.md, "workers: N"), sharing what a process shares.
 *
 * Each loop thread runs its own HTTP server (base/http_server) on its own event base and
 * authenticates every request against one keystore both loops share (govern/keys); a client
 * thread a loop sends it keep-alive requests over real loopback TCP, with a good key or a bad
 * one and a response header of a different length each time, and checks every answer byte
 * for byte: the status, the Date header, the header's length, the body naming the key. What
 * each server prints its answers with and what the keystore hashes with must be a loop's
 * own: a buffer shared by two servers is reallocated under the other's feet (AddressSanitizer
 * sees it, or an answer comes out wrong), and ThreadSanitizer (make tsan) reports any race.
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
#include <event2/event.h>

#include "cunit_main.h"
#include "base/http_server.h"
#include "govern/keys.h"

#define LOOPS 2
#define REQUESTS 400            /* a client's, over one connection */
#define WAIT_MS 20000           /* the longest a loop or a client may take */
#define NOW 1800000000LL        /* wall-clock time for the keys, unix seconds */
#define GOOD_KEY "mcpw_loops_test_key_0123456789"

static struct keystore *shared_ks;

struct loop {
	int idx;
	struct event_base *base;
	struct http_server *s;
	struct event *deadline;
	int port;
	atomic_uint answered;
	unsigned closed;
	/* what the client thread found */
	unsigned ok, wrong;
	char first_wrong[256];
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

static void on_close(void *arg, struct http_conn *c)
{
	struct loop *l = arg;

	(void)c;
	if (++l->closed == 1)   /* the client is done: so is the loop */
		event_base_loopbreak(l->base);
}

static const struct http_server_hooks hooks = { on_request, NULL, on_close, NULL };

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct loop *l = arg;

	(void)fd, (void)what;
	event_base_loopbreak(l->base);
}

static void *loop_main(void *arg)
{
	struct loop *l = arg;
	struct timeval tv = { WAIT_MS / 1000, 0 };

	evtimer_add(l->deadline, &tv);
	event_base_dispatch(l->base);
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
		CU_ASSERT_FATAL(l->deadline != NULL);
		CU_ASSERT_FATAL(http_server_new(l->base, &hooks, l, &l->s) == 0);
		CU_ASSERT_FATAL(http_server_bind(l->s, "loop", "127.0.0.1", 0, &l->port, NULL) == 0);
	}
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

		if (l->wrong || l->ok != REQUESTS)
			fprintf(stderr, "loop %d: %u right, %u wrong; first: %s\n", i, l->ok, l->wrong,
				l->first_wrong);
		CU_ASSERT_EQUAL(l->ok, REQUESTS);
		CU_ASSERT_EQUAL(l->wrong, 0);
		CU_ASSERT_EQUAL(atomic_load(&l->answered), REQUESTS);
		CU_ASSERT_EQUAL(l->closed, 1);
		http_server_free(l->s);
		event_free(l->deadline);
		event_base_free(l->base);
	}
	keys_free(shared_ks);
	shared_ks = NULL;
}

CU_MAIN("loops", cu_quiet, NULL,
	{ "two loops answer and authenticate side by side", test_loops_side_by_side })
