/* logship_bench: records per second from a filled logs.db into PostgreSQL through the
 * shipper (observe/logship.h, docs/fleet-logs.md), at several batch sizes. Run by
 * tools/bench/logship.sh, which starts a PostgreSQL and fills the store; alone it says SKIP.
 *
 *   MCPWARDEN_BENCH_PG=<conninfo> MCPWARDEN_BENCH_LOGSDB=<logs.db> logship_bench
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sqlite3.h>

#include "observe/logpg.h"
#include "observe/logship.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static long long stored(const char *path)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *s = NULL;
	long long n = -1;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, "SELECT last_id FROM chain WHERE id = 1", -1, &s, NULL) ==
	    SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
		n = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return n;
}

int main(void)
{
	static const unsigned batches[] = { 100, 500, 1000, 2000 };
	const char *conninfo = getenv("MCPWARDEN_BENCH_PG"), *path = getenv("MCPWARDEN_BENCH_LOGSDB");
	long long n;

	if (!conninfo || !path) {
		printf("SKIP: run through tools/bench/logship.sh (it starts a PostgreSQL)\n");
		return 0;
	}
	n = stored(path);
	if (n <= 0) {
		fprintf(stderr, "logship_bench: no records in %s\n", path);
		return 1;
	}
	printf("%lld records of %s into PostgreSQL, one sidecar, one connection:\n", n, path);
	for (size_t i = 0; i < sizeof(batches) / sizeof(batches[0]); i++) {
		char name[32];
		struct logpg_options o = { .enabled = true, .conninfo = (char *)conninfo,
					   .sidecar = name, .prefix = "bench_", .max_age_s = 3650 * 86400LL,
					   .batch = batches[i], .poll_ms = 20, .ahead = 1 };
		struct logship_stats st;
		double t0 = now_s(), t;

		snprintf(name, sizeof(name), "bench-%u-%d", batches[i], (int)getpid());
		if (logship_start(&o, path)) {
			fprintf(stderr, "logship_bench: cannot start\n");
			return 1;
		}
		do {
			usleep(20000);
			logship_get_stats(&st);
			t = now_s() - t0;
		} while (st.shipped_seq < n && t < 600);
		logship_stop();
		printf("  batch %4u: %8.0f records/s (%.2f s)\n", batches[i], (double)st.shipped / t, t);
	}
	return 0;
}
