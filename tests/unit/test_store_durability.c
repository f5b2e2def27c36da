/* test_store_durability: an acknowledged charge survives kill -9 of the process at any moment.
 *
 * A child process opens the store and charges one unit at a time to a key and its team
 * (several in flight), reporting on a pipe each charge it starts and each one acknowledged
 * (the store's callback, the moment the router would answer the agent). The parent kills it
 * with SIGKILL at a random moment, reopens the database and checks that the counters hold at
 * least every acknowledged charge and no more than were started, that key and team agree
 * (charged in one transaction), and that the next run continues from there. */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <CUnit/Basic.h>

#include "base/log.h"
#include "store/store.h"
#include "store_test_util.h"
#include "cunit_main.h"

#define ROUNDS 6
#define IN_FLIGHT 4

static char dir[PATH_MAX], path[PATH_MAX + 32];

struct child {
	struct event_base *base;
	struct store *st;
	int fd;
	uint32_t started;
};

static void report(int fd, char what, uint32_t n)
{
	char msg[5] = { what };

	memcpy(msg + 1, &n, sizeof(n));
	if (write(fd, msg, sizeof(msg)) != sizeof(msg))
		_exit(3);
}

static void charge_next(struct child *c);
static uint32_t g_acked;        /* charges acknowledged so far, either way */

static void on_ack(void *arg, int err)
{
	struct child *c = arg;

	if (err)
		_exit(4);
	/* FIFO completion: acks come in the order the charges were started. */
	report(c->fd, 'A', ++g_acked);
	charge_next(c);
}

static void on_turn(evutil_socket_t fd, short what, void *arg)
{
	charge_next(arg);
}

static void charge_next(struct child *c)
{
	struct store_spend items[2] = {
		{ "key:dur", "month", 0, 1, 0 },
		{ "team:dur", "month", 0, 1, 0 },
	};
	int rc;

	report(c->fd, 'S', ++c->started);
	rc = store_charge(c->st, items, 2, on_ack, c);
	if (rc < 0)
		_exit(5);
	if (rc == 1) {
		/* In the journal: acknowledged now, as the router answers now. The next charge
		 * comes on the next loop turn, so the writer's commits run in between. */
		report(c->fd, 'A', ++g_acked);
		if (event_base_once(c->base, -1, EV_TIMEOUT, on_turn, c, NULL) < 0)
			_exit(7);
	}
}

static void child_main(int fd)
{
	struct store_options o = { .path = path, .fsync_interval_ms = 50 };
	struct event_base *base = event_base_new();
	struct child c = { .base = base, .fd = fd };

	if (!base || store_open(&o, base, &c.st) < 0)
		_exit(2);
	for (int i = 0; i < IN_FLIGHT; i++)
		charge_next(&c);
	event_base_dispatch(base);
	_exit(6);
}

struct sums {
	int64_t key, team;
};

static int sum(void *arg, const struct store_spend *r)
{
	struct sums *s = arg;

	if (!strcmp(r->scope, "key:dur"))
		s->key += r->amount;
	else if (!strcmp(r->scope, "team:dur"))
		s->team += r->amount;
	return 0;
}

static struct sums reopen_and_sum(void)
{
	struct store_options o = { .path = path, .fsync_interval_ms = 1000 };
	struct event_base *base = event_base_new();
	struct store *st = NULL;
	struct sums s = { 0 };

	CU_ASSERT_FATAL(base != NULL);
	CU_ASSERT_FATAL(store_open(&o, base, &st) == 0);
	CU_ASSERT(store_load_spend(st, sum, &s) == 0);
	store_close(st);
	event_base_free(base);
	return s;
}

static void test_kill9(void)
{
	int64_t base_count = 0;
	unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();

	printf("\n  (seed %u)\n", seed);
	for (int round = 0; round < ROUNDS; round++) {
		int p[2];
		pid_t pid;
		uint32_t started = 0, acked = 0, kill_after;
		char msg[5];
		int status;
		bool killed = false;

		CU_ASSERT_FATAL(pipe(p) == 0);
		fflush(NULL);
		pid = fork();
		CU_ASSERT_FATAL(pid >= 0);
		if (pid == 0) {
			close(p[0]);
			child_main(p[1]);
		}
		close(p[1]);
		/* Kill after a random number of acknowledgements (the first round also while
		 * it may still be opening), at a random point in the stream of messages. */
		kill_after = round == 0 ? 0 : 1 + (uint32_t)rand_r(&seed) % 400;
		if (kill_after == 0) {
			usleep((useconds_t)(rand_r(&seed) % 20000));
			kill(pid, SIGKILL);
			killed = true;
		}
		for (;;) {
			ssize_t n = read(p[0], msg, sizeof(msg));
			uint32_t v;
			if (n <= 0)
				break;
			if (n != sizeof(msg)) {
				CU_FAIL("short message from the child");
				break;
			}
			memcpy(&v, msg + 1, sizeof(v));
			if (msg[0] == 'S')
				started = v;
			else
				acked = v;
			if (!killed && acked >= kill_after &&
			    rand_r(&seed) % 4 == 0) {
				kill(pid, SIGKILL);
				killed = true;
			}
		}
		close(p[0]);
		CU_ASSERT(waitpid(pid, &status, 0) == pid);
		CU_ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

		struct sums s = reopen_and_sum();
		printf("  round %d: started %u, acknowledged %u, recorded %lld\n", round,
		       started, acked, (long long)(s.key - base_count));
		/* Never fewer than acknowledged; never more than started. */
		CU_ASSERT(s.key >= base_count + acked);
		CU_ASSERT(s.key <= base_count + started);
		/* The key and its team were charged in the same transaction. */
		CU_ASSERT(s.key == s.team);
		base_count = s.key;
	}
}

static int setup(void)
{
	log_set_level(LOG_ERROR);
	return tmpdir_setup(dir, sizeof(dir), path, sizeof(path), "warden.db");
}

static int teardown(void)
{
	tmpdir_remove(dir);
	return 0;
}

CU_MAIN("store durability", setup, teardown,
	{ "acknowledged charges survive kill -9", test_kill9 })
